/**
 * One request to a FastCGI, SCGI, uwsgi or HTTP server, as a web server (or curl) would send it:
 * the client behind `gatewire request` (src/cli-request.ts), free of the command line so tests
 * and other callers can use it.
 *
 *   fastcgi://127.0.0.1:9000/ping                 fastcgi://unix:/run/php/php-fpm.sock:/ping
 *   scgi://[::1]:4000/app/items?x=1               scgi+unix://%2Frun%2Fapp.sock/app/items?x=1
 *   uwsgi://localhost:3031/                       uwsgi://unix:/run/uwsgi.sock
 *   http://127.0.0.1:8080/health                  http://localhost/health + unixSocket /run/app.sock
 *
 * Where to connect: HOST:PORT (`[V6]:PORT`; http:// defaults to port 80), or a unix socket given
 * three ways: `unixSocket` (the CLI's `--unix-socket PATH`, as curl's: the URL then gives only
 * the scheme, the host for SERVER_NAME/HTTP_HOST/Host, an optional port for SERVER_PORT, and the
 * path), nginx's `SCHEME://unix:SOCKET[:/PATH[?QUERY]]` (the socket path runs up to the first
 * `:`; without `:/PATH` the path is `/`), or `SCHEME+unix://ENCODED/PATH` with the socket path
 * percent-encoded as the host (`%2F` for `/`, as requests-unixsocket spells it).
 *
 * The params are only those built here from the URL and the caller's options (UP-36: nothing
 * from the process environment). FastCGI: one connection, BEGIN_REQUEST without FCGI_KEEP_CONN,
 * PARAMS in whole pairs, STDIN and its end record, then STDOUT/STDERR until END_REQUEST
 * (FastcgiResponseDecoder); or a GET_VALUES management record (id 0) answered by one
 * GET_VALUES_RESULT (getFastcgiValues). SCGI and uwsgi: the protocols' encoders, the answer read
 * to close. HTTP: node:http with no agent (one connection, `Connection: close`). The whole answer
 * is held in memory (a probe's answer), up to `maxResponseBytes` (64 MiB by default); the request
 * body is a Buffer the caller read whole.
 *
 * Failures reject with RequestFailure, whose `kind` gives the command's exit status (UP-35):
 * `connect` 3 (refused, no socket file, permission, unreachable, unknown host), `timeout` 4
 * (nothing complete within `timeout`, connecting included), `reset`, `protocol` and `too-large`
 * 5 (closed or reset before the answer was complete, bytes that are not the protocol or not a
 * response head, an answer over the cap). `onWire` sees every chunk written and read, for the
 * annotated dump of src/upstream/wire-dump.ts.
 */
import { Buffer } from 'node:buffer';
import * as http from 'node:http';
import { createConnection, type Socket } from 'node:net';
import { CGI_HEAD_LIMITS, CgiResponseParser, NphResponseParser } from '../../protocols/cgi/response.js';
import { encodeFastcgiRequest, encodeGetValues, encodeStdin, encodeStdinEnd, FastcgiResponseDecoder, protocolStatusName } from '../../protocols/fastcgi/client.js';
import { MANAGEMENT_VARIABLES } from '../../protocols/fastcgi/params.js';
import { encodeScgiRequest } from '../../protocols/scgi/encoder.js';
import { encodeUwsgiRequest } from '../../protocols/uwsgi/encoder.js';
import { SERVER_SOFTWARE } from '../environ.js';
import { GatewireError, ServerErrorCode } from '../errors.js';
import { OptionError } from '../options.js';
import type { UpstreamAddress } from './address.js';

export type RequestProtocol = 'fastcgi' | 'scgi' | 'uwsgi' | 'http';

/** A parsed `gatewire request` URL. */
export interface RequestTarget {
  protocol: RequestProtocol;
  /** Where to connect. */
  address: UpstreamAddress;
  /** The host the URL names (brackets of an IPv6 literal removed): SERVER_NAME, HTTP_HOST, Host. `localhost` for nginx's `unix:` form and `+unix`. */
  host: string;
  /** The port the URL names; undefined when it names none (SERVER_PORT is then 80). */
  port: number | undefined;
  /** The request path, starting with `/`, as written (not decoded). */
  path: string;
  /** The query string without `?`; undefined when the URL had no `?`. */
  query: string | undefined;
}

