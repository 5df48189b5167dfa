/**
 * FastCGI codec properties (fast-check) and a one-million-record run.
 *
 * Random input must give records or a typed error (ProtocolError / LimitError) and nothing
 * else, the same way however it is cut into chunks (F-1), matching a whole-buffer
 * reference model written here from §2.1. Well-formed records and pair lists round-trip.
 */
import fc from 'fast-check';
import { ProtocolError } from '../../protocols/errors.js';
import {
  ParamsDecoder,
  RecordDecoder,
  RecordType,
  encodeBeginRequest,
  encodeParams,
  encodeParamsStream,
  encodeRecord,
  encodeStreamRecords,
} from '../../protocols/fastcgi/index.js';
import type { Pair, ParamsDecoderOptions } from '../../protocols/fastcgi/index.js';

type Rec = [type: number, requestId: number, contentHex: string];
interface RecordOutcome {
  records: Rec[];
  error: string | null;
  pending: number;
}

/** §2.1 read literally, on one whole buffer. */
function referenceRecords(buf: Uint8Array): RecordOutcome {
  const records: Rec[] = [];
  let pos = 0;
  while (pos + 8 <= buf.length) {
    if (buf[pos] !== 1) return { records, error: 'FCGI_BAD_VERSION', pending: 0 };
    const type = buf[pos + 1]!;
    const id = (buf[pos + 2]! << 8) | buf[pos + 3]!;
    const cl = (buf[pos + 4]! << 8) | buf[pos + 5]!;
    const pad = buf[pos + 6]!;
    if (pos + 8 + cl > buf.length) break;
    records.push([type, id, Buffer.from(buf.subarray(pos + 8, pos + 8 + cl)).toString('hex')]);
    if (pos + 8 + cl + pad > buf.length) break;
    pos += 8 + cl + pad;
  }
  // `pos` is the start of the unfinished record (header, content or padding incomplete).
  return { records, error: null, pending: buf.length - pos };
}

function splitAt(buf: Uint8Array, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, buf.length]) {
    chunks.push(Buffer.from(buf.subarray(prev, p)));
    prev = p;
  }
  return chunks;
}

/** Our decoder over chunks; any exception other than ProtocolError fails the property. */
function ourRecords(chunks: Buffer[]): RecordOutcome {
  const records: Rec[] = [];
  const d = new RecordDecoder((type, id, content) => records.push([type, id, content.toString('hex')]));
  try {
    for (const c of chunks) d.push(c);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    return { records, error: err.code, pending: 0 };
  }
  return { records, error: null, pending: d.pending };
}

type PairOutcome = Pair[] | string;

/** §2.1 name-value pairs read literally on one whole buffer, limits as documented. */
function referencePairs(buf: Uint8Array, maxParamsBytes: number, maxPairs: number): PairOutcome {
  if (buf.length > maxParamsBytes) return 'FCGI_PARAMS_TOO_LARGE';
  const pairs: Pair[] = [];
  let pos = 0;
  const readLen = (): number | null => {
    if (pos >= buf.length) return null;
    if (buf[pos]! < 0x80) return buf[pos++]!;
    if (pos + 4 > buf.length) return null;
    const v = ((buf[pos]! & 0x7f) * 0x1000000) + (buf[pos + 1]! << 16) + (buf[pos + 2]! << 8) + buf[pos + 3]!;
    pos += 4;
    return v;
  };
  while (pos < buf.length) {
    const nl = readLen();
    const vl = nl === null ? null : readLen();
    if (nl === null || vl === null) return 'FCGI_PARAMS_TRUNCATED';
    if (pairs.length >= maxPairs) return 'FCGI_TOO_MANY_PARAMS';
    if (pos + nl + vl > maxParamsBytes) return 'FCGI_PARAMS_TOO_LARGE';
    if (pos + nl + vl > buf.length) return 'FCGI_PARAMS_TRUNCATED';
    const latin1 = (a: number, b: number): string => Buffer.from(buf.subarray(a, b)).toString('latin1');
    pairs.push([latin1(pos, pos + nl), latin1(pos + nl, pos + nl + vl)]);
    pos += nl + vl;
  }
  return pairs;
}

function ourPairs(chunks: Buffer[], options: ParamsDecoderOptions): PairOutcome {
  const p = new ParamsDecoder(options);
  try {
    for (const c of chunks) if (c.length > 0) p.push(c);
    return p.end();
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    return err.code;
  }
}

// Arbitraries --------------------------------------------------------------------------

