/**
 * Property tests for the SCGI and uwsgi decoders (style guideline 12): random bytes only ever give
 * a head, "need more" or a ProtocolError/LimitError, the outcome does not depend on how the bytes
 * are cut into chunks, and valid header lists round-trip through encode → decode.
 */
import fc from 'fast-check';
import { ProtocolError } from '../../protocols/errors.js';
import { ScgiDecoder, encodeScgiRequest } from '../../protocols/scgi/index.js';
import type { ScgiDecoderOptions } from '../../protocols/scgi/index.js';
import { UwsgiDecoder, encodeUwsgiRequest } from '../../protocols/uwsgi/index.js';
import type { UwsgiDecoderOptions } from '../../protocols/uwsgi/index.js';

type Outcome =
  | { kind: 'head'; head: unknown; after: string }
  | { kind: 'need-more' }
  | { kind: 'error'; code: string; limit: boolean };

interface Decoder {
  push(chunk: Buffer): ({ rest: Buffer } & object) | undefined;
}

/**
 * Feeds `bytes` cut at `cuts` into a fresh decoder. Any throw other than a ProtocolError fails
 * the property (RangeError from a Buffer read, TypeError, ...).
 */
function run(make: () => Decoder, bytes: Uint8Array, cuts: number[]): Outcome {
  const buf = Buffer.from(bytes);
  const points = [...new Set(cuts.map((c) => (buf.length === 0 ? 0 : c % (buf.length + 1))))].sort((a, b) => a - b);
  const bounds = [0, ...points, buf.length];
  const decoder = make();
  try {
    for (let k = 0; k + 1 < bounds.length; k++) {
      const got = decoder.push(buf.subarray(bounds[k], bounds[k + 1]));
      if (got !== undefined) {
        const { rest, ...head } = got;
        return { kind: 'head', head, after: Buffer.concat([rest, buf.subarray(bounds[k + 1])]).toString('latin1') };
      }
    }
    return { kind: 'need-more' };
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    return { kind: 'error', code: err.code, limit: err.name === 'LimitError' };
  }
}

const scgi = (options?: ScgiDecoderOptions) => (): Decoder => new ScgiDecoder(options);
const uwsgi = (options?: UwsgiDecoderOptions) => (): Decoder => new UwsgiDecoder(options);

const cutsArb = fc.array(fc.nat(), { maxLength: 6 });

/** Strings that steer the decoders into their CONTENT_LENGTH / SCGI / key checks. */
const token = fc.oneof(
  fc.constantFrom('CONTENT_LENGTH', 'SCGI', '1', '2', '0', '12', '007', '', '-1', '12abc', 'A', 'HTTP_X', '99999999999999999999'),
  fc.string({ maxLength: 6 }).map((s) => s.replace(/[\u0100-\uffff]/g, '?')),
);

/** SCGI-shaped bytes: a length prefix (usually right), NUL-joined tokens, a comma (usually), a tail. */
const scgiLike = fc
  .record({
    lead: fc.constantFrom([], ['CONTENT_LENGTH', '5'], ['CONTENT_LENGTH', '0', 'SCGI', '1']),
    tokens: fc.array(token, { maxLength: 8 }),
    trailingNul: fc.boolean(),
    skew: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: -2, max: 2 })),
    comma: fc.oneof(fc.constant(','), fc.constant(','), fc.constantFrom(';', '\0', '')),
    tail: fc.uint8Array({ maxLength: 8 }),
  })
  .map(({ lead, tokens, trailingNul, skew, comma, tail }) => {
    const block = Buffer.from([...lead, ...tokens].join('\0') + (trailingNul ? '\0' : ''), 'latin1');
    const prefix = Buffer.from(`${Math.max(0, block.length + skew)}:`, 'latin1');
    return Uint8Array.from(Buffer.concat([prefix, block, Buffer.from(comma, 'latin1'), tail]));
  });

/** uwsgi-shaped bytes: entries whose size fields are usually right, a datasize usually right, a tail. */
const uwsgiLike = fc
  .record({
    modifier1: fc.integer({ min: 0, max: 255 }),
    entries: fc.array(
      fc.tuple(token, token, fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: -2, max: 2 }))),
      { maxLength: 6 },
    ),
    skew: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: -3, max: 3 })),
    tail: fc.uint8Array({ maxLength: 8 }),
  })
  .map(({ modifier1, entries, skew, tail }) => {
    const parts: number[] = [];
    for (const [key, value, sizeSkew] of entries) {
      const k = Buffer.from(key, 'latin1');
      const v = Buffer.from(value, 'latin1');
      const ks = Math.max(0, k.length + sizeSkew);
      parts.push(ks & 0xff, ks >> 8, ...k, v.length & 0xff, v.length >> 8, ...v);
    }
    const datasize = Math.min(65535, Math.max(0, parts.length + skew));
    return Uint8Array.from([modifier1, datasize & 0xff, datasize >> 8, 0, ...parts, ...tail]);
  });

/** A latin1 string (chars U+0000..U+00FF) without NUL. */
const latin1NoNul = (minLength: number, maxLength: number) =>
  fc.string({ unit: fc.integer({ min: 1, max: 255 }).map((c) => String.fromCharCode(c)), minLength, maxLength });
