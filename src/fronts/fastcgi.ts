/**
 * The FastCGI front: the application side of nginx `fastcgi_pass`, Apache mod_proxy_fcgi,
 * lighttpd, HAProxy and spawn-fcgi (docs/conformance.md §2, F-1..F-46).
 *
 * One FastcgiConnection per socket decodes records (protocols/fastcgi) and keeps a table of
 * active requests by id: several may run at once (multiplexing), their output records never
 * interleave mid-record because each record is one socket write. A request runs the app at the
 * end of its PARAMS (F-24) and streams STDIN into `gatewire.input`. The response goes out as
 * a CGI head (`Status:` first) and STDOUT records, then STDOUT EOS and exactly one END_REQUEST.
 *
 * One socket timer per connection: the headers timeout while a request is being received, the
 * idle timeout when none is (F-41). A peer that trickles a byte now and then re-arms that timer
 * forever, so a request head also has a deadline (F-46): its BEGIN_REQUEST's first byte plus the
 * headers timeout, checked against a timestamp on each read and when the timer fires. No timer
 * per request: the common request (BEGIN_REQUEST and PARAMS in one read) costs one clock read.
 */
import type { Socket } from 'node:net';
import type { CgiVars, HeaderList } from '../app.js';
import { Exchange, type ResponseSink } from '../call.js';
import { RequestError, gatewayScheme, gatewayVars, normalizeRemoteAddr } from '../environ.js';
import { BodyInput } from '../input.js';
import { RequestContext, makeEnviron, newRequestId, newVars } from '../request.js';
import { reply, sendReply } from '../reply.js';
import { DRAIN_MS, type GatewayFrontOptions, appDeadline, gatewayAccess, gatewayOptions, listenOn, refusePeer, resetAfterFlush, takeHeadStart, waitDrain } from './common.js';
import type { ConnectionHandler, FrontContext, FrontModule } from './registry.js';
import { fastcgiSignature } from '../../protocols/detect.js';
import { isProtocolError, LimitError, ProtocolError } from '../../protocols/errors.js';
import { serializeCgiHead } from '../../protocols/cgi/head.js';
import {
  FastcgiErrorCode,
  Flag,
  ManagementVariable,
  ParamsDecoder,
  ProtocolStatus,
  RecordDecoder,
  RecordType,
  Role,
  answerGetValues,
  decodeBeginRequest,
  encodeEndRequest,
  encodeResponseEnd,
  encodeStdout,
  encodeUnknownType,
} from '../../protocols/fastcgi/index.js';

/** How long a draining server leaves an idle keep-conn connection open (see shutdown()). */
export const DRAIN_IDLE_MS = 1000;

/** Body bytes one request may hold unread while other requests share its connection (F-28). */
const MAX_BUFFERED_BODY_MULTIPLEXED = 1024 * 1024;

/** FastCGI connections, from a FastCGI listener or handed over by --auto. */
export function fastcgiConnections(opts: GatewayFrontOptions): ConnectionHandler {
  const connections = new Set<FastcgiConnection>();
  return {
    handle(socket) {
      if (refusePeer(socket, opts, 'fastcgi')) return;
      const conn = new FastcgiConnection(socket, opts);
      connections.add(conn);
      socket.once('close', () => connections.delete(conn));
    },
    // Graceful shutdown: web servers keep FastCGI connections open between requests (keep-conn),
    // so "idle" must be closed by us, like http.Server.closeIdleConnections() does for HTTP.
    closeIdle() {
      for (const conn of connections) conn.shutdown();
    },
  };
}

const options = (ctx: FrontContext): GatewayFrontOptions => gatewayOptions(ctx, 'fastcgi', 'FCGI_WEB_SERVER_ADDRS');

export const front: FrontModule = {
  listen: (ctx) => listenOn(fastcgiConnections(options(ctx)), { noDelay: true }),
  connections: (ctx) => fastcgiConnections(options(ctx)),
  signature: () => fastcgiSignature,
};

type RequestState = 'params' | 'body' | 'done';

