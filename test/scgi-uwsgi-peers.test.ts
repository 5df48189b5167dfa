/**
 * gatewire's SCGI and uwsgi fronts (and the --auto listener) behind real peers: Debian's nginx
 * (scgi_pass, uwsgi_pass, `uwsgi_modifier1 30`, `scgi_request_buffering off`, ~64 KiB vars
 * blocks, 100 MiB uploads), Apache mod_proxy_scgi and mod_proxy_uwsgi, and uWSGI's own HTTP
 * router as a uwsgi client. gatewire runs as the built CLI (`node dist/src/cli.js serve`) in a
 * child process on loopback ports chosen by the kernel (port 0, read back from its
 * `listening:` lines), with a JSON access log in a temporary folder.
 *
 * The app is test/fixtures/apps/scgi-uwsgi-app.mjs: examples/echo.mjs (environ + body sha256)
 * plus routes for status codes, Set-Cookie twice, a failing app, a large body and a slow answer.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { CLI, childEnv, ensureBuilt } from './fixtures/apps/cli-harness.js';
import {
  describeWithPeers,
  peerPath,
  runProcess,
  startApache,
  startNginx,
  startProcess,
  startUwsgi,
  withPeerLogs,
} from './helpers/peers.js';
import type { PeerProcess, WebServer } from './helpers/peers.js';
import { MiB, mib, reportMeasure, rssOf, withRssPeak } from './helpers/rss.js';
import { freePort, httpGet, tmpDir } from './helpers/net.js';
import type { HttpResult, TmpDir } from './helpers/net.js';

const APP = path.resolve(__dirname, 'fixtures', 'apps', 'scgi-uwsgi-app.mjs');
const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

jest.setTimeout(120_000);
beforeAll(() => ensureBuilt(), 180_000);

// ---------------------------------------------------------------------------------------
// gatewire as a child process
// ---------------------------------------------------------------------------------------

type Front = 'http' | 'fastcgi' | 'scgi' | 'uwsgi' | 'auto';

interface AccessEntry {
  protocol: string;
  method: string;
  uri: string;
  status: number;
  bytes: number;
}

interface Gatewire {
  readonly proc: PeerProcess;
  /** `127.0.0.1:<port>` or `unix:<path>` of the listener of that front (nginx's *_pass form). */
  addr(front: Front): string;
  port(front: Front): number;
  /** Parsed lines of the JSON access log. */
  access(): AccessEntry[];
  /** The access log once `done` holds for it (or after 5 s, whatever it has). */
  waitFor(done: (entries: AccessEntry[]) => boolean): Promise<AccessEntry[]>;
  /** stderr (JSON log lines). */
  log(): string;
  stop(): Promise<void>;
}

interface GatewireOptions {
  /** Fronts that listen on a unix socket in the temporary folder instead of 127.0.0.1:0. */
  unix?: readonly Front[];
  /** More CLI arguments. */
  extra?: readonly string[];
  app?: string;
}

/**
 * `node dist/src/cli.js serve APP --<front> 127.0.0.1:0 ... --log-format json --access-log F`,
 * ready once every front has logged its `listening:` line (which carries the kernel's port).
 */
async function startGatewire(fronts: readonly Front[], options: GatewireOptions = {}): Promise<Gatewire> {
  const { unix = [], extra = [], app = APP } = options;
  const dir: TmpDir = tmpDir('gw-sup');
  const accessLog = path.join(dir.path, 'access.log');
  const socketOf = (f: Front): string => path.join(dir.path, `${f}.sock`);
  const listenOf = (f: Front): string => (unix.includes(f) ? `unix:${socketOf(f)}` : '127.0.0.1:0');
  const args = [CLI, 'serve', app, ...fronts.flatMap((f) => [`--${f}`, listenOf(f)])];
  args.push('--log-format', 'json', '--access-log', accessLog, '--shutdown-timeout', '2s', ...extra);
  const lineOf = (f: Front): string => `listening: ${f} on ${unix.includes(f) ? 'unix:' : '127\\.0\\.0\\.1:(\\d+)'}`;
  const ready = new RegExp(fronts.map((f) => `(?=[\\s\\S]*${lineOf(f)})`).join(''));
  let proc: PeerProcess;
  try {
    proc = await startProcess(process.execPath, args, { name: 'gatewire', env: childEnv(), inheritEnv: false, readyLine: ready, stopGraceMs: 5000 });
  } catch (err) {
    dir.cleanup();
    throw err;
  }
  const ports = new Map<Front, number>();
  for (const f of fronts) if (!unix.includes(f)) ports.set(f, Number(new RegExp(lineOf(f)).exec(proc.output())?.[1]));
  const access = (): AccessEntry[] => {
    const text = fs.existsSync(accessLog) ? fs.readFileSync(accessLog, 'utf8') : '';
    return text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as AccessEntry);
  };
  const port = (front: Front): number => {
    const p = ports.get(front);
    if (p === undefined || !(p > 0)) throw new Error(`gatewire has no TCP ${front} listener`);
    return p;
  };
  return {
    proc,
    port,
    addr: (front) => (unix.includes(front) ? `unix:${socketOf(front)}` : `127.0.0.1:${port(front)}`),
    access,
    waitFor: async (done) => {
      // A line is written when its exchange ends, which may be just after the client has its
      // answer: poll (bounded) rather than read once.
      for (let i = 0; i < 250 && !done(access()); i++) await sleep(20);
      return access();
    },
    log: () => proc.stderr(),
    stop: async () => {
      await proc.stop();
      dir.cleanup();
    },
  };
}

// ---------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------

interface Echo {
  environ: Record<string, string>;
  protocol: string;
  url_scheme: string;
  input_terminated: boolean;
  body: string | null;
  body_length: number;
  body_sha256: string;
}

function echoOf(res: HttpResult): Echo {
  expect({ status: res.status, type: res.headers['content-type'] }).toEqual({ status: 200, type: 'application/json' });
  return JSON.parse(res.body.toString('utf8')) as Echo;
}

/** All values of one response header, in order (rawHeaders keeps duplicates). */
function headerValues(res: HttpResult, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) if (res.rawHeaders[i]?.toLowerCase() === name) out.push(res.rawHeaders[i + 1] ?? '');
  return out;
}

interface UploadResult {
  status: number;
  body: Buffer;
  sentSha256: string;
}

/**
 * POSTs `size` random bytes (fresh 1 MiB blocks, hashed as they go) with a Content-Length or
 * chunked, honouring backpressure, and resolves with the answer.
 */
