/**
 * Black-box tests of the server process lifecycle: unix socket files (CLI-6), SIGTERM/SIGINT
 * (CLI-7, K-16, K-19), worker processes (CLI-8) and running out of file descriptors (CLI-10),
 * on real child processes of the built CLI.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import {
  CLI,
  type Proc,
  alive,
  app,
  ensureBuilt,
  example,
  killAll,
  oneLine,
  poll,
  portOf,
  request,
  runCli,
  spawnCli,
  spawnCommand,
  tempDir,
  tryConnect,
} from './fixtures/apps/cli-harness.js';

beforeAll(() => ensureBuilt(), 180_000);
afterEach(() => killAll());

async function serve(args: string[], listeners = 1): Promise<{ proc: Proc; port: number }> {
  const proc = spawnCli(['serve', ...args]);
  const addresses = await proc.listening(listeners);
  const tcp = addresses.find((a) => /:\d+$/.test(a) && !a.startsWith('unix:') && !a.startsWith('fd:'));
  return { proc, port: tcp === undefined ? 0 : portOf(tcp) };
}

/** Tracks a promise's outcome without awaiting it. */
function settle<T>(p: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let done = false;
  const promise = p.finally(() => {
    done = true;
  });
  promise.catch(() => undefined);
  return { promise, settled: () => done };
}

/** The parent pid of a live process (/proc/PID/stat). */
function parentOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/** A pid the app answered with is one of `primary`'s workers (the default is one worker under a primary). */
function workerOf(primary: number, body: string): boolean {
  const pid = Number(body.trim().split(' ').pop());
  return pid !== primary && parentOf(pid) === primary;
}

describe('CLI-6: unix socket files', () => {
  test.each([
    ['SIGTERM', 0],
    ['SIGINT', 130],
  ] as const)('CLI-6: the socket file is removed on exit by %s (exit %d)', async (sig, code) => {
    const sock = path.join(tempDir(), 'g.sock');
    const { proc } = await serve([example('hello.mjs'), '--http', `unix:${sock}`]);
    expect((await request({ socketPath: sock })).status).toBe(200);
    expect(fs.lstatSync(sock).isSocket()).toBe(true);
    proc.signal(sig);
    expect(await proc.waitExit()).toEqual({ code, signal: null });
    expect(fs.existsSync(sock)).toBe(false);
  });

  test('CLI-6: a stale socket file left by a SIGKILLed server is replaced at start', async () => {
    const sock = path.join(tempDir(), 'stale.sock');
    const first = await serve([example('hello.mjs'), '--http', `unix:${sock}`]);
    first.proc.killGroup();
    expect((await first.proc.waitExit()).signal).toBe('SIGKILL');
    expect(fs.lstatSync(sock).isSocket()).toBe(true);
    expect(await tryConnect({ path: sock })).toBe('ECONNREFUSED');

    const second = await serve([example('hello.mjs'), '--http', `unix:${sock}`]);
    expect((await request({ socketPath: sock })).body).toBe('Hello, World!\n');
    second.proc.signal('SIGTERM');
    expect((await second.proc.waitExit()).code).toBe(0);
    expect(fs.existsSync(sock)).toBe(false);
  });

  test('CLI-6: a socket with a live server on it is refused (one line, exit 2) and the live server keeps working', async () => {
    const sock = path.join(tempDir(), 'live.sock');
    const live = await serve([app('pid.mjs'), '--http', `unix:${sock}`]);
    const r = await runCli(['serve', example('hello.mjs'), '--http', `unix:${sock}`]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/cannot listen on unix:.*live\.sock: another server is listening on it/);
    expect(fs.lstatSync(sock).isSocket()).toBe(true);
    const reply = await request({ socketPath: sock });
    expect(reply.status).toBe(200);
    expect(workerOf(live.proc.pid, reply.body)).toBe(true);
  });

  test('CLI-6: a regular file at the path is refused (one line, exit 2) and not deleted', async () => {
    const file = path.join(tempDir(), 'not-a-socket');
    fs.writeFileSync(file, 'keep me\n');
    const r = await runCli(['serve', example('hello.mjs'), '--http', `unix:${file}`]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/cannot listen on unix:.*not-a-socket: the path exists and is not a socket/);
    expect(fs.readFileSync(file, 'utf8')).toBe('keep me\n');
  });

  test('CLI-6: when a later listener cannot bind (exit 2), the socket file already bound is removed', async () => {
    const sock = path.join(tempDir(), 'first.sock');
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    try {
      const port = (blocker.address() as net.AddressInfo).port;
      const r = await runCli(['serve', example('hello.mjs'), '--http', `unix:${sock}`, '--http', `127.0.0.1:${port}`]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^gatewire: cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/m);
      expect(fs.existsSync(sock)).toBe(false);
    } finally {
      blocker.close();
    }
  });

  test('CLI-6, CLI-8: with --workers 2 the primary owns the socket file: served, then removed on SIGTERM', async () => {
    const sock = path.join(tempDir(), 'w.sock');
    const { proc } = await serve([app('pid.mjs'), '--http', `unix:${sock}`, '--workers', '2'], 2);
    const reply = await request({ socketPath: sock });
    expect(reply.status).toBe(200);
    expect(Number(reply.body)).not.toBe(proc.pid);
    proc.signal('SIGTERM');
    expect(await proc.waitExit()).toEqual({ code: 0, signal: null });
    expect(fs.existsSync(sock)).toBe(false);
  });
});

