/**
 * Node handlers `(req, res) => …` as Apps, for every front that is not Node's own HTTP server.
 *
 * Express and Koa replace the prototype of `req` and `res` with their own objects derived from
 * http.IncomingMessage / http.ServerResponse, so a look-alike class loses its methods the moment
 * Express touches it (node-fastcgi needs a monkey-patch for that reason). Here `req` and `res`
 * ARE a real IncomingMessage and a real ServerResponse, attached to a capture socket: Node writes
 * its HTTP/1.1 head and body bytes into that socket, the head is read back into start_response,
 * and the body becomes the exchange's async iterable, with backpressure through the socket's
 * write callbacks. The few settings that keep Node from adding framing (no chunked encoding, no
 * Date) are own properties, which survive any prototype swap.
 *
 * What node:http apps watch to stop work is kept as node:http keeps it: `req` emits
 * 'close' once the response finished (an unread body is dumped first, as node:http's
 * resOnFinish does, so 'end' then 'close' follow), and when the client goes away (the
 * environ's abort: client or web server gone, FCGI_ABORT_REQUEST, a timeout), when `req` is
 * destroyed with node:http's 'aborted' error: `req.aborted` and `req.destroyed` true, 'aborted'
 * emitted, `req.socket.destroyed` true, `res` closed with `writableEnded` false.
 *
 * A head Node writes with no body behind it in the same turn of the event loop (flushHeaders(),
 * write(''), writeHead() then flushHeaders()) is an explicit flush: the exchange sends it at
 * once through start_response's write(''), as node:http puts it on the socket. A head
 * followed by body bytes in the same turn (write(buffer), end(buffer)) goes out with them.
 */
import * as http from 'node:http';
import { Duplex } from 'node:stream';
import type { App, Environ, HeaderList, NodeHandler, StartResponse, Write } from '../app.js';
import { AppContractError } from '../app.js';
import { percentDecodePath, quotePath, rawPathBelow } from '../environ.js';
import { abortWatch } from '../request.js';
import { isHopByHop } from '../../protocols/cgi/head.js';

const kNeedDrain = Object.getOwnPropertySymbols(new http.OutgoingMessage()).find((s) => s.description === 'kNeedDrain');

export function fromNodeHandler(handler: NodeHandler): App {
  return (environ, startResponse) => new NodeExchange(handler, environ, startResponse);
}

/** The Node request line and headers an environ stands for. */
export function nodeRequestParts(environ: Environ): { url: string; originalUrl: string | undefined; headers: Record<string, string>; rawHeaders: string[] } {
  const scriptName = environ.SCRIPT_NAME;
  const pathInfo = environ.PATH_INFO;
  const query = environ.QUERY_STRING;
  const uri = environ.REQUEST_URI;
  let url: string;
  if (uri !== undefined && uri.startsWith('/') && percentDecodePath(uri.split('?', 1)[0] as string) === scriptName + pathInfo) {
    url = scriptName === '' ? uri : rawPathBelow(uri, scriptName.length);
  } else {
    url = (quotePath(pathInfo) || '/') + (query ? `?${query}` : '');
  }
  const headers: Record<string, string> = {};
  const rawHeaders: string[] = [];
  for (const key of Object.keys(environ)) {
    let name: string;
    if (key.startsWith('HTTP_')) name = key.slice(5).toLowerCase().replace(/_/g, '-');
    else if (key === 'CONTENT_TYPE') name = 'content-type';
    else if (key === 'CONTENT_LENGTH') name = 'content-length';
    else continue;
    const value = environ[key];
    if (typeof value !== 'string') continue;
    headers[name] = value;
    rawHeaders.push(name, value);
  }
  if (environ['gatewire.input_terminated'] && headers['content-length'] === undefined) {
    // Body parsers (type-is) look for one of the two framing headers to know there is a body.
    headers['transfer-encoding'] = 'chunked';
    rawHeaders.push('transfer-encoding', 'chunked');
  }
  return { url, originalUrl: scriptName === '' ? undefined : uri, headers, rawHeaders };
}

/** The socket Node's ServerResponse writes into; each write's callback is the backpressure. */
class CaptureSocket extends Duplex {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  readonly encrypted: boolean | undefined;

  constructor(
    environ: Environ,
    private readonly onChunk: (chunk: Buffer, done: (err?: Error | null) => void) => void,
  ) {
    super({ decodeStrings: true, allowHalfOpen: true, highWaterMark: 64 * 1024 });
    this.remoteAddress = environ.REMOTE_ADDR;
    this.remotePort = environ.REMOTE_PORT === undefined ? undefined : Number(environ.REMOTE_PORT);
    this.localAddress = typeof environ.SERVER_ADDR === 'string' ? environ.SERVER_ADDR : undefined;
    this.localPort = Number(environ.SERVER_PORT) || undefined;
    this.encrypted = environ['gatewire.url_scheme'] === 'https' ? true : undefined;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.onChunk(chunk, done);
  }

