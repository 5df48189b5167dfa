/**
 * Black-box tests of the command line: `node dist/src/cli.js serve ...` as a real child process.
 * CLI-n are the numbered requirements of the issue the foundation closes (help/version, usage
 * errors, option precedence, app loading, listen addresses); protocol IDs where they apply.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SERVE_OPTIONS } from '../src/options.js';
import {
  type Proc,
  ROOT,
  app,
  ensureBuilt,
  example,
  freePort,
  hasIPv6Loopback,
  killAll,
  oneLine,
  portOf,
  request,
  runCli,
  spawnCli,
  spawnCommand,
  tempDir,
} from './fixtures/apps/cli-harness.js';

beforeAll(() => ensureBuilt(), 180_000);
afterEach(() => killAll());

/** Starts `serve` and waits for its listening line(s). */
async function serve(args: string[], env: Record<string, string> = {}, listeners = 1): Promise<{ proc: Proc; addresses: string[]; port: number }> {
  const proc = spawnCli(['serve', ...args], { env });
  const addresses = await proc.listening(listeners);
  const tcp = addresses.find((a) => /:\d+$/.test(a) && !a.startsWith('unix:') && !a.startsWith('fd:'));
  return { proc, addresses, port: tcp === undefined ? 0 : portOf(tcp) };
}

interface EchoResult {
  environ: Record<string, string>;
}

async function echo(port: number, urlPath: string): Promise<EchoResult> {
  const reply = await request({ port, path: urlPath });
  expect(reply.status).toBe(200);
  return JSON.parse(reply.body) as EchoResult;
}

/** `--help` output → option flags (`--http <addr>`) → their whole entry, whitespace collapsed. */
function optionEntries(help: string): Map<string, string> {
  const entries = new Map<string, string>();
  let current: string | undefined;
  let text = '';
  const flush = (): void => {
    if (current !== undefined) entries.set(current, text.replace(/\s+/g, ' ').trim());
  };
  for (const line of help.split('\n')) {
    const start = /^ {2}(?:-\w, )?(--[a-z-]+(?: <[a-z]+>)?)\s/.exec(line);
    if (start !== null) {
      flush();
      current = start[1];
      text = line;
    } else if (current !== undefined && /^ {4,}\S/.test(line)) text += ` ${line}`;
    else {
      flush();
      current = undefined;
    }
  }
  flush();
  return entries;
}

describe('CLI-1: --help and --version', () => {
  test('CLI-1: serve --help documents every option of SERVE_OPTIONS with its default and its GATEWIRE_* variable', async () => {
    const r = await runCli(['serve', '--help'], { env: { COLUMNS: '80' } });
    expect(r.code).toBe(0);
    const entries = optionEntries(r.stdout);
    expect(SERVE_OPTIONS.length).toBeGreaterThan(10);
    for (const spec of SERVE_OPTIONS) {
      const entry = entries.get(spec.flags);
      expect({ flags: spec.flags, entry }).toEqual({ flags: spec.flags, entry: expect.any(String) });
      expect(entry).toContain(`env: ${spec.env}`);
      if (spec.default !== undefined) expect(entry).toContain(`default: ${spec.default === '' ? '""' : spec.default}`);
      else expect(entry).toMatch(/default: [^\s;)]/);
      // The variable is the flag's name, upper-snake-cased, after GATEWIRE_.
      const flag = (spec.flags.split(' ')[0] as string).slice(2);
      expect(spec.env).toBe(`GATEWIRE_${flag.toUpperCase().replace(/-/g, '_')}`);
    }
  });

  test('CLI-1: --version and -v print the package.json version and exit 0', async () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-v']) {
      const r = await runCli([flag]);
      expect({ flag, code: r.code, out: r.stdout.trim(), err: r.stderr }).toEqual({ flag, code: 0, out: version, err: '' });
    }
  });
});

