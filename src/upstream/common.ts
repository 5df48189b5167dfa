/**
 * What the three upstream clients share (src/upstream/single-request.ts for SCGI and uwsgi,
 * src/upstream/fastcgi.ts for FastCGI): the options and their defaults, the error type that
 * carries the client's status, the variables that are sent, the request body's form, the
 * conversion of a parsed CGI head into what start_response takes, and the connect step.
 */
import { Buffer } from 'node:buffer';
import { createConnection, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { App, Body, Environ, HeaderList, StartResponse } from '../app.js';
import { GatewireError, ServerErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';
import { abortWatch, type AbortWatch } from '../request.js';
import { replyFromApp, replyReason } from '../reply.js';
import { CGI_HEAD_LIMITS, type CgiHeadLimits, type CgiResponseHead } from '../../protocols/cgi/response.js';
import { ProtocolError } from '../../protocols/errors.js';
import type { UpstreamAddress } from './address.js';
import type { UpstreamPeerStats } from '../probes.js';

/** Options of every upstream client. Durations in ms, sizes in bytes. */
export interface UpstreamOptions {
  /** Time to establish the connection; then 504. @default 5000 */
  connectTimeout?: number;
  /**
   * Longest silence on the connection before the response head is complete (the body upload
   * counts as activity); then 504. After the head, the longest wait for the next body bytes
   * while the client is reading; then the response is cut off. @default 60000
   */
  readTimeout?: number;
  /** A request body of unknown length is buffered up to this size to learn its length; beyond it 413. @default 16 MiB */
  maxBufferedBody?: number;
  /** Limits on the response head. @default 8 KiB line, 64 KiB head, 100 fields */
  headLimits?: CgiHeadLimits;
  /**
   * Variables set on every request, after the front's (`--upstream-param NAME=VALUE`): they
   * replace a variable of the same name. The only way PHP_VALUE or SCRIPT_FILENAME reach an
   * upstream without `--php` (UP-25).
   */
  params?: ReadonlyArray<readonly [string, string]>;
  /** Where failures are logged (with the request id); @default the request's `gatewire.errors` */
  logger?: Logger;
}

export const UPSTREAM_DEFAULTS = {
  connectTimeout: 5_000,
  readTimeout: 60_000,
  maxBufferedBody: 16 * 1024 * 1024,
  headLimits: CGI_HEAD_LIMITS,
} as const;

/** An upstream App: it holds connections (the FastCGI pool), which close() ends. */
export type UpstreamApp = App & {
  /** Closes idle pooled connections and refuses new requests; in-flight ones finish. */
  close(): Promise<void>;
  /** Each upstream's figures now (the --stats metrics read them). */
  stats(): UpstreamPeerStats[];
};

export type { UpstreamPeerStats } from '../probes.js';

/**
 * The upstream failed (502, 503, 504), or the request cannot reach it (400 for a failed client
 * body, 413 for an unknown-length body over the buffer): `status` is what the client gets while
 * the headers are not out.
 */
export class UpstreamError extends GatewireError {
  override name = 'UpstreamError';
  override readonly code = ServerErrorCode.Upstream;
  constructor(
    message: string,
    readonly status: number,
    /** No connection could be made: nothing was sent, so another upstream may be tried. */
    readonly connectFailed = false,
  ) {
    super(message);
  }
}

export function positive(name: string, value: number | undefined, def: number): number {
  const v = value ?? def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new TypeError(`Expected the \`${name}\` option to be a positive integer, got ${String(value)}`);
  return v;
}

/** Never forwarded: httpoxy (UP-24), this hop's framing, and what the encoders write themselves. */
const NOT_FORWARDED = new Set([
  'HTTP_PROXY',
  'HTTP_CONNECTION',
  'HTTP_KEEP_ALIVE',
  'HTTP_PROXY_CONNECTION',
  'HTTP_TE',
  'HTTP_TRAILER',
  'HTTP_TRANSFER_ENCODING',
  'HTTP_UPGRADE',
  'CONTENT_LENGTH',
  'SCGI',
]);
/** A CGI meta-variable name: server-owned keys have a dot (`gatewire.*`), so they never match. */
const CGI_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The environ's CGI variables as the front built them, in its order, minus the ones never
 * forwarded, then `params` (which replace a variable of the same name).
 */
export function upstreamVars(environ: Environ, params?: ReadonlyArray<readonly [string, string]>): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const replaced = params === undefined || params.length === 0 ? undefined : new Set(params.map(([name]) => name));
  for (const key of Object.keys(environ)) {
    if (!CGI_NAME.test(key) || NOT_FORWARDED.has(key) || replaced?.has(key) === true) continue;
    const value = environ[key];
    if (typeof value === 'string') out.push([key, value]);
  }
  if (params !== undefined) for (const [name, value] of params) out.push([name, value]);
  return out;
}

/** The request body as it goes out: streamed with its known length, or held whole. */
export type Outbound = { kind: 'stream'; length: number; input: Readable } | { kind: 'buffer'; data: Buffer };

/** Reads a body of unknown length to its end, at most `max` bytes (UP-4: buffered on purpose). */
async function bufferBody(input: Readable, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
    length += buf.length;
    if (length > max) throw new UpstreamError(`request body of unknown length over ${max} bytes`, 413);
    chunks.push(buf);
  }
  return Buffer.concat(chunks, length);
}

