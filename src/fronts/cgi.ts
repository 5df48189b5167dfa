/**
 * The CGI front: gatewire started by a web server as a CGI program, one request per process
 * (K-1..K-19 in docs/conformance.md).
 *
 *   runCgiChild(service, { env, stdin, stdout })   one exchange, no process globals: tests call it
 *                                                   in-process with a Buffer env and streams
 *
 * The process glue behind `gatewire cgi APP` (mode detection, signals, exit codes, FastCGI on a
 * listening fd 0) lives beside the CLI, in src/cli-cgi.ts.
 *
 * Input: the environment byte-exactly (K-1, /proc/self/environ on Linux), the body as exactly
 * CONTENT_LENGTH bytes of fd 0, read only when the app reads it and never past the length;
 * without CONTENT_LENGTH stdin is not touched at all (K-3). Output: a CGI head with `Status:`
 * first (K-8), or a complete HTTP response when the script's name starts with `nph-` (K-11),
 * flushed before exit (K-12). stdout closed by the server (EPIPE) ends the run quietly (K-13).
 *
 * Before exiting, what the app left unread of CONTENT_LENGTH is read and dropped (mod_cgid
 * shares one socket for stdin and stdout and loses the response when we close it unread), and
 * while stdout is blocked the body is taken into memory (up to 16 MiB) so a host that writes
 * the whole body before reading the output (Apache mod_cgi) cannot deadlock with us.
 *
 * Exit codes: 0 response sent (or the server closed stdout: the client went away);
 * 1 the app failed (500 sent before the head, truncated after it, R-11) or REQUEST_METHOD
 * missing (K-2); 2 the app cannot be loaded or an option is bad; 143 SIGTERM (K-16).
 *
 * Start-up is paid by every request (K-17): this module loads only the exchange core, and no
 * network front, server or winston.
 */
import { Buffer } from 'node:buffer';
import { read as fsRead, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { CgiVars, HeaderList, Service } from '../app.js';
import { Exchange, type ResponseSink } from '../call.js';
import { GatewireError, ServerErrorCode } from '../errors.js';
import { RequestError, gatewayScheme, hostName, isCgiKey, parseContentLength, quotePath } from '../environ.js';
import { BodyInput, TruncatedBodyError, type BodySource } from '../input.js';
import type { Logger } from '../log.js';
import { RequestContext, makeEnviron, newRequestId } from '../request.js';
import { serializeCgiHead, serializeHttpHead, type HttpVersion } from '../../protocols/cgi/head.js';
import { reply } from '../reply.js';

// ---------------------------------------------------------------------------------------
// The environment (K-1)
// ---------------------------------------------------------------------------------------

/**
 * Splits a raw environment block (`/proc/self/environ`: `NAME=value\0...`) into latin1 strings,
 * one char per byte (E-1). The name ends at the first `=`; an entry without `=` is skipped; of a
 * repeated name the first wins, as getenv(3) returns it.
 */
export function parseEnvironBlock(block: Buffer): Record<string, string> {
  const env: Record<string, string> = {};
  const text = block.toString('latin1');
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\0', start);
    if (end === -1) end = text.length;
    const eq = text.indexOf('=', start);
    if (eq > start && eq < end) {
      const name = text.slice(start, eq);
      if (!Object.prototype.hasOwnProperty.call(env, name)) env[name] = text.slice(eq + 1, end);
    }
    start = end + 1;
  }
  return env;
}

/**
 * The process environment as the web server passed it: `/proc/self/environ` on Linux (Node's
 * `process.env` UTF-8-decodes and turns invalid bytes into U+FFFD), `process.env` elsewhere.
 */
export function readProcessEnviron(): Record<string, string> {
  if (process.platform === 'linux') {
    try {
      return parseEnvironBlock(readFileSync('/proc/self/environ'));
    } catch {
      // no procfs (a chroot, a container without /proc): fall through
    }
  }
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  return env;
}

