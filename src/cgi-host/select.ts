/**
 * Which file a CGI request runs (C-1, C-2; RFC 3875 §9.8): the part of the URL path below the
 * mount is resolved to a script under the root, the rest becomes PATH_INFO.
 *
 *   /sub/../tool.sh/a/b  →  dot segments resolved first: /tool.sh/a/b
 *                         →  walk: tool.sh is a regular executable file
 *                         →  script /tool.sh, PATH_INFO /a/b
 *
 * Paths are CGI byte strings (latin1, one char per byte, E-1); file names are converted to the
 * UTF-8 strings node:fs expects, and a name that is not valid UTF-8 cannot be represented (400);
 * PATH_INFO, the part after the script, stays bytes (any but NUL).
 *
 * Symlink policy: a symlink is followed only when its real path stays under the real root (with
 * a separator boundary: /srv/cgi-bin-evil is not under /srv/cgi-bin); otherwise 403. Entries
 * that are not symlinks are not realpath'd: each step of the walk starts from a real directory
 * under the root and names one entry of it, so the path is already canonical.
 *
 * With `followSymlinks` (opt-in, Apache's Options FollowSymLinks) a symlink may lead anywhere:
 * what must stay under the root is the path as named in the URL, and that already holds, since
 * dot segments are resolved lexically first (a `..` above the root is a 400) and each step names
 * one entry of the directory reached. Nothing else changes: a file still needs the exec bit or an
 * interpreter, a directory an index script.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import { lstatSync, realpathSync, statSync, type Stats } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';

/** An interpreter for scripts without the exec bit, chosen by file extension. */
export interface CgiInterpreter {
  /** A command name looked up in the child's PATH, or an absolute path. */
  command: string;
  /** Arguments before the script path. @default [] */
  args?: readonly string[];
  /** Variables added to the child environment (e.g. php-cgi's `REDIRECT_STATUS=200`). */
  env?: Readonly<Record<string, string>>;
  /** Pass the script path as the last argument. @default true (php-cgi reads SCRIPT_FILENAME instead) */
  scriptArgument?: boolean;
}

/** An interpreter with its command resolved to an absolute path once, at app creation. */
export interface ResolvedInterpreter {
  path: string;
  args: readonly string[];
  env: Readonly<Record<string, string>>;
  scriptArgument: boolean;
}

/** What selection needs, resolved once. */
export interface SelectConfig {
  /** The root as configured, made absolute: prefix of SCRIPT_FILENAME. */
  root: string;
  /** realpath of the root. */
  realRoot: string;
  /** Index scripts tried, in order, for a request that names a directory. */
  index: readonly string[];
  /** By lower-case extension with the dot, e.g. `.py`. */
  interpreters: ReadonlyMap<string, ResolvedInterpreter>;
  /** Basename prefix marking an NPH script (C-28). */
  nphPrefix: string;
  /** C-1: a symlink under the root may resolve outside it (Apache Options FollowSymLinks). */
  followSymlinks: boolean;
}

/** The script a request runs. Paths in `file`/`realFile`/`cwd` are fs strings; the rest are CGI byte strings. */
export interface ScriptTarget {
  /** SCRIPT_FILENAME: root + script path, as named (symlinks not resolved, like Apache). */
  file: string;
  /** The real path that is executed (or handed to the interpreter). */
  realFile: string;
  /** The script's directory (RFC 3875 §7.2 on UNIX): the real one. */
  cwd: string;
  /** URL path of the script below the mount: `/sub/tool.sh` (latin1 byte string). */
  scriptPath: string;
  /** The rest: `""` or `/...` (latin1 byte string). */
  pathInfo: string;
  interpreter: ResolvedInterpreter | undefined;
  nph: boolean;
}

export type SelectResult = { target: ScriptTarget } | { status: 400 | 403 | 404; reason: string };

