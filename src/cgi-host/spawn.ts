/**
 * Starting a CGI script: the native path when it is built (native/spawn.c), Node's
 * child_process.spawn otherwise. Both give the same ScriptProcess: pid, stdio streams, and the
 * 'error' / 'exit' / 'close' events of a ChildProcess, so CgiRun does not care which ran.
 *
 * Why a native path: child_process.spawn() on Linux has libuv fork() the whole server. The
 * kernel copies the page tables of a 100 MB process for every script (about 1.2 ms, more as the
 * server grows, all of it on the event loop). The native path vforks on a libuv worker thread:
 * the cost no longer depends on the server's size and the event loop never waits for an exec.
 * The exit is watched with a pidfd (no SIGCHLD handler shared with libuv), and stdout/stderr
 * are read by a uv_poll each (NativePipe) instead of a net.Socket each.
 *
 * The addon is loaded through node-gyp-build from the package root: the prebuild that the
 * package ships (prebuilds/linux-x64/, made by scripts/build-native.sh), so an installed gatewire
 * needs no compiler. Without it (not Linux, no prebuild for this machine, a load failure such as
 * an older glibc, a kernel before 5.3 without pidfd_open) scripts go through child_process, and
 * spawnMethod() says why.
 *
 * `GATEWIRE_SPAWN=node` forces child_process (for comparison, or if the native path misbehaves
 * somewhere); a command that is not an absolute path also takes it (PATH look-up is execvp's).
 *
 * The environment is bytes (C-6): its values are CGI byte strings (latin1, one char per byte),
 * and every byte 0x01-0xFF must reach the script as the client sent it.
 * - Native: the "NAME=value" entries go to the addon as those byte strings, which it reads with
 *   napi_get_value_string_latin1: one byte per char, exactly. argv, the file and the cwd are
 *   node:fs strings (text) and go as UTF-8, their bytes on disk.
 * - child_process: Node encodes every env string as UTF-8, so a value passes as text when its
 *   bytes are ASCII or valid UTF-8 (the encoding then restores them): the usual case, which
 *   costs nothing more. Any other value cannot be given to spawn() at all; then, and only then,
 *   the script is started through a wrapper that makes the bytes itself:
 *
 *     /bin/sh -c ENV_WRAPPER gatewire-env <n> <m> NAME=<escaped>... <command> <args>...
 *
 *   Each variable is one argument, its value escaped to ASCII for printf's format (bytes
 *   0x80-0xFF, `\` and `%` as `\ooo` octal; the rest as is, control bytes included). The shell
 *   gets an empty environment, turns each argument back into bytes with its printf builtin
 *   (`"$(printf "...x")"`, then the `x` stripped: command substitution would eat trailing
 *   newlines), and ends with `exec /usr/bin/env -i NAME=bytes... command args`. The values never
 *   become shell code (they are "$@" elements, the script is a constant), and `env -i` makes the
 *   environment exactly the list: none of what a shell adds to or changes in the variables it
 *   passes on (dash sets PWD and resets PPID, OPTIND and IFS, bash adds SHLVL) reaches the
 *   script. Both steps exec, so the script keeps the pid that was spawned: it leads the session
 *   and process group, and gets the signals (C-12, C-14). The costs, on that path only: two more
 *   execs; a command that is not found or not executable is reported as ENOENT/EACCES from an
 *   access(2) check before the spawn (C-13; as the server's uid, so with a uid switch a refusal
 *   there shows as the wrapper's exit 126 instead: a 502); a value of mostly high bytes takes up
 *   to 4 times its size in the argument, which Linux bounds at 128 KiB (beyond it, E2BIG: a
 *   500); and a command whose path holds `=` cannot be given to env(1) (it would read it as a
 *   variable), so it is refused (EINVAL, a 500). /usr/bin/env is where shebang lines find it, on
 *   every Linux.
 */
