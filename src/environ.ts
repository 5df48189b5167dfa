/**
 * CGI meta-variable rules, once for every front (E-1..E-16, docs/conformance.md §7).
 * Pure functions over strings; the fronts call them and attach the server-owned keys.
 */
import type { CgiVars } from './app.js';
import { GatewireError, ServerErrorCode } from './errors.js';

/** An error in a request that the front answers with `status` (400, 404, 413, 501, 505, ...). */
export class RequestError extends GatewireError {
  override name = 'RequestError';
  override readonly code = ServerErrorCode.RequestRefused;
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export const SERVER_SOFTWARE = 'gatewire/0.1.0';

/** `""` or `/x/y`: leading slash, no trailing slash (E-5 config). */
export function normalizeMount(prefix: string | undefined): string {
  if (!prefix) return '';
  let p = prefix.startsWith('/') ? prefix : `/${prefix}`;
  while (p.endsWith('/')) p = p.slice(0, -1);
  return p;
}

const HEX: Record<string, number> = {};
for (let i = 0; i < 16; i++) {
  HEX[i.toString(16)] = i;
  HEX[i.toString(16).toUpperCase()] = i;
}

/**
 * Percent-decodes a URL path into a latin1 byte string (E-1, E-5.3): every valid `%XX`, `%2F`
 * included, becomes one char; a malformed `%` stays literal. Returns null for a decoded NUL (H-8).
 */
export function percentDecodePath(path: string): string | null {
  let i = path.indexOf('%');
  if (i === -1) return path;
  let out = path.slice(0, i);
  while (i < path.length) {
    const c = path.charCodeAt(i);
    if (c === 0x25 && i + 2 < path.length) {
      const hi = HEX[path[i + 1] as string];
      const lo = HEX[path[i + 2] as string];
      if (hi !== undefined && lo !== undefined) {
        const byte = hi * 16 + lo;
        if (byte === 0) return null;
        out += String.fromCharCode(byte);
        i += 3;
        continue;
      }
    }
    out += path[i];
    i++;
  }
  return out;
}

/** Splits a decoded path by the mount prefix (E-5.1). Null when the path is outside the mount. */
export function splitMount(path: string, mount: string): [scriptName: string, pathInfo: string] | null {
  if (mount === '') return ['', path];
  if (path === mount) return [mount, ''];
  if (path.startsWith(mount) && path.charCodeAt(mount.length) === 0x2f) return [mount, path.slice(mount.length)];
  return null;
}

/** `::ffff:127.0.0.1` → `127.0.0.1` (H-11, E-14). */
export function normalizeRemoteAddr(addr: string | undefined): string {
  if (addr === undefined) return '';
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}

const HEADER_NAME_OK = /^[A-Za-z0-9-]+$/;
const headerKeyCache = new Map<string, string | null>();

/**
 * The environ key for a request header name (E-12): `HTTP_` + upper case with `-` → `_`.
 * Null for names that must not be mapped: characters outside [A-Za-z0-9-] (H-5), `Proxy`
 * (httpoxy), and Content-Length/Content-Type/Transfer-Encoding, which have their own handling.
 */
export function headerKey(name: string): string | null {
  let key = headerKeyCache.get(name);
  if (key !== undefined) return key;
  if (!HEADER_NAME_OK.test(name)) {
    key = null;
  } else {
    const lower = name.toLowerCase();
    key =
      lower === 'proxy' || lower === 'content-length' || lower === 'content-type' || lower === 'transfer-encoding'
        ? null
        : `HTTP_${name.toUpperCase().replace(/-/g, '_')}`;
  }
  if (headerKeyCache.size < 2000) headerKeyCache.set(name, key);
  return key;
}

/** Joins a repeated header or param: `; ` for cookies, `, ` otherwise (E-12). */
export function joinRepeated(key: string, first: string, next: string): string {
  return key === 'HTTP_COOKIE' ? `${first}; ${next}` : `${first}, ${next}`;
}

/** What the HTTP front needs to know about a request's header block, gathered in one pass. */
export interface HeaderFacts {
  hostCount: number;
  host: string | undefined;
  transferEncoding: string | undefined;
}

/** Maps Node's rawHeaders (name, value, name, value, ...) into `vars` (E-12, H-5). */
export function mapRequestHeaders(rawHeaders: readonly string[], vars: CgiVars): HeaderFacts {
  const facts: HeaderFacts = { hostCount: 0, host: undefined, transferEncoding: undefined };
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    const value = rawHeaders[i + 1] as string;
    const key = headerKey(name);
    if (key === null) {
      const lower = name.toLowerCase();
      if (lower === 'transfer-encoding') {
        facts.transferEncoding = facts.transferEncoding === undefined ? value : `${facts.transferEncoding}, ${value}`;
      } else if (lower === 'content-type') {
        vars.CONTENT_TYPE = value;
      } else if (lower === 'content-length') {
        vars.CONTENT_LENGTH = value;
      }
      continue;
    }
    if (key === 'HTTP_HOST') {
      facts.hostCount++;
      facts.host = value;
    }
    const prev = vars[key];
    vars[key] = prev === undefined ? value : joinRepeated(key, prev, value);
  }
  return facts;
}

