/**
 * What the gateway fronts (FastCGI, SCGI, uwsgi) share: their options, the peer allow-list
 * (F-43), the in-flight cap that turns overload into a 503 (the HTTP front counts in it too,
 * H-14), a ResponseSink for protocols whose body is the raw rest of the connection (SCGI,
 * uwsgi), and the access-log record.
 */
import { createHook } from 'node:async_hooks';
import * as net from 'node:net';
import type { Socket } from 'node:net';
import type { CgiVars, HeaderList, Service } from '../app.js';
import type { ExchangeDeadline, ResponseSink } from '../call.js';
import type { RequestContext } from '../request.js';
import { normalizeRemoteAddr } from '../environ.js';
import { ListenError } from '../errors.js';
import type { Logger } from '../log.js';
import type { AllowFront, ConnectionHandler, FrontContext, Listener, ListenerProtocol } from './registry.js';

export interface GatewayFrontOptions {
  service: Service;
  mount: string;
  logger: Logger;
  /** Peers allowed to connect (F-43); undefined = everyone. */
  allow: PeerFilter | undefined;
  /** Largest PARAMS / netstring / vars block. */
  maxParamsBytes: number;
  maxBodyBytes: number;
  /** Time to receive a request head (FastCGI: until PARAMS end; SCGI/uwsgi: the header block). */
  headersTimeout: number;
  /** Idle time on a connection before it is closed (FastCGI keep-conn between requests, stalled bodies). */
  idleTimeout: number;
  inflight: InflightCounter;
  multiprocess: boolean;
  /** --timeout (OP-10): ms for the app to put its head out, then 504; 0 = off. */
  timeout: number;
  /** FrontContext.onTimeout: counts timeouts (metrics). */
  onTimeout: ((protocol: ListenerProtocol) => void) | undefined;
}

/**
 * A gateway front's options from the server's context: its allow-list (`--NAME-allow`, then
 * GATEWIRE_NAME_ALLOW, then the front's fallback variable such as FCGI_WEB_SERVER_ADDRS), the
 * shared limits and timeouts.
 */
export function gatewayOptions(ctx: FrontContext, name: AllowFront, fallbackEnv?: string): GatewayFrontOptions {
  const text = ctx.options[`${name}Allow`] ?? (fallbackEnv === undefined ? undefined : process.env[fallbackEnv]);
  let allow: PeerFilter | undefined;
  try {
    allow = text === undefined || text.trim() === '' ? undefined : new PeerFilter(text);
  } catch (err) {
    throw new ListenError(`--${name}-allow: ${(err as Error).message}`);
  }
  return {
    service: ctx.service,
    mount: ctx.mount,
    logger: ctx.logger,
    allow,
    maxParamsBytes: ctx.options.maxParamsBytes,
    maxBodyBytes: ctx.options.maxBodyBytes,
    headersTimeout: ctx.options.headersTimeout,
    idleTimeout: ctx.options.idleTimeout,
    inflight: ctx.inflight,
    multiprocess: ctx.multiprocess,
    timeout: ctx.options.timeout,
    onTimeout: ctx.onTimeout,
  };
}

/**
 * --timeout (OP-10) for one exchange, or undefined when it is off (then nothing is made per
 * request). On timeout: gatewire.signal aborts with the reason, one warn line with the request
 * id, and the metrics hook. The 504 itself is the exchange's (call.ts).
 */
export function appDeadline(
  opts: { timeout: number; logger: Logger; onTimeout: ((protocol: ListenerProtocol) => void) | undefined },
  protocol: ListenerProtocol,
  ctx: RequestContext,
): ExchangeDeadline | undefined {
  const ms = opts.timeout;
  if (!(ms > 0)) return undefined;
  return { ms, onTimeout: () => appTimedOut(opts, protocol, ms, ctx.id, () => ctx.abort(timeoutReason(ms))) };
}

/** The abort reason and the log line of an app timeout. */
export function timeoutReason(ms: number): string {
  return `timeout: app did not answer in ${ms} ms`;
}

/** The front's part of a timeout: abort, log, count. */
export function appTimedOut(
  opts: { logger: Logger; onTimeout: ((protocol: ListenerProtocol) => void) | undefined },
  protocol: ListenerProtocol,
  ms: number,
  requestId: string,
  abort: () => void,
): void {
  opts.logger.warn(timeoutReason(ms), { request_id: requestId, protocol });
  abort();
  try {
    opts.onTimeout?.(protocol);
  } catch (err) {
    opts.logger.error(`the onTimeout hook failed: ${(err as Error)?.message ?? String(err)}`, { request_id: requestId });
  }
}

/**
 * A 'connection' listener that keeps `sockets` holding every open socket. The 'close' listener is
 * one function shared by all (an emitter calls it with the socket as `this`), not a closure and
 * a `once` wrapper per connection: SCGI and uwsgi pay for those on every request.
 */
