/**
 * The supervisor (src/supervisor.ts) as an operator meets it: `gatewire serve` started for real,
 * signalled with kill, loaded with wrk, and watched through its log lines, its pids and its
 * sockets. Reloads change the app's code on disk, as a deploy does.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { type Proc, ensureBuilt, killAll, request, runCli, spawnCli, tempDir } from './fixtures/apps/cli-harness.js';
import { describeWithPeers, RUNNING_AS_ROOT } from './helpers/peers.js';
import { reportMeasure } from './helpers/rss.js';
import { wrk } from './helpers/wrk.js';

jest.setTimeout(60_000);

beforeAll(() => ensureBuilt());
afterEach(() => killAll());

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** An app file that answers `VERSION PID`; rewrite it to deploy new code. */
function writeApp(file: string, version: string, extra = ''): void {
  fs.writeFileSync(
    file,
    `${extra}\nexport default function app(environ, startResponse) {\n  startResponse('200 OK', [['Content-Type', 'text/plain']]);\n  return [${JSON.stringify(version)} + ' ' + process.pid];\n}\n`,
  );
}

async function start(args: string[], env: Record<string, string> = {}): Promise<{ proc: Proc; port: number }> {
  const proc = spawnCli(['serve', ...args], { env });
  await proc.waitFor(/primary \d+: \d+ workers? ready/);
  const m = /listening: \w+ on [^\s]*:(\d+)/.exec(proc.stderr);
  return { proc, port: m === null ? 0 : Number(m[1]) };
}

function parentOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function get(port: number, pathname = '/'): Promise<{ status: number; body: string }> {
  const r = await request({ port, path: pathname, timeoutMs: 10_000 });
  return { status: r.status, body: r.body };
}

/** Requests on fresh connections until `want` holds for the bodies seen; bounded. */
async function bodiesUntil(port: number, want: (seen: Set<string>) => boolean, max = 300): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < max && !want(seen); i++) seen.add((await get(port)).body);
  return seen;
}

function workerPids(stderr: string): number[] {
  return [...stderr.matchAll(/worker (\d+) ready/g)].map((m) => Number(m[1]));
}

