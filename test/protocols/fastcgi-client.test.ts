/**
 * FastCGI client side (protocols/fastcgi/client.ts): golden bytes of every request encoder,
 * worked out here from the record layout of the FastCGI spec (spec §3.3, §5.1, §5.3, §4.1), and
 * FastcgiResponseDecoder on what application servers send back: a php-fpm-like and a uWSGI-like
 * response, every fixture whole, split at every offset and one byte at a time; the hostile
 * upstream inputs the codec can see; the round trip with the server side (the front's encoders);
 * fast-check properties (encoded records decode back whatever the chunking; random bytes give
 * events or one sticky typed error, never anything else).
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { LimitError, ProtocolError } from '../../protocols/errors.js';
import {
  FastcgiErrorCode,
  FastcgiResponseDecoder,
  Flag,
  MANAGEMENT_VARIABLES,
  ParamsDecoder,
  ProtocolStatus,
  RecordDecoder,
  RecordType,
  Role,
  SINGLE_BUFFER_MAX,
  answerGetValues,
  decodeBeginRequest,
  decodeParams,
  encodeAbortRequest,
  encodeEndOfStream,
  encodeEndRequest,
  encodeFastcgiRequest,
  encodeGetValues,
  encodeGetValuesResult,
  encodeParams,
  encodeRecord,
  encodeResponseEnd,
  encodeStderr,
  encodeStdin,
  encodeStdinEnd,
  encodeStdout,
  encodeUnknownType,
  protocolStatusName,
} from '../../protocols/fastcgi/index.js';
import type { FastcgiResponseHandler, Pair } from '../../protocols/fastcgi/index.js';

// ---- helpers -------------------------------------------------------------------------------

const ascii = (s: string): number[] => [...Buffer.from(s, 'latin1')];
const bytes = (...parts: Array<number | number[]>): Buffer => Buffer.from(parts.flat());
const latin1 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('latin1');

/** One decoded event; STDOUT/STDERR pieces are joined back into their record. */
type Ev =
  | [kind: 'stdout' | 'stderr', id: number, text: string]
  | [kind: 'stdout-partial' | 'stderr-partial', id: number, text: string]
  | [kind: 'stdout-end' | 'stderr-end', id: number]
  | [kind: 'end', id: number, appStatus: number, protocolStatus: number]
  | [kind: 'values', pairs: Pair[]]
  | [kind: 'unknown-type', type: number];

const out = (id: number, text: string): Ev => ['stdout', id, text];
const err = (id: number, text: string): Ev => ['stderr', id, text];
const outEnd = (id: number): Ev => ['stdout-end', id];
const errEnd = (id: number): Ev => ['stderr-end', id];
const end = (id: number, appStatus = 0, protocolStatus = 0): Ev => ['end', id, appStatus, protocolStatus];

/** A handler that records events, checking the piece contract (non-empty, one record at a time). */
class Collector implements FastcgiResponseHandler {
  readonly events: Ev[] = [];
  pieces = 0;
  afterEnd: ((id: number) => void) | undefined;
  private partial: { kind: 'stdout' | 'stderr'; id: number; text: string } | null = null;

  onStdout(id: number, data: Buffer, recordEnd: boolean): void {
    this.piece('stdout', id, data, recordEnd);
  }
  onStderr(id: number, data: Buffer, recordEnd: boolean): void {
    this.piece('stderr', id, data, recordEnd);
  }
  onStdoutEnd(id: number): void {
    this.whole(['stdout-end', id]);
  }
  onStderrEnd(id: number): void {
    this.whole(['stderr-end', id]);
  }
  onEndRequest(id: number, appStatus: number, protocolStatus: number): void {
    this.whole(['end', id, appStatus, protocolStatus]);
    this.afterEnd?.(id);
  }
  onGetValuesResult(pairs: Pair[]): void {
    this.whole(['values', pairs]);
  }
  onUnknownType(type: number): void {
    this.whole(['unknown-type', type]);
  }

  /** The events, with an unfinished STDOUT/STDERR record as a `-partial` event. */
  finish(): Ev[] {
    if (this.partial === null) return this.events;
    return [...this.events, [`${this.partial.kind}-partial`, this.partial.id, this.partial.text]];
  }

  private piece(kind: 'stdout' | 'stderr', id: number, data: Buffer, recordEnd: boolean): void {
    if (data.length === 0) throw new Error('empty piece');
    this.pieces++;
    const p = this.partial;
    if (p === null) this.partial = { kind, id, text: latin1(data) };
    else if (p.kind !== kind || p.id !== id) throw new Error('pieces of two records mixed');
    else p.text += latin1(data);
    if (recordEnd) {
      const done = this.partial!;
      this.events.push([done.kind, done.id, done.text]);
      this.partial = null;
    }
  }

  private whole(ev: Ev): void {
    if (this.partial !== null) throw new Error(`${ev[0]} inside an unfinished ${this.partial.kind} record`);
    this.events.push(ev);
  }
}

interface Outcome {
  events: Ev[];
  /** The ProtocolError code, or null. */
  error: string | null;
  /** `pending` of the decoder when there was no error; -1 after one. */
  pending: number;
}

interface DecodeOptions {
  /** Call end() after the last chunk. */
  end?: boolean;
  /** Register an id again at its END_REQUEST (the next request on a kept connection). */
  reRegister?: boolean;
}

/** Our decoder over `chunks`, ids registered first; anything but a ProtocolError propagates. */
function decode(chunks: readonly Buffer[], ids: readonly number[], options: DecodeOptions = {}): Outcome {
  const c = new Collector();
  const d = new FastcgiResponseDecoder(c);
  if (options.reRegister === true) c.afterEnd = (id) => d.register(id);
  for (const id of ids) d.register(id);
  try {
    for (const chunk of chunks) d.push(chunk);
    if (options.end === true) d.end();
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    return { events: c.finish(), error: e.code, pending: -1 };
  }
  return { events: c.finish(), error: null, pending: d.pending };
}

/** The outcome of `wire` whole, cut at every offset and one byte at a time must be the same. */
function decodeEverySplit(wire: Buffer, ids: readonly number[], options: DecodeOptions = {}): Outcome {
  const whole = decode([wire], ids, options);
  for (let k = 0; k <= wire.length; k++) {
    const got = decode([wire.subarray(0, k), wire.subarray(k)], ids, options);
    if (!isDeepStrictEqual(got, whole)) throw new Error(`split at ${k}: ${JSON.stringify(got)} != ${JSON.stringify(whole)}`);
  }
  const oneByOne: Buffer[] = [];
  for (let i = 0; i < wire.length; i++) oneByOne.push(wire.subarray(i, i + 1));
  expect(decode(oneByOne, ids, options)).toEqual(whole);
  return whole;
}

/** The ProtocolError `fn` throws. */
function thrown(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ProtocolError) return e;
    throw e;
  }
  throw new Error('did not throw');
}

/** A header, laid out by hand: version 1, type, id BE16, contentLength BE16, padding, reserved 0. */
function hdr(type: number, id: number, contentLength: number, padding: number): number[] {
  return [0x01, type, id >> 8, id & 0xff, contentLength >> 8, contentLength & 0xff, padding, 0x00];
}