/** H-2: the combined Transfer-Encoding list must be exactly one `chunked` (empty elements ignored). */
export function isPlainChunked(te: string): boolean {
  let seen = 0;
  for (const part of te.split(',')) {
    const t = part.trim();
    if (t === '') continue;
    if (t.toLowerCase() !== 'chunked') return false;
    seen++;
  }
  return seen === 1;
}

const HOST_OK = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::[0-9]*)?$/;

/** H-1: a Host value is `host[:port]` (reg-name, IPv4 or bracketed IPv6). */
export function isValidHost(host: string): boolean {
  return HOST_OK.test(host);
}

/** SERVER_NAME from a Host value: the host without the port; `[v6]` keeps its brackets (E-8). */
export function hostName(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end === -1 ? host : host.slice(0, end + 1);
  }
  const colon = host.indexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

const CGI_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** E-2: the syntax a CGI key from the wire must have. */
export function isCgiKey(key: string): boolean {
  return CGI_KEY.test(key);
}

/**
 * E-4: CONTENT_LENGTH must be ASCII digits, no sign or space (null otherwise: 400). A number too
 * long to be exact is Infinity, so it meets every size limit (413), as §2.4 asks.
 */
export function parseContentLength(value: string): number | null {
  if (value.length === 0 || !/^[0-9]+$/.test(value)) return null;
  return value.length > 15 ? Number.POSITIVE_INFINITY : Number(value);
}

/** Options for turning a gateway's params into an environ. */
export interface GatewayEnvironOptions {
  mount: string;
  /** SERVER_NAME fallback (E-3): the local address of the listener (a function: read only when needed). */
  localAddress: string | (() => string);
  /** Largest CONTENT_LENGTH accepted; beyond it the request is answered 413. */
  maxBodyBytes: number;
  /** uwsgi modifier1 30 (U-7): strip SCRIPT_NAME from PATH_INFO on a segment boundary. */
  stripScriptName?: boolean;
}

/**
 * Builds the CGI part of an environ from the name/value pairs a web server sent over FastCGI,
 * SCGI or uwsgi: key syntax (E-2), defaults (E-3), empty CONTENT_* removed (E-4), SCRIPT_NAME /
 * PATH_INFO repair by the mount (E-5.2), duplicates joined and HTTP_PROXY dropped (E-12),
 * HTTP_TRANSFER_ENCODING dropped next to a CONTENT_LENGTH (E-17), the rest passed through
 * unchanged (E-15). Throws RequestError for what must be refused. `vars` is the
 * object to fill: a front passes `newVars(ctx)` so the environ keeps V8's fast mode.
 */