describeWithPeers('OP-1: reload and recycling under wrk load', ['wrk'], () => {
  test('OP-1: --workers 2, 10 s of wrk through two HUP reloads that change the code: 0 non-2xx, 0 socket errors, every pid replaced, the new code answers', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.mjs');
    writeApp(file, 'v1');
    const { proc, port } = await start([file, '--http', '127.0.0.1:0', '--workers', '2']);
    const first = await bodiesUntil(port, (s) => s.size >= 1);
    expect([...first][0]).toMatch(/^v1 \d+$/);
    const load = wrk(`http://127.0.0.1:${port}/`, 10);
    await sleep(2000);
    writeApp(file, 'v2');
    proc.signal('SIGHUP');
    await proc.waitFor(/reload done/);
    await sleep(2000);
    writeApp(file, 'v3');
    proc.signal('SIGHUP');
    await proc.until('the second reload', () => ((proc.stderr.match(/reload done/g) ?? []).length >= 2 ? true : undefined), 20_000);
    const r = await load;
    reportMeasure('supervisor', `OP-1 two HUPs: ${r.requests} requests, ${r.non2xx} non-2xx, ${r.socketErrors} socket errors`);
    expect({ non2xx: r.non2xx, socketErrors: r.socketErrors }).toEqual({ non2xx: 0, socketErrors: 0 });
    expect(r.requests).toBeGreaterThan(1000);
    const now = await bodiesUntil(port, (s) => s.size >= 2, 200);
    for (const body of now) expect(body).toMatch(/^v3 \d+$/);
    // Six workers served over the run: two per generation, none of the first two left.
    const pids = workerPids(proc.stderr);
    expect(new Set(pids).size).toBeGreaterThanOrEqual(4);
    for (const body of first) expect(alive(Number(body.split(' ')[1]))).toBe(false);
    proc.signal('SIGTERM');
    expect(await proc.waitExit()).toEqual({ code: 0, signal: null });
  });

  test('OP-1, OP-5: 10 s of wrk with --max-requests 500 --max-requests-jitter 50: workers recycle, 0 non-2xx, 0 socket errors', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.mjs');
    writeApp(file, 'v1');
    const { proc, port } = await start([file, '--http', '127.0.0.1:0', '--workers', '2', '--max-requests', '500', '--max-requests-jitter', '50']);
    const r = await wrk(`http://127.0.0.1:${port}/`, 10);
    const recycledCount = (proc.stderr.match(/--max-requests\), recycling/g) ?? []).length;
    reportMeasure('supervisor', `OP-1 --max-requests 500: ${r.requests} requests, ${recycledCount} recycles, ${r.non2xx} non-2xx, ${r.socketErrors} socket errors`);
    expect({ non2xx: r.non2xx, socketErrors: r.socketErrors }).toEqual({ non2xx: 0, socketErrors: 0 });
    const recycled = (proc.stderr.match(/--max-requests\), recycling/g) ?? []).length;
    expect(recycled).toBeGreaterThanOrEqual(Math.floor(r.requests / 550) - 2);
    expect(recycled).toBeGreaterThan(3);
    expect((await get(port)).status).toBe(200);
    proc.signal('SIGTERM');
    expect(await proc.waitExit()).toEqual({ code: 0, signal: null });
  });

  test('OP-1: kill -9 of one of two workers under wrk load costs only its own connections: no timeout, no hang, a new worker serves', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.mjs');
    writeApp(file, 'v1');
    const { proc, port } = await start([file, '--http', '127.0.0.1:0', '--workers', '2']);
    const victim = Number(/ready \((\d+), \d+\)/.exec(proc.stderr)?.[1]);
    const load = wrk(`http://127.0.0.1:${port}/`, 5);
    await sleep(1500);
    process.kill(victim, 'SIGKILL');
    await proc.waitFor(new RegExp(`worker ${victim} exited \\(SIGKILL\\); starting a new one`));
    const r = await load;
    const timeouts = Number(/timeout (\d+)/.exec(r.text)?.[1] ?? 0);
    expect(timeouts).toBe(0);
    // At most the 16 connections it held, each cut once.
    reportMeasure('supervisor', `OP-1 kill -9 of one of two workers: ${r.requests} requests, ${r.socketErrors} socket errors, ${timeouts} timeouts`);
    expect(r.socketErrors).toBeLessThanOrEqual(16);
    expect(r.non2xx).toBe(0);
    const seen = await bodiesUntil(port, (b) => b.size >= 2, 300);
    expect(seen.size).toBe(2);
  });
});

