/**
 * The HTTP/1.1 front, on node:http (llhttp). Node already does keep-alive, pipelining (answered
 * in order, H-13), chunked framing both ways and most of the request grammar
 * (docs/conformance.md §1.2). This file adds what Node leaves open: H-1 (one valid
 * Host), H-2 (only `chunked`), H-3 (1.0/1.1 only), H-4 (target forms), H-5 (header names), H-6
 * (body limit, before 100-continue too), H-8 (decoded NUL), H-10 (client gone aborts the app),
 * H-11 (IPv4-mapped peers), H-14 (the in-flight cap the gateway fronts share), and the environ
 * (E-5..E-14).
 *
 * Upgrade (WebSocket): a Service with an `upgrade` handler becomes the server's 'upgrade'
 * listener, called as node:http calls one, after the same request checks (H-15); without one,
 * node:http itself treats an Upgrade request as a plain request (H-16). --auto serves HTTP
 * with this very server, so both hold there too.
 */
import * as http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { CgiVars, HeaderList, NodeHandler, Service, UpgradeHandler } from '../app.js';
import { Exchange, type RawOutput, type ResponseSink } from '../call.js';
import { RequestError, httpVars, normalizeRemoteAddr, rawPathBelow } from '../environ.js';
import type { Logger } from '../log.js';
import { type Reply, reply, replyBytes, sendReply } from '../reply.js';
import { RequestContext, makeEnviron, newRequestId, newVars } from '../request.js';
import { LimitedInput } from '../input.js';
import { type InflightCounter, appDeadline, appTimedOut, keepTickObjectShape, resetAfterFlush, trackSockets } from './common.js';
import { takeConnection } from './http-raw.js';
import type { FrontContext, FrontModule, ListenerProtocol } from './registry.js';
import { serializeHttpHead } from '../../protocols/cgi/head.js';
import { httpSignature } from '../../protocols/detect.js';

export interface HttpFrontOptions {
  service: Service;
  /** `""` or `/prefix` (normalized). */
  mount: string;
  logger: Logger;
  maxHeaderBytes: number;
  maxBodyBytes: number;
  headersTimeout: number;
  requestTimeout: number;
  keepAliveTimeout: number;
  multiprocess: boolean;
  /** Requests in flight in this process, shared with the gateway fronts: beyond its max a 503 (H-14). */
  inflight: InflightCounter;
  /** --timeout (OP-10): ms for the app to start its response, then 504; 0 (or absent) = off. */
  timeout?: number;
  /** FrontContext.onTimeout: counts timeouts (metrics). */
  onTimeout?: ((protocol: ListenerProtocol) => void) | undefined;
}

function httpOptions(ctx: FrontContext): HttpFrontOptions {
  return {
    service: ctx.service,
    mount: ctx.mount,
    logger: ctx.logger,
    maxHeaderBytes: ctx.options.maxHeaderBytes,
    maxBodyBytes: ctx.options.maxBodyBytes,
    headersTimeout: ctx.options.headersTimeout,
    requestTimeout: ctx.options.requestTimeout,
    keepAliveTimeout: ctx.options.keepAliveTimeout,
    multiprocess: ctx.multiprocess,
    inflight: ctx.inflight,
    timeout: ctx.options.timeout,
    onTimeout: ctx.onTimeout,
  };
}

export const front: FrontModule = {
  listen(ctx) {
    const server = createHttpServer(httpOptions(ctx));
    drainOnClose(server);
    return { server, closeIdle: () => server.closeIdleConnections() };
  },
  signature: () => httpSignature,
};

/**
 * How long a graceful shutdown leaves a keep-alive connection that is idle when it starts: a
 * client that sends its next request within it is answered (with `Connection: close`) instead
 * of having the connection closed under that request (a reset: nginx's 502 for a POST, wrk's
 * read error). One that stays idle longer is closed then.
 */
export const DRAIN_IDLE_GRACE_MS = 1000;

/**
 * Graceful shutdown for an HTTP listener. From the first call (server.close() makes it, and the
 * gateway's sweep every 50 ms after): every response not yet started says `Connection: close`
 * and ends its connection, so keep-alive clients learn of the stop from a response (OP-7);
 * idle connections are closed once DRAIN_IDLE_GRACE_MS has passed. Costs nothing until then.
 */
