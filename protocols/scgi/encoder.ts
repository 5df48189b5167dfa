/**
 * SCGI request head encoder (shared/reference/protocols.md §3.1): the netstring a web server
 * sends before the body. Used by the tests and by a future SCGI client.
 */
import { LimitError, ProtocolError, showBytes } from '../errors.js';
import {
  MAX_NETSTRING_LENGTH,
  NETSTRING_COLON,
  NETSTRING_COMMA,
  SCGI_CONTENT_LENGTH,
  SCGI_MARKER,
  SCGI_MARKER_VALUE,
  ScgiErrorCode,
} from './constants.js';

const PROTOCOL = 'scgi';
/** A NUL or a char that latin1 cannot carry in one byte. */
const NOT_WIRE_SAFE = /[\u0000\u0100-\uffff]/;

/**
 * Encodes the request head: `len:` CONTENT_LENGTH NUL bodyLength NUL [SCGI NUL 1 NUL] headers `,`.
 *
 * CONTENT_LENGTH is always first and comes from `bodyLength` (so it must not be in `headers`).
 * `SCGI=1` is inserted second unless `headers` already carries it (then it stays where it is
 * and must be `1`), which is the order nginx, Apache and lighttpd use. Names must be non-empty;
 * names and values must be latin1 without NUL (one byte per char). Throws ProtocolError for such
 * input and LimitError when the block would need more than a 7-digit length.
 */
export function encodeScgiRequest(headers: Iterable<readonly [string, string]>, bodyLength: number): Buffer {
  if (!Number.isSafeInteger(bodyLength) || bodyLength < 0) {
    throw new ProtocolError(PROTOCOL, ScgiErrorCode.EncodeInvalid, `body length ${bodyLength} is not a non-negative integer`);
  }
  const list: Array<readonly [string, string]> = [[SCGI_CONTENT_LENGTH, String(bodyLength)]];
  let hasMarker = false;
  const rest: Array<readonly [string, string]> = [];
  for (const pair of headers) {
    const [name, value] = pair;
    if (name === SCGI_CONTENT_LENGTH) {
      throw new ProtocolError(
        PROTOCOL,
        ScgiErrorCode.EncodeReserved,
        'CONTENT_LENGTH must not be in the header list; it is written from bodyLength',
      );
    }
    if (name === SCGI_MARKER) {
      if (value !== SCGI_MARKER_VALUE) {
        throw new ProtocolError(PROTOCOL, ScgiErrorCode.EncodeReserved, `SCGI header must be "1", got "${preview(value)}"`);
      }
      hasMarker = true;
    }
    if (name.length === 0) throw new ProtocolError(PROTOCOL, ScgiErrorCode.EncodeInvalid, 'empty header name');
    if (NOT_WIRE_SAFE.test(name)) {
      throw new ProtocolError(PROTOCOL, ScgiErrorCode.EncodeInvalid, `header name "${preview(name)}" has a NUL or a char above U+00FF`);
    }
    if (NOT_WIRE_SAFE.test(value)) {
      throw new ProtocolError(
        PROTOCOL,
        ScgiErrorCode.EncodeInvalid,
        `value of header "${preview(name)}" has a NUL or a char above U+00FF`,
      );
    }
    rest.push(pair);
  }
  if (!hasMarker) list.push([SCGI_MARKER, SCGI_MARKER_VALUE]);
  for (const pair of rest) list.push(pair);

  let blockLength = 0;
  for (const [name, value] of list) blockLength += name.length + value.length + 2;
  if (blockLength > MAX_NETSTRING_LENGTH) {
    throw new LimitError(
      PROTOCOL,
      ScgiErrorCode.EncodeTooLarge,
      `header block of ${blockLength} bytes does not fit a 7-digit netstring length`,
      'maxNetstringLength',
    );
  }
  const prefix = String(blockLength);
  const out = Buffer.allocUnsafe(prefix.length + 1 + blockLength + 1);
  let at = out.write(prefix, 0, 'latin1');
  out[at++] = NETSTRING_COLON;
  for (const [name, value] of list) {
    at += out.write(name, at, 'latin1');
    out[at++] = 0;
    at += out.write(value, at, 'latin1');
    out[at++] = 0;
  }
  out[at] = NETSTRING_COMMA;
  return out;
}

function preview(text: string): string {
  // Chars above U+00FF are shown as '?': the message only has to point at the value.
  return showBytes(Buffer.from(text.replace(/[\u0100-\uffff]/g, '?'), 'latin1'), 32);
}
