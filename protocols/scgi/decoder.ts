/**
 * SCGI request head decoder (docs/conformance.md §3, S-1..S-5, S-12).
 *
 * A push parser for the netstring that opens every SCGI connection. It consumes bytes up to and
 * including the `,` after the header block and hands back the ordered header list plus `rest`,
 * the bytes of the same chunk after the comma (the start of the body, a subarray: no copy).
 * It never looks at the body: the caller reads exactly `contentLength` bytes from `rest` and the
 * following chunks (S-7), and never parses a second request from what follows (S-7, §0.1 #15).
 *
 * What is checked here: the length prefix (S-1: digits only, no leading `0`, `:`, ≤ the limit,
 * rejected as soon as the digits exceed it), the `,` (S-2), the NUL structure (S-3), CONTENT_LENGTH
 * (S-4: present once, digits only, ≤ `maxBodyBytes`; any position) and the `SCGI` marker (S-5:
 * value `1`; absence is reported through `hasScgiMarker`, not rejected).
 * What is left to the environ builder: duplicate-name policy and dropping names with `=` or `.`
 * (S-6 = F-22/F-23). Every other header, duplicates included, is reported verbatim and in order.
 * Names and values are latin1 strings, one char per byte (S-12).
 */
import { LimitError, ProtocolError, showBytes } from '../errors.js';
import {
  DEFAULT_MAX_NETSTRING_LENGTH,
  MAX_NETSTRING_LENGTH,
  NETSTRING_COLON,
  NETSTRING_COMMA,
  SCGI_CONTENT_LENGTH,
  SCGI_NUL as NUL,
  SCGI_MARKER,
  SCGI_MARKER_VALUE,
  ScgiErrorCode,
} from './constants.js';

/** One header as sent: latin1 name and value, in wire order. */
export type ScgiHeader = [name: string, value: string];

export interface ScgiDecoderOptions {
  /** Largest header block (netstring payload) accepted, in bytes. Default 1 MiB, at most 9_999_999. */
  maxNetstringLength?: number;
  /** Largest CONTENT_LENGTH accepted. Default `Number.MAX_SAFE_INTEGER`. */
  maxBodyBytes?: number;
}

export interface ScgiRequestHead {
  /** Every header in wire order, CONTENT_LENGTH and SCGI included, duplicates kept. */
  headers: ScgiHeader[];
  /** CONTENT_LENGTH as a number: the exact body length to read after the comma. */
  contentLength: number;
  /** False when the `SCGI: 1` header was absent (accepted; the front may log it, S-5). */
  hasScgiMarker: boolean;
  /** Bytes of the whole netstring: digits, `:`, header block and `,`. */
  headBytes: number;
  /** Bytes of the last pushed chunk after the `,`: the start of the body (subarray, no copy). */
  rest: Buffer;
}

/** `length`: reading the digits; `block`: reading the header block and comma. */
export type ScgiDecoderState = 'length' | 'block' | 'done' | 'failed';

const PROTOCOL = 'scgi';
const DIGIT_0 = 0x30; // '0'
const DIGIT_9 = 0x39; // '9'

function checkLimit(name: string, value: number | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new RangeError(`scgi: option ${name} must be an integer in 0..${max}, got ${value}`);
  }
  return value;
}

export class ScgiDecoder {
  readonly maxNetstringLength: number;
  readonly maxBodyBytes: number;
  #state: ScgiDecoderState = 'length';
  #error: ProtocolError | undefined;
  /** Value of the length prefix so far, and how many digits it had. */
  #length = 0;
  #digits = 0;
  /** Header block bytes (comma excluded) kept from earlier chunks. */
  #parts: Buffer[] = [];
  #have = 0;

