/**
 * The SCGI front: the application side of nginx `scgi_pass`, Apache mod_proxy_scgi and lighttpd
 * mod_scgi (docs/conformance.md §3, S-1..S-12).
 *
 * Also home of what SCGI and uwsgi share (src/fronts/uwsgi.ts imports it): both carry one request
 * per connection as "a length-delimited head, then exactly CONTENT_LENGTH body bytes", and the
 * response is the raw rest of the connection. SingleRequestConnection runs that life cycle:
 *
 *   head    decode with a push decoder under the headers timeout; a bad head gets a 400/413/431
 *           (or, where the protocol offers nothing better, a closed connection) and one log line
 *   body    a BodyInput fed from the head's `rest` and the following socket data, up to exactly
 *           CONTENT_LENGTH; the socket is paused while the app does not read (backpressure);
 *           bytes past CONTENT_LENGTH are dropped, never parsed as a request (§0.1 #15, S-7, U-6)
 *   respond the exchange writes through a StreamSink; the head is the protocol's (CGI `Status:`
 *           for SCGI, an HTTP status line for uwsgi)
 *   close   half-close, drain what the peer still sends for a moment, then destroy (S-9, U-9)
 */
import type { Socket } from 'node:net';
import type { CgiVars, HeaderList } from '../app.js';
import { Exchange, type ExchangeLog } from '../call.js';
import { GatewireError, ServerErrorCode } from '../errors.js';
import { RequestError, gatewayScheme, gatewayVars, normalizeRemoteAddr } from '../environ.js';
import { BodyInput, type BodySource } from '../input.js';
import { RequestContext, makeEnviron, newRequestId, newVars } from '../request.js';
import { DRAIN_MS, type GatewayFrontOptions, StreamSink, appDeadline, gatewayAccess, listenOn, refusePeer, takeHeadStart } from './common.js';
import type { ConnectionHandler, Listener } from './registry.js';
import { reply, replyBytes } from '../reply.js';
import { LimitError, ProtocolError } from '../../protocols/errors.js';


/** A decoded request head, whatever the protocol. */
export interface GatewayHead {
  /** Name/value pairs in wire order, duplicates kept (the environ builder applies E-2..E-5). */
  pairs: ReadonlyArray<readonly [string, string]>;
  /** Exact body length (S-4, U-6). */
  contentLength: number;
  /** Bytes of the last chunk after the head: the start of the body. */
  rest: Buffer;
  /** uwsgi modifier1 30 (U-7). */
  stripScriptName: boolean;
}

/** Per-connection head decoding for one protocol. */
export interface HeadReader {
  /** Feeds bytes; the head once complete. Throws ProtocolError (answered) or CloseWithoutReply. */
  push(chunk: Buffer): GatewayHead | undefined;
  /** EOF inside the head: throws a ProtocolError when some head bytes had arrived. */
  end(): void;
  /**
   * REQUEST_METHOD from the head bytes seen so far, for a head refused before it was decoded
   * (a HEAD gets no body even then). Undefined when it had not arrived.
   */
  method(): string | undefined;
}

/** How many of a head's first bytes a reader keeps for method() (nginx sends it early). */
export const PEEK_BYTES = 4096;

const NO_BYTES: Buffer = Buffer.alloc(0);

/** The first PEEK_BYTES of a head, gathered across reads. */
export class HeadPeek {
  private bytes: Buffer = NO_BYTES;
  add(chunk: Buffer): void {
    if (this.bytes.length >= PEEK_BYTES) return;
    if (this.bytes.length === 0 && chunk.length <= PEEK_BYTES) {
      this.bytes = chunk; // the usual case: the whole head in one read
      return;
    }
    const take = chunk.subarray(0, PEEK_BYTES - this.bytes.length);
    this.bytes = this.bytes.length === 0 ? take : Buffer.concat([this.bytes, take]);
  }
  get seen(): Buffer {
    return this.bytes;
  }
}

