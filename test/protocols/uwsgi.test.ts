/**
 * uwsgi codec: the 54-byte vector of docs/conformance.md §4.1, every split point, the hostile
 * inputs of §4.3, the 65535-byte vars block and the U-7 helper.
 */
import { LimitError, ProtocolError } from '../../protocols/errors.js';
import {
  MAX_UWSGI_DATASIZE,
  Modifier1,
  UWSGI_REQUEST_MODIFIERS,
  UwsgiDecoder,
  UwsgiErrorCode,
  checkUwsgiVars,
  decodeUwsgiHead,
  decodeUwsgiVars,
  encodeUwsgiRequest,
  isUwsgiRequestModifier,
  stripScriptName,
} from '../../protocols/uwsgi/index.js';
import type { UwsgiDecoderOptions, UwsgiRequestHead } from '../../protocols/uwsgi/index.js';

const ascii = (text: string): number[] => [...Buffer.from(text, 'latin1')];
const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');

/** §4.1 worked bytes: REQUEST_METHOD=GET, PATH_INFO=/a, CONTENT_LENGTH="" (54 bytes of vars). */
const VECTOR_54 = Buffer.from([
  0x00, // modifier1 0 (WSGI)
  0x36, 0x00, // datasize LE16: 0x0036 = 54 (big-endian would be 13824)
  0x00, // modifier2 0
  0x0e, 0x00, ...ascii('REQUEST_METHOD'), // keysize 14, key
  0x03, 0x00, ...ascii('GET'), //            valsize 3, value        2+14+2+3 = 21
  0x09, 0x00, ...ascii('PATH_INFO'), //      keysize 9, key
  0x02, 0x00, ...ascii('/a'), //             valsize 2, value        2+9+2+2 = 15
  0x0e, 0x00, ...ascii('CONTENT_LENGTH'), // keysize 14, key
  0x00, 0x00, //                             valsize 0: empty value  2+14+2+0 = 18 → 54
]);
const VECTOR_VARS = [
  ['REQUEST_METHOD', 'GET'],
  ['PATH_INFO', '/a'],
  ['CONTENT_LENGTH', ''],
];

/** nginx `uwsgi_params` for `POST /app/x` with a 5-byte body and the mount idiom of §4.4. */
const NGINX_VARS: Array<[string, string]> = [
  ['QUERY_STRING', ''],
  ['REQUEST_METHOD', 'POST'],
  ['CONTENT_TYPE', 'text/plain'],
  ['CONTENT_LENGTH', '5'],
  ['REQUEST_URI', '/app/x'],
  ['PATH_INFO', '/app/x'],
  ['DOCUMENT_ROOT', '/usr/share/nginx/html'],
  ['SERVER_PROTOCOL', 'HTTP/1.1'],
  ['REQUEST_SCHEME', 'http'],
  ['REMOTE_ADDR', '127.0.0.1'],
  ['REMOTE_PORT', '50412'],
  ['SERVER_PORT', '8080'],
  ['SERVER_NAME', 'localhost'],
  ['SCRIPT_NAME', '/app'],
  ['HTTP_HOST', 'localhost:8080'],
];

interface Outcome {
  head: UwsgiRequestHead | undefined;
  after: Buffer;
}

function decodeInChunks(bytes: Buffer, cuts: number[], options?: UwsgiDecoderOptions): Outcome {
  const decoder = new UwsgiDecoder(options);
  const bounds = [0, ...cuts, bytes.length];
  for (let k = 0; k + 1 < bounds.length; k++) {
    const head = decoder.push(bytes.subarray(bounds[k], bounds[k + 1]));
    if (head !== undefined) return { head, after: Buffer.concat([head.rest, bytes.subarray(bounds[k + 1])]) };
  }
  return { head: undefined, after: Buffer.alloc(0) };
}

function summary(outcome: Outcome): unknown {
  const { head } = outcome;
  if (head === undefined) return undefined;
  const { rest: _rest, ...fields } = head;
  return { ...fields, after: outcome.after.toString('latin1') };
}

function caught(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    return err as ProtocolError;
  }
  throw new Error('expected a ProtocolError, nothing was thrown');
}

