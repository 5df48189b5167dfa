/**
 * The behaviour matrix: one list of cases, run over every front (test/helpers/fronts.ts: the
 * registry's listeners, inject() and `gatewire cgi`), and through every upstream client
 * (test/helpers/upstream-harness.ts: HTTP front → client → gatewire front → app), for every app
 * flavour (environ, plain node, Express, Koa, Hono). The same app must give the same observable result whatever carries it,
 * and gatewire's own responses (src/reply.ts) must be the same bytes on every front apart from
 * the framing.
 *
 * Every app runs inside validateApp (src/validate.ts): a contract slip on either side fails the
 * case, and so does a body whose close() the server never called (R-5).
 *
 * A case that cannot apply to a front (it `needs` what the front's harness `cannot`) is not run
 * for that front only; one test per front and flavour lists those cases with their reasons.
 */
import { createHash } from 'node:crypto';
import type { Service } from '../src/app.js';
import { FRONT_NAMES } from '../src/fronts/registry.js';
import { FRONTS, REGISTRY_HARNESSES, type MatrixFront, type MatrixRequest, type MatrixResult, type MatrixServer, type Need, type StartOptions } from './helpers/fronts.js';
import { type ContractWatch, type Flavour, LENGTH_BODY, SSE_EVENT_BYTES, gate, probe, resetProbe, resetSse, sse, validatedService } from './helpers/behaviour-apps.js';
import { VIA_HARNESSES } from './helpers/upstream-harness.js';

/** The direct fronts, then gatewire to gatewire through each upstream client (front → client → front → app). */
const HARNESSES: readonly MatrixFront[] = [...FRONTS, ...Object.values(VIA_HARNESSES)];

const FLAVOURS: Flavour[] = ['environ', 'node', 'express', 'koa', 'hono'];
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` (a bound against hangs, not a measurement). */
async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** The servers a case can ask for; started on first use, per front and flavour. */
type ServerKind = 'plain' | 'limited' | 'mounted' | 'single' | 'impatient' | 'upgrading';
const MAX_BODY = 1000;
const SERVERS: Record<ServerKind, StartOptions> = {
  plain: {},
  limited: { options: { maxBodyBytes: String(MAX_BODY), maxHeaderBytes: '2k', maxParamsBytes: '2k' } },
  mounted: { mount: '/app' },
  single: { options: { maxInflight: '1' } },
  impatient: { options: { headersTimeout: '300ms' } },
  // The service gets an `upgrade` handler (withUpgrade below), as a module's upgrade export gives one.
  upgrading: {},
};

/**
 * What the Upgrade case saw: the calls of the service's upgrade handler (the URL it was given),
 * and the HTTP_UPGRADE of every request that reached the app instead.
 */
const upgrades = { calls: 0, url: '', appSaw: [] as Array<string | undefined> };

/**
 * The service with an `upgrade` handler, as `export function upgrade(req, socket, head)` makes
 * one (src/loader.ts): it answers 101 itself, writes `upgraded <url>` on the connection it now
 * owns and closes it. The app is wrapped to note the HTTP_UPGRADE it is called with.
 */
function withUpgrade(service: Service): Service {
  return {
    ...service,
    app: (environ, startResponse) => {
      upgrades.appSaw.push(environ.HTTP_UPGRADE);
      return service.app(environ, startResponse);
    },
    upgrade: (req, socket) => {
      upgrades.calls++;
      upgrades.url = req.url ?? '';
      socket.end(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: matrix\r\nConnection: Upgrade\r\n\r\nupgraded ${req.url ?? ''}`);
    },
  };
}

/** The harnesses whose listener is node:http's, where the upgrade handler is called (H-15). */
const UPGRADE_FRONTS = new Set(['http', 'auto-http']);
/** The harnesses that are a gateway front directly: the Upgrade field reaches the app (F-47, S-13, U-12). */
const GATEWAY_FRONTS = new Set(['fastcgi', 'scgi', 'uwsgi', 'auto-fastcgi', 'auto-scgi', 'auto-uwsgi']);

interface Case {
  name: string;
  /** Default: plain. */
  server?: ServerKind;
  /** Default: every flavour. */
  flavours?: readonly Flavour[];
  needs?: readonly Need[];
  run(server: MatrixServer, t: { flavour: Flavour; front: MatrixFront }): Promise<void>;
}

