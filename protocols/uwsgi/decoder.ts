/**
 * uwsgi request head decoder (docs/conformance.md §4, U-1..U-6, U-11).
 *
 * A push parser for the packet a web server sends first: the 4-byte header (modifier1, datasize
 * little-endian, modifier2), then exactly datasize bytes of vars. It returns the vars in wire order
 * plus `rest`, the bytes of the same chunk after the vars block (start of the body, a subarray:
 * no copy). It never reads the body: the caller reads exactly `contentLength` bytes (U-6) and never
 * parses another packet from what follows.
 *
 * modifier1 is reported as received. The allow-list (U-2) is the front's policy: `checkHeader` runs
 * as soon as the 4 header bytes are in, so a front can close on a refused type before any vars byte
 * is buffered or decoded (the `header` getter also exposes it from then on). Checked here: the LE16
 * sizes and exact consumption of the block (U-4: key size 0 and truncated entries rejected, empty
 * values legal), datasize against `maxUwsgiPacketSize`
 * (U-3, checked before any vars byte is buffered) and CONTENT_LENGTH (U-6: empty or absent = 0,
 * digits only otherwise). Left to the environ builder: duplicate names (U-5 = F-22), dropping
 * names with `=`, `.` or NUL (U-5), ignoring `UWSGI_*` magic vars (U-10). Strings are latin1 (U-11).
 */
import { LimitError, ProtocolError, showBytes } from '../errors.js';
import {
  DEFAULT_MAX_UWSGI_PACKET_SIZE,
  MAX_UWSGI_DATASIZE,
  UWSGI_CONTENT_LENGTH,
  UWSGI_HEADER_SIZE,
  UwsgiErrorCode,
} from './constants.js';

/** One var as sent: latin1 key and value, in wire order. */
export type UwsgiVar = [name: string, value: string];

/** The 4-byte packet header (U-1). */
export interface UwsgiPacketHeader {
  modifier1: number;
  /** Size of the vars block, decoded little-endian. */
  datasize: number;
  modifier2: number;
}

export interface UwsgiDecoderOptions {
  /** Largest vars block (datasize) accepted. Default and maximum 65535 (U-3). */
  maxUwsgiPacketSize?: number;
  /** Largest CONTENT_LENGTH accepted. Default `Number.MAX_SAFE_INTEGER`. */
  maxBodyBytes?: number;
  /**
   * Called once with the packet header, before its datasize is checked and before any vars byte is
   * buffered or decoded (the U-2 allow-list). What it throws, push() throws, and the decoder is
   * failed from then on.
   */
  checkHeader?: (header: UwsgiPacketHeader) => void;
}

export interface UwsgiRequestHead extends UwsgiPacketHeader {
  /** Every var in wire order, duplicates kept. */
  vars: UwsgiVar[];
  /** CONTENT_LENGTH as a number; 0 when absent or empty (U-6). */
  contentLength: number;
  /** Bytes of the packet: 4 + datasize. */
  headBytes: number;
  /** Bytes of the last pushed chunk after the vars block: the start of the body (subarray). */
  rest: Buffer;
}

/** `header`: reading the 4-byte header; `vars`: reading the vars block. */
export type UwsgiDecoderState = 'header' | 'vars' | 'done' | 'failed';

const PROTOCOL = 'uwsgi';

function checkLimit(name: string, value: number | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new RangeError(`uwsgi: option ${name} must be an integer in 0..${max}, got ${value}`);
  }
  return value;
}

export class UwsgiDecoder {
  readonly maxUwsgiPacketSize: number;
  readonly maxBodyBytes: number;
  #state: UwsgiDecoderState = 'header';
  #error: unknown;
  readonly #checkHeader: ((header: UwsgiPacketHeader) => void) | undefined;
  /** A packet header split across chunks, gathered here (created only then). */
  #headerBytes: Buffer | undefined;
  #headerHave = 0;
  #header: UwsgiPacketHeader | undefined;
  /** Vars bytes kept from earlier chunks. */
  #parts: Buffer[] = [];
  #have = 0;

