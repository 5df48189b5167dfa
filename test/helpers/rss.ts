/**
 * RSS of a server under test, read from /proc (Linux): the F-28 / S-7 / U-6 memory bounds of
 * the 100 MiB transfers.
 */
import * as fs from 'node:fs';

export const MiB = 1024 * 1024;

/** VmRSS of one process in bytes. */
function vmRss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'));
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

function childrenOf(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim().split(/\s+/).filter((t) => t !== '').map(Number);
  } catch {
    return [];
  }
}

/**
 * VmRSS of a server in bytes: the process and every process under it. `gatewire serve` is a
 * primary with its workers, and a worker's growth is what the bounds are about.
 */
export function rssOf(pid: number): number {
  let total = vmRss(pid);
  for (const child of childrenOf(pid)) {
    try {
      total += rssOf(child);
    } catch {
      // gone between the listing and the read
    }
  }
  return total;
}

/** Samples a process's RSS every 20 ms while `work` runs; returns its result and the peak. */
export async function withRssPeak<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; peak: number; end: number }> {
  let peak = rssOf(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssOf(pid));
    } catch {
      // the process is gone: the test fails on the transfer itself
    }
  }, 20);
  try {
    const result = await work();
    const end = rssOf(pid);
    return { result, peak: Math.max(peak, end), end };
  } finally {
    clearInterval(timer);
  }
}

export const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

/** Measured numbers go to stderr when GATEWIRE_PEER_REPORT=1 (for a closing note), else nowhere. */
export function reportMeasure(suite: string, line: string): void {
  if (process.env['GATEWIRE_PEER_REPORT'] === '1') process.stderr.write(`[${suite}] ${line}\n`);
}

/** The process that serves: a `gatewire serve` primary's (first) worker, else `pid` itself. */
export function servingPid(pid: number): number {
  return childrenOf(pid)[0] ?? pid;
}