describe('CLI-2: a bad option value is one clear line on stderr and exit 2', () => {
  const hello = example('hello.mjs');
  const badFlags: Array<[string[], string]> = [
    [['--http', '127.0.0.1:0', '--workers', 'abc'], '"abc"'],
    [['--http', '127.0.0.1:0', '--workers', '2000'], '--workers'],
    [['--http', 'nope'], '"nope"'],
    [['--http', '70000'], '70000'],
    [['--http', '127.0.0.1:0', '--max-body-bytes', '1x'], '"1x"'],
    [['--http', '127.0.0.1:0', '--headers-timeout', 'soon'], '"soon"'],
    [['--http', '127.0.0.1:0', '--shutdown-timeout', 'never'], '"never"'],
    [['--http', '127.0.0.1:0', '--log-level', 'loud'], '"loud"'],
    [['--http', '127.0.0.1:0', '--interface', 'soap'], '"soap"'],
    [['--http', '127.0.0.1:0', '--socket-mode', '999'], '"999"'],
    [['--http', '127.0.0.1:0', '--mount', 'noslash'], '"noslash"'],
  ];
  test.each(badFlags)('CLI-2: serve APP %j → exit 2, one line naming %s', async (args, shown) => {
    const r = await runCli(['serve', hello, ...args]);
    expect(r.code).toBe(2);
    const line = oneLine(r.stderr);
    expect(line).toMatch(/^gatewire: invalid /);
    expect(line).toContain(shown);
    expect(r.stdout).toBe('');
  });

  const badEnv: Array<[string, string]> = [
    ['GATEWIRE_WORKERS', 'abc'],
    ['GATEWIRE_HTTP', 'nope'],
    ['GATEWIRE_LOG_LEVEL', 'loud'],
    ['GATEWIRE_LOG_FORMAT', 'xml'],
    ['GATEWIRE_MAX_BODY_BYTES', '1x'],
    ['GATEWIRE_SHUTDOWN_TIMEOUT', 'soon'],
    ['GATEWIRE_INTERFACE', 'soap'],
    ['GATEWIRE_SOCKET_MODE', '999'],
    ['GATEWIRE_MOUNT', 'noslash'],
  ];
  test.each(badEnv)('CLI-2: a bad %s=%s → exit 2, one line naming the variable', async (name, value) => {
    const args = name === 'GATEWIRE_HTTP' ? [] : ['--http', '127.0.0.1:0'];
    const r = await runCli(['serve', hello, ...args], { env: { [name]: value } });
    expect(r.code).toBe(2);
    const line = oneLine(r.stderr);
    expect(line).toContain(JSON.stringify(value));
    expect(line).toContain(name);
  });

  test.each([
    [['serve', 'HELLO', '--http', '127.0.0.1:0', '--bogus'], /unknown option '--bogus'/],
    [['serve', 'HELLO', '--htp', '127.0.0.1:0'], /unknown option '--htp'.*--http/],
    [['serve', 'HELLO', '--http'], /argument missing/],
    [['servee', 'HELLO'], /unknown command 'servee'/],
    [['serve', 'HELLO', 'extra', '--http', '127.0.0.1:0'], /too many arguments/],
    [['serve', '--http', '127.0.0.1:0'], /no app given/],
    [['serve', 'HELLO'], /nothing to listen on/],
  ])('CLI-2: usage error %j → exit 2, one line', async (args, pattern) => {
    const r = await runCli(args.map((a) => (a === 'HELLO' ? hello : a)));
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(pattern);
  });
});

