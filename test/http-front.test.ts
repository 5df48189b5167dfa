/**
 * The HTTP/1.1 front over raw sockets: H-1..H-14 (docs/conformance.md §1.3) and every
 * hostile input of §1.4. Requests are written byte by byte as a client would, so what Node's
 * parser does and what gatewire adds are both exercised.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import net from 'node:net';
import type { App, Environ, Service } from '../src/app.js';
import { silentLogger } from '../src/log.js';
import { resolveOptions } from '../src/options.js';
import { Gateway } from '../src/server.js';
import { toService } from '../src/loader.js';

/** Echo of the environ as JSON, plus the body; /slow/N waits N ms first. */
const echo: App = async (environ, sr) => {
  const chunks: Buffer[] = [];
  for await (const c of environ['gatewire.input']) chunks.push(c as Buffer);
  const slow = /^\/slow\/(\d+)$/.exec(environ.PATH_INFO);
  if (slow) await new Promise((r) => setTimeout(r, Number(slow[1])));
  const vars: Record<string, unknown> = {};
  for (const k of Object.keys(environ)) if (!k.includes('.')) vars[k] = environ[k];
  vars['input_terminated'] = environ['gatewire.input_terminated'];
  vars['body'] = Buffer.concat(chunks).toString('latin1');
  sr('200 OK', [['Content-Type', 'application/json']]);
  return [JSON.stringify(vars)];
};

let gateway: Gateway;
let port: number;

async function start(service: Service, flags: Record<string, string | string[]> = {}): Promise<void> {
  const options = resolveOptions({ http: ['127.0.0.1:0'], ...flags }, {});
  gateway = new Gateway(service, options, silentLogger());
  const [bound] = await gateway.listen();
  port = (bound?.address as { port: number }).port;
}

/** Writes raw bytes, reads until the server closes or `idleMs` of silence. */
function raw(bytes: string | Buffer, idleMs = 300, p = port): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(p, '127.0.0.1');
    const chunks: Buffer[] = [];
    let timer = setTimeout(() => socket.destroy(), idleMs);
    socket.on('data', (c) => {
      chunks.push(c);
      clearTimeout(timer);
      timer = setTimeout(() => socket.destroy(), idleMs);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    socket.on('error', () => undefined);
    socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  });
}

const statusOf = (response: string): number => Number(/^HTTP\/1\.[01] (\d{3})/.exec(response)?.[1] ?? 0);
const bodyOf = (response: string): string => response.slice(response.indexOf('\r\n\r\n') + 4);
const envOf = (response: string): Record<string, string> => JSON.parse(Buffer.from(bodyOf(response), 'latin1').toString('utf8')) as Record<string, string>;

