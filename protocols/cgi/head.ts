/**
 * Response heads as the fronts write them (docs/conformance.md §8.2), and the checks the core runs on
 * every status and header an app hands to start_response.
 *
 *   FastCGI, SCGI, CGI child   `Status: 404 Not Found\r\n` + fields + `\r\n`   serializeCgiHead
 *   uwsgi, NPH, HTTP           `HTTP/1.1 404 Not Found\r\n` + fields + `\r\n`  serializeHttpHead
 *
 * Header names and values are JS strings holding one byte per char (latin1, PEP 3333). The
 * serializers trust their input: the core has validated it with the predicates below, which is
 * what keeps CR/LF injection out. A char above U+00FF would be truncated to its low byte by the
 * latin1 encoder (U+010A becomes LF), so the predicates refuse those too.
 */
import { Buffer } from 'node:buffer';

/** A response header as the app gives it: `[name, value]`, both latin1 byte strings. */
export type HeaderPair = readonly [name: string, value: string];

/** HTTP versions a status line can carry. */
export type HttpVersion = 'HTTP/1.1' | 'HTTP/1.0';

/**
 * Default reason phrases, RFC 9110 §15 wording (413 "Content Too Large", 422 "Unprocessable
 * Content"), plus the registered WebDAV/extension codes peers still emit.
 */
const REASONS: Readonly<Record<number, string>> = {
  100: 'Continue',
  101: 'Switching Protocols',
  102: 'Processing', // RFC 2518
  103: 'Early Hints', // RFC 8297
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  203: 'Non-Authoritative Information',
  204: 'No Content',
  205: 'Reset Content',
  206: 'Partial Content',
  207: 'Multi-Status', // RFC 4918
  208: 'Already Reported', // RFC 5842
  226: 'IM Used', // RFC 3229
  300: 'Multiple Choices',
  301: 'Moved Permanently',
  302: 'Found',
  303: 'See Other',
  304: 'Not Modified',
  305: 'Use Proxy',
  307: 'Temporary Redirect',
  308: 'Permanent Redirect',
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  407: 'Proxy Authentication Required',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone',
  411: 'Length Required',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable',
  417: 'Expectation Failed',
  418: "I'm a Teapot", // RFC 9110 §15.5.19: reserved, unused
  421: 'Misdirected Request',
  422: 'Unprocessable Content',
  423: 'Locked', // RFC 4918
  424: 'Failed Dependency', // RFC 4918
  425: 'Too Early', // RFC 8470
  426: 'Upgrade Required',
  428: 'Precondition Required', // RFC 6585
  429: 'Too Many Requests', // RFC 6585
  431: 'Request Header Fields Too Large', // RFC 6585
  451: 'Unavailable For Legal Reasons', // RFC 7725
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
  506: 'Variant Also Negotiates', // RFC 2295
  507: 'Insufficient Storage', // RFC 4918
  508: 'Loop Detected', // RFC 5842
  510: 'Not Extended', // RFC 2774 (historic)
  511: 'Network Authentication Required', // RFC 6585
};

/**
 * The default reason phrase for a status code; `''` for an unregistered code (an empty reason
 * is valid on a status line, RFC 9112 §4).
 * @example reasonPhrase(404) // 'Not Found'
 */
export function reasonPhrase(code: number): string {
  return REASONS[code] ?? '';
}

/** Parsed `"NNN Reason"` status string. */
export interface ParsedStatus {
  code: number;
  reason: string;
}

/**
 * three digits, exactly one space, then the reason (may be empty). The code must lie in
 * 100..599 (RFC 9110 §15; the CGI host rejects anything else, C-22, so an app must not be able
 * to produce it on one front and fail on another). The reason follows the header-value rule of
 * R-2 (HTAB, SP, VCHAR, obs-text): it is written to the wire as latin1.
 */
const STATUS_RE = /^[1-5][0-9]{2} [\t\x20-\x7e\x80-\xff]*$/;

