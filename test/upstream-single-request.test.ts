/**
 * The SCGI and uwsgi upstream clients (src/upstream/single-request.ts), end to end:
 *
 *   node:http client → gatewire --http (the upstream App) → gatewire --scgi / --uwsgi → echo app
 *
 * then hostile fake upstreams (a net.Server written here), then real uWSGI (--scgi-socket and
 * --uwsgi-socket) when it is installed. Timeouts are a few hundred ms where a test needs one;
 * nothing asserts on timing.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as path from 'node:path';
import type { App, Body, Environ, Service, StartResponse } from '../src/app.js';
import type { Gateway } from '../src/server.js';
import { OptionError } from '../src/options.js';
import { parseUpstreamUrl } from '../src/upstream/address.js';
import { scgiUpstream, uwsgiUpstream, type UpstreamAddress, type UpstreamOptions } from '../src/upstream/index.js';
import { buildService } from '../src/compose.js';
import { resolveOptions } from '../src/options.js';
import { LoadError } from '../src/loader.js';
import { silentLogger } from '../src/log.js';
import { httpRequest, type MatrixRequest, type MatrixResult } from './helpers/fronts.js';
import { captureLogger, startGateway, waitFor } from './helpers/scgi-client.js';
import { describeWithPeers, peerPath, startProcess, type PeerProcess } from './helpers/peers.js';
import { freePort } from './helpers/net.js';

jest.setTimeout(60_000);

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

// ---------------------------------------------------------------------------------------
// The app behind the upstream front: echoes its CGI variables and the body's hash
// ---------------------------------------------------------------------------------------

async function readAll(environ: Environ): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of environ['gatewire.input'] as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

const echoApp: App = async (environ: Environ, sr: StartResponse): Promise<Body> => {
  const route = environ.PATH_INFO;
  if (route === '/204') {
    sr('204 No Content', [['X-Route', '204']]);
    return [];
  }
  if (route === '/cookies') {
    sr('200 OK', [['Content-Type', 'text/plain'], ['Set-Cookie', 'a=1; Path=/'], ['Set-Cookie', 'b=2; Path=/']]);
    return ['two cookies\n'];
  }
  if (route === '/fail') {
    sr('500 Internal Server Error', [['Content-Type', 'text/plain'], ['X-Failed', 'yes']]);
    return ['it failed\n'];
  }
  if (route === '/redirect') {
    sr('302 Found', [['Location', 'http://example.test/elsewhere']]);
    return [];
  }
  const body = await readAll(environ);
  const vars: Record<string, string> = {};
  for (const k of Object.keys(environ)) if (!k.includes('.') && typeof environ[k] === 'string') vars[k] = environ[k] as string;
  sr('200 OK', [['Content-Type', 'application/json']]);
  return [JSON.stringify({ vars, bytes: body.length, sha256: sha256(body) })];
};
const echoService: Service = { app: echoApp, interface: 'environ' };

interface Echo {
  vars: Record<string, string>;
  bytes: number;
  sha256: string;
}

function json(res: MatrixResult): Echo {
  expect({ status: res.status, truncated: res.truncated }).toEqual({ status: 200, truncated: false });
  return JSON.parse(res.body.toString('utf8')) as Echo;
}

// ---------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------

const gateways: Gateway[] = [];
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.close(1000)));
});

/** gatewire --http serving `app`; returns its port. */
async function httpFront(app: App): Promise<number> {
  const { gateway, ports } = await startGateway({ app, interface: 'environ' }, { http: ['127.0.0.1:0'] });
  gateways.push(gateway);
  return ports[0] as number;
}

const tcp = (port: number): UpstreamAddress => ({ kind: 'tcp', host: '127.0.0.1', port });

let backend: { scgi: number; uwsgi: number; http: number };
beforeAll(async () => {
  const { gateway, ports } = await startGateway(echoService, { scgi: ['127.0.0.1:0'], uwsgi: ['127.0.0.1:0'], http: ['127.0.0.1:0'] });
  gateways.push(gateway);
  // Listener order follows the registry: http, fastcgi, scgi, uwsgi.
  const [http, scgi, uwsgi] = ports as [number, number, number];
  backend = { http, scgi, uwsgi };
});