/** Thrown by a HeadReader for input that gets no reply at all, only a log line (U-2). */
export class CloseWithoutReply extends GatewireError {
  override readonly code = ServerErrorCode.CloseWithoutReply;
}

/** What differs between the single-request protocols. */
export interface SingleRequestProtocol {
  name: 'scgi' | 'uwsgi';
  newReader(): HeadReader;
  serializeHead(status: number, reason: string, headers: HeaderList): Buffer;
  /** Called with the pairs before the environ is built, to log what deserves it (S-5, U-7). */
  inspect?(head: GatewayHead, vars: CgiVars): void;
}

/** Answers to head errors: a value past a limit, a block past a limit, anything else malformed. */
export function statusForHeadError(err: ProtocolError): number {
  if (err instanceof LimitError) return err.limit === 'maxBodyBytes' ? 413 : 431;
  return 400;
}

export function singleRequestHandler(opts: GatewayFrontOptions, protocol: SingleRequestProtocol): ConnectionHandler {
  const connections = new Set<SingleRequestConnection>();
  return {
    handle(socket) {
      if (refusePeer(socket, opts, protocol.name)) return;
      connections.add(new SingleRequestConnection(socket, opts, protocol, connections));
    },
    closeIdle() {
      for (const conn of connections) conn.closeIfIdle();
    },
  };
}

/**
 * A listener for a single-request protocol; `allowHalfOpen` so a peer's FIN does not cut our
 * answer. No `noDelay` here: a response in one write needs none (Nagle never holds the first
 * segment, and the FIN pushes what is queued); StreamSink turns it on for a response written
 * in parts. That saves a setsockopt per connection.
 */
export function singleRequestListener(opts: GatewayFrontOptions, protocol: SingleRequestProtocol): Listener {
  return listenOn(singleRequestHandler(opts, protocol), { allowHalfOpen: true });
}

type State = 'head' | 'body' | 'app' | 'closing';

/**
 * One connection, one request. Per-connection cost is what limits these protocols (a new TCP
 * connection for every request), so the common path is kept lean: the peer address is read
 * only for a log line (getpeername is a syscall; the client's address comes from the web
 * server's REMOTE_ADDR anyway), one socket timer serves every phase (head, body, response,
 * drain), a response the app completes synchronously is finished without a promise turn, and
 * the connection itself is the body's source and the exchange's log.
 */
class SingleRequestConnection implements BodySource, ExchangeLog {
  private state: State = 'head';
  /** Until the head is decoded. */
  private reader: HeadReader | undefined;
  private input: BodyInput | undefined;
  private exchange: Exchange | undefined;
  private ctx: RequestContext | undefined;
  private sink: StreamSink | undefined;
  /** The app call is over (normally or not). */
  private finished = false;
  private sawBytes = false;
  private ignored = 0;
  /** Bytes received after the head (the body, and whatever follows it). */
  private afterHead = 0;
  private pastBodyWarned = false;
  /** When the drain after our half-close ends (performance.now() ms); 0 before it starts. */
  private drainUntil = 0;
  /** The head must be complete by then (performance.now() ms), counted from its first byte. */
  private headDeadline = 0;

