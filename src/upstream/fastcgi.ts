/**
 * The FastCGI upstream client as an App: gatewire as the web server in front of php-fpm, uWSGI's
 * `--fastcgi-socket`, another gatewire's `--fastcgi` front or any FastCGI application, as nginx's
 * `fastcgi_pass` with `fastcgi_keep_conn on` is.
 *
 *   const app = fastcgiUpstream([{ protocol: 'fastcgi', address: { kind: 'unix', path: '/run/php/php8.2-fpm.sock' } }]);
 *
 * Connections (one pool per upstream, UP-28):
 *
 *   keep-conn   every BEGIN_REQUEST has FCGI_KEEP_CONN; after END_REQUEST the connection serves
 *               the next request. A connection the upstream closed is never reused (UP-29),
 *               nor one whose END_REQUEST came before all of the request body went out: the
 *               rest is not sent (it would reach the next request of that id), the connection
 *               closes. The close() of a body the client got whole gives nothing up, also when
 *               its END_REQUEST is still due
 *   cap         at most `maxConnections` per upstream; further requests wait here, in order,
 *               up to the read timeout (504), rather than in the upstream's listen backlog
 *   idle        an idle connection is closed after `idleTimeout` (2 s: php-fpm gives each
 *               connection a worker for as long as it is open, so idle ones must not linger,
 *               and it drops unused ones itself at 5 s). It is not kept idle at all while
 *               another request to that upstream still waits for its answer to start: that one
 *               may sit in the listen backlog behind the worker our idle connection pins
 *   recycling   a connection is closed after `maxRequestsPerConnection` requests (nginx's
 *               keepalive_requests), once no request is on it (a multiplexed one may carry
 *               several), which also lets queued connections of a too-small pool in
 *   multiplex   one FCGI_GET_VALUES probe per upstream, on its own short connection; only an
 *               answer FCGI_MPXS_CONNS=1 lets several requests share a connection (UP-7);
 *               until it came, and for php-fpm (which says 0), one request per connection. A
 *               probe that could not connect is asked again 5 s later, not taken as a no. A
 *               multiplexed connection taken up again is no longer idle (its timer stops)
 *   retry       a request whose reused connection failed before any byte of the answer, while
 *               none of the request body was taken from the client, is sent once more on a
 *               fresh connection (the body stays unread, paused, until it goes); nothing else
 *               is retried (UP-30)
 *
 * One request: BEGIN_REQUEST, PARAMS in whole pairs (protocols/fastcgi/client.ts), STDIN with
 * backpressure both ways (UP-5, UP-6; a body of unknown length is buffered to learn it, UP-4),
 * then STDOUT through the bounded CGI head parser (UP-10; the same rules as every CGI-style
 * answer, UP-15..UP-18), the body queued for the exchange with the socket paused while it is
 * full (UP-32); bytes past a declared Content-Length are dropped, with one warn line. STDERR
 * goes to the error log line by line with the request id, capped, never into the body (UP-11).
 * END_REQUEST ends the body; one that comes before a complete head is a 502 (503 when
 * protocolStatus says OVERLOADED). A close before END_REQUEST fails the request: a 502 before
 * the head, a cut-off response after it (UP-12). A client that goes away closes the
 * connection, or sends FCGI_ABORT_REQUEST when the connection is multiplexed (UP-31); it does
 * not count as a failure of its upstream (src/upstream/group.ts).
 *
 * Failures answer through src/reply.ts with one log line: refused, reset, garbage → 502;
 * connect or read timeout → 504 (UP-27, UP-33).
 */
import { Buffer } from 'node:buffer';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { Body, Environ, StartResponse } from '../app.js';
import type { Logger } from '../logger.js';
import type { AbortWatch } from '../request.js';
import { noteAnswerBytes, noteBodyBytes } from '../memory.js';
import { CgiResponseParser, type CgiHeadLimits } from '../../protocols/cgi/response.js';
import {
  encodeAbortRequest,
  encodeFastcgiRequest,
  encodeGetValues,
  encodeStdin,
  encodeStdinEnd,
  FastcgiResponseDecoder,
  protocolStatusName,
} from '../../protocols/fastcgi/client.js';
import { ManagementVariable, ProtocolStatus } from '../../protocols/fastcgi/constants.js';
import { LimitError, ProtocolError } from '../../protocols/errors.js';
import type { UpstreamTarget } from './address.js';
import {
  asUpstreamError,
  cgiAnswer,
  connectTo,
  drain,
  outboundBody,
  outboundLength,
  positive,
  UPSTREAM_DEFAULTS,
  UpstreamError,
  UpstreamRequest,
  upstreamVars,
  type Answer,
  type Outbound,
  type UpstreamApp,
  type UpstreamOptions,
} from './common.js';
import { type GroupOptions, type Peer, UpstreamGroup } from './group.js';

