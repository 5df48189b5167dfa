/**
 * The FastCGI upstream client (src/upstream/fastcgi.ts), end to end:
 *
 *   node:http or raw client → gatewire --http (the upstream App) → gatewire --fastcgi / a fake
 *
 * The fake FastCGI server (test/helpers/fake-fastcgi.ts) records every record it receives per
 * connection, answers GET_VALUES as a test configures it (0 as php-fpm, 1, or never) and answers
 * each request as the test scripts it. Timeouts are a few hundred ms where a test needs one;
 * nothing asserts on timing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import type { App, Environ, Service } from '../src/app.js';
import type { Logger } from '../src/logger.js';
import type { Gateway } from '../src/server.js';
import { FASTCGI_DEFAULTS, fastcgiUpstream, type FastcgiUpstreamOptions, type UpstreamAddress, type UpstreamApp, type UpstreamTarget } from '../src/upstream/index.js';
import { Flag, ProtocolStatus, RecordType } from '../protocols/fastcgi/constants.js';
import { encodeEndRequest, encodeRecord, encodeStdout } from '../protocols/fastcgi/encoder.js';
import { httpRequest, type MatrixRequest, type MatrixResult } from './helpers/fronts.js';
import { startGateway, waitFor } from './helpers/scgi-client.js';
import { freePort } from './helpers/net.js';
import { echoAnswer, FakeFastcgi, type FakeEcho, type FakeOptions, type FakeRequest, sha256 } from './helpers/fake-fastcgi.js';

jest.setTimeout(30_000);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const tcp = (port: number): UpstreamAddress => ({ kind: 'tcp', host: '127.0.0.1', port });
const target = (address: UpstreamAddress): UpstreamTarget => ({ protocol: 'fastcgi', address });

// ---------------------------------------------------------------------------------------
// Logs with their request id
// ---------------------------------------------------------------------------------------

interface LogLine {
  level: string;
  message: string;
  requestId: unknown;
}

interface Captured extends Logger {
  lines: LogLine[];
  matching(re: RegExp, level?: string): LogLine[];
}

function capture(): Captured {
  const lines: LogLine[] = [];
  const at =
    (level: string) =>
    (message: string, meta?: Record<string, unknown>): void => {
      lines.push({ level, message, requestId: meta?.request_id });
    };
  return {
    lines,
    matching: (re, level) => lines.filter((l) => (level === undefined || l.level === level) && re.test(l.message)),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    debugEnabled: false,
    access: null,
    close: () => Promise.resolve(),
  };
}

/** The request id of one of gatewire's own replies (src/reply.ts). */
function replyId(res: MatrixResult): string {
  const m = /request id: (\S+)/.exec(res.body.toString('latin1'));
  if (m === null) throw new Error(`not a gatewire reply: ${JSON.stringify(res.body.toString('latin1').slice(0, 200))}`);
  return m[1] as string;
}

// ---------------------------------------------------------------------------------------
// Servers: everything a test starts is closed after it
// ---------------------------------------------------------------------------------------

const perTest: { gateways: Gateway[]; fakes: FakeFastcgi[]; apps: UpstreamApp[]; other: Array<() => void> } = { gateways: [], fakes: [], apps: [], other: [] };
const shared: Gateway[] = [];

async function closeAll(list: typeof perTest): Promise<void> {
  for (const f of list.other.splice(0)) f();
  await Promise.all(list.gateways.splice(0).map((g) => g.close(200)));
  await Promise.all(list.fakes.splice(0).map((f) => f.close()));
  await Promise.all(list.apps.splice(0).map((a) => a.close()));
}
afterEach(() => closeAll(perTest));
afterAll(async () => {
  await closeAll(perTest);
  await Promise.all(shared.map((g) => g.close(500)));
});

interface Front {
  port: number;
  /** The environ of every request the front gave the upstream App. */
  environs: Environ[];
  send(req: MatrixRequest): Promise<MatrixResult>;
}

/** gatewire --http in front of `app`, recording each environ. */
async function httpFront(app: App, flags: Record<string, string | string[]> = {}): Promise<Front> {
  const environs: Environ[] = [];
  const recording: App = (environ, sr) => {
    environs.push(environ);
    return app(environ, sr);
  };
  const { gateway, ports } = await startGateway({ app: recording, interface: 'environ' }, { http: ['127.0.0.1:0'], ...flags });
  perTest.gateways.push(gateway);
  const port = ports[0] as number;
  return { port, environs, send: (req) => httpRequest(port, req) };
}

async function fake(options: FakeOptions = {}): Promise<FakeFastcgi> {
  const f = await FakeFastcgi.start(options);
  perTest.fakes.push(f);
  return f;
}

function upstream(targets: UpstreamTarget | UpstreamTarget[], options: FastcgiUpstreamOptions = {}): UpstreamApp {
  const app = fastcgiUpstream(targets, options);
  perTest.apps.push(app);
  return app;
}

interface Rig extends Front {
  fake: FakeFastcgi;
  log: Captured;
}

/** A fake upstream, the client in front of it (short timeouts, a capturing logger) and an HTTP front. */
async function rig(fakeOptions: FakeOptions = {}, options: FastcgiUpstreamOptions = {}, flags: Record<string, string | string[]> = {}): Promise<Rig> {
  const f = await fake(fakeOptions);
  const log = capture();
  const app = upstream(target(tcp(f.port)), { readTimeout: 2000, connectTimeout: 1000, logger: log, ...options });
  const front = await httpFront(app, flags);
  return { ...front, fake: f, log };
}

function echoOf(res: MatrixResult): FakeEcho {
  expect({ status: res.status, truncated: res.truncated }).toEqual({ status: 200, truncated: false });
  return JSON.parse(res.body.toString('latin1')) as FakeEcho;
}

/** Answers after `ms` (a slow script). */
const slowly =
  (ms: number) =>
  (req: FakeRequest): void => {
    setTimeout(() => echoAnswer(req), ms);
  };

/** The probe connection was answered and closed by the client: the pool knows what the fake said. */
async function probed(f: FakeFastcgi): Promise<void> {
  await waitFor(() => f.probes.length === 1 && f.probes[0]!.closed, 'the GET_VALUES probe to be answered and closed');
}

type RawResponse = { head: string; body: Buffer };

/**
 * A raw keep-alive client: `writes` in order (a function is awaited in between, with the
 * responses read so far), until `responses` responses have come.
 */
function rawExchange(port: number, writes: Array<Buffer | string | ((got: RawResponse[]) => Promise<void>)>, responses: number): Promise<RawResponse[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    const out: RawResponse[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`rawExchange: ${out.length} of ${responses} responses after 10 s: ${JSON.stringify(data.toString('latin1').slice(0, 300))}`));
    }, 10_000);
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      for (;;) {
        const end = data.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = data.subarray(0, end).toString('latin1');
        let body: Buffer;
        let next: number;
        if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
          const pieces: Buffer[] = [];
          let at = end + 4;
          for (;;) {
            const eol = data.indexOf('\r\n', at);
            if (eol === -1) return;
            const size = parseInt(data.subarray(at, eol).toString('latin1'), 16);
            if (data.length < eol + 2 + size + 2) return;
            pieces.push(data.subarray(eol + 2, eol + 2 + size));
            at = eol + 2 + size + 2;
            if (size === 0) break;
          }
          body = Buffer.concat(pieces);
          next = at;
        } else {
          const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? '0');
          if (data.length < end + 4 + length) return;
          body = data.subarray(end + 4, end + 4 + length);
          next = end + 4 + length;
        }
        out.push({ head, body });
        data = data.subarray(next);
        if (out.length === responses) {
          clearTimeout(timer);
          socket.destroy();
          resolve(out);
          return;
        }
      }
    });
    void (async () => {
      for (const w of writes) {
        if (typeof w === 'function') await w(out);
        else socket.write(w);
      }
    })().catch(reject);
  });
}