describe('CLI-7: signals', () => {
  test('CLI-7, K-19: SIGTERM lets an in-flight request finish (200), refuses new connections, exits 0', async () => {
    const dir = tempDir();
    const release = path.join(dir, 'release');
    const { proc, port } = await serve([app('slow.mjs'), '--http', '127.0.0.1:0']);
    const inflight = settle(request({ port, path: `/?release=${encodeURIComponent(release)}`, timeoutMs: 20_000 }));
    await proc.waitFor(/slow: started/);
    proc.signal('SIGTERM');
    await proc.waitFor(/SIGTERM: finishing in-flight requests/);
    // The line is written just before the listener closes: a connect racing it may still land in
    // the backlog (and be reset), so poll until the refusal; the app still holds its request.
    await poll('new connections to be refused', async () => ((await tryConnect({ port, host: '127.0.0.1' })) === 'ECONNREFUSED' ? true : undefined));
    expect(inflight.settled()).toBe(false);
    expect(proc.exit).toBeUndefined();
    fs.writeFileSync(release, '');
    const reply = await inflight.promise;
    expect([reply.status, reply.body]).toEqual([200, expect.stringMatching(/^slow done \d+\n$/)]);
    expect(reply.body).not.toBe(`slow done ${proc.pid}\n`);
    expect(await proc.waitExit()).toEqual({ code: 0, signal: null });
  });

  test('CLI-7: SIGTERM during a 500 ms request: the request completes with 200, the process exits 0', async () => {
    const { proc, port } = await serve([app('slow.mjs'), '--http', '127.0.0.1:0']);
    const inflight = request({ port, path: '/?ms=500', timeoutMs: 20_000 });
    await proc.waitFor(/slow: started/);
    proc.signal('SIGTERM');
    expect((await inflight).status).toBe(200);
    expect(await proc.waitExit()).toEqual({ code: 0, signal: null });
  });

  test('CLI-7: SIGTERM does not wait for idle keep-alive connections (default 30 s grace)', async () => {
    const { proc, port } = await serve([example('hello.mjs'), '--http', '127.0.0.1:0']);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const closed = new Promise<void>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
        res.resume();
        res.on('end', () => {
          req.socket?.once('close', () => resolve());
          proc.signal('SIGTERM');
        });
      });
      req.on('error', reject);
    });
    await closed;
    agent.destroy();
    expect(await proc.waitExit(10_000)).toEqual({ code: 0, signal: null });
  });

  test('CLI-7: --shutdown-timeout 200ms: a 5 s request is cut at the deadline and the process exits 0', async () => {
    const { proc, port } = await serve([app('slow.mjs'), '--http', '127.0.0.1:0', '--shutdown-timeout', '200ms']);
    const inflight = settle(request({ port, path: '/?ms=5000', timeoutMs: 20_000 }));
    await proc.waitFor(/slow: started/);
    proc.signal('SIGTERM');
    await proc.waitFor(/SIGTERM: finishing in-flight requests \(up to 200 ms\)/);
    expect(await proc.waitExit()).toEqual({ code: 0, signal: null });
    expect(proc.stderr).toMatch(/shutdown: 1 connection\(s\) still busy after 200 ms; closing them/);
    await expect(inflight.promise).rejects.toThrow(/socket hang up|ECONNRESET/);
  });

  test('CLI-7, K-16: SIGINT exits promptly with 130, cutting an in-flight request', async () => {
    const release = path.join(tempDir(), 'never');
    const { proc, port } = await serve([app('slow.mjs'), '--http', '127.0.0.1:0']);
    const inflight = settle(request({ port, path: `/?release=${encodeURIComponent(release)}`, timeoutMs: 20_000 }));
    await proc.waitFor(/slow: started/);
    proc.signal('SIGINT');
    expect(await proc.waitExit()).toEqual({ code: 130, signal: null });
    await expect(inflight.promise).rejects.toThrow(/socket hang up|ECONNRESET/);
    expect(fs.existsSync(release)).toBe(false);
  });

  test('CLI-7: SIGINT during a SIGTERM drain stops at once (130) instead of waiting for the deadline', async () => {
    const release = path.join(tempDir(), 'never');
    const { proc, port } = await serve([app('slow.mjs'), '--http', '127.0.0.1:0', '--shutdown-timeout', '60s']);
    const inflight = settle(request({ port, path: `/?release=${encodeURIComponent(release)}`, timeoutMs: 20_000 }));
    await proc.waitFor(/slow: started/);
    proc.signal('SIGTERM');
    await proc.waitFor(/SIGTERM: finishing in-flight requests/);
    proc.signal('SIGINT');
    expect(await proc.waitExit()).toEqual({ code: 130, signal: null });
    await expect(inflight.promise).rejects.toThrow(/socket hang up|ECONNRESET/);
  });
});

