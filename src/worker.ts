/**
 * A worker process of the supervisor (src/supervisor.ts): a single-process gatewire whose
 * listeners are descriptors its primary bound and handed down, plus the worker's half of the
 * primary's protocol (worker-env.ts): `ready` once accepting, a heartbeat for the watchdog,
 * `retiring` when it recycles itself (--max-requests, --max-memory), snapshots for --stats;
 * `drain` and `reopen-logs` from the primary.
 *
 * A worker drops its privileges (--user/--group) before it loads the app: the app never runs as
 * root, and binding needed none (the primary did it).
 */
import type { Service } from './app.js';
import type { Logger } from './log.js';
import type { ServeOptions } from './options.js';
import { Gateway, type ListenerSpec } from './server.js';
import type { FrontName } from './fronts/registry.js';
import type { PrimaryMessage, WorkerInfo, WorkerMessage } from './worker-env.js';

export interface WorkerRun {
  info: WorkerInfo;
  options: ServeOptions;
  logger: Logger;
  service: Service;
  /** The CLI-13 line, sent to the primary, which says it once. */
  appLine: string | undefined;
  /** Ends the process once the logger is flushed. */
  exit: (code: number) => void;
}

function send(message: WorkerMessage): void {
  if (process.connected) process.send?.(message);
}

export async function runWorker(run: WorkerRun): Promise<Gateway> {
  const { info, options } = run;
  const service = info.beatMs > 0 ? withLastRequest(run.service) : run.service;
  const specs: ListenerSpec[] = info.listeners.map((l) => ({ front: l.front as FrontName, address: { kind: 'fd', fd: l.fd }, label: l.label }));
  // --stats: every exchange's access record feeds this worker's metrics; the primary asks for them.
  let metrics: import('./metrics.js').WorkerMetrics | undefined;
  let logger = run.logger;
  if (options.stats !== undefined) {
    const { WorkerMetrics, instrumentLogger } = require('./metrics.js') as typeof import('./metrics.js');
    metrics = new WorkerMetrics(() => gateway.inflight.count, service.probes);
    logger = instrumentLogger(run.logger, metrics);
  }
  const timeouts = metrics;
  const gateway: Gateway = new Gateway(service, options, logger, {
    manageSocketFiles: false,
    multiprocess: options.workers > 1,
    ...(timeouts === undefined ? {} : { onTimeout: (protocol: string) => timeouts.timeout(protocol) }),
  });

  let stopping = false;
  const drain = (why: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info(`worker ${process.pid}: ${why}; finishing in-flight requests (up to ${options.shutdownTimeout} ms)`);
    void gateway.close(options.shutdownTimeout).then(() => run.exit(0));
  };
  const retire = (reason: 'max_requests' | 'max_memory', why: string): void => {
    if (stopping) return;
    send({ t: 'retiring', reason });
    drain(why);
  };
  const stopNow = (signal: string, code: number): void => {
    stopping = true;
    logger.info(`worker ${process.pid}: ${signal}: stopping now`);
    void gateway.closeNow().then(() => run.exit(code));
  };

  // The primary speaks for the server: a terminal's HUP or Ctrl-Z reaches the whole group.
  process.on('SIGTERM', () => drain('SIGTERM'));
  process.on('SIGINT', () => stopNow('SIGINT', 130));
  process.on('SIGQUIT', () => stopNow('SIGQUIT', 131));
  for (const ignored of ['SIGHUP', 'SIGTTIN', 'SIGTTOU', 'SIGWINCH'] as const) process.on(ignored, () => undefined);
  for (const reopen of ['SIGUSR1', 'SIGUSR2'] as const) process.on(reopen, () => logger.reopen?.());
  process.on('message', (msg: PrimaryMessage) => {
    if (msg.t === 'drain') drain('asked to stop');
    else if (msg.t === 'reopen-logs') logger.reopen?.();
    else if (msg.t === 'snapshot') {
      const reply = metrics?.snapshot() ?? Promise.resolve(undefined);
      void reply.then((data) => send({ t: 'snapshot', n: msg.n, data }));
    }
  });
  // The primary is gone (killed with -9): nobody will replace or stop this worker. Finish what
  // is in flight and go, rather than serve on as an orphan no signal of the unit reaches.
  process.on('disconnect', () => drain('the primary is gone'));

  await gateway.listen(specs);
  if (info.maxRequests > 0) {
    gateway.inflight.recycleAfter(info.maxRequests, () => retire('max_requests', `served ${info.maxRequests} requests (--max-requests), recycling`));
  }
  if (options.maxMemory > 0) {
    const check = setInterval(() => {
      const rss = process.memoryUsage.rss();
      if (rss > options.maxMemory) {
        clearInterval(check);
        retire('max_memory', `RSS ${Math.round(rss / 2 ** 20)} MiB is over --max-memory ${Math.round(options.maxMemory / 2 ** 20)} MiB, recycling`);
      }
    }, 1000);
    check.unref();
  }
  if (info.beatMs > 0) {
    beatNow = () => {
      lastBeatAt = Date.now();
      send({ t: 'beat', requests: gateway.inflight.admitted, inflight: gateway.inflight.count, rss: process.memoryUsage.rss(), last: lastRequest });
    };
    beatMs = info.beatMs;
    const beat = setInterval(beatNow, info.beatMs);
    beat.unref();
  }
  send({ t: 'ready', app: run.appLine });
  return gateway;
}

/**
 * What the watchdog names when this worker's loop is blocked: the request that started last.
 * A request that starts when no heartbeat went out for REPORT_MS sends one at once (at most 100
 * messages a second, whatever the load), so the request named is the one that blocked the loop
 * unless another one started less than REPORT_MS before it.
 */
const REPORT_MS = 10;
let lastRequest: string | undefined;
let lastBeatAt = 0;
let beatMs = 0;
let beatNow: (() => void) | undefined;

function started(request: string): void {
  lastRequest = request;
  if (beatNow !== undefined && Date.now() - lastBeatAt >= Math.min(beatMs, REPORT_MS)) beatNow();
}

function withLastRequest(service: Service): Service {
  const { app, node } = service;
  const out: Service = {
    ...service,
    app: (environ, startResponse) => {
      started(`${String(environ['gatewire.request_id'] ?? '-')} ${String(environ.REQUEST_METHOD)} ${String(environ.REQUEST_URI ?? environ.PATH_INFO ?? '')}`);
      return app(environ, startResponse);
    },
  };
  if (node !== undefined) {
    out.node = (req, res) => {
      started(`${req.method ?? '-'} ${req.url ?? ''}`);
      return node(req, res);
    };
  }
  return out;
}