/** Why no answer came; each kind has its exit status (see {@link RequestFailure.exitCode}). */
export type RequestFailureKind = 'connect' | 'timeout' | 'reset' | 'protocol' | 'too-large';

/** Exit status of `gatewire request` per failure kind (UP-35). */
export const FAILURE_EXIT_CODES: Readonly<Record<RequestFailureKind, 3 | 4 | 5>> = { connect: 3, timeout: 4, reset: 5, protocol: 5, 'too-large': 5 };

/** No valid answer came: `kind` says why, the message names the upstream and the errno or the reason. */
export class RequestFailure extends GatewireError {
  override name = 'RequestFailure';
  override readonly code = ServerErrorCode.RequestFailed;
  constructor(
    readonly kind: RequestFailureKind,
    message: string,
  ) {
    super(message);
  }

  /** 3 connection failed, 4 timeout, 5 protocol error (garbage, reset, truncated, too large). */
  get exitCode(): 3 | 4 | 5 {
    return FAILURE_EXIT_CODES[this.kind];
  }
}

const FORMS =
  'SCHEME://HOST:PORT/PATH?QUERY, SCHEME://unix:/SOCKET:/PATH?QUERY, SCHEME+unix://%2FSOCKET/PATH, or --unix-socket SOCKET SCHEME://HOST/PATH (SCHEME: fastcgi, scgi, uwsgi, http)';

const SCHEMES: Record<string, RequestProtocol> = { fastcgi: 'fastcgi', fcgi: 'fastcgi', scgi: 'scgi', uwsgi: 'uwsgi', http: 'http' };

export interface ParseRequestUrlOptions {
  /** Connect to this unix socket instead (curl's `--unix-socket`): the URL gives scheme, host, port and path. */
  unixSocket?: string;
}

/** Parses a `gatewire request` URL; throws OptionError naming the accepted forms. */
export function parseRequestUrl(text: string, options: ParseRequestUrlOptions = {}): RequestTarget {
  const bad = (why: string): OptionError => new OptionError(`invalid URL ${JSON.stringify(text)}: ${why}`);
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/s.exec(text.trim());
  if (m === null) throw bad(`expected ${FORMS}`);
  const scheme = (m[1] as string).toLowerCase();
  const plusUnix = scheme.endsWith('+unix');
  const protocol = SCHEMES[plusUnix ? scheme.slice(0, -5) : scheme];
  if (protocol === undefined) throw bad(`unknown protocol ${JSON.stringify(scheme)}: expected ${FORMS}`);
  let rest = m[2] as string;
  const hash = rest.indexOf('#');
  if (hash !== -1) rest = rest.slice(0, hash);
  const unixSocket = options.unixSocket;
  if (unixSocket !== undefined && unixSocket === '') throw new OptionError('--unix-socket needs a socket path');
  let socket: string | undefined;
  let host = 'localhost';
  let port: number | undefined;
  let target: string;
  if (plusUnix) {
    const end = rest.search(/[/?]/);
    const encoded = end === -1 ? rest : rest.slice(0, end);
    target = end === -1 ? '/' : rest.slice(end);
    if (encoded === '') throw bad(`${scheme}:// takes the socket path percent-encoded as the host (${scheme}://%2Frun%2Fapp.sock/PATH), or use --unix-socket`);
    try {
      socket = decodeURIComponent(encoded);
    } catch {
      throw bad('the socket path is not valid percent-encoding');
    }
  } else if (rest.startsWith('unix:')) {
    const after = rest.slice(5);
    const colon = after.indexOf(':');
    socket = colon === -1 ? after : after.slice(0, colon);
    target = colon === -1 ? '/' : after.slice(colon + 1);
    if (socket === '') throw bad('unix: needs a socket path');
    if (!target.startsWith('/')) throw bad(`the request path after the socket path must start with "/" (${FORMS})`);
  } else {
    const a = /^(\[[0-9A-Fa-f:.]+\]|[^/?:[\]@\s]+)(?::([0-9]{1,5}))?(.*)$/s.exec(rest);
    if (a === null) throw bad(`expected HOST:PORT (${FORMS})`);
    host = (a[1] as string).replace(/^\[(.*)\]$/, '$1');
    if (a[2] !== undefined) {
      port = Number(a[2]);
      if (port < 1 || port > 65535) throw bad(`port ${a[2]} is not a port a server listens on`);
    } else if (protocol !== 'http' && unixSocket === undefined) {
      throw bad(`${protocol}:// has no default port: give HOST:PORT, or a socket with --unix-socket (${FORMS})`);
    }
    target = (a[3] as string) === '' ? '/' : (a[3] as string);
    if (!target.startsWith('/') && !target.startsWith('?')) throw bad(`expected HOST:PORT/PATH (${FORMS})`);
    if (target.startsWith('?')) target = `/${target}`;
  }
  if (socket !== undefined && unixSocket !== undefined) throw bad('the URL names a unix socket and --unix-socket gives another: give one');
  if (/[\0-\x20\x7f]/.test(target)) throw bad('the path and query must not contain spaces or control characters (percent-encode them)');
  const path = socket ?? unixSocket;
  const address: UpstreamAddress = path !== undefined ? { kind: 'unix', path } : { kind: 'tcp', host, port: port ?? 80 };
  const q = target.indexOf('?');
  return { protocol, address, host, port, path: q === -1 ? target : target.slice(0, q), query: q === -1 ? undefined : target.slice(q + 1) };
}

