/**
 * The primary's stats server (--stats): GET /metrics (every worker's metrics aggregated, plus the
 * primary's own), /healthz, /readyz and /stats. The primary serves no request itself, so this
 * server is the one place that sees every worker; it asks them for snapshots (src/metrics.ts)
 * at each scrape.
 *
 * Counters stay monotonic across worker restarts: the last counter values of every worker are
 * kept, and when a worker is gone (out of both the snapshots and status()) they are added to a
 * retained base that every later scrape includes. A worker that is alive but missed one
 * snapshot (it answers in 1 s or is left out) counts with its last values.
 */
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AggregatorRegistry, Counter, Gauge, type PrometheusContentType, Registry } from 'prom-client';
import { SERVER_SOFTWARE } from './environ.js';

export class PrimaryMetrics {
  readonly registry = new Registry();
  private readonly restarts: Counter<'reason'>;
  private readonly reloads: Counter<'result'>;
  private readonly workers: Gauge;

  constructor(version: string = SERVER_SOFTWARE.split('/')[1] ?? 'unknown') {
    const registers = [this.registry];
    this.restarts = new Counter({ name: 'gatewire_worker_restarts_total', help: 'Workers replaced, by reason.', labelNames: ['reason'] as const, registers });
    this.reloads = new Counter({ name: 'gatewire_reloads_total', help: 'Reloads (SIGHUP), by result.', labelNames: ['result'] as const, registers });
    this.workers = new Gauge({ name: 'gatewire_workers', help: 'Workers serving now.', registers });
    const build = new Gauge({ name: 'gatewire_build_info', help: 'The gatewire version and the Node.js version it runs on.', labelNames: ['version', 'node_version'] as const, registers });
    build.set({ version, node_version: process.version }, 1);
  }

  workerRestarted(reason: string): void {
    this.restarts.inc({ reason });
  }

  reloaded(result: 'ok' | 'failed'): void {
    this.reloads.inc({ result });
  }

  setWorkers(n: number): void {
    this.workers.set(n);
  }
}

export interface StatsWorkerStatus {
  pid: number;
  id: number;
  state: string;
  startedAt: number;
  lastRestartReason?: string | undefined;
}

export interface StatsDeps {
  snapshots: () => Promise<Array<{ pid: number; data: unknown }>>;
  status: () => StatsWorkerStatus[];
  state: () => string;
  primary: PrimaryMetrics;
}

export type StatsListen = { host: string | undefined; port: number } | { path: string };

export interface StatsServer {
  /** The port bound (TCP only). */
  port?: number;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// The metrics JSON of prom-client (Registry.getMetricsAsJSON), as it comes over IPC.
// ---------------------------------------------------------------------------------------------

interface MetricValueJson {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

interface MetricJson {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: MetricValueJson[];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The metrics of a snapshot, checked; undefined when it is not a snapshot of src/metrics.ts. */
function metricsOf(data: unknown): MetricJson[] | undefined {
  if (!isRecord(data) || !Array.isArray(data.metrics)) return undefined;
  const out: MetricJson[] = [];
  for (const m of data.metrics as unknown[]) {
    if (!isRecord(m) || typeof m.name !== 'string' || typeof m.type !== 'string' || !Array.isArray(m.values)) continue;
    const values: MetricValueJson[] = [];
    for (const v of m.values as unknown[]) {
      if (!isRecord(v) || typeof v.value !== 'number') continue;
      const labels = isRecord(v.labels) ? (v.labels as Record<string, string | number>) : {};
      values.push(typeof v.metricName === 'string' ? { value: v.value, labels, metricName: v.metricName } : { value: v.value, labels });
    }
    out.push({ name: m.name, help: typeof m.help === 'string' ? m.help : m.name, type: m.type, aggregator: typeof m.aggregator === 'string' ? m.aggregator : 'sum', values });
  }
  return out;
}

/** Counters and histograms summed across workers: the series a restart must not make go down. */
function isMonotonic(m: MetricJson): boolean {
  return (m.type === 'counter' || m.type === 'histogram') && m.aggregator === 'sum';
}

function seriesKey(metricName: string | undefined, labels: Record<string, string | number>): string {
  const keys = Object.keys(labels).sort();
  return JSON.stringify([metricName ?? '', keys.map((k) => [k, String(labels[k])])]);
}

/** The counter values of workers that are gone, summed by series. */
class RetainedBase {
  private readonly metrics = new Map<string, { help: string; type: string; aggregator: string; values: Map<string, MetricValueJson> }>();

  add(metrics: MetricJson[]): void {
    for (const m of metrics) {
      let kept = this.metrics.get(m.name);
      if (kept === undefined) {
        kept = { help: m.help, type: m.type, aggregator: m.aggregator, values: new Map() };
        this.metrics.set(m.name, kept);
      }
      for (const v of m.values) {
        const key = seriesKey(v.metricName, v.labels);
        const prev = kept.values.get(key);
        if (prev === undefined) kept.values.set(key, { ...v, labels: { ...v.labels } });
        else prev.value += v.value;
      }
    }
  }

  toJson(): MetricJson[] {
    return [...this.metrics].map(([name, m]) => ({ name, help: m.help, type: m.type, aggregator: m.aggregator, values: [...m.values.values()].map((v) => ({ ...v })) }));
  }
}

/** Keeps the scrapes monotonic; one per stats server. */
export class MetricsAggregator {
  /** Each worker's last counters, by pid. */
  private readonly last = new Map<number, MetricJson[]>();
  private readonly base = new RetainedBase();
  /** The last value this server gave each counter series. */
  private readonly emitted = new Map<string, number>();

