/**
 * One CGI script run (C-10..C-17, C-19..C-21, C-28, C-29): spawn in its own process group, pump
 * stdin, stdout and stderr concurrently, parse the head, stream the body with backpressure, and
 * make sure every process of the group is gone when the run ends.
 *
 * Lifecycle:
 *
 *   spawn ─► head (parsed | 502 | 504) ─► body chunks ─► stdout EOF ┐
 *                                                      exit ────────┴─► reap: SIGKILL to the group
 *                                                                       (leftovers), then 'close'
 *
 * - The response ends at stdout EOF, not at exit (C-15). When one of the two happened and the
 *   other has not after `exitGrace`, the group is killed: a script that left `sleep 60 &`
 *   holding stdout finishes its response then, and a script that closed stdout and went on
 *   working is stopped. Either way no process of the group outlives the run.
 * - Timeouts and client aborts send SIGTERM to the group, then SIGKILL after `killGrace` (C-14).
 * - A script killed by a signal before its stdout ended, after the head was sent, makes the body
 *   throw, so the exchange aborts the connection and the client sees the truncation (C-29).
 *
 * Process-group signals go to `-pid`. The script was started in its own session (setsid, see
 * spawn.ts), so its pid is its group id; while any member lives the kernel keeps that id reserved.
 */
import type { Readable, Writable } from 'node:stream';
import {
  CgiResponseParser,
  NphResponseParser,
  type CgiHeadLimits,
  type CgiResponseHead,
  type NphResponseHead,
} from '../../protocols/cgi/response.js';
import { ProtocolError } from '../../protocols/errors.js';
import { sendSignal, spawnScript, type ScriptOutput, type ScriptProcess } from './spawn.js';

export interface RunTimeouts {
  /** Spawn to the end of the response head; beyond it 504 (Apache "timed out before returning headers"). */
  headers: number;
  /** Longest silence on stdout once the head arrived (not counted while the client is slow). */
  idle: number;
  /** Whole run. */
  total: number;
  /** SIGTERM to SIGKILL. */
  killGrace: number;
  /** Exit without stdout EOF (or EOF without exit) before the group is killed (C-15). */
  exitGrace: number;
}

export type RunStdin =
  | { kind: 'none' }
  | { kind: 'stream'; input: Readable }
  | { kind: 'buffer'; data: Buffer }
  | { kind: 'fd'; fd: number };

export interface RunSpec {
  command: string;
  args: readonly string[];
  cwd: string;
  env: Record<string, string>;
  stdin: RunStdin;
  /** C-18: run as this user/group (the server must be allowed to switch, i.e. root). */
  uid: number | undefined;
  gid: number | undefined;
  /** C-18: the child's umask, set around the (synchronous) fork. */
  umask: number | undefined;
  nph: boolean;
  headLimits: CgiHeadLimits;
  timeouts: RunTimeouts;
  /** Stderr bytes passed to onStderrLine per run (C-16); the rest is drained and counted. */
  maxStderrBytes: number;
  /** Stderr bytes kept for the script log. */
  stderrTailBytes: number;
  onStderrLine(line: string, pid: number | undefined): void;
}

export type HeadOutcome =
  | { ok: true; head: CgiResponseHead; nph?: undefined }
  | { ok: true; nph: NphResponseHead; head?: undefined }
  | { ok: false; status: number; reason: string };

/** What happened, once every pipe closed. */
export interface RunResult {
  pid: number | undefined;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Why the host killed the group before a normal end: a timeout, an abort, bad output. */
  killed: string | undefined;
  /** The kill was a headers, idle or total timeout (C-14, C-15). */
  timedOut: boolean;
  /** The group was killed because exit and stdout EOF were more than exitGrace apart (C-15). */
  graceKilled: boolean;
  spawnError: NodeJS.ErrnoException | undefined;
  stderrBytes: number;
  stderrTail: Buffer;
  /** Bytes of the body read from stdout (after the head). */
  bodyBytes: number;
}

