/**
 * SCGI and uwsgi upstream clients as Apps: gatewire as the web server in front of an
 * application server (uWSGI `--scgi-socket` / `--uwsgi-socket`, or another gatewire's
 * `--scgi` / `--uwsgi` front), one connection per request (neither protocol has keep-alive).
 *
 *   const app = scgiUpstream({ kind: 'tcp', host: '127.0.0.1', port: 9000 });
 *   new Gateway({ app, interface: 'environ' }, resolveOptions({ http: ['8080'] }, {}), logger);
 *
 * One request:
 *
 *   body    CONTENT_LENGTH is always sent (UP-4): a body of known length is streamed from
 *           gatewire.input with backpressure (pipe), exactly CONTENT_LENGTH bytes (UP-5), while
 *           the answer is read (UP-6); a body of unknown length (gatewire.input_terminated: HTTP
 *           chunked, FastCGI without CONTENT_LENGTH) is BUFFERED IN MEMORY first, up to
 *           `maxBufferedBody` (16 MiB by default; beyond it 413), because neither protocol can
 *           carry a body without its length
 *   head    SCGI: CONTENT_LENGTH first, then `SCGI: 1` (UP-13); uwsgi: LE16 sizes, modifier1 0,
 *           SERVER_PROTOCOL as the front built it (UP-14). Only CGI-shaped keys of the environ go
 *           out: no `gatewire.*`, no HTTP_PROXY, no hop-by-hop HTTP_* fields
 *   answer  SCGI: a CGI head (`Status:`, none → 200, a Location without Status → 302, UP-16) or
 *           a status line (scgi-nph-socket); uwsgi: an HTTP status line. Parsed by
 *           protocols/cgi/response.ts with a bounded head (UP-10), status 200..599 (UP-15),
 *           names and values checked (UP-18); `Status`, hop-by-hop fields and the framing
 *           removed, a valid Content-Length kept for the core to enforce (UP-17); a
 *           Transfer-Encoding is a 502 (its framing would reach the client as body bytes)
 *   body    streamed as the exchange takes it: the socket is paused between next() calls;
 *           bytes past Content-Length are dropped and the connection closed; a close or
 *           reset before the declared end makes next() throw, so the exchange aborts the
 *           response (R-11, UP-12); return()/close() destroy the socket (client gone, R-5, UP-31)
 *
 * Failures answer through src/reply.ts with one log line: refused, reset, garbage, an oversized
 * or malformed head → 502; connect timeout, silence before the head → 504 (UP-27).
 */
import { Buffer } from 'node:buffer';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { Body, Environ, HeaderList, StartResponse } from '../app.js';
import type { Logger } from '../logger.js';
import type { AbortWatch } from '../request.js';
import { noteAnswerBytes, noteBodyBytes } from '../memory.js';
import type { UpstreamAddress, UpstreamProtocol, UpstreamTarget } from './address.js';
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
import { CgiResponseParser, NphResponseParser, type CgiHeadLimits } from '../../protocols/cgi/response.js';
import { isHopByHop } from '../../protocols/cgi/head.js';
import { LimitError, ProtocolError } from '../../protocols/errors.js';
import { encodeScgiRequest } from '../../protocols/scgi/encoder.js';
import { encodeUwsgiRequest } from '../../protocols/uwsgi/encoder.js';

export type { UpstreamAddress, UpstreamTarget } from './address.js';

/** Options of {@link scgiUpstream} and {@link uwsgiUpstream}. */
export type SingleRequestOptions = UpstreamOptions & GroupOptions;

/** An App that forwards every request to an SCGI application server. */
export function scgiUpstream(address: UpstreamAddress, options: SingleRequestOptions = {}): UpstreamApp {
  return singleRequestUpstream([{ protocol: 'scgi', address }], options);
}

/** An App that forwards every request to a uwsgi application server. */
export function uwsgiUpstream(address: UpstreamAddress, options: SingleRequestOptions = {}): UpstreamApp {
  return singleRequestUpstream([{ protocol: 'uwsgi', address }], options);
}

interface Config {
  protocol: 'scgi' | 'uwsgi';
  group: UpstreamGroup;
  connectTimeout: number;
  readTimeout: number;
  maxBufferedBody: number;
  headLimits: CgiHeadLimits;
  params: ReadonlyArray<readonly [string, string]> | undefined;
  logger: Logger | undefined;
}

