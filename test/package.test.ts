/**
 * The package as a user gets it: `npm pack` (its prepack builds dist/ and the native prebuild),
 * `npm install` of the tarball into an empty project, then the installed copy is used the three
 * ways a user would: the `gatewire` command serving a cgi-bin, `require('gatewire')` / `import`,
 * and its .d.ts files type-checked by TypeScript 5.9 and 7 under the usual module settings.
 *
 * The pack runs in a copy of the checkout (sources only, node_modules linked), so it proves that
 * prepack builds everything from nothing and it never rewrites the dist/ other suites are using.
 *
 * Needs a C compiler (the prepack fails without one: no tarball without its prebuild) and the npm
 * registry for the package's dependencies. Neither is skipped: a missing one fails with a message.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const TSC = {
  '5.9': path.join(ROOT, 'node_modules/typescript/bin/tsc'),
  '7': path.join(ROOT, 'node_modules/typescript7/bin/tsc'),
} as const;

/** The API the package entry must expose (item 6 of the packaging issue). */
const API = [
  'inject',
  'validateApp',
  'createCgiBinApp',
  'mountApp',
  'spawnMethod',
  'fromNodeHandler',
  'fromFetchHandler',
  'Gateway',
  'loadService',
  'resolveOptions',
  'serve',
  'createLogger',
  'silentLogger',
];

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** The environment of every command here: no npm_* of the jest run, no GATEWIRE_* of the user's. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) || k.startsWith('GATEWIRE_') || k === 'NODE_OPTIONS') continue;
    env[k] = v;
  }
  env.npm_config_update_notifier = 'false';
  env.npm_config_fund = 'false';
  env.npm_config_audit = 'false';
  return env;
}

function run(cmd: string, args: string[], cwd: string, timeoutMs: number): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env: cleanEnv(), timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals; killed?: boolean }) | null;
      resolve({
        code: e === null ? 0 : typeof e.code === 'number' ? e.code : null,
        signal: e?.signal ?? null,
        stdout: String(stdout),
        stderr: String(stderr),
        timedOut: e?.killed === true && e.signal === 'SIGKILL',
      });
    });
  });
}

/** The last lines of a command's output, for failure messages. */
function tail(r: Ran, lines = 25): string {
  const text = `${r.stdout}\n${r.stderr}`.trim().split('\n');
  return `${r.timedOut ? '(timed out) ' : ''}exit ${r.code ?? r.signal}:\n${text.slice(-lines).join('\n')}`;
}

function mustSucceed(r: Ran, what: string): Ran {
  if (r.code !== 0) throw new Error(`${what} failed, ${tail(r)}`);
  return r;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function get(url: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

let base = '';
let packSrc = '';
let project = '';
let cgiDir = '';
let tarball = '';
let tarFiles: string[] = [];
let packedManifest: Record<string, unknown> = {};
let server: ChildProcess | undefined;
const timings: Record<string, number> = {};

async function timed<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  try {
    return await fn();
  } finally {
    timings[name] = Date.now() - t0;
  }
}

/** Files of the checkout the pack needs: everything git knows of but the tests and benchmarks. */
async function listFiles(): Promise<string[]> {
  const r = mustSucceed(await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], ROOT, 30_000), 'git ls-files');
  return r.stdout.split('\0').filter((f) => f !== '' && !/^(test|bench|fixtures|\.ci|coverage)\//.test(f));
}

