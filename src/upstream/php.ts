/**
 * `--php ROOT`: gatewire as the web server of a PHP document root in front of php-fpm, as an
 * App wrapper around the FastCGI upstream App. What nginx's fastcgi.conf with
 * fastcgi_split_path_info and Caddy's php_fastcgi do, with the holes of both closed:
 *
 *   const app = phpApp({ root: '/srv/www', upstream: fastcgiUpstream(address) });
 *
 * The path routed is the environ's PATH_INFO (percent-decoded latin1 bytes, E-1); SCRIPT_NAME
 * holds the --mount prefix (may be ''). First, for every request:
 *
 *   NUL, CR or LF in the path            400 (UP-22; an LF is what CVE-2019-11043 rode in on);
 *                                        so is a char above U+00FF (not a byte string, E-1)
 *   dot segments, `//`                   resolved and merged first (RFC 3986 §5.2.4, nginx's
 *                                        merge_slashes); a `..` that climbs above ROOT is a 404
 *                                        (UP-20); `%2e%2e` and `%2f` are already decoded, so
 *                                        they count as `..` and `/`
 *   a segment starting with `.`          404, whether it exists or not (`.env`, `.git/config`,
 *                                        `.htaccess`); only `.well-known` (RFC 8615, ACME) is
 *                                        exempt. 404 rather than 403: no existence oracle
 *
 * Then, on the normalized path (`/blog/index.php/post/1`):
 *
 *   a `.php` segment (UP-19)             split at the FIRST segment ending in `.php` (ASCII case-
 *     /blog/index.php/post/1             insensitive; `.php` must end the segment: a.php.jpg is
 *                                        no split). script = /blog/index.php, PATH_INFO =
 *                                        /post/1. Forwarded only when ROOT+script is an existing
 *                                        regular file whose real path ends in .php (UP-21);
 *                                        otherwise 404, never the front controller: a request
 *                                        that names a script gets that script or nothing. This
 *                                        closes cgi.fix_pathinfo's hole: /uploads/evil.jpg/x.php
 *                                        (evil.jpg exists, x.php does not) is a 404 and never
 *                                        reaches php-fpm (nginx's Debian snippet does the same;
 *                                        Caddy's try_files would run index.php instead)
 *   a directory, no trailing slash       308 to mount+path+'/' (query kept) when it holds the
 *     /blog                              index script or index.html (Caddy); a directory
 *                                        without either is treated as a missing path
 *   a directory, trailing slash          dir/<index> (options.index, default index.php)
 *     /blog/                             forwarded with SCRIPT_NAME /blog/index.php and an empty
 *                                        PATH_INFO; else dir/index.html served static; else as a
 *                                        missing path. No directory listings
 *   an existing regular file             served static (below); PHP source never is: a name
 *     /style.css                         ending in .php, .php3-9, .phtml, .pht, .phps, .phar or
 *                                        .inc, in any case, by the name asked for or by its real
 *                                        path, is a 404
 *   anything else (no such file)         the front controller: ROOT/<index> with SCRIPT_NAME
 *     /some/route                        mount+'/index.php' and PATH_INFO '' (Caddy's
 *                                        `try_files {path} {path}/index.php index.php`; the app
 *                                        routes on REQUEST_URI) when it exists and
 *                                        `frontController` is on (default); else 404. Only a
 *                                        path that does not exist (ENOENT, ENOTDIR,
 *                                        ENAMETOOLONG) gets it: a path that exists but cannot be
 *                                        used (a FIFO, a symlink loop, EACCES) is a 404
 *
 * Symlinks under ROOT are the operator's and are followed, but the REAL path of every file
 * served or script forwarded must stay under the real ROOT (resolved once, at creation, with a
 * separator boundary: /srv/www-evil is not under /srv/www); a symlink out of it is a 404, the
 * same answer as a missing file. The file served is checked again by device and inode when it
 * is opened (a swap between the lookup and the open is a 404).
 *
 * The forwarded environ is a shallow copy of the incoming one, other keys untouched:
 *
 *   SCRIPT_FILENAME   the real path of the script (always ROOT/…, always *.php)
 *   SCRIPT_NAME       mount + script URL path              /blog/index.php
 *   PATH_INFO         the rest of the split, or ''         /post/1
 *   PATH_TRANSLATED   ROOT + PATH_INFO; deleted when PATH_INFO is '' (nginx, RFC 3875 §4.1.6)
 *   DOCUMENT_ROOT     ROOT (real)
 *   DOCUMENT_URI      SCRIPT_NAME + PATH_INFO: nginx's $document_uri, which is the normalized
 *                     URI after nginx's own index / try_files internal redirect
 *   REDIRECT_STATUS   200 (php-cgi's cgi.force_redirect; php-fpm ignores it)
 *   REQUEST_URI       unchanged (the raw request target: what front controllers route on)
 *   HTTP_HOST         unchanged: the effective authority the front built (UP-26)
 *   PHP_VALUE, PHP_ADMIN_VALUE   deleted, in any case (UP-25): php.ini overrides are the
 *                     operator's (`--upstream-param`, applied later by the upstream), never the
 *                     client's or a web server's in front of gatewire
 *
 * Static files go through @fastify/send: ETag (weak, size-mtime), Last-Modified, 304 for
 * If-None-Match / If-Modified-Since, 412 for a failed If-Match / If-Unmodified-Since, one
 * Range → 206 (several ranges: the whole file), 416 for an unsatisfiable one, Content-Type by
 * extension, Cache-Control `public, max-age=0`. GET and HEAD only; any other method on a static
 * file is a 405 with `Allow: GET, HEAD` (PHP scripts get every method). A file whose name is
 * not valid UTF-8 cannot be handed to send and is a 404 (scripts have no such limit: their
 * SCRIPT_FILENAME is forwarded as bytes).
 *
 * Every refusal is gatewire's own reply (src/reply.ts) with one log line, through `logger` or
 * the request's `gatewire.errors`: `php: 404 /uploads/evil.jpg/x.php: no such script`.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import { realpathSync, statSync, type Stats } from 'node:fs';
import { isUnder, resolveDotSegments } from '../cgi-host/select.js';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import send, { type SendResult } from '@fastify/send';
import type { App, Body, Environ, HeaderList, StartResponse } from '../app.js';
import { quotePath } from '../environ.js';
import type { Logger } from '../logger.js';
import { replyFromApp, replyReason } from '../reply.js';

export interface PhpOptions {
  /** The document root; resolved to a real absolute path once, at creation. */
  root: string;
  /** The FastCGI upstream App (php-fpm) every PHP request is forwarded to. */
  upstream: App;
  /** The index script of a directory and the front controller. @default 'index.php' */
  index?: string;
  /** A path that names no file goes to ROOT/<index> when it exists. @default true */
  frontController?: boolean;
  /** Where refusals are logged (with the request id); @default the request's `gatewire.errors` */
  logger?: Logger;
}

