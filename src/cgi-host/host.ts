/**
 * cgi-bin as an App: every front (HTTP, FastCGI, SCGI, uwsgi, CGI child) can serve a directory
 * of CGI scripts, one process per request (RFC 3875; docs/conformance.md §5, C-1..C-30).
 *
 *   const app = createCgiBinApp({ root: '/srv/cgi-bin' });
 *   new Gateway({ app, interface: 'environ' }, resolveOptions({ http: ['8080'], mount: '/cgi-bin' }, {}), logger);
 *   // GET /cgi-bin/tool.sh/extra?x=1 runs /srv/cgi-bin/tool.sh with
 *   //   SCRIPT_NAME=/cgi-bin/tool.sh  PATH_INFO=/extra  QUERY_STRING=x=1
 *
 * Mount contract: the app gets the environ of the part below its mount, as every front gives it:
 * SCRIPT_NAME is the mount prefix (`""` or `/cgi-bin`) and PATH_INFO selects the script. The child
 * sees SCRIPT_NAME = mount + script path and PATH_INFO = the rest.
 *
 * Responses go through start_response like any app, so call.ts enforces R-1..R-11 for CGI too.
 * Consequences worth knowing:
 * - the script's Content-Length is dropped (C-25) and the front frames the body itself: chunked
 *   on HTTP/1.1, close-delimited on 1.0, records on FastCGI; a body that is complete when the head
 *   is read gets an exact Content-Length;
 * - NPH scripts (C-28) are streamed as produced. On the HTTP front their output goes to the
 *   client unmodified (RFC 3875 §5.2): the exchange takes the connection's bytes
 *   (`gatewire.raw_response`), and the connection closes after the script's output, since its
 *   framing is the script's. Behind a web server (FastCGI, SCGI, uwsgi) and in the CGI child the
 *   web server frames every response, so the head is parsed and re-served as a normal response
 *   (status and fields kept, hop-by-hop fields and Content-Length dropped, Transfer-Encoding →
 *   502): the HTTP version and framing on the wire are the web server's;
 * - a local redirect (`Location: /path`, no Status, no body) is re-dispatched inside this app when
 *   the path is under the mount, else by `localRedirectApp`, else answered 302; the second request
 *   gets REDIRECT_URL (the first path) and REDIRECT_STATUS 200 unless the web server sent one.
 */
