/**
 * FastCGI name-value pairs (spec §3.4), as carried by PARAMS, GET_VALUES and
 * GET_VALUES_RESULT.
 *
 * ```
 * nameLength valueLength name value
 * length: 0lllllll (0..127) | 1lllllll llllllll llllllll llllllll (31-bit BE)
 * ```
 *
 * PARAMS is a stream: pairs, and even a 4-byte length, may straddle records (spec appendix B,
 * example 2; F-17), so {@link ParamsDecoder} parses the concatenation of the records'
 * contents incrementally instead of record by record (flup, php-fpm and node-fastcgi get
 * this wrong). Names and values are byte strings held as latin1, one char per byte; never
 * UTF-8 (PEP 3333's rule; docs/conformance.md E-2).
 */
import { LimitError, ProtocolError } from '../errors.js';
import { DEFAULT_MAX_PAIRS, DEFAULT_MAX_PARAMS_BYTES, FastcgiErrorCode, ManagementVariable } from './constants.js';

/** One name-value pair; order and duplicates are kept as on the wire (F-22 is the front's). */
export type Pair = [name: string, value: string];

export interface ParamsDecoderOptions {
  /** Total bytes of concatenated PARAMS content (F-19). @default 1048576 */
  maxParamsBytes?: number;
  /** Number of pairs (F-19). @default 1000 */
  maxPairs?: number;
}

const P_NAME_LEN = 0;
const P_VALUE_LEN = 1;
const P_NAME = 2;
const P_VALUE = 3;

/**
 * Incremental decoder of one PARAMS stream.
 *
 * `push(content)` for each non-empty PARAMS record, `end()` at the empty one (PARAMS EOS).
 * Limits are checked before bytes are buffered: a declared length that would run past
 * `maxParamsBytes` fails as soon as its length prefix is read, so `FF FF FF FF` never
 * allocates anything (§2.4). An error is sticky until `reset()`; the record framing is
 * intact after it, so the front may answer 400/431 and keep the connection (F-19, F-20).
 *
 * @example
 * const params = new ParamsDecoder();
 * params.push(record1); params.push(record2);
 * const pairs = params.end(); // [['SERVER_PORT', '80'], ...]
 */
export class ParamsDecoder {
  private readonly maxParamsBytes: number;
  private readonly maxPairs: number;

  private pairs: Pair[] = [];
  /** Stream bytes pushed so far. */
  private total = 0;
  private state = P_NAME_LEN;
  /** Bytes still to read of a 4-byte length that straddles records; 0 otherwise. */
  private lenLeft = 0;
  private lenAcc = 0;
  private nameLen = 0;
  private valueLen = 0;
  private name = '';
  /** latin1 text collected so far of a name or value that straddles records. */
  private partial = '';
  /** Bytes still to collect of that name or value. */
  private left = 0;
  private failure: ProtocolError | null = null;

  constructor(options: ParamsDecoderOptions = {}) {
    this.maxParamsBytes = checkLimit('maxParamsBytes', options.maxParamsBytes ?? DEFAULT_MAX_PARAMS_BYTES);
    this.maxPairs = checkLimit('maxPairs', options.maxPairs ?? DEFAULT_MAX_PAIRS);
  }

  /** Bytes of PARAMS content pushed since the last `end()`/`reset()`. */
  get byteLength(): number {
    return this.total;
  }

  /** Complete pairs decoded so far. */
  get pairCount(): number {
    return this.pairs.length;
  }

  /**
   * The value of `name` among the pairs decoded so far (the last one), even after an error: a
   * front refusing an oversized PARAMS stream still learns whether the request was a HEAD.
   */
  decodedValue(name: string): string | undefined {
    for (let i = this.pairs.length - 1; i >= 0; i--) {
      const pair = this.pairs[i] as Pair;
      if (pair[0] === name) return pair[1];
    }
    return undefined;
  }

  /** Appends the content of one PARAMS record. */
  push(content: Buffer): void {
    if (this.failure !== null) throw this.failure;
    try {
      this.parse(content);
    } catch (err) {
      if (err instanceof ProtocolError) this.failure = err;
      throw err;
    }
  }

  /**
   * PARAMS EOS: returns the pairs in wire order and resets the decoder for the next stream.
   * Throws `ProtocolError` FCGI_PARAMS_TRUNCATED if the stream stops inside a pair (F-18).
   */
  end(): Pair[] {
    if (this.failure !== null) throw this.failure;
    if (this.state !== P_NAME_LEN || this.lenLeft !== 0) {
      const where =
        this.state === P_NAME_LEN
          ? 'inside the 4-byte length of a name'
          : this.state === P_VALUE_LEN
            ? `inside the length of a value (name length ${this.nameLen})`
            : `inside a pair (name length ${this.nameLen}, value length ${this.valueLen}, ${this.missing()} bytes missing)`;
      this.failure = new ProtocolError(
        'fastcgi',
        FastcgiErrorCode.ParamsTruncated,
        `PARAMS stream of ${this.total} bytes ends ${where}`,
      );
      throw this.failure;
    }
    const pairs = this.pairs;
    this.reset();
    return pairs;
  }