class FastcgiRequest {
  state: RequestState = 'params';
  readonly params: ParamsDecoder;
  input: BodyInput | undefined;
  exchange: Exchange | undefined;
  ctx: RequestContext | undefined;
  /** REQUEST_METHOD, once the params are in. */
  method: string | undefined;
  /** The response's last records were written (or the request was closed without one). */
  ended = false;
  paused = false;

  constructor(
    readonly id: number,
    readonly role: number,
    readonly keepConn: boolean,
    maxParamsBytes: number,
    /** F-46: PARAMS must be complete by then (performance.now() ms). */
    readonly headDeadline: number,
  ) {
    this.params = new ParamsDecoder({ maxParamsBytes });
  }
}

class FastcgiConnection {
  private readonly decoder: RecordDecoder;
  private readonly requests = new Map<number, FastcgiRequest>();
  /** Set once the connection is on its way out: nothing more is decoded or written. */
  private closing = false;
  /** When the connection last had no request left (performance.now() ms). */
  private idleSince = performance.now();
  /** keepConn of the most recent BEGIN_REQUEST: the web server's wish once no request is left (F-40). */
  private keepConn = true;
  private readonly remote: string;
  /**
   * F-46: the earliest deadline of a request head still being received (performance.now() ms),
   * 0 when none is: a request in PARAMS, or a record begun on a connection without requests
   * (a BEGIN_REQUEST still arriving).
   */
  private headDeadline = 0;
  /** The socket timeout in force, so an unchanged one is not set again. */
  private timeout: number;

