/**
 * WebSocket and other Upgrade requests through the built CLI (`gatewire serve MODULE`): a
 * module's `upgrade(req, socket, head)` export is node:http's 'upgrade' listener on --http and on
 * --auto's HTTP connections (H-15), a module without one gets an Upgrade request as a plain
 * request as node:http does (H-16), and over FastCGI, SCGI and uwsgi an Upgrade request is a
 * plain request with its HTTP_UPGRADE and HTTP_CONNECTION, never a tunnel (F-47, S-13, U-12).
 * Clients: `ws`, socket.io-client (WebSocket only, and long-polling then upgrade).
 */
import { io as ioClient, type Socket as IoSocket } from 'socket.io-client';
import WebSocket from 'ws';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Proc, app, ensureBuilt, killAll, oneLine, portOf, rawRequest, runCli, spawnCli, tempDir } from './fixtures/apps/cli-harness.js';
import { fcgiRequest, nginxParams, parseCgiResponse } from './helpers/fcgi-client.js';
import { parseScgiResponse, rawExchange, scgiRequestBytes } from './helpers/scgi-client.js';
import { parseHttpResponse, uwsgiRequestBytes } from './helpers/uwsgi-client.js';

const FRONTS = ['http', 'auto'] as const;
type Front = (typeof FRONTS)[number];

beforeAll(() => ensureBuilt(), 180_000);
afterAll(() => killAll());

/** `gatewire serve MODULE --FRONT 127.0.0.1:0 ...flags`, and the port it bound. */
async function serve(module: string, front: string, flags: string[] = []): Promise<{ proc: Proc; port: number }> {
  const proc = spawnCli(['serve', app(module), `--${front}`, '127.0.0.1:0', ...flags]);
  const [address] = await proc.listening();
  return { proc, port: portOf(address as string) };
}

/** Opens a `ws` client and collects what it receives. */
async function openWs(url: string): Promise<{ ws: WebSocket; next: () => Promise<string> }> {
  const ws = new WebSocket(url);
  const queue: string[] = [];
  const waiting: Array<(s: string) => void> = [];
  ws.on('message', (data: WebSocket.RawData) => {
    const text = (data as Buffer).toString('utf8');
    const w = waiting.shift();
    if (w === undefined) queue.push(text);
    else w(text);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const next = (): Promise<string> => {
    const queued = queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no WebSocket message within 5 s')), 5000);
      waiting.push((s) => {
        clearTimeout(timer);
        resolve(s);
      });
    });
  };
  return { ws, next };
}

function closeWs(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve();
    ws.once('close', () => resolve());
    ws.close();
  });
}

/** Why a WebSocket handshake failed (`Unexpected server response: 200`, ECONNRESET...). */
function wsRefusal(url: string): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.once('open', () => {
      ws.terminate();
      resolve('open');
    });
    ws.once('error', (err: Error) => resolve(err.message));
  });
}

const UPGRADE_HEAD = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