function expectCode(fn: () => unknown, code: string, cls: new (...args: never[]) => ProtocolError = ProtocolError): ProtocolError {
  const err = caught(fn);
  expect(err).toBeInstanceOf(cls);
  expect(err.code).toBe(code);
  expect(err.protocol).toBe('uwsgi');
  expect(err.message.startsWith('uwsgi: ')).toBe(true);
  if (cls === ProtocolError) expect(err).not.toBeInstanceOf(LimitError);
  return err;
}

/** A packet with a hand-written vars block and the given modifiers. */
function packet(vars: number[], modifier1 = 0, modifier2 = 0, datasize = vars.length): Buffer {
  return Buffer.from([modifier1, datasize & 0xff, datasize >> 8, modifier2, ...vars]);
}

/** keysize LE16 + key + valsize LE16 + value. */
function entry(key: string, value: string): number[] {
  return [key.length & 0xff, key.length >> 8, ...ascii(key), value.length & 0xff, value.length >> 8, ...ascii(value)];
}

/** A valid request whose vars block is exactly 65535 bytes (a big cookie, the U-3 case). */
function maxPacket(): Buffer {
  const fixed = 4 + 'CONTENT_LENGTH'.length + 1 + 4 + 'HTTP_COOKIE'.length;
  return encodeUwsgiRequest([
    ['CONTENT_LENGTH', '0'],
    ['HTTP_COOKIE', 'c'.repeat(MAX_UWSGI_DATASIZE - fixed)],
  ]);
}

describe('uwsgi golden vectors (§4.1)', () => {
  test('§4.1 54-byte vector: decodes header and vars', () => {
    const head = decodeUwsgiHead(VECTOR_54);
    expect(head).toBeDefined();
    expect(head?.modifier1).toBe(0);
    expect(head?.modifier2).toBe(0);
    expect(head?.datasize).toBe(54);
    expect(head?.vars).toEqual(VECTOR_VARS);
    expect(head?.contentLength).toBe(0);
    expect(head?.headBytes).toBe(58);
    expect(head?.rest.length).toBe(0);
  });

  test('§4.1 54-byte vector: encodeUwsgiRequest produces the exact bytes', () => {
    const bytes = encodeUwsgiRequest(VECTOR_VARS as Array<[string, string]>, { modifier1: 0, modifier2: 0 });
    expect(bytes.equals(VECTOR_54)).toBe(true);
  });

  test('§4.1 54-byte vector: decode → encode mirror', () => {
    const head = decodeUwsgiHead(VECTOR_54);
    if (head === undefined) throw new Error('the 54-byte vector did not decode');
    const again = encodeUwsgiRequest(head.vars, { modifier1: head.modifier1, modifier2: head.modifier2 });
    expect(again.equals(VECTOR_54)).toBe(true);
  });

  test('U-1 §4.3: datasize is little-endian ("36 00" = 54, not 13824)', () => {
    const decoder = new UwsgiDecoder();
    expect(decoder.push(VECTOR_54.subarray(0, 4))).toBeUndefined();
    expect(decoder.header).toEqual({ modifier1: 0, datasize: 54, modifier2: 0 });
    expect(decodeUwsgiHead(Buffer.from([0x00, 0x00, 0x01, 0x00]))).toBeUndefined(); // 256 bytes awaited
  });

  test('U-6: rest is the body start, a subarray of the chunk (no copy)', () => {
    const chunk = Buffer.concat([encodeUwsgiRequest(NGINX_VARS), latin1('hello')]);
    const head = new UwsgiDecoder().push(chunk);
    expect(head?.contentLength).toBe(5);
    expect(head?.rest.toString('latin1')).toBe('hello');
    expect(head?.rest.buffer).toBe(chunk.buffer);
    expect(head?.rest.byteOffset).toBe(chunk.byteOffset + chunk.length - 5);
  });

  test('§4.4 nginx uwsgi_params with modifier1 30: round trip keeps order and values', () => {
    const bytes = encodeUwsgiRequest(NGINX_VARS, { modifier1: Modifier1.WsgiPathInfo });
    expect(bytes[0]).toBe(30);
    const head = decodeUwsgiHead(bytes);
    expect(head?.modifier1).toBe(30);
    expect(head?.vars).toEqual(NGINX_VARS);
  });

  test('U-2: modifier2 is reported as received', () => {
    expect(decodeUwsgiHead(encodeUwsgiRequest([['A', 'b']], { modifier1: 5, modifier2: 7 }))).toMatchObject({
      modifier1: 5,
      modifier2: 7,
    });
  });
});