  /** Forgets everything, including a sticky error (next request on a kept connection). */
  reset(): void {
    this.pairs = [];
    this.total = 0;
    this.state = P_NAME_LEN;
    this.lenLeft = 0;
    this.lenAcc = 0;
    this.nameLen = 0;
    this.valueLen = 0;
    this.name = '';
    this.partial = '';
    this.left = 0;
    this.failure = null;
  }

  private missing(): number {
    return this.state === P_NAME ? this.left + this.valueLen : this.left;
  }

  private parse(content: Buffer): void {
    const n = content.length;
    const base = this.total;
    if (base + n > this.maxParamsBytes) {
      // Decode what fits first, so the pairs before the limit stay readable (decodedValue: the
      // method of the request being refused); the limit error is what the caller sees.
      const room = this.maxParamsBytes - base;
      if (room > 0) {
        try {
          this.parse(content.subarray(0, room));
        } catch {
          // a pair that does not fit: the limit error below says it
        }
      }
      throw tooLarge(`PARAMS stream exceeds maxParamsBytes ${this.maxParamsBytes} (${base + n} bytes so far)`);
    }
    this.total = base + n;
    let pos = 0;
    while (pos < n) {
      if (this.state === P_NAME_LEN && this.lenLeft === 0) {
        pos = this.parseWholePairs(content, pos, base);
        if (pos >= n) return;
      }
      // Byte-wise state machine, only for the one pair that straddles the record end.
      switch (this.state) {
        case P_NAME_LEN:
        case P_VALUE_LEN: {
          const b = content[pos++]!;
          if (this.lenLeft === 0) {
            if (b < 0x80) {
              this.gotLength(b, base + pos);
            } else {
              this.lenAcc = b & 0x7f;
              this.lenLeft = 3;
            }
          } else {
            this.lenAcc = (this.lenAcc << 8) | b;
            if (--this.lenLeft === 0) this.gotLength(this.lenAcc, base + pos);
          }
          break;
        }
        default: {
          // P_NAME or P_VALUE with bytes left (zero-length strings are settled eagerly).
          const take = Math.min(this.left, n - pos);
          this.partial += content.toString('latin1', pos, pos + take);
          pos += take;
          this.left -= take;
          if (this.left === 0) this.gotString();
        }
      }
    }
  }

  /**
   * Fast path: decodes every pair lying wholly inside `content` from `pos` on, straight from
   * the buffer. Returns the offset of the first incomplete pair (or `content.length`).
   */
  private parseWholePairs(content: Buffer, pos: number, base: number): number {
    const n = content.length;
    const pairs = this.pairs;
    // One native latin1 decode of the rest of the record, then cheap substrings: latin1 is
    // one char per byte, so char offsets are byte offsets. ~4× faster than a decode per
    // name and value for typical nginx params (bench/fastcgi-codec.mjs).
    const text = content.toString('latin1', pos, n);
    const shift = pos;
    while (pos < n) {
      let p = pos;
      let nameLen = content[p]!;
      if (nameLen < 0x80) p += 1;
      else if (p + 4 <= n) {
        nameLen = content.readUInt32BE(p) & 0x7fffffff;
        p += 4;
      } else return pos;
      if (p >= n) return pos;
      let valueLen = content[p]!;
      if (valueLen < 0x80) p += 1;
      else if (p + 4 <= n) {
        valueLen = content.readUInt32BE(p) & 0x7fffffff;
        p += 4;
      } else return pos;
      this.checkPair(nameLen, valueLen, base + p);
      const valueStart = p + nameLen;
      const end = valueStart + valueLen;
      if (end > n) return pos;
      pairs.push([text.slice(p - shift, valueStart - shift), text.slice(valueStart - shift, end - shift)]);
      pos = end;
    }
    return pos;
  }

  /** Both lengths known, `offset` = stream offset of the name: enforce limits up front. */
  private checkPair(nameLen: number, valueLen: number, offset: number): void {
    if (this.pairs.length >= this.maxPairs) {
      throw new LimitError(
        'fastcgi',
        FastcgiErrorCode.TooManyParams,
        `PARAMS stream has more than maxPairs ${this.maxPairs} pairs`,
        'maxPairs',
      );
    }
    if (offset + nameLen + valueLen > this.maxParamsBytes) {
      throw tooLarge(
        `pair at offset ${offset} declares name length ${nameLen} and value length ${valueLen}, past maxParamsBytes ${this.maxParamsBytes}`,
      );
    }
  }