  constructor(
    private readonly socket: Socket,
    private readonly opts: GatewayFrontOptions,
  ) {
    this.remote = socket.remoteAddress === undefined ? 'unix' : normalizeRemoteAddr(socket.remoteAddress);
    this.decoder = new RecordDecoder((type, id, content) => this.onRecord(type, id, content));
    this.timeout = opts.idleTimeout;
    socket.setTimeout(opts.idleTimeout);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('timeout', () => this.onIdle());
    socket.on('end', () => this.onPeerGone('the web server closed the connection'));
    socket.on('close', () => this.onPeerGone('the connection closed'));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (this.opts.logger.debugEnabled) this.opts.logger.debug(`fastcgi: connection error from ${this.remote}: ${err.code ?? err.message}`);
    });
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return; // draining after a half-close (F-40)
    if (this.headDeadline !== 0) {
      if (performance.now() > this.headDeadline) {
        this.headTimedOut();
        return;
      }
    } else if (this.requests.size === 0) {
      // F-46: bytes on a connection without a request begin one (or a management record).
      this.headDeadline = takeHeadStart(this.socket) + this.opts.headersTimeout;
    }
    try {
      this.decoder.push(chunk);
    } catch (err) {
      this.protocolError(err);
      return;
    }
    if (this.headDeadline !== 0 && !this.closing) this.updateHeadDeadline();
  }

  /**
   * F-46, after a read: the deadline of the oldest head still coming, or 0. A connection left
   * with no request and no partial record is idle again (F-41); one left inside a record with
   * no request is receiving a head, on the headers timeout.
   */
  private updateHeadDeadline(): void {
    let earliest = 0;
    for (const req of this.requests.values()) {
      if (req.state === 'params' && (earliest === 0 || req.headDeadline < earliest)) earliest = req.headDeadline;
    }
    if (this.requests.size === 0) {
      if (this.decoder.pending > 0) earliest = this.headDeadline;
      this.setTimer(earliest === 0 ? this.opts.idleTimeout : this.opts.headersTimeout);
    }
    this.headDeadline = earliest;
  }

  /** F-46: a head not complete within the headers timeout: one log line, and the connection is closed. */
  private headTimedOut(): void {
    this.opts.logger.warn(`fastcgi: no complete request head from ${this.remote} within ${this.opts.headersTimeout} ms; closing`);
    this.onPeerGone('no complete request head within the headers timeout');
  }

  private setTimer(ms: number): void {
    if (ms === this.timeout) return;
    this.timeout = ms;
    this.socket.setTimeout(ms);
  }

  /** A broken stream: log, abort every request on the connection, close without writing (F-2, F-10..F-12, F-26). */
  private protocolError(err: unknown): void {
    const message = isProtocolError(err) ? err.message : `fastcgi: ${(err as Error).message}`;
    this.opts.logger.warn(`${message}; closing the connection from ${this.remote}`);
    this.closing = true;
    for (const req of this.requests.values()) this.abortRequest(req, 'protocol error on the connection');
    this.requests.clear();
    this.socket.destroy();
  }

  private onRecord(type: number, id: number, content: Buffer): void {
    if (this.closing) return;
    if (id === 0) {
      this.onManagement(type, content);
      return;
    }
    switch (type) {
      case RecordType.BeginRequest:
        this.onBegin(id, content);
        return;
      case RecordType.Params:
        this.onParams(id, content);
        return;
      case RecordType.Stdin:
        this.onStdin(id, content);
        return;
      case RecordType.AbortRequest:
        this.onAbort(id);
        return;
      case RecordType.Data:
        return; // F-30: FILTER is not implemented; its DATA is ignored
      default:
        // F-9: application-only or unknown types with a request id: ignored, logged.
        this.opts.logger.warn(`fastcgi: ignored record type ${type} for request ${id} from ${this.remote}`);
    }
  }

  /** F-6..F-8, F-45: GET_VALUES answered at any time; unknown management types → UNKNOWN_TYPE. */
  private onManagement(type: number, content: Buffer): void {
    if (type === RecordType.GetValues) {
      const max = this.opts.inflight.max;
      this.write(answerGetValues(content, { [ManagementVariable.MaxConns]: max, [ManagementVariable.MaxReqs]: max, [ManagementVariable.MpxsConns]: 1 }));
    } else if (type === RecordType.BeginRequest) {
      throw new ProtocolError('fastcgi', FastcgiErrorCode.BadRequestId, 'BEGIN_REQUEST with request id 0 (F-11)');
    } else if (type > RecordType.UnknownType || type === 0) {
      this.write(encodeUnknownType(type));
    } else {
      this.opts.logger.warn(`fastcgi: ignored record type ${type} with request id 0 from ${this.remote}`);
    }
  }

  private onBegin(id: number, content: Buffer): void {
    const begin = decodeBeginRequest(content); // F-10: a body other than 8 bytes throws
    if (this.requests.has(id)) throw new ProtocolError('fastcgi', FastcgiErrorCode.DuplicateRequestId, `BEGIN_REQUEST for active request ${id} (F-12)`);
    const keepConn = (begin.flags & Flag.KeepConn) !== 0;
    this.keepConn = keepConn;
    if (begin.role !== Role.Responder && begin.role !== Role.Authorizer) {
      // F-13: immediately END_REQUEST UNKNOWN_ROLE, no STDOUT.
      this.opts.logger.warn(`fastcgi: role ${begin.role} not supported (request ${id} from ${this.remote})`);
      this.write(encodeEndRequest(id, 0, ProtocolStatus.UnknownRole));
      if (!keepConn && this.requests.size === 0) this.closeGracefully();
      return;
    }
    // F-46: on a connection without requests, the head began with the read that brought the
    // first byte of this BEGIN_REQUEST (onData); beside running requests it begins now.
    const deadline = this.requests.size === 0 && this.headDeadline !== 0 ? this.headDeadline : performance.now() + this.opts.headersTimeout;
    if (this.headDeadline === 0) this.headDeadline = deadline;
    this.setTimer(this.opts.headersTimeout);
    this.requests.set(id, new FastcgiRequest(id, begin.role, keepConn, this.opts.maxParamsBytes, deadline));
  }

  private onParams(id: number, content: Buffer): void {
    const req = this.requests.get(id);
    if (req === undefined || req.state !== 'params') return; // F-9: inactive id, or PARAMS after their end
    if (content.length > 0) {
      try {
        req.params.push(content);
      } catch (err) {
        this.refuse(req, err instanceof LimitError ? 431 : 400, detailOf(err), req.params.decodedValue('REQUEST_METHOD')); // F-19, F-20
      }
      return;
    }
    let pairs;
    try {
      pairs = req.params.end();
    } catch (err) {
      this.refuse(req, 400, detailOf(err), req.params.decodedValue('REQUEST_METHOD')); // F-20: malformed pairs
      return;
    }
    this.start(req, pairs);
  }

  private onStdin(id: number, content: Buffer): void {
    const req = this.requests.get(id);
    if (req === undefined) return; // F-9 / F-27: inactive id (e.g. after an early response)
    if (req.state === 'params') throw new ProtocolError('fastcgi', FastcgiErrorCode.StdinBeforeParams, `STDIN before the end of PARAMS for request ${id} (F-26)`);
    const input = req.input;
    if (input === undefined || req.state === 'done') return;
    if (content.length === 0) {
      input.finish(); // STDIN EOS
      req.state = 'done';
      // Another request still receiving keeps the headers timeout (F-46).
      if (!this.receiving()) this.setTimer(this.opts.idleTimeout);
      return;
    }
    input.offer(content); // F-25: bytes past CONTENT_LENGTH are dropped inside
    if (this.requests.size > 1 && input.readableLength > MAX_BUFFERED_BODY_MULTIPLEXED) {
      // F-28: with multiplexing, pausing the socket would stall the other requests: the
      // request fails, with a 413 if its head is not out yet, else an END_REQUEST appStatus 1.
      input.fail(new Error('request body not read by the app while other requests share the connection'));
      this.abortRequest(req, 'unread body over the per-request buffer');
      if (req.exchange?.headersSent) this.endRequest(req, 1);
      else this.refuse(req, 413, `unread request body over ${MAX_BUFFERED_BODY_MULTIPLEXED} bytes while other requests share the connection`, req.method, req.ctx?.id);
    }
  }

  /** F-31: ABORT_REQUEST for an active id: the app is told, the request ends with one END_REQUEST. */
  private onAbort(id: number): void {
    const req = this.requests.get(id);
    if (req === undefined) return;
    this.abortRequest(req, 'FCGI_ABORT_REQUEST from the web server');
    if (!req.ended) this.endRequest(req, 0);
  }

  /** PARAMS are complete: build the environ and run the app (F-24). */
  private start(req: FastcgiRequest, pairs: Array<[string, string]>): void {
    const opts = this.opts;
    const started = opts.logger.access === null ? 0 : performance.now();
    const ctx = new RequestContext(opts.logger);
    const fill = newVars(ctx);
    let vars: CgiVars;
    try {
      vars = gatewayVars(pairs, { mount: opts.mount, localAddress: () => this.socket.localAddress ?? 'localhost', maxBodyBytes: opts.maxBodyBytes }, fill);
    } catch (err) {
      if (err instanceof RequestError) this.refuse(req, err.status, err.message, fill.REQUEST_METHOD, ctx.id);
      else throw err;
      return;
    }
    if (!opts.inflight.tryEnter()) {
      this.refuse(req, 503, `more than ${opts.inflight.max} requests in flight`, vars.REQUEST_METHOD, ctx.id); // F-16
      return;
    }
    const authorizer = req.role === Role.Authorizer;
    vars.FCGI_ROLE = authorizer ? 'AUTHORIZER' : 'RESPONDER';
    const cl = vars.CONTENT_LENGTH;
    const expected = authorizer ? 0 : cl === undefined ? -1 : Number(cl);
    const input = new BodyInput(
      { pause: () => this.pauseFor(req), resume: () => this.resumeFor(req) },
      expected,
      opts.maxBodyBytes,
    );
    req.input = input;
    req.state = authorizer ? 'done' : 'body';
    req.ctx = ctx;
    req.method = vars.REQUEST_METHOD;
    const environ = makeEnviron(vars, ctx, {
      input,
      protocol: 'fastcgi',
      scheme: gatewayScheme(vars),
      inputTerminated: expected < 0,
      multiprocess: opts.multiprocess,
    });
    const sink = new FastcgiSink(this, req);
    const exchange = new Exchange(
      environ,
      sink,
      { error: (message, err) => opts.logger.error(message, { request_id: ctx.id, stack: (err as Error | undefined)?.stack }) },
      appDeadline(opts, 'fastcgi', ctx),
    );
    req.exchange = exchange;
    if (expected < 0) {
      input.onLimit = () => {
        // A body without CONTENT_LENGTH passed --max-body-bytes: 413 while the head is not out.
        this.abortRequest(req, 'request body over the limit');
        if (exchange.headersSent) this.endRequest(req, 1);
        else this.refuse(req, 413, `request body over the limit ${opts.maxBodyBytes}`, req.method, ctx.id);
      };
    }
    void exchange.run(opts.service.app).then(() => {
      opts.inflight.leave();
      if (!req.ended && !this.closing && !sink.aborted) this.endRequest(req, exchange.failed ? 1 : 0);
      if (started !== 0) gatewayAccess(opts, 'fastcgi', vars, ctx.id, exchange.accessStatus, exchange.sentBytes, started, input.received);
    });
  }

  /**
   * gatewire's own answer (src/reply.ts) and END_REQUEST, without running the app. `method` is
   * known once the params are decoded (a HEAD gets no body); before that it is not.
   */
  private refuse(req: FastcgiRequest, status: number, why: string, method?: string, requestId = newRequestId()): void {
    this.opts.logger.warn(`fastcgi: ${status} ${why} (request ${req.id} from ${this.remote})`, { request_id: requestId });
    req.state = 'done';
    sendReply(new FastcgiSink(this, req), reply(status, requestId, method));
  }

  /** STDOUT EOS + END_REQUEST (F-35), then forget the id; close when none is left and the last BEGIN had keepConn 0. */
  endRequest(req: FastcgiRequest, appStatus: number): void {
    if (req.ended) return;
    req.ended = true;
    this.requests.delete(req.id);
    if (this.closing || this.socket.destroyed) return;
    this.write(encodeResponseEnd(req.id, appStatus));
    if (req.paused) this.resumeFor(req);
    if (this.requests.size === 0) this.idleSince = performance.now();
    if (!this.keepConn && this.requests.size === 0) this.closeGracefully();
    else if (this.requests.size === 0) this.setTimer(this.opts.idleTimeout);
  }

  /** F-38: an error after the head. Alone on the connection: cut it; multiplexed: END_REQUEST with appStatus 1. */
  failAfterHead(req: FastcgiRequest): boolean {
    if (this.requests.size > 1 || req.keepConn) {
      // nginx with keep-conn logs "upstream prematurely closed"; a reset says the same without
      // harming other requests only when there are none.
      if (this.requests.size > 1) {
        this.endRequest(req, 1);
        return false;
      }
    }
    req.ended = true;
    this.requests.delete(req.id);
    this.closing = true;
    resetAfterFlush(this.socket);
    return true;
  }

  /**
   * A whole response in one socket write: head, body, STDOUT EOS and END_REQUEST. nginx with
   * keep-conn finishes at END_REQUEST; a client that closes between the body and a late
   * END_REQUEST makes it drop the kept upstream connection.
   */
  completeResponse(req: FastcgiRequest, head: Buffer, body: Buffer | string | undefined): void {
    if (this.closing || this.socket.destroyed || req.ended) return;
    this.socket.cork();
    if (body === undefined) this.writeStdout(req.id, head);
    else {
      const bytes = typeof body === 'string' ? Buffer.from(body) : body;
      if (bytes.length <= 16 * 1024) this.writeStdout(req.id, Buffer.concat([head, bytes]));
      else {
        this.writeStdout(req.id, head);
        this.writeStdout(req.id, bytes);
      }
    }
    this.endRequest(req, 0);
    this.socket.uncork();
  }

  writeStdout(id: number, data: Buffer): boolean {
    if (this.closing || this.socket.destroyed) return true;
    const records = encodeStdout(id, data);
    if (records.length === 1) return this.socket.write(records[0] as Buffer);
    this.socket.cork();
    let ok = true;
    for (const r of records) ok = this.socket.write(r);
    this.socket.uncork();
    return ok;
  }

  drain(): Promise<void> {
    return waitDrain(this.socket);
  }

  isGone(req: FastcgiRequest): boolean {
    return this.closing || this.socket.destroyed || req.ended;
  }

  private write(buf: Buffer): void {
    if (!this.closing && !this.socket.destroyed) this.socket.write(buf);
  }

  private pauseFor(req: FastcgiRequest): void {
    // F-28: pausing blocks every request on the connection, so only when this one is alone.
    if (this.requests.size > 1 || req.paused) return;
    req.paused = true;
    this.socket.pause();
  }

  private resumeFor(req: FastcgiRequest): void {
    if (!req.paused) return;
    req.paused = false;
    this.socket.resume();
  }

  private abortRequest(req: FastcgiRequest, reason: string): void {
    req.ctx?.abort(reason);
    req.input?.fail(new Error(reason));
    req.exchange?.peerGone();
  }

  /** F-32: EOF or reset: every active request is aborted, nothing more is written. */
  private onPeerGone(reason: string): void {
    if (this.requests.size > 0) {
      for (const req of this.requests.values()) {
        req.ended = true;
        this.abortRequest(req, reason);
      }
      this.requests.clear();
    }
    this.closing = true;
    if (!this.socket.destroyed) this.socket.destroy();
  }

  /** Server shutdown: close now if no request is active, else once the last one ends. */
  /**
   * Graceful shutdown, called at once and every 50 ms after. FastCGI cannot tell the web server
   * to stop reusing a keep-conn connection, and one closed by us while nginx sends a request on
   * it is a "prematurely closed" failure (the upstream marked down, a POST lost). So requests
   * keep being served on open connections, and a connection is closed only after DRAIN_IDLE_MS
   * without one: nginx closes its own first (keepalive_requests, a keepalive_timeout below it).
   */
  shutdown(): void {
    if (this.requests.size === 0 && !this.closing && performance.now() - this.idleSince >= DRAIN_IDLE_MS) this.closeGracefully();
  }

  /** Whether a request of the connection is still receiving its head or its body. */
  private receiving(): boolean {
    for (const req of this.requests.values()) if (req.state !== 'done') return true;
    return false;
  }

  /** F-41 idle keep-conn connections, and requests whose head (F-46) or body stalled. */
  private onIdle(): void {
    if (this.closing) return; // on its way out already (F-38, F-40)
    // Silence for the headers timeout while a head was coming: its deadline has passed too.
    if (this.headDeadline !== 0) {
      this.headTimedOut();
      return;
    }
    if (this.requests.size === 0) {
      this.closing = true;
      this.socket.end();
      return;
    }
    // A request whose reads we paused (its app is not reading yet, F-28) is not stalled by the peer.
    const receiving = [...this.requests.values()].filter((r) => r.state !== 'done' && !r.paused);
    if (receiving.length === 0) return; // apps are working; their time is their own
    this.opts.logger.warn(`fastcgi: ${receiving.length} request(s) from ${this.remote} stalled while receiving; closing`);
    this.onPeerGone('timed out receiving the request');
  }

  /** F-40: half-close, drain what the peer still sends, then close. */
  private closeGracefully(): void {
    this.closing = true;
    this.socket.resume();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), DRAIN_MS).unref();
  }
}

