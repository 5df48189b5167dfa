/**
 * Request body streams (`environ['gatewire.input']`), with backpressure to the socket.
 *
 * - BodyInput: a front pushes body bytes in (FastCGI STDIN records, SCGI/uwsgi socket data)
 *   and is told to pause its source when the app is not reading; bounded by CONTENT_LENGTH
 *   when known (E-11): bytes past it are dropped, an early end is an error ("truncated").
 * - LimitedInput: wraps Node's IncomingMessage for chunked bodies, to enforce the body limit.
 */
import { Readable } from 'node:stream';
import { GatewireError, ServerErrorCode } from './errors.js';
import { noteBodyBytes } from './memory.js';

export class TruncatedBodyError extends GatewireError {
  override name = 'TruncatedBodyError';
  override readonly code = ServerErrorCode.BodyTruncated;
}

export class BodyLimitError extends GatewireError {
  override name = 'BodyLimitError';
  override readonly code = ServerErrorCode.BodyTooLarge;
}

export interface BodySource {
  pause(): void;
  resume(): void;
}

export class BodyInput extends Readable {
  /** Bytes accepted so far. */
  received = 0;
  /** Called once when a body of unknown length passes the limit (the front answers 413 if it still can). */
  onLimit: (() => void) | undefined;
  private paused = false;

  /**
   * @param expected CONTENT_LENGTH, or -1 when the body ends with the stream (input_terminated).
   * @param max the body limit, enforced when the length is not known in advance.
   */
  constructor(
    private readonly source: BodySource,
    readonly expected: number,
    private readonly max = Number.MAX_SAFE_INTEGER,
  ) {
    super({ highWaterMark: 64 * 1024 });
    // The input fails when the peer goes away, aborts or truncates the body (F-25, F-31, F-32,
    // E-11). An app that never reads it has no 'error' listener, and an unheard 'error' event
    // would crash the process; an app that reads still gets the error.
    this.on('error', () => undefined);
    if (expected === 0) this.push(null);
  }

  /** Offers body bytes. Returns how many were taken (the rest lies past CONTENT_LENGTH). */
  offer(chunk: Buffer): number {
    if (this.destroyed || this.readableEnded || chunk.length === 0) return 0;
    let take = chunk;
    if (this.expected >= 0) {
      const room = this.expected - this.received;
      if (room <= 0) return 0;
      if (chunk.length > room) take = chunk.subarray(0, room);
    } else if (this.received + chunk.length > this.max) {
      this.destroy(new BodyLimitError(`request body over the limit ${this.max}`));
      this.onLimit?.();
      return 0;
    }
    this.received += take.length;
    noteBodyBytes(take.length); // F-28: consumed body buffers are freed while young (memory.ts)
    if (!this.push(take) && !this.paused) {
      this.paused = true;
      this.source.pause();
    }
    if (this.expected >= 0 && this.received === this.expected) this.push(null);
    return take.length;
  }

  /** The source has no more body bytes (STDIN EOS, socket end). */
  finish(): void {
    if (this.destroyed || this.readableEnded) return;
    if (this.expected >= 0 && this.received < this.expected) {
      this.destroy(new TruncatedBodyError(`request body truncated: ${this.received} of ${this.expected} bytes`));
      return;
    }
    this.push(null);
  }

  /** The exchange is over or the peer went away. */
  fail(err: Error): void {
    if (!this.destroyed && !this.readableEnded) this.destroy(err);
  }

  /** True when all of CONTENT_LENGTH arrived (or the stream was ended). */
  get complete(): boolean {
    return this.expected >= 0 ? this.received >= this.expected : this.readableEnded;
  }

  override _read(): void {
    if (this.paused) {
      this.paused = false;
      this.source.resume();
    }
  }
}

export class LimitedInput extends Readable {
  /** Called once when the body passes the limit. */
  onLimit: (() => void) | undefined;
  /** Body bytes read from the source so far. */
  received = 0;
  private started = false;

  constructor(
    private readonly source: Readable,
    private readonly max: number,
  ) {
    super({ highWaterMark: 64 * 1024 });
    this.on('error', () => undefined); // as in BodyInput: never an unheard 'error'
  }

  override _read(): void {
    if (this.started) {
      this.source.resume();
      return;
    }
    this.started = true;
    this.source.on('data', (chunk: Buffer) => {
      this.received += chunk.length;
      if (this.received > this.max) {
        this.source.pause();
        this.destroy(new BodyLimitError(`request body over the limit ${this.max}`));
        this.onLimit?.();
        return;
      }
      if (!this.push(chunk)) this.source.pause();
    });
    this.source.on('end', () => this.push(null));
    this.source.on('error', (err) => this.destroy(err));
    this.source.on('aborted', () => this.destroy(new TruncatedBodyError('client closed the connection during the body')));
  }
}
