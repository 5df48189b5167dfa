/**
 * The cgi-bin App (docs/conformance.md §5): C-1..C-30 and every hostile input of §5.3,
 * through inject() and through the HTTP front. Fixture scripts live in fixtures/cgi-bin, one per
 * case; process checks read /proc (process groups must be gone after each run).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { App, Environ, Service } from '../src/app.js';
import { CGI_BIN_DEFAULTS, CGI_INTERPRETERS, createCgiBinApp, type CgiBinApp, type CgiBinOptions } from '../src/cgi-host/host.js';
import { isUnder, resolveDotSegments } from '../src/cgi-host/select.js';
import { inject, type InjectRequest, type InjectResponse } from '../src/inject.js';
import type { Logger } from '../src/log.js';
import { resolveOptions } from '../src/options.js';
import { Gateway } from '../src/server.js';
import { RecordType } from '../protocols/fastcgi/constants.js';
import { RecordDecoder } from '../protocols/fastcgi/decoder.js';
import { encodeBeginRequest, encodeEndOfStream, encodeParamsStream, encodeStdin } from '../protocols/fastcgi/encoder.js';
import { ensureBuilt, killAll, portOf, spawnCli } from './fixtures/apps/cli-harness.js';
import { fcgiRequest, parseCgiResponse } from './helpers/fcgi-client.js';
import { httpRequest } from './helpers/fronts.js';

const ROOT = path.resolve(__dirname, '..', 'fixtures', 'cgi-bin');
const MOUNT = '/cgi-bin';

interface LogLine {
  level: string;
  message: string;
  meta: Record<string, unknown> | undefined;
}

function captureLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: string) =>
    (message: string, meta?: Record<string, unknown>): void => {
      lines.push({ level, message, meta });
    };
  return { lines, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), debugEnabled: true, access: null, close: () => Promise.resolve() };
}

const apps: CgiBinApp[] = [];
afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
});

function make(opts: Partial<CgiBinOptions> = {}): { app: CgiBinApp; logger: ReturnType<typeof captureLogger> } {
  const logger = captureLogger();
  const app = createCgiBinApp({ root: ROOT, logger, ...opts });
  apps.push(app);
  return { app, logger };
}

function get(app: App, url: string, req: Omit<InjectRequest, 'url' | 'mount'> = {}): Promise<InjectResponse> {
  return inject(app, { mount: MOUNT, url: `${MOUNT}${url}`, ...req });
}

const header = (res: { headers: Array<[string, string]> }, name: string): string[] => res.headers.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
const text = (res: { body: Buffer }): string => res.body.toString('latin1');
const envOf = (res: { body: Buffer }): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const line of res.body.toString('utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
};

/** An App that edits the environ first: what a FastCGI/SCGI/uwsgi web server could send. */
function withEnviron(app: App, edit: (env: Environ) => void): App {
  return (environ, sr) => {
    edit(environ);
    return app(environ, sr);
  };
}

/** Live (non-zombie) members of a process group, from /proc. */
function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'latin1');
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] !== 'Z' && Number(fields[2]) === pgid) out.push(Number(name));
  }
  return out;
}

function isAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` holds (processes take a moment to die); false after `ms`. */
async function eventually(check: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await sleep(20);
  }
  return check();
}

/** The pid (= process group) of the run that logged a line matching `re`. */
async function pidFromLog(logger: ReturnType<typeof captureLogger>, re: RegExp): Promise<number> {
  await eventually(() => logger.lines.some((l) => re.test(l.message) && typeof l.meta?.pid === 'number'));
  const line = logger.lines.find((l) => re.test(l.message) && typeof l.meta?.pid === 'number');
  if (line === undefined) throw new Error(`no log line matching ${re}: ${JSON.stringify(logger.lines.map((l) => l.message))}`);
  return line.meta?.pid as number;
}

function tmp(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------

describe('C-1 script selection', () => {
  const { app } = make({ index: ['index.cgi'] });

  test('C-1: a script under the root runs; its stdout becomes the response', async () => {
    const res = await get(app, '/hello.sh');
    expect(res.status).toBe(200);
    expect(header(res, 'content-type')).toEqual(['text/plain']);
    expect(text(res)).toBe('Hello, CGI\n');
  });

  test('C-2: Go host_test TestPathInfo: /env.sh/extrapath?a=b → SCRIPT_NAME, PATH_INFO, QUERY_STRING, REQUEST_URI', async () => {
    const env = envOf(await get(app, '/env.sh/extrapath?a=b'));
    expect(env).toMatchObject({
      SCRIPT_NAME: '/cgi-bin/env.sh',
      PATH_INFO: '/extrapath',
      QUERY_STRING: 'a=b',
      REQUEST_URI: '/cgi-bin/env.sh/extrapath?a=b',
      SCRIPT_FILENAME: path.join(ROOT, 'env.sh'),
      PATH_TRANSLATED: `${ROOT}/extrapath`,
    });
  });

  test('C-2: a script in a subdirectory: SCRIPT_NAME, PATH_INFO, PATH_TRANSLATED, SCRIPT_FILENAME, cwd = its directory', async () => {
    const env = envOf(await get(app, '/sub/tool.sh/a/b%20c'));
    expect(env).toEqual({
      SCRIPT_NAME: '/cgi-bin/sub/tool.sh',
      PATH_INFO: '/a/b c',
      PATH_TRANSLATED: `${ROOT}/a/b c`,
      SCRIPT_FILENAME: `${ROOT}/sub/tool.sh`,
      PWD: `${ROOT}/sub`,
    });
  });

  test('C-2: empty PATH_INFO → no PATH_TRANSLATED; doubled slashes collapse (Go ≥1.22 TestPathInfoDirRoot)', async () => {
    expect(envOf(await get(app, '/sub/tool.sh'))).toMatchObject({ PATH_INFO: '', PATH_TRANSLATED: 'unset' });
    expect(envOf(await get(app, '//sub//tool.sh//bar'))).toMatchObject({ SCRIPT_NAME: '/cgi-bin/sub/tool.sh', PATH_INFO: '/bar' });
    expect(envOf(await get(app, '/sub/tool.sh/bar/'))).toMatchObject({ PATH_INFO: '/bar/' });
  });

  test('C-1: dot segments are resolved before the split', async () => {
    expect(text(await get(app, '/sub/../hello.sh'))).toBe('Hello, CGI\n');
    expect(envOf(await get(app, '/sub/./tool.sh/x/../y'))).toMatchObject({ SCRIPT_NAME: '/cgi-bin/sub/tool.sh', PATH_INFO: '/y' });
  });

  test.each([
    ['/../../etc/passwd'],
    ['/%2e%2e/%2e%2e/etc/passwd'],
    ['/..%2f..%2fetc%2fpasswd'],
    ['/%2E%2E%2F%2E%2E%2Fetc/passwd'],
    ['/hello.sh/../../../etc/passwd'],
    ['/sub/../../hello.sh'],
  ])('§5.3 path traversal %s → 400 before any spawn', async (url) => {
    const before = app.stats().spawned;
    const res = await get(app, url);
    expect(res.status).toBe(400);
    expect(app.stats().spawned).toBe(before);
  });

  test('§5.3 %00 in the path → 400 (HTTP front, H-8) and a NUL from a gateway → 400 (C-1)', async () => {
    const nul = withEnviron(app, (env) => {
      env.PATH_INFO = '/hello.sh\0.txt';
    });
    expect((await get(nul, '/hello.sh')).status).toBe(400);
    await withHttp(app, async (port) => {
      expect(await rawStatus(port, 'GET /cgi-bin/hello.sh%00.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toBe(400);
      expect(await rawStatus(port, 'GET /cgi-bin/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toBe(400);
      expect(await rawStatus(port, 'GET /cgi-bin/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toBe(400);
    });
  });

  test('C-1: nothing there → 404; a directory without an index script → 403', async () => {
    expect((await get(app, '/missing.sh')).status).toBe(404);
    expect((await get(app, '/sub/missing/x')).status).toBe(404);
    expect((await get(app, '/noindex/')).status).toBe(403);
    expect((await get(app, '')).status).toBe(403);
    expect((await get(app, '/noindex/readme.txt')).status).toBe(403); // regular, not executable
  });

  test('C-1: a directory with an index script runs it (with or without the trailing slash)', async () => {
    expect(text(await get(app, '/dir/'))).toBe('index of dir: SCRIPT_NAME=/cgi-bin/dir/index.cgi PATH_INFO=\n');
    expect(text(await get(app, '/dir'))).toBe('index of dir: SCRIPT_NAME=/cgi-bin/dir/index.cgi PATH_INFO=\n');
    const { app: noIndex } = make();
    expect((await get(noIndex, '/dir/')).status).toBe(403);
  });

  test('C-1: a file without the exec bit → 403 (no interpreter configured)', async () => {
    expect((await get(app, '/noexec.sh')).status).toBe(403);
    expect((await get(app, '/plain.py')).status).toBe(403);
  });

  test('C-1 symlink policy: a link inside the root is followed; one escaping it → 403 (file and directory)', async () => {
    expect(text(await get(app, '/inside-link.sh'))).toBe('Hello, CGI\n');
    const before = app.stats().spawned;
    expect((await get(app, '/escape.sh')).status).toBe(403);
    expect((await get(app, '/escape-dir/passwd')).status).toBe(403);
    expect(app.stats().spawned).toBe(before);
  });

  test('C-1: the root boundary is a path-separator boundary (/x/cgi-bin-evil is not under /x/cgi-bin)', async () => {
    const base = tmp('gatewire-cgi-boundary-');
    fs.mkdirSync(path.join(base, 'cgi-bin'));
    fs.mkdirSync(path.join(base, 'cgi-bin-evil'));
    fs.writeFileSync(path.join(base, 'cgi-bin-evil', 'evil.sh'), '#!/bin/sh\nprintf "Content-Type: text/plain\\n\\nevil\\n"\n', { mode: 0o755 });
    fs.symlinkSync('../cgi-bin-evil/evil.sh', path.join(base, 'cgi-bin', 'evil.sh'));
    fs.symlinkSync('../cgi-bin-evil', path.join(base, 'cgi-bin', 'evil-dir'));
    const { app: boxed } = make({ root: path.join(base, 'cgi-bin') });
    expect((await get(boxed, '/evil.sh')).status).toBe(403);
    expect((await get(boxed, '/evil-dir/evil.sh')).status).toBe(403);
    expect(isUnder(`${base}/cgi-bin-evil/evil.sh`, `${base}/cgi-bin`)).toBe(false);
    expect(isUnder(`${base}/cgi-bin/x`, `${base}/cgi-bin`)).toBe(true);
    expect(isUnder('/anything', '/')).toBe(true);
    fs.rmSync(base, { recursive: true, force: true });
  });

  test('C-1 followSymlinks (Apache FollowSymLinks): off, a link out of the root → 403; on, the script outside runs, through a linked file or directory', async () => {
    const base = tmp('gatewire-cgi-follow-');
    fs.mkdirSync(path.join(base, 'cgi-bin'));
    fs.mkdirSync(path.join(base, 'opt', 'app', 'bin'), { recursive: true });
    fs.writeFileSync(path.join(base, 'opt', 'app', 'bin', 'app.cgi'), '#!/bin/sh\nprintf "Content-Type: text/plain\\n\\nSCRIPT_NAME=%s PATH_INFO=%s SCRIPT_FILENAME=%s PWD=%s\\n" "$SCRIPT_NAME" "$PATH_INFO" "$SCRIPT_FILENAME" "$(pwd -P)"\n', { mode: 0o755 });
    fs.writeFileSync(path.join(base, 'opt', 'app', 'bin', 'noexec.cgi'), '#!/bin/sh\necho no\n', { mode: 0o644 });
    const real = fs.realpathSync(base);
    fs.symlinkSync(path.join(real, 'opt', 'app', 'bin', 'app.cgi'), path.join(base, 'cgi-bin', 'app.cgi'));
    fs.symlinkSync(path.join(real, 'opt', 'app', 'bin', 'noexec.cgi'), path.join(base, 'cgi-bin', 'noexec.cgi'));
    fs.symlinkSync('../opt/app', path.join(base, 'cgi-bin', 'app'));
    const root = path.join(base, 'cgi-bin');
    try {
      const { app: off } = make({ root });
      expect((await get(off, '/app.cgi')).status).toBe(403);
      expect((await get(off, '/app/bin/app.cgi')).status).toBe(403);
      expect(off.stats().spawned).toBe(0);

      const { app: on } = make({ root, followSymlinks: true });
      expect(text(await get(on, '/app.cgi/x'))).toBe(`SCRIPT_NAME=/cgi-bin/app.cgi PATH_INFO=/x SCRIPT_FILENAME=${root}/app.cgi PWD=${real}/opt/app/bin\n`);
      // A symlinked directory in the middle of the path.
      expect(text(await get(on, '/app/bin/app.cgi'))).toBe(`SCRIPT_NAME=/cgi-bin/app/bin/app.cgi PATH_INFO= SCRIPT_FILENAME=${root}/app/bin/app.cgi PWD=${real}/opt/app/bin\n`);
      // Everything else is unchanged: the exec bit, a directory without an index script.
      expect((await get(on, '/noexec.cgi')).status).toBe(403);
      expect((await get(on, '/app/bin')).status).toBe(403);
      // The path as named must stay under the root: a `..` above it is still refused, nothing spawned.
      const before = on.stats().spawned;
      for (const url of ['/../opt/app/bin/app.cgi', '/%2e%2e/opt/app/bin/app.cgi', '/app/../../opt/app/bin/app.cgi', '/app.cgi/../../opt/app/bin/app.cgi']) expect((await get(on, url)).status).toBe(400);
      expect(on.stats().spawned).toBe(before);
      // A web server's SCRIPT_FILENAME naming the link under the root is honoured too.
      const viaName = withEnviron(on, (env) => {
        env.SCRIPT_FILENAME = `${root}/app.cgi`;
      });
      expect(text(await get(viaName, '/app.cgi'))).toMatch(/^SCRIPT_NAME=\/cgi-bin\/app\.cgi PATH_INFO= /);
    } finally {
      fs.rmSync(base, { recursive: true, force: true });
    }
  });

  test('C-1: a non-regular file (FIFO) → 403', async () => {
    const base = tmp('gatewire-cgi-fifo-');
    execFileSync('mkfifo', ['-m', '755', path.join(base, 'pipe.sh')]);
    const { app: fifo } = make({ root: base });
    expect((await get(fifo, '/pipe.sh')).status).toBe(403);
    fs.rmSync(base, { recursive: true, force: true });
  });

  test('C-1/C-6: a path segment that is not UTF-8 cannot name a file byte-exactly → 400', async () => {
    expect((await get(app, '/caf%E9.sh')).status).toBe(400);
  });

  test('C-1: resolveDotSegments', () => {
    expect(resolveDotSegments('/a/./b/../c//d/')).toEqual({ segments: ['a', 'c', 'd'], trailingSlash: true });
    expect(resolveDotSegments('/a/..')).toEqual({ segments: [], trailingSlash: true });
    expect(resolveDotSegments('')).toEqual({ segments: [], trailingSlash: false });
    expect(resolveDotSegments('/..')).toBeNull();
    expect(resolveDotSegments('/a/../../b')).toBeNull();
  });

  test('SCRIPT_FILENAME from a web server is honoured inside the root, with the mount split', async () => {
    const fcgi = withEnviron(app, (env) => {
      env.SCRIPT_FILENAME = `${ROOT}/sub/tool.sh`;
    });
    expect(envOf(await get(fcgi, '/sub/tool.sh/more'))).toMatchObject({ SCRIPT_NAME: '/cgi-bin/sub/tool.sh', PATH_INFO: '/more' });
  });

  test('SCRIPT_FILENAME with nginx fastcgi_split_path_info (SCRIPT_NAME = the script, PATH_INFO = the rest)', async () => {
    const split = withEnviron(app, (env) => {
      env.SCRIPT_FILENAME = `${ROOT}/sub/tool.sh`;
      env.SCRIPT_NAME = '/cgi-bin/sub/tool.sh';
      env.PATH_INFO = '/rest';
    });
    expect(envOf(await get(split, '/ignored'))).toMatchObject({ SCRIPT_NAME: '/cgi-bin/sub/tool.sh', PATH_INFO: '/rest' });
  });

  test('SCRIPT_FILENAME outside the root is ignored: the path selects, the outside file never runs', async () => {
    const outside = withEnviron(app, (env) => {
      env.SCRIPT_FILENAME = path.resolve(ROOT, '..', '..', 'cgi-bin', 'env.sh');
    });
    const res = await get(outside, '/hello.sh');
    expect(text(res)).toBe('Hello, CGI\n');
    const viaLink = withEnviron(app, (env) => {
      env.SCRIPT_FILENAME = `${ROOT}/escape.sh`;
    });
    expect((await get(viaLink, '/escape.sh')).status).toBe(403);
  });
});

// ---------------------------------------------------------------------------------------------

describe('C-3..C-8 environment', () => {
  test('C-3: built from scratch: no server variables except PATH, the allow-list and the extras (which win)', async () => {
    process.env.GATEWIRE_TEST_SECRET = 's3cret';
    process.env.GATEWIRE_TEST_INHERIT = 'inherited';
    try {
      const { app } = make({ inheritEnv: ['GATEWIRE_TEST_INHERIT', 'GATEWIRE_TEST_UNSET'], extraEnv: { EXTRA_ONE: '1', SERVER_SOFTWARE: 'override' }, path: '/usr/bin:/bin' });
      const env = envOf(await get(app, '/env.sh'));
      expect(env.GATEWIRE_TEST_SECRET).toBeUndefined();
      expect(env.HOME).toBeUndefined();
      expect(env.GATEWIRE_TEST_INHERIT).toBe('inherited');
      expect(env.GATEWIRE_TEST_UNSET).toBeUndefined();
      expect(env.EXTRA_ONE).toBe('1');
      expect(env.SERVER_SOFTWARE).toBe('override');
      expect(env.PATH).toBe('/usr/bin:/bin');
      // Exactly: the request's meta-variables plus those. (PWD and SHLVL come from sh itself.)
      const names = Object.keys(env).filter((k) => !['ARGC', 'PWD', 'SHLVL', '_', 'OLDPWD'].includes(k));
      for (const n of names) expect(n).toMatch(/^(HTTP_[A-Z0-9_]+|[A-Z_]+)$/);
      expect(names.filter((n) => !n.startsWith('HTTP_')).sort()).toEqual(
        [
          'DOCUMENT_ROOT', 'EXTRA_ONE', 'GATEWAY_INTERFACE', 'GATEWIRE_TEST_INHERIT', 'PATH', 'PATH_INFO', 'QUERY_STRING', 'REMOTE_ADDR', 'REMOTE_HOST',
          'REQUEST_METHOD', 'REQUEST_SCHEME', 'REQUEST_URI', 'SCRIPT_FILENAME', 'SCRIPT_NAME', 'SERVER_NAME', 'SERVER_PORT', 'SERVER_PROTOCOL', 'SERVER_SOFTWARE',
        ].sort(),
      );
    } finally {
      delete process.env.GATEWIRE_TEST_SECRET;
      delete process.env.GATEWIRE_TEST_INHERIT;
    }
  });

  const { app } = make();

  test('C-4: QUERY_STRING always set; CONTENT_LENGTH only with a body (also 0); GATEWAY_INTERFACE; REMOTE_HOST = REMOTE_ADDR', async () => {
    const env = envOf(await get(app, '/env.sh'));
    expect(env).toMatchObject({ QUERY_STRING: '', GATEWAY_INTERFACE: 'CGI/1.1', REMOTE_ADDR: '127.0.0.1', REMOTE_HOST: '127.0.0.1', REQUEST_METHOD: 'GET' });
    expect(env.CONTENT_LENGTH).toBeUndefined();
    expect(env.CONTENT_TYPE).toBeUndefined();
    expect(env.SERVER_SOFTWARE).toMatch(/^gatewire\//);
    const post = envOf(await get(app, '/env.sh', { method: 'POST', body: '', headers: { 'Content-Type': 'text/plain' } }));
    expect(post).toMatchObject({ CONTENT_LENGTH: '0', CONTENT_TYPE: 'text/plain', REQUEST_METHOD: 'POST' });
  });

  test('C-5 / §5.3 httpoxy: a Proxy header never becomes HTTP_PROXY (HTTP front and gateway params)', async () => {
    expect(envOf(await get(app, '/env.sh', { headers: { Proxy: 'http://evil:8080' } })).HTTP_PROXY).toBeUndefined();
    const gateway = withEnviron(app, (env) => {
      env.HTTP_PROXY = 'http://evil:8080';
    });
    expect((await get(gateway, '/var.sh?HTTP_PROXY')).body.length).toBe(0);
    await withHttp(app, async (port) => {
      const res = await httpRequest(port, { path: '/cgi-bin/var.sh?HTTP_PROXY', headers: { Proxy: 'http://evil:8080' } });
      expect(res.status).toBe(200);
      expect(res.body.length).toBe(0);
    });
  });

  test('C-5: Authorization and Proxy-Authorization are not passed unless enabled (CGIPassAuth)', async () => {
    const headers = { Authorization: 'Basic dTpw', 'Proxy-Authorization': 'Basic eDp5' };
    const env = envOf(await get(app, '/env.sh', { headers }));
    expect(env.HTTP_AUTHORIZATION).toBeUndefined();
    expect(env.HTTP_PROXY_AUTHORIZATION).toBeUndefined();
    const { app: pass } = make({ passAuthorization: true });
    expect(envOf(await get(pass, '/env.sh', { headers }))).toMatchObject({ HTTP_AUTHORIZATION: 'Basic dTpw', HTTP_PROXY_AUTHORIZATION: 'Basic eDp5' });
  });

  test('C-5: HTTP_* mapping, duplicates joined (Cookie with "; "), no HTTP_CONTENT_LENGTH/TYPE', async () => {
    const env = envOf(
      await get(app, '/env.sh', {
        method: 'POST',
        body: 'x',
        headers: [['X-Multi', 'a'], ['X-Multi', 'b'], ['Cookie', 'c=1'], ['Cookie', 'd=2'], ['Content-Type', 'text/plain']],
      }),
    );
    expect(env).toMatchObject({ HTTP_X_MULTI: 'a, b', HTTP_COOKIE: 'c=1; d=2', CONTENT_TYPE: 'text/plain', CONTENT_LENGTH: '1' });
    expect(env.HTTP_CONTENT_LENGTH).toBeUndefined();
    expect(env.HTTP_CONTENT_TYPE).toBeUndefined();
  });

  test('§5.3 a header name A=B via a gateway param HTTP_A=B is dropped (C-6: `=` would forge an entry)', async () => {
    const forged = withEnviron(app, (env) => {
      env['HTTP_A=B'] = 'x';
      env['PATH=/tmp/evil:'] = 'y';
    });
    const env = envOf(await get(forged, '/env.sh'));
    expect(env['HTTP_A']).toBeUndefined();
    expect(Object.keys(env).some((k) => k.includes('A=B') || k.startsWith('HTTP_A'))).toBe(false);
    expect(env.PATH).not.toContain('/tmp/evil');
  });

  test('C-6: header bytes arrive as sent: C3 A9 as C3 A9, a lone E9 (not UTF-8) as E9, FF FE as FF FE; only a NUL is a 400', async () => {
    for (const value of ['\xc3\xa9', '\xe9', 'caf\xe9', '\xff\xfe']) {
      const res = await get(app, '/var.sh?HTTP_X_A', { headers: { 'X-A': value } });
      expect([res.status, res.body.toString('latin1')]).toEqual([200, value]);
    }
    const { app: logged, logger } = make();
    const before = logged.stats().spawned;
    const nul = await get(logged, '/var.sh?HTTP_X_A', { headers: { 'X-A': 'caf\xe9\0' } });
    expect(nul.status).toBe(400);
    expect(logged.stats().spawned).toBe(before);
    expect(logger.lines.some((l) => /HTTP_X_A holds a NUL byte/.test(l.message))).toBe(true);
    await withHttp(app, async (port) => {
      for (const value of [[0xc3, 0xa9], [0xe9]]) {
        const raw = await rawResponse(port, Buffer.concat([Buffer.from('GET /cgi-bin/var.sh?HTTP_X_A HTTP/1.0\r\nHost: x\r\nX-A: '), Buffer.from(value), Buffer.from('\r\n\r\n')]));
        expect(raw.toString('latin1')).toMatch(/^HTTP\/1\.1 200 /);
        expect([...raw.subarray(raw.indexOf('\r\n\r\n') + 4)]).toEqual(value);
      }
    });
  });

  test('§5.3 a NUL in a header value from a gateway (FastCGI) → 400, nothing spawned', async () => {
    const before = app.stats().spawned;
    const res = await get(app, '/env.sh', { headers: { 'X-A': 'a\0b' } });
    expect(res.status).toBe(400);
    expect(app.stats().spawned).toBe(before);
  });

  test('C-7: rejectFunctionDefinitions refuses `() {` values; off by default', async () => {
    const headers = { 'X-Shock': '() { :; }; echo pwned' };
    expect((await get(app, '/env.sh', { headers })).status).toBe(200);
    const { app: strict } = make({ rejectFunctionDefinitions: true });
    expect((await get(strict, '/env.sh', { headers })).status).toBe(400);
  });

  test('C-8 / §5.3: ?-s gives no argv (CVE-2012-1823): the query is only in QUERY_STRING', async () => {
    expect(text(await get(app, '/args.sh?-s'))).toBe('argc=0\nargs=\nquery=-s\n');
    expect(text(await get(app, '/args.sh?-d+allow_url_include%3d1'))).toBe('argc=0\nargs=\nquery=-d+allow_url_include%3d1\n');
  });

  test('bad option values are refused at creation (C-6 names, timeouts, root)', () => {
    expect(() => createCgiBinApp({ root: ROOT, inheritEnv: ['A=B'] })).toThrow(/inheritEnv/);
    expect(() => createCgiBinApp({ root: ROOT, extraEnv: { 'X=Y': '1' } })).toThrow(/extraEnv/);
    expect(() => createCgiBinApp({ root: ROOT, extraEnv: { X: 'a\0b' } })).toThrow(/extraEnv\.X/);
    expect(() => createCgiBinApp({ root: ROOT, headersTimeout: -1 })).toThrow(/headersTimeout/);
    expect(() => createCgiBinApp({ root: ROOT, index: ['../x'] })).toThrow(/index/);
    expect(() => createCgiBinApp({ root: path.join(ROOT, 'hello.sh') })).toThrow(/directory/);
    expect(() => createCgiBinApp({ root: path.join(ROOT, 'does-not-exist') })).toThrow(/ENOENT/);
    expect(CGI_BIN_DEFAULTS).toMatchObject({ headersTimeout: 60000, idleTimeout: 60000, totalTimeout: 300000, exitGrace: 1000, maxStderrBytes: 65536, maxLocalRedirects: 5 });
  });
});

// ---------------------------------------------------------------------------------------------

describe('C-9..C-11 request body', () => {
  const spoolDir = tmp('gatewire-cgi-spool-');
  const { app } = make({ spoolMemoryBytes: 1024, maxBodyBytes: 256 * 1024, spoolDir });
  afterAll(() => fs.rmSync(spoolDir, { recursive: true, force: true }));

  test('C-10: a known-length body is streamed to stdin; CONTENT_LENGTH as sent', async () => {
    const body = Buffer.alloc(200_000, 'b');
    const res = await get(app, '/echo.sh', { method: 'POST', body });
    expect(header(res, 'x-content-length')).toEqual(['200000']);
    expect(res.body.equals(body)).toBe(true);
  });

  test('C-9: a chunked body (memory spool) gets a CONTENT_LENGTH', async () => {
    await withHttp(app, async (port) => {
      const res = await httpRequest(port, { method: 'POST', path: '/cgi-bin/echo.sh', body: 'chunked body', chunked: true });
      expect(res.status).toBe(200);
      expect(res.headers['x-content-length']).toEqual(['12']);
      expect(res.body.toString()).toBe('chunked body');
    });
  });

  test('C-9: a chunked body past the memory limit is spooled to an unlinked temp file, byte-exact', async () => {
    const body = Buffer.alloc(100_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
    await withHttp(app, async (port) => {
      const res = await httpRequest(port, { method: 'POST', path: '/cgi-bin/echo.sh', body, chunked: true });
      expect(res.headers['x-content-length']).toEqual(['100000']);
      expect(res.body.equals(body)).toBe(true);
    });
    expect(fs.readdirSync(spoolDir)).toEqual([]);
  });

  test('C-9: over the limit → 413 (chunked and declared lengths), nothing spawned', async () => {
    const before = app.stats().spawned;
    await withHttp(app, async (port) => {
      const res = await httpRequest(port, { method: 'POST', path: '/cgi-bin/echo.sh', body: Buffer.alloc(300_000), chunked: true });
      expect(res.status).toBe(413);
    });
    const declared = await get(app, '/echo.sh', { method: 'POST', body: Buffer.alloc(300_000) });
    expect(declared.status).toBe(413);
    expect(app.stats().spawned).toBe(before);
    expect(fs.readdirSync(spoolDir)).toEqual([]);
  });

  test('C-10: no body → stdin is /dev/null: a script reading it gets EOF at once', async () => {
    expect(text(await get(app, '/stdin-eof.sh'))).toBe('stdin=0\n');
  });

  test('§5.3 C-11: a script that never reads a 10 MB POST body and exits: EPIPE handled, response sent, server fine', async () => {
    const { app: big } = make({ maxBodyBytes: 20 * 1024 * 1024 });
    await withHttp(big, async (port) => {
      const res = await httpRequest(port, { method: 'POST', path: '/cgi-bin/epipe.sh', body: Buffer.alloc(10 * 1024 * 1024, 'p') });
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe('not reading\n');
      const again = await httpRequest(port, { path: '/cgi-bin/hello.sh' });
      expect(again.body.toString()).toBe('Hello, CGI\n');
    });
    const viaInject = await get(big, '/epipe.sh', { method: 'POST', body: Buffer.alloc(10 * 1024 * 1024, 'q') });
    expect(text(viaInject)).toBe('not reading\n');
  });

  test('§5.3 C-10: a script writing 1 MB before reading a 1 MB body does not deadlock', async () => {
    const { app: big } = make({ maxBodyBytes: 4 * 1024 * 1024 });
    const body = Buffer.alloc(1024 * 1024, 'i');
    const res = await get(big, '/write-before-read.sh', { method: 'POST', body });
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(1024 * 1024 + '\nread=1048576\n'.length);
    expect(text(res).endsWith('\nread=1048576\n')).toBe(true);
    await withHttp(big, async (port) => {
      const viaHttp = await httpRequest(port, { method: 'POST', path: '/cgi-bin/write-before-read.sh', body });
      expect(viaHttp.body.toString('latin1').endsWith('\nread=1048576\n')).toBe(true);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('C-12..C-18 process control', () => {
  test('C-12: the script leads its own process group and session (detached)', async () => {
    const { app } = make();
    const [pid, pgid, sid] = text(await get(app, '/pid.sh')).trim().split(/\s+/).map(Number);
    expect(pid).toBeGreaterThan(1);
    expect(pgid).toBe(pid);
    expect(sid).toBe(pid);
    expect(pid).not.toBe(process.pid);
  });

  test('C-18: umask 022 by default (or as configured) without touching the server\'s; uid/gid switch when root', async () => {
    const serverMask = process.umask(0o077);
    try {
      const { app } = make();
      expect(text(await get(app, '/id.sh'))).toMatch(/ umask=0?022\n$/);
      const { app: strict } = make({ umask: 0o027 });
      expect(text(await get(strict, '/id.sh'))).toMatch(/ umask=0?027\n$/);
      expect(process.umask(0o077)).toBe(0o077);
    } finally {
      process.umask(serverMask);
    }
    if (process.getuid?.() === 0) {
      const { app: nobody } = make({ uid: 65534, gid: 65534 });
      expect(text(await get(nobody, '/id.sh'))).toMatch(/^uid=65534 gid=65534 /);
    } else {
      const { app: nobody } = make({ uid: 0, gid: 0 });
      expect((await get(nobody, '/id.sh')).status).toBe(500); // EPERM: not allowed to switch
    }
  });

  test('C-13: a spawn error (missing #! interpreter) → 500, cause logged, not leaked to the client', async () => {
    const base = tmp('gatewire-cgi-spawn-');
    fs.writeFileSync(path.join(base, 'broken.sh'), '#!/nonexistent/interpreter\n', { mode: 0o755 });
    const { app, logger } = make({ root: base });
    const res = await get(app, '/broken.sh');
    expect(res.status).toBe(500);
    expect(text(res)).not.toContain('nonexistent');
    expect(text(res)).not.toContain('ENOENT');
    expect(logger.lines.some((l) => l.level === 'error' && /ENOENT/.test(l.message))).toBe(true);
    fs.rmSync(base, { recursive: true, force: true });
  });

  test('§5.3 C-14: `sleep 600` → 504 at the header timeout, and the whole group is killed', async () => {
    const { app, logger } = make({ headersTimeout: 300 });
    const res = await get(app, '/sleep.sh');
    expect(res.status).toBe(504);
    const pid = await pidFromLog(logger, /stderr: sleeping pid/);
    expect(await eventually(() => groupMembers(pid).length === 0)).toBe(true);
    expect(logger.lines.some((l) => /timed out before returning headers/.test(l.message))).toBe(true);
  });

  test('C-14: a script ignoring SIGTERM is killed with SIGKILL after the grace period', async () => {
    const { app, logger } = make({ headersTimeout: 200, killGrace: 200 });
    expect((await get(app, '/trap-term.sh')).status).toBe(504);
    const pid = await pidFromLog(logger, /stderr: ignoring TERM/);
    expect(await eventually(() => groupMembers(pid).length === 0)).toBe(true);
  });

  test('C-14/C-29: idle output timeout after the head → the response is truncated, the group killed', async () => {
    const { app, logger } = make({ idleTimeout: 300 });
    const res = await get(app, '/stall.sh');
    expect(res.status).toBe(200);
    expect(res.aborted).toBe(true);
    expect(text(res)).toBe('partial\n');
    const pid = await pidFromLog(logger, /stopped: idle timeout/);
    expect(await eventually(() => groupMembers(pid).length === 0)).toBe(true);
  });

  test('C-14: total timeout stops a script that keeps writing', async () => {
    const { app, logger } = make({ totalTimeout: 400 });
    const res = await get(app, '/slow.sh');
    expect(res.aborted).toBe(true);
    expect(text(res).startsWith('first\n')).toBe(true);
    const pid = await pidFromLog(logger, /stopped: total timeout/);
    expect(await eventually(() => groupMembers(pid).length === 0)).toBe(true);
  });

  test('C-14: a client abort (inject and HTTP) kills the group', async () => {
    const { app, logger } = make();
    const res = await get(app, '/slow.sh', { abortAfterBytes: 1 });
    expect(res.aborted).toBe(true);
    const pid = await pidFromLog(logger, /stopped: (client closed|response cut short)/);
    expect(await eventually(() => groupMembers(pid).length === 0)).toBe(true);

    const { app: app2, logger: logger2 } = make();
    await withHttp(app2, async (port) => {
      const r = await httpRequest(port, { path: '/cgi-bin/slow.sh', abortAfterBytes: 1 });
      expect(r.truncated).toBe(true);
      const pid2 = await pidFromLog(logger2, /stopped: (client closed|response cut short)/);
      expect(await eventually(() => groupMembers(pid2).length === 0)).toBe(true);
    });
  });

  test('§5.3 C-15: `sleep 60 &` then exit → the response completes after the grace period, the child is killed', async () => {
    const { app } = make({ exitGrace: 200 });
    const res = await get(app, '/background.sh');
    expect(res.status).toBe(200);
    expect(res.aborted).toBe(false);
    const m = /background pid (\d+)/.exec(text(res));
    expect(m).not.toBeNull();
    expect(await eventually(() => !isAlive(Number(m?.[1])))).toBe(true);
  });

  test('C-15: the response ends at stdout EOF; a script running on after closing stdout is stopped after the grace period', async () => {
    const { app, logger } = make({ exitGrace: 200 });
    const res = await get(app, '/close-stdout.sh');
    expect(text(res)).toBe('closed early\n');
    expect(res.aborted).toBe(false);
    await eventually(() => app.stats().running === 0);
    expect(app.stats().running).toBe(0);
    expect(logger.lines.some((l) => /died from|stopped/.test(l.message))).toBe(false);
  });

  test('C-15: a background child that released every pipe does not outlive the run', async () => {
    const { app } = make();
    const res = await get(app, '/daemon.sh');
    const m = /daemon (\d+)/.exec(text(res));
    expect(m).not.toBeNull();
    expect(await eventually(() => !isAlive(Number(m?.[1])))).toBe(true);
  });

  test('C-15/C-17: a child escaping the group with setsid cannot hold the run (or its slot) open', async () => {
    const { app } = make({ exitGrace: 100, killGrace: 100 });
    const res = await get(app, '/escape-session.sh');
    expect(res.status).toBe(200);
    expect(res.aborted).toBe(false);
    const escaped = Number(/escaped (\d+)/.exec(text(res))?.[1]);
    try {
      expect(await eventually(() => app.stats().running === 0)).toBe(true);
    } finally {
      // Outside the host's reach by design; the test cleans up after itself.
      if (escaped > 1 && isAlive(escaped)) process.kill(escaped, 'SIGKILL');
    }
  });

  test('§5.3 C-16: 10 MB on stderr is drained; the log keeps at most maxStderrBytes, tagged with script, pid, request id', async () => {
    const { app, logger } = make({ maxStderrBytes: 4096 });
    const res = await get(app, '/stderr-flood.sh');
    expect(text(res)).toBe('flooded\n');
    await eventually(() => logger.lines.some((l) => /stderr capped/.test(l.message)));
    const stderrLines = logger.lines.filter((l) => l.message.startsWith('cgi stderr: '));
    const logged = stderrLines.reduce((n, l) => n + l.message.length - 'cgi stderr: '.length + 1, 0);
    expect(logged).toBeLessThanOrEqual(4096 + 200);
    expect(stderrLines.some((l) => /stderr capped: \d+ more bytes/.test(l.message))).toBe(true);
    const first = stderrLines[0] as LogLine;
    expect(first.message).toBe('cgi stderr: stderr flood line');
    expect(first.meta).toMatchObject({ script: '/cgi-bin/stderr-flood.sh', request_id: res.requestId });
    expect(typeof first.meta?.pid).toBe('number');
  });

  test('C-17: a concurrency cap with a bounded queue: beyond it 503 with Retry-After', async () => {
    const { app } = make({ maxProcesses: 1, maxQueue: 1 });
    const results = await Promise.all([get(app, '/nap.sh'), get(app, '/nap.sh'), get(app, '/nap.sh')]);
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 503]);
    const refused = results.find((r) => r.status === 503) as InjectResponse;
    expect(header(refused, 'retry-after')).toEqual(['1']);
    expect(app.stats()).toMatchObject({ queued: 0 });
  });

  test('C-17: a queued request waits at most queueTimeout', async () => {
    const { app } = make({ maxProcesses: 1, maxQueue: 4, queueTimeout: 100 });
    const [a, b] = await Promise.all([get(app, '/nap.sh?0.6'), get(app, '/nap.sh')]);
    expect(a.status).toBe(200);
    expect(b.status).toBe(503);
  });

  test('close(): running groups are stopped and queued requests refused', async () => {
    const { app, logger } = make({ maxProcesses: 1, maxQueue: 4 });
    const running = get(app, '/slow.sh');
    const queued = get(app, '/hello.sh');
    await eventually(() => app.stats().running === 1 && app.stats().queued === 1);
    await app.close();
    expect((await queued).status).toBe(503);
    const first = await running;
    // Stopped before its head: 503; after it: a truncated response.
    expect(first.status === 503 || first.aborted).toBe(true);
    const pid = await pidFromLog(logger, /stopped: server shutting down/);
    expect(groupMembers(pid)).toEqual([]);
    expect((await get(app, '/hello.sh')).status).toBe(503);
  });
});

// ---------------------------------------------------------------------------------------------

describe('C-19..C-30 script output', () => {
  const { app, logger } = make();

  test.each([
    ['status-line.sh', '§5.3 an HTTP status line from a non-NPH script'],
    ['bad-status.sh', '§5.3 Status: 2000'],
    ['bad-status.sh?abc', '§5.3 Status: abc'],
    ['bad-status.sh?99', 'C-22 Status: 99'],
    ['bad-status.sh?103', 'C-22 Status: 103 (interim)'],
    ['no-colon.sh', 'C-20 a line without a colon'],
    ['bare-cr.sh', '§5.3 a header value with a bare CR'],
    ['obs-fold.sh', 'C-20 a continuation line'],
    ['transfer-encoding.sh', '§5.3 Transfer-Encoding: chunked'],
    ['many-headers.sh', '§5.3 100 000 header lines'],
    ['long-line.sh', 'C-19 a 9000-byte header line'],
    ['no-output.sh', 'C-21 no output'],
    ['no-blank-line.sh', 'C-21 EOF before the empty line'],
    ['nph-te.sh', 'C-28 an NPH script with Transfer-Encoding'],
  ])('%s → 502 (%s)', async (script) => {
    const res = await get(app, `/${script}`);
    expect(res.status).toBe(502);
    expect(text(res)).toMatch(/^Bad Gateway\nrequest id: \S+\n$/);
  });

  test('C-22: Status matched case-insensitively, reason kept', async () => {
    const res = await get(app, '/status.sh');
    expect(res.status).toBe(404);
    expect(res.reason).toBe('Nothing Here');
    expect(text(res)).toBe('missing\n');
  });

  test('§5.3 C-25: Content-Length: 5 with 10 body bytes → the length is dropped, 10 bytes delivered; hop-by-hop removed', async () => {
    const res = await get(app, '/content-length-lie.sh');
    expect(text(res)).toBe('0123456789');
    expect(header(res, 'content-length')).not.toContain('5');
    expect(header(res, 'connection')).toEqual([]);
    await withHttp(app, async (port) => {
      const r = await httpRequest(port, { path: '/cgi-bin/content-length-lie.sh' });
      expect(r.body.toString()).toBe('0123456789');
      expect(r.truncated).toBe(false);
    });
  });

  test('C-26: repeated Set-Cookie and other fields stay separate and in order; CRLF accepted', async () => {
    const res = await get(app, '/cookies.sh');
    expect(header(res, 'set-cookie')).toEqual(['a=1', 'b=2']);
    expect(header(res, 'x-dup')).toEqual(['one', 'two']);
  });

  test('C-24: a body without Content-Type passes unchanged, not sniffed, and is logged', async () => {
    const res = await get(app, '/no-content-type.sh');
    expect(res.status).toBe(200);
    expect(header(res, 'content-type')).toEqual([]);
    expect(text(res)).toBe('<html>not sniffed</html>\n');
    expect(logger.lines.some((l) => /without Content-Type/.test(l.message))).toBe(true);
  });

  test('E-1/C-6: non-UTF-8 header values from a script reach the client byte for byte', async () => {
    const res = await get(app, '/header-latin1.sh');
    expect(header(res, 'x-raw')).toEqual(['caf\xe9 \xff']);
    await withHttp(app, async (port) => {
      const raw = await rawResponse(port, 'GET /cgi-bin/header-latin1.sh HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      expect(raw.includes(Buffer.from([0x58, 0x2d, 0x52, 0x61, 0x77, 0x3a, 0x20, 0x63, 0x61, 0x66, 0xe9, 0x20, 0xff, 0x0d, 0x0a]))).toBe(true);
    });
  });

  test('C-23: a local redirect is re-dispatched internally as GET, without the request body', async () => {
    const res = await get(app, '/location-local.sh', { method: 'POST', body: 'dropped' });
    expect(res.status).toBe(200);
    expect(text(res)).toBe('GET');
    expect(header(res, 'location')).toEqual([]);
  });

  test('C-23: the re-dispatched request gets REDIRECT_STATUS=200 and REDIRECT_URL (Apache); a web server\'s REDIRECT_STATUS is kept', async () => {
    const base = tmp('gatewire-cgi-redirect-');
    fs.writeFileSync(path.join(base, 'redirect.sh'), '#!/bin/sh\nprintf "Location: %s/dump.sh/p?q=1\\n\\n" "${SCRIPT_NAME%/*}"\n', { mode: 0o755 });
    fs.copyFileSync(path.join(ROOT, 'env.sh'), path.join(base, 'dump.sh'));
    fs.chmodSync(path.join(base, 'dump.sh'), 0o755);
    try {
      const { app: redirecting } = make({ root: base });
      const direct = envOf(await get(redirecting, '/dump.sh'));
      expect(direct.REDIRECT_STATUS).toBeUndefined();
      expect(direct.REDIRECT_URL).toBeUndefined();
      const res = await get(redirecting, '/redirect.sh?first');
      expect(res.status).toBe(200);
      expect(envOf(res)).toMatchObject({ REDIRECT_STATUS: '200', REDIRECT_URL: '/cgi-bin/redirect.sh', SCRIPT_NAME: '/cgi-bin/dump.sh', PATH_INFO: '/p', QUERY_STRING: 'q=1' });
      // Over the HTTP front too.
      await withHttp(redirecting, async (port) => {
        const raw = (await rawResponse(port, 'GET /cgi-bin/redirect.sh HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toString('latin1');
        expect(raw).toMatch(/^HTTP\/1\.1 200 /);
        expect(raw).toMatch(/^REDIRECT_STATUS=200$/m);
        expect(raw).toMatch(/^REDIRECT_URL=\/cgi-bin\/redirect\.sh$/m);
      });
      const fromWebServer = withEnviron(redirecting, (env) => {
        env.REDIRECT_STATUS = '404';
      });
      expect(envOf(await get(fromWebServer, '/redirect.sh')).REDIRECT_STATUS).toBe('404');
    } finally {
      fs.rmSync(base, { recursive: true, force: true });
    }
  });

  test('C-23: HEAD stays HEAD through a local redirect; C-27 no body for HEAD', async () => {
    const { app: app2 } = make();
    const probe = withEnviron(app2, () => undefined);
    const res = await get(probe, '/location-local.sh', { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(0);
    const head = await get(app, '/hello.sh', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect(header(head, 'content-type')).toEqual(['text/plain']);
  });

  test('§5.3 Location: /x with body bytes → 302 Found with the Location and the body', async () => {
    const res = await get(app, '/location-local-body.sh');
    expect(res.status).toBe(302);
    expect(header(res, 'location')).toEqual(['/elsewhere']);
    expect(text(res)).toBe('see /elsewhere\n');
  });

  test('C-23: an absolute Location without Status → 302, the script body discarded', async () => {
    const res = await get(app, '/location-absolute.sh');
    expect(res.status).toBe(302);
    expect(header(res, 'location')).toEqual(['http://example.com/target?x=1']);
    expect(res.body.length).toBe(0);
  });

  test('§5.3 Location: //evil.example/ is not a local redirect → 302', async () => {
    const res = await get(app, '/location-netpath.sh');
    expect(res.status).toBe(302);
    expect(header(res, 'location')).toEqual(['//evil.example/']);
  });

  test('C-23: Location with an explicit Status passes through as a document', async () => {
    const res = await get(app, '/location-status.sh');
    expect(res.status).toBe(301);
    expect(header(res, 'location')).toEqual(['/moved']);
    expect(text(res)).toBe('moved\n');
  });

  test('C-23: a redirect loop stops at the limit → 500', async () => {
    const { app: loop, logger: log2 } = make({ maxLocalRedirects: 3 });
    const res = await get(loop, '/location-loop.sh');
    expect(res.status).toBe(500);
    expect(loop.stats().spawned).toBe(4);
    expect(log2.lines.some((l) => /more than 3 local redirects/.test(l.message))).toBe(true);
  });

  test('C-23: a local redirect outside the mount → 302 by default, or the configured localRedirectApp', async () => {
    const res = await get(app, '/location-outside.sh');
    expect(res.status).toBe(302);
    expect(header(res, 'location')).toEqual(['/outside/page?y=2']);
    const seen: Record<string, unknown> = {};
    const { app: routed } = make({
      localRedirectApp: (env, sr) => {
        Object.assign(seen, { method: env.REQUEST_METHOD, path: env.PATH_INFO, query: env.QUERY_STRING, uri: env.REQUEST_URI, cl: env.CONTENT_LENGTH });
        sr('200 OK', [['Content-Type', 'text/plain']]);
        return ['outside app'];
      },
    });
    const r2 = await get(routed, '/location-outside.sh', { method: 'POST', body: 'x' });
    expect(text(r2)).toBe('outside app');
    expect(seen).toEqual({ method: 'GET', path: '/outside/page', query: 'y=2', uri: '/outside/page?y=2', cl: undefined });
  });

  test('C-28: an NPH script where the front frames the response (inject, gateway fronts): its status line, fields and body, streamed; framing fields left to the front', async () => {
    const res = await get(app, '/nph-hello.sh');
    expect(res.status).toBe(203);
    expect(res.reason).toBe('Straight From The Script');
    expect(header(res, 'x-nph')).toEqual(['yes']);
    expect(header(res, 'connection')).toEqual([]);
    expect(text(res)).toBe('nph body\nnph second chunk\n');
  });

  test('C-28: an NPH script on the HTTP front: its output byte for byte (Connection: keep-alive of the script included), then the connection closes', async () => {
    await withHttp(app, async (port) => {
      const raw = (await rawResponse(port, 'GET /cgi-bin/nph-hello.sh HTTP/1.1\r\nHost: x\r\n\r\n')).toString('latin1');
      expect(raw).toBe('HTTP/1.1 203 Straight From The Script\r\nContent-Type: text/plain\r\nX-Nph: yes\r\nConnection: keep-alive\r\n\r\nnph body\nnph second chunk\n');
    });
  });

  test('C-29: a script dying from a signal after its head → the client sees a truncated response', async () => {
    const res = await get(app, '/crash.sh');
    expect(res.status).toBe(200);
    expect(res.aborted).toBe(true);
    await withHttp(app, async (port) => {
      // Chunked framing without the terminal chunk, then a reset.
      const raw = (await rawResponse(port, 'GET /cgi-bin/crash.sh HTTP/1.1\r\nHost: x\r\n\r\n')).toString('latin1');
      expect(raw).toMatch(/^HTTP\/1\.1 200 /);
      expect(raw).toContain('part of the body\n');
      expect(raw.endsWith('0\r\n\r\n')).toBe(false);
    });
  });

  test('C-29: a non-zero exit after complete output is logged only', async () => {
    const res = await get(app, '/exit-nonzero.sh');
    expect(res.status).toBe(200);
    expect(res.aborted).toBe(false);
    expect(text(res)).toBe('complete\n');
    expect(await eventually(() => logger.lines.some((l) => /exit-nonzero\.sh exited with status 3/.test(l.message)))).toBe(true);
  });

  test('C-30: HTTP/1.1 streams an open-ended body chunked; HTTP/1.0 close-delimited; a body complete with the head gets a Content-Length', async () => {
    await withHttp(app, async (port) => {
      const r11 = (await rawResponse(port, 'GET /cgi-bin/big.sh HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toString('latin1');
      expect(r11).toMatch(/\r\nTransfer-Encoding: chunked\r\n/i);
      const r10 = await rawResponse(port, 'GET /cgi-bin/big.sh HTTP/1.0\r\nHost: x\r\n\r\n');
      const head10 = r10.subarray(0, r10.indexOf('\r\n\r\n')).toString('latin1');
      expect(head10).not.toMatch(/transfer-encoding|content-length/i);
      expect(r10.length - r10.indexOf('\r\n\r\n') - 4).toBe(4 * 1024 * 1024);
      const small = await httpRequest(port, { path: '/cgi-bin/hello.sh' });
      expect(small.body.toString()).toBe('Hello, CGI\n');
      // Either framing is correct; a complete small body usually goes out with its length.
      expect(small.headers['content-length'] ?? small.headers['transfer-encoding']).toBeDefined();
    });
  });

  test.each([['stream-gate.sh'], ['nph-stream-gate.sh']])('C-30/C-28: %s: the body reaches the client as it is produced', async (script) => {
    const dir = tmp('gatewire-cgi-gate-');
    const gate = path.join(dir, 'gate');
    try {
      await withHttp(app, async (port) => {
        const body = await new Promise<string>((resolve, reject) => {
          const req = http.get({ host: '127.0.0.1', port, path: `/cgi-bin/${script}?${gate}` }, (res) => {
            let got = '';
            res.setEncoding('latin1');
            res.on('data', (c: string) => {
              got += c;
              // "second" is only written once the gate exists, and the gate only opens after
              // "first" arrived here: a buffering host would deliver both after the 10 s wait.
              if (got === 'first\n' && !fs.existsSync(gate)) fs.writeFileSync(gate, '');
            });
            res.on('end', () => resolve(got));
          });
          req.on('error', reject);
        });
        expect(body).toBe('first\nsecond\n');
        expect(fs.existsSync(gate)).toBe(true); // "first" arrived on its own
      });
      expect(logger.lines.some((l) => new RegExp(`${script.replace('.', '\\.')} stopped`).test(l.message))).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('backpressure: a 4 MiB body read slowly arrives intact', async () => {
    await withHttp(app, async (port) => {
      const body = await slowRead(port, '/cgi-bin/big.sh');
      expect(body.length).toBe(4 * 1024 * 1024);
      expect(body.every((b) => b === 0)).toBe(true);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('interpreters and demo scripts', () => {
  test('C-1: a non-executable .py runs through python3 when .py is configured', async () => {
    const { app } = make({ interpreters: { '.py': CGI_INTERPRETERS['.py'] as { command: string } } });
    const res = await get(app, '/plain.py');
    expect(res.status).toBe(200);
    expect(text(res)).toBe('python via interpreter: /cgi-bin/plain.py argv=1\n');
    expect((await get(app, '/noexec.sh')).status).toBe(403);
  });

  test('.php through php-cgi with REDIRECT_STATUS=200 (500 when php-cgi is not installed)', async () => {
    const { app } = make({ interpreters: CGI_INTERPRETERS });
    const res = await get(app, '/page.php?q=42');
    if (which('php-cgi') === undefined) {
      expect(res.status).toBe(500);
      return;
    }
    expect(res.status).toBe(200);
    expect(text(res)).toMatch(/^php \d+ SCRIPT_NAME=\/cgi-bin\/page\.php q=42\n$/);
  });

  test('cgi-bin/ demo scripts (sh, perl, python, nph) answer', async () => {
    const demo = createCgiBinApp({ root: path.resolve(__dirname, '..', 'cgi-bin'), exitGrace: 100 });
    apps.push(demo);
    expect(text(await get(demo, '/hello.sh'))).toBe('Hello from hello.sh\n');
    expect(text(await get(demo, '/hello.pl?name=Ada'))).toMatch(/^Hello, Ada, from Perl v5/);
    expect(text(await get(demo, '/hello.py?x=1', { method: 'POST', body: 'abc' }))).toMatch(/method=POST query=\{'x': \['1'\]\} body=3 bytes/);
    expect(text(await get(demo, '/env.sh', { method: 'POST', body: 'hi' }))).toContain('== body (2 bytes)\nhi\n');
    const nph = await get(demo, '/nph-clock.sh', { abortAfterBytes: 9 });
    expect(nph.status).toBe(200);
    expect(text(nph)).toMatch(/^\d\d:\d\d:\d\d\n/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('through the FastCGI front (nginx fastcgi.conf params)', () => {
  /** nginx's fastcgi.conf for `location /cgi-bin/`: SCRIPT_NAME = the whole $uri, SCRIPT_FILENAME = $document_root$uri. */
  function nginxParams(uri: string, extra: Array<[string, string]> = []): Array<[string, string]> {
    const q = uri.indexOf('?');
    const path = q === -1 ? uri : uri.slice(0, q);
    return [
      ['SCRIPT_FILENAME', `${path.startsWith('/cgi-bin/') ? ROOT : '/var/www/html'}${path.replace(/^\/cgi-bin/, '')}`],
      ['QUERY_STRING', q === -1 ? '' : uri.slice(q + 1)],
      ['REQUEST_METHOD', 'GET'],
      ['CONTENT_TYPE', ''],
      ['CONTENT_LENGTH', ''],
      ['SCRIPT_NAME', path],
      ['REQUEST_URI', uri],
      ['DOCUMENT_URI', path],
      ['DOCUMENT_ROOT', '/var/www/html'],
      ['SERVER_PROTOCOL', 'HTTP/1.1'],
      ['GATEWAY_INTERFACE', 'CGI/1.1'],
      ['SERVER_SOFTWARE', 'nginx/1.22.1'],
      ['REMOTE_ADDR', '192.0.2.7'],
      ['REMOTE_PORT', '50000'],
      ['SERVER_ADDR', '127.0.0.1'],
      ['SERVER_PORT', '80'],
      ['SERVER_NAME', 'example.test'],
      ['HTTP_HOST', 'example.test'],
      ...extra,
    ];
  }

  /** One FastCGI request; returns the concatenated STDOUT (a CGI response) and the app status. */
  function fcgi(port: number, params: Array<[string, string]>, body?: Buffer): Promise<{ stdout: string; appStatus: number }> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      const out: Buffer[] = [];
      const decoder = new RecordDecoder((type, _id, content) => {
        if (type === RecordType.Stdout) out.push(Buffer.from(content));
        if (type === RecordType.EndRequest) {
          socket.end();
          resolve({ stdout: Buffer.concat(out).toString('latin1'), appStatus: content.readUInt32BE(0) });
        }
      });
      socket.on('data', (c) => decoder.push(c));
      socket.on('error', reject);
      const parts: Uint8Array[] = [encodeBeginRequest(1), encodeParamsStream(1, params)];
      if (body !== undefined) encodeStdin(1, body, parts);
      parts.push(encodeEndOfStream(RecordType.Stdin, 1));
      socket.write(Buffer.concat(parts));
    });
  }

  test('C-28: an NPH script behind a web server is re-served as a normal response: a Status: line, its fields and body, the framing the front\'s', async () => {
    const { app } = make({ root: nphRoot() });
    const options = resolveOptions({ fastcgi: ['127.0.0.1:0'], mount: MOUNT }, {});
    const gateway = new Gateway({ app, interface: 'environ' }, options, captureLogger());
    const [bound] = await gateway.listen();
    const port = (bound?.address as { port: number }).port;
    try {
      const res = await fcgi(port, nginxParams('/cgi-bin/nph-raw.sh'));
      // The script's length is not trusted (C-25): ours when the body was complete with the head.
      expect(res.stdout).toMatch(/^Status: 200 OK\r\nX-Raw: yes\r\n(Content-Length: 5\r\n)?\r\nhello$/);
      expect(res.appStatus).toBe(0);
    } finally {
      await gateway.close(1000);
    }
  });

  test('a script runs with the mount split repaired (E-5.2), SCRIPT_FILENAME honoured, httpoxy param dropped', async () => {
    const { app } = make();
    const options = resolveOptions({ fastcgi: ['127.0.0.1:0'], mount: MOUNT }, {});
    const gateway = new Gateway({ app, interface: 'environ' }, options, captureLogger());
    const [bound] = await gateway.listen();
    const port = (bound?.address as { port: number }).port;
    try {
      const res = await fcgi(port, nginxParams('/cgi-bin/env.sh/extra?x=1', [['HTTP_PROXY', 'http://evil:8080']]));
      expect(res.stdout).toMatch(/^Status: 200 OK\r\n/);
      const env = envOf({ body: Buffer.from(res.stdout.slice(res.stdout.indexOf('\r\n\r\n') + 4), 'latin1') });
      expect(env).toMatchObject({
        SCRIPT_NAME: '/cgi-bin/env.sh',
        PATH_INFO: '/extra',
        QUERY_STRING: 'x=1',
        SCRIPT_FILENAME: `${ROOT}/env.sh`,
        DOCUMENT_ROOT: '/var/www/html',
        PATH_TRANSLATED: '/var/www/html/extra',
        SERVER_SOFTWARE: 'nginx/1.22.1',
        REMOTE_ADDR: '192.0.2.7',
      });
      expect(env.HTTP_PROXY).toBeUndefined();
      expect(env.CONTENT_LENGTH).toBeUndefined();
      // §5.3: a NUL in a header value sent by the web server → 400, nothing spawned.
      const before = app.stats().spawned;
      const nul = await fcgi(port, nginxParams('/cgi-bin/env.sh', [['HTTP_X_A', 'a\0b']]));
      expect(nul.stdout).toMatch(/^Status: 400 /);
      expect(app.stats().spawned).toBe(before);
      // A body streamed without CONTENT_LENGTH (nginx fastcgi_request_buffering off) is spooled (C-9).
      const posted = await fcgi(port, nginxParams('/cgi-bin/echo.sh').map(([k, v]) => [k, k === 'REQUEST_METHOD' ? 'POST' : v] as [string, string]), Buffer.from('streamed'));
      expect(posted.stdout).toContain('X-Content-Length: 8\r\n');
      expect(posted.stdout.endsWith('streamed')).toBe(true);
    } finally {
      await gateway.close(1000);
    }
  });
});

// ---------------------------------------------------------------------------------------------

/** The NPH script of the operator's report, in a cgi-bin of its own (made once). */
const NPH_RAW = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Raw: yes\r\n\r\nhello';
let nphDir: string | undefined;
function nphRoot(): string {
  if (nphDir === undefined) {
    nphDir = tmp('gatewire-cgi-nph-');
    fs.chmodSync(nphDir, 0o755);
    fs.writeFileSync(path.join(nphDir, 'nph-raw.sh'), `#!/bin/sh\nprintf '${NPH_RAW.replace(/\r/g, '\\r').replace(/\n/g, '\\n')}'\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(nphDir, 'nph-post.sh'), `#!/bin/sh\nbody=$(cat)\nprintf 'HTTP/1.0 201 Made\\r\\nX-Seen: %s\\r\\n\\r\\n' "$body"\n`, { mode: 0o755 });
  }
  return nphDir;
}
afterAll(() => {
  if (nphDir !== undefined) fs.rmSync(nphDir, { recursive: true, force: true });
});