export function gatewayVars(pairs: Iterable<readonly [string, string]>, opts: GatewayEnvironOptions, vars: CgiVars = {}): CgiVars {
  for (const [key, value] of pairs) {
    if (!isCgiKey(key) || key === 'HTTP_PROXY') continue;
    // F-23: CGI values are text and never hold NUL; a name with NUL was dropped just above.
    if (value.includes('\0')) throw new RequestError(400, `NUL byte in the value of ${key}`);
    const prev = vars[key];
    // E-4: an empty CONTENT_TYPE / CONTENT_LENGTH (what *_params send for a GET) is no value, and
    // HTTP_CONTENT_* are never passed on. Skipped here rather than deleted afterwards: a delete
    // takes the object out of V8's fast mode (several µs and more garbage per request).
    if ((value === '' && (key === 'CONTENT_TYPE' || key === 'CONTENT_LENGTH')) || key === 'HTTP_CONTENT_LENGTH' || key === 'HTTP_CONTENT_TYPE') {
      if (prev !== undefined) delete vars[key]; // an earlier duplicate (rare)
      continue;
    }
    // E-17: next to a CONTENT_LENGTH, the Transfer-Encoding the web server already decoded (nginx
    // and Apache send its CONTENT_LENGTH first) is not the body's framing any more.
    if (key === 'HTTP_TRANSFER_ENCODING' && vars.CONTENT_LENGTH !== undefined) continue;
    vars[key] = prev !== undefined && key.startsWith('HTTP_') ? joinRepeated(key, prev, value) : value;
  }
  if (!vars.REQUEST_METHOD) throw new RequestError(400, 'REQUEST_METHOD missing');
  // E-17, the other order (CONTENT_LENGTH after the field): rare, so the delete costs little.
  if (vars.HTTP_TRANSFER_ENCODING !== undefined && vars.CONTENT_LENGTH !== undefined) delete vars.HTTP_TRANSFER_ENCODING;

  const cl = vars.CONTENT_LENGTH;
  if (cl !== undefined) {
    const n = parseContentLength(cl);
    if (n === null) throw new RequestError(400, `bad CONTENT_LENGTH ${JSON.stringify(cl)}`);
    if (n > opts.maxBodyBytes) throw new RequestError(413, `CONTENT_LENGTH ${n} over the limit ${opts.maxBodyBytes}`);
  }

  if (vars.QUERY_STRING === undefined) {
    const uri = vars.REQUEST_URI;
    const q = uri === undefined ? -1 : uri.indexOf('?');
    vars.QUERY_STRING = q === -1 || uri === undefined ? '' : uri.slice(q + 1);
  }
  if (vars.SERVER_PROTOCOL === undefined) vars.SERVER_PROTOCOL = 'HTTP/1.0';
  if (vars.SERVER_NAME === undefined) vars.SERVER_NAME = typeof opts.localAddress === 'string' ? opts.localAddress : opts.localAddress();
  if (vars.SERVER_PORT === undefined) vars.SERVER_PORT = gatewayScheme(vars) === 'https' ? '443' : '80';

  repairScriptName(vars, opts);
  return vars;
}

/**
 * E-5.2 (and U-7): make SCRIPT_NAME/PATH_INFO what the HTTP front would give for the same URL.
 * - uwsgi modifier1 30: PATH_INFO loses the SCRIPT_NAME prefix, on a segment boundary only.
 * - With a mount, the mount decides, unless the web server already split on it (SCRIPT_NAME is
 *   the mount): the decoded request path is split by it. This repairs nginx fastcgi_params
 *   (SCRIPT_NAME = whole path), uwsgi_params (PATH_INFO = whole path), scgi_params (neither) and
 *   Apache ProxyPass. A path outside the mount keeps what was sent.
 * - Without a mount, a non-empty PATH_INFO is kept as sent; otherwise SCRIPT_NAME is "" and the
 *   request path is PATH_INFO, as over HTTP.
 */
export function repairScriptName(vars: CgiVars, opts: Pick<GatewayEnvironOptions, 'mount' | 'stripScriptName'>): void {
  let sent = vars.SCRIPT_NAME ?? '';
  let info = vars.PATH_INFO ?? '';
  let stripped = false;
  if (opts.stripScriptName && sent !== '' && info !== '') {
    const rest = splitMount(info, normalizeMount(sent));
    if (rest !== null) {
      info = rest[1];
      stripped = true; // the web server split it (PATH_INFO may now be "")
    }
  }
  if (sent === '/') sent = '';
  if (opts.mount === '' ? info !== '' || stripped : sent === opts.mount) {
    vars.SCRIPT_NAME = sent;
    vars.PATH_INFO = info;
    return;
  }
  const path = requestPath(vars, sent + info);
  if (path === null) throw new RequestError(400, 'NUL byte in the request path');
  const split = splitMount(path, opts.mount);
  if (split === null) {
    vars.SCRIPT_NAME = sent; // outside the mount: as sent
    vars.PATH_INFO = info;
    return;
  }
  vars.SCRIPT_NAME = split[0];
  vars.PATH_INFO = split[1];
}

