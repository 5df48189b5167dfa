/**
 * Protocol detection from the first bytes of a connection, for a listener that accepts HTTP/1.1,
 * FastCGI, SCGI and uwsgi on one port (docs/conformance.md §2.1, §3.1, §4.1).
 *
 * The first byte alone picks the only possible candidate, because the four protocols start in
 * disjoint byte ranges; the following bytes are sanity checks of that candidate:
 *
 * | first byte                      | candidate | decided after                                   |
 * |---------------------------------|-----------|-------------------------------------------------|
 * | 0x01                            | fastcgi   | 8 bytes (the record header)                      |
 * | '1'..'9' (0x31..0x39)           | scgi      | 16 bytes                                         |
 * | 'A'..'Z' (0x41..0x5A)           | http      | the space after the method (at most 16 bytes)    |
 * | a uwsgi request modifier1       | uwsgi     | 6 + min(keysize, 10) bytes (at most 16)          |
 * | anything else ('0', a-z, CR, …) | unknown   | 1 byte                                           |
 *
 * The uwsgi request modifiers (U-2: 0, 5, 6, 7, 8, 9, 14, 15, 30) are all control bytes, so none
 * of them collides with FastCGI's version byte 1, an SCGI digit or an HTTP method letter; a custom
 * allow-list is honoured only for first bytes outside those three ranges.
 *
 * Rules per candidate (any failed check → `unknown`):
 * - FastCGI: version 1; type BEGIN_REQUEST (1) with requestId ≠ 0 and contentLength 8, or type
 *   GET_VALUES (9) with requestId 0 (any contentLength). Padding and reserved bytes are not checked,
 *   nor the role: an unknown role is a valid FastCGI conversation (answered FCGI_UNKNOWN_ROLE).
 * - SCGI: 1–7 digits without leading zero, `:`, a length of at least 17 (the smallest block holding
 *   `CONTENT_LENGTH\0` + a one-digit value + NUL), then the bytes up to offset 16 must match
 *   `CONTENT_LENGTH\0`. The spec requires CONTENT_LENGTH first and every real client (nginx, Apache,
 *   lighttpd) does it; a dedicated SCGI listener is more lenient (S-4 accepts any position).
 *   An 8th digit means `unknown` (a dedicated SCGI listener would answer it with a LimitError).
 * - HTTP: an uppercase-first method token (A–Z, digits and the non-letter tchars of RFC 9110, no
 *   lowercase), at most 15 chars, followed by SP. `PROXY ` (HAProxy PROXY protocol v1) is `unknown`:
 *   it is not HTTP and the HTTP front cannot serve it. Leading CRLF is `unknown` too.
 * - uwsgi: modifier1 in the allow-list, datasize ≥ 5 (one var with a one-byte key), modifier2 not
 *   checked (U-2 ignores it), first key size ≥ 1 and fitting the datasize, and the first up to 10
 *   key bytes printable ASCII without space (0x21..0x7E).
 *
 * Guarantees (property-tested): never throws; never `need-more` once `DETECT_MAX_BYTES` bytes are
 * in; a decision taken on a prefix stays the same for every longer input with that prefix.
 */
import { BEGIN_REQUEST_BODY_LEN, FCGI_HEADER_LEN, FCGI_VERSION_1, RecordType } from './fastcgi/constants.js';
import { UWSGI_REQUEST_MODIFIERS } from './uwsgi/constants.js';

export type DetectResult = 'http' | 'fastcgi' | 'scgi' | 'uwsgi' | 'unknown' | 'need-more';

/** Detection always decides once this many bytes are available. */
export const DETECT_MAX_BYTES = 16;

export interface DetectOptions {
  /** uwsgi modifier1 values to recognize (U-2). Default: the request types. */
  uwsgiModifiers?: ReadonlySet<number>;
}


const SCGI_FIRST_HEADER = Buffer.from('CONTENT_LENGTH\0', 'latin1');
const SCGI_MAX_DIGITS = 7;
const SCGI_MIN_BLOCK = SCGI_FIRST_HEADER.length + 2;

const UWSGI_MIN_DATASIZE = 5;
const UWSGI_KEY_BYTES_CHECKED = DETECT_MAX_BYTES - 6;

const HTTP_MAX_METHOD = DETECT_MAX_BYTES - 1;
const PROXY_V1 = 'PROXY';

/** One protocol's test of a connection's first bytes: `match`, `no`, or too few bytes to tell. */
export type Signature = (head: Uint8Array) => 'match' | 'no' | 'need-more';

const asSignature =
  (accepts: (first: number) => boolean, decide: (head: Uint8Array) => DetectResult): Signature =>
  (head) => {
    if (head.length === 0) return 'need-more';
    if (!accepts(head[0] as number)) return 'no';
    const r = decide(head);
    return r === 'need-more' ? r : r === 'unknown' ? 'no' : 'match';
  };

