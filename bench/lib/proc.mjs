// Process helpers for the benchmark harness: start a server in its own process
// group, stop the whole group, and read CPU time and RSS of a process tree from /proc.
//
// Linux only (reads /proc). Everything here is synchronous except start/stop.

import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { accessSync, constants, readFileSync, readdirSync, statSync } from 'node:fs';

let clkTck = 0;
/** Clock ticks per second, the unit of utime/stime in /proc/PID/stat. */
export function clockTicks() {
  if (!clkTck) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/**
 * Parse /proc/PID/stat. The command name (field 2) is in parentheses and may contain
 * spaces or parentheses, so split after the last ')'.
 * Returns null if the process is gone.
 */
export function readStat(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  const close = text.lastIndexOf(')');
  const comm = text.slice(text.indexOf('(') + 1, close);
  // rest[0] is field 3 (state); field N is rest[N - 3].
  const rest = text.slice(close + 2).split(' ');
  return {
    pid,
    comm,
    state: rest[0],
    ppid: Number(rest[1]),
    pgrp: Number(rest[2]),
    utime: Number(rest[11]),
    stime: Number(rest[12]),
    cutime: Number(rest[13]),
    cstime: Number(rest[14]),
  };
}

/** Every live process's stat line (one pass over /proc). */
export function allStats() {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (name.charCodeAt(0) < 48 || name.charCodeAt(0) > 57) continue;
    const st = readStat(Number(name));
    if (st) out.push(st);
  }
  return out;
}

/** The pids of `rootPid` and all its descendants that are alive now (zombies excluded). */
export function processTree(rootPid, stats = allStats()) {
  const children = new Map();
  let rootAlive = false;
  for (const st of stats) {
    if (st.state === 'Z') continue;
    if (st.pid === rootPid) rootAlive = true;
    if (!children.has(st.ppid)) children.set(st.ppid, []);
    children.get(st.ppid).push(st);
  }
  if (!rootAlive) return [];
  const tree = [];
  const todo = [rootPid];
  while (todo.length) {
    const pid = todo.pop();
    tree.push(pid);
    for (const ch of children.get(pid) ?? []) todo.push(ch.pid);
  }
  return tree;
}

/**
 * CPU time of a process tree, in seconds: utime + stime of every live process in the
 * tree, plus cutime + cstime (time of children that already exited and were reaped), so
 * that a worker that dies during the run keeps its time in its parent's account.
 * Deltas of this value over a run are what we report.
 */
export function treeCpuSeconds(rootPids) {
  const stats = allStats();
  const byPid = new Map(stats.map((s) => [s.pid, s]));
  let ticks = 0;
  const seen = new Set();
  for (const root of rootPids) {
    for (const pid of processTree(root, stats)) {
      if (seen.has(pid)) continue;
      seen.add(pid);
      const st = byPid.get(pid);
      if (st) ticks += st.utime + st.stime + st.cutime + st.cstime;
    }
  }
  return { seconds: ticks / clockTicks(), processes: seen.size };
}

/** VmRSS of one process in bytes (0 if gone or a kernel thread). */
export function readRss(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'latin1');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Sum of VmRSS over a process tree, in bytes. Pages shared between a forking master and
 * its workers are counted once per process, so for pre-fork servers this over-counts
 * (it is what `ps` would sum; README says so).
 */
export function treeRss(rootPids) {
  const stats = allStats();
  const seen = new Set();
  let bytes = 0;
  for (const root of rootPids) {
    for (const pid of processTree(root, stats)) {
      if (seen.has(pid)) continue;
      seen.add(pid);
      bytes += readRss(pid);
    }
  }
  return bytes;
}