export function trackSockets(sockets: Set<Socket>): (socket: Socket) => void {
  function untrack(this: Socket): void {
    sockets.delete(this);
  }
  return (socket) => {
    sockets.add(socket);
    socket.on('close', untrack);
  };
}

/** A plain net.Server whose connections a ConnectionHandler serves (every front but HTTP). */
export function listenOn(handler: ConnectionHandler, serverOptions: net.ServerOpts = {}): Listener {
  keepTickObjectShape();
  const server = net.createServer(serverOptions);
  server.on('connection', (socket: Socket) => handler.handle(socket));
  return { server, closeIdle: () => handler.closeIdle() };
}

/** The tick object kept by keepTickObjectShape (held only so that it stays alive). */
let tickObject: object | undefined;

/**
 * Keeps one of process.nextTick's queue entries alive for the life of the process, so the hidden
 * classes (maps) of those entries can never be collected. Every front runs several nextTick
 * calls per request inside node:net, node:http and streams, and Node builds each entry with an
 * object literal with computed keys (`{ [async_id_symbol]: id, ..., callback, args }`). V8's
 * feedback for such a literal goes from monomorphic straight to megamorphic on the first
 * different map, and megamorphic means a runtime call (Runtime_DefineKeyedOwnPropertyInLiteral)
 * for every entry, for the rest of the process: process.nextTick goes from ~45 ns to ~250 ns.
 * The maps do change: an idle spell with no entry alive (between two loads, after the last
 * connection of a burst closes) lets a full GC collect them, and the next entry builds new
 * ones. That was the "slower after another front's load" of a mixed process (issue 15): 15 % of
 * an HTTP request's CPU profile in that runtime call. An entry held here keeps the maps alive.
 * Taken with an init-only async hook around one nextTick call (executionAsyncResource() would
 * do too, but it switches every native callback to the async-hooks trampoline for good); the
 * hook is disabled again before this returns. Once per process, before any request.
 */
export function keepTickObjectShape(): void {
  if (tickObject !== undefined) return;
  tickObject = {};
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject') tickObject = resource;
    },
  }).enable();
  try {
    process.nextTick(keepTickObjectShapeNoop);
  } finally {
    hook.disable();
  }
}

function keepTickObjectShapeNoop(): void {}

/**
 * Which peers may connect, from a comma list of addresses and CIDR ranges (IPv4 and IPv6).
 * Unix-socket peers are always allowed: the file mode is their access control.
 */
export class PeerFilter {
  private readonly list = new net.BlockList();
  readonly text: string;

  constructor(spec: string) {
    this.text = spec;
    for (const raw of spec.split(',')) {
      const entry = raw.trim();
      if (entry === '') continue;
      const [addr, bits] = entry.split('/') as [string, string | undefined];
      const family = net.isIPv6(addr) ? 'ipv6' : net.isIPv4(addr) ? 'ipv4' : undefined;
      if (family === undefined) throw new Error(`invalid address in allow-list: ${JSON.stringify(entry)}`);
      if (bits === undefined) this.list.addAddress(addr, family);
      else {
        const prefix = Number(bits);
        if (!/^[0-9]+$/.test(bits) || prefix > (family === 'ipv4' ? 32 : 128)) throw new Error(`invalid prefix in allow-list: ${JSON.stringify(entry)}`);
        this.list.addSubnet(addr, prefix, family);
      }
    }
  }

  allows(remoteAddress: string | undefined): boolean {
    if (remoteAddress === undefined || remoteAddress === '') return true; // unix socket
    const addr = normalizeRemoteAddr(remoteAddress);
    return this.list.check(addr, net.isIPv6(addr) ? 'ipv6' : 'ipv4') || (addr !== remoteAddress && this.list.check(remoteAddress, 'ipv6'));
  }
}

/** Closes a connection from a peer outside the allow-list, with a log line. True when refused. */
export function refusePeer(socket: Socket, opts: GatewayFrontOptions, protocol: ListenerProtocol): boolean {
  if (opts.allow === undefined || opts.allow.allows(socket.remoteAddress)) return false;
  opts.logger.warn(`${protocol}: connection from ${normalizeRemoteAddr(socket.remoteAddress)} refused (not in the allow-list ${opts.allow.text})`);
  socket.destroy();
  return true;
}

/** After a response that closes the connection: how long the peer's remaining input is drained before the socket is destroyed (F-40, S-9, U-9). */
export const DRAIN_MS = 2000;

/** When the first byte of a connection --auto handed over arrived (performance.now()). */
const headStarts = new WeakMap<Socket, number>();

/** --auto: the connection's first byte came at `at`, before the front took it over (F-46, S-11). */
export function markHeadStart(socket: Socket, at: number): void {
  headStarts.set(socket, at);
}