/** §6.1 step 1: the environment of a CGI request (REQUEST_METHOD, or GATEWAY_INTERFACE `CGI/d.d`). */
export function isCgiEnvironment(env: Record<string, string | undefined>): boolean {
  return env.REQUEST_METHOD !== undefined || /^CGI\/[0-9]\.[0-9]$/.test(env.GATEWAY_INTERFACE ?? '');
}

/** K-11: NPH when the script's own file name starts with `nph-`. */
export function isNphName(scriptPath: string | undefined): boolean {
  return scriptPath !== undefined && path.basename(scriptPath).startsWith('nph-');
}

/** K-11: the status-line version of an nph- response (SERVER_PROTOCOL's), or undefined when not NPH. */
function nphVersion(env: Record<string, string | undefined>, scriptPath: string | undefined): HttpVersion | undefined {
  if (!isNphName(scriptPath)) return undefined;
  return env.SERVER_PROTOCOL === 'HTTP/1.0' || env.SERVER_PROTOCOL === 'INCLUDED' ? 'HTTP/1.0' : 'HTTP/1.1';
}

/** Thrown by cgiVars when REQUEST_METHOD is missing (K-2: 500 and exit 1, not a 400). */
export class NotCgiError extends GatewireError {
  override name = 'NotCgiError';
  override readonly code = ServerErrorCode.NotCgi;
}

/**
 * The CGI variables of the environ from the process environment. The host's SCRIPT_NAME and
 * PATH_INFO are authoritative (no mount repair: the script is the mount point). Throws
 * NotCgiError without REQUEST_METHOD (K-2), RequestError 400/413 for a bad CONTENT_LENGTH (K-3).
 */
export function cgiVars(env: Record<string, string | undefined>, maxBodyBytes = Number.MAX_SAFE_INTEGER): CgiVars {
  const vars: CgiVars = {};
  for (const key of Object.keys(env)) {
    const value = env[key];
    // E-2: only CGI-shaped names (no `.`: server-owned keys cannot be forged); httpoxy: a
    // `Proxy:` request header must not become the app's HTTP_PROXY (E-12).
    if (value === undefined || !isCgiKey(key) || key === 'HTTP_PROXY') continue;
    vars[key] = value;
  }
  if (!vars.REQUEST_METHOD) throw new NotCgiError('REQUEST_METHOD is not set: gatewire cgi must be started by a web server as a CGI program');

  if (vars.CONTENT_TYPE === '') delete vars.CONTENT_TYPE;
  const cl = vars.CONTENT_LENGTH;
  if (cl === '') delete vars.CONTENT_LENGTH;
  else if (cl !== undefined) {
    const n = parseContentLength(cl);
    if (n === null) throw new RequestError(400, `bad CONTENT_LENGTH ${JSON.stringify(cl)} (K-3)`);
    if (n > maxBodyBytes) throw new RequestError(413, `CONTENT_LENGTH ${n} over the limit ${maxBodyBytes}`);
  }
  delete vars.HTTP_CONTENT_LENGTH;
  delete vars.HTTP_CONTENT_TYPE;

  // K-4: a server-side include is an HTTP/1.0 request; E-3: a missing protocol too.
  if (vars.SERVER_PROTOCOL === undefined || vars.SERVER_PROTOCOL === 'INCLUDED') vars.SERVER_PROTOCOL = 'HTTP/1.0';
  if (vars.SCRIPT_NAME === undefined || vars.SCRIPT_NAME === '/') vars.SCRIPT_NAME = '';
  if (vars.PATH_INFO === undefined) vars.PATH_INFO = '';
  if (vars.QUERY_STRING === undefined) {
    const uri = vars.REQUEST_URI;
    const q = uri === undefined ? -1 : uri.indexOf('?');
    vars.QUERY_STRING = uri === undefined || q === -1 ? '' : uri.slice(q + 1);
  }
  if (vars.SERVER_NAME === undefined || vars.SERVER_NAME === '') vars.SERVER_NAME = vars.HTTP_HOST ? hostName(vars.HTTP_HOST) : 'localhost';
  if (vars.SERVER_PORT === undefined || vars.SERVER_PORT === '') vars.SERVER_PORT = gatewayScheme(vars) === 'https' ? '443' : '80';
  // K-6: rebuilt percent-encoded, so a `?`, `#` or `%` inside PATH_INFO keeps its meaning.
  if (vars.REQUEST_URI === undefined) {
    const target = quotePath(vars.SCRIPT_NAME + vars.PATH_INFO) || '/';
    vars.REQUEST_URI = vars.QUERY_STRING === '' ? target : `${target}?${vars.QUERY_STRING}`;
  }
  return vars;
}