describe('reload', () => {
  test('OP-2: one worker (the default), 8 HUPs: a connect every 10 ms is never refused and the unix socket path never disappears', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.mjs');
    const sock = path.join(dir, 'gw.sock');
    writeApp(file, 'v1');
    const proc = spawnCli(['serve', file, '--http', `unix:${sock}`]);
    await proc.waitFor(/primary \d+: 1 worker ready/);
    let refused = 0;
    let missing = 0;
    let probes = 0;
    let run = true;
    const prober = (async () => {
      while (run) {
        if (!fs.existsSync(sock)) missing++;
        const ok = await new Promise<boolean>((resolve) => {
          const c = net.connect(sock);
          c.once('connect', () => {
            c.destroy();
            resolve(true);
          });
          c.once('error', () => resolve(false));
        });
        probes++;
        if (!ok) refused++;
        await sleep(10);
      }
    })();
    for (let i = 1; i <= 8; i++) {
      writeApp(file, `v${i + 1}`);
      proc.signal('SIGHUP');
      await proc.until(`reload ${i}`, () => ((proc.stderr.match(/reload done/g) ?? []).length >= i ? true : undefined), 15_000);
    }
    run = false;
    await prober;
    expect({ refused, missing }).toEqual({ refused: 0, missing: 0 });
    expect(probes).toBeGreaterThan(50);
    const reply = await request({ socketPath: sock });
    expect(reply.body).toMatch(/^v9 \d+$/);
    expect(parentOf(Number(reply.body.split(' ')[1]))).toBe(proc.pid);
    proc.signal('SIGTERM');
    expect(await proc.waitExit()).toEqual({ code: 0, signal: null });
    expect(fs.existsSync(sock)).toBe(false);
  });

  test('OP-3: an app that fails to load on HUP: the reload fails with a log line, the old workers keep serving, the next good HUP loads the new code', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.mjs');
    writeApp(file, 'v1');
    const { proc, port } = await start([file, '--http', '127.0.0.1:0', '--workers', '2']);
    const before = (await get(port)).body;
    fs.writeFileSync(file, 'export default function (environ, startResponse) { return [ ;\n');
    proc.signal('SIGHUP');
    await proc.waitFor(/reload failed: a new worker could not load the app .*; the old workers keep serving/);
    expect(proc.stderr).toMatch(/SyntaxError|Unexpected token/);
    for (let i = 0; i < 10; i++) expect((await get(port)).body).toMatch(/^v1 \d+$/);
    expect(alive(Number(before.split(' ')[1]))).toBe(true);
    expect(proc.exit).toBeUndefined();
    writeApp(file, 'v2');
    proc.signal('SIGHUP');
    await proc.waitFor(/reload done/);
    expect((await get(port)).body).toMatch(/^v2 \d+$/);
  });

  test('OP-25: an app that crashes on some of its loads, HUP after HUP: a connection is never refused nor failed, the restart delay doubles and resets once a worker has stayed up', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.mjs');
    const counter = path.join(dir, 'loads');
    // Loads 2, 3 and 5 die at once (exit 1: a crash, not a load error the reload gives up on).
    fs.writeFileSync(
      file,
      `import * as fs from 'node:fs';\nconst n = (fs.existsSync(${JSON.stringify(counter)}) ? Number(fs.readFileSync(${JSON.stringify(counter)}, 'utf8')) : 0) + 1;\nfs.writeFileSync(${JSON.stringify(counter)}, String(n));\nif ([2, 3, 5].includes(n)) process.exit(1);\nexport default function app(environ, startResponse) {\n  startResponse('200 OK', [['Content-Type', 'text/plain']]);\n  return ['load ' + n];\n}\n`,
    );
    const { proc, port } = await start([file, '--http', '127.0.0.1:0']);
    let probing = true;
    const seen: string[] = [];
    const failures: string[] = [];
    const probe = (async () => {
      while (probing) {
        try {
          const r = await get(port);
          if (r.status !== 200) failures.push(`status ${r.status}`);
          else if (seen[seen.length - 1] !== r.body) seen.push(r.body);
        } catch (err) {
          failures.push((err as Error).message);
        }
        await sleep(20);
      }
    })();
    const reloadsDone = (n: number): Promise<unknown> => proc.until(`${n} reloads done`, () => ([...proc.stderr.matchAll(/reload done/g)].length >= n ? true : undefined), 15_000);
    try {
      proc.signal('SIGHUP');
      await reloadsDone(1);
      await sleep(1500); // load 4 stays up: the streak of quick crashes is over
      proc.signal('SIGHUP');
      await reloadsDone(2);
      for (let i = 0; i < 250 && !seen.includes('load 6'); i++) await sleep(20);
    } finally {
      probing = false;
      await probe;
    }
    expect(failures).toEqual([]);
    expect(seen).toEqual(['load 1', 'load 4', 'load 6']);
    const delays = [...proc.stderr.matchAll(/exited \(code 1\); starting a new one in (\d+) ms/g)].map((m) => Number(m[1]));
    expect(delays).toEqual([200, 400, 200]);
  });

  test('OP-4: a HUP applies a changed config file; a config file that no longer parses fails the reload and the old workers serve on', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.mjs');
    const config = path.join(dir, 'gatewire.toml');
    fs.writeFileSync(file, "export default function app(environ, startResponse) {\n  startResponse('200 OK', [['Content-Type', 'text/plain']]);\n  return [environ.SCRIPT_NAME + ' ' + process.pid];\n}\n");
    fs.writeFileSync(config, 'mount = "/a"\n');
    const { proc, port } = await start([file, '--http', '127.0.0.1:0', '--config', config]);
    expect((await get(port, '/a/x')).body).toMatch(/^\/a \d+$/);
    fs.writeFileSync(config, 'mount = "/b"\n');
    proc.signal('SIGHUP');
    await proc.waitFor(/reload done/);
    expect((await get(port, '/b/x')).body).toMatch(/^\/b \d+$/);
    fs.writeFileSync(config, 'mount = \n');
    proc.signal('SIGHUP');
    await proc.waitFor(/reload failed/);
    expect(proc.stderr).toMatch(/gatewire\.toml:1/);
    expect((await get(port, '/b/x')).body).toMatch(/^\/b \d+$/);
  });

  test('OP-7: a keep-alive request in flight across a reload: its response says Connection: close, the next request gets a new worker', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.mjs');
    writeApp(file, 'v1', "const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\nexport const slow = async (environ, startResponse) => { await sleep(800); startResponse('200 OK', [['Content-Type', 'text/plain']]); return ['slow ' + process.pid]; };");
    // The environ app of the module is the default export; a second listener serves `slow`.
    const { proc, port } = await start([`${file}:slow`, '--http', '127.0.0.1:0']);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const pending = new Promise<{ connection: string | undefined; body: string }>((resolve, reject) => {
      http
        .get({ port, host: '127.0.0.1', agent }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ connection: res.headers.connection, body }));
        })
        .on('error', reject);
    });
    await sleep(200);
    proc.signal('SIGHUP');
    const first = await pending;
    expect(first.connection).toBe('close');
    await proc.waitFor(/reload done/);
    const second = await new Promise<string>((resolve, reject) => {
      http
        .get({ port, host: '127.0.0.1', agent }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve(body));
        })
        .on('error', reject);
    });
    agent.destroy();
    expect(second).toMatch(/^slow \d+$/);
    expect(second).not.toBe(first.body);
  });

  test('OP-20: HUP while the first workers start does not kill the server', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.mjs');
    writeApp(file, 'v1', 'await new Promise((r) => setTimeout(r, 500));');
    const proc = spawnCli(['serve', file, '--http', '127.0.0.1:0', '--log-level', 'debug']);
    await proc.waitFor(/worker \d+ \(#1\) starting/);
    proc.signal('SIGHUP');
    await proc.waitFor(/primary \d+: 1 worker ready/);
    expect(proc.stderr).toMatch(/SIGHUP: ignored while starting/);
    expect(proc.exit).toBeUndefined();
  });
});

