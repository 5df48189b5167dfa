/**
 * Differential test of the app adapters (issue 13): the same six apps (test/fixtures/differential/:
 * Express, Fastify, Koa, Hono, a plain (req, res) handler, an environ app), each served two ways
 * and compared request by request:
 *
 *   baseline   the app on its framework's own server (app.listen(), fastify.listen(),
 *              @hono/node-server, http.createServer; baseline.mjs), on a unix socket. The environ
 *              app has no server of its own: its baseline is gatewire --http itself (a second
 *              gatewire process), so its http row compares gatewire with gatewire and its other
 *              rows the gateway protocols with gatewire's HTTP, through the same web server.
 *   gatewire   one `gatewire serve APP --http --fastcgi --scgi --uwsgi --workers 0` per app,
 *              all four listeners on unix sockets.
 *
 * The ways, each against the baseline reached the same way, so the web server's own effects
 * are on both sides:
 *
 *   http           client → gatewire --http              against client → baseline
 *   nginx-fastcgi  nginx fastcgi_pass → gatewire         against nginx proxy_pass → baseline
 *   nginx-scgi     nginx scgi_pass    → gatewire         (the same)
 *   nginx-uwsgi    nginx uwsgi_pass   → gatewire         (the same)
 *   apache-fcgi    Apache mod_proxy_fcgi  → gatewire     against Apache mod_proxy_http → baseline
 *   apache-scgi    Apache mod_proxy_scgi  → gatewire     (the same)
 *   apache-uwsgi   Apache mod_proxy_uwsgi → gatewire     (the same)
 *
 * One nginx (fixtures/nginx/differential.conf) and one Apache (fixtures/apache/differential.conf)
 * carry every app and way on one port each: the Host name (APP.WAY.test) picks them, so every app
 * is served at the root, without --mount.
 *
 * Per request (REQUESTS) the test compares the status, every response field but Date, Server,
 * Connection and Keep-Alive (the connection's, not the app's), and a sha256 of the body (with the
 * stream's timestamps and gatewire's request ids normalised); a stream must arrive spread in time
 * (its first chunk well before its last), and an SSE stream must stop within one event after its
 * client hung up (the app records the time of every event and of its stop, read back through
 * /sse-stats). WebSocket is compared on --http only: FastCGI, SCGI and uwsgi cannot carry an
 * upgrade (F-47, S-13, U-12).
 *
 * Every difference found must be in ALLOWED, which names its cause (the web server's, the
 * protocol's, gatewire's documented behaviour); an unlisted difference fails its request's test,
 * and a listed one that no longer occurs fails the last test. The table (app × way → "same" or
 * the differences) is printed at the end and is the one in docs/differential.md.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import WebSocket from 'ws';
import { CLI, ROOT, childEnv, ensureBuilt } from './fixtures/apps/cli-harness.js';
import { describeWithPeers, startApache, startNginx, startProcess, withPeerLogs } from './helpers/peers.js';
import type { PeerProcess, WebServer } from './helpers/peers.js';
import { tmpDir } from './helpers/net.js';
import type { TmpDir } from './helpers/net.js';

const FIXTURES = path.join(__dirname, 'fixtures', 'differential');

const APPS = ['express', 'fastify', 'koa', 'hono', 'plain', 'environ'] as const;
type AppName = (typeof APPS)[number];

const WAYS = ['http', 'nginx-fastcgi', 'nginx-scgi', 'nginx-uwsgi', 'apache-fcgi', 'apache-scgi', 'apache-uwsgi'] as const;
type Way = (typeof WAYS)[number];
/** Where a baseline is reached: directly, through nginx proxy_pass, through Apache mod_proxy_http. */
type Front = 'direct' | 'nginx' | 'apache';
const FRONT_OF: Record<Way, Front> = {
  http: 'direct',
  'nginx-fastcgi': 'nginx',
  'nginx-scgi': 'nginx',
  'nginx-uwsgi': 'nginx',
  'apache-fcgi': 'apache',
  'apache-scgi': 'apache',
  'apache-uwsgi': 'apache',
};

/** Response fields of the connection, not the app: never compared. */
const CONNECTION_FIELDS = new Set(['date', 'server', 'connection', 'keep-alive']);

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