// ---------------------------------------------------------------------------------------
// The body (K-3)
// ---------------------------------------------------------------------------------------

/** Reads up to `max` bytes; null at end of input. */
type ChunkReader = (max: number) => Promise<Buffer | null>;

const READ_CHUNK = 64 * 1024;

/**
 * How much unread body is taken into memory while stdout is blocked. Apache mod_cgi/mod_cgid
 * write the whole body before they read the output (docs/conformance.md §0.1 item 12): an app that
 * streams a large answer without reading its body would wait on a full stdout while Apache
 * waits on a full stdin, until Apache's Timeout (60 s). Bodies up to this size never deadlock.
 */
const PREFETCH_MAX = 16 * 1024 * 1024;

/** After the response: how long to wait for more unread body bytes before exiting anyway. */
const DISCARD_IDLE_MS = 10_000;

/**
 * Exact reads on a file descriptor: never more than asked, so nothing past CONTENT_LENGTH is
 * consumed (RFC 3875 §4.2). A non-blocking descriptor (EAGAIN) is polled.
 */
function fdReader(fd: number): ChunkReader {
  return (max) =>
    new Promise((resolve, reject) => {
      const buf = Buffer.allocUnsafe(max);
      const attempt = (): void => {
        fsRead(fd, buf, 0, max, null, (err, n) => {
          if (err) {
            if (err.code === 'EAGAIN' || err.code === 'EWOULDBLOCK') setTimeout(attempt, 5);
            else reject(err);
            return;
          }
          resolve(n === 0 ? null : buf.subarray(0, n));
        });
      };
      attempt();
    });
}

/** Pull reads from a Readable (in-process callers); what is read past `max` is unshifted. */
function streamReader(stream: Readable): ChunkReader {
  return (max) =>
    new Promise((resolve, reject) => {
      const cleanup = (): void => {
        stream.off('readable', attempt);
        stream.off('end', onEnd);
        stream.off('error', onError);
      };
      function attempt(): void {
        const raw = stream.read() as Buffer | string | null;
        if (raw !== null) {
          cleanup();
          const chunk = typeof raw === 'string' ? Buffer.from(raw, 'latin1') : Buffer.from(raw);
          if (chunk.length > max) stream.unshift(chunk.subarray(max));
          resolve(chunk.subarray(0, max));
        } else if (stream.readableEnded || stream.destroyed) {
          cleanup();
          resolve(null);
        }
      }
      const onEnd = (): void => {
        cleanup();
        resolve(null);
      };
      const onError = (err: Error): void => {
        cleanup();
        reject(err);
      };
      stream.on('readable', attempt);
      stream.on('end', onEnd);
      stream.on('error', onError);
      attempt();
    });
}

/**
 * `gatewire.input` for a CGI request with CONTENT_LENGTH: bytes are pulled from stdin only when
 * the app reads (a first `_read`), never past CONTENT_LENGTH; EOF before it is a
 * TruncatedBodyError for the app (§6.3).
 */
class StdinBody extends BodyInput {
  /** Bytes taken from stdin (delivered or discarded). */
  private consumed = 0;
  private want = false;
  private pumping = false;
  private discarding = false;
  private prefetching = false;

  constructor(
    private readonly reader: ChunkReader,
    expected: number,
  ) {
    const source: BodySource & { owner?: StdinBody } = {
      pause: () => {
        if (source.owner !== undefined) source.owner.want = false;
      },
      resume: () => source.owner?.demand(),
    };
    super(source, expected);
    source.owner = this;
    // A truncated body is the app's error to see when it reads; unread, it is not a process crash.
    this.on('error', () => undefined);
  }

  override _read(): void {
    super._read();
    this.demand();
  }