/** A latin1 string that may contain NUL (uwsgi is length-prefixed). */
const latin1Any = (minLength: number, maxLength: number) =>
  fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), minLength, maxLength });

describe('SCGI decoder properties (S-1..S-5)', () => {
  test('random bytes: a head, need-more or ProtocolError/LimitError, never another exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), cutsArb, (bytes, cuts) => {
        const outcome = run(scgi(), bytes, cuts);
        expect(['head', 'need-more', 'error']).toContain(outcome.kind);
      }),
      { numRuns: 3000 },
    );
  });

  test('SCGI-like bytes: the outcome is the same however the bytes are cut', () => {
    fc.assert(
      fc.property(scgiLike, cutsArb, (bytes, cuts) => {
        expect(run(scgi(), bytes, cuts)).toEqual(run(scgi(), bytes, []));
      }),
      { numRuns: 3000 },
    );
  });

  test('SCGI-like bytes with small limits: still only typed errors, and LimitError only for limit codes', () => {
    fc.assert(
      fc.property(scgiLike, cutsArb, fc.nat({ max: 40 }), fc.nat({ max: 20 }), (bytes, cuts, maxNetstringLength, maxBodyBytes) => {
        const outcome = run(scgi({ maxNetstringLength, maxBodyBytes }), bytes, cuts);
        if (outcome.kind === 'error') {
          expect(outcome.limit).toBe(outcome.code === 'SCGI_HEAD_TOO_LARGE' || outcome.code === 'SCGI_BODY_TOO_LARGE');
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('valid header lists round-trip encode → decode under random splits, body untouched', () => {
    const name = latin1NoNul(1, 20).filter((n) => n !== 'CONTENT_LENGTH' && n !== 'SCGI');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(name, latin1NoNul(0, 40)), { maxLength: 12 }),
        fc.nat({ max: 1_000_000_000 }),
        fc.uint8Array({ maxLength: 30 }),
        cutsArb,
        (headers, bodyLength, body, cuts) => {
          const bytes = Buffer.concat([encodeScgiRequest(headers, bodyLength), body]);
          const outcome = run(scgi(), bytes, cuts);
          expect(outcome).toEqual({
            kind: 'head',
            head: {
              headers: [['CONTENT_LENGTH', String(bodyLength)], ['SCGI', '1'], ...headers],
              contentLength: bodyLength,
              hasScgiMarker: true,
              headBytes: bytes.length - body.length,
            },
            after: Buffer.from(body).toString('latin1'),
          });
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('uwsgi decoder properties (U-1..U-6)', () => {
  test('random bytes: a head, need-more or ProtocolError/LimitError, never another exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), cutsArb, (bytes, cuts) => {
        const outcome = run(uwsgi(), bytes, cuts);
        expect(['head', 'need-more', 'error']).toContain(outcome.kind);
      }),
      { numRuns: 3000 },
    );
  });

  test('uwsgi-like bytes: the outcome is the same however the bytes are cut', () => {
    fc.assert(
      fc.property(uwsgiLike, cutsArb, (bytes, cuts) => {
        expect(run(uwsgi(), bytes, cuts)).toEqual(run(uwsgi(), bytes, []));
      }),
      { numRuns: 3000 },
    );
  });

  test('uwsgi-like bytes with small limits: still only typed errors, and LimitError only for limit codes', () => {
    fc.assert(
      fc.property(uwsgiLike, cutsArb, fc.nat({ max: 60 }), fc.nat({ max: 20 }), (bytes, cuts, maxUwsgiPacketSize, maxBodyBytes) => {
        const outcome = run(uwsgi({ maxUwsgiPacketSize, maxBodyBytes }), bytes, cuts);
        if (outcome.kind === 'error') {
          expect(outcome.limit).toBe(outcome.code === 'UWSGI_VARS_TOO_LARGE' || outcome.code === 'UWSGI_BODY_TOO_LARGE');
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('valid vars round-trip encode → decode under random splits, body untouched', () => {
    const key = latin1Any(1, 20).filter((k) => k !== 'CONTENT_LENGTH');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(key, latin1Any(0, 40)), { maxLength: 12 }),
        fc.option(fc.nat({ max: 1_000_000_000 }), { nil: undefined }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        fc.uint8Array({ maxLength: 30 }),
        cutsArb,
        (vars, bodyLength, modifier1, modifier2, body, cuts) => {
          const all: Array<[string, string]> = bodyLength === undefined ? vars : [['CONTENT_LENGTH', String(bodyLength)], ...vars];
          const packet = encodeUwsgiRequest(all, { modifier1, modifier2 });
          const bytes = Buffer.concat([packet, body]);
          expect(run(uwsgi(), bytes, cuts)).toEqual({
            kind: 'head',
            head: {
              modifier1,
              modifier2,
              datasize: packet.length - 4,
              vars: all,
              contentLength: bodyLength ?? 0,
              headBytes: packet.length,
            },
            after: Buffer.from(body).toString('latin1'),
          });
        },
      ),
      { numRuns: 1000 },
    );
  });
});