function drainOnClose(server: http.Server): void {
  const sockets = new Set<Socket>();
  server.on('connection', trackSockets(sockets));
  const closeIdle = http.Server.prototype.closeIdleConnections;
  let since: number | undefined;
  // node:http's close() calls closeIdleConnections() on the instance first: this is that hook.
  server.closeIdleConnections = () => {
    if (since === undefined) {
      since = performance.now();
      server.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
        res.shouldKeepAlive = false;
      });
      // Responses already in the app's hands: node:http keeps a connection's current response
      // in socket._httpMessage (it has no public list of them).
      for (const socket of sockets) {
        const res = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
        if (res !== null && res !== undefined && !res.headersSent) res.shouldKeepAlive = false;
      }
    }
    if (performance.now() - since >= DRAIN_IDLE_GRACE_MS) closeIdle.call(server);
  };
}

export function createHttpServer(opts: HttpFrontOptions): http.Server {
  keepTickObjectShape(); // process.nextTick's entries keep one map (common.ts)
  const server = http.createServer({
    maxHeaderSize: opts.maxHeaderBytes,
    requireHostHeader: true,
    headersTimeout: opts.headersTimeout,
    requestTimeout: opts.requestTimeout,
    keepAliveTimeout: opts.keepAliveTimeout,
    // Node checks header/request timeouts on this period (30 s by default): keep it well below them.
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(Math.min(opts.headersTimeout, opts.requestTimeout) / 4))),
  });
  server.keepAliveTimeout = opts.keepAliveTimeout; // not read from the options object by Node 20
  const front = new HttpFront(opts);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => front.handle(req, res));
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => front.checkContinue(req, res));
  server.on('connect', (req: IncomingMessage, socket: Socket) => front.refuseConnect(req, socket));
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => front.clientError(err, socket));
  // H-16: only with a listener does node:http take an Upgrade request out of the request path.
  const upgrade = opts.service.upgrade;
  if (upgrade !== undefined) server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => front.upgrade(upgrade, req, socket as Socket, head));
  return server;
}

const kCounted = Symbol('gatewire.inflightOnConnection');
const kTimer = Symbol('gatewire.timeout');

/** A Node handler's res with its --timeout timer. */
type TimedResponse = ServerResponse & { [kTimer]?: NodeJS.Timeout | undefined };

/**
 * After a 504 of --timeout: res's own methods shadow node:http's (and Express's, whose
 * prototype swap they survive), so the handler's late answer reaches nothing. headersSent reads
 * false so a late error handler tries to answer (into nothing) instead of destroying the
 * kept-alive connection; statusCode stays 504 for the access log.
 */
function makeInert(res: ServerResponse): void {
  const self = function (this: ServerResponse): ServerResponse {
    return res;
  };
  const callback = (args: unknown[]): void => {
    const cb = args.find((a) => typeof a === 'function') as (() => void) | undefined;
    if (cb !== undefined) process.nextTick(cb);
  };
  const inert: Record<string, unknown> = {
    writeHead: self,
    setHeader: self,
    setHeaders: self,
    appendHeader: self,
    removeHeader: () => undefined,
    flushHeaders: () => undefined,
    addTrailers: () => undefined,
    writeContinue: () => undefined,
    writeProcessing: () => undefined,
    writeEarlyHints: () => undefined,
    setTimeout: self,
    destroy: self,
    write: (...args: unknown[]) => {
      callback(args);
      return true;
    },
    end: (...args: unknown[]) => {
      callback(args);
      return res;
    },
  };
  for (const [name, value] of Object.entries(inert)) Object.defineProperty(res, name, { value, writable: true, configurable: true });
  const status = res.statusCode;
  Object.defineProperty(res, 'statusCode', { get: () => status, set: () => undefined, configurable: true });
  Object.defineProperty(res, 'headersSent', { get: () => false, configurable: true });
  res.on('error', () => undefined);
}

/** A connection, with how many of its requests are in the in-flight count (H-14). */
type CountedSocket = Socket & { [kCounted]?: number };

class HttpFront {
  private readonly node: NodeHandler | undefined;
  /** The 'finish' listener of every counted response: one function for all, no closure per request. */
  private readonly finished: (this: ServerResponse) => void;
  /** --timeout in ms, 0 = off. */
  private readonly timeout: number;