  /**
   * Reads and drops what the app left of CONTENT_LENGTH before the process exits. Under Apache
   * mod_cgid stdin and stdout are one unix socket: closing it with unread bytes makes the
   * kernel report ECONNRESET to Apache, which then drops the response it was still reading.
   * Resolves when CONTENT_LENGTH is consumed, at EOF, or after `idleMs` without a byte.
   */
  discardRest(idleMs: number): Promise<void> {
    if (this.consumed >= this.expected) return Promise.resolve();
    this.discarding = true;
    return new Promise((resolve) => {
      let last = this.consumed;
      const timer = setInterval(() => {
        if (this.consumed === last) finish();
        last = this.consumed;
      }, idleMs);
      const finish = (): void => {
        clearInterval(timer);
        this.onDiscarded = undefined;
        resolve();
      };
      this.onDiscarded = finish;
      this.demand();
    });
  }

  private onDiscarded: (() => void) | undefined;

  /** stdout is blocked: keep reading the body into memory, up to PREFETCH_MAX unread bytes. */
  prefetch(): void {
    if (this.consumed >= this.expected || this.prefetching) return;
    this.prefetching = true;
    void this.pump();
  }

  private wanted(): boolean {
    return this.want || this.discarding || (this.prefetching && this.readableLength < PREFETCH_MAX);
  }

  private demand(): void {
    this.want = true;
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.wanted() && this.consumed < this.expected && (this.discarding || !this.destroyed)) {
        const chunk = await this.reader(Math.min(this.expected - this.consumed, READ_CHUNK));
        if (chunk === null) {
          if (!this.discarding) this.finish(); // truncated: the app's read fails
          return;
        }
        this.consumed += chunk.length;
        if (!this.discarding) this.offer(chunk);
      }
    } catch (err) {
      if (!this.discarding) this.fail(err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.pumping = false;
      if (this.discarding) this.onDiscarded?.(); // all of it, EOF or a read error: nothing more to take
    }
  }
}

/** No CONTENT_LENGTH: an empty body, and stdin is never touched (K-3). */
function emptyInput(): BodyInput {
  return new BodyInput({ pause: () => undefined, resume: () => undefined }, 0);
}

// ---------------------------------------------------------------------------------------
// The response (K-8..K-14)
// ---------------------------------------------------------------------------------------

/** CGI head (`Status:` first) or, for nph- scripts, a self-delimiting HTTP/1.x response. */
class CgiStdoutSink implements ResponseSink {
  /** The server closed stdout (EPIPE) or the run was terminated: nothing more is written. */
  gone = false;
  /** Called when stdout is full (the exchange waits for drain). */
  onBlocked: (() => void) | undefined;
  /** The runner took over the output (an outside failure): the exchange's writes are dropped. */
  sealed = false;
  headWritten = false;
  aborted = false;
  onGone: (() => void) | undefined;

  constructor(
    private readonly out: Writable,
    private readonly nph: HttpVersion | undefined,
  ) {
    out.on('error', () => this.markGone());
    out.on('close', () => this.markGone());
  }

  get closed(): boolean {
    return this.gone || this.sealed;
  }

  head(status: number, reason: string, headers: HeaderList): void {
    if (!this.sealed) this.writeHead(status, reason, headers);
  }

  write(chunk: Buffer): boolean {
    return this.sealed ? true : this.put(chunk);
  }

  private writeHead(status: number, reason: string, headers: HeaderList): void {
    this.headWritten = true;
    if (this.nph === undefined) {
      this.put(serializeCgiHead(status, reason, headers));
      return;
    }
    // K-11: the client reads this response as is, so it must be complete and delimited.
    const fields = headers.slice();
    const has = (name: string): boolean => fields.some(([n]) => n.toLowerCase() === name);
    if (!has('date')) fields.push(['Date', new Date().toUTCString()]);
    if (!has('content-length') && status !== 204 && status !== 304) fields.push(['Connection', 'close']);
    this.put(serializeHttpHead(this.nph, status, reason, fields));
  }