/** What to send, besides the target. */
export interface RequestInput {
  /** @default 'GET', or 'POST' with a body */
  method?: string;
  /** Request header fields (`-H`), in order; over FastCGI/SCGI/uwsgi they become HTTP_* params (Content-Type: CONTENT_TYPE). */
  headers?: ReadonlyArray<readonly [string, string]>;
  /** The request body; sets CONTENT_LENGTH (and CONTENT_TYPE application/x-www-form-urlencoded unless given). */
  body?: Buffer;
  /** Extra params (`--param`): replace a built one of the same name, else appended. Not for http://. */
  params?: ReadonlyArray<readonly [string, string]>;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function methodOf(input: RequestInput): string {
  const method = input.method ?? (input.body === undefined ? 'GET' : 'POST');
  if (!TOKEN.test(method)) throw new OptionError(`invalid method ${JSON.stringify(method)}`);
  return method;
}

function checkHeader(name: string, value: string): string {
  if (!TOKEN.test(name)) throw new OptionError(`invalid header name ${JSON.stringify(name)}`);
  if (/[\0\r\n]/.test(value)) throw new OptionError(`header ${name}: the value must not contain CR, LF or NUL`);
  const key = name.toUpperCase().replace(/-/g, '_');
  if (key === 'CONTENT_LENGTH') throw new OptionError('Content-Length comes from -d/--data; do not give it with -H');
  return key;
}

/** `host` or `[v6]`, with `:port` when the URL names one. */
function authorityOf(target: RequestTarget, omitPort?: number): string {
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  return target.port === undefined || target.port === omitPort ? host : `${host}:${target.port}`;
}

/**
 * The CGI variables a web server sends for this request, in order. SCGI/uwsgi: SCRIPT_NAME ""
 * and PATH_INFO = the path (the app is mounted at the root). FastCGI, as php-fpm expects (its
 * ping/status compare SCRIPT_NAME, and it needs a SCRIPT_FILENAME, UP-34): SCRIPT_NAME and
 * SCRIPT_FILENAME = the path, no PATH_INFO. SERVER_NAME is the URL's host, SERVER_PORT its port
 * (80 when it names none), HTTP_HOST both as written. `input.params` override or extend the list.
 */
export function buildRequestParams(target: RequestTarget, input: RequestInput = {}): Array<[string, string]> {
  if (target.protocol === 'http') throw new OptionError('http:// sends header fields, not CGI params: --param is for fastcgi://, scgi:// and uwsgi://');
  const method = methodOf(input);
  const params: Array<[string, string]> = [['GATEWAY_INTERFACE', 'CGI/1.1'], ['SERVER_SOFTWARE', SERVER_SOFTWARE], ['REQUEST_METHOD', method]];
  if (target.protocol === 'fastcgi') {
    params.push(['SCRIPT_NAME', target.path], ['SCRIPT_FILENAME', target.path]);
  } else {
    params.push(['SCRIPT_NAME', ''], ['PATH_INFO', target.path]);
  }
  params.push(
    ['QUERY_STRING', target.query ?? ''],
    ['REQUEST_URI', target.query === undefined ? target.path : `${target.path}?${target.query}`],
    ['SERVER_NAME', target.host],
    ['SERVER_PORT', String(target.port ?? 80)],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['REMOTE_ADDR', '127.0.0.1'],
  );
  let contentType: string | undefined;
  const fields = new Map<string, string>();
  for (const [name, value] of input.headers ?? []) {
    const key = checkHeader(name, value);
    if (key === 'CONTENT_TYPE') contentType = value;
    // `_` in a name would pass for `-` (nginx drops such fields; UP-24), `Proxy` is httpoxy.
    else if (name.includes('_')) throw new OptionError(`header name ${JSON.stringify(name)}: "_" would be read as "-"`);
    else if (key === 'PROXY') throw new OptionError('a Proxy header would become HTTP_PROXY (httpoxy): not sent');
    else fields.set(key, fields.has(key) ? `${fields.get(key) as string}, ${value}` : value);
  }
  if (input.body !== undefined) {
    params.push(['CONTENT_LENGTH', String(input.body.length)], ['CONTENT_TYPE', contentType ?? 'application/x-www-form-urlencoded']);
  } else if (contentType !== undefined) params.push(['CONTENT_TYPE', contentType]);
  if (!fields.has('HOST')) params.push(['HTTP_HOST', authorityOf(target)]);
  for (const [key, value] of fields) params.push([`HTTP_${key}`, value]);
  for (const [name, value] of input.params ?? []) {
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(name)) throw new OptionError(`invalid param name ${JSON.stringify(name)}`);
    const at = params.findIndex(([n]) => n === name);
    if (at === -1) params.push([name, value]);
    else params[at] = [name, value];
  }
  return params;
}