describe('uwsgi splits (§10: every offset, one byte at a time)', () => {
  const fixtures: Array<[string, Buffer]> = [
    ['54-byte vector', VECTOR_54],
    ['nginx vars + 5-byte body', Buffer.concat([encodeUwsgiRequest(NGINX_VARS), latin1('hello')])],
    ['54-byte vector + a second packet (never decoded)', Buffer.concat([VECTOR_54, VECTOR_54])],
    ['empty vars block + body', Buffer.from([0x00, 0x00, 0x00, 0x00, 0x41, 0x42])],
  ];

  test.each(fixtures)('%s: identical result when split at every single offset', (_name, bytes) => {
    const whole = summary(decodeInChunks(bytes, []));
    expect(whole).toBeDefined();
    for (let cut = 0; cut <= bytes.length; cut++) {
      expect(summary(decodeInChunks(bytes, [cut]))).toEqual(whole);
    }
  });

  test.each(fixtures)('%s: identical result when split at every pair of offsets', (_name, bytes) => {
    const whole = summary(decodeInChunks(bytes, []));
    for (let a = 0; a <= bytes.length; a++) {
      for (let b = a; b <= bytes.length; b++) {
        const got = summary(decodeInChunks(bytes, [a, b]));
        if (JSON.stringify(got) !== JSON.stringify(whole)) expect({ a, b, got }).toEqual({ a, b, got: whole });
      }
    }
  });

  test.each(fixtures)('%s: identical result fed one byte at a time', (_name, bytes) => {
    const cuts = Array.from({ length: bytes.length - 1 }, (_, k) => k + 1);
    expect(summary(decodeInChunks(bytes, cuts))).toEqual(summary(decodeInChunks(bytes, [])));
  });

  test('header split inside the LE16 datasize, then vars, then body', () => {
    const decoder = new UwsgiDecoder();
    expect(decoder.push(VECTOR_54.subarray(0, 2))).toBeUndefined();
    expect(decoder.header).toBeUndefined();
    expect(decoder.bufferedBytes).toBe(2);
    expect(decoder.push(VECTOR_54.subarray(2, 30))).toBeUndefined();
    expect(decoder.header?.datasize).toBe(54);
    expect(decoder.bufferedBytes).toBe(26);
    const head = decoder.push(Buffer.concat([VECTOR_54.subarray(30), latin1('body')]));
    expect(head?.vars).toEqual(VECTOR_VARS);
    expect(head?.rest.toString('latin1')).toBe('body');
    expect(decoder.bufferedBytes).toBe(0);
  });
});

