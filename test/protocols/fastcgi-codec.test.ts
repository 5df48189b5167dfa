/**
 * FastCGI codec: golden bytes of docs/conformance.md §2.1 (parse, generate, mirror),
 * every fixture at every split point, name-value pairs across records, hostile inputs
 * of §2.4 that the codec sees, limits.
 */
import { LimitError, ProtocolError } from '../../protocols/errors.js';
import {
  FCGI_MAX_ALIGNED_CONTENT_LENGTH,
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
  decodeEndRequest,
  decodeGetValues,
  decodeParams,
  decodeUnknownType,
  encodeAbortRequest,
  encodeBeginRequest,
  encodeEndOfStream,
  encodeEndRequest,
  encodeGetValues,
  encodeGetValuesResult,
  encodeParams,
  encodeParamsStream,
  encodeRecord,
  encodeResponseEnd,
  encodeStderr,
  encodeStdin,
  encodeStdout,
  encodeStreamRecords,
  encodeUnknownType,
  resolveGetValues,
} from '../../protocols/fastcgi/index.js';
import type { Pair } from '../../protocols/fastcgi/index.js';

// ---- helpers -------------------------------------------------------------------------

type Rec = [type: number, requestId: number, content: Buffer];

const ascii = (s: string): number[] => [...Buffer.from(s, 'latin1')];
const bytes = (...parts: Array<number | number[]>): Buffer => Buffer.from(parts.flat());

/** Decodes `chunks` pushed in order; content is copied so chunk reuse cannot fool us. */
function decodeChunks(chunks: Buffer[]): Rec[] {
  const out: Rec[] = [];
  const d = new RecordDecoder((type, id, content) => out.push([type, id, Buffer.from(content)]));
  for (const c of chunks) d.push(c);
  expect(d.pending).toBe(0);
  return out;
}

function decodeWhole(buf: Buffer): Rec[] {
  return decodeChunks([buf]);
}

/** The same records whether `buf` arrives whole, cut at any one offset, or byte by byte (F-1). */
function expectSplitInvariant(buf: Buffer, offsets?: Iterable<number>): void {
  const whole = decodeWhole(buf);
  for (const k of offsets ?? Array.from({ length: buf.length + 1 }, (_, i) => i)) {
    const got = decodeChunks([buf.subarray(0, k), buf.subarray(k)]);
    if (got.length !== whole.length || got.some((r, i) => r[0] !== whole[i]![0] || r[1] !== whole[i]![1] || !r[2].equals(whole[i]![2]))) {
      throw new Error(`records differ when split at offset ${k}`);
    }
  }
  const oneByOne: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) oneByOne.push(buf.subarray(i, i + 1));
  expect(decodeChunks(oneByOne)).toEqual(whole);
}

function concat(parts: Uint8Array[]): Buffer {
  return Buffer.concat(parts);
}

// ---- §2.1 worked bytes -----------------------------------------------------------------

const STDOUT_TEXT = 'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhi';

interface Vector {
  name: string;
  wire: Buffer;
  records: Rec[];
  generate: () => Buffer;
}

