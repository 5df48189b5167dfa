/**
 * --timeout (OP-10, OP-11): an app that has not started its response within TIME gets a 504 on
 * every front, its gatewire.signal aborts, one warn line names the request id, the access log
 * records 504, and the connection carries on (HTTP keep-alive, FastCGI keep-conn). After the
 * head went out the timeout does not apply.
 */
import type http from 'node:http';
import net from 'node:net';
import type { App, Service } from '../src/app.js';
import { fromFetchHandler } from '../src/apps/fetch.js';
import { fromNodeHandler } from '../src/apps/node.js';
import type { NodeHandler } from '../src/app.js';
import { type AccessRecord, type Logger, silentLogger } from '../src/logger.js';
import { InflightCounter } from '../src/fronts/common.js';
import { FRONTS as registry } from '../src/fronts/registry.js';
import { resolveOptions } from '../src/options.js';
import { Gateway } from '../src/server.js';
import { type GcFunction, obtainGc } from '../src/memory.js';
import { type MatrixRequest, type MatrixResult, fastcgiRequest, httpRequest, scgiRequest, uwsgiRequest } from './helpers/fronts.js';
import { FcgiConn, fcgiRequest as fcgiOnConn, nginxParams, parseCgiResponse } from './helpers/fcgi-client.js';
import type { GatewayAddress } from './helpers/scgi-client.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const gc = obtainGc() as GcFunction;

interface Line {
  level: string;
  message: string;
  meta: Record<string, unknown> | undefined;
}

function recordingLogger(): Logger & { lines: Line[]; accessed: AccessRecord[] } {
  const lines: Line[] = [];
  const accessed: AccessRecord[] = [];
  const at = (level: string) => (message: string, meta?: Record<string, unknown>) => void lines.push({ level, message, meta });
  return { lines, accessed, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), debugEnabled: false, access: (r) => void accessed.push(r), close: async () => undefined };
}

/** What the apps saw: per request path, whether the signal aborted and with which reason. */
const seen = new Map<string, { aborted: boolean; reason: string }>();

function watch(key: string, signal: AbortSignal | undefined): void {
  seen.set(key, { aborted: false, reason: '' });
  signal?.addEventListener('abort', () => seen.set(key, { aborted: true, reason: String((signal.reason as Error)?.message ?? signal.reason) }));
}

const environApp: App = (environ, startResponse) => {
  const path = environ.PATH_INFO;
  const key = String(environ.HTTP_X_KEY ?? path);
  watch(key, environ['gatewire.signal']);
  if (path === '/never') return new Promise(() => undefined);
  if (path === '/late' || path === '/fast') {
    return sleep(path === '/late' ? 1000 : 100).then(() => {
      // After a 504, all of this is ignored quietly.
      const write = startResponse('200 OK', [['Content-Type', 'text/plain']]);
      write('late ');
      return ['ok'];
    });
  }
  if (path === '/stall') {
    startResponse('200 OK', [['Content-Type', 'text/plain']]);
    return (async function* () {
      yield 'head and a first chunk ';
      await sleep(700);
      yield 'the rest';
    })();
  }
  startResponse('200 OK', [['Content-Type', 'text/plain']]);
  return ['plain'];
};

const nodeHandler: NodeHandler = (req, res) => {
  const url = req.url ?? '/';
  const key = String(req.headers['x-key'] ?? url);
  seen.set(key, { aborted: false, reason: '' });
  res.on('close', () => seen.set(key, { aborted: !res.writableFinished || seen.get(key)?.reason === '', reason: 'res closed' }));
  if (url === '/never') return;
  if (url === '/late' || url === '/fast') {
    setTimeout(
      () => {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.write('late ');
        res.end('ok');
      },
      url === '/late' ? 1000 : 100,
    );
    return;
  }
  if (url === '/stall') {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.write('head and a first chunk ');
    setTimeout(() => res.end('the rest'), 700);
    return;
  }
  res.end('plain');
};