  constructor(options: UwsgiDecoderOptions = {}) {
    this.maxUwsgiPacketSize = checkLimit(
      'maxUwsgiPacketSize',
      options.maxUwsgiPacketSize,
      DEFAULT_MAX_UWSGI_PACKET_SIZE,
      MAX_UWSGI_DATASIZE,
    );
    this.maxBodyBytes = checkLimit('maxBodyBytes', options.maxBodyBytes, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    this.#checkHeader = options.checkHeader;
  }

  get state(): UwsgiDecoderState {
    return this.#state;
  }

  /** The packet header once its 4 bytes have arrived (even if the vars are still incomplete). */
  get header(): UwsgiPacketHeader | undefined {
    return this.#header;
  }

  /** Bytes held for an incomplete header or vars block. Never above 4 + `maxUwsgiPacketSize`. */
  get bufferedBytes(): number {
    return this.#headerHave < UWSGI_HEADER_SIZE ? this.#headerHave : this.#have;
  }

  /**
   * Feeds the next socket chunk. Returns undefined while the packet is incomplete, the decoded head
   * once datasize bytes of vars have arrived. Throws ProtocolError/LimitError for bad bytes (and
   * whatever `checkHeader` throws); after an error every call rethrows it. Pushing after the head
   * was returned throws a plain Error (the body is the caller's business).
   */
  push(chunk: Buffer): UwsgiRequestHead | undefined {
    if (this.#error !== undefined) throw this.#error;
    if (this.#state === 'done') {
      throw new Error('uwsgi: push() after the request head was decoded; the caller reads the body');
    }
    try {
      return this.#push(chunk);
    } catch (err) {
      this.#state = 'failed';
      this.#error = err;
      throw err;
    }
  }

  /** The connection reached EOF: throws `UWSGI_TRUNCATED_HEAD` inside a packet, else nothing. */
  end(): void {
    if (this.#state === 'done' || this.#state === 'failed') return;
    if (this.#state === 'header' && this.#headerHave === 0) return;
    const where =
      this.#header === undefined
        ? `after ${this.#headerHave} of 4 packet header bytes`
        : `after ${this.#have} of ${this.#header.datasize} vars bytes`;
    const err = new ProtocolError(PROTOCOL, UwsgiErrorCode.TruncatedHead, `connection closed ${where}`);
    this.#state = 'failed';
    this.#error = err;
    throw err;
  }

  #push(chunk: Buffer): UwsgiRequestHead | undefined {
    let i = 0;
    if (this.#state === 'header') {
      let h: Buffer;
      if (this.#headerHave === 0 && chunk.length >= UWSGI_HEADER_SIZE) {
        h = chunk; // the usual case: the whole header in the first chunk, read in place
        i = UWSGI_HEADER_SIZE;
      } else {
        h = this.#headerBytes ??= Buffer.alloc(UWSGI_HEADER_SIZE);
        i = Math.min(UWSGI_HEADER_SIZE - this.#headerHave, chunk.length);
        chunk.copy(h, this.#headerHave, 0, i);
        this.#headerHave += i;
        if (this.#headerHave < UWSGI_HEADER_SIZE) return undefined;
      }
      this.#headerHave = UWSGI_HEADER_SIZE;
      const header: UwsgiPacketHeader = {
        modifier1: h[0] as number,
        datasize: (h[1] as number) | ((h[2] as number) << 8), // U-1: little-endian
        modifier2: h[3] as number,
      };
      this.#header = header;
      this.#state = 'vars';
      this.#checkHeader?.(header);
      if (header.datasize > this.maxUwsgiPacketSize) {
        throw new LimitError(
          PROTOCOL,
          UwsgiErrorCode.VarsTooLarge,
          `vars block of ${header.datasize} bytes (header "${showBytes(h.subarray(0, UWSGI_HEADER_SIZE))}") exceeds maxUwsgiPacketSize ${this.maxUwsgiPacketSize}`,
          'maxUwsgiPacketSize',
        );
      }
    }

    const header = this.#header as UwsgiPacketHeader;
    const need = header.datasize - this.#have;
    const avail = chunk.length - i;
    if (avail < need) {
      if (avail > 0) {
        this.#parts.push(chunk.subarray(i));
        this.#have += avail;
      }
      return undefined;
    }
    const end = i + need;
    let block: Buffer;
    if (this.#parts.length === 0) {
      block = chunk.subarray(i, end);
    } else {
      if (end > i) this.#parts.push(chunk.subarray(i, end));
      block = Buffer.concat(this.#parts, header.datasize);
    }
    this.#parts = [];
    this.#have = 0;
    const vars = decodeUwsgiVars(block);
    const { contentLength } = checkUwsgiVars(vars, this.maxBodyBytes);
    this.#state = 'done';
    return {
      modifier1: header.modifier1,
      datasize: header.datasize,
      modifier2: header.modifier2,
      vars,
      contentLength,
      headBytes: UWSGI_HEADER_SIZE + header.datasize,
      rest: chunk.subarray(end),
    };
  }
}

/**
 * Parses a vars block (U-4): repeated LE16 key size, key, LE16 value size, value, consuming the
 * block exactly. Key size 0 and any entry that runs past the end are rejected; values may be empty.
 */
export function decodeUwsgiVars(block: Buffer): UwsgiVar[] {
  const vars: UwsgiVar[] = [];
  const end = block.length;
  // One latin1 decode of the whole block, then string slices (one char per byte).
  const text = block.toString('latin1');
  let pos = 0;
  while (pos < end) {
    if (end - pos < 2) {
      throw truncated(`1 byte left at offset ${pos} of the ${end}-byte vars block, a key size needs 2`);
    }
    const keySize = (block[pos] as number) | ((block[pos + 1] as number) << 8);
    if (keySize === 0) {
      throw new ProtocolError(PROTOCOL, UwsgiErrorCode.EmptyKey, `key size 0 at offset ${pos} of the vars block`);
    }
    const keyStart = pos + 2;
    if (end - keyStart < keySize) {
      throw truncated(`key of ${keySize} bytes at offset ${keyStart} runs past the ${end}-byte vars block`);
    }
    const keyEnd = keyStart + keySize;
    const key = text.slice(keyStart, keyEnd);
    if (end - keyEnd < 2) {
      throw truncated(`value size of key "${showBytes(block.subarray(keyStart, keyEnd), 64)}" runs past the vars block`);
    }
    const valueSize = (block[keyEnd] as number) | ((block[keyEnd + 1] as number) << 8);
    const valueStart = keyEnd + 2;
    if (end - valueStart < valueSize) {
      throw truncated(
        `value of key "${showBytes(block.subarray(keyStart, keyEnd), 64)}" (${valueSize} bytes) runs ${valueSize - (end - valueStart)} bytes past the vars block`,
      );
    }
    pos = valueStart + valueSize;
    vars.push([key, text.slice(valueStart, pos)]);
  }
  return vars;
}

function truncated(message: string): ProtocolError {
  return new ProtocolError(PROTOCOL, UwsgiErrorCode.TruncatedVar, message);
}

/**
 * U-6 over decoded vars: CONTENT_LENGTH absent or empty means no body; otherwise ASCII digits only
 * and not above `maxBodyBytes`. Several CONTENT_LENGTH vars are accepted only when they are equal
 * (nginx repeats a param listed twice in its config); differing ones would make the body framing
 * depend on which one a reader picks, so they are rejected.
 */
export function checkUwsgiVars(
  vars: ReadonlyArray<readonly [string, string]>,
  maxBodyBytes: number = Number.MAX_SAFE_INTEGER,
): { contentLength: number } {
  let text: string | undefined;
  for (const [name, value] of vars) {
    if (name !== UWSGI_CONTENT_LENGTH) continue;
    if (text !== undefined && text !== value) {
      throw new ProtocolError(
        PROTOCOL,
        UwsgiErrorCode.DuplicateContentLength,
        `two different CONTENT_LENGTH vars ("${quote(text)}" and "${quote(value)}")`,
      );
    }
    text = value;
  }
  if (text === undefined || text === '') return { contentLength: 0 };
  if (!/^[0-9]+$/.test(text)) {
    throw new ProtocolError(
      PROTOCOL,
      UwsgiErrorCode.BadContentLength,
      `CONTENT_LENGTH "${quote(text)}" is not a decimal number (ASCII digits only)`,
    );
  }
  let n = 0;
  for (let k = 0; k < text.length; k++) {
    n = n * 10 + (text.charCodeAt(k) - 0x30);
    if (n > maxBodyBytes) {
      throw new LimitError(
        PROTOCOL,
        UwsgiErrorCode.BodyTooLarge,
        `CONTENT_LENGTH "${quote(text)}" exceeds maxBodyBytes ${maxBodyBytes}`,
        'maxBodyBytes',
      );
    }
  }
  return { contentLength: n };
}

function quote(latin1: string): string {
  return showBytes(Buffer.from(latin1, 'latin1'), 32);
}

/** One-shot form: decodes a packet that is entirely in `bytes`; undefined if it is incomplete. */
export function decodeUwsgiHead(bytes: Buffer, options?: UwsgiDecoderOptions): UwsgiRequestHead | undefined {
  return new UwsgiDecoder(options).push(bytes);
}

/** Result of {@link stripScriptName}. */
export interface ScriptNameStrip {
  /** PATH_INFO to use: without the SCRIPT_NAME prefix when `outcome` is `stripped`, else unchanged. */
  pathInfo: string;
  /**
   * `stripped`: PATH_INFO started with SCRIPT_NAME on a segment boundary.
   * `no-script-name`: SCRIPT_NAME empty or `/`, nothing to strip.
   * `not-a-prefix`: SCRIPT_NAME is not a segment prefix of PATH_INFO; the front should log it (U-7).
   */
  outcome: 'stripped' | 'no-script-name' | 'not-a-prefix';
}

/**
 * U-7, modifier1 30 (`Modifier1.WsgiPathInfo`): remove SCRIPT_NAME from the front of PATH_INFO,
 * but only on a segment boundary. `/app` + `/app/x` → `/x`; `/app` + `/app` → `""`;
 * `/app` + `/application` or `/other` → unchanged (uWSGI would chop 4 chars blindly).
 * Trailing slashes of SCRIPT_NAME are ignored for the match (`/app/` strips like `/app`), so the
 * result keeps its leading `/`. Pure string function; values are latin1 byte strings.
 */
export function stripScriptName(scriptName: string, pathInfo: string): ScriptNameStrip {
  let prefix = scriptName;
  while (prefix.endsWith('/')) prefix = prefix.slice(0, -1);
  if (prefix === '') return { pathInfo, outcome: 'no-script-name' };
  if (pathInfo === prefix) return { pathInfo: '', outcome: 'stripped' };
  if (pathInfo.startsWith(prefix) && pathInfo.charCodeAt(prefix.length) === 0x2f) {
    return { pathInfo: pathInfo.slice(prefix.length), outcome: 'stripped' };
  }
  return { pathInfo, outcome: 'not-a-prefix' };
}

/**
 * The value of var `name` in the first bytes of a uwsgi packet, read as far as they go (the
 * vars block may be incomplete, or refused for its size): what a server needs to answer a
 * request it refuses before decoding it, e.g. whether it was a HEAD. Undefined when the bytes
 * end before that var is complete.
 */
export function peekUwsgiVar(bytes: Uint8Array, name: string): string | undefined {
  let i = UWSGI_HEADER_SIZE;
  while (i + 2 <= bytes.length) {
    const keySize = (bytes[i] as number) | ((bytes[i + 1] as number) << 8);
    const keyStart = i + 2;
    if (keyStart + keySize + 2 > bytes.length) return undefined;
    const valueSize = (bytes[keyStart + keySize] as number) | ((bytes[keyStart + keySize + 1] as number) << 8);
    const valueStart = keyStart + keySize + 2;
    if (valueStart + valueSize > bytes.length) return undefined;
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (keySize === name.length && buf.toString('latin1', keyStart, keyStart + keySize) === name) return buf.toString('latin1', valueStart, valueStart + valueSize);
    i = valueStart + valueSize;
  }
  return undefined;
}