/** An HTTP request head, as {@link buildHttpRequest} builds it. */
export interface HttpRequestHead {
  method: string;
  /** Path and query, as in the request line. */
  path: string;
  /** The fields in order (names as given): Host first unless given, then `-H`, then Content-Type/Content-Length with a body. */
  headers: Array<[string, string]>;
}

/**
 * The head of an HTTP request, curl-like: `Host` from the URL (without `:80`) unless `-H` gives
 * one, the `-H` fields as given (repeats kept apart), and with a body its Content-Length and a
 * Content-Type of application/x-www-form-urlencoded unless given. `--param` cannot be sent.
 */
export function buildHttpRequest(target: RequestTarget, input: RequestInput = {}): HttpRequestHead {
  if ((input.params ?? []).length > 0) throw new OptionError('--param sets CGI params: http:// has none (give header fields with -H)');
  const method = methodOf(input);
  const given: Array<[string, string]> = [];
  let hasHost = false;
  let hasType = false;
  for (const [name, value] of input.headers ?? []) {
    const key = checkHeader(name, value);
    if (key === 'HOST') hasHost = true;
    if (key === 'CONTENT_TYPE') hasType = true;
    if (key === 'TRANSFER_ENCODING') throw new OptionError('Transfer-Encoding: the body is sent with its Content-Length');
    given.push([name, value]);
  }
  const headers: Array<[string, string]> = hasHost ? [] : [['Host', authorityOf(target, 80)]];
  headers.push(...given);
  if (input.body !== undefined) {
    if (!hasType) headers.push(['Content-Type', 'application/x-www-form-urlencoded']);
    headers.push(['Content-Length', String(input.body.length)]);
  }
  return { method, path: target.query === undefined ? target.path : `${target.path}?${target.query}`, headers };
}

/** A chunk on the wire: `>` written to the server, `<` read from it. */
export type WireListener = (direction: '>' | '<', chunk: Buffer) => void;