// ---------------------------------------------------------------------------------------
// gatewire's own FastCGI front as the upstream
// ---------------------------------------------------------------------------------------

const echoApp: App = async (environ, sr) => {
  const chunks: Buffer[] = [];
  for await (const c of environ['gatewire.input'] as AsyncIterable<Buffer>) chunks.push(c);
  const body = Buffer.concat(chunks);
  if (environ.PATH_INFO === '/slow') await sleep(100);
  const vars: Record<string, string> = {};
  for (const k of Object.keys(environ)) if (!k.includes('.') && typeof environ[k] === 'string') vars[k] = environ[k] as string;
  sr('200 OK', [['Content-Type', 'application/json']]);
  return [JSON.stringify({ vars, bytes: body.length, sha256: sha256(body) })];
};
const echoService: Service = { app: echoApp, interface: 'environ' };

interface OwnEcho {
  vars: Record<string, string>;
  bytes: number;
  sha256: string;
}

describe("gatewire's own --fastcgi front as the upstream", () => {
  let ownPort: number;
  /** Connections the backend's FastCGI listener accepted. */
  const accepted: net.Socket[] = [];
  beforeAll(async () => {
    const { gateway, ports } = await startGateway(echoService, { fastcgi: ['127.0.0.1:0'] });
    shared.push(gateway);
    ownPort = ports[0] as number;
    (gateway.listeners[0] as { server: net.Server }).server.on('connection', (socket: net.Socket) => accepted.push(socket));
  });
  const own = (): UpstreamTarget => target(tcp(ownPort));
  const json = (res: MatrixResult): OwnEcho => {
    expect({ status: res.status, truncated: res.truncated }).toEqual({ status: 200, truncated: false });
    return JSON.parse(res.body.toString('utf8')) as OwnEcho;
  };

  test('UP-5 UP-24: a GET and a 1 MiB POST arrive with their CGI variables and the whole body', async () => {
    const front = await httpFront(upstream(own()));
    const get = json(await front.send({ path: '/some/where?x=1', headers: { 'X-Custom': 'hello', Proxy: 'http://evil.test/' } })).vars;
    expect(get).toMatchObject({ REQUEST_METHOD: 'GET', PATH_INFO: '/some/where', QUERY_STRING: 'x=1', HTTP_X_CUSTOM: 'hello', REMOTE_ADDR: '127.0.0.1' });
    expect(get.HTTP_PROXY).toBeUndefined();
    const body = randomBytes(1024 * 1024);
    const post = json(await front.send({ method: 'POST', path: '/upload', body }));
    expect({ bytes: post.bytes, sha256: post.sha256, length: post.vars.CONTENT_LENGTH }).toEqual({ bytes: body.length, sha256: sha256(body), length: String(body.length) });
  });

  test('UP-7: it says FCGI_MPXS_CONNS=1, so after the probe concurrent requests share a connection, every answer right', async () => {
    const start = accepted.length;
    const front = await httpFront(upstream(own()));
    json(await front.send({ path: '/warm' }));
    // The probe and the warm-up's connection; the probe's is closed once its answer is in.
    const mine = (): net.Socket[] => accepted.slice(start);
    await waitFor(() => mine().length === 2 && mine().filter((c) => c.destroyed).length === 1, 'the GET_VALUES probe to be answered');
    const before = accepted.length;
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => front.send({ path: '/slow', headers: { 'X-N': String(i) } })));
    results.forEach((res, i) => expect(json(res).vars.HTTP_X_N).toBe(String(i)));
    // The warm-up's connection carries all eight at once: no new connection.
    expect(accepted.length - before).toBe(0);
  });

  test('UP-24 UP-38: arbitrary --upstream-param sets and request headers round trip (property)', async () => {
    let current: UpstreamApp | undefined;
    const front = await httpFront((environ, sr) => (current as UpstreamApp)(environ, sr));
    // Any byte but NUL, which gatewire's front refuses in a CGI value (F-23).
    const latin1 = fc.string({ unit: fc.integer({ min: 1, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 40 });
    const visible = fc.string({ unit: fc.oneof(fc.integer({ min: 0x21, max: 0x7e }), fc.integer({ min: 0xa0, max: 0xff })).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 40 });
    const suffix = fc.stringMatching(/^[A-Z0-9]{1,12}$/);
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.tuple(suffix, latin1), { selector: (p) => p[0], maxLength: 8 }), fc.uniqueArray(fc.tuple(suffix, visible), { selector: (p) => p[0], maxLength: 8 }), async (params, headers) => {
        current = fastcgiUpstream(own(), { params: params.map(([n, v]) => [`X_P_${n}`, v]) });
        try {
          const res = await front.send({ path: '/prop', headers: Object.fromEntries(headers.map(([n, v]) => [`X-H-${n}`, v])) });
          const vars = json(res).vars;
          for (const [n, v] of params) expect(vars[`X_P_${n}`]).toBe(v);
          for (const [n, v] of headers) expect(vars[`HTTP_X_H_${n}`]).toBe(v);
        } finally {
          await current.close();
        }
      }),
      { numRuns: 25 },
    );
  });
});

// ---------------------------------------------------------------------------------------
// What goes out: PARAMS (UP-24, UP-38) and the body (UP-3..UP-6)
// ---------------------------------------------------------------------------------------

