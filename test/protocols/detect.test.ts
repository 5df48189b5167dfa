/**
 * Protocol detection on one listener: the real first bytes of each protocol (vectors of
 * docs/conformance.md §2.1, §3.1, §4.1), every prefix of them, and garbage.
 */
import fc from 'fast-check';
import { DETECT_MAX_BYTES, detectProtocol } from '../../protocols/detect.js';
import type { DetectResult } from '../../protocols/detect.js';
import { encodeScgiRequest } from '../../protocols/scgi/index.js';
import { UWSGI_REQUEST_MODIFIERS, encodeUwsgiRequest } from '../../protocols/uwsgi/index.js';

const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');
const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/** §2.1: BEGIN_REQUEST responder, keep-conn, id 1, then PARAMS SERVER_PORT=80 (what nginx sends first). */
const FCGI_BEGIN = Buffer.concat([
  hex('01 01 00 01 00 08 00 00'), // version 1, BEGIN_REQUEST, id 1, contentLength 8, padding 0, reserved
  hex('00 01 01 00 00 00 00 00'), // role 1 RESPONDER, flags 1 KEEP_CONN, reserved[5]
  hex('01 04 00 01 00 0F 01 00 0B 02'), // PARAMS header, then SERVER_PORT=80 pair
  latin1('SERVER_PORT80'),
]);
/** §2.1: GET_VALUES at connection start (management record, id 0, 48-byte body). */
const FCGI_GET_VALUES = Buffer.concat([
  hex('01 09 00 00 00 30 00 00'), // version 1, GET_VALUES, id 0, contentLength 48
  hex('0E 00'),
  latin1('FCGI_MAX_CONNS'),
  hex('0D 00'),
  latin1('FCGI_MAX_REQS'),
  hex('0F 00'),
  latin1('FCGI_MPXS_CONNS'),
]);
/** §3.1: the spec example. */
const SCGI_SPEC = latin1(
  '70:CONTENT_LENGTH\x0027\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00REQUEST_URI\x00/deepthought\x00,What is the answer to life?',
);
/** §4.1: the 54-byte vars vector. */
const UWSGI_54 = Buffer.concat([
  hex('00 36 00 00'), // modifier1 0, datasize 54 LE, modifier2 0
  hex('0E 00'),
  latin1('REQUEST_METHOD'),
  hex('03 00'),
  latin1('GET'),
  hex('09 00'),
  latin1('PATH_INFO'),
  hex('02 00'),
  latin1('/a'),
  hex('0E 00'),
  latin1('CONTENT_LENGTH'),
  hex('00 00'),
]);
const HTTP_GET = latin1('GET / HTTP/1.1\r\nHost: example.com\r\n\r\n');

/** The results for every prefix length 0..bytes.length. */
function prefixResults(bytes: Uint8Array): DetectResult[] {
  const out: DetectResult[] = [];
  for (let k = 0; k <= bytes.length; k++) out.push(detectProtocol(bytes.subarray(0, k)));
  return out;
}

/** Asserts need-more for every prefix shorter than `decidedAt`, then `expected` for all longer ones. */
function expectDecidedAt(bytes: Uint8Array, expected: DetectResult, decidedAt: number): void {
  const results = prefixResults(bytes);
  const want = results.map((_, k) => (k < decidedAt ? 'need-more' : expected));
  expect(results).toEqual(want);
}