/** Stdout is paused past this many queued bytes and resumed below LOW_WATER. */
const HIGH_WATER = 256 * 1024;
const LOW_WATER = 64 * 1024;
/** A stderr line longer than this is logged in pieces. */
const STDERR_LINE = 8 * 1024;

/** C-13: ENOENT, EACCES, EMFILE… → 500 (403 for EACCES); the cause goes to the log only. */
function spawnFailure(err: NodeJS.ErrnoException): HeadOutcome {
  return { ok: false, status: err.code === 'EACCES' ? 403 : 500, reason: `spawn failed: ${err.code ?? err.message}` };
}

/** Sends a signal to a process group; a group that is gone already (ESRCH) is fine. */
export function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  const failed = sendSignal(-pid, signal);
  // EPERM on the group (a member changed its uid): the leader at least.
  if (failed !== 0 && failed !== 'ESRCH') sendSignal(pid, signal);
}

export class CgiRun {
  /** Resolves once: the parsed head, or the status to answer instead. */
  readonly head: Promise<HeadOutcome>;
  /** Resolves when the process exited and its pipes closed. Never rejects. */
  readonly finished: Promise<RunResult>;

  private child: ScriptProcess | undefined;
  private parser: CgiResponseParser | NphResponseParser | undefined;
  private resolveHead!: (outcome: HeadOutcome) => void;
  private resolveFinished!: (result: RunResult) => void;
  private headDone = false;

  private readonly queue: Buffer[] = [];
  private queued = 0;
  /** NPH: the stdout chunks of the head as the script wrote them (C-28: a front may send them unmodified). */
  private readonly nphHeadChunks: Buffer[] = [];
  private nphHead: Buffer | undefined;
  private paused = false;
  private discarding = false;
  private bodyBytes = 0;
  private stdoutEnded = false;
  private exited = false;
  private exitCode: number | null = null;
  private exitSignal: NodeJS.Signals | null = null;
  private killReason: string | undefined;
  private timedOut = false;
  private graceKilled = false;
  private reaped = false;
  private closed = false;
  /** Set when the body must fail: killed after the head, or died by a signal (C-29). */
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private spawnError: NodeJS.ErrnoException | undefined;

  private lastOutput = 0;
  private headersTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private totalTimer: NodeJS.Timeout | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  private forceTimer: NodeJS.Timeout | undefined;

  private stderrBytes = 0;
  private stderrLogged = 0;
  private stderrPartial: Buffer | undefined;
  private readonly stderrTail: Buffer[] = [];
  private stderrTailLength = 0;

  constructor(private readonly spec: RunSpec) {
    this.head = new Promise((resolve) => (this.resolveHead = resolve));
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
    this.parser = spec.nph ? new NphResponseParser(spec.headLimits) : new CgiResponseParser(spec.headLimits);
    const t = spec.timeouts;
    this.headersTimer = setTimeout(() => this.timeout('headers'), t.headers);
    this.totalTimer = setTimeout(() => this.timeout('total'), t.total);
    const stdin = spec.stdin;
    // Last: the callback may come at once (child_process) or from the event loop (native).
    spawnScript(
      {
        command: spec.command,
        args: spec.args,
        cwd: spec.cwd,
        env: spec.env,
        // C-10: no body → /dev/null, so a script reading stdin gets EOF at once.
        stdin: stdin.kind === 'none' ? 'null' : stdin.kind === 'fd' ? stdin.fd : 'pipe',
        uid: spec.uid,
        gid: spec.gid,
        umask: spec.umask,
      },
      (err, child) => (child === undefined ? this.failedToStart(err as NodeJS.ErrnoException) : this.started(child)),
    );
  }

  /** The script's pid (its process group id too), once it started. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Nothing runs, nothing to reap: ENOENT, EACCES, ENOEXEC, EMFILE, invalid arguments. */
  private failedToStart(err: NodeJS.ErrnoException): void {
    this.spawnError = err;
    this.settleHead(spawnFailure(err));
    if (this.spec.stdin.kind === 'stream') this.spec.stdin.input.resume(); // keep the client's framing intact
    this.closed = true;
    this.clearTimers();
    this.signal();
    this.resolveFinished(this.result());
  }