/** Live (non-zombie) members of process group `pgid`. */
export function groupMembers(pgid) {
  return allStats().filter((s) => s.pgrp === pgid && s.state !== 'Z').map((s) => s.pid);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Every service started and not yet stopped, so an interrupted run can clean up. */
const running = new Set();
/** Set once the harness is interrupted: no new process may start after that. */
let closing = false;

/**
 * Start a command as the leader of a new process group (detached), with stdin closed
 * and stdout/stderr captured into a small tail buffer (for error messages).
 * Returns a handle: { name, pid, exited (promise), exitInfo, tail(), stop() }.
 */
export function startProcess(name, { cmd, args = [], cwd, env, stopSignal = 'SIGTERM' }) {
  if (closing) throw new Error('interrupted');
  const child = spawn(cmd, args, {
    cwd,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tailText = '';
  const keep = (chunk) => {
    tailText = (tailText + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const handle = {
    name,
    child,
    pid: child.pid,
    exitInfo: null,
    spawnError: null,
    tail: () => tailText,
    lastLine() {
      const lines = tailText.split('\n').map((l) => l.trim()).filter(Boolean);
      return lines.length ? lines[lines.length - 1] : '';
    },
    stopSignal,
    stop: () => stopProcess(handle),
  };
  handle.exited = new Promise((resolve) => {
    child.on('error', (err) => {
      handle.spawnError = err;
      handle.exitInfo = { code: null, signal: null, error: err.message };
      resolve(handle.exitInfo);
    });
    child.on('exit', (code, signal) => {
      handle.exitInfo = { code, signal };
      resolve(handle.exitInfo);
    });
  });
  if (child.pid) running.add(handle);
  return handle;
}

/** Describe why a process is not running any more, in a few words. */
export function describeExit(handle) {
  const info = handle.exitInfo;
  if (!info) return 'still running';
  if (info.error) return `could not start: ${info.error}`;
  const how = info.signal ? `killed by ${info.signal}` : `exited with code ${info.code}`;
  const last = handle.lastLine();
  return last ? `${how}: ${last}` : how;
}

function signalGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
  } catch {
    /* group already gone */
  }
}

/**
 * Stop the process group: its stop signal (SIGTERM unless the service says otherwise;
 * uWSGI without a master is faster to stop with SIGINT), wait up to `graceMs` for every member to go, then
 * SIGKILL whatever is left and wait for that too. Never signals anything outside the
 * group the harness created.
 */
export async function stopProcess(handle, graceMs = 3000) {
  running.delete(handle);
  const pgid = handle.pid;
  if (!pgid) return { killed: false };
  signalGroup(pgid, handle.stopSignal ?? 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (handle.exitInfo && groupMembers(pgid).length === 0) return { killed: false };
    await sleep(25);
  }
  signalGroup(pgid, 'SIGKILL');
  const hard = Date.now() + 2000;
  while (Date.now() < hard) {
    if (handle.exitInfo && groupMembers(pgid).length === 0) break;
    await sleep(25);
  }
  return { killed: true };
}

/**
 * On interrupt: SIGKILL every group still running and wait (up to `waitMs`) until each
 * leader has been reaped and no member is left, so nothing outlives the harness.
 */
export async function killAllAndWait(waitMs = 2000) {
  closing = true;
  const handles = [...running];
  running.clear();
  for (const h of handles) signalGroup(h.pid, 'SIGKILL');
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    if (handles.every((h) => h.exitInfo && groupMembers(h.pid).length === 0)) return;
    await sleep(25);
  }
}

/** Synchronous last resort on exit: SIGKILL every group still running. */
export function killAllSync() {
  for (const h of running) signalGroup(h.pid, 'SIGKILL');
  running.clear();
}

/** The first line of `cmd args` output (stdout, else stderr), or null when the command is missing. */
export function commandVersion(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
  if (r.error) return null;
  const text = `${r.stdout ?? ''}`.trim() || `${r.stderr ?? ''}`.trim();
  return text.split('\n')[0].trim() || null;
}

/** Absolute path of `cmd` found on PATH (or as given, if it contains a slash), else null. */
export function findCommand(cmd) {
  const isExec = (p) => {
    try {
      accessSync(p, constants.X_OK);
      return statSync(p).isFile();
    } catch {
      return false;
    }
  };
  if (cmd.includes('/')) return isExec(cmd) ? cmd : null;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && isExec(`${dir}/${cmd}`)) return `${dir}/${cmd}`;
  }
  return null;
}

/**
 * Machine-wide CPU time from the first line of /proc/stat, in seconds:
 * { busy, total } where busy excludes idle and iowait. Used to show how much CPU
 * something other than the server and wrk took during a run (a shared machine).
 */
export function machineCpu() {
  try {
    const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = f[3] + (f[4] ?? 0);
    return { busy: (total - idle) / clockTicks(), total: total / clockTicks(), steal: (f[7] ?? 0) / clockTicks() };
  } catch {
    return null;
  }
}