describe('what the upstream receives', () => {
  test('UP-24: the CGI variables of the front arrive as PARAMS (with --mount), no gatewire.* keys, no HTTP_PROXY', async () => {
    const r = await rig({}, {}, { mount: '/app' });
    const echo = echoOf(await r.send({ path: '/app/some/where%20else?x=1&y=%C3%A9', headers: { Host: 'app.example:8080', 'X-Custom': 'hello', Cookie: 'k=v', Proxy: 'http://evil.test/' } }));
    const req = r.fake.requests[0] as FakeRequest;
    const params = echo.params;
    expect(params).toMatchObject({
      REQUEST_METHOD: 'GET',
      SCRIPT_NAME: '/app',
      PATH_INFO: '/some/where else',
      QUERY_STRING: 'x=1&y=%C3%A9',
      REMOTE_ADDR: '127.0.0.1',
      SERVER_NAME: 'app.example',
      SERVER_PORT: String(r.port),
      SERVER_PROTOCOL: 'HTTP/1.1',
      HTTP_HOST: 'app.example:8080',
      HTTP_X_CUSTOM: 'hello',
      HTTP_COOKIE: 'k=v',
      CONTENT_LENGTH: '0',
    });
    // Exactly the front's CGI variables, in its order, CONTENT_LENGTH last.
    const environ = r.environs[0] as Environ;
    const expected = Object.keys(environ).filter((k) => /^[A-Z_][A-Z0-9_]*$/i.test(k) && typeof environ[k] === 'string' && !['HTTP_PROXY', 'HTTP_CONNECTION', 'CONTENT_LENGTH'].includes(k));
    expect(req.params.map(([n]) => n)).toEqual([...expected, 'CONTENT_LENGTH']);
    for (const k of expected) expect({ k, v: params[k] }).toEqual({ k, v: environ[k] });
    expect(params.REMOTE_PORT).toMatch(/^\d+$/);
    expect(Object.keys(params).filter((k) => k.includes('.') || k === 'HTTP_PROXY')).toEqual([]);
  });

  test('UP-24: `params` (--upstream-param) replaces a variable of the front and adds new ones', async () => {
    const r = await rig({}, { params: [['SCRIPT_FILENAME', '/srv/index.php'], ['SERVER_NAME', 'forced.example'], ['PHP_VALUE', 'error_log=/tmp/x']] });
    const echo = echoOf(await r.send({ path: '/x', headers: { Host: 'app.example' } }));
    expect({ filename: echo.params.SCRIPT_FILENAME, name: echo.params.SERVER_NAME, php: echo.params.PHP_VALUE }).toEqual({ filename: '/srv/index.php', name: 'forced.example', php: 'error_log=/tmp/x' });
    // Replaced, not sent twice.
    expect((r.fake.requests[0] as FakeRequest).params.filter(([n]) => n === 'SERVER_NAME')).toHaveLength(1);
  });

  test('UP-38: latin1 bytes round trip: a header byte 0xE9 arrives as that byte, response bytes come back as sent', async () => {
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const r = await rig({ onRequest: (req) => req.respond('Content-Type: application/octet-stream\r\nX-Back: caf\xe9 \xff', bytes) }, { params: [['X_PARAM', 'na\xefve\xff']] });
    const res = await r.send({ path: '/latin1', headers: { 'X-Latin': 'caf\u00e9' } });
    const req = r.fake.requests[0] as FakeRequest;
    expect(Buffer.from(req.param('HTTP_X_LATIN') as string, 'latin1')).toEqual(Buffer.from([0x63, 0x61, 0x66, 0xe9]));
    expect(Buffer.from(req.param('X_PARAM') as string, 'latin1')).toEqual(Buffer.from([0x6e, 0x61, 0xef, 0x76, 0x65, 0xff]));
    expect({ status: res.status, back: res.headers['x-back'], body: res.body.equals(bytes) }).toEqual({ status: 200, back: ['caf\u00e9 \u00ff'], body: true });
  });

  test('UP-3 UP-5: a 1 MiB POST goes out as STDIN records of at most 65535 bytes, then the empty STDIN record; the hash matches', async () => {
    const r = await rig();
    const body = randomBytes(1024 * 1024);
    const echo = echoOf(await r.send({ method: 'POST', path: '/upload', body }));
    expect({ bytes: echo.bytes, sha256: echo.sha256, length: echo.params.CONTENT_LENGTH }).toEqual({ bytes: body.length, sha256: sha256(body), length: String(body.length) });
    const conn = r.fake.requestConns[0]!;
    const stdin = conn.ofType(RecordType.Stdin, 1);
    expect(stdin.length).toBeGreaterThan(16); // streamed in records, not one
    expect(stdin.every((rec) => rec.content.length <= 0xffff)).toBe(true);
    expect(stdin.map((rec) => rec.content.length).filter((n) => n === 0)).toHaveLength(1);
    expect((stdin[stdin.length - 1] as { content: Buffer }).content.length).toBe(0);
    const params = conn.ofType(RecordType.Params, 1);
    expect((params[params.length - 1] as { content: Buffer }).content.length).toBe(0);
    // Record order: BEGIN_REQUEST, PARAMS..., STDIN...
    const types = conn.records.map((rec) => rec.type);
    expect(types[0]).toBe(RecordType.BeginRequest);
    expect(types.lastIndexOf(RecordType.Params)).toBeLessThan(types.indexOf(RecordType.Stdin));
  });

  test('UP-3: a GET still ends its STDIN with the empty record', async () => {
    const r = await rig();
    echoOf(await r.send({ path: '/' }));
    expect(r.fake.requestConns[0]!.ofType(RecordType.Stdin, 1).map((rec) => rec.content.length)).toEqual([0]);
  });

  test('UP-4: a chunked body (unknown length) is buffered and sent with its CONTENT_LENGTH', async () => {
    const r = await rig();
    const body = randomBytes(100_000);
    const echo = echoOf(await r.send({ method: 'POST', path: '/chunked', body, chunked: true }));
    expect({ bytes: echo.bytes, sha256: echo.sha256, length: echo.params.CONTENT_LENGTH }).toEqual({ bytes: body.length, sha256: sha256(body), length: String(body.length) });
  });

  test('UP-4: a chunked body over maxBufferedBody is a 413 and never reaches the upstream', async () => {
    const r = await rig({}, { maxBufferedBody: 1000 });
    const res = await r.send({ method: 'POST', path: '/big', body: randomBytes(5000), chunked: true });
    expect(res.status).toBe(413);
    expect(r.fake.requests).toHaveLength(0);
    expect(r.log.matching(/413/, 'warn')).toHaveLength(1);
  });

  test('UP-6: an upstream that answers before reading the body still gets all of it', async () => {
    const size = 4 * 1024 * 1024;
    const r = await rig({
      // The head at the end of PARAMS, before any STDIN was read; the body once STDIN ended.
      onParams: (req) => req.stdout('Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n'),
      onRequest: (req) => {
        req.stdout(`got ${req.stdinBytes} ${sha256(req.stdin)}`);
        req.end();
      },
    });
    const body = randomBytes(size);
    const res = await r.send({ method: 'POST', path: '/', body });
    expect({ status: res.status, body: res.body.toString(), truncated: res.truncated }).toEqual({ status: 200, body: `got ${size} ${sha256(body)}`, truncated: false });
  });

  test('UP-6 UP-28: an upstream that ends the request before all of the body came: the rest never reaches a pooled connection', async () => {
    // END_REQUEST at the end of PARAMS. The client's body comes after it, in two parts.
    const r = await rig({ onParams: (req) => (req.param('REQUEST_METHOD') === 'POST' ? req.respond('Content-Type: text/plain', 'early') : undefined) });
    const rest = randomBytes(50_000);
    const [first, second] = await rawExchange(
      r.port,
      [
        'POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: 51000\r\n\r\n',
        randomBytes(1000),
        // The first response is whole only once gatewire had its END_REQUEST.
        (got) => waitFor(() => got.length === 1, 'the first response'),
        rest,
        'GET /next HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n',
      ],
      2,
    );
    expect(first!.body.toString()).toBe('early');
    expect(JSON.parse(second!.body.toString('latin1')).bytes).toBe(0);
    // What the client sent once it had the END_REQUEST never went out: at most the first 1000
    // bytes, on their way before it, come after it (the fake keeps them as strays), and the GET
    // went on a new connection with an empty body.
    const strays = r.fake.conns.flatMap((c) => c.strays.map((rec) => `${rec.type === RecordType.Stdin ? 'STDIN' : rec.type} ${rec.content.length}`));
    expect(strays.filter((x) => x !== 'STDIN 1000')).toEqual([]);
    expect(r.fake.requests.map((q) => [q.conn.index, q.stdinBytes])).toEqual([
      [r.fake.requestConns[0]!.index, 0],
      [r.fake.requestConns[1]!.index, 0],
    ]);
    await waitFor(() => r.fake.requestConns[0]!.closed, 'the first connection to be closed');
    expect(r.fake.requestConns[0]!.endedByClient).toBe(true);
  });

  test('UP-32: a 24 MiB answer to a slow client is streamed: the upstream is held up while the client does not read', async () => {
    // Loopback socket buffers (upstream → gatewire → client) hold some 8 MiB between them here:
    // a 4 MiB answer would fit in them whole, so it could not show who holds the rest.
    const size = 24 * 1024 * 1024;
    const payload = randomBytes(size);
    let written = 0;
    let waits = 0;
    let waiting = false;
    const r = await rig({
      onRequest: (req) => {
        void (async () => {
          req.stdout(`Content-Type: application/octet-stream\r\nContent-Length: ${size}\r\n\r\n`);
          for (let at = 0; at < size; at += 65536) {
            const ok = req.stdout(payload.subarray(at, at + 65536));
            written = at + 65536;
            if (!ok) {
              waits++;
              waiting = true;
              await new Promise((resolve) => req.conn.socket.once('drain', resolve));
              waiting = false;
            }
          }
          req.end();
        })();
      },
    });
    const socket = net.connect(r.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise<void>((resolve) => socket.on('end', resolve));
    socket.write('GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    socket.pause(); // the client reads nothing for now
    await waitFor(() => waits > 0, 'the fake upstream to meet backpressure');
    // A client that does not read holds the upstream up: gatewire stopped reading from it, so
    // its writes wait for a drain that does not come, with most of the answer not yet written.
    // (The socket buffers may still grow a little first: wait until 100 ms pass without a write.)
    let seen = -1;
    for (let i = 0; i < 20 && written !== seen; i++) {
      seen = written;
      await sleep(100);
    }
    const held = { waiting, written };
    socket.resume();
    await ended;
    expect(held.waiting).toBe(true);
    expect(held.written).toBeLessThan(size);
    const all = Buffer.concat(chunks);
    const bodyAt = all.indexOf('\r\n\r\n') + 4;
    expect(all.subarray(0, 12).toString()).toBe('HTTP/1.1 200');
    expect({ length: all.length - bodyAt, sha256: sha256(all.subarray(bodyAt)) }).toEqual({ length: size, sha256: sha256(payload) });
  });
});

// ---------------------------------------------------------------------------------------
// The pool (UP-28), multiplexing (UP-7), closes (UP-29) and the retry (UP-30)
// ---------------------------------------------------------------------------------------

describe('the pool', () => {
  test('UP-28: sequential requests reuse one connection, FCGI_KEEP_CONN in every BEGIN_REQUEST, a streamed answer included', async () => {
    // maxConnections 1: a request that comes before the previous END_REQUEST waits for it.
    const r = await rig({
      onRequest: (req) => {
        if (req.param('PATH_INFO') !== '/streamed') return echoAnswer(req);
        // Head, then the body in two pieces (the second completes its Content-Length), and
        // END_REQUEST only after the client has it all: the close() of the finished body
        // must not give up the connection.
        req.stdout('Content-Type: text/plain\r\nContent-Length: 10\r\n\r\n');
        setTimeout(() => req.stdout('01234'), 20);
        setTimeout(() => req.stdout('56789'), 40);
        setTimeout(() => req.end(), 60);
      },
    }, { maxConnections: 1 });
    for (const p of ['/a', '/streamed', '/b', '/streamed', '/c']) {
      const res = await r.send({ path: p });
      expect({ p, status: res.status, truncated: res.truncated }).toEqual({ p, status: 200, truncated: false });
      if (p === '/streamed') expect(res.body.toString()).toBe('0123456789');
    }
    expect(r.fake.requestConns).toHaveLength(1);
    const conn = r.fake.requestConns[0]!;
    expect(conn.requests.map((q) => ({ id: q.id, keepConn: q.keepConn }))).toEqual(Array(5).fill({ id: 1, keepConn: true }));
    expect(conn.ofType(RecordType.AbortRequest)).toEqual([]);
    expect(r.log.lines).toEqual([]);
  });

  test('UP-28: maxConnections 2 with 6 concurrent slow requests: never more than 2 connections open, all 6 answered', async () => {
    const r = await rig({ onRequest: slowly(100) }, { maxConnections: 2 });
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => r.send({ path: `/n${i}` })));
    results.forEach((res, i) => expect(echoOf(res).params.PATH_INFO).toBe(`/n${i}`));
    expect(r.fake.peakRequestConns).toBeLessThanOrEqual(2);
    expect(r.fake.requests).toHaveLength(6);
  });

  test('UP-28: an idle connection is closed by the client after idleTimeout', async () => {
    const r = await rig({}, { idleTimeout: 150 });
    echoOf(await r.send({ path: '/' }));
    const conn = r.fake.requestConns[0]!;
    expect(conn.closed).toBe(false);
    await waitFor(() => conn.closed, 'the idle connection to be closed');
    expect({ byClient: conn.endedByClient, byFake: conn.closedByFake }).toEqual({ byClient: true, byFake: false });
  });

  test('OP-30: stats() shows the pooled connection busy, then idle, then gone; a refused peer counts a failure and is down', async () => {
    const f = await fake({ onRequest: slowly(150) });
    const deadPort = await freePort();
    const app = upstream([target(tcp(f.port)), target(tcp(deadPort))], { idleTimeout: 300, connectTimeout: 1000, logger: capture() });
    const front = await httpFront(app);
    const live = `fastcgi://127.0.0.1:${f.port}`;
    const dead = `fastcgi://127.0.0.1:${deadPort}`;
    const first = front.send({ path: '/one' });
    await waitFor(() => app.stats().some((p) => p.upstream === live && p.connections === 1 && p.idle === 0) || app.stats().some((p) => p.upstream === dead && p.failures > 0), 'the first request to take a connection');
    echoOf(await first);
    echoOf(await front.send({ path: '/two' })); // round robin: one of the two went to the dead peer first and was tried on the live one
    const stats = new Map(app.stats().map((p) => [p.upstream, p]));
    expect(stats.get(live)).toMatchObject({ connections: 1, idle: 1, failures: 0, down: false });
    expect(stats.get(dead)).toMatchObject({ connections: 0, idle: 0, failures: 1, down: true });
    await waitFor(() => app.stats().find((p) => p.upstream === live)?.connections === 0, 'the idle connection to be closed');
  });

  test('UP-28: maxRequestsPerConnection recycles the connection', async () => {
    const r = await rig({}, { maxRequestsPerConnection: 2 });
    for (let i = 0; i < 5; i++) echoOf(await r.send({ path: `/${i}` }));
    await waitFor(() => r.fake.requestConns.filter((c) => c.closed).length >= 2, 'the used-up connections to be closed');
    expect(r.fake.requestConns.map((c) => c.requests.length)).toEqual([2, 2, 1]);
    expect(r.fake.requestConns.slice(0, 2).map((c) => c.endedByClient)).toEqual([true, true]);
  });
});