describe('recycling and the watchdog', () => {
  test('OP-5: --max-requests 20 --max-requests-jitter 5, 150 sequential requests: every worker served 20 to 25, none failed', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.mjs');
    writeApp(file, 'v1');
    const { proc, port } = await start([file, '--http', '127.0.0.1:0', '--max-requests', '20', '--max-requests-jitter', '5']);
    const counts = new Map<string, number>();
    for (let i = 0; i < 150; i++) {
      const r = await get(port);
      expect(r.status).toBe(200);
      counts.set(r.body, (counts.get(r.body) ?? 0) + 1);
    }
    const served = [...counts.values()];
    // Every worker but the last reached its limit.
    const retired = served.slice(0, -1);
    expect(retired.length).toBeGreaterThanOrEqual(5);
    for (const n of retired) {
      expect(n).toBeGreaterThanOrEqual(20);
      expect(n).toBeLessThanOrEqual(25);
    }
    expect(proc.stderr).toMatch(/worker \d+ \(#\d+\) starting \(max requests\)/);
  });

  test('OP-6: --max-memory: a worker that leaks is replaced after its request, and no request fails', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'leak.mjs');
    fs.writeFileSync(
      file,
      "const kept = [];\nexport default function app(environ, startResponse) {\n  kept.push(Buffer.alloc(16 * 1024 * 1024, 1));\n  startResponse('200 OK', [['Content-Type', 'text/plain']]);\n  return [String(process.pid)];\n}\n",
    );
    const { proc, port } = await start([file, '--http', '127.0.0.1:0', '--max-memory', '150m']);
    const pids = new Set<string>();
    for (let i = 0; i < 40 && pids.size < 2; i++) {
      const r = await get(port);
      expect(r.status).toBe(200);
      pids.add(r.body);
      await sleep(150);
    }
    expect(pids.size).toBeGreaterThanOrEqual(2);
    expect(proc.stderr).toMatch(/RSS \d+ MiB is over --max-memory 150 MiB, recycling/);
  });

  test('OP-12: --timeout 1s and a handler that never yields: the primary kills the worker, names the request, and a new worker serves', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'spin.mjs');
    fs.writeFileSync(
      file,
      "export default function app(environ, startResponse) {\n  if (environ.PATH_INFO === '/spin') for (;;);\n  startResponse('200 OK', [['Content-Type', 'text/plain']]);\n  return [String(process.pid)];\n}\n",
    );
    const { proc, port } = await start([file, '--http', '127.0.0.1:0', '--timeout', '1s']);
    const before = (await get(port)).body;
    await sleep(50); // the request that blocks is named unless another started within 10 ms of it
    const spun = request({ port, path: '/spin', timeoutMs: 10_000 }).then(
      () => 'answered',
      () => 'closed',
    );
    await proc.waitFor(/event loop blocked for over 1000 ms \(--timeout\); killing it \(last request started: \S+ GET \/spin\)/, 'stderr', 10_000);
    expect(await spun).toBe('closed');
    await proc.waitFor(/worker \d+ ready/);
    const after = await get(port);
    expect(after.status).toBe(200);
    expect(after.body).not.toBe(before);
    expect(alive(Number(before))).toBe(false);
  });
});