// ---------------------------------------------------------------------------------------------
// Pure path logic
// ---------------------------------------------------------------------------------------------

/** NUL, CR or LF: refused before anything else (UP-22). */
export function hasForbiddenByte(path: string): boolean {
  return /[\0\r\n]/.test(path);
}

/**
 * Resolves `.` and `..` segments and merges `//` (RFC 3986 §5.2.4): the result starts with `/`
 * and has no empty, `.` or `..` segment; a trailing slash stays (`/a/b/..` → `/a/`). `''`
 * stays `''` (the mount itself, without its slash). Null when `..` climbs above the root (UP-20).
 * @example normalizePath('/a/./b/../c//d/') // '/a/c/d/'
 */
export function normalizePath(path: string): string | null {
  if (path === '') return '';
  const r = resolveDotSegments(path);
  if (r === null) return null;
  return `/${r.segments.join('/')}${r.trailingSlash && r.segments.length > 0 ? '/' : ''}`;
}

/** True when a segment of the (normalized) path starts with `.`, `.well-known` excepted. */
export function isDotPath(path: string): boolean {
  return path.split('/').some((seg) => seg.startsWith('.') && seg !== '.well-known');
}

const PHP_SEGMENT_END = /\.php(?=\/|$)/i;

/**
 * Splits a normalized path at the first segment that ends in `.php` (ASCII case-insensitive),
 * nginx's `fastcgi_split_path_info ^(.+?\.php)(/.*)$` without its regex pitfalls (UP-19, UP-23).
 * Null when no segment ends in `.php`: then there is no PATH_INFO at all.
 * @example splitScript('/blog/index.php/post/1') // { script: '/blog/index.php', pathInfo: '/post/1' }
 */
export function splitScript(path: string): { script: string; pathInfo: string } | null {
  const m = PHP_SEGMENT_END.exec(path);
  if (m === null) return null;
  const end = m.index + m[0].length;
  return { script: path.slice(0, end), pathInfo: path.slice(end) };
}

/** A name that is forwarded as a script: ends in `.php`, any case. */
export function isPhpScript(name: string): boolean {
  return /\.php$/i.test(name);
}