import { cpus, tmpdir } from 'node:os';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { accessSync, appendFile, constants as fsConstants, realpathSync, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { isMainThread } from 'node:worker_threads';
import type { App, Body, Environ, HeaderList, StartResponse } from '../app.js';
import { percentDecodePath } from '../environ.js';
import { escapeText, silentLogger, type Logger } from '../log.js';
import { CGI_HEAD_LIMITS, type CgiHeadLimits, type CgiResponseHead, type NphResponseHead } from '../../protocols/cgi/response.js';
import { isHopByHop } from '../../protocols/cgi/head.js';
import { replyFromApp } from '../reply.js';
import { baseEnv, buildChildEnv, type EnvConfig } from './env.js';
import { CgiRun, type RunResult, type RunStdin } from './process.js';
import type { CgiOutcome, CgiStats } from '../probes.js';
import {
  selectByFilename,
  selectScript,
  type CgiInterpreter,
  type ResolvedInterpreter,
  type ScriptTarget,
  type SelectConfig,
} from './select.js';
import { SpoolLimitError, spoolBody, type SpooledBody } from './spool.js';

export type { CgiInterpreter } from './select.js';

/** Options of {@link createCgiBinApp}. Durations in milliseconds, sizes in bytes. */
export interface CgiBinOptions {
  /** The cgi-bin directory. Every script run lies under its real path (C-1). Required. */
  root: string;
  /** Scripts tried, in order, when the path names a directory (e.g. `['index.cgi']`). @default [] (403) */
  index?: readonly string[];
  /** Spawn to the end of the response head; beyond it 504 and the group is killed (C-14). @default 60000 */
  headersTimeout?: number;
  /** Longest stdout silence after the head (the client's slowness does not count). @default 60000 */
  idleTimeout?: number;
  /** Whole run, head included. @default 300000 */
  totalTimeout?: number;
  /** SIGTERM to SIGKILL for a group being stopped. @default 2000 */
  killGrace?: number;
  /**
   * After the script exits, how long stdout may stay open (a background child holding it) before
   * the group is killed and the response ends (C-15); also how long a script may run on after
   * closing stdout. @default 1000
   */
  exitGrace?: number;
  /** C-18: run scripts as this user id (needs a server started as root). @default unchanged */
  uid?: number;
  /** C-18: run scripts with this group id. @default unchanged */
  gid?: number;
  /** C-18: the scripts' umask (set around each fork; the server's own is restored at once). @default 0o022 */
  umask?: number;
  /** Scripts running at once (C-17). @default 4 × CPUs */
  maxProcesses?: number;
  /** Requests waiting for a slot; beyond it 503. @default 64 */
  maxQueue?: number;
  /** Longest wait in the queue before 503. @default 30000 */
  queueTimeout?: number;
  /** Largest request body (413 beyond); also the spool limit for bodies of unknown length (C-9). @default 100 MiB */
  maxBodyBytes?: number;
  /** A body of unknown length is kept in memory up to this size, then spooled to a temp file. @default 64 KiB */
  spoolMemoryBytes?: number;
  /** Where spool files go (created 0600 and unlinked at once). @default os.tmpdir() */
  spoolDir?: string;
  /**
   * Interpreters by extension for files WITHOUT the exec bit (a file with it runs directly, by
   * its #! line). Off by default. `CGI_INTERPRETERS` has `.py` python3, `.pl` perl, `.php` php-cgi
   * (with REDIRECT_STATUS=200). @default {}
   */
  interpreters?: Readonly<Record<string, string | CgiInterpreter>>;
  /** PATH of the child. @default the server's PATH, else /usr/local/bin:/usr/bin:/bin */
  path?: string;
  /** Names copied from the server's environment when set (C-3). Nothing else is inherited. @default ['LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'LD_LIBRARY_PATH'] */
  inheritEnv?: readonly string[];
  /** Added to every child environment, last (they win). @default {} */
  extraEnv?: Readonly<Record<string, string>>;
  /** Pass Authorization and Proxy-Authorization as HTTP_* (C-5, Apache CGIPassAuth). @default false */
  passAuthorization?: boolean;
  /** C-7: 400 for an HTTP_* value starting with `() {` (Shellshock class). @default false */
  rejectFunctionDefinitions?: boolean;
  /** DOCUMENT_ROOT when the front gave none; PATH_TRANSLATED = it + PATH_INFO (C-2). @default root */
  documentRoot?: string;
  /**
   * C-1: a symlink under the root may resolve to a file or directory outside it (Apache Options
   * FollowSymLinks, e.g. /srv/cgi-bin/app.cgi → /opt/app/bin/app.cgi). The path named in the URL
   * must still lie under the root (dot segments are resolved first, a `..` above it is a 400);
   * off, a symlink leaving the root is a 403. @default false
   */
  followSymlinks?: boolean;
  /** Honour a web server's SCRIPT_FILENAME (FastCGI front) when its real path is a script under the root. @default true */
  trustScriptFilename?: boolean;
  /** Basename prefix of NPH scripts (C-28). @default 'nph-' */
  nphPrefix?: string;
  /** Limits on a script's response head (C-19). @default 8 KiB line, 64 KiB head, 100 fields */
  headLimits?: CgiHeadLimits;
  /** Local redirects followed per request; one more → 500 (C-23, lighttpd's 5). @default 5 */
  maxLocalRedirects?: number;
  /** Serves a local redirect whose path is outside the mount (e.g. the server's whole app). @default undefined: 302 to the client */
  localRedirectApp?: App;
  /** Stderr bytes logged per request (C-16); the rest is drained and counted. @default 64 KiB */
  maxStderrBytes?: number;
  /**
   * Apache ScriptLog-style file: for each failing request (5xx from the host, a timeout, a
   * non-zero exit or a death by signal) the request line, request headers (credentials
   * redacted), exit status and the stderr tail. @default undefined (off)
   */
  scriptLog?: string;
  /** Stderr bytes kept for a script-log entry. @default 8 KiB */
  scriptLogStderrBytes?: number;
  /** Error log: stderr lines, spawn failures, bad script output. @default silent */
  logger?: Logger;
}

/** The defaults of {@link CgiBinOptions}. */
export const CGI_BIN_DEFAULTS = {
  index: [] as readonly string[],
  headersTimeout: 60_000,
  idleTimeout: 60_000,
  totalTimeout: 300_000,
  killGrace: 2_000,
  exitGrace: 1_000,
  umask: 0o022,
  maxProcesses: Math.max(1, cpus().length) * 4,
  maxQueue: 64,
  queueTimeout: 30_000,
  maxBodyBytes: 100 * 1024 * 1024,
  spoolMemoryBytes: 64 * 1024,
  inheritEnv: ['LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'LD_LIBRARY_PATH'] as readonly string[],
  fallbackPath: '/usr/local/bin:/usr/bin:/bin',
  passAuthorization: false,
  rejectFunctionDefinitions: false,
  followSymlinks: false,
  trustScriptFilename: true,
  nphPrefix: 'nph-',
  headLimits: CGI_HEAD_LIMITS,
  maxLocalRedirects: 5,
  maxStderrBytes: 64 * 1024,
  scriptLogStderrBytes: 8 * 1024,
} as const;

/** Interpreter presets for `interpreters` (RFC-less convention: by extension). */
export const CGI_INTERPRETERS: Readonly<Record<string, CgiInterpreter>> = {
  '.py': { command: 'python3' },
  '.pl': { command: 'perl' },
  // php-cgi refuses to run without REDIRECT_STATUS (cgi.force_redirect) and reads SCRIPT_FILENAME.
  '.php': { command: 'php-cgi', env: { REDIRECT_STATUS: '200' }, scriptArgument: false },
};

export type { CgiOutcome, CgiStats } from '../probes.js';

/** How a finished run is counted. */
export function cgiOutcome(r: RunResult): CgiOutcome {
  if (r.spawnError !== undefined) return 'spawn_error';
  if (r.timedOut) return 'timeout';
  if (r.killed !== undefined) return 'killed';
  if (r.signal !== null && !r.graceKilled) return 'signal';
  return r.code === 0 || r.code === null ? 'ok' : 'error';
}

/** A cgi-bin App, plus what a server needs to manage it. */
export interface CgiBinApp extends App {
  /** Scripts running now, requests waiting for a slot, and what ended how. */
  stats(): CgiStats;
  /** Stops every running script group (SIGTERM, then SIGKILL) and answers queued requests 503; resolves when all exited. */
  close(): Promise<void>;
}

interface Config {
  select: SelectConfig;
  uid: number | undefined;
  gid: number | undefined;
  umask: number | undefined;
  env: EnvConfig;
  headersTimeout: number;
  idleTimeout: number;
  totalTimeout: number;
  killGrace: number;
  exitGrace: number;
  maxProcesses: number;
  maxQueue: number;
  queueTimeout: number;
  maxBodyBytes: number;
  spoolMemoryBytes: number;
  spoolDir: string;
  trustScriptFilename: boolean;
  headLimits: CgiHeadLimits;
  maxLocalRedirects: number;
  localRedirectApp: App | undefined;
  maxStderrBytes: number;
  scriptLog: string | undefined;
  scriptLogStderrBytes: number;
  logger: Logger;
}

function positive(name: string, value: number | undefined, def: number, allowZero = false): number {
  const v = value ?? def;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0) || !Number.isInteger(v)) {
    throw new TypeError(`Expected the \`${name}\` option to be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${String(value)}`);
  }
  return v;
}