export interface RequestOptions {
  /** Total time for connect, send and the whole answer, in ms. @default 5000 */
  timeout?: number;
  /** The answer is held in memory up to this many bytes. @default 64 MiB */
  maxResponseBytes?: number;
  /** Sees every chunk written and read (the bytes are the caller's to keep). */
  onWire?: WireListener;
}

/** What came back. */
export interface RequestResult {
  /** The answer's status; 0 for a failed FastCGI request (appStatus ≠ 0, protocolStatus ≠ REQUEST_COMPLETE) that sent no valid head. */
  status: number;
  reason: string;
  /** The response head: over FastCGI/SCGI/uwsgi as the upstream sent it (status line or CGI fields, up to and including the empty line); over HTTP rebuilt from the parsed status line and fields. */
  head: Buffer;
  headers: Array<[string, string]>;
  body: Buffer;
  /** The response bytes as received: FastCGI STDOUT (records unwrapped); SCGI/uwsgi/HTTP the whole connection. */
  raw: Buffer;
  /** FastCGI STDERR, the application's error log. */
  stderr: Buffer;
  /** FastCGI END_REQUEST. */
  appStatus?: number;
  protocolStatus?: number;
  protocolStatusName?: string;
}

/** `fastcgi://127.0.0.1:9000`, `http://unix:/run/app.sock`: the upstream, for messages. */
export function describeUpstream(target: Pick<RequestTarget, 'protocol' | 'address'>): string {
  const a = target.address;
  if (a.kind === 'unix') return `${target.protocol}://unix:${a.path}`;
  const host = a.host ?? '127.0.0.1';
  return `${target.protocol}://${host.includes(':') ? `[${host}]` : host}:${a.port}`;
}

const CONNECT_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOENT: 'no such socket file',
  ENOTDIR: 'a part of the socket path is not a directory',
  EACCES: 'permission denied on the socket',
  EPERM: 'operation not permitted',
  EAGAIN: 'the socket backlog is full',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EADDRNOTAVAIL: 'address not available',
};

function errnoOf(err: NodeJS.ErrnoException): string {
  if (err.code !== undefined) return err.code;
  const inner = (err as { errors?: NodeJS.ErrnoException[] }).errors?.[0]; // AggregateError of autoSelectFamily
  return inner?.code ?? '';
}

/** A connection error, as a RequestFailure: before the connection was made (`connect`, or `timeout` for ETIMEDOUT) or after (`reset`). */
function connectionFailure(where: string, err: NodeJS.ErrnoException, connected: boolean): RequestFailure {
  const code = errnoOf(err);
  const tail = code === '' ? '' : ` (${code})`;
  // A reset, even one that beats the 'connect' event, comes after the handshake: the server
  // accepted and dropped the connection (a refusal is ECONNREFUSED).
  if (code === 'ECONNRESET') return new RequestFailure('reset', `${where}: the connection was reset before the answer was complete${tail}`);
  if (!connected) {
    if (code === 'ETIMEDOUT') return new RequestFailure('timeout', `${where}: connect timed out${tail}`);
    return new RequestFailure('connect', `${where}: cannot connect: ${CONNECT_ERRORS[code] ?? err.message}${tail}`);
  }
  if (code === 'EPIPE') return new RequestFailure('reset', `${where}: the connection was reset before the answer was complete${tail}`);
  return new RequestFailure('reset', `${where}: connection error: ${err.message}${tail}`);
}

interface ExchangeHandler {
  /** A chunk of the answer; returns true when the answer is complete. Throws RequestFailure. */
  data(chunk: Buffer): boolean;
  /** EOF: returns if the answer is complete, throws RequestFailure if not. */
  end(): void;
}

/**
 * One connection: connect, write `packets`, feed what comes to `handler` until it says the
 * answer is complete (or EOF), within `timeout` ms in all. Rejects with RequestFailure.
 */