/** Options of {@link fastcgiUpstream}. Durations in ms. */
export interface FastcgiUpstreamOptions extends UpstreamOptions, GroupOptions {
  /** Connections per upstream; set it to php-fpm's pm.max_children or below. @default 8 */
  maxConnections?: number;
  /** An idle pooled connection is closed after this. @default 2000 */
  idleTimeout?: number;
  /** A connection is closed after this many requests. @default 1000 */
  maxRequestsPerConnection?: number;
  /** FCGI_KEEP_CONN: reuse connections. @default true */
  keepConn?: boolean;
  /** Ask the upstream (FCGI_GET_VALUES) whether it multiplexes, and do so if it says yes. @default true */
  multiplex?: boolean;
  /** STDERR bytes logged per request; the rest is counted, not logged. @default 65536 */
  maxStderrBytes?: number;
}

export const FASTCGI_DEFAULTS = {
  maxConnections: 8,
  idleTimeout: 2_000,
  maxRequestsPerConnection: 1_000,
  maxStderrBytes: 64 * 1024,
  /** How long the GET_VALUES probe waits for its answer. */
  probeTimeout: 1_000,
  /** How long after a probe that could not connect the next one may go. */
  probeRetry: 5_000,
  /** Requests per multiplexed connection, when the upstream's FCGI_MAX_REQS is larger or absent. */
  maxMultiplex: 100,
  /** Body bytes queued for a slow client before the connection is paused. */
  highWaterMark: 64 * 1024,
} as const;

/** A STDERR line longer than this is logged cut, with its length. */
const STDERR_LINE_MAX = 2048;

interface Config {
  connectTimeout: number;
  readTimeout: number;
  maxBufferedBody: number;
  headLimits: CgiHeadLimits;
  params: ReadonlyArray<readonly [string, string]> | undefined;
  logger: Logger | undefined;
  maxConnections: number;
  idleTimeout: number;
  maxRequestsPerConnection: number;
  keepConn: boolean;
  multiplex: boolean;
  maxStderrBytes: number;
}

/** An App that forwards every request to the FastCGI application servers `targets` (round robin). */
export function fastcgiUpstream(targets: UpstreamTarget | readonly UpstreamTarget[], options: FastcgiUpstreamOptions = {}): UpstreamApp {
  const list = Array.isArray(targets) ? (targets as readonly UpstreamTarget[]) : [targets as UpstreamTarget];
  for (const t of list) if (t.protocol !== 'fastcgi') throw new TypeError(`fastcgiUpstream takes fastcgi targets, got ${t.protocol}`);
  const cfg: Config = {
    connectTimeout: positive('connectTimeout', options.connectTimeout, UPSTREAM_DEFAULTS.connectTimeout),
    readTimeout: positive('readTimeout', options.readTimeout, UPSTREAM_DEFAULTS.readTimeout),
    maxBufferedBody: positive('maxBufferedBody', options.maxBufferedBody, UPSTREAM_DEFAULTS.maxBufferedBody),
    headLimits: { ...UPSTREAM_DEFAULTS.headLimits, ...(options.headLimits ?? {}) },
    params: options.params,
    logger: options.logger,
    maxConnections: positive('maxConnections', options.maxConnections, FASTCGI_DEFAULTS.maxConnections),
    idleTimeout: positive('idleTimeout', options.idleTimeout, FASTCGI_DEFAULTS.idleTimeout),
    maxRequestsPerConnection: positive('maxRequestsPerConnection', options.maxRequestsPerConnection, FASTCGI_DEFAULTS.maxRequestsPerConnection),
    keepConn: options.keepConn ?? true,
    multiplex: options.multiplex ?? true,
    maxStderrBytes: positive('maxStderrBytes', options.maxStderrBytes, FASTCGI_DEFAULTS.maxStderrBytes),
  };
  const group = new UpstreamGroup(list, options);
  const pools = new Map<Peer, Pool>(group.peers.map((p) => [p, new Pool(p, cfg)]));
  const app = ((environ: Environ, sr: StartResponse) => forward(cfg, group, pools, environ, sr)) as UpstreamApp;
  app.close = async () => {
    await Promise.all([...pools.values()].map((p) => p.close()));
  };
  app.stats = () => {
    const now = Date.now();
    return [...pools.values()].map((pool) => ({ upstream: pool.peer.label, ...pool.counts(), failures: pool.peer.failures, down: pool.peer.downUntil > now }));
  };
  return app;
}

// ---------------------------------------------------------------------------------------------
// One request
// ---------------------------------------------------------------------------------------------