  private started(child: ScriptProcess): void {
    this.child = child;
    // Aborted (client gone, server closing) while the spawn was under way.
    if (this.killReason !== undefined && child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
    child.on('error', (err: NodeJS.ErrnoException) => {
      // child_process reports ENOENT/EACCES this way, then 'close'.
      if (this.spawnError === undefined && child.pid === undefined) this.spawnError = err;
      this.settleHead(spawnFailure(err));
    });
    child.on('exit', (code: number | null, signal: NodeJS.Signals | null) => this.onExit(code, signal));
    child.on('close', () => this.onClose());

    const stdout = child.stdout as ScriptOutput;
    stdout.on('data', (chunk: Buffer) => this.onStdout(chunk));
    stdout.on('end', () => this.onStdoutEnd());
    stdout.on('error', () => this.onStdoutEnd());
    stdout.on('close', () => this.onStdoutEnd());
    const stderr = child.stderr as ScriptOutput;
    stderr.on('data', (chunk: Buffer) => this.onStderr(chunk));
    stderr.on('end', () => this.flushStderr());
    stderr.on('error', () => undefined);

    const stdin = this.spec.stdin;
    if (child.stdin !== null) this.pumpStdin(child.stdin, stdin);
    else if (stdin.kind === 'stream') stdin.input.resume(); // nothing will read it: keep the client's framing intact
  }

  /** Client gone, exchange cut short, server closing: stop the script (C-14). `status` answers a run still without a head. */
  abort(reason: string, status = 502): void {
    if (this.closed) return;
    this.settleHead({ ok: false, status, reason });
    this.kill(reason);
  }

  /** The body is not wanted (client redirect, HEAD of a local redirect target): read and drop it. */
  discard(): void {
    this.discarding = true;
    this.queue.length = 0;
    this.queued = 0;
    this.resumeStdout();
  }

  /**
   * Waits until the run is over (stdout EOF and exit), went wrong, filled its queue, or `ms`
   * passed, whichever comes first. A short script's whole response can then go out in one
   * write with an exact length instead of head, body and end apart (three writes, three
   * wake-ups of the web server); a script that streams is held back by `ms` at most (C-30).
   */
  async settleWithin(ms: number): Promise<void> {
    if (this.settled()) return;
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      this.signal();
    }, ms);
    try {
      while (!late && !this.settled()) await this.nextEvent();
    } finally {
      clearTimeout(timer);
    }
  }

  private settled(): boolean {
    return (this.stdoutEnded && this.exited) || this.closed || this.paused || this.failure !== undefined || this.killReason !== undefined;
  }

  /** True once stdout reached EOF. */
  get outputEnded(): boolean {
    return this.stdoutEnded;
  }

  /** True when stdout ended, the process exited and nothing went wrong: the queue holds the whole body. */
  get completeNow(): boolean {
    return this.stdoutEnded && this.exited && this.failure === undefined && this.killReason === undefined && this.exitSignal === null;
  }

  /** NPH: the head's bytes exactly as the script wrote them, once parsed (C-28); empty otherwise. */
  get rawHead(): Buffer {
    return this.nphHead ?? Buffer.alloc(0);
  }

  /** Takes every queued body chunk (used when the body is already complete). */
  takeAll(): Buffer[] {
    const all = this.queue.splice(0);
    this.queued = 0;
    return all;
  }

  /**
   * For a local redirect (C-23): waits for the first body byte (true) or stdout EOF without one
   * (false). Throws when the run was killed meanwhile.
   */
  async hasBody(): Promise<boolean> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      if (this.queue.length > 0) return true;
      if (this.stdoutEnded) return false;
      await this.nextEvent();
    }
  }

  /** The next body chunk (AsyncIterator protocol); done at stdout EOF. */
  async next(): Promise<IteratorResult<Buffer, undefined>> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      const chunk = this.queue.shift();
      if (chunk !== undefined) {
        this.queued -= chunk.length;
        if (this.paused && this.queued < LOW_WATER) this.resumeStdout();
        return { value: chunk, done: false };
      }
      if (this.stdoutEnded) {
        // C-29: EOF because the script died from a signal is a truncated body, not an end.
        // The exit follows EOF within exitGrace at most (the grace timer kills otherwise).
        while (!this.exited && !this.closed) await this.nextEvent();
        if (this.failure !== undefined) throw this.failure;
        if (this.exitSignal !== null && !this.graceKilled && this.killReason === undefined) {
          throw new Error(`CGI script died from ${this.exitSignal} before completing its output`);
        }
        return { value: undefined, done: true };
      }
      await this.nextEvent();
    }
  }

  private nextEvent(): Promise<void> {
    return new Promise((resolve) => {
      const prev = this.wake;
      this.wake = () => {
        prev?.();
        resolve();
      };
    });
  }

  private signal(): void {
    const wake = this.wake;
    if (wake !== undefined) {
      this.wake = undefined;
      wake();
    }
  }

  private settleHead(outcome: HeadOutcome): void {
    if (this.headDone) return;
    this.headDone = true;
    this.parser = undefined;
    if (this.headersTimer !== undefined) clearTimeout(this.headersTimer);
    this.headersTimer = undefined;
    this.resolveHead(outcome);
  }

  private pumpStdin(stdin: Writable, source: RunStdin): void {
    // C-11: without this listener an EPIPE (script exited without reading) kills the server.
    let broken = false;
    stdin.on('error', () => {
      broken = true;
      if (source.kind === 'stream') source.input.resume(); // keep reading the client body, drop it
    });
    if (source.kind === 'buffer') {
      stdin.end(source.data);
      return;
    }
    if (source.kind !== 'stream') {
      stdin.end();
      return;
    }
    const input = source.input;
    const onDrain = (): void => {
      input.resume();
    };
    stdin.on('drain', onDrain);
    input.on('data', (chunk: Buffer) => {
      if (broken || stdin.destroyed) return;
      // C-10: backpressure both ways; stdout and stderr are read meanwhile, so no deadlock.
      if (!stdin.write(chunk)) input.pause();
    });
    input.on('end', () => {
      if (!broken && !stdin.destroyed) stdin.end();
    });
    input.on('error', () => {
      // Truncated or over the limit: the script sees EOF early; the front handles the client.
      if (!stdin.destroyed) stdin.destroy();
    });
    input.resume();
  }

  private onStdout(chunk: Buffer): void {
    if (this.discarding || this.killReason !== undefined) return;
    this.lastOutput = performance.now();
    const parser = this.parser;
    if (!this.headDone && parser !== undefined) {
      let head: CgiResponseHead | NphResponseHead | undefined;
      if (parser instanceof NphResponseParser) this.nphHeadChunks.push(chunk);
      try {
        head = parser.push(chunk);
      } catch (err) {
        this.settleHead({ ok: false, status: 502, reason: err instanceof ProtocolError ? err.detail : (err as Error).message });
        this.kill('malformed response head');
        return;
      }
      if (head === undefined) return;
      if (parser instanceof NphResponseParser) this.nphHead = Buffer.concat(this.nphHeadChunks.splice(0)).subarray(0, head.headBytes);
      const rest = head.rest;
      this.settleHead(parser instanceof NphResponseParser ? { ok: true, nph: head as NphResponseHead } : { ok: true, head: head as CgiResponseHead });
      this.idleTimer = setTimeout(() => this.checkIdle(), this.spec.timeouts.idle);
      if (rest.length === 0) return;
      chunk = rest;
    }
    this.bodyBytes += chunk.length;
    this.queue.push(chunk);
    this.queued += chunk.length;
    if (this.queued >= HIGH_WATER && !this.paused) {
      this.paused = true;
      this.child?.stdout?.pause();
    }
    this.signal();
  }

  private resumeStdout(): void {
    if (!this.paused) return;
    this.paused = false;
    this.lastOutput = performance.now(); // the silence while paused was the client's
    this.child?.stdout?.resume();
  }

  private onStdoutEnd(): void {
    if (this.stdoutEnded) return;
    this.stdoutEnded = true;
    if (!this.headDone && this.parser !== undefined && this.killReason === undefined) {
      try {
        this.parser.end();
      } catch (err) {
        // C-21: premature end of script headers, zero output included.
        this.settleHead({ ok: false, status: 502, reason: err instanceof ProtocolError ? err.detail : (err as Error).message });
      }
    }
    this.settleHead({ ok: false, status: 502, reason: 'stdout closed before the response head' });
    this.afterEvent();
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.exited = true;
    this.exitCode = code;
    this.exitSignal = signal;
    this.afterEvent();
  }

  /** Exit and EOF: reap leftovers at once; one without the other: start the grace period (C-15). */
  private afterEvent(): void {
    if (this.exited && this.stdoutEnded) {
      if (!this.reaped) {
        this.reaped = true;
        // Whatever the script left in its group (daemons, `cmd &` that closed stdout) dies with the run.
        if (this.pid !== undefined) signalGroup(this.pid, 'SIGKILL');
        this.clearTimers();
        this.forceCloseLater();
      }
    } else if (this.graceTimer === undefined && this.pid !== undefined && !this.reaped) {
      this.graceTimer = setTimeout(() => {
        this.graceKilled = this.killReason === undefined;
        signalGroup(this.pid, 'SIGKILL');
        this.forceCloseLater();
      }, this.spec.timeouts.exitGrace);
    }
    this.signal();
  }

  /**
   * Last resort, killGrace after the final SIGKILL: a process that left the group (setsid) can
   * still hold stdout or stderr, and the run would never close (a slot lost for good). Our ends
   * of the pipes are closed; that process is outside the host's reach, as under Apache.
   */
  private forceCloseLater(): void {
    if (this.forceTimer !== undefined || this.closed) return;
    this.forceTimer = setTimeout(() => {
      if (this.closed) return;
      const child = this.child;
      child?.stdout?.destroy();
      child?.stderr?.destroy();
      child?.stdin?.destroy();
    }, this.spec.timeouts.killGrace);
  }

  private onClose(): void {
    if (this.forceTimer !== undefined) clearTimeout(this.forceTimer);
    this.closed = true;
    this.exited = true;
    this.stdoutEnded = true;
    this.clearTimers();
    this.settleHead({ ok: false, status: 502, reason: 'the script ended without a response head' });
    this.flushStderr();
    this.signal();
    this.resolveFinished(this.result());
  }

  private result(): RunResult {
    return {
      pid: this.pid,
      code: this.exitCode,
      signal: this.exitSignal,
      killed: this.killReason,
      timedOut: this.timedOut,
      graceKilled: this.graceKilled,
      spawnError: this.spawnError,
      stderrBytes: this.stderrBytes,
      stderrTail: Buffer.concat(this.stderrTail),
      bodyBytes: this.bodyBytes,
    };
  }

  private timeout(which: 'headers' | 'total' | 'idle'): void {
    if (this.reaped || this.closed) return;
    const ms = which === 'headers' ? this.spec.timeouts.headers : which === 'total' ? this.spec.timeouts.total : this.spec.timeouts.idle;
    const reason = `${which} timeout (${ms} ms)`;
    if (this.killReason === undefined) this.timedOut = true;
    this.settleHead({ ok: false, status: 504, reason: `script timed out before returning headers: ${reason}` });
    this.kill(reason);
  }

  private checkIdle(): void {
    this.idleTimer = undefined;
    // After the exit, the silence of a child still holding stdout is the exit grace's to end
    // (C-15): an idle timeout shorter than exitGrace must not truncate a finished response.
    if (this.reaped || this.closed || this.killReason !== undefined || this.exited) return;
    const idle = this.spec.timeouts.idle;
    const quiet = performance.now() - this.lastOutput;
    if (this.paused || this.discarding || this.stdoutEnded || quiet < idle) {
      if (!this.stdoutEnded) this.idleTimer = setTimeout(() => this.checkIdle(), this.paused ? idle : Math.max(1, idle - quiet));
      return;
    }
    this.timeout('idle');
  }

  /** SIGTERM to the group now, SIGKILL after killGrace (C-14). */
  private kill(reason: string): void {
    if (this.killReason !== undefined || this.reaped || this.closed) return;
    this.killReason = reason;
    if (this.headDone) this.failure = new Error(`CGI script stopped: ${reason}`);
    this.settleHead({ ok: false, status: 502, reason });
    signalGroup(this.pid, 'SIGTERM');
    this.killTimer = setTimeout(() => {
      this.killTimer = undefined;
      signalGroup(this.pid, 'SIGKILL');
      this.forceCloseLater();
    }, this.spec.timeouts.killGrace);
    // Keep reading so a script blocked on a full pipe sees the signal; drop what it writes.
    this.queue.length = 0;
    this.queued = 0;
    this.resumeStdout();
    this.signal();
  }

  private clearTimers(): void {
    for (const t of [this.headersTimer, this.idleTimer, this.totalTimer, this.killTimer, this.graceTimer]) if (t !== undefined) clearTimeout(t);
    this.headersTimer = this.idleTimer = this.totalTimer = this.killTimer = undefined;
  }

  // C-16: stderr is always drained; lines go to the log up to maxStderrBytes per run.
  private onStderr(chunk: Buffer): void {
    this.stderrBytes += chunk.length;
    const tailMax = this.spec.stderrTailBytes;
    if (tailMax > 0) {
      this.stderrTail.push(chunk);
      this.stderrTailLength += chunk.length;
      while (this.stderrTail.length > 1 && this.stderrTailLength - (this.stderrTail[0] as Buffer).length >= tailMax) {
        this.stderrTailLength -= (this.stderrTail.shift() as Buffer).length;
      }
    }
    if (this.stderrLogged >= this.spec.maxStderrBytes) return;
    let buf = this.stderrPartial === undefined ? chunk : Buffer.concat([this.stderrPartial, chunk]);
    this.stderrPartial = undefined;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      if (nl === -1) break;
      this.stderrLine(buf, start, nl);
      start = nl + 1;
      if (this.stderrLogged >= this.spec.maxStderrBytes) return;
    }
    if (start < buf.length) {
      buf = buf.subarray(start);
      if (buf.length >= STDERR_LINE) this.stderrLine(buf, 0, buf.length);
      else this.stderrPartial = Buffer.from(buf);
    }
  }

  private stderrLine(buf: Buffer, start: number, end: number): void {
    const room = this.spec.maxStderrBytes - this.stderrLogged;
    if (room <= 0) return;
    let stop = end > start && buf[end - 1] === 0x0d ? end - 1 : end;
    if (stop - start > room) stop = start + room;
    this.stderrLogged += end - start + 1;
    this.spec.onStderrLine(buf.toString('latin1', start, stop), this.pid);
  }

  private flushStderr(): void {
    if (this.stderrPartial !== undefined) {
      const p = this.stderrPartial;
      this.stderrPartial = undefined;
      this.stderrLine(p, 0, p.length);
    }
    if (this.closed && this.stderrBytes > this.stderrLogged && this.stderrBytes > 0 && this.stderrLogged >= this.spec.maxStderrBytes) {
      this.spec.onStderrLine(`[stderr capped: ${this.stderrBytes - Math.min(this.stderrLogged, this.stderrBytes)} more bytes not logged]`, this.pid);
      this.stderrLogged = this.stderrBytes;
    }
  }
}