// ---------------------------------------------------------------------------------------
// Through a real gatewire upstream front
// ---------------------------------------------------------------------------------------

describe.each([
  ['scgi', (port: number) => scgiUpstream(tcp(port))],
  ['uwsgi', (port: number) => uwsgiUpstream(tcp(port))],
] as const)('%s upstream in front of gatewire', (protocol, makeApp) => {
  let port: number;
  beforeAll(async () => {
    port = await httpFront(makeApp(backend[protocol]));
  });
  const send = (req: MatrixRequest): Promise<MatrixResult> => httpRequest(port, req);

  test(`UP-13 UP-14 UP-24: a GET with query and headers arrives with the environ a direct request gets (${protocol})`, async () => {
    const req: MatrixRequest = {
      path: '/some/where%20else?x=1&y=%C3%A9',
      headers: { Host: 'app.example', 'X-Custom': 'hello', 'Accept-Language': 'fr', Cookie: 'k=v', Proxy: 'http://evil.test/' },
    };
    const viaUpstream = json(await send(req)).vars;
    const direct = json(await httpRequest(backend.http, req)).vars;
    for (const key of ['REQUEST_METHOD', 'SCRIPT_NAME', 'PATH_INFO', 'QUERY_STRING', 'REQUEST_URI', 'REMOTE_ADDR', 'SERVER_PROTOCOL']) {
      expect({ key, value: viaUpstream[key] }).toEqual({ key, value: direct[key] });
    }
    const httpKeys = (v: Record<string, string>): Record<string, string> =>
      Object.fromEntries(Object.entries(v).filter(([k]) => k.startsWith('HTTP_') && k !== 'HTTP_CONNECTION' && k !== 'HTTP_PROXY'));
    expect(httpKeys(viaUpstream)).toEqual(httpKeys(direct));
    expect(viaUpstream).toMatchObject({ REQUEST_METHOD: 'GET', PATH_INFO: '/some/where else', QUERY_STRING: 'x=1&y=%C3%A9', HTTP_X_CUSTOM: 'hello', REMOTE_ADDR: '127.0.0.1' });
    expect(viaUpstream.HTTP_PROXY).toBeUndefined();
    expect(viaUpstream.HTTP_CONNECTION).toBeUndefined();
    expect(viaUpstream.CONTENT_LENGTH ?? '0').toBe('0');
  });

  test(`UP-4 UP-5: an 8 MiB POST body arrives whole, streamed with its CONTENT_LENGTH (${protocol})`, async () => {
    const body = randomBytes(8 * 1024 * 1024);
    const echo = json(await send({ method: 'POST', path: '/upload', body, headers: { 'Content-Type': 'application/octet-stream' } }));
    expect({ bytes: echo.bytes, sha256: echo.sha256, length: echo.vars.CONTENT_LENGTH }).toEqual({ bytes: body.length, sha256: sha256(body), length: String(body.length) });
  });

  test(`UP-4: a chunked body is given a CONTENT_LENGTH (${protocol})`, async () => {
    const body = randomBytes(100_000);
    const echo = json(await send({ method: 'POST', path: '/chunked', body, chunked: true }));
    expect({ bytes: echo.bytes, sha256: echo.sha256, length: echo.vars.CONTENT_LENGTH }).toEqual({ bytes: body.length, sha256: sha256(body), length: String(body.length) });
  });

  test(`UP-17: HEAD gets the head without a body (${protocol})`, async () => {
    const res = await send({ method: 'HEAD', path: '/head', exact: true });
    expect({ status: res.status, body: res.body.length, type: res.headers['content-type'] }).toEqual({ status: 200, body: 0, type: ['application/json'] });
  });

  test(`UP-17: a 204 passes with no body (${protocol})`, async () => {
    const res = await send({ path: '/204', exact: true });
    expect({ status: res.status, body: res.body.length, route: res.headers['x-route'], truncated: res.truncated }).toEqual({ status: 204, body: 0, route: ['204'], truncated: false });
  });

  test(`UP-17: two Set-Cookie fields stay apart (${protocol})`, async () => {
    const res = await send({ path: '/cookies' });
    expect({ status: res.status, cookies: res.headers['set-cookie'], body: res.body.toString() }).toEqual({ status: 200, cookies: ['a=1; Path=/', 'b=2; Path=/'], body: 'two cookies\n' });
  });

  test(`UP-15: the upstream's 500 passes through with its body (${protocol})`, async () => {
    const res = await send({ path: '/fail' });
    expect({ status: res.status, failed: res.headers['x-failed'], body: res.body.toString(), truncated: res.truncated }).toEqual({ status: 500, failed: ['yes'], body: 'it failed\n', truncated: false });
  });

  test(`UP-16: a redirect keeps its status and Location (${protocol})`, async () => {
    const res = await send({ path: '/redirect' });
    expect({ status: res.status, location: res.headers['location'] }).toEqual({ status: 302, location: ['http://example.test/elsewhere'] });
  });
});