/** The decoded path of REQUEST_URI (absolute-form authority dropped), else DOCUMENT_URI, else what was sent. */
function requestPath(vars: CgiVars, sentPath: string): string | null {
  const uri = vars.REQUEST_URI;
  if (uri !== undefined && uri !== '') {
    let path = uri;
    const q = path.indexOf('?');
    if (q !== -1) path = path.slice(0, q);
    if (!path.startsWith('/')) {
      const scheme = path.indexOf('://');
      if (scheme !== -1) {
        const slash = path.indexOf('/', scheme + 3);
        path = slash === -1 ? '/' : path.slice(slash);
      }
    }
    return percentDecodePath(path);
  }
  return vars.DOCUMENT_URI ?? sentPath;
}

/** E-10: https iff HTTPS is on/ON/1 or REQUEST_SCHEME is https. Never from X-Forwarded-Proto. */
export function gatewayScheme(vars: CgiVars): 'http' | 'https' {
  const https = vars.HTTPS;
  if (https === 'on' || https === 'ON' || https === '1') return 'https';
  return vars.REQUEST_SCHEME === 'https' ? 'https' : 'http';
}

/** E-9: the request URL rebuilt from an environ, PEP 3333's order. */
export function requestUrl(vars: CgiVars, scheme: 'http' | 'https'): string {
  let url = `${scheme}://`;
  const host = vars.HTTP_HOST;
  if (host) url += host;
  else {
    url += vars.SERVER_NAME ?? 'localhost';
    const port = vars.SERVER_PORT;
    if (port && port !== (scheme === 'https' ? '443' : '80')) url += `:${port}`;
  }
  url += quotePath(vars.SCRIPT_NAME ?? '') + quotePath(vars.PATH_INFO ?? '');
  if (vars.QUERY_STRING) url += `?${vars.QUERY_STRING}`;
  return url;
}

const PATH_SAFE = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/;

