/**
 * One exchange: call the app with an environ, enforce the response rules, write through a
 * front's ResponseSink. Every rule of docs/conformance.md §8.1 lives here, once:
 *
 *   R-1 status syntax, no final 1xx        R-6 hop-by-hop headers refused
 *   R-2 header name/value syntax           R-7 a `Status` header refused
 *   R-3 start_response twice / exc_info    R-8 Content-Length exact
 *   R-4 headers sent with the first        R-9 HEAD, 204, 304: no body
 *       non-empty chunk or at the end      R-10 repeated headers kept apart
 *   R-5 the body's cleanup always runs     R-11 error after headers → the peer sees truncation
 *   R-12 write('') sends the head now (an explicit flush, for SSE and long polls)
 *
 * Fronts only serialize: they never see an unvalidated status or header. The one exception is a
 * response the app frames itself (an NPH script's output, C-28): where the front can hand over
 * its connection's bytes (the HTTP front), `environ['gatewire.raw_response']` switches the
 * exchange to them, and the app's body then goes out byte for byte, without a head of ours.
 *
 * The exchange also keeps the access log's figures (CLI-9): the status, or 499 for a client
 * that went away first, and the body bytes actually handed to the peer.
 */
import { Buffer } from 'node:buffer';
import type { App, Body, Chunk, Environ, HeaderList, StartResponse, Write } from './app.js';
import { AppContractError } from './app.js';
import { GatewireError, ServerErrorCode } from './errors.js';
import { reply, sendReply } from './reply.js';
import { isHopByHop, isValidHeaderName, isValidHeaderValue, parseStatusLine } from '../protocols/cgi/head.js';

/** What a front provides to put a response on its wire. */
export interface ResponseSink {
  /** Sends the status and headers (already validated). Called at most once, before any body. */
  head(status: number, reason: string, headers: HeaderList): void;
  /** Writes body bytes (never empty). Returns false when the caller should await drain(). */
  write(chunk: Buffer): boolean;
  /**
   * Optional: puts a head that head() only stored on the wire now (R-12: the app flushed it
   * before any body byte). Fronts whose head() writes at once need none.
   */
  sendHead?(): void;
  /** Resolves when the peer can take more, or when the sink closed. */
  drain(): Promise<void>;
  /** Completes the response. */
  end(): void;
  /**
   * Optional: the whole response in one call, for a body known in full before anything was sent
   * (the common one-chunk case). `body` is undefined when there is none to send (HEAD, 204, 304);
   * a string is UTF-8. A front that implements it can put head and body in one write.
   */
  complete?(status: number, reason: string, headers: HeaderList, body: Buffer | string | undefined): void;
  /** Ends the response so the peer sees an error: truncation, a reset, a failed END_REQUEST. */
  abort(err: Error): void;
  /** True once the peer is gone; the exchange stops producing. */
  readonly closed: boolean;
  /**
   * Optional, for fronts whose connection can carry a response framed by the app (the HTTP front,
   * C-28): hands this response the connection's own bytes, once nothing of it was sent and the
   * responses before it on the connection are out. Undefined when the front cannot.
   */
  raw?(): Promise<RawOutput | undefined>;
}

/**
 * A connection's bytes, for a response the app frames itself: what is written goes to the peer
 * as it is, and the end closes the connection (nothing can follow a response whose framing is
 * not ours). The shape of a ResponseSink without its head.
 */
export interface RawOutput {
  /** Returns false when the caller should await drain(). */
  write(chunk: Buffer): boolean;
  drain(): Promise<void>;
  /** The response is complete: the connection closes once the bytes are out. */
  end(): void;
  /** The peer must see an error: the connection is reset. */
  abort(err: Error): void;
  readonly closed: boolean;
}

/** Where an exchange reports what went wrong; the front tags it with the request id. */
export interface ExchangeLog {
  error(message: string, err?: unknown): void;
}

