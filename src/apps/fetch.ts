/**
 * Fetch handlers `(Request) => Response` (Hono's `app.fetch`, and any WinterCG-style handler)
 * as Apps. The Request URL is the full public URL (E-9): SCRIPT_NAME is part of it, so a Hono app
 * served under `--mount /app` routes with `app.basePath('/app')` (see README).
 *
 * The Response becomes a start_response call and a body:
 *   - Framing and hop-by-hop fields a Response carries (Hono's streamText and streamSSE set
 *     `Transfer-Encoding: chunked`, streamSSE `Connection: keep-alive`) are the adapter's to drop,
 *     as the Node adapter drops Node's own: each front frames the response itself, and R-6 would
 *     refuse them from an app. The set is protocols/cgi/head.ts's, the one every part uses.
 *   - A Response's body is always a ReadableStream, even for `new Response('text')`. What a body
 *     built from bytes in memory (a string, an ArrayBuffer or typed array, a Blob, URLSearchParams,
 *     FormData, c.text() and c.json()) holds is already queued in that stream: the adapter takes
 *     what the stream hands over before the event loop's next turn, without waiting for anything.
 *     When the stream ended within that, the whole body is known and goes out as one chunk, so
 *     the exchange sends its Content-Length (call.ts); otherwise what was read goes first and the
 *     rest streams (chunked on HTTP/1.1). A Response that says `Transfer-Encoding: chunked` (a
 *     streaming helper) or gives its own Content-Length streams at once.
 */
import { STATUS_CODES } from 'node:http';
import { Readable } from 'node:stream';
import type { App, CgiVars, Environ, FetchHandler, HeaderList } from '../app.js';
import { requestUrl } from '../environ.js';
import { isHopByHop } from '../../protocols/cgi/head.js';

const NO_BODY = new Set(['GET', 'HEAD']);

/** At most this many reads before the head goes out: a stream that never pauses still streams. */
const MAX_EARLY_READS = 16;

export function fromFetchHandler(handler: FetchHandler): App {
  return async (environ, startResponse) => {
    const request = toRequest(environ);
    // The one abort listener of the exchange holds the Request. undici's Request follows
    // gatewire.signal only through a WeakRef to a controller that the Request alone holds: a
    // handler that kept just request.signal (to pass it on to a fetch, or listen to it) lost the
    // abort at the first GC once nothing held the Request (R-5, OP-10).
    const held: { request: Request; reader: ReadableStreamDefaultReader<Uint8Array> | undefined } = { request, reader: undefined };
    environ['gatewire.signal'].addEventListener('abort', () => void held.reader?.cancel().catch(() => undefined), { once: true }); // client gone: cancel the body now (Hono's stream.onAbort), not at its next chunk
    const response = await handler(request);
    if (!(response instanceof Response)) throw new TypeError(`the fetch handler returned ${typeof response}, not a Response`);
    const headers: HeaderList = [];
    let streaming = false;
    let hasLength = false;
    for (const [name, value] of response.headers) {
      if (name === 'set-cookie') continue;
      if (isHopByHop(name)) {
        // the front frames the response; the framework's own framing is not passed on.
        if (name === 'transfer-encoding') streaming = true;
        continue;
      }
      if (name === 'content-length') hasLength = true;
      headers.push([name, value]);
    }
    // each Set-Cookie stays its own field.
    for (const cookie of response.headers.getSetCookie()) headers.push(['set-cookie', cookie]);
    const reason = response.statusText || STATUS_CODES[response.status] || '';
    const body = response.body;
    if (body === null) {
      const write = startResponse(`${response.status} ${reason}`, headers);
      if (environ.REQUEST_METHOD === 'HEAD' && !hasLength) write(''); // a HEAD Response has no body (Hono strips it): send the head as is, not with a Content-Length: 0 the GET does not have
      return [];
    }
    const reader = body.getReader();
    held.reader = reader;
    // a body that is all there already goes out whole, with its length.
    const early = streaming || hasLength ? { chunks: [], done: false, pending: undefined } : await readQueued(reader);
    try {
      startResponse(`${response.status} ${reason}`, headers);
    } catch (err) {
      reader.cancel().catch(() => undefined);
      throw err;
    }
    if (early.done) {
      reader.releaseLock();
      return [early.chunks.length === 1 ? (early.chunks[0] as Buffer) : Buffer.concat(early.chunks)];
    }
    return iterateStream(reader, early.chunks, early.pending);
  };
}

type ReadResult = Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>>;

interface Early {
  chunks: Buffer[];
  done: boolean;
  /** A read that had not settled by the deadline: the stream's next chunk. */
  pending: Promise<ReadResult> | undefined;
}

/**
 * Reads what the stream yields before the next turn of the event loop (at most MAX_EARLY_READS
 * reads): a body from memory is queued or produced in microtasks and ends within it, a real
 * stream (a file, a generator awaiting I/O or timers) is still waiting when the deadline fires.
 */
async function readQueued(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<Early> {
  let timer: NodeJS.Immediate | undefined;
  const deadline = new Promise<undefined>((resolve) => {
    timer = setImmediate(resolve, undefined);
  });
  const chunks: Buffer[] = [];
  try {
    for (let i = 0; i < MAX_EARLY_READS; i++) {
      const read = reader.read();
      const r = await Promise.race([read, deadline]);
      if (r === undefined) return { chunks, done: false, pending: read };
      if (r.done) return { chunks, done: true, pending: undefined };
      if (r.value !== undefined && r.value.byteLength > 0) chunks.push(toBuffer(r.value));
    }
    return { chunks, done: false, pending: undefined };
  } finally {
    clearImmediate(timer);
  }
}

function toBuffer(value: Uint8Array): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
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

/** The chunks read early, then the rest of the stream; `pending` is a read already under way. */
async function* iterateStream(reader: ReadableStreamDefaultReader<Uint8Array>, first: readonly Buffer[], pending: Promise<ReadResult> | undefined): AsyncGenerator<Uint8Array> {
  try {
    yield* first;
    for (;;) {
      const { done, value } = await (pending ?? reader.read());
      pending = undefined;
      if (done) return;
      if (value !== undefined && value.byteLength > 0) yield value;
    }
  } finally {
    // Runs on early exit too (client gone, error): cancels the handler's stream.
    reader.cancel().catch(() => undefined);
  }
}