async function forward(cfg: Config, group: UpstreamGroup, pools: Map<Peer, Pool>, environ: Environ, sr: StartResponse): Promise<Body> {
  const req = new UpstreamRequest(environ, sr, cfg.logger, group.peers.length === 1 ? (group.peers[0] as Peer).label : 'fastcgi');
  const { signal } = req;
  const input = environ['gatewire.input'];
  const log = (level: 'error' | 'warn', message: string): void => req.log(level, message);
  const refuse = (status: number, why: string, level?: 'error' | 'warn'): Body => req.refuse(status, why, level);

  let outbound: Outbound;
  try {
    outbound = await outboundBody(environ, cfg.maxBufferedBody);
  } catch (err) {
    const e = err as UpstreamError;
    return refuse(e.status, e.message, 'warn');
  }
  // UP-4: CONTENT_LENGTH always, the real length (php-fpm reads exactly that many bytes; without
  // it the script sees an empty body).
  const params = upstreamVars(environ, cfg.params);
  params.push(['CONTENT_LENGTH', String(outboundLength(outbound))]);
  let head: [Buffer, Buffer];
  try {
    // Encoded before connecting (UP-2): a pair over 65535 bytes or a char above U+00FF cannot go
    // out. Request id 1 is the one every connection without multiplexing uses.
    head = encodeFastcgiRequest(1, { keepConn: cfg.keepConn, params });
  } catch (err) {
    if (err instanceof LimitError) return refuse(431, `request head does not fit fastcgi: ${err.detail}`, 'warn');
    if (err instanceof ProtocolError) return refuse(400, `request cannot be sent over fastcgi: ${err.detail}`, 'warn');
    throw err;
  }

  const request: RequestSpec = { params, head, outbound, isHead: environ.REQUEST_METHOD === 'HEAD', signal, input, log };
  const tried = new Set<Peer>();
  let retried = false;
  for (;;) {
    if (signal?.aborted === true) return refuse(502, 'client gone before the request was sent');
    const peer = group.pick(tried);
    if (peer === undefined) return refuse(502, 'no upstream could be reached');
    req.label = peer.label;
    const pool = pools.get(peer) as Pool;
    let conn: Connection;
    try {
      conn = await pool.acquire(signal, retried);
    } catch (err) {
      const e = err as UpstreamError;
      if (e.connectFailed) {
        tried.add(peer);
        if (group.failed(peer)) log('error', `marked down for its failures (${e.message})`);
        if (group.pick(tried) !== undefined) {
          log('warn', `${e.message}; trying the next upstream`);
          continue;
        }
      }
      return refuse(e.status, e.message);
    }
    const exchange = conn.start(request);
    let answer: Answer;
    try {
      answer = await exchange.head;
    } catch (err) {
      const e = asUpstreamError(err, 'no answer');
      if (exchange.retryable && !retried) {
        retried = true;
        log('warn', `reused connection failed before the answer (${e.message}); sending the request once more on a new connection`);
        continue;
      }
      // A client that went away says nothing about the upstream: its peer is not marked.
      if (e.status >= 502 && !exchange.clientGone) group.failed(peer);
      return refuse(e.status, e.message, e.status < 500 ? 'warn' : 'error');
    }
    return req.answer(answer, exchange, () => group.succeeded(peer));
  }
}

interface RequestSpec {
  params: Array<[string, string]>;
  /** BEGIN_REQUEST and the PARAMS stream for request id 1 (another id is encoded anew). */
  head: [beginRequest: Buffer, params: Buffer];
  outbound: Outbound;
  isHead: boolean;
  signal: AbortWatch | undefined;
  input: Readable;
  log(level: 'error' | 'warn', message: string): void;
}

// ---------------------------------------------------------------------------------------------
// The pool of one upstream
// ---------------------------------------------------------------------------------------------

type Waiter = { grant(conn: Connection | null): void; fail(err: UpstreamError): void };

class Pool {
  private readonly conns = new Set<Connection>();
  /** Idle connections, the most recently used last (reused first: the others idle out). */
  private readonly idle: Connection[] = [];
  private opening = 0;
  private readonly waiters: Waiter[] = [];
  private mpx: 'unknown' | 'probing' | 'yes' | 'no';
  private mpxLimit = 1;
  /** After a probe that could not connect: not before this time (ms since the epoch) again. */
  private nextProbe = 0;
  private maxConnections: number;
  private closed = false;

  constructor(
    readonly peer: Peer,
    readonly cfg: Config,
  ) {
    this.mpx = cfg.multiplex && cfg.keepConn ? 'unknown' : 'no';
    this.maxConnections = cfg.maxConnections;
  }

  /** Requests one connection may carry at once. */
  get capacity(): number {
    return this.mpx === 'yes' ? this.mpxLimit : 1;
  }

  get multiplexed(): boolean {
    return this.mpx === 'yes';
  }

  /** A connection with a free request slot: an idle one, a new one, or the next one freed. */
  async acquire(signal: AbortWatch | undefined, fresh: boolean): Promise<Connection> {
    if (this.mpx === 'unknown' && Date.now() >= this.nextProbe) void this.probe();
    for (;;) {
      if (this.closed) throw new UpstreamError('the server is shutting down', 503);
      if (!fresh) {
        const conn = this.reusable();
        if (conn !== undefined) return conn;
      }
      if (this.conns.size + this.opening < this.maxConnections) return this.open(signal);
      const granted = await this.wait(signal);
      // Gone or full again by the time this runs (a record after END_REQUEST, another taker): look again.
      if (granted === null || !granted.usable || granted.active >= this.capacity) continue;
      if (!fresh || granted.active > 0) return granted;
      // A retry wants a new connection, not an idle one: this one makes room for it.
      granted.destroy();
    }
  }