describe('CLI-3: precedence flag > GATEWIRE_* environment > default', () => {
  const echoApp = example('echo.mjs');

  test('CLI-3, E-5: no flag, no variable → the default mount "" (SCRIPT_NAME empty)', async () => {
    const { port } = await serve([echoApp, '--http', '127.0.0.1:0']);
    const r = await echo(port, '/env/x');
    expect([r.environ.SCRIPT_NAME, r.environ.PATH_INFO]).toEqual(['', '/env/x']);
  });

  test('CLI-3, E-5: GATEWIRE_MOUNT=/env alone → SCRIPT_NAME /env', async () => {
    const { port } = await serve([echoApp, '--http', '127.0.0.1:0'], { GATEWIRE_MOUNT: '/env' });
    const r = await echo(port, '/env/x');
    expect([r.environ.SCRIPT_NAME, r.environ.PATH_INFO]).toEqual(['/env', '/x']);
  });

  test('CLI-3, E-5: --mount /flag beats GATEWIRE_MOUNT=/env', async () => {
    const { port } = await serve([echoApp, '--http', '127.0.0.1:0', '--mount', '/flag'], { GATEWIRE_MOUNT: '/env' });
    const r = await echo(port, '/flag/x');
    expect([r.environ.SCRIPT_NAME, r.environ.PATH_INFO]).toEqual(['/flag', '/x']);
    expect((await request({ port, path: '/env/x' })).status).toBe(404);
  });

  test('CLI-3: GATEWIRE_HTTP is used when no --http is given (and takes a comma-separated list)', async () => {
    const dir = tempDir();
    const sock = path.join(dir, 'env.sock');
    const { port, addresses } = await serve([example('hello.mjs')], { GATEWIRE_HTTP: `127.0.0.1:0,unix:${sock}` }, 2);
    expect(addresses).toEqual([expect.stringMatching(/^127\.0\.0\.1:\d+$/), `unix:${sock}`]);
    expect((await request({ port })).body).toBe('Hello, World!\n');
    expect((await request({ socketPath: sock })).body).toBe('Hello, World!\n');
  });

  test('CLI-3: --http beats GATEWIRE_HTTP (the variable is not even parsed)', async () => {
    const dir = tempDir();
    const sock = path.join(dir, 'env.sock');
    const { addresses } = await serve([example('hello.mjs'), '--http', '127.0.0.1:0'], { GATEWIRE_HTTP: `unix:${sock}` });
    expect(addresses).toEqual([expect.stringMatching(/^127\.0\.0\.1:\d+$/)]);
    expect(fs.existsSync(sock)).toBe(false);
    const bad = await serve([example('hello.mjs'), '--http', '127.0.0.1:0', '--workers', '1'], { GATEWIRE_HTTP: 'nope', GATEWIRE_WORKERS: 'abc' });
    expect(bad.addresses).toHaveLength(1);
  });

  test('CLI-3: a timeout flag beats its variable (--shutdown-timeout over GATEWIRE_SHUTDOWN_TIMEOUT)', async () => {
    // Each value shows up in the SIGTERM line, so which one won is visible from outside.
    const fromEnv = await serve([example('hello.mjs'), '--http', '127.0.0.1:0'], { GATEWIRE_SHUTDOWN_TIMEOUT: '7s' });
    fromEnv.proc.signal('SIGTERM');
    await fromEnv.proc.waitFor(/SIGTERM: finishing in-flight requests \(up to 7000 ms\)/);
    const fromFlag = await serve([example('hello.mjs'), '--http', '127.0.0.1:0', '--shutdown-timeout', '1500ms'], { GATEWIRE_SHUTDOWN_TIMEOUT: '7s' });
    fromFlag.proc.signal('SIGTERM');
    await fromFlag.proc.waitFor(/SIGTERM: finishing in-flight requests \(up to 1500 ms\)/);
    expect((await fromFlag.proc.waitExit()).code).toBe(0);
  });
});