  drain(): Promise<void> {
    if (this.gone) return Promise.resolve();
    this.onBlocked?.();
    return new Promise((resolve) => {
      const done = (): void => {
        this.out.off('drain', done);
        this.out.off('close', done);
        this.out.off('error', done);
        resolve();
      };
      this.out.on('drain', done);
      this.out.on('close', done);
      this.out.on('error', done);
    });
  }

  end(): void {
    // The runner flushes; stdout itself stays open (it is the process's, not ours to close).
  }

  abort(): void {
    this.aborted = true; // R-11: what was written is flushed, the exit code says it is incomplete
  }

  /** gatewire's own answer (src/reply.ts) written by the runner itself (K-2, K-3, K-14). */
  errorResponse(status: number, method: string | undefined, requestId: string): void {
    const r = reply(status, requestId, method);
    this.writeHead(r.status, r.reason, r.headers);
    if (r.body !== undefined) this.put(r.body);
  }

  /** Resolves when everything written has left the process (K-12), or stdout is gone. */
  flush(): Promise<void> {
    if (this.gone) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.out.off('close', done);
        resolve();
      };
      this.out.on('close', done);
      this.out.write('', done);
    });
  }

  private put(data: Buffer): boolean {
    if (this.gone) return true;
    return this.out.write(data);
  }

  private markGone(): void {
    if (this.gone) return;
    this.gone = true;
    this.onGone?.();
  }
}

// ---------------------------------------------------------------------------------------
// One CGI request
// ---------------------------------------------------------------------------------------

/** The reason to give `signal.abort()` for SIGTERM (K-16): the run ends at once, exit 143. */
export class CgiTermination extends GatewireError {
  override name = 'CgiTermination';
  override readonly code = ServerErrorCode.CgiTerminated;
}

/** The reason for an app whose call can never finish (the event loop ran empty): a 500, exit 1. */
export class CgiStalled extends GatewireError {
  override name = 'CgiStalled';
  override readonly code = ServerErrorCode.CgiStalled;
}

export interface CgiChildOptions {
  /** The raw environment block (`NAME=value\0`...), or a record of latin1 strings. */
  env: Buffer | Record<string, string | undefined>;
  /** fd 0, or any Readable (tests). Read only when the app reads a CONTENT_LENGTH body. */
  stdin: number | Readable;
  stdout: Writable;
  /** Diagnostics (K-15). Default: nowhere. */
  stderr?: { write(text: string): unknown };
  /** The script's file name for the nph- test (K-11). Default: SCRIPT_FILENAME. */
  scriptName?: string;
  /** Beyond it a CONTENT_LENGTH is answered 413. */
  maxBodyBytes?: number;
  /**
   * Ends the run from outside: a CgiTermination reason (SIGTERM) stops at once with 143;
   * any other reason is an app failure (500 if no head was written yet, exit 1).
   */
  signal?: AbortSignal;
}

