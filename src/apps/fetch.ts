/**
 * Fetch handlers `(Request) => Response` (Hono's `app.fetch`, and any WinterCG-style handler)
 * as Apps. The Request URL is the full public URL (E-9): SCRIPT_NAME is part of it, so a Hono app
 * served under `--mount /app` routes with `app.basePath('/app')` (see README).
 */
import { STATUS_CODES } from 'node:http';
import { Readable } from 'node:stream';
import type { App, CgiVars, Environ, FetchHandler, HeaderList } from '../app.js';
import { requestUrl } from '../environ.js';

const NO_BODY = new Set(['GET', 'HEAD']);

export function fromFetchHandler(handler: FetchHandler): App {
  return async (environ, startResponse) => {
    const response = await handler(toRequest(environ));
    if (!(response instanceof Response)) throw new TypeError(`the fetch handler returned ${typeof response}, not a Response`);
    const headers: HeaderList = [];
    for (const [name, value] of response.headers) {
      if (name === 'set-cookie') continue;
      headers.push([name, value]);
    }
    // each Set-Cookie stays its own field.
    for (const cookie of response.headers.getSetCookie()) headers.push(['set-cookie', cookie]);
    const reason = response.statusText || STATUS_CODES[response.status] || '';
    startResponse(`${response.status} ${reason}`, headers);
    const body = response.body;
    if (body === null) return [];
    return iterateStream(body);
  };
}

/** The Request an environ stands for. */
export function toRequest(environ: Environ): Request {
  const vars = environ as unknown as CgiVars;
  const headers = new Headers();
  for (const key of Object.keys(environ)) {
    const value = environ[key];
    if (typeof value !== 'string') continue;
    if (key.startsWith('HTTP_')) headers.append(key.slice(5).replace(/_/g, '-'), value);
    else if (key === 'CONTENT_TYPE') headers.set('content-type', value);
    else if (key === 'CONTENT_LENGTH') headers.set('content-length', value);
  }
  const method = environ.REQUEST_METHOD;
  const hasBody = !NO_BODY.has(method) && (environ['gatewire.input_terminated'] || Number(environ.CONTENT_LENGTH ?? 0) > 0);
  const init: RequestInit & { duplex?: 'half' } = { method, headers, signal: environ['gatewire.signal'] };
  if (hasBody) {
    init.body = Readable.toWeb(environ['gatewire.input']);
    init.duplex = 'half';
  }
  return new Request(requestUrl(vars, environ['gatewire.url_scheme']), init);
}

async function* iterateStream(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      if (value !== undefined && value.byteLength > 0) yield value;
    }
  } finally {
    // Runs on early exit too (client gone, error): cancels the handler's stream.
    reader.cancel().catch(() => undefined);
  }
}