const DONE: Promise<void> = Promise.resolve();

/**
 * --timeout (OP-10): an app that has not put its head on the wire within `ms` gets a 504.
 * `onTimeout` is the front's part (abort gatewire.signal, the log line, the metrics hook); it
 * runs once the 504 is out. After the head went out the deadline no longer applies (OP-11):
 * a streaming response (SSE, a long download) is legitimate, and its pace is the app's.
 */
export interface ExchangeDeadline {
  ms: number;
  onTimeout(): void;
}

/** Where an exchange's output goes once its deadline answered for it: nowhere, quietly. */
const NOWHERE: ResponseSink = {
  head: () => undefined,
  write: () => true,
  drain: () => DONE,
  end: () => undefined,
  abort: () => undefined,
  closed: true,
};

/** Thrown inside the exchange when the peer went away; ends the body iteration quietly. */
class PeerGone extends GatewireError {
  override readonly code = ServerErrorCode.PeerGone;
}

type State = 'calling' | 'iterating' | 'done';

/**
 * Runs one app call. Never throws: app errors become a 500 (before headers) or an aborted
 * response (after), and are logged with the request id.
 */
export class Exchange {
  status = 0;
  reason = '';
  /** Body bytes produced by the app (counted on HEAD too): what R-8 holds against Content-Length. */
  bytes = 0;
  /**
   * Body bytes handed to the peer (CLI-9): none for HEAD, 204 and 304, only those before a client
   * abort; for a raw response every byte of it, the app's own head included.
   */
  sentBytes = 0;
  headersSent = false;
  /** Set when the app failed; the front may report it (FastCGI appStatus, access log). */
  failed: Error | undefined;
  /** The peer went away before the response was complete (a client hang-up, FCGI_ABORT_REQUEST). */
  clientAborted = false;