/** The umask to apply, or undefined where the process cannot change it (worker threads). */
function umaskOf(mask: number): number | undefined {
  if (!Number.isInteger(mask) || mask < 0 || mask > 0o777) throw new TypeError(`Expected the \`umask\` option to be an integer 0..0o777, got ${String(mask)}`);
  return isMainThread ? mask : undefined;
}

/** Finds a command in PATH once (execvp would search on every spawn). */
function findCommand(command: string, path: string): string {
  if (command.includes('/')) return resolve(command);
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, fsConstants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // next directory
    }
  }
  return command; // not found now: spawn reports ENOENT (500) and the log says which
}

function resolveConfig(options: CgiBinOptions): Config {
  if (options === null || typeof options !== 'object') throw new TypeError('createCgiBinApp needs an options object with `root`');
  const D = CGI_BIN_DEFAULTS;
  if (typeof options.root !== 'string' || options.root === '') throw new TypeError('Expected the `root` option to be a directory path');
  const root = resolve(options.root);
  const realRoot = realpathSync.native(root);
  if (!statSync(realRoot).isDirectory()) throw new TypeError(`Expected the \`root\` option to be a directory, got ${root}`);
  const path = options.path ?? process.env.PATH ?? D.fallbackPath;
  const interpreters = new Map<string, ResolvedInterpreter>();
  for (const [ext, spec] of Object.entries(options.interpreters ?? {})) {
    const key = (ext.startsWith('.') ? ext : `.${ext}`).toLowerCase();
    const it: CgiInterpreter = typeof spec === 'string' ? { command: spec } : spec;
    if (typeof it.command !== 'string' || it.command === '') throw new TypeError(`Expected \`interpreters['${ext}'].command\` to be a command`);
    interpreters.set(key, { path: findCommand(it.command, path), args: it.args ?? [], env: it.env ?? {}, scriptArgument: it.scriptArgument ?? true });
  }
  const index = options.index ?? D.index;
  for (const name of index) {
    if (typeof name !== 'string' || name === '' || name.includes('/') || name === '.' || name === '..') throw new TypeError(`Expected \`index\` entries to be file names, got ${JSON.stringify(name)}`);
  }
  const spoolDir = options.spoolDir ?? tmpdir();
  if (!isAbsolute(resolve(spoolDir))) throw new TypeError('Expected `spoolDir` to be a directory');
  return {
    select: { root, realRoot, index, interpreters, nphPrefix: options.nphPrefix ?? D.nphPrefix, followSymlinks: options.followSymlinks ?? D.followSymlinks },
    env: {
      base: baseEnv(path, options.inheritEnv ?? D.inheritEnv, options.extraEnv ?? {}, process.env),
      passAuthorization: options.passAuthorization ?? D.passAuthorization,
      rejectFunctionDefinitions: options.rejectFunctionDefinitions ?? D.rejectFunctionDefinitions,
      documentRoot: options.documentRoot === undefined ? root : resolve(options.documentRoot),
    },
    uid: options.uid === undefined ? undefined : positive('uid', options.uid, 0, true),
    gid: options.gid === undefined ? undefined : positive('gid', options.gid, 0, true),
    umask: umaskOf(options.umask ?? D.umask),
    headersTimeout: positive('headersTimeout', options.headersTimeout, D.headersTimeout),
    idleTimeout: positive('idleTimeout', options.idleTimeout, D.idleTimeout),
    totalTimeout: positive('totalTimeout', options.totalTimeout, D.totalTimeout),
    killGrace: positive('killGrace', options.killGrace, D.killGrace, true),
    exitGrace: positive('exitGrace', options.exitGrace, D.exitGrace, true),
    maxProcesses: positive('maxProcesses', options.maxProcesses, D.maxProcesses),
    maxQueue: positive('maxQueue', options.maxQueue, D.maxQueue, true),
    queueTimeout: positive('queueTimeout', options.queueTimeout, D.queueTimeout),
    maxBodyBytes: positive('maxBodyBytes', options.maxBodyBytes, D.maxBodyBytes, true),
    spoolMemoryBytes: positive('spoolMemoryBytes', options.spoolMemoryBytes, D.spoolMemoryBytes, true),
    spoolDir: resolve(spoolDir),
    trustScriptFilename: options.trustScriptFilename ?? D.trustScriptFilename,
    headLimits: { ...D.headLimits, ...(options.headLimits ?? {}) },
    maxLocalRedirects: positive('maxLocalRedirects', options.maxLocalRedirects, D.maxLocalRedirects, true),
    localRedirectApp: options.localRedirectApp,
    maxStderrBytes: positive('maxStderrBytes', options.maxStderrBytes, D.maxStderrBytes, true),
    scriptLog: options.scriptLog === undefined ? undefined : resolve(options.scriptLog),
    scriptLogStderrBytes: positive('scriptLogStderrBytes', options.scriptLogStderrBytes, D.scriptLogStderrBytes, true),
    logger: options.logger ?? silentLogger(),
  };
}