type Kind =
  /** Status, fields and body. */
  | 'plain'
  /** And the arrival times of the body's chunks. */
  | 'stream'
  /** An SSE stream the client leaves after three events; then /sse-stats. */
  | 'sse'
  /** A GET of the static file first, then this request with its validators. */
  | 'conditional';

interface Req {
  id: string;
  what: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Send the body with chunked framing (no Content-Length). */
  chunked?: boolean;
  kind: Kind;
  /** The client gives up after this long (an answer that never comes). @default 10000 */
  timeoutMs?: number;
  /** For 'conditional': the request fields built from the first GET's answer. */
  validators?: (first: Answer) => Record<string, string>;
}

const pattern = (n: number): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 9)) & 0xff;
  return b;
};

const REQUESTS: readonly Req[] = [
  { id: 'json', what: 'GET a JSON document', method: 'GET', path: '/json', kind: 'plain' },
  {
    id: 'json-post',
    what: 'POST a JSON body, parsed and echoed',
    method: 'POST',
    path: '/json',
    headers: { 'Content-Type': 'application/json' },
    body: Buffer.from(JSON.stringify({ a: 1, b: [true, null], s: 'caf\u00e9' })),
    kind: 'plain',
  },
  {
    id: 'form-post',
    what: 'POST an urlencoded form, parsed and echoed',
    method: 'POST',
    path: '/form',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: Buffer.from('a=1&b=two+words&c=%C3%A9&empty='),
    kind: 'plain',
  },
  { id: 'cookies', what: 'cookies in (echoed), two Set-Cookie out', method: 'GET', path: '/cookies', headers: { Cookie: 'session=old; theme=light; n=%C3%A9' }, kind: 'plain' },
  { id: 'redirect', what: "the framework's redirect", method: 'GET', path: '/redirect', kind: 'plain' },
  { id: 'static', what: 'a static file', method: 'GET', path: '/static/hello.txt', kind: 'plain' },
  { id: 'static-range', what: 'a static file, Range: bytes=5-14', method: 'GET', path: '/static/hello.txt', headers: { Range: 'bytes=5-14' }, kind: 'plain' },
  {
    id: 'static-if-none-match',
    what: "a static file, If-None-Match with the first GET's ETag",
    method: 'GET',
    path: '/static/hello.txt',
    kind: 'conditional',
    validators: (first) => ({ 'If-None-Match': fieldOf(first, 'etag') ?? '"none"' }),
  },
  {
    id: 'static-if-modified-since',
    what: "a static file, If-Modified-Since with the first GET's Last-Modified",
    method: 'GET',
    path: '/static/hello.txt',
    kind: 'conditional',
    validators: (first) => ({ 'If-Modified-Since': fieldOf(first, 'last-modified') ?? 'Thu, 01 Jan 1970 00:00:00 GMT' }),
  },
  { id: 'head', what: 'HEAD of the JSON document', method: 'HEAD', path: '/json', kind: 'plain' },
  { id: 'stream', what: 'a streamed body: 5 chunks 200 ms apart, each with its time', method: 'GET', path: '/stream', kind: 'stream' },
  { id: 'sse', what: 'SSE, the client hangs up after 3 events', method: 'GET', path: '/sse', kind: 'sse' },
  { id: 'throw', what: 'an error thrown in the handler', method: 'GET', path: '/throw', kind: 'plain', timeoutMs: 2000 },
  { id: 'reject', what: 'a promise rejected by the handler', method: 'GET', path: '/reject', kind: 'plain', timeoutMs: 2000 },
  { id: 'not-found', what: "no such route: the framework's 404", method: 'GET', path: '/nope', kind: 'plain' },
  {
    id: 'upload-chunked',
    what: 'a chunked upload (256 KiB + 7), hashed by the app',
    method: 'POST',
    path: '/upload',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: pattern(256 * 1024 + 7),
    chunked: true,
    kind: 'plain',
  },
];

// ---------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------

/** Where a request goes: a unix socket, or a web server's port, and the Host it names. */
interface Target {
  socketPath?: string;
  port?: number;
  host: string;
}

interface Answer {
  /** 0 when no answer came (error says why). */
  status: number;
  /** Lower-cased names, in order. */
  headers: Array<[string, string]>;
  body: Buffer;
  /** ms after the request was sent, per body chunk received. */
  chunkTimes: number[];
  error?: string;
  /** The wall-clock time the client hung up (sse). */
  hungUpAt?: number;
}