/** One request's response: CGI head and body as STDOUT records of its id. */
class FastcgiSink implements ResponseSink {
  aborted = false;

  constructor(
    private readonly conn: FastcgiConnection,
    private readonly req: FastcgiRequest,
  ) {}

  get closed(): boolean {
    return this.aborted || this.conn.isGone(this.req);
  }

  head(status: number, reason: string, headers: HeaderList): void {
    this.conn.writeStdout(this.req.id, serializeCgiHead(status, reason, headers)); // F-33
  }

  write(chunk: Buffer): boolean {
    return this.conn.writeStdout(this.req.id, chunk); // never empty: the exchange drops those (F-34)
  }

  drain(): Promise<void> {
    return this.conn.drain();
  }

  end(): void {
    this.conn.endRequest(this.req, this.req.exchange?.failed ? 1 : 0); // F-35, F-36
  }

  complete(status: number, reason: string, headers: HeaderList, body: Buffer | string | undefined): void {
    this.conn.completeResponse(this.req, serializeCgiHead(status, reason, headers), body);
  }

  abort(): void {
    this.aborted = true;
    this.conn.failAfterHead(this.req); // F-38
  }
}

/** An error's text for a log line that already names the protocol. */
function detailOf(err: unknown): string {
  return err instanceof ProtocolError ? err.detail : (err as Error).message;
}
