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
import { SERVER_SOFTWARE, hostName, mapRequestHeaders, percentDecodePath, splitMount } from './environ.js';
import { silentLogger, type Logger } from './log.js';
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
  const method = request.method ?? 'GET';
  const url = request.url ?? '/';
  const q = url.indexOf('?');
  const rawPath = q === -1 ? url : url.slice(0, q);
  const path = percentDecodePath(rawPath);
  if (path === null) throw new Error('inject: NUL byte in the path');
  const split = splitMount(path, request.mount ?? '');
  if (split === null) throw new Error(`inject: ${path} is outside the mount ${request.mount ?? ''}`);
  const body = request.body === undefined ? undefined : typeof request.body === 'string' ? Buffer.from(request.body) : Buffer.from(request.body);
  const vars: CgiVars = {
    REQUEST_METHOD: method,
    SCRIPT_NAME: split[0],
    PATH_INFO: split[1],
    QUERY_STRING: q === -1 ? '' : url.slice(q + 1),
    REQUEST_URI: url,
    SERVER_NAME: 'localhost',
    SERVER_PORT: '80',
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_SOFTWARE,
    GATEWAY_INTERFACE: 'CGI/1.1',
    REQUEST_SCHEME: 'http',
    REMOTE_ADDR: request.remoteAddress ?? '127.0.0.1',
  };
  const raw: string[] = [];
  const headers = request.headers ?? {};
  for (const [k, v] of Array.isArray(headers) ? headers : Object.entries(headers)) raw.push(k, v);
  if (!raw.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'host')) raw.push('Host', 'localhost');
  mapRequestHeaders(raw, vars);
  if (body !== undefined) vars.CONTENT_LENGTH = String(body.length);
  vars.SERVER_NAME = hostName(vars.HTTP_HOST ?? 'localhost');

  const ctx = new RequestContext(logger);
  const environ = makeEnviron(vars, ctx, {
    input: Readable.from(body === undefined || body.length === 0 ? [] : [body]),
    protocol: 'http',
    scheme: 'http',
    inputTerminated: false,
  });
  const sink = new MemorySink(request.abortAfterBytes);
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

  constructor(private readonly abortAfter: number | undefined) {}

  head(status: number, reason: string, headers: HeaderList): void {
    this.status = status;
    this.reason = reason;
    this.headers = headers;
  }

  write(chunk: Buffer): boolean {
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