describe('--stats', () => {
  test('OP-13, OP-15: --workers 2 --stats: /metrics counts every request of both workers, /readyz is 503 during a drain, /stats lists the workers', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.mjs');
    writeApp(file, 'v1', "const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\nexport const app2 = async (environ, startResponse) => { if (environ.PATH_INFO === '/slow') await sleep(1500); startResponse('200 OK', [['Content-Type', 'text/plain']]); return [String(process.pid)]; };");
    const { proc, port } = await start([`${file}:app2`, '--http', '127.0.0.1:0', '--workers', '2', '--stats', '127.0.0.1:0']);
    const statsPort = Number((await proc.waitFor(/stats: \/metrics, \/healthz, \/readyz, \/stats on 127\.0\.0\.1:(\d+)/))[1]);
    const pids = new Set<string>();
    for (let i = 0; i < 300; i++) pids.add((await get(port)).body);
    expect(pids.size).toBe(2);
    const metrics = await get(statsPort, '/metrics');
    expect(metrics.status).toBe(200);
    const total = [...metrics.body.matchAll(/^gatewire_requests_total\{[^}]*protocol="http"[^}]*\} (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
    expect(total).toBe(300);
    expect(metrics.body).toMatch(/^gatewire_request_duration_seconds_count\{protocol="http"\} 300$/m);
    expect(metrics.body).toMatch(/^process_resident_memory_bytes \d+/m);
    const stats = JSON.parse((await get(statsPort, '/stats')).body) as { pid: number; workers: Array<{ pid: number }> };
    expect(stats.pid).toBe(proc.pid);
    expect(new Set(stats.workers.map((w) => String(w.pid)))).toEqual(pids);
    expect((await get(statsPort, '/readyz')).status).toBe(200);
    expect((await get(statsPort, '/healthz')).status).toBe(200);
    const slow = request({ port, path: '/slow', timeoutMs: 10_000 });
    await sleep(200);
    proc.signal('SIGTERM');
    await proc.waitFor(/SIGTERM: finishing in-flight requests/);
    const during = await get(statsPort, '/readyz');
    expect([during.status, during.body.trim()]).toEqual([503, 'draining']);
    expect((await slow).status).toBe(200);
    expect(await proc.waitExit()).toEqual({ code: 0, signal: null });
  });
});