describe('HTTP front', () => {
  beforeAll(() => start(toService(echo, 'environ', 'echo'), { mount: '/app', maxBodyBytes: '1000', maxHeaderBytes: '16k' }));
  afterAll(() => gateway.close(500));

  test('the issue\'s echo case: mount, decoded PATH_INFO, raw query, REQUEST_URI, SERVER_PORT, REMOTE_ADDR, no HTTP_PROXY', async () => {
    const res = await raw('GET /app/a%20b/c?x=1+2&y HTTP/1.1\r\nHost: h\r\nProxy: http://evil:8080\r\nConnection: close\r\n\r\n');
    expect(statusOf(res)).toBe(200);
    const env = envOf(res);
    expect(env).toMatchObject({ SCRIPT_NAME: '/app', PATH_INFO: '/a b/c', QUERY_STRING: 'x=1+2&y', REQUEST_URI: '/app/a%20b/c?x=1+2&y', SERVER_PORT: String(port), REMOTE_ADDR: '127.0.0.1' });
    expect(env.HTTP_PROXY).toBeUndefined();
  });

  test('H-1 two Host headers → 400', async () => {
    expect(statusOf(await raw('GET /app HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'))).toBe(400);
  });
  test('H-1 a Host that is not host[:port] → 400', async () => {
    expect(statusOf(await raw('GET /app HTTP/1.1\r\nHost: a b/c\r\n\r\n'))).toBe(400);
    expect(statusOf(await raw('GET /app HTTP/1.1\r\nHost: a@b\r\n\r\n'))).toBe(400);
  });
  test('H-1 HTTP/1.1 without Host → 400 (Node)', async () => {
    expect(statusOf(await raw('GET /app HTTP/1.1\r\n\r\n'))).toBe(400);
  });

  test('H-2 Transfer-Encoding gzip and chunked on two lines → 501', async () => {
    expect(statusOf(await raw('POST /app HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'))).toBe(501);
  });
  test.each([
    ['chunked\\x0b', 'Transfer-Encoding: chunked\x0b'],
    ['\\xa0chunked', 'Transfer-Encoding: \xa0chunked'],
    ['name with \\xa0', 'Transfer-Encoding\xa0: chunked'],
    ['chunked, gzip', 'Transfer-Encoding: chunked, gzip'],
    ['chunked, chunked', 'Transfer-Encoding: chunked, chunked'],
  ])('§1.4 Transfer-Encoding %s → 400 or 501, never a body smuggled', async (_n, line) => {
    const res = await raw(`POST /app HTTP/1.1\r\nHost: h\r\n${line}\r\n\r\n3\r\nabc\r\n0\r\n\r\n`);
    expect([400, 501]).toContain(statusOf(res));
    expect(res).not.toContain('"body":"abc"');
  });
  test('§1.4 Transfer-Encoding ",chunked" is chunked (RFC 9110 list rule)', async () => {
    const res = await raw('POST /app HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
    expect(statusOf(res)).toBe(200);
    expect(envOf(res).body).toBe('abc');
  });
  test('Content-Length together with Transfer-Encoding → 400 (Node)', async () => {
    expect(statusOf(await raw('POST /app HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'))).toBe(400);
  });

  test('H-3 HTTP/2.0 request line → 505; HTTP/1.0 is served', async () => {
    expect(statusOf(await raw('GET /app HTTP/2.0\r\nHost: h\r\n\r\n'))).toBe(505);
    const res = await raw('GET /app/x HTTP/1.0\r\n\r\n');
    expect(statusOf(res)).toBe(200);
    expect(envOf(res).SERVER_PROTOCOL).toBe('HTTP/1.0');
  });

  test('H-4 a target that is neither origin-form, absolute-form nor OPTIONS * → 400', async () => {
    expect(statusOf(await raw('GET app HTTP/1.1\r\nHost: h\r\n\r\n'))).toBe(400);
    expect(statusOf(await raw('GET * HTTP/1.1\r\nHost: h\r\n\r\n'))).toBe(400);
  });
  test('H-4 absolute-form: its authority wins over Host (E-13); REQUEST_URI is path+query (E-7)', async () => {
    const res = await raw('GET http://example.com:81/app/p?q=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n');
    expect(statusOf(res)).toBe(200);
    expect(envOf(res)).toMatchObject({ HTTP_HOST: 'example.com:81', SERVER_NAME: 'example.com', PATH_INFO: '/p', REQUEST_URI: '/app/p?q=1' });
  });
  test('CONNECT is refused with 405', async () => {
    expect(statusOf(await raw('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'))).toBe(405);
  });

  test('H-5 / §1.4 X-Auth_User never becomes HTTP_X_AUTH_USER next to X-Auth-User', async () => {
    const res = await raw('GET /app HTTP/1.1\r\nHost: h\r\nX-Auth-User: real\r\nX-Auth_User: admin\r\nConnection: close\r\n\r\n');
    expect(envOf(res).HTTP_X_AUTH_USER).toBe('real');
  });
  test('H-5 names with other characters are dropped too', async () => {
    const res = await raw('GET /app HTTP/1.1\r\nHost: h\r\nX.Dot: 1\r\nX~Tilde: 1\r\nConnection: close\r\n\r\n');
    const keys = Object.keys(envOf(res)).filter((k) => k.startsWith('HTTP_X'));
    expect(keys).toEqual([]);
  });
  test('§1.4 Proxy: never becomes HTTP_PROXY', async () => {
    const res = await raw('GET /app HTTP/1.1\r\nHost: h\r\nProxy: http://evil:8080\r\nConnection: close\r\n\r\n');
    expect('HTTP_PROXY' in envOf(res)).toBe(false);
  });

  test('H-6 Content-Length over the limit → 413 before the body is read', async () => {
    expect(statusOf(await raw('POST /app HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n'))).toBe(413);
  });
  test('H-6 Expect: 100-continue with an oversized body → 413 and no 100', async () => {
    const res = await raw('POST /app HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n');
    expect(res.startsWith('HTTP/1.1 413')).toBe(true);
    expect(res).not.toContain('100 Continue');
  });
  test('H-6 Expect: 100-continue with an acceptable body → 100, then the answer', async () => {
    const res = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      let got = '';
      s.on('data', (c) => {
        got += c.toString('latin1');
        if (got.includes('100 Continue') && !got.includes('200 OK')) s.write('hello');
      });
      s.on('close', () => resolve(got));
      s.write('POST /app HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
    });
    expect(res.startsWith('HTTP/1.1 100 Continue')).toBe(true);
    expect(res).toContain('"body":"hello"');
  });
  test('H-6 a chunked body over the limit → 413', async () => {
    const big = 'a'.repeat(800);
    const res = await raw(`POST /app HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n${big}\r\n320\r\n${big}\r\n0\r\n\r\n`);
    expect(statusOf(res)).toBe(413);
  });

  test('H-7 chunked bodies: CONTENT_LENGTH absent, input_terminated, no HTTP_TRANSFER_ENCODING', async () => {
    const res = await raw('POST /app HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n');
    const env = envOf(res);
    expect(env.body).toBe('abcde');
    expect(env.CONTENT_LENGTH).toBeUndefined();
    expect(env.HTTP_TRANSFER_ENCODING).toBeUndefined();
    expect(env.input_terminated).toBe(true);
  });

  test('H-8 / §1.4 %00 in the path → 400', async () => {
    expect(statusOf(await raw('GET /app/a%00b HTTP/1.1\r\nHost: h\r\n\r\n'))).toBe(400);
  });
  test('§1.4 %2F decodes to / in PATH_INFO; REQUEST_URI stays raw', async () => {
    const env = envOf(await raw('GET /app/a%2Fb HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n'));
    expect(env.PATH_INFO).toBe('/a/b');
    expect(env.REQUEST_URI).toBe('/app/a%2Fb');
  });
  test('§1.4 70 KB of headers → 431', async () => {
    const res = await raw(`GET /app HTTP/1.1\r\nHost: h\r\nX-Big: ${'a'.repeat(70 * 1024)}\r\n\r\n`);
    expect(statusOf(res)).toBe(431);
  });
  test('§1.4 a header value starting with "() {" is accepted as data', async () => {
    const env = envOf(await raw('GET /app HTTP/1.1\r\nHost: h\r\nX-Shell: () { :; }; echo hi\r\nConnection: close\r\n\r\n'));
    expect(env.HTTP_X_SHELL).toBe('() { :; }; echo hi');
  });
  test('§1.4 non-ASCII byte in a header value arrives as latin1 (E-1)', async () => {
    const env = envOf(await raw('GET /app HTTP/1.1\r\nHost: h\r\nX-Name: caf\xe9\r\nConnection: close\r\n\r\n'));
    expect(env.HTTP_X_NAME).toBe('caf\u00e9');
  });
  test('a path outside the mount → 404 (E-5.1)', async () => {
    expect(statusOf(await raw('GET /application HTTP/1.1\r\nHost: h\r\n\r\n'))).toBe(404);
  });

  test('H-13 pipelined requests are answered in order, even when the first is slower', async () => {
    const res = await raw(
      'GET /app/slow/80 HTTP/1.1\r\nHost: h\r\n\r\nGET /app/slow/0?second HTTP/1.1\r\nHost: h\r\n\r\nGET /app/third HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
      1000,
    );
    const order = [...res.matchAll(/"PATH_INFO":"([^"]*)"/g)].map((m) => m[1]);
    expect(order).toEqual(['/slow/80', '/slow/0', '/third']);
  });
  test('keep-alive: several requests on one connection', async () => {
    const res = await raw('GET /app/1 HTTP/1.1\r\nHost: h\r\n\r\nGET /app/2 HTTP/1.1\r\nHost: h\r\n\r\n', 300);
    expect(res.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(2);
  });
});

describe('HTTP front: response framing (H-12) and timeouts (H-9)', () => {
  const app: App = (environ: Environ, sr) => {
    switch (environ.PATH_INFO) {
      case '/stream':
        sr('200 OK', [['Content-Type', 'text/plain']]);
        return (async function* () {
          yield 'a';
          yield 'b';
        })();
      case '/fail-after':
        sr('200 OK', [['Content-Type', 'text/plain']]);
        return (async function* () {
          yield 'a';
          throw new Error('late');
        })();
      case '/too-long':
        sr('200 OK', [['Content-Length', '2']]);
        return (async function* () {
          yield 'abcd';
        })();
      default:
        sr('200 OK', []);
        return ['one'];
    }
  };
  beforeAll(() => start(toService(app, 'environ', 'framing'), { headersTimeout: '300ms', keepAliveTimeout: '200ms' }));
  afterAll(() => gateway.close(500));

  test('a one-chunk body gets a Content-Length', async () => {
    const res = await raw('GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
    expect(res).toMatch(/\r\nContent-Length: 3\r\n/i);
  });
  test('a streamed body is chunked on HTTP/1.1, with the terminal chunk', async () => {
    const res = await raw('GET /stream HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
    expect(res).toMatch(/Transfer-Encoding: chunked/i);
    expect(res.endsWith('0\r\n\r\n')).toBe(true);
  });
  test('a streamed body on HTTP/1.0 is close-delimited, never chunked', async () => {
    const res = await raw('GET /stream HTTP/1.0\r\n\r\n');
    expect(res).not.toMatch(/Transfer-Encoding/i);
    expect(bodyOf(res)).toBe('ab');
  });
  test('an error after headers: no terminal chunk, the connection is cut', async () => {
    const res = await raw('GET /fail-after HTTP/1.1\r\nHost: h\r\n\r\n');
    expect(statusOf(res)).toBe(200);
    expect(res.endsWith('0\r\n\r\n')).toBe(false);
  });
  test('R-8 on the wire: never more bytes than the declared Content-Length', async () => {
    const res = await raw('GET /too-long HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n');
    expect(bodyOf(res).startsWith('ab')).toBe(true);
    expect(res).not.toContain('abcd');
    expect(res.match(/HTTP\/1\.1 200/g)).toHaveLength(1); // the connection was cut: no desync
  });
  test('H-9 a request head that never completes is answered 408 and closed', async () => {
    const res = await raw('GET / HTTP/1.1\r\nHost: h\r\n', 5000);
    expect(statusOf(res)).toBe(408);
  });
  test('H-9 an idle kept-alive connection is closed after the keep-alive timeout', async () => {
    const closed = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('data', () => undefined);
      s.on('close', () => resolve(true));
      s.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
      setTimeout(() => resolve(false), 5000).unref();
    });
    expect(closed).toBe(true);
  });
});

describe('HTTP front: IPv4-mapped peers (H-11)', () => {
  test('a dual-stack listener reports REMOTE_ADDR without ::ffff:', async () => {
    const options = resolveOptions({ http: ['[::]:0'] }, {});
    const gw = new Gateway(toService(echo, 'environ', 'echo'), options, silentLogger());
    let bound;
    try {
      [bound] = await gw.listen();
    } catch (err) {
      // No IPv6 on this machine: the normalization itself is unit-tested in environ.test.ts (E-14).
      expect(String(err)).toMatch(/EAFNOSUPPORT|EADDRNOTAVAIL/);
      return;
    }
    const p = (bound?.address as { port: number }).port;
    const res = await raw('GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n', 300, p);
    expect(envOf(res).REMOTE_ADDR).toBe('127.0.0.1');
    await gw.close(200);
  });
});

describe('HTTP front: --max-inflight (H-14)', () => {
  /** Requests held in the app until release(); then the gate stays open. */
  let holding = 0;
  let open!: () => void;
  let opened = new Promise<void>((r) => (open = r));
  const release = (): void => open();
  beforeEach(() => {
    holding = 0;
    opened = new Promise<void>((r) => (open = r));
  });
  afterEach(() => release());

  const held: App = async (_environ, sr) => {
    holding++;
    await opened;
    sr('200 OK', [['Content-Type', 'text/plain']]);
    return ['held'];
  };
  const heldNode = (_req: IncomingMessage, res: ServerResponse): void => {
    holding++;
    void opened.then(() => res.end('held'));
  };

  async function startCapped(service: Service, max: string): Promise<{ gw: Gateway; p: number }> {
    const gw = new Gateway(service, resolveOptions({ http: ['127.0.0.1:0'], maxInflight: max }, {}), silentLogger());
    const [bound] = await gw.listen();
    return { gw, p: (bound?.address as { port: number }).port };
  }

  async function until(what: string, cond: () => boolean): Promise<void> {
    for (const deadline = Date.now() + 10_000; !cond(); await new Promise((r) => setTimeout(r, 5))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    }
  }

  const GET = 'GET /hold HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n';

  test.each([
    ['an environ app', toService(held, 'environ', 'held')],
    ['a Node handler', toService(heldNode, 'node', 'held node')],
  ])('H-14: 10 concurrent requests to %s at --max-inflight 4 → four 200, six 503 (the gateway fronts\' reply, Connection: close); then 200 again', async (_name, service) => {
    const { gw, p } = await startCapped(service, '4');
    try {
      const answers: string[] = [];
      const all = Array.from({ length: 10 }, () => raw(GET, 10_000, p).then((r) => (answers.push(r), r)));
      await until('four requests in the app and six answered', () => holding === 4 && answers.length === 6);
      release();
      const statuses = (await Promise.all(all)).map(statusOf).sort();
      expect(statuses).toEqual([200, 200, 200, 200, 503, 503, 503, 503, 503, 503]);
      const refused = answers[0] as string;
      expect(refused).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
      expect(refused).toMatch(/\r\nContent-Type: text\/plain; charset=utf-8\r\n/i);
      expect(refused).toMatch(/\r\nConnection: close\r\n/i);
      expect(bodyOf(refused)).toMatch(/^Service Unavailable\nrequest id: \S+\n$/);
      expect(Number(/\r\nContent-Length: (\d+)\r\n/i.exec(refused)?.[1])).toBe(Buffer.byteLength(bodyOf(refused), 'latin1'));
      expect(statusOf(await raw(GET, 10_000, p))).toBe(200);
    } finally {
      await gw.close(500);
    }
  });

  test('H-14: HEAD refused at the cap gets the 503 head without a body', async () => {
    const { gw, p } = await startCapped(toService(held, 'environ', 'held'), '1');
    try {
      const first = raw(GET, 10_000, p);
      await until('one request in the app', () => holding === 1);
      const head = await raw('HEAD /hold HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n', 10_000, p);
      expect(statusOf(head)).toBe(503);
      expect(bodyOf(head)).toBe('');
      release();
      expect(statusOf(await first)).toBe(200);
    } finally {
      await gw.close(500);
    }
  });

  test('H-14: Expect: 100-continue at the cap → 503 without 100 Continue', async () => {
    const { gw, p } = await startCapped(toService(held, 'environ', 'held'), '1');
    try {
      const first = raw(GET, 10_000, p);
      await until('one request in the app', () => holding === 1);
      const res = await raw('POST /hold HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n', 1000, p);
      expect(statusOf(res)).toBe(503);
      expect(res).not.toContain('100 Continue');
      release();
      expect(statusOf(await first)).toBe(200);
    } finally {
      await gw.close(500);
    }
  });

  test.each([
    ['an environ app', toService(held, 'environ', 'held')],
    ['a Node handler', toService(heldNode, 'node', 'held node')],
  ])('H-14: pipelined requests to %s on a connection that closes before their answers leave the count', async (_name, service) => {
    const { gw, p } = await startCapped(service, '3');
    try {
      // Three pipelined requests reach the app; the client goes before any is answered. The second
      // and third responses wait behind the first: node:http never finishes nor closes them.
      const socket = net.connect(p, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.write('GET /hold HTTP/1.1\r\nHost: h\r\n\r\n'.repeat(3));
      await until('three requests in the app', () => holding === 3);
      const gone = new Promise((r) => socket.once('close', r));
      socket.destroy();
      await gone;
      release();
      // Nothing is left in flight: three new requests fit under the cap at once.
      holding = 0;
      opened = new Promise<void>((r) => (open = r));
      const again = Array.from({ length: 3 }, () => raw(GET, 10_000, p));
      await until('three new requests in the app', () => holding === 3);
      release();
      expect((await Promise.all(again)).map(statusOf)).toEqual([200, 200, 200]);
    } finally {
      await gw.close(500);
    }
  });
});