function exchange(target: RequestTarget, packets: Buffer[], options: RequestOptions, handler: ExchangeHandler): Promise<void> {
  const timeout = options.timeout ?? 5000;
  const where = describeUpstream(target);
  const onWire = options.onWire;
  return new Promise<void>((resolve, reject) => {
    const a = target.address;
    const socket: Socket = a.kind === 'unix' ? createConnection({ path: a.path }) : createConnection({ host: a.host ?? '127.0.0.1', port: a.port });
    let settled = false;
    let connected = false;
    const settle = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err === undefined) resolve();
      else reject(err instanceof RequestFailure ? err : new RequestFailure('protocol', `${where}: ${(err as Error).message}`));
    };
    const timer = setTimeout(() => settle(new RequestFailure('timeout', `${where}: timeout: no complete answer within ${timeout} ms${connected ? '' : ' (still connecting)'}`)), timeout);
    socket.on('connect', () => {
      connected = true;
      for (const p of packets) {
        onWire?.('>', p);
        socket.write(p);
      }
    });
    socket.on('data', (chunk: Buffer) => {
      if (settled) return;
      onWire?.('<', Buffer.from(chunk));
      try {
        if (handler.data(chunk)) settle();
      } catch (err) {
        settle(err);
      }
    });
    socket.on('end', () => {
      if (settled) return;
      try {
        handler.end();
        settle();
      } catch (err) {
        settle(err);
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => settle(connectionFailure(where, err, connected)));
    socket.on('close', () => settle(new RequestFailure('reset', `${where}: the connection closed before an answer`)));
  });
}

/** Collects answer bytes up to the cap. */
class Collector {
  readonly chunks: Buffer[] = [];
  size = 0;
  constructor(
    private readonly max: number,
    private readonly where: string,
  ) {}
  take(data: Buffer, into: Buffer[] = this.chunks): void {
    this.size += data.length;
    if (this.size > this.max) throw new RequestFailure('too-large', `${this.where}: the answer is over ${this.max} bytes (held in memory: a probe's answer)`);
    into.push(Buffer.from(data)); // the decoder hands out views of the socket's chunk
  }
}

/**
 * Sends one FastCGI, SCGI or uwsgi request and resolves with the answer (any status). Rejects
 * with RequestFailure when no well-formed answer came; with OptionError for params the protocol
 * cannot carry (checked before connecting). For http:// use {@link sendHttpRequest}.
 */
export function sendRequest(target: RequestTarget, params: ReadonlyArray<readonly [string, string]>, body: Buffer = Buffer.alloc(0), options: RequestOptions = {}): Promise<RequestResult> {
  if (target.protocol === 'http') return Promise.reject(new OptionError('sendRequest() is for fastcgi://, scgi:// and uwsgi://: use sendHttpRequest() for http://'));
  const protocol = target.protocol;
  let packets: Buffer[];
  try {
    packets = encodeRequest(protocol, params, body);
  } catch (err) {
    return Promise.reject(new OptionError(`the request cannot be encoded: ${(err as Error).message}`));
  }
  const where = describeUpstream(target);
  const collect = new Collector(options.maxResponseBytes ?? 64 * 1024 * 1024, where);
  const stderr: Buffer[] = [];
  let end: { appStatus: number; protocolStatus: number } | undefined;
  let handler: ExchangeHandler;
  if (protocol === 'fastcgi') {
    const decoder = new FastcgiResponseDecoder({
      onStdout: (_id, data) => collect.take(data),
      onStderr: (_id, data) => collect.take(data, stderr),
      onEndRequest: (_id, appStatus, protocolStatus) => {
        end = { appStatus, protocolStatus };
      },
    });
    decoder.register(1);
    handler = {
      data(chunk) {
        try {
          decoder.push(chunk);
        } catch (err) {
          if (end !== undefined) return true; // bytes after END_REQUEST: the answer is complete
          throw err instanceof RequestFailure ? err : new RequestFailure('protocol', `${where}: not a FastCGI answer: ${(err as Error).message}`);
        }
        return end !== undefined;
      },
      end() {
        try {
          decoder.end();
        } catch (err) {
          throw new RequestFailure('reset', `${where}: the connection closed early: ${(err as Error).message}`);
        }
        throw new RequestFailure('reset', `${where}: the connection closed before END_REQUEST`);
      },
    };
  } else {
    handler = {
      data(chunk) {
        collect.take(chunk);
        return false;
      },
      end() {
        // read to close
      },
    };
  }
  return exchange(target, packets, options, handler).then(() => {
    const raw = Buffer.concat(collect.chunks);
    const ending = end === undefined ? {} : { appStatus: end.appStatus, protocolStatus: end.protocolStatus, protocolStatusName: protocolStatusName(end.protocolStatus) };
    let head;
    try {
      head = parseAnswer(protocol, raw);
    } catch (err) {
      // A FastCGI request that failed (OVERLOADED, appStatus ≠ 0) often sends no head at all: that
      // is the application's answer (exit 1), not a protocol error.
      if (end !== undefined && (end.appStatus !== 0 || end.protocolStatus !== 0)) return { status: 0, reason: '', head: Buffer.alloc(0), headers: [], body: raw, raw, stderr: Buffer.concat(stderr), ...ending };
      throw new RequestFailure('protocol', `${where}: the answer is not a valid response: ${(err as Error).message}`);
    }
    const bodiless = params.some(([n, v]) => n === 'REQUEST_METHOD' && v === 'HEAD') || head.status === 204 || head.status === 304 || head.status < 200;
    if (protocol !== 'fastcgi' && !bodiless) {
      // Read to close: a close short of the announced length is a cut answer (UP-12), not a short one.
      const length = head.headers.find(([n]) => n.toLowerCase() === 'content-length')?.[1];
      if (length !== undefined && /^[0-9]+$/.test(length) && head.body.length < Number(length)) {
        throw new RequestFailure('reset', `${where}: the connection closed ${Number(length) - head.body.length} bytes short of the Content-Length ${length}`);
      }
    }
    return {
      ...head,
      raw,
      stderr: Buffer.concat(stderr),
      ...ending,
    };
  });
}