  constructor(options: ScgiDecoderOptions = {}) {
    this.maxNetstringLength = checkLimit(
      'maxNetstringLength',
      options.maxNetstringLength,
      DEFAULT_MAX_NETSTRING_LENGTH,
      MAX_NETSTRING_LENGTH,
    );
    this.maxBodyBytes = checkLimit('maxBodyBytes', options.maxBodyBytes, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  }

  get state(): ScgiDecoderState {
    return this.#state;
  }

  /** Bytes held for an incomplete header block. Never above `maxNetstringLength`. */
  get bufferedBytes(): number {
    return this.#have;
  }

  /**
   * Feeds the next socket chunk. Returns undefined while the head is incomplete, the decoded
   * head once the `,` has arrived. Throws ProtocolError/LimitError for bad bytes; after an
   * error every call rethrows it. Pushing after the head was returned is a caller bug (the
   * body is not this decoder's business) and throws a plain Error.
   */
  push(chunk: Buffer): ScgiRequestHead | undefined {
    if (this.#error !== undefined) throw this.#error;
    if (this.#state === 'done') {
      throw new Error('scgi: push() after the request head was decoded; the caller reads the body');
    }
    try {
      return this.#push(chunk);
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.#state = 'failed';
        this.#error = err;
      }
      throw err;
    }
  }

  /**
   * The connection reached EOF. Nothing happens before the first byte or after the head; inside
   * the head it throws `SCGI_TRUNCATED_HEAD` (S-1: a front closes silently either way).
   */
  end(): void {
    if (this.#state === 'done' || this.#state === 'failed') return;
    if (this.#state === 'length' && this.#digits === 0) return;
    const where =
      this.#state === 'length'
        ? `in the length prefix "${this.#prefixText()}"`
        : `after ${this.#have} of ${this.#length} header block bytes`;
    const err = new ProtocolError(PROTOCOL, ScgiErrorCode.TruncatedHead, `connection closed ${where}`);
    this.#state = 'failed';
    this.#error = err;
    throw err;
  }

  #prefixText(): string {
    return this.#digits === 0 ? '' : String(this.#length);
  }

  #push(chunk: Buffer): ScgiRequestHead | undefined {
    let i = 0;
    if (this.#state === 'length') {
      for (; i < chunk.length; i++) {
        const b = chunk[i] as number;
        if (b === NETSTRING_COLON) {
          if (this.#digits === 0) {
            throw new ProtocolError(PROTOCOL, ScgiErrorCode.BadLength, 'netstring length prefix is empty (":" first)');
          }
          this.#state = 'block';
          i++;
          break;
        }
        if (b < DIGIT_0 || b > DIGIT_9) {
          const seen = `${this.#prefixText()}${showBytes(chunk.subarray(i, i + 1))}`;
          throw new ProtocolError(
            PROTOCOL,
            ScgiErrorCode.BadLength,
            `bad netstring length prefix "${seen}": expected ${this.#digits === 0 ? 'a digit' : 'a digit or ":"'}`,
          );
        }
        if (this.#digits === 1 && this.#length === 0) {
          throw new ProtocolError(
            PROTOCOL,
            ScgiErrorCode.LeadingZero,
            `netstring length prefix "0${String.fromCharCode(b)}" has a leading zero`,
          );
        }
        this.#length = this.#length * 10 + (b - DIGIT_0);
        this.#digits++;
        if (this.#length > this.maxNetstringLength) {
          throw new LimitError(
            PROTOCOL,
            ScgiErrorCode.HeadTooLarge,
            `netstring length prefix "${this.#prefixText()}" (digits so far) exceeds maxNetstringLength ${this.maxNetstringLength}`,
            'maxNetstringLength',
          );
        }
      }
      if (this.#state === 'length') return undefined;
    }

    // Header block: #length bytes, then the comma.
    const need = this.#length + 1 - this.#have;
    const avail = chunk.length - i;
    if (avail < need) {
      if (avail > 0) {
        this.#parts.push(chunk.subarray(i));
        this.#have += avail;
      }
      return undefined;
    }
    const commaAt = i + need - 1;
    let block: Buffer;
    if (this.#parts.length === 0) {
      block = chunk.subarray(i, commaAt);
    } else {
      // The comma may be the first byte of this chunk, with the block all in earlier parts.
      if (commaAt > i) this.#parts.push(chunk.subarray(i, commaAt));
      block = Buffer.concat(this.#parts, this.#length);
    }
    this.#parts = [];
    this.#have = 0;
    const comma = chunk[commaAt] as number;
    if (comma !== NETSTRING_COMMA) {
      throw new ProtocolError(
        PROTOCOL,
        ScgiErrorCode.MissingComma,
        `expected "," after the ${this.#length}-byte header block, got "${showBytes(chunk.subarray(commaAt, commaAt + 1))}"`,
      );
    }
    const headers = decodeScgiHeaderBlock(block);
    const { contentLength, hasScgiMarker } = checkScgiHeaders(headers, this.maxBodyBytes);
    this.#state = 'done';
    return {
      headers,
      contentLength,
      hasScgiMarker,
      headBytes: this.#digits + 2 + this.#length,
      rest: chunk.subarray(commaAt + 1),
    };
  }
}

/**
 * Splits a header block (the netstring payload, without `:` and `,`) into name/value pairs (S-3):
 * it must end with NUL, split into an even number of strings, and have no empty name. Values may
 * be empty. Latin1, one char per byte (S-12).
 */
export function decodeScgiHeaderBlock(block: Buffer): ScgiHeader[] {
  const headers: ScgiHeader[] = [];
  const end = block.length;
  if (end === 0) return headers;
  if (block[end - 1] !== NUL) {
    throw new ProtocolError(
      PROTOCOL,
      ScgiErrorCode.Unterminated,
      `header block does not end with NUL (ends with "${showBytes(block.subarray(Math.max(0, end - 16)))}")`,
    );
  }
  // One latin1 decode of the whole block, then string slices: one char per byte, so the byte
  // offsets of the NULs are string offsets too.
  const text = block.toString('latin1');
  let pos = 0;
  while (pos < end) {
    const nameEnd = text.indexOf('\0', pos);
    if (nameEnd === pos) {
      throw new ProtocolError(PROTOCOL, ScgiErrorCode.EmptyName, `empty header name at offset ${pos} of the header block`);
    }
    if (nameEnd === end - 1) {
      throw new ProtocolError(
        PROTOCOL,
        ScgiErrorCode.OddStrings,
        `odd number of NUL-terminated strings: header "${showBytes(block.subarray(pos, nameEnd), 64)}" has no value`,
      );
    }
    const valueEnd = text.indexOf('\0', nameEnd + 1);
    headers.push([text.slice(pos, nameEnd), text.slice(nameEnd + 1, valueEnd)]);
    pos = valueEnd + 1;
  }
  return headers;
}

/**
 * S-4 and S-5 over a decoded header list: exactly one CONTENT_LENGTH made of ASCII digits and not
 * above `maxBodyBytes`; every `SCGI` header equal to `1`.
 */
export function checkScgiHeaders(
  headers: ReadonlyArray<readonly [string, string]>,
  maxBodyBytes: number = Number.MAX_SAFE_INTEGER,
): { contentLength: number; hasScgiMarker: boolean } {
  let contentLength: string | undefined;
  let hasScgiMarker = false;
  for (const [name, value] of headers) {
    if (name === SCGI_CONTENT_LENGTH) {
      if (contentLength !== undefined) {
        throw new ProtocolError(
          PROTOCOL,
          ScgiErrorCode.DuplicateContentLength,
          `two CONTENT_LENGTH headers ("${quote(contentLength)}" and "${quote(value)}")`,
        );
      }
      contentLength = value;
    } else if (name === SCGI_MARKER) {
      if (value !== SCGI_MARKER_VALUE) {
        throw new ProtocolError(PROTOCOL, ScgiErrorCode.BadMarker, `SCGI header is "${quote(value)}", expected "1"`);
      }
      hasScgiMarker = true;
    }
  }
  if (contentLength === undefined) {
    throw new ProtocolError(PROTOCOL, ScgiErrorCode.MissingContentLength, 'no CONTENT_LENGTH header');
  }
  return { contentLength: parseContentLength(contentLength, maxBodyBytes), hasScgiMarker };
}

function parseContentLength(text: string, max: number): number {
  if (!/^[0-9]+$/.test(text)) {
    throw new ProtocolError(
      PROTOCOL,
      ScgiErrorCode.BadContentLength,
      `CONTENT_LENGTH "${quote(text)}" is not a decimal number (ASCII digits only)`,
    );
  }
  let n = 0;
  for (let k = 0; k < text.length; k++) {
    n = n * 10 + (text.charCodeAt(k) - DIGIT_0);
    if (n > max) {
      throw new LimitError(
        PROTOCOL,
        ScgiErrorCode.BodyTooLarge,
        `CONTENT_LENGTH "${quote(text)}" exceeds maxBodyBytes ${max}`,
        'maxBodyBytes',
      );
    }
  }
  return n;
}

function quote(latin1: string): string {
  return showBytes(Buffer.from(latin1, 'latin1'), 32);
}

/** One-shot form: decodes a head that is entirely in `bytes`; undefined if it is incomplete. */
export function decodeScgiHead(bytes: Buffer, options?: ScgiDecoderOptions): ScgiRequestHead | undefined {
  return new ScgiDecoder(options).push(bytes);
}

/**
 * The value of header `name` in the first bytes of an SCGI request, read as far as they go
 * (the netstring may be incomplete, or refused for its length): what a server needs to answer
 * a request it refuses before decoding it, e.g. whether it was a HEAD. Undefined when the bytes
 * end before that header is complete, or do not look like an SCGI head.
 */
export function peekScgiHeader(bytes: Uint8Array, name: string): string | undefined {
  let i = 0;
  while (i < bytes.length && bytes[i] !== 0x3a) {
    const b = bytes[i] as number;
    if (b < 0x30 || b > 0x39 || i > 8) return undefined;
    i++;
  }
  i++; // the colon
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  while (i < text.length) {
    const keyEnd = text.indexOf('\0', i);
    if (keyEnd === -1) return undefined;
    const valueEnd = text.indexOf('\0', keyEnd + 1);
    if (valueEnd === -1) return undefined;
    if (text.slice(i, keyEnd) === name) return text.slice(keyEnd + 1, valueEnd);
    i = valueEnd + 1;
  }
  return undefined;
}