/**
 * When the head a front begins to read now began: the first byte's time for the first head of a
 * connection --auto handed over (its detection read some of it), else now. So the headers
 * timeout bounds a head from its first byte whichever front reads it; taken once.
 */
export function takeHeadStart(socket: Socket): number {
  const at = headStarts.get(socket);
  if (at === undefined) return performance.now();
  headStarts.delete(socket);
  return at;
}

/** Requests running in this process across all fronts; beyond `max` new ones get 503 (F-16, H-14). */
export class InflightCounter {
  count = 0;
  /** Requests admitted since the process started. */
  admitted = 0;
  private recycleAt = Infinity;
  private onRecycle: (() => void) | undefined;
  constructor(readonly max: number) {}
  tryEnter(): boolean {
    if (this.count >= this.max) return false;
    this.count++;
    if (++this.admitted === this.recycleAt) this.onRecycle?.();
    return true;
  }
  /** Calls `then` once, when the `n`th request is admitted (--max-requests). */
  recycleAfter(n: number, then: () => void): void {
    this.recycleAt = n;
    this.onRecycle = then;
    if (this.admitted >= n) then();
  }
  leave(n = 1): void {
    this.count -= n;
  }
}

/**
 * A response on a connection that carries nothing else (SCGI, uwsgi): the serialized head, then
 * raw body bytes, then the end of the connection. Never chunk framing (table 8.2).
 *
 * Nagle's algorithm is left on for a response written in one write (complete(): the first
 * segment is never held, and the FIN pushes out whatever is queued) and turned off before a
 * response written in parts, where it would hold a small write until the web server's delayed
 * ACK. Not setting TCP_NODELAY on every connection saves a syscall per request.
 */
export class StreamSink implements ResponseSink {
  gone = false;

  constructor(
    private readonly socket: Socket,
    private readonly serializeHead: (status: number, reason: string, headers: HeaderList) => Buffer,
  ) {}

  get closed(): boolean {
    return this.gone || this.socket.destroyed;
  }

  head(status: number, reason: string, headers: HeaderList): void {
    this.socket.setNoDelay(true);
    this.socket.write(this.serializeHead(status, reason, headers));
  }

  write(chunk: Buffer): boolean {
    return this.socket.write(chunk);
  }

  drain(): Promise<void> {
    return waitDrain(this.socket);
  }

  end(): void {
    this.socket.end();
  }

  /** Head, body and end of the connection in one write (one buffer up to 16 KiB). */
  complete(status: number, reason: string, headers: HeaderList, body: Buffer | string | undefined): void {
    const head = this.serializeHead(status, reason, headers);
    if (body === undefined) {
      this.socket.end(head);
      return;
    }
    const bodyLength = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    if (bodyLength <= 16 * 1024) {
      const whole = Buffer.allocUnsafe(head.length + bodyLength);
      head.copy(whole, 0);
      if (typeof body === 'string') whole.write(body, head.length);
      else body.copy(whole, head.length);
      this.socket.end(whole);
    } else {
      this.socket.setNoDelay(true);
      this.socket.cork();
      this.socket.write(head);
      this.socket.end(body);
      this.socket.uncork();
    }
  }

  /** flush what was written, then reset: the web server must not take it for a clean end. */
  abort(): void {
    resetAfterFlush(this.socket);
  }
}

export function waitDrain(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/**
 * Ends a connection so the peer sees an error, not a clean end: what was already written
 * is flushed, then the connection is reset (RST). A unix socket has no reset (Node throws for
 * it): it is destroyed instead, which the peer sees as a close before the response ended.
 */
export function resetAfterFlush(socket: Socket): void {
  if (socket.destroyed) return;
  const reset = (): void => {
    if (socket.destroyed) return;
    try {
      socket.resetAndDestroy();
    } catch {
      socket.destroy();
    }
  };
  if (socket.writableLength === 0) reset();
  else {
    socket.write('', reset);
    setTimeout(reset, 2000).unref(); // a peer that stopped reading does not hold the socket
  }
}

/** The access-log record of a gateway exchange (client data comes from the web server's params). */
export function gatewayAccess(opts: GatewayFrontOptions, protocol: ListenerProtocol, vars: CgiVars, id: string, status: number, bytes: number, started: number, requestBytes: number): void {
  opts.logger.access?.({
    id,
    protocol,
    remoteAddr: vars.REMOTE_ADDR ?? '-',
    remoteUser: vars.REMOTE_USER,
    method: vars.REQUEST_METHOD ?? '-',
    uri: vars.REQUEST_URI ?? `${vars.SCRIPT_NAME ?? ''}${vars.PATH_INFO ?? ''}`,
    serverProtocol: vars.SERVER_PROTOCOL ?? '-',
    status,
    bytes,
    requestBytes,
    referer: vars.HTTP_REFERER,
    userAgent: vars.HTTP_USER_AGENT,
    durationMs: performance.now() - started,
    time: new Date(),
  });
}
