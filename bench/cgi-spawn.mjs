#!/usr/bin/env node
// Where the time goes when gatewire's CGI host runs a script: spawn rate of fixtures/cgi-bin/hello.sh
// in ONE process, for plain child_process.spawn with several option sets, for the cgi-bin App
// (through inject(), no socket) and through the HTTP front, plus the two costs that dominate:
// the synchronous part of spawn() (fork + exec handshake, blocks the event loop) and how it
// grows with the parent's RSS (fork copies the page tables; libuv 1.46 uses plain fork on Linux).
//
// Usage: npm run build && node bench/cgi-spawn.mjs [--requests N] [--concurrency C] [--rounds R]
// Variants run interleaved, R rounds, medians reported; absolute numbers on a shared 2-core box
// are noisy, compare rows of one run.

import childProcess from 'node:child_process';
import http from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const require = createRequire(import.meta.url);
const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '1500' },
    concurrency: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
  },
});
const N = Number(args.requests);
const C = Number(args.concurrency);
const ROUNDS = Number(args.rounds);
const CGI_ROOT = join(root, 'fixtures', 'cgi-bin');
const HELLO = join(CGI_ROOT, 'hello.sh');

let lib;
try {
  lib = {
    ...require(join(root, 'dist/src/cgi-host/host.js')),
    ...require(join(root, 'dist/src/inject.js')),
    ...require(join(root, 'dist/src/server.js')),
    ...require(join(root, 'dist/src/options.js')),
    ...require(join(root, 'dist/src/log.js')),
  };
} catch (err) {
  console.error(`dist/ is missing or stale (${err.message}); run \`npm run build\` first`);
  process.exit(2);
}

// Time the synchronous part of every spawn() made by anyone in this process (the App included:
// dist is CommonJS and reads child_process.spawn at call time).
const spawnStats = { calls: 0, ms: 0 };
const realSpawn = childProcess.spawn;
childProcess.spawn = function timedSpawn(...a) {
  const t = performance.now();
  try {
    return realSpawn.apply(this, a);
  } finally {
    spawnStats.ms += performance.now() - t;
    spawnStats.calls++;
  }
};

const ENV_SMALL = { PATH: '/usr/bin:/bin', GATEWAY_INTERFACE: 'CGI/1.1', REQUEST_METHOD: 'GET', SCRIPT_NAME: '/hello.sh', PATH_INFO: '', QUERY_STRING: '', SERVER_NAME: 'localhost', SERVER_PORT: '80', SERVER_PROTOCOL: 'HTTP/1.1', REMOTE_ADDR: '127.0.0.1', HTTP_HOST: 'localhost' };

/** Plain spawn loop: C in flight, each waits for stdout EOF and exit. */
function rawVariant(opts) {
  return () =>
    new Promise((resolve) => {
      let started = 0;
      let done = 0;
      const one = () => {
        if (started >= N) return;
        started++;
        const child = opts.shell ? childProcess.spawn('hello.sh', [], { ...opts.spawn, shell: true, cwd: CGI_ROOT }) : childProcess.spawn(HELLO, [], { ...opts.spawn, cwd: CGI_ROOT });
        let pending = 2;
        const fin = () => {
          if (--pending > 0) return;
          if (++done === N) resolve();
          else one();
        };
        child.stdout.resume();
        child.stdout.on('end', fin);
        child.stderr?.resume();
        child.on('exit', fin);
        child.stdin?.end();
      };
      for (let i = 0; i < C; i++) one();
    });
}

function appVariant(app) {
  return async () => {
    let i = 0;
    await Promise.all(
      Array.from({ length: C }, async () => {
        while (i++ < N) {
          const r = await lib.inject(app, { url: '/hello.sh' });
          if (r.status !== 200) throw new Error(`status ${r.status}`);
        }
      }),
    );
  };
}

function httpVariant(port) {
  return async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: C });
    let i = 0;
    await Promise.all(
      Array.from({ length: C }, async () => {
        while (i++ < N) {
          await new Promise((resolve, reject) => {
            http
              .get({ host: '127.0.0.1', port, path: '/cgi-bin/hello.sh', agent }, (res) => {
                res.resume();
                res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
              })
              .on('error', reject);
          });
        }
      }),
    );
    agent.destroy();
  };
}