describe('--drain-delay', () => {
  test('OP-29: TERM with --drain-delay 1s: /readyz 503 at once, new connections served for the delay, then refused; a request in flight finishes; exit 0 well within delay + drain', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.mjs');
    writeApp(file, 'v1', "const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\nexport const slowToo = async (environ, startResponse) => { if (environ.PATH_INFO === '/slow') await sleep(1500); startResponse('200 OK', [['Content-Type', 'text/plain']]); return ['ok']; };");
    const { proc, port } = await start([`${file}:slowToo`, '--http', '127.0.0.1:0', '--stats', '127.0.0.1:0', '--drain-delay', '1s']);
    const statsPort = Number((await proc.waitFor(/stats: \/metrics, \/healthz, \/readyz, \/stats on 127\.0\.0\.1:(\d+)/))[1]);
    expect((await get(statsPort, '/readyz')).status).toBe(200);
    const t0 = Date.now();
    proc.signal('SIGTERM');
    await proc.waitFor(/SIGTERM: serving on for 1000 ms \(--drain-delay\)/);
    const ready = await get(statsPort, '/readyz');
    expect([ready.status, ready.body.trim()]).toEqual([503, 'draining']);
    expect(Date.now() - t0).toBeLessThan(500);
    // During the delay: fresh connections are accepted and served.
    const slow = request({ port, path: '/slow', timeoutMs: 10_000 });
    await sleep(300);
    expect((await get(port)).status).toBe(200);
    // After it: the drain; new connections are refused, the slow request still finishes.
    await proc.waitFor(/draining: finishing in-flight requests/);
    await sleep(100);
    await expect(get(port)).rejects.toThrow(/ECONNREFUSED/);
    expect((await slow).status).toBe(200);
    expect(await proc.waitExit()).toEqual({ code: 0, signal: null });
    const total = Date.now() - t0;
    expect(total).toBeGreaterThanOrEqual(1000);
    expect(total).toBeLessThan(1000 + 1500 + 2000);
  });

  test('OP-29: a second TERM during the delay drains at once; --workers 0 keeps serving for the delay too', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.mjs');
    writeApp(file, 'v1');
    const a = await start([file, '--http', '127.0.0.1:0', '--drain-delay', '30s']);
    const t0 = Date.now();
    a.proc.signal('SIGTERM');
    await a.proc.waitFor(/serving on for 30000 ms/);
    expect((await get(a.port)).status).toBe(200);
    a.proc.signal('SIGTERM');
    expect(await a.proc.waitExit()).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(5000);

    const proc = spawnCli(['serve', file, '--http', '127.0.0.1:0', '--workers', '0', '--drain-delay', '600ms']);
    const port = Number((await proc.waitFor(/listening: \w+ on [^\s]*:(\d+)/))[1]);
    proc.signal('SIGTERM');
    await proc.waitFor(/serving on for 600 ms/);
    expect((await get(port)).status).toBe(200);
    expect(await proc.waitExit()).toEqual({ code: 0, signal: null });
  });
});

