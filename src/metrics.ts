/**
 * A worker's Prometheus metrics (--stats): every exchange's access record feeds a counter, a
 * duration histogram and a body-bytes counter, in a prom-client Registry of the worker's own
 * (with Node's default metrics). The primary asks each worker for `snapshot()` and aggregates
 * them (src/stats-server.ts); a worker never serves /metrics itself.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AccessRecord, Logger } from './logger.js';

/** Methods counted under their own name; anything else is 'OTHER' (bounded label cardinality). */
const METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE']);
/** Protocols counted under their own name; anything else is 'other'. */
const PROTOCOLS: ReadonlySet<string> = new Set(['http', 'fastcgi', 'scgi', 'uwsgi', 'cgi']);

export const DURATION_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/** The method label: one of the standard methods (case-sensitive, as HTTP methods are), else 'OTHER'. */
export function methodLabel(method: string): string {
  return METHODS.has(method) ? method : 'OTHER';
}

/** The protocol label: a front's name, else 'other'. */
export function protocolLabel(protocol: string): string {
  return PROTOCOLS.has(protocol) ? protocol : 'other';
}

/** What a worker answers to the primary's snapshot request. */
export interface WorkerSnapshot {
  metrics: unknown[];
  requests: number;
  rss: number;
  startedAt: number;
}

export class WorkerMetrics {
  readonly registry = new Registry();
  readonly startedAt = Date.now();
  private observed = 0;
  private readonly requests: Counter<'protocol' | 'method' | 'status'>;
  private readonly duration: Histogram<'protocol'>;
  private readonly bodyBytes: Counter<'protocol'>;
  private readonly timeouts: Counter<'protocol'>;

  /** @param inFlight how many requests the worker is serving now (read at each collection). */
  constructor(inFlight: () => number) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: 'gatewire_requests_total',
      help: 'Requests answered, by front protocol, method and status.',
      labelNames: ['protocol', 'method', 'status'] as const,
      registers,
    });
    this.duration = new Histogram({
      name: 'gatewire_request_duration_seconds',
      help: 'Time from the first byte of the request to the end of the response.',
      labelNames: ['protocol'] as const,
      buckets: [...DURATION_BUCKETS],
      registers,
    });
    this.bodyBytes = new Counter({
      name: 'gatewire_response_body_bytes_total',
      help: 'Response body bytes sent.',
      labelNames: ['protocol'] as const,
      registers,
    });
    this.timeouts = new Counter({
      name: 'gatewire_request_timeouts_total',
      help: 'Requests the app did not answer in time.',
      labelNames: ['protocol'] as const,
      registers,
    });
    new Gauge({
      name: 'gatewire_requests_in_flight',
      help: 'Requests being served now.',
      registers,
      collect() {
        this.set(inFlight());
      },
    });
  }

  /** Counts one finished exchange. */
  observe(record: AccessRecord): void {
    const protocol = protocolLabel(record.protocol);
    this.observed++;
    this.requests.inc({ protocol, method: methodLabel(record.method), status: String(record.status) });
    this.duration.observe({ protocol }, Math.max(0, record.durationMs) / 1000);
    this.bodyBytes.inc({ protocol }, Number.isFinite(record.bytes) && record.bytes > 0 ? record.bytes : 0);
  }

  /** Counts one request the app did not answer in time. */
  timeout(protocol: string): void {
    this.timeouts.inc({ protocol: protocolLabel(protocol) });
  }

  /** Requests observed since the worker started. */
  get total(): number {
    return this.observed;
  }

  /** What the worker sends the primary: its metrics as JSON (for AggregatorRegistry.aggregate) and a few figures for /stats. */
  async snapshot(): Promise<unknown> {
    const snap: WorkerSnapshot = {
      metrics: await this.registry.getMetricsAsJSON(),
      requests: this.observed,
      rss: process.memoryUsage.rss(),
      startedAt: this.startedAt,
    };
    return snap;
  }
}

/**
 * A logger that does what `logger` does, and whose access (never null, so every exchange builds
 * its record) feeds `metrics` before it calls the original access log, when there is one.
 */
export function instrumentLogger(logger: Logger, metrics: WorkerMetrics): Logger {
  const access = (record: AccessRecord): void => {
    try {
      metrics.observe(record);
    } catch {
      // Metrics never break an exchange.
    }
    logger.access?.(record);
  };
  const instrumented: Logger = {
    error: (message, meta) => logger.error(message, meta),
    warn: (message, meta) => logger.warn(message, meta),
    info: (message, meta) => logger.info(message, meta),
    debug: (message, meta) => logger.debug(message, meta),
    get debugEnabled() {
      return logger.debugEnabled;
    },
    access,
    close: () => logger.close(),
  };
  const reopen = logger.reopen;
  if (reopen !== undefined) instrumented.reopen = () => reopen.call(logger);
  return instrumented;
}