function encodeRequest(protocol: 'fastcgi' | 'scgi' | 'uwsgi', params: ReadonlyArray<readonly [string, string]>, body: Buffer): Buffer[] {
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

/**
 * Sends one HTTP/1.1 request with node:http (no agent: its own connection, `Connection: close`)
 * and resolves with the answer; the same failures as {@link sendRequest}: a parse error of the
 * answer is `protocol`, a connection closed before the end of the body `reset`.
 */
export function sendHttpRequest(target: RequestTarget, request: HttpRequestHead, body: Buffer | undefined, options: RequestOptions = {}): Promise<RequestResult> {
  const timeout = options.timeout ?? 5000;
  const where = describeUpstream(target);
  const collect = new Collector(options.maxResponseBytes ?? 64 * 1024 * 1024, where);
  const onWire = options.onWire;
  const wire: Buffer[] = [];
  const a = target.address;
  return new Promise<RequestResult>((resolve, reject) => {
    let req: http.ClientRequest;
    try {
      req = http.request({
        agent: false,
        method: request.method,
        path: request.path,
        headers: request.headers.flat(),
        ...(a.kind === 'unix' ? { socketPath: a.path } : { host: a.host ?? '127.0.0.1', port: a.port }),
      });
    } catch (err) {
      reject(new OptionError(`the request cannot be sent: ${(err as Error).message}`));
      return;
    }
    let settled = false;
    let connected = false;
    const settle = (err: unknown, result?: RequestResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      if (result !== undefined) resolve(result);
      else reject(err);
    };
    const timer = setTimeout(() => settle(new RequestFailure('timeout', `${where}: timeout: no complete answer within ${timeout} ms${connected ? '' : ' (still connecting)'}`)), timeout);
    req.on('socket', (socket: Socket) => {
      socket.once('connect', () => {
        connected = true;
        const head = (req as unknown as { _header?: string })._header;
        if (onWire !== undefined && typeof head === 'string') onWire('>', Buffer.from(head, 'latin1'));
        if (onWire !== undefined && body !== undefined && body.length > 0) onWire('>', body);
      });
      socket.on('data', (chunk: Buffer) => {
        wire.push(Buffer.from(chunk));
        onWire?.('<', Buffer.from(chunk));
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      const code = errnoOf(err);
      if (code.startsWith('HPE_')) settle(new RequestFailure('protocol', `${where}: not an HTTP answer: ${err.message} (${code})`));
      else settle(connectionFailure(where, err, connected));
    });
    req.on('response', (res: http.IncomingMessage) => {
      res.on('data', (chunk: Buffer) => {
        try {
          collect.take(chunk);
        } catch (err) {
          settle(err);
        }
      });
      const cut = (): RequestFailure => new RequestFailure('reset', `${where}: the connection closed before the end of the body (${collect.size} bytes of it came)`);
      res.on('aborted', () => settle(cut()));
      res.on('error', () => settle(cut()));
      res.on('end', () => {
        if (!res.complete) {
          settle(cut());
          return;
        }
        const headers: Array<[string, string]> = [];
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) headers.push([res.rawHeaders[i] as string, res.rawHeaders[i + 1] as string]);
        const head = `HTTP/${res.httpVersion} ${res.statusCode ?? 0} ${res.statusMessage ?? ''}\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
        settle(undefined, {
          status: res.statusCode ?? 0,
          reason: res.statusMessage ?? '',
          head: Buffer.from(head, 'latin1'),
          headers,
          body: Buffer.concat(collect.chunks),
          raw: Buffer.concat(wire),
          stderr: Buffer.alloc(0),
        });
      });
    });
    req.end(body);
  });
}

/** The names a GET_VALUES asks for by default: FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS (spec §4.1). */
export const DEFAULT_GET_VALUES: readonly string[] = MANAGEMENT_VARIABLES;

/**
 * FastCGI management query: one GET_VALUES record (request id 0) asking for `names`, resolved
 * with the pairs of the first GET_VALUES_RESULT as they came (UP-37: names not asked for, missing
 * names and non-numeric values included). An UNKNOWN_TYPE answer, any other record or EOF before
 * the result is `protocol`; silence is `timeout`.
 */
export function getFastcgiValues(target: RequestTarget, names: readonly string[] = DEFAULT_GET_VALUES, options: RequestOptions = {}): Promise<Array<[string, string]>> {
  if (target.protocol !== 'fastcgi') return Promise.reject(new OptionError(`GET_VALUES is a FastCGI management record: the URL must be fastcgi://, not ${target.protocol}://`));
  let packet: Buffer;
  try {
    for (const n of names) if (n === '' || /[^\x21-\x7e]/.test(n)) throw new Error(`invalid name ${JSON.stringify(n)}`);
    packet = encodeGetValues(names);
  } catch (err) {
    return Promise.reject(new OptionError(`--get-values: ${(err as Error).message}`));
  }
  const where = describeUpstream(target);
  let result: Array<[string, string]> | undefined;
  let unknown: number | undefined;
  const decoder = new FastcgiResponseDecoder({
    onGetValuesResult: (pairs) => {
      result ??= pairs;
    },
    onUnknownType: (type) => {
      unknown = type;
    },
  });
  const handler: ExchangeHandler = {
    data(chunk) {
      try {
        decoder.push(chunk);
      } catch (err) {
        if (result !== undefined) return true;
        throw new RequestFailure('protocol', `${where}: not a FastCGI answer: ${(err as Error).message}`);
      }
      if (result === undefined && unknown !== undefined) throw new RequestFailure('protocol', `${where}: the application answered UNKNOWN_TYPE (type ${unknown}): it does not know GET_VALUES`);
      return result !== undefined;
    },
    end() {
      throw new RequestFailure('protocol', `${where}: the connection closed before a GET_VALUES_RESULT`);
    },
  };
  return exchange(target, [packet], options, handler).then(() => result as Array<[string, string]>);
}

/** The exit code of `gatewire request` for an answer: 0 for 1xx-3xx, 1 for 4xx/5xx or a failed FastCGI request. */
export function exitCodeFor(result: RequestResult): 0 | 1 {
  if (result.appStatus !== undefined && result.appStatus !== 0) return 1;
  if (result.protocolStatus !== undefined && result.protocolStatus !== 0) return 1;
  return result.status >= 400 ? 1 : 0;
}