describe('multiplexing', () => {
  test('UP-7: FCGI_MPXS_CONNS=0 (php-fpm): concurrent requests never share a connection, every request id is 1', async () => {
    const r = await rig({ mpxs: '0', onRequest: slowly(80) });
    echoOf(await r.send({ path: '/warm' }));
    await probed(r.fake);
    const results = await Promise.all(Array.from({ length: 4 }, (_, i) => r.send({ path: `/n${i}` })));
    results.forEach((res, i) => expect(echoOf(res).params.PATH_INFO).toBe(`/n${i}`));
    expect(r.fake.requests.map((q) => q.id)).toEqual([1, 1, 1, 1, 1]);
    expect(r.fake.requestConns).toHaveLength(4);
    // One request at a time on every connection.
    for (const c of r.fake.requestConns) {
      const begins = c.records.map((rec, i) => [rec.type, i] as const).filter(([t]) => t === RecordType.BeginRequest).map(([, i]) => i);
      const ends = c.requests.length;
      expect(begins.length).toBe(ends);
    }
    expect(r.fake.requests.every((q) => q.conn.requests.filter((o) => o !== q && !o.ended).length === 0)).toBe(true);
  });

  test('UP-7: FCGI_MPXS_CONNS=1: after the probe, concurrent requests share one connection with distinct ids', async () => {
    const r = await rig({ mpxs: '1', onRequest: slowly(80) });
    echoOf(await r.send({ path: '/warm' }));
    await probed(r.fake);
    const results = await Promise.all(Array.from({ length: 4 }, (_, i) => r.send({ path: `/n${i}` })));
    results.forEach((res, i) => expect(echoOf(res).params.PATH_INFO).toBe(`/n${i}`));
    expect(r.fake.requestConns).toHaveLength(1);
    expect(new Set(r.fake.requests.slice(1).map((q) => q.id)).size).toBe(4);
  });

  test('UP-7: a probe that could not connect is not a "no": once the upstream is up, it is asked again and multiplexing starts', async () => {
    const port = await freePort();
    const app = upstream(target(tcp(port)), { readTimeout: 2000, connectTimeout: 1000, logger: capture() });
    const front = await httpFront(app);
    expect((await front.send({ path: '/down' })).status).toBe(502);
    const f = await FakeFastcgi.start({ mpxs: '1', onRequest: slowly(80) }, port);
    perTest.fakes.push(f);
    echoOf(await front.send({ path: '/up' }));
    expect(f.probes).toHaveLength(0); // within the retry delay the pool has not asked again
    await new Promise((resolve) => setTimeout(resolve, FASTCGI_DEFAULTS.probeRetry + 50));
    echoOf(await front.send({ path: '/ask' }));
    await probed(f);
    const before = f.requestConns.length;
    const results = await Promise.all(Array.from({ length: 3 }, (_, i) => front.send({ path: `/m${i}` })));
    results.forEach((res, i) => expect(echoOf(res).params.PATH_INFO).toBe(`/m${i}`));
    expect(f.requestConns.length).toBe(before); // they shared the connection already open
  }, 20_000);

  test('UP-7: an upstream that never answers GET_VALUES: no multiplexing, requests still answered', async () => {
    const r = await rig({ mpxs: 'silent', onRequest: slowly(50) });
    const results = await Promise.all(Array.from({ length: 3 }, (_, i) => r.send({ path: `/n${i}` })));
    results.forEach((res, i) => expect(echoOf(res).params.PATH_INFO).toBe(`/n${i}`));
    expect(r.fake.requestConns).toHaveLength(3);
    expect(r.fake.requests.map((q) => q.id)).toEqual([1, 1, 1]);
    // The probe gives up (its own timeout) and closes its connection.
    await waitFor(() => r.fake.probes[0]?.closed === true, 'the unanswered probe to be closed');
    echoOf(await r.send({ path: '/after' }));
    expect(r.fake.requests[3]!.id).toBe(1);
  });

  test('UP-7 UP-28: a multiplexed connection reused after idling is not closed by its old idle timer', async () => {
    const r = await rig({ mpxs: '1', onRequest: (req) => (req.param('PATH_INFO') === '/slow' ? slowly(300)(req) : echoAnswer(req)) }, { idleTimeout: 250 });
    echoOf(await r.send({ path: '/warm' }));
    await probed(r.fake);
    await sleep(100); // idle for a while, less than idleTimeout
    const res = await r.send({ path: '/slow' }); // outlives the idle timer of the warm-up
    expect(echoOf(res).params.PATH_INFO).toBe('/slow');
    expect(r.fake.requestConns).toHaveLength(1);
    expect(r.log.lines).toEqual([]);
  });

  test('UP-7 UP-28: recycling a multiplexed connection waits for the requests still on it', async () => {
    const r = await rig({ mpxs: '1', onRequest: (req) => slowly(req.param('PATH_INFO') === '/fast' ? 10 : 200)(req) }, { maxRequestsPerConnection: 3 });
    echoOf(await r.send({ path: '/warm' }));
    await probed(r.fake);
    // Requests 2 and 3 of the connection, then one that needs a new connection.
    const results = await Promise.all([r.send({ path: '/slow' }), r.send({ path: '/fast' }), r.send({ path: '/other' })]);
    expect(results.map((res) => res.status)).toEqual([200, 200, 200]);
    expect(r.fake.requestConns.map((c) => c.requests.length)).toEqual([3, 1]);
    await waitFor(() => r.fake.requestConns[0]!.closed, 'the used-up connection to be closed');
    expect(r.fake.requestConns[0]!.endedByClient).toBe(true);
  });
});