test('UP-4: an unknown-length body over maxBufferedBody is answered 413', async () => {
  const port = await httpFront(scgiUpstream(tcp(backend.scgi), { maxBufferedBody: 1000 }));
  const res = await httpRequest(port, { method: 'POST', path: '/big', body: randomBytes(5000), chunked: true });
  expect(res.status).toBe(413);
});

// ---------------------------------------------------------------------------------------
// Hostile fake upstreams
// ---------------------------------------------------------------------------------------

interface Fake {
  port: number;
  /** Connections accepted, and how many of them the fake saw closed. */
  accepted: number;
  closed: number;
  close(): Promise<void>;
}

/** A net.Server that runs `behave` on each connection once the request head has arrived. */
async function fakeUpstream(behave: (socket: net.Socket, first: Buffer) => void): Promise<Fake> {
  const sockets = new Set<net.Socket>();
  const fake: Fake = {
    port: 0,
    accepted: 0,
    closed: 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server = net.createServer((socket) => {
    fake.accepted++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      fake.closed++;
      sockets.delete(socket);
    });
    socket.once('data', (first: Buffer) => behave(socket, first));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.port = (server.address() as net.AddressInfo).port;
  return fake;
}

const HOSTILE_OPTIONS: UpstreamOptions = { readTimeout: 300, connectTimeout: 300 };
const fakes: Fake[] = [];
afterAll(async () => {
  await Promise.all(fakes.map((f) => f.close()));
});

describe.each([
  ['scgi', scgiUpstream, 'Status: 200 OK\r\nContent-Type: text/plain\r\n'],
  ['uwsgi', uwsgiUpstream, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n'],
] as const)('hostile %s upstreams', (protocol, make, okHead) => {
  async function through(behave: (socket: net.Socket, first: Buffer) => void, req: MatrixRequest = { path: '/' }): Promise<{ res: MatrixResult; fake: Fake; log: ReturnType<typeof captureLogger> }> {
    const fake = await fakeUpstream(behave);
    fakes.push(fake);
    const log = captureLogger();
    const port = await httpFront(make(tcp(fake.port), { ...HOSTILE_OPTIONS, logger: log }));
    const res = await httpRequest(port, req);
    return { res, fake, log };
  }

  test(`UP-33: connection refused → 502 and one log line with the request id (${protocol})`, async () => {
    const closedPort = await freePort();
    const log = captureLogger();
    const port = await httpFront(make(tcp(closedPort), { ...HOSTILE_OPTIONS, logger: log }));
    const res = await httpRequest(port, { path: '/' });
    expect(res.status).toBe(502);
    expect(res.body.toString()).toMatch(/^Bad Gateway\nrequest id: /);
    expect(log.matching(/ECONNREFUSED/, 'error')).toHaveLength(1);
  });

  test(`UP-10: garbage instead of a head → 502 (${protocol})`, async () => {
    const { res, log } = await through((s) => s.end('\x00\x01garbage without any structure\r\n\r\n'));
    expect(res.status).toBe(502);
    expect(log.matching(/502/, 'error')).toHaveLength(1);
  });

  test(`UP-10: a 9000-byte header line → 502 (${protocol})`, async () => {
    const { res } = await through((s) => s.end(`${okHead}X-Long: ${'a'.repeat(9000)}\r\n\r\nbody`));
    expect(res.status).toBe(502);
  });

  test(`UP-15: a bad status → 502 (${protocol})`, async () => {
    const head = protocol === 'scgi' ? 'Status: 99 Odd\r\n\r\n' : 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n';
    const { res } = await through((s) => s.end(head));
    expect(res.status).toBe(502);
  });

  test(`UP-27: an upstream that never answers → 504 after the read timeout (${protocol})`, async () => {
    const { res, fake } = await through(() => undefined);
    expect(res.status).toBe(504);
    await waitFor(() => fake.closed === fake.accepted, 'the upstream connection to be closed');
  });

  test(`UP-27, R-12: a head, then silence: the head goes out alone (a flush, as nginx passes it on), and the read timeout cuts the response (${protocol})`, async () => {
    const { res, fake } = await through((s) => s.write(`${okHead}\r\n`), { path: '/', timing: true });
    expect({ status: res.status, truncated: res.truncated, body: res.body.length }).toEqual({ status: 200, truncated: true, body: 0 });
    expect(res.headAt ?? Infinity).toBeLessThan(300);
    await waitFor(() => fake.closed === fake.accepted, 'the upstream connection to be closed');
  });

  test(`UP-12: a head, then a reset before any body byte: 502, not a cut 200 (${protocol})`, async () => {
    const { res } = await through((s) => {
      s.write(`${okHead}\r\n`);
      setTimeout(() => s.resetAndDestroy(), 10);
    });
    expect(res.status).toBe(502);
  });

  test(`UP-12: closing mid-body (short of Content-Length) → the client sees a truncated response (${protocol})`, async () => {
    const { res } = await through((s) => {
      s.write(`${okHead}Content-Length: 1000\r\n\r\n${'x'.repeat(100)}`);
      setTimeout(() => s.end(), 50);
    });
    expect({ status: res.status, truncated: res.truncated }).toEqual({ status: 200, truncated: true });
    expect(res.body.length).toBeLessThan(1000);
  });

  test(`UP-12: a reset mid-body (no Content-Length) → the client sees a truncated response (${protocol})`, async () => {
    const { res } = await through((s) => {
      s.write(`${okHead}\r\n${'x'.repeat(100)}`);
      setTimeout(() => s.resetAndDestroy(), 50);
    });
    expect({ status: res.status, truncated: res.truncated }).toEqual({ status: 200, truncated: true });
  });

  test(`UP-17: bytes past Content-Length are dropped, the response ends cleanly (${protocol})`, async () => {
    const { res } = await through((s) => s.end(`${okHead}Content-Length: 5\r\nConnection: close\r\n\r\nhello, and more`));
    expect({ status: res.status, body: res.body.toString(), truncated: res.truncated }).toEqual({ status: 200, body: 'hello', truncated: false });
  });

  test(`UP-18: a header name that is not a token, or a control character in a value → 502 (${protocol})`, async () => {
    for (const field of ['Bad Name: x', 'X-Ctl: a\x01b']) {
      const { res } = await through((s) => s.end(`${okHead}${field}\r\n\r\nbody`));
      expect({ field, status: res.status }).toEqual({ field, status: 502 });
    }
  });

  test(`UP-6: the body is still written while the answer is read (an upstream that answers first) (${protocol})`, async () => {
    const size = 4 * 1024 * 1024;
    const { res } = await through(
      (s, first) => {
        // The head goes out at once; the byte count once the whole body is in (head bytes included).
        s.write(`${okHead}\r\n`);
        let seen = first.length;
        s.on('data', (c: Buffer) => {
          seen += c.length;
          if (seen >= size) s.end(`got at least ${size}`);
        });
      },
      { method: 'POST', path: '/', body: randomBytes(size) },
    );
    expect({ status: res.status, body: res.body.toString(), truncated: res.truncated }).toEqual({ status: 200, body: `got at least ${size}`, truncated: false });
  });

  test(`UP-31: the client going away mid-body closes the upstream connection (${protocol})`, async () => {
    let timer: NodeJS.Timeout | undefined;
    const { res, fake } = await through(
      (s) => {
        s.write(`${okHead}\r\n`);
        // A body that never ends, a KiB at a time.
        timer = setInterval(() => {
          if (!s.destroyed) s.write('y'.repeat(1024));
        }, 10);
        s.on('close', () => clearInterval(timer));
      },
      { path: '/', abortAfterBytes: 4096 },
    );
    expect(res.truncated).toBe(true);
    await waitFor(() => fake.accepted === 1 && fake.closed === 1, 'the fake upstream to see its connection closed');
    clearInterval(timer);
  });
});

// ---------------------------------------------------------------------------------------
// The command line pieces: --upstream URL and composition
// ---------------------------------------------------------------------------------------

describe('--upstream', () => {
  test('URL forms', () => {
    expect(parseUpstreamUrl('scgi://127.0.0.1:9000')).toEqual({ protocol: 'scgi', address: { kind: 'tcp', host: '127.0.0.1', port: 9000 } });
    expect(parseUpstreamUrl('uwsgi://[::1]:3031')).toEqual({ protocol: 'uwsgi', address: { kind: 'tcp', host: '::1', port: 3031 } });
    expect(parseUpstreamUrl('scgi://unix:/run/app.sock')).toEqual({ protocol: 'scgi', address: { kind: 'unix', path: '/run/app.sock' } });
    expect(parseUpstreamUrl('uwsgi://unix:/run/u.sock')).toEqual({ protocol: 'uwsgi', address: { kind: 'unix', path: '/run/u.sock' } });
  });
  test.each(['127.0.0.1:9000', 'http://127.0.0.1:80', 'scgi://9000', 'scgi://host:', 'scgi://unix:', 'uwsgi://h:70000', 'scgi://h:0', 'scgi://h:9000/path'])('bad URL %j → OptionError', (url) => {
    expect(() => parseUpstreamUrl(url)).toThrow(OptionError);
  });
  test('FastCGI forms: fastcgi://, fcgi://, the +unix form (socket path as the URL path) and nginx\'s unix: form', () => {
    expect(parseUpstreamUrl('fastcgi://127.0.0.1:9000')).toEqual({ protocol: 'fastcgi', address: { kind: 'tcp', host: '127.0.0.1', port: 9000 } });
    expect(parseUpstreamUrl('fcgi://localhost:9000/')).toEqual({ protocol: 'fastcgi', address: { kind: 'tcp', host: 'localhost', port: 9000 } });
    expect(parseUpstreamUrl('fastcgi+unix:///run/php/php8.2-fpm.sock')).toEqual({ protocol: 'fastcgi', address: { kind: 'unix', path: '/run/php/php8.2-fpm.sock' } });
    expect(parseUpstreamUrl('uwsgi+unix:///run/u%20x.sock')).toEqual({ protocol: 'uwsgi', address: { kind: 'unix', path: '/run/u x.sock' } });
    expect(parseUpstreamUrl('fastcgi://unix:/run/php.sock')).toEqual({ protocol: 'fastcgi', address: { kind: 'unix', path: '/run/php.sock' } });
    expect(() => parseUpstreamUrl('fastcgi+unix://relative.sock')).toThrow(/absolute socket path/);
    expect(() => parseUpstreamUrl('fastcgi+unix:///')).toThrow(/needs a socket path/);
    expect(() => parseUpstreamUrl('gopher://h:70')).toThrow(/unknown protocol "gopher"/);
  });
  test('GATEWIRE_UPSTREAM resolves like the flag; several, comma-separated, make a group', () => {
    expect(resolveOptions({}, { GATEWIRE_UPSTREAM: 'uwsgi://127.0.0.1:3031' }).upstream).toEqual([{ protocol: 'uwsgi', address: { kind: 'tcp', host: '127.0.0.1', port: 3031 } }]);
    expect(resolveOptions({}, { GATEWIRE_UPSTREAM: 'scgi://a:1,scgi://b:2' }).upstream.map((t) => t.address)).toEqual([
      { kind: 'tcp', host: 'a', port: 1 },
      { kind: 'tcp', host: 'b', port: 2 },
    ]);
    expect(resolveOptions({}, {}).upstream).toEqual([]);
  });
  test('--upstream-param NAME=VALUE: repeatable, the name checked', () => {
    expect(resolveOptions({ upstreamParam: ['SCRIPT_FILENAME=/srv/a.php', 'PHP_VALUE=x=1'] }, {}).upstreamParam).toEqual([
      ['SCRIPT_FILENAME', '/srv/a.php'],
      ['PHP_VALUE', 'x=1'],
    ]);
    expect(() => resolveOptions({ upstreamParam: ['NOEQUALS'] }, {})).toThrow(OptionError);
    expect(() => resolveOptions({ upstreamParam: ['BAD-NAME=1'] }, {})).toThrow(OptionError);
  });
  test('buildService: mixed protocols and --php without FastCGI are refused', async () => {
    await expect(buildService(undefined, resolveOptions({ upstream: ['scgi://127.0.0.1:1', 'uwsgi://127.0.0.1:2'] }, {}), silentLogger())).rejects.toThrow(/one protocol/);
    await expect(buildService(undefined, resolveOptions({ upstream: ['scgi://127.0.0.1:1'], php: '/tmp' }, {}), silentLogger())).rejects.toThrow(/--php ROOT needs a FastCGI --upstream/);
    await expect(buildService(undefined, resolveOptions({ php: '/tmp' }, {}), silentLogger())).rejects.toThrow(/--php ROOT needs a FastCGI --upstream/);
  });
  test('buildService: the upstream is the service; APP and --upstream together are refused', async () => {
    const options = resolveOptions({ upstream: `scgi://127.0.0.1:${backend.scgi}` }, {});
    const service = await buildService(undefined, options, silentLogger());
    const port = await httpFront(service.app);
    expect(json(await httpRequest(port, { path: '/built?q=1' })).vars.QUERY_STRING).toBe('q=1');
    await expect(buildService(path.resolve(__dirname, '..', 'examples', 'hello.mjs'), options, silentLogger())).rejects.toThrow(LoadError);
  });
});

// ---------------------------------------------------------------------------------------
// Real uWSGI
// ---------------------------------------------------------------------------------------

describeWithPeers('real uWSGI behind gatewire --http --upstream', ['uwsgi-python3'], () => {
  let uwsgi: PeerProcess;
  let ports: { scgi: number; uwsgi: number };
  beforeAll(async () => {
    const scgi = await freePort();
    const uw = await freePort();
    uwsgi = await startProcess(
      peerPath('uwsgi-python3'),
      ['--plugin', 'python3', '--scgi-socket', `127.0.0.1:${scgi}`, '--uwsgi-socket', `127.0.0.1:${uw}`, '--wsgi-file', path.resolve(__dirname, '..', 'bench', 'servers', 'hello.py'), '--disable-logging',
        // hello.py never reads the body: without post-buffering uWSGI closes with it unread, and
        // its kernel's reset can destroy the answer before gatewire reads it (a 502, as with nginx).
        '--post-buffering', '1048576'],
      { name: 'uwsgi', readyPort: uw, readyLine: /spawned uWSGI worker|Operational MODE/, stopSignal: 'SIGINT' },
    );
    ports = { scgi, uwsgi: uw };
  }, 30_000);
  afterAll(async () => {
    await uwsgi?.stop();
  });

  test.each(['scgi', 'uwsgi'] as const)('UP-13 UP-14: GET and HEAD through uWSGI --%s-socket', async (protocol) => {
    const log = captureLogger();
    const app = protocol === 'scgi' ? scgiUpstream(tcp(ports.scgi), { logger: log }) : uwsgiUpstream(tcp(ports.uwsgi), { logger: log });
    const port = await httpFront(app);
    const res = await httpRequest(port, { path: '/hello?x=1' });
    expect({ status: res.status, type: res.headers['content-type'], length: res.headers['content-length'], body: res.body.toString(), truncated: res.truncated }).toEqual({
      status: 200,
      type: ['text/plain'],
      length: ['14'],
      body: 'Hello, World!\n',
      truncated: false,
    });
    const head = await httpRequest(port, { method: 'HEAD', path: '/hello', exact: true });
    expect({ status: head.status, body: head.body.length }).toEqual({ status: 200, body: 0 });
    const post = await httpRequest(port, { method: 'POST', path: '/hello', body: randomBytes(200_000) });
    expect({ status: post.status, body: post.body.toString(), log: log.lines }).toEqual({ status: 200, body: 'Hello, World!\n', log: [] });
  });
});