import { spawn as nodeSpawn } from 'node:child_process';
import { Buffer, isUtf8 } from 'node:buffer';
import { EventEmitter } from 'node:events';
import { accessSync, constants as fsConstants } from 'node:fs';
import { Socket } from 'node:net';
import { constants as osConstants, release as osRelease } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { getSystemErrorName } from 'node:util';
import { packageRoot } from '../package-root.js';

/** What CgiRun needs of a script's stdout or stderr; a Readable is one, so is a NativePipe. */
export interface ScriptOutput {
  on(event: 'data', listener: (chunk: Buffer) => void): this;
  on(event: 'end' | 'close', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  pause(): this;
  resume(): this;
  destroy(): this;
}

/** What CgiRun needs of a started script; a ChildProcess is one. */
export interface ScriptProcess extends EventEmitter {
  readonly pid?: number | undefined;
  readonly stdin: Writable | null;
  readonly stdout: ScriptOutput | null;
  readonly stderr: ScriptOutput | null;
}

export interface ScriptSpawnOptions {
  /** A node:fs string (text), as are args and cwd. */
  command: string;
  args: readonly string[];
  cwd: string;
  /** NAME → value as CGI byte strings (latin1, one char per byte, none above 0xFF): what the script gets, byte for byte (C-6). */
  env: Record<string, string>;
  /** 'null': /dev/null; 'pipe': a pipe the caller writes; a number: that fd. */
  stdin: 'null' | 'pipe' | number;
  uid?: number | undefined;
  gid?: number | undefined;
  /** The script's umask; the server's own when not given. */
  umask?: number | undefined;
}

interface NativeSpawner {
  spawn(
    file: string,
    argv: string[],
    envp: string[],
    cwd: string,
    stdin: number,
    umask: number,
    uid: number,
    gid: number,
    onSpawn: (got: [pid: number, stdin: number, stdout: number, stderr: number] | number) => void,
    onExit: (code: number | null, signal: number) => void,
  ): number | undefined;
  readPipe(fd: number, onData: (chunk: Buffer | null, errno?: number) => void): PipeHandle;
  pausePipe(pipe: PipeHandle): void;
  resumePipe(pipe: PipeHandle): void;
  closePipe(pipe: PipeHandle): void;
  kill(pid: number, signal: number): number;
  supported(): boolean;
}

/** The native reader of one pipe (an N-API external). */
declare const pipeHandle: unique symbol;
type PipeHandle = { readonly [pipeHandle]: true };

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(osConstants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** node-gyp-build's entry (it ships no types): load(dir), and resolve(dir) for the file it would load. */
interface NodeGypBuild {
  (dir: string): unknown;
  resolve(dir: string): string;
}

export type SpawnMethod = 'native' | 'child_process';

/** How CGI scripts are started, and why not natively when they are not. */
export interface SpawnMethodInfo {
  method: SpawnMethod;
  /** Why the native spawner is not used (only with 'child_process'). */
  reason?: string;
}

let native: NativeSpawner | null | undefined;
let nativeProblem = '';

/** The first line of an error's message (node-gyp-build's and dlopen's run over several). */
function firstLine(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const text = (typeof e?.message === 'string' ? e.message : String(err)).split('\n')[0]?.trim() ?? '';
  return text === '' ? (e?.code ?? 'unknown error') : text;
}

/**
 * The addon, found by node-gyp-build in the package root: prebuilds/linux-<arch>/ (shipped in the
 * package, built by scripts/build-native.sh) or build/Release/. Decided once per process.
 */
function loadNative(): NativeSpawner | null {
  if (native !== undefined) return native;
  native = null;
  if (process.env.GATEWIRE_SPAWN === 'node') {
    nativeProblem = 'GATEWIRE_SPAWN=node';
    return native;
  }
  if (process.platform !== 'linux') {
    nativeProblem = `the native spawner is Linux-only (this is ${process.platform})`;
    return native;
  }
  const root = packageRoot();
  let finder: NodeGypBuild;
  try {
    finder = require('node-gyp-build') as NodeGypBuild;
  } catch (err) {
    nativeProblem = `node-gyp-build (a dependency of gatewire) not loadable (${firstLine(err)})`;
    return native;
  }
  let file: string;
  try {
    file = finder.resolve(root);
  } catch (err) {
    nativeProblem = `no native spawner for linux-${process.arch} in ${join(root, 'prebuilds')} (${firstLine(err)}); scripts/build-native.sh builds it`;
    return native;
  }
  let mod: NativeSpawner;
  try {
    mod = require(file) as NativeSpawner;
  } catch (err) {
    nativeProblem = `${file} failed to load (${firstLine(err)})`;
    return native;
  }
  if (mod.supported()) native = mod;
  else nativeProblem = `pidfd_open is not available: Linux 5.3 or later needed (kernel ${osRelease()})`;
  return native;
}

/** Which spawner scripts get, and why not the native one: for the start-up log line and the tests. */
export function spawnMethod(): SpawnMethodInfo {
  return loadNative() === null ? { method: 'child_process', reason: nativeProblem } : { method: 'native' };
}

/** spawnMethod() in words: `the native spawner`, or `child_process (<reason>)`. */
export function describeSpawnMethod(info: SpawnMethodInfo = spawnMethod()): string {
  return info.method === 'native' ? 'the native spawner' : `child_process (${info.reason ?? 'native spawner unavailable'})`;
}

/**
 * Starts a script in its own session and process group (setsid: its pid is its group id), with
 * stdout and stderr on pipes, and calls `done` with it: at once on the child_process path
 * (where a failure to start comes later as the child's 'error' event), from the event loop on
 * the native path (where ENOENT, EACCES, ENOEXEC... come as `err`).
 */
export function spawnScript(opts: ScriptSpawnOptions, done: (err: NodeJS.ErrnoException | undefined, child?: ScriptProcess) => void): void {
  const mod = loadNative();
  if (mod !== null && opts.command.startsWith('/')) {
    spawnNative(mod, opts, done);
    return;
  }
  const env = textEnv(opts.env);
  const how = env === null ? envWrapper(opts) : { command: opts.command, args: opts.args, env };
  if (how instanceof Error) {
    done(how);
    return;
  }
  // The child inherits the umask at fork time, and spawn() forks synchronously: setting the
  // process umask around the call gives the script its own without a wrapper shell.
  const saved = opts.umask === undefined ? undefined : process.umask(opts.umask);
  let child: ScriptProcess;
  try {
    child = nodeSpawn(how.command, how.args as string[], {
      cwd: opts.cwd,
      env: how.env,
      detached: true,
      stdio: [opts.stdin === 'null' ? 'ignore' : opts.stdin, 'pipe', 'pipe'],
      ...(opts.uid === undefined ? {} : { uid: opts.uid }),
      ...(opts.gid === undefined ? {} : { gid: opts.gid }),
    });
  } catch (err) {
    done(err as NodeJS.ErrnoException);
    return;
  } finally {
    if (saved !== undefined) process.umask(saved);
  }
  done(undefined, child);
}

const NON_ASCII = /[^\x00-\x7f]/;
const NOT_A_BYTE = /[^\x00-\xff]/;

/**
 * The byte-string environment as the text Node's spawn() encodes back into the same bytes:
 * values that are ASCII or valid UTF-8 (decoded); null when one is neither (see the module
 * comment). A NUL is left in: spawn() refuses it, as the native path does.
 */
function textEnv(env: Record<string, string>): Record<string, string> | null {
  let text: Record<string, string> | undefined;
  for (const name in env) {
    const value = env[name] as string;
    if (!NON_ASCII.test(value)) continue;
    if (NOT_A_BYTE.test(value)) return null; // not bytes: the wrapper refuses it with EINVAL
    const bytes = Buffer.from(value, 'latin1');
    if (!isUtf8(bytes)) return null;
    (text ??= { ...env })[name] = bytes.toString('utf8');
  }
  return text ?? env;
}

/** The script behind `sh -c`: $1 = variables, $2 = command and arguments, then both lists (see the module comment). */
const ENV_WRAPPER = [
  'n=$1 m=$2',
  'shift 2',
  'while [ "$n" -gt 0 ]; do v=$(printf "${1}x"); set -- "$@" "${v%x}"; shift; n=$((n - 1)); done',
  'while [ "$m" -gt 0 ]; do set -- "$@" "$1"; shift; m=$((m - 1)); done',
  'exec /usr/bin/env -i "$@"',
].join('\n');

/** A byte string as an ASCII printf format that prints exactly those bytes. */
function printfFormat(bytes: string): string {
  return bytes.replace(/[\\%\x80-\xff]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

function startRefused(message: string, opts: Pick<ScriptSpawnOptions, 'command'>, code = 'EINVAL'): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`spawn ${opts.command} ${code}: ${message}`);
  err.code = code;
  err.syscall = `spawn ${opts.command}`;
  err.path = opts.command;
  return err;
}

/** The child_process spawn that makes an environment with bytes that are not UTF-8 (module comment); an Error when it cannot. */
function envWrapper(opts: ScriptSpawnOptions): { command: string; args: readonly string[]; env: Record<string, string> } | NodeJS.ErrnoException {
  if (opts.command.includes('=')) return startRefused("env(1) cannot run a command whose path holds '=' (bytes that are not UTF-8 need it without the native spawner)", opts);
  const vars: string[] = [];
  for (const name in opts.env) {
    const value = opts.env[name] as string;
    // Names are checked where they are made (CGI key syntax); a value must be bytes without NUL.
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || NOT_A_BYTE.test(value) || value.includes('\0')) {
      return startRefused(`environment entry ${JSON.stringify(name)} is not a NAME=bytes pair without NUL`, opts);
    }
    vars.push(`${name}=${printfFormat(value)}`);
  }
  // What child_process reports for a missing or non-executable program (C-13), which the shell
  // could only tell as an exit status. A bare command name is left to env's PATH look-up.
  if (opts.command.includes('/')) {
    try {
      accessSync(opts.command, fsConstants.X_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EACCES';
      const e = startRefused(code === 'ENOENT' ? 'no such file' : 'not executable', opts, code);
      e.errno = (err as NodeJS.ErrnoException).errno;
      return e;
    }
  }
  return {
    command: '/bin/sh',
    args: ['-c', ENV_WRAPPER, 'gatewire-env', String(vars.length), String(1 + opts.args.length), ...vars, opts.command, ...opts.args],
    env: {},
  };
}

function spawnNative(mod: NativeSpawner, opts: ScriptSpawnOptions, done: (err: NodeJS.ErrnoException | undefined, child?: ScriptProcess) => void): void {
  const envp: string[] = [];
  for (const name in opts.env) {
    const entry = `${name}=${opts.env[name]}`;
    // The addon reads these one byte per char; a char above 0xFF would lose its high bits.
    if (NOT_A_BYTE.test(entry)) {
      done(startRefused(`environment entry ${JSON.stringify(name)} is not a byte string`, opts));
      return;
    }
    envp.push(entry);
  }
  let child: NativeScript | undefined;
  let failed: number | undefined;
  try {
    failed = mod.spawn(
      opts.command,
      [opts.command, ...opts.args],
      envp,
      opts.cwd,
      opts.stdin === 'pipe' ? -1 : opts.stdin === 'null' ? -2 : opts.stdin,
      opts.umask ?? -1,
      opts.uid ?? -1,
      opts.gid ?? -1,
      (got) => {
        if (typeof got === 'number') done(spawnError(got, opts));
        else done(undefined, (child = new NativeScript(mod, got)));
      },
      (code, signal) => child?.exited(code, signal === 0 ? null : (SIGNAL_NAMES.get(signal) ?? null)),
    );
  } catch (err) {
    done(err as NodeJS.ErrnoException); // invalid arguments (a NUL byte): nothing started
    return;
  }
  if (failed !== undefined) done(spawnError(failed, opts)); // the stdin fd could not be duplicated
}

/**
 * kill(2) of a process or (negative pid) a process group; 0 or the errno's name. Natively when
 * possible: ESRCH is the common answer at the end of every run, and process.kill() turns it into
 * an exception.
 */
export function sendSignal(pid: number, signal: NodeJS.Signals): 0 | string {
  const mod = loadNative();
  if (mod !== null) {
    const rc = mod.kill(pid, osConstants.signals[signal]);
    return rc === 0 ? 0 : errnoName(rc);
  }
  // Without a stack the ErrnoException costs ~1 µs instead of ~70 µs (4 % of a hello run's CPU).
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    process.kill(pid, signal);
    return 0;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'EINVAL';
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** A script started by native/spawn.c, dressed as a ChildProcess. */
class NativeScript extends EventEmitter implements ScriptProcess {
  readonly pid: number;
  readonly stdin: Socket | null;
  readonly stdout: NativePipe;
  readonly stderr: NativePipe;
  /** 'close' waits for the exit and both output pipes, as a ChildProcess's does. */
  private pending = 3;

  constructor(mod: NativeSpawner, [pid, stdinFd, stdoutFd, stderrFd]: [number, number, number, number]) {
    super();
    this.pid = pid;
    this.stdin = stdinFd < 0 ? null : new Socket({ fd: stdinFd, readable: false, writable: true });
    const settle = (): void => this.settle();
    this.stdout = new NativePipe(mod, stdoutFd, settle);
    this.stderr = new NativePipe(mod, stderrFd, settle);
  }

  /** From the pidfd watch: the script exited and was reaped. */
  exited(code: number | null, signal: NodeJS.Signals | null): void {
    // As ChildProcess: the script is gone, nothing will read what is still unwritten.
    this.stdin?.destroy();
    this.emit('exit', code, signal);
    this.settle();
  }

  private settle(): void {
    if (--this.pending === 0) this.emit('close');
  }
}

/**
 * The read end of a script's stdout or stderr, read by the native side: 'data' per read,
 * 'end' at EOF, 'error' on a read error, then 'close' (also after destroy()). Reading starts at
 * once; data is not buffered here, so listeners come first (CgiRun adds them synchronously).
 */
class NativePipe extends EventEmitter implements ScriptOutput {
  private handle: PipeHandle | undefined;

  constructor(
    private readonly mod: NativeSpawner,
    fd: number,
    private readonly onClose: () => void,
  ) {
    super();
    this.handle = mod.readPipe(fd, (chunk, errno) => {
      if (chunk !== null) {
        this.emit('data', chunk);
        return;
      }
      this.handle = undefined; // the native side closed the fd
      if (errno === 0) this.emit('end');
      else this.emit('error', spawnError(errno ?? -5, { command: 'pipe' }, 'read'));
      this.closed();
    });
  }

  pause(): this {
    if (this.handle !== undefined) this.mod.pausePipe(this.handle);
    return this;
  }

  resume(): this {
    if (this.handle !== undefined) this.mod.resumePipe(this.handle);
    return this;
  }

  destroy(): this {
    const handle = this.handle;
    if (handle !== undefined) {
      this.handle = undefined;
      this.mod.closePipe(handle);
      this.closed();
    }
    return this;
  }

  private closed(): void {
    this.emit('close');
    this.onClose();
  }
}

function errnoName(negErrno: number): string {
  try {
    return getSystemErrorName(negErrno);
  } catch {
    return `E${-negErrno}`;
  }
}

function spawnError(negErrno: number, opts: Pick<ScriptSpawnOptions, 'command'>, syscall = 'spawn'): NodeJS.ErrnoException {
  const code = errnoName(negErrno);
  const err: NodeJS.ErrnoException = new Error(`${syscall} ${opts.command} ${code}`);
  err.errno = negErrno;
  err.code = code;
  err.syscall = `${syscall} ${opts.command}`;
  err.path = opts.command;
  return err;
}