  private reusable(): Connection | undefined {
    if (this.mpx === 'yes') {
      for (const c of this.conns) {
        if (c.usable && c.active < this.mpxLimit) {
          this.unidle(c);
          return c;
        }
      }
      return undefined;
    }
    while (this.idle.length > 0) {
      const c = this.idle.pop() as Connection;
      if (c.usable) {
        c.unidle();
        return c;
      }
    }
    return undefined;
  }

  /** `conn` is in use again: off the idle list, its idle timer stopped. */
  private unidle(conn: Connection): void {
    const i = this.idle.indexOf(conn);
    if (i !== -1) this.idle.splice(i, 1);
    conn.unidle();
  }

  private async open(signal: AbortWatch | undefined): Promise<Connection> {
    this.opening++;
    let socket: Socket;
    try {
      socket = await connectTo(this.peer.target.address, this.cfg.connectTimeout, signal);
    } finally {
      this.opening--;
    }
    if (this.closed) {
      socket.destroy();
      throw new UpstreamError('the server is shutting down', 503);
    }
    const conn = new Connection(socket, this);
    this.conns.add(conn);
    return conn;
  }

  private wait(signal: AbortWatch | undefined): Promise<Connection | null> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => settle(new UpstreamError(`no free connection within ${this.cfg.readTimeout} ms (${this.maxConnections} in use)`, 504)), this.cfg.readTimeout);
      const onAbort = (): void => settle(new UpstreamError('client gone while waiting for a connection', 502));
      const waiter: Waiter = { grant: (c) => settle(undefined, c), fail: (e) => settle(e) };
      const settle = (err: UpstreamError | undefined, conn: Connection | null = null): void => {
        clearTimeout(timer);
        signal?.remove(onAbort);
        const i = this.waiters.indexOf(waiter);
        if (i !== -1) this.waiters.splice(i, 1);
        if (err !== undefined) reject(err);
        else resolve(conn);
      };
      signal?.add(onAbort);
      this.waiters.push(waiter);
    });
  }

  /** A request ended on `conn` (END_REQUEST): give the slot to a waiter, idle the connection, or close it. */
  release(conn: Connection): void {
    if (!conn.usable) {
      // Used up or retired: closed once no request is on it (a multiplexed one may carry others).
      if (conn.active === 0) conn.destroy();
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      waiter.grant(conn);
      return;
    }
    if (conn.active > 0) return; // multiplexed: still busy
    if (this.closed || this.somebodyWaitsForAnAnswer(conn)) {
      conn.destroy();
      return;
    }
    this.idle.push(conn);
    conn.idleFor(this.cfg.idleTimeout);
  }

  /** Whether another request to this upstream has sent its request and seen no answer yet (see the file header). */
  private somebodyWaitsForAnAnswer(except: Connection): boolean {
    if (this.mpx === 'yes') return false;
    for (const c of this.conns) if (c !== except && c.waitingForAnswer) return true;
    return false;
  }

  /** `conn` is gone: forget it, and let a waiter open a new one in its place. */
  forget(conn: Connection): void {
    this.conns.delete(conn);
    const i = this.idle.indexOf(conn);
    if (i !== -1) this.idle.splice(i, 1);
    this.waiters.shift()?.grant(null);
  }

  /** FCGI_GET_VALUES on a connection of its own (UP-7, UP-37): whether the upstream multiplexes. */
  private async probe(): Promise<void> {
    this.mpx = 'probing';
    let answer: Map<string, string> | undefined;
    try {
      answer = await getValues(this.peer.target, this.cfg.connectTimeout, FASTCGI_DEFAULTS.probeTimeout);
    } catch (err) {
      if (err instanceof UpstreamError && err.connectFailed && !this.closed) {
        // The upstream was not there (yet): it is asked again later, not taken as a "no".
        this.mpx = 'unknown';
        this.nextProbe = Date.now() + FASTCGI_DEFAULTS.probeRetry;
        return;
      }
      answer = undefined;
    }
    if (this.closed) return;
    const mpxs = answer?.get(ManagementVariable.MpxsConns);
    const maxReqs = Number(answer?.get(ManagementVariable.MaxReqs));
    const maxConns = Number(answer?.get(ManagementVariable.MaxConns));
    if (Number.isInteger(maxConns) && maxConns > 0 && maxConns < this.maxConnections) this.maxConnections = maxConns;
    if (mpxs === '1') {
      this.mpx = 'yes';
      this.mpxLimit = Number.isInteger(maxReqs) && maxReqs > 0 ? Math.min(maxReqs, FASTCGI_DEFAULTS.maxMultiplex) : FASTCGI_DEFAULTS.maxMultiplex;
      // The slots just opened up: waiters may use the busy connections now.
      for (const w of this.waiters.splice(0)) w.grant(null);
    } else {
      this.mpx = 'no';
    }
  }

  /** The upstream refused to multiplex (CANT_MPX_CONN) although it said it would. */
  stopMultiplexing(): void {
    if (this.mpx !== 'yes') return;
    this.mpx = 'no';
    this.mpxLimit = 1;
  }

  /** Connections open now (busy and idle, not those still connecting) and the idle ones. */
  counts(): { connections: number; idle: number } {
    return { connections: this.conns.size, idle: this.idle.length };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.fail(new UpstreamError('the server is shutting down', 503));
    for (const c of this.idle.splice(0)) c.destroy();
    const busy = [...this.conns];
    await Promise.all(busy.map((c) => c.closed));
  }
}