/** RFC 9110 §15 reason phrases, written out here rather than taken from src/. */
const REASONS: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Content Too Large',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
  505: 'HTTP Version Not Supported',
};

/**
 * Fields a refusal itself carries besides Content-Type and Content-Length (src/reply.ts `extra`):
 * a 405 MUST list the allowed methods (RFC 9110 §15.5.6); a 503 MAY say when to retry (RFC 9110 §10.2.3).
 */
const REFUSAL_FIELDS: Record<number, { required?: string[]; optional?: string[] }> = {
  405: { required: ['allow'] },
  503: { optional: ['retry-after'] },
};

/**
 * gatewire's own response (src/reply.ts), the same on every front apart from the framing: the
 * RFC 9110 reason, exactly Content-Type `text/plain; charset=utf-8` and Content-Length (and the
 * refusal's own fields above), the body
 * `<Reason>\nrequest id: <id>\n` with Content-Length its exact size, and for HEAD no body at
 * all while Content-Length still gives the GET body's size.
 */
function expectReply(front: MatrixFront, res: MatrixResult, status: number, method: string): void {
  const reason = REASONS[status] as string;
  const own = REFUSAL_FIELDS[status] ?? {};
  const ignored = new Set([...front.framing, ...(own.optional ?? [])]);
  const contentLength = res.headers['content-length'];
  expect({
    status: res.status,
    reason: res.reason,
    fields: Object.keys(res.headers).filter((name) => !ignored.has(name)).sort(),
    contentType: res.headers['content-type'],
    contentLength,
    body: res.body.toString('latin1'),
  }).toEqual({
    status,
    reason,
    fields: ['content-length', 'content-type', ...(own.required ?? [])].sort(),
    contentType: ['text/plain; charset=utf-8'],
    contentLength: method === 'HEAD' ? [expect.stringMatching(/^[0-9]+$/)] : [String(res.body.length)],
    body: method === 'HEAD' ? '' : expect.stringMatching(new RegExp(`^${reason}\nrequest id: \\S+\n$`)),
  });
  if (method === 'HEAD') {
    // The GET body's size: the id of this process's format is 6 hex digits, '-', a base-36 counter.
    const idLength = Number(contentLength?.[0]) - Buffer.byteLength(`${reason}\nrequest id: \n`);
    expect(idLength).toBeGreaterThanOrEqual(8);
    expect(idLength).toBeLessThanOrEqual(18);
  }
}

const METHODS = ['GET', 'HEAD'] as const;

interface RefusalSpec extends Omit<Case, 'name' | 'run'> {
  request(method: string): MatrixRequest;
  /** Sends the request inside a set-up that provokes the refusal (default: just sends it). */
  provoke?(s: MatrixServer, send: () => Promise<MatrixResult>): Promise<MatrixResult>;
  /**
   * Why a HEAD cannot be told apart for this refusal (the reply is the GET one, and the
   * connection closes after it); the HEAD case then asserts exactly that.
   */
  headUnknown?: string;
}

/** A refusal, once with GET and once with HEAD. */
function refusal(name: string, status: number, spec: RefusalSpec): Case[] {
  const { request, provoke, headUnknown, ...rest } = spec;
  return METHODS.map((method) => ({
    ...rest,
    name: `refusal ${status}: ${name} (${method}${method === 'HEAD' && headUnknown !== undefined ? `: ${headUnknown}` : ''})`,
    async run(s, t) {
      const send = (): Promise<MatrixResult> => s.request({ exact: true, ...request(method) });
      const res = await (provoke === undefined ? send() : provoke(s, send));
      expectReply(t.front, res, status, method === 'HEAD' && headUnknown !== undefined ? 'GET' : method);
      if (method === 'HEAD' && headUnknown !== undefined) expect(res.headers.connection).toEqual(['close']);
    },
  }));
}

const overLimit = Buffer.alloc(MAX_BODY + 1, 'o');
const octets = { 'Content-Type': 'application/octet-stream' };

/** A body whose every byte value occurs, so a lost, doubled or re-encoded byte shows in the hash. */
function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8)) & 0xff;
  return b;
}