describe('uwsgi modifier1 (U-2, §4.3)', () => {
  test('U-2: the allow-list is exactly 0, 5, 6, 7, 8, 9, 14, 15, 30', () => {
    expect([...UWSGI_REQUEST_MODIFIERS].sort((a, b) => a - b)).toEqual([0, 5, 6, 7, 8, 9, 14, 15, 30]);
    for (let m = 0; m < 256; m++) {
      expect(isUwsgiRequestModifier(m)).toBe([0, 5, 6, 7, 8, 9, 14, 15, 30].includes(m));
    }
  });

  test('U-2: a configurable allow-list replaces the default', () => {
    expect(isUwsgiRequestModifier(5, new Set([0]))).toBe(false);
    expect(isUwsgiRequestModifier(0, new Set([0]))).toBe(true);
  });

  test.each([
    ['raw code eval', Modifier1.Eval, 22],
    ['ping', Modifier1.Ping, 100],
    ['RPC', Modifier1.Rpc, 173],
  ])('U-2 §4.3: modifier1 %s (%d) is refused by the predicate and visible after 4 bytes', (_name, modifier1, value) => {
    expect(modifier1).toBe(value);
    expect(isUwsgiRequestModifier(modifier1)).toBe(false);
    // A front can close as soon as the header is in, before 65535 bytes of "code" are buffered.
    const decoder = new UwsgiDecoder();
    expect(decoder.push(Buffer.from([modifier1, 0xff, 0xff, 0x00, 0x41]))).toBeUndefined();
    expect(decoder.header).toEqual({ modifier1, datasize: 65535, modifier2: 0 });
  });

  test('U-2: the decoder itself reports a non-request modifier1 as is (policy belongs to the front)', () => {
    const head = decodeUwsgiHead(encodeUwsgiRequest([['A', 'b']], { modifier1: Modifier1.Eval }));
    expect(head?.modifier1).toBe(22);
    expect(head?.vars).toEqual([['A', 'b']]);
  });
});

  test('U-2: checkHeader sees the header before the datasize limit and any vars byte; its throw is sticky', () => {
    const packet = encodeUwsgiRequest([['A', 'b']], { modifier1: Modifier1.Eval });
    for (const split of [0, 1, 3, 4, 5]) {
      const seen: number[] = [];
      const decoder = new UwsgiDecoder({
        maxUwsgiPacketSize: 1, // the vars block is larger: the check must come first
        checkHeader: (h) => {
          seen.push(h.modifier1, h.datasize);
          if (h.modifier1 === Modifier1.Eval) throw new RangeError('refused type');
        },
      });
      const push = (): unknown => {
        if (split > 0) decoder.push(packet.subarray(0, split));
        return decoder.push(packet.subarray(split));
      };
      expect(push).toThrow('refused type');
      expect(seen).toEqual([22, packet.length - 4]);
      expect(() => decoder.push(Buffer.from('x'))).toThrow('refused type');
      expect(decoder.state).toBe('failed');
    }
    // An accepted header: the head decodes as without the hook.
    const ok = new UwsgiDecoder({ checkHeader: () => undefined });
    expect(ok.push(encodeUwsgiRequest([['A', 'b']]))?.vars).toEqual([['A', 'b']]);
  });