/** The App for SCGI or uwsgi targets (one protocol; several targets are a round-robin group). */
export function singleRequestUpstream(targets: readonly UpstreamTarget[], options: SingleRequestOptions = {}): UpstreamApp {
  const protocol = targets[0]?.protocol;
  if (protocol !== 'scgi' && protocol !== 'uwsgi') throw new TypeError(`singleRequestUpstream takes scgi or uwsgi targets, got ${String(protocol)}`);
  for (const t of targets) if (t.protocol !== protocol) throw new TypeError(`an upstream group speaks one protocol: ${protocol} and ${t.protocol} given`);
  const cfg: Config = {
    protocol,
    group: new UpstreamGroup(targets, options),
    connectTimeout: positive('connectTimeout', options.connectTimeout, UPSTREAM_DEFAULTS.connectTimeout),
    readTimeout: positive('readTimeout', options.readTimeout, UPSTREAM_DEFAULTS.readTimeout),
    maxBufferedBody: positive('maxBufferedBody', options.maxBufferedBody, UPSTREAM_DEFAULTS.maxBufferedBody),
    headLimits: { ...UPSTREAM_DEFAULTS.headLimits, ...(options.headLimits ?? {}) },
    params: options.params,
    logger: options.logger,
  };
  const app = ((environ: Environ, startResponse: StartResponse) => forward(cfg, environ, startResponse)) as UpstreamApp;
  app.close = () => Promise.resolve(); // nothing is pooled: every connection belongs to a request
  app.stats = () =>
    cfg.group.peers.map((p) => ({ upstream: p.label, connections: p.open, idle: 0, failures: p.failures, down: p.downUntil > Date.now() }));
  return app;
}

// ---------------------------------------------------------------------------------------------
// The request
// ---------------------------------------------------------------------------------------------

function encodeHead(protocol: UpstreamProtocol, vars: Array<[string, string]>, bodyLength: number): Buffer {
  if (protocol === 'scgi') return encodeScgiRequest(vars, bodyLength);
  return encodeUwsgiRequest([['CONTENT_LENGTH', String(bodyLength)], ...vars]);
}

async function forward(cfg: Config, environ: Environ, sr: StartResponse): Promise<Body> {
  const req = new UpstreamRequest(environ, sr, cfg.logger, (cfg.group.peers[0] as Peer).label);
  const { signal } = req;
  const input = environ['gatewire.input'];
  const log = (level: 'error' | 'warn', message: string): void => req.log(level, message);
  const refuse = (status: number, why: string, level?: 'error' | 'warn'): Body => req.refuse(status, why, level);

  // UP-4: the length first. A body of unknown length is buffered to learn it.
  let outbound: Outbound;
  try {
    outbound = await outboundBody(environ, cfg.maxBufferedBody);
  } catch (err) {
    const e = err as UpstreamError;
    return refuse(e.status, e.message, 'warn');
  }

  let head: Buffer;
  try {
    head = encodeHead(cfg.protocol, upstreamVars(environ, cfg.params), outboundLength(outbound));
  } catch (err) {
    // The request cannot be put on this wire (a NUL in an SCGI value, a uwsgi block over 64 KiB).
    if (err instanceof LimitError) return refuse(431, `request head does not fit ${cfg.protocol}: ${err.message}`, 'warn');
    if (err instanceof ProtocolError) return refuse(400, `request cannot be sent over ${cfg.protocol}: ${err.message}`, 'warn');
    throw err;
  }

  // A connection that cannot be made is tried on the next upstream of the group (nothing was sent).
  const tried = new Set<Peer>();
  let socket: Socket | undefined;
  let peer: Peer | undefined;
  while (socket === undefined) {
    if (signal?.aborted === true) return refuse(502, 'client gone before connecting');
    peer = cfg.group.pick(tried);
    if (peer === undefined) return refuse(502, 'no upstream could be reached');
    req.label = peer.label;
    try {
      socket = await connectTo(peer.target.address, cfg.connectTimeout, signal, true);
    } catch (err) {
      const e = err as UpstreamError;
      tried.add(peer);
      if (cfg.group.failed(peer)) log('error', `marked down for its failures (${e.message})`);
      if (cfg.group.pick(tried) === undefined) return refuse(e.status, e.message);
      log('warn', `${e.message}; trying the next upstream`);
    }
  }

  const counted = peer as Peer;
  counted.open++;
  socket.once('close', () => counted.open--);
  const conn = new UpstreamConnection(socket, cfg, environ.REQUEST_METHOD === 'HEAD', signal, input, log);
  conn.send(head, outbound);
  let answer: Answer;
  try {
    answer = await conn.head;
  } catch (err) {
    conn.destroy();
    const e = err instanceof UpstreamError ? err : new UpstreamError(String((err as Error)?.message ?? err), 502);
    if (e.status >= 502) cfg.group.failed(peer as Peer);
    return refuse(e.status, e.message, e.status < 500 ? 'warn' : 'error');
  }
  return req.answer(answer, conn, () => cfg.group.succeeded(peer as Peer));
}