describe('connections the upstream closes (UP-29, UP-30)', () => {
  test('UP-29: the upstream closes right after END_REQUEST (pm.max_requests): the next request does not fail', async () => {
    const r = await rig({
      onRequest: (req) => {
        echoAnswer(req);
        req.conn.end();
      },
    });
    for (let i = 0; i < 3; i++) echoOf(await r.send({ path: `/${i}` }));
    expect(r.fake.requestConns).toHaveLength(3);
    expect(r.log.matching(/502|504/)).toEqual([]);
  });

  test('UP-30: a reused connection closed at BEGIN_REQUEST without an answer: sent once more on a fresh connection, one warn line', async () => {
    // Every second request on a connection: closed as it begins (the keep-alive race).
    const r = await rig({ onBegin: (req) => (req.conn.requests.length === 2 ? req.conn.destroy() : undefined) });
    echoOf(await r.send({ path: '/first' }));
    const get = echoOf(await r.send({ path: '/second' }));
    expect({ path: get.params.PATH_INFO, conn: get.conn }).toEqual({ path: '/second', conn: r.fake.requestConns[1]!.index });
    // A body of unknown length is held whole (UP-4), so it can go again too.
    const body = randomBytes(30_000);
    const post = echoOf(await r.send({ method: 'POST', path: '/third', body, chunked: true }));
    expect({ path: post.params.PATH_INFO, sha256: post.sha256, conn: post.conn }).toEqual({ path: '/third', sha256: sha256(body), conn: r.fake.requestConns[2]!.index });
    // Each retry went out once, on a connection of its own.
    expect(r.fake.requestConns.map((c) => c.requests.map((q) => q.param('PATH_INFO') ?? '(closed at BEGIN_REQUEST)'))).toEqual([
      ['/first', '(closed at BEGIN_REQUEST)'],
      ['/second', '(closed at BEGIN_REQUEST)'],
      ['/third'],
    ]);
    const warn = r.log.matching(/once more on a new connection/, 'warn');
    expect(warn.map((l) => l.requestId)).toEqual([r.environs[1]!['gatewire.request_id'], r.environs[2]!['gatewire.request_id']]);
    expect(r.log.lines).toHaveLength(2);
  });

  test('UP-30: a fresh connection failing that way is a 502, not retried', async () => {
    const r = await rig({ onBegin: (req) => req.conn.destroy() });
    const res = await r.send({ path: '/' });
    expect(res.status).toBe(502);
    expect(r.fake.requestConns).toHaveLength(1);
    expect(r.log.matching(/once more/)).toEqual([]);
    expect(r.log.matching(/^upstream fastcgi:\/\/127\.0\.0\.1:\d+: 502 /, 'error').map((l) => l.requestId)).toEqual([replyId(res)]);
  });

  test('UP-30: a retry that fails the same way is a 502: one retry only', async () => {
    const r = await rig({ onBegin: (req) => (req.conn.server.requests.length === 1 ? undefined : req.conn.destroy()) });
    echoOf(await r.send({ path: '/ok' }));
    const res = await r.send({ path: '/again' });
    expect(res.status).toBe(502);
    expect(r.fake.requestConns).toHaveLength(2);
    expect(r.log.matching(/once more/, 'warn')).toHaveLength(1);
    expect(r.log.matching(/: 502 /, 'error').map((l) => l.requestId)).toEqual([replyId(res)]);
  });

  test('UP-30: two requests on a reused multiplexed connection that dies are both sent once more (maxConnections 1)', async () => {
    const r = await rig(
      { mpxs: '1', onBegin: (req) => (req.conn.requests.length === 3 ? req.conn.destroy() : undefined), onRequest: slowly(30) },
      { maxConnections: 1, readTimeout: 1000 },
    );
    echoOf(await r.send({ path: '/warm' }));
    await probed(r.fake);
    const results = await Promise.all([r.send({ path: '/one' }), r.send({ path: '/two' })]);
    expect(results.map((res) => echoOf(res).params.PATH_INFO)).toEqual(['/one', '/two']);
    expect(r.log.matching(/once more/, 'warn')).toHaveLength(2);
    expect(r.log.matching(/50\d /)).toEqual([]);
  });

  test('UP-30: a streamed body that arrives while the request is sent once more goes out whole with it', async () => {
    // The front's body is held back (a PassThrough) until the retry is decided: it comes
    // while the new connection is being made.
    const f = await fake({ onBegin: (req) => (req.conn.requests.length === 2 ? req.conn.destroy() : undefined) });
    const held = new PassThrough();
    const body = randomBytes(10);
    const log = capture();
    const warn = log.warn.bind(log);
    log.warn = (message, meta) => {
      warn(message, meta);
      if (/once more/.test(message)) held.end(body);
    };
    const app = upstream(target(tcp(f.port)), { logger: log, readTimeout: 500 });
    const front = await httpFront((environ, sr) => {
      if (environ.REQUEST_METHOD === 'POST') {
        (environ['gatewire.input'] as NodeJS.ReadableStream).resume();
        environ['gatewire.input'] = held;
      }
      return app(environ, sr);
    });
    echoOf(await front.send({ path: '/first' }));
    const echo = echoOf(await front.send({ method: 'POST', path: '/second', body }));
    expect({ bytes: echo.bytes, sha256: echo.sha256 }).toEqual({ bytes: 10, sha256: sha256(body) });
    expect(log.matching(/once more/, 'warn')).toHaveLength(1);
  });

  test('UP-30: no retry once a streamed body was taken from the client', async () => {
    // The second request on the connection dies once its whole body has arrived, unanswered.
    const r = await rig({ onRequest: (req) => (req.conn.server.requests.length === 2 ? req.conn.destroy() : echoAnswer(req)) });
    echoOf(await r.send({ path: '/first' }));
    const res = await r.send({ method: 'POST', path: '/second', body: randomBytes(20_000) });
    expect(r.fake.requests[1]!.stdinBytes).toBe(20_000);
    expect(res.status).toBe(502);
    expect(r.log.matching(/once more/)).toEqual([]);
    expect(r.fake.requests).toHaveLength(2);
  });
});