describe('CLI-7: stray app errors', () => {
  test('CLI-7: an uncaught exception or unhandled rejection from the app is logged and the server keeps serving', async () => {
    const { proc, port } = await serve([app('crash.mjs'), '--http', '127.0.0.1:0']);
    expect((await request({ port, path: '/?throw=1' })).status).toBe(200);
    await proc.waitFor(/uncaught exception: fixture stray exception/);
    expect((await request({ port, path: '/?reject=1' })).status).toBe(200);
    await proc.waitFor(/unhandled rejection: fixture stray rejection/);
    const reply = await request({ port });
    expect(reply.status).toBe(200);
    expect(workerOf(proc.pid, reply.body)).toBe(true);
    expect(proc.exit).toBeUndefined();
  });

  test('CLI-7, CLI-8: with --workers an uncaught exception ends that worker only, and a new one takes its place', async () => {
    const { proc, port } = await serve([app('crash.mjs'), '--http', '127.0.0.1:0', '--workers', '2'], 2);
    const victim = Number((await request({ port, path: '/?throw=1' })).body);
    await proc.waitFor(new RegExp(`worker ${victim} exited \\(code 1\\); starting a new one`));
    await poll('a worker other than the one that crashed', async () => {
      const r = await request({ port, timeoutMs: 2000 }).catch(() => undefined);
      return r !== undefined && r.status === 200 && Number(r.body) !== victim ? true : undefined;
    });
    expect(alive(victim)).toBe(false);
    expect(proc.exit).toBeUndefined();
  });
});

