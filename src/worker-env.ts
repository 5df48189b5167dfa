/**
 * What a worker process learns from its primary (src/supervisor.ts) at birth: one environment
 * variable, GATEWIRE_WORKER, holding JSON. Kept apart from the supervisor so that modules that
 * only ask "am I a worker?" (compose.ts, cli.ts) load nothing else.
 */

/** One listener the primary bound and handed down as an inherited descriptor. */
export interface InheritedListener {
  front: string;
  /** The descriptor number in the worker (3 is the IPC channel, listeners follow). */
  fd: number;
  /** The address as the user knows it (`127.0.0.1:8080`, `unix:/run/gw.sock`), for log lines. */
  label: string;
}

export interface WorkerInfo {
  /** 1, 2, … in the order the primary started its workers. */
  id: number;
  /** True for the workers of the first start: they say the one-per-server start-up lines. */
  announce: boolean;
  listeners: InheritedListener[];
  /** --max-requests with this worker's share of the jitter drawn (0 = never). */
  maxRequests: number;
  /** Interval of the heartbeat the primary's watchdog expects, in ms (0 = none). */
  beatMs: number;
}

export const WORKER_ENV = 'GATEWIRE_WORKER';

/** This process's WorkerInfo when a gatewire primary started it, else undefined. */
export function workerInfo(env: NodeJS.ProcessEnv = process.env): WorkerInfo | undefined {
  const text = env[WORKER_ENV];
  if (text === undefined || text === '' || typeof process.send !== 'function') return undefined;
  return JSON.parse(text) as WorkerInfo;
}

export function isWorkerProcess(): boolean {
  return workerInfo() !== undefined;
}

/** Worker → primary. */
export type WorkerMessage =
  /** Every listener is accepting; `app` is the CLI-13 line naming the app. */
  | { t: 'ready'; app: string | undefined }
  /** The heartbeat of the watchdog (--timeout): the loop is alive; the request started last. */
  | { t: 'beat'; requests: number; inflight: number; rss: number; last: string | undefined }
  /** The worker stopped accepting and drains: start its replacement now. */
  | { t: 'retiring'; reason: 'max_requests' | 'max_memory' }
  | { t: 'snapshot'; n: number; data: unknown };

/** Primary → worker. */
export type PrimaryMessage =
  | { t: 'drain' }
  | { t: 'reopen-logs' }
  | { t: 'snapshot'; n: number };