/**
 * Validates an app's status string and splits it. Returns null when it is malformed; the
 * caller decides which codes are acceptable as final (1xx are not, R-1).
 * @example parseStatusLine('404 Not Found') // { code: 404, reason: 'Not Found' }
 * @example parseStatusLine('404') // null: PEP 3333 requires the space
 */
export function parseStatusLine(status: string): ParsedStatus | null {
  if (!STATUS_RE.test(status)) return null;
  return {
    code: (status.charCodeAt(0) - 48) * 100 + (status.charCodeAt(1) - 48) * 10 + (status.charCodeAt(2) - 48),
    reason: status.slice(4),
  };
}

/** RFC 9110 §5.6.2 token. */
const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Any char outside field-vchar / SP / HTAB (RFC 9110 §5.5): NUL, CR, LF, the other controls,
 * DEL, and anything above U+00FF. Node's own header writer refuses the same set, so a value that
 * passes here is accepted by the HTTP front too.
 */
const BAD_VALUE_CHAR_RE = /[^\t\x20-\x7e\x80-\xff]/;

/** a header name is a non-empty token. */
export function isValidHeaderName(name: string): boolean {
  return TOKEN_RE.test(name);
}

/**
 * a header value holds no CR, LF or NUL. Policy: the other control chars and DEL are
 * refused as well (RFC 9110 §5.5 makes them invalid; Node's writer throws on them); HTAB and
 * obs-text 0x80-0xFF are allowed; chars above U+00FF are refused (not latin1). Leading and
 * trailing whitespace is the caller's business.
 */
export function isValidHeaderValue(value: string): boolean {
  return !BAD_VALUE_CHAR_RE.test(value);
}

/**
 * R-6 / C-25: connection-level fields an app or a script must not set (lowercase). `Upgrade` is
 * the core's to allow with 101 on a tunnel-capable front.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

// Lengths the entries have (2, 7, 10, 16, 17): most names are rejected without a lowercase copy.
const HOP_LENGTHS = new Uint8Array(Math.max(...[...HOP_BY_HOP].map((n) => n.length)) + 1);
for (const n of HOP_BY_HOP) HOP_LENGTHS[n.length] = 1;

/** True for a hop-by-hop field name, in any letter case. */
export function isHopByHop(name: string): boolean {
  return HOP_LENGTHS[name.length] === 1 && HOP_BY_HOP.has(name.toLowerCase());
}

function appendFields(head: string, headers: readonly HeaderPair[]): Buffer {
  for (let i = 0; i < headers.length; i++) {
    const pair = headers[i] as HeaderPair;
    head += pair[0] + ': ' + pair[1] + '\r\n';
  }
  return Buffer.from(head + '\r\n', 'latin1');
}

/**
 * A CGI-style response head (FastCGI, SCGI, CGI child; table 8.2, K-8): `Status:` first, then the
 * fields in order, each repeat on its own line, then the empty line. Adds nothing:
 * no Content-Length, no Transfer-Encoding (K-9). With an empty reason the line is `Status: NNN`
 * (C-22 grammar: the reason is optional).
 * @example serializeCgiHead(404, 'Not Found', [['Content-Type', 'text/plain']])
 * // 'Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\n'
 */
export function serializeCgiHead(status: number, reason: string, headers: readonly HeaderPair[]): Buffer {
  return appendFields(reason === '' ? 'Status: ' + status + '\r\n' : 'Status: ' + status + ' ' + reason + '\r\n', headers);
}

/**
 * An HTTP/1.x response head (uwsgi front, NPH, table 8.2, K-11): `HTTP/1.1 NNN Reason`, fields,
 * empty line. The space after the code stays when the reason is empty (RFC 9112 §4).
 * @example serializeHttpHead('HTTP/1.1', 200, 'OK', [])  // 'HTTP/1.1 200 OK\r\n\r\n'
 */
export function serializeHttpHead(version: HttpVersion, status: number, reason: string, headers: readonly HeaderPair[]): Buffer {
  return appendFields(version + ' ' + status + ' ' + reason + '\r\n', headers);
}