/** Mostly-valid record headers (version 1 most of the time) with random fields. */
const nearRecord = fc
  .record({
    version: fc.constantFrom(1, 1, 1, 1, 1, 1, 1, 0, 2, 255),
    type: fc.integer({ min: 0, max: 255 }),
    id: fc.constantFrom(0, 1, 2, 65535),
    content: fc.uint8Array({ maxLength: 40 }),
    pad: fc.integer({ min: 0, max: 20 }),
  })
  .map(({ version, type, id, content, pad }) => {
    const r = encodeRecord(type, id, content, pad);
    r[0] = version;
    return r;
  });

const nearStream = fc
  .tuple(fc.array(nearRecord, { maxLength: 12 }), fc.nat({ max: 20 }))
  .map(([recs, cut]) => {
    const all = Buffer.concat(recs);
    return all.subarray(0, Math.max(0, all.length - cut)); // often ends mid-record
  });

const cuts = fc.array(fc.nat(), { maxLength: 8 });
const latin1String = (maxLength: number): fc.Arbitrary<string> =>
  fc.array(fc.integer({ min: 0, max: 255 }), { maxLength }).map((codes) => String.fromCharCode(...codes));
/** Long runs of one char: lengths ≥ 256 make every byte of a 4-byte length matter. */
const longString = fc
  .tuple(fc.integer({ min: 120, max: 3000 }), fc.integer({ min: 0, max: 255 }))
  .map(([n, c]) => String.fromCharCode(c).repeat(n));
const pairArb: fc.Arbitrary<Pair> = fc.tuple(
  fc.oneof(latin1String(8), latin1String(200), longString),
  fc.oneof(latin1String(8), latin1String(300), longString),
);

describe('record decoder properties', () => {
  test('F-1: random bytes give records or a typed error, the same under any split', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), cuts, (buf, cut) => {
        expect(ourRecords(splitAt(buf, cut))).toEqual(referenceRecords(buf));
      }),
      { numRuns: 500 },
    );
  });

  test('F-1 / F-2: near-valid record streams match the reference model under any split', () => {
    fc.assert(
      fc.property(nearStream, cuts, (buf, cut) => {
        expect(ourRecords(splitAt(buf, cut))).toEqual(referenceRecords(buf));
      }),
      { numRuns: 1000 },
    );
  });

  test('F-1: random bytes after a valid prefix (BEGIN + PARAMS) match the reference model', () => {
    const prefix = Buffer.concat([encodeBeginRequest(1), encodeParamsStream(1, [['SERVER_PORT', '80']])]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), cuts, (tail, cut) => {
        const buf = Buffer.concat([prefix, tail]);
        const ours = ourRecords(splitAt(buf, cut));
        expect(ours).toEqual(referenceRecords(buf));
        expect(ours.records.length).toBeGreaterThanOrEqual(3);
      }),
      { numRuns: 500 },
    );
  });

  test('F-3: random well-formed records round-trip under random splits', () => {
    const recordArb = fc.record({
      type: fc.integer({ min: 0, max: 255 }),
      id: fc.integer({ min: 0, max: 65535 }),
      content: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 4000, maxLength: 9000 })),
      pad: fc.oneof(fc.constant(undefined), fc.integer({ min: 0, max: 255 })),
    });
    fc.assert(
      fc.property(fc.array(recordArb, { maxLength: 10 }), cuts, (recs, cut) => {
        const wire = Buffer.concat(recs.map((r) => encodeRecord(r.type, r.id, r.content, r.pad)));
        const out = ourRecords(splitAt(wire, cut));
        expect(out.error).toBeNull();
        expect(out.pending).toBe(0);
        expect(out.records).toEqual(recs.map((r) => [r.type, r.id, Buffer.from(r.content).toString('hex')]));
      }),
      { numRuns: 300 },
    );
  });

  test('F-4: stream payloads of any size round-trip through encodeStreamRecords', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 140000 }), fc.integer({ min: 1, max: 65535 }), cuts, (size, id, cut) => {
        const data = Buffer.alloc(size);
        for (let i = 0; i < size; i += 997) data[i] = i & 0xff;
        const wire = Buffer.concat(encodeStreamRecords(RecordType.Stdout, id, data));
        const got: Buffer[] = [];
        const d = new RecordDecoder((type, rid, content) => {
          expect([type, rid]).toEqual([RecordType.Stdout, id]);
          expect(content.length).toBeGreaterThan(0); // F-34: no empty record in the payload
          got.push(Buffer.from(content));
        });
        for (const c of splitAt(wire, cut)) d.push(c);
        expect(Buffer.concat(got).equals(data)).toBe(true);
      }),
      { numRuns: 60 },
    );
  });
});