const fieldOf = (a: Answer, name: string): string | undefined => a.headers.find(([k]) => k === name)?.[1];

interface SendOptions {
  /** Hang up once the body holds this many SSE events. */
  hangUpAfterEvents?: number;
}

function send(target: Target, req: Req, extraHeaders: Record<string, string> = {}, opts: SendOptions = {}): Promise<Answer> {
  return new Promise((resolve) => {
    const started = Date.now();
    const headers: Record<string, string> = { Host: target.host, 'User-Agent': 'gatewire-app-differential', ...(req.headers ?? {}), ...extraHeaders };
    if (req.body !== undefined && !req.chunked) headers['Content-Length'] = String(req.body.length);
    const r = http.request({
      ...(target.socketPath !== undefined ? { socketPath: target.socketPath } : { host: '127.0.0.1', port: target.port }),
      method: req.method,
      path: req.path,
      headers,
      agent: false,
    });
    const chunks: Buffer[] = [];
    const answer: Answer = { status: 0, headers: [], body: Buffer.alloc(0), chunkTimes: [] };
    let done = false;
    const finish = (error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      answer.body = Buffer.concat(chunks);
      if (error !== undefined) answer.error = error;
      resolve(answer);
    };
    const timer = setTimeout(() => {
      r.destroy();
      finish(answer.status === 0 ? 'no answer' : 'body not complete');
    }, req.timeoutMs ?? 10_000);
    r.on('error', (err) => finish(answer.status === 0 ? err.message : undefined));
    r.on('response', (res) => {
      answer.status = res.statusCode ?? 0;
      for (let i = 0; i < res.rawHeaders.length; i += 2) answer.headers.push([(res.rawHeaders[i] as string).toLowerCase(), res.rawHeaders[i + 1] as string]);
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        answer.chunkTimes.push(Date.now() - started);
        const events = (Buffer.concat(chunks).toString('latin1').match(/^data: /gm) ?? []).length;
        if (opts.hangUpAfterEvents !== undefined && events >= opts.hangUpAfterEvents) {
          answer.hungUpAt = Date.now();
          r.destroy();
          finish();
        }
      });
      res.on('aborted', () => finish('aborted'));
      res.on('end', () => finish(res.complete ? undefined : 'body not complete'));
      res.on('error', () => finish('body not complete'));
    });
    if (req.body === undefined) r.end();
    else if (req.chunked) {
      const step = Math.ceil(req.body.length / 4);
      for (let i = 0; i < req.body.length; i += step) r.write(req.body.subarray(i, i + step));
      r.end();
    } else r.end(req.body);
  });
}

// ---------------------------------------------------------------------------------------
// What is compared
// ---------------------------------------------------------------------------------------

/** One answer as compared: field name → value. */
type View = Map<string, string>;

const sha12 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex').slice(0, 12);
/** Timestamps of /stream and the request ids of gatewire's own replies change per request. */
const normalise = (body: Buffer): string => body.toString('latin1').replace(/t=\d+/g, 't=T').replace(/request id: \S+/g, 'request id: ID');
const excerpt = (s: string): string => JSON.stringify(s.length > 70 ? `${s.slice(0, 70)}…` : s);

/** A View key starting so is shown in the table, never compared. */
const NOT_COMPARED = '~';

/** Spread of a stream's chunks: the first must arrive well before the last (5 chunks, 800 ms apart in all). */
const SPREAD_MS = 400;

function viewOf(a: Answer, req: Req): View {
  const v: View = new Map();
  v.set('status', a.error !== undefined && a.status === 0 ? `no answer in ${(req.timeoutMs ?? 10_000) / 1000} s` : String(a.status));
  if (a.status === 0) return v;
  const byName = new Map<string, string[]>();
  for (const [k, value] of a.headers) if (!CONNECTION_FIELDS.has(k)) byName.set(k, [...(byName.get(k) ?? []), value]);
  for (const [k, values] of byName) v.set(`field ${k}`, values.join(' | '));
  if (req.kind === 'sse') return v; // its body depends on when the client left
  const text = normalise(a.body);
  v.set('body', `${a.body.length} B ${sha12(text)} ${excerpt(text)}`);
  if (a.error !== undefined) v.set('ending', a.error);
  if (req.kind === 'stream') {
    const first = a.chunkTimes[0] ?? 0;
    const last = a.chunkTimes[a.chunkTimes.length - 1] ?? 0;
    v.set('stream', last - first >= SPREAD_MS ? 'spread in time' : `at once (first to last chunk ${last - first} ms)`);
  }
  return v;
}