describe('uwsgi vars block (U-3, U-4, §4.3)', () => {
  test('U-3 §4.3: datasize 65535 of valid vars accepted with default options', () => {
    const bytes = maxPacket();
    expect(bytes.readUInt16LE(1)).toBe(65535);
    expect(bytes.length).toBe(4 + 65535);
    const head = decodeUwsgiHead(Buffer.concat([bytes, latin1('tail')]));
    expect(head?.datasize).toBe(65535);
    expect(head?.vars[1]?.[1]).toHaveLength(65535 - 34);
    expect(head?.rest.toString('latin1')).toBe('tail');
  });

  test('U-3: the 65535-byte packet gives identical results fed one byte at a time and at sampled splits', () => {
    const bytes = maxPacket();
    const whole = summary(decodeInChunks(bytes, []));
    const oneByOne = Array.from({ length: bytes.length - 1 }, (_, k) => k + 1);
    expect(summary(decodeInChunks(bytes, oneByOne))).toEqual(whole);
    for (const cut of [0, 1, 2, 3, 4, 5, 6, 20, 21, 22, 23, 24, 25, 1000, 65537, 65538, 65539]) {
      expect(summary(decodeInChunks(bytes, [cut]))).toEqual(whole);
    }
  });

  test('U-4 §4.3: keysize 0 → UWSGI_EMPTY_KEY', () => {
    const err = expectCode(() => decodeUwsgiHead(packet([...entry('A', 'b'), 0x00, 0x00, 0x01, 0x00, 0x78])), UwsgiErrorCode.EmptyKey);
    expect(err.message).toContain('offset 6');
  });

  test('U-4 §4.3: last entry value length runs past datasize → UWSGI_TRUNCATED_VAR', () => {
    const vars = [...entry('REQUEST_METHOD', 'GET'), 0x09, 0x00, ...ascii('PATH_INFO'), 0x05, 0x00, ...ascii('/a')];
    const err = expectCode(() => decodeUwsgiHead(packet(vars)), UwsgiErrorCode.TruncatedVar);
    expect(err.message).toContain('PATH_INFO');
    expect(err.message).toContain('3 bytes past');
  });

  test('U-4: key runs past datasize → UWSGI_TRUNCATED_VAR', () => {
    expectCode(() => decodeUwsgiHead(packet([0x10, 0x00, ...ascii('SHORT')])), UwsgiErrorCode.TruncatedVar);
  });

  test('U-4: a lone trailing byte where a key size belongs → UWSGI_TRUNCATED_VAR', () => {
    expectCode(() => decodeUwsgiHead(packet([...entry('A', 'b'), 0x01])), UwsgiErrorCode.TruncatedVar);
  });

  test('U-4: key without its value size → UWSGI_TRUNCATED_VAR', () => {
    expectCode(() => decodeUwsgiHead(packet([0x01, 0x00, 0x41, 0x00])), UwsgiErrorCode.TruncatedVar);
  });

  test('U-4: empty values are legal; an empty vars block is an empty list', () => {
    expect(decodeUwsgiHead(packet(entry('HTTPS', '')))?.vars).toEqual([['HTTPS', '']]);
    expect(decodeUwsgiHead(packet([]))?.vars).toEqual([]);
    expect(decodeUwsgiVars(Buffer.alloc(0))).toEqual([]);
  });

  test('U-4: the block is consumed exactly, a size field never reads beyond datasize', () => {
    // datasize says 4, the bytes after it would complete the entry: they are body, not vars.
    const bytes = Buffer.from([0x00, 0x04, 0x00, 0x00, 0x01, 0x00, 0x41, 0x01, 0x00, 0x42]);
    expectCode(() => decodeUwsgiHead(bytes), UwsgiErrorCode.TruncatedVar);
  });

  test('U-5: duplicates and odd names are reported in wire order for the environ to merge or drop', () => {
    const head = decodeUwsgiHead(
      packet([...entry('HTTP_COOKIE', 'a=1'), ...entry('HTTP_COOKIE', 'b=2'), ...entry('A\0B', 'x'), ...entry('a.b', 'y')]),
    );
    expect(head?.vars).toEqual([
      ['HTTP_COOKIE', 'a=1'],
      ['HTTP_COOKIE', 'b=2'],
      ['A\0B', 'x'],
      ['a.b', 'y'],
    ]);
  });

  test('U-10 §4.3: UWSGI_FILE=/tmp/x.py is just a var: reported raw, nothing else happens', () => {
    const head = decodeUwsgiHead(packet(entry('UWSGI_FILE', '/tmp/x.py')));
    expect(head?.vars).toEqual([['UWSGI_FILE', '/tmp/x.py']]);
    expect(head?.contentLength).toBe(0);
  });

  test('U-11: keys and values are latin1, one char per byte', () => {
    const vars = [0x06, 0x00, ...ascii('HTTP_X'), 0x03, 0x00, 0xc3, 0xa9, 0xff];
    expect(decodeUwsgiHead(packet(vars))?.vars).toEqual([['HTTP_X', '\u00c3\u00a9\u00ff']]);
  });

  test('U-4: EOF inside the header or the vars → UWSGI_TRUNCATED_HEAD; before any byte → silent', () => {
    expect(() => new UwsgiDecoder().end()).not.toThrow();
    const inHeader = new UwsgiDecoder();
    inHeader.push(VECTOR_54.subarray(0, 3));
    expect(expectCode(() => inHeader.end(), UwsgiErrorCode.TruncatedHead).message).toContain('3 of 4');
    const inVars = new UwsgiDecoder();
    inVars.push(VECTOR_54.subarray(0, 14));
    expect(expectCode(() => inVars.end(), UwsgiErrorCode.TruncatedHead).message).toContain('10 of 54');
    const done = new UwsgiDecoder();
    done.push(VECTOR_54);
    expect(() => done.end()).not.toThrow();
  });

  test('errors are sticky and push after the head is a caller bug', () => {
    const failed = new UwsgiDecoder();
    const first = caught(() => failed.push(packet([0x00, 0x00])));
    expect(caught(() => failed.push(VECTOR_54))).toBe(first);
    expect(failed.state).toBe('failed');
    const done = new UwsgiDecoder();
    done.push(Buffer.concat([VECTOR_54, VECTOR_54]));
    expect(() => done.push(VECTOR_54)).toThrow(/after the request head was decoded/);
  });
});