/** Sends FCGI_GET_VALUES for the three management variables; the pairs of the answer. */
export async function getValues(target: UpstreamTarget, connectTimeout: number, timeout: number): Promise<Map<string, string>> {
  const socket = await connectTo(target.address, connectTimeout, undefined);
  return new Promise((resolve, reject) => {
    const done = (err: Error | undefined, pairs?: Map<string, string>): void => {
      clearTimeout(timer);
      socket.destroy();
      if (err !== undefined) reject(err);
      else resolve(pairs as Map<string, string>);
    };
    const decoder = new FastcgiResponseDecoder({ onGetValuesResult: (pairs) => done(undefined, new Map(pairs)) });
    const timer = setTimeout(() => done(new Error(`no GET_VALUES_RESULT within ${timeout} ms`)), timeout);
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch (err) {
        done(err as Error);
      }
    });
    socket.on('error', (err) => done(err));
    socket.on('close', () => done(new Error('closed without GET_VALUES_RESULT')));
    socket.write(encodeGetValues([ManagementVariable.MaxConns, ManagementVariable.MaxReqs, ManagementVariable.MpxsConns]));
  });
}

// ---------------------------------------------------------------------------------------------
// One connection
// ---------------------------------------------------------------------------------------------


class Connection {
  private readonly exchanges = new Map<number, Exchange>();
  private readonly decoder: FastcgiResponseDecoder;
  /** Requests started on this connection. */
  private served = 0;
  private dead = false;
  /** No new request on it: it closes once the ones on it are over. */
  private retired = false;
  private finished = false;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Exchanges whose queue is full: the socket stays paused while any is. */
  private readonly full = new Set<Exchange>();
  readonly closed: Promise<void>;
  private onClosed!: () => void;

  constructor(
    private readonly socket: Socket,
    readonly pool: Pool,
  ) {
    this.closed = new Promise((resolve) => (this.onClosed = resolve));
    socket.setNoDelay(true);
    this.decoder = new FastcgiResponseDecoder({
      onStdout: (id, data) => this.exchanges.get(id)?.stdout(data),
      onStderr: (id, data) => this.exchanges.get(id)?.stderr(data),
      onEndRequest: (id, appStatus, protocolStatus) => this.endRequest(id, appStatus, protocolStatus),
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        this.decoder.push(chunk);
      } catch (err) {
        this.fail(asUpstreamError(err, 'protocol error'));
      }
    });
    socket.on('end', () => this.fail(new UpstreamError('the upstream closed the connection', 502)));
    socket.on('error', (err: NodeJS.ErrnoException) => this.fail(new UpstreamError(`connection error: ${err.code ?? err.message}`, 502)));
    socket.on('close', () => this.fail(new UpstreamError('the upstream closed the connection', 502)));
  }

  /** Open, not failed or retired, and below its request count. */
  get usable(): boolean {
    return !this.dead && !this.retired && this.pool.cfg.keepConn && this.served < this.pool.cfg.maxRequestsPerConnection;
  }

  get active(): number {
    return this.exchanges.size;
  }

  /** Whether a request on it has gone out and no byte of its answer came yet. */
  get waitingForAnswer(): boolean {
    for (const e of this.exchanges.values()) if (!e.answered) return true;
    return false;
  }

  idleFor(ms: number): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.destroy(), ms);
    this.idleTimer.unref();
  }

  unidle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** Sends a request on this connection. */
  start(request: RequestSpec): Exchange {
    let id = 1;
    while (this.exchanges.has(id)) id++;
    const reused = this.served > 0;
    this.served++;
    const exchange = new Exchange(id, this, request, reused);
    this.exchanges.set(id, exchange);
    this.decoder.register(id);
    const [begin, params] = id === 1 ? request.head : encodeFastcgiRequest(id, { keepConn: this.pool.cfg.keepConn, params: request.params });
    const body = request.outbound;
    const socket = this.socket;
    if (body.kind === 'buffer') {
      // One write: a GET is a few hundred bytes, and one buffer is cheaper than a writev of five.
      const pieces: Uint8Array[] = [begin, params];
      encodeStdin(id, body.data, pieces);
      pieces.push(encodeStdinEnd(id));
      if (body.data.length <= 64 * 1024) socket.write(Buffer.concat(pieces));
      else {
        socket.cork();
        for (const piece of pieces) socket.write(piece);
        socket.uncork();
      }
    } else {
      socket.write(Buffer.concat([begin, params]));
      exchange.upload(body.input);
    }
    return exchange;
  }

  /** Writes STDIN records; false when the socket's buffer is full. */
  writeStdin(id: number, data: Buffer): boolean {
    if (this.dead) return true;
    // Header, content and padding of each record leave in one writev: uWSGI's FastCGI socket
    // loses the body (it times out at once) when a record header arrives on its own.
    const socket = this.socket;
    socket.cork();
    let ok = true;
    for (const piece of encodeStdin(id, data)) ok = socket.write(piece);
    socket.uncork();
    return ok;
  }

  writeStdinEnd(id: number): void {
    if (!this.dead) this.socket.write(encodeStdinEnd(id));
  }

  onDrain(fn: () => void): void {
    this.socket.once('drain', fn);
  }

  private endRequest(id: number, appStatus: number, protocolStatus: number): void {
    const exchange = this.exchanges.get(id);
    this.exchanges.delete(id);
    this.full.delete(exchange as Exchange);
    if (protocolStatus === ProtocolStatus.CantMpxConn) this.pool.stopMultiplexing();
    // The upstream ended the request before all of its body went out: the rest is not sent, and
    // the connection is not reused (those STDIN records would reach the next request of that id).
    if (exchange?.stopUpload() === true) this.retired = true;
    exchange?.end(appStatus, protocolStatus);
    this.resumeIfRoom();
    if (!this.pool.cfg.keepConn) {
      if (this.exchanges.size === 0) this.destroy();
      return;
    }
    // Released after the handlers ran: a request that a waiter puts on this connection now
    // starts after this END_REQUEST, never inside it.
    this.pool.release(this);
  }

  /** Every exchange on the connection fails with `err`; the connection is gone. */
  private fail(err: UpstreamError): void {
    if (this.dead && this.exchanges.size === 0) {
      this.finish();
      return;
    }
    this.dead = true;
    const all = [...this.exchanges.values()];
    this.exchanges.clear();
    for (const e of all) e.fail(err);
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.dead = true;
    this.unidle();
    this.socket.destroy();
    this.pool.forget(this);
    this.onClosed();
  }

  /** Closes the connection; the exchanges still on it fail. */
  destroy(): void {
    this.fail(new UpstreamError('the connection was closed', 502));
  }

  /** The client of `exchange` went away (UP-31). */
  abandon(exchange: Exchange): void {
    // By identity: after its END_REQUEST the id may already carry the next request.
    if (this.exchanges.get(exchange.id) !== exchange) return;
    if (this.pool.multiplexed && !this.dead) {
      // Its END_REQUEST will free the id; what comes before it is dropped.
      this.socket.write(encodeAbortRequest(exchange.id));
      this.full.delete(exchange);
      this.resumeIfRoom();
      // An upstream that never ends the aborted request loses the connection, not the id.
      setTimeout(() => {
        if (this.exchanges.get(exchange.id) === exchange) this.destroy();
      }, this.pool.cfg.readTimeout).unref();
      return;
    }
    this.destroy();
  }

  pauseFor(exchange: Exchange): void {
    this.full.add(exchange);
    this.socket.pause();
  }

  resumeFor(exchange: Exchange): void {
    this.full.delete(exchange);
    this.resumeIfRoom();
  }

  private resumeIfRoom(): void {
    if (this.full.size === 0 && !this.dead) this.socket.resume();
  }
}

