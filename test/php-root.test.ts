/**
 * `--php ROOT` routing (src/upstream/php.ts): the App wrapper in front of php-fpm, against a
 * temporary document root and a fake upstream App that records the environ it gets and answers
 * 200. Requests go through inject() (the HTTP front's environ builder and the real exchange);
 * a path the HTTP front cannot carry (NUL) is set on the environ by a wrapper App, as a FastCGI
 * front would deliver it.
 *
 *   ROOT/index.php  hello.php  UPPER.PHP  alias.php → hello.php  link.php → OUTSIDE/secret.php
 *        blog/index.php  docs/index.html  empty/  uploads/evil.jpg  style.css  data.bin
 *        photo.php.jpg  config.inc  page.phtml  src.txt → hello.php  .env  .git/config
 *        .well-known/acme-challenge/token  out → OUTSIDE/  leak.txt → OUTSIDE/secret.txt
 *        css.php → style.css  loop → loop
 */
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { App, Environ, HeaderList } from '../src/app.js';
import { inject, type InjectRequest, type InjectResponse } from '../src/inject.js';
import type { Logger } from '../src/logger.js';
import { hasForbiddenByte, isDotPath, isPhpSource, isUnder, normalizePath, phpApp, planRoute, splitScript, type PhpOptions } from '../src/upstream/php.js';

// ---------------------------------------------------------------------------------------
// The document root
// ---------------------------------------------------------------------------------------

let ROOT = '';
let OUTSIDE = '';
let BARE = ''; // a root without index.php
const DATA = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
const CSS = 'body { color: red; }\n';

function put(root: string, rel: string, content: string | Buffer): void {
  const file = path.join(root, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
}

beforeAll(() => {
  ROOT = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'gatewire-php-root-')));
  OUTSIDE = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'gatewire-php-outside-')));
  BARE = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'gatewire-php-bare-')));
  put(OUTSIDE, 'secret.php', '<?php echo "outside"; // PHPSOURCE');
  put(OUTSIDE, 'secret.txt', 'outside secret\n');
  put(ROOT, 'index.php', '<?php // the front controller PHPSOURCE');
  put(ROOT, 'hello.php', '<?php echo "hello"; // PHPSOURCE');
  put(ROOT, 'UPPER.PHP', '<?php echo "upper"; // PHPSOURCE');
  put(ROOT, 'blog/index.php', '<?php // blog PHPSOURCE');
  put(ROOT, 'docs/index.html', '<h1>docs</h1>\n');
  fs.mkdirSync(path.join(ROOT, 'empty'));
  put(ROOT, 'uploads/evil.jpg', '<?php system($_GET["c"]); ?>');
  put(ROOT, 'style.css', CSS);
  put(ROOT, 'data.bin', DATA);
  put(ROOT, 'photo.php.jpg', 'JPEG');
  put(ROOT, 'config.inc', '<?php $password = "x"; // PHPSOURCE');
  put(ROOT, 'page.phtml', '<?php echo 1; // PHPSOURCE ?>');
  put(ROOT, '.env', 'SECRET=1\n');
  put(ROOT, '.git/config', '[core]\n');
  put(ROOT, '.well-known/acme-challenge/token', 'acme-token');
  fs.symlinkSync(OUTSIDE, path.join(ROOT, 'out'));
  fs.symlinkSync(path.join(OUTSIDE, 'secret.php'), path.join(ROOT, 'link.php'));
  fs.symlinkSync(path.join(OUTSIDE, 'secret.txt'), path.join(ROOT, 'leak.txt'));
  fs.symlinkSync('hello.php', path.join(ROOT, 'alias.php'));
  fs.symlinkSync('hello.php', path.join(ROOT, 'src.txt'));
  fs.symlinkSync('style.css', path.join(ROOT, 'css.php'));
  fs.symlinkSync('loop', path.join(ROOT, 'loop'));
  put(BARE, 'hello.php', '<?php echo "bare";');
});