  constructor(
    private readonly socket: Socket,
    private readonly opts: GatewayFrontOptions,
    private readonly protocol: SingleRequestProtocol,
    private readonly connections: Set<SingleRequestConnection>,
  ) {
    this.reader = protocol.newReader();
    // A connection error is logged at debug level, after the socket is gone: read the address now.
    if (opts.logger.debugEnabled) void this.remote;
    socket.setTimeout(opts.headersTimeout);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('close', () => {
      this.onClose();
      this.releaseIfDone();
    });
    socket.on('timeout', () => this.onTimeout());
    socket.on('finish', () => this.onFinish());
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (opts.logger.debugEnabled) opts.logger.debug(`${protocol.name}: connection error from ${this.remote}: ${err.code ?? err.message}`);
    });
  }

  /** The peer, for log lines only (net.Socket caches it after the first read). */
  private get remote(): string {
    const addr = this.socket.remoteAddress;
    return addr === undefined ? (this.socket.destroyed ? 'a closed connection' : 'unix') : normalizeRemoteAddr(addr);
  }

  /** Graceful shutdown: a connection that has not started a request is closed. */
  closeIfIdle(): void {
    if (this.state === 'head' && !this.sawBytes) {
      this.state = 'closing';
      this.socket.destroy();
    }
  }

  private onData(chunk: Buffer): void {
    switch (this.state) {
      case 'head':
        // S-11: the headers timeout is also a deadline for the whole head, so a peer that
        // trickles a byte now and then (which keeps re-arming the idle timer) is still cut.
        if (!this.sawBytes) this.headDeadline = takeHeadStart(this.socket) + this.opts.headersTimeout;
        else if (performance.now() > this.headDeadline) {
          this.onTimeout();
          return;
        }
        this.sawBytes = true;
        this.onHeadBytes(chunk);
        return;
      case 'body':
        this.offer(chunk);
        return;
      default:
        // S-7, U-6: bytes after the body (a pipelined request, the rest of a body whose
        // CONTENT_LENGTH was short) are never parsed; after the response they are drained,
        // for DRAIN_MS at most (S-9, U-9): the socket timer catches a peer that goes quiet,
        // this check one that keeps sending.
        this.countAfterHead(chunk.length);
        this.ignored += chunk.length;
        if (this.drainUntil !== 0 && performance.now() > this.drainUntil) this.socket.destroy();
    }
  }

  private onHeadBytes(chunk: Buffer): void {
    let head: GatewayHead | undefined;
    try {
      head = (this.reader as HeadReader).push(chunk);
    } catch (err) {
      this.headError(err);
      return;
    }
    if (head === undefined) return;
    this.start(head);
    this.reader = undefined; // after start(): a head refused there still names its method
  }

  private headError(err: unknown): void {
    const name = this.protocol.name;
    if (err instanceof CloseWithoutReply) {
      this.opts.logger.warn(`${name}: ${err.message}; closing the connection from ${this.remote} without a reply`);
      this.state = 'closing';
      this.socket.destroy();
    } else if (err instanceof ProtocolError) {
      this.refuse(statusForHeadError(err), err.detail, this.reader?.method());
    } else {
      this.opts.logger.error(`${name}: unexpected error decoding the request head from ${this.remote}: ${(err as Error)?.message ?? String(err)}`, {
        stack: (err as Error | undefined)?.stack,
      });
      this.state = 'closing';
      this.socket.destroy();
    }
  }

  /** The head is complete: build the environ and run the app. */
  private start(head: GatewayHead): void {
    const opts = this.opts;
    const started = opts.logger.access === null ? 0 : performance.now();
    const ctx = new RequestContext(opts.logger);
    const socket = this.socket;
    const fill = newVars(ctx);
    let vars: CgiVars;
    try {
      vars = gatewayVars(
        head.pairs,
        {
          mount: opts.mount,
          localAddress: () => socket.localAddress ?? 'localhost',
          maxBodyBytes: opts.maxBodyBytes,
          stripScriptName: head.stripScriptName,
        },
        fill,
      );
    } catch (err) {
      if (err instanceof RequestError) this.refuse(err.status, err.message, fill.REQUEST_METHOD, ctx.id);
      else this.headError(err);
      return;
    }
    this.protocol.inspect?.(head, vars);
    if (!opts.inflight.tryEnter()) {
      this.refuse(503, `more than ${opts.inflight.max} requests in flight`, vars.REQUEST_METHOD, ctx.id);
      return;
    }
    const input = new BodyInput(this, head.contentLength, opts.maxBodyBytes);
    this.input = input;
    this.ctx = ctx;
    const environ = makeEnviron(vars, ctx, {
      input,
      protocol: this.protocol.name,
      scheme: gatewayScheme(vars),
      inputTerminated: false,
      multiprocess: opts.multiprocess,
    });
    const sink = new StreamSink(socket, this.protocol.serializeHead);
    this.sink = sink;
    const exchange = new Exchange(environ, sink, this, appDeadline(opts, this.protocol.name, ctx));
    this.exchange = exchange;
    this.state = 'body';
    this.offer(head.rest);
    const running = exchange.run(opts.service.app);
    if (exchange.finished && (this.state as State) === 'app' && socket.writableLength === 0) {
      // The common case: the whole request was in, and the whole response is written and
      // ended. Nothing is left for the body or response timeout to watch; the drain period
      // re-arms the timer once our end is flushed (onFinish).
      this.appDone(vars, ctx, exchange, started);
      return;
    }
    // The body is still coming, or the app runs on, or the peer is still reading the response:
    // the idle timeout applies (stalled body, peer that stopped reading).
    if (opts.idleTimeout !== opts.headersTimeout) socket.setTimeout(opts.idleTimeout);
    if (exchange.finished) this.appDone(vars, ctx, exchange, started);
    else void running.then(() => this.appDone(vars, ctx, exchange, started));
  }

  /** The app call is over (the exchange never rejects). */
  private appDone(vars: CgiVars, ctx: RequestContext, exchange: Exchange, started: number): void {
    this.opts.inflight.leave();
    this.finished = true;
    if (this.state === 'body' || this.state === 'app') this.state = 'closing';
    // The app did not read the rest of the body (E-11): drain it with the connection's end.
    const socket = this.socket;
    if (!socket.destroyed) socket.resume();
    if (started !== 0) gatewayAccess(this.opts, this.protocol.name, vars, ctx.id, exchange.accessStatus, exchange.sentBytes, started, this.input?.received ?? 0);
    this.releaseIfDone();
  }

  /**
   * Once the app call is over and the connection closed (whichever comes last calls this), drop
   * what the connection held. Not a nicety: a closed socket stays reachable until the next full
   * GC (V8's scavenger keeps Node's handle objects, and what hangs off them, alive), so
   * everything the connection still points at is copied by every scavenge and then promoted to
   * the old space. Releasing it here halved what each SCGI request promoted (bench/README.md,
   * "Per-connection cost").
   */
  private releaseIfDone(): void {
    if (!this.finished || !this.socket.destroyed) return;
    this.exchange = undefined;
    this.ctx = undefined;
    this.input = undefined;
    this.sink = undefined;
  }

  /** ExchangeLog: an app failure, tagged with the request id. */
  error(message: string, err?: unknown): void {
    this.opts.logger.error(message, { request_id: this.ctx?.id, stack: (err as Error | undefined)?.stack });
  }

  private offer(chunk: Buffer): void {
    this.countAfterHead(chunk.length);
    const input = this.input as BodyInput;
    const taken = chunk.length === 0 ? 0 : input.offer(chunk);
    if (taken < chunk.length) this.ignored += chunk.length - taken;
    if (input.complete && this.state === 'body') this.state = 'app';
  }

  /**
   * §0.1 #15: bytes past CONTENT_LENGTH are never read as a request, and are worth a warning:
   * if the web server meant them as body, the app got a short one.
   */
  private countAfterHead(n: number): void {
    const expected = this.input?.expected;
    if (expected === undefined || expected < 0) return;
    this.afterHead += n;
    if (this.afterHead <= expected || this.pastBodyWarned) return;
    this.pastBodyWarned = true;
    const hint = this.protocol.name === 'scgi' ? ' (nginx before 1.29.6 sends a CONTENT_LENGTH short of the body with scgi_request_buffering off)' : '';
    this.opts.logger.warn(`${this.protocol.name}: bytes past the CONTENT_LENGTH of ${expected} from ${this.remote} ignored, never read as a request${hint}`);
  }

  /** BodySource: the app is not reading the body; stop reading the socket meanwhile. */
  pause(): void {
    if (this.state === 'body') this.socket.pause();
  }

  /** BodySource: the app reads again. */
  resume(): void {
    this.socket.resume();
  }

  /**
   * gatewire's own answer (src/reply.ts) without running the app, then the close (one log
   * line). `method` is known once the head is decoded (a HEAD gets no body).
   */
  private refuse(status: number, why: string, method?: string, requestId = newRequestId()): void {
    this.opts.logger.warn(`${this.protocol.name}: ${status} ${why} (from ${this.remote})`, { request_id: requestId });
    this.state = 'closing';
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) {
      socket.destroy();
      return;
    }
    socket.end(replyBytes(reply(status, requestId, method), this.protocol.serializeHead));
    socket.resume();
  }

  /**
   * Our side is flushed and half-closed: drain the peer for DRAIN_MS at most, then close
   * (S-9, U-9). The socket's own timer measures it (no timer of our own to create and clear
   * for every request); onData enforces the limit against a peer that keeps sending.
   */
  private onFinish(): void {
    this.state = 'closing';
    if (this.ignored > 0 && this.opts.logger.debugEnabled) {
      this.opts.logger.debug(`${this.protocol.name}: ${this.ignored} bytes after the request from ${this.remote} ignored`);
    }
    const socket = this.socket;
    if (socket.destroyed) return;
    this.drainUntil = performance.now() + DRAIN_MS;
    socket.setTimeout(DRAIN_MS);
    socket.resume();
  }

  private onEnd(): void {
    const name = this.protocol.name;
    switch (this.state) {
      case 'head':
        // S-1: EOF before or inside the head: close silently (debug only).
        try {
          this.reader?.end();
        } catch (err) {
          if (this.opts.logger.debugEnabled) this.opts.logger.debug(`${(err as Error).message} (from ${this.remote})`);
        }
        if (!this.sawBytes && this.opts.logger.debugEnabled) this.opts.logger.debug(`${name}: connection from ${this.remote} closed before any byte`);
        this.state = 'closing';
        this.socket.destroy();
        return;
      case 'body': {
        // S-7: the app sees a truncated body; a response still goes out if the peer reads it.
        const input = this.input as BodyInput;
        this.opts.logger.warn(`${name}: the web server ended the connection after ${input.received} of ${input.expected} body bytes (from ${this.remote})`);
        this.state = 'app';
        input.finish();
        return;
      }
      case 'app':
        // The request is complete and the app runs: an EOF now means the web server gave up on
        // the request (its client went away). nginx and Apache never half-close an SCGI or
        // uwsgi connection, and neither protocol has a way to abort, so this is the only word
        // the app gets: it is told at once (signal, req 'close'), not at its next write (an SSE
        // stream one event late, a quiet long poll never).
        if (this.exchange !== undefined && !this.finished) {
          this.onClose();
          this.socket.destroy();
        }
        return;
      default:
        // 'closing': our end is on its way; the socket closes itself once it is flushed.
        return;
    }
  }

  /** The connection is gone: an exchange still running learns it (R-5, signal). */
  private onClose(): void {
    this.state = 'closing';
    this.connections.delete(this);
    if (this.exchange === undefined || this.finished) return;
    if (this.sink !== undefined) this.sink.gone = true;
    this.ctx?.abort('the web server closed the connection');
    this.input?.fail(new Error('the web server closed the connection'));
    this.exchange.peerGone();
  }

  private onTimeout(): void {
    const name = this.protocol.name;
    const socket = this.socket;
    switch (this.state) {
      case 'head':
        this.opts.logger.warn(`${name}: no complete request head from ${this.remote} within ${this.opts.headersTimeout} ms; closing`);
        break;
      case 'body': {
        const input = this.input as BodyInput;
        if (socket.isPaused()) return; // the app is not reading: its time is its own
        this.opts.logger.warn(`${name}: request body from ${this.remote} stalled at ${input.received} of ${input.expected} bytes; closing`);
        break;
      }
      case 'app':
        // Apps take their time; only a peer that stopped reading our response is cut.
        if (socket.writableLength === 0) return;
        this.opts.logger.warn(`${name}: the web server at ${this.remote} stopped reading the response; closing`);
        break;
      default:
        break;
    }
    socket.destroy();
  }
}