/** True when `real` is the root or lies below it, on a path-separator boundary. */
export function isUnder(real: string, realRoot: string): boolean {
  if (realRoot === '/') return real.startsWith('/');
  return real === realRoot || (real.startsWith(realRoot) && real.charCodeAt(realRoot.length) === 0x2f);
}

/**
 * Resolves `.` and `..` segments and drops empty ones (RFC 3986 §5.2.4, before any splitting,
 * RFC 3875 §9.8). Null when `..` climbs above the start.
 * @example resolveDotSegments('/a/./b/../c//d/') // { segments: ['a', 'c', 'd'], trailingSlash: true }
 */
export function resolveDotSegments(path: string): { segments: string[]; trailingSlash: boolean } | null {
  const raw = path.split('/');
  const segments: string[] = [];
  for (const seg of raw) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (segments.length === 0) return null;
      segments.pop();
      continue;
    }
    segments.push(seg);
  }
  const last = raw[raw.length - 1];
  const trailingSlash = raw.length > 1 && (last === '' || last === '.' || last === '..');
  return { segments, trailingSlash };
}

const NON_ASCII = /[^\x01-\x7f]/;

/** A latin1 byte string as the UTF-8 string node:fs wants; null if that cannot be byte-exact. */
export function bytesToText(bytes: string): string | null {
  if (!NON_ASCII.test(bytes)) return bytes;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes.charCodeAt(i);
    if (c === 0 || c > 0xff) return null;
  }
  const buf = Buffer.from(bytes, 'latin1');
  return isUtf8(buf) ? buf.toString('utf8') : null;
}

/** A UTF-8 string from node:fs as a CGI byte string. */
export function textToBytes(text: string): string {
  return NON_ASCII.test(text) ? Buffer.from(text, 'utf8').toString('latin1') : text;
}

function lstat(path: string): Stats | undefined {
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined; // ENOTDIR, EACCES, ENAMETOOLONG: nothing to run there
  }
}

/**
 * One directory entry, followed if it is a symlink that stays under the root.
 * Returns the real path and its stats, or a refusal.
 */
function step(realDir: string, name: string, cfg: SelectConfig): { real: string; st: Stats } | { status: 403 | 404; reason: string } {
  const path = realDir === '/' ? `/${name}` : `${realDir}/${name}`;
  const st = lstat(path);
  if (st === undefined) return { status: 404, reason: `no such file: ${path}` };
  if (!st.isSymbolicLink()) return { real: path, st };
  let real: string;
  try {
    real = realpathSync.native(path);
  } catch {
    return { status: 404, reason: `broken symlink: ${path}` };
  }
  if (!cfg.followSymlinks && !isUnder(real, cfg.realRoot)) return { status: 403, reason: `symlink ${path} resolves outside the root: ${real}` };
  try {
    return { real, st: statSync(real) };
  } catch {
    return { status: 404, reason: `no such file: ${real}` };
  }
}

/** A regular file found by the walk, runnable directly (exec bit) or through an interpreter. */
function fileTarget(
  real: string,
  st: Stats,
  fsSegments: readonly string[],
  scriptSegments: readonly string[],
  pathInfo: string,
  cfg: SelectConfig,
): SelectResult {
  const name = fsSegments[fsSegments.length - 1] as string;
  let interpreter: ResolvedInterpreter | undefined;
  if ((st.mode & 0o111) === 0) {
    interpreter = cfg.interpreters.get(extname(name).toLowerCase());
    if (interpreter === undefined) return { status: 403, reason: `not executable: ${real}` };
  }
  return {
    target: {
      file: `${cfg.root === '/' ? '' : cfg.root}/${fsSegments.join('/')}`,
      realFile: real,
      cwd: dirname(real),
      scriptPath: `/${scriptSegments.join('/')}`,
      pathInfo,
      interpreter,
      nph: name.startsWith(cfg.nphPrefix),
    },
  };
}

