/**
 * One request to a FastCGI, SCGI or uwsgi application server, as a web server would send it:
 * the client behind `gatewire request` (src/cli-request.ts), free of the command line so tests
 * and other callers can use it.
 *
 *   fastcgi://127.0.0.1:9000/ping                 fastcgi://unix:/run/php/php-fpm.sock:/ping
 *   scgi://[::1]:4000/app/items?x=1               scgi://unix:/run/app.sock:/app/items?x=1
 *   uwsgi://localhost:3031/                       uwsgi://unix:/run/uwsgi.sock
 *
 * Unix form: `SCHEME://unix:SOCKET[:/PATH[?QUERY]]`: the socket path runs up to the first `:`
 * (a socket path with a `:` cannot be given); without `:/PATH` the request path is `/`.
 *
 * The params are only those built here from the URL and the caller's options (UP-36: nothing
 * from the process environment). FastCGI: one connection, BEGIN_REQUEST without FCGI_KEEP_CONN,
 * PARAMS in whole pairs, STDIN and its end record, then STDOUT/STDERR until END_REQUEST
 * (FastcgiResponseDecoder). SCGI and uwsgi: the protocols' encoders, the answer read to close.
 * The whole answer is held in memory (a probe's answer), up to `maxResponseBytes`.
 */
import { Buffer } from 'node:buffer';
import { createConnection, type Socket } from 'node:net';
import { CGI_HEAD_LIMITS, CgiResponseParser, NphResponseParser } from '../../protocols/cgi/response.js';
import { encodeFastcgiRequest, encodeStdin, encodeStdinEnd, FastcgiResponseDecoder, protocolStatusName } from '../../protocols/fastcgi/client.js';
import { encodeScgiRequest } from '../../protocols/scgi/encoder.js';
import { encodeUwsgiRequest } from '../../protocols/uwsgi/encoder.js';
import { SERVER_SOFTWARE } from '../environ.js';
import { GatewireError, ServerErrorCode } from '../errors.js';
import { OptionError } from '../options.js';
import type { UpstreamAddress } from './address.js';

export type RequestProtocol = 'fastcgi' | 'scgi' | 'uwsgi';

/** A parsed `gatewire request` URL. */
export interface RequestTarget {
  protocol: RequestProtocol;
  address: UpstreamAddress;
  /** The request path, starting with `/`, as written (not decoded). */
  path: string;
  /** The query string without `?`; undefined when the URL had no `?`. */
  query: string | undefined;
}

/** Why no answer came: the command exits 3 with `message` as its one stderr line. */
export type RequestFailureKind = 'connect' | 'timeout' | 'reset' | 'protocol' | 'too-large';

/** No valid answer came (the command exits 3): `kind` says why, the message names the upstream. */
export class RequestFailure extends GatewireError {
  override name = 'RequestFailure';
  override readonly code = ServerErrorCode.RequestFailed;
  constructor(
    readonly kind: RequestFailureKind,
    message: string,
  ) {
    super(message);
  }
}

const FORMS = 'fastcgi://HOST:PORT/PATH?QUERY or fastcgi://unix:/SOCKET:/PATH?QUERY (also scgi://, uwsgi://)';

/** Parses a `gatewire request` URL; throws OptionError naming the accepted forms. */
export function parseRequestUrl(text: string): RequestTarget {
  const bad = (why: string): OptionError => new OptionError(`invalid URL ${JSON.stringify(text)}: ${why}`);
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/s.exec(text.trim());
  if (m === null) throw bad(`expected ${FORMS}`);
  let scheme = (m[1] as string).toLowerCase();
  if (scheme === 'fcgi') scheme = 'fastcgi';
  if (scheme !== 'fastcgi' && scheme !== 'scgi' && scheme !== 'uwsgi') throw bad(`unknown protocol ${JSON.stringify(scheme)}: expected ${FORMS}`);
  const protocol: RequestProtocol = scheme;
  let rest = m[2] as string;
  const hash = rest.indexOf('#');
  if (hash !== -1) rest = rest.slice(0, hash);
  let address: UpstreamAddress;
  let target: string;
  if (rest.startsWith('unix:')) {
    const after = rest.slice(5);
    const colon = after.indexOf(':');
    const socket = colon === -1 ? after : after.slice(0, colon);
    target = colon === -1 ? '/' : after.slice(colon + 1);
    if (socket === '') throw bad('unix: needs a socket path');
    if (!target.startsWith('/')) throw bad(`the request path after the socket path must start with "/" (${FORMS})`);
    address = { kind: 'unix', path: socket };
  } else {
    const a = /^(\[[0-9A-Fa-f:.]+\]|[^/?:[\]@\s]+):([0-9]{1,5})(.*)$/s.exec(rest);
    if (a === null) throw bad(`expected HOST:PORT (${FORMS})`);
    const port = Number(a[2]);
    if (port < 1 || port > 65535) throw bad(`port ${a[2] as string} is not a port an upstream listens on`);
    const host = (a[1] as string).replace(/^\[(.*)\]$/, '$1');
    target = (a[3] as string) === '' ? '/' : (a[3] as string);
    if (!target.startsWith('/') && !target.startsWith('?')) throw bad(`expected HOST:PORT/PATH (${FORMS})`);
    if (target.startsWith('?')) target = `/${target}`;
    address = { kind: 'tcp', host, port };
  }
  if (/[\0-\x20\x7f]/.test(target)) throw bad('the path and query must not contain spaces or control characters (percent-encode them)');
  const q = target.indexOf('?');
  return { protocol, address, path: q === -1 ? target : target.slice(0, q), query: q === -1 ? undefined : target.slice(q + 1) };
}

