/**
 * uwsgi request packet encoder (docs/conformance.md §4.1): the 4-byte header and the
 * vars block a web server sends before the body. Used by the tests and by a future uwsgi client.
 */
import { LimitError, ProtocolError, showBytes } from '../errors.js';
import { MAX_UWSGI_DATASIZE, MAX_UWSGI_STRING, Modifier1, UwsgiErrorCode } from './constants.js';

const PROTOCOL = 'uwsgi';
const ABOVE_LATIN1 = /[\u0100-\uffff]/;

export interface UwsgiEncodeOptions {
  /** Default 0 (`Modifier1.Wsgi`, the nginx default). */
  modifier1?: number;
  /** Default 0. */
  modifier2?: number;
}

/**
 * Encodes `modifier1 | datasize LE16 | modifier2 | vars`, vars verbatim and in order (nothing is
 * added: pass CONTENT_LENGTH yourself). Keys must be non-empty; keys and values latin1 and at most
 * 65535 bytes each; the vars block at most 65535 bytes (LimitError). NUL is allowed: the wire is
 * length-prefixed. Modifiers must be integers in 0..255.
 */
export function encodeUwsgiRequest(vars: Iterable<readonly [string, string]>, options: UwsgiEncodeOptions = {}): Buffer {
  const modifier1 = checkModifier('modifier1', options.modifier1 ?? Modifier1.Wsgi);
  const modifier2 = checkModifier('modifier2', options.modifier2 ?? 0);
  // Built as one latin1 string (one char per byte, sizes as two chars) and converted once.
  let block = '';
  for (const [key, value] of vars) {
    if (key.length === 0) throw new ProtocolError(PROTOCOL, UwsgiErrorCode.EncodeInvalid, 'empty var name');
    if (key.length > MAX_UWSGI_STRING || value.length > MAX_UWSGI_STRING) {
      throw new LimitError(
        PROTOCOL,
        UwsgiErrorCode.EncodeTooLarge,
        `var "${preview(key)}" has a ${key.length > MAX_UWSGI_STRING ? 'name' : 'value'} over 65535 bytes`,
        'maxUwsgiPacketSize',
      );
    }
    if (ABOVE_LATIN1.test(key) || ABOVE_LATIN1.test(value)) {
      throw new ProtocolError(PROTOCOL, UwsgiErrorCode.EncodeInvalid, `var "${preview(key)}" has a char above U+00FF`);
    }
    block += le16(key.length) + key + le16(value.length) + value;
    if (block.length > MAX_UWSGI_DATASIZE) {
      throw new LimitError(
        PROTOCOL,
        UwsgiErrorCode.EncodeTooLarge,
        `vars block of more than ${MAX_UWSGI_DATASIZE} bytes does not fit the 16-bit datasize`,
        'maxUwsgiPacketSize',
      );
    }
  }
  return Buffer.from(String.fromCharCode(modifier1) + le16(block.length) + String.fromCharCode(modifier2) + block, 'latin1');
}

function le16(n: number): string {
  return String.fromCharCode(n & 0xff, n >>> 8);
}

function checkModifier(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 255) {
    throw new ProtocolError(PROTOCOL, UwsgiErrorCode.EncodeInvalid, `${name} ${value} is not an integer in 0..255`);
  }
  return value;
}

function preview(text: string): string {
  return showBytes(Buffer.from(text.replace(/[\u0100-\uffff]/g, '?'), 'latin1'), 32);
}