const fetchHandler = async (request: Request): Promise<Response> => {
  const url = new URL(request.url);
  const key = request.headers.get('x-key') ?? url.pathname;
  watch(key, request.signal);
  if (url.pathname === '/never') return new Promise(() => undefined);
  if (url.pathname === '/late' || url.pathname === '/fast') {
    await sleep(url.pathname === '/late' ? 1000 : 100);
    return new Response('ok');
  }
  if (url.pathname === '/stall') {
    let n = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (n++ === 0) controller.enqueue(new TextEncoder().encode('head and a first chunk '));
        else {
          await sleep(700);
          controller.enqueue(new TextEncoder().encode('the rest'));
          controller.close();
        }
      },
    });
    return new Response(body, { headers: { 'Content-Type': 'text/plain' } });
  }
  return new Response('plain');
};

const SERVICES: Record<string, Service> = {
  environ: { app: environApp, interface: 'environ' },
  node: { app: fromNodeHandler(nodeHandler), node: nodeHandler, interface: 'node' },
  fetch: { app: fromFetchHandler(fetchHandler), interface: 'fetch' },
};

type Send = (addr: GatewayAddress, port: number, req: MatrixRequest) => Promise<MatrixResult>;
const FRONTS: Record<string, Send> = {
  http: (_addr, port, req) => httpRequest(port, req),
  fastcgi: fastcgiRequest,
  scgi: scgiRequest,
  uwsgi: uwsgiRequest,
};

async function start(front: string, service: Service): Promise<{ gateway: Gateway; addr: GatewayAddress; port: number; logger: ReturnType<typeof recordingLogger> }> {
  const logger = recordingLogger();
  const options = resolveOptions({ [front]: ['127.0.0.1:0'], timeout: '300ms' }, {});
  const gateway = new Gateway(service, options, logger);
  const listeners = await gateway.listen();
  const port = (listeners[0]?.address as { port: number }).port;
  return { gateway, addr: { port }, port, logger };
}

const waitUntil = async (cond: () => boolean, ms = 2000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(10);
};

describe.each(Object.keys(FRONTS))('--timeout on %s', (front) => {
  describe.each(Object.keys(SERVICES))('%s app', (kind) => {
    const send = FRONTS[front] as Send;
    let server: Awaited<ReturnType<typeof start>>;
    beforeAll(async () => {
      server = await start(front, SERVICES[kind] as Service);
    });
    afterAll(async () => {
      await server.gateway.close(100);
    });

    test.each(['/never', '/late'])('OP-10: %s gets a 504 within the timeout, logged with the request id, the signal aborts', async (path) => {
      const key = `${front}-${kind}-${path}`;
      // A full GC while the app waits: the abort must still reach what the app kept (a fetch
      // handler that holds only request.signal, not the Request).
      const collect = setTimeout(() => gc({ type: 'major', execution: 'sync' }), 150);
      const t0 = performance.now();
      const res = await send(server.addr, server.port, { path, headers: { 'X-Key': key } });
      clearTimeout(collect);
      const ms = performance.now() - t0;
      expect(res.status).toBe(504);
      expect(res.body.toString()).toMatch(/^Gateway Timeout\nrequest id: \S+\n$/);
      expect(ms).toBeGreaterThanOrEqual(250);
      expect(ms).toBeLessThan(900);
      const id = /request id: (\S+)/.exec(res.body.toString())?.[1];
      const lines = server.logger.lines.filter((l) => l.message === 'timeout: app did not answer in 300 ms');
      expect(lines.filter((l) => l.level === 'warn' && l.meta?.request_id === id)).toHaveLength(1);
      await waitUntil(() => server.logger.accessed.some((a) => a.id === id));
      expect(server.logger.accessed.find((a) => a.id === id)?.status).toBe(504);
      await waitUntil(() => seen.get(key)?.aborted === true);
      const s = seen.get(key);
      expect(s?.aborted).toBe(true);
      // A Node handler has no signal: it sees its res close (node adapter: req 'aborted' too).
      if (kind !== 'node') expect(s?.reason).toBe('timeout: app did not answer in 300 ms');
      if (path === '/late') await sleep(900); // the late answer comes and is ignored (no crash)
    });

    test('OP-11: a response whose head went out is not cut by the timeout', async () => {
      const res = await send(server.addr, server.port, { path: '/stall', timing: true });
      expect(res.status).toBe(200);
      expect(res.truncated).toBe(false);
      expect(res.body.toString()).toBe('head and a first chunk the rest');
      expect(res.headAt).toBeLessThan(300);
    });

    test('OP-10: an app that answers within the timeout gets its 200', async () => {
      const res = await send(server.addr, server.port, { path: '/fast' });
      expect(res.status).toBe(200);
      expect(res.body.toString()).toMatch(/ok$/);
    });
  });
});