  constructor(private readonly opts: HttpFrontOptions) {
    this.node = opts.service.node;
    const inflight = opts.inflight;
    this.timeout = opts.timeout ?? 0;
    this.finished = function (this: ServerResponse): void {
      const timer = (this as TimedResponse)[kTimer];
      if (timer !== undefined) clearTimeout(timer);
      const socket = this.req.socket as CountedSocket;
      const counted = socket[kCounted] ?? 0;
      if (counted === 0) return; // its connection closed first and took it out of the count
      socket[kCounted] = counted - 1;
      inflight.leave();
    };
  }

  /** H-6: refuse an oversized body before sending 100 Continue; H-14: an overload too. */
  checkContinue(req: IncomingMessage, res: ServerResponse): void {
    const cl = req.headers['content-length'];
    if (cl !== undefined && Number(cl) > this.opts.maxBodyBytes) {
      this.reject(req, res, new RequestError(413, `Content-Length ${cl} over the limit ${this.opts.maxBodyBytes}`));
      return;
    }
    const inflight = this.opts.inflight;
    if (inflight.count >= inflight.max) {
      this.reject(req, res, this.overloaded());
      return;
    }
    res.writeContinue();
    this.handle(req, res);
  }

  /**
   * H-14: the request joins the in-flight count, or false at --max-inflight. It leaves the
   * count when its response finishes, or when its connection closes first: node:http emits
   * neither 'finish' nor 'close' for the response of a pipelined request still queued behind
   * another when the connection goes, so each connection counts its own requests and gives
   * back what is left when it closes (one 'close' listener per connection, none per request).
   */
  private enter(req: IncomingMessage, res: ServerResponse): boolean {
    const inflight = this.opts.inflight;
    if (!inflight.tryEnter()) return false;
    const socket = req.socket as CountedSocket;
    const counted = socket[kCounted];
    if (counted === undefined) {
      socket.once('close', () => {
        inflight.leave(socket[kCounted] ?? 0);
        socket[kCounted] = 0;
      });
    }
    socket[kCounted] = (counted ?? 0) + 1;
    res.on('finish', this.finished);
    return true;
  }

  private overloaded(): RequestError {
    return new RequestError(503, `more than ${this.opts.inflight.max} requests in flight`);
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const started = this.opts.logger.access === null ? 0 : performance.now();
    // Node handlers get Node's req/res: no environ, so no request context either.
    const ctx = this.node === undefined ? new RequestContext(this.opts.logger) : undefined;
    let vars: CgiVars;
    let chunked: boolean;
    try {
      [vars, chunked] = this.requestVars(req, ctx === undefined ? {} : newVars(ctx));
    } catch (err) {
      if (err instanceof RequestError) this.reject(req, res, err);
      else this.reject(req, res, new RequestError(400, String(err)));
      return;
    }
    if (!this.enter(req, res)) {
      this.reject(req, res, this.overloaded(), ctx?.id);
      return;
    }
    if (ctx === undefined) {
      this.callNode(this.node as NodeHandler, req, res, vars, chunked, started);
      return;
    }
    const input = chunked ? new LimitedInput(req, this.opts.maxBodyBytes) : req;
    const environ = makeEnviron(vars, ctx, {
      input,
      protocol: 'http',
      scheme: 'http',
      inputTerminated: chunked,
      multiprocess: this.opts.multiprocess,
    });
    const sink = new HttpSink(res);
    const exchange = new Exchange(
      environ,
      sink,
      { error: (message, err) => this.opts.logger.error(message, { request_id: ctx.id, stack: (err as Error | undefined)?.stack }) },
      this.timeout === 0 ? undefined : appDeadline({ timeout: this.timeout, logger: this.opts.logger, onTimeout: this.opts.onTimeout }, 'http', ctx),
    );
    if (input instanceof LimitedInput) {
      input.onLimit = () => {
        ctx.abort('request body over the limit');
        if (!exchange.headersSent) this.reject(req, res, new RequestError(413, `request body over the limit ${this.opts.maxBodyBytes}`), ctx.id);
        else res.destroy();
      };
    }
    const done = exchange.run(this.opts.service.app);
    if (!exchange.finished) {
      // H-10: a client that goes away while the app still works aborts it. One 'close' listener
      // per connection serves all its requests (a listener per request costs more than it does).
      const gone = (): void => {
        if (res.writableFinished) return;
        sink.gone = true;
        ctx.abort('client closed the connection');
        exchange.peerGone();
      };
      const live = liveOn(req.socket);
      live.add(gone);
      void done.then(() => live.delete(gone));
    }
    if (started !== 0) void done.then(() => this.accessLog(req, vars, ctx.id, exchange.accessStatus, exchange.sentBytes, started, input instanceof LimitedInput ? input.received : declaredLength(req)));
  }