const vectors: Vector[] = [
  {
    name: 'BEGIN_REQUEST responder, keep-conn',
    wire: bytes(
      [0x01, 0x01], // version 1, type BEGIN_REQUEST
      [0x00, 0x01], // requestId 1
      [0x00, 0x08], // contentLength 8
      [0x00, 0x00], // paddingLength 0, reserved
      [0x00, 0x01], // role RESPONDER
      [0x01], // flags FCGI_KEEP_CONN
      [0x00, 0x00, 0x00, 0x00, 0x00], // reserved[5]
    ),
    records: [[RecordType.BeginRequest, 1, bytes([0, 1, 1, 0, 0, 0, 0, 0])]],
    generate: () => encodeBeginRequest(1, Role.Responder, Flag.KeepConn),
  },
  {
    name: 'PARAMS SERVER_PORT=80 (15 bytes, padded to 16)',
    wire: bytes(
      [0x01, 0x04], // version, type PARAMS
      [0x00, 0x01], // requestId 1
      [0x00, 0x0f], // contentLength 15
      [0x01, 0x00], // paddingLength 1, reserved
      [0x0b, 0x02], // nameLength 11, valueLength 2
      ascii('SERVER_PORT'),
      ascii('80'),
      [0x00], // padding
    ),
    records: [[RecordType.Params, 1, bytes([0x0b, 0x02], ascii('SERVER_PORT80'))]],
    generate: () => encodeRecord(RecordType.Params, 1, encodeParams([['SERVER_PORT', '80']])),
  },
  {
    name: 'PARAMS EOS',
    wire: bytes([0x01, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]), // PARAMS, id 1, length 0, padding 0
    records: [[RecordType.Params, 1, Buffer.alloc(0)]],
    generate: () => encodeEndOfStream(RecordType.Params, 1),
  },
  {
    name: 'STDIN EOS',
    wire: bytes([0x01, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]), // STDIN, id 1, length 0
    records: [[RecordType.Stdin, 1, Buffer.alloc(0)]],
    generate: () => encodeEndOfStream(RecordType.Stdin, 1),
  },
  {
    name: 'STDOUT "Status: 200 OK…hi" (46 bytes, 2 padding)',
    wire: bytes(
      [0x01, 0x06], // version, type STDOUT
      [0x00, 0x01], // requestId 1
      [0x00, 0x2e], // contentLength 46
      [0x02, 0x00], // paddingLength 2, reserved
      ascii(STDOUT_TEXT),
      [0x00, 0x00], // padding
    ),
    records: [[RecordType.Stdout, 1, Buffer.from(STDOUT_TEXT, 'latin1')]],
    generate: () => concat(encodeStdout(1, Buffer.from(STDOUT_TEXT, 'latin1'))),
  },
  {
    name: 'STDOUT EOS',
    wire: bytes([0x01, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]),
    records: [[RecordType.Stdout, 1, Buffer.alloc(0)]],
    generate: () => encodeEndOfStream(RecordType.Stdout, 1),
  },
  {
    name: 'END_REQUEST complete',
    wire: bytes(
      [0x01, 0x03, 0x00, 0x01, 0x00, 0x08, 0x00, 0x00], // END_REQUEST, id 1, length 8
      [0x00, 0x00, 0x00, 0x00], // appStatus 0
      [0x00], // protocolStatus REQUEST_COMPLETE
      [0x00, 0x00, 0x00], // reserved
    ),
    records: [[RecordType.EndRequest, 1, Buffer.alloc(8)]],
    generate: () => encodeEndRequest(1, 0, ProtocolStatus.RequestComplete),
  },
  {
    name: 'GET_VALUES (3 names, 48 bytes)',
    wire: bytes(
      [0x01, 0x09, 0x00, 0x00], // GET_VALUES, requestId 0
      [0x00, 0x30, 0x00, 0x00], // contentLength 48, no padding
      [0x0e, 0x00],
      ascii('FCGI_MAX_CONNS'),
      [0x0d, 0x00],
      ascii('FCGI_MAX_REQS'),
      [0x0f, 0x00],
      ascii('FCGI_MPXS_CONNS'),
    ),
    records: [
      [
        RecordType.GetValues,
        0,
        bytes([0x0e, 0x00], ascii('FCGI_MAX_CONNS'), [0x0d, 0x00], ascii('FCGI_MAX_REQS'), [0x0f, 0x00], ascii('FCGI_MPXS_CONNS')),
      ],
    ],
    generate: () => encodeGetValues(MANAGEMENT_VARIABLES),
  },
  {
    name: 'UNKNOWN_TYPE for type 0x7F',
    wire: bytes(
      [0x01, 0x0b, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00], // UNKNOWN_TYPE, id 0, length 8
      [0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // type 0x7F, reserved[7]
    ),
    records: [[RecordType.UnknownType, 0, bytes([0x7f, 0, 0, 0, 0, 0, 0, 0])]],
    generate: () => encodeUnknownType(0x7f),
  },
];

describe('§2.1 byte vectors: parse, generate, mirror, every split', () => {
  for (const v of vectors) {
    test(`F-1: parse ${v.name}`, () => {
      expect(decodeWhole(v.wire)).toEqual(v.records);
    });
    test(`F-4: generate ${v.name}`, () => {
      expect(v.generate().toString('hex')).toBe(v.wire.toString('hex'));
    });
    test(`F-1: mirror ${v.name}`, () => {
      expect(decodeWhole(v.generate())).toEqual(v.records);
    });
    test(`F-1: ${v.name} split at every byte offset and one byte at a time`, () => {
      expectSplitInvariant(v.wire);
    });
  }

  test('BEGIN_REQUEST body decodes to role RESPONDER with keepConn', () => {
    expect(decodeBeginRequest(vectors[0]!.records[0]![2])).toEqual({ role: Role.Responder, flags: 1, keepConn: true });
  });

  test('PARAMS vector decodes to SERVER_PORT=80', () => {
    expect(decodeParams(vectors[1]!.records[0]![2])).toEqual([['SERVER_PORT', '80']]);
  });

  test('F-6: GET_VALUES vector decodes to the three management names', () => {
    expect(decodeGetValues(vectors[7]!.records[0]![2])).toEqual(['FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS']);
  });

  test('END_REQUEST and UNKNOWN_TYPE bodies decode', () => {
    expect(decodeEndRequest(vectors[6]!.records[0]![2])).toEqual({ appStatus: 0, protocolStatus: 0 });
    expect(decodeUnknownType(vectors[8]!.records[0]![2])).toBe(0x7f);
  });

  test('F-18: length encodings 300, 128, 33554431 (§2.1)', () => {
    expect(encodeParams([['x'.repeat(300), '']]).subarray(0, 4).toString('hex')).toBe('8000012c');
    expect(encodeParams([['x'.repeat(128), '']]).subarray(0, 4).toString('hex')).toBe('80000080');
    const big = encodeParams([['A', 'v'.repeat(33554431)]]);
    expect(big.subarray(0, 5).toString('hex')).toBe('0181ffffff'); // nameLength 1, valueLength 33554431
    const [pair] = decodeParams(big, { maxParamsBytes: 64 * 1024 * 1024 });
    expect(pair![0]).toBe('A');
    expect(pair![1].length).toBe(33554431);
  });
});

// ---- whole exchanges -------------------------------------------------------------------

const nginxParams: Pair[] = [
  ['QUERY_STRING', 'a=1&b=%C3%A9'],
  ['REQUEST_METHOD', 'POST'],
  ['CONTENT_TYPE', 'text/plain'],
  ['CONTENT_LENGTH', '5'],
  ['SCRIPT_NAME', '/app/index'],
  ['REQUEST_URI', '/app/index?a=1&b=%C3%A9'],
  ['SERVER_PROTOCOL', 'HTTP/1.1'],
  ['HTTP_COOKIE', 'k='.padEnd(200, 'c')], // value > 127 bytes: 4-byte length
  ['HTTP_X_EMPTY', ''],
];

const requestExchange = concat([
  encodeBeginRequest(1, Role.Responder, Flag.KeepConn),
  encodeParamsStream(1, nginxParams, 37), // several PARAMS records cut mid-pair
  ...encodeStdin(1, Buffer.from('hello')),
  encodeEndOfStream(RecordType.Stdin, 1),
]);

const responseExchange = concat([
  ...encodeStdout(1, Buffer.from(STDOUT_TEXT)),
  ...encodeStderr(1, Buffer.from('warn\n')),
  encodeResponseEnd(1, 0, true),
]);

describe('F-1: whole exchanges at every split point', () => {
  test('F-1: RESPONDER request (BEGIN, PARAMS×n, EOS, STDIN, EOS) split at every offset', () => {
    const recs = decodeWhole(requestExchange);
    expect(recs.map((r) => r[0])).toEqual([1, ...Array(recs.length - 4).fill(4), 4, 5, 5]);
    expectSplitInvariant(requestExchange);
  });

  test('F-1: response (STDOUT, STDERR, STDOUT EOS, STDERR EOS, END_REQUEST) split at every offset', () => {
    expect(decodeWhole(responseExchange).map((r) => r[0])).toEqual([6, 7, 6, 7, 3]);
    expectSplitInvariant(responseExchange);
  });

  test('F-1: ten exchanges in one chunk give every record in order', () => {
    const many = concat(Array(10).fill(requestExchange));
    const one = decodeWhole(requestExchange);
    expect(decodeWhole(many)).toEqual(Array(10).fill(one).flat());
  });

  test('F-17: PARAMS of the request exchange decode to the pairs', () => {
    const p = new ParamsDecoder();
    let pairs: Pair[] = [];
    for (const [type, , content] of decodeWhole(requestExchange)) {
      if (type !== RecordType.Params) continue;
      if (content.length === 0) pairs = p.end();
      else p.push(content);
    }
    expect(pairs).toEqual(nginxParams);
  });
});

// ---- record framing --------------------------------------------------------------------

describe('record framing', () => {
  test('F-3: padding 255 on an empty (EOS) record, split everywhere', () => {
    const wire = encodeRecord(RecordType.Stdin, 1, undefined, 255);
    expect(wire.length).toBe(8 + 255);
    expect(decodeWhole(concat([wire, wire]))).toEqual([
      [5, 1, Buffer.alloc(0)],
      [5, 1, Buffer.alloc(0)],
    ]);
    expectSplitInvariant(concat([wire, encodeEndOfStream(RecordType.Params, 3)]));
  });

  test('F-3 / §2.4: PARAMS contentLength 65535 + padding 255 accepted (content+padding > 65535)', () => {
    const content = Buffer.alloc(65535, 0x61);
    const wire = concat([encodeRecord(RecordType.Params, 7, content, 255), encodeEndOfStream(RecordType.Params, 7)]);
    const recs = decodeWhole(wire);
    expect(recs).toHaveLength(2);
    expect(recs[0]![2].equals(content)).toBe(true);
    const offsets = [0, 1, 7, 8, 9, 100, 65542, 65543, 65544, 65700, 65797, 65798, 65799, 65805];
    for (let k = 0; k < wire.length; k += 997) offsets.push(k);
    expectSplitInvariant(wire, offsets);
  });

  test('F-3: every paddingLength 0..255 with contentLengths 0, 1, 8', () => {
    const parts: Buffer[] = [];
    const expected: Rec[] = [];
    for (let pad = 0; pad <= 255; pad++) {
      for (const cl of [0, 1, 8]) {
        const content = Buffer.alloc(cl, pad);
        parts.push(encodeRecord(RecordType.Stdin, pad + 1, content, pad));
        expected.push([RecordType.Stdin, pad + 1, content]);
      }
    }
    const wire = concat(parts);
    expect(decodeWhole(wire)).toEqual(expected);
    const small: Buffer[] = [];
    for (let i = 0; i < wire.length; i += 5) small.push(wire.subarray(i, i + 5));
    expect(decodeChunks(small)).toEqual(expected);
  });

  test('F-14: request ids 1, 2, 65535 come out unchanged', () => {
    const wire = concat([encodeBeginRequest(1), encodeBeginRequest(2), encodeBeginRequest(65535), encodeAbortRequest(65535)]);
    expect(decodeWhole(wire).map((r) => r[1])).toEqual([1, 2, 65535, 65535]);
  });

  test('F-2 / §2.4: version 0 and 2 throw ProtocolError FCGI_BAD_VERSION; the decoder stays dead', () => {
    for (const version of [0, 2]) {
      const d = new RecordDecoder(() => undefined);
      const wire = encodeEndOfStream(RecordType.Stdin, 1);
      wire[0] = version;
      let first: unknown;
      try {
        d.push(wire);
      } catch (err) {
        first = err;
      }
      expect(first).toBeInstanceOf(ProtocolError);
      expect((first as ProtocolError).code).toBe('FCGI_BAD_VERSION');
      expect((first as ProtocolError).message).toMatch(new RegExp(`^fastcgi: unsupported record version ${version}`));
      expect(d.error).toBe(first);
      // Dead: the next push throws the very same error, even for valid bytes.
      expect(() => d.push(encodeEndOfStream(RecordType.Stdin, 1))).toThrow(first as Error);
    }
  });

  test('F-2: bad version found in a header that straddles chunks, after a good record', () => {
    const seen: number[] = [];
    const d = new RecordDecoder((type) => seen.push(type));
    const bad = encodeEndOfStream(RecordType.Stdin, 1);
    bad[0] = 2;
    const wire = concat([encodeAbortRequest(1), bad]);
    d.push(wire.subarray(0, 11));
    expect(seen).toEqual([RecordType.AbortRequest]);
    expect(() => d.push(wire.subarray(11))).toThrow(expect.objectContaining({ code: 'FCGI_BAD_VERSION' }));
  });

  test('F-8 / F-9 / §2.4: unknown types 0, 12, 0x7F, 255 are delivered, not rejected', () => {
    const wire = concat([
      encodeRecord(0x7f, 0, Buffer.from('x')),
      encodeRecord(0, 1, Buffer.from('yz')),
      encodeRecord(12, 3),
      encodeRecord(255, 65535, Buffer.alloc(9)),
      encodeEndOfStream(RecordType.Stdin, 1),
    ]);
    expect(decodeWhole(wire).map((r) => [r[0], r[1], r[2].length])).toEqual([
      [0x7f, 0, 1],
      [0, 1, 2],
      [12, 3, 0],
      [255, 65535, 9],
      [5, 1, 0],
    ]);
    expectSplitInvariant(wire);
  });

  test('maxContentLength: a larger record is a LimitError before its content arrives', () => {
    const d = new RecordDecoder(() => undefined, { maxContentLength: 16 });
    d.push(encodeRecord(RecordType.Stdin, 1, Buffer.alloc(16)));
    const err = (() => {
      try {
        d.push(encodeRecord(RecordType.Stdin, 1, Buffer.alloc(17)).subarray(0, 8));
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(LimitError);
    expect(err).toMatchObject({ code: 'FCGI_RECORD_TOO_LARGE', limit: 'maxContentLength' });
    expect(() => new RecordDecoder(() => undefined, { maxContentLength: 65536 })).toThrow(RangeError);
  });

  test('pending counts bytes of the unfinished record and is 0 on a boundary', () => {
    const d = new RecordDecoder(() => undefined);
    const wire = encodeRecord(RecordType.Stdin, 1, Buffer.alloc(10), 6); // 8 + 10 + 6 = 24
    d.push(wire.subarray(0, 3));
    expect(d.pending).toBe(3);
    d.push(wire.subarray(3, 12));
    expect(d.pending).toBe(12);
    d.push(wire.subarray(12, 20)); // content done, 2 of 6 padding bytes
    expect(d.pending).toBe(20);
    d.push(wire.subarray(20));
    expect(d.pending).toBe(0);
  });

  test('a throwing handler kills the decoder with its error', () => {
    const boom = new Error('handler failed');
    const d = new RecordDecoder(() => {
      throw boom;
    });
    expect(() => d.push(encodeAbortRequest(1))).toThrow(boom);
    expect(() => d.push(encodeAbortRequest(1))).toThrow(boom);
  });

  test('push from inside the handler is refused', () => {
    let inner: unknown = null;
    const d: RecordDecoder = new RecordDecoder(() => {
      try {
        d.push(encodeAbortRequest(2));
      } catch (err) {
        inner = err;
      }
    });
    d.push(encodeAbortRequest(1));
    expect(inner).toBeInstanceOf(Error);
    expect(String(inner)).toMatch(/inside its record handler/);
  });
});

describe('zero copy and assembly', () => {
  test('content wholly inside one chunk is a view of that chunk', () => {
    const wire = concat([encodeBeginRequest(1), ...encodeStdin(1, Buffer.alloc(5000, 1))]);
    const seen: Buffer[] = [];
    new RecordDecoder((_t, _i, c) => seen.push(c)).push(wire);
    expect(seen[1]!.buffer).toBe(wire.buffer);
    expect(seen[1]!.byteOffset).toBe(wire.byteOffset + 16 + 8);
    expect(seen[1]!.length).toBe(5000);
  });

  test('header in one chunk, content wholly in the next: a view of the second chunk', () => {
    const wire = concat(encodeStdin(1, Buffer.alloc(5000, 2)));
    for (const cut of [3, 8]) {
      const seen: Buffer[] = [];
      const d = new RecordDecoder((_t, _i, c) => seen.push(c));
      const a = Buffer.from(wire.subarray(0, cut));
      const b = Buffer.from(wire.subarray(cut));
      d.push(a);
      d.push(b);
      expect(seen).toHaveLength(1);
      expect(seen[0]!.buffer).toBe(b.buffer);
      expect(seen[0]!.byteOffset).toBe(b.byteOffset + 8 - cut);
    }
  });

  test('content straddling chunks is assembled in one buffer of exactly the record size', () => {
    const data = Buffer.alloc(60000);
    for (let i = 0; i < data.length; i++) data[i] = i & 0xff;
    const wire = concat(encodeStdin(1, data));
    const seen: Buffer[] = [];
    const d = new RecordDecoder((_t, _i, c) => seen.push(c));
    for (let i = 0; i < wire.length; i += 1000) d.push(Buffer.from(wire.subarray(i, i + 1000)));
    expect(seen).toHaveLength(1);
    expect(seen[0]!.equals(data)).toBe(true);
    expect(seen[0]!.byteOffset).toBe(0);
    expect(seen[0]!.buffer.byteLength).toBe(60000);
  });
});

describe('BEGIN_REQUEST body', () => {
  test('F-10 / §2.4: BEGIN body of 7 or 9 bytes is a ProtocolError', () => {
    for (const n of [0, 7, 9]) {
      expect(() => decodeBeginRequest(Buffer.alloc(n))).toThrow(ProtocolError);
      expect(() => decodeBeginRequest(Buffer.alloc(n))).toThrow(expect.objectContaining({ code: 'FCGI_BAD_BEGIN_REQUEST' }));
    }
  });

  test('F-13 / §2.4: roles 2 (AUTHORIZER), 3 (FILTER) and 0x1234 decode for the front to judge; keepConn 0', () => {
    for (const role of [Role.Authorizer, Role.Filter, 0x1234]) {
      const [[, , content]] = decodeWhole(encodeBeginRequest(9, role, 0)) as [Rec];
      expect(decodeBeginRequest(content)).toEqual({ role, flags: 0, keepConn: false });
    }
  });

  test('END_REQUEST and UNKNOWN_TYPE bodies of the wrong size are ProtocolErrors', () => {
    expect(() => decodeEndRequest(Buffer.alloc(7))).toThrow(expect.objectContaining({ code: 'FCGI_BAD_END_REQUEST' }));
    expect(() => decodeUnknownType(Buffer.alloc(9))).toThrow(expect.objectContaining({ code: 'FCGI_BAD_UNKNOWN_TYPE' }));
  });
});

// ---- name-value pairs ------------------------------------------------------------------

function decodeParamChunks(chunks: Buffer[], options?: ConstructorParameters<typeof ParamsDecoder>[0]): Pair[] {
  const p = new ParamsDecoder(options);
  for (const c of chunks) p.push(c);
  return p.end();
}

describe('name-value pairs', () => {
  const pairs: Pair[] = [
    ['A', 'b'],
    ['EMPTY', ''],
    ['', 'nameless'],
    ['N'.repeat(127), 'v'.repeat(128)],
    ['M'.repeat(128), 'w'.repeat(127)],
    ['SCRIPT_FILENAME', '/srv/a.php'],
    ['HTTP_USER_AGENT', 'u'.repeat(300)], // length 80 00 01 2C: both low bytes matter
    ['L'.repeat(1000), 'x'],
  ];
  const stream = encodeParams(pairs);

  test('F-18: 127/128 boundary: 1-byte length 7F, 4-byte length 80 00 00 80', () => {
    const enc = encodeParams([['N'.repeat(127), 'v'.repeat(128)]]);
    expect(enc.subarray(0, 5).toString('hex')).toBe('7f80000080');
    expect(enc.length).toBe(1 + 4 + 127 + 128);
    expect(decodeParams(stream)).toEqual(pairs);
  });

  test('F-18: 4-byte lengths for short values are accepted', () => {
    const wire = bytes([0x80, 0x00, 0x00, 0x03], [0x80, 0x00, 0x00, 0x02], ascii('FOO'), ascii('ab'), [0x80, 0, 0, 0, 0x00]);
    expect(decodeParams(wire)).toEqual([
      ['FOO', 'ab'],
      ['', ''],
    ]);
  });

  test('F-17: the pair stream split at every offset into two records', () => {
    for (let k = 0; k <= stream.length; k++) {
      expect(decodeParamChunks([stream.subarray(0, k), stream.subarray(k)])).toEqual(pairs);
    }
  });

  test('F-17: a short pair stream split at every pair of offsets into three records', () => {
    const small: Pair[] = [
      ['AB', 'c'],
      ['X'.repeat(300), ''],
      ['', ''],
      ['Q', 'R'.repeat(129)],
    ];
    const s = encodeParams(small);
    for (let i = 0; i <= s.length; i += 1) {
      for (let j = i; j <= s.length; j += 3) {
        const got = decodeParamChunks([s.subarray(0, i), s.subarray(i, j), s.subarray(j)]);
        if (JSON.stringify(got) !== JSON.stringify(small)) throw new Error(`differs at ${i}/${j}`);
      }
    }
    expect(decodeParamChunks([s])).toEqual(small);
  });

  test('F-17: one byte per record, through the record decoder', () => {
    const wire = encodeParamsStream(42, pairs, 1);
    const p = new ParamsDecoder();
    let result: Pair[] | null = null;
    let records = 0;
    new RecordDecoder((type, id, content) => {
      expect([type, id]).toEqual([RecordType.Params, 42]);
      records++;
      if (content.length === 0) result = p.end();
      else p.push(content);
    }).push(wire);
    expect(records).toBe(stream.length + 1);
    expect(result).toEqual(pairs);
  });

  test('§2.4: 10 000 PARAMS records of 1 byte work until the total-size cap', () => {
    const many: Pair[] = Array.from({ length: 700 }, (_, i) => [`HTTP_X_${i}`, `${i}`]);
    const wire = encodeParamsStream(1, many, 1);
    const recs = decodeWhole(wire);
    expect(recs.length).toBeGreaterThan(10000);
    const ok = new ParamsDecoder();
    for (const [, , c] of recs) if (c.length > 0) ok.push(c);
    expect(ok.end()).toEqual(many);

    const capped = new ParamsDecoder({ maxParamsBytes: 5000 });
    let fed = 0;
    expect(() => {
      for (const [, , c] of recs) {
        if (c.length > 0) capped.push(c);
        fed++;
      }
    }).toThrow(expect.objectContaining({ code: 'FCGI_PARAMS_TOO_LARGE', limit: 'maxParamsBytes' }));
    expect(fed).toBeLessThanOrEqual(5000);
  });

  test('§2.4: pair length FF FF FF FF is a LimitError as soon as the lengths are read', () => {
    const p = new ParamsDecoder();
    const err = (() => {
      try {
        p.push(bytes([0x01, 0xff, 0xff, 0xff, 0xff])); // name length 1, value length 2^31-1
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(LimitError);
    expect(err).toMatchObject({ code: 'FCGI_PARAMS_TOO_LARGE', limit: 'maxParamsBytes' });
    // Same when the 4-byte length itself straddles records.
    const q = new ParamsDecoder();
    q.push(bytes([0xff, 0xff]));
    expect(() => q.push(bytes([0xff, 0xff, 0x00]))).toThrow(LimitError);
  });

  test('F-18 / §2.4: stream ends inside a 4-byte length → ProtocolError FCGI_PARAMS_TRUNCATED', () => {
    for (const wire of [
      bytes([0x80, 0x00]), // inside the name length
      bytes([0x03, 0x80, 0x00, 0x00]), // inside the value length
      bytes([0x03]), // value length missing
      bytes([0x03, 0x01], ascii('AB')), // inside the name
      bytes([0x01, 0x03], ascii('A'), ascii('xy')), // inside the value
    ]) {
      const p = new ParamsDecoder();
      p.push(wire);
      let err: unknown = null;
      try {
        p.end();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ProtocolError);
      expect(err).not.toBeInstanceOf(LimitError);
      expect(err).toMatchObject({ code: 'FCGI_PARAMS_TRUNCATED' });
    }
  });

  test('F-19: maxPairs 1000 by default: 1000 pairs pass, 1001 is a LimitError', () => {
    const thousand: Pair[] = Array.from({ length: 1000 }, (_, i) => [`P${i}`, '']);
    expect(decodeParams(encodeParams(thousand))).toHaveLength(1000);
    expect(() => decodeParams(encodeParams([...thousand, ['LAST', '']]))).toThrow(
      expect.objectContaining({ code: 'FCGI_TOO_MANY_PARAMS', limit: 'maxPairs' }),
    );
  });

  test('F-19: maxParamsBytes 1 MiB by default: exactly the cap passes, one byte more fails', () => {
    const value = 'v'.repeat(1024 * 1024 - 1 - 4 - 1);
    const exact = encodeParams([['A', value]]);
    expect(exact.length).toBe(1024 * 1024);
    expect(decodeParams(exact)[0]![1].length).toBe(value.length);
    const over = encodeParams([['AB', value]]);
    expect(() => decodeParams(over)).toThrow(LimitError);
    // And a declared pair running past the cap fails before its bytes arrive.
    const p = new ParamsDecoder({ maxParamsBytes: 100 });
    expect(() => p.push(encodeParams([['A', 'x'.repeat(200)]]).subarray(0, 10))).toThrow(LimitError);
  });

  test('errors are sticky until reset(); reset() makes the decoder reusable', () => {
    const p = new ParamsDecoder({ maxPairs: 1 });
    let first: unknown;
    try {
      p.push(encodeParams([['A', ''], ['B', '']]));
    } catch (e) {
      first = e;
    }
    expect(first).toBeInstanceOf(LimitError);
    expect(() => p.push(encodeParams([['C', '']]))).toThrow(first as Error);
    expect(() => p.end()).toThrow(first as Error);
    p.reset();
    p.push(encodeParams([['C', 'd']]));
    expect(p.end()).toEqual([['C', 'd']]);
    expect(p.end()).toEqual([]); // end() resets too
  });

  test('F-21: empty values (CONTENT_LENGTH="", CONTENT_TYPE="") decode as empty strings', () => {
    const empty: Pair[] = [
      ['CONTENT_LENGTH', ''],
      ['CONTENT_TYPE', ''],
    ];
    expect(decodeParams(encodeParams(empty))).toEqual(empty);
  });

  test('F-22: duplicate names are kept, in wire order, for the front to merge', () => {
    const dup: Pair[] = [
      ['SCRIPT_FILENAME', '/a'],
      ['HTTP_COOKIE', 'a=1'],
      ['SCRIPT_FILENAME', '/b'],
      ['HTTP_COOKIE', 'b=2'],
    ];
    expect(decodeParams(encodeParams(dup))).toEqual(dup);
  });

  test('F-23 / §2.4: names HTTP_X_FOO\\0 and A=B reach the front verbatim (it drops them)', () => {
    const odd: Pair[] = [
      ['HTTP_X_FOO\0', '1'],
      ['A=B', '2'],
      ['wsgi.input', '3'],
    ];
    expect(decodeParams(encodeParams(odd))).toEqual(odd);
  });

  test('E-2: names and values are latin1, one char per byte, never UTF-8', () => {
    const wire = bytes([0x04, 0x03], [0x4e, 0xe9, 0xff, 0x00], [0xc3, 0xa9, 0x80]);
    expect(decodeParams(wire)).toEqual([['N\u00e9\u00ff\u0000', '\u00c3\u00a9\u0080']]);
    expect(encodeParams([['N\u00e9\u00ff\u0000', '\u00c3\u00a9\u0080']]).equals(wire)).toBe(true);
    expect(() => encodeParams([['\u0100', '']])).toThrow(RangeError);
  });

  test('encodeParams takes any iterable', () => {
    const m = new Map([
      ['A', '1'],
      ['B', '2'],
    ]);
    expect(decodeParams(encodeParams(m))).toEqual([
      ['A', '1'],
      ['B', '2'],
    ]);
  });

  test('limit options are validated', () => {
    expect(() => new ParamsDecoder({ maxPairs: -1 })).toThrow(RangeError);
    expect(() => new ParamsDecoder({ maxParamsBytes: 1.5 })).toThrow(RangeError);
  });
});

// ---- management records ----------------------------------------------------------------

describe('GET_VALUES', () => {
  const values = { FCGI_MAX_CONNS: 100, FCGI_MAX_REQS: 50, FCGI_MPXS_CONNS: false };

  test('F-6: one GET_VALUES_RESULT holding only known names, decimal values, no empty record after it', () => {
    // The query carries a value (ignored), an unknown name and a duplicate.
    const query = encodeParams([
      ['FCGI_MPXS_CONNS', 'ignored'],
      ['FCGI_NOPE', ''],
      ['FCGI_MAX_CONNS', ''],
      ['FCGI_MPXS_CONNS', ''],
    ]);
    const answer = answerGetValues(query, values);
    const recs = decodeWhole(answer);
    expect(recs).toHaveLength(1);
    expect(recs[0]![0]).toBe(RecordType.GetValuesResult);
    expect(recs[0]![1]).toBe(0);
    expect(decodeParams(recs[0]![2])).toEqual([
      ['FCGI_MPXS_CONNS', '0'],
      ['FCGI_MAX_CONNS', '100'],
    ]);
    expect(answer.length % 8).toBe(0);
  });

  test('F-45: the answer reflects the configured values', () => {
    expect(resolveGetValues(MANAGEMENT_VARIABLES, { FCGI_MAX_CONNS: 7, FCGI_MAX_REQS: '9', FCGI_MPXS_CONNS: true })).toEqual([
      ['FCGI_MAX_CONNS', '7'],
      ['FCGI_MAX_REQS', '9'],
      ['FCGI_MPXS_CONNS', '1'],
    ]);
    expect(resolveGetValues(['toString', '__proto__'], {})).toEqual([]);
  });

  test('F-6: a GET_VALUES with no names gets an empty GET_VALUES_RESULT', () => {
    expect(answerGetValues(Buffer.alloc(0), values).toString('hex')).toBe('010a000000000000');
  });

  test('F-6: a malformed GET_VALUES body is a ProtocolError', () => {
    expect(() => answerGetValues(bytes([0x05, 0x00], ascii('AB')), values)).toThrow(ProtocolError);
  });

  test('F-8: UNKNOWN_TYPE for a management type 0x7F record that the decoder delivered', () => {
    const [[type, id]] = decodeWhole(encodeRecord(0x7f, 0, Buffer.from('??'))) as [Rec];
    expect([type, id]).toEqual([0x7f, 0]);
    expect(encodeUnknownType(type).toString('hex')).toBe('010b000000080000' + '7f00000000000000');
  });

  test('encodeGetValuesResult pads to 8', () => {
    const rec = encodeGetValuesResult([['FCGI_MAX_REQS', '1']]);
    expect(rec.length).toBe(8 + 16 + 0);
    expect(decodeWhole(rec)[0]![2].length).toBe(2 + 13 + 1);
  });
});

// ---- encoders --------------------------------------------------------------------------

describe('stream encoders', () => {
  const sizes = [1, 7, 8, SINGLE_BUFFER_MAX, SINGLE_BUFFER_MAX + 1, 65527, 65528, 65529, 65535, 65536, 200000];

  test('F-4: stream records carry ≤ 65535 bytes, are padded to 8 and concatenate to the data', () => {
    for (const size of sizes) {
      const data = Buffer.alloc(size);
      for (let i = 0; i < size; i++) data[i] = (i * 7) & 0xff;
      const wire = concat(encodeStreamRecords(RecordType.Stdout, 3, data));
      expect(wire.length % 8).toBe(0);
      const recs = decodeWhole(wire);
      for (const [type, id, content] of recs) {
        expect([type, id]).toEqual([RecordType.Stdout, 3]);
        expect(content.length).toBeGreaterThan(0);
        expect(content.length).toBeLessThanOrEqual(FCGI_MAX_ALIGNED_CONTENT_LENGTH);
      }
      expect(concat(recs.map((r) => r[2])).equals(data)).toBe(true);
      expect(recs).toHaveLength(Math.ceil(size / FCGI_MAX_ALIGNED_CONTENT_LENGTH));
    }
  });

  test('F-4: payloads above SINGLE_BUFFER_MAX are not copied; small ones are one buffer', () => {
    const big = Buffer.alloc(150000, 1);
    const parts = encodeStdout(1, big);
    const views = parts.filter((p) => p.buffer === big.buffer);
    expect(views.reduce((n, p) => n + p.length, 0)).toBe(150000);
    expect(encodeStdout(1, Buffer.alloc(SINGLE_BUFFER_MAX, 1))).toHaveLength(1);
  });

  test('F-34: zero-length writes produce no record at all', () => {
    expect(encodeStdout(1, Buffer.alloc(0))).toEqual([]);
    expect(encodeStderr(1, new Uint8Array(0))).toEqual([]);
    const out: Uint8Array[] = [Buffer.from('x')];
    expect(encodeStdin(1, Buffer.alloc(0), out)).toBe(out);
    expect(out).toHaveLength(1);
  });

  test('F-35: end of response is STDOUT EOS, [STDERR EOS], END_REQUEST, in that order', () => {
    expect(decodeWhole(encodeResponseEnd(5, 0, false)).map((r) => r[0])).toEqual([6, 3]);
    const withErr = decodeWhole(encodeResponseEnd(5, 1, true));
    expect(withErr.map((r) => [r[0], r[1], r[2].length])).toEqual([
      [6, 5, 0],
      [7, 5, 0],
      [3, 5, 8],
    ]);
    expect(decodeEndRequest(withErr[2]![2])).toEqual({ appStatus: 1, protocolStatus: ProtocolStatus.RequestComplete });
  });

  test('F-36 / F-13 / F-15: END_REQUEST appStatus as BE32, protocol statuses', () => {
    expect(encodeEndRequest(1, 0xffffffff, ProtocolStatus.CantMpxConn).subarray(8).toString('hex')).toBe('ffffffff01000000');
    expect(encodeEndRequest(1, -1).subarray(8, 12).toString('hex')).toBe('ffffffff');
    expect(encodeEndRequest(2, 258, ProtocolStatus.UnknownRole).toString('hex')).toBe('0103000200080000' + '0000010203000000');
    expect(decodeEndRequest(encodeEndRequest(2, 0xfffffffe).subarray(8)).appStatus).toBe(0xfffffffe);
  });

  test('F-4: encodeRecord refuses content over 65535 and bad ids (RangeError, a caller bug)', () => {
    expect(() => encodeRecord(RecordType.Stdout, 1, Buffer.alloc(65536))).toThrow(RangeError);
    expect(() => encodeRecord(RecordType.Stdout, 65536)).toThrow(RangeError);
    expect(() => encodeRecord(256, 1)).toThrow(RangeError);
    expect(() => encodeRecord(RecordType.Stdout, 1, Buffer.alloc(1), 256)).toThrow(RangeError);
    expect(encodeRecord(RecordType.Stdout, 1, Buffer.alloc(65535)).length).toBe(8 + 65535 + 1);
  });

  test('F-17: encodeParamsStream cuts anywhere and ends with PARAMS EOS', () => {
    const pairs: Pair[] = [
      ['A', 'x'.repeat(300)],
      ['B', ''],
    ];
    for (const size of [1, 2, 3, 5, 8, 100, 65535]) {
      const recs = decodeWhole(encodeParamsStream(9, pairs, size));
      expect(recs.at(-1)).toEqual([RecordType.Params, 9, Buffer.alloc(0)]);
      expect(decodeParamChunks(recs.slice(0, -1).map((r) => r[2]))).toEqual(pairs);
    }
  });
});