function splitAt(buf: Uint8Array, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, buf.length]) {
    chunks.push(Buffer.from(buf.subarray(prev, p)));
    prev = p;
  }
  return chunks;
}

// ---- request encoders: golden bytes ---------------------------------------------------------

describe('request encoders (golden bytes)', () => {
  test('BEGIN_REQUEST responder keep-conn, one PARAMS record padded to 8, PARAMS EOS (UP-1, UP-3)', () => {
    const [begin, params] = encodeFastcgiRequest(1, { keepConn: true, params: [['SERVER_PORT', '80']] });
    expect(begin).toEqual(
      bytes(
        [0x01, 0x01, 0x00, 0x01, 0x00, 0x08, 0x00, 0x00], // BEGIN_REQUEST, id 1, 8 content bytes, no padding
        [0x00, 0x01], // role RESPONDER
        [0x01], // flags FCGI_KEEP_CONN
        [0x00, 0x00, 0x00, 0x00, 0x00], // reserved[5]
      ),
    );
    expect(params).toEqual(
      bytes(
        [0x01, 0x04, 0x00, 0x01, 0x00, 0x0f, 0x01, 0x00], // PARAMS, id 1, 15 content bytes, 1 padding byte
        [0x0b, 0x02], // nameLength 11, valueLength 2
        ascii('SERVER_PORT80'),
        [0x00], // padding
        [0x01, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00], // PARAMS EOS
      ),
    );
  });

  test('AUTHORIZER without keep-conn on id 0x1234, no params: PARAMS EOS alone (UP-3)', () => {
    const [begin, params] = encodeFastcgiRequest(0x1234, { role: Role.Authorizer, keepConn: false, params: [] });
    expect(begin).toEqual(bytes([0x01, 0x01, 0x12, 0x34, 0x00, 0x08, 0x00, 0x00], [0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]));
    expect(params).toEqual(bytes([0x01, 0x04, 0x12, 0x34, 0x00, 0x00, 0x00, 0x00]));
  });

  test('4-byte lengths for a name or value of 128 bytes and more; pairs from a generator', () => {
    const name128 = 'N'.repeat(128);
    function* pairs(): Generator<[string, string]> {
      yield ['X', 'v'.repeat(200)];
      yield [name128, '1'];
    }
    const [, params] = encodeFastcgiRequest(1, { keepConn: false, params: pairs() });
    // 1 + 4 + 1 + 200 = 206 and 4 + 1 + 128 + 1 = 134: 340 = 0x154 bytes in one record, padding 4.
    expect(params).toEqual(
      bytes(
        [0x01, 0x04, 0x00, 0x01, 0x01, 0x54, 0x04, 0x00],
        [0x01, 0x80, 0x00, 0x00, 0xc8], // nameLength 1, valueLength 200 in the 4-byte form
        ascii('X'),
        ascii('v'.repeat(200)),
        [0x80, 0x00, 0x00, 0x80, 0x01], // nameLength 128 in the 4-byte form, valueLength 1
        ascii(name128),
        ascii('1'),
        [0x00, 0x00, 0x00, 0x00],
        [0x01, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00],
      ),
    );
  });

  test('pairs are packed whole into records of at most 65528 bytes, never cut (UP-1, UP-2)', () => {
    // ['A', 32758 bytes] takes 1 + 4 + 1 + 32758 = 32764 bytes: two fill 65528 = 0xFFF8 exactly.
    const a: [string, string] = ['A', 'a'.repeat(32758)];
    // ['B', 39994 bytes] takes 40000 = 0x9C40 bytes; two do not fit one record.
    const b: [string, string] = ['B', 'b'.repeat(39994)];
    const [, params] = encodeFastcgiRequest(1, { keepConn: true, params: [a, a, ['C', 'c'], b, b] });
    const pairBytes = (name: string, value: string): number[] => [0x01, ...(value.length < 128 ? [value.length] : [0x80 | (value.length >>> 24), (value.length >> 16) & 0xff, (value.length >> 8) & 0xff, value.length & 0xff]), ...ascii(name), ...ascii(value)];
    expect(params).toEqual(
      bytes(
        [0x01, 0x04, 0x00, 0x01, 0xff, 0xf8, 0x00, 0x00], // 65528 bytes, no padding needed
        pairBytes(...a),
        pairBytes(...a),
        [0x01, 0x04, 0x00, 0x01, 0x9c, 0x44, 0x04, 0x00], // C=c (1 + 1 + 1 + 1 bytes) and one B: 40004, padding 4
        pairBytes('C', 'c'),
        pairBytes(...b),
        [0x00, 0x00, 0x00, 0x00],
        [0x01, 0x04, 0x00, 0x01, 0x9c, 0x40, 0x00, 0x00], // the second B: 40000, padding 0
        pairBytes(...b),
        [0x01, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00],
      ),
    );
    // Each record parses alone, as php-fpm parses them (per record).
    const records: Buffer[] = [];
    const d = new RecordDecoder((_type, _id, content) => records.push(Buffer.from(content)));
    d.push(params);
    expect(records.map((r) => decodeParams(r).map((p) => p[0]))).toEqual([['A', 'A'], ['C', 'B'], ['B'], []]);
  });

  test('a pair of 65529..65535 bytes goes alone in an unpadded record; content plus padding never passes 65535 (UP-1, UP-2)', () => {
    // ['D', 65529 bytes] takes 1 + 4 + 1 + 65529 = 65535 = 0xFFFF bytes.
    const big: [string, string] = ['D', 'd'.repeat(65529)];
    const [, params] = encodeFastcgiRequest(3, { keepConn: false, params: [['Q', '1'], big, ['R', '2']] });
    expect(params).toEqual(
      bytes(
        [0x01, 0x04, 0x00, 0x03, 0x00, 0x04, 0x04, 0x00], // Q=1: 4 bytes, padding 4
        [0x01, 0x01], ascii('Q1'),
        [0x00, 0x00, 0x00, 0x00],
        [0x01, 0x04, 0x00, 0x03, 0xff, 0xff, 0x00, 0x00], // D: 65535 bytes, padding 0 (65535 + 1 would pass 65535)
        [0x01, 0x80, 0x00, 0xff, 0xf9], ascii('D'), ascii(big[1]),
        [0x01, 0x04, 0x00, 0x03, 0x00, 0x04, 0x04, 0x00], // R=2
        [0x01, 0x01], ascii('R2'),
        [0x00, 0x00, 0x00, 0x00],
        [0x01, 0x04, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00],
      ),
    );
  });

  test('a pair over 65535 bytes is refused before anything is encoded: LimitError FCGI_ENCODE_TOO_LARGE (UP-2)', () => {
    const e = thrown(() => encodeFastcgiRequest(1, { keepConn: false, params: [['OK', 'x'], ['HTTP_COOKIE', 'c'.repeat(65536 - 16)]] }));
    expect(e).toBeInstanceOf(LimitError);
    expect(e.code).toBe(FastcgiErrorCode.EncodeTooLarge);
    expect((e as LimitError).limit).toBe('maxContentLength');
    expect(e.message).toMatch(/^fastcgi: param "HTTP_COOKIE" takes 65536 bytes/);
  });

  test('params are bytes: latin1 chars travel as one byte each, a char above U+00FF is FCGI_ENCODE_INVALID (UP-38)', () => {
    const utf8AsLatin1 = Buffer.from('é€', 'utf8').toString('latin1'); // C3 A9 E2 82 AC
    const [, params] = encodeFastcgiRequest(1, { keepConn: false, params: [['\u00ff', utf8AsLatin1]] });
    expect(params).toEqual(
      bytes([0x01, 0x04, 0x00, 0x01, 0x00, 0x08, 0x00, 0x00], [0x01, 0x05, 0xff, 0xc3, 0xa9, 0xe2, 0x82, 0xac], [0x01, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]),
    );
    const e = thrown(() => encodeFastcgiRequest(1, { keepConn: false, params: [['PATH_INFO', '/€']] }));
    expect(e.code).toBe(FastcgiErrorCode.EncodeInvalid);
    expect(e).not.toBeInstanceOf(LimitError);
    // Output stays bytes: a UTF-8 char cut across two STDOUT records (and any chunking) arrives intact.
    const wire = bytes(hdr(6, 1, 1, 7), [0xc3], Array(7).fill(0), hdr(6, 1, 2, 6), [0xa9, 0xff], Array(6).fill(0));
    const got: Buffer[] = [];
    const d = new FastcgiResponseDecoder({ onStdout: (_id, data) => got.push(Buffer.from(data)) });
    d.register(1);
    for (let i = 0; i < wire.length; i++) d.push(wire.subarray(i, i + 1));
    expect(Buffer.concat(got)).toEqual(bytes([0xc3, 0xa9, 0xff]));
  });

  test('misuse is a RangeError: request id 0 or above 65535, a role outside 16 bits', () => {
    expect(() => encodeFastcgiRequest(0, { keepConn: false, params: [] })).toThrow(RangeError);
    expect(() => encodeFastcgiRequest(65536, { keepConn: false, params: [] })).toThrow(RangeError);
    expect(() => encodeFastcgiRequest(1.5, { keepConn: false, params: [] })).toThrow(RangeError);
    expect(() => encodeFastcgiRequest(1, { role: -1, keepConn: false, params: [] })).toThrow(RangeError);
    expect(() => encodeStdinEnd(0)).toThrow(RangeError);
  });

  test('STDIN: records padded to 8, 65528 bytes at most, an empty chunk writes nothing; STDIN EOS (UP-1, UP-3)', () => {
    expect(Buffer.concat(encodeStdin(1, Buffer.from('abc')))).toEqual(
      bytes([0x01, 0x05, 0x00, 0x01, 0x00, 0x03, 0x05, 0x00], ascii('abc'), [0x00, 0x00, 0x00, 0x00, 0x00]),
    );
    // An empty chunk must not become an empty record: that would end the body early.
    expect(encodeStdin(1, Buffer.alloc(0))).toEqual([]);
    const body = Buffer.alloc(65529, 0x62);
    expect(Buffer.concat(encodeStdin(2, body))).toEqual(
      bytes(
        [0x01, 0x05, 0x00, 0x02, 0xff, 0xf8, 0x00, 0x00], // 65528 bytes, no padding
        [...body.subarray(0, 65528)],
        [0x01, 0x05, 0x00, 0x02, 0x00, 0x01, 0x07, 0x00], // the last byte, padding 7
        [0x62],
        [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
      ),
    );
    expect(encodeStdinEnd(1)).toEqual(bytes([0x01, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]));
    expect(encodeStdinEnd(0xbeef)).toEqual(bytes([0x01, 0x05, 0xbe, 0xef, 0x00, 0x00, 0x00, 0x00]));
  });

  test('ABORT_REQUEST and GET_VALUES for the three management variables', () => {
    expect(encodeAbortRequest(1)).toEqual(bytes([0x01, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]));
    expect(encodeGetValues(MANAGEMENT_VARIABLES)).toEqual(
      bytes(
        [0x01, 0x09, 0x00, 0x00, 0x00, 0x30, 0x00, 0x00], // GET_VALUES, id 0, 48 bytes, no padding
        [0x0e, 0x00], ascii('FCGI_MAX_CONNS'),
        [0x0d, 0x00], ascii('FCGI_MAX_REQS'),
        [0x0f, 0x00], ascii('FCGI_MPXS_CONNS'),
      ),
    );
  });

  test('what the client encodes, the server-side decoders read back (the front reads BEGIN, PARAMS, STDIN)', () => {
    const pairs: Pair[] = [['REQUEST_METHOD', 'POST'], ['CONTENT_LENGTH', '5'], ['HTTP_X', 'y'.repeat(65500)], ['EMPTY', '']];
    const [begin, params] = encodeFastcgiRequest(9, { role: Role.Filter, keepConn: true, params: pairs });
    const wire = Buffer.concat([begin, params, ...encodeStdin(9, Buffer.from('hello')), encodeStdinEnd(9)]);
    const seen: Array<[number, number, Buffer]> = [];
    const d = new RecordDecoder((type, id, content) => seen.push([type, id, Buffer.from(content)]));
    for (let i = 0; i < wire.length; i += 1000) d.push(wire.subarray(i, i + 1000));
    expect(d.pending).toBe(0);
    expect(seen.every(([, id]) => id === 9)).toBe(true);
    expect(decodeBeginRequest(seen[0]![2])).toEqual({ role: Role.Filter, flags: Flag.KeepConn, keepConn: true });
    const p = new ParamsDecoder();
    const stdin: Buffer[] = [];
    for (const [type, , content] of seen.slice(1)) {
      if (type === RecordType.Params && content.length > 0) p.push(content);
      if (type === RecordType.Stdin) stdin.push(content);
    }
    expect(p.end()).toEqual(pairs);
    expect(Buffer.concat(stdin).toString()).toBe('hello');
    expect(seen.map(([type, , c]) => [type, c.length])).toEqual([
      [RecordType.BeginRequest, 8],
      [RecordType.Params, 20 + 17], // REQUEST_METHOD=POST (2 + 14 + 4), CONTENT_LENGTH=5 (2 + 14 + 1)
      [RecordType.Params, 65511 + 7], // HTTP_X (5 + 6 + 65500) does not fit beside them; EMPTY (2 + 5) does beside it
      [RecordType.Params, 0],
      [RecordType.Stdin, 5],
      [RecordType.Stdin, 0],
    ]);
  });
});

// ---- response decoder: fixtures ---------------------------------------------------------------

const PHP_HEAD_1 = 'X-Powered-By: PHP/8.2.36\r\nContent-type: text/ht'; // 47 bytes: the head cut inside a line
const PHP_HEAD_2 = 'ml; charset=UTF-8\r\n\r\n<p>hello</p>\n'; // 34 bytes: the rest of the head, the body
const PHP_WARNING = 'PHP message: PHP Warning:  Undefined variable $x in /srv/www/index.php on line 3\n'; // 81 bytes

/** What php-fpm writes for a script with a warning: records padded to 8 (garbage padding here). */
const PHP_RESPONSE = bytes(
  [0x01, 0x06, 0x00, 0x01, 0x00, 0x2f, 0x01, 0x00], // STDOUT id 1, 47 bytes, padding 1
  ascii(PHP_HEAD_1),
  [0xee],
  [0x01, 0x07, 0x00, 0x01, 0x00, 0x51, 0x07, 0x00], // STDERR id 1, 81 bytes, padding 7
  ascii(PHP_WARNING),
  [0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee],
  [0x01, 0x06, 0x00, 0x01, 0x00, 0x22, 0x06, 0x00], // STDOUT id 1, 34 bytes, padding 6
  ascii(PHP_HEAD_2),
  [0xee, 0xee, 0xee, 0xee, 0xee, 0xee],
  [0x01, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00], // STDOUT EOS
  [0x01, 0x03, 0x00, 0x01, 0x00, 0x08, 0x00, 0x00], // END_REQUEST id 1
  [0x00, 0x00, 0x00, 0x00], // appStatus 0
  [0x00], // REQUEST_COMPLETE
  [0x61, 0x61, 0x61], // reserved: php-fpm leaves stale bytes here
);

const UWSGI_HEAD = 'Status: 201 Created\r\nContent-Type: text/plain\r\n\r\n'; // 49 bytes

/** What uWSGI's fastcgi-socket writes: the head in its own record, no padding, id echoed. */
const uwsgiResponse = (id: number): Buffer =>
  bytes(hdr(6, id, 0x31, 0), ascii(UWSGI_HEAD), hdr(6, id, 8, 0), ascii('created\n'), hdr(6, id, 0, 0), hdr(3, id, 8, 0), Array(8).fill(0));

/** {@link uwsgiResponse} for id 7, laid out byte by byte. */
const UWSGI_RESPONSE = bytes(
  [0x01, 0x06, 0x00, 0x07, 0x00, 0x31, 0x00, 0x00], // STDOUT id 7, 49 bytes, no padding
  ascii(UWSGI_HEAD),
  [0x01, 0x06, 0x00, 0x07, 0x00, 0x08, 0x00, 0x00], // STDOUT id 7, 8 bytes
  ascii('created\n'),
  [0x01, 0x06, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00], // STDOUT EOS
  [0x01, 0x03, 0x00, 0x07, 0x00, 0x08, 0x00, 0x00], // END_REQUEST id 7
  [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
);

describe('FastcgiResponseDecoder: what application servers send', () => {
  test('php-fpm: head across two STDOUT records, STDERR between them, garbage in padding and in the reserved bytes (UP-9)', () => {
    expect([PHP_HEAD_1.length, PHP_HEAD_2.length, PHP_WARNING.length]).toEqual([0x2f, 0x22, 0x51]);
    const got = decodeEverySplit(PHP_RESPONSE, [1], { end: true });
    expect(got).toEqual({
      events: [out(1, PHP_HEAD_1), err(1, PHP_WARNING), out(1, PHP_HEAD_2), outEnd(1), end(1, 0, ProtocolStatus.RequestComplete)],
      error: null,
      pending: 0,
    });
  });

  test('uWSGI: head in its own unpadded record, any request id echoed', () => {
    expect(UWSGI_HEAD.length).toBe(0x31);
    expect(uwsgiResponse(7)).toEqual(UWSGI_RESPONSE);
    expect(decodeEverySplit(UWSGI_RESPONSE, [7], { end: true })).toEqual({
      events: [out(7, UWSGI_HEAD), out(7, 'created\n'), outEnd(7), end(7)],
      error: null,
      pending: 0,
    });
  });

  test('END_REQUEST before any STDOUT is legal and decodes: OVERLOADED, UNKNOWN_ROLE, CANT_MPX_CONN, unknown values (UP-9)', () => {
    const wire = bytes(
      [0x01, 0x03, 0x00, 0x01, 0x00, 0x08, 0x00, 0x00], [0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00], // OVERLOADED
      [0x01, 0x03, 0x00, 0x02, 0x00, 0x08, 0x00, 0x00], [0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00], // UNKNOWN_ROLE
      [0x01, 0x03, 0x00, 0x03, 0x00, 0x08, 0x00, 0x00], [0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00], // CANT_MPX_CONN
      [0x01, 0x03, 0x00, 0x04, 0x00, 0x08, 0x03, 0x00], [0xff, 0xff, 0xff, 0xff, 0x7f, 0x01, 0x02, 0x03], [0x09, 0x09, 0x09], // 2^32-1, 127
      [0x01, 0x03, 0x00, 0x05, 0x00, 0x08, 0x00, 0x00], [0x80, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00], // appStatus 2^31 + 1
    );
    const got = decodeEverySplit(wire, [1, 2, 3, 4, 5], { end: true });
    expect(got.events).toEqual([end(1, 0, 2), end(2, 0, 3), end(3, 0, 1), end(4, 4294967295, 127), end(5, 2147483649, 0)]);
    expect(got.error).toBeNull();
    expect([0, 1, 2, 3, 127].map(protocolStatusName)).toEqual(['REQUEST_COMPLETE', 'CANT_MPX_CONN', 'OVERLOADED', 'UNKNOWN_ROLE', 'UNKNOWN(127)']);
  });

  test('STDERR alone, its EOS, then STDOUT EOS and END_REQUEST; STDOUT after STDOUT EOS is passed on (php-fpm bug #72185)', () => {
    const wire = bytes(
      hdr(7, 1, 3, 5), ascii('err'), [0, 0, 0, 0, 0],
      hdr(7, 1, 0, 0),
      hdr(6, 1, 0, 0),
      hdr(6, 1, 2, 6), ascii('hi'), [0, 0, 0, 0, 0, 0],
      hdr(6, 1, 0, 0),
      hdr(3, 1, 8, 0), [0, 0, 0, 1, 0, 0, 0, 0],
    );
    expect(decodeEverySplit(wire, [1]).events).toEqual([err(1, 'err'), errEnd(1), outEnd(1), out(1, 'hi'), outEnd(1), end(1, 1)]);
  });

  test('several requests on one connection: interleaved ids, and an id registered again at its END_REQUEST', () => {
    const interleaved = bytes(hdr(6, 1, 1, 7), ascii('a'), Array(7).fill(0), hdr(6, 2, 1, 0), ascii('b'), hdr(3, 2, 8, 0), Array(8).fill(0), hdr(3, 1, 8, 0), Array(8).fill(0));
    expect(decodeEverySplit(interleaved, [1, 2], { end: true }).events).toEqual([out(1, 'a'), out(2, 'b'), end(2), end(1)]);
    // Two responses on id 1 back to back (keep-conn, pipelined): the second is accepted only
    // because the client registered id 1 again.
    const again = Buffer.concat([uwsgiResponse(1), uwsgiResponse(1)]);
    expect(decode([again], [1], { reRegister: true, end: false }).events).toEqual([out(1, UWSGI_HEAD), out(1, 'created\n'), outEnd(1), end(1), out(1, UWSGI_HEAD), out(1, 'created\n'), outEnd(1), end(1)]);
    expect(decode([again], [1]).error).toBe(FastcgiErrorCode.UnexpectedRequestId);
  });

  test('the largest record with the largest padding, split at every offset: STDOUT handed out as views, never copied', () => {
    const content = Buffer.alloc(65535);
    for (let i = 0; i < content.length; i++) content[i] = (i * 7) & 0xff;
    const wire = Buffer.concat([bytes(hdr(6, 1, 0xffff, 0xff)), content, Buffer.alloc(255, 0xee), bytes(hdr(6, 1, 0, 0))]);
    const check = (chunks: Buffer[]): void => {
      const pieces: Array<{ data: Buffer; recordEnd: boolean }> = [];
      let eos = 0;
      const d = new FastcgiResponseDecoder({ onStdout: (_id, data, recordEnd) => pieces.push({ data, recordEnd }), onStdoutEnd: () => eos++ });
      d.register(1);
      // Each piece must be a view of the chunk it came from, at the content's own offset.
      let wireOffset = 0;
      let delivered = 0;
      for (const chunk of chunks) {
        const before = pieces.length;
        d.push(chunk);
        for (const p of pieces.slice(before)) {
          if (p.data.buffer !== chunk.buffer) throw new Error('a piece was copied');
          const at = wireOffset + (p.data.byteOffset - chunk.byteOffset);
          if (at !== 8 + delivered) throw new Error(`piece at wire offset ${at}, expected ${8 + delivered}`);
          delivered += p.data.length;
        }
        wireOffset += chunk.length;
      }
      if (delivered !== 65535 || eos !== 1 || d.pending !== 0) throw new Error(`delivered ${delivered}, eos ${eos}`);
      if (pieces.filter((p) => p.recordEnd).length !== 1 || !pieces[pieces.length - 1]!.recordEnd) throw new Error('recordEnd');
    };
    for (let k = 0; k <= wire.length; k++) check([wire.subarray(0, k), wire.subarray(k)]);
    // And the bytes themselves, at a few offsets.
    for (const k of [0, 7, 8, 9, 4096, 65542, 65543, 65544, wire.length]) {
      expect(decode([wire.subarray(0, k), wire.subarray(k)], [1]).events).toEqual([out(1, latin1(content)), outEnd(1)]);
    }
  });

  test('bounded memory: STDOUT content is handed out as each byte arrives, within the record', () => {
    const wire = Buffer.concat([bytes(hdr(6, 1, 0xffff, 0)), Buffer.alloc(0xffff, 0x41)]);
    let delivered = 0;
    const d = new FastcgiResponseDecoder({ onStdout: (_id, data) => (delivered += data.length) });
    d.register(1);
    for (let i = 0; i < wire.length; i++) {
      d.push(wire.subarray(i, i + 1));
      if (delivered !== Math.max(0, i + 1 - 8)) throw new Error(`after byte ${i}: ${delivered} delivered`);
    }
    expect(delivered).toBe(0xffff);
  });
});

describe('FastcgiResponseDecoder: management records', () => {
  test("php-fpm's GET_VALUES_RESULT: only FCGI_MPXS_CONNS, the asked names it lacks are simply absent (UP-37)", () => {
    const wire = bytes(
      [0x01, 0x0a, 0x00, 0x00, 0x00, 0x12, 0x06, 0x00], // GET_VALUES_RESULT, id 0, 18 bytes, padding 6
      [0x0f, 0x01], ascii('FCGI_MPXS_CONNS'), ascii('0'),
      [0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
    );
    expect(decodeEverySplit(wire, [], { end: true })).toEqual({ events: [['values', [['FCGI_MPXS_CONNS', '0']]]], error: null, pending: 0 });
  });

  test('odd GET_VALUES_RESULTs decode as they are: non-numeric values, names not asked for, an empty trailing record as Go sends (UP-37)', () => {
    const wire = Buffer.concat([
      encodeGetValuesResult([['FCGI_MAX_CONNS', 'lots'], ['FCGI_MAX_REQS', '-1'], ['X_OTHER', '\u00ff']]),
      bytes(hdr(10, 0, 0, 0)),
    ]);
    expect(decodeEverySplit(wire, [3]).events).toEqual([['values', [['FCGI_MAX_CONNS', 'lots'], ['FCGI_MAX_REQS', '-1'], ['X_OTHER', '\u00ff']]], ['values', []]]);
  });

  test('UNKNOWN_TYPE names the type the application did not understand', () => {
    const wire = bytes([0x01, 0x0b, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00], [0x7f, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]);
    expect(decodeEverySplit(wire, [1]).events).toEqual([['unknown-type', 0x7f]]);
  });

  test('management records on a request id, a malformed pair list, an UNKNOWN_TYPE body that is not 8 bytes (UP-8)', () => {
    expect(decode([bytes(hdr(10, 1, 2, 6), [0, 0], Array(6).fill(0))], [1]).error).toBe(FastcgiErrorCode.UnexpectedRequestId);
    expect(decode([bytes(hdr(11, 1, 8, 0), Array(8).fill(0))], [1]).error).toBe(FastcgiErrorCode.UnexpectedRequestId);
    const truncated = decodeEverySplit(bytes(hdr(10, 0, 3, 5), [0x05, 0x01, 0x41], Array(5).fill(0)), []);
    expect(truncated).toEqual({ events: [], error: FastcgiErrorCode.ParamsTruncated, pending: -1 });
    const e = thrown(() => new FastcgiResponseDecoder({}).push(bytes(hdr(10, 0, 1, 0), [0x05])));
    expect(e.message).toMatch(/^fastcgi: GET_VALUES_RESULT: /);
    for (const cl of [0, 7, 9]) expect(decode([bytes(hdr(11, 0, cl, 0), Array(cl).fill(0))], []).error).toBe(FastcgiErrorCode.BadUnknownType);
  });
});

describe('FastcgiResponseDecoder: hostile upstream input', () => {
  test('STDOUT after END_REQUEST, and a second END_REQUEST: protocol error after the complete response (UP-8)', () => {
    const after = Buffer.concat([UWSGI_RESPONSE, bytes(hdr(6, 7, 1, 7), ascii('x'), Array(7).fill(0))]);
    const got = decodeEverySplit(after, [7]);
    expect(got).toEqual({ events: [out(7, UWSGI_HEAD), out(7, 'created\n'), outEnd(7), end(7)], error: FastcgiErrorCode.UnexpectedRequestId, pending: -1 });
    const e = thrown(() => new FastcgiResponseDecoder({}).push(after));
    expect(e.message).toMatch(/STDOUT record for request id 7: .*not an active request/);
    const d = new FastcgiResponseDecoder({});
    d.register(7);
    const second = thrown(() => d.push(Buffer.concat([UWSGI_RESPONSE, bytes(hdr(3, 7, 8, 0), Array(8).fill(0))])));
    expect(second.code).toBe(FastcgiErrorCode.UnexpectedRequestId);
    expect(second.message).toBe('fastcgi: END_REQUEST record for request id 7: it has already ended with END_REQUEST');
  });

  test('a wrong request id: STDOUT, STDERR or END_REQUEST for an id that was never begun, or id 0 (UP-8)', () => {
    for (const type of [RecordType.Stdout, RecordType.Stderr, RecordType.EndRequest]) {
      for (const id of [0, 2, 65535]) {
        const wire = bytes(hdr(6, 1, 1, 7), ascii('a'), Array(7).fill(0), hdr(type, id, 8, 0), Array(8).fill(0x41));
        // The record of the wrong id gives nothing, not even part of its content.
        expect(decodeEverySplit(wire, [1])).toEqual({ events: [out(1, 'a')], error: FastcgiErrorCode.UnexpectedRequestId, pending: -1 });
      }
    }
  });

  test('record types only a web server sends, on any id, are FCGI_UNEXPECTED_RECORD_TYPE (UP-8)', () => {
    for (const type of [RecordType.BeginRequest, RecordType.AbortRequest, RecordType.Params, RecordType.Stdin, RecordType.Data, RecordType.GetValues]) {
      for (const id of [0, 1]) {
        const e = thrown(() => {
          const d = new FastcgiResponseDecoder({});
          d.register(1);
          d.push(bytes(hdr(type, id, 0, 0)));
        });
        expect(e.code).toBe(FastcgiErrorCode.UnexpectedRecordType);
      }
    }
  });

  test('unknown record types (0, 12, 0x7F, 255), on a request id or id 0, are FCGI_UNKNOWN_RECORD_TYPE (UP-8)', () => {
    for (const type of [0, 12, 0x7f, 255]) {
      for (const id of [0, 1]) {
        const wire = bytes(hdr(type, id, 8, 0), ascii('Status: '));
        expect(decodeEverySplit(wire, [1])).toEqual({ events: [], error: FastcgiErrorCode.UnknownRecordType, pending: -1 });
      }
    }
  });

  test('an END_REQUEST body that is not 8 bytes fails at its header; one cut short by the close fails at end()', () => {
    for (const cl of [0, 5, 7, 9, 65535]) {
      const d = new FastcgiResponseDecoder({});
      d.register(1);
      // Only the header is pushed: the error comes before any of the body.
      expect(thrown(() => d.push(bytes(hdr(3, 1, cl, 0)))).code).toBe(FastcgiErrorCode.BadEndRequest);
    }
    const cut = bytes(hdr(3, 1, 8, 0), [0, 0, 0, 0, 0]);
    expect(decodeEverySplit(cut, [1], { end: true })).toEqual({ events: [], error: FastcgiErrorCode.TruncatedRecord, pending: -1 });
    expect(decode([cut], [1])).toEqual({ events: [], error: null, pending: 13 });
    const d = new FastcgiResponseDecoder({});
    d.register(1);
    d.push(cut);
    expect(() => d.end()).toThrow('fastcgi: connection ended inside the END_REQUEST record of request 1 (13 of 16 bytes)');
    expect(decode([bytes(1, 6, 0)], [1], { end: true }).error).toBe(FastcgiErrorCode.TruncatedRecord);
  });

  test('a close before END_REQUEST is FCGI_MISSING_END_REQUEST, whatever STDOUT brought; a clean end is not (UP-12)', () => {
    const body = PHP_RESPONSE.subarray(0, PHP_RESPONSE.length - 16); // everything up to the END_REQUEST
    expect(decodeEverySplit(body, [1], { end: true })).toEqual({
      events: [out(1, PHP_HEAD_1), err(1, PHP_WARNING), out(1, PHP_HEAD_2), outEnd(1)],
      error: FastcgiErrorCode.MissingEndRequest,
      pending: -1,
    });
    expect(decode([], [4, 5], { end: true }).error).toBe(FastcgiErrorCode.MissingEndRequest);
    expect(thrown(() => {
      const d = new FastcgiResponseDecoder({});
      d.register(4);
      d.end();
    }).message).toBe('fastcgi: connection ended before the END_REQUEST of request 4');
    expect(decode([PHP_RESPONSE], [1], { end: true }).error).toBeNull();
    expect(decode([], [], { end: true }).error).toBeNull();
  });

  test('garbage and bad versions: an HTTP answer, version 0 or 2, garbage after a good record', () => {
    expect(decodeEverySplit(Buffer.from('HTTP/1.1 502 Bad Gateway\r\n\r\n'), [1])).toEqual({ events: [], error: FastcgiErrorCode.BadVersion, pending: -1 });
    for (const version of [0, 2, 255]) {
      const wire = bytes([version, 6, 0, 1, 0, 0, 0, 0]);
      expect(decodeEverySplit(wire, [1]).error).toBe(FastcgiErrorCode.BadVersion);
    }
    const after = Buffer.concat([bytes(hdr(6, 1, 2, 6), ascii('ok'), Array(6).fill(0)), Buffer.from('\u0000garbage!')]);
    expect(decodeEverySplit(after, [1])).toEqual({ events: [out(1, 'ok')], error: FastcgiErrorCode.BadVersion, pending: -1 });
    expect(thrown(() => new FastcgiResponseDecoder({}).push(Buffer.from('HTTP/1.1'))).message).toBe(
      'fastcgi: unsupported record version 72 (expected 1) in header "HTTP/1.1"',
    );
  });

  test('errors are sticky: later pushes and end() rethrow the same error and run no handler', () => {
    const c = new Collector();
    const d = new FastcgiResponseDecoder(c);
    d.register(1);
    const first = thrown(() => d.push(bytes(hdr(6, 1, 1, 7), ascii('a'), Array(7).fill(0), hdr(6, 2, 0, 0))));
    expect(d.error).toBe(first);
    expect(() => d.push(bytes(hdr(6, 1, 1, 7), ascii('b'), Array(7).fill(0)))).toThrow(first);
    expect(() => d.end()).toThrow(first);
    expect(c.events).toEqual([out(1, 'a')]);
  });

  test('a handler that throws kills the decoder with its error; push() from a handler and misuse of register()', () => {
    const boom = new Error('boom');
    const d = new FastcgiResponseDecoder({ onStdout: () => { throw boom; } });
    d.register(1);
    expect(() => d.push(bytes(hdr(6, 1, 1, 7), ascii('a'), Array(7).fill(0)))).toThrow(boom);
    expect(() => d.push(Buffer.alloc(0))).toThrow(boom);
    const inner = new FastcgiResponseDecoder({ onStdoutEnd: () => inner.push(Buffer.alloc(0)) });
    inner.register(1);
    expect(() => inner.push(bytes(hdr(6, 1, 0, 0)))).toThrow('called from inside its handler');
    const r = new FastcgiResponseDecoder({});
    for (const bad of [0, -1, 65536, 1.5, Number.NaN]) expect(() => r.register(bad)).toThrow(RangeError);
    r.register(65535);
    expect(() => r.register(65535)).toThrow(RangeError);
    expect(r.isActive(65535)).toBe(true);
    expect(r.activeRequestIds).toEqual([65535]);
    const ended = new FastcgiResponseDecoder({});
    ended.end();
    expect(() => ended.push(Buffer.alloc(1))).toThrow('after end()');
  });
});

// ---- round trip with the server side ----------------------------------------------------------

describe('round trip: what the FastCGI front writes decodes to the same bytes', () => {
  test("the front's STDOUT (one buffer and zero-copy segments), STDERR, end sequence and END_REQUEST", () => {
    const head = 'Status: 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n';
    const big = Buffer.alloc(150000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
    expect(big.length).toBeGreaterThan(SINGLE_BUFFER_MAX);
    const wire = Buffer.concat([
      ...encodeStdout(3, Buffer.from(head, 'latin1')),
      ...encodeStderr(3, Buffer.from('warning\n')),
      ...encodeStdout(3, big),
      encodeResponseEnd(3, 0, true),
      encodeEndRequest(4, 0xffffffff, ProtocolStatus.Overloaded),
      encodeEndRequest(5, -1, ProtocolStatus.UnknownRole),
    ]);
    const got = decode(splitAt(wire, [1, 9, 70, 65000, 65537, 131000, 150100]), [3, 4, 5], { end: true });
    expect(got.error).toBeNull();
    const stdout = got.events.filter((e) => e[0] === 'stdout').map((e) => e[2] as string).join('');
    expect(stdout).toBe(head + latin1(big));
    expect(got.events.filter((e) => e[0] !== 'stdout')).toEqual([err(3, 'warning\n'), outEnd(3), errEnd(3), end(3), end(4, 4294967295, 2), end(5, 4294967295, 3)]);
    // The stream is cut into records of 65528 bytes by the front: the decoder reports each.
    expect(got.events.filter((e) => e[0] === 'stdout').map((e) => (e[2] as string).length)).toEqual([head.length, 65528, 65528, 150000 - 2 * 65528]);
  });

  test("the front's management answers: GET_VALUES_RESULT for our own GET_VALUES, UNKNOWN_TYPE", () => {
    const query = encodeGetValues(MANAGEMENT_VARIABLES);
    const answer = answerGetValues(query.subarray(8, 8 + query.readUInt16BE(4)), { FCGI_MAX_CONNS: 100, FCGI_MAX_REQS: 50, FCGI_MPXS_CONNS: false });
    const wire = Buffer.concat([answer, encodeUnknownType(0x42)]);
    expect(decodeEverySplit(wire, []).events).toEqual([
      ['values', [['FCGI_MAX_CONNS', '100'], ['FCGI_MAX_REQS', '50'], ['FCGI_MPXS_CONNS', '0']]],
      ['unknown-type', 0x42],
    ]);
  });

  test('the decoder accepts any padding and the front encodes with any: records written by encodeRecord with odd padding', () => {
    const wire = Buffer.concat([
      encodeRecord(RecordType.Stdout, 1, Buffer.from('abc'), 255),
      encodeRecord(RecordType.Stdout, 1, Buffer.from('d'), 0),
      encodeEndOfStream(RecordType.Stdout, 1),
      encodeRecord(RecordType.EndRequest, 1, Buffer.from([0, 0, 0, 2, 0, 0, 0, 0]), 13),
    ]);
    expect(decodeEverySplit(wire, [1], { end: true }).events).toEqual([out(1, 'abc'), out(1, 'd'), outEnd(1), end(1, 2)]);
  });
});

// ---- properties -------------------------------------------------------------------------------

/** What a response may hold, per op: stream bytes, a stream end, END_REQUEST, management answers. */
type Op =
  | { op: 'stdout' | 'stderr'; id: number; data: Buffer }
  | { op: 'stdout-end' | 'stderr-end'; id: number }
  | { op: 'values'; pairs: Pair[] }
  | { op: 'unknown-type'; type: number };

const latin1Text = fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: 12 });
const streamData = fc.oneof(
  { weight: 12, arbitrary: fc.uint8Array({ maxLength: 60 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: fc.integer({ min: 3000, max: 140000 }).map((n) => Buffer.alloc(n, n & 0xff)) },
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ op: fc.constantFrom('stdout' as const, 'stderr' as const), id: fc.integer({ min: 1, max: 3 }), data: streamData }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom('stdout-end' as const, 'stderr-end' as const), id: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('values' as const), pairs: fc.array(fc.tuple(latin1Text, latin1Text), { maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('unknown-type' as const), type: fc.integer({ min: 0, max: 255 }) }) },
);

/** The records of `ops` written by the encoders, the events they must decode to, the ids used. */
function buildResponse(ops: readonly Op[], ends: ReadonlyArray<{ appStatus: number; protocolStatus: number }>): { wire: Buffer; events: Ev[]; ids: number[] } {
  const parts: Uint8Array[] = [];
  const events: Ev[] = [];
  for (const o of ops) {
    switch (o.op) {
      case 'stdout':
      case 'stderr': {
        (o.op === 'stdout' ? encodeStdout : encodeStderr)(o.id, o.data, parts);
        // The encoders cut a stream into records of 65528 bytes and write nothing for no bytes.
        for (let at = 0; at < o.data.length; at += 65528) events.push([o.op, o.id, latin1(o.data.subarray(at, at + 65528))]);
        break;
      }
      case 'stdout-end':
      case 'stderr-end':
        parts.push(encodeEndOfStream(o.op === 'stdout-end' ? RecordType.Stdout : RecordType.Stderr, o.id));
        events.push([o.op, o.id]);
        break;
      case 'values':
        parts.push(encodeGetValuesResult(o.pairs));
        events.push(['values', o.pairs]);
        break;
      default:
        parts.push(encodeUnknownType(o.type));
        events.push(['unknown-type', o.type]);
    }
  }
  const ids = [1, 2, 3];
  ids.forEach((id, i) => {
    const e = ends[i]!;
    parts.push(encodeEndRequest(id, e.appStatus, e.protocolStatus));
    events.push(end(id, e.appStatus, e.protocolStatus));
  });
  return { wire: Buffer.concat(parts), events, ids };
}

/**
 * The client decoder as the record layout and the rules of client.ts say, on one whole buffer:
 * the model the property compares against. Pair lists are decoded by decodeParams (the params
 * codec has its own properties).
 */
function referenceDecode(buf: Uint8Array, ids: readonly number[], atEnd: boolean): Outcome {
  const active = new Set(ids);
  const events: Ev[] = [];
  const fail = (code: string): Outcome => ({ events, error: code, pending: -1 });
  let pos = 0;
  while (pos + 8 <= buf.length) {
    if (buf[pos] !== 1) return fail(FastcgiErrorCode.BadVersion);
    const type = buf[pos + 1]!;
    const id = (buf[pos + 2]! << 8) | buf[pos + 3]!;
    const cl = (buf[pos + 4]! << 8) | buf[pos + 5]!;
    const pad = buf[pos + 6]!;
    if (type === 3 || type === 6 || type === 7) {
      if (!active.has(id)) return fail(FastcgiErrorCode.UnexpectedRequestId);
      if (type === 3 && cl !== 8) return fail(FastcgiErrorCode.BadEndRequest);
    } else if (type === 10 || type === 11) {
      if (id !== 0) return fail(FastcgiErrorCode.UnexpectedRequestId);
      if (type === 11 && cl !== 8) return fail(FastcgiErrorCode.BadUnknownType);
    } else if ([1, 2, 4, 5, 8, 9].includes(type)) {
      return fail(FastcgiErrorCode.UnexpectedRecordType);
    } else {
      return fail(FastcgiErrorCode.UnknownRecordType);
    }
    const avail = Math.min(cl, buf.length - pos - 8);
    const content = buf.subarray(pos + 8, pos + 8 + avail);
    const kind = type === 6 ? 'stdout' : 'stderr';
    if (avail < cl) {
      // Stream bytes are handed out as they come; other records give nothing until whole.
      if ((type === 6 || type === 7) && avail > 0) events.push([`${kind}-partial`, id, latin1(content)]);
      return atEnd ? fail(FastcgiErrorCode.TruncatedRecord) : { events, error: null, pending: buf.length - pos };
    }
    if (type === 6 || type === 7) {
      events.push(cl === 0 ? [`${kind}-end`, id] : [kind, id, latin1(content)]);
    } else if (type === 3) {
      active.delete(id);
      events.push(end(id, content[0]! * 2 ** 24 + content[1]! * 2 ** 16 + content[2]! * 2 ** 8 + content[3]!, content[4]!));
    } else if (type === 11) {
      events.push(['unknown-type', content[0]!]);
    } else {
      try {
        events.push(['values', decodeParams(Buffer.from(content), { maxParamsBytes: Number.MAX_SAFE_INTEGER })]);
      } catch (e) {
        if (e instanceof ProtocolError) return fail(e.code);
        throw e;
      }
    }
    if (pos + 8 + cl + pad > buf.length) {
      return atEnd ? fail(FastcgiErrorCode.TruncatedRecord) : { events, error: null, pending: buf.length - pos };
    }
    pos += 8 + cl + pad;
  }
  if (atEnd && pos < buf.length) return fail(FastcgiErrorCode.TruncatedRecord);
  if (atEnd && active.size > 0) return fail(FastcgiErrorCode.MissingEndRequest);
  return { events, error: null, pending: buf.length - pos };
}

/** Mostly-valid records: the types an application sends most of the time, sometimes any other. */
const nearRecord = fc
  .record({
    version: fc.constantFrom(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 2),
    type: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(6, 6, 7, 3, 3, 10, 11) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
    id: fc.constantFrom(0, 1, 1, 2, 3),
    content: fc.oneof(
      fc.uint8Array({ minLength: 8, maxLength: 8 }),
      fc.uint8Array({ maxLength: 40 }),
      fc.array(fc.tuple(latin1Text, latin1Text), { maxLength: 3 }).map((pairs) => new Uint8Array(encodeParams(pairs))),
    ),
    padding: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 9 }) }, { weight: 1, arbitrary: fc.constant(255) }),
  })
  .map((r) => Buffer.concat([bytes([r.version, r.type, r.id >> 8, r.id & 0xff, r.content.length >> 8, r.content.length & 0xff, r.padding, 0]), r.content, Buffer.alloc(r.padding, 0xab)]));