describe('detectProtocol: real first bytes, decided at a fixed offset and stable after', () => {
  test('F §2.1: FastCGI BEGIN_REQUEST (nginx) → fastcgi after the 8-byte record header', () => {
    expectDecidedAt(FCGI_BEGIN, 'fastcgi', 8);
  });

  test('F §2.1: FastCGI GET_VALUES at connection start → fastcgi after 8 bytes', () => {
    expectDecidedAt(FCGI_GET_VALUES, 'fastcgi', 8);
  });

  test('F §2.1: FastCGI BEGIN_REQUEST with id 65535 and an unknown role → fastcgi (the role is the decoder’s business)', () => {
    expect(detectProtocol(hex('01 01 FF FF 00 08 00 00 00 07 00 00 00 00 00 00'))).toBe('fastcgi');
  });

  test('S §3.1: SCGI spec example → scgi after 16 bytes', () => {
    expectDecidedAt(SCGI_SPEC, 'scgi', 16);
  });

  test('S §3.4: nginx / Apache SCGI heads from the encoder (CONTENT_LENGTH first) → scgi', () => {
    expect(detectProtocol(encodeScgiRequest([['REQUEST_METHOD', 'GET']], 0))).toBe('scgi');
    expect(detectProtocol(encodeScgiRequest([['X', 'y'.repeat(1_000_000)]], 123456))).toBe('scgi');
  });

  test('U §4.1: uwsgi 54-byte vector → uwsgi after 6 + 10 key bytes', () => {
    expectDecidedAt(UWSGI_54, 'uwsgi', 16);
  });

  test('U §4.1: a uwsgi packet whose first key is short decides earlier (6 + keysize bytes)', () => {
    const bytes = encodeUwsgiRequest([['QS', ''], ['REQUEST_METHOD', 'GET']]);
    expectDecidedAt(bytes, 'uwsgi', 8);
  });

  test.each([...UWSGI_REQUEST_MODIFIERS].map((m) => [m]))('U-2: uwsgi with modifier1 %d → uwsgi', (modifier1) => {
    expect(detectProtocol(encodeUwsgiRequest([['QUERY_STRING', '']], { modifier1 }))).toBe('uwsgi');
  });

  test('H: "GET / HTTP/1.1" → http at the space after the method', () => {
    expectDecidedAt(HTTP_GET, 'http', 4);
  });

  test.each(['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE', 'M-SEARCH', 'PROPFIND', 'MKCALENDAR'])(
    'H: method %s followed by a space → http',
    (method) => {
      const bytes = latin1(`${method} /x HTTP/1.1\r\n\r\n`);
      expectDecidedAt(bytes, 'http', method.length + 1);
    },
  );

  test('H: a 15-char method token is still http; a 16-char one is unknown', () => {
    expect(detectProtocol(latin1(`${'A'.repeat(15)} / HTTP/1.1`))).toBe('http');
    expect(detectProtocol(latin1(`${'A'.repeat(16)} / HTTP/1.1`))).toBe('unknown');
  });
});