// ---------------------------------------------------------------------------------------------
// One request's answer
// ---------------------------------------------------------------------------------------------

type Phase = 'head' | 'body' | 'done';

class Exchange {
  readonly head: Promise<Answer>;
  private resolveHead!: (a: Answer) => void;
  private rejectHead!: (e: Error) => void;
  private phase: Phase = 'head';
  private readonly parser: CgiResponseParser;
  /** Any byte of the answer (STDOUT, STDERR or END_REQUEST) came. */
  answered = false;
  private bodyTaken = false;
  /** Detaches the upload from the client's body while it runs; undefined once it ended or stopped. */
  private detachUpload: (() => void) | undefined;
  private readonly queue: Buffer[] = [];
  private queued = 0;
  /** Body bytes still expected (declared Content-Length), -1 when END_REQUEST ends the body. */
  private remaining = -1;
  private ended = false;
  /** Bytes that came past the declared Content-Length (-1 while it was not reached). */
  private pastLength = -1;
  private failure: UpstreamError | undefined;
  private waiter: (() => void) | undefined;
  private abandoned = false;
  private stderrLine = '';
  private stderrBytes = 0;
  private stderrDropped = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastActivity = Date.now();
  private readonly onAbort = (): void => this.close();

  constructor(
    readonly id: number,
    private readonly conn: Connection,
    private readonly request: RequestSpec,
    private readonly reused: boolean,
  ) {
    this.head = new Promise<Answer>((resolve, reject) => {
      this.resolveHead = resolve;
      this.rejectHead = reject;
    });
    this.head.catch(() => undefined);
    this.parser = new CgiResponseParser(conn.pool.cfg.headLimits);
    request.signal?.add(this.onAbort);
    this.arm();
  }

  /** Whether a failure may be retried on a fresh connection (UP-30, see the file header). */
  get retryable(): boolean {
    return this.reused && !this.answered && !this.bodyTaken && !this.clientGone;
  }

  get clientGone(): boolean {
    return this.request.signal?.aborted === true;
  }