function upload(url: string, size: number, chunked = false): Promise<UploadResult> {
  const hash = createHash('sha256');
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/octet-stream' };
    if (chunked) headers['transfer-encoding'] = 'chunked';
    else headers['content-length'] = String(size);
    const req = http.request(url, { method: 'POST', agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), sentSha256: hash.digest('hex') }));
    });
    req.setTimeout(110_000, () => req.destroy(new Error(`upload ${url}: no answer after 110 s`)));
    req.on('error', reject);
    let sent = 0;
    const pump = (): void => {
      while (sent < size) {
        const block = randomBytes(Math.min(MiB, size - sent));
        hash.update(block);
        sent += block.length;
        if (!req.write(block)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

/** Decodes a chunked HTTP/1.1 body (no trailers expected). */
function dechunk(body: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', at);
    if (eol === -1) throw new Error(`dechunk: no chunk-size line at ${at}`);
    const size = parseInt(body.toString('latin1', at, eol), 16);
    if (size === 0) return Buffer.concat(out);
    out.push(body.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

interface RawAnswer {
  status: number;
  head: string;
  body: Buffer;
}

/**
 * Writes `parts` to 127.0.0.1:port in order, sleeping where a part is a number of ms, and
 * collects the answer until the server closes (send `Connection: close`).
 */
function timedRequest(port: number, parts: ReadonlyArray<Buffer | string | number>, timeoutMs = 30_000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect({ port, host: '127.0.0.1' });
    const timer = setTimeout(() => socket.destroy(new Error(`timedRequest: no close after ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      const head = all.toString('latin1', 0, end === -1 ? all.length : end);
      let body: Buffer = end === -1 ? Buffer.alloc(0) : all.subarray(end + 4);
      if (/\r\ntransfer-encoding: chunked/i.test(head)) body = dechunk(body);
      resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0), head, body });
    });
    socket.on('connect', () => {
      void (async () => {
        for (const part of parts) {
          if (typeof part === 'number') await sleep(part);
          else if (!socket.destroyed) socket.write(part);
        }
      })();
    });
  });
}

// ---------------------------------------------------------------------------------------
// A transparent TCP relay between a web server and gatewire, to see the gateway connection
// ---------------------------------------------------------------------------------------

interface RelayConnection {
  /** Bytes the web server sent to gatewire. */
  toApp: Buffer[];
  /** Bytes gatewire sent back. */
  fromApp: Buffer[];
  /** gatewire ended its side (FIN) or reset the connection. */
  appClosed: boolean;
  closed: Promise<void>;
}

interface Relay {
  readonly port: number;
  readonly connections: RelayConnection[];
  close(): Promise<void>;
}

async function startRelay(targetPort: number): Promise<Relay> {
  const connections: RelayConnection[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (peer) => {
    const app = net.connect({ port: targetPort, host: '127.0.0.1', allowHalfOpen: true });
    let resolveClosed: () => void = () => undefined;
    const conn: RelayConnection = { toApp: [], fromApp: [], appClosed: false, closed: new Promise((r) => (resolveClosed = r)) };
    connections.push(conn);
    for (const s of [peer, app]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    peer.on('data', (b: Buffer) => conn.toApp.push(b));
    app.on('data', (b: Buffer) => conn.fromApp.push(b));
    peer.pipe(app);
    app.pipe(peer);
    app.on('end', () => {
      conn.appClosed = true;
    });
    peer.on('error', () => app.destroy());
    app.on('error', () => {
      conn.appClosed = true;
      peer.destroy();
    });
    let open = 2;
    const closedOne = (): void => {
      if (--open === 0) resolveClosed();
    };
    app.on('close', () => {
      peer.destroy();
      closedOne();
    });
    peer.on('close', () => {
      app.end();
      closedOne();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** An SCGI request head (netstring) as a web server would send it. */
function scgiNetstring(pairs: ReadonlyArray<readonly [string, string]>): Buffer {
  const block = Buffer.from(pairs.map(([k, v]) => `${k}\0${v}\0`).join(''), 'latin1');
  return Buffer.concat([Buffer.from(`${block.length}:`, 'latin1'), block, Buffer.from(',', 'latin1')]);
}

/** nginx's version as [major, minor, patch], from `nginx -v`. */
async function nginxVersion(): Promise<[number, number, number]> {
  const r = await runProcess(peerPath('nginx'), ['-v']);
  const m = /nginx\/(\d+)\.(\d+)\.(\d+)/.exec(r.stderr.toString('latin1') + r.stdout.toString('latin1'));
  if (m === null) throw new Error(`nginx -v: no version in ${r.stderr.toString('latin1')}`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

const atLeast = (v: readonly number[], want: readonly number[]): boolean => {
  for (let i = 0; i < want.length; i++) if ((v[i] ?? 0) !== (want[i] ?? 0)) return (v[i] ?? 0) > (want[i] ?? 0);
  return true;
};

// ---------------------------------------------------------------------------------------
// What every front must answer the same way: status codes, headers, HEAD, 204, 404, 500
// ---------------------------------------------------------------------------------------

/**
 * Registers the response-behaviour tests for one location prefix (`/scgi/`, `/uwsgi/`) of a
 * web server in front of gatewire; `url` turns a path into the web server's URL (called
 * inside the tests, once the server runs).
 */
function responseBehaviour(label: string, ids: string, url: (urlPath: string) => string, prefix: string, mergesRepeated = false): void {
  const multi = mergesRepeated ? 'Set-Cookie twice (the web server merges other repeated fields)' : 'Set-Cookie twice and a repeated header stay separate lines';
  test(`${ids} R-10: ${label} 200 with the app's headers; ${multi}`, withPeerLogs(async () => {
    const res = await httpGet(url(`${prefix}cookies`));
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('two cookies\n');
    expect(headerValues(res, 'set-cookie')).toEqual(['a=1; Path=/', 'b=2; HttpOnly']);
    expect(headerValues(res, 'x-multi')).toEqual(mergesRepeated ? ['one, two'] : ['one', 'two']);
  }));

  test(`${ids}: ${label} passes 404 and 418 with the app's body and headers`, withPeerLogs(async () => {
    for (const code of [404, 418]) {
      const res = await httpGet(url(`${prefix}status/${code}`));
      expect({ code, status: res.status, route: res.headers['x-route'], body: res.body.toString() }).toEqual({ code, status: code, route: 'status', body: `status ${code}\n` });
    }
  }));

  test(`${ids} R-9: ${label} 204 arrives without a body`, withPeerLogs(async () => {
    const res = await httpGet(url(`${prefix}status/204`));
    expect(res.status).toBe(204);
    expect(res.headers['x-route']).toBe('status');
    expect(res.body.length).toBe(0);
  }));

  test(`${ids} R-9: ${label} HEAD: 200 with GET's Content-Type and no body`, withPeerLogs(async () => {
    const res = await httpGet(url(`${prefix}head?x=1`), { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.body.length).toBe(0);
  }));

  test(`${ids}: ${label} an app that throws becomes a 500`, withPeerLogs(async () => {
    const res = await httpGet(url(`${prefix}fail`));
    expect(res.status).toBe(500);
  }));

  test(`${ids}: ${label} a 4 MiB response with Content-Length arrives whole`, withPeerLogs(async () => {
    const res = await httpGet(url(`${prefix}big?n=${4 * MiB}`));
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(4 * MiB);
    expect(res.body.equals(Buffer.alloc(4 * MiB, 'x'))).toBe(true);
  }));
}

// ---------------------------------------------------------------------------------------
// nginx scgi_pass and uwsgi_pass
// ---------------------------------------------------------------------------------------

describeWithPeers('nginx scgi_pass and uwsgi_pass → gatewire --scgi / --uwsgi', ['nginx'], () => {
  let gw: Gatewire;
  let nginx: WebServer;
  beforeAll(async () => {
    gw = await startGatewire(['scgi', 'uwsgi']);
    nginx = await startNginx({ template: 'scgi-uwsgi-peers', vars: { SCGI_ADDR: gw.addr('scgi'), UWSGI_ADDR: gw.addr('uwsgi') } });
  });
  afterAll(async () => {
    await nginx?.stop();
    await gw?.stop();
  });

  test('S-4 S-5 E-5: scgi_pass GET: the Debian scgi_params environ, SCRIPT_NAME/PATH_INFO derived from REQUEST_URI', withPeerLogs(async () => {
    const res = await httpGet(nginx.url('/scgi/caf%C3%A9/x?q=a+b&r=%41'), { headers: { cookie: 'k=v', 'x-custom': 'yes' } });
    const echo = echoOf(res);
    expect(echo.protocol).toBe('scgi');
    expect(echo.url_scheme).toBe('http');
    expect(echo.input_terminated).toBe(false);
    expect(echo.environ).toEqual({
      CONTENT_LENGTH: '0', // nginx's SCGI always sends it, 0 without a body (S-4); kept as sent
      DOCUMENT_ROOT: path.join(nginx.prefix, 'html'),
      DOCUMENT_URI: '/scgi/caf\u00c3\u00a9/x',
      HTTP_CONNECTION: 'close',
      HTTP_COOKIE: 'k=v',
      HTTP_HOST: '127.0.0.1', // Debian's scgi_params: $host, port dropped
      HTTP_X_CUSTOM: 'yes',
      PATH_INFO: '/scgi/caf\u00c3\u00a9/x', // E-1: bytes as latin1
      QUERY_STRING: 'q=a+b&r=%41', // E-6: never decoded
      REMOTE_ADDR: '127.0.0.1',
      REMOTE_PORT: expect.stringMatching(/^\d+$/),
      REQUEST_METHOD: 'GET',
      REQUEST_SCHEME: 'http',
      REQUEST_URI: '/scgi/caf%C3%A9/x?q=a+b&r=%41',
      SCGI: '1',
      SCRIPT_NAME: '',
      SERVER_NAME: 'localhost',
      SERVER_PORT: String(nginx.port),
      SERVER_PROTOCOL: 'HTTP/1.1',
    });
    expect(echo.body_length).toBe(0);
  }));

  test('U-6 U-8 E-5: uwsgi_pass GET: the Debian uwsgi_params environ, PATH_INFO as sent', withPeerLogs(async () => {
    const res = await httpGet(nginx.url('/uwsgi/caf%C3%A9/x?q=a+b'), { headers: { cookie: 'k=v' } });
    const echo = echoOf(res);
    expect(echo.protocol).toBe('uwsgi');
    expect(echo.environ).toEqual({
      DOCUMENT_ROOT: path.join(nginx.prefix, 'html'),
      HTTP_CONNECTION: 'close',
      HTTP_COOKIE: 'k=v',
      HTTP_HOST: '127.0.0.1',
      PATH_INFO: '/uwsgi/caf\u00c3\u00a9/x',
      QUERY_STRING: 'q=a+b',
      REMOTE_ADDR: '127.0.0.1',
      REMOTE_PORT: expect.stringMatching(/^\d+$/),
      REQUEST_METHOD: 'GET',
      REQUEST_SCHEME: 'http',
      REQUEST_URI: '/uwsgi/caf%C3%A9/x?q=a+b',
      SCRIPT_NAME: '',
      SERVER_NAME: 'localhost',
      SERVER_PORT: String(nginx.port),
      SERVER_PROTOCOL: 'HTTP/1.1',
    });
  }));

  for (const [proto, prefix] of [['scgi', '/scgi/'], ['uwsgi', '/uwsgi/']] as const) {
    test(`${proto === 'scgi' ? 'S-7' : 'U-6'}: ${proto}_pass POST: exactly CONTENT_LENGTH body bytes reach the app`, withPeerLogs(async () => {
      const body = Buffer.from('binary \u0000\u00ff\r\n body', 'latin1');
      const echo = echoOf(await httpGet(nginx.url(`${prefix}post`), { method: 'POST', body, headers: { 'content-type': 'application/x-test' } }));
      expect(echo.environ['CONTENT_LENGTH']).toBe(String(body.length));
      expect(echo.environ['CONTENT_TYPE']).toBe('application/x-test');
      expect(echo.body).toBe(body.toString('latin1'));
      expect(echo.body_sha256).toBe(sha256(body));
    }));

    test(`E-12: ${proto}_pass: nginx 1.22 repeats a duplicated header; gatewire joins it (Cookie with "; ")`, withPeerLogs(async () => {
      const answer = await timedRequest(nginx.port, [
        `GET ${prefix}dup HTTP/1.1\r\nHost: localhost\r\nX-Dup: 1\r\nX-Dup: 2\r\nCookie: a=1\r\nCookie: b=2\r\nConnection: close\r\n\r\n`,
      ]);
      expect(answer.status).toBe(200);
      const echo = JSON.parse(answer.body.toString('utf8')) as Echo;
      expect(echo.environ['HTTP_X_DUP']).toBe('1, 2');
      expect(echo.environ['HTTP_COOKIE']).toBe('a=1; b=2');
    }));

    responseBehaviour(`${proto}_pass:`, proto === 'scgi' ? 'S-8' : 'U-8 U-9', (p) => nginx.url(p), prefix);
  }

  test('access log: one line per request with the protocol, status and path', withPeerLogs(async () => {
    await httpGet(nginx.url('/scgi/logged?n=1'));
    await httpGet(nginx.url('/uwsgi/status/404'));
    const entries = await gw.waitFor((e) => e.some((x) => x.uri === '/scgi/logged?n=1') && e.some((x) => x.uri === '/uwsgi/status/404'));
    expect(entries).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ protocol: 'scgi', method: 'GET', uri: '/scgi/logged?n=1', status: 200 }),
        expect.objectContaining({ protocol: 'uwsgi', method: 'GET', uri: '/uwsgi/status/404', status: 404 }),
      ]),
    );
  }));
});

// ---------------------------------------------------------------------------------------
// uwsgi_modifier1 30 with uwsgi_param SCRIPT_NAME
// ---------------------------------------------------------------------------------------

describeWithPeers('nginx uwsgi_modifier1 30 + uwsgi_param SCRIPT_NAME /mnt → gatewire --uwsgi', ['nginx'], () => {
  let gw: Gatewire;
  let nginx: WebServer;
  beforeAll(async () => {
    gw = await startGatewire(['scgi', 'uwsgi']);
    nginx = await startNginx({ template: 'scgi-uwsgi-peers', vars: { SCGI_ADDR: gw.addr('scgi'), UWSGI_ADDR: gw.addr('uwsgi') } });
  });
  afterAll(async () => {
    await nginx?.stop();
    await gw?.stop();
  });

  const cases: Array<[url: string, scriptName: string, pathInfo: string]> = [
    ['/mnt/x', '/mnt', '/x'],
    ['/mnt/x/y?z=1', '/mnt', '/x/y'],
    ['/mnt/', '/mnt', '/'],
    ['/mnt', '/mnt', ''],
    ['/mnt/caf%C3%A9', '/mnt', '/caf\u00c3\u00a9'],
  ];
  for (const [url, scriptName, pathInfo] of cases) {
    test(`U-7: ${url} → SCRIPT_NAME ${JSON.stringify(scriptName)}, PATH_INFO ${JSON.stringify(pathInfo)}`, withPeerLogs(async () => {
      const echo = echoOf(await httpGet(nginx.url(url)));
      expect(echo.protocol).toBe('uwsgi');
      expect({ SCRIPT_NAME: echo.environ['SCRIPT_NAME'], PATH_INFO: echo.environ['PATH_INFO'] }).toEqual({ SCRIPT_NAME: scriptName, PATH_INFO: pathInfo });
      expect(echo.environ['REQUEST_URI']).toBe(url);
    }));
  }

  test('U-7: /mntx (SCRIPT_NAME /mnt is not a segment prefix) keeps PATH_INFO /mntx and logs it once', withPeerLogs(async () => {
    const first = echoOf(await httpGet(nginx.url('/mntx')));
    const second = echoOf(await httpGet(nginx.url('/mntx/y')));
    expect({ SCRIPT_NAME: first.environ['SCRIPT_NAME'], PATH_INFO: first.environ['PATH_INFO'] }).toEqual({ SCRIPT_NAME: '/mnt', PATH_INFO: '/mntx' });
    expect({ SCRIPT_NAME: second.environ['SCRIPT_NAME'], PATH_INFO: second.environ['PATH_INFO'] }).toEqual({ SCRIPT_NAME: '/mnt', PATH_INFO: '/mntx/y' });
    const warnings = gw.log().split('\n').filter((l) => l.includes('is not a segment prefix of PATH_INFO'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('"level":"warn"');
    expect(warnings[0]).toContain('\\"/mntx\\"');
  }));

  test('U-7 R-9: the mounted app answers HEAD, 204 and Set-Cookie twice under /mnt', withPeerLogs(async () => {
    const head = await httpGet(nginx.url('/mnt/h'), { method: 'HEAD' });
    expect({ status: head.status, length: head.body.length }).toEqual({ status: 200, length: 0 });
    const empty = await httpGet(nginx.url('/mnt/status/204'));
    expect({ status: empty.status, length: empty.body.length }).toEqual({ status: 204, length: 0 });
    const cookies = await httpGet(nginx.url('/mnt/cookies'));
    expect(headerValues(cookies, 'set-cookie')).toEqual(['a=1; Path=/', 'b=2; HttpOnly']);
  }));
});

// ---------------------------------------------------------------------------------------
// scgi_request_buffering off (and uwsgi_request_buffering off)
// ---------------------------------------------------------------------------------------

describeWithPeers('nginx scgi_request_buffering off / uwsgi_request_buffering off → gatewire', ['nginx'], () => {
  let gw: Gatewire;
  let relay: Relay;
  let nginx: WebServer;
  let fixedScgiLength: boolean;
  beforeAll(async () => {
    // nginx 1.29.6 (commit ec714d52b) sends the request's real length; 1.22 does not.
    fixedScgiLength = atLeast(await nginxVersion(), [1, 29, 6]);
    gw = await startGatewire(['scgi', 'uwsgi']);
    relay = await startRelay(gw.port('scgi'));
    nginx = await startNginx({ template: 'scgi-uwsgi-peers', vars: { SCGI_ADDR: `127.0.0.1:${relay.port}`, UWSGI_ADDR: gw.addr('uwsgi') } });
  });
  afterAll(async () => {
    await nginx?.stop();
    await relay?.close();
    await gw?.stop();
  });

  test('§0.1 #15 S-7: a Content-Length body sent in two parts: CONTENT_LENGTH counts only what nginx 1.22 had buffered; the rest (an SCGI request) is never parsed', withPeerLogs(async () => {
    const before = relay.connections.length;
    // What nginx has when it connects upstream: the head and the first 10 body bytes.
    const first = Buffer.from('0123456789', 'latin1');
    // What follows later: a whole SCGI request that would be run if gatewire looped for another.
    const smuggled = scgiNetstring([
      ['CONTENT_LENGTH', '0'],
      ['SCGI', '1'],
      ['REQUEST_METHOD', 'GET'],
      ['REQUEST_URI', '/smuggled'],
      ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ]);
    const later = Buffer.concat([smuggled, Buffer.alloc(3000, 'r')]);
    const total = first.length + later.length;
    const head = `POST /scgi-stream/slow?ms=1500 HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${total}\r\nConnection: close\r\n\r\n`;
    const answer = await timedRequest(nginx.port, [Buffer.concat([Buffer.from(head, 'latin1'), first]), 400, later]);
    expect(answer.status).toBe(200);
    const echo = JSON.parse(answer.body.toString('utf8')) as Echo;
    const all = Buffer.concat([first, later]);
    const n = Number(echo.environ['CONTENT_LENGTH'] ?? '0');
    if (fixedScgiLength) {
      expect(n).toBe(total);
    } else {
      // The 1.22 bug: the length of the part buffered when the upstream request was made.
      expect(n).toBeLessThanOrEqual(first.length);
    }
    // gatewire read exactly CONTENT_LENGTH bytes: the app saw the first n bytes, no more.
    expect(echo.body_length).toBe(n);
    expect(echo.body_sha256).toBe(sha256(all.subarray(0, n)));

    await relay.connections[relay.connections.length - 1]?.closed;
    expect(relay.connections.length).toBe(before + 1);
    const conn = relay.connections[before] as RelayConnection;
    const toApp = Buffer.concat(conn.toApp);
    const fromApp = Buffer.concat(conn.fromApp).toString('latin1');
    if (!fixedScgiLength) {
      // The smuggled request did reach gatewire, after the body it had been told about...
      expect(toApp.includes(smuggled)).toBe(true);
      // ...and gatewire said so (not at debug level: the app got a short body).
      expect(gw.log()).toMatch(/"level":"warn","message":"scgi: [^"]*past the CONTENT_LENGTH/);
    }
    // One response (CGI style), then gatewire closed the connection itself.
    expect(fromApp.startsWith('Status: 200 OK\r\n')).toBe(true);
    expect(fromApp.split('Status: ').length - 1).toBe(1);
    expect(conn.appClosed).toBe(true);
    // One request in gatewire's access log; nothing for /smuggled, before or after a later request.
    await httpGet(nginx.url('/scgi/after-smuggling'));
    const entries = await gw.waitFor((e) => e.some((x) => x.uri === '/scgi/after-smuggling'));
    expect(entries.filter((e) => e.uri.includes('smuggled') || e.uri.startsWith('/scgi-stream/')).map((e) => `${e.protocol} ${e.method} ${e.uri} ${e.status}`)).toEqual([
      'scgi POST /scgi-stream/slow?ms=1500 200',
    ]);
  }));

  test('S-7: a chunked upload through /scgi-stream/ is buffered by nginx first: CONTENT_LENGTH is the whole decoded length', withPeerLogs(async () => {
    const parts: Array<Buffer | number> = [];
    const hash = createHash('sha256');
    let total = 0;
    parts.push(Buffer.from('POST /scgi-stream/chunked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n', 'latin1'));
    for (let i = 0; i < 4; i++) {
      const data = randomBytes(100_000 + i);
      hash.update(data);
      total += data.length;
      parts.push(Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`, 'latin1'), data, Buffer.from('\r\n', 'latin1')]), 100);
    }
    parts.push(Buffer.from('0\r\n\r\n', 'latin1'));
    const answer = await timedRequest(nginx.port, parts);
    expect(answer.status).toBe(200);
    const echo = JSON.parse(answer.body.toString('utf8')) as Echo;
    expect(echo.environ['CONTENT_LENGTH']).toBe(String(total));
    expect(echo.environ['HTTP_TRANSFER_ENCODING']).toBeUndefined(); // nginx de-chunked it: dropped (E-17)
    expect(echo.input_terminated).toBe(false);
    expect({ length: echo.body_length, sha: echo.body_sha256 }).toEqual({ length: total, sha: hash.digest('hex') });
  }));

  test('U-6: uwsgi_request_buffering off streams a Content-Length body sent in pieces; CONTENT_LENGTH is exact', withPeerLogs(async () => {
    const pieces = [randomBytes(10), randomBytes(200_000), randomBytes(300_000)];
    const total = pieces.reduce((a, p) => a + p.length, 0);
    const head = Buffer.from(`POST /uwsgi-stream/slow?ms=10 HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${total}\r\nConnection: close\r\n\r\n`, 'latin1');
    const answer = await timedRequest(nginx.port, [Buffer.concat([head, pieces[0] as Buffer]), 300, pieces[1] as Buffer, 300, pieces[2] as Buffer]);
    expect(answer.status).toBe(200);
    const echo = JSON.parse(answer.body.toString('utf8')) as Echo;
    expect(echo.environ['CONTENT_LENGTH']).toBe(String(total));
    expect({ length: echo.body_length, sha: echo.body_sha256 }).toEqual({ length: total, sha: sha256(Buffer.concat(pieces)) });
  }));
});

// ---------------------------------------------------------------------------------------
// Vars blocks near 64 KiB
// ---------------------------------------------------------------------------------------

/** A Cookie value of exactly `n` bytes. */
const bigCookie = (n: number): string => `big=${'c'.repeat(n - 4)}`;

describeWithPeers('nginx → gatewire: a Cookie header that pushes the vars block near 64 KiB', ['nginx'], () => {
  let gw: Gatewire;
  let nginx: WebServer;
  beforeAll(async () => {
    gw = await startGatewire(['scgi', 'uwsgi']);
    nginx = await startNginx({ template: 'scgi-uwsgi-peers', vars: { SCGI_ADDR: gw.addr('scgi'), UWSGI_ADDR: gw.addr('uwsgi') } });
  });
  afterAll(async () => {
    await nginx?.stop();
    await gw?.stop();
  });

  // 64 KiB - 1 KiB of cookie: with the ~0.6 KiB of other vars the block is within 1 KiB of 65535.
  const NEAR = 64 * 1024 - 1024;

  for (const [proto, prefix] of [['uwsgi', '/uwsgi/'], ['scgi', '/scgi/'], ['uwsgi', '/mnt/']] as const) {
    test(`U-3 S-1: ${prefix}: a ${NEAR}-byte Cookie (vars block within 1 KiB of 65535) is answered, the cookie intact`, withPeerLogs(async () => {
      const cookie = bigCookie(NEAR);
      const echo = echoOf(await httpGet(nginx.url(`${prefix}cookie`), { headers: { cookie } }));
      expect(echo.protocol).toBe(proto);
      expect(echo.environ['HTTP_COOKIE']?.length).toBe(NEAR);
      expect(sha256(echo.environ['HTTP_COOKIE'] ?? '')).toBe(sha256(cookie));
      const block = Object.entries(echo.environ).reduce((sum, [k, v]) => sum + (proto === 'uwsgi' ? 4 : 2) + k.length + v.length, 0);
      expect(block).toBeGreaterThan(65535 - 1024);
      expect(block).toBeLessThanOrEqual(65535 + 64); // gatewire adds SCRIPT_NAME/PATH_INFO
    }));
  }

  test('U-3: one byte of cookie more than a uwsgi packet can hold: nginx itself refuses (500, "uwsgi request is too big"); gatewire sees nothing', withPeerLogs(async () => {
    const res = await httpGet(nginx.url('/uwsgi/too-big'), { headers: { cookie: bigCookie(65535) } });
    expect(res.status).toBe(500);
    expect(nginx.errorLog()).toContain('uwsgi request is too big');
    await httpGet(nginx.url('/uwsgi/after-too-big')); // logged after /uwsgi/too-big would have been
    const uris = (await gw.waitFor((e) => e.some((x) => x.uri === '/uwsgi/after-too-big'))).map((e) => e.uri);
    expect(uris).toContain('/uwsgi/after-too-big');
    expect(uris).not.toContain('/uwsgi/too-big');
  }));

  test('S-1: SCGI has no 64 KiB cap: a 120 000-byte Cookie arrives (gatewire --max-params-bytes defaults to 1 MiB)', withPeerLogs(async () => {
    const cookie = bigCookie(120_000);
    const echo = echoOf(await httpGet(nginx.url('/scgi/huge-cookie'), { headers: { cookie } }));
    expect(echo.environ['HTTP_COOKIE']?.length).toBe(120_000);
    expect(sha256(echo.environ['HTTP_COOKIE'] ?? '')).toBe(sha256(cookie));
  }));
});

describeWithPeers('contrast: nginx → uWSGI itself (default buffer-size 4096) with the same ~64 KiB Cookie', ['nginx', 'uwsgi-python3'], () => {
  test('U-3: uWSGI refuses the block ("invalid request block size") and nginx answers 502', withPeerLogs(async () => {
    const wsgiApp = [
      'def application(environ, start_response):',
      "    start_response('200 OK', [('Content-Type', 'text/plain')])",
      "    return [b'uwsgi ok']",
    ].join('\n');
    const uwsgi = await startUwsgi({ wsgiApp });
    const nginx = await startNginx({ template: 'scgi-uwsgi-peers', vars: { SCGI_ADDR: `127.0.0.1:${uwsgi.scgiPort}`, UWSGI_ADDR: `127.0.0.1:${uwsgi.uwsgiPort}` } });
    try {
      const small = await httpGet(nginx.url('/uwsgi/x'));
      expect(small.body.toString()).toBe('uwsgi ok');
      const big = await httpGet(nginx.url('/uwsgi/x'), { headers: { cookie: bigCookie(64 * 1024 - 1024) } });
      expect(big.status).toBe(502);
      expect(nginx.errorLog()).toMatch(/while reading response header from upstream[^\n]*GET \/uwsgi\/x/);
      // uWSGI's own line, once its stderr has been read.
      for (let i = 0; i < 150 && !/invalid request block size/.test(uwsgi.output()); i++) await sleep(20);
      expect(uwsgi.output()).toMatch(/invalid request block size: \d+ \(max 4096\)/);
    } finally {
      await nginx.stop();
      await uwsgi.stop();
    }
  }));
});

// ---------------------------------------------------------------------------------------
// 100 MiB uploads
// ---------------------------------------------------------------------------------------

const UPLOAD = 100 * MiB;

describeWithPeers('100 MiB uploads through nginx scgi_pass and uwsgi_pass', ['nginx'], () => {
  let gw: Gatewire;
  let nginx: WebServer;
  beforeAll(async () => {
    gw = await startGatewire(['scgi', 'uwsgi']);
    nginx = await startNginx({ template: 'scgi-uwsgi-peers', vars: { SCGI_ADDR: gw.addr('scgi'), UWSGI_ADDR: gw.addr('uwsgi') } });
  });
  afterAll(async () => {
    await nginx?.stop();
    await gw?.stop();
  });

  for (const [location, proto, chunked] of [
    ['/scgi/', 'scgi', false],
    ['/uwsgi/', 'uwsgi', false],
    ['/uwsgi-stream/', 'uwsgi', false],
    ['/scgi/', 'scgi', true],
  ] as const) {
    test(`${proto === 'scgi' ? 'S-7' : 'U-6'}: 100 MiB${chunked ? ' chunked' : ''} through ${location}: length and SHA-256 match; RSS grows < 32 MiB (the first one from a cold process)`, withPeerLogs(async () => {
      // The GC nudge in BodyInput (src/memory.ts) frees consumed read buffers while young.
      const pid = gw.proc.pid;
      const before = rssOf(pid);
      const { result: res, peak } = await withRssPeak(pid, () => upload(nginx.url(`${location}upload`), UPLOAD, chunked));
      reportMeasure('scgi-uwsgi-peers', `upload 100 MiB${chunked ? ' chunked' : ''} through ${location}: RSS before ${mib(before)}, peak +${mib(peak - before)}`);
      expect(peak - before).toBeLessThan(32 * MiB);
      expect(res.status).toBe(200);
      const echo = JSON.parse(res.body.toString('utf8')) as Echo;
      expect(echo.protocol).toBe(proto);
      expect(echo.environ['CONTENT_LENGTH']).toBe(String(UPLOAD));
      expect({ length: echo.body_length, sha: echo.body_sha256 }).toEqual({ length: UPLOAD, sha: res.sentSha256 });
    }));
  }
});

// ---------------------------------------------------------------------------------------
// Apache mod_proxy_scgi and mod_proxy_uwsgi
// ---------------------------------------------------------------------------------------

describeWithPeers('Apache mod_proxy_scgi and mod_proxy_uwsgi → gatewire', ['apache2'], () => {
  let gw: Gatewire;
  let apache: WebServer;
  beforeAll(async () => {
    gw = await startGatewire(['scgi', 'uwsgi']);
    apache = await startApache({ template: 'scgi-uwsgi-peers', vars: { SCGI_ADDR: gw.addr('scgi'), UWSGI_ADDR: gw.addr('uwsgi') } });
  });
  afterAll(async () => {
    await apache?.stop();
    await gw?.stop();
  });

  test('S-4 S-8: mod_proxy_scgi GET: the CGI environment Apache sends, CGI-style answer accepted', withPeerLogs(async () => {
    const echo = echoOf(await httpGet(apache.url('/scgi/a/b?q=1'), { headers: { 'x-custom': 'yes' } }));
    expect(echo.protocol).toBe('scgi');
    expect(echo.environ).toMatchObject({
      SCGI: '1',
      REQUEST_METHOD: 'GET',
      REQUEST_URI: '/scgi/a/b?q=1',
      QUERY_STRING: 'q=1',
      SERVER_PROTOCOL: 'HTTP/1.1',
      SERVER_PORT: String(apache.port),
      REMOTE_ADDR: '127.0.0.1',
      HTTP_X_CUSTOM: 'yes',
      HTTP_HOST: `127.0.0.1:${apache.port}`,
      SERVER_SOFTWARE: expect.stringMatching(/^Apache/),
    });
    expect(echo.environ['GATEWAY_INTERFACE']).toBeUndefined(); // mod_proxy_scgi leaves it out
    // Apache sends no PATH_INFO: gatewire splits REQUEST_URI's path by the (empty) mount (E-5.2).
    expect({ SCRIPT_NAME: echo.environ['SCRIPT_NAME'], PATH_INFO: echo.environ['PATH_INFO'] }).toEqual({ SCRIPT_NAME: '', PATH_INFO: '/scgi/a/b' });
    // What Apache adds on its own, passed through as sent (E-15).
    expect(echo.environ['SCRIPT_FILENAME']).toBe(`proxy:scgi://${gw.addr('scgi')}/a/b`);
    expect(echo.environ['CONTEXT_DOCUMENT_ROOT']).toBe(path.join(apache.prefix, 'htdocs'));
  }));

  test('U-8: mod_proxy_uwsgi GET: gatewire answers with an HTTP status line, which Apache requires', withPeerLogs(async () => {
    const echo = echoOf(await httpGet(apache.url('/uwsgi/a/b?q=1')));
    expect(echo.protocol).toBe('uwsgi');
    expect(echo.environ).toMatchObject({
      REQUEST_METHOD: 'GET',
      REQUEST_URI: '/uwsgi/a/b?q=1',
      QUERY_STRING: 'q=1',
      SCRIPT_NAME: '/uwsgi',
      PATH_INFO: '/a/b',
      SERVER_PORT: String(apache.port),
      GATEWAY_INTERFACE: 'CGI/1.1',
    });
    expect(echo.environ['SCGI']).toBeUndefined();
  }));

  for (const [proto, prefix] of [['scgi', '/scgi/'], ['uwsgi', '/uwsgi/']] as const) {
    test(`${proto === 'scgi' ? 'S-7' : 'U-6'}: mod_proxy_${proto} POST body arrives exactly`, withPeerLogs(async () => {
      const body = randomBytes(70_000);
      const echo = echoOf(await httpGet(apache.url(`${prefix}post`), { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } }));
      expect(echo.environ['CONTENT_LENGTH']).toBe(String(body.length));
      expect({ length: echo.body_length, sha: echo.body_sha256 }).toEqual({ length: body.length, sha: sha256(body) });
    }));

    // mod_proxy_scgi reads the CGI head with Apache's script-header parser, which merges
    // repeated fields other than Set-Cookie into one line; mod_proxy_uwsgi keeps them apart.
    responseBehaviour(`mod_proxy_${proto}:`, proto === 'scgi' ? 'S-8' : 'U-8 U-9', (p) => apache.url(p), prefix, proto === 'scgi');

    test(`${proto === 'scgi' ? 'S-7' : 'U-6'}: mod_proxy_${proto} refuses a chunked request itself (411 Length Required); gatewire never sees it`, withPeerLogs(async () => {
      const res = await upload(apache.url(`${prefix}chunked`), 3 * MiB + 5, true);
      expect(res.status).toBe(411);
      await httpGet(apache.url(`${prefix}after-chunked`));
      const uris = (await gw.waitFor((e) => e.some((x) => x.uri === `${prefix}after-chunked`))).map((e) => e.uri);
      expect(uris).toContain(`${prefix}after-chunked`);
      expect(uris).not.toContain(`${prefix}chunked`);
    }));

    test(`${proto === 'scgi' ? 'S-7' : 'U-6'}: 100 MiB through mod_proxy_${proto}: length and SHA-256 match`, withPeerLogs(async () => {
      const res = await upload(apache.url(`${prefix}upload`), UPLOAD);
      expect(res.status).toBe(200);
      const echo = JSON.parse(res.body.toString('utf8')) as Echo;
      expect(echo.protocol).toBe(proto);
      expect({ length: echo.body_length, sha: echo.body_sha256 }).toEqual({ length: UPLOAD, sha: res.sentSha256 });
    }));
  }
});

// ---------------------------------------------------------------------------------------
// uWSGI's HTTP router as a uwsgi client
// ---------------------------------------------------------------------------------------

/** Starts uWSGI's HTTP router on a free port, forwarding to `to` (retries a taken port). */
async function startRouter(to: string, extra: readonly string[] = []): Promise<{ proc: PeerProcess; port: number }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      // Debian's uwsgi-core ships the router as /usr/lib/uwsgi/plugins/http_plugin.so.
      const proc = await startProcess(
        peerPath('uwsgi'),
        ['--plugin', 'http', '--master', '--http', `127.0.0.1:${port}`, '--http-to', to, '--http-timeout', '120', ...extra],
        { name: 'uwsgi http router', readyPort: port, readyLine: /spawned uWSGI http 1/, stopSignal: 'SIGINT' },
      );
      return { proc, port };
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

describeWithPeers('uWSGI HTTP router (uwsgi --plugin http --http ... --http-to ...) → gatewire --uwsgi', ['uwsgi'], () => {
  let gw: Gatewire;
  let router: { proc: PeerProcess; port: number };
  let port: number;
  const url = (p: string): string => `http://127.0.0.1:${port}${p}`;
  beforeAll(async () => {
    gw = await startGatewire(['uwsgi']);
    router = await startRouter(gw.addr('uwsgi'));
    port = router.port;
  });
  afterAll(async () => {
    await router?.proc.stop();
    await gw?.stop();
  });

  test('U-8 U-10: GET through the router: gatewire\'s status line is accepted; UWSGI_ROUTER is plain data', withPeerLogs(async () => {
    const echo = echoOf(await httpGet(url('/r/x?y=1'), { headers: { cookie: 'k=v' } }));
    expect(echo.protocol).toBe('uwsgi');
    expect(echo.environ).toMatchObject({
      REQUEST_METHOD: 'GET',
      REQUEST_URI: '/r/x?y=1',
      PATH_INFO: '/r/x',
      SCRIPT_NAME: '',
      QUERY_STRING: 'y=1',
      HTTP_COOKIE: 'k=v',
      HTTP_HOST: `127.0.0.1:${port}`,
      SERVER_PORT: String(port),
      SERVER_PROTOCOL: 'HTTP/1.1',
      REMOTE_ADDR: '127.0.0.1',
      UWSGI_ROUTER: 'http',
    });
  }));

  test('U-6: a chunked request: the router (without --http-chunked-input) forwards HTTP_TRANSFER_ENCODING but no CONTENT_LENGTH and no body', withPeerLogs(async () => {
    const answer = await timedRequest(port, [
      'POST /r/chunked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    ]);
    expect(answer.status).toBe(200);
    const echo = JSON.parse(answer.body.toString('utf8')) as Echo;
    expect(echo.environ['HTTP_TRANSFER_ENCODING']).toBe('chunked');
    expect(echo.environ['CONTENT_LENGTH']).toBeUndefined();
    // uWSGI's router drops the body: a limitation of the peer, documented here.
    expect(echo.body_length).toBe(0);
  }));

  test('U-6: POST through the router: the body arrives exactly', withPeerLogs(async () => {
    const body = randomBytes(300_000);
    const echo = echoOf(await httpGet(url('/r/post'), { method: 'POST', body }));
    expect(echo.environ['CONTENT_LENGTH']).toBe(String(body.length));
    expect({ length: echo.body_length, sha: echo.body_sha256 }).toEqual({ length: body.length, sha: sha256(body) });
  }));

  responseBehaviour('uWSGI router:', 'U-8 U-9', url, '/r/');

  test('U-6: 100 MiB through the router: length and SHA-256 match', withPeerLogs(async () => {
    const res = await upload(url('/r/upload'), UPLOAD);
    expect(res.status).toBe(200);
    const echo = JSON.parse(res.body.toString('utf8')) as Echo;
    expect({ length: echo.body_length, sha: echo.body_sha256 }).toEqual({ length: UPLOAD, sha: res.sentSha256 });
  }));
});

describeWithPeers('uWSGI HTTP router with --http-chunked-input → gatewire --uwsgi', ['uwsgi'], () => {
  let gw: Gatewire;
  let router: { proc: PeerProcess; port: number };
  beforeAll(async () => {
    gw = await startGatewire(['uwsgi']);
    router = await startRouter(gw.addr('uwsgi'), ['--http-chunked-input']);
  });
  afterAll(async () => {
    await router?.proc.stop();
    await gw?.stop();
  });

  test('U-6 §0.1 #15: the raw chunked stream follows the vars without CONTENT_LENGTH: never parsed as a request, and a warning', withPeerLogs(async () => {
    // The app answers after 400 ms (the slow route), so both chunks reach gatewire while the
    // request is still open, however the router times its forwarding.
    const answer = await timedRequest(router.port, [
      'POST /r/raw-chunked/slow?ms=400 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n',
      '5\r\nhello\r\n',
      200,
      '6\r\n world\r\n0\r\n\r\n',
    ]);
    expect(answer.status).toBe(200);
    const echo = JSON.parse(answer.body.toString('utf8')) as Echo;
    expect(echo.environ['HTTP_TRANSFER_ENCODING']).toBe('chunked');
    expect(echo.environ['CONTENT_LENGTH']).toBeUndefined();
    // gatewire does not decode uwsgi chunked input (uWSGI's own apps read it with
    // uwsgi.chunked_read()): the app sees no body, and the log says bytes were left unread.
    for (let i = 0; i < 100 && !gw.log().includes('past the CONTENT_LENGTH'); i++) await sleep(20);
    expect(gw.log()).toMatch(/"level":"warn","message":"uwsgi: bytes past the CONTENT_LENGTH of 0 /);
    await httpGet(`http://127.0.0.1:${router.port}/r/after`);
    const uris = (await gw.waitFor((e) => e.some((x) => x.uri === '/r/after'))).map((e) => e.uri);
    expect(uris).toEqual(['/r/raw-chunked/slow?ms=400', '/r/after']);
  }));
});

// ---------------------------------------------------------------------------------------
// --auto behind nginx: fastcgi_pass, scgi_pass and uwsgi_pass at one port, plus direct HTTP
// ---------------------------------------------------------------------------------------

describeWithPeers('gatewire --auto behind nginx fastcgi_pass, scgi_pass and uwsgi_pass (one port), and direct HTTP', ['nginx'], () => {
  let gw: Gatewire;
  let nginx: WebServer;
  beforeAll(async () => {
    gw = await startGatewire(['auto']);
    const auto = gw.addr('auto');
    nginx = await startNginx({ template: 'all', vars: { FASTCGI_ADDR: auto, SCGI_ADDR: auto, UWSGI_ADDR: auto } });
  });
  afterAll(async () => {
    await nginx?.stop();
    await gw?.stop();
  });

  const routes: Array<[location: string, protocol: string, pathInfo: (p: string) => string, scriptName: (p: string) => string]> = [
    ['/fcgi/', 'fastcgi', (p) => p, () => ''],
    ['/fcgi-nokeep/', 'fastcgi', (p) => p, () => ''],
    ['/scgi/', 'scgi', (p) => p, () => ''],
    ['/uwsgi/', 'uwsgi', (p) => p, () => ''],
    ['/mnt/', 'uwsgi', (p) => p.slice('/mnt'.length), () => '/mnt'],
  ];
  for (const [location, protocol, pathInfo, scriptName] of routes) {
    test(`auto: nginx ${location} reaches the --auto port as ${protocol}; GET and POST answered`, withPeerLogs(async () => {
      const p = `${location}a/b`;
      const get = echoOf(await httpGet(nginx.url(`${p}?q=1`)));
      expect(get.protocol).toBe(protocol);
      expect({ SCRIPT_NAME: get.environ['SCRIPT_NAME'], PATH_INFO: get.environ['PATH_INFO'], QUERY_STRING: get.environ['QUERY_STRING'] }).toEqual({
        SCRIPT_NAME: scriptName(p),
        PATH_INFO: pathInfo(p),
        QUERY_STRING: 'q=1',
      });
      const body = randomBytes(200_000);
      const post = echoOf(await httpGet(nginx.url(p), { method: 'POST', body }));
      expect(post.protocol).toBe(protocol);
      expect({ length: post.body_length, sha: post.body_sha256 }).toEqual({ length: body.length, sha: sha256(body) });
    }));
  }

  test('auto: direct HTTP to the same port is served as http', withPeerLogs(async () => {
    const port = gw.port('auto');
    const echo = echoOf(await httpGet(`http://127.0.0.1:${port}/direct/x?q=1`, { method: 'POST', body: 'hello' }));
    expect(echo.protocol).toBe('http');
    expect(echo.environ).toMatchObject({ PATH_INFO: '/direct/x', QUERY_STRING: 'q=1', SERVER_PORT: String(port), CONTENT_LENGTH: '5' });
    expect(echo.body).toBe('hello');
  }));

  test('auto: Set-Cookie twice, 204 and 500 over each protocol', withPeerLogs(async () => {
    for (const location of ['/fcgi/', '/scgi/', '/uwsgi/']) {
      const cookies = await httpGet(nginx.url(`${location}cookies`));
      expect({ location, cookies: headerValues(cookies, 'set-cookie') }).toEqual({ location, cookies: ['a=1; Path=/', 'b=2; HttpOnly'] });
      const empty = await httpGet(nginx.url(`${location}status/204`));
      expect({ location, status: empty.status, length: empty.body.length }).toEqual({ location, status: 204, length: 0 });
      const fail = await httpGet(nginx.url(`${location}fail`));
      expect({ location, status: fail.status }).toEqual({ location, status: 500 });
    }
  }));

  test('auto: the access log tags each request with the detected protocol', withPeerLogs(async () => {
    await httpGet(nginx.url('/fcgi/tag'));
    await httpGet(nginx.url('/scgi/tag'));
    await httpGet(nginx.url('/uwsgi/tag'));
    await httpGet(`http://127.0.0.1:${gw.port('auto')}/tag`);
    const tagged = (await gw.waitFor((e) => e.filter((x) => x.uri.endsWith('/tag')).length >= 4))
      .filter((e) => e.uri.endsWith('/tag'))
      .map((e) => `${e.protocol} ${e.uri}`);
    expect(tagged.sort()).toEqual(['fastcgi /fcgi/tag', 'http /tag', 'scgi /scgi/tag', 'uwsgi /uwsgi/tag']);
  }));
});

describeWithPeers('gatewire --auto behind Apache mod_proxy_scgi / mod_proxy_uwsgi and the uWSGI router', ['apache2', 'uwsgi'], () => {
  let gw: Gatewire;
  let apache: WebServer;
  let router: { proc: PeerProcess; port: number };
  beforeAll(async () => {
    gw = await startGatewire(['auto']);
    apache = await startApache({ template: 'scgi-uwsgi-peers', vars: { SCGI_ADDR: gw.addr('auto'), UWSGI_ADDR: gw.addr('auto') } });
    router = await startRouter(gw.addr('auto'));
  });
  afterAll(async () => {
    await Promise.all([apache?.stop(), router?.proc.stop()]);
    await gw?.stop();
  });

  const clients: Array<[name: string, url: (p: string) => string, protocol: string]> = [
    ['Apache mod_proxy_scgi', (p) => apache.url(`/scgi${p}`), 'scgi'],
    ['Apache mod_proxy_uwsgi', (p) => apache.url(`/uwsgi${p}`), 'uwsgi'],
    ['the uWSGI router', (p) => `http://127.0.0.1:${router.port}${p}`, 'uwsgi'],
  ];
  for (const [name, url, protocol] of clients) {
    test(`auto: ${name} reaches the --auto port as ${protocol}: POST body, Set-Cookie twice, 204`, withPeerLogs(async () => {
      const body = randomBytes(150_000);
      const echo = echoOf(await httpGet(url('/post?x=1'), { method: 'POST', body }));
      expect(echo.protocol).toBe(protocol);
      expect(echo.environ['QUERY_STRING']).toBe('x=1');
      expect({ length: echo.body_length, sha: echo.body_sha256 }).toEqual({ length: body.length, sha: sha256(body) });
      const cookies = await httpGet(url('/cookies'));
      expect(headerValues(cookies, 'set-cookie')).toEqual(['a=1; Path=/', 'b=2; HttpOnly']);
      const empty = await httpGet(url('/status/204'));
      expect({ status: empty.status, length: empty.body.length }).toEqual({ status: 204, length: 0 });
    }));
  }
});

// ---------------------------------------------------------------------------------------
// Unix sockets
// ---------------------------------------------------------------------------------------

describeWithPeers('nginx scgi_pass / uwsgi_pass unix:PATH → gatewire --scgi unix: / --uwsgi unix:', ['nginx'], () => {
  let gw: Gatewire;
  let nginx: WebServer;
  beforeAll(async () => {
    // As root nginx's workers run as root (the harness's `user root root;`) and reach the
    // sockets in gatewire's 0700 temporary folder.
    gw = await startGatewire(['scgi', 'uwsgi'], { unix: ['scgi', 'uwsgi'] });
    nginx = await startNginx({ template: 'scgi-uwsgi-peers', vars: { SCGI_ADDR: gw.addr('scgi'), UWSGI_ADDR: gw.addr('uwsgi') } });
  });
  afterAll(async () => {
    await nginx?.stop();
    await gw?.stop();
  });

  for (const [proto, prefix] of [['scgi', '/scgi/'], ['uwsgi', '/uwsgi/'], ['uwsgi', '/mnt/']] as const) {
    test(`${proto === 'scgi' ? 'S-7' : 'U-6'}: ${prefix} over a unix socket: GET and POST; REMOTE_ADDR is still the client's`, withPeerLogs(async () => {
      expect(gw.addr(proto)).toMatch(/^unix:\//);
      const get = echoOf(await httpGet(nginx.url(`${prefix}u?k=v`)));
      expect(get.protocol).toBe(proto);
      expect({ REMOTE_ADDR: get.environ['REMOTE_ADDR'], QUERY_STRING: get.environ['QUERY_STRING'] }).toEqual({ REMOTE_ADDR: '127.0.0.1', QUERY_STRING: 'k=v' });
      const body = randomBytes(1 * MiB + 17);
      const post = echoOf(await httpGet(nginx.url(`${prefix}u`), { method: 'POST', body }));
      expect({ length: post.body_length, sha: post.body_sha256 }).toEqual({ length: body.length, sha: sha256(body) });
    }));
  }
});