/** What to send, besides the target. */
export interface RequestInput {
  /** @default 'GET', or 'POST' with a body */
  method?: string;
  /** Request header fields (`-H`), in order; they become HTTP_* params (Content-Type: CONTENT_TYPE). */
  headers?: ReadonlyArray<readonly [string, string]>;
  /** The request body; sets CONTENT_LENGTH (and CONTENT_TYPE application/x-www-form-urlencoded unless given). */
  body?: Buffer;
  /** Extra params (`--param`): replace a built one of the same name, else appended. */
  params?: ReadonlyArray<readonly [string, string]>;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * The CGI variables a web server sends for this request, in order. SCGI/uwsgi: SCRIPT_NAME ""
 * and PATH_INFO = the path (the app is mounted at the root). FastCGI, as php-fpm expects (its
 * ping/status compare SCRIPT_NAME, and it needs a SCRIPT_FILENAME, UP-34): SCRIPT_NAME and
 * SCRIPT_FILENAME = the path, no PATH_INFO. `input.params` override or extend the list.
 */
export function buildRequestParams(target: RequestTarget, input: RequestInput = {}): Array<[string, string]> {
  const method = input.method ?? (input.body === undefined ? 'GET' : 'POST');
  if (!TOKEN.test(method)) throw new OptionError(`invalid method ${JSON.stringify(method)}`);
  const a = target.address;
  const serverName = a.kind === 'tcp' ? (a.host ?? '127.0.0.1') : 'localhost';
  const serverPort = a.kind === 'tcp' ? String(a.port) : '80';
  const authority = a.kind === 'tcp' ? `${serverName.includes(':') ? `[${serverName}]` : serverName}:${serverPort}` : 'localhost';
  const params: Array<[string, string]> = [['GATEWAY_INTERFACE', 'CGI/1.1'], ['SERVER_SOFTWARE', SERVER_SOFTWARE], ['REQUEST_METHOD', method]];
  if (target.protocol === 'fastcgi') {
    params.push(['SCRIPT_NAME', target.path], ['SCRIPT_FILENAME', target.path]);
  } else {
    params.push(['SCRIPT_NAME', ''], ['PATH_INFO', target.path]);
  }
  params.push(
    ['QUERY_STRING', target.query ?? ''],
    ['REQUEST_URI', target.query === undefined ? target.path : `${target.path}?${target.query}`],
    ['SERVER_NAME', serverName],
    ['SERVER_PORT', serverPort],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['REMOTE_ADDR', '127.0.0.1'],
  );
  let contentType: string | undefined;
  const fields = new Map<string, string>();
  for (const [name, value] of input.headers ?? []) {
    if (!TOKEN.test(name)) throw new OptionError(`invalid header name ${JSON.stringify(name)}`);
    if (/[\0\r\n]/.test(value)) throw new OptionError(`header ${name}: the value must not contain CR, LF or NUL`);
    const key = name.toUpperCase().replace(/-/g, '_');
    if (key === 'CONTENT_LENGTH') throw new OptionError('Content-Length comes from -d/--data; do not give it with -H');
    if (key === 'CONTENT_TYPE') contentType = value;
    // `_` in a name would pass for `-` (nginx drops such fields; UP-24), `Proxy` is httpoxy.
    else if (name.includes('_')) throw new OptionError(`header name ${JSON.stringify(name)}: "_" would be read as "-"`);
    else if (key === 'PROXY') throw new OptionError('a Proxy header would become HTTP_PROXY (httpoxy): not sent');
    else fields.set(key, fields.has(key) ? `${fields.get(key) as string}, ${value}` : value);
  }
  if (input.body !== undefined) {
    params.push(['CONTENT_LENGTH', String(input.body.length)], ['CONTENT_TYPE', contentType ?? 'application/x-www-form-urlencoded']);
  } else if (contentType !== undefined) params.push(['CONTENT_TYPE', contentType]);
  if (!fields.has('HOST')) params.push(['HTTP_HOST', authority]);
  for (const [key, value] of fields) params.push([`HTTP_${key}`, value]);
  for (const [name, value] of input.params ?? []) {
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(name)) throw new OptionError(`invalid param name ${JSON.stringify(name)}`);
    const at = params.findIndex(([n]) => n === name);
    if (at === -1) params.push([name, value]);
    else params[at] = [name, value];
  }
  return params;
}