  /** Node handlers get Node's own req/res; the URL below the mount, the full one in originalUrl. */
  private callNode(handler: NodeHandler, req: IncomingMessage, res: ServerResponse, vars: CgiVars, chunked: boolean, started: number): void {
    const mount = vars.SCRIPT_NAME as string;
    if (mount !== '') {
      (req as IncomingMessage & { originalUrl?: string | undefined }).originalUrl = req.url;
      req.url = rawPathBelow(vars.REQUEST_URI as string, mount.length);
    }
    // A request id only when something needs one (a refusal, a failure, the access log): node
    // handlers never see an environ, so the common path makes none.
    let requestId: string | undefined;
    const id = (): string => (requestId ??= newRequestId());
    if (chunked) limitChunkedBody(req, res, this.opts.maxBodyBytes, id);
    const fail = (err: unknown): void => {
      this.opts.logger.error(`node handler failed: ${(err as Error)?.message ?? String(err)}`, { request_id: id(), stack: (err as Error | undefined)?.stack });
      if (!res.headersSent && !res.destroyed) replyOnNodeRes(res, reply(500, id(), req.method));
      else res.destroy();
    };
    if (started !== 0) {
      // Body bytes as declared; a streamed node response (no Content-Length) is logged as "-", a HEAD (no body sent) too (CLI-9).
      res.on('finish', () => this.accessLog(req, vars, id(), res.statusCode, req.method === 'HEAD' ? 0 : Number(res.getHeader('content-length') ?? 0), started, declaredLength(req)));
    }
    if (this.timeout > 0) {
      // OP-10: one timer per request, cleared when the response finishes (this.finished). A
      // response whose head went out (writeHead, a first write) is not cut (OP-11): streaming is
      // legitimate; the timer then finds headersSent and does nothing.
      const timer = setTimeout(() => this.nodeTimedOut(req, res, id), this.timeout);
      timer.unref();
      (res as TimedResponse)[kTimer] = timer;
    }
    try {
      const r = handler(req, res);
      if (typeof (r as Promise<unknown> | undefined)?.then === 'function') (r as Promise<unknown>).then(undefined, fail);
    } catch (err) {
      fail(err);
    }
  }

  /**
   * OP-10 for a Node handler on Node's own res: the 504 goes out on it (the connection stays
   * kept-alive), then res is made inert, so what the handler does later (writeHead, setHeader,
   * write, end, destroy) is ignored instead of throwing ERR_HTTP_HEADERS_SENT or emitting a
   * write-after-end error. The handler learns of it from res's 'finish' and 'close', as of any
   * ended response (there is no gatewire.signal without an environ).
   */
  private nodeTimedOut(req: IncomingMessage, res: ServerResponse, id: () => string): void {
    (res as TimedResponse)[kTimer] = undefined;
    if (res.headersSent || res.writableEnded || res.destroyed) return;
    const ms = this.timeout;
    replyOnNodeRes(res, reply(504, id(), req.method));
    makeInert(res);
    appTimedOut({ logger: this.opts.logger, onTimeout: this.opts.onTimeout }, 'http', ms, id(), () => undefined);
  }

  /** The CGI variables of a request (environ.ts httpVars), or a RequestError to answer. Returns [vars, chunked]. */
  private requestVars(req: IncomingMessage, vars: CgiVars): [CgiVars, boolean] {
    const socket = req.socket;
    const chunked = httpVars(
      {
        method: req.method as string,
        url: req.url as string,
        httpVersionMajor: req.httpVersionMajor,
        httpVersionMinor: req.httpVersionMinor,
        rawHeaders: req.rawHeaders,
        remoteAddress: socket.remoteAddress,
        remotePort: socket.remotePort,
        localAddress: socket.localAddress,
        localPort: socket.localPort,
        scheme: 'http',
      },
      this.opts,
      vars,
    );
    return [vars, chunked];
  }