const CASES: Case[] = [
  {
    name: 'echo: method, decoded path, raw query, request header (E-5, E-6)',
    async run(s) {
      const res = await s.request({ path: '/echo?x=1+2&y', headers: { 'X-Test': 'yes' } });
      expect(res.status).toBe(200);
      expect(res.truncated).toBe(false);
      const json = JSON.parse(res.body.toString());
      expect(json).toMatchObject({ method: 'GET', path: '/echo', query: 'x=1+2&y', length: 0, test: 'yes' });
    },
  },
  {
    name: 'request body: a small POST arrives byte-exact',
    async run(s) {
      const body = Buffer.from([0x00, 0xff, 0xc3, 0xa9, 0x41]);
      const res = await s.request({ method: 'POST', path: '/echo', body, headers: { 'Content-Type': 'application/octet-stream' } });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString())).toMatchObject({ method: 'POST', length: 5, sha256: sha(body) });
    },
  },
  {
    name: 'large request body: 8 MiB hashed by the app',
    async run(s) {
      const body = Buffer.alloc(8 * 1024 * 1024);
      for (let i = 0; i < body.length; i += 4096) body[i] = i & 0xff;
      const res = await s.request({ method: 'POST', path: '/echo', body, headers: { 'Content-Type': 'application/octet-stream' } });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString())).toMatchObject({ length: body.length, sha256: sha(body) });
    },
  },
  {
    name: 'streaming response body: 64 chunks of 64 KiB arrive whole',
    async run(s) {
      const res = await s.request({ path: '/stream?n=64&size=65536' });
      expect(res.status).toBe(200);
      expect(res.truncated).toBe(false);
      expect(res.body.length).toBe(64 * 65536);
      expect(res.body.every((b) => b === 0x78)).toBe(true);
    },
  },
  {
    name: 'error before headers → 500, no stack trace to the client',
    async run(s) {
      const res = await s.request({ path: '/error-before' });
      expect(res.status).toBe(500);
      expect(res.body.toString()).toMatch(/^Internal Server Error/);
      expect(res.body.toString()).not.toMatch(/boom|at .*\.ts/);
    },
  },
  {
    name: 'error after headers → the client sees a truncated response (R-11)',
    async run(s) {
      const res = await s.request({ path: '/error-after' });
      expect(res.status).toBe(200);
      expect(res.truncated).toBe(true);
      expect(res.body.toString()).toBe('part-');
    },
  },
  {
    name: 'HEAD: same status and headers as GET, no body (R-9)',
    async run(s) {
      const get = await s.request({ path: '/cookies' });
      const head = await s.request({ method: 'HEAD', path: '/cookies' });
      expect(head.status).toBe(200);
      expect(head.body.length).toBe(0);
      expect(head.headers['content-type']).toEqual(get.headers['content-type']);
      expect(head.truncated).toBe(false);
    },
  },
  {
    name: '204 and 304: no body; no Content-Length on 204 (R-9)',
    async run(s) {
      const noContent = await s.request({ path: '/no-content' });
      expect(noContent.status).toBe(204);
      expect(noContent.body.length).toBe(0);
      expect(noContent.headers['content-length']).toBeUndefined();
      const notModified = await s.request({ path: '/not-modified' });
      expect(notModified.status).toBe(304);
      expect(notModified.body.length).toBe(0);
      expect(notModified.headers.etag).toEqual(['"x"']);
    },
  },
  {
    name: 'repeated Set-Cookie fields stay separate (R-10)',
    async run(s) {
      const res = await s.request({ path: '/cookies' });
      expect(res.headers['set-cookie']?.map((c) => c.split(';')[0])).toEqual(['a=1', 'b=2']);
    },
  },
  {
    name: 'client abort: the app learns it and its body is closed (H-10, R-5)',
    async run(s) {
      resetProbe();
      const res = await s.request({ path: '/forever', abortAfterBytes: 4096 });
      expect(res.truncated).toBe(true);
      for (let i = 0; i < 200 && probe.closed === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(probe.started).toBe(1);
      expect(probe.closed).toBe(1);
    },
  },
  {
    // The tutorial SSE pattern: the Node handler clears its timer in req.on('close'); the environ app stops on gatewire.signal.
    name: 'SSE: a client gone after its first events stops the stream within about one event (req close, R-13)',
    flavours: ['environ', 'node', 'express', 'koa'],
    async run(s) {
      resetSse();
      const res = await s.request({ path: '/sse', abortAfterBytes: 3 * SSE_EVENT_BYTES });
      expect(res.status).toBe(200);
      expect(res.headers['content-type']?.[0]).toMatch(/^text\/event-stream/);
      expect(res.truncated).toBe(true);
      // The raw clients count the head in abortAfterBytes: they may leave before the first event.
      const received = (res.body.toString('latin1').match(/^data: /gm) ?? []).length;
      await until(() => sse.stopped === 1, 'the app to stop its stream on req close', 3000);
      const atStop = sse.written;
      await sleep(100);
      // Stopped means stopped; and what it wrote after the client left is an event or two at most.
      expect({ stopped: sse.stopped, written: sse.written }).toEqual({ stopped: 1, written: atStop });
      expect(sse.written - received).toBeLessThanOrEqual(2);
    },
  },
  ...(['node', 'environ'] as const).map(
    (kind): Case => ({
      name: `explicit flush (${kind === 'node' ? "Node handlers: flushHeaders(), write('')" : "environ app: write('')"}): the head arrives at once, the first body byte 500 ms later (R-12)`,
      flavours: kind === 'node' ? ['node', 'express', 'koa'] : ['environ'],
      needs: ['earlyHeadViaClient'],
      async run(s, t) {
        for (const path of t.flavour === 'node' ? ['/flush', '/flush?how=write'] : ['/flush']) {
          const res = await s.request({ path, timing: true });
          expect(res.status).toBe(200);
          expect(res.headers['x-flushed']).toEqual(['yes']);
          expect(res.body.toString()).toBe('late body\n');
          expect({ path, headEarly: (res.headAt ?? Infinity) < 250, bodyLate: (res.bodyAt ?? 0) >= 400 }).toEqual({ path, headEarly: true, bodyLate: true });
        }
      },
    }),
  ),
  {
    // SCGI, uwsgi and CGI get the length: a web server buffers a chunked body for them.
    name: 'chunked request body: arrives whole and byte-exact (HTTP chunked, FastCGI without CONTENT_LENGTH)',
    async run(s) {
      const body = pattern(300 * 1024 + 7);
      const res = await s.request({ method: 'POST', path: '/echo', body, chunked: true, headers: octets });
      expect(res.status).toBe(200);
      expect(res.truncated).toBe(false);
      expect(JSON.parse(res.body.toString())).toMatchObject({ method: 'POST', length: body.length, sha256: sha(body) });
    },
  },
  {
    name: 'mount /app: /app/echo?x=1 gives SCRIPT_NAME /app and PATH_INFO /echo',
    server: 'mounted',
    // Hono routes on the full public URL (src/apps/fetch.ts: app.basePath), so it has no case here.
    flavours: ['environ', 'node', 'express', 'koa'],
    async run(s, t) {
      const res = await s.request({ path: '/app/echo?x=1' });
      expect(res.status).toBe(200);
      const json = JSON.parse(res.body.toString());
      // A Node handler gets the URL below the mount as req.url, the full one as req.originalUrl.
      if (t.flavour === 'environ') expect(json).toMatchObject({ script_name: '/app', path_info: '/echo', path: '/app/echo', query: 'x=1' });
      else expect(json).toMatchObject({ route: '/echo', path: '/app/echo', query: 'x=1' });
    },
  },
  {
    name: `limits: a body of exactly --max-body-bytes (${MAX_BODY}) is accepted`,
    server: 'limited',
    needs: ['bodyLimit'],
    async run(s) {
      const body = pattern(MAX_BODY);
      const res = await s.request({ method: 'POST', path: '/echo', body, headers: octets });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString())).toMatchObject({ length: MAX_BODY, sha256: sha(body) });
    },
  },
  {
    name: 'limits: a body one byte over --max-body-bytes is 413',
    server: 'limited',
    needs: ['bodyLimit'],
    async run(s, t) {
      expectReply(t.front, await s.request({ method: 'POST', path: '/echo', body: overLimit, headers: octets, exact: true }), 413, 'POST');
    },
  },
  {
    name: 'limits: a streamed body of exactly --max-body-bytes is accepted',
    server: 'limited',
    needs: ['bodyLimit', 'streamedBody'],
    async run(s) {
      const body = pattern(MAX_BODY);
      const res = await s.request({ method: 'POST', path: '/echo', body, chunked: true, headers: octets });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString())).toMatchObject({ length: MAX_BODY, sha256: sha(body) });
    },
  },
  {
    name: 'limits: a streamed body one byte over --max-body-bytes is 413',
    server: 'limited',
    needs: ['bodyLimit', 'streamedBody'],
    async run(s, t) {
      expectReply(t.front, await s.request({ method: 'POST', path: '/echo', body: overLimit, chunked: true, headers: octets, exact: true }), 413, 'POST');
    },
  },

  // gatewire's own responses: every status a request can provoke, GET and HEAD each.
  ...refusal('Content-Length over --max-body-bytes', 413, {
    server: 'limited',
    flavours: ['environ'],
    needs: ['bodyLimit'],
    request: (method) => ({ method, path: '/echo', body: overLimit, headers: octets }),
  }),
  ...refusal('a streamed body over --max-body-bytes (HTTP chunked, FastCGI without CONTENT_LENGTH)', 413, {
    server: 'limited',
    // The node flavour: the HTTP front's own limit on a Node handler's req (limitChunkedBody).
    flavours: ['environ', 'node'],
    needs: ['bodyLimit', 'streamedBody'],
    request: (method) => ({ method, path: '/echo', body: overLimit, chunked: true, headers: octets }),
  }),
  ...refusal('a NUL byte in the decoded path (%00)', 400, {
    flavours: ['environ'],
    needs: ['nulPath'],
    request: (method) => ({ method, path: '/echo%00' }),
  }),
  ...refusal('a header block over --max-header-bytes / --max-params-bytes', 431, {
    server: 'limited',
    flavours: ['environ'],
    needs: ['headLimit'],
    request: (method) => ({ method, path: '/echo', headers: { 'X-Big': 'b'.repeat(3000) } }),
  }),
  ...refusal('the app throws before its head', 500, {
    // The node flavour: a throwing Node handler (the HTTP front's callNode, the node bridge elsewhere).
    flavours: ['environ', 'node'],
    request: (method) => ({ method, path: '/error-before' }),
  }),
  ...refusal('--max-inflight reached', 503, {
    server: 'single',
    flavours: ['environ'],
    needs: ['inflightLimit'],
    request: (method) => ({ method, path: '/echo' }),
    // --max-inflight 1, and one request held in the app meanwhile.
    async provoke(s, send) {
      const held = s.request({ path: '/hold' });
      let res: MatrixResult;
      try {
        await until(() => gate.waiting === 1, 'the /hold request to reach the app');
        res = await send();
      } finally {
        gate.release();
      }
      expect((await held).status).toBe(200);
      return res;
    },
  }),
  ...refusal('a path outside --mount', 404, {
    server: 'mounted',
    flavours: ['environ'],
    needs: ['mountRefusal'],
    request: (method) => ({ method, path: '/elsewhere/echo' }),
  }),
  ...refusal('Transfer-Encoding: gzip', 501, {
    flavours: ['environ'],
    needs: ['httpWire'],
    request: (method) => ({ method, path: '/echo', headers: { 'Transfer-Encoding': 'gzip' } }),
  }),
  ...refusal('an HTTP/2.0 request line', 505, {
    flavours: ['environ'],
    needs: ['httpWire'],
    request: (method) => ({ method, path: '/echo', httpVersion: 'HTTP/2.0' }),
  }),
  ...refusal('a Content-Length that is not a number', 400, {
    flavours: ['environ'],
    needs: ['httpWire'],
    request: (method) => ({ method, path: '/echo', headers: { 'Content-Length': 'abc' } }),
  }),
  ...refusal('a request head not complete within --headers-timeout', 408, {
    server: 'impatient',
    headUnknown: 'node:http shows no request line before the head is complete, so the GET reply goes out and the connection closes',
    flavours: ['environ'],
    needs: ['httpWire'],
    request: (method) => ({ method, path: '/echo', incompleteHead: true }),
  }),
  {
    name: 'fetch: Hono streamText and streamSSE stream; their Transfer-Encoding and Connection are dropped, not a 500 (R-14)',
    flavours: ['hono'],
    async run(s, t) {
      const text = await s.request({ path: '/hono-stream-text' });
      expect({ status: text.status, body: text.body.toString(), truncated: text.truncated }).toEqual({ status: 200, body: 'one two', truncated: false });
      expect(text.headers['x-content-type-options']).toEqual(['nosniff']);
      const sse = await s.request({ path: '/hono-sse' });
      expect({ status: sse.status, body: sse.body.toString(), truncated: sse.truncated }).toEqual({ status: 200, body: 'event: tick\ndata: a\nid: 1\n\ndata: b\n\n', truncated: false });
      expect(sse.headers['content-type']).toEqual(['text/event-stream']);
      expect(sse.headers['cache-control']).toEqual(['no-cache']);
      if (!t.front.framing.includes('connection')) expect(sse.headers.connection).toBeUndefined();
    },
  },
  {
    name: 'fetch: a Response with Connection, Keep-Alive and Proxy-Connection is served without them (R-14)',
    flavours: ['hono'],
    async run(s, t) {
      const res = await s.request({ path: '/hop-by-hop' });
      expect({ status: res.status, body: res.body.toString(), kept: res.headers['x-kept'] }).toEqual({ status: 200, body: 'hop\n', kept: ['yes'] });
      expect(res.headers['proxy-connection']).toBeUndefined();
      for (const name of ['connection', 'keep-alive']) if (!t.front.framing.includes(name)) expect(res.headers[name]).toBeUndefined();
    },
  },
  {
    name: 'fetch: a body of known length (string, bytes, ArrayBuffer, Blob, URLSearchParams, c.text, c.json) has its Content-Length; HEAD too (R-15)',
    flavours: ['hono'],
    async run(s) {
      const expected: Record<string, Buffer> = {
        text: Buffer.from(LENGTH_BODY),
        json: Buffer.from(JSON.stringify({ body: LENGTH_BODY })),
        string: Buffer.from(LENGTH_BODY),
        bytes: Buffer.from(LENGTH_BODY),
        arraybuffer: Buffer.from(LENGTH_BODY),
        blob: Buffer.from(LENGTH_BODY),
        params: Buffer.from(new URLSearchParams({ body: LENGTH_BODY }).toString()),
        empty: Buffer.alloc(0),
      };
      for (const [kind, body] of Object.entries(expected)) {
        const res = await s.request({ path: `/length/${kind}` });
        expect({ kind, status: res.status, length: res.headers['content-length'], te: res.headers['transfer-encoding'], body: res.body.toString('latin1'), truncated: res.truncated }).toEqual({
          kind,
          status: 200,
          length: [String(body.length)],
          te: undefined,
          body: body.toString('latin1'),
          truncated: false,
        });
      }
      const head = await s.request({ method: 'HEAD', path: '/length/string' });
      expect({ status: head.status, body: head.body.length, truncated: head.truncated }).toEqual({ status: 200, body: 0, truncated: false });
    },
  },
  {
    // Only node:http's listener can give the connection away: the other fronts' web server (or
    // the upstream client's hop, for the via- harnesses, and inject() and `gatewire cgi`) owns it.
    name: 'Upgrade: on --http and --auto HTTP the upgrade handler gets it, not the app (H-15); over FastCGI, SCGI and uwsgi it is a plain request with HTTP_UPGRADE (F-47, S-13, U-12); through a hop and elsewhere a plain request (H-16)',
    server: 'upgrading',
    async run(s, t) {
      upgrades.calls = 0;
      upgrades.url = '';
      upgrades.appSaw = [];
      // A raw socket where the 101 can come (node:http's client hands a 101 to an 'upgrade' listener).
      const res = await s.request({ path: '/echo?x=1', headers: { Upgrade: 'matrix', Connection: 'Upgrade' }, exact: UPGRADE_FRONTS.has(t.front.name) });
      if (UPGRADE_FRONTS.has(t.front.name)) {
        expect({ status: res.status, body: res.body.toString('latin1'), calls: upgrades.calls, url: upgrades.url, appSaw: upgrades.appSaw }).toEqual({ status: 101, body: 'upgraded /echo?x=1', calls: 1, url: '/echo?x=1', appSaw: [] });
        return;
      }
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString())).toMatchObject({ method: 'GET', path: '/echo', query: 'x=1' });
      expect(upgrades.calls).toBe(0);
      if (GATEWAY_FRONTS.has(t.front.name)) expect(upgrades.appSaw).toEqual(['matrix']);
    },
  },
  {
    name: 'refusal 405: CONNECT (no tunnels)',
    flavours: ['environ'],
    needs: ['httpWire'],
    async run(s, t) {
      const res = await s.request({ method: 'CONNECT', path: 'localhost:80', headers: { Host: 'localhost:80' }, exact: true });
      expectReply(t.front, res, 405, 'CONNECT');
      expect(res.headers.allow?.[0]).toMatch(/^[A-Z]+(, [A-Z]+)*$/);
      expect(res.headers.allow?.[0]).not.toMatch(/CONNECT/);
    },
  },
];