afterAll(() => {
  for (const dir of [ROOT, OUTSIDE, BARE]) if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------
// The fake upstream, a capturing logger, requests
// ---------------------------------------------------------------------------------------

interface Fake {
  app: App;
  calls: Environ[];
}

function fakeUpstream(): Fake {
  const calls: Environ[] = [];
  const app: App = (environ, startResponse) => {
    calls.push(environ);
    startResponse('200 OK', [['Content-Type', 'text/plain'], ['X-Upstream', 'yes']]);
    return ['from upstream'];
  };
  return { app, calls };
}

interface Captured extends Logger {
  lines: string[];
}

function captureLogger(): Captured {
  const lines: string[] = [];
  const at = (message: string): void => {
    lines.push(message);
  };
  return { lines, error: at, warn: at, info: at, debug: at, debugEnabled: false, access: null, close: () => Promise.resolve() };
}

interface Setup {
  app: App;
  fake: Fake;
  log: Captured;
}

function setup(extra: Partial<PhpOptions> = {}): Setup {
  const fake = fakeUpstream();
  const log = captureLogger();
  return { app: phpApp({ root: ROOT, upstream: fake.app, logger: log, ...extra }), fake, log };
}

function header(res: InjectResponse | HeaderList, name: string): string | undefined {
  const headers = Array.isArray(res) ? res : res.headers;
  return headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];
}

/** The one environ the upstream got for `url`. */
async function forwarded(s: Setup, url: string, request: InjectRequest = {}): Promise<Environ> {
  const before = s.fake.calls.length;
  const res = await inject(s.app, { url, ...request });
  expect({ status: res.status, upstream: header(res, 'X-Upstream'), calls: s.fake.calls.length - before }).toEqual({ status: 200, upstream: 'yes', calls: 1 });
  return s.fake.calls[s.fake.calls.length - 1] as Environ;
}

/** The answer to `url` when the upstream must not be called: its status checked. */
async function notForwarded(s: Setup, url: string, status: number, request: InjectRequest = {}): Promise<InjectResponse> {
  const before = s.fake.calls.length;
  const res = await inject(s.app, { url, ...request });
  expect({ status: res.status, calls: s.fake.calls.length - before }).toEqual({ status, calls: 0 });
  return res;
}

/** The app with PATH_INFO replaced, as a FastCGI front could deliver it. */
function withPathInfo(app: App, pathInfo: string): App {
  return (environ, startResponse) => app({ ...environ, PATH_INFO: pathInfo }, startResponse);
}

/** In every PHP source file of the root (not in evil.jpg, which is bytes served as an image). */
const PHP_TEXT = 'PHPSOURCE';

// ---------------------------------------------------------------------------------------
// Pure path logic
// ---------------------------------------------------------------------------------------

describe('path logic (pure)', () => {
  test('UP-20 normalizePath resolves dot segments, merges slashes, keeps a trailing slash, refuses climbing out', () => {
    expect(normalizePath('/a/./b/../c//d/')).toBe('/a/c/d/');
    expect(normalizePath('/a/b/..')).toBe('/a/');
    expect(normalizePath('//x.php')).toBe('/x.php');
    expect(normalizePath('/')).toBe('/');
    expect(normalizePath('')).toBe('');
    expect(normalizePath('/a/..')).toBe('/');
    expect(normalizePath('/../etc/passwd')).toBeNull();
    expect(normalizePath('/a/../../x.php')).toBeNull();
    expect(normalizePath('/..')).toBeNull();
  });

  test('UP-19 splitScript splits at the first segment ending in .php, any case, a segment end only', () => {
    expect(splitScript('/blog/index.php/post/1')).toEqual({ script: '/blog/index.php', pathInfo: '/post/1' });
    expect(splitScript('/hello.php/x.php/y')).toEqual({ script: '/hello.php', pathInfo: '/x.php/y' });
    expect(splitScript('/UPPER.PHP/z')).toEqual({ script: '/UPPER.PHP', pathInfo: '/z' });
    expect(splitScript('/a.PhP')).toEqual({ script: '/a.PhP', pathInfo: '' });
    expect(splitScript('/hello.php/')).toEqual({ script: '/hello.php', pathInfo: '/' });
    expect(splitScript('/a.php.jpg/b.php')).toEqual({ script: '/a.php.jpg/b.php', pathInfo: '' });
    expect(splitScript('/photo.php.jpg')).toBeNull();
    expect(splitScript('/phpinfo/x')).toBeNull();
    expect(splitScript('/a.phpx/y')).toBeNull();
  });

  test('UP-22 NUL, CR and LF are forbidden bytes, and planRoute refuses them first with 400', () => {
    for (const p of ['/a\0.php', '/index.php\n', '/a\r/b', '/x.php/\n']) {
      expect(hasForbiddenByte(p)).toBe(true);
      expect(planRoute(p)).toMatchObject({ kind: 'refuse', status: 400 });
    }
    expect(hasForbiddenByte('/a b/\t/\x7f')).toBe(false);
    // Not a byte string: U+012E would become `.` once turned into latin1 bytes for node:fs.
    expect(planRoute('/\u012e\u012e/\u012e\u012e/etc/passwd')).toMatchObject({ kind: 'refuse', status: 400 });
    expect(planRoute('/caf\u00c3\u00a9.css')).toEqual({ kind: 'path', path: '/caf\u00c3\u00a9.css' });
  });

  test('UP-20 isUnder needs a separator boundary; dot segments are dotfiles except .well-known', () => {
    expect(isUnder('/srv/www/a.php', '/srv/www')).toBe(true);
    expect(isUnder('/srv/www', '/srv/www')).toBe(true);
    expect(isUnder('/srv/www-evil/a.php', '/srv/www')).toBe(false);
    expect(isUnder('/etc/passwd', '/')).toBe(true);
    expect(isDotPath('/.env')).toBe(true);
    expect(isDotPath('/a/.git/config')).toBe(true);
    expect(isDotPath('/.well-known/acme-challenge/x')).toBe(false);
    expect(isDotPath('/a.b/c')).toBe(false);
  });

  test('UP-21 isPhpSource covers .php in any case and the other PHP extensions', () => {
    for (const n of ['a.php', 'A.PHP', 'a.Php5', 'a.phtml', 'a.PHPS', 'a.phar', 'a.inc', 'a.pht']) expect(isPhpSource(n)).toBe(true);
    for (const n of ['a.css', 'a.php.jpg', 'a.phpx', 'php']) expect(isPhpSource(n)).toBe(false);
  });

  test('UP-23 planRoute gives PATH_INFO only from a successful split', () => {
    expect(planRoute('/blog/index.php/post/1')).toEqual({ kind: 'script', script: '/blog/index.php', pathInfo: '/post/1' });
    expect(planRoute('/some/route')).toEqual({ kind: 'path', path: '/some/route' });
    expect(planRoute('/a/../hello.php/./x/')).toEqual({ kind: 'script', script: '/hello.php', pathInfo: '/x/' });
    expect(planRoute('/../x.php')).toMatchObject({ kind: 'refuse', status: 404 });
    expect(planRoute('/.env')).toMatchObject({ kind: 'refuse', status: 404 });
    expect(planRoute('relative.php')).toEqual({ kind: 'script', script: '/relative.php', pathInfo: '' });
  });

  /** Paths built from the pieces that matter: dot segments, empty segments, .php in any case, NUL/CR/LF. */
  const hostilePath = fc
    .array(fc.constantFrom('', '.', '..', 'a', 'index.php', 'x.PHP', 'evil.jpg', '.env', '.well-known', 'a\0b', 'c\nd', 'e\rf', 'p.php.jpg', '%2e', 'b.phpx', 'é'), { maxLength: 8 })
    .chain((segs) => fc.constantFrom(`/${segs.join('/')}`, segs.join('/'), `//${segs.join('/')}/`));
  const anyPath = fc.oneof(hostilePath, fc.string({ unit: 'binary-ascii', maxLength: 40 }), fc.string({ maxLength: 40 }).map((s) => `/${s}`));

  test('UP-19 UP-20 UP-23 property: a planned script is absolute, normalized, ends in .php and never climbs out; PATH_INFO is "" or absolute', () => {
    fc.assert(
      fc.property(anyPath, (p) => {
        const plan = planRoute(p);
        if (hasForbiddenByte(p)) return plan.kind === 'refuse' && plan.status === 400;
        if (plan.kind === 'script') {
          expect(plan.script.startsWith('/')).toBe(true);
          expect(plan.script).toMatch(/\.php$/i);
          expect(plan.script.split('/').slice(1)).not.toContain('..');
          expect(plan.script.split('/').slice(1)).not.toContain('.');
          expect(plan.script.split('/').slice(1)).not.toContain('');
          expect(plan.script.slice(0, -4)).not.toMatch(/\.php\//i); // the FIRST .php segment
          expect(plan.pathInfo === '' || plan.pathInfo.startsWith('/')).toBe(true);
          expect(normalizePath(plan.script + plan.pathInfo)).toBe(plan.script + plan.pathInfo);
        }
        if (plan.kind === 'path') {
          expect(splitScript(plan.path)).toBeNull();
          expect(normalizePath(plan.path)).toBe(plan.path); // idempotent
        }
        return true;
      }),
      { numRuns: 2000 },
    );
  });

  test('UP-20 property: normalizePath never leaves dot or empty segments and is idempotent', () => {
    fc.assert(
      fc.property(anyPath, (p) => {
        const n = normalizePath(p.startsWith('/') || p === '' ? p : `/${p}`);
        if (n === null || n === '') return true;
        const inner = n.endsWith('/') ? n.slice(1, -1) : n.slice(1);
        if (n !== '/') expect(inner.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..')).toBe(true);
        expect(normalizePath(n)).toBe(n);
        return true;
      }),
      { numRuns: 2000 },
    );
  });
});

// ---------------------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------------------

describe('UP-19 UP-23 the split and the forwarded environ', () => {
  test('UP-19 UP-23 /blog/index.php/post/1?x=1: SCRIPT_NAME, PATH_INFO, SCRIPT_FILENAME, PATH_TRANSLATED, DOCUMENT_ROOT, DOCUMENT_URI, REQUEST_URI raw', async () => {
    const s = setup();
    const env = await forwarded(s, '/blog/index.php/post/1?x=1');
    expect({
      SCRIPT_NAME: env.SCRIPT_NAME,
      PATH_INFO: env.PATH_INFO,
      SCRIPT_FILENAME: env.SCRIPT_FILENAME,
      PATH_TRANSLATED: env.PATH_TRANSLATED,
      DOCUMENT_ROOT: env.DOCUMENT_ROOT,
      DOCUMENT_URI: env.DOCUMENT_URI,
      REQUEST_URI: env.REQUEST_URI,
      QUERY_STRING: env.QUERY_STRING,
      REDIRECT_STATUS: env.REDIRECT_STATUS,
    }).toEqual({
      SCRIPT_NAME: '/blog/index.php',
      PATH_INFO: '/post/1',
      SCRIPT_FILENAME: `${ROOT}/blog/index.php`,
      PATH_TRANSLATED: `${ROOT}/post/1`,
      DOCUMENT_ROOT: ROOT,
      DOCUMENT_URI: '/blog/index.php/post/1',
      REQUEST_URI: '/blog/index.php/post/1?x=1',
      QUERY_STRING: 'x=1',
      REDIRECT_STATUS: '200',
    });
  });

  test('UP-23 a script without PATH_INFO: PATH_INFO "" and no PATH_TRANSLATED, even when the incoming environ had one', async () => {
    const s = setup();
    const app: App = (environ, sr) => s.app({ ...environ, PATH_TRANSLATED: '/etc/passwd', SCRIPT_FILENAME: '/etc/passwd' }, sr);
    const res = await inject(app, { url: '/hello.php' });
    expect(res.status).toBe(200);
    const env = s.fake.calls[0] as Environ;
    expect({ PATH_INFO: env.PATH_INFO, has: 'PATH_TRANSLATED' in env, SCRIPT_FILENAME: env.SCRIPT_FILENAME, DOCUMENT_URI: env.DOCUMENT_URI }).toEqual({
      PATH_INFO: '',
      has: false,
      SCRIPT_FILENAME: `${ROOT}/hello.php`,
      DOCUMENT_URI: '/hello.php',
    });
  });

  test('UP-19 the first .php segment wins; a percent-encoded PATH_INFO stays decoded while REQUEST_URI stays raw', async () => {
    const s = setup();
    const env = await forwarded(s, '/hello.php/x.php/a%20b');
    expect([env.SCRIPT_NAME, env.PATH_INFO, env.REQUEST_URI]).toEqual(['/hello.php', '/x.php/a b', '/hello.php/x.php/a%20b']);
  });

  test('UP-19 .php in any case is a script: /UPPER.PHP/z', async () => {
    const s = setup();
    const env = await forwarded(s, '/UPPER.PHP/z');
    expect([env.SCRIPT_NAME, env.PATH_INFO, env.SCRIPT_FILENAME]).toEqual(['/UPPER.PHP', '/z', `${ROOT}/UPPER.PHP`]);
  });

  test('UP-20 dot segments and // are resolved before the split: /a/../blog//index.php/./p', async () => {
    const s = setup();
    const env = await forwarded(s, '/a/../blog//index.php/./p');
    expect([env.SCRIPT_NAME, env.PATH_INFO, env.SCRIPT_FILENAME]).toEqual(['/blog/index.php', '/p', `${ROOT}/blog/index.php`]);
  });

  test('UP-21 a symlink inside the root is followed: SCRIPT_FILENAME is the real path, SCRIPT_NAME the URL', async () => {
    const s = setup();
    const env = await forwarded(s, '/alias.php');
    expect([env.SCRIPT_NAME, env.SCRIPT_FILENAME]).toEqual(['/alias.php', `${ROOT}/hello.php`]);
  });

  test('UP-26 HTTP_HOST and the other keys of the environ reach the upstream unchanged; the method too', async () => {
    const s = setup();
    const env = await forwarded(s, '/hello.php', { method: 'POST', body: 'a=1', headers: { Host: 'example.test:8443', 'X-Thing': 'v', 'Content-Type': 'application/x-www-form-urlencoded' } });
    expect([env.HTTP_HOST, env.HTTP_X_THING, env.REQUEST_METHOD, env.CONTENT_TYPE, env.CONTENT_LENGTH]).toEqual(['example.test:8443', 'v', 'POST', 'application/x-www-form-urlencoded', '3']);
    expect(typeof env['gatewire.request_id']).toBe('string');
    expect(env['gatewire.input']).toBeDefined();
  });

  test('UP-25 PHP_VALUE and PHP_ADMIN_VALUE from the incoming environ are never forwarded, in any case', async () => {
    const s = setup();
    const app: App = (environ, sr) =>
      s.app({ ...environ, PHP_VALUE: 'auto_prepend_file=/etc/passwd', PHP_ADMIN_VALUE: 'allow_url_include=1', php_value: 'x', Php_Admin_Value: 'y' }, sr);
    const res = await inject(app, { url: '/hello.php' });
    expect(res.status).toBe(200);
    const env = s.fake.calls[0] as Environ;
    expect(Object.keys(env).filter((k) => /^php_(admin_)?value$/i.test(k))).toEqual([]);
    expect(env.SCRIPT_FILENAME).toBe(`${ROOT}/hello.php`);
  });

  test('UP-25 the environ is changed in place, as --mount does: the client\'s PHP_VALUE is gone from it, its gatewire.signal stays', async () => {
    const s = setup();
    let incoming: Environ | undefined;
    const app: App = (environ, sr) => {
      incoming = environ;
      environ.PHP_VALUE = 'auto_prepend_file=php://input';
      return s.app(environ, sr);
    };
    await inject(app, { url: '/blog/index.php/p' });
    const forwarded = s.fake.calls[s.fake.calls.length - 1] as Environ;
    expect(forwarded).toBe(incoming);
    expect([forwarded.PHP_VALUE, forwarded.SCRIPT_NAME, forwarded.PATH_INFO]).toEqual([undefined, '/blog/index.php', '/p']);
    // A copy ({...environ}) would have lost the inherited accessor: the upstream could not see the client go.
    expect(forwarded['gatewire.signal']).toBeInstanceOf(AbortSignal);
  });
});

describe('UP-21 only an existing regular .php file under the root is forwarded', () => {
  test('UP-21 the fix_pathinfo hole: /uploads/evil.jpg/x.php is a 404 and never reaches the upstream (no front controller)', async () => {
    const s = setup();
    const res = await notForwarded(s, '/uploads/evil.jpg/x.php', 404);
    expect(res.body.toString()).not.toContain(PHP_TEXT);
    expect(s.log.lines).toEqual(['php: 404 /uploads/evil.jpg/x.php: no such script']);
  });

  test('UP-21 a missing script is a 404, with and without PATH_INFO, not the front controller', async () => {
    const s = setup();
    await notForwarded(s, '/nope.php', 404);
    await notForwarded(s, '/nope.php/a/b', 404);
    await notForwarded(s, '/blog/nope.PHP', 404);
    expect(s.log.lines.every((l) => l.endsWith('no such script'))).toBe(true);
    expect(s.log.lines).toHaveLength(3);
  });

  test('UP-21 a .php symlink that points outside the root is a 404, and so is a script under a symlinked directory out of it', async () => {
    const s = setup();
    await notForwarded(s, '/link.php', 404);
    await notForwarded(s, '/out/secret.php', 404);
    await notForwarded(s, '/out/secret.php/x', 404);
    expect(s.log.lines.every((l) => l.includes('outside the document root'))).toBe(true);
  });

  test('UP-21 a .php name whose real file is not a .php file is not a script: css.php → style.css', async () => {
    const s = setup();
    const res = await notForwarded(s, '/css.php', 404);
    expect(res.body.toString()).not.toContain('color: red');
    expect(s.log.lines).toEqual(['php: 404 /css.php: the script is not a .php file']);
  });

  test('UP-21 a path that exists but cannot be used (a symlink loop) is a 404, not the front controller', async () => {
    const s = setup();
    await notForwarded(s, '/loop', 404);
    await notForwarded(s, '/loop/x', 404);
    expect(s.log.lines).toEqual(['php: 404 /loop: ELOOP', 'php: 404 /loop/x: ELOOP']);
  });

  test('UP-21 a directory named like a script is not a script', async () => {
    fs.mkdirSync(path.join(ROOT, 'dir.php'), { recursive: true });
    try {
      const s = setup();
      await notForwarded(s, '/dir.php', 404);
      await notForwarded(s, '/dir.php/x', 404);
    } finally {
      fs.rmdirSync(path.join(ROOT, 'dir.php'));
    }
  });
});

describe('UP-20 UP-22 refusals before any lookup', () => {
  test('UP-20 traversal: /../etc/passwd, /a/../../x.php, %2e%2e and %2f forms are 404 and never reach the upstream', async () => {
    const s = setup();
    for (const url of ['/../etc/passwd', '/a/../../x.php', '/%2e%2e/etc/passwd', '/blog/%2e%2e/%2e%2e/x.php', '/a%2f..%2f..%2fhello.php']) {
      const res = await notForwarded(s, url, 404);
      expect(res.body.toString()).not.toContain('root:');
    }
    expect(s.log.lines.filter((l) => l.endsWith('the path leaves the document root'))).toHaveLength(5);
  });

  test('UP-22 NUL, CR or LF in PATH_INFO is a 400 and never reaches the upstream', async () => {
    for (const p of ['/hello.php\0.jpg', '/uploads/evil.jpg\n.php', '/hello.php/\n', '/x\r.php', '/index.php/a\nb']) {
      const s = setup();
      const res = await inject(withPathInfo(s.app, p), { url: '/' });
      expect({ p, status: res.status, calls: s.fake.calls.length }).toEqual({ p, status: 400, calls: 0 });
      expect(s.log.lines).toHaveLength(1);
      expect(s.log.lines[0]).toMatch(/^php: 400 .*: NUL, CR or LF in the path$/);
      expect(s.log.lines[0]).not.toMatch(/[\0\r\n]/); // the log line shows them escaped
    }
  });

  test('UP-22 a percent-encoded LF in the URL (the CVE-2019-11043 shape) is a 400', async () => {
    const s = setup();
    await notForwarded(s, '/index.php/PHP%0Ais_the_shittiest_lang.php?a=1', 400);
  });

  test('UP-20 dotfiles are a 404 whether they exist or not; .well-known is served', async () => {
    const s = setup();
    for (const url of ['/.env', '/.git/config', '/.nothing', '/.git/hooks/x.php', '/uploads/.hidden/']) await notForwarded(s, url, 404);
    const res = await inject(s.app, { url: '/.well-known/acme-challenge/token' });
    expect([res.status, res.body.toString()]).toEqual([200, 'acme-token']);
  });
});

// ---------------------------------------------------------------------------------------
// Directories and the front controller
// ---------------------------------------------------------------------------------------

describe('directories and the front controller', () => {
  test('UP-23 /blog/ runs blog/index.php with SCRIPT_NAME /blog/index.php and an empty PATH_INFO', async () => {
    const s = setup();
    const env = await forwarded(s, '/blog/?p=2');
    expect([env.SCRIPT_NAME, env.PATH_INFO, env.SCRIPT_FILENAME, env.DOCUMENT_URI, env.REQUEST_URI, 'PATH_TRANSLATED' in env]).toEqual([
      '/blog/index.php',
      '',
      `${ROOT}/blog/index.php`,
      '/blog/index.php',
      '/blog/?p=2',
      false,
    ]);
  });

  test('UP-23 / runs the root index.php', async () => {
    const s = setup();
    const env = await forwarded(s, '/');
    expect([env.SCRIPT_NAME, env.SCRIPT_FILENAME]).toEqual(['/index.php', `${ROOT}/index.php`]);
  });

  test('UP-23 /blog (no trailing slash) is a 308 to /blog/ with the query kept, for every method, the upstream not called', async () => {
    const s = setup();
    const res = await notForwarded(s, '/blog?x=1&y=%20', 308);
    expect(header(res, 'Location')).toBe('/blog/?x=1&y=%20');
    const post = await notForwarded(s, '/blog', 308, { method: 'POST', body: 'x' });
    expect(header(post, 'Location')).toBe('/blog/');
    expect(s.log.lines).toEqual([]); // a redirect is not a refusal
  });

  test('UP-23 a directory holding only index.html redirects too, and /docs/ serves it static', async () => {
    const s = setup();
    expect(header(await notForwarded(s, '/docs', 308), 'Location')).toBe('/docs/');
    const res = await notForwarded(s, '/docs/', 200);
    expect([res.body.toString(), header(res, 'Content-Type')]).toEqual(['<h1>docs</h1>\n', 'text/html; charset=utf-8']);
  });

  test('UP-23 front controller: /some/route goes to /index.php with PATH_INFO "" and the raw REQUEST_URI', async () => {
    const s = setup();
    const env = await forwarded(s, '/some/route?page=2');
    expect([env.SCRIPT_NAME, env.PATH_INFO, env.SCRIPT_FILENAME, env.REQUEST_URI, env.DOCUMENT_URI, 'PATH_TRANSLATED' in env]).toEqual([
      '/index.php',
      '',
      `${ROOT}/index.php`,
      '/some/route?page=2',
      '/index.php',
      false,
    ]);
  });

  test('UP-23 a directory without an index, and a file with a trailing slash, go to the front controller', async () => {
    const s = setup();
    expect((await forwarded(s, '/empty')).SCRIPT_NAME).toBe('/index.php');
    expect((await forwarded(s, '/empty/')).SCRIPT_NAME).toBe('/index.php');
    expect((await forwarded(s, '/style.css/')).SCRIPT_NAME).toBe('/index.php');
  });

  test('UP-21 without ROOT/index.php, or with frontController: false, a missing path is a 404', async () => {
    const fake = fakeUpstream();
    const log = captureLogger();
    const bare = phpApp({ root: BARE, upstream: fake.app, logger: log });
    expect((await inject(bare, { url: '/some/route' })).status).toBe(404);
    expect((await inject(bare, { url: '/' })).status).toBe(404);
    expect(fake.calls).toHaveLength(0);
    expect(log.lines[0]).toBe('php: 404 /some/route: no such file, and no front controller (/index.php: no such script)');
    const s = setup({ frontController: false });
    await notForwarded(s, '/some/route', 404);
    await notForwarded(s, '/empty/', 404);
    expect((await forwarded(s, '/blog/')).SCRIPT_NAME).toBe('/blog/index.php'); // directory index still works
  });

  test('UP-23 options.index names the directory index and the front controller', async () => {
    put(ROOT, 'blog/app.php', '<?php // app');
    put(ROOT, 'app.php', '<?php // app');
    try {
      const s = setup({ index: 'app.php' });
      expect((await forwarded(s, '/blog/')).SCRIPT_NAME).toBe('/blog/app.php');
      expect((await forwarded(s, '/x/y')).SCRIPT_FILENAME).toBe(`${ROOT}/app.php`);
    } finally {
      fs.rmSync(path.join(ROOT, 'blog/app.php'));
      fs.rmSync(path.join(ROOT, 'app.php'));
    }
  });
});

// ---------------------------------------------------------------------------------------
// --mount
// ---------------------------------------------------------------------------------------

describe('UP-23 the --mount prefix', () => {
  test('UP-23 under /app: SCRIPT_NAME and DOCUMENT_URI carry the mount, SCRIPT_FILENAME does not', async () => {
    const s = setup();
    const env = await forwarded(s, '/app/blog/index.php/post/1?x=1', { mount: '/app' });
    expect([env.SCRIPT_NAME, env.PATH_INFO, env.SCRIPT_FILENAME, env.DOCUMENT_URI, env.PATH_TRANSLATED, env.REQUEST_URI]).toEqual([
      '/app/blog/index.php',
      '/post/1',
      `${ROOT}/blog/index.php`,
      '/app/blog/index.php/post/1',
      `${ROOT}/post/1`,
      '/app/blog/index.php/post/1?x=1',
    ]);
    expect((await forwarded(s, '/app/some/route', { mount: '/app' })).SCRIPT_NAME).toBe('/app/index.php');
  });

  test('UP-23 under /app: the directory redirect keeps the mount, and /app itself redirects to /app/', async () => {
    const s = setup();
    expect(header(await notForwarded(s, '/app/blog?q=1', 308, { mount: '/app' }), 'Location')).toBe('/app/blog/?q=1');
    expect(header(await notForwarded(s, '/app', 308, { mount: '/app' }), 'Location')).toBe('/app/');
    expect((await forwarded(s, '/app/', { mount: '/app' })).SCRIPT_NAME).toBe('/app/index.php');
  });

  test('UP-20 under /app: .. cannot climb out of the root through the mount', async () => {
    const s = setup();
    await notForwarded(s, '/app/../hello.php', 404, { mount: '/app' });
  });
});

// ---------------------------------------------------------------------------------------
// Static files
// ---------------------------------------------------------------------------------------

describe('UP-21 static files', () => {
  test('UP-21 style.css is served with its Content-Type, Content-Length, ETag and Last-Modified; the upstream is not called', async () => {
    const s = setup();
    const res = await notForwarded(s, '/style.css', 200);
    expect(res.body.toString()).toBe(CSS);
    expect(header(res, 'Content-Type')).toBe('text/css; charset=utf-8');
    expect(header(res, 'Content-Length')).toBe(String(CSS.length));
    expect(header(res, 'ETag')).toMatch(/^W\/"[0-9a-f]+-[0-9a-f]+"$/);
    expect(new Date(header(res, 'Last-Modified') ?? '').getTime()).toBe(Math.floor(fs.statSync(path.join(ROOT, 'style.css')).mtimeMs / 1000) * 1000);
    expect(header(res, 'Accept-Ranges')).toBe('bytes');
  });

  test('UP-21 an ETag then If-None-Match is a 304 without a body; a different one is a 200', async () => {
    const s = setup();
    const etag = header(await inject(s.app, { url: '/style.css' }), 'ETag') as string;
    const res = await inject(s.app, { url: '/style.css', headers: { 'If-None-Match': etag } });
    expect([res.status, res.body.length, header(res, 'ETag')]).toEqual([304, 0, etag]);
    const other = await inject(s.app, { url: '/style.css', headers: { 'If-None-Match': 'W/"0-0"' } });
    expect([other.status, other.body.toString()]).toEqual([200, CSS]);
  });

  test('UP-21 If-Modified-Since at Last-Modified is a 304; If-Match that fails is a 412', async () => {
    const s = setup();
    const lm = header(await inject(s.app, { url: '/style.css' }), 'Last-Modified') as string;
    expect((await inject(s.app, { url: '/style.css', headers: { 'If-Modified-Since': lm } })).status).toBe(304);
    expect((await inject(s.app, { url: '/style.css', headers: { 'If-Modified-Since': 'Thu, 01 Jan 1970 00:00:00 GMT' } })).status).toBe(200);
    expect((await inject(s.app, { url: '/style.css', headers: { 'If-Match': '"nope"' } })).status).toBe(412);
  });

  test('UP-21 Range is a 206 with the right bytes and Content-Range; an unsatisfiable one a 416', async () => {
    const s = setup();
    const res = await inject(s.app, { url: '/data.bin', headers: { Range: 'bytes=100-199' } });
    expect([res.status, header(res, 'Content-Range'), header(res, 'Content-Length')]).toEqual([206, 'bytes 100-199/1000', '100']);
    expect(res.body.equals(DATA.subarray(100, 200))).toBe(true);
    const tail = await inject(s.app, { url: '/data.bin', headers: { Range: 'bytes=-10' } });
    expect([tail.status, tail.body.equals(DATA.subarray(990))]).toEqual([206, true]);
    const bad = await inject(s.app, { url: '/data.bin', headers: { Range: 'bytes=5000-6000' } });
    expect([bad.status, header(bad, 'Content-Range')]).toEqual([416, 'bytes */1000']);
    const whole = await inject(s.app, { url: '/data.bin' });
    expect([whole.status, whole.body.equals(DATA), header(whole, 'Content-Type')]).toEqual([200, true, 'application/octet-stream']);
  });

  test('UP-21 HEAD gets the GET headers and no body', async () => {
    const s = setup();
    const res = await inject(s.app, { url: '/style.css', method: 'HEAD' });
    expect([res.status, res.body.length, header(res, 'Content-Length'), header(res, 'Content-Type')]).toEqual([200, 0, String(CSS.length), 'text/css; charset=utf-8']);
  });

  test('UP-21 POST (or any method but GET and HEAD) on a static file is a 405 with Allow: GET, HEAD', async () => {
    const s = setup();
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const res = await notForwarded(s, '/style.css', 405, { method, body: method === 'POST' ? 'x=1' : undefined } as InjectRequest);
      expect(header(res, 'Allow')).toBe('GET, HEAD');
    }
    expect(s.log.lines[0]).toBe('php: 405 /style.css: POST on a static file');
  });

  test('UP-21 a name with .php that does not end a segment is a static file: photo.php.jpg is image/jpeg', async () => {
    const s = setup();
    const res = await notForwarded(s, '/photo.php.jpg', 200);
    expect([res.body.toString(), header(res, 'Content-Type')]).toEqual(['JPEG', 'image/jpeg']);
  });

  test('UP-21 PHP source is never served: .inc, .phtml, a .txt symlink to a .php, evil.jpg is served as an image only', async () => {
    const s = setup();
    for (const url of ['/config.inc', '/page.phtml', '/src.txt']) {
      const res = await notForwarded(s, url, 404);
      expect(res.body.toString()).not.toContain(PHP_TEXT);
    }
    expect(s.log.lines.slice(0, 3)).toEqual(['php: 404 /config.inc: PHP source is not served', 'php: 404 /page.phtml: PHP source is not served', 'php: 404 /src.txt: PHP source is not served']);
    const jpg = await notForwarded(s, '/uploads/evil.jpg', 200);
    expect(header(jpg, 'Content-Type')).toBe('image/jpeg'); // bytes, never run
  });

  test('UP-21 a .php file is never served static, whatever the case or the method', async () => {
    const s = setup();
    for (const [url, method] of [['/hello.php', 'GET'], ['/UPPER.PHP', 'HEAD'], ['/hello.php', 'POST']] as const) {
      const res = await inject(s.app, { url, method });
      expect([res.status, header(res, 'X-Upstream')]).toEqual([200, 'yes']);
      expect(res.body.toString()).not.toContain(PHP_TEXT);
    }
  });

  test('UP-20 a symlink out of the root is a 404: a file and a directory', async () => {
    const s = setup();
    const res = await notForwarded(s, '/leak.txt', 404);
    expect(res.body.toString()).not.toContain('outside secret');
    await notForwarded(s, '/out/secret.txt', 404);
    await notForwarded(s, '/out/', 404);
    expect(s.log.lines.every((l) => l.includes('outside the document root'))).toBe(true);
  });

  test('UP-21 a file name that is UTF-8 on disk is found from its percent-encoded URL', async () => {
    put(ROOT, 'café.css', CSS);
    try {
      const s = setup();
      const res = await notForwarded(s, '/caf%C3%A9.css', 200);
      expect([res.body.toString(), header(res, 'Content-Type')]).toEqual([CSS, 'text/css; charset=utf-8']);
    } finally {
      fs.rmSync(path.join(ROOT, 'café.css'));
    }
  });
});

// ---------------------------------------------------------------------------------------
// Logging, options
// ---------------------------------------------------------------------------------------

describe('refusals and options', () => {
  test('UP-21 without a logger, the refusal line goes to gatewire.errors with the request id; the body names the id', async () => {
    const fake = fakeUpstream();
    const lines: Array<{ message: string; meta: Record<string, unknown> | undefined }> = [];
    const sink: Logger = { ...captureLogger(), error: (message, meta) => lines.push({ message, meta }), warn: (message, meta) => lines.push({ message, meta }) };
    const app = phpApp({ root: ROOT, upstream: fake.app });
    const res = await inject(app, { url: '/uploads/evil.jpg/x.php' }, sink);
    expect(res.status).toBe(404);
    expect(res.body.toString()).toContain(`request id: ${res.requestId}`);
    const mine = lines.filter((l) => l.message.includes('php: 404'));
    expect(mine).toHaveLength(1);
    expect(mine[0]?.message).toContain('php: 404 /uploads/evil.jpg/x.php: no such script');
    expect(JSON.stringify(mine[0])).toContain(res.requestId);
  });

  test('UP-21 HEAD of a refusal has no body', async () => {
    const s = setup();
    const res = await notForwarded(s, '/nope.php', 404, { method: 'HEAD' });
    expect(res.body.length).toBe(0);
  });

  test('UP-21 options are checked at creation: a missing root, a file as root, an index that is not a .php file name', () => {
    const upstream = fakeUpstream().app;
    expect(() => phpApp({ root: path.join(ROOT, 'nope'), upstream })).toThrow(/ENOENT/);
    expect(() => phpApp({ root: path.join(ROOT, 'style.css'), upstream })).toThrow(/directory/);
    expect(() => phpApp({ root: '', upstream })).toThrow(TypeError);
    for (const index of ['index.html', 'a/index.php', '.php', '']) expect(() => phpApp({ root: ROOT, upstream, index })).toThrow(TypeError);
    expect(() => phpApp({ root: ROOT, upstream: undefined as unknown as App })).toThrow(TypeError);
  });

  test('UP-20 the root is resolved to its real path once: a symlinked root gives real SCRIPT_FILENAME and DOCUMENT_ROOT', async () => {
    const link = path.join(OUTSIDE, 'root-link');
    fs.symlinkSync(ROOT, link);
    try {
      const fake = fakeUpstream();
      const res = await inject(phpApp({ root: link, upstream: fake.app }), { url: '/hello.php' });
      expect(res.status).toBe(200);
      expect([fake.calls[0]?.SCRIPT_FILENAME, fake.calls[0]?.DOCUMENT_ROOT]).toEqual([`${ROOT}/hello.php`, ROOT]);
    } finally {
      fs.rmSync(link);
    }
  });
});

// ---------------------------------------------------------------------------------------
// End-to-end properties
// ---------------------------------------------------------------------------------------

describe('end-to-end properties', () => {
  const segment = fc.constantFrom(
    '', '.', '..', 'index.php', 'hello.php', 'HELLO.PHP', 'UPPER.PHP', 'blog', 'uploads', 'evil.jpg', 'x.php', 'out', 'secret.php', 'secret.txt',
    'link.php', 'leak.txt', 'src.txt', 'css.php', 'loop', 'config.inc', '.env', '.git', 'config', 'style.css', 'docs', 'empty', 'a\0b', 'c\nd', '%2e', 'alias.php', 'etc', 'passwd',
  );
  const path_ = fc.tuple(fc.array(segment, { maxLength: 7 }), fc.boolean()).map(([segs, slash]) => `/${segs.join('/')}${slash ? '/' : ''}`);

  test('UP-19 UP-20 UP-21 UP-22 property: whatever the path, a forwarded SCRIPT_FILENAME is a real .php file under ROOT/, and no response carries PHP source', async () => {
    await fc.assert(
      fc.asyncProperty(path_, fc.constantFrom('GET', 'HEAD', 'POST'), async (p, method) => {
        const fake = fakeUpstream();
        const app = phpApp({ root: ROOT, upstream: fake.app, logger: captureLogger() });
        const res = await inject(withPathInfo(app, p), { url: '/', method });
        expect(res.body.toString()).not.toContain(PHP_TEXT);
        expect(res.body.toString()).not.toContain('outside secret');
        if (/[\0\r\n]/.test(p)) expect([res.status, fake.calls.length]).toEqual([400, 0]);
        for (const env of fake.calls) {
          const file = env.SCRIPT_FILENAME as string;
          expect(file.startsWith(`${ROOT}/`)).toBe(true);
          expect(file).toMatch(/\.php$/i);
          expect(fs.realpathSync(file)).toBe(file);
          expect(fs.statSync(file).isFile()).toBe(true);
          expect(env.SCRIPT_NAME).toMatch(/\.php$/i);
          expect(env.DOCUMENT_URI).toBe(`${env.SCRIPT_NAME}${env.PATH_INFO}`);
          if (env.PATH_INFO !== '') expect(env.PATH_TRANSLATED).toBe(`${ROOT}${env.PATH_INFO}`);
          else expect('PATH_TRANSLATED' in env).toBe(false);
        }
        expect(fake.calls.length).toBeLessThanOrEqual(1);
      }),
      { numRuns: 400 },
    );
  });
});