beforeAll(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'gatewire-package-'));
  packSrc = path.join(base, 'src');
  project = path.join(base, 'project');
  cgiDir = path.join(base, 'cgi-bin');
  const packDir = path.join(base, 'pack');
  for (const d of [packSrc, project, cgiDir, packDir]) fs.mkdirSync(d, { recursive: true });

  for (const file of await listFiles()) {
    const from = path.join(ROOT, file);
    if (!fs.existsSync(from)) continue; // deleted in the worktree, still in the index
    fs.mkdirSync(path.dirname(path.join(packSrc, file)), { recursive: true });
    fs.copyFileSync(from, path.join(packSrc, file));
    fs.chmodSync(path.join(packSrc, file), fs.statSync(from).mode);
  }
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(packSrc, 'node_modules'), 'dir');

  await timed('npm pack', async () => {
    const r = await run('npm', ['pack', '--pack-destination', packDir], packSrc, 240_000);
    mustSucceed(r, 'npm pack (its prepack builds dist/ and the native prebuild; a C compiler is needed)');
  });
  const packed = fs.readdirSync(packDir).filter((f) => f.endsWith('.tgz'));
  if (packed.length !== 1) throw new Error(`npm pack made ${packed.length} tarballs in ${packDir}: ${packed.join(', ')}`);
  tarball = path.join(packDir, packed[0] as string);
  tarFiles = mustSucceed(await run('tar', ['-tzf', tarball], base, 30_000), 'tar -t').stdout.split('\n').filter((f) => f !== '');
  packedManifest = JSON.parse(mustSucceed(await run('tar', ['-xzOf', tarball, 'package/package.json'], base, 30_000), 'tar -x package.json').stdout) as Record<string, unknown>;

  // The user's side: an empty project, the tarball installed with its dependencies from the registry.
  mustSucceed(await run('npm', ['init', '-y'], project, 60_000), 'npm init -y');
  await timed('npm install', async () => {
    const r = await run('npm', ['install', '--no-audit', '--no-fund', tarball], project, 180_000);
    if (r.code !== 0) {
      const registry = (await run('npm', ['config', 'get', 'registry'], project, 30_000)).stdout.trim();
      throw new Error(
        `npm install of the packed tarball failed: this test needs the npm registry (${registry || 'unknown'}) for gatewire's dependencies ` +
          `(commander, winston, node-gyp-build); it is not skipped without it. ${tail(r)}`,
      );
    }
  });

  fs.writeFileSync(path.join(cgiDir, 'hello.sh'), '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\nhello from %s\\n" "$SCRIPT_NAME"\n', { mode: 0o755 });
}, 480_000);