  /** gatewire's own answer to a refused request (src/reply.ts), with a log line naming its id. */
  private reject(req: IncomingMessage, res: ServerResponse, err: RequestError, requestId = newRequestId()): void {
    this.opts.logger.warn(`http: ${err.status} ${err.message}`, {
      remote: normalizeRemoteAddr(req.socket.remoteAddress),
      request: `${req.method ?? '-'} ${String(req.url).slice(0, 200)}`,
      request_id: requestId,
    });
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    // Framing may be in doubt after a refused request: close rather than read on (except 404).
    const r = reply(err.status, requestId, req.method, err.status === 404 ? [] : [['Connection', 'close']]);
    sendReply(new HttpSink(res), r);
    if (this.opts.logger.access !== null) this.accessLog(req, {}, requestId, r.status, r.body?.length ?? 0, performance.now(), 0);
  }

  /**
   * H-15: an Upgrade request for the app's upgrade handler, with node:http's arguments, once it
   * passed the request checks a plain request gets (H-1..H-5, H-8: refused on the socket like
   * CONNECT). The URL is the one below the mount, the full one in originalUrl, as for node
   * handlers. The connection is the handler's from then on: no in-flight count, no timeouts of
   * ours, no access log line (the handler answers 101 or refuses by itself).
   */
  upgrade(handler: UpgradeHandler, req: IncomingMessage, socket: Socket, head: Buffer): void {
    let vars: CgiVars;
    try {
      [vars] = this.requestVars(req, {});
    } catch (err) {
      const status = err instanceof RequestError ? err.status : 400;
      const id = newRequestId();
      this.opts.logger.warn(`http: ${status} upgrade refused: ${err instanceof Error ? err.message : String(err)}`, { remote: normalizeRemoteAddr(socket.remoteAddress), request: `${req.method ?? '-'} ${String(req.url).slice(0, 200)}`, request_id: id });
      socket.end(replyBytes(reply(status, id, req.method, [['Connection', 'close'], ['Date', new Date().toUTCString()]]), httpHead));
      return;
    }
    const mount = vars.SCRIPT_NAME as string;
    if (mount !== '') {
      (req as IncomingMessage & { originalUrl?: string | undefined }).originalUrl = req.url;
      req.url = rawPathBelow(vars.REQUEST_URI as string, mount.length);
    }
    const fail = (err: unknown): void => {
      this.opts.logger.error(`upgrade handler failed: ${(err as Error)?.message ?? String(err)}`, { request_id: newRequestId(), stack: (err as Error | undefined)?.stack });
      socket.destroy();
    };
    try {
      const r = handler(req, socket, head);
      if (typeof (r as Promise<unknown> | undefined)?.then === 'function') (r as Promise<unknown>).then(undefined, fail);
    } catch (err) {
      fail(err);
    }
  }

  /** CONNECT: no tunnels here (1.2: Node emits no request event for it). */
  refuseConnect(req: IncomingMessage, socket: Socket): void {
    const id = newRequestId();
    this.opts.logger.warn('http: 405 CONNECT refused', { remote: normalizeRemoteAddr(socket.remoteAddress), target: String(req.url).slice(0, 200), request_id: id });
    // RFC 9110 §15.5.6: a 405 names the methods that are allowed (the app decides beyond that).
    const allow: [string, string] = ['Allow', 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH'];
    socket.end(replyBytes(reply(405, id, 'CONNECT', [allow, ['Connection', 'close'], ['Date', new Date().toUTCString()]]), httpHead));
  }

  /** Bad framing and limits found by llhttp: 400, 431 for an oversized header block. */
  clientError(err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket): void {
    // A response already on its way (a refusal after the head, whose body llhttp then fails to
    // parse, e.g. Transfer-Encoding: gzip) is the only answer: never a second one behind it.
    const current = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || current?.headersSent === true) {
      socket.destroy();
      return;
    }
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    const status = tooLarge ? 431 : timeout ? 408 : 400;
    const id = newRequestId();
    this.opts.logger.warn(`http: ${status} ${err.code ?? ''} ${err.message}`, { remote: normalizeRemoteAddr(socket.remoteAddress), request_id: id });
    // The method, when llhttp got that far: a HEAD gets no body even for a request it refused.
    const r = reply(status, id, methodOf(err.rawPacket), [['Connection', 'close'], ['Date', new Date().toUTCString()]]);
    this.opts.logger.access?.({
      id,
      protocol: 'http',
      remoteAddr: normalizeRemoteAddr(socket.remoteAddress),
      method: '-',
      uri: '-',
      serverProtocol: '-',
      status,
      bytes: r.body?.length ?? 0,
      referer: undefined,
      userAgent: undefined,
      durationMs: 0,
      time: new Date(),
    });
    socket.end(replyBytes(r, httpHead));
  }

