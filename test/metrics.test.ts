/**
 * The --stats metrics: a worker's WorkerMetrics (src/metrics.ts) and the primary's stats server
 * (src/stats-server.ts) with fake supervisor deps: the exposition parses line by line, counters
 * sum to what was fed, the method label stays bounded (OP-14), counters stay monotonic when a
 * worker goes away (OP-13), and /healthz, /readyz and /stats answer (OP-15).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AccessRecord, Logger } from '../src/logger.js';
import { silentLogger } from '../src/logger.js';
import { WorkerMetrics, instrumentLogger } from '../src/metrics.js';
import { PrimaryMetrics, type StatsDeps, type StatsServer, startStatsServer } from '../src/stats-server.js';

// ---------------------------------------------------------------------------------------------
// A strict parser of the Prometheus text format (0.0.4): every line is `# HELP name text`,
// `# TYPE name type`, `name{labels} value` or empty; anything else throws.
// ---------------------------------------------------------------------------------------------

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  samples: Sample[];
  types: Map<string, string>;
  help: Map<string, string>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/**
 * A sample value as Prometheus reads it (Go's strconv.ParseFloat): a decimal float, or NaN and
 * ±Inf in any case. prom-client writes NaN as "Nan" (nodejs_eventloop_lag_* before the first
 * sample), which Prometheus accepts.
 */
function parseValue(s: string, line: string): number {
  if (/^[+]?inf$/i.test(s)) return Infinity;
  if (/^-inf$/i.test(s)) return -Infinity;
  if (/^nan$/i.test(s)) return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`bad value ${JSON.stringify(s)} in ${JSON.stringify(line)}`);
  return Number(s);
}

function parseLabels(s: string, line: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1; // after '{'
  for (;;) {
    if (s[i] === '}') return { labels, rest: s.slice(i + 1) };
    const m = LABEL_NAME.exec(s.slice(i));
    if (m === null) throw new Error(`bad label name in ${JSON.stringify(line)}`);
    const name = m[0];
    i += name.length;
    if (s[i] !== '=' || s[i + 1] !== '"') throw new Error(`expected ="… in ${JSON.stringify(line)}`);
    i += 2;
    let value = '';
    for (;;) {
      const c = s[i];
      if (c === undefined) throw new Error(`unterminated label value in ${JSON.stringify(line)}`);
      if (c === '"') break;
      if (c === '\\') {
        const e = s[i + 1];
        if (e === '\\') value += '\\';
        else if (e === '"') value += '"';
        else if (e === 'n') value += '\n';
        else throw new Error(`bad escape in ${JSON.stringify(line)}`);
        i += 2;
      } else {
        value += c;
        i++;
      }
    }
    i++; // closing quote
    if (name in labels) throw new Error(`label ${name} twice in ${JSON.stringify(line)}`);
    labels[name] = value;
    if (s[i] === ',') i++;
    else if (s[i] !== '}') throw new Error(`expected , or } in ${JSON.stringify(line)}`);
  }
}

function parseExposition(text: string): Exposition {
  const out: Exposition = { samples: [], types: new Map(), help: new Map() };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const help = /^# HELP ([^ ]+) (.*)$/.exec(line);
      const type = /^# TYPE ([^ ]+) ([a-z]+)$/.exec(line);
      if (help !== null && NAME.test(help[1] as string)) out.help.set(help[1] as string, help[2] as string);
      else if (type !== null && NAME.test(type[1] as string) && TYPES.has(type[2] as string)) {
        if (out.types.has(type[1] as string)) throw new Error(`TYPE twice for ${type[1]}`);
        out.types.set(type[1] as string, type[2] as string);
      } else throw new Error(`bad comment line ${JSON.stringify(line)}`);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
    if (m === null) throw new Error(`bad sample line ${JSON.stringify(line)}`);
    const name = m[1] as string;
    let rest = line.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, line));
    const v = /^ (\S+)( -?\d+)?$/.exec(rest);
    if (v === null) throw new Error(`bad sample line ${JSON.stringify(line)}`);
    out.samples.push({ name, labels, value: parseValue(v[1] as string, line) });
  }
  return out;
}

function sum(exp: Exposition, name: string, where: (labels: Record<string, string>) => boolean = () => true): number {
  return exp.samples.filter((s) => s.name === name && where(s.labels)).reduce((acc, s) => acc + s.value, 0);
}