describe.each(FRONTS)('the upgrade export on --%s', (front: Front) => {
  let port: number;
  beforeAll(async () => {
    ({ port } = await serve('ws-echo.mjs', front, ['--mount', '/app', '--request-timeout', '1s', '--headers-timeout', '1s']));
  }, 30_000);

  test('H-15 a ws client sends 3 messages and gets them echoed; the handler sees the URL below the mount', async () => {
    const { ws, next } = await openWs(`ws://127.0.0.1:${port}/app/chat?x=1`);
    expect(await next()).toBe('hello /chat?x=1');
    for (const m of ['one', 'two', 'three']) ws.send(m);
    expect([await next(), await next(), await next()]).toEqual(['one', 'two', 'three']);
    await closeWs(ws);
  });

  test('H-15 an upgraded connection outlives --request-timeout and --headers-timeout', async () => {
    const { ws, next } = await openWs(`ws://127.0.0.1:${port}/app/`);
    expect(await next()).toBe('hello /');
    await new Promise((r) => setTimeout(r, 1600));
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.send('still here');
    expect(await next()).toBe('still here');
    await closeWs(ws);
  });

  test('H-15 plain requests still reach the app, and Upgrade requests never do', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/app/x`);
    expect(res.status).toBe(200);
    const report = (await res.json()) as { path: string; upgrade: unknown; upgrades: number };
    expect(report.path).toBe('/x');
    expect(report.upgrade).toBeNull();
    expect(report.upgrades).toBeGreaterThanOrEqual(2);
  });

  test('H-15 an Upgrade request is checked like any request: two Host fields 400, outside the mount 404', async () => {
    const twoHosts = (await rawRequest(port, `GET /app/chat HTTP/1.1\r\nHost: a\r\nHost: b\r\n${UPGRADE_HEAD}\r\n`)).toString('latin1');
    expect(twoHosts).toMatch(/^HTTP\/1\.1 400 /);
    expect(twoHosts).not.toMatch(/101 Switching/);
    const outside = (await rawRequest(port, `GET /other HTTP/1.1\r\nHost: h\r\n${UPGRADE_HEAD}\r\n`)).toString('latin1');
    expect(outside).toMatch(/^HTTP\/1\.1 404 /);
  });
});

test('H-15 a fetch module: `upgrade` as a property of the default export object, next to fetch()', async () => {
  const { port } = await serve('fetch-ws.mjs', 'http');
  const res = await fetch(`http://127.0.0.1:${port}/page`);
  expect(await res.text()).toBe('fetch /page\n');
  const { ws, next } = await openWs(`ws://127.0.0.1:${port}/ws`);
  ws.send('shout');
  expect(await next()).toBe('SHOUT');
  await closeWs(ws);
});

test('H-15 an upgrade export that is not a function is a load error (one line, exit 2)', async () => {
  const file = path.join(tempDir(), 'bad-upgrade.mjs');
  fs.writeFileSync(file, 'export const upgrade = 42;\nexport default (environ, startResponse) => { startResponse("200 OK", []); return []; };\n');
  const r = await runCli(['serve', file, '--http', '127.0.0.1:0']);
  expect(r.code).toBe(2);
  expect(oneLine(r.stderr)).toMatch(/upgrade export must be a function/);
});

describe.each(FRONTS)('socket.io on --%s (engine.io bound without an http.Server)', (front: Front) => {
  let port: number;
  const clients: IoSocket[] = [];
  beforeAll(async () => {
    ({ port } = await serve('socketio.mjs', front));
  }, 30_000);
  afterAll(() => {
    for (const c of clients) c.disconnect();
  });

  function connect(transports?: Array<'polling' | 'websocket'>): IoSocket {
    const socket = ioClient(`http://127.0.0.1:${port}`, { ...(transports === undefined ? {} : { transports }), reconnection: false, timeout: 5000 });
    clients.push(socket);
    return socket;
  }

  test('H-15 transports: [websocket]: a round trip over the WebSocket', async () => {
    const socket = connect(['websocket']);
    const reply = (await socket.timeout(5000).emitWithAck('echo', 'hi')) as { message: string; transport: string };
    expect(reply).toEqual({ message: 'hi', transport: 'websocket' });
    socket.disconnect();
  });

  test('H-15 the default transports: long-polling through the app, then the upgrade', async () => {
    const socket = connect();
    const first = (await socket.timeout(5000).emitWithAck('echo', 'polled')) as { message: string; transport: string };
    expect(first.message).toBe('polled');
    const engine = socket.io.engine;
    if (engine.transport.name !== 'websocket') await new Promise<void>((resolve) => engine.once('upgrade', () => resolve()));
    const second = (await socket.timeout(5000).emitWithAck('echo', 'upgraded')) as { message: string; transport: string };
    expect(second).toEqual({ message: 'upgraded', transport: 'websocket' });
    socket.disconnect();
  });
});

describe.each(FRONTS)('a module without an upgrade export on --%s', (front: Front) => {
  let port: number;
  beforeAll(async () => {
    ({ port } = await serve('no-upgrade.mjs', front, ['--keep-alive-timeout', '200ms']));
  }, 30_000);

  test('H-16 an Upgrade request is a plain request, Upgrade and Connection fields included (node:http without an upgrade listener)', async () => {
    const res = (await rawRequest(port, `GET /chat HTTP/1.1\r\nHost: h\r\n${UPGRADE_HEAD}\r\n`)).toString('latin1');
    expect(res).toMatch(/^HTTP\/1\.1 200 /);
    const body = JSON.parse(res.slice(res.indexOf('\r\n\r\n') + 4)) as Record<string, string>;
    expect(body).toEqual({ method: 'GET', url: '/chat', upgrade: 'websocket', connection: 'Upgrade' });
  });

  test('H-16 a ws client is told the handshake failed', async () => {
    expect(await wsRefusal(`ws://127.0.0.1:${port}/chat`)).toMatch(/Unexpected server response: 200/);
  });
});

/** The ws-echo module's report for a plain request. */
interface Report {
  method: string;
  upgrade: string | null;
  connection: string | null;
  upgrades: number;
}

const WS_HEADERS = { Host: 'localhost', Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' };

describe('Upgrade over the gateway protocols', () => {
  test('F-47 over --fastcgi: the app answers a plain request with HTTP_UPGRADE and HTTP_CONNECTION, the upgrade export is not called', async () => {
    const { port } = await serve('ws-echo.mjs', 'fastcgi');
    const result = await fcgiRequest({ port }, { params: nginxParams({ uri: '/chat', headers: WS_HEADERS, serverPort: port }) });
    const res = parseCgiResponse(result.stdout);
    expect(res?.status).toBe(200);
    expect(JSON.parse((res?.body as Buffer).toString('utf8'))).toEqual({ method: 'GET', path: '/chat', upgrade: 'websocket', connection: 'Upgrade', upgrades: 0 });
  });

  test('F-47 S-13 U-12 on --auto: FastCGI, SCGI and uwsgi the same, an HTTP Upgrade on the same listener is upgraded', async () => {
    const { port } = await serve('ws-echo.mjs', 'auto');
    const bodies: Report[] = [];
    const fcgi = parseCgiResponse((await fcgiRequest({ port }, { params: nginxParams({ uri: '/chat', headers: WS_HEADERS, serverPort: port }) })).stdout);
    bodies.push(JSON.parse((fcgi?.body as Buffer).toString('utf8')) as Report);
    const scgi = parseScgiResponse((await rawExchange({ port }, scgiRequestBytes({ uri: '/chat', headers: WS_HEADERS, serverPort: port }))).data);
    bodies.push(JSON.parse((scgi?.body as Buffer).toString('utf8')) as Report);
    const uwsgi = parseHttpResponse((await rawExchange({ port }, uwsgiRequestBytes({ uri: '/chat', headers: WS_HEADERS, serverPort: port }))).data);
    bodies.push(JSON.parse((uwsgi?.body as Buffer).toString('utf8')) as Report);
    for (const b of bodies) expect(b).toEqual({ method: 'GET', path: '/chat', upgrade: 'websocket', connection: 'Upgrade', upgrades: 0 });
    const { ws, next } = await openWs(`ws://127.0.0.1:${port}/chat`);
    expect(await next()).toBe('hello /chat');
    await closeWs(ws);
  });
});
