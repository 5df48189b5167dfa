/**
 * A contract checker in the spirit of Python's wsgiref.validate: wrap an app with validateApp()
 * and every call checks both sides of the contract, without changing anything that passes.
 *
 * Server side (the environ it built):
 *   - REQUEST_METHOD, SCRIPT_NAME, PATH_INFO, QUERY_STRING, SERVER_NAME, SERVER_PORT and
 *     SERVER_PROTOCOL present; every gatewire.* key present with its type
 *   - CGI keys (no dot) match ^[A-Za-z_][A-Za-z0-9_]*$ and hold latin1 strings (E-1, E-2)
 *   - no HTTP_CONTENT_TYPE / HTTP_CONTENT_LENGTH (use CONTENT_*), no HTTP_PROXY (httpoxy)
 *   - SCRIPT_NAME and PATH_INFO empty or starting with /; SCRIPT_NAME is never "/" (E-5)
 *   - CONTENT_LENGTH, when present, is digits (E-4); REQUEST_METHOD is a token
 *   - the body's close() is called once the exchange is over: see openBodies()
 * App side:
 *   - start_response gets a string status "NNN reason" and an array of [string, string] pairs,
 *     no Status header, no hop-by-hop header, no control characters
 *   - start_response is not called twice without exc_info
 *   - no body chunk before start_response; chunks are strings or Uint8Arrays
 *   - the body is an iterable, not a bare string or Uint8Array
 * Every message quotes the offending value.
 */
import type { App, Body, Chunk, Environ, HeaderList, StartResponse } from './app.js';
import { isCgiKey } from './environ.js';
import { GatewireError, ServerErrorCode } from './errors.js';
import { isHopByHop, isValidHeaderName, isValidHeaderValue, parseStatusLine } from '../protocols/cgi/head.js';

export class ValidationError extends GatewireError {
  override name = 'ValidationError';
  override readonly code = ServerErrorCode.Validation;
}

const REQUIRED = ['REQUEST_METHOD', 'SCRIPT_NAME', 'PATH_INFO', 'QUERY_STRING', 'SERVER_NAME', 'SERVER_PORT', 'SERVER_PROTOCOL'] as const;
const SERVER_KEYS: Record<string, string> = {
  'gatewire.errors': 'object',
  'gatewire.url_scheme': 'string',
  'gatewire.protocol': 'string',
  'gatewire.request_id': 'string',
  'gatewire.input_terminated': 'boolean',
  'gatewire.run_once': 'boolean',
  'gatewire.multithread': 'boolean',
  'gatewire.multiprocess': 'boolean',
};

function check(ok: unknown, message: string): asserts ok {
  if (!ok) throw new ValidationError(message);
}

const show = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : String(v));

export function checkEnviron(environ: Environ): void {
  check(environ !== null && typeof environ === 'object', `environ is not an object: ${show(environ)}`);
  for (const key of REQUIRED) check(typeof environ[key] === 'string', `environ lacks ${key} (got ${show(environ[key])})`);
  for (const [key, type] of Object.entries(SERVER_KEYS)) check(typeof environ[key] === type, `environ[${key}] should be a ${type}, got ${show(environ[key])}`);
  const input = environ['gatewire.input'] as unknown as { read?: unknown; [Symbol.asyncIterator]?: unknown } | undefined;
  check(typeof input?.read === 'function' && typeof input[Symbol.asyncIterator] === 'function', 'environ[gatewire.input] is not a Readable');
  check(typeof environ['gatewire.errors']?.write === 'function', 'environ[gatewire.errors] has no write()');
  const signal = environ['gatewire.signal'];
  check(signal instanceof AbortSignal, `environ[gatewire.signal] is not an AbortSignal: ${show(signal)}`);
  check(['http', 'https'].includes(environ['gatewire.url_scheme']), `bad gatewire.url_scheme ${show(environ['gatewire.url_scheme'])}`);
  for (const key of Object.keys(environ)) {
    if (key.includes('.')) continue;
    check(isCgiKey(key), `environ key ${show(key)} is not a CGI name (E-2)`);
    const value = environ[key];
    check(typeof value === 'string', `environ[${key}] is not a string: ${show(value)}`);
    check(!/[^\x00-\xff]/.test(value), `environ[${key}] has characters beyond latin1; CGI values are byte strings (E-1): ${show(value)}`);
  }
  check(environ.HTTP_CONTENT_TYPE === undefined, 'environ has HTTP_CONTENT_TYPE; use CONTENT_TYPE');
  check(environ.HTTP_CONTENT_LENGTH === undefined, 'environ has HTTP_CONTENT_LENGTH; use CONTENT_LENGTH');
  check(environ.HTTP_PROXY === undefined, 'environ has HTTP_PROXY (httpoxy)');
  check(environ.SCRIPT_NAME === '' || environ.SCRIPT_NAME.startsWith('/'), `SCRIPT_NAME doesn't start with /: ${show(environ.SCRIPT_NAME)}`);
  check(environ.SCRIPT_NAME !== '/', 'SCRIPT_NAME cannot be "/" (use "" and PATH_INFO "/")');
  check(environ.PATH_INFO === '' || environ.PATH_INFO.startsWith('/'), `PATH_INFO doesn't start with /: ${show(environ.PATH_INFO)}`);
  if (environ.CONTENT_LENGTH !== undefined) check(/^[0-9]+$/.test(environ.CONTENT_LENGTH), `CONTENT_LENGTH is not a whole number: ${show(environ.CONTENT_LENGTH)}`);
  check(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(environ.REQUEST_METHOD), `REQUEST_METHOD is not a token: ${show(environ.REQUEST_METHOD)}`);
}

