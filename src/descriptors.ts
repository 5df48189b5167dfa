/**
 * Running out of file descriptors (CLI-10). Once every descriptor the soft RLIMIT_NOFILE allows
 * is open, accept(2) fails with EMFILE, and Node 20 does not say so: libuv keeps one descriptor
 * in reserve for this, and on EMFILE closes it, accepts the waiting connections, closes each at
 * once and opens its reserve again (uv__emfile_trick). The listener emits no 'error', clients
 * see their connection closed before a byte, and accepting resumes by itself when descriptors
 * are freed. Tried with Node 20.20 under `ulimit -n 64` and 200 connections: 44 kept, 156
 * closed, no event of any kind. Node emits 'error' (EMFILE or ENFILE, syscall accept) only when
 * libuv could not take its reserve back.
 *
 * Nothing in the accept path can log it, so a probe does: once a second it opens and closes
 * /dev/null (two syscalls, on an unref'd timer), and EMFILE or ENFILE there means the table is
 * full and connections are being turned away now. While that lasts, one warn line every few
 * seconds at most, naming the soft limit (from /proc/self/limits, what `ulimit -n` shows) and
 * the open descriptors (the entries of /proc/self/fd, which cannot be listed while the table is
 * full: the count is then the limit itself); one info line when descriptors are free again.
 * An accept error Node does report goes through the same rate limit (exhausted()).
 */
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';
import type { Logger } from './log.js';

/** How often the probe runs. */
export const PROBE_MS = 1000;
/** At most one warn line this often while descriptors are exhausted. */
export const REPORT_MS = 5000;

type Exhaustion = 'EMFILE' | 'ENFILE';

/** The soft limit on open files (`ulimit -n`), from /proc/self/limits; undefined when unlimited or unknown. */
export function softDescriptorLimit(limits = '/proc/self/limits'): number | undefined {
  let text: string;
  try {
    text = readFileSync(limits, 'latin1');
  } catch {
    return undefined; // not Linux, or no /proc
  }
  const soft = /^Max open files +(\S+)/m.exec(text)?.[1];
  return soft === undefined || !/^[0-9]+$/.test(soft) ? undefined : Number(soft);
}

/** Descriptors open in this process (/proc/self/fd, without the one the listing itself uses); undefined when it cannot be listed. */
export function openDescriptors(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return undefined;
  }
}

/** EMFILE or ENFILE when no descriptor can be opened right now, else undefined. */
function probe(): Exhaustion | undefined {
  try {
    closeSync(openSync('/dev/null', 'r'));
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'EMFILE' || code === 'ENFILE' ? code : undefined;
  }
}

export interface DescriptorWatchOptions {
  /** What is refused while descriptors are exhausted, for the log line (`http on 127.0.0.1:8080`). */
  refusing: () => string;
  probeMs?: number;
  reportMs?: number;
}

/** Probes for exhausted descriptors while the server listens, and logs it (CLI-10). */
export class DescriptorWatch {
  /** The soft limit, read when the watch starts. */
  private limit: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private exhaustedNow = false;
  /** performance.now() of the last warn line. */
  private reported = Number.NEGATIVE_INFINITY;
  private readonly reportMs: number;

  constructor(
    private readonly logger: Logger,
    private readonly options: DescriptorWatchOptions,
  ) {
    this.reportMs = options.reportMs ?? REPORT_MS;
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.limit = softDescriptorLimit();
    this.timer = setInterval(() => this.check(), this.options.probeMs ?? PROBE_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One probe: a warn line (rate-limited) while exhausted, an info line once it is over. */
  check(): void {
    const code = probe();
    if (code !== undefined) {
      this.exhausted(code);
      return;
    }
    if (!this.exhaustedNow) return;
    this.exhaustedNow = false;
    this.logger.info(`file descriptors free again: ${openDescriptors() ?? 'an unknown number'} open, the soft limit (ulimit -n) is ${this.limitText()}; accepting connections`);
  }

  /** Descriptors are exhausted: from the probe, or an accept error Node reported. */
  exhausted(code: Exhaustion): void {
    this.exhaustedNow = true;
    const now = performance.now();
    if (now - this.reported < this.reportMs) return;
    this.reported = now;
    // EMFILE: the table is full, so /proc/self/fd cannot be listed; what is open is the limit.
    const open = openDescriptors() ?? (code === 'EMFILE' ? this.limit : undefined);
    const what = code === 'EMFILE' ? 'file descriptors exhausted (EMFILE)' : "the system's file table is full (ENFILE)";
    this.logger.warn(
      `${what}: ${open ?? 'an unknown number'} open, the soft limit (ulimit -n) is ${this.limitText()}; ` +
        `new connections to ${this.options.refusing()} are closed as soon as they are accepted until descriptors are freed`,
    );
  }

  private limitText(): string {
    return this.limit === undefined ? 'unknown' : String(this.limit);
  }
}