  private gotLength(length: number, offset: number): void {
    if (this.state === P_NAME_LEN) {
      this.nameLen = length;
      this.state = P_VALUE_LEN;
      return;
    }
    this.valueLen = length;
    this.checkPair(this.nameLen, length, offset);
    this.state = P_NAME;
    this.partial = '';
    this.left = this.nameLen;
    if (this.left === 0) this.gotString();
  }

  private gotString(): void {
    if (this.state === P_NAME) {
      this.name = this.partial;
      this.partial = '';
      this.state = P_VALUE;
      this.left = this.valueLen;
      if (this.left !== 0) return;
    }
    this.pairs.push([this.name, this.partial]);
    this.name = '';
    this.partial = '';
    this.state = P_NAME_LEN;
  }
}

function checkLimit(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`Expected the \`${name}\` option to be a non-negative integer, got \`${String(value)}\``);
  }
  return value;
}

function tooLarge(message: string): LimitError {
  return new LimitError('fastcgi', FastcgiErrorCode.ParamsTooLarge, message, 'maxParamsBytes');
}

/** Decodes one complete block of pairs (a GET_VALUES or GET_VALUES_RESULT body). */
export function decodeParams(content: Buffer, options?: ParamsDecoderOptions): Pair[] {
  const decoder = new ParamsDecoder(options);
  decoder.push(content);
  return decoder.end();
}

const NON_LATIN1 = /[^\u0000-\u00ff]/;

function lengthSize(length: number): number {
  return length < 0x80 ? 1 : 4;
}

/**
 * Bytes one pair takes on the wire (its two lengths, name and value), for latin1 strings (one
 * byte per char; the caller checks that). The FastCGI client packs whole pairs into records with it.
 */
export function pairByteLength(name: string, value: string): number {
  return lengthSize(name.length) + lengthSize(value.length) + name.length + value.length;
}

/**
 * Writes one pair at `offset` (room for {@link pairByteLength} bytes must be there; latin1
 * strings, not checked) and returns the offset after it.
 */
export function writePair(buf: Buffer, offset: number, name: string, value: string): number {
  let at = writeLength(buf, offset, name.length);
  at = writeLength(buf, at, value.length);
  at += buf.write(name, at, 'latin1');
  return at + buf.write(value, at, 'latin1');
}

function writeLength(buf: Buffer, offset: number, length: number): number {
  if (length < 0x80) {
    buf[offset] = length;
    return offset + 1;
  }
  buf.writeUInt32BE((length | 0x80000000) >>> 0, offset);
  return offset + 4;
}

/**
 * Encodes pairs as latin1 name-value bytes, 1-byte lengths up to 127, 4-byte lengths above.
 * Throws `RangeError` for a char above U+00FF (it has no byte; encode UTF-8 text to latin1
 * first, e.g. `Buffer.from(s, 'utf8').toString('latin1')`).
 */
export function encodeParams(pairs: Iterable<readonly [string, string]>): Buffer {
  const list = Array.isArray(pairs) ? (pairs as ReadonlyArray<readonly [string, string]>) : [...pairs];
  let size = 0;
  for (const [name, value] of list) {
    if (NON_LATIN1.test(name) || NON_LATIN1.test(value)) {
      throw new RangeError(`fastcgi: pair ${JSON.stringify(name)} holds a char above U+00FF`);
    }
    size += pairByteLength(name, value);
  }
  const buf = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const [name, value] of list) offset = writePair(buf, offset, name, value);
  return buf;
}

/** What GET_VALUES may learn; booleans render as "1"/"0", numbers as decimal ASCII (F-6). */
export type GetValuesConfig = Readonly<Partial<Record<string, string | number | boolean>>>;

/** The names asked for by a GET_VALUES body; the query's values are ignored (F-6). */
export function decodeGetValues(content: Buffer): string[] {
  return decodeParams(content).map((pair) => pair[0]);
}

/**
 * The GET_VALUES_RESULT pairs for `names`: only names present in `values`, each once, in
 * query order; unknown names are left out (spec §4.1, F-6).
 *
 * @example
 * resolveGetValues(['FCGI_MPXS_CONNS', 'X'], { FCGI_MPXS_CONNS: false }) // [['FCGI_MPXS_CONNS', '0']]
 */
export function resolveGetValues(names: Iterable<string>, values: GetValuesConfig): Pair[] {
  const out: Pair[] = [];
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name) || !Object.prototype.hasOwnProperty.call(values, name)) continue;
    const value = values[name];
    if (value === undefined) continue;
    seen.add(name);
    out.push([name, typeof value === 'boolean' ? (value ? '1' : '0') : String(value)]);
  }
  return out;
}

/** The three management variables of spec §4.1, in the spec's order. */
export const MANAGEMENT_VARIABLES: readonly string[] = [
  ManagementVariable.MaxConns,
  ManagementVariable.MaxReqs,
  ManagementVariable.MpxsConns,
];