describe('--stats with a cgi-bin and an upstream', () => {
  test('OP-30: scripts by outcome (a timeout among them), request body bytes, and a refused upstream counted against it', async () => {
    const dir = tempDir();
    const dead = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const cgiBin = path.resolve(__dirname, '..', 'fixtures', 'cgi-bin');
    const { proc, port } = await start(['--upstream', `scgi://127.0.0.1:${dead}`, '--cgi-bin', cgiBin, '--cgi-timeout', '300ms', '--http', '127.0.0.1:0', '--stats', '127.0.0.1:0'], { TMPDIR: dir });
    const statsPort = Number((await proc.waitFor(/stats: \/metrics, \/healthz, \/readyz, \/stats on 127\.0\.0\.1:(\d+)/))[1]);
    expect((await get(port, '/cgi-bin/hello.sh')).status).toBe(200);
    expect((await get(port, '/cgi-bin/exit-nonzero.sh')).status).toBe(200);
    expect((await get(port, '/cgi-bin/sleep.sh')).status).toBe(504);
    const posted = await request({ port, path: '/cgi-bin/echo.sh', method: 'POST', body: 'x'.repeat(1234), headers: { 'Content-Type': 'text/plain' } });
    expect(posted.status).toBe(200);
    expect((await get(port, '/app')).status).toBe(502); // the upstream refuses
    // The runs are counted when their process group is gone, a moment after the response.
    let body = '';
    for (let i = 0; i < 50; i++) {
      body = (await get(statsPort, '/metrics')).body;
      if (/^gatewire_cgi_scripts_total\{outcome="timeout"\} 1$/m.test(body) && /^gatewire_cgi_scripts_total\{outcome="ok"\} 2$/m.test(body)) break;
      await sleep(100);
    }
    expect(body).toMatch(/^gatewire_cgi_scripts_total\{outcome="ok"\} 2$/m);
    expect(body).toMatch(/^gatewire_cgi_scripts_total\{outcome="error"\} 1$/m);
    expect(body).toMatch(/^gatewire_cgi_scripts_total\{outcome="timeout"\} 1$/m);
    expect(body).toMatch(/^gatewire_cgi_scripts_running 0$/m);
    expect(body).toMatch(/^gatewire_cgi_refused_total 0$/m);
    expect(body).toMatch(/^gatewire_request_body_bytes_total\{protocol="http"\} 1234$/m);
    expect(body).toContain(`gatewire_upstream_failures_total{upstream="scgi://127.0.0.1:${dead}"} 1\n`);
    expect(body).toContain(`gatewire_upstream_connections{upstream="scgi://127.0.0.1:${dead}",state="busy"} 0\n`);
    proc.signal('SIGTERM');
    expect(await proc.waitExit()).toEqual({ code: 0, signal: null });
  });
});

