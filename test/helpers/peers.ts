/**
 * Harness for tests against real peer servers: nginx, Apache httpd, spawn-fcgi + fcgiwrap,
 * cgi-fcgi, uWSGI, php-cgi, php-fpm, python3, chromium (the browser tests). Every peer is the
 * Debian binary, started for real in a
 * temporary folder with a config rendered from fixtures/, listening only on 127.0.0.1 or a
 * unix socket, and stopped (whole process group) when the test is done.
 *
 * Missing peers: describeWithPeers() skips the suite with the reason in its title, or, under
 * GATEWIRE_REQUIRE_PEERS=1 (CI), registers one failing test instead.
 *
 * Running as root (this machine and CI do): nginx runs with `user root root;` so its workers
 * can reach anything the test creates; Apache refuses to serve as root, so its children drop
 * to www-data (or nobody), the prefix is opened to them (0755), and unix sockets and scripts
 * a test wants Apache to reach go through openToPeers() / copyForPeers().
 *
 * Nothing outlives the test file: an afterAll registered on import stops every peer still
 * running, and each peer has a watchdog `sh` that SIGKILLs its process group if the test
 * process dies without stopping it.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, tmpDir, waitForFile, waitForPort, waitForUnixSocket } from './net.js';
import type { TmpDir } from './net.js';

/** Folder holding nginx/, apache/ and cgi/ fixtures. */
export const FIXTURES_DIR = path.resolve(__dirname, '..', '..', 'fixtures');

const APACHE_MODULES_DIR = process.env['GATEWIRE_APACHE_MODULES'] ?? '/usr/lib/apache2/modules';
/** Modules fixtures/apache/base.conf loads (mod_log_config and mod_unixd are built in). */
const APACHE_MODULES = [
  'mod_mpm_event.so',
  'mod_mpm_prefork.so',
  'mod_authz_core.so',
  'mod_alias.so',
  'mod_mime.so',
  'mod_env.so',
  'mod_headers.so',
  'mod_cgi.so',
  'mod_cgid.so',
  'mod_proxy.so',
  'mod_proxy_fcgi.so',
  'mod_proxy_scgi.so',
  'mod_proxy_uwsgi.so',
];
const UWSGI_PLUGINS_DIR = '/usr/lib/uwsgi/plugins';

// ---------------------------------------------------------------------------------------
// Locating peers
// ---------------------------------------------------------------------------------------

export type PeerName =
  | 'nginx'
  | 'apache2'
  | 'cgi-fcgi'
  | 'spawn-fcgi'
  | 'fcgiwrap'
  | 'uwsgi'
  | 'uwsgi-python3'
  | 'php-cgi'
  | 'php-fpm8.2'
  | 'python3'
  | 'chromium'
  | 'wrk';

interface PeerSpec {
  /** Executable name looked up on PATH and in the sbin/bin folders. */
  bin: string;
  /** Checked before PATH (Debian puts daemons in /usr/sbin, often not on a user's PATH). */
  fixed?: string[];
  /** Debian package, for the reason text. */
  pkg: string;
  /** Extra check once the binary is found; returns a reason when something is missing. */
  extra?: () => string | undefined;
}

const PEERS: Record<PeerName, PeerSpec> = {
  nginx: { bin: 'nginx', fixed: ['/usr/sbin/nginx'], pkg: 'nginx' },
  apache2: {
    bin: 'apache2',
    fixed: ['/usr/sbin/apache2'],
    pkg: 'apache2',
    extra: () => {
      const missing = APACHE_MODULES.filter((m) => !fs.existsSync(path.join(APACHE_MODULES_DIR, m)));
      return missing.length === 0 ? undefined : `apache2 module ${missing.join(', ')} missing in ${APACHE_MODULES_DIR}`;
    },
  },
  'cgi-fcgi': { bin: 'cgi-fcgi', pkg: 'libfcgi-bin' },
  'spawn-fcgi': { bin: 'spawn-fcgi', pkg: 'spawn-fcgi' },
  fcgiwrap: { bin: 'fcgiwrap', fixed: ['/usr/sbin/fcgiwrap'], pkg: 'fcgiwrap' },
  uwsgi: { bin: 'uwsgi', pkg: 'uwsgi-core' },
  'uwsgi-python3': {
    bin: 'uwsgi',
    pkg: 'uwsgi-plugin-python3',
    extra: () =>
      fs.existsSync(path.join(UWSGI_PLUGINS_DIR, 'python3_plugin.so'))
        ? undefined
        : `uwsgi python3 plugin not installed (${UWSGI_PLUGINS_DIR}/python3_plugin.so; package uwsgi-plugin-python3)`,
  },
  'php-cgi': { bin: 'php-cgi', pkg: 'php-cgi' },
  'php-fpm8.2': { bin: 'php-fpm8.2', fixed: ['/usr/sbin/php-fpm8.2'], pkg: 'php8.2-fpm' },
  // Debian's python first: a pyenv python under /root is unreadable once http.server --cgi
  // drops to nobody.
  python3: { bin: 'python3', fixed: ['/usr/bin/python3'], pkg: 'python3' },
  // The browser tests drive Debian's build (playwright-core downloads none).
  chromium: { bin: 'chromium', fixed: ['/usr/bin/chromium'], pkg: 'chromium' },
  // The load generator of the reload and scale-out tests (and of bench/).
  wrk: { bin: 'wrk', fixed: ['/usr/bin/wrk'], pkg: 'wrk' },
};

