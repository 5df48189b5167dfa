/**
 * A worker's Prometheus metrics (--stats): every exchange's access record feeds a counter, a
 * duration histogram and a body-bytes counter, in a prom-client Registry of the worker's own
 * (with Node's default metrics). The primary asks each worker for `snapshot()` and aggregates
 * them (src/stats-server.ts); a worker never serves /metrics itself.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ServiceProbes } from './probes.js';
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
  private readonly requestBodyBytes: Counter<'protocol'>;
  private readonly timeouts: Counter<'protocol'>;

  /**
   * @param inFlight how many requests the worker is serving now (read at each collection).
   * @param probes the cgi-bin host's and the upstreams' figures, when the service has them.
   */
  constructor(inFlight: () => number, probes: ServiceProbes = {}) {
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
    this.requestBodyBytes = new Counter({
      name: 'gatewire_request_body_bytes_total',
      help: 'Request body bytes received.',
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
    if (probes.cgi !== undefined) cgiMetrics(probes.cgi, registers);
    if (probes.upstream !== undefined) upstreamMetrics(probes.upstream, registers);
  }

  /** Counts one finished exchange. */
  observe(record: AccessRecord): void {
    const protocol = protocolLabel(record.protocol);
    this.observed++;
    this.requests.inc({ protocol, method: methodLabel(record.method), status: String(record.status) });
    this.duration.observe({ protocol }, Math.max(0, record.durationMs) / 1000);
    this.bodyBytes.inc({ protocol }, count(record.bytes));
    this.requestBodyBytes.inc({ protocol }, count(record.requestBytes));
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

function count(n: number | undefined): number {
  return n !== undefined && Number.isFinite(n) && n > 0 ? n : 0;
}

/**
 * The cgi-bin host's figures, read from its stats() at each collection. The host counts since
 * it started; a counter here is set to that count (collect runs before every scrape).
 */
function cgiMetrics(stats: NonNullable<ServiceProbes['cgi']>, registers: Registry[]): void {
  let last = stats();
  const read = (): ReturnType<typeof stats> => (last = stats());
  new Gauge({
    name: 'gatewire_cgi_scripts_running',
    help: 'CGI scripts running now.',
    registers,
    collect() {
      this.set(read().running);
    },
  });
  new Gauge({
    name: 'gatewire_cgi_scripts_queued',
    help: 'CGI requests waiting for a free script slot.',
    registers,
    collect() {
      this.set(last.queued);
    },
  });
  new Counter({
    name: 'gatewire_cgi_scripts_total',
    help: 'CGI script runs that ended, by outcome: ok, error (non-zero exit), signal, timeout (killed by the host), killed (client gone, bad output, shutdown), spawn_error.',
    labelNames: ['outcome'] as const,
    registers,
    collect() {
      this.reset();
      for (const [outcome, n] of Object.entries(last.exits)) this.inc({ outcome }, n);
    },
  });
  new Counter({
    name: 'gatewire_cgi_refused_total',
    help: 'CGI requests answered 503 because no script slot was free in time.',
    registers,
    collect() {
      this.reset();
      this.inc(last.refused);
    },
  });
}

/** Each upstream's pool and failure figures, read from the upstream app at each collection. */
function upstreamMetrics(stats: NonNullable<ServiceProbes['upstream']>, registers: Registry[]): void {
  let last = stats();
  new Gauge({
    name: 'gatewire_upstream_connections',
    help: 'Connections open to each upstream, by state (busy or idle in the keep-conn pool).',
    labelNames: ['upstream', 'state'] as const,
    registers,
    collect() {
      last = stats();
      this.reset();
      for (const p of last) {
        this.set({ upstream: p.upstream, state: 'busy' }, p.connections - p.idle);
        this.set({ upstream: p.upstream, state: 'idle' }, p.idle);
      }
    },
  });
  new Counter({
    name: 'gatewire_upstream_failures_total',
    help: 'Failures counted against each upstream: refused, timed out, reset or garbage before the answer.',
    labelNames: ['upstream'] as const,
    registers,
    collect() {
      this.reset();
      for (const p of last) this.inc({ upstream: p.upstream }, p.failures);
    },
  });
  new Gauge({
    name: 'gatewire_upstream_down',
    help: 'Whether each upstream is left out of the rotation now for its failures (1) or not (0), as the worker that sees it down.',
    labelNames: ['upstream'] as const,
    registers,
    aggregator: 'max',
    collect() {
      for (const p of last) this.set({ upstream: p.upstream }, p.down ? 1 : 0);
    },
  });
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