  override _read(): void {
    // The request body reaches `req` through the environ's input, not through this socket.
  }

  setTimeout(): this {
    return this;
  }

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  address(): { address: string; port: number; family: string } {
    return { address: this.localAddress ?? '', port: this.localPort ?? 0, family: '' };
  }
}

type Pending = { chunk: Buffer; done: (err?: Error | null) => void };

/** One Node handler call, seen by the exchange as an async iterable of body chunks. */
class NodeExchange implements AsyncIterable<Buffer>, AsyncIterator<Buffer> {
  private readonly queue: Pending[] = [];
  private waiter: ((r: IteratorResult<Buffer>) => void) | undefined;
  private failWaiter: ((err: unknown) => void) | undefined;
  private head: Buffer | undefined = Buffer.alloc(0);
  private finished = false;
  private error: unknown;
  private readonly socket: CaptureSocket;
  private readonly res: http.ServerResponse;
  /** start_response's write(): write('') sends the head now. */
  private write: Write | undefined;
  /** A body byte (or the end) came after the head: no flush of a lone head is needed. */
  private bodySeen = false;
  /** The client went away (the environ's abort): the exchange ends quietly. */
  private gone = false;

  constructor(
    handler: NodeHandler,
    private readonly environ: Environ,
    private readonly startResponse: StartResponse,
  ) {
    this.socket = new CaptureSocket(environ, (chunk, done) => this.onChunk(chunk, done));
    const req = this.makeRequest();
    const res = new http.ServerResponse(req);
    Object.defineProperty(res, 'chunkedEncoding', { get: () => false, set: () => undefined });
    res.useChunkedEncodingByDefault = false;
    res.shouldKeepAlive = false;
    res.sendDate = false;
    res.assignSocket(this.socket as unknown as import('node:net').Socket);
    this.socket.on('drain', () => {
      if (kNeedDrain !== undefined) (res as unknown as Record<symbol, boolean>)[kNeedDrain] = false;
      res.emit('drain');
    });
    res.on('finish', () => {
      this.end();
      dumpRequest(req);
    });
    // A handler that destroys its connection (Express's finalhandler after headers, Koa's pipeline
    // on a stream error) ends the response with an error: the peer must see the truncation.
    this.socket.on('close', () => {
      if (!res.writableFinished && !this.gone) this.fail(new Error('the Node handler closed the connection before finishing its response'));
    });
    this.socket.on('error', () => undefined);
    this.res = res;
    // the client gone, as node:http's socket close: the socket first, then req.
    const watch = abortWatch(environ);
    if (watch !== undefined) {
      const onGone = (): void => this.clientGone(req);
      if (watch.aborted) queueMicrotask(onGone);
      else {
        watch.add(onGone);
        req.once('close', () => watch.remove(onGone));
      }
    }
    try {
      const r = handler(req, res);
      if (typeof (r as Promise<unknown> | undefined)?.then === 'function') (r as Promise<unknown>).then(undefined, (err: unknown) => this.fail(err));
    } catch (err) {
      this.fail(err);
    }
  }

  private makeRequest(): http.IncomingMessage {
    const environ = this.environ;
    const req = new http.IncomingMessage(this.socket as unknown as import('node:net').Socket);
    const parts = nodeRequestParts(environ);
    req.method = environ.REQUEST_METHOD;
    req.url = parts.url;
    if (parts.originalUrl !== undefined) (req as http.IncomingMessage & { originalUrl?: string }).originalUrl = parts.originalUrl;
    const version = /^HTTP\/(\d)\.(\d)$/.exec(environ.SERVER_PROTOCOL);
    req.httpVersionMajor = version ? Number(version[1]) : 1;
    req.httpVersionMinor = version ? Number(version[2]) : 0;
    req.httpVersion = `${req.httpVersionMajor}.${req.httpVersionMinor}`;
    req.headers = parts.headers;
    req.rawHeaders = parts.rawHeaders;

    const input = environ['gatewire.input'];
    let flowing = false;
    // Own property: survives Express's prototype swap. Pulls the body only when the handler reads.
    req._read = () => {
      if (flowing) {
        input.resume();
        return;
      }
      flowing = true;
      input.on('data', (chunk: Buffer) => {
        if (!req.push(chunk)) input.pause();
      });
      input.on('end', () => {
        req.complete = true;
        req.push(null);
      });
      input.on('error', (err) => req.destroy(err));
    };
    return req;
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return this;
  }