/** C-17: at most `max` scripts at once, a bounded FIFO queue behind them. */
class Slots {
  running = 0;
  private readonly waiting: Array<(ok: boolean) => void> = [];

  constructor(
    private readonly max: number,
    private readonly maxQueue: number,
  ) {}

  get queued(): number {
    return this.waiting.length;
  }

  /** Resolves true with a slot, false for 503 (queue full, waited too long, or aborted). */
  acquire(timeout: number, signal: AbortSignal | undefined): Promise<boolean> | boolean {
    if (this.running < this.max && this.waiting.length === 0) {
      this.running++;
      return true;
    }
    if (this.waiting.length >= this.maxQueue) return false;
    return new Promise((resolvePromise) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = this.waiting.indexOf(done);
        if (i !== -1) this.waiting.splice(i, 1);
        resolvePromise(ok);
      };
      const onAbort = (): void => done(false);
      const timer = setTimeout(() => done(false), timeout);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(done);
    });
  }

  release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next(true); // the slot passes on: running stays the same
    else this.running--;
  }

  rejectAll(): void {
    for (const w of this.waiting.splice(0)) w(false);
  }
}

/** Internal: how many local redirects led to this environ. */
const REDIRECTS = Symbol('gatewire.cgi.redirects');

/**
 * How long a document response waits, once its head is parsed, for the script to finish before
 * the front starts streaming it (see CgiRun.settleWithin): most scripts end within a fraction of
 * a millisecond of their last write, and their answer then goes out whole.
 */
const COALESCE_MS = 5;

type Env = Environ & { [REDIRECTS]?: number };