export interface RequestOptions {
  /** Total time for connect, send and the whole answer, in ms. @default 5000 */
  timeout?: number;
  /** The answer is held in memory up to this many bytes. @default 64 MiB */
  maxResponseBytes?: number;
}

/** What came back. */
export interface RequestResult {
  status: number;
  reason: string;
  /** The response head as the upstream sent it (status line or CGI fields, up to and including the empty line). */
  head: Buffer;
  headers: Array<[string, string]>;
  body: Buffer;
  /** The response bytes as received: FastCGI STDOUT (records unwrapped); SCGI/uwsgi the whole connection. */
  raw: Buffer;
  /** FastCGI STDERR, the application's error log. */
  stderr: Buffer;
  /** FastCGI END_REQUEST. */
  appStatus?: number;
  protocolStatus?: number;
  protocolStatusName?: string;
}

function describeAddress(a: UpstreamAddress): string {
  if (a.kind === 'unix') return `unix:${a.path}`;
  const host = a.host ?? '127.0.0.1';
  return `${host.includes(':') ? `[${host}]` : host}:${a.port}`;
}

/**
 * Sends one request and resolves with the answer (any status). Rejects with RequestFailure when
 * no well-formed answer came: connection refused or failed, reset or closed early, timeout,
 * bytes that are not the protocol, an answer over `maxResponseBytes`; OptionError for
 * params the protocol cannot carry.
 */
export function sendRequest(target: RequestTarget, params: ReadonlyArray<readonly [string, string]>, body: Buffer = Buffer.alloc(0), options: RequestOptions = {}): Promise<RequestResult> {
  const timeout = options.timeout ?? 5000;
  const maxBytes = options.maxResponseBytes ?? 64 * 1024 * 1024;
  let packets: Buffer[];
  try {
    packets = encodeRequest(target.protocol, params, body);
  } catch (err) {
    return Promise.reject(new OptionError(`the request cannot be encoded: ${(err as Error).message}`));
  }
  const where = `${target.protocol}://${describeAddress(target.address)}`;
  return new Promise<RequestResult>((resolve, reject) => {
    const a = target.address;
    const socket: Socket = a.kind === 'unix' ? createConnection({ path: a.path }) : createConnection({ host: a.host ?? '127.0.0.1', port: a.port });
    let settled = false;
    let connected = false;
    const chunks: Buffer[] = [];
    const stderr: Buffer[] = [];
    let size = 0;
    let end: { appStatus: number; protocolStatus: number } | undefined;
    const fail = (kind: RequestFailureKind, message: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(new RequestFailure(kind, `${where}: ${message}`));
    };
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const raw = Buffer.concat(chunks);
      try {
        const head = parseAnswer(target.protocol, raw);
        resolve({
          ...head,
          raw,
          stderr: Buffer.concat(stderr),
          ...(end === undefined ? {} : { appStatus: end.appStatus, protocolStatus: end.protocolStatus, protocolStatusName: protocolStatusName(end.protocolStatus) }),
        });
      } catch (err) {
        reject(new RequestFailure('protocol', `${where}: the answer is not a valid response: ${(err as Error).message}`));
      }
    };
    const take = (data: Buffer, into: Buffer[]): void => {
      size += data.length;
      if (size > maxBytes) fail('too-large', `the answer is over ${maxBytes} bytes`);
      else into.push(Buffer.from(data)); // the decoder hands out views of the socket's chunk
    };
    const timer = setTimeout(() => fail('timeout', `no complete answer within ${timeout} ms${connected ? '' : ' (still connecting)'}`), timeout);

    const decoder =
      target.protocol === 'fastcgi'
        ? new FastcgiResponseDecoder({
            onStdout: (_id, data) => take(data, chunks),
            onStderr: (_id, data) => take(data, stderr),
            onEndRequest: (_id, appStatus, protocolStatus) => {
              end = { appStatus, protocolStatus };
              finish();
            },
          })
        : undefined;
    decoder?.register(1);

    socket.on('connect', () => {
      connected = true;
      for (const p of packets) socket.write(p);
    });
    socket.on('data', (chunk: Buffer) => {
      if (settled) return;
      if (decoder === undefined) {
        take(chunk, chunks);
        return;
      }
      try {
        decoder.push(chunk);
      } catch (err) {
        fail('protocol', `not a FastCGI answer: ${(err as Error).message}`);
      }
    });
    socket.on('end', () => {
      if (settled) return;
      if (decoder === undefined) {
        finish();
        return;
      }
      try {
        decoder.end();
        fail('reset', 'the connection closed before END_REQUEST');
      } catch (err) {
        fail('reset', `the connection closed early: ${(err as Error).message}`);
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? '';
      if (!connected) {
        const why: Record<string, string> = {
          ECONNREFUSED: 'connection refused',
          ENOENT: 'no such socket file',
          EACCES: 'permission denied on the socket',
          EAGAIN: 'the socket backlog is full',
          ENOTFOUND: 'host not found',
          EAI_AGAIN: 'host name lookup failed',
        };
        fail('connect', `cannot connect: ${why[code] ?? err.message}${code === '' ? '' : ` (${code})`}`);
      } else if (code === 'ECONNRESET' || code === 'EPIPE') fail('reset', `the connection was reset (${code})`);
      else fail('reset', `connection error: ${err.message}`);
    });
    socket.on('close', () => {
      if (!settled) fail('reset', 'the connection closed before an answer');
    });
  });
}