function checkStart(status: unknown, headers: unknown): void {
  check(typeof status === 'string', `status must be a string, got ${show(status)}`);
  check(parseStatusLine(status) !== null, `status must be "NNN reason": ${show(status)}`);
  check(Array.isArray(headers), `headers must be an array, got ${show(headers)}`);
  for (const pair of headers as HeaderList) {
    check(Array.isArray(pair) && pair.length === 2, `a header must be a [name, value] pair: ${show(pair)}`);
    const [name, value] = pair;
    check(typeof name === 'string' && isValidHeaderName(name), `bad header name ${show(name)}`);
    check(name.toLowerCase() !== 'status', 'the Status header conflicts with the CGI status (R-7)');
    check(!isHopByHop(name.toLowerCase()), `hop-by-hop header ${show(name)} (R-6)`);
    check(typeof value === 'string' && isValidHeaderValue(value), `bad header value ${show(value)} for ${name}`);
  }
}

function checkChunk(chunk: unknown, started: boolean): Chunk {
  check(started, 'the body produced a chunk before start_response was called (R-4)');
  check(typeof chunk === 'string' || chunk instanceof Uint8Array, `a body chunk must be a string or Uint8Array: ${show(chunk)}`);
  return chunk;
}

export interface ValidatedApp extends App {
  /** Bodies whose close() the server has not called yet; 0 once every exchange is over. */
  openBodies(): number;
}

export function validateApp(app: App): ValidatedApp {
  let open = 0;
  const wrapped = async (environ: Environ, startResponse: StartResponse): Promise<Body> => {
    checkEnviron(environ);
    let started = false;
    const sr: StartResponse = (status, headers, excInfo) => {
      check(!started || excInfo !== undefined, 'start_response called twice without exc_info (R-3)');
      checkStart(status, headers);
      started = true;
      const write = startResponse(status, headers, excInfo);
      return (chunk) => write(checkChunk(chunk, true));
    };
    const body = await app(environ, sr);
    check(typeof body !== 'string' && !(body instanceof Uint8Array), 'the body must be an iterable of chunks, not a bare string or bytes');
    check(body !== null && typeof body === 'object', `the body must be iterable, got ${show(body)}`);
    open++;
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      open--;
      const inner = (body as { close?: () => unknown }).close;
      if (typeof inner === 'function') inner.call(body);
    };
    if (typeof (body as Iterable<Chunk>)[Symbol.iterator] === 'function') {
      const inner = body as Iterable<Chunk>;
      return {
        *[Symbol.iterator]() {
          for (const chunk of inner) yield checkChunk(chunk, started);
        },
        close,
      } as Iterable<Chunk> & { close(): void };
    }
    const inner = body as AsyncIterable<Chunk>;
    check(typeof inner[Symbol.asyncIterator] === 'function', `the body is not iterable: ${show(body)}`);
    return {
      async *[Symbol.asyncIterator]() {
        for await (const chunk of inner) yield checkChunk(chunk, started);
      },
      close,
    } as AsyncIterable<Chunk> & { close(): void };
  };
  return Object.assign(wrapped, { openBodies: () => open });
}
