/**
 * systemd integration without libsystemd: socket activation (sd_listen_fds(3)) and readiness
 * notification (sd_notify(3)).
 *
 * Socket activation: systemd (or systemd-socket-activate) passes the listening sockets as fds
 * 3, 4, ... with LISTEN_PID (the process they are meant for), LISTEN_FDS (how many) and
 * LISTEN_FDNAMES (their FileDescriptorName=, colon-separated). `listenFds()` reads them;
 * `resolveNamedFd()` finds a `systemd:NAME` listener's fd; `stripListenEnv()` drops the three
 * variables from an environment passed on (workers, CGI scripts: LISTEN_PID would not be theirs
 * anyway, and a child must never take the sockets for its own).
 *
 * Notification: `sdNotify()` sends one datagram to $NOTIFY_SOCKET (READY=1, RELOADING=1,
 * STOPPING=1, STATUS=...). Node has no AF_UNIX datagram sockets, so the send is native/spawn.c's
 * `notify()`. Without the addon (not Linux, no prebuild) it returns false and logs nothing:
 * spawning systemd-notify(1) instead is no fallback, since the message would come from the
 * systemd-notify process, which systemd (NotifyAccess=main) refuses as not the main pid, and,
 * where it is allowed (NotifyAccess=all), attributes to a process that has exited already.
 * With Type=notify, a server that cannot notify is killed at TimeoutStartSec: use Type=exec
 * (or simple) there; `notifyProblem()` says why the last call returned false.
 */
import { Buffer } from 'node:buffer';
import { getSystemErrorName } from 'node:util';
import { ListenError } from './errors.js';
import { packageRoot } from './package-root.js';

/** The sockets systemd passed this process: fds[i] is named names[i]. */
export interface ListenFds {
  fds: number[];
  names: string[];
}

/** sd_listen_fds's first fd (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;

/** The name sd_listen_fds_with_names gives a socket without one. */
const UNKNOWN = 'unknown';

/**
 * The sockets passed by socket activation, as sd_listen_fds_with_names(3) reads them: only when
 * LISTEN_PID is `pid` (the variables may have been inherited from a parent they were meant
 * for: then they are ignored), LISTEN_FDS sockets from fd 3, named by LISTEN_FDNAMES (a name
 * missing or empty: 'unknown'). undefined when none were passed to this process.
 */
export function listenFds(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): ListenFds | undefined {
  const forPid = env.LISTEN_PID;
  const count = env.LISTEN_FDS;
  if (forPid === undefined || count === undefined || !/^[0-9]+$/.test(forPid) || Number(forPid) !== pid) return undefined;
  if (!/^[0-9]+$/.test(count) || Number(count) < 1) return undefined;
  const n = Number(count);
  const given = env.LISTEN_FDNAMES === undefined ? [] : env.LISTEN_FDNAMES.split(':');
  const fds: number[] = [];
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    fds.push(LISTEN_FDS_START + i);
    const name = given[i];
    names.push(name === undefined || name === '' ? UNKNOWN : name);
  }
  return { fds, names };
}

/**
 * The fd of the socket named `name` (a `systemd:NAME` or `fd:NAME` listener). A name given to
 * several sockets (two ListenStream= in one .socket unit share its FileDescriptorName=) gives
 * the first of them only: name each socket you want as a listener. Throws a ListenError (the CLI
 * prints it on one line and exits 2) listing the sockets that were passed when there is none.
 */
export function resolveNamedFd(name: string, found: ListenFds | undefined): number {
  if (found === undefined) {
    throw new ListenError(`no socket named ${JSON.stringify(name)}: systemd passed this process none (no LISTEN_FDS with LISTEN_PID=${process.pid})`);
  }
  const i = found.names.indexOf(name);
  if (i === -1) {
    const have = found.names.map((n, j) => `${JSON.stringify(n)} (fd ${found.fds[j] ?? '?'})`).join(', ');
    throw new ListenError(`no socket named ${JSON.stringify(name)} among those systemd passed: ${have}`);
  }
  return found.fds[i] as number;
}

/** `env` without LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES (a copy; `env` is left as is). */
export function stripListenEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy: NodeJS.ProcessEnv = { ...env };
  delete copy.LISTEN_PID;
  delete copy.LISTEN_FDS;
  delete copy.LISTEN_FDNAMES;
  return copy;
}

/** native/spawn.c's notify(): 0 or -errno. */
interface NativeNotify {
  notify(socketPath: Buffer, message: Buffer): number;
}

/** node-gyp-build's entry (it ships no types): resolve(dir) gives the file it would load. */
interface NodeGypBuild {
  resolve(dir: string): string;
}

let native: NativeNotify | null | undefined;
let problem: string | undefined;

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}

/** The addon (the prebuild that src/cgi-host/spawn.ts loads too), found once per process. */
function loadNative(): NativeNotify | null {
  if (native !== undefined) return native;
  native = null;
  if (process.platform !== 'linux') {
    problem = `sd_notify is native and Linux-only (this is ${process.platform})`;
    return native;
  }
  try {
    const file = (require('node-gyp-build') as NodeGypBuild).resolve(packageRoot());
    const mod = require(file) as Partial<NativeNotify>;
    if (typeof mod.notify !== 'function') problem = `${file} has no notify(): an older build (scripts/build-native.sh rebuilds it)`;
    else native = mod as NativeNotify;
  } catch (err) {
    problem = `the native addon is not available (${firstLine(err)}); scripts/build-native.sh builds it`;
  }
  return native;
}

/**
 * Sends `state` (newline-separated assignments: `READY=1`, `RELOADING=1\nMONOTONIC_USEC=N`,
 * `STOPPING=1`, `STATUS=...`) as one datagram to $NOTIFY_SOCKET in `env`: a path, or a leading
 * `@` for the abstract namespace. false when NOTIFY_SOCKET is unset or empty (not under systemd,
 * or Type= is not notify), or when it cannot be sent: notifyProblem() says why. Never throws.
 */
export function sdNotify(state: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const target = env.NOTIFY_SOCKET;
  problem = undefined;
  if (target === undefined || target === '') return false;
  if (!target.startsWith('/') && !target.startsWith('@')) {
    problem = `NOTIFY_SOCKET=${target}: only a path or an @abstract name is supported`;
    return false;
  }
  const mod = loadNative();
  if (mod === null) return false;
  const result = mod.notify(Buffer.from(target, 'utf8'), Buffer.from(state, 'utf8'));
  if (result === 0) return true;
  problem = `sending to NOTIFY_SOCKET=${target}: ${getSystemErrorName(result)}`;
  return false;
}

/** Why the last sdNotify() returned false when NOTIFY_SOCKET was set; undefined after a success. */
export function notifyProblem(): string | undefined {
  return problem;
}

/**
 * CLOCK_MONOTONIC in microseconds, for `RELOADING=1\nMONOTONIC_USEC=N` (Type=notify-reload,
 * systemd 253+: systemd checks the reload was notified after it sent SIGHUP). On Linux,
 * process.hrtime.bigint() is libuv's uv_hrtime(), clock_gettime(CLOCK_MONOTONIC) (test/systemd
 * checks it against python3's time.clock_gettime_ns(CLOCK_MONOTONIC)).
 */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

/** The datagram systemd expects at the start of a reload: RELOADING=1 and the time it started. */
export function reloadingMessage(): string {
  return `RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}`;
}