describe('CLI-4: app loading', () => {
  const cases: Array<[string, string[], string, string]> = [
    ['ESM default export (.mjs)', [app('esm.mjs')], '/', 'esm default\n'],
    ['PATH:exportName', [`${app('esm.mjs')}:second`], '/', 'esm second\n'],
    ['CommonJS module.exports = fn (.cjs)', [app('commonjs.cjs')], '/', 'cjs module.exports\n'],
    ['a .js file', [app('plain.js')], '/', 'plain .js\n'],
    ['a path relative to the working directory', ['examples/hello.mjs'], '/', 'Hello, World!\n'],
    ['node handler marked with gatewireInterface', [example('hello-node.mjs')], '/', 'Hello, World!\n'],
    ['node handler with --interface node', [app('node-plain.mjs'), '--interface', 'node'], '/x?y', 'node handler GET /x?y\n'],
    ['fetch handler (Hono)', [example('hono.mjs')], '/', 'Hello from Hono\n'],
    ['Express (CommonJS)', [example('express.cjs')], '/', 'Hello from Express\n'],
    ['Koa', [example('koa.mjs')], '/', 'Hello from Koa\n'],
  ];
  test.each(cases)('CLI-4: %s answers', async (_name, args, urlPath, body) => {
    const { port } = await serve([...args, '--http', '127.0.0.1:0']);
    const r = await request({ port, path: urlPath });
    expect([r.status, r.body]).toEqual([200, body]);
  });

  test('CLI-4: frameworks answer beyond their root (Hono params + query, Express params, environ echo)', async () => {
    const hono = await serve([example('hono.mjs'), '--http', '127.0.0.1:0']);
    expect(JSON.parse((await request({ port: hono.port, path: '/hello/bob?q=1' })).body)).toEqual({ hello: 'bob', q: '1' });
    const express = await serve([example('express.cjs'), '--http', '127.0.0.1:0']);
    expect(JSON.parse((await request({ port: express.port, path: '/hello/amy?x=2' })).body)).toMatchObject({ hello: 'amy', query: { x: '2' } });
    const environ = await serve([example('echo.mjs'), '--http', '127.0.0.1:0']);
    const r = await echo(environ.port, '/a/b?c=d');
    expect(r.environ).toMatchObject({ REQUEST_METHOD: 'GET', PATH_INFO: '/a/b', QUERY_STRING: 'c=d', REMOTE_ADDR: '127.0.0.1' });
  });

  test('CLI-4: a plain (req, res) function without the mark is taken for an environ app, so --interface decides', async () => {
    const { proc, port } = await serve([app('node-plain.mjs'), '--http', '127.0.0.1:0']);
    expect((await request({ port })).status).toBe(500);
    await proc.waitFor(/error app failed/);
  });

  test('CLI-4, R-5, OP-10: a fetch handler that kept only request.signal sees the abort after full GCs (the Request is held for it)', async () => {
    const { proc, port } = await serve([app('fetch-signal.mjs'), '--http', '127.0.0.1:0', '--timeout', '400ms', '--workers', '0'], { NODE_OPTIONS: '--expose-gc' });
    expect((await request({ port, path: '/never' })).status).toBe(504);
    await proc.waitFor(/fetch-signal: \/never aborted: timeout: app did not answer in 400 ms/, 'stderr', 5000);
  });

  const failures: Array<[string, string, RegExp[]]> = [
    ['a missing file', app('does-not-exist.mjs'), [/no such file/, /does-not-exist\.mjs/]],
    ['a missing export (lists the exports)', `${app('esm.mjs')}:nope`, [/no export named nope/, /default/, /notAnApp/, /plainObject/, /second/]],
    ['a number export', `${app('esm.mjs')}:notAnApp`, [/notAnApp export/, /not an app/, /number/]],
    ['a plain object export', `${app('esm.mjs')}:plainObject`, [/plainObject export/, /not an app/, /object/]],
    ['a module that throws on import', app('throws.mjs'), [/cannot load app/, /fixture exploded on import/]],
    ['a module that throws null on import', app('throws-null.mjs'), [/cannot load app/, /null/]],
  ];
  test.each(failures)('CLI-4: %s → one clear line, exit 2', async (_name, spec, patterns) => {
    const r = await runCli(['serve', spec, '--http', '127.0.0.1:0']);
    expect(r.code).toBe(2);
    const line = oneLine(r.stderr);
    for (const p of patterns) expect(line).toMatch(p);
    expect(line).not.toContain('second line');
  });
});