/** A name whose file is PHP source and never served static (any case). */
export function isPhpSource(name: string): boolean {
  return /\.(?:php[0-9]?|phtml|pht|phps|phar|inc)$/i.test(name);
}

/** True when `real` is `root` or lies below it, on a separator boundary (the CGI host's rule). */
export { isUnder };

/** What a request path asks for, before the filesystem is consulted. */
export type RoutePlan =
  /** Refused outright. */
  | { kind: 'refuse'; status: 400 | 404; reason: string }
  /** A `.php` segment: this script (if it exists) with this PATH_INFO, or a 404. */
  | { kind: 'script'; script: string; pathInfo: string }
  /** No `.php` segment: a file, a directory, or the front controller. */
  | { kind: 'path'; path: string };

/** The candidate for a PATH_INFO: the first two steps of the routing table in the header. */
export function planRoute(pathInfo: string): RoutePlan {
  if (hasForbiddenByte(pathInfo)) return { kind: 'refuse', status: 400, reason: 'NUL, CR or LF in the path' };
  // Not a byte string (E-1): Buffer.from(…, 'latin1') would turn U+012E into `.` after the dot check.
  if (/[^\x00-\xff]/.test(pathInfo)) return { kind: 'refuse', status: 400, reason: 'the path is not a byte string' };
  const path = normalizePath(pathInfo === '' || pathInfo.startsWith('/') ? pathInfo : `/${pathInfo}`);
  if (path === null) return { kind: 'refuse', status: 404, reason: 'the path leaves the document root' };
  if (isDotPath(path)) return { kind: 'refuse', status: 404, reason: 'dotfiles are not served' };
  const split = splitScript(path);
  if (split !== null) return { kind: 'script', ...split };
  return { kind: 'path', path };
}