describe('uwsgi CONTENT_LENGTH (U-6, §4.3)', () => {
  test('U-6 §4.3: CONTENT_LENGTH "12abc" → UWSGI_BAD_CONTENT_LENGTH (uWSGI would read 12)', () => {
    const err = expectCode(() => decodeUwsgiHead(packet(entry('CONTENT_LENGTH', '12abc'))), UwsgiErrorCode.BadContentLength);
    expect(err.message).toContain('"12abc"');
  });

  test('U-6: absent or empty CONTENT_LENGTH → 0 (no body); "5" → 5', () => {
    expect(decodeUwsgiHead(packet(entry('A', 'b')))?.contentLength).toBe(0);
    expect(decodeUwsgiHead(packet(entry('CONTENT_LENGTH', '')))?.contentLength).toBe(0);
    expect(decodeUwsgiHead(packet(entry('CONTENT_LENGTH', '5')))?.contentLength).toBe(5);
  });

  test('U-6: "-1", " 5", "0x10" → UWSGI_BAD_CONTENT_LENGTH', () => {
    for (const value of ['-1', ' 5', '0x10']) {
      expectCode(() => decodeUwsgiHead(packet(entry('CONTENT_LENGTH', value))), UwsgiErrorCode.BadContentLength);
    }
  });

  test('U-5/U-6 policy: equal duplicate CONTENT_LENGTH accepted, different ones → UWSGI_DUPLICATE_CONTENT_LENGTH', () => {
    expect(decodeUwsgiHead(packet([...entry('CONTENT_LENGTH', '5'), ...entry('CONTENT_LENGTH', '5')]))?.contentLength).toBe(5);
    expectCode(
      () => decodeUwsgiHead(packet([...entry('CONTENT_LENGTH', '5'), ...entry('CONTENT_LENGTH', '50')])),
      UwsgiErrorCode.DuplicateContentLength,
    );
    expectCode(
      () => decodeUwsgiHead(packet([...entry('CONTENT_LENGTH', ''), ...entry('CONTENT_LENGTH', '3')])),
      UwsgiErrorCode.DuplicateContentLength,
    );
  });

  test('U-6: CONTENT_LENGTH above maxBodyBytes → LimitError UWSGI_BODY_TOO_LARGE; at the limit accepted', () => {
    expect(decodeUwsgiHead(packet(entry('CONTENT_LENGTH', '100')), { maxBodyBytes: 100 })?.contentLength).toBe(100);
    const err = expectCode(
      () => decodeUwsgiHead(packet(entry('CONTENT_LENGTH', '101')), { maxBodyBytes: 100 }),
      UwsgiErrorCode.BodyTooLarge,
      LimitError,
    );
    expect((err as LimitError).limit).toBe('maxBodyBytes');
    expectCode(() => checkUwsgiVars([['CONTENT_LENGTH', '9'.repeat(30)]]), UwsgiErrorCode.BodyTooLarge, LimitError);
  });
});

describe('uwsgi limits (U-3, §9)', () => {
  test('§9 maxUwsgiPacketSize: datasize above a configured cap → LimitError right after the 4-byte header', () => {
    const decoder = new UwsgiDecoder({ maxUwsgiPacketSize: 4096 });
    const err = expectCode(
      () => decoder.push(Buffer.from([0x00, 0x01, 0x10, 0x00])), // datasize 0x1001 = 4097
      UwsgiErrorCode.VarsTooLarge,
      LimitError,
    );
    expect((err as LimitError).limit).toBe('maxUwsgiPacketSize');
    expect(err.message).toContain('4097');
    expect(decoder.header?.datasize).toBe(4097);
    expect(decoder.bufferedBytes).toBe(0);
  });

  test('§9 maxUwsgiPacketSize: datasize exactly at the cap accepted', () => {
    const bytes = encodeUwsgiRequest([['X', 'y'.repeat(4096 - 5)]]);
    expect(bytes.readUInt16LE(1)).toBe(4096);
    expect(decodeUwsgiHead(bytes, { maxUwsgiPacketSize: 4096 })?.vars[0]?.[1]).toHaveLength(4091);
  });

  test('invalid limit options are a RangeError at construction', () => {
    expect(() => new UwsgiDecoder({ maxUwsgiPacketSize: 65536 })).toThrow(RangeError);
    expect(() => new UwsgiDecoder({ maxBodyBytes: -5 })).toThrow(RangeError);
    expect(new UwsgiDecoder().maxUwsgiPacketSize).toBe(65535);
  });
});