describe('CLI-11, CLI-12, CLI-13: start-up reports', () => {
  const syntax: Array<[string, Record<string, string>, string, string]> = [
    // [case, files written, the app given, FILE:LINE:COLUMN expected (FILE relative to the folder)]
    ['an ES module', { 'bad.mjs': 'export default 1;\nconst x = ;\n' }, 'bad.mjs', 'bad.mjs:2:11'],
    ['a CommonJS module', { 'bad.cjs': 'module.exports = 1;\nconst x = (;\n' }, 'bad.cjs', 'bad.cjs:2:12'],
    ['an ES module imported by the app', { 'entry.mjs': "import x from './lib/inner.mjs';\nexport default x;\n", 'lib/inner.mjs': 'export default 1;\n\n  let = ;\n' }, 'entry.mjs', 'lib/inner.mjs:3:'],
    ['a CommonJS module required by the app', { 'entry.cjs': "module.exports = require('./inner.cjs');\n", 'inner.cjs': 'module.exports = {;\n' }, 'entry.cjs', 'inner.cjs:1:'],
  ];
  test.each(syntax)('CLI-11: a syntax error in %s is reported with its file, line and column, exit 2', async (_name, files, entry, where) => {
    const dir = tempDir();
    for (const [name, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      fs.writeFileSync(path.join(dir, name), text);
    }
    const r = await runCli(['serve', path.join(dir, entry), '--http', '127.0.0.1:0']);
    expect(r.code).toBe(2);
    const line = oneLine(r.stderr);
    expect(line).toContain(`${path.join(dir, where)}`);
    expect(line).toMatch(new RegExp(`${path.basename(where).replace(/[.]/g, '\\.')}\\d*: SyntaxError: Unexpected `));
  });

  test('CLI-12: a unix socket in a folder that does not exist is named as such, not EACCES', async () => {
    const folder = path.join(tempDir(), 'missing', 'run');
    const r = await runCli(['serve', example('hello.mjs'), '--http', `unix:${folder}/g.sock`]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(new RegExp(`cannot listen on unix:${folder}/g\\.sock: the folder ${folder} does not exist`));
    expect(r.stderr).not.toMatch(/EACCES|ENOENT/);
  });

  test.each([
    ['hello.mjs', 'environ app'],
    ['hello-node.mjs', 'node handler'],
    ['express.cjs', 'node handler: Express'],
    ['koa.mjs', 'node handler: Koa'],
    ['hono.mjs', 'fetch handler: Hono'],
  ])('CLI-13: the start-up log names the interface detected for %s', async (file, what) => {
    const { proc } = await serve([example(file), '--http', '127.0.0.1:0']);
    const line = (await proc.waitFor(/info app: .*/))[0];
    expect(line).toBe(`info app: ${example(file)} (${what})`);
  });
});

describe('CLI-5: listen addresses', () => {
  test('CLI-5: a bare PORT listens on it', async () => {
    const port = await freePort();
    const { addresses } = await serve([example('hello.mjs'), '--http', String(port)]);
    expect(portOf(addresses[0] as string)).toBe(port);
    expect((await request({ port })).body).toBe('Hello, World!\n');
  });

  test('CLI-5: 127.0.0.1:PORT', async () => {
    const port = await freePort();
    const { addresses } = await serve([example('hello.mjs'), '--http', `127.0.0.1:${port}`]);
    expect(addresses).toEqual([`127.0.0.1:${port}`]);
    expect((await request({ port })).body).toBe('Hello, World!\n');
  });

  test('CLI-5: [::1]:PORT (or, without an IPv6 loopback, a one-line exit 2)', async () => {
    if (await hasIPv6Loopback()) {
      const port = await freePort('::1');
      const { addresses } = await serve([example('echo.mjs'), '--http', `[::1]:${port}`]);
      expect(addresses).toEqual([`[::1]:${port}`]);
      const r = await request({ host: '::1', port });
      expect(r.status).toBe(200);
      expect((JSON.parse(r.body) as EchoResult).environ.REMOTE_ADDR).toBe('::1');
    } else {
      // This machine has no ::1: the CLI must still fail cleanly, not crash.
      const r = await runCli(['serve', example('hello.mjs'), '--http', '[::1]:0']);
      expect(r.code).toBe(2);
      expect(oneLine(r.stderr)).toMatch(/cannot listen on \[::1\]:0/);
    }
  });

  test('CLI-5: unix:PATH', async () => {
    const sock = path.join(tempDir(), 'g.sock');
    const { addresses } = await serve([example('hello.mjs'), '--http', `unix:${sock}`]);
    expect(addresses).toEqual([`unix:${sock}`]);
    expect(fs.lstatSync(sock).isSocket()).toBe(true);
    expect((await request({ socketPath: sock })).body).toBe('Hello, World!\n');
  });

  test.each([
    ['600', 0o600],
    ['0660', 0o660],
  ])('CLI-5: --socket-mode %s sets the socket file mode', async (mode, expected) => {
    const sock = path.join(tempDir(), 'm.sock');
    await serve([example('hello.mjs'), '--http', `unix:${sock}`, '--socket-mode', mode]);
    expect((fs.statSync(sock).mode & 0o777).toString(8)).toBe(expected.toString(8));
    expect((await request({ socketPath: sock })).status).toBe(200);
  });

  test('CLI-5: fd:3, a listening TCP socket inherited as fd 3', async () => {
    // python3 binds and listens, moves the socket to fd 3, prints its port and execs node:
    // the CLI never binds anything itself.
    const script = [
      'import os, socket, sys',
      's = socket.socket(socket.AF_INET, socket.SOCK_STREAM)',
      "s.bind(('127.0.0.1', 0))",
      's.listen(64)',
      'fd = s.detach()',
      'if fd != 3:',
      '    os.dup2(fd, 3)',
      '    os.close(fd)',
      'os.set_inheritable(3, True)',
      "sys.stderr.write('inherited port %d\\n' % socket.socket(fileno=os.dup(3)).getsockname()[1])",
      'sys.stderr.flush()',
      'os.execv(sys.argv[1], sys.argv[1:])',
    ].join('\n');
    const proc = spawnCommand('python3', ['-c', script, process.execPath, path.join(ROOT, 'dist', 'src', 'cli.js'), 'serve', example('hello.mjs'), '--http', 'fd:3']);
    const port = Number((await proc.waitFor(/inherited port (\d+)/))[1]);
    expect(await proc.listening()).toEqual(['fd:3']);
    expect((await request({ port })).body).toBe('Hello, World!\n');
    expect((await request({ port })).status).toBe(200);
  });

  test('CLI-5: two --http listeners at once', async () => {
    const sock = path.join(tempDir(), 'two.sock');
    const { port, addresses } = await serve([example('hello.mjs'), '--http', '127.0.0.1:0', '--http', `unix:${sock}`], {}, 2);
    expect(addresses).toEqual([`127.0.0.1:${port}`, `unix:${sock}`]);
    const [a, b] = await Promise.all([request({ port }), request({ socketPath: sock })]);
    expect([a.body, b.body]).toEqual(['Hello, World!\n', 'Hello, World!\n']);
  });

  test('CLI-5: an address already in use → one line, exit 2', async () => {
    const first = await serve([example('hello.mjs'), '--http', '127.0.0.1:0']);
    const r = await runCli(['serve', example('hello.mjs'), '--http', `127.0.0.1:${first.port}`]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
    expect((await request({ port: first.port })).status).toBe(200);
  });
});