const nearStream = fc
  .tuple(fc.array(nearRecord, { maxLength: 8 }), fc.oneof({ weight: 4, arbitrary: fc.constant(new Uint8Array(0)) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 12 }) }))
  .map(([records, tail]) => Buffer.concat([...records, tail]));

describe('properties', () => {
  test('records written by the encoders decode back to what was encoded, whatever the chunking (UP-1)', () => {
    const endArb = fc.record({ appStatus: fc.integer({ min: 0, max: 0xffffffff }), protocolStatus: fc.integer({ min: 0, max: 255 }) });
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 12 }), fc.tuple(endArb, endArb, endArb), fc.array(fc.nat(), { maxLength: 12 }), (ops, ends, cuts) => {
        const { wire, events, ids } = buildResponse(ops, ends);
        const got = decode(splitAt(wire, cuts), ids, { end: true });
        expect(got).toEqual({ events, error: null, pending: 0 });
      }),
      { numRuns: 300 },
    );
  });

  test('encodeFastcgiRequest: records of whole pairs, content plus padding within 65535, the pairs back in order; a pair over 65535 bytes refused (UP-1, UP-2)', () => {
    const value = fc.oneof(
      { weight: 10, arbitrary: latin1Text },
      { weight: 1, arbitrary: fc.integer({ min: 100, max: 65529 }).map((n) => 'v'.repeat(n)) },
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(latin1Text, value), { maxLength: 10 }), fc.integer({ min: 1, max: 65535 }), (pairs, id) => {
        const size = ([n, v]: readonly [string, string]): number => (n.length < 128 ? 1 : 4) + (v.length < 128 ? 1 : 4) + n.length + v.length;
        if (pairs.some((p) => size(p) > 65535)) {
          expect(thrown(() => encodeFastcgiRequest(id, { keepConn: true, params: pairs })).code).toBe(FastcgiErrorCode.EncodeTooLarge);
          return;
        }
        const [, params] = encodeFastcgiRequest(id, { keepConn: true, params: pairs });
        const perRecord: Pair[][] = [];
        let pos = 0;
        while (pos < params.length) {
          expect(params[pos + 1]).toBe(RecordType.Params);
          expect(params.readUInt16BE(pos + 2)).toBe(id);
          const cl = params.readUInt16BE(pos + 4);
          const pad = params[pos + 6]!;
          expect(cl + pad).toBeLessThanOrEqual(65535);
          if (cl <= 65528) expect((cl + pad) % 8).toBe(0);
          perRecord.push(decodeParams(params.subarray(pos + 8, pos + 8 + cl)));
          pos += 8 + cl + pad;
        }
        expect(perRecord.pop()).toEqual([]); // PARAMS EOS last, and only there
        expect(perRecord.every((r) => r.length > 0)).toBe(true);
        expect(perRecord.flat()).toEqual(pairs);
      }),
      { numRuns: 200 },
    );
  });

  test('random bytes give events or one typed ProtocolError, as the model says, whatever the chunking; nothing after the error (UP-8)', () => {
    const outcomes = new Set<string>();
    fc.assert(
      fc.property(nearStream, fc.subarray([1, 2, 3]), fc.array(fc.nat(), { maxLength: 10 }), fc.boolean(), (wire, ids, cuts, atEnd) => {
        const expected = referenceDecode(wire, ids, atEnd);
        outcomes.add(expected.error ?? 'no error');
        for (const e of expected.events) outcomes.add(e[0]);
        const chunks = splitAt(wire, cuts);
        expect(decode(chunks, ids, { end: atEnd })).toEqual(expected);
        // Sticky: once failed, every later push and end() rethrows the same error and no handler runs.
        const c = new Collector();
        const d = new FastcgiResponseDecoder(c);
        for (const id of ids) d.register(id);
        let failure: unknown = null;
        for (const chunk of chunks) {
          const before = c.events.length + c.pieces;
          try {
            d.push(chunk);
          } catch (e) {
            if (!(e instanceof ProtocolError)) throw e;
            if (failure !== null) {
              if (e !== failure) throw new Error('a second, different error', { cause: e });
              if (c.events.length + c.pieces !== before) throw new Error('an event after the error', { cause: e });
            }
            failure = e;
          }
        }
        if (failure !== null) {
          const count = c.events.length + c.pieces;
          expect(() => d.push(bytes(hdr(6, 1, 0, 0)))).toThrow(failure as Error);
          expect(() => d.end()).toThrow(failure as Error);
          expect(c.events.length + c.pieces).toBe(count);
        }
      }),
      { numRuns: 2000 },
    );
    // The inputs keep reaching both sides: events, clean ends and the common errors.
    for (const o of ['no error', 'stdout', 'end', 'values', FastcgiErrorCode.BadVersion, FastcgiErrorCode.UnexpectedRequestId, FastcgiErrorCode.UnknownRecordType]) {
      expect(outcomes).toContain(o);
    }
  });
});