/** The body is compared on its hash; the excerpt only shows in reports. */
const comparable = (field: string, value: string | undefined): string | undefined => (field === 'body' && value !== undefined ? value.split(' ').slice(0, 3).join(' ') : value);

interface Difference {
  field: string;
  baseline: string | undefined;
  gatewire: string | undefined;
}

function differences(base: View, gw: View): Difference[] {
  const out: Difference[] = [];
  const fields = [...new Set([...base.keys(), ...gw.keys()])].filter((f) => !f.startsWith(NOT_COMPARED)).sort();
  for (const field of fields) {
    if (comparable(field, base.get(field)) !== comparable(field, gw.get(field))) out.push({ field, baseline: base.get(field), gatewire: gw.get(field) });
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// The allow-list: every difference the run may show, with its cause
// ---------------------------------------------------------------------------------------

/** Any value, or none. */
const ANY = Symbol('any');
type Want = string | RegExp | undefined | typeof ANY;

type Cause = 'web server' | 'protocol' | 'gatewire (documented)' | 'gatewire (bug)';

interface Allowed {
  /** Request ids. */
  requests: readonly string[];
  apps: readonly AppName[];
  ways: readonly Way[];
  /** The compared field (`status`, `field NAME`, `body`, `stream`, `sse`), or a pattern of them. */
  field: string | RegExp;
  /** What each side shows (exact text, or a pattern); undefined: the field is absent; ANY: anything, absent included. */
  baseline: Want;
  gatewire: Want;
  cause: Cause;
  why: string;
  /** A gatewire bug: listed to explain it and show the fix, but it fails the test while it occurs. */
  bug?: string;
}

const ALL_REQUESTS = REQUESTS.map((r) => r.id);
const APACHE_CGI_STYLE: readonly Way[] = ['apache-fcgi', 'apache-scgi'];

const ALLOWED: readonly Allowed[] = [
  // --- The web server's -------------------------------------------------------------------
  {
    requests: ALL_REQUESTS,
    apps: APPS,
    ways: APACHE_CGI_STYLE,
    field: /^field (content-length|transfer-encoding)$/,
    baseline: ANY,
    gatewire: ANY,
    cause: 'web server',
    why:
      "Apache frames a CGI-style answer itself: it does not pass on the Content-Length of a `Status:` head (mod_proxy_fcgi and mod_proxy_scgi read it as a CGI script's header block), although gatewire sends one (`gatewire request` shows it on both sockets; nginx passes it on), and sends the body chunked, or, when the whole answer came in one read (mod_proxy_scgi: SCGI closes the connection at its end), with a Content-Length its own filter counted, also where the app streamed without one. Over mod_proxy_http (the baseline) and mod_proxy_uwsgi (an HTTP status line) Apache keeps the backend's framing. The body is the same (its hash is compared); only the framing differs (HEAD: no Content-Length, no body).",
  },
  {
    requests: ['upload-chunked'],
    apps: APPS,
    ways: ['apache-scgi', 'apache-uwsgi'],
    field: 'status',
    baseline: '200',
    gatewire: '411',
    cause: 'protocol',
    why:
      "SCGI and uwsgi need the body's length up front (CONTENT_LENGTH, S-7, U-6) and Apache does not buffer a chunked request body to learn it: mod_proxy_scgi and mod_proxy_uwsgi refuse it with Apache's own 411 Length Required page (AH01593 \"chunked Transfer-Encoding forbidden\"); gatewire never sees the request. nginx buffers the body and sends its length; mod_proxy_fcgi streams it (FastCGI needs no length).",
  },
  {
    requests: ['upload-chunked'],
    apps: APPS,
    ways: ['apache-scgi', 'apache-uwsgi'],
    field: /^(body|field .*)$/,
    baseline: ANY,
    gatewire: ANY,
    cause: 'protocol',
    why: "The same: Apache's 411 page (text/html) in place of the app's JSON answer.",
  },
  // --- gatewire's documented behaviour -------------------------------------------------------
  {
    requests: ['throw', 'reject'],
    apps: ['plain'],
    ways: WAYS,
    field: 'status',
    baseline: 'no answer in 2 s',
    gatewire: '500',
    cause: 'gatewire (documented)',
    why:
      "node:http has no error handling: a plain handler's thrown error or rejected promise ends the baseline's process (Node's default; baseline.mjs logs it instead, to keep serving), and the request is never answered. gatewire catches both and answers its own 500 (`Internal Server Error`, the request id, no stack; README \"The contract\", R-4). The frameworks catch them themselves, the same on both sides.",
  },
  {
    requests: ['throw', 'reject'],
    apps: ['plain'],
    ways: WAYS,
    field: /^(body|field .*)$/,
    baseline: undefined,
    gatewire: ANY,
    cause: 'gatewire (documented)',
    why: "The same: the fields and body of gatewire's 500, where the baseline sent nothing.",
  },
  {
    requests: ['redirect'],
    apps: ['hono'],
    ways: ['http', 'nginx-fastcgi', 'nginx-scgi', 'nginx-uwsgi'],
    field: 'field content-length',
    baseline: undefined,
    gatewire: '0',
    cause: 'gatewire (documented)',
    why:
      "c.redirect() answers a Response without a body: @hono/node-server sends it chunked (an empty chunked body), gatewire's fetch adapter with Content-Length: 0, a body known to be empty (R-15). Both are a 302 with the same Location and no body; nginx passes each framing on.",
  },
  {
    requests: ['redirect'],
    apps: ['hono'],
    ways: ['http', 'nginx-fastcgi', 'nginx-scgi', 'nginx-uwsgi'],
    field: 'field transfer-encoding',
    baseline: 'chunked',
    gatewire: undefined,
    cause: 'gatewire (documented)',
    why: 'The same 302, framed with Content-Length: 0 instead of an empty chunked body (R-15).',
  },
];

const fits = (want: Want, got: string | undefined): boolean => {
  if (want === ANY) return true;
  if (want === undefined) return got === undefined;
  return got !== undefined && (typeof want === 'string' ? got === want : want.test(got));
};

function allowedFor(req: Req, app: AppName, way: Way, d: Difference): Allowed | undefined {
  return ALLOWED.find(
    (a) =>
      a.requests.includes(req.id) &&
      a.apps.includes(app) &&
      a.ways.includes(way) &&
      (typeof a.field === 'string' ? a.field === d.field : a.field.test(d.field)) &&
      fits(a.baseline, d.baseline) &&
      fits(a.gatewire, d.gatewire),
  );
}

// ---------------------------------------------------------------------------------------

interface Cell {
  req: Req;
  app: AppName;
  way: Way;
  diffs: Array<Difference & { allowed: Allowed | undefined }>;
  /** The stream and SSE verdicts of both sides, for the table. */
  base?: View;
  gw?: View;
}

const cells: Cell[] = [];
const used = new Set<Allowed>();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs `jobs` with at most `limit` at a time. */
async function pool<T>(jobs: Array<() => Promise<T>>, limit: number): Promise<T[]> {
  const out: T[] = new Array<T>(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, jobs.length) }, async () => {
      while (next < jobs.length) {
        const i = next++;
        out[i] = await (jobs[i] as () => Promise<T>)();
      }
    }),
  );
  return out;
}