describe('C-28: NPH output on the HTTP front, unmodified (gatewire serve --cgi-bin, both spawn paths)', () => {
  beforeAll(() => ensureBuilt(), 180_000);
  afterEach(() => killAll());

  test.each([['the native spawner', {}], ['child_process (GATEWIRE_SPAWN=node)', { GATEWIRE_SPAWN: 'node' }]])('C-28 with %s: a raw client gets exactly the script\'s bytes, then the connection closes', async (_name, env) => {
    const proc = spawnCli(['serve', '--cgi-bin', nphRoot(), '--http', '127.0.0.1:0'], { env });
    const [address] = await proc.listening(1);
    const port = portOf(address as string);
    const started = Date.now();
    // Keep-alive asked for, a second request pipelined behind: neither makes the connection last.
    const raw = await rawResponse(port, 'GET /cgi-bin/nph-raw.sh HTTP/1.1\r\nHost: x\r\n\r\nGET /cgi-bin/nph-raw.sh HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(raw.toString('latin1')).toBe(NPH_RAW);
    expect(Date.now() - started).toBeLessThan(5000); // closed by the server, not by the 20 s timeout
    const posted = await rawResponse(port, 'POST /cgi-bin/nph-post.sh HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody');
    expect(posted.toString('latin1')).toBe('HTTP/1.0 201 Made\r\nX-Seen: body\r\n\r\n');
    const method = /cgi-bin: scripts start with (.*)$/m.exec(proc.stderr)?.[1] ?? '';
    if ('GATEWIRE_SPAWN' in env) expect(method).toMatch(/child_process/);
  });
});

/** /proc/PID/environ of environ-hex.sh, decoded from its od output: NAME → value, byte strings. */
function environFromHex(body: Buffer | string): Record<string, string> {
  const hex = (typeof body === 'string' ? body : body.toString('latin1')).replace(/\s+/g, '');
  const out: Record<string, string> = {};
  for (const entry of Buffer.from(hex, 'hex').toString('latin1').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) out[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return out;
}

describe('C-6: bytes that are not UTF-8 reach the script exactly (gatewire serve --cgi-bin, --http and --fastcgi, both spawn paths)', () => {
  beforeAll(() => ensureBuilt(), 180_000);
  afterEach(() => killAll());

  /** Quotes, `$`, backquotes, backslashes, printf's `%` and `\ooo`, spaces, the latin-1 byte last. */
  const ODD = `it's "$HOME" \`id\` $(id) \\ \\351 %s %% x\xe9`;

  test('in-process (inject): a latin-1 cookie and User-Agent, PATH_INFO from %E9 and PATH_TRANSLATED built on it', async () => {
    const { app } = make();
    const res = await get(app, '/environ-hex.sh/caf%E9', { headers: { Cookie: 'n=Ren\xe9', 'User-Agent': 'caf\xe9', 'X-Odd': ODD } });
    expect(res.status).toBe(200);
    const env = environFromHex(res.body);
    expect(env).toMatchObject({ HTTP_COOKIE: 'n=Ren\xe9', HTTP_USER_AGENT: 'caf\xe9', HTTP_X_ODD: ODD, PATH_INFO: '/caf\xe9', SCRIPT_NAME: '/cgi-bin/environ-hex.sh', REQUEST_URI: '/cgi-bin/environ-hex.sh/caf%E9' });
    expect(env.PATH_TRANSLATED?.endsWith('/caf\xe9')).toBe(true);
  });

  test.each([['the native spawner', {}], ['child_process (GATEWIRE_SPAWN=node)', { GATEWIRE_SPAWN: 'node' }]])('C-6 with %s: a latin-1 Cookie and User-Agent and PATH_INFO /caf%%E9 arrive byte for byte over HTTP and FastCGI; a FastCGI value with trailing newlines too; nothing else is added', async (_name, spawnEnv) => {
    const proc = spawnCli(['serve', '--cgi-bin', ROOT, '--http', '127.0.0.1:0', '--fastcgi', '127.0.0.1:0'], { env: spawnEnv });
    await proc.listening(2);
    const port = (front: string): number => Number(new RegExp(`listening: ${front} on 127\\.0\\.0\\.1:(\\d+)`).exec(proc.stderr)?.[1]);
    const method = /cgi-bin: scripts start with (.*)$/m.exec(proc.stderr)?.[1] ?? '';
    expect(method).toMatch('GATEWIRE_SPAWN' in spawnEnv ? /child_process/ : /native/);

    const target = '/cgi-bin/environ-hex.sh/caf%E9';
    const raw = await rawResponse(port('http'), `GET ${target} HTTP/1.0\r\nHost: x\r\nCookie: n=Ren\xe9\r\nUser-Agent: caf\xe9\r\nX-Odd: ${ODD}\r\n\r\n`);
    expect(raw.toString('latin1')).toMatch(/^HTTP\/1\.1 200 /);
    const viaHttp = environFromHex(raw.subarray(raw.indexOf('\r\n\r\n') + 4));
    expect(viaHttp).toMatchObject({ HTTP_COOKIE: 'n=Ren\xe9', HTTP_USER_AGENT: 'caf\xe9', HTTP_X_ODD: ODD, PATH_INFO: '/caf\xe9', SCRIPT_NAME: '/cgi-bin/environ-hex.sh', REQUEST_URI: target });
    expect(viaHttp.PATH_TRANSLATED?.endsWith('/caf\xe9')).toBe(true);

    // nginx's fastcgi_params: SCRIPT_NAME = $uri, the decoded path (bytes), no PATH_INFO.
    const params: Array<[string, string]> = [
      ['QUERY_STRING', ''],
      ['REQUEST_METHOD', 'GET'],
      ['CONTENT_TYPE', ''],
      ['CONTENT_LENGTH', ''],
      ['SCRIPT_NAME', '/cgi-bin/environ-hex.sh/caf\xe9'],
      ['REQUEST_URI', target],
      ['DOCUMENT_URI', '/cgi-bin/environ-hex.sh/caf\xe9'],
      ['DOCUMENT_ROOT', '/var/www/html'],
      ['SERVER_PROTOCOL', 'HTTP/1.1'],
      ['GATEWAY_INTERFACE', 'CGI/1.1'],
      ['SERVER_SOFTWARE', 'nginx/1.22.1'],
      ['REMOTE_ADDR', '192.0.2.7'],
      ['REMOTE_PORT', '50000'],
      ['SERVER_ADDR', '127.0.0.1'],
      ['SERVER_PORT', '80'],
      ['SERVER_NAME', 'example.test'],
      ['HTTP_HOST', 'example.test'],
      ['HTTP_COOKIE', 'n=Ren\xe9'],
      ['HTTP_USER_AGENT', 'caf\xe9'],
      ['HTTP_X_ODD', ODD],
      ['HTTP_X_LINES', 'caf\xe9\n\n'],
    ];
    const res = await fcgiRequest({ port: port('fastcgi') }, { params });
    const cgi = parseCgiResponse(res.stdout);
    expect(cgi?.status).toBe(200);
    const viaFcgi = environFromHex(cgi?.body ?? '');
    expect(viaFcgi).toMatchObject({ HTTP_COOKIE: 'n=Ren\xe9', HTTP_USER_AGENT: 'caf\xe9', HTTP_X_ODD: ODD, HTTP_X_LINES: 'caf\xe9\n\n', PATH_INFO: '/caf\xe9', SCRIPT_NAME: '/cgi-bin/environ-hex.sh', PATH_TRANSLATED: '/var/www/html/caf\xe9' });
    // C-3: the wrapper's shell and env(1) add nothing of their own (no PWD, SHLVL, OLDPWD, _).
    for (const env of [viaHttp, viaFcgi]) expect(Object.keys(env).filter((k) => ['PWD', 'OLDPWD', 'SHLVL', '_'].includes(k))).toEqual([]);
  });
});

describe('C-2: --cgi-document-root (gatewire serve --cgi-bin, --http and --fastcgi)', () => {
  beforeAll(() => ensureBuilt(), 180_000);
  afterEach(() => killAll());

  test('C-2: over --http DOCUMENT_ROOT is the option and PATH_TRANSLATED is built on it; a web server\'s DOCUMENT_ROOT wins', async () => {
    const proc = spawnCli(['serve', '--cgi-bin', ROOT, '--cgi-document-root', '/srv/www', '--http', '127.0.0.1:0', '--fastcgi', '127.0.0.1:0']);
    await proc.listening(2);
    const port = (front: string): number => Number(new RegExp(`listening: ${front} on 127\\.0\\.0\\.1:(\\d+)`).exec(proc.stderr)?.[1]);
    const raw = await rawResponse(port('http'), 'GET /cgi-bin/env.sh/a/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(raw.toString('latin1')).toMatch(/^HTTP\/1\.1 200 /);
    expect(envOf({ body: raw.subarray(raw.indexOf('\r\n\r\n') + 4) })).toMatchObject({ DOCUMENT_ROOT: '/srv/www', PATH_TRANSLATED: '/srv/www/a/b', PATH_INFO: '/a/b', SCRIPT_FILENAME: `${ROOT}/env.sh` });
    const params: Array<[string, string]> = [
      ['REQUEST_METHOD', 'GET'],
      ['SCRIPT_NAME', '/cgi-bin/env.sh'],
      ['PATH_INFO', '/a/b'],
      ['REQUEST_URI', '/cgi-bin/env.sh/a/b'],
      ['QUERY_STRING', ''],
      ['DOCUMENT_ROOT', '/var/www/html'],
      ['SERVER_PROTOCOL', 'HTTP/1.1'],
      ['SERVER_NAME', 'example.test'],
      ['SERVER_PORT', '80'],
      ['REMOTE_ADDR', '192.0.2.7'],
    ];
    const cgi = parseCgiResponse((await fcgiRequest({ port: port('fastcgi') }, { params })).stdout);
    expect(cgi?.status).toBe(200);
    expect(envOf({ body: cgi?.body ?? Buffer.alloc(0) })).toMatchObject({ DOCUMENT_ROOT: '/var/www/html', PATH_TRANSLATED: '/var/www/html/a/b' });
  });
});

describe('ScriptLog', () => {
  test('a failing request is dumped: request line, headers (credentials redacted), exit status, stderr tail', async () => {
    const dir = tmp('gatewire-cgi-scriptlog-');
    const file = path.join(dir, 'script.log');
    const { app } = make({ scriptLog: file, headersTimeout: 300 });
    await get(app, '/bad-status.sh?abc', { headers: { Authorization: 'Basic c2VjcmV0', 'X-Trace': 't1' } });
    await get(app, '/exit-nonzero.sh');
    await get(app, '/sleep.sh');
    await get(app, '/hello.sh');
    expect(await eventually(() => fs.existsSync(file) && (fs.readFileSync(file, 'utf8').match(/^%% \[/gm) ?? []).length === 3)).toBe(true);
    const log = fs.readFileSync(file, 'utf8');
    expect(log).toContain('GET /cgi-bin/bad-status.sh?abc HTTP/1.1');
    expect(log).toMatch(/%% 502 .*bad-status\.sh/);
    expect(log).toContain('Authorization: [redacted]');
    expect(log).not.toContain('c2VjcmV0');
    expect(log).toContain('X-Trace: t1');
    expect(log).toMatch(/exit status 3/);
    expect(log).toContain('about to fail');
    expect(log).toMatch(/%% 504 .*sleep\.sh/);
    expect(log).toMatch(/stopped by the host: headers timeout/);
    expect(log).toContain('sleeping pid');
    expect(log).not.toContain('hello.sh');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

// ---------------------------------------------------------------------------------------------
// HTTP front helpers

async function withHttp(app: App, fn: (port: number) => Promise<void>): Promise<void> {
  const service: Service = { app, interface: 'environ' };
  const options = resolveOptions({ http: ['127.0.0.1:0'], mount: MOUNT, maxBodyBytes: '64m' }, {});
  const gateway = new Gateway(service, options, captureLogger());
  const [bound] = await gateway.listen();
  const port = (bound?.address as { port: number }).port;
  try {
    await fn(port);
  } finally {
    await gateway.close(1000);
  }
}

/** Sends raw bytes, returns everything until the server closes (or resets). */
function rawResponse(port: number, bytes: string | Buffer): Promise<Buffer> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => undefined); // a reset still resolves with what arrived
    socket.on('close', () => resolve(Buffer.concat(chunks)));
    socket.setTimeout(20_000, () => socket.destroy());
    socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  });
}

async function rawStatus(port: number, request: string): Promise<number> {
  const res = (await rawResponse(port, request)).toString('latin1');
  return Number(/^HTTP\/1\.[01] (\d{3})/.exec(res)?.[1] ?? 0);
}

/** An HTTP/1.0 GET whose reader pauses 5 ms after every chunk (backpressure through the exchange to the script). */
function slowRead(port: number, target: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c) => {
      chunks.push(c);
      socket.pause();
      setTimeout(() => socket.resume(), 5);
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const all = Buffer.concat(chunks);
      resolve(all.subarray(all.indexOf('\r\n\r\n') + 4));
    });
    socket.write(`GET ${target} HTTP/1.0\r\nHost: x\r\n\r\n`);
  });
}