/** Creates the cgi-bin App. Throws (TypeError, or the fs error) for bad options or a missing root. */
export function createCgiBinApp(options: CgiBinOptions): CgiBinApp {
  const cfg = resolveConfig(options);
  const log = cfg.logger;
  const slots = new Slots(cfg.maxProcesses, cfg.maxQueue);
  const runs = new Set<CgiRun>();
  let spawned = 0;
  let refused = 0;
  const exits: Record<CgiOutcome, number> = { ok: 0, error: 0, signal: 0, timeout: 0, killed: 0, spawn_error: 0 };
  let closing = false;

  const app = ((environ: Environ, startResponse: StartResponse) => handle(environ, startResponse)) as CgiBinApp;
  app.stats = () => ({ running: runs.size, queued: slots.queued, spawned, exits: { ...exits }, refused });
  app.close = async () => {
    closing = true;
    slots.rejectAll();
    const all = [...runs];
    for (const run of all) run.abort('server shutting down', 503);
    await Promise.all(all.map((r) => r.finished));
  };
  return app;

  async function handle(environ: Env, sr: StartResponse): Promise<Body> {
    const id = environ['gatewire.request_id'];
    const input = environ['gatewire.input'];

    // C-1: which script, before anything is spawned or read.
    const target = locate(environ);
    if ('status' in target) {
      log.warn(`cgi: ${target.status} ${target.reason}`, { request_id: id });
      return refuse(sr, id, target.status, input);
    }

    // C-9 / C-10: how the body reaches stdin.
    let stdin: RunStdin = { kind: 'none' };
    let contentLength: string | undefined;
    let spooled: SpooledBody | undefined;
    const declared = environ.CONTENT_LENGTH;
    if (declared !== undefined && declared !== '') {
      if (!/^[0-9]{1,15}$/.test(declared)) return refuse(sr, id, 400, input);
      const n = Number(declared);
      if (n > cfg.maxBodyBytes) {
        log.warn(`cgi: 413 request body of ${n} bytes over the limit ${cfg.maxBodyBytes}`, { request_id: id });
        return refuse(sr, id, 413, input);
      }
      contentLength = String(n);
      if (n > 0) stdin = { kind: 'stream', input };
    } else if (environ['gatewire.input_terminated']) {
      try {
        spooled = await spoolBody(input, { memoryBytes: cfg.spoolMemoryBytes, maxBytes: cfg.maxBodyBytes, dir: cfg.spoolDir });
      } catch (err) {
        const tooLarge = err instanceof SpoolLimitError || (err as { code?: string }).code === 'GATEWIRE_BODY_TOO_LARGE';
        log.warn(`cgi: ${tooLarge ? 413 : 400} request body: ${(err as Error).message}`, { request_id: id });
        return refuse(sr, id, tooLarge ? 413 : 400, input);
      }
      // An empty stream of unknown length (nginx's CONTENT_LENGTH "" on a GET) is no body (C-4).
      if (spooled.length > 0) contentLength = String(spooled.length);
      if (spooled.kind === 'file') stdin = { kind: 'fd', fd: spooled.fd };
      else if (spooled.length > 0) stdin = { kind: 'buffer', data: spooled.data };
    }

    try {
      return await runScript(environ, sr, target, stdin, contentLength);
    } finally {
      if (spooled?.kind === 'file') await spooled.close().catch(() => undefined);
    }
  }

  /** The script of this request: the web server's SCRIPT_FILENAME when inside the root, else the path walk. */
  function locate(environ: Env): (ScriptTarget & { scriptName: string }) | { status: 400 | 403 | 404; reason: string } {
    const mount = environ.SCRIPT_NAME ?? '';
    const info = environ.PATH_INFO ?? '';
    const sent = environ.SCRIPT_FILENAME;
    if (cfg.trustScriptFilename && typeof sent === 'string' && sent !== '') {
      const byName = selectByFilename(sent, cfg.select);
      if (byName !== undefined) {
        const sp = byName.scriptPath;
        // Mounted (SCRIPT_NAME = mount, PATH_INFO = /script/rest) or split by the web server
        // (nginx fastcgi_split_path_info: SCRIPT_NAME ends with the script, PATH_INFO = rest).
        if (info === sp || info.startsWith(`${sp}/`)) return { ...byName, pathInfo: info.slice(sp.length), scriptName: mount + sp };
        return { ...byName, pathInfo: info, scriptName: mount.endsWith(sp) ? mount : mount + sp };
      }
      log.debug('cgi: SCRIPT_FILENAME not under the root or not runnable; selecting by path', { request_id: environ['gatewire.request_id'] });
    }
    const found = selectScript(info, cfg.select);
    if ('status' in found) return found;
    return { ...found.target, scriptName: mount + found.target.scriptPath };
  }

  async function runScript(
    environ: Env,
    sr: StartResponse,
    target: ScriptTarget & { scriptName: string },
    stdin: RunStdin,
    contentLength: string | undefined,
  ): Promise<Body> {
    const id = environ['gatewire.request_id'];
    const input = environ['gatewire.input'];
    const built = buildChildEnv(
      environ,
      { scriptName: target.scriptName, pathInfo: target.pathInfo, scriptFilename: target.file, contentLength, interpreterEnv: target.interpreter?.env },
      cfg.env,
    );
    if ('status' in built) {
      log.warn(`cgi: 400 ${built.reason}`, { request_id: id });
      return refuse(sr, id, 400, input);
    }
    if (closing) return refuse(sr, id, 503, input);

    const signal = environ['gatewire.signal'] as AbortSignal | undefined;
    const aborted = (): boolean => signal?.aborted === true;
    const slot = slots.acquire(cfg.queueTimeout, signal);
    if (!(slot === true || (await slot))) {
      if (aborted()) return refuse(sr, id, 503, input);
      refused++;
      log.warn(`cgi: 503 ${slots.queued >= cfg.maxQueue ? 'queue full' : 'no free slot in time'} (${cfg.maxProcesses} running)`, { request_id: id });
      return refuse(sr, id, 503, input, [['Retry-After', '1']]);
    }
    if (aborted()) {
      slots.release();
      return refuse(sr, id, 503, input);
    }

    const it = target.interpreter;
    const command = it === undefined ? target.realFile : it.path;
    const args = it === undefined ? [] : it.scriptArgument ? [...it.args, target.realFile] : [...it.args];
    const scriptLabel = target.scriptName;
    const run = new CgiRun({
      command,
      args,
      cwd: target.cwd,
      env: built.env,
      stdin,
      uid: cfg.uid,
      gid: cfg.gid,
      umask: cfg.umask,
      nph: target.nph,
      headLimits: cfg.headLimits,
      timeouts: { headers: cfg.headersTimeout, idle: cfg.idleTimeout, total: cfg.totalTimeout, killGrace: cfg.killGrace, exitGrace: cfg.exitGrace },
      maxStderrBytes: cfg.maxStderrBytes,
      stderrTailBytes: cfg.scriptLog === undefined ? 0 : cfg.scriptLogStderrBytes,
      onStderrLine: (line, pid) => log.error(`cgi stderr: ${escapeText(line)}`, { script: scriptLabel, pid, request_id: id }),
    });
    spawned++;
    runs.add(run);
    const onAbort = (): void => run.abort('client closed the connection');
    signal?.addEventListener('abort', onAbort, { once: true });

    let answered = 0;
    void run.finished.then((result) => {
      runs.delete(run);
      slots.release();
      exits[cgiOutcome(result)]++;
      signal?.removeEventListener('abort', onAbort);
      report(environ, target, result, answered);
    });

    const outcome = await run.head;
    if (!outcome.ok) {
      answered = outcome.status;
      if (!aborted()) log.error(`cgi: ${outcome.status} ${scriptLabel}: ${outcome.reason}`, { request_id: id, pid: run.pid });
      return refuse(sr, id, outcome.status, input);
    }
    if (outcome.nph !== undefined) {
      // C-28: where the front can, the script's bytes go to the client as written (RFC 3875 §5.2).
      const raw = environ['gatewire.raw_response'];
      if (typeof raw === 'function' && (await raw(outcome.nph.status))) {
        answered = outcome.nph.status;
        return bodyOf(run, undefined, run.rawHead);
      }
      const nph = nphResponse(outcome.nph);
      if (typeof nph === 'string') {
        answered = 502;
        log.error(`cgi: 502 ${scriptLabel}: ${nph}`, { request_id: id, pid: run.pid });
        run.abort('unusable NPH head');
        return refuse(sr, id, 502, input);
      }
      answered = nph.status;
      sr(`${nph.status} ${nph.reason}`, nph.headers);
      return bodyOf(run);
    }

    const head = outcome.head;
    if (head.kind === 'document') await run.settleWithin(COALESCE_MS);
    switch (head.kind) {
      case 'client-redirect': {
        // C-23: absolute Location without Status → 302; the script's body is discarded (Apache).
        answered = 302;
        run.discard();
        sr('302 Found', head.headers.filter(([name]) => name.toLowerCase() !== 'content-type'));
        return [];
      }
      case 'local-redirect': {
        let hasBody: boolean;
        try {
          hasBody = await run.hasBody();
        } catch (err) {
          answered = 504;
          log.error(`cgi: 504 ${scriptLabel}: ${(err as Error).message}`, { request_id: id, pid: run.pid });
          return refuse(sr, id, 504, input);
        }
        if (hasBody) {
          // §5.3: a local Location followed by body bytes is a 302 with that body.
          answered = 302;
          return documentResponse(sr, run, head, environ);
        }
        answered = 200;
        return localRedirect(environ, sr, head.location as string);
      }
      default:
        answered = head.status;
        return documentResponse(sr, run, head, environ);
    }
  }

  function documentResponse(sr: StartResponse, run: CgiRun, head: CgiResponseHead, environ: Env): Body {
    sr(`${head.status} ${head.reason}`, head.headers);
    if (head.contentType !== undefined) return bodyOf(run);
    // C-24: a body without Content-Type is passed as it is, never sniffed; worth a line.
    return bodyOf(run, () =>
      log.warn(`cgi: ${environ.SCRIPT_NAME}${environ.PATH_INFO}: response body without Content-Type`, { request_id: environ['gatewire.request_id'] }),
    );
  }

  /** C-23: re-dispatch `Location: /path?query` as a GET (HEAD stays HEAD) without the request body. */
  async function localRedirect(environ: Env, sr: StartResponse, location: string): Promise<Body> {
    const id = environ['gatewire.request_id'];
    const depth = (environ[REDIRECTS] ?? 0) + 1;
    drain(environ['gatewire.input']);
    if (depth > cfg.maxLocalRedirects) {
      log.error(`cgi: 500 more than ${cfg.maxLocalRedirects} local redirects (last: ${escapeText(location)})`, { request_id: id });
      return refuse(sr, id, 500, undefined);
    }
    const q = location.indexOf('?');
    const rawPath = q === -1 ? location : location.slice(0, q);
    const path = percentDecodePath(rawPath);
    if (path === null) {
      log.error(`cgi: 502 local redirect to a path with NUL: ${escapeText(location)}`, { request_id: id });
      return refuse(sr, id, 502, undefined);
    }
    const mount = environ.SCRIPT_NAME ?? '';
    const below = mount === '' ? path : path === mount ? '' : path.startsWith(`${mount}/`) ? path.slice(mount.length) : undefined;
    const next: Env = { ...environ };
    next.REQUEST_METHOD = environ.REQUEST_METHOD === 'HEAD' ? 'HEAD' : 'GET';
    next.QUERY_STRING = q === -1 ? '' : location.slice(q + 1);
    next.REQUEST_URI = location;
    next.REDIRECT_URL = (environ.REQUEST_URI ?? '').split('?')[0];
    // Apache's convention: the status of the answer that redirected, 200 for a CGI local
    // redirect; a web server's own value (nginx's fastcgi_params send 200) is kept.
    if (next.REDIRECT_STATUS === undefined || next.REDIRECT_STATUS === '') next.REDIRECT_STATUS = '200';
    delete next.CONTENT_LENGTH;
    delete next.CONTENT_TYPE;
    delete next.SCRIPT_FILENAME; // the web server's choice was for the first script
    next['gatewire.input'] = Readable.from([]);
    next['gatewire.input_terminated'] = false;
    next[REDIRECTS] = depth;
    if (below === undefined) {
      if (cfg.localRedirectApp === undefined) {
        sr('302 Found', [['Location', location]]);
        return [];
      }
      next.SCRIPT_NAME = '';
      next.PATH_INFO = path;
      return cfg.localRedirectApp(next, sr);
    }
    next.PATH_INFO = below;
    return handle(next, sr);
  }

  function report(environ: Env, target: ScriptTarget & { scriptName: string }, r: RunResult, status: number): void {
    const id = environ['gatewire.request_id'];
    const label = target.scriptName;
    if (r.spawnError !== undefined) log.error(`cgi: cannot run ${target.realFile}: ${r.spawnError.message}`, { request_id: id });
    else if (r.killed !== undefined) log.warn(`cgi: ${label} stopped: ${r.killed}`, { request_id: id, pid: r.pid });
    else if (r.signal !== null && !r.graceKilled) log.warn(`cgi: ${label} died from ${r.signal}`, { request_id: id, pid: r.pid });
    else if (r.code !== null && r.code !== 0) log.warn(`cgi: ${label} exited with status ${r.code}`, { request_id: id, pid: r.pid });
    const failed = status >= 500 || r.spawnError !== undefined || r.killed !== undefined || (r.signal !== null && !r.graceKilled) || (r.code !== null && r.code !== 0);
    if (failed && cfg.scriptLog !== undefined) writeScriptLog(cfg.scriptLog, environ, target, r, status, log);
  }
}