  private headers: HeaderList | undefined;
  private declaredLength = -1;
  private state: State = 'calling';
  private iterator: Iterator<Chunk> | AsyncIterator<Chunk> | undefined;
  private readonly isHead: boolean;
  /** Set once the response went to the sink (ended, completed or aborted for an app error). */
  private completed = false;
  /** Set once the app framed the response itself (gatewire.raw_response): no head, no body rules. */
  private raw = false;
  private sink: ResponseSink;
  /** --timeout fired and answered 504: whatever the app does from then on is ignored. */
  timedOut = false;
  /** The --timeout timer while it runs (only with a deadline, only until the head goes out). */
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly environ: Environ,
    sink: ResponseSink,
    private readonly log: ExchangeLog,
    private readonly deadline?: ExchangeDeadline,
  ) {
    this.sink = sink;
    this.isHead = environ.REQUEST_METHOD === 'HEAD';
    if (sink.raw !== undefined) environ['gatewire.raw_response'] = (status: number) => this.takeRaw(status);
  }

  /**
   * The status of the access log (CLI-9). 499 is nginx's "client closed request": the client went
   * away before the response was complete. nginx keeps the status it sent once bytes went out; we
   * mark every abort, so a download cut short never reads as a complete one (sentBytes says how
   * far it got).
   */
  get accessStatus(): number {
    return this.clientAborted ? 499 : this.status;
  }

  readonly startResponse: StartResponse = (status, headers, excInfo) => {
    if (this.timedOut) return this.write; // the 504 went out: too late, quietly
    if (this.raw) throw new AppContractError('start_response after gatewire.raw_response: the app frames this response itself');
    if (excInfo !== undefined && excInfo !== null) {
      if (this.headersSent) throw excInfo; // too late to change anything; abort
    } else if (this.headers !== undefined) {
      throw new AppContractError('start_response called a second time without exc_info (R-3)');
    }
    const parsed = parseStatusLine(typeof status === 'string' ? status : String(status));
    if (parsed === null) throw new AppContractError(`invalid status ${JSON.stringify(status)} (R-1)`);
    if (parsed.code < 200) throw new AppContractError(`final status ${parsed.code} is not allowed (R-1)`);
    this.headers = this.checkHeaders(headers, parsed.code);
    this.status = parsed.code;
    this.reason = parsed.reason;
    return this.write;
  };

  /**
   * PEP 3333's legacy write(): sends the headers, then the chunk. Backpressure is the sink's.
   * An empty chunk before the head sends the head at once (R-12, PEP 3333: the headers go out
   * "upon the application's first invocation of the write() callable"); an empty chunk yielded
   * by the body iterable does not, since PEP 3333 middleware yields those to mean "nothing yet".
   */
  readonly write: Write = (chunk) => {
    if (this.timedOut) return;
    if (this.state === 'done') throw new AppContractError('write() called after the response ended');
    const buf = toBuffer(chunk);
    if (buf.length > 0) this.emit(buf);
    else if (!this.headersSent) this.flushHead();
  };

  /** the head now, before any body byte; nothing when the peer is already gone. */
  private flushHead(): void {
    if (this.sink.closed) return;
    this.requireStarted();
    this.sendHead();
    this.sink.sendHead?.();
  }

  /** True once the exchange is over (for a one-chunk body, as soon as run() returns). */
  get finished(): boolean {
    return this.state === 'done';
  }

  /** The front calls this when the peer is gone (client disconnect, FCGI_ABORT_REQUEST, timeout). */
  peerGone(): void {
    if (!this.completed) this.clientAborted = true;
    const it = this.iterator;
    if (it !== undefined && this.state === 'iterating' && typeof it.return === 'function') {
      // Ends a stream or generator that is waiting for data nobody will read.
      Promise.resolve()
        .then(() => it.return?.())
        .catch(() => undefined);
    }
  }

  /**
   * Runs the app. The promise settles when the exchange is over and never rejects. A one-chunk
   * array body (the common case) completes synchronously, without async machinery.
   */
  run(app: App): Promise<void> {
    const done = this.call(app);
    const deadline = this.deadline;
    // A response complete (or with its head out) when the app returns needs no timer at all.
    if (deadline === undefined || deadline.ms <= 0 || this.state === 'done' || this.headersSent) return done;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.timer = undefined;
        this.timeOut(deadline);
        resolve();
      }, deadline.ms);
      timer.unref();
      this.timer = timer;
      void done.then(() => {
        this.disarm();
        resolve();
      });
    });
  }

  private disarm(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * OP-10: the deadline passed before the head went out. gatewire's 504 goes out instead, and
   * the exchange's sink becomes NOWHERE: a late start_response, write or body reaches nothing
   * (the body is still closed, R-5), so no second response and nothing on a kept connection.
   */
  private timeOut(deadline: ExchangeDeadline): void {
    if (this.headersSent || this.completed || this.state === 'done') return;
    this.timedOut = true;
    this.completed = true;
    const sink = this.sink;
    this.sink = NOWHERE;
    const it = this.iterator;
    if (!sink.closed) {
      const r = reply(504, String(this.environ['gatewire.request_id']), this.environ.REQUEST_METHOD);
      this.status = 504;
      this.reason = r.reason;
      this.headersSent = true;
      if (r.body !== undefined) this.sentBytes = r.body.length;
      sendReply(sink, r);
    } else {
      this.clientAborted = true;
    }
    deadline.onTimeout();
    if (it !== undefined && typeof it.return === 'function') {
      Promise.resolve()
        .then(() => it.return?.())
        .catch(() => undefined);
    }
  }

  private call(app: App): Promise<void> {
    let result: Body | Promise<Body>;
    try {
      result = app(this.environ, this.startResponse);
    } catch (err) {
      this.fail(err);
      return DONE;
    }
    if (isPromise(result)) {
      return result.then(
        (body) => this.respond(body),
        (err: unknown) => this.fail(err),
      );
    }
    return this.respond(result);
  }

  /**
   * `gatewire.raw_response(status)` (C-28): the app frames its response itself, and the sink hands
   * over the connection's bytes. Only before start_response; false when the front cannot.
   */
  private async takeRaw(status: number): Promise<boolean> {
    if (this.timedOut) return false;
    if (this.headers !== undefined || this.headersSent || this.state === 'done' || this.raw) return false;
    const out = await this.sink.raw?.();
    if (out === undefined) return false;
    if (this.headers !== undefined || (this.state as State) === 'done') {
      out.abort(new AppContractError('start_response while gatewire.raw_response was pending'));
      return false;
    }
    this.raw = true;
    this.disarm();
    this.sink = rawSink(out);
    this.status = status;
    this.headers = [];
    this.headersSent = true;
    return true;
  }

  private respond(body: Body): Promise<void> {
    this.state = 'iterating';
    if (!Array.isArray(body) || body.length !== 1 || this.headersSent) return this.iterate(body);
    try {
      this.sendOne(body[0] as Chunk);
    } catch (err) {
      this.fail(err);
    }
    this.state = 'done';
    closeBody(body, this.log);
    return DONE;
  }

  /** The whole body is one chunk: headers and body go out together, with a known length. */
  private sendOne(chunk: Chunk): void {
    if (this.sink.complete !== undefined && this.headers !== undefined && this.declaredLength < 0 && (typeof chunk === 'string' || Buffer.isBuffer(chunk))) {
      this.completeWhole(chunk, this.sink.complete.bind(this.sink));
      return;
    }
    const buf = toBuffer(chunk);
    if (buf.length > 0) this.requireStarted();
    this.finish(buf.length > 0 ? buf : undefined);
  }

  private async iterate(body: Body): Promise<void> {
    try {
      if (typeof body === 'string' || body instanceof Uint8Array || body === null || typeof body !== 'object') {
        throw new AppContractError('the app must return an iterable of chunks, not a bare string, bytes or nothing');
      }
      if (Array.isArray(body)) await this.fromArray(body);
      else if (typeof (body as Iterable<Chunk>)[Symbol.iterator] === 'function') await this.fromSync(body as Iterable<Chunk>);
      else if (typeof (body as AsyncIterable<Chunk>)[Symbol.asyncIterator] === 'function') await this.fromAsync(body as AsyncIterable<Chunk>);
      else throw new AppContractError('the app returned something that is not iterable');
      this.finish(undefined);
    } catch (err) {
      if (!(err instanceof PeerGone)) this.fail(err);
      else if (!this.completed) this.clientAborted = true;
    } finally {
      this.state = 'done';
      const it = this.iterator;
      this.iterator = undefined;
      // An iteration cut short (peer gone, app error, R-8) still closes a stream or generator.
      if (it !== undefined && typeof it.return === 'function') {
        try {
          const r = it.return();
          if (isPromise(r)) r.then(undefined, () => undefined);
        } catch {
          // a failing return() has nothing left to clean up
        }
      }
      closeBody(body, this.log);
    }
  }

  private async fromArray(body: readonly Chunk[]): Promise<void> {
    for (const chunk of body) {
      const buf = toBuffer(chunk);
      if (buf.length > 0 && !this.emit(buf)) await this.sink.drain();
      if (this.sink.closed) throw new PeerGone();
    }
  }

  private async fromSync(body: Iterable<Chunk>): Promise<void> {
    const it = body[Symbol.iterator]();
    this.iterator = it;
    // Hold the first chunk: if it is the only one, the length is known before the head goes out.
    let held: Buffer | undefined;
    for (let r = it.next(); !r.done; r = it.next()) {
      const buf = toBuffer(r.value);
      if (buf.length === 0) continue;
      if (held === undefined && !this.headersSent) {
        this.requireStarted();
        held = buf;
        continue;
      }
      if (held !== undefined) {
        this.emit(held);
        held = undefined;
      }
      if (!this.emit(buf)) await this.sink.drain();
      if (this.sink.closed) throw new PeerGone();
    }
    this.iterator = undefined;
    if (held !== undefined) this.finish(held);
  }

  private async fromAsync(body: AsyncIterable<Chunk>): Promise<void> {
    const it = body[Symbol.asyncIterator]();
    this.iterator = it;
    for (let r = await it.next(); !r.done; r = await it.next()) {
      if (this.sink.closed) throw new PeerGone();
      const buf = toBuffer(r.value);
      if (buf.length > 0 && !this.emit(buf)) await this.sink.drain();
      if (this.sink.closed) throw new PeerGone();
    }
    this.iterator = undefined;
  }

  /** The whole body is one chunk and no Content-Length was declared: compute it, send all at once. */
  private completeWhole(chunk: string | Buffer, complete: NonNullable<ResponseSink['complete']>): void {
    const length = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    const headers = this.headers as HeaderList;
    if (this.status !== 204 && this.status !== 304) {
      headers.push(['Content-Length', String(length)]);
      this.declaredLength = length;
    }
    this.bytes = length;
    this.headersSent = true;
    this.state = 'done';
    this.disarm();
    if (this.sink.closed) {
      this.clientAborted = true;
      return;
    }
    this.completed = true;
    const body = this.bodyAllowed() && length > 0 ? chunk : undefined;
    if (body !== undefined) this.sentBytes = length;
    complete(this.status, this.reason, headers, body);
  }

  private requireStarted(): void {
    if (this.headers === undefined) throw new AppContractError('the body produced data before start_response was called');
  }

  /** Sends one non-empty chunk, the head first if needed. Returns the sink's backpressure answer. */
  private emit(buf: Buffer): boolean {
    if (this.sink.closed) throw new PeerGone();
    if (!this.headersSent) {
      this.requireStarted();
      this.sendHead();
    }
    const declared = this.declaredLength;
    if (declared >= 0 && this.bytes + buf.length > declared) {
      const room = declared - this.bytes;
      if (room > 0 && this.bodyAllowed()) this.put(buf.subarray(0, room));
      this.bytes = declared;
      throw new AppContractError(`the body is longer than the declared Content-Length ${declared} (R-8)`);
    }
    this.bytes += buf.length;
    return this.bodyAllowed() ? this.put(buf) : true;
  }

  private put(buf: Buffer): boolean {
    this.sentBytes += buf.length;
    return this.sink.write(buf);
  }

  /** The body ended normally; `last` is a held chunk not yet sent. */
  private finish(last: Buffer | undefined): void {
    if (this.sink.closed) {
      this.clientAborted = true;
      return;
    }
    if (!this.headersSent) {
      if (this.headers === undefined) throw new AppContractError('the app returned without calling start_response');
      const total = last === undefined ? 0 : last.length;
      if (this.declaredLength < 0 && this.status !== 204 && this.status !== 304) {
        this.headers.push(['Content-Length', String(total)]);
        this.declaredLength = total;
      }
      if (last !== undefined) this.emit(last);
      else this.sendHead();
    } else if (last !== undefined) {
      this.emit(last);
    }
    if (this.declaredLength >= 0 && this.bytes < this.declaredLength && this.bodyAllowed()) {
      throw new AppContractError(`the body is shorter (${this.bytes}) than the declared Content-Length ${this.declaredLength} (R-8)`);
    }
    this.state = 'done';
    this.completed = true;
    this.sink.end();
  }

  private sendHead(): void {
    this.disarm();
    this.headersSent = true;
    this.sink.head(this.status, this.reason, this.headers as HeaderList);
  }

  /** no body bytes for HEAD, 204 and 304 (the app's are counted and dropped); a raw response is the app's to frame. */
  private bodyAllowed(): boolean {
    return this.raw || (!this.isHead && this.status !== 204 && this.status !== 304);
  }

  private checkHeaders(headers: HeaderList, code: number): HeaderList {
    if (!Array.isArray(headers)) throw new AppContractError('headers must be an array of [name, value] pairs (R-2)');
    const out: HeaderList = [];
    this.declaredLength = -1;
    for (const pair of headers) {
      if (!Array.isArray(pair) || pair.length !== 2) throw new AppContractError(`a header must be a [name, value] pair, got ${safeShow(pair)} (R-2)`);
      const [name, value] = pair;
      if (typeof name !== 'string' || !isValidHeaderName(name)) throw new AppContractError(`invalid header name ${safeShow(name)} (R-2)`);
      if (typeof value !== 'string' || !isValidHeaderValue(value)) throw new AppContractError(`invalid value for header ${name}: ${safeShow(value)} (R-2)`);
      // The lengths first: a lower-cased copy of every name (Content-Type, ...) is garbage.
      if (name.length === 6 && name.toLowerCase() === 'status') throw new AppContractError('a header named Status is not allowed (R-7)');
      if (isHopByHop(name)) throw new AppContractError(`hop-by-hop header ${name} is not allowed from an app (R-6)`);
      if (name.length === 14 && name.toLowerCase() === 'content-length') {
        if (!/^[0-9]{1,15}$/.test(value) || this.declaredLength >= 0) throw new AppContractError(`invalid Content-Length ${safeShow(value)} (R-8)`);
        if (code === 204) continue; // no Content-Length on 204
        this.declaredLength = Number(value);
      }
      out.push([name, value]);
    }
    return out;
  }

  private fail(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.failed = error;
    this.state = 'done';
    this.disarm();
    if (this.sink.closed) {
      if (!this.completed) this.clientAborted = true;
      return;
    }
    this.log.error(this.headersSent ? `app failed after the headers were sent: ${error.message}` : `app failed: ${error.message}`, error);
    this.completed = true;
    if (this.headersSent) {
      this.sink.abort(error);
      return;
    }
    // The one 500 of src/reply.ts, written in parts: FastCGI's end() then reports appStatus 1.
    const r = reply(500, String(this.environ['gatewire.request_id']), this.environ.REQUEST_METHOD);
    this.status = 500;
    this.reason = r.reason;
    this.headersSent = true;
    this.sink.head(r.status, r.reason, r.headers);
    if (r.body !== undefined) this.put(r.body);
    this.sink.end();
  }
}