interface SseStats {
  found: boolean;
  writes?: number[];
  stoppedAt?: number | null;
}

/** How long an SSE app may take to stop after its client left, before it counts as never. */
const SSE_STOP_WAIT_MS = 3000;

describeWithPeers('app differential: six apps on their own servers and under gatewire, directly, behind nginx and behind Apache', ['nginx', 'apache2'], () => {
  let dir: TmpDir | undefined;
  const procs: PeerProcess[] = [];
  let nginx: WebServer | undefined;
  let apache: WebServer | undefined;
  let sockDir = '';
  const startedAt = Date.now();

  const sock = (app: AppName, what: string): string => path.join(sockDir, `${app}-${what}.sock`);

  function baselineTarget(app: AppName, front: Front): Target {
    if (front === 'direct') return { socketPath: sock(app, 'base'), host: 'localhost' };
    const server = front === 'nginx' ? nginx : apache;
    return { port: server?.port as number, host: `${app}.base.test` };
  }

  function gatewireTarget(app: AppName, way: Way): Target {
    if (way === 'http') return { socketPath: sock(app, 'http'), host: 'localhost' };
    const [server, via] = way.split('-') as ['nginx' | 'apache', string];
    return { port: (server === 'nginx' ? nginx : apache)?.port as number, host: `${app}.${via}.test` };
  }

  beforeAll(async () => {
    await ensureBuilt();
    dir = tmpDir('gw-appdiff');
    fs.chmodSync(dir.path, 0o755); // Apache's children (www-data) reach the sockets in it
    sockDir = dir.path;
    const env = childEnv({ NODE_ENV: 'production' });
    const serve = (app: AppName, listeners: string[]): Promise<PeerProcess> =>
      startProcess(process.execPath, [CLI, 'serve', path.join(FIXTURES, `${app}.mjs`), ...listeners, '--workers', '0', '--socket-mode', '666', '--shutdown-timeout', '1s'], {
        name: `gatewire ${app}`,
        inheritEnv: false,
        env,
        cwd: ROOT,
        readySocket: listeners[listeners.length - 1]?.replace(/^unix:/, '') as string,
        readyTimeoutMs: 60_000,
      });
    const starts: Array<Promise<PeerProcess>> = [];
    for (const app of APPS) {
      starts.push(serve(app, ['--http', `unix:${sock(app, 'http')}`, '--fastcgi', `unix:${sock(app, 'fastcgi')}`, '--scgi', `unix:${sock(app, 'scgi')}`, '--uwsgi', `unix:${sock(app, 'uwsgi')}`]));
      starts.push(
        app === 'environ'
          ? serve(app, ['--http', `unix:${sock(app, 'base')}`])
          : startProcess(process.execPath, [path.join(FIXTURES, 'baseline.mjs'), path.join(FIXTURES, `${app}.mjs`), sock(app, 'base')], {
              name: `baseline ${app}`,
              inheritEnv: false,
              env,
              cwd: ROOT,
              readyLine: 'baseline listening',
              readyTimeoutMs: 60_000,
            }),
      );
    }
    starts.push(
      startNginx({ template: 'differential', vars: { SOCK_DIR: sockDir } }).then((s) => {
        nginx = s;
        return s.process;
      }),
      startApache({ template: 'differential', vars: { SOCK_DIR: sockDir } }).then((s) => {
        apache = s;
        return s.process;
      }),
    );
    const settled = await Promise.allSettled(starts);
    for (const s of settled) if (s.status === 'fulfilled') procs.push(s.value);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }, 90_000);

  afterAll(async () => {
    await Promise.all([nginx?.stop(), apache?.stop()]);
    await Promise.all(procs.map((p) => p.stop()));
    dir?.cleanup();
  }, 30_000);

  /** One request's answer as compared, on one target (the conditional and SSE procedures included). */
  async function observe(target: Target, req: Req, app: AppName, way: string): Promise<View> {
    if (req.kind === 'conditional') {
      const first = await send(target, { ...req, kind: 'plain' });
      return viewOf(await send(target, req, req.validators?.(first) ?? {}), req);
    }
    if (req.kind !== 'sse') return viewOf(await send(target, req), req);
    const id = `${app}-${way}-${randomBytes(4).toString('hex')}`;
    const a = await send(target, { ...req, path: `${req.path}?id=${id}` }, {}, { hangUpAfterEvents: 3 });
    const v = viewOf(a, req);
    if (a.hungUpAt === undefined) {
      v.set('sse', `the client got no 3 events (${a.error ?? 'the stream ended'})`);
      return v;
    }
    const stats = async (): Promise<SseStats> => {
      const r = await send(target, { id: 'sse-stats', what: '', method: 'GET', path: `/sse-stats?id=${id}`, kind: 'plain' });
      return r.status === 200 ? (JSON.parse(r.body.toString('utf8')) as SseStats) : { found: false };
    };
    const deadline = Date.now() + SSE_STOP_WAIT_MS;
    let s = await stats();
    while ((s.stoppedAt ?? null) === null && Date.now() < deadline) {
      await sleep(100);
      s = await stats();
    }
    await sleep(300); // written after its stop: none
    s = await stats();
    const hungUpAt = a.hungUpAt;
    const after = (s.writes ?? []).filter((t) => t > hungUpAt).length;
    const lateWrites = (s.writes ?? []).filter((t) => s.stoppedAt !== null && s.stoppedAt !== undefined && t > s.stoppedAt).length;
    if (!s.found) v.set('sse', 'no stats');
    else if (s.stoppedAt === null || s.stoppedAt === undefined) v.set('sse', `never stopped (${after} events after the hang-up in ${SSE_STOP_WAIT_MS / 1000} s)`);
    else if (lateWrites > 0) v.set('sse', `wrote ${lateWrites} events after its stop`);
    else v.set('sse', after <= 1 ? 'stops within one event' : `stops after ${after} more events`);
    // Not compared (it varies with the scheduling): how long after the hang-up the app stopped.
    if (typeof s.stoppedAt === 'number') v.set(`${NOT_COMPARED}sse stop ms`, String(s.stoppedAt - hungUpAt));
    return v;
  }

  test('ALLOWED names only requests, apps and ways that exist', () => {
    const ids = new Set(REQUESTS.map((r) => r.id));
    expect(ALLOWED.flatMap((a) => a.requests.filter((id) => !ids.has(id)))).toEqual([]);
    expect(ALLOWED.filter((a) => a.apps.length === 0 || a.ways.length === 0 || a.requests.length === 0 || a.why.length < 20)).toEqual([]);
    // docs/differential.md explains every entry under its number.
    const doc = fs.readFileSync(path.join(ROOT, 'docs', 'differential.md'), 'utf8');
    expect(ALLOWED.map((_a, i) => `A${i + 1}`).filter((label) => !new RegExp(`\\*\\*(A\\d+, )*${label}[.,]`).test(doc))).toEqual([]);
  });

  test.each(REQUESTS.map((r) => [r.id, r.what, r] as const))(
    '%s (%s): every app answers as its baseline on every way, but for ALLOWED',
    (_id, _what, req) =>
      withPeerLogs(async () => {
        const jobs: Array<() => Promise<void>> = [];
        const base = new Map<string, View>();
        const gw = new Map<string, View>();
        for (const app of APPS) {
          for (const front of ['direct', 'nginx', 'apache'] as const) jobs.push(async () => void base.set(`${app} ${front}`, await observe(baselineTarget(app, front), req, app, `base-${front}`)));
          for (const way of WAYS) jobs.push(async () => void gw.set(`${app} ${way}`, await observe(gatewireTarget(app, way), req, app, way)));
        }
        await pool(jobs, 12);
        const problems: string[] = [];
        // A baseline a web server could not reach is no baseline.
        for (const [key, v] of base) if (/^50[234]$/.test(v.get('status') ?? '')) problems.push(`baseline ${key}: status ${v.get('status')}`);
        for (const app of APPS) {
          for (const way of WAYS) {
            const diffs = differences(base.get(`${app} ${FRONT_OF[way]}`) as View, gw.get(`${app} ${way}`) as View).map((d) => ({ ...d, allowed: allowedFor(req, app, way, d) }));
            cells.push({ req, app, way, diffs, base: base.get(`${app} ${FRONT_OF[way]}`) as View, gw: gw.get(`${app} ${way}`) as View });
            for (const d of diffs) {
              if (d.allowed !== undefined) used.add(d.allowed);
              if (d.allowed?.bug !== undefined) problems.push(`${app} ${way}: ${d.field}: baseline ${d.baseline ?? '(absent)'}, gatewire ${d.gatewire ?? '(absent)'}: a gatewire bug (A${ALLOWED.indexOf(d.allowed) + 1}); fix: ${d.allowed.bug}`);
              else if (d.allowed === undefined) problems.push(`${app} ${way}: ${d.field}: baseline ${d.baseline ?? '(absent)'}, gatewire ${d.gatewire ?? '(absent)'}`);
            }
          }
        }
        expect(problems).toEqual([]);
      })(),
    60_000,
  );

  test('WebSocket on --http: the same hello and echoes as on the baseline server (H-15)', async () => {
    const transcript = (socketPath: string): Promise<string> =>
      new Promise((resolve) => {
        const got: string[] = [];
        const ws = new WebSocket(`ws+unix:${socketPath}:/ws?room=1`);
        const timer = setTimeout(() => {
          ws.terminate();
          resolve(`timeout after ${JSON.stringify(got)}`);
        }, 5000);
        ws.on('message', (data: WebSocket.RawData) => {
          got.push((data as Buffer).toString('utf8'));
          if (got.length === 1) {
            ws.send('one');
            ws.send('two \u00e9');
          }
          if (got.length === 3) {
            clearTimeout(timer);
            ws.close();
            resolve(JSON.stringify(got));
          }
        });
        ws.on('error', (err) => {
          clearTimeout(timer);
          resolve(`error ${err.message} after ${JSON.stringify(got)}`);
        });
      });
    const problems: string[] = [];
    const wsReq: Req = { id: 'websocket', what: 'WebSocket echo', method: 'GET', path: '/ws', kind: 'plain' };
    for (const app of APPS) {
      const [b, g] = await Promise.all([transcript(sock(app, 'base')), transcript(sock(app, 'http'))]);
      const diffs = b === g ? [] : [{ field: 'websocket', baseline: b, gatewire: g, allowed: undefined }];
      cells.push({ req: wsReq, app, way: 'http', diffs });
      if (b !== '["hello /ws?room=1","echo:one","echo:two é"]') problems.push(`${app} baseline: ${b}`);
      if (b !== g) problems.push(`${app}: baseline ${b}, gatewire ${g}`);
    }
    expect(problems).toEqual([]);
  });

  test('every ALLOWED difference still occurs; the table', () => {
    const table = renderTable();
    const file = path.join(os.tmpdir(), 'gatewire-app-differential.md'); // overwritten by every run
    fs.writeFileSync(file, table);
    console.log(`app differential (${((Date.now() - startedAt) / 1000).toFixed(1)} s), also in ${file}:\n${table}`);
    expect(ALLOWED.filter((a) => !used.has(a)).map((a) => `${String(a.field)} ${a.requests.join(',')}: ${a.why.slice(0, 60)}`)).toEqual([]);
  });
});

