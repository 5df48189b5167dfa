/**
 * inject(): one exchange with no socket at all, as the HTTP front would run it. For tests, and
 * for users who want to exercise an app (any interface) without a server:
 *
 *   const res = await inject(app, { method: 'POST', url: '/echo?x=1', body: 'hi' });
 *   res.status; res.headers; res.body.toString();
 */
import { Readable } from 'node:stream';
import type { App, CgiVars, HeaderList, Service } from './app.js';
import { Exchange, type ResponseSink } from './call.js';
import { RequestError, httpVars, normalizeMount } from './environ.js';
import { silentLogger, type Logger } from './logger.js';
import { RequestContext, makeEnviron } from './request.js';

export interface InjectRequest {
  method?: string;
  /** Origin-form target, e.g. `/a%20b?x=1`. */
  url?: string;
  headers?: Record<string, string> | Array<[string, string]>;
  body?: string | Uint8Array;
  mount?: string;
  remoteAddress?: string;
  /** Abort the exchange (as a client disconnect) after this many body bytes were written. */
  abortAfterBytes?: number;
  /** Called when the head goes out (with the first body bytes, at the end, or flushed early: R-12). */
  onHead?: () => void;
  /** Called when the first body bytes go out. */
  onBody?: () => void;
}

export interface InjectResponse {
  status: number;
  reason: string;
  headers: HeaderList;
  body: Buffer;
  /** True when the exchange aborted after the head (the client would see a truncated response). */
  aborted: boolean;
  requestId: string;
}

export async function inject(target: App | Service, request: InjectRequest = {}, logger: Logger = silentLogger()): Promise<InjectResponse> {
  const app = typeof target === 'function' ? target : target.app;
  const body = request.body === undefined ? undefined : typeof request.body === 'string' ? Buffer.from(request.body) : Buffer.from(request.body);
  const raw: string[] = [];
  const headers = request.headers ?? {};
  for (const [k, v] of Array.isArray(headers) ? headers : Object.entries(headers)) raw.push(k, v);
  if (!raw.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'host')) raw.push('Host', 'localhost');
  if (body !== undefined && !raw.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'content-length')) raw.push('Content-Length', String(body.length));
  const vars: CgiVars = {};
  let chunked: boolean;
  try {
    // The HTTP front's own environ builder, on a request from 127.0.0.1 to localhost:80.
    chunked = httpVars(
      {
        method: request.method ?? 'GET',
        url: request.url ?? '/',
        httpVersionMajor: 1,
        httpVersionMinor: 1,
        rawHeaders: raw,
        remoteAddress: request.remoteAddress ?? '127.0.0.1',
        remotePort: undefined,
        localAddress: undefined,
        localPort: 80,
        scheme: 'http',
      },
      { mount: normalizeMount(request.mount), maxBodyBytes: Number.MAX_SAFE_INTEGER },
      vars,
    );
  } catch (err) {
    if (err instanceof RequestError) throw new Error(`inject: ${err.status} ${err.message}`, { cause: err });
    throw err;
  }

  const ctx = new RequestContext(logger);
  const environ = makeEnviron(vars, ctx, {
    input: Readable.from(body === undefined || body.length === 0 ? [] : [body]),
    protocol: 'http',
    scheme: 'http',
    inputTerminated: chunked,
  });
  const sink = new MemorySink(request.abortAfterBytes, request.onHead, request.onBody);
  const exchange = new Exchange(environ, sink, { error: (m, err) => logger.error(m, { request_id: ctx.id, stack: (err as Error | undefined)?.stack }) });
  sink.onGone = () => {
    ctx.abort('client closed the connection');
    exchange.peerGone();
  };
  await exchange.run(app);
  return { status: sink.status, reason: sink.reason, headers: sink.headers, body: Buffer.concat(sink.chunks), aborted: sink.aborted, requestId: ctx.id };
}

class MemorySink implements ResponseSink {
  status = 0;
  reason = '';
  headers: HeaderList = [];
  chunks: Buffer[] = [];
  aborted = false;
  closed = false;
  onGone: (() => void) | undefined;
  private written = 0;

  constructor(
    private readonly abortAfter: number | undefined,
    private readonly onHead: (() => void) | undefined,
    private readonly onBody: (() => void) | undefined,
  ) {}

  head(status: number, reason: string, headers: HeaderList): void {
    this.status = status;
    this.reason = reason;
    this.headers = headers;
    this.onHead?.();
  }

  write(chunk: Buffer): boolean {
    if (this.written === 0) this.onBody?.();
    this.chunks.push(Buffer.from(chunk));
    this.written += chunk.length;
    if (this.abortAfter !== undefined && this.written >= this.abortAfter && !this.closed) {
      this.closed = true;
      this.aborted = true;
      this.onGone?.();
    }
    return true;
  }

  drain(): Promise<void> {
    return Promise.resolve();
  }

  end(): void {}

  abort(): void {
    this.aborted = true;
    this.closed = true;
  }
}