// ---------------------------------------------------------------------------------------
// STDERR (UP-11) and the client going away (UP-31)
// ---------------------------------------------------------------------------------------

describe('STDERR', () => {
  test('UP-11: STDERR lines go to the log with the request id, never into the body', async () => {
    const r = await rig({
      onRequest: (req) => {
        req.stderr('PHP Warning: one\nPHP Notice: t');
        req.stdout('Content-Type: text/plain\r\n\r\nthe body');
        req.stderr('wo\r\nlast line without newline');
        req.end();
      },
    });
    const res = await r.send({ path: '/' });
    expect({ status: res.status, body: res.body.toString() }).toEqual({ status: 200, body: 'the body' });
    const id = r.environs[0]!['gatewire.request_id'];
    expect(r.log.lines.map((l) => [l.level, l.message.replace(/^upstream \S+: /, ''), l.requestId])).toEqual([
      ['warn', 'stderr: PHP Warning: one', id],
      ['warn', 'stderr: PHP Notice: two', id],
      ['warn', 'stderr: last line without newline', id],
    ]);
  });

  test('UP-11: a STDERR flood is capped at maxStderrBytes, with a "further bytes not logged" line', async () => {
    const line = `${'e'.repeat(99)}\n`;
    const r = await rig({
      onRequest: (req) => {
        for (let i = 0; i < 1000; i++) req.stderr(line);
        req.respond('Content-Type: text/plain', 'ok');
      },
    }, { maxStderrBytes: 1000 });
    const res = await r.send({ path: '/' });
    expect({ status: res.status, body: res.body.toString() }).toEqual({ status: 200, body: 'ok' });
    const stderr = r.log.matching(/stderr: e+$/);
    expect(stderr).toHaveLength(10);
    expect(r.log.matching(/stderr: 99000 further bytes not logged/, 'warn')).toHaveLength(1);
  });
});

describe('the client going away (UP-31)', () => {
  /** Head, then body bytes every 10 ms until the connection or the request is gone. */
  const endless = (req: FakeRequest): void => {
    req.stdout('Content-Type: text/plain\r\n\r\n');
    const timer = setInterval(() => {
      if (req.conn.closed || req.aborted || req.ended) clearInterval(timer);
      else req.stdout('y'.repeat(1024));
    }, 10);
    perTest.other.push(() => clearInterval(timer));
  };

  test('UP-31: an endless body to a client that went away: the upstream connection is closed (not multiplexed)', async () => {
    const r = await rig({ onRequest: endless });
    const res = await r.send({ path: '/', abortAfterBytes: 4096 });
    expect(res.truncated).toBe(true);
    const conn = r.fake.requestConns[0]!;
    await waitFor(() => conn.closed, 'the fake upstream to see its connection closed');
    expect(conn.endedByClient).toBe(true);
    expect(conn.ofType(RecordType.AbortRequest)).toEqual([]);
  });

  test('UP-31: multiplexed: FCGI_ABORT_REQUEST for that id, and the connection keeps serving the others', async () => {
    const r = await rig({
      mpxs: '1',
      onRequest: (req) => (req.param('PATH_INFO') === '/endless' ? endless(req) : slowly(150)(req)),
      onAbort: (req) => req.end(),
    });
    echoOf(await r.send({ path: '/warm' }));
    await probed(r.fake);
    const [gone, other] = await Promise.all([r.send({ path: '/endless', abortAfterBytes: 4096 }), r.send({ path: '/other' })]);
    expect(gone.truncated).toBe(true);
    expect(echoOf(other).params.PATH_INFO).toBe('/other');
    const conn = r.fake.requestConns[0]!;
    const endlessReq = r.fake.requests.find((q) => q.param('PATH_INFO') === '/endless')!;
    await waitFor(() => endlessReq.aborted, 'FCGI_ABORT_REQUEST');
    expect(conn.ofType(RecordType.AbortRequest).map((rec) => rec.id)).toEqual([endlessReq.id]);
    echoOf(await r.send({ path: '/after' }));
    expect({ conns: r.fake.requestConns.length, closed: conn.closed }).toEqual({ conns: 1, closed: false });
  });
});

// ---------------------------------------------------------------------------------------
// Hostile upstreams: each its own test, with the status and the log line it gets
// ---------------------------------------------------------------------------------------