/** FastCGI: version byte 1, then a BEGIN_REQUEST or GET_VALUES record header. */
export const fastcgiSignature: Signature = asSignature((b) => b === FCGI_VERSION_1, detectFastcgi);
/** SCGI: a netstring length whose block starts with `CONTENT_LENGTH\0`. */
export const scgiSignature: Signature = asSignature((b) => b >= 0x31 && b <= 0x39, detectScgi);
/** HTTP/1.x: an upper-case method token and a space. */
export const httpSignature: Signature = asSignature((b) => b >= 0x41 && b <= 0x5a, detectHttp);
/** uwsgi: a request modifier1 from `modifiers` and a plausible first var. */
export function uwsgiSignature(modifiers: ReadonlySet<number> = UWSGI_REQUEST_MODIFIERS): Signature {
  return asSignature((b) => modifiers.has(b), detectUwsgi);
}

/** Decides which protocol a connection speaks from its first bytes; see the file header. */
export function detectProtocol(head: Uint8Array, options: DetectOptions = {}): DetectResult {
  if (head.length === 0) return 'need-more';
  const first = head[0] as number;
  if (first === FCGI_VERSION_1) return detectFastcgi(head);
  if (first >= 0x31 && first <= 0x39) return detectScgi(head);
  if (first >= 0x41 && first <= 0x5a) return detectHttp(head);
  if ((options.uwsgiModifiers ?? UWSGI_REQUEST_MODIFIERS).has(first)) return detectUwsgi(head);
  return 'unknown';
}

function detectFastcgi(head: Uint8Array): DetectResult {
  const n = head.length;
  if (n < 2) return 'need-more';
  const type = head[1] as number;
  if (type === RecordType.BeginRequest) {
    if (n < 4) return 'need-more';
    if (head[2] === 0 && head[3] === 0) return 'unknown'; // BEGIN_REQUEST needs a request id
    if (n >= 5 && head[4] !== 0) return 'unknown';
    if (n >= 6 && head[5] !== BEGIN_REQUEST_BODY_LEN) return 'unknown';
  } else if (type === RecordType.GetValues) {
    if (n >= 3 && head[2] !== 0) return 'unknown'; // management record: request id 0
    if (n >= 4 && head[3] !== 0) return 'unknown';
  } else {
    return 'unknown';
  }
  return n >= FCGI_HEADER_LEN ? 'fastcgi' : 'need-more';
}

function isDigit(b: number): boolean {
  return b >= 0x30 && b <= 0x39;
}

function detectScgi(head: Uint8Array): DetectResult {
  const n = head.length;
  let i = 0;
  let length = 0;
  while (i < n && isDigit(head[i] as number)) {
    if (i === SCGI_MAX_DIGITS) return 'unknown';
    length = length * 10 + ((head[i] as number) - 0x30);
    i++;
  }
  if (i === n) return 'need-more';
  if (head[i] !== 0x3a) return 'unknown';
  if (length < SCGI_MIN_BLOCK) return 'unknown';
  const start = i + 1;
  const stop = Math.min(n, DETECT_MAX_BYTES);
  for (let k = start; k < stop; k++) {
    if (head[k] !== SCGI_FIRST_HEADER[k - start]) return 'unknown';
  }
  return n >= DETECT_MAX_BYTES ? 'scgi' : 'need-more';
}

/** RFC 9110 tchar without lowercase letters. */
function isMethodChar(b: number): boolean {
  if ((b >= 0x41 && b <= 0x5a) || isDigit(b)) return true;
  switch (b) {
    case 0x21: // !
    case 0x23: // #
    case 0x24: // $
    case 0x25: // %
    case 0x26: // &
    case 0x27: // '
    case 0x2a: // *
    case 0x2b: // +
    case 0x2d: // -
    case 0x2e: // .
    case 0x5e: // ^
    case 0x5f: // _
    case 0x60: // `
    case 0x7c: // |
    case 0x7e: // ~
      return true;
    default:
      return false;
  }
}

function detectHttp(head: Uint8Array): DetectResult {
  const stop = Math.min(head.length, HTTP_MAX_METHOD + 1);
  for (let i = 0; i < stop; i++) {
    const b = head[i] as number;
    if (b === 0x20) {
      return i === PROXY_V1.length && Buffer.from(head.subarray(0, i)).toString('latin1') === PROXY_V1 ? 'unknown' : 'http';
    }
    if (!isMethodChar(b)) return 'unknown';
  }
  return head.length > HTTP_MAX_METHOD ? 'unknown' : 'need-more';
}

function detectUwsgi(head: Uint8Array): DetectResult {
  const n = head.length;
  if (n < 3) return 'need-more';
  const datasize = (head[1] as number) | ((head[2] as number) << 8);
  if (datasize < UWSGI_MIN_DATASIZE) return 'unknown';
  if (n < 6) return 'need-more';
  const keySize = (head[4] as number) | ((head[5] as number) << 8);
  if (keySize === 0 || 4 + keySize > datasize) return 'unknown';
  const checked = Math.min(keySize, UWSGI_KEY_BYTES_CHECKED);
  const stop = Math.min(n, 6 + checked);
  for (let k = 6; k < stop; k++) {
    const b = head[k] as number;
    if (b < 0x21 || b > 0x7e) return 'unknown';
  }
  return n >= 6 + checked ? 'uwsgi' : 'need-more';
}