export interface PeerLookup {
  name: PeerName;
  /** Absolute path of the executable, or undefined when the peer is unusable. */
  path: string | undefined;
  /** Short human text: "found at /usr/sbin/nginx" or "nginx not installed". */
  reason: string;
}

function isExecutableFile(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * Finds a peer's executable. Order: env `GATEWIRE_PEER_<NAME>` (e.g. GATEWIRE_PEER_NGINX,
 * GATEWIRE_PEER_CGI_FCGI) to point at a custom build, then Debian's fixed path, then PATH,
 * then /usr/sbin, /usr/bin, /sbin, /bin.
 */
export function peer(name: PeerName): PeerLookup {
  const spec = PEERS[name];
  const envName = `GATEWIRE_PEER_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
  const override = process.env[envName];
  const pathDirs = (process.env['PATH'] ?? '').split(path.delimiter).filter((d) => d !== '');
  const candidates =
    override !== undefined && override !== ''
      ? [override]
      : [
          ...(spec.fixed ?? []),
          ...[...pathDirs, '/usr/sbin', '/usr/bin', '/sbin', '/bin'].map((d) => path.join(d, spec.bin)),
        ];
  const found = candidates.find(isExecutableFile);
  if (found === undefined) {
    const reason = override !== undefined && override !== '' ? `${name} not executable at ${envName}=${override}` : `${name} not installed`;
    return { name, path: undefined, reason };
  }
  const problem = spec.extra?.();
  return problem === undefined ? { name, path: found, reason: `found at ${found}` } : { name, path: undefined, reason: problem };
}

/** Path of a peer that must exist (call inside describeWithPeers, where it does). */
export function peerPath(name: PeerName): string {
  const found = peer(name);
  if (found.path === undefined) throw new Error(`${name}: ${found.reason} (Debian package ${PEERS[name].pkg})`);
  return found.path;
}

export type PeerSuitePlan =
  | { mode: 'run'; title: string }
  | { mode: 'skip'; title: string; reason: string }
  | { mode: 'fail'; title: string; testName: string; message: string };

/**
 * What describeWithPeers registers for these peers: run the suite, skip it (reason in the
 * title), or, under GATEWIRE_REQUIRE_PEERS=1, fail with what is missing. Pure apart from the
 * file-system lookups, so the three outcomes can be tested.
 */
export function planPeerSuite(
  title: string,
  peerNames: readonly PeerName[],
  env: NodeJS.ProcessEnv = process.env,
  lookup: (name: PeerName) => PeerLookup = peer,
): PeerSuitePlan {
  const missing = peerNames.map(lookup).filter((p) => p.path === undefined);
  if (missing.length === 0) return { mode: 'run', title };
  const reason = missing.map((p) => p.reason).join('; ');
  if (env['GATEWIRE_REQUIRE_PEERS'] !== '1') return { mode: 'skip', title: `${title} (skipped: ${reason})`, reason };
  const names = missing.map((p) => p.name).join(', ');
  const packages = [...new Set(missing.map((p) => PEERS[p.name].pkg))].join(' ');
  return {
    mode: 'fail',
    title,
    testName: `requires ${names}`,
    message:
      `${names} ${missing.length === 1 ? 'is' : 'are'} required (GATEWIRE_REQUIRE_PEERS=1) but not installed ` +
      `(${reason}); apt-get install ${packages}`,
  };
}

/**
 * `describe(title, fn)` when every peer is present. Otherwise the suite is registered as
 * skipped with the reason in its title (`title (skipped: nginx not installed)`), or, under
 * GATEWIRE_REQUIRE_PEERS=1, as a suite with one test that fails and names what is missing.
 */
export function describeWithPeers(title: string, peerNames: readonly PeerName[], fn: () => void): void {
  const plan = planPeerSuite(title, peerNames);
  if (plan.mode === 'run') describe(plan.title, fn);
  else if (plan.mode === 'skip') describe.skip(plan.title, fn);
  else {
    describe(plan.title, () => {
      test(plan.testName, () => {
        throw new Error(plan.message);
      });
    });
  }
}

// ---------------------------------------------------------------------------------------
// Who the peers run as
// ---------------------------------------------------------------------------------------

export const RUNNING_AS_ROOT = typeof process.geteuid === 'function' && process.geteuid() === 0;

export interface RunAs {
  user: string;
  uid: number;
  gid: number;
}

function passwdEntry(user: string): RunAs | undefined {
  try {
    for (const line of fs.readFileSync('/etc/passwd', 'latin1').split('\n')) {
      const f = line.split(':');
      if (f[0] === user && f[2] !== undefined && f[3] !== undefined) return { user, uid: Number(f[2]), gid: Number(f[3]) };
    }
  } catch {
    // no /etc/passwd: fall through
  }
  return undefined;
}

/**
 * The account Apache's children run as. As root: www-data, else nobody (Apache will not
 * serve as root: "Apache has not been designed to serve pages while running as root" unless
 * built with BIG_SECURITY_HOLE, which Debian is not). As anyone else: the current user
 * (Apache cannot switch user then and ignores User/Group).
 */
export function apacheRunAs(): RunAs {
  if (!RUNNING_AS_ROOT) {
    const info = os.userInfo();
    return { user: info.username, uid: info.uid, gid: info.gid };
  }
  return passwdEntry('www-data') ?? passwdEntry('nobody') ?? { user: 'nobody', uid: 65534, gid: 65534 };
}

/**
 * Lets a peer running as an unprivileged user (Apache's children under root) reach paths the
 * test created: sockets become 0666, folders gain go+rx, files go+r. Group too, because
 * some peers drop only the uid (python's http.server --cgi keeps gid 0). Parent folders are
 * not touched; keep sockets inside a tmpDir you pass here too.
 */
export function openToPeers(...paths: string[]): void {
  for (const p of paths) {
    const st = fs.statSync(p);
    if (st.isSocket()) fs.chmodSync(p, 0o666);
    else if (st.isDirectory()) fs.chmodSync(p, (st.mode & 0o7777) | 0o055);
    else fs.chmodSync(p, (st.mode & 0o7777) | 0o044);
  }
}

/**
 * Copies files into a fresh temporary folder that peers running as another user can read
 * and execute (folders 0755, files keep their mode plus go+r). Use it for CGI scripts run by
 * Apache's children or http.server's nobody: the checkout itself may sit under a 0700 home.
 * @param files destination path relative to the folder → source path
 * @example const cgi = copyForPeers('gw-cgi', { 'hello.sh': HELLO }); ... cgi.cleanup();
 */
export function copyForPeers(prefix: string, files: Record<string, string>): TmpDir {
  const dir = tmpDir(prefix);
  fs.chmodSync(dir.path, 0o755);
  for (const [dest, src] of Object.entries(files)) {
    const target = path.join(dir.path, dest);
    const rel = path.relative(dir.path, path.dirname(target));
    let at = dir.path;
    for (const part of rel === '' ? [] : rel.split(path.sep)) {
      at = path.join(at, part);
      if (!fs.existsSync(at)) fs.mkdirSync(at, { mode: 0o755 });
    }
    fs.copyFileSync(src, target);
    fs.chmodSync(target, (fs.statSync(src).mode & 0o7777) | 0o044);
  }
  return dir;
}

// ---------------------------------------------------------------------------------------
// Generic process management
// ---------------------------------------------------------------------------------------

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Spawn failure (ENOENT, EACCES), when the process never ran. */
  error?: Error;
}

export interface StartProcessOptions {
  /** Label used in logs and error messages. @default basename of cmd */
  name?: string;
  /** Added to (or, with inheritEnv false, used instead of) process.env. */
  env?: NodeJS.ProcessEnv;
  /** @default true */
  inheritEnv?: boolean;
  cwd?: string;
  /** Ready when 127.0.0.1:readyPort (or readyHost) accepts connections. */
  readyPort?: number;
  /** @default '127.0.0.1' */
  readyHost?: string;
  /** Ready when this unix socket accepts connections. */
  readySocket?: string;
  /** Ready when stdout or stderr contains this text or matches this pattern. */
  readyLine?: RegExp | string;
  /** Ready when this file exists (a pid file written after the listeners are bound). */
  readyFile?: string;
  /** @default 10000 */
  readyTimeoutMs?: number;
  /** Sent to the process group by stop(). @default 'SIGTERM' */
  stopSignal?: NodeJS.Signals;
  /** Time between stopSignal and SIGKILL. @default 2000 */
  stopGraceMs?: number;
  /** Files (log files) whose contents logs() appends; read again on each call until stop(). */
  logFiles?: string[];
}

export interface PeerProcess {
  readonly name: string;
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  /** undefined while running. */
  readonly exitInfo: ExitInfo | undefined;
  stdout(): string;
  stderr(): string;
  /** stdout and stderr interleaved in arrival order. */
  output(): string;
  /** Output plus every log file, labelled; what failures show. */
  logs(): string;
  /** Signals the whole process group, waits, SIGKILLs stragglers. Idempotent. */
  stop(): Promise<ExitInfo>;
}

const MAX_CAPTURE = 2 * 1024 * 1024;
const LOG_TAIL = 4000;

/** Orders stop() calls against withPeerLogs() calls. */
let clock = 0;

/** Every started, not yet stopped process in this test file. */
const live = new Set<ProcessImpl>();
/** Every process started in this test file, stopped or not, for withPeerLogs(). */
const started: ProcessImpl[] = [];

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is gone already
  }
}

class ProcessImpl implements PeerProcess {
  readonly name: string;
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  exitInfo: ExitInfo | undefined;
  private out = '';
  private err = '';
  private both = '';
  private readonly logFiles: string[];
  private readonly logCache = new Map<string, string>();
  private stopping: Promise<ExitInfo> | undefined;
  private readonly watchdog: ChildProcess | undefined;

  private readonly stopSignal: NodeJS.Signals;
  private readonly stopGraceMs: number;

  constructor(child: ChildProcess, name: string, stopSignal: NodeJS.Signals, stopGraceMs: number, logFiles: string[]) {
    this.name = name;
    this.stopSignal = stopSignal;
    this.stopGraceMs = stopGraceMs;
    this.logFiles = logFiles;
    this.exited = new Promise((resolve) => {
      child.once('error', (error) => {
        this.exitInfo ??= { code: null, signal: null, error };
        resolve(this.exitInfo);
      });
      child.once('exit', (code, signal) => {
        this.exitInfo ??= { code, signal };
        resolve(this.exitInfo);
      });
    });
    this.pid = child.pid ?? -1;
    child.stdout?.setEncoding('latin1');
    child.stderr?.setEncoding('latin1');
    child.stdout?.on('data', (s: string) => this.capture('out', s));
    child.stderr?.on('data', (s: string) => this.capture('err', s));
    this.watchdog = this.pid > 0 ? startWatchdog(this.pid) : undefined;
    void this.exited.then(() => live.delete(this));
  }

  private capture(which: 'out' | 'err', s: string): void {
    const trim = (t: string): string => (t.length > MAX_CAPTURE ? t.slice(t.length - MAX_CAPTURE) : t);
    if (which === 'out') this.out = trim(this.out + s);
    else this.err = trim(this.err + s);
    this.both = trim(this.both + s);
  }

  stdout(): string {
    return this.out;
  }
  stderr(): string {
    return this.err;
  }
  output(): string {
    return this.both;
  }

  private readLogs(): void {
    for (const file of this.logFiles) {
      try {
        this.logCache.set(file, fs.readFileSync(file, 'latin1'));
      } catch {
        // not created yet, or removed with the prefix: keep the last copy
      }
    }
  }

  /** Contents of one of the logFiles (last copy read before the prefix was removed). */
  logFile(file: string): string {
    if (this.stopping === undefined) this.readLogs();
    return this.logCache.get(file) ?? '';
  }

  logs(): string {
    if (this.stopping === undefined) this.readLogs();
    const tail = (t: string): string => (t.length > LOG_TAIL ? `…${t.slice(t.length - LOG_TAIL)}` : t);
    const parts = [`--- ${this.name} (pid ${this.pid}) ${this.describeState()} ---`, tail(this.both) || '(no output)'];
    for (const file of this.logFiles) parts.push(`--- ${this.name}: ${file} ---`, tail(this.logCache.get(file) ?? '') || '(empty)');
    return parts.join('\n');
  }

  private describeState(): string {
    const e = this.exitInfo;
    if (e === undefined) return 'running';
    if (e.error !== undefined) return `failed to start: ${e.error.message}`;
    return e.signal !== null ? `killed by ${e.signal}` : `exited with code ${String(e.code)}`;
  }

  /** Tick of the stop() call; undefined while not stopped by the harness. */
  stoppedAt: number | undefined;

  stop(): Promise<ExitInfo> {
    this.stoppedAt ??= ++clock;
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<ExitInfo> {
    this.readLogs();
    if (this.exitInfo === undefined && this.pid > 0) {
      killGroup(this.pid, this.stopSignal);
      const timer = new Promise<'timeout'>((resolve) => {
        const t = setTimeout(() => resolve('timeout'), this.stopGraceMs);
        void this.exited.then(() => clearTimeout(t));
      });
      if ((await Promise.race([this.exited, timer])) === 'timeout') killGroup(this.pid, 'SIGKILL');
    }
    const info = await this.exited;
    // The leader is gone; take down anything it left in its group (CGI children, workers).
    if (this.pid > 0) killGroup(this.pid, 'SIGKILL');
    this.watchdog?.kill('SIGKILL');
    this.readLogs();
    live.delete(this);
    return info;
  }
}

/**
 * A tiny `sh` that SIGKILLs the peer's process group when its stdin reaches EOF, which
 * happens when this test process dies in any way (crash, SIGKILL, jest timeout). Stopped
 * quietly (SIGKILL to the watchdog itself) on a normal stop().
 */
function startWatchdog(pgid: number): ChildProcess | undefined {
  try {
    const dog = spawn('/bin/sh', ['-c', 'read -r _ignored; kill -KILL "-$0" 2>/dev/null', String(pgid)], {
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    dog.on('error', () => undefined);
    dog.stdin?.on('error', () => undefined);
    dog.unref();
    const stdin = dog.stdin as unknown as { unref?: () => void } | null;
    stdin?.unref?.();
    return dog;
  } catch {
    return undefined;
  }
}

/** Stops every process this test file started and has not stopped. */
export async function stopAllPeers(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop()));
}

// When jest is the runner, nothing started here outlives the test file.
if (typeof afterAll === 'function') afterAll(stopAllPeers, 30_000);

/**
 * Spawns `cmd` in its own process group (detached), captures its output, waits until every
 * ready* condition holds, and returns a handle whose stop() kills the group. Rejects, after
 * killing it, when the process exits or the wait times out first; the error carries its logs.
 */
export async function startProcess(cmd: string, args: readonly string[], options: StartProcessOptions = {}): Promise<PeerProcess> {
  const {
    name = path.basename(cmd),
    env,
    inheritEnv = true,
    cwd,
    readyPort,
    readyHost = '127.0.0.1',
    readySocket,
    readyLine,
    readyFile,
    readyTimeoutMs = 10_000,
    stopSignal = 'SIGTERM',
    stopGraceMs = 2000,
    logFiles = [],
  } = options;
  const child = spawn(cmd, args, {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: inheritEnv ? { ...process.env, ...env } : { ...env },
    ...(cwd !== undefined ? { cwd } : {}),
  });
  const proc = new ProcessImpl(child, name, stopSignal, stopGraceMs, logFiles);
  live.add(proc);
  started.push(proc);

  const exitedReason = (): string | undefined => {
    const e = proc.exitInfo;
    if (e === undefined) return undefined;
    return e.error !== undefined ? `failed to start: ${e.error.message}` : `${name} exited (code ${String(e.code)}, signal ${String(e.signal)})`;
  };
  const deadline = Date.now() + readyTimeoutMs;
  const remaining = (): number => Math.max(1, deadline - Date.now());
  try {
    if (readyFile !== undefined) await waitForFile(readyFile, remaining(), exitedReason);
    if (readyPort !== undefined) await waitForPort(readyPort, readyHost, remaining(), exitedReason);
    if (readySocket !== undefined) await waitForUnixSocket(readySocket, remaining(), exitedReason);
    if (readyLine !== undefined) await waitForOutput(proc, readyLine, remaining(), exitedReason);
    if (readyFile === undefined && readyPort === undefined && readySocket === undefined && readyLine === undefined) {
      const why = exitedReason();
      if (why !== undefined) throw new Error(why);
    }
  } catch (err) {
    await proc.stop();
    throw new Error(`${name} did not become ready: ${(err as Error).message}\n${proc.logs()}`, { cause: err });
  }
  return proc;
}

async function waitForOutput(
  proc: PeerProcess,
  pattern: RegExp | string,
  timeoutMs: number,
  shouldStop: () => string | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const matches = (): boolean => (typeof pattern === 'string' ? proc.output().includes(pattern) : pattern.test(proc.output()));
  for (;;) {
    if (matches()) return;
    const stop = shouldStop();
    if (stop !== undefined) throw new Error(`waiting for ${String(pattern)}: ${stop}`);
    if (Date.now() > deadline) throw new Error(`no output matching ${String(pattern)} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface RunResult extends ExitInfo {
  stdout: Buffer;
  stderr: Buffer;
}

export interface RunProcessOptions {
  env?: NodeJS.ProcessEnv;
  /** @default true */
  inheritEnv?: boolean;
  cwd?: string;
  /** Written to stdin, then stdin is closed. */
  input?: Buffer | string;
  /** Kill the process group after this long. @default 10000 */
  timeoutMs?: number;
}

/**
 * Runs a one-shot program (cgi-fcgi, php-cgi as CGI) in its own process group and resolves
 * with its exit and raw output. Killed with its group after timeoutMs; never rejects for a
 * non-zero exit (the caller asserts on it).
 */
export function runProcess(cmd: string, args: readonly string[], options: RunProcessOptions = {}): Promise<RunResult> {
  const { env, inheritEnv = true, cwd, input, timeoutMs = 10_000 } = options;
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: inheritEnv ? { ...process.env, ...env } : { ...env },
      ...(cwd !== undefined ? { cwd } : {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    child.stdin?.on('error', () => undefined); // EPIPE when the program does not read
    const timer = setTimeout(() => child.pid !== undefined && killGroup(child.pid, 'SIGKILL'), timeoutMs);
    let spawnError: Error | undefined;
    child.once('error', (e) => {
      spawnError = e;
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
      resolve({
        code,
        signal,
        ...(spawnError !== undefined ? { error: spawnError } : {}),
        stdout: Buffer.concat(out),
        stderr: Buffer.concat(err),
      });
    });
    child.stdin?.end(input);
  });
}

/**
 * Wraps a test body so that, when it throws, the logs (output, nginx/Apache error log) of
 * every peer still running, or stopped during this test, are appended to the failure
 * message (stopped peers keep their last log copy).
 * @example test('F-1: via nginx', withPeerLogs(async () => { ... }))
 */
export function withPeerLogs(fn: () => unknown): () => Promise<void> {
  return async () => {
    const since = ++clock;
    try {
      await fn();
    } catch (err) {
      // Errors from node:http are made in Node's realm, not jest's: no instanceof here.
      const logs = started
        .filter((p) => p.stoppedAt === undefined || p.stoppedAt > since)
        .map((p) => p.logs())
        .join('\n');
      if (typeof err === 'object' && err !== null && 'message' in err && typeof err.message === 'string' && logs !== '') {
        const extra = `\n\nPeer logs:\n${logs}`;
        const e = err as { message: string; stack?: string };
        e.message += extra;
        if (typeof e.stack === 'string') e.stack += extra;
      }
      throw err;
    }
  };
}

// ---------------------------------------------------------------------------------------
// Config templates
// ---------------------------------------------------------------------------------------

export type TemplateVars = Record<string, string | number>;

/**
 * Replaces `{{NAME}}` with vars[NAME] and `{{NAME=default}}` with vars[NAME] or the default
 * (which may be empty). A `{{NAME}}` with neither is an error listing every such name.
 */
export function renderTemplate(text: string, vars: TemplateVars, label = 'template'): string {
  const missing = new Set<string>();
  const out = text.replace(/\{\{([A-Z][A-Z0-9_]*)(?:=([^}]*))?\}\}/g, (_m, key: string, fallback: string | undefined) => {
    const value = vars[key];
    if (value !== undefined) return String(value);
    if (fallback !== undefined) return fallback;
    missing.add(key);
    return '';
  });
  if (missing.size > 0) throw new Error(`${label}: no value for ${[...missing].map((k) => `{{${k}}}`).join(', ')}`);
  const leftover = /\{\{[^}]*\}\}/.exec(out);
  if (leftover !== null) throw new Error(`${label}: malformed placeholder ${leftover[0]}`);
  return out;
}