describe('detectProtocol: garbage and near misses → unknown', () => {
  test.each<[string, Buffer]>([
    ['empty-looking control byte 0x02', hex('02 00 00 00')],
    ['TLS ClientHello', hex('16 03 01 02 00 01 00 01 FC 03 03')],
    ['HTTP/2 preface is http (PRI method), not garbage', latin1('PRI * HTTP/2.0\r\n')],
    ['HAProxy PROXY protocol v1', latin1('PROXY TCP4 127.0.0.1 127.0.0.1 1 2\r\n')],
    ['PROXY protocol v2 signature', hex('0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A 21 11')],
    ['leading CRLF before an HTTP request', latin1('\r\nGET / HTTP/1.1\r\n')],
    ['lowercase method', latin1('get / HTTP/1.1\r\n')],
    ['method with a lowercase letter', latin1('Get / HTTP/1.1\r\n')],
    ['method followed by a tab', latin1('GET\t/ HTTP/1.1\r\n')],
    ['SSH banner', latin1('SSH-2.0-OpenSSH_9.2\r\n')],
    ['FastCGI version 2', hex('02 01 00 01 00 08 00 00')],
    ['FastCGI STDIN as first record', hex('01 05 00 01 00 00 00 00')],
    ['FastCGI PARAMS as first record', hex('01 04 00 01 00 0F 01 00')],
    ['FastCGI BEGIN_REQUEST with id 0', hex('01 01 00 00 00 08 00 00')],
    ['FastCGI BEGIN_REQUEST with contentLength 9', hex('01 01 00 01 00 09 00 00')],
    ['FastCGI BEGIN_REQUEST with contentLength 0x0108', hex('01 01 00 01 01 08 00 00')],
    ['FastCGI GET_VALUES with id 1', hex('01 09 00 01 00 30 00 00')],
    ['SCGI with leading zero "070:"', latin1('070:CONTENT_LENGTH\x00')],
    ['SCGI "0:," (no room for CONTENT_LENGTH)', latin1('0:,')],
    ['SCGI with 8 digits', latin1('10000000:CONTENT_LENGTH\x00')],
    ['SCGI with a length below 17', latin1('16:CONTENT_LENGTH\x000')],
    ['SCGI "70x"', latin1('70x')],
    ['SCGI with SCGI first instead of CONTENT_LENGTH', latin1('70:SCGI\x001\x00CONTENT_LENGTH\x00')],
    ['digits then space', latin1('12 34 56')],
    ['uwsgi modifier1 22 (raw code eval)', hex('16 36 00 00 0E 00') /* 0x16 = 22 */],
    ['uwsgi modifier1 100 (ping)', hex('64 00 00 00')],
    ['uwsgi modifier1 173 (RPC)', hex('AD 10 00 00 04 00 70 69 6E 67')],
    ['uwsgi datasize 0', hex('00 00 00 00')],
    ['uwsgi datasize 4 (too small for one var)', hex('00 04 00 00 00 00 00 00')],
    ['uwsgi keysize 0', hex('00 36 00 00 00 00 03 00')],
    ['uwsgi keysize past datasize', hex('00 10 00 00 0D 00 41 41')],
    ['uwsgi key with a space', Buffer.concat([hex('00 36 00 00 0E 00'), latin1('REQUEST METHOD')])],
    ['uwsgi key with a control byte', Buffer.concat([hex('00 36 00 00 0E 00'), latin1('REQUEST\x01METHOD')])],
    ['uwsgi key with a byte above 0x7E', Buffer.concat([hex('00 36 00 00 0E 00 C3 A9')])],
  ])('%s', (name, bytes) => {
    const expected = name.startsWith('HTTP/2 preface') ? 'http' : 'unknown';
    expect(detectProtocol(bytes)).toBe(expected);
    // Once decided, longer input keeps the decision.
    expect(detectProtocol(Buffer.concat([bytes, Buffer.alloc(32, 0x41)]))).toBe(expected);
  });

  test('nothing yet → need-more', () => {
    expect(detectProtocol(Buffer.alloc(0))).toBe('need-more');
  });

  test('16 bytes of a plausible-looking but method-less token → unknown (the cap)', () => {
    expect(detectProtocol(latin1('ABCDEFGHIJKLMNO'))).toBe('need-more');
    expect(detectProtocol(latin1('ABCDEFGHIJKLMNOP'))).toBe('unknown');
  });

  test('a custom uwsgi allow-list is honoured for uwsgi-range first bytes', () => {
    const bytes = encodeUwsgiRequest([['QUERY_STRING', '']], { modifier1: 5 });
    expect(detectProtocol(bytes, { uwsgiModifiers: new Set([0]) })).toBe('unknown');
    expect(detectProtocol(bytes, { uwsgiModifiers: new Set([5]) })).toBe('uwsgi');
  });

  test('a custom allow-list cannot steal the FastCGI, SCGI or HTTP first bytes', () => {
    const all = new Set(Array.from({ length: 256 }, (_, k) => k));
    expect(detectProtocol(FCGI_BEGIN, { uwsgiModifiers: all })).toBe('fastcgi');
    expect(detectProtocol(SCGI_SPEC, { uwsgiModifiers: all })).toBe('scgi');
    expect(detectProtocol(HTTP_GET, { uwsgiModifiers: all })).toBe('http');
  });
});