describe('CLI-8: --workers', () => {
  /** Requests on fresh connections until `want` returns true for the pids seen; bounded. */
  async function pidsUntil(port: number, want: (seen: Set<number>) => boolean, maxRequests = 400): Promise<Set<number>> {
    const seen = new Set<number>();
    for (let i = 0; i < maxRequests && !want(seen); i++) {
      try {
        const r = await request({ port, timeoutMs: 5000 });
        if (r.status === 200) seen.add(Number(r.body));
      } catch {
        // a connection handed to a worker as it died; the next one goes elsewhere
      }
    }
    return seen;
  }


  test('CLI-8: two distinct worker pids serve; a SIGKILLed worker is replaced; SIGTERM stops all, exit 0', async () => {
    const { proc, port } = await serve([app('pid.mjs'), '--http', '127.0.0.1:0', '--workers', '2'], 2);
    await proc.waitFor(new RegExp(`primary ${proc.pid}: 2 workers`));
    const first = await pidsUntil(port, (s) => s.size >= 2);
    expect(first.size).toBe(2);
    for (const pid of first) {
      expect(pid).not.toBe(proc.pid);
      expect(parentOf(pid)).toBe(proc.pid);
    }

    const [victim, survivor] = [...first] as [number, number];
    process.kill(victim, 'SIGKILL');
    await proc.waitFor(new RegExp(`worker ${victim} exited \\(SIGKILL\\); starting a new one[\\s\\S]*worker \\d+ ready`));
    const after = await pidsUntil(port, (s) => [...s].some((p) => !first.has(p)));
    const fresh = [...after].filter((p) => !first.has(p));
    expect(fresh).toHaveLength(1);
    expect(after.has(victim)).toBe(false);
    expect(alive(victim)).toBe(false);
    expect(parentOf(fresh[0] as number)).toBe(proc.pid);
    expect((await request({ port })).status).toBe(200);

    proc.signal('SIGTERM');
    expect(await proc.waitExit()).toEqual({ code: 0, signal: null });
    for (const pid of [survivor, fresh[0] as number]) await poll(`worker ${pid} to be gone`, () => (alive(pid) ? undefined : true));
  });

  test('CLI-8, K-19: SIGTERM to the primary lets a worker finish its in-flight request', async () => {
    const release = path.join(tempDir(), 'release');
    const { proc, port } = await serve([app('slow.mjs'), '--http', '127.0.0.1:0', '--workers', '2'], 2);
    const inflight = settle(request({ port, path: `/?release=${encodeURIComponent(release)}`, timeoutMs: 20_000 }));
    await proc.waitFor(/slow: started/);
    proc.signal('SIGTERM');
    await poll('the listener to close', async () => ((await tryConnect({ port, host: '127.0.0.1' })) === 'ECONNREFUSED' ? true : undefined));
    expect(inflight.settled()).toBe(false);
    fs.writeFileSync(release, '');
    const reply = await inflight.promise;
    expect(reply.status).toBe(200);
    expect(await proc.waitExit()).toEqual({ code: 0, signal: null });
  });

  test('CLI-8: an address in use with --workers 2 → exit 2, not an endless restart loop', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    try {
      const port = (blocker.address() as net.AddressInfo).port;
      const r = await runCli(['serve', app('pid.mjs'), '--http', `127.0.0.1:${port}`, '--workers', '2']);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
      expect(r.stderr).not.toMatch(/starting a new one/);
    } finally {
      blocker.close();
    }
  });

  test('CLI-8: SIGINT to the primary stops the workers and exits 130', async () => {
    const { proc, port } = await serve([app('pid.mjs'), '--http', '127.0.0.1:0', '--workers', '2'], 2);
    const pids = await pidsUntil(port, (s) => s.size >= 2);
    expect(pids.size).toBe(2);
    proc.signal('SIGINT');
    expect(await proc.waitExit()).toEqual({ code: 130, signal: null });
    for (const pid of pids) await poll(`worker ${pid} to be gone`, () => (alive(pid) ? undefined : true));
  });
});

describe('CLI-10: file descriptors run out', () => {
  test('CLI-10: at ulimit -n 64, connections past the limit are turned away with a warn line naming the limit (at most one per few seconds); once they close, requests are answered again', async () => {
    const proc = spawnCommand('sh', ['-c', 'ulimit -n 64 && exec "$0" "$@"', process.execPath, CLI, 'serve', example('hello.mjs'), '--http', '127.0.0.1:0']);
    const port = portOf((await proc.listening())[0] as string);
    const sockets: net.Socket[] = [];
    const closedByUs = new Set<net.Socket>();
    let turnedAway = 0;
    try {
      // More connections than the process has descriptors: the ones past the limit are closed
      // by the server before a byte (libuv's EMFILE handling), the others stay open.
      for (let i = 0; i < 100; i++) {
        const socket = net.connect(port, '127.0.0.1');
        socket.on('error', () => undefined);
        socket.once('close', () => {
          if (!closedByUs.has(socket)) turnedAway++;
        });
        sockets.push(socket);
      }
      await poll('connections turned away at accept', () => (turnedAway > 0 ? true : undefined), 10_000);
      const line = await proc.waitFor(/warn file descriptors exhausted \(EMFILE\): (\d+) open, the soft limit \(ulimit -n\) is 64; new connections to http on 127\.0\.0\.1:\d+ /, 'stderr', 10_000);
      expect(Number(line[1])).toBeGreaterThan(32);
      await new Promise((r) => setTimeout(r, 2500)); // still exhausted: no second line yet
      expect(proc.stderr.match(/file descriptors exhausted/g)).toHaveLength(1);
    } finally {
      for (const socket of sockets) {
        closedByUs.add(socket);
        socket.destroy();
      }
    }
    // The server recovers by itself: freed descriptors take connections again.
    const answered = await poll('a request answered after the connections closed', async () => {
      try {
        return (await request({ port, timeoutMs: 2000 })).status;
      } catch {
        return undefined;
      }
    }, 15_000);
    expect(answered).toBe(200);
    await proc.waitFor(/info file descriptors free again: \d+ open, the soft limit \(ulimit -n\) is 64/, 'stderr', 10_000);
    expect(proc.exit).toBeUndefined();
  });
});