// ---------------------------------------------------------------------------------------------
// The answer
// ---------------------------------------------------------------------------------------------


const HTTP_PREFIX = Buffer.from('HTTP/', 'latin1');

/**
 * The head of an upstream answer: a CGI head (SCGI), or an HTTP status line and fields (uwsgi;
 * SCGI from uWSGI's scgi-nph-socket), chosen by the first bytes for SCGI.
 */
class AnswerParser {
  private parser: CgiResponseParser | NphResponseParser | undefined;
  private prefix: Buffer = Buffer.alloc(0);

  constructor(
    protocol: UpstreamProtocol,
    private readonly limits: CgiHeadLimits,
  ) {
    if (protocol === 'uwsgi') this.parser = new NphResponseParser(limits);
  }

  /** Feeds bytes; the answer once the head is complete. Throws ProtocolError/UpstreamError. */
  push(chunk: Buffer): Answer | undefined {
    if (this.parser === undefined) {
      const seen = this.prefix.length === 0 ? chunk : Buffer.concat([this.prefix, chunk]);
      const n = Math.min(seen.length, HTTP_PREFIX.length);
      const nph = seen.subarray(0, n).equals(HTTP_PREFIX.subarray(0, n));
      if (nph && n < HTTP_PREFIX.length) {
        this.prefix = seen;
        return undefined;
      }
      this.parser = nph ? new NphResponseParser(this.limits) : new CgiResponseParser(this.limits);
      chunk = seen;
      this.prefix = Buffer.alloc(0);
    }
    const parser = this.parser;
    if (parser instanceof CgiResponseParser) {
      const head = parser.push(chunk);
      return head === undefined ? undefined : cgiAnswer(head);
    }
    const head = parser.push(chunk);
    if (head === undefined) return undefined;
    if (head.status < 200) throw new UpstreamError(`status ${head.status}: interim and upgrade responses are not forwarded`, 502);
    const headers: HeaderList = [];
    let length = -1;
    for (const [name, value] of head.headers) {
      const lower = name.toLowerCase();
      if (lower === 'transfer-encoding') throw new UpstreamError(`the answer has Transfer-Encoding ${JSON.stringify(value)}: its framing would reach the client as body`, 502);
      if (lower === 'content-length') {
        if (!/^[0-9]{1,15}$/.test(value)) continue; // not a length: dropped, the body ends with the connection
        if (length !== -1 && length !== Number(value)) throw new UpstreamError('two different Content-Length fields in the answer', 502);
        if (length === -1) headers.push([name, value]);
        length = Number(value);
        continue;
      }
      if (lower === 'status' || isHopByHop(lower)) continue;
      headers.push([name, value]);
    }
    return { status: head.status, reason: head.reason, headers, contentLength: length, rest: head.rest };
  }

  /** EOF before the head ended. Throws. */
  end(): void {
    if (this.parser === undefined) throw new UpstreamError(this.prefix.length === 0 ? 'the upstream closed the connection without answering' : 'the upstream closed the connection inside the response head', 502);
    this.parser.end();
  }
}

type Phase = 'head' | 'body' | 'done';

const END_PROBE = Buffer.from([0]);

/**
 * One upstream connection: writes the request, parses the head, then hands out the body with
 * backpressure. Every path ends in destroy(): nothing outlives the exchange.
 */