  /**
   * The worker metrics to aggregate for this scrape: every snapshot, the last counters of a
   * worker still alive (in `alivePids`) that missed this one, and the retained base.
   */
  collect(snapshots: Array<{ pid: number; data: unknown }>, alivePids: ReadonlySet<number>): MetricJson[][] {
    const current: MetricJson[][] = [];
    const seen = new Set<number>();
    for (const { pid, data } of snapshots) {
      const metrics = metricsOf(data);
      if (metrics === undefined) continue;
      seen.add(pid);
      current.push(metrics);
      this.last.set(pid, metrics.filter(isMonotonic));
    }
    for (const [pid, counters] of [...this.last]) {
      if (seen.has(pid)) continue;
      if (alivePids.has(pid)) {
        current.push(counters);
      } else {
        this.base.add(counters);
        this.last.delete(pid);
      }
    }
    // The base goes last: aggregate() takes the help and aggregator of a metric's first entry.
    current.push(this.base.toJson());
    return current;
  }

  /**
   * Holds every counter and histogram series of an aggregated registry at no less than this
   * server last said. A sum of floats depends on its order, and the order changes when a worker
   * moves into the base: a _sum could come out one ulp lower, which Prometheus takes for a reset.
   */
  async clamp(registry: Registry): Promise<void> {
    for (const metric of registry.getMetricsAsArray() as unknown as AggregatedMetric[]) {
      const type = String(metric.type);
      if (type !== 'counter' && type !== 'histogram') continue;
      const current = await metric.get();
      for (const v of current.values) {
        const key = `${metric.name} ${seriesKey(v.metricName, v.labels)}`;
        const before = this.emitted.get(key);
        if (before !== undefined && v.value < before) v.value = before;
        this.emitted.set(key, v.value);
      }
    }
  }
}

/** A metric of the registry AggregatorRegistry.aggregate() returns. */
interface AggregatedMetric {
  name: string;
  type: unknown;
  get(): MetricJson | Promise<MetricJson>;
}

// ---------------------------------------------------------------------------------------------
// The server.
// ---------------------------------------------------------------------------------------------

function send(res: ServerResponse, head: boolean, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  const bytes = Buffer.from(body, 'utf8');
  res.writeHead(status, { 'content-type': type, 'content-length': String(bytes.length), 'cache-control': 'no-store', ...extra });
  res.end(head ? undefined : bytes);
}

const TEXT = 'text/plain; charset=utf-8';
const JSON_TYPE = 'application/json; charset=utf-8';

function numberField(data: unknown, name: string): number | undefined {
  if (!isRecord(data)) return undefined;
  const v = data[name];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

export async function startStatsServer(opts: StatsListen, deps: StatsDeps): Promise<StatsServer> {
  const aggregator = new MetricsAggregator();

  async function metrics(): Promise<{ type: string; body: string }> {
    const snapshots = await deps.snapshots();
    const alive = new Set(deps.status().map((w) => w.pid));
    const workers = AggregatorRegistry.aggregate<PrometheusContentType>(aggregator.collect(snapshots, alive));
    await aggregator.clamp(workers);
    const merged = Registry.merge([workers, deps.primary.registry]);
    return { type: merged.contentType, body: await merged.metrics() };
  }

  async function stats(): Promise<string> {
    const snapshots = await deps.snapshots();
    const byPid = new Map(snapshots.map((s) => [s.pid, s.data]));
    const workers = deps.status().map((w) => {
      const data = byPid.get(w.pid);
      const requests = numberField(data, 'requests');
      const rss = numberField(data, 'rss');
      return { ...w, ...(requests === undefined ? {} : { requests }), ...(rss === undefined ? {} : { rss }) };
    });
    return JSON.stringify({ pid: process.pid, state: deps.state(), workers });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const head = method === 'HEAD';
    if (method !== 'GET' && !head) {
      send(res, false, 405, TEXT, 'method not allowed\n', { allow: 'GET, HEAD' });
      return;
    }
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    switch (path) {
      case '/metrics': {
        const { type, body } = await metrics();
        send(res, head, 200, type, body);
        return;
      }
      case '/healthz':
        if (deps.status().length > 0) send(res, head, 200, TEXT, 'ok\n');
        else send(res, head, 503, TEXT, 'no workers\n');
        return;
      case '/readyz': {
        const state = deps.state();
        if (state === 'ready') send(res, head, 200, TEXT, 'ready\n');
        else send(res, head, 503, TEXT, `${state}\n`);
        return;
      }
      case '/stats':
        send(res, head, 200, JSON_TYPE, await stats());
        return;
      default:
        send(res, head, 404, TEXT, 'not found\n');
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      if (!res.headersSent) send(res, req.method === 'HEAD', 500, TEXT, `${message}\n`);
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if ('path' in opts) server.listen(opts.path, done);
    else if (opts.host === undefined) server.listen(opts.port, done);
    else server.listen(opts.port, opts.host, done);
  });

  const address = server.address();
  const close = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      server.close((err) => (err === undefined ? resolve() : reject(err)));
      server.closeIdleConnections();
    });
  if (address !== null && typeof address === 'object') return { port: (address as AddressInfo).port, close };
  return { close };
}