  /** Streams a body of known length as STDIN records with backpressure, then its end record. */
  upload(input: Readable): void {
    const onData = (chunk: Buffer | string): void => {
      this.bodyTaken = true;
      this.lastActivity = Date.now();
      const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
      noteBodyBytes(buf.length); // the read buffers are freed while young (src/memory.ts)
      if (this.phase === 'done') return;
      if (!this.conn.writeStdin(this.id, buf)) {
        input.pause();
        this.conn.onDrain(() => input.resume());
      }
    };
    const onEnd = (): void => {
      this.detachUpload?.();
      if (this.phase !== 'done') this.conn.writeStdinEnd(this.id);
    };
    // The client's body failed (truncated, over a limit): a 400, not the upstream's fault.
    const onError = (err: Error): void => {
      this.detachUpload?.();
      this.failAndClose(new UpstreamError(`request body: ${err.message}`, 400));
    };
    input.on('data', onData);
    input.once('end', onEnd);
    input.once('error', onError);
    this.detachUpload = () => {
      this.detachUpload = undefined;
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('error', onError);
    };
    input.resume(); // paused by an earlier attempt that may be retried (settle)
  }

  /** Stops an upload still running (END_REQUEST came first); true when there was one. */
  stopUpload(): boolean {
    if (this.detachUpload === undefined) return false;
    this.detachUpload();
    return true;
  }

  stdout(data: Buffer): void {
    this.answered = true;
    this.lastActivity = Date.now();
    if (this.abandoned) return;
    if (this.phase === 'head') {
      let answer;
      try {
        answer = this.parser.push(data);
      } catch (err) {
        this.failAndClose(asUpstreamError(err, 'malformed response head'));
        return;
      }
      if (answer === undefined) return;
      const a = cgiAnswer(answer);
      this.phase = 'body';
      const noBody = this.request.isHead || a.status === 204 || a.status === 304;
      this.remaining = noBody ? 0 : a.contentLength;
      this.resolveHead(a);
      if (this.remaining === 0) this.ended = true;
      else this.take(a.rest);
      return;
    }
    if (this.phase === 'body') this.take(data);
  }

  private take(chunk: Buffer): void {
    if (this.failure !== undefined || chunk.length === 0) return;
    if (this.ended) {
      if (this.pastLength >= 0) this.pastLength += chunk.length; // logged once, at the end
      return;
    }
    if (this.remaining >= 0) {
      if (chunk.length >= this.remaining) {
        this.pastLength = chunk.length - this.remaining;
        chunk = chunk.subarray(0, this.remaining);
        this.remaining = 0;
        this.ended = true;
      } else {
        this.remaining -= chunk.length;
      }
    }
    if (chunk.length > 0) {
      noteAnswerBytes(chunk.length); // the read buffers are freed while young (src/memory.ts)
      this.queue.push(chunk);
      this.queued += chunk.length;
      if (this.queued > FASTCGI_DEFAULTS.highWaterMark && !this.ended) this.conn.pauseFor(this);
    }
    this.wake();
  }

  /** STDERR: logged per line with the request id, capped, never in the body (UP-11). */
  stderr(data: Buffer): void {
    this.answered = true;
    this.lastActivity = Date.now();
    const max = this.conn.pool.cfg.maxStderrBytes;
    if (this.stderrBytes >= max) {
      this.stderrDropped += data.length;
      return;
    }
    const room = max - this.stderrBytes;
    if (data.length > room) {
      this.stderrDropped += data.length - room;
      data = data.subarray(0, room);
    }
    this.stderrBytes += data.length;
    const text = this.stderrLine + data.toString('latin1');
    const lines = text.split('\n');
    this.stderrLine = lines.pop() as string;
    for (const line of lines) this.logStderr(line);
    if (this.stderrLine.length > STDERR_LINE_MAX) {
      this.logStderr(this.stderrLine);
      this.stderrLine = '';
    }
  }

  private logStderr(line: string): void {
    const clean = line.replace(/\r$/, '');
    if (clean === '') return;
    const cut = clean.length > STDERR_LINE_MAX ? `${clean.slice(0, STDERR_LINE_MAX)}… (${clean.length} bytes)` : clean;
    this.request.log('warn', `stderr: ${cut.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '?')}`);
  }

  private flushStderr(): void {
    if (this.stderrLine !== '') this.logStderr(this.stderrLine);
    this.stderrLine = '';
    if (this.stderrDropped > 0) this.request.log('warn', `stderr: ${this.stderrDropped} further bytes not logged`);
    this.stderrDropped = 0;
  }

  /** END_REQUEST (UP-9, UP-12). */
  end(appStatus: number, protocolStatus: number): void {
    this.answered = true;
    this.flushStderr();
    this.disarm();
    if (this.abandoned) {
      this.settle();
      return;
    }
    const how = `END_REQUEST appStatus ${appStatus}, ${protocolStatusName(protocolStatus)}`;
    if (this.phase === 'head') {
      const status = protocolStatus === ProtocolStatus.Overloaded ? 503 : 502;
      let why = `${how} before a complete response head`;
      if (protocolStatus === ProtocolStatus.RequestComplete) {
        try {
          this.parser.end();
        } catch (err) {
          why = `${how}: ${asUpstreamError(err, 'response head').message}`;
        }
      }
      this.fail(new UpstreamError(why, status));
      return;
    }
    if (protocolStatus !== ProtocolStatus.RequestComplete || appStatus !== 0) this.request.log('warn', how);
    this.notePastLength();
    if (this.remaining > 0) {
      this.fail(new UpstreamError(`${how} ${this.remaining} bytes short of the Content-Length`, 502));
      return;
    }
    this.ended = true;
    this.settle();
    this.wake();
  }