afterAll(async () => {
  if (server !== undefined && server.exitCode === null && server.signalCode === null && server.pid !== undefined) {
    const exited = new Promise<void>((resolve) => server?.once('exit', () => resolve()));
    try {
      process.kill(-server.pid, 'SIGKILL'); // npx and the gatewire it started: one process group
    } catch {
      /* gone already */
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  }
  if (base !== '') fs.rmSync(base, { recursive: true, force: true });
  if (Object.keys(timings).length > 0) console.log(`package round trip: ${Object.entries(timings).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(', ')}`);
}, 30_000);

describe('the tarball', () => {
  test('holds the CommonJS build, its types and the Linux x64 prebuild', () => {
    expect(tarFiles).toContain('package/dist/src/index.js');
    expect(tarFiles).toContain('package/dist/src/index.d.ts');
    expect(tarFiles).toContain('package/dist/src/cli.js');
    expect(tarFiles).toContain('package/dist/src/serve.js');
    expect(tarFiles).toContain('package/dist/protocols/fastcgi/index.js');
    expect(tarFiles).toContain('package/LICENSE'); // the `license` field's text ships with the code
    expect(tarFiles.filter((f) => /^package\/prebuilds\/linux-x64\/[^/]+\.node$/.test(f))).toEqual(['package/prebuilds/linux-x64/gatewire_spawn.napi.uv1.glibc.node']);
    // Nothing from the development tree: tests, source maps, sources of dist/.
    expect(tarFiles.filter((f) => /^package\/(test|bench|fixtures|src|protocols|dist\/test)\//.test(f) || f.endsWith('.map'))).toEqual([]);
  });

  test('package.json: no fastcgi-stream dependency, no install script, an exports map', () => {
    const deps = { ...(packedManifest.dependencies as Record<string, string>), ...(packedManifest.optionalDependencies as Record<string, string> | undefined) };
    expect(Object.keys(deps)).not.toContain('fastcgi-stream');
    expect(Object.keys(deps)).toContain('node-gyp-build');
    const scripts = (packedManifest.scripts ?? {}) as Record<string, string>;
    expect(Object.keys(scripts).filter((s) => /^(pre|post)?install$/.test(s))).toEqual([]);
    expect(tarFiles).not.toContain('package/binding.gyp'); // npm would add `node-gyp rebuild` as the install script
    expect(packedManifest.type).toBeUndefined(); // CommonJS
    expect(packedManifest.exports).toEqual({
      '.': { types: './dist/src/index.d.ts', require: './dist/src/index.js', default: './dist/src/index.js' },
      './package.json': './package.json',
    });
    expect(packedManifest.bin).toEqual({ gatewire: 'dist/src/cli.js' });
  });
});

describe('the installed package', () => {
  test('`npx gatewire serve --cgi-bin` says it uses the native spawner and runs a script', async () => {
    const port = await freePort();
    const proc = spawn('npx', ['--no', 'gatewire', 'serve', '--cgi-bin', cgiDir, '--http', `127.0.0.1:${port}`], {
      cwd: project,
      env: cleanEnv(),
      detached: true, // its own process group: afterAll kills npx and gatewire together
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server = proc;
    let output = '';
    proc.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (output += d.toString()));

    let answer: { status: number; body: string } | undefined;
    const deadline = Date.now() + 20_000;
    while (answer === undefined && Date.now() < deadline && proc.exitCode === null) {
      answer = await get(`http://127.0.0.1:${port}/cgi-bin/hello.sh`, 5000).catch(async () => {
        await new Promise((r) => setTimeout(r, 200));
        return undefined;
      });
    }
    if (answer === undefined) throw new Error(`gatewire did not answer on 127.0.0.1:${port}; its output:\n${output}`);
    expect(answer).toEqual({ status: 200, body: 'hello from /cgi-bin/hello.sh\n' });
    const spawnLines = output.split('\n').filter((l) => /native spawner|child_process/.test(l));
    expect(spawnLines).toHaveLength(1);
    expect(spawnLines[0]).toMatch(/ info cgi-bin: scripts start with the native spawner$/);

    // SIGTERM to the group: npx passes it on, gatewire finishes gracefully.
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    process.kill(-(proc.pid as number), 'SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  }, 60_000);

  test('`npx gatewire compare` of the installed copy: five protocols, and an --html page with Chart.js and the page assets inlined', async () => {
    const html = path.join(project, 'compare.html');
    const r = await run('npx', ['--no', 'gatewire', 'compare', '--no-wire', '--samples', '2', '--html', html], project, 60_000);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    for (const title of ['HTTP ', 'FastCGI ', 'SCGI ', 'uwsgi ', 'CGI ']) expect(r.stdout).toMatch(new RegExp(`^${title} +200 `, 'm'));
    const page = fs.readFileSync(html, 'utf8');
    expect(page).toContain('id="report-data"');
    expect(page).toMatch(/Chart\.js v4/); // the library's banner: inlined, not loaded
    expect(page).not.toMatch(/<script[^>]+src=|<link[^>]+href="(?!data:)/); // nothing to fetch: the icon is a data: URL
  }, 90_000);

  test('require() and import give the API; spawnMethod() of the installed copy says native', async () => {
    fs.writeFileSync(
      path.join(project, 'smoke.cjs'),
      `const g = require('gatewire');
const app = (environ, start) => { start('200 OK', [['Content-Type', 'text/plain']]); return ['hi ' + environ.PATH_INFO]; };
(async () => {
  const injected = await g.inject(app, { url: '/inj' });
  const server = await g.serve(app, { http: '127.0.0.1:0', logLevel: 'error' });
  const served = await (await fetch('http://127.0.0.1:' + server.listeners[0].address.port + '/srv')).text();
  await server.close(100);
  const cgi = g.createCgiBinApp({ root: ${JSON.stringify(cgiDir)} });
  const script = await g.inject(g.mountApp('/cgi-bin', cgi), { url: '/cgi-bin/hello.sh' });
  await cgi.close();
  console.log(JSON.stringify({
    exports: Object.keys(g), spawn: g.spawnMethod(), resolved: require.resolve('gatewire'),
    version: require('gatewire/package.json').version,
    injected: injected.body.toString(), served, script: [script.status, script.body.toString()],
  }));
})().catch((err) => { console.error(err); process.exit(1); });
`,
    );
    const r = mustSucceed(await run(process.execPath, ['smoke.cjs'], project, 30_000), 'node smoke.cjs');
    const got = JSON.parse(r.stdout.trim().split('\n').pop() as string) as Record<string, unknown>;
    expect(got.exports).toEqual(expect.arrayContaining(API));
    expect(got.spawn).toEqual({ method: 'native' });
    expect(got.resolved).toBe(fs.realpathSync(path.join(project, 'node_modules/gatewire/dist/src/index.js')));
    expect(got.version).toBe(packedManifest.version);
    expect(got).toMatchObject({ injected: 'hi /inj', served: 'hi /srv', script: [200, 'hello from /cgi-bin/hello.sh\n'] });

    // ESM: Node finds the CommonJS build's named exports.
    const esm = mustSucceed(
      await run(process.execPath, ['--input-type=module', '-e', `import { ${API.join(', ')} } from 'gatewire'; console.log([${API.join(', ')}].map((x) => typeof x).join(' '), spawnMethod().method);`], project, 30_000),
      'import from gatewire',
    );
    expect(esm.stdout.trim()).toBe(`${API.map(() => 'function').join(' ')} native`);
  }, 60_000);

  describe('its types compile for a user', () => {
    // A consumer using the API with its types; the @ts-expect-error fails the check if they were any.
    const consumer = `import { createCgiBinApp, fromFetchHandler, fromNodeHandler, Gateway, inject, loadService, mountApp, resolveOptions, serve, silentLogger, spawnMethod, validateApp, type App, type InjectResponse, type RunningServer } from 'gatewire';

const app: App = (environ, startResponse) => {
  startResponse('200 OK', [['Content-Type', 'text/plain']]);
  return [\`hello \${environ.PATH_INFO}\`];
};

export async function main(): Promise<number> {
  const res: InjectResponse = await inject(app, { method: 'POST', url: '/x?y=1', body: 'data' });
  const text: string = res.body.toString('utf8');
  const server: RunningServer = await serve(app, { http: '127.0.0.1:0', logLevel: 'error', maxBodyBytes: '1m' });
  const first = server.listeners[0];
  const port: number = first !== undefined && first.address.kind === 'tcp' ? first.address.port : 0;
  await server.close(100);
  const cgi = createCgiBinApp({ root: '/srv/cgi-bin', maxProcesses: 4 });
  const both: App = mountApp('/cgi-bin', cgi, validateApp(app));
  const method: 'native' | 'child_process' = spawnMethod().method;
  const node = fromNodeHandler((req, out) => { out.end(req.url); });
  const fetchApp = fromFetchHandler(async (request) => new Response(request.url));
  const gateway = new Gateway({ app: both, interface: 'environ' }, resolveOptions({ http: ['0'] }, {}), silentLogger());
  const loaded = await loadService('./app.js');
  // @ts-expect-error: option values are texts, not objects
  await serve(app, { http: { port: 1 } });
  void [text, method, node, fetchApp, gateway, loaded];
  await cgi.close();
  return port + res.status;
}
`;
    const consumerMts = `import { inject, serve, type App } from 'gatewire';
const app: App = (_environ, startResponse) => { startResponse('204 No Content', []); return []; };
export const status: Promise<number> = inject(app).then((r) => r.status);
export const started = serve(app, { http: 0 }).then((s) => s.close());
`;
    // [name, module, moduleResolution]; the .mts (an ES module importing the CommonJS package) where Node's rules apply.
    const SETTINGS: Array<[string, string, string | undefined]> = [
      ['commonjs', 'commonjs', undefined], // no esModuleInterop (TypeScript 7 no longer has the choice)
      ['node16', 'node16', undefined],
      ['nodenext', 'nodenext', undefined],
      ['preserve-bundler', 'preserve', 'bundler'],
      ['esnext-bundler', 'esnext', 'bundler'],
    ];
    const cases = (['5.9', '7'] as const).flatMap((ts) => SETTINGS.map(([name, module, resolution]) => ({ ts, name, module, resolution })));

    beforeAll(() => {
      fs.writeFileSync(path.join(project, 'consumer.ts'), consumer);
      fs.writeFileSync(path.join(project, 'consumer.mts'), consumerMts);
      for (const [name, module, resolution] of SETTINGS) {
        const compilerOptions: Record<string, unknown> = {
          strict: true,
          noEmit: true,
          target: 'es2022',
          lib: ['es2022'],
          module,
          ...(resolution === undefined ? {} : { moduleResolution: resolution }),
          // No types of its own: @types/node comes in through gatewire's `/// <reference types="node" />`,
          // found in the repository's node_modules/@types (the user's would be in their own).
          types: [],
          typeRoots: [path.join(ROOT, 'node_modules/@types')],
        };
        const files = module.startsWith('node') ? ['consumer.ts', 'consumer.mts'] : ['consumer.ts'];
        fs.writeFileSync(path.join(project, `tsconfig.${name}.json`), JSON.stringify({ compilerOptions, files }, null, 2));
      }
    });

    test.each(cases)('TypeScript $ts, module $name', async ({ ts, name }) => {
      const r = await timed(`tsc ${ts} ${name}`, () => run(process.execPath, [TSC[ts], '-p', `tsconfig.${name}.json`], project, 90_000));
      expect({ code: r.code, output: `${r.stdout}${r.stderr}`.trim() }).toEqual({ code: 0, output: '' });
    }, 120_000);
  });
});