describe('signals and files', () => {
  test('OP-18: USR1 after logrotate moved the access log: every worker writes to the new file; no debugger port opens', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.mjs');
    const log = path.join(dir, 'access.log');
    writeApp(file, 'v1');
    const { proc, port } = await start([file, '--http', '127.0.0.1:0', '--workers', '2', '--access-log', log]);
    const seen = await bodiesUntil(port, (s) => s.size >= 2, 300);
    expect(seen.size).toBe(2);
    fs.renameSync(log, `${log}.1`);
    proc.signal('SIGUSR1');
    await proc.waitFor(/SIGUSR1: reopening log files/);
    await sleep(300);
    const after = await bodiesUntil(port, (s) => s.size >= 2, 300);
    expect(after.size).toBe(2);
    await sleep(300);
    const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const l of lines) expect(l).toMatch(/"GET \/ HTTP\/1\.1" 200/);
    proc.signal('SIGUSR2');
    await proc.waitFor(/SIGUSR2: reopening log files/);
    const inspector = await new Promise<string>((resolve) => {
      const c = net.connect(9229, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        resolve('open');
      });
      c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(inspector).toBe('ECONNREFUSED');
    expect(proc.exit).toBeUndefined();
  });

  test('OP-20: TTIN adds a worker, TTOU removes one (never below 1), WINCH is ignored, QUIT stops at once with exit 131', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.mjs');
    writeApp(file, 'v1');
    const { proc } = await start([file, '--http', '127.0.0.1:0']);
    proc.signal('SIGTTIN');
    await proc.waitFor(/SIGTTIN: 2 workers/);
    await proc.waitFor(/worker \d+ ready/);
    proc.signal('SIGTTOU');
    await proc.waitFor(/SIGTTOU: 1 worker\b/);
    await proc.waitFor(/worker \d+ stopped \(code 0; stop\)/);
    proc.signal('SIGTTOU');
    await proc.waitFor(/SIGTTOU: already at 1 worker/);
    proc.signal('SIGWINCH');
    await sleep(100);
    expect(proc.exit).toBeUndefined();
    const t0 = Date.now();
    proc.signal('SIGQUIT');
    expect(await proc.waitExit()).toEqual({ code: 131, signal: null });
    expect(Date.now() - t0).toBeLessThan(1500);
  });

  test('OP-20: INT stops at once with exit 130, with a request in flight', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.mjs');
    writeApp(file, 'v1', "const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\nexport const slow = async () => { await sleep(5000); return []; };");
    const { proc, port } = await start([`${file}:slow`, '--http', '127.0.0.1:0']);
    const inflight = request({ port, timeoutMs: 10_000 }).then(
      () => 'answered',
      () => 'closed',
    );
    await sleep(200);
    const t0 = Date.now();
    proc.signal('SIGINT');
    expect(await proc.waitExit()).toEqual({ code: 130, signal: null });
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(await inflight).toBe('closed');
  });

  test('OP-8: TERM with 20 requests in flight: all 20 answer 200, new connections are refused at once, exit 0', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.mjs');
    writeApp(file, 'v1', "const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\nexport const slow = async (environ, startResponse) => { await sleep(1500); startResponse('200 OK', []); return ['done']; };");
    const { proc, port } = await start([`${file}:slow`, '--http', '127.0.0.1:0', '--workers', '2']);
    const inflight = Array.from({ length: 20 }, () => request({ port, timeoutMs: 10_000 }).then((r) => r.status));
    await sleep(400);
    proc.signal('SIGTERM');
    await proc.waitFor(/SIGTERM: finishing in-flight requests/);
    await sleep(100);
    const refused = await new Promise<string>((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        resolve('accepted');
      });
      c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
    expect(await Promise.all(inflight)).toEqual(Array(20).fill(200));
    expect(await proc.waitExit()).toEqual({ code: 0, signal: null });
  });

  test('OP-24: --pid-file holds the primary pid; a second instance refuses; a stale file is replaced; the file goes at exit', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.mjs');
    const pidFile = path.join(dir, 'gw.pid');
    writeApp(file, 'v1');
    fs.writeFileSync(pidFile, '999999\n'); // stale: no such process
    const { proc } = await start([file, '--http', '127.0.0.1:0', '--pid-file', pidFile]);
    expect(fs.readFileSync(pidFile, 'utf8')).toBe(`${proc.pid}\n`);
    const second = await runCli(['serve', file, '--http', '127.0.0.1:0', '--pid-file', pidFile]);
    expect(second.code).toBe(2);
    expect(second.stderr.trim()).toBe(`gatewire: --pid-file ${pidFile}: process ${proc.pid} is running (another gatewire?)`);
    expect(fs.readFileSync(pidFile, 'utf8')).toBe(`${proc.pid}\n`);
    proc.signal('SIGTERM');
    expect(await proc.waitExit()).toEqual({ code: 0, signal: null });
    expect(fs.existsSync(pidFile)).toBe(false);
  });

  const asRoot = RUNNING_AS_ROOT ? test : process.env.GATEWIRE_REQUIRE_PEERS === '1' ? test : test.skip;
  asRoot(`OP-23: --user nobody: the root primary binds, workers run as nobody with no root group, the socket belongs to nobody, HUP still works${RUNNING_AS_ROOT ? '' : ' (skipped: needs root)'}`, async () => {
    expect(RUNNING_AS_ROOT).toBe(true);
    const dir = tempDir();
    fs.chmodSync(dir, 0o755);
    const file = path.join(dir, 'app.mjs');
    const sock = path.join(dir, 'gw.sock');
    writeApp(file, 'v1');
    fs.chmodSync(file, 0o644);
    const { proc, port } = await start([file, '--http', '127.0.0.1:0', '--http', `unix:${sock}`, '--socket-mode', '660', '--user', 'nobody']);
    const pid = Number((await get(port)).body.split(' ')[1]);
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
    const groups = (/^Groups:\s*(.*)$/m.exec(status)?.[1] ?? '').trim().split(/\s+/).filter((g) => g !== '');
    const gid = Number(/^Gid:\s+(\d+)/m.exec(status)?.[1]);
    expect(uid).not.toBe(0);
    expect(gid).not.toBe(0);
    expect(groups).not.toContain('0');
    const st = fs.statSync(sock);
    expect([st.uid, st.mode & 0o777]).toEqual([uid, 0o660]);
    writeApp(file, 'v2');
    proc.signal('SIGHUP');
    await proc.waitFor(/reload done/);
    expect((await get(port)).body).toMatch(/^v2 \d+$/);
  });
});