function encodeRequest(protocol: RequestProtocol, params: ReadonlyArray<readonly [string, string]>, body: Buffer): Buffer[] {
  if (protocol === 'fastcgi') {
    const [begin, paramsBuf] = encodeFastcgiRequest(1, { keepConn: false, params });
    const out: Buffer[] = [begin, paramsBuf];
    if (body.length > 0) for (const r of encodeStdin(1, body)) out.push(Buffer.from(r.buffer, r.byteOffset, r.byteLength));
    out.push(encodeStdinEnd(1));
    return out;
  }
  if (protocol === 'scgi') {
    return [encodeScgiRequest(params.filter(([n]) => n !== 'CONTENT_LENGTH'), body.length), body];
  }
  const vars = params.some(([n]) => n === 'CONTENT_LENGTH') ? params : [...params, ['CONTENT_LENGTH', String(body.length)] as const];
  return [encodeUwsgiRequest(vars), body];
}

const HTTP_PREFIX = 'HTTP/';

/** The head of the answer: a CGI head (FastCGI, SCGI), or a status line and fields (uwsgi, NPH SCGI). */
function parseAnswer(protocol: RequestProtocol, raw: Buffer): Pick<RequestResult, 'status' | 'reason' | 'head' | 'headers' | 'body'> {
  const nph = protocol === 'uwsgi' || (protocol === 'scgi' && raw.subarray(0, HTTP_PREFIX.length).toString('latin1') === HTTP_PREFIX);
  // Roomier than a proxy's limits: this is a probe printing what it got.
  const limits = { maxHeaderBytes: 1024 * 1024, maxLineBytes: 256 * 1024, maxHeaderFields: 10_000 };
  const parser = nph ? new NphResponseParser(limits) : new CgiResponseParser({ ...CGI_HEAD_LIMITS, ...limits });
  const head = parser.push(raw);
  if (head === undefined) {
    parser.end(); // throws: incomplete head
    throw new Error('incomplete response head');
  }
  const headers = head.headers.slice();
  if ('removed' in head) headers.push(...head.removed);
  return { status: head.status, reason: head.reason, head: raw.subarray(0, head.headBytes), headers, body: head.rest };
}

/** The exit code of `gatewire request` for an answer: 0 for 1xx-3xx, 1 for 4xx/5xx or a failed FastCGI request. */
export function exitCodeFor(result: RequestResult): 0 | 1 {
  if (result.appStatus !== undefined && result.appStatus !== 0) return 1;
  if (result.protocolStatus !== undefined && result.protocolStatus !== 0) return 1;
  return result.status >= 400 ? 1 : 0;
}