/** Runs one CGI request through the app; resolves with the process exit code once the output is flushed. */
export async function runCgiChild(service: Service, opts: CgiChildOptions): Promise<number> {
  const env = Buffer.isBuffer(opts.env) ? parseEnvironBlock(opts.env) : opts.env;
  const logger = lineLogger(opts.stderr);
  const sink = new CgiStdoutSink(opts.stdout, nphVersion(env, opts.scriptName ?? env.SCRIPT_FILENAME));

  let vars: CgiVars;
  try {
    vars = cgiVars(env, opts.maxBodyBytes);
  } catch (err) {
    if (!(err instanceof NotCgiError) && !(err instanceof RequestError)) throw err;
    const id = newRequestId();
    logger.error(err.message, { request_id: id });
    sink.errorResponse(err instanceof RequestError ? err.status : 500, env.REQUEST_METHOD, id);
    await sink.flush();
    return err instanceof NotCgiError ? 1 : 0;
  }

  const cl = vars.CONTENT_LENGTH === undefined ? 0 : Number(vars.CONTENT_LENGTH);
  const input = cl > 0 ? new StdinBody(typeof opts.stdin === 'number' ? fdReader(opts.stdin) : streamReader(opts.stdin), cl) : emptyInput();
  const ctx = new RequestContext(logger);
  const environ = makeEnviron(vars, ctx, {
    input,
    protocol: 'cgi',
    scheme: gatewayScheme(vars),
    inputTerminated: false,
    runOnce: true,
    multiprocess: true, // E-16
  });
  const exchange = new Exchange(environ, sink, {
    error: (message, err) => logger.error(message, { request_id: ctx.id, stack: err instanceof Error && !(err instanceof TruncatedBodyError) ? err.stack : undefined }),
  });
  const stop = (reason: string): void => {
    ctx.abort(reason);
    input.on('error', () => undefined); // an app that never read its body must not see an uncaught error
    input.fail(new Error(reason));
    exchange.peerGone();
  };
  sink.onGone = () => stop('the web server closed stdout');
  if (input instanceof StdinBody) sink.onBlocked = () => input.prefetch();

  const signal = opts.signal;
  let onAbort: (() => void) | undefined;
  const outside = new Promise<unknown>((resolve) => {
    if (signal === undefined) return;
    onAbort = () => resolve(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  const finished = await Promise.race([exchange.run(service.app).then(() => undefined), outside.then((reason) => ({ reason }))]);
  if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);

  if (finished !== undefined) {
    const reason = finished.reason;
    if (reason instanceof CgiTermination) {
      logger.warn(`${reason.message}: request aborted`, { request_id: ctx.id });
      sink.sealed = true;
      stop(reason.message);
      return 143;
    }
    // An app failure the exchange cannot see: a crash outside the call, or a call that never ends.
    const error = reason instanceof Error ? reason : new Error(String(reason));
    const headWritten = sink.headWritten;
    sink.sealed = true;
    stop(error.message);
    logger.error(headWritten ? `app failed after the headers were sent: ${error.message}` : `app failed: ${error.message}`, { request_id: ctx.id, stack: error instanceof CgiStalled ? undefined : error.stack });
    if (sink.gone) return 0;
    if (!headWritten) sink.errorResponse(500, env.REQUEST_METHOD, ctx.id);
    const discardedAfterFailure = input instanceof StdinBody ? input.discardRest(DISCARD_IDLE_MS) : undefined;
    await sink.flush();
    await discardedAfterFailure;
    return 1;
  }

  if (sink.gone) return 0; // K-13: the client went away; nothing left to say
  // Read what the app left of the body while the output is flushed (see discardRest).
  const discarded = input instanceof StdinBody ? input.discardRest(DISCARD_IDLE_MS) : undefined;
  await sink.flush();
  await discarded;
  return exchange.failed !== undefined || sink.aborted ? 1 : 0;
}

/** Diagnostics as single lines (K-15): `gatewire cgi: <level>: <message> request_id=<id>`, stack indented. */
function lineLogger(stderr: { write(text: string): unknown } | undefined, debug = false): Logger {
  const emit =
    (level: string) =>
    (message: string, meta?: Record<string, unknown>): void => {
      if (stderr === undefined) return;
      const id = meta?.request_id;
      let text = `gatewire cgi: ${level}: ${String(message).replace(/[\r\n]+/g, ' ')}${typeof id === 'string' ? ` request_id=${id}` : ''}\n`;
      const stack = meta?.stack;
      if (typeof stack === 'string') text += `${stack.replace(/^/gm, '    ')}\n`;
      try {
        stderr.write(text);
      } catch {
        // stderr closed: diagnostics are lost, the response is not
      }
    };
  const noop = (): void => undefined;
  return { error: emit('error'), warn: emit('warn'), info: emit('info'), debug: debug ? emit('debug') : noop, debugEnabled: debug, access: null, close: () => Promise.resolve() };
}

/**
 * A response without an app (it could not be loaded): the web server still gets an answer it can
 * show, not "premature end of script headers".
 */
export async function answerWithoutApp(env: Record<string, string | undefined>, scriptName: string | undefined, stdout: Writable, status: number): Promise<void> {
  const sink = new CgiStdoutSink(stdout, nphVersion(env, scriptName));
  sink.errorResponse(status, env.REQUEST_METHOD, newRequestId());
  await sink.flush();
}