function templatePath(kind: 'nginx' | 'apache', template: string): string {
  if (path.isAbsolute(template)) return template;
  return path.join(FIXTURES_DIR, kind, template.endsWith('.conf') ? template : `${template}.conf`);
}

const KEEP_DIRS = process.env['GATEWIRE_KEEP_PEER_DIRS'] === '1';
const ADDRESS_IN_USE = /Address already in use|could not bind|EADDRINUSE/i;
const START_ATTEMPTS = 3;

export interface WebServerOptions {
  /** Name under fixtures/<server>/ (with or without .conf), or an absolute path. */
  template: string;
  /** Placeholder values; PORT, PREFIX, DOCROOT and LOG_LEVEL are filled in unless given. */
  vars?: TemplateVars;
  /** Error log level. @default 'info' */
  logLevel?: string;
  /** @default 15000 */
  readyTimeoutMs?: number;
}

export interface WebServer {
  /** The 127.0.0.1 port it listens on. */
  readonly port: number;
  /** Temporary folder holding config, logs, pid, temp files; removed by stop(). */
  readonly prefix: string;
  /** The rendered site config (the template with placeholders filled). */
  readonly siteConfig: string;
  readonly process: PeerProcess;
  /** `http://127.0.0.1:<port><path>`. */
  url(urlPath?: string): string;
  errorLog(): string;
  accessLog(): string;
  /** Output and logs, as withPeerLogs attaches them. */
  logs(): string;
  /** Stops the server (and its workers), then removes the prefix. Idempotent. */
  stop(): Promise<void>;
}

