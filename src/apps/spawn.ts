/**
 * Starting a CGI script: the native posix_spawn path when it is built (native/spawn.c), Node's
 * child_process.spawn otherwise. Both give the same ScriptProcess: pid, stdio streams, and the
 * 'error' / 'exit' / 'close' events of a ChildProcess, so CgiRun does not care which ran.
 *
 * Why a native path: child_process.spawn() on Linux has libuv fork() the whole server. The
 * kernel copies the page tables of a 100 MB process for every script (about 1.2 ms, more as the
 * server grows, all of it on the event loop). posix_spawn() in glibc is clone(CLONE_VM |
 * CLONE_VFORK) + exec: the cost no longer depends on the server's size. The exit is watched with
 * a pidfd on the event loop, so no SIGCHLD handler is shared with libuv.
 *
 * `GATEWIRE_SPAWN=node` forces child_process (for comparison, or if the native path misbehaves
 * somewhere); the native path is also skipped when a uid/gid switch or a umask other than the
 * server's is asked for (posix_spawn cannot do either), or the command is not an absolute path.
 */
import { spawn as nodeSpawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { getSystemErrorName } from 'node:util';

/** What CgiRun needs of a started script; a ChildProcess is one. */
export interface ScriptProcess extends EventEmitter {
  readonly pid?: number | undefined;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
}

export interface ScriptSpawnOptions {
  command: string;
  args: readonly string[];
  cwd: string;
  env: Record<string, string>;
  /** 'null': /dev/null; 'pipe': a pipe the caller writes; a number: that fd. */
  stdin: 'null' | 'pipe' | number;
  uid?: number | undefined;
  gid?: number | undefined;
  /** The script's umask; the native path needs it to equal the server's. */
  umask?: number | undefined;
}

interface NativeSpawner {
  spawn(
    file: string,
    argv: string[],
    envp: string[],
    cwd: string,
    stdin: number,
    onSpawn: (got: [pid: number, stdin: number, stdout: number, stderr: number] | number) => void,
    onExit: (code: number | null, signal: number) => void,
  ): number | undefined;
  supported(): boolean;
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(osConstants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** The package root: the first folder up from here with a package.json (src/apps or dist/src/apps). */
function packageRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) return __dirname;
    dir = up;
  }
  return dir;
}

let native: NativeSpawner | null | undefined;
let nativeProblem: string | undefined;

function loadNative(): NativeSpawner | null {
  if (native !== undefined) return native;
  native = null;
  if (process.env.GATEWIRE_SPAWN === 'node') {
    nativeProblem = 'GATEWIRE_SPAWN=node';
  } else if (process.platform !== 'linux') {
    nativeProblem = `not built on ${process.platform}`;
  } else {
    const file = join(packageRoot(), 'build', 'gatewire_spawn.node');
    try {
      const mod = require(file) as NativeSpawner;
      if (mod.supported()) native = mod;
      else nativeProblem = 'pidfd_open is not available (Linux 5.3 or later needed)';
    } catch (err) {
      nativeProblem = `${file} not loadable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); scripts/build-native.sh builds it`;
    }
  }
  return native;
}

/** Which spawner scripts get: for the start-up log line and the tests. */
export function spawnMethod(): { method: 'posix_spawn' | 'child_process'; reason?: string } {
  return loadNative() === null ? { method: 'child_process', reason: nativeProblem } : { method: 'posix_spawn' };
}

/** The process umask, read by setting it (the only way POSIX offers) and restoring it at once. */
function currentUmask(): number {
  const mask = process.umask(0o077);
  process.umask(mask);
  return mask;
}

/**
 * Starts a script in its own session and process group (setsid: its pid is its group id), with
 * stdout and stderr on pipes, and calls `done` with it: at once on the child_process path
 * (where a failure to start comes later as the child's 'error' event), from the event loop on
 * the native path (where ENOENT, EACCES, ENOEXEC... come as `err`).
 */
export function spawnScript(opts: ScriptSpawnOptions, done: (err: NodeJS.ErrnoException | undefined, child?: ScriptProcess) => void): void {
  const mod = loadNative();
  // posix_spawn cannot switch users or set a umask; the server's own umask is inherited.
  const umaskSwap = opts.umask !== undefined && opts.umask !== currentUmask();
  if (mod !== null && opts.uid === undefined && opts.gid === undefined && !umaskSwap && opts.command.startsWith('/')) {
    const stdinMode = opts.stdin === 'pipe' ? -1 : opts.stdin === 'null' ? -2 : opts.stdin;
    const envp: string[] = [];
    for (const name in opts.env) envp.push(`${name}=${opts.env[name]}`);
    let child: NativeScript | undefined;
    let failed: number | undefined;
    try {
      failed = mod.spawn(
        opts.command,
        [opts.command, ...opts.args],
        envp,
        opts.cwd,
        stdinMode,
        (got) => {
          if (typeof got === 'number') done(spawnError(got, opts));
          else done(undefined, (child = new NativeScript(got)));
        },
        (code, signal) => child?.exited(code, signal === 0 ? null : (SIGNAL_NAMES.get(signal) ?? null)),
      );
    } catch (err) {
      done(err as NodeJS.ErrnoException); // invalid arguments (a NUL byte): nothing started
      return;
    }
    if (failed !== undefined) done(spawnError(failed, opts)); // the stdin fd could not be duplicated
    return;
  }
  // The child inherits the umask at fork time, and spawn() forks synchronously: setting the
  // process umask around the call gives the script its own without a wrapper shell.
  const saved = umaskSwap ? process.umask(opts.umask as number) : undefined;
  let child: ScriptProcess;
  try {
    child = nodeSpawn(opts.command, opts.args as string[], {
      cwd: opts.cwd,
      env: opts.env,
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

/** A script started by native/spawn.c, dressed as a ChildProcess. */
class NativeScript extends EventEmitter implements ScriptProcess {
  readonly pid: number;
  readonly stdin: Socket | null;
  readonly stdout: Socket;
  readonly stderr: Socket;
  /** 'close' waits for the exit and both output pipes, as a ChildProcess's does. */
  private pending = 3;

  constructor([pid, stdinFd, stdoutFd, stderrFd]: [number, number, number, number]) {
    super();
    this.pid = pid;
    this.stdin = stdinFd < 0 ? null : new Socket({ fd: stdinFd, readable: false, writable: true });
    this.stdout = this.output(stdoutFd);
    this.stderr = this.output(stderrFd);
  }

  private output(fd: number): Socket {
    const socket = new Socket({ fd, readable: true, writable: false });
    socket.once('close', () => this.settle());
    return socket;
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

function spawnError(negErrno: number, opts: ScriptSpawnOptions): NodeJS.ErrnoException {
  let code: string;
  try {
    code = getSystemErrorName(negErrno);
  } catch {
    code = `E${-negErrno}`;
  }
  const err: NodeJS.ErrnoException = new Error(`spawn ${opts.command} ${code}`);
  err.errno = negErrno;
  err.code = code;
  err.syscall = `spawn ${opts.command}`;
  err.path = opts.command;
  return err;
}