/**
 * C-1: maps the decoded path below the mount (the environ's PATH_INFO) to a script.
 * 400: NUL, `..` above the root, bytes that cannot be a file name; 404: nothing there;
 * 403: a directory without an index script, a non-regular or non-executable file, a symlink
 * leaving the root (unless `followSymlinks`).
 */
export function selectScript(pathBelowMount: string, cfg: SelectConfig): SelectResult {
  if (pathBelowMount.includes('\0')) return { status: 400, reason: 'NUL byte in the path' };
  const resolved = resolveDotSegments(pathBelowMount);
  if (resolved === null) return { status: 400, reason: `path climbs above the root: ${JSON.stringify(pathBelowMount.slice(0, 200))}` };
  const { segments, trailingSlash } = resolved;
  // Segments become file names as the walk reaches them: those after the script are PATH_INFO,
  // which may hold any byte but NUL (C-6).
  const fsSegments: string[] = [];
  let realDir = cfg.realRoot;
  for (let i = 0; i < segments.length; i++) {
    const text = bytesToText(segments[i] as string);
    if (text === null) return { status: 400, reason: 'path segment is not valid UTF-8: cannot name a file byte-exactly' };
    fsSegments.push(text);
    const found = step(realDir, text, cfg);
    if ('status' in found) return found;
    const { real, st } = found;
    if (st.isDirectory()) {
      realDir = real;
      continue;
    }
    if (!st.isFile()) return { status: 403, reason: `not a regular file: ${real}` };
    const rest = segments.slice(i + 1);
    const pathInfo = rest.length === 0 ? (trailingSlash ? '/' : '') : `/${rest.join('/')}${trailingSlash ? '/' : ''}`;
    return fileTarget(real, st, fsSegments.slice(0, i + 1), segments.slice(0, i + 1), pathInfo, cfg);
  }
  // Every segment was a directory: an index script, if configured (Apache DirectoryIndex).
  for (const index of cfg.index) {
    const found = step(realDir, index, cfg);
    if ('status' in found || !found.st.isFile()) continue;
    const result = fileTarget(found.real, found.st, [...fsSegments, index], [...segments, textToBytes(index)], '', cfg);
    if ('target' in result) return result;
  }
  return { status: 403, reason: `directory without an index script: ${realDir}` };
}

/**
 * SCRIPT_FILENAME sent by a web server (fcgiwrap trusts it; we honour it only inside the root).
 * Returns the target with the script path relative to the root, or undefined to fall back to
 * the path walk (outside the root, missing, not runnable).
 */
export function selectByFilename(filename: string, cfg: SelectConfig): Omit<ScriptTarget, 'pathInfo'> | undefined {
  const text = bytesToText(filename);
  if (text === null || !text.startsWith('/')) return undefined;
  const lexical = resolve(text);
  let real: string;
  let st: Stats;
  try {
    real = realpathSync.native(lexical);
    st = statSync(real);
  } catch {
    return undefined;
  }
  // The script path below the mount: from the name as sent when it is under the root (as
  // configured or real), else from the real path. With followSymlinks the name as sent is what
  // must lie under the root (C-1), as for the walk.
  const below = (p: string, root: string): string | undefined => (isUnder(p, root) && p !== root ? p.slice(root === '/' ? 0 : root.length) : undefined);
  const named = below(lexical, cfg.root) ?? below(lexical, cfg.realRoot);
  const inside = isUnder(real, cfg.realRoot) || (cfg.followSymlinks && named !== undefined);
  if (!inside || !st.isFile()) return undefined;
  const rel = named ?? real.slice(cfg.realRoot === '/' ? 0 : cfg.realRoot.length);
  const segments = rel.split('/').filter((s) => s !== '');
  if (segments.length === 0) return undefined;
  const result = fileTarget(real, st, segments, segments.map(textToBytes), '', cfg);
  if (!('target' in result)) return undefined;
  const t = result.target;
  return { file: t.file, realFile: t.realFile, cwd: t.cwd, scriptPath: t.scriptPath, interpreter: t.interpreter, nph: t.nph };
}