  /** The connection failed under this exchange. */
  fail(err: UpstreamError): void {
    this.disarm();
    this.flushStderr();
    if (this.phase === 'head') {
      this.phase = 'done';
      this.rejectHead(err);
      this.settle();
      return;
    }
    this.notePastLength();
    if (this.ended || this.failure !== undefined) return;
    this.failure = err;
    this.settle();
    this.wake();
  }

  /** One warn line for the bytes past the Content-Length, however many records brought them. */
  private notePastLength(): void {
    if (this.pastLength > 0) this.request.log('warn', `${this.pastLength} bytes past the Content-Length dropped`);
    this.pastLength = -1;
  }

  /** Fails this exchange and gives up its connection (a bad answer, a failed request body). */
  private failAndClose(err: UpstreamError): void {
    this.fail(err);
    this.conn.abandon(this);
  }

  /**
   * The exchange is over: listeners off, the rest of the client's body drained; but a request
   * that may be sent once more (UP-30) leaves the body unread, paused, for its next exchange.
   */
  private settle(): void {
    if (this.phase !== 'body') this.phase = 'done';
    this.request.signal?.remove(this.onAbort);
    if (this.retryable) {
      this.stopUpload();
      this.request.input.pause();
      return;
    }
    drain(this.request.input);
  }

  /**
   * The client went away or the exchange stopped reading: drop the answer (UP-31). The close()
   * of a body the client got whole gives nothing up: only END_REQUEST may still be due.
   */
  close(): void {
    if (this.abandoned) return;
    this.abandoned = true;
    const complete = this.phase === 'body' && this.ended && this.failure === undefined;
    const wasHead = this.phase === 'head';
    this.queue.length = 0;
    this.queued = 0;
    this.ended = true;
    if (wasHead) {
      this.phase = 'done';
      this.rejectHead(new UpstreamError('the client went away', 502));
    }
    if (complete) return;
    this.disarm();
    this.settle();
    this.conn.abandon(this);
    this.wake();
  }

  // Read timeout: one timer per exchange, re-armed lazily from the time of the last activity.
  private arm(): void {
    const ms = this.conn.pool.cfg.readTimeout;
    this.timer = setTimeout(() => this.onTimer(), ms);
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private onTimer(): void {
    const ms = this.conn.pool.cfg.readTimeout;
    const idle = Date.now() - this.lastActivity;
    // After the head, a slow client (queue full, socket paused) is not the upstream's silence.
    const clientSlow = this.phase === 'body' && this.waiter === undefined && !this.ended;
    if (idle < ms || clientSlow) {
      this.timer = setTimeout(() => this.onTimer(), clientSlow ? ms : ms - idle);
      return;
    }
    this.timer = undefined;
    const why = this.phase === 'head' ? `no response head within ${ms} ms of silence` : `the upstream sent no body bytes for ${ms} ms`;
    this.failAndClose(new UpstreamError(why, 504));
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** Resolves once body bytes are queued or the body ended: undefined, or the failure that came first. */
  settled(): boolean {
    return this.queue.length > 0 || this.ended || this.failure !== undefined;
  }

  async firstBody(): Promise<UpstreamError | undefined> {
    while (this.queue.length === 0 && !this.ended && this.failure === undefined) {
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
    if (this.queue.length > 0 || this.failure === undefined) return undefined;
    return this.failure;
  }

  /** The response body: the queued pieces when it is already complete, else a stream. */
  body(): Body {
    if (this.ended && this.failure === undefined && this.phase !== 'head') {
      const all = this.queue.splice(0);
      this.queued = 0;
      return all.length <= 1 ? all : [Buffer.concat(all)];
    }
    const iterator: AsyncIterableIterator<Buffer> & { close(): void } = {
      [Symbol.asyncIterator]: () => iterator,
      next: () => this.next(),
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true as const });
      },
      close: () => this.close(),
    };
    return iterator;
  }

  private async next(): Promise<IteratorResult<Buffer>> {
    for (;;) {
      // Everything queued goes as one piece: php-fpm writes 8 KiB records, and a write per
      // record to the client costs more than copying them together.
      const chunk = this.queue.length > 1 ? Buffer.concat(this.queue.splice(0), this.queued) : this.queue.shift();
      if (chunk !== undefined) {
        this.queued -= chunk.length;
        if (this.queued <= FASTCGI_DEFAULTS.highWaterMark / 2) this.conn.resumeFor(this);
        return { value: chunk, done: false };
      }
      if (this.failure !== undefined) throw this.failure;
      if (this.ended) return { value: undefined, done: true };
      this.lastActivity = Date.now();
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }
}