// ---------------------------------------------------------------------------------------------
// Records.
// ---------------------------------------------------------------------------------------------

const PROTOCOLS = ['http', 'fastcgi', 'scgi', 'uwsgi'] as const;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE'] as const;
const STATUSES = [200, 201, 204, 301, 304, 400, 404, 500, 502] as const;

/** A small deterministic generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function pick<T>(r: () => number, list: readonly T[]): T {
  return list[Math.floor(r() * list.length)] as T;
}

let seq = 0;
function record(r: () => number, over: Partial<AccessRecord> = {}): AccessRecord {
  return {
    id: `r${++seq}`,
    protocol: pick(r, PROTOCOLS),
    remoteAddr: '127.0.0.1',
    method: pick(r, METHODS),
    uri: '/',
    serverProtocol: 'HTTP/1.1',
    status: pick(r, STATUSES),
    bytes: Math.floor(r() * 5000),
    referer: undefined,
    userAgent: undefined,
    durationMs: r() * 200,
    time: new Date(),
    ...over,
  };
}

function feed(m: WorkerMetrics, n: number, seed: number): { bytes: number } {
  const r = rng(seed);
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const rec = record(r);
    bytes += rec.bytes;
    m.observe(rec);
  }
  return { bytes };
}

// ---------------------------------------------------------------------------------------------
// WorkerMetrics.
// ---------------------------------------------------------------------------------------------

describe('WorkerMetrics', () => {
  test('1000 records: the exposition parses and the counters sum to what was fed', async () => {
    let inFlight = 7;
    const m = new WorkerMetrics(() => inFlight);
    const { bytes } = feed(m, 1000, 1);
    m.timeout('fastcgi');
    m.timeout('fastcgi');
    m.timeout('weird');
    const exp = parseExposition(await m.registry.metrics());

    expect(exp.types.get('gatewire_requests_total')).toBe('counter');
    expect(exp.types.get('gatewire_request_duration_seconds')).toBe('histogram');
    expect(exp.types.get('gatewire_response_body_bytes_total')).toBe('counter');
    expect(exp.types.get('gatewire_requests_in_flight')).toBe('gauge');
    expect(exp.types.get('gatewire_request_timeouts_total')).toBe('counter');
    expect(exp.types.get('process_resident_memory_bytes')).toBe('gauge'); // the default metrics

    expect(sum(exp, 'gatewire_requests_total')).toBe(1000);
    expect(sum(exp, 'gatewire_request_duration_seconds_count')).toBe(1000);
    expect(sum(exp, 'gatewire_request_duration_seconds_bucket', (l) => l.le === '+Inf')).toBe(1000);
    expect(sum(exp, 'gatewire_response_body_bytes_total')).toBe(bytes);
    expect(sum(exp, 'gatewire_requests_in_flight')).toBe(7);
    expect(sum(exp, 'gatewire_request_timeouts_total', (l) => l.protocol === 'fastcgi')).toBe(2);
    expect(sum(exp, 'gatewire_request_timeouts_total', (l) => l.protocol === 'other')).toBe(1);

    const les = exp.samples.filter((s) => s.name === 'gatewire_request_duration_seconds_bucket' && s.labels.protocol === 'http').map((s) => s.labels.le);
    expect(les).toEqual(['0.005', '0.01', '0.025', '0.05', '0.075', '0.1', '0.25', '0.5', '0.75', '1', '2.5', '5', '7.5', '10', '+Inf']);
    for (const s of exp.samples.filter((x) => x.name === 'gatewire_requests_total')) {
      expect(Object.keys(s.labels).sort()).toEqual(['method', 'protocol', 'status']);
      expect(PROTOCOLS).toContain(s.labels.protocol);
      expect(METHODS).toContain(s.labels.method);
    }

    inFlight = 0;
    expect(sum(parseExposition(await m.registry.metrics()), 'gatewire_requests_in_flight')).toBe(0);

    const snap = (await m.snapshot()) as { metrics: unknown[]; requests: number; rss: number; startedAt: number };
    expect(Array.isArray(snap.metrics)).toBe(true);
    expect(snap.requests).toBe(1000);
    expect(snap.rss).toBeGreaterThan(0);
    expect(snap.startedAt).toBe(m.startedAt);
    // It crosses IPC as JSON (undefined exemplars drop out, NaN becomes null).
    const wire = JSON.parse(JSON.stringify(snap)) as typeof snap;
    expect(wire.requests).toBe(1000);
    expect(wire.metrics.length).toBe(snap.metrics.length);
  });

  test('OP-30: request body bytes per protocol; the cgi-bin host and upstream figures come from their probes at each scrape', async () => {
    const cgi = { running: 2, queued: 1, spawned: 9, exits: { ok: 5, error: 1, signal: 0, timeout: 2, killed: 0, spawn_error: 1 }, refused: 3 };
    const peers = [
      { upstream: 'fastcgi://127.0.0.1:9000', connections: 3, idle: 1, failures: 0, down: false },
      { upstream: 'fastcgi://127.0.0.1:9001', connections: 0, idle: 0, failures: 4, down: true },
    ];
    const m = new WorkerMetrics(() => 0, { cgi: () => cgi, upstream: () => peers });
    const r = rng(30);
    m.observe(record(r, { protocol: 'scgi', requestBytes: 1000 }));
    m.observe(record(r, { protocol: 'scgi', requestBytes: 24 }));
    m.observe(record(r, { protocol: 'http' }));
    m.observe(record(r, { protocol: 'http', requestBytes: Number.NaN }));
    let exp = parseExposition(await m.registry.metrics());
    expect(exp.types.get('gatewire_request_body_bytes_total')).toBe('counter');
    expect(sum(exp, 'gatewire_request_body_bytes_total', (l) => l.protocol === 'scgi')).toBe(1024);
    expect(sum(exp, 'gatewire_request_body_bytes_total', (l) => l.protocol === 'http')).toBe(0);

    expect(exp.types.get('gatewire_cgi_scripts_running')).toBe('gauge');
    expect(exp.types.get('gatewire_cgi_scripts_total')).toBe('counter');
    expect(sum(exp, 'gatewire_cgi_scripts_running')).toBe(2);
    expect(sum(exp, 'gatewire_cgi_scripts_queued')).toBe(1);
    expect(sum(exp, 'gatewire_cgi_scripts_total', (l) => l.outcome === 'timeout')).toBe(2);
    expect(sum(exp, 'gatewire_cgi_scripts_total')).toBe(9);
    expect(sum(exp, 'gatewire_cgi_refused_total')).toBe(3);

    const conns = (upstream: string, state: string): number => sum(exp, 'gatewire_upstream_connections', (l) => l.upstream === upstream && l.state === state);
    expect([conns('fastcgi://127.0.0.1:9000', 'busy'), conns('fastcgi://127.0.0.1:9000', 'idle')]).toEqual([2, 1]);
    expect(sum(exp, 'gatewire_upstream_failures_total', (l) => l.upstream === 'fastcgi://127.0.0.1:9001')).toBe(4);
    expect(sum(exp, 'gatewire_upstream_down', (l) => l.upstream === 'fastcgi://127.0.0.1:9001')).toBe(1);

    // The next scrape reads the probes again: counters follow the host's counts, gauges its state.
    cgi.running = 0;
    cgi.exits.ok = 7;
    peers[1]!.down = false;
    exp = parseExposition(await m.registry.metrics());
    expect(sum(exp, 'gatewire_cgi_scripts_running')).toBe(0);
    expect(sum(exp, 'gatewire_cgi_scripts_total', (l) => l.outcome === 'ok')).toBe(7);
    expect(sum(exp, 'gatewire_upstream_down')).toBe(0);
    // No probes, no such series.
    const bare = parseExposition(await new WorkerMetrics(() => 0).registry.metrics());
    expect([...bare.types.keys()].filter((n) => n.startsWith('gatewire_cgi_') || n.startsWith('gatewire_upstream_'))).toEqual([]);
  });

  test('OP-14: 50 random methods add to OTHER only', async () => {
    const m = new WorkerMetrics(() => 0);
    feed(m, 200, 2);
    const before = parseExposition(await m.registry.metrics());
    const methodsBefore = new Set(before.samples.filter((s) => s.name === 'gatewire_requests_total').map((s) => s.labels.method));
    const r = rng(14);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_!#$%&*+.^|~0123456789';
    const odd: string[] = ['get', 'Post', 'PROPFIND', 'MKCOL', '', 'GET ', 'g"e\\t\n'];
    while (odd.length < 50) {
      let s = '';
      const len = 1 + Math.floor(r() * 12);
      for (let i = 0; i < len; i++) s += alphabet[Math.floor(r() * alphabet.length)];
      if (!(METHODS as readonly string[]).includes(s)) odd.push(s);
    }
    for (const method of odd) m.observe(record(r, { method }));
    const after = parseExposition(await m.registry.metrics());
    const methodsAfter = new Set(after.samples.filter((s) => s.name === 'gatewire_requests_total').map((s) => s.labels.method));
    expect([...methodsAfter].filter((x) => !methodsBefore.has(x))).toEqual(methodsBefore.has('OTHER') ? [] : ['OTHER']);
    const isOther = (l: Record<string, string>): boolean => l.method === 'OTHER';
    const notOther = (l: Record<string, string>): boolean => l.method !== 'OTHER';
    expect(sum(after, 'gatewire_requests_total', isOther) - sum(before, 'gatewire_requests_total', isOther)).toBe(50);
    expect(sum(after, 'gatewire_requests_total', notOther)).toBe(sum(before, 'gatewire_requests_total', notOther));
    expect(sum(after, 'gatewire_requests_total')).toBe(250);
  });

  test('instrumentLogger feeds the metrics, then the access log, and delegates the rest', async () => {
    const lines: string[] = [];
    const accessed: string[] = [];
    let reopened = 0;
    const base: Logger = {
      error: (msg) => lines.push(`error ${msg}`),
      warn: (msg) => lines.push(`warn ${msg}`),
      info: (msg) => lines.push(`info ${msg}`),
      debug: (msg) => lines.push(`debug ${msg}`),
      debugEnabled: true,
      access: (rec) => accessed.push(rec.id),
      reopen: () => reopened++,
      close: () => Promise.resolve(),
    };
    const m = new WorkerMetrics(() => 0);
    const logger = instrumentLogger(base, m);
    const r = rng(3);
    logger.access?.(record(r, { id: 'a' }));
    logger.access?.(record(r, { id: 'b' }));
    logger.info('hello');
    logger.error('bad');
    logger.reopen?.();
    expect(accessed).toEqual(['a', 'b']);
    expect(lines).toEqual(['info hello', 'error bad']);
    expect(reopened).toBe(1);
    expect(logger.debugEnabled).toBe(true);
    expect(m.total).toBe(2);

    // With the access log off, the exchanges are still counted.
    const silent = instrumentLogger(silentLogger(), m);
    expect(silent.access).not.toBeNull();
    silent.access?.(record(r));
    expect(m.total).toBe(3);
    expect(silent.reopen).toBeUndefined();
    await silent.close();
    expect(sum(parseExposition(await m.registry.metrics()), 'gatewire_requests_total')).toBe(3);
  });
});

// ---------------------------------------------------------------------------------------------
// The stats server.
// ---------------------------------------------------------------------------------------------

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string | undefined; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

interface FakeWorker {
  pid: number;
  id: number;
  metrics: WorkerMetrics;
  inSnapshots: boolean;
  inStatus: boolean;
}

function fakeDeps(workers: FakeWorker[], primary: PrimaryMetrics): StatsDeps & { setState(s: string): void } {
  let state = 'ready';
  return {
    // Through JSON, as over the IPC channel of a forked worker.
    snapshots: async () => Promise.all(workers.filter((w) => w.inSnapshots).map(async (w) => ({ pid: w.pid, data: JSON.parse(JSON.stringify(await w.metrics.snapshot())) as unknown }))),
    status: () => workers.filter((w) => w.inStatus).map((w) => ({ pid: w.pid, id: w.id, state: 'ready', startedAt: w.metrics.startedAt })),
    state: () => state,
    primary,
    setState(s: string) {
      state = s;
    },
  };
}

describe('stats server', () => {
  let server: StatsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  test('OP-13: /metrics sums the workers, and a worker that goes away does not make a counter decrease', async () => {
    const workers: FakeWorker[] = [0, 1, 2, 3].map((i) => ({ pid: 1000 + i, id: i + 1, metrics: new WorkerMetrics(() => 1), inSnapshots: true, inStatus: true }));
    let bytes = 0;
    workers.forEach((w, i) => (bytes += feed(w.metrics, 250, 100 + i).bytes));
    const primary = new PrimaryMetrics('9.9.9');
    primary.setWorkers(4);
    primary.workerRestarted('crash');
    primary.reloaded('ok');
    const deps = fakeDeps(workers, primary);
    server = await startStatsServer({ host: '127.0.0.1', port: 0 }, deps);
    const port = server.port as number;
    expect(port).toBeGreaterThan(0);

    const first = await get(port, '/metrics');
    expect(first.status).toBe(200);
    expect(first.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    const exp = parseExposition(first.body);
    expect(sum(exp, 'gatewire_requests_total')).toBe(1000);
    expect(sum(exp, 'gatewire_request_duration_seconds_count')).toBe(1000);
    expect(sum(exp, 'gatewire_response_body_bytes_total')).toBe(bytes);
    expect(sum(exp, 'gatewire_requests_in_flight')).toBe(4);
    expect(exp.types.get('gatewire_request_duration_seconds')).toBe('histogram');
    expect(sum(exp, 'gatewire_workers')).toBe(4);
    expect(sum(exp, 'gatewire_worker_restarts_total', (l) => l.reason === 'crash')).toBe(1);
    expect(sum(exp, 'gatewire_reloads_total', (l) => l.result === 'ok')).toBe(1);
    expect(exp.samples.find((s) => s.name === 'gatewire_build_info')).toEqual({ name: 'gatewire_build_info', labels: { version: '9.9.9', node_version: process.version }, value: 1 });

    // Worker 1002 misses snapshots while alive (slow), then exits; a replacement starts.
    const gone = workers[2] as FakeWorker;
    let last = { requests: 1000, count: 1000, bytes, inf: 1000 };
    let expected = 1000;
    const r = rng(13);
    for (let scrape = 0; scrape < 20; scrape++) {
      if (scrape === 0) gone.inSnapshots = false;
      if (scrape === 5) gone.inStatus = false;
      if (scrape === 8) workers.push({ pid: 2000, id: 5, metrics: new WorkerMetrics(() => 0), inSnapshots: true, inStatus: true });
      // The live workers keep serving.
      for (const w of workers.filter((x) => x.inSnapshots)) {
        if (r() < 0.5) {
          w.metrics.observe(record(r));
          expected++;
        }
      }
      const e = parseExposition((await get(port, '/metrics')).body);
      const now = {
        requests: sum(e, 'gatewire_requests_total'),
        count: sum(e, 'gatewire_request_duration_seconds_count'),
        bytes: sum(e, 'gatewire_response_body_bytes_total'),
        inf: sum(e, 'gatewire_request_duration_seconds_bucket', (l) => l.le === '+Inf'),
      };
      expect(now.requests).toBeGreaterThanOrEqual(last.requests);
      expect(now.count).toBeGreaterThanOrEqual(last.count);
      expect(now.bytes).toBeGreaterThanOrEqual(last.bytes);
      expect(now.inf).toBeGreaterThanOrEqual(last.inf);
      // Nothing is lost and nothing counted twice.
      expect(now.requests).toBe(expected);
      expect(now.count).toBe(expected);
      // Per series too: no series of the requests counter goes down.
      last = now;
    }
    expect(last.requests).toBeGreaterThan(1000);
  });

  test('OP-13: no series of a counter decreases across a worker exit', async () => {
    const workers: FakeWorker[] = [0, 1, 2, 3].map((i) => ({ pid: 3000 + i, id: i + 1, metrics: new WorkerMetrics(() => 0), inSnapshots: true, inStatus: true }));
    workers.forEach((w, i) => feed(w.metrics, 250, 200 + i));
    server = await startStatsServer({ host: '127.0.0.1', port: 0 }, fakeDeps(workers, new PrimaryMetrics()));
    const port = server.port as number;
    const series = (e: Exposition): Map<string, number> =>
      new Map(e.samples.filter((s) => s.name.startsWith('gatewire_request')).filter((s) => s.name !== 'gatewire_requests_in_flight').map((s) => [`${s.name}${JSON.stringify(s.labels)}`, s.value]));
    const before = series(parseExposition((await get(port, '/metrics')).body));
    (workers[0] as FakeWorker).inSnapshots = false;
    (workers[0] as FakeWorker).inStatus = false;
    for (let i = 0; i < 20; i++) {
      const now = series(parseExposition((await get(port, '/metrics')).body));
      for (const [key, value] of before) {
        const v = now.get(key);
        expect([key, v !== undefined && v >= value]).toEqual([key, true]);
        expect(v).toBeCloseTo(value, 6);
      }
    }
  });

  test('OP-15: /healthz, /readyz, /stats, and the rest', async () => {
    const workers: FakeWorker[] = [0, 1, 2, 3].map((i) => ({ pid: 4000 + i, id: i + 1, metrics: new WorkerMetrics(() => 0), inSnapshots: true, inStatus: true }));
    workers.forEach((w, i) => feed(w.metrics, 10 * (i + 1), 300 + i));
    const deps = fakeDeps(workers, new PrimaryMetrics());
    server = await startStatsServer({ host: '127.0.0.1', port: 0 }, deps);
    const port = server.port as number;

    for (const state of ['starting', 'reloading', 'draining']) {
      deps.setState(state);
      const res = await get(port, '/readyz');
      expect([res.status, res.body.trim()]).toEqual([503, state]);
    }
    deps.setState('ready');
    const ready = await get(port, '/readyz');
    expect([ready.status, ready.body.trim()]).toEqual([200, 'ready']);

    const healthy = await get(port, '/healthz');
    expect([healthy.status, healthy.body.trim()]).toEqual([200, 'ok']);

    const stats = await get(port, '/stats?x=1');
    expect(stats.status).toBe(200);
    expect(stats.type).toMatch(/^application\/json/);
    const body = JSON.parse(stats.body) as { pid: number; state: string; workers: Array<{ pid: number; id: number; state: string; startedAt: number; requests?: number; rss?: number }> };
    expect(body.pid).toBe(process.pid);
    expect(body.state).toBe('ready');
    expect(body.workers.map((w) => [w.pid, w.id, w.state, w.requests])).toEqual([
      [4000, 1, 'ready', 10],
      [4001, 2, 'ready', 20],
      [4002, 3, 'ready', 30],
      [4003, 4, 'ready', 40],
    ]);
    for (const w of body.workers) expect(w.rss).toBeGreaterThan(0);

    // A worker that missed its snapshot is listed without figures.
    (workers[1] as FakeWorker).inSnapshots = false;
    const partial = JSON.parse((await get(port, '/stats')).body) as typeof body;
    expect(partial.workers[1]).toEqual({ pid: 4001, id: 2, state: 'ready', startedAt: (workers[1] as FakeWorker).metrics.startedAt });

    const head = await get(port, '/metrics', 'HEAD');
    expect([head.status, head.body]).toEqual([200, '']);
    expect(Number(head.headers['content-length'])).toBeGreaterThan(0);
    expect((await get(port, '/nope')).status).toBe(404);
    const post = await get(port, '/metrics', 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');

    for (const w of workers) w.inStatus = false;
    const unhealthy = await get(port, '/healthz');
    expect(unhealthy.status).toBe(503);
    expect(JSON.parse((await get(port, '/stats')).body)).toEqual({ pid: process.pid, state: 'ready', workers: [] });
  });

  test('listens on a unix socket', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatewire-stats-'));
    const sock = path.join(dir, 'stats.sock');
    try {
      server = await startStatsServer({ path: sock }, fakeDeps([], new PrimaryMetrics()));
      expect(server.port).toBeUndefined();
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        http
          .get({ socketPath: sock, path: '/readyz', agent: false }, (r) => {
            let body = '';
            r.setEncoding('utf8');
            r.on('data', (c: string) => (body += c));
            r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
          })
          .on('error', reject);
      });
      expect([res.status, res.body.trim()]).toEqual([200, 'ready']);
    } finally {
      await server?.close();
      server = undefined;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a failing snapshot source gives 500, and the server keeps serving', async () => {
    const primary = new PrimaryMetrics();
    let fail = true;
    const deps: StatsDeps = {
      snapshots: () => (fail ? Promise.reject(new Error('ipc down')) : Promise.resolve([])),
      status: () => [],
      state: () => 'starting',
      primary,
    };
    server = await startStatsServer({ host: '127.0.0.1', port: 0 }, deps);
    const port = server.port as number;
    const res = await get(port, '/metrics');
    expect([res.status, res.body.trim()]).toEqual([500, 'ipc down']);
    fail = false;
    const ok = await get(port, '/metrics');
    expect(ok.status).toBe(200);
    expect(parseExposition(ok.body).types.get('gatewire_build_info')).toBe('gauge');
  });
});