/** A Readable's remaining bytes are read and dropped (the client's framing stays intact, C-11). */
function drain(input: Readable | undefined): void {
  if (input === undefined || input.readableEnded || input.destroyed) return;
  input.on('error', () => undefined);
  input.resume();
}

/** The host's own answer (src/reply.ts: the same text as every response gatewire writes itself). */
function refuse(sr: StartResponse, id: string, status: number, input: Readable | undefined, extra: HeaderList = []): Body {
  drain(input);
  return replyFromApp(sr, status, id, extra);
}

/**
 * The body of a run: an async iterator over stdout; a body already complete when the head was
 * read goes out in one piece, so the front can send an exact Content-Length. `prefix` goes first
 * (the raw head of an NPH response, C-28).
 */
function bodyOf(run: CgiRun, onBody?: () => void, prefix?: Buffer): Body {
  if (run.completeNow) {
    const all = run.takeAll();
    if (all.length > 0) onBody?.();
    if (prefix !== undefined && prefix.length > 0) all.unshift(prefix);
    return all.length <= 1 ? all : [Buffer.concat(all)];
  }
  let done = false;
  let first = onBody;
  let pending = prefix !== undefined && prefix.length > 0 ? prefix : undefined;
  const iterator: AsyncIterableIterator<Buffer> & { close(): void } = {
    [Symbol.asyncIterator]() {
      return iterator;
    },
    async next() {
      if (pending !== undefined) {
        const value = pending;
        pending = undefined;
        return { value, done: false };
      }
      const r = await run.next();
      if (r.done) done = true;
      else if (first !== undefined) {
        first();
        first = undefined;
      }
      return r;
    },
    async return() {
      // The exchange stopped early (client gone, R-8, R-11): stop the script too.
      if (!done) run.abort('response cut short');
      done = true;
      return { value: undefined, done: true };
    },
    close() {
      if (!done && !run.outputEnded) run.abort('response cut short');
    },
  };
  return iterator;
}