describe('uwsgi encoder input checks', () => {
  test('empty key or a char above U+00FF → UWSGI_ENCODE_INVALID', () => {
    expectCode(() => encodeUwsgiRequest([['', 'x']]), UwsgiErrorCode.EncodeInvalid);
    expectCode(() => encodeUwsgiRequest([['A', '\u20ac']]), UwsgiErrorCode.EncodeInvalid);
  });

  test('modifier outside 0..255 or fractional → UWSGI_ENCODE_INVALID', () => {
    expectCode(() => encodeUwsgiRequest([], { modifier1: 256 }), UwsgiErrorCode.EncodeInvalid);
    expectCode(() => encodeUwsgiRequest([], { modifier2: -1 }), UwsgiErrorCode.EncodeInvalid);
    expectCode(() => encodeUwsgiRequest([], { modifier1: 1.5 }), UwsgiErrorCode.EncodeInvalid);
  });

  test('vars block of 65536 bytes → LimitError UWSGI_ENCODE_TOO_LARGE; 65535 fits', () => {
    expect(encodeUwsgiRequest([['X', 'y'.repeat(65535 - 5)]]).length).toBe(65539);
    expectCode(() => encodeUwsgiRequest([['X', 'y'.repeat(65535 - 4)]]), UwsgiErrorCode.EncodeTooLarge, LimitError);
    expectCode(() => encodeUwsgiRequest([['X', 'y'.repeat(70000)]]), UwsgiErrorCode.EncodeTooLarge, LimitError);
  });

  test('NUL is allowed in keys and values (length-prefixed) and round-trips', () => {
    const vars: Array<[string, string]> = [['A\0', '\0b']];
    expect(decodeUwsgiHead(encodeUwsgiRequest(vars))?.vars).toEqual(vars);
  });
});

describe('U-7: modifier1 30 strips SCRIPT_NAME from PATH_INFO on a segment boundary', () => {
  test.each([
    ['/app', '/app/x', '/x', 'stripped'],
    ['/app', '/app/', '/', 'stripped'],
    ['/app', '/app', '', 'stripped'],
    ['/app/', '/app/x', '/x', 'stripped'],
    ['/a/b', '/a/b/c/d', '/c/d', 'stripped'],
    ['/app', '/other', '/other', 'not-a-prefix'],
    ['/app', '/application', '/application', 'not-a-prefix'],
    ['/app', '/ap', '/ap', 'not-a-prefix'],
    ['/app', '', '', 'not-a-prefix'],
    ['', '/x', '/x', 'no-script-name'],
    ['/', '/x', '/x', 'no-script-name'],
  ])('SCRIPT_NAME %j, PATH_INFO %j → %j (%s)', (scriptName, pathInfo, expected, outcome) => {
    expect(stripScriptName(scriptName, pathInfo)).toEqual({ pathInfo: expected, outcome });
  });

  test('§4.3: SCRIPT_NAME /app, PATH_INFO /other, modifier1 30 → PATH_INFO stays /other', () => {
    const head = decodeUwsgiHead(
      encodeUwsgiRequest(
        [
          ['SCRIPT_NAME', '/app'],
          ['PATH_INFO', '/other'],
        ],
        { modifier1: Modifier1.WsgiPathInfo },
      ),
    );
    expect(head?.modifier1).toBe(30);
    const vars = Object.fromEntries(head?.vars ?? []);
    expect(stripScriptName(vars.SCRIPT_NAME ?? '', vars.PATH_INFO ?? '')).toEqual({
      pathInfo: '/other',
      outcome: 'not-a-prefix',
    });
  });
});