async function measure(fn) {
  const s0 = { ...spawnStats };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const calls = spawnStats.calls - s0.calls;
  return {
    rate: (N / wall) * 1000,
    userMsPerReq: cpu.user / 1000 / N,
    sysMsPerReq: cpu.system / 1000 / N,
    spawnMsPerReq: calls === 0 ? 0 : (spawnStats.ms - s0.ms) / N,
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const app = lib.createCgiBinApp({ root: CGI_ROOT, maxProcesses: 64 });
const gateway = new lib.Gateway({ app, interface: 'environ' }, lib.resolveOptions({ http: ['127.0.0.1:0'], mount: '/cgi-bin' }, {}), lib.silentLogger());
const [bound] = await gateway.listen();
const port = bound.address.port;

const variants = [
  ['spawn, shell: true, process.env, stdio pipe×3', rawVariant({ shell: true, spawn: { env: process.env, stdio: 'pipe' } })],
  ['spawn, process.env, stdio pipe×3', rawVariant({ spawn: { env: process.env, stdio: 'pipe' } })],
  ['spawn, 11-var env, stdio pipe×3', rawVariant({ spawn: { env: ENV_SMALL, stdio: 'pipe' } })],
  ['spawn, 11-var env, stdin ignore', rawVariant({ spawn: { env: ENV_SMALL, stdio: ['ignore', 'pipe', 'pipe'] } })],
  ['spawn, 11-var env, stdin ignore, detached', rawVariant({ spawn: { env: ENV_SMALL, stdio: ['ignore', 'pipe', 'pipe'], detached: true } })],
  ['cgi-bin App via inject()', appVariant(app)],
  ['cgi-bin App via HTTP front (client in-process)', httpVariant(port)],
];

console.log(`node ${process.version}, libuv ${process.versions.uv}, ${N} requests × ${ROUNDS} rounds, concurrency ${C}, RSS ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB`);
await appVariant(app)(); // warm-up
const results = new Map(variants.map(([name]) => [name, []]));
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, fn] of variants) results.get(name).push(await measure(fn));
}
// user/sys: CPU of THIS process per request (the scripts' own CPU is not included); spawn()
// sync: wall time the event loop is blocked in spawn() (fork, child set-up, exec handshake).
console.log('\nvariant'.padEnd(52), 'req/s'.padStart(7), 'user ms/req'.padStart(12), 'sys ms/req'.padStart(11), 'spawn() sync ms/req'.padStart(20));
for (const [name, rs] of results) {
  console.log(
    name.padEnd(51),
    median(rs.map((x) => x.rate)).toFixed(0).padStart(7),
    median(rs.map((x) => x.userMsPerReq)).toFixed(2).padStart(12),
    median(rs.map((x) => x.sysMsPerReq)).toFixed(2).padStart(11),
    median(rs.map((x) => x.spawnMsPerReq)).toFixed(2).padStart(20),
  );
}

// Fork cost against the parent's RSS: same spawn loop after growing the heap.
console.log('\nspawn() sync cost against parent RSS (fork copies page tables):');
const keep = [];
const raw = rawVariant({ spawn: { env: ENV_SMALL, stdio: ['ignore', 'pipe', 'pipe'], detached: true } });
for (const extra of [0, 100, 200, 400]) {
  const base = process.memoryUsage().rss;
  while (process.memoryUsage().rss < base + extra * 1e6) keep.push(Array.from({ length: 1e5 }, (_, i) => ({ i })));
  const rs = [];
  for (let r = 0; r < ROUNDS; r++) rs.push(await measure(raw));
  console.log(`  RSS ${(process.memoryUsage().rss / 1e6).toFixed(0).padStart(4)} MB: ${median(rs.map((x) => x.rate)).toFixed(0).padStart(5)} req/s, spawn() sync ${median(rs.map((x) => x.spawnMsPerReq)).toFixed(2)} ms`);
}
keep.length = 0;

await app.close();
await gateway.close(1000);