const EMPTY: Outbound = { kind: 'buffer', data: Buffer.alloc(0) };

/**
 * UP-4: the body's length comes first. A declared CONTENT_LENGTH is streamed; a body of unknown
 * length (HTTP chunked, FastCGI without CONTENT_LENGTH) is buffered to learn it. Throws
 * UpstreamError 400 (bad length, failed body) or 413 (over the buffer).
 */
export async function outboundBody(environ: Environ, maxBuffered: number): Promise<Outbound> {
  const input = environ['gatewire.input'];
  const declared = environ.CONTENT_LENGTH;
  if (typeof declared === 'string' && declared !== '') {
    if (!/^[0-9]{1,15}$/.test(declared)) throw new UpstreamError(`invalid CONTENT_LENGTH ${JSON.stringify(declared)}`, 400);
    const length = Number(declared);
    return length === 0 ? EMPTY : { kind: 'stream', length, input };
  }
  if (!environ['gatewire.input_terminated']) return EMPTY;
  try {
    return { kind: 'buffer', data: await bufferBody(input, maxBuffered) };
  } catch (err) {
    const tooLarge = err instanceof UpstreamError || (err as { code?: unknown }).code === ServerErrorCode.BodyTooLarge;
    throw new UpstreamError(`request body: ${(err as Error).message}`, tooLarge ? 413 : 400);
  }
}

export function outboundLength(body: Outbound): number {
  return body.kind === 'stream' ? body.length : body.data.length;
}

/** Reads and drops what is left of the request body (the client's framing stays intact). */
export function drain(input: Readable | undefined): void {
  if (input === undefined || input.readableEnded || input.destroyed) return;
  input.on('error', () => undefined);
  input.resume();
}

/** A response head ready for start_response. */
export interface Answer {
  status: number;
  reason: string;
  headers: HeaderList;
  /** The declared body length, -1 when none was declared. */
  contentLength: number;
  /** Body bytes that came with the end of the head. */
  rest: Buffer;
}

/**
 * A CGI-style answer (SCGI, FastCGI) as start_response takes it: the parser already took out
 * `Status` and the hop-by-hop fields (UP-17) and chose 200, or 302 for a Location without
 * Status (UP-16); a valid Content-Length goes back in for the core to enforce.
 */
export function cgiAnswer(head: CgiResponseHead): Answer {
  const headers: HeaderList = head.headers.slice();
  if (head.contentLength !== undefined) headers.push(['Content-Length', String(head.contentLength)]);
  return { status: head.status, reason: head.reason, headers, contentLength: head.contentLength ?? -1, rest: head.rest };
}

/** Any failure as an UpstreamError: a parser's ProtocolError is a 502 with its detail. */
export function asUpstreamError(err: unknown, what: string): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (err instanceof ProtocolError) return new UpstreamError(`${what}: ${err.detail}`, 502);
  return new UpstreamError(`${what}: ${(err as Error)?.message ?? String(err)}`, 502);
}

/**
 * Opens a connection within `timeout` ms: 504 after it, 502 for a refusal with the errno in the
 * message (UP-33: ECONNREFUSED, ENOENT, EACCES, EAGAIN stay apart), 502 when `signal` aborts.
 */
