/**
 * SCGI request head encoder (docs/conformance.md §3.1): the netstring a web server
 * sends before the body. Used by the tests and by a future SCGI client.
 */
import { LimitError, ProtocolError, showBytes } from '../errors.js';
import {
  MAX_NETSTRING_LENGTH,
  SCGI_CONTENT_LENGTH,
  SCGI_MARKER,
  SCGI_MARKER_VALUE,
  ScgiErrorCode,
} from './constants.js';

const PROTOCOL = 'scgi';
/** A char that latin1 cannot carry in one byte. */
const ABOVE_LATIN1 = /[\u0100-\uffff]/;

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
  // The block is built as one latin1 string (one char per byte) and converted once.
  let hasMarker = false;
  let tail = '';
  for (const [name, value] of headers) {
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
    if (name.includes('\0') || value.includes('\0')) {
      throw new ProtocolError(PROTOCOL, ScgiErrorCode.EncodeInvalid, `header "${preview(name)}" has a NUL in its name or value`);
    }
    tail += `${name}\0${value}\0`;
  }
  let block = `${SCGI_CONTENT_LENGTH}\0${bodyLength}\0`;
  if (!hasMarker) block += `${SCGI_MARKER}\0${SCGI_MARKER_VALUE}\0`;
  block += tail;
  if (block.length > MAX_NETSTRING_LENGTH) {
    throw new LimitError(
      PROTOCOL,
      ScgiErrorCode.EncodeTooLarge,
      `header block of ${block.length} bytes does not fit a 7-digit netstring length`,
      'maxNetstringLength',
    );
  }
  const wide = ABOVE_LATIN1.exec(block);
  if (wide !== null) {
    const start = block.lastIndexOf('\0', wide.index) + 1;
    throw new ProtocolError(
      PROTOCOL,
      ScgiErrorCode.EncodeInvalid,
      `header text "${preview(block.slice(start, block.indexOf('\0', wide.index)))}" has a char above U+00FF`,
    );
  }
  return Buffer.from(`${block.length}:${block},`, 'latin1');
}

function preview(text: string): string {
  // Chars above U+00FF are shown as '?': the message only has to point at the value.
  return showBytes(Buffer.from(text.replace(/[\u0100-\uffff]/g, '?'), 'latin1'), 32);
}
