/**
 * Scale-out (the README's recipe): three gatewire instances on FastCGI keep-conn, each on its
 * own unix socket, behind one real nginx upstream (fixtures/nginx/scale-out.conf), loaded with
 * wrk while the instances are restarted one by one, reloaded one by one, or killed.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { type Proc, ensureBuilt, killAll, spawnCli, tempDir } from './fixtures/apps/cli-harness.js';
import { describeWithPeers, startNginx, type WebServer } from './helpers/peers.js';
import { reportMeasure } from './helpers/rss.js';
import { wrk } from './helpers/wrk.js';

jest.setTimeout(90_000);
beforeAll(() => ensureBuilt());
afterEach(() => killAll());

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** POSTs 1 kB bodies through nginx one after the other until `stop()`; counts what was not 200. */
function postLoop(port: number): { stop(): Promise<{ sent: number; failed: number }> } {
  let running = true;
  let sent = 0;
  let failed = 0;
  const body = Buffer.alloc(1024, 'x');
  const loop = (async () => {
    while (running) {
      const status = await new Promise<number>((resolve) => {
        const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/post', agent: false, headers: { 'Content-Type': 'text/plain', 'Content-Length': body.length } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', () => resolve(0));
        req.end(body);
      });
      sent++;
      if (status !== 200) failed++;
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { sent, failed };
    },
  };
}

describeWithPeers('OP-26: three instances behind one nginx upstream', ['nginx', 'wrk'], () => {
  let dir: string;
  let app: string;
  let socks: Record<'a' | 'b' | 'c', string>;

  async function instance(name: 'a' | 'b' | 'c'): Promise<Proc> {
    const proc = spawnCli(['serve', app, '--fastcgi', `unix:${socks[name]}`, '--workers', '1']);
    await proc.waitFor(/primary \d+: 1 worker ready/);
    return proc;
  }

  async function setUp(): Promise<{ nginx: WebServer; procs: Record<'a' | 'b' | 'c', Proc> }> {
    dir = tempDir();
    fs.chmodSync(dir, 0o755);
    app = path.join(dir, 'app.mjs');
    // Reads a POST body whole, as an app does, then answers with its pid.
    fs.writeFileSync(
      app,
      "export default async function app(environ, startResponse) {\n  const input = environ['gatewire.input'];\n  if (environ.REQUEST_METHOD === 'POST') for await (const chunk of input) void chunk;\n  startResponse('200 OK', [['Content-Type', 'text/plain']]);\n  return [String(process.pid)];\n}\n",
    );
    socks = { a: path.join(dir, 'a.sock'), b: path.join(dir, 'b.sock'), c: path.join(dir, 'c.sock') };
    const procs = { a: await instance('a'), b: await instance('b'), c: await instance('c') };
    const nginx = await startNginx({ template: 'scale-out', vars: { SOCK_DIR: dir } });
    return { nginx, procs };
  }

  function nginx5xx(nginx: WebServer): number {
    const log = fs.readFileSync(path.join(nginx.prefix, 'logs', 'scaleout.log'), 'utf8');
    return log.split('\n').filter((l) => /^5\d\d /.test(l)).length;
  }

  test('OP-26: a rolling restart (TERM, start again, next) during 12 s of wrk and a POST loop: 0 non-2xx, 0 socket errors, 0 5xx in nginx', async () => {
    const { nginx, procs } = await setUp();
    try {
      const load = wrk(nginx.url('/'), 12);
      const posts = postLoop(nginx.port);
      await sleep(1000);
      for (const name of ['a', 'b', 'c'] as const) {
        procs[name].signal('SIGTERM');
        expect((await procs[name].waitExit()).code).toBe(0);
        procs[name] = await instance(name);
        // nginx counted the refused connects: the instance is back in rotation after fail_timeout (2 s).
        await sleep(2500);
      }
      const r = await load;
      const p = await posts.stop();
      const fives = nginx5xx(nginx);
      reportMeasure('scale-out', `rolling restart: ${r.requests} GETs, ${r.non2xx} non-2xx, ${r.socketErrors} socket errors; ${p.sent} POSTs, ${p.failed} failed; nginx 5xx ${fives}`);
      expect({ non2xx: r.non2xx, socketErrors: r.socketErrors, postsFailed: p.failed, nginx5xx: fives }).toEqual({ non2xx: 0, socketErrors: 0, postsFailed: 0, nginx5xx: 0 });
      expect(p.sent).toBeGreaterThan(50);
    } finally {
      await nginx.stop();
    }
  });

  test('OP-26: a HUP of each instance in turn during 8 s of load: 0 non-2xx, 0 5xx', async () => {
    const { nginx, procs } = await setUp();
    try {
      const load = wrk(nginx.url('/'), 8);
      const posts = postLoop(nginx.port);
      await sleep(1000);
      for (const name of ['a', 'b', 'c'] as const) {
        procs[name].signal('SIGHUP');
        await procs[name].waitFor(/reload done/);
        await sleep(1000);
      }
      const r = await load;
      const p = await posts.stop();
      const fives = nginx5xx(nginx);
      reportMeasure('scale-out', `HUP of each: ${r.requests} GETs, ${r.non2xx} non-2xx, ${r.socketErrors} socket errors; ${p.sent} POSTs, ${p.failed} failed; nginx 5xx ${fives}`);
      expect({ non2xx: r.non2xx, socketErrors: r.socketErrors, postsFailed: p.failed, nginx5xx: fives }).toEqual({ non2xx: 0, socketErrors: 0, postsFailed: 0, nginx5xx: 0 });
    } finally {
      await nginx.stop();
    }
  });

  test('OP-26: kill -9 of one whole instance under load: the others serve, and at most its in-flight requests are lost', async () => {
    const { nginx, procs } = await setUp();
    try {
      const load = wrk(nginx.url('/'), 6);
      await sleep(2000);
      procs.b.killGroup();
      await procs.b.waitExit();
      const r = await load;
      const fives = nginx5xx(nginx);
      reportMeasure('scale-out', `kill -9 of one instance: ${r.requests} GETs, ${r.non2xx} non-2xx, ${r.socketErrors} socket errors; nginx 5xx ${fives}`);
      // nginx retries a GET that failed before any byte of its answer came: what can be lost is
      // what had its head on the way when the instance died, at most one per wrk connection.
      expect(r.non2xx + r.socketErrors).toBeLessThanOrEqual(16);
      expect(r.requests).toBeGreaterThan(1000);
    } finally {
      await nginx.stop();
    }
  });
});