export function connectTo(address: UpstreamAddress, timeout: number, signal: AbortWatch | undefined, allowHalfOpen = false): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = address.kind === 'unix' ? createConnection({ path: address.path, allowHalfOpen }) : createConnection({ host: address.host ?? '127.0.0.1', port: address.port, allowHalfOpen });
    const done = (err: UpstreamError | undefined): void => {
      clearTimeout(timer);
      signal?.remove(onAbort);
      socket.removeListener('error', onError);
      socket.removeListener('connect', onConnect);
      if (err === undefined) {
        resolve(socket);
        return;
      }
      socket.on('error', () => undefined);
      socket.destroy();
      reject(err);
    };
    const onConnect = (): void => done(undefined);
    const onError = (err: NodeJS.ErrnoException): void => done(new UpstreamError(`cannot connect: ${err.code ?? err.message}`, 502, true));
    const onAbort = (): void => done(new UpstreamError('client gone while connecting', 502));
    const timer = setTimeout(() => done(new UpstreamError(`no connection within ${timeout} ms`, 504, true)), timeout);
    socket.once('connect', onConnect);
    socket.once('error', onError);
    signal?.add(onAbort);
  });
}

/** What the clients' connection objects offer once the head is parsed (see {@link UpstreamRequest.answer}). */
export interface AnsweredBody {
  /** True when body bytes, the end or a failure are already there (firstBody settles at once). */
  settled(): boolean;
  firstBody(): Promise<UpstreamError | undefined>;
  /** Gives up the rest of the answer and what it holds. */
  close(): void;
  body(): Body;
}

/**
 * One forwarded request's log lines and refusals: every line names the upstream and carries the
 * request id; a refusal drains the client's body and answers through src/reply.ts, and says
 * nothing when the client is already gone.
 */
/** How long a response head that came without body bytes waits for them before it goes out alone. */
export const LONE_HEAD_MS = 100;

export class UpstreamRequest {
  readonly id: string;
  /** The client going away; not gatewire.signal, which would create an AbortController. */
  readonly signal: AbortWatch | undefined;
  constructor(
    readonly environ: Environ,
    private readonly sr: StartResponse,
    private readonly logger: Logger | undefined,
    /** The upstream named in the lines: the one being tried. */
    public label: string,
  ) {
    this.id = environ['gatewire.request_id'];
    this.signal = abortWatch(environ);
  }

  log(level: 'error' | 'warn', message: string): void {
    const line = `upstream ${this.label}: ${message}`;
    if (this.logger !== undefined) this.logger[level](line, { request_id: this.id });
    else this.environ['gatewire.errors'].write(line);
  }

  refuse(status: number, why: string, level: 'error' | 'warn' = 'error'): Body {
    if (this.signal?.aborted !== true) this.log(level, `${status} ${why}`);
    drain(this.environ['gatewire.input']);
    return replyFromApp(this.sr, status, this.id);
  }

  /**
   * Passes a parsed head on. The first body byte is waited for, so an upstream that fails right
   * after its head still gets a 502/504 rather than a cut response. A head that came alone (an
   * upstream that flushed it: SSE, a long poll) is passed on alone after LONE_HEAD_MS, as an
   * explicit flush, and a failure after that cuts the response. `ok` runs once the answer
   * is known good.
   */
  async answer(answer: Answer, from: AnsweredBody, ok: () => void): Promise<Body> {
    let lone = false;
    let early: UpstreamError | undefined;
    if (from.settled()) early = await from.firstBody();
    else {
      let timer: NodeJS.Timeout | undefined;
      const first = from.firstBody();
      const outcome = await Promise.race([first, new Promise<'lone'>((resolve) => (timer = setTimeout(resolve, LONE_HEAD_MS, 'lone')))]);
      clearTimeout(timer);
      if (outcome === 'lone') lone = true;
      else early = outcome;
    }
    if (early !== undefined) {
      from.close();
      return this.refuse(early.status, `after the response head: ${early.message}`);
    }
    ok();
    try {
      const write = this.sr(`${answer.status} ${answer.reason === '' ? replyReason(answer.status) : answer.reason}`, answer.headers);
      if (lone) write('');
    } catch (err) {
      from.close();
      return this.refuse(502, `unusable response head: ${(err as Error).message}`);
    }
    return from.body();
  }
}