/**
 * An NPH head as start_response arguments (C-28, within the App contract): the fields in order,
 * minus what the front owns (framing, hop-by-hop) — or why it cannot be served (502).
 */
function nphResponse(nph: NphResponseHead): { status: number; reason: string; headers: HeaderList } | string {
  if (nph.status < 200) return `NPH status ${nph.status}: interim responses are not supported`;
  const headers: HeaderList = [];
  for (const [name, value] of nph.headers) {
    const lower = name.toLowerCase();
    if (lower === 'transfer-encoding') return 'NPH script sent Transfer-Encoding: the body framing would be doubled';
    if (lower === 'content-length' || lower === 'status' || isHopByHop(lower)) continue;
    headers.push([name, value]);
  }
  return { status: nph.status, reason: nph.reason, headers };
}

const REDACT = new Set(['HTTP_AUTHORIZATION', 'HTTP_PROXY_AUTHORIZATION', 'HTTP_COOKIE']);

/** Apache ScriptLog-style entry: request line, headers, exit status, stderr tail. */
function writeScriptLog(file: string, environ: Env, target: ScriptTarget, r: RunResult, status: number, log: Logger): void {
  const lines: string[] = [];
  const uri = environ.REQUEST_URI ?? `${environ.SCRIPT_NAME}${environ.PATH_INFO}`;
  lines.push(`%% [${new Date().toISOString()}] ${environ.REQUEST_METHOD} ${uri} ${environ.SERVER_PROTOCOL}`);
  lines.push(`%% ${status || '-'} ${target.realFile}`);
  lines.push(`%% request id ${environ['gatewire.request_id']}, pid ${r.pid ?? '-'}`);
  lines.push('%request');
  lines.push(`${environ.REQUEST_METHOD} ${uri} ${environ.SERVER_PROTOCOL}`);
  for (const key of Object.keys(environ)) {
    if (!key.startsWith('HTTP_')) continue;
    const name = key.slice(5).toLowerCase().replace(/(^|_)([a-z])/g, (_m, sep: string, c: string) => (sep ? '-' : '') + c.toUpperCase());
    lines.push(`${name}: ${REDACT.has(key) ? '[redacted]' : String(environ[key])}`);
  }
  if (environ.CONTENT_TYPE !== undefined) lines.push(`Content-Type: ${environ.CONTENT_TYPE}`);
  if (environ.CONTENT_LENGTH !== undefined) lines.push(`Content-Length: ${environ.CONTENT_LENGTH}`);
  lines.push('%response');
  const exit = r.spawnError !== undefined ? `spawn failed: ${r.spawnError.code ?? r.spawnError.message}` : r.signal !== null ? `signal ${r.signal}` : `exit status ${r.code ?? '-'}`;
  lines.push(`${exit}${r.killed !== undefined ? `; stopped by the host: ${r.killed}` : ''}; ${r.bodyBytes} body bytes`);
  lines.push(`%stderr (${r.stderrBytes} bytes${r.stderrBytes > r.stderrTail.length ? `, last ${r.stderrTail.length}` : ''})`);
  const tail = r.stderrTail.toString('latin1');
  if (tail !== '') lines.push(...tail.replace(/\n$/, '').split('\n'));
  const text = `${lines.map(escapeControls).join('\n')}\n`;
  appendFile(file, text, { mode: 0o600 }, (err) => {
    if (err) log.error(`cgi: cannot write the script log ${file}: ${err.message}`);
  });
}

/** Control bytes and DEL as `\xHH`, so a client or a script cannot forge script-log lines. */
function escapeControls(line: string): string {
  return line.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