describeWithPeers('OP-27: nginx closes idle upstream connections before gatewire does', ['nginx'], () => {
  /** One POST through nginx on a fresh client connection; its status (0 for a failure). */
  function post(port: number, pathname: string): Promise<number> {
    const body = Buffer.alloc(512, 'p');
    return new Promise((resolve) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: pathname, agent: false, headers: { 'Content-Type': 'text/plain', 'Content-Length': body.length } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', () => resolve(0));
      req.end(body);
    });
  }

  test('OP-27: keepalive_timeout 1s against gatewire idle timeouts of 3s, sparse POSTs over FastCGI keep-conn and HTTP for 14 s: every one 200, no "prematurely closed" or reset in the error log', async () => {
    const dir = tempDir();
    fs.chmodSync(dir, 0o755);
    const app = path.join(dir, 'app.mjs');
    fs.writeFileSync(
      app,
      "export default async function app(environ, startResponse) {\n  for await (const chunk of environ['gatewire.input']) void chunk;\n  startResponse('200 OK', [['Content-Type', 'text/plain']]);\n  return ['ok'];\n}\n",
    );
    const proc = spawnCli(['serve', app, '--fastcgi', `unix:${path.join(dir, 'fcgi.sock')}`, '--http', `unix:${path.join(dir, 'http.sock')}`, '--idle-timeout', '3s', '--keep-alive-timeout', '3s']);
    await proc.waitFor(/primary \d+: 1 worker ready/);
    const nginx = await startNginx({ template: 'keepalive-order', vars: { SOCK_DIR: dir } });
    try {
      // Gaps around both timeouts: below nginx's, at it, between the two, at gatewire's, beyond it.
      const gaps = [200, 950, 1000, 1050, 1500, 2000, 2900, 3000, 3100, 100];
      const run = async (pathname: string): Promise<number[]> => {
        const statuses: number[] = [];
        for (const gap of gaps) {
          statuses.push(await post(nginx.port, pathname));
          await sleep(gap);
        }
        statuses.push(await post(nginx.port, pathname));
        return statuses;
      };
      const [fcgi, httpStatuses] = await Promise.all([run('/fcgi/x'), run('/http/x')]);
      const errors = fs
        .readFileSync(path.join(nginx.prefix, 'logs', 'error.log'), 'utf8')
        .split('\n')
        .filter((l) => /prematurely closed|reset by peer|upstream timed out|\[(error|crit)\]/.test(l));
      expect({ fcgi, http: httpStatuses, errors }).toEqual({ fcgi: Array(gaps.length + 1).fill(200), http: Array(gaps.length + 1).fill(200), errors: [] });
    } finally {
      await nginx.stop();
    }
  });
});