/** The table of docs/differential.md: app × way → same, or the differences (A1, A2: the ALLOWED entries). */
function renderTable(): string {
  const label = (a: Allowed | undefined): string => (a === undefined ? 'UNLISTED' : `A${ALLOWED.indexOf(a) + 1}${a.bug === undefined ? '' : ' (bug)'}`);
  const lines: string[] = [`| app | ${WAYS.join(' | ')} |`, `|---|${WAYS.map(() => '---').join('|')}|`];
  for (const app of APPS) {
    const row = WAYS.map((way) => {
      // Per entry, the requests it explains here (an unlisted difference names its field).
      const byLabel = new Map<string, Set<string>>();
      for (const c of cells.filter((x) => x.app === app && x.way === way)) {
        for (const d of c.diffs) {
          const key = d.allowed === undefined ? `UNLISTED ${d.field}` : label(d.allowed);
          byLabel.set(key, (byLabel.get(key) ?? new Set()).add(c.req.id));
        }
      }
      if (byLabel.size === 0) return 'same';
      return [...byLabel].map(([key, ids]) => `${key}: ${ids.size <= 3 ? [...ids].join(', ') : `${ids.size} requests`}`).join('; ');
    });
    lines.push(`| ${app} | ${row.join(' | ')} |`);
  }
  for (const [id, field] of [['stream', 'stream'], ['sse', 'sse']] as const) {
    lines.push('', `${id}: baseline / gatewire`, '', `| app | ${WAYS.join(' | ')} |`, `|---|${WAYS.map(() => '---').join('|')}|`);
    for (const app of APPS) {
      const row = WAYS.map((way) => {
        const c = cells.find((x) => x.req.id === id && x.app === app && x.way === way);
        const show = (v: View | undefined): string => `${v?.get(field) ?? '?'}${field === 'sse' ? ` (${v?.get(`${NOT_COMPARED}sse stop ms`) ?? '?'} ms)` : ''}`;
        return `${show(c?.base)} / ${show(c?.gw)}`;
      });
      lines.push(`| ${app} | ${row.join(' | ')} |`);
    }
  }
  lines.push('', 'Differences in detail:', '');
  for (const c of cells) for (const d of c.diffs) lines.push(`- ${label(d.allowed)} ${c.app} ${c.way} ${c.req.id}: ${d.field}: baseline ${d.baseline ?? '(absent)'}; gatewire ${d.gatewire ?? '(absent)'}`);
  return `${lines.join('\n')}\n`;
}
