/**
 * --user/--group and --pid-file.
 *
 * Names are resolved with `id` (the system's own look-up, NSS included: LDAP users work as they
 * do for any daemon). A worker drops in the order that leaves nothing behind: supplementary
 * groups (initgroups), then the group, then the user.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { OptionError } from './options.js';

export interface Identity {
  user: string | undefined;
  uid: number;
  gid: number;
}

function idOf(args: string[], what: string): number {
  try {
    return Number(execFileSync('id', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim());
  } catch {
    throw new OptionError(`${what}: no such user`);
  }
}

function groupId(group: string): number {
  if (/^[0-9]+$/.test(group)) return Number(group);
  try {
    const line = execFileSync('getent', ['group', group], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    const gid = line.split(':')[2];
    if (gid !== undefined && /^[0-9]+$/.test(gid)) return Number(gid);
  } catch {
    // fall through
  }
  throw new OptionError(`--group ${group}: no such group`);
}

/** The ids --user/--group name; undefined when neither is given. Throws OptionError for an unknown name. */
export function resolveIdentity(user: string | undefined, group: string | undefined): Identity | undefined {
  if (user === undefined && group === undefined) return undefined;
  const uid = user === undefined ? process.getuid?.() ?? 0 : /^[0-9]+$/.test(user) ? Number(user) : idOf(['-u', user], `--user ${user}`);
  const gid = group !== undefined ? groupId(group) : user !== undefined ? idOf(['-g', user], `--user ${user}`) : process.getgid?.() ?? 0;
  return { user: user !== undefined && !/^[0-9]+$/.test(user) ? user : undefined, uid, gid };
}

/** Becomes `id` for good: supplementary groups of the user (or none), group, user. */
export function dropTo(id: Identity): void {
  if (process.getuid?.() !== 0) {
    if (process.getuid?.() === id.uid && process.getgid?.() === id.gid) return;
    throw new OptionError(`--user/--group need gatewire to start as root (running as uid ${process.getuid?.()})`);
  }
  // process.initgroups is Node's (POSIX) but missing from @types/node.
  const { initgroups } = process as unknown as { initgroups?: (user: string, gid: number) => void };
  if (id.user !== undefined && initgroups !== undefined) initgroups(id.user, id.gid);
  else process.setgroups?.([id.gid]);
  process.setgid?.(id.gid);
  process.setuid?.(id.uid);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Writes this process's pid to `path` through a temporary file and a rename (a reader never sees
 * half a number). A file naming a live process is refused; a stale one is replaced.
 */
export function writePidFile(path: string): void {
  let previous: number | undefined;
  try {
    previous = Number(readFileSync(path, 'utf8').trim());
  } catch {
    // none
  }
  if (previous !== undefined && Number.isInteger(previous) && previous > 0 && previous !== process.pid && alive(previous)) {
    throw new OptionError(`--pid-file ${path}: process ${previous} is running (another gatewire?)`);
  }
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    const fd = openSync(tmp, 'w', 0o644);
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    throw new OptionError(`--pid-file ${path}: ${(err as Error).message}`);
  }
}

/** Removes the pid file if it still names this process. */
export function removePidFile(path: string): void {
  try {
    if (Number(readFileSync(path, 'utf8').trim()) === process.pid) unlinkSync(path);
  } catch {
    // gone already
  }
}