describe('hostile upstreams', () => {
  async function hostile(onRequest: (req: FakeRequest) => void, req: MatrixRequest = { path: '/' }, options: FastcgiUpstreamOptions = {}): Promise<{ res: MatrixResult; r: Rig }> {
    const r = await rig({ onRequest }, { readTimeout: 300, ...options });
    const res = await r.send(req);
    return { res, r };
  }
  /** The one error line of a failed request, with the request id of its reply. */
  function failedWith(r: Rig, res: MatrixResult, status: number, re: RegExp): void {
    expect(res.status).toBe(status);
    const lines = r.log.matching(new RegExp(`: ${status} `), 'error');
    expect(lines.map((l) => l.message)).toEqual([expect.stringMatching(re)]);
    expect(lines[0]!.requestId).toBe(replyId(res));
  }

  test('UP-8 UP-10: garbage bytes (not FastCGI) → 502', async () => {
    const { res, r } = await hostile((req) => req.conn.write('HTTP/1.1 200 OK\r\n\r\nnot fastcgi at all'));
    failedWith(r, res, 502, /version/);
  });

  test('UP-10: a header line of 64 KiB - 1 → 502', async () => {
    const { res, r } = await hostile((req) => req.respond(`Content-Type: text/plain\r\nX-Long: ${'a'.repeat(65535 - 8)}`, 'body'));
    failedWith(r, res, 502, /line|long|limit/i);
  });

  test('UP-9: END_REQUEST before any STDOUT → 502', async () => {
    const { res, r } = await hostile((req) => req.conn.writeAll([encodeEndRequest(req.id, 0, ProtocolStatus.RequestComplete)]));
    failedWith(r, res, 502, /END_REQUEST appStatus 0, REQUEST_COMPLETE/);
  });

  test('UP-9: END_REQUEST OVERLOADED before any STDOUT → 503', async () => {
    const { res, r } = await hostile((req) => req.conn.writeAll([encodeEndRequest(req.id, 0, ProtocolStatus.Overloaded)]));
    failedWith(r, res, 503, /OVERLOADED/);
  });

  test('UP-9: END_REQUEST UNKNOWN_ROLE → 502', async () => {
    const { res, r } = await hostile((req) => req.conn.writeAll([encodeEndRequest(req.id, 0, ProtocolStatus.UnknownRole)]));
    failedWith(r, res, 502, /UNKNOWN_ROLE/);
  });

  test('UP-8: STDOUT after END_REQUEST: the first response is complete and right, the connection is not reused', async () => {
    const r = await rig({
      onRequest: (req) => {
        if (req.param('PATH_INFO') !== '/stray') return echoAnswer(req);
        req.conn.writeAll([...encodeStdout(req.id, Buffer.from('Content-Type: text/plain\r\n\r\nfine')), encodeEndRequest(req.id), ...encodeStdout(req.id, Buffer.from('stray'))]);
        req.ended = true;
        req.conn.active.delete(req.id);
      },
    });
    const res = await r.send({ path: '/stray' });
    expect({ status: res.status, body: res.body.toString(), truncated: res.truncated }).toEqual({ status: 200, body: 'fine', truncated: false });
    await waitFor(() => r.fake.requestConns[0]!.closed, 'the connection to be dropped');
    echoOf(await r.send({ path: '/next' }));
    expect(r.fake.requestConns).toHaveLength(2);
  });

  test('UP-8 UP-28: STDOUT after END_REQUEST while another request waits for the connection: that one gets a good connection', async () => {
    const r = await rig(
      {
        onRequest: (req) => {
          if (req.param('PATH_INFO') !== '/stray') return echoAnswer(req);
          setTimeout(() => {
            req.conn.writeAll([...encodeStdout(req.id, Buffer.from('Content-Type: text/plain\r\n\r\nfine')), encodeEndRequest(req.id), ...encodeStdout(req.id, Buffer.from('stray'))]);
            req.ended = true;
            req.conn.active.delete(req.id);
          }, 100);
        },
      },
      { maxConnections: 1, readTimeout: 1000 },
    );
    const first = r.send({ path: '/stray' });
    await waitFor(() => r.fake.requests.length === 1, 'the first request');
    const second = r.send({ path: '/waiting' });
    const [a, b] = await Promise.all([first, second]);
    expect(a.body.toString()).toBe('fine');
    expect(echoOf(b).params.PATH_INFO).toBe('/waiting');
    // It went straight to a new connection: not onto the dropped one, to be rescued by a retry.
    expect(r.fake.requestConns.map((c) => c.requests.length)).toEqual([1, 1]);
    expect(r.log.lines).toEqual([]);
  });

  test('UP-8: a record of an unknown type → 502', async () => {
    const { res, r } = await hostile((req) => req.conn.writeAll([encodeRecord(20, req.id, Buffer.from('????????'))]));
    failedWith(r, res, 502, /unknown type 20/);
  });

  test('UP-8: a record for a wrong request id → 502', async () => {
    const { res, r } = await hostile((req) => req.conn.writeAll(encodeStdout(req.id + 1, Buffer.from('Status: 200 OK\r\n\r\nnot yours'))));
    failedWith(r, res, 502, /request id 2: not an active request/);
  });

  test('UP-27: an upstream that never answers → 504 after readTimeout, its connection closed', async () => {
    const { res, r } = await hostile(() => undefined);
    failedWith(r, res, 504, /no response head within 300 ms/);
    await waitFor(() => r.fake.requestConns[0]!.closed, 'the upstream connection to be closed');
    expect(r.fake.requestConns[0]!.endedByClient).toBe(true);
  });

  test('UP-12: closing mid-body (after the head) → the client sees a cut-off response', async () => {
    const { res } = await hostile((req) => {
      req.stdout(`Content-Type: text/plain\r\n\r\n${'x'.repeat(100)}`);
      setTimeout(() => req.conn.destroy(), 50);
    });
    expect({ status: res.status, truncated: res.truncated, body: res.body.toString() }).toEqual({ status: 200, truncated: true, body: 'x'.repeat(100) });
  });

  test('UP-12: END_REQUEST short of the Content-Length → the client sees a cut-off response', async () => {
    const { res } = await hostile((req) => {
      req.stdout(`Content-Type: text/plain\r\nContent-Length: 1000\r\n\r\n${'x'.repeat(100)}`);
      setTimeout(() => req.end(), 30);
    });
    expect({ status: res.status, truncated: res.truncated }).toEqual({ status: 200, truncated: true });
    expect(res.body.length).toBeLessThan(1000);
  });

  test('UP-10 UP-15: an HTTP/1.1 status line in STDOUT → 502', async () => {
    const { res, r } = await hostile((req) => req.respond('HTTP/1.1 200 OK\r\nContent-Type: text/plain', 'hi'));
    failedWith(r, res, 502, /./);
  });

  test('UP-15: Status: 99 → 502', async () => {
    const { res, r } = await hostile((req) => req.respond('Status: 99 Odd\r\nContent-Type: text/plain', 'hi'));
    failedWith(r, res, 502, /99/);
  });

  test('UP-16: a Location without Status → 302', async () => {
    const { res, r } = await hostile((req) => req.respond('Location: http://example.test/elsewhere'));
    expect({ status: res.status, location: res.headers.location }).toEqual({ status: 302, location: ['http://example.test/elsewhere'] });
    expect(r.log.lines).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------
// Connections that cannot be made (UP-27, UP-33)
// ---------------------------------------------------------------------------------------

describe('connections that cannot be made', () => {
  test('UP-33: a refused connection → 502, ECONNREFUSED and the request id in the log line', async () => {
    const log = capture();
    const front = await httpFront(upstream(target(tcp(await freePort())), { logger: log }));
    const res = await front.send({ path: '/' });
    expect(res.status).toBe(502);
    const lines = log.matching(/ECONNREFUSED/, 'error');
    expect(lines).toHaveLength(1);
    expect(lines[0]!.requestId).toBe(replyId(res));
    expect(log.lines).toHaveLength(1);
  });

  test('UP-33: a unix socket path that does not exist → 502 ENOENT', async () => {
    const log = capture();
    const sock = path.join(os.tmpdir(), `gatewire-missing-${process.pid}-${Date.now()}.sock`);
    const front = await httpFront(upstream(target({ kind: 'unix', path: sock }), { logger: log }));
    const res = await front.send({ path: '/' });
    expect(res.status).toBe(502);
    expect(log.matching(/ENOENT/, 'error').map((l) => l.requestId)).toEqual([replyId(res)]);
  });

  test('UP-27: a connect timeout → 504', async () => {
    // A listener whose process never accepts (its event loop is blocked), its backlog of 1 filled:
    // Linux then drops further SYNs, so a connection attempt neither succeeds nor fails.
    const child: ChildProcess = spawn(process.execPath, ['-e', "const s=require('net').createServer();s.listen({port:0,host:'127.0.0.1',backlog:1},()=>{process.stdout.write(s.address().port+'\\n');Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0)})"], { stdio: ['ignore', 'pipe', 'ignore'] });
    const held: net.Socket[] = [];
    perTest.other.push(() => {
      for (const s of held) s.destroy();
      child.kill('SIGKILL');
    });
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      child.once('exit', () => reject(new Error('the listener process exited')));
    });
    for (let i = 0; i < 8; i++) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      held.push(s);
      const connected = await new Promise<boolean>((resolve) => {
        s.once('connect', () => resolve(true));
        setTimeout(() => resolve(false), 200);
      });
      if (!connected) break;
    }
    expect(held[held.length - 1]!.connecting).toBe(true); // the backlog is full: this one hangs
    const log = capture();
    const front = await httpFront(upstream(target(tcp(port)), { logger: log, connectTimeout: 300, multiplex: false }));
    const res = await front.send({ path: '/' });
    expect(res.status).toBe(504);
    expect(log.matching(/504 no connection within 300 ms/, 'error').map((l) => l.requestId)).toEqual([replyId(res)]);
  });
});

// ---------------------------------------------------------------------------------------
// Round robin (src/upstream/group.ts)
// ---------------------------------------------------------------------------------------

describe('several upstreams', () => {
  test('UP-28: two upstreams: requests alternate', async () => {
    const a = await fake();
    const b = await fake();
    const front = await httpFront(upstream([target(tcp(a.port)), target(tcp(b.port))]));
    const order: string[] = [];
    for (let i = 0; i < 4; i++) {
      const before = a.requests.length;
      echoOf(await front.send({ path: `/${i}` }));
      order.push(a.requests.length > before ? 'a' : 'b');
    }
    expect(order).toEqual(['a', 'b', 'a', 'b']);
  });

  test('UP-33: a refusing upstream: the request goes to the other (one warn line), it is marked down (one error line) and skipped until failTimeout', async () => {
    const downPort = await freePort();
    const a = await fake();
    const log = capture();
    const front = await httpFront(upstream([target(tcp(downPort)), target(tcp(a.port))], { logger: log, failTimeout: 400 }));
    for (let i = 0; i < 3; i++) echoOf(await front.send({ path: `/${i}` }));
    expect(a.requests).toHaveLength(3);
    expect(log.matching(/ECONNREFUSED; trying the next upstream/, 'warn')).toHaveLength(1);
    expect(log.matching(/marked down/, 'error')).toHaveLength(1);
    expect(log.lines).toHaveLength(2);
    // It comes back: after failTimeout it is tried again, and takes its turn.
    const b = await FakeFastcgi.start({}, downPort);
    perTest.fakes.push(b);
    await sleep(450);
    for (let i = 0; i < 4; i++) echoOf(await front.send({ path: `/back${i}` }));
    expect({ a: a.requests.length - 3, b: b.requests.length }).toEqual({ a: 2, b: 2 });
    expect(log.lines).toHaveLength(2);
  });

  test('UP-31: a client that goes away before the answer does not mark its upstream down', async () => {
    const a = await fake({ onRequest: (req) => (req.param('PATH_INFO') === '/hang' ? undefined : echoAnswer(req)) });
    const b = await fake();
    const log = capture();
    const front = await httpFront(upstream([target(tcp(a.port)), target(tcp(b.port))], { logger: log }));
    const client = net.connect(front.port, '127.0.0.1');
    client.on('error', () => undefined);
    client.write('GET /hang HTTP/1.1\r\nHost: t\r\n\r\n');
    await waitFor(() => a.requests.length === 1, 'the request at a');
    client.destroy();
    await waitFor(() => a.requestConns[0]!.closed, 'the abandoned connection to be closed');
    for (let i = 0; i < 4; i++) echoOf(await front.send({ path: `/${i}` }));
    expect({ a: a.requests.length - 1, b: b.requests.length }).toEqual({ a: 2, b: 2 });
    expect(log.lines).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------
// Bodies that must not be, and Content-Length (UP-17)
// ---------------------------------------------------------------------------------------

describe('response bodies', () => {
  test('UP-17: HEAD gets the head without a body', async () => {
    const r = await rig({ onRequest: (req) => req.respond('Content-Type: text/plain\r\nContent-Length: 5', 'hello') });
    const res = await r.send({ method: 'HEAD', path: '/', exact: true });
    expect({ status: res.status, body: res.body.length, length: res.headers['content-length'] }).toEqual({ status: 200, body: 0, length: ['5'] });
    expect(r.fake.requests[0]!.param('REQUEST_METHOD')).toBe('HEAD');
  });

  test.each([204, 304])('UP-17: a %i has no body, whatever the upstream sends', async (status) => {
    const r = await rig({ onRequest: (req) => (req.param('PATH_INFO') === '/next' ? echoAnswer(req) : req.respond(`Status: ${status} X\r\nX-Route: yes`, 'should not be seen')) });
    const res = await r.send({ path: '/', exact: true });
    expect({ status: res.status, body: res.body.length, route: res.headers['x-route'] }).toEqual({ status, body: 0, route: ['yes'] });
    echoOf(await r.send({ path: '/next' })); // and the connection is fine
    expect(r.fake.requestConns).toHaveLength(1);
  });

  test('UP-17: a Content-Length shorter than the body: the body is cut there, with a warn line (the excess in the same or a later record)', async () => {
    const r = await rig({
      onRequest: (req) => {
        const path = req.param('PATH_INFO');
        if (path === '/next') return echoAnswer(req);
        if (path === '/one-record') req.stdout('Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello, and more');
        else req.stdout('Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello');
        if (path === '/next-record') req.stdout(', and more');
        if (path === '/later') setTimeout(() => req.stdout(', and more'), 20);
        setTimeout(() => req.end(), 40);
      },
    }, { maxConnections: 1 });
    for (const p of ['/one-record', '/next-record', '/later']) {
      const res = await r.send({ path: p });
      expect({ p, status: res.status, body: res.body.toString(), truncated: res.truncated }).toEqual({ p, status: 200, body: 'hello', truncated: false });
    }
    await waitFor(() => r.fake.requests.every((q) => q.ended), 'the three END_REQUESTs');
    echoOf(await r.send({ path: '/next' })); // after the third END_REQUEST: its warn line is out
    expect(r.log.lines.map((l) => [l.level, l.message.replace(/^upstream \S+: /, '')])).toEqual([
      ['warn', '10 bytes past the Content-Length dropped'],
      ['warn', '10 bytes past the Content-Length dropped'],
      ['warn', '10 bytes past the Content-Length dropped'],
    ]);
    expect(r.fake.requestConns).toHaveLength(1);
  });
});

// A keep-alive node:http client against the front: the upstream's pooled connection is
// independent of the client's.
test('UP-28: a keep-alive client and the pool: five requests on one client connection, one upstream connection', async () => {
  const r = await rig();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  perTest.other.push(() => agent.destroy());
  for (let i = 0; i < 5; i++) {
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: r.port, path: `/k${i}`, agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
        })
        .on('error', reject);
    });
    expect((JSON.parse(body) as FakeEcho).params.PATH_INFO).toBe(`/k${i}`);
  }
  expect(r.fake.requestConns).toHaveLength(1);
  expect(r.fake.requests.every((q) => (q.flags & Flag.KeepConn) !== 0)).toBe(true);
});