function makeWebServer(proc: ProcessImpl, port: number, prefix: string, siteConfig: string, errorLog: string, accessLog: string, cleanup: () => void): WebServer {
  let stopping: Promise<void> | undefined;
  return {
    port,
    prefix,
    siteConfig,
    process: proc,
    url: (urlPath = '/') => `http://127.0.0.1:${port}${urlPath}`,
    errorLog: () => proc.logFile(errorLog),
    accessLog: () => proc.logFile(accessLog),
    logs: () => proc.logs(),
    stop: () => {
      stopping ??= (async () => {
        await proc.stop();
        if (!KEEP_DIRS) cleanup();
      })();
      return stopping;
    },
  };
}

/** Starts a web server in a fresh prefix; retries with a new port when the port was taken. */
async function startWebServer(
  kind: string,
  attempt: (port: number) => Promise<{ proc: ProcessImpl; prefix: string; site: string; errorLog: string; accessLog: string; cleanup: () => void }>,
  fixedPort: boolean,
): Promise<WebServer> {
  let lastError: unknown;
  for (let i = 0; i < START_ATTEMPTS; i++) {
    const port = await freePort();
    try {
      const r = await attempt(port);
      return makeWebServer(r.proc, port, r.prefix, r.site, r.errorLog, r.accessLog, r.cleanup);
    } catch (err) {
      lastError = err;
      if (fixedPort || !ADDRESS_IN_USE.test((err as Error).message)) break;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(`${kind}: ${String(lastError)}`);
}

// ---------------------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------------------

export interface NginxOptions extends WebServerOptions {
  /**
   * Run a master and one worker (as in production) rather than `master_process off`.
   * Both stop cleanly on SIGQUIT. @default true
   */
  masterProcess?: boolean;
}

/**
 * Starts nginx with fixtures/nginx/main.conf, which includes the chosen template as
 * site.conf inside `http {}`. The vendored fastcgi_params, scgi_params and uwsgi_params sit
 * next to it. Every path (pid, logs, *_temp_path, default root `html/`) is under the prefix.
 * Template placeholders: PORT, PREFIX, DOCROOT (default `<prefix>/html`) and whatever the
 * template asks for (FASTCGI_ADDR, SCGI_ADDR, UWSGI_ADDR as `127.0.0.1:9000` or `unix:/path`;
 * SOCK_DIR, the folder of several unix sockets).
 */
export async function startNginx(options: NginxOptions): Promise<WebServer> {
  const binary = peerPath('nginx');
  const { template, vars = {}, logLevel = 'info', readyTimeoutMs = 15_000, masterProcess = true } = options;
  const templateText = fs.readFileSync(templatePath('nginx', template), 'utf8');
  const mainText = fs.readFileSync(path.join(FIXTURES_DIR, 'nginx', 'main.conf'), 'utf8');
  return startWebServer(
    'nginx',
    async (port) => {
      const dir = tmpDir('gw-nginx');
      try {
        const prefix = dir.path;
        for (const sub of ['logs', 'temp', 'html']) fs.mkdirSync(path.join(prefix, sub));
        const all: TemplateVars = { PORT: port, PREFIX: prefix, DOCROOT: path.join(prefix, 'html'), LOG_LEVEL: logLevel, ...vars };
        const site = renderTemplate(templateText, all, `nginx template ${template}`);
        fs.writeFileSync(path.join(prefix, 'site.conf'), site);
        fs.writeFileSync(path.join(prefix, 'nginx.conf'), renderTemplate(mainText, all, 'nginx main.conf'));
        for (const params of ['fastcgi_params', 'scgi_params', 'uwsgi_params']) {
          fs.copyFileSync(path.join(FIXTURES_DIR, 'nginx', params), path.join(prefix, params));
        }
        const errorLog = path.join(prefix, 'logs', 'error.log');
        const accessLog = path.join(prefix, 'logs', 'access.log');
        // `user` only means something to a root master; as root the workers would otherwise
        // drop to nobody and could not reach sockets and files the test (root) created.
        const globals = ['daemon off;', masterProcess ? 'master_process on;' : 'master_process off;'];
        if (masterProcess && RUNNING_AS_ROOT) globals.push('user root root;');
        const proc = (await startProcess(
          binary,
          ['-p', `${prefix}/`, '-c', path.join(prefix, 'nginx.conf'), '-e', errorLog, '-g', globals.join(' ')],
          {
            name: 'nginx',
            cwd: prefix,
            readyFile: path.join(prefix, 'nginx.pid'),
            readyPort: port,
            readyTimeoutMs,
            stopSignal: 'SIGQUIT', // graceful: finish in-flight requests, close idle ones
            stopGraceMs: 5000,
            logFiles: [errorLog],
          },
        )) as ProcessImpl;
        return { proc, prefix, site, errorLog, accessLog, cleanup: dir.cleanup };
      } catch (err) {
        if (!KEEP_DIRS) dir.cleanup();
        throw err;
      }
    },
    vars['PORT'] !== undefined,
  );
}

// ---------------------------------------------------------------------------------------
// Apache httpd
// ---------------------------------------------------------------------------------------

export interface ApacheOptions extends WebServerOptions {
  /** event (Debian's default, CGI through mod_cgid) or prefork (mod_cgi). @default 'event' */
  mpm?: 'event' | 'prefork';
}

/**
 * Starts `apache2 -DFOREGROUND -f <prefix>/httpd.conf` with fixtures/apache/base.conf, which
 * loads the modules and includes the chosen template as site.conf. ServerRoot, PidFile,
 * ErrorLog, DefaultRuntimeDir, Mutex and ScriptSock are all under the prefix. As root its
 * children run as apacheRunAs() (www-data): the prefix is made 0755 so they can reach it.
 * Template placeholders: PORT, PREFIX, DOCROOT (default `<prefix>/htdocs`) and the
 * template's own (FASTCGI_ADDR, SCGI_ADDR, UWSGI_ADDR as `127.0.0.1:9000`,
 * FASTCGI_SOCKET as a path, CGI_DIR).
 */
export async function startApache(options: ApacheOptions): Promise<WebServer> {
  const binary = peerPath('apache2');
  const { template, vars = {}, logLevel = 'info', readyTimeoutMs = 15_000, mpm = 'event' } = options;
  const templateText = fs.readFileSync(templatePath('apache', template), 'utf8');
  const baseText = fs.readFileSync(path.join(FIXTURES_DIR, 'apache', 'base.conf'), 'utf8');
  const runAs = apacheRunAs();
  return startWebServer(
    'apache2',
    async (port) => {
      const dir = tmpDir('gw-apache');
      try {
        const prefix = dir.path;
        fs.chmodSync(prefix, 0o755);
        for (const sub of ['logs', 'run', 'htdocs']) fs.mkdirSync(path.join(prefix, sub), { mode: 0o755 });
        const all: TemplateVars = {
          PORT: port,
          PREFIX: prefix,
          DOCROOT: path.join(prefix, 'htdocs'),
          LOG_LEVEL: logLevel,
          MODULES: APACHE_MODULES_DIR,
          USER: `#${runAs.uid}`,
          GROUP: `#${runAs.gid}`,
          ...vars,
        };
        const site = renderTemplate(templateText, all, `apache template ${template}`);
        fs.writeFileSync(path.join(prefix, 'site.conf'), site);
        fs.writeFileSync(path.join(prefix, 'httpd.conf'), renderTemplate(baseText, all, 'apache base.conf'));
        const errorLog = path.join(prefix, 'logs', 'error.log');
        const accessLog = path.join(prefix, 'logs', 'access.log');
        const args = ['-d', prefix, '-f', path.join(prefix, 'httpd.conf'), '-DFOREGROUND'];
        if (mpm === 'prefork') args.push('-DPREFORK');
        const proc = (await startProcess(binary, args, {
          name: 'apache2',
          cwd: prefix,
          readyFile: path.join(prefix, 'run', 'httpd.pid'),
          readyPort: port,
          readyTimeoutMs,
          stopSignal: 'SIGTERM',
          stopGraceMs: 5000,
          logFiles: [errorLog],
        })) as ProcessImpl;
        return { proc, prefix, site, errorLog, accessLog, cleanup: dir.cleanup };
      } catch (err) {
        if (!KEEP_DIRS) dir.cleanup();
        throw err;
      }
    },
    vars['PORT'] !== undefined,
  );
}

// ---------------------------------------------------------------------------------------
// FastCGI and uWSGI backends used to prove the web server configs
// ---------------------------------------------------------------------------------------

export interface FcgiwrapOptions {
  /** Listen on this unix socket (made 0666 so Apache's children can connect) instead of TCP. */
  socket?: string;
  /**
   * fcgiwrap worker processes. Each serves one connection at a time and a web server's
   * keep-conn pool holds connections open, so one worker would starve other connections.
   * @default 4
   */
  children?: number;
}

export interface Fcgiwrap extends PeerProcess {
  /** TCP port, when listening on TCP. */
  readonly port: number | undefined;
  /** `127.0.0.1:<port>` or `unix:<path>`: the form nginx's *_pass takes. */
  readonly nginxAddr: string;
}

/**
 * fcgiwrap handed its listening socket as fd 0 by spawn-fcgi (`spawn-fcgi -n`, which execs
 * fcgiwrap in place). fcgiwrap runs SCRIPT_FILENAME, or DOCUMENT_ROOT + SCRIPT_NAME when
 * SCRIPT_FILENAME is absent (nginx's default fastcgi_params send no SCRIPT_FILENAME).
 */
export async function startFcgiwrap(options: FcgiwrapOptions = {}): Promise<Fcgiwrap> {
  const spawnFcgi = peerPath('spawn-fcgi');
  const fcgiwrap = peerPath('fcgiwrap');
  const children = ['-c', String(options.children ?? 4)];
  if (options.socket !== undefined) {
    const proc = await startProcess(spawnFcgi, ['-n', '-s', options.socket, '-M', '0666', '--', fcgiwrap, ...children], {
      name: 'spawn-fcgi+fcgiwrap',
      readySocket: options.socket,
    });
    return Object.assign(proc, { port: undefined, nginxAddr: `unix:${options.socket}` });
  }
  let lastError: unknown;
  for (let i = 0; i < START_ATTEMPTS; i++) {
    const port = await freePort();
    try {
      const proc = await startProcess(spawnFcgi, ['-n', '-a', '127.0.0.1', '-p', String(port), '--', fcgiwrap, ...children], {
        name: 'spawn-fcgi+fcgiwrap',
        readyPort: port,
      });
      return Object.assign(proc, { port, nginxAddr: `127.0.0.1:${port}` });
    } catch (err) {
      lastError = err;
      if (!ADDRESS_IN_USE.test((err as Error).message)) break;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

export interface UwsgiOptions {
  /** Python source defining `application(environ, start_response)`. */
  wsgiApp: string;
}

export interface Uwsgi extends PeerProcess {
  /** Port speaking the uwsgi protocol. */
  readonly uwsgiPort: number;
  /** Port speaking SCGI. */
  readonly scgiPort: number;
}

/**
 * uWSGI with the python3 plugin serving one WSGI app over both the uwsgi protocol and SCGI
 * (single process, no master), so the scgi/uwsgi configs can be proved without gatewire.
 */
export async function startUwsgi(options: UwsgiOptions): Promise<Uwsgi> {
  const uwsgi = peerPath('uwsgi-python3');
  let lastError: unknown;
  for (let i = 0; i < START_ATTEMPTS; i++) {
    const uwsgiPort = await freePort();
    const scgiPort = await freePort();
    try {
      const proc = await startProcess(
        uwsgi,
        [
          '--plugin', 'python3',
          '--uwsgi-socket', `127.0.0.1:${uwsgiPort}`,
          '--scgi-socket', `127.0.0.1:${scgiPort}`,
          '--eval', options.wsgiApp,
          '--disable-logging',
        ],
        { name: 'uwsgi', readyPort: uwsgiPort, readyLine: /spawned uWSGI worker|Operational MODE/, stopSignal: 'SIGINT' },
      );
      await waitForPort(scgiPort);
      return Object.assign(proc, { uwsgiPort, scgiPort });
    } catch (err) {
      lastError = err;
      if (!ADDRESS_IN_USE.test((err as Error).message)) break;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}