  next(): Promise<IteratorResult<Buffer>> {
    // Release the previous chunk's write callback: that is the handler's backpressure.
    const item = this.queue.shift();
    if (item !== undefined) {
      item.done();
      return Promise.resolve({ value: item.chunk, done: false });
    }
    if (this.error !== undefined) return Promise.reject(this.error);
    if (this.finished) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = resolve;
      this.failWaiter = reject;
    });
  }

  /** The exchange stopped early (client gone, error): tear down like a closed connection. */
  return(): Promise<IteratorResult<Buffer>> {
    this.finished = true;
    for (const item of this.queue.splice(0)) item.done();
    if (!this.socket.destroyed) this.socket.destroy();
    return Promise.resolve({ value: undefined, done: true });
  }

  private onChunk(chunk: Buffer, done: (err?: Error | null) => void): void {
    if (this.head !== undefined) {
      chunk = this.readHead(chunk);
      if (chunk.length === 0) {
        // A head alone: a flush, unless body bytes or the end follow in this turn.
        if (this.head === undefined) setImmediate(() => this.flushLoneHead());
        done();
        return;
      }
    }
    this.bodySeen = true;
    const waiter = this.waiter;
    if (waiter !== undefined) {
      this.waiter = this.failWaiter = undefined;
      done();
      waiter({ value: chunk, done: false });
    } else {
      this.queue.push({ chunk, done });
    }
  }

  /** Collects Node's head; at its end calls start_response. Returns the body bytes after it. */
  private readHead(chunk: Buffer): Buffer {
    const head = this.head as Buffer;
    const all = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const end = all.indexOf('\r\n\r\n');
    if (end === -1) {
      this.head = all;
      return Buffer.alloc(0);
    }
    this.head = undefined;
    const lines = all.toString('latin1', 0, end).split('\r\n');
    const statusLine = /^HTTP\/\d\.\d (\d{3}) ?(.*)$/.exec(lines[0] as string);
    if (statusLine === null) throw new AppContractError(`unexpected response head from the Node handler: ${JSON.stringify(lines[0])}`);
    const headers: HeaderList = [];
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i] as string;
      const colon = line.indexOf(':');
      const name = line.slice(0, colon);
      if (isHopByHop(name.toLowerCase())) continue; // Node's own framing headers: not the app's
      headers.push([name, line.slice(colon + 1).trim()]);
    }
    const code = statusLine[1] as string;
    const reason = statusLine[2] || http.STATUS_CODES[Number(code)] || '';
    try {
      this.write = this.startResponse(`${code} ${reason}`, headers);
    } catch (err) {
      this.fail(err);
    }
    return all.subarray(end + 4);
  }

  /** Node put its head on the socket with no body behind it: the exchange sends it now. */
  private flushLoneHead(): void {
    if (this.bodySeen || this.finished || this.write === undefined) return;
    try {
      this.write('');
    } catch (err) {
      this.fail(err);
    }
  }

  /** the client is gone: `res` closes with its socket, `req` is destroyed as node:http's. */
  private clientGone(req: http.IncomingMessage): void {
    if (this.gone) return;
    this.gone = true;
    if (!this.socket.destroyed) this.socket.destroy();
    if (!req.destroyed) req.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    this.end();
  }

  private end(): void {
    this.bodySeen = true;
    if (this.finished) return;
    this.finished = true;
    const waiter = this.waiter;
    if (waiter !== undefined && this.queue.length === 0) {
      this.waiter = this.failWaiter = undefined;
      waiter({ value: undefined, done: true });
    }
  }

  private fail(err: unknown): void {
    if (this.error !== undefined || (this.finished && this.res?.writableFinished)) return;
    this.error = err ?? new Error('the Node handler failed');
    this.finished = true;
    const reject = this.failWaiter;
    if (reject !== undefined) {
      this.waiter = this.failWaiter = undefined;
      reject(this.error);
    }
  }
}

/**
 * R-13, node:http's resOnFinish: a body the handler never started reading is dumped once the
 * response finished, so `req` ends and emits 'close'.
 */
function dumpRequest(req: http.IncomingMessage): void {
  const r = req as http.IncomingMessage & { _consuming?: boolean; _dump?: () => void; _readableState?: { resumeScheduled?: boolean } };
  if (req.destroyed || req.readableEnded) return;
  if (!r._consuming && !r._readableState?.resumeScheduled) {
    if (typeof r._dump === 'function') r._dump();
    else req.resume();
  }
}