class UpstreamConnection {
  readonly head: Promise<Answer>;
  private phase: Phase = 'head';
  private resolveHead!: (a: Answer) => void;
  private rejectHead!: (e: Error) => void;
  private readonly parser: AnswerParser;
  private readonly queue: Buffer[] = [];
  /** Body bytes still expected (declared Content-Length), -1 when the body ends with the connection. */
  private remaining = -1;
  private ended = false;
  private failure: Error | undefined;
  private waiter: (() => void) | undefined;
  private destroyed = false;
  private readonly onAbort = (): void => this.fail(new UpstreamError('the client went away', 502));

  constructor(
    private readonly socket: Socket,
    private readonly cfg: Config,
    private readonly isHead: boolean,
    private readonly signal: AbortWatch | undefined,
    private readonly input: Readable,
    private readonly log: (level: 'error' | 'warn', message: string) => void,
  ) {
    this.head = new Promise<Answer>((resolve, reject) => {
      this.resolveHead = resolve;
      this.rejectHead = reject;
    });
    // A rejection nobody awaits any more (the head came, then the body failed) must not surface.
    this.head.catch(() => undefined);
    this.parser = new AnswerParser(cfg.protocol, cfg.headLimits);
    socket.setTimeout(cfg.readTimeout);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err: NodeJS.ErrnoException) => this.fail(new UpstreamError(`connection error: ${err.code ?? err.message}`, 502)));
    // Every exchange ends with this close: the error (its stack trace costs microseconds) is
    // made only when the close still means something.
    socket.on('close', () => {
      if (!this.over) this.fail(new UpstreamError('the upstream closed the connection', 502));
    });
    socket.on('timeout', () => this.onTimeout());
    signal?.add(this.onAbort);
  }

  /** Writes the request head and body; the body while the answer is read (UP-6). No half-close (UP-13). */
  send(head: Buffer, body: Outbound): void {
    const socket = this.socket;
    socket.write(head);
    if (body.kind === 'buffer') {
      if (body.data.length > 0) socket.write(body.data);
      return;
    }
    if (body.length === 0) return;
    const input = body.input;
    // The client's body failed (truncated, over a limit): a 400, not the upstream's fault.
    input.on('error', (err: Error) => this.fail(new UpstreamError(`request body: ${err.message}`, 400)));
    // pipe() pauses the input while the socket's buffer is full: never buffered whole. An upstream
    // that answers without reading the body and closes (uWSGI without --post-buffering, when the
    // app ignores the body) makes its kernel send a reset, which can discard its answer before it
    // is read here: that is a 502, as nginx reports it ("Connection reset by peer").
    input.pipe(socket, { end: false });
    input.on('data', (chunk: Buffer) => noteBodyBytes(chunk.length)); // src/memory.ts
  }

  private onData(chunk: Buffer): void {
    if (this.phase === 'head') {
      let answer: Answer | undefined;
      try {
        answer = this.parser.push(chunk);
      } catch (err) {
        this.fail(asUpstreamError(err, 'malformed response head'));
        return;
      }
      if (answer === undefined) return;
      this.phase = 'body';
      // Nothing follows the head for HEAD, 204 and 304: no body is read.
      const noBody = this.isHead || answer.status === 204 || answer.status === 304;
      this.remaining = noBody ? 0 : answer.contentLength;
      this.resolveHead(answer);
      if (noBody) this.ended = true;
      else this.take(answer.rest);
      if (this.remaining === 0) this.ended = true;
      return;
    }
    if (this.phase === 'body') this.take(chunk);
  }

  /** Body bytes from the upstream: queued (socket paused until the exchange asks), cut at Content-Length. */
  private take(chunk: Buffer): void {
    if (this.ended || this.failure !== undefined || chunk.length === 0) return;
    if (this.remaining >= 0) {
      if (chunk.length >= this.remaining) {
        // Bytes past the declared length are never forwarded; the connection has nothing more to give.
        if (chunk.length > this.remaining) this.warn(`${chunk.length - this.remaining} bytes past the Content-Length dropped`);
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
    }
    if (this.ended) this.destroySocket();
    else this.socket.pause();
    this.wake();
  }

  private onEnd(): void {
    if (this.phase === 'head') {
      try {
        this.parser.end();
        this.fail(new UpstreamError('the upstream closed the connection inside the response head', 502));
      } catch (err) {
        this.fail(asUpstreamError(err, 'incomplete response head'));
      }
      return;
    }
    if (this.ended) return;
    if (this.remaining > 0) {
      this.fail(new UpstreamError(`the upstream closed the connection ${this.remaining} bytes short of its Content-Length`, 502));
      return;
    }
    // No declared length: the close is the end of the body, unless it was a reset that
    // libuv reported as a plain EOF (its POLLHUP shortcut after a short read). The kernel still
    // knows: a write to a reset connection fails, a write after a FIN does not.
    const socket = this.socket;
    if (socket.destroyed) return;
    socket.write(END_PROBE, (err) => {
      if (err) {
        this.fail(new UpstreamError(`connection reset at the end of the body: ${(err as NodeJS.ErrnoException).code ?? err.message}`, 502));
        return;
      }
      if (this.ended || this.failure !== undefined) return;
      this.ended = true;
      this.destroySocket();
      this.wake();
    });
  }

  private onTimeout(): void {
    if (this.phase === 'head') {
      this.fail(new UpstreamError(`no response head within ${this.cfg.readTimeout} ms of silence`, 504));
      return;
    }
    if (this.waiter !== undefined) {
      this.fail(new UpstreamError(`the upstream sent no body bytes for ${this.cfg.readTimeout} ms`, 504));
      return;
    }
    // The client is slow, not the upstream (the socket is paused): re-arm.
    if (!this.destroyed) this.socket.setTimeout(this.cfg.readTimeout);
  }

  /** Nothing can change the outcome any more: a failure now would be ignored. */
  private get over(): boolean {
    return this.phase === 'done' || (this.phase !== 'head' && (this.ended || this.failure !== undefined));
  }

  /** The first failure wins; later ones (the close after a reset) change nothing. */
  private fail(err: Error): void {
    if (this.over) return;
    if (this.phase === 'head') {
      this.phase = 'done';
      this.rejectHead(err);
      this.destroy();
      return;
    }
    this.failure = err;
    this.destroySocket();
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private warn(message: string): void {
    this.log('warn', message);
  }

  /** Closes the upstream connection; the body queue stays readable. */
  private destroySocket(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.signal?.remove(this.onAbort);
    this.input.unpipe(this.socket);
    drain(this.input);
    this.socket.destroy();
  }

  /** {@link destroy}, as {@link UpstreamRequest.answer} calls it. */
  close(): void {
    this.destroy();
  }

  /** Ends everything: the connection and the body. */
  destroy(): void {
    this.phase = 'done';
    this.ended = true;
    this.queue.length = 0;
    this.destroySocket();
    this.wake();
  }

  /** Resolves once body bytes are queued or the body ended: undefined, or the failure that came first. */
  settled(): boolean {
    return this.queue.length > 0 || this.ended || this.failure !== undefined;
  }

  async firstBody(): Promise<UpstreamError | undefined> {
    while (this.queue.length === 0 && !this.ended && this.failure === undefined) {
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        this.socket.resume();
      });
    }
    if (this.queue.length > 0 || this.failure === undefined) return undefined;
    return this.failure instanceof UpstreamError ? this.failure : new UpstreamError(this.failure.message, 502);
  }

  /** The response body: one piece when it is already complete (exact Content-Length), else a stream. */
  body(): Body {
    if (this.ended && this.failure === undefined) {
      const all = this.queue.splice(0);
      this.destroy();
      return all.length <= 1 ? all : [Buffer.concat(all)];
    }
    const iterator: AsyncIterableIterator<Buffer> & { close(): void } = {
      [Symbol.asyncIterator]: () => iterator,
      next: () => this.next(),
      return: () => {
        this.destroy();
        return Promise.resolve({ value: undefined, done: true as const });
      },
      close: () => this.destroy(),
    };
    return iterator;
  }

  private async next(): Promise<IteratorResult<Buffer>> {
    for (;;) {
      const chunk = this.queue.shift();
      if (chunk !== undefined) return { value: chunk, done: false };
      if (this.failure !== undefined) {
        const err = this.failure;
        this.destroy();
        throw err;
      }
      if (this.ended) {
        this.destroy();
        return { value: undefined, done: true };
      }
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        this.socket.resume();
      });
    }
  }
}