/** Percent-encodes a latin1 byte-string path, keeping `/` and RFC 3986 pchars. */
export function quotePath(path: string): string {
  if (PATH_SAFE.test(path)) return path;
  let out = '';
  for (let i = 0; i < path.length; i++) {
    const ch = path[i] as string;
    if (PATH_SAFE.test(ch)) out += ch;
    else out += `%${path.charCodeAt(i).toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The raw (still encoded) path + query after the first `decodedLength` decoded characters. */
export function rawPathBelow(requestUri: string, decodedLength: number): string {
  let i = 0;
  for (let n = 0; n < decodedLength && i < requestUri.length; n++) {
    i += requestUri.charCodeAt(i) === 0x25 && /^%[0-9A-Fa-f]{2}/.test(requestUri.slice(i, i + 3)) ? 3 : 1;
  }
  const rest = requestUri.slice(i);
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/** What the HTTP front (or inject()) knows of a request before its environ exists. */
export interface HttpRequestFacts {
  method: string;
  /** The request target as sent (origin-form, absolute-form or `*`). */
  url: string;
  httpVersionMajor: number;
  httpVersionMinor: number;
  /** name, value, name, value, … as received. */
  rawHeaders: readonly string[];
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  localAddress: string | undefined;
  localPort: number | undefined;
  scheme: 'http' | 'https';
}

export interface HttpEnvironOptions {
  /** `""` or `/prefix` (normalized). */
  mount: string;
  maxBodyBytes: number;
}

/** The parts of a request target the environ needs (H-4, E-7). */
export interface Target {
  rawPath: string;
  query: string;
  requestUri: string;
  /** Authority of an absolute-form target; it wins over Host (E-13). */
  authority: string | undefined;
}

/** H-4: origin-form, absolute-form, or `*` with OPTIONS. */
export function parseTarget(url: string, method: string): Target {
  let authority: string | undefined;
  let rest = url;
  if (url.charCodeAt(0) !== 0x2f) {
    if (url === '*' && method === 'OPTIONS') return { rawPath: '', query: '', requestUri: '*', authority: undefined };
    const m = /^https?:\/\/([^/?#]*)(.*)$/i.exec(url);
    if (m === null) throw new RequestError(400, `invalid request target ${JSON.stringify(url.slice(0, 100))}`);
    authority = m[1] as string;
    rest = m[2] as string;
    if (!rest.startsWith('/')) rest = `/${rest}`;
  }
  const hash = rest.indexOf('#');
  if (hash !== -1) rest = rest.slice(0, hash);
  const q = rest.indexOf('?');
  return q === -1
    ? { rawPath: rest, query: '', requestUri: rest, authority }
    : { rawPath: rest.slice(0, q), query: rest.slice(q + 1), requestUri: rest, authority };
}

/**
 * The CGI variables of an HTTP/1.x request (E-5..E-14, H-1..H-8), filled into `vars`; pure, so
 * the HTTP front and inject() build the same environ. Returns whether the body is chunked
 * (no CONTENT_LENGTH then). Throws RequestError for what must be refused (400, 404, 413, 501, 505).
 */
export function httpVars(req: HttpRequestFacts, opts: HttpEnvironOptions, vars: CgiVars = {}): boolean {
  if (req.httpVersionMajor !== 1 || (req.httpVersionMinor !== 0 && req.httpVersionMinor !== 1)) {
    throw new RequestError(505, `HTTP version ${req.httpVersionMajor}.${req.httpVersionMinor} not supported`); // H-3
  }
  const method = req.method;
  const target = parseTarget(req.url, method);
  const path = percentDecodePath(target.rawPath);
  if (path === null) throw new RequestError(400, 'NUL byte in the request path'); // H-8
  const split = splitMount(path, opts.mount);
  if (split === null) throw new RequestError(404, `path outside the mount ${opts.mount}`); // E-5.1

  vars.REQUEST_METHOD = method;
  vars.SCRIPT_NAME = split[0];
  vars.PATH_INFO = split[1];
  vars.QUERY_STRING = target.query;
  vars.REQUEST_URI = target.requestUri;
  vars.SERVER_NAME = '';
  vars.SERVER_PORT = req.localPort === undefined ? (req.scheme === 'https' ? '443' : '80') : String(req.localPort);
  vars.SERVER_PROTOCOL = req.httpVersionMinor === 1 ? 'HTTP/1.1' : 'HTTP/1.0';
  vars.SERVER_SOFTWARE = SERVER_SOFTWARE;
  vars.GATEWAY_INTERFACE = 'CGI/1.1';
  vars.REQUEST_SCHEME = req.scheme;
  vars.REMOTE_ADDR = req.remoteAddress === undefined ? 'unix:' : normalizeRemoteAddr(req.remoteAddress);
  if (req.remotePort !== undefined) vars.REMOTE_PORT = String(req.remotePort);
  if (req.localAddress !== undefined) vars.SERVER_ADDR = normalizeRemoteAddr(req.localAddress);

  const facts = mapRequestHeaders(req.rawHeaders, vars);
  if (facts.hostCount > 1) throw new RequestError(400, 'more than one Host header'); // H-1
  if (facts.host !== undefined && !isValidHost(facts.host)) throw new RequestError(400, `invalid Host ${JSON.stringify(facts.host)}`);
  let chunked = false;
  if (facts.transferEncoding !== undefined) {
    if (!isPlainChunked(facts.transferEncoding)) throw new RequestError(501, `Transfer-Encoding ${JSON.stringify(facts.transferEncoding)} not implemented`); // H-2
    chunked = true;
    delete vars.CONTENT_LENGTH;
  }
  if (vars.CONTENT_LENGTH !== undefined) {
    const n = parseContentLength(vars.CONTENT_LENGTH);
    if (n === null) throw new RequestError(400, 'bad Content-Length');
    if (n > opts.maxBodyBytes) throw new RequestError(413, `Content-Length ${n} over the limit ${opts.maxBodyBytes}`); // H-6
  }
  if (target.authority !== undefined) vars.HTTP_HOST = target.authority; // E-13
  const host = vars.HTTP_HOST;
  vars.SERVER_NAME = host ? hostName(host) : (vars.SERVER_ADDR ?? 'localhost'); // E-8
  return chunked;
}