/** A byte string with control and non-ASCII bytes as `\xNN`, for a log line. */
function shown(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** A query string safe for a Location field: bytes outside printable ASCII percent-encoded. */
function safeQuery(q: string): string {
  return q.replace(/[^\x21-\x7e]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** A latin1 byte path as the URL-encoded path send() decodes back to the same bytes. */
function sendPath(bytes: string): string {
  return bytes.replace(/[^A-Za-z0-9\-._~/]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

// ---------------------------------------------------------------------------------------------
// The filesystem
// ---------------------------------------------------------------------------------------------

interface Config {
  /** Real path of the root as a latin1 byte string, no trailing slash (unless it is `/`). */
  root: string;
  /** The same path as the string node:fs and send() take. */
  rootFs: string;
  upstream: App;
  index: string;
  frontController: boolean;
  logger: Logger | undefined;
  /** What recent lookups found (see {@link lookup}). */
  cache: Map<string, { at: number; entry: Entry }>;
}

/**
 * How long a lookup of a script, a directory or a missing path is remembered (nginx's
 * `open_file_cache valid=`): a new, removed or replaced .php file is seen within this time.
 * Static files are looked up every time (send() checks their identity when it opens them).
 */
const LOOKUP_CACHE_MS = 1000;
const LOOKUP_CACHE_MAX = 4096;

type Entry =
  | { kind: 'file'; real: string; st: Stats }
  | { kind: 'dir'; real: string }
  | { kind: 'missing' }
  | { kind: 'outside'; real: string }
  | { kind: 'unusable'; why: string };

const MISSING = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG']);

function join(root: string, urlPath: string): string {
  return root === '/' ? urlPath : root + urlPath;
}

/**
 * What ROOT + urlPath is, symlinks resolved; a trailing slash on a file makes it missing.
 * Synchronous on purpose, as nginx's stat() is: two metadata lookups on a local tree take a few
 * microseconds, while their promise forms go through the libuv threadpool and cost more than
 * the rest of the request (12 % of the main thread in `npm run bench -- php`, 2026-12-02).
 */
async function lookup(cfg: Config, urlPath: string): Promise<Entry> {
  const now = Date.now();
  const hit = cfg.cache.get(urlPath);
  if (hit !== undefined && now - hit.at < LOOKUP_CACHE_MS) return hit.entry;
  const entry = lookupNow(cfg, urlPath);
  if (entry.kind !== 'file' || isPhpScript(entry.real)) {
    if (cfg.cache.size >= LOOKUP_CACHE_MAX) cfg.cache.clear();
    cfg.cache.set(urlPath, { at: now, entry });
  }
  return entry;
}

function lookupNow(cfg: Config, urlPath: string): Entry {
  let realBuf: Buffer;
  let st: Stats;
  try {
    realBuf = realpathSync.native(Buffer.from(join(cfg.root, urlPath), 'latin1'), { encoding: 'buffer' });
    const real = realBuf.toString('latin1');
    if (!isUnder(real, cfg.root)) return { kind: 'outside', real };
    st = statSync(realBuf);
    if (st.isFile()) return { kind: 'file', real, st };
    if (st.isDirectory()) return { kind: 'dir', real };
    return { kind: 'unusable', why: 'not a regular file' };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return MISSING.has(code) ? { kind: 'missing' } : { kind: 'unusable', why: code };
  }
}

/** ROOT + urlPath when it is a script that may be forwarded (UP-21): a regular *.php file under ROOT. */
async function scriptFile(cfg: Config, urlPath: string): Promise<{ real: string } | { why: string }> {
  const e = await lookup(cfg, urlPath);
  switch (e.kind) {
    case 'file':
      return isPhpScript(e.real) ? { real: e.real } : { why: 'the script is not a .php file' };
    case 'missing':
      return { why: 'no such script' };
    case 'outside':
      return { why: `the script resolves outside the document root (${shown(e.real)})` };
    case 'dir':
      return { why: 'the script is a directory' };
    case 'unusable':
      return { why: `unusable script: ${e.why}` };
  }
}

// ---------------------------------------------------------------------------------------------
// The App
// ---------------------------------------------------------------------------------------------

/** The App for `--php ROOT`: see the routing table at the top of this file. */
export function phpApp(options: PhpOptions): App {
  if (options === null || typeof options !== 'object') throw new TypeError('phpApp needs an options object with `root` and `upstream`');
  if (typeof options.root !== 'string' || options.root === '') throw new TypeError('Expected the `root` option to be a directory path');
  if (typeof options.upstream !== 'function') throw new TypeError('Expected the `upstream` option to be an App');
  const index = options.index ?? 'index.php';
  if (typeof index !== 'string' || index.includes('/') || index.includes('\0') || !isPhpScript(index) || index.startsWith('.')) {
    throw new TypeError(`Expected the \`index\` option to be a file name ending in .php, got ${JSON.stringify(index)}`);
  }
  const rootFs = realpathSync.native(resolve(options.root));
  if (!statSync(rootFs).isDirectory()) throw new TypeError(`Expected the \`root\` option to be a directory, got ${options.root}`);
  const cfg: Config = {
    root: realpathSync.native(resolve(options.root), { encoding: 'buffer' }).toString('latin1'),
    rootFs,
    upstream: options.upstream,
    index: Buffer.from(index, 'utf8').toString('latin1'),
    frontController: options.frontController ?? true,
    logger: options.logger,
    cache: new Map(),
  };
  return (environ, startResponse) => route(cfg, environ, startResponse);
}

interface Request {
  cfg: Config;
  environ: Environ;
  sr: StartResponse;
  mount: string;
}

function refuse(r: Request, status: number, why: string, extra: HeaderList = []): Body {
  const id = r.environ['gatewire.request_id'];
  const line = `php: ${status} ${shown(r.mount + (typeof r.environ.PATH_INFO === 'string' ? r.environ.PATH_INFO : ''))}: ${why}`;
  if (r.cfg.logger !== undefined) r.cfg.logger.warn(line, { request_id: id });
  else r.environ['gatewire.errors'].write(line);
  return replyFromApp(r.sr, status, id, extra);
}

async function route(cfg: Config, environ: Environ, sr: StartResponse): Promise<Body> {
  const mount = typeof environ.SCRIPT_NAME === 'string' ? environ.SCRIPT_NAME : '';
  const r: Request = { cfg, environ, sr, mount };
  const plan = planRoute(typeof environ.PATH_INFO === 'string' ? environ.PATH_INFO : '');
  if (plan.kind === 'refuse') return refuse(r, plan.status, plan.reason);

  if (plan.kind === 'script') {
    const s = await scriptFile(cfg, plan.script);
    if ('why' in s) return refuse(r, 404, s.why);
    return forward(r, plan.script, plan.pathInfo, s.real);
  }

  const path = plan.path;
  const e = await lookup(cfg, path);
  switch (e.kind) {
    case 'outside':
      return refuse(r, 404, `resolves outside the document root (${shown(e.real)})`);
    case 'unusable':
      return refuse(r, 404, e.why);
    case 'file':
      if (isPhpSource(path) || isPhpSource(e.real)) return refuse(r, 404, 'PHP source is not served');
      return serveStatic(r, e.real, e.st);
    case 'dir': {
      const dir = path.endsWith('/') ? path : `${path}/`;
      const script = await scriptFile(cfg, dir + cfg.index);
      const html = 'real' in script ? undefined : await lookup(cfg, `${dir}index.html`);
      if (!path.endsWith('/')) {
        if ('real' in script || html?.kind === 'file') {
          const q = environ.QUERY_STRING;
          const location = quotePath(mount + dir) + (typeof q === 'string' && q !== '' ? `?${safeQuery(q)}` : '');
          return replyFromApp(sr, 308, environ['gatewire.request_id'], [['Location', location]]);
        }
        return fallback(r, 'a directory without an index');
      }
      if ('real' in script) return forward(r, dir + cfg.index, '', script.real);
      if (html?.kind === 'file') return serveStatic(r, html.real, html.st);
      return fallback(r, 'a directory without an index');
    }
    case 'missing':
      return fallback(r, 'no such file');
  }
}

/** The front controller for a path that names nothing usable, or a 404. */
async function fallback(r: Request, why: string): Promise<Body> {
  if (!r.cfg.frontController) return refuse(r, 404, why);
  const s = await scriptFile(r.cfg, `/${r.cfg.index}`);
  if ('why' in s) return refuse(r, 404, `${why}, and no front controller (/${shown(r.cfg.index)}: ${s.why})`);
  return forward(r, `/${r.cfg.index}`, '', s.real);
}

const CLIENT_INI = /^PHP_(?:ADMIN_)?VALUE$/i;

/** The environ php-fpm gets (see the header), then the upstream. */
function forward(r: Request, script: string, pathInfo: string, real: string): Body | Promise<Body> {
  // Changed in place, as mountApp does: a copy would lose the environ's prototype (its
  // gatewire.signal) and cost a object per request.
  const env: Environ = r.environ;
  for (const key of Object.keys(env)) if (CLIENT_INI.test(key)) delete env[key]; // UP-25
  env.SCRIPT_FILENAME = real;
  env.SCRIPT_NAME = r.mount + script;
  env.PATH_INFO = pathInfo;
  if (pathInfo !== '') env.PATH_TRANSLATED = join(r.cfg.root, pathInfo);
  else delete env.PATH_TRANSLATED;
  env.DOCUMENT_ROOT = r.cfg.root;
  env.DOCUMENT_URI = r.mount + script + pathInfo;
  env.REDIRECT_STATUS = '200';
  return r.cfg.upstream(env, r.sr);
}

/** The request headers send() reads, from the environ's HTTP_* keys (lower-case, dashed names). */
function requestHeaders(environ: Environ): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const key of Object.keys(environ)) {
    const value = environ[key];
    if (key.startsWith('HTTP_') && typeof value === 'string') headers[key.slice(5).toLowerCase().replace(/_/g, '-')] = value;
  }
  return headers;
}

async function serveStatic(r: Request, real: string, st: Stats): Promise<Body> {
  const method = r.environ.REQUEST_METHOD;
  if (method !== 'GET' && method !== 'HEAD') return refuse(r, 405, `${shown(String(method))} on a static file`, [['Allow', 'GET, HEAD']]);
  const rel = r.cfg.root === '/' ? real : real.slice(r.cfg.root.length);
  if (!isUtf8(Buffer.from(rel, 'latin1'))) return refuse(r, 404, 'the file name is not UTF-8');
  const req = { method, headers: requestHeaders(r.environ) };
  let result: SendResult;
  try {
    result = await send(req as unknown as Readable, sendPath(rel), {
      root: r.cfg.rootFs,
      dotfiles: 'allow', // the request path was checked above; symlinks are the operator's
      index: false,
      onFile: (_path, opened) => {
        if (opened.dev !== st.dev || opened.ino !== st.ino) throw new Error('the file changed between lookup and open');
      },
    });
  } catch (err) {
    return refuse(r, 404, `static file: ${(err as Error).message}`);
  }
  if (result.type !== 'file') {
    result.stream.destroy();
    const status = result.statusCode;
    const why = result.type === 'error' ? result.metadata.error.message : 'not a file';
    if (status === 416) return refuse(r, 416, 'range not satisfiable', [['Content-Range', String(result.headers['Content-Range'])]]);
    if (status === 412) return refuse(r, 412, 'precondition failed');
    return refuse(r, status === 500 ? 500 : 404, `static file: ${why}`);
  }
  const headers: HeaderList = Object.entries(result.headers).map(([k, v]) => [k, String(v)]);
  try {
    r.sr(`${result.statusCode} ${replyReason(result.statusCode)}`, headers);
  } catch (err) {
    result.stream.destroy();
    throw err;
  }
  return result.stream;
}