describe('detectProtocol: properties', () => {
  const RESULTS = new Set(['http', 'fastcgi', 'scgi', 'uwsgi', 'unknown', 'need-more']);
  /** Bytes biased toward the interesting first bytes and small size fields. */
  const headBytes = fc
    .tuple(
      fc.constantFrom(0x00, 0x01, 0x05, 0x09, 0x0e, 0x1e, 0x16, 0x30, 0x31, 0x37, 0x39, 0x41, 0x47, 0x50, 0x5a, 0x61, 0x0d, 0xff),
      fc.array(
        fc.oneof(
          fc.integer({ min: 0, max: 255 }),
          fc.constantFrom(0x00, 0x01, 0x08, 0x09, 0x20, 0x3a, 0x43, 0x4f, 0x4e, 0x54, 0x5f),
        ),
        { maxLength: 40 },
      ),
    )
    .map(([first, tail]) => Uint8Array.from([first, ...tail]));

  test('random bytes: never throws, always one of the six results', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expect(RESULTS.has(detectProtocol(bytes))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  test(`never need-more once ${DETECT_MAX_BYTES} bytes are in`, () => {
    fc.assert(
      fc.property(headBytes, fc.uint8Array({ minLength: DETECT_MAX_BYTES, maxLength: DETECT_MAX_BYTES }), (a, b) => {
        const bytes = Buffer.concat([a, b]);
        expect(detectProtocol(bytes)).not.toBe('need-more');
      }),
      { numRuns: 2000 },
    );
  });

  test('a decision taken on a prefix holds for every longer prefix', () => {
    fc.assert(
      fc.property(headBytes, (bytes) => {
        const results = prefixResults(bytes);
        const first = results.findIndex((r) => r !== 'need-more');
        if (first === -1) return;
        expect(results.slice(first).every((r) => r === results[first])).toBe(true);
        expect(results.slice(0, first).every((r) => r === 'need-more')).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  test('every SCGI head from the encoder → scgi', () => {
    const name = fc.string({ unit: fc.constantFrom(...'ABCXYZ_09.-='), minLength: 1, maxLength: 12 });
    const value = fc.string({ maxLength: 30 }).map((s) => s.replace(/[\u0000\u0100-\uffff]/g, 'x'));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(name, value), { maxLength: 6 }).map((l) => l.filter(([n]) => n !== 'SCGI' && n !== 'CONTENT_LENGTH')),
        fc.nat({ max: 10_000_000 }),
        (headers, bodyLength) => {
          expect(detectProtocol(encodeScgiRequest(headers, bodyLength))).toBe('scgi');
        },
      ),
    );
  });

  test('every uwsgi request from the encoder with an allowed modifier1 and a printable first key → uwsgi', () => {
    const key = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 30 });
    fc.assert(
      fc.property(
        fc.constantFrom(...UWSGI_REQUEST_MODIFIERS),
        fc.integer({ min: 0, max: 255 }),
        fc.array(fc.tuple(key, fc.string({ maxLength: 20 }).map((s) => s.replace(/[\u0100-\uffff]/g, 'x'))), {
          minLength: 1,
          maxLength: 5,
        }),
        (modifier1, modifier2, vars) => {
          expect(detectProtocol(encodeUwsgiRequest(vars, { modifier1, modifier2 }))).toBe('uwsgi');
        },
      ),
    );
  });

  test('every FastCGI BEGIN_REQUEST (any id ≠ 0, role, flags) → fastcgi', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 65535 }), fc.nat({ max: 65535 }), fc.nat({ max: 255 }), (id, role, flags) => {
        const bytes = Buffer.alloc(16);
        bytes.set([1, 1]);
        bytes.writeUInt16BE(id, 2);
        bytes.writeUInt16BE(8, 4);
        bytes.writeUInt16BE(role, 8);
        bytes[10] = flags;
        expect(detectProtocol(bytes)).toBe('fastcgi');
      }),
    );
  });
});