  private accessLog(req: IncomingMessage, vars: CgiVars, id: string, status: number, bytes: number, started: number, requestBytes: number): void {
    this.opts.logger.access?.({
      id,
      protocol: 'http',
      remoteAddr: normalizeRemoteAddr(req.socket.remoteAddress),
      method: req.method ?? '-',
      uri: (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '-',
      serverProtocol: `HTTP/${req.httpVersion}`,
      status,
      bytes,
      requestBytes,
      referer: vars.HTTP_REFERER,
      userAgent: vars.HTTP_USER_AGENT,
      durationMs: performance.now() - started,
      time: new Date(),
    });
  }
}

/** A request's Content-Length as node:http parsed it (it refuses a bad one), 0 without one. */
function declaredLength(req: IncomingMessage): number {
  const cl = req.headers['content-length'];
  return cl === undefined ? 0 : Number(cl) || 0;
}

const kLive = Symbol('gatewire.liveExchanges');

/** The abort callbacks of a connection's unfinished exchanges, called when it closes. */
function liveOn(socket: Socket): Set<() => void> {
  const holder = socket as Socket & { [kLive]?: Set<() => void> };
  let live = holder[kLive];
  if (live === undefined) {
    const set = new Set<() => void>();
    holder[kLive] = live = set;
    socket.once('close', () => {
      for (const gone of set) gone();
      set.clear();
    });
  }
  return live;
}

/** H-6 for chunked bodies on Node's own req: count what the parser pushes, destroy past the limit. */
function limitChunkedBody(req: IncomingMessage, res: ServerResponse, max: number, requestId: () => string): void {
  let seen = 0;
  const push = req.push.bind(req);
  req.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    if (chunk !== null && chunk !== undefined) {
      seen += (chunk as Buffer).length;
      if (seen > max) {
        if (!res.headersSent) replyOnNodeRes(res, reply(413, requestId(), req.method, [['Connection', 'close']]));
        req.destroy(new RequestError(413, 'request body over the limit'));
        return false;
      }
    }
    return push(chunk, encoding);
  };
}

/** Puts an exchange's response on Node's ServerResponse. */
class HttpSink implements ResponseSink {
  gone = false;
  constructor(private readonly res: ServerResponse) {}

  get closed(): boolean {
    return this.gone || this.res.destroyed;
  }

  head(status: number, reason: string, headers: HeaderList): void {
    const flat: string[] = [];
    for (const [name, value] of headers) flat.push(name, value);
    this.res.writeHead(status, reason, flat);
  }

  write(chunk: Buffer): boolean {
    return this.res.write(chunk);
  }

  /** One call for a whole known-length response: Node then sends head and body in one write. */
  complete(status: number, reason: string, headers: HeaderList, body: Buffer | string | undefined): void {
    this.head(status, reason, headers);
    this.res.end(body);
  }

  drain(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }

  end(): void {
    this.res.end();
  }

  /** the head now, before any body byte (node:http would keep it until the first write). */
  sendHead(): void {
    this.res.flushHeaders();
  }

  abort(): void {
    // R-11/H-12: never a clean end (no terminal chunk, no FIN that would end a close-delimited body).
    const socket = this.res.socket;
    if (socket === null) this.res.destroy();
    else resetAfterFlush(socket);
  }

  /** C-28: the connection's own bytes, for a response the app frames itself (fronts/http-raw.ts). */
  raw(): Promise<RawOutput | undefined> {
    return takeConnection(this.res);
  }

}

const httpHead = (status: number, reason: string, headers: HeaderList): Buffer => serializeHttpHead('HTTP/1.1', status, reason, headers);

/**
 * gatewire's reply on a Node handler's own res: the fields the handler had set (Express's
 * X-Powered-By, a half-built response) are not gatewire's and do not go out with it.
 */
function replyOnNodeRes(res: ServerResponse, r: Reply): void {
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  sendReply(new HttpSink(res), r);
}

/** The method token at the start of a request's first bytes (llhttp's rawPacket), if any. */
function methodOf(packet: Buffer | undefined): string | undefined {
  if (packet === undefined) return undefined;
  const space = packet.indexOf(0x20);
  if (space < 1 || space > 16) return undefined;
  const method = packet.toString('latin1', 0, space);
  return /^[A-Z]+$/.test(method) ? method : undefined;
}