describe('name-value pair properties', () => {
  test('F-17 / F-18: random bytes give pairs or a typed error, the same under any split', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.array(pairArb, { maxLength: 6 }).map((p) => new Uint8Array(encodeParams(p)))),
        fc.integer({ min: 0, max: 400 }),
        fc.integer({ min: 0, max: 8 }),
        cuts,
        (buf, maxParamsBytes, maxPairs, cut) => {
          const expected = referencePairs(buf, maxParamsBytes, maxPairs);
          const got = ourPairs(splitAt(buf, cut), { maxParamsBytes, maxPairs });
          if (buf.length > maxParamsBytes) {
            // Which limit trips first depends on where the cuts fall; a LimitError it is.
            expect(['FCGI_PARAMS_TOO_LARGE', 'FCGI_TOO_MANY_PARAMS']).toContain(got);
          } else {
            expect(got).toEqual(expected);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  test('F-17: random pair lists round-trip through PARAMS records of random size, split randomly', () => {
    fc.assert(
      fc.property(fc.array(pairArb, { maxLength: 12 }), fc.integer({ min: 1, max: 300 }), cuts, (pairs, recordSize, cut) => {
        const wire = encodeParamsStream(5, pairs, recordSize);
        const p = new ParamsDecoder();
        let result: Pair[] | null = null;
        let foreign = 0;
        const d = new RecordDecoder((type, id, content) => {
          if (type !== RecordType.Params || id !== 5) foreign++;
          if (content.length === 0) result = p.end();
          else p.push(content);
        });
        for (const c of splitAt(wire, cut)) d.push(c);
        expect(foreign).toBe(0);
        expect(result).toEqual(pairs);
      }),
      { numRuns: 500 },
    );
  });
});

describe('one million records', () => {
  /** xorshift32: cheap, seeded, reproducible. */
  function prng(seed: number): () => number {
    let x = seed | 0 || 1;
    return () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return x >>> 0;
    };
  }

  test('F-1 / F-3: 1 000 000 random records, random chunking, some bad headers: only typed errors, all records accounted for', () => {
    const rand = prng(0x5eed1234);
    const TOTAL = 1_000_000;
    const PER_BATCH = 1000;
    const scratch = Buffer.alloc(PER_BATCH * (8 + 65535 + 255)); // content bytes are whatever is there
    let delivered = 0;
    let expectedDelivered = 0;
    let errors = 0;
    let sumOurs = 0;
    let sumTheirs = 0;
    let bytes = 0;

    for (let batch = 0; batch < TOTAL / PER_BATCH; batch++) {
      // One batch = one connection. 1 in 20 batches carries one record with a bad version.
      const bad = rand() % 20 === 0 ? rand() % PER_BATCH : -1;
      let len = 0;
      let sumBatch = 0;
      for (let i = 0; i < PER_BATCH; i++) {
        const r = rand();
        const type = r & 0xff;
        const id = (r >>> 8) & 0xffff;
        const pick = rand();
        // Mostly small records; 1 % up to the 65535 maximum.
        const cl = pick % 100 === 0 ? pick % 65536 : pick % 64;
        const pad = (pick >>> 16) & 0xff;
        scratch[len] = i === bad ? 2 + (r % 200) : 1;
        scratch[len + 1] = type;
        scratch.writeUInt16BE(id, len + 2);
        scratch.writeUInt16BE(cl, len + 4);
        scratch[len + 6] = pad;
        scratch[len + 7] = r & 0x7;
        len += 8 + cl + pad;
        if (bad === -1 || i < bad) sumBatch = (sumBatch * 31 + type * 65536 + id + cl * 7) % 1_000_000_007;
      }
      sumTheirs = (sumTheirs + sumBatch) % 1_000_000_007;
      expectedDelivered += bad === -1 ? PER_BATCH : bad;
      bytes += len;

      let sumBatchOurs = 0;
      const d = new RecordDecoder((type, id, content) => {
        delivered++;
        sumBatchOurs = (sumBatchOurs * 31 + type * 65536 + id + content.length * 7) % 1_000_000_007;
      });
      let pos = 0;
      try {
        while (pos < len) {
          const size = 1 + (rand() % (rand() % 4 === 0 ? 16 : 200000));
          d.push(scratch.subarray(pos, Math.min(len, pos + size)));
          pos += size;
        }
        expect(d.pending).toBe(0);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        expect(err.code).toBe('FCGI_BAD_VERSION');
        errors++;
      }
      sumOurs = (sumOurs + sumBatchOurs) % 1_000_000_007;
    }

    expect(delivered).toBe(expectedDelivered);
    expect(sumOurs).toBe(sumTheirs);
    expect(errors).toBeGreaterThan(0);
    expect(delivered).toBeGreaterThan(900_000);
    expect(bytes).toBeGreaterThan(100 * 1024 * 1024);
  }, 120_000);
});