/** A RawOutput as the exchange's sink: the head is the app's own bytes, so there is none to write. */
function rawSink(out: RawOutput): ResponseSink {
  return {
    head: () => undefined,
    write: (chunk) => out.write(chunk),
    drain: () => out.drain(),
    end: () => out.end(),
    abort: (err) => out.abort(err),
    get closed() {
      return out.closed;
    },
  };
}

/** Runs one exchange to completion. */
export async function runExchange(app: App, environ: Environ, sink: ResponseSink, log: ExchangeLog): Promise<Exchange> {
  const exchange = new Exchange(environ, sink, log);
  await exchange.run(app);
  return exchange;
}

function toBuffer(chunk: Chunk): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new AppContractError(`a body chunk must be a string or a Uint8Array, got ${safeShow(chunk)}`);
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

/** the body's cleanup runs however the exchange ended. */
function closeBody(body: unknown, log: ExchangeLog): void {
  const close = (body as { close?: unknown } | null | undefined)?.close;
  if (typeof close !== 'function') return;
  try {
    const r = (close as () => unknown).call(body);
    if (isPromise(r)) r.then(undefined, (err: unknown) => log.error('the body close() failed', err));
  } catch (err) {
    log.error('the body close() failed', err);
  }
}

function safeShow(v: unknown): string {
  try {
    const s = typeof v === 'string' ? JSON.stringify(v) : String(v);
    return s.length > 80 ? `${s.slice(0, 80)}…` : s;
  } catch {
    return typeof v;
  }
}