/** Two HTTP/1.1 requests on one connection; returns the bytes received after both answers. */
async function twoOnOneConnection(port: number, first: string, second: string): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  let data = '';
  socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
  socket.write(`GET ${first} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  await waitUntil(() => /\r\n\r\nGateway Timeout\nrequest id: \S+\n/.test(data), 3000);
  // The late answer of the first request comes meanwhile; nothing of it may reach the connection.
  await sleep(900);
  socket.write(`GET ${second} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
  await new Promise((r) => socket.once('close', r));
  return data;
}

describe.each(Object.keys(SERVICES))('--timeout keeps the connection (%s app)', (kind) => {
  test('OP-10: HTTP keep-alive: a 504, then the next request on the same connection is answered', async () => {
    const server = await start('http', SERVICES[kind] as Service);
    try {
      const data = await twoOnOneConnection(server.port, '/late', '/plain');
      const statuses = [...data.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
      expect(statuses).toEqual(['504', '200']);
      expect(data).not.toContain('late ');
      expect(data.endsWith('plain')).toBe(true);
    } finally {
      await server.gateway.close(100);
    }
  });

  test('OP-10: FastCGI keep-conn: a 504 with END_REQUEST, then the next request on the same connection', async () => {
    const server = await start('fastcgi', SERVICES[kind] as Service);
    const conn = await FcgiConn.open(server.addr);
    try {
      const params = (uri: string): Array<[string, string]> => nginxParams({ method: 'GET', uri, headers: { Host: 'localhost' }, serverPort: server.port });
      const first = await fcgiOnConn(conn, { params: params('/late'), keepConn: true, id: 1 });
      expect(parseCgiResponse(first.stdout)?.status).toBe(504);
      expect(first.completed).toBe(true);
      await sleep(900);
      const second = await fcgiOnConn(conn, { params: params('/plain'), keepConn: true, id: 1 });
      expect(parseCgiResponse(second.stdout)?.status).toBe(200);
      expect(parseCgiResponse(second.stdout)?.body.toString()).toBe('plain');
      expect(second.stdout.toString()).not.toContain('late');
      expect(conn.gone).toBe(false);
    } finally {
      conn.destroy();
      await server.gateway.close(100);
    }
  });
});

describe('--timeout hook', () => {
  test('OP-10: FrontContext.onTimeout is called with the protocol; off (0) adds nothing', async () => {
    const counted: string[] = [];
    const options = resolveOptions({ timeout: '300ms' }, {});
    const listener = registry.find((f) => f.name === 'http')?.load().listen({ service: SERVICES.environ as Service, options, mount: '', logger: silentLogger(), inflight: new InflightCounter(100), multiprocess: false, onTimeout: (p) => counted.push(p) });
    const server = listener?.server as http.Server;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as net.AddressInfo).port;
      const res = await httpRequest(port, { path: '/never' });
      expect(res.status).toBe(504);
      expect(counted).toEqual(['http']);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
    expect(resolveOptions({}, {}).timeout).toBe(0);
  });
});