/** Waits until the exchanges of a case closed their bodies (R-5), bounded. */
async function settle(watch: ContractWatch, before: number): Promise<void> {
  await until(() => watch.openBodies() <= before, 'the bodies to be closed', 2000).catch(() => undefined);
}

test('the harness list covers every front of the registry, inject(), gatewire cgi and every upstream client', () => {
  const names = HARNESSES.map((f) => f.name);
  expect(new Set(names).size).toBe(names.length);
  for (const front of FRONT_NAMES) {
    expect(REGISTRY_HARNESSES[front].length).toBeGreaterThan(0);
    for (const h of REGISTRY_HARNESSES[front]) expect(names).toContain(h.name);
  }
  expect(names).toEqual(expect.arrayContaining(['http', 'fastcgi', 'scgi', 'uwsgi', 'auto-http', 'auto-fastcgi', 'auto-scgi', 'auto-uwsgi', 'inject', 'cgi']));
  expect(names).toEqual(expect.arrayContaining(['via-scgi', 'via-uwsgi', 'via-fastcgi']));
});

describe.each(HARNESSES.map((f) => [f.name, f] as const))('behaviour matrix over %s', (_name, front) => {
  describe.each(FLAVOURS)('%s app', (flavour) => {
    const { service, watch } = validatedService(flavour);
    const servers = new Map<ServerKind, Promise<MatrixServer>>();
    const server = (kind: ServerKind): Promise<MatrixServer> => {
      let s = servers.get(kind);
      if (s === undefined) {
        s = front.start(kind === 'upgrading' ? withUpgrade(service) : service, SERVERS[kind]);
        servers.set(kind, s);
      }
      return s;
    };
    afterAll(async () => {
      for (const s of servers.values()) await (await s).close();
    });
    const cases = CASES.filter((k) => (k.flavours ?? FLAVOURS).includes(flavour));
    // A case that cannot apply to this protocol is not run; the reasons are one test of their
    // own (every one of them given by the harness), so the run shows no skipped tests.
    const notApplicable = cases.flatMap((c) => {
      const missing = (c.needs ?? []).find((need) => front.cannot[need] !== undefined);
      return missing === undefined ? [] : [{ name: c.name, reason: front.cannot[missing] }];
    });
    if (notApplicable.length > 0) {
      test(`${notApplicable.length} case(s) cannot apply to ${front.name}, each for a stated reason: ${[...new Set(notApplicable.map((n) => n.reason))].join('; ')}`, () => {
        for (const n of notApplicable) expect({ case: n.name, reason: typeof n.reason === 'string' && n.reason.length > 10 }).toEqual({ case: n.name, reason: true });
      });
    }
    for (const c of cases) {
      if (notApplicable.some((n) => n.name === c.name)) continue;
      test(c.name, async () => {
        const s = await server(c.server ?? 'plain');
        const open = watch.openBodies();
        watch.slips.length = 0;
        let failure: unknown;
        try {
          await c.run(s, { flavour, front });
        } catch (err) {
          failure = err;
        }
        await settle(watch, open);
        // A contract slip explains a failure best: reported first.
        expect(watch.slips).toEqual([]);
        if (failure !== undefined) throw failure;
        expect(watch.openBodies()).toBe(open);
      });
    }
  });
});
