/**
 * SCGI codec: golden bytes of docs/conformance.md §3.1, every split point, the hostile inputs
 * of §3.3 and the limits of §9.
 */
import { LimitError, ProtocolError } from '../../protocols/errors.js';
import {
  DEFAULT_MAX_NETSTRING_LENGTH,
  ScgiDecoder,
  ScgiErrorCode,
  checkScgiHeaders,
  decodeScgiHead,
  decodeScgiHeaderBlock,
  encodeScgiRequest,
} from '../../protocols/scgi/index.js';
import type { ScgiDecoderOptions, ScgiRequestHead } from '../../protocols/scgi/index.js';

const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');

/** §3.1, the example of the SCGI protocol text: a 70-byte header block, then a 27-byte body. */
const SPEC_HEAD = Buffer.concat([
  latin1('70:'), // netstring length prefix: 70 bytes of headers follow, then ","
  latin1('CONTENT_LENGTH\0'), // header 1 name (15 bytes with NUL)
  latin1('27\0'), //             header 1 value: body length (3)
  latin1('SCGI\0'), //           header 2 name (5)
  latin1('1\0'), //              header 2 value: protocol marker (2)
  latin1('REQUEST_METHOD\0'), // header 3 name (15)
  latin1('POST\0'), //           header 3 value (5)
  latin1('REQUEST_URI\0'), //    header 4 name (12)
  latin1('/deepthought\0'), //   header 4 value (13)   15+3+5+2+15+5+12+13 = 70
  latin1(','), // netstring terminator
]);
const SPEC_BODY = latin1('What is the answer to life?'); // 27 bytes
const SPEC_REQUEST = Buffer.concat([SPEC_HEAD, SPEC_BODY]);
const SPEC_HEADERS = [
  ['CONTENT_LENGTH', '27'],
  ['SCGI', '1'],
  ['REQUEST_METHOD', 'POST'],
  ['REQUEST_URI', '/deepthought'],
];

/** What nginx sends for `GET /x?y=1` with `include scgi_params` (§3.4): CONTENT_TYPE empty. */
const NGINX_HEADERS: Array<[string, string]> = [
  ['REQUEST_METHOD', 'GET'],
  ['REQUEST_URI', '/x?y=1'],
  ['QUERY_STRING', 'y=1'],
  ['CONTENT_TYPE', ''],
  ['DOCUMENT_URI', '/x'],
  ['DOCUMENT_ROOT', '/usr/share/nginx/html'],
  ['SCGI', '1'],
  ['SERVER_PROTOCOL', 'HTTP/1.1'],
  ['REQUEST_SCHEME', 'http'],
  ['REMOTE_ADDR', '127.0.0.1'],
  ['REMOTE_PORT', '50412'],
  ['SERVER_PORT', '8080'],
  ['SERVER_NAME', 'localhost'],
  ['HTTP_HOST', 'localhost:8080'],
  ['HTTP_USER_AGENT', 'curl/7.88.1'],
  ['HTTP_ACCEPT', '*/*'],
];

interface Outcome {
  head: ScgiRequestHead | undefined;
  /** `rest` of the head followed by every chunk that was not pushed: what the front reads next. */
  after: Buffer;
}

/** Pushes `bytes` cut at `cuts` until the decoder returns a head. */
function decodeInChunks(bytes: Buffer, cuts: number[], options?: ScgiDecoderOptions): Outcome {
  const decoder = new ScgiDecoder(options);
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
  return {
    headers: head.headers,
    contentLength: head.contentLength,
    hasScgiMarker: head.hasScgiMarker,
    headBytes: head.headBytes,
    after: outcome.after.toString('latin1'),
  };
}

/** Runs `fn` and returns the ProtocolError it throws (failing the test otherwise). */
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
  expect(err.protocol).toBe('scgi');
  expect(err.message.startsWith('scgi: ')).toBe(true);
  if (cls === ProtocolError) expect(err).not.toBeInstanceOf(LimitError);
  return err;
}

/** A head built by hand from raw header-block text (NULs included) and a length prefix. */
function netstring(block: string, prefix = String(Buffer.byteLength(block, 'latin1')), comma = ','): Buffer {
  return latin1(`${prefix}:${block}${comma}`);
}

describe('SCGI golden vectors (§3.1)', () => {
  test('§3.1 spec example: decodes the 70-byte header block and leaves the body in rest', () => {
    const head = decodeScgiHead(SPEC_REQUEST);
    expect(head).toBeDefined();
    expect(head?.headers).toEqual(SPEC_HEADERS);
    expect(head?.contentLength).toBe(27);
    expect(head?.hasScgiMarker).toBe(true);
    expect(head?.headBytes).toBe(SPEC_HEAD.length);
    expect(head?.headBytes).toBe(3 + 70 + 1);
    expect(head?.rest.toString('latin1')).toBe('What is the answer to life?');
  });

  test('§3.1 spec example: encodeScgiRequest produces the exact bytes', () => {
    const bytes = encodeScgiRequest(
      [
        ['REQUEST_METHOD', 'POST'],
        ['REQUEST_URI', '/deepthought'],
      ],
      27,
    );
    expect(bytes.equals(SPEC_HEAD)).toBe(true);
  });

  test('§3.1 spec example: decode → encode mirror gives the same bytes back', () => {
    const head = decodeScgiHead(SPEC_HEAD);
    expect(head).toBeDefined();
    const rest = (head?.headers ?? []).filter(([name]) => name !== 'CONTENT_LENGTH');
    expect(encodeScgiRequest(rest, head?.contentLength ?? -1).equals(SPEC_HEAD)).toBe(true);
  });

  test('S-7: rest is a subarray of the pushed chunk (no copy) starting right after the comma', () => {
    const chunk = Buffer.from(SPEC_REQUEST);
    const head = new ScgiDecoder().push(chunk);
    expect(head?.rest.buffer).toBe(chunk.buffer);
    expect(head?.rest.byteOffset).toBe(chunk.byteOffset + SPEC_HEAD.length);
    expect(head?.rest.length).toBe(27);
  });

  test('§3.4 nginx scgi_params head: round trip with CONTENT_LENGTH 0 and empty CONTENT_TYPE', () => {
    const bytes = encodeScgiRequest(NGINX_HEADERS, 0);
    expect(bytes.subarray(0, 23).toString('latin1')).toMatch(/^\d+:CONTENT_LENGTH\x000\x00/);
    const head = decodeScgiHead(bytes);
    expect(head?.headers).toEqual([['CONTENT_LENGTH', '0'], ...NGINX_HEADERS]);
    expect(head?.contentLength).toBe(0);
    expect(head?.rest.length).toBe(0);
  });

  test('S-5: encoder inserts SCGI=1 second (Apache/nginx order) when the list lacks it', () => {
    const head = decodeScgiHead(encodeScgiRequest([['REQUEST_METHOD', 'GET']], 5));
    expect(head?.headers).toEqual([
      ['CONTENT_LENGTH', '5'],
      ['SCGI', '1'],
      ['REQUEST_METHOD', 'GET'],
    ]);
  });
});

describe('SCGI splits (§10: every offset, one byte at a time)', () => {
  const fixtures: Array<[string, Buffer]> = [
    ['spec example + body', SPEC_REQUEST],
    ['nginx head, no body', encodeScgiRequest(NGINX_HEADERS, 0)],
    ['spec example + body + pipelined second request', Buffer.concat([SPEC_REQUEST, SPEC_HEAD])],
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

  test('one byte at a time: undefined until the comma, then the head with an empty rest', () => {
    const decoder = new ScgiDecoder();
    for (let k = 0; k < SPEC_HEAD.length - 1; k++) {
      expect(decoder.push(SPEC_HEAD.subarray(k, k + 1))).toBeUndefined();
    }
    const head = decoder.push(SPEC_HEAD.subarray(SPEC_HEAD.length - 1));
    expect(head?.headers).toEqual(SPEC_HEADERS);
    expect(head?.rest.length).toBe(0);
    expect(decoder.state).toBe('done');
  });

  test('empty chunks are harmless in every state', () => {
    const decoder = new ScgiDecoder();
    expect(decoder.push(Buffer.alloc(0))).toBeUndefined();
    expect(decoder.push(SPEC_HEAD.subarray(0, 2))).toBeUndefined();
    expect(decoder.push(Buffer.alloc(0))).toBeUndefined();
    expect(decoder.push(SPEC_HEAD.subarray(2, 40))).toBeUndefined();
    expect(decoder.push(Buffer.alloc(0))).toBeUndefined();
    expect(decoder.push(SPEC_HEAD.subarray(40))?.headers).toEqual(SPEC_HEADERS);
  });

  test('bufferedBytes counts the held header-block bytes and drops to 0 when done', () => {
    const decoder = new ScgiDecoder();
    decoder.push(SPEC_HEAD.subarray(0, 3)); // "70:"
    expect(decoder.bufferedBytes).toBe(0);
    decoder.push(SPEC_HEAD.subarray(3, 50));
    expect(decoder.bufferedBytes).toBe(47);
    decoder.push(SPEC_HEAD.subarray(50));
    expect(decoder.bufferedBytes).toBe(0);
  });
});

describe('SCGI length prefix (S-1, §3.3)', () => {
  test('S-1 §3.3: "070:" (leading zero) → SCGI_LEADING_ZERO quoting the prefix', () => {
    const err = expectCode(() => decodeScgiHead(netstring('CONTENT_LENGTH\x000\x00', '017')), ScgiErrorCode.LeadingZero);
    expect(err.message).toContain('"01"');
    expectCode(() => decodeScgiHead(latin1('070:')), ScgiErrorCode.LeadingZero);
  });

  test('S-1 §3.3: "+70:" (sign) → SCGI_BAD_LENGTH', () => {
    const err = expectCode(() => decodeScgiHead(latin1('+70:')), ScgiErrorCode.BadLength);
    expect(err.message).toContain('"+"');
  });

  test('S-1 §3.3: " 70:" (leading space) → SCGI_BAD_LENGTH', () => {
    expectCode(() => decodeScgiHead(latin1(' 70:')), ScgiErrorCode.BadLength);
  });

  test('S-1 §3.3: "70x" → SCGI_BAD_LENGTH quoting "70x"', () => {
    const err = expectCode(() => decodeScgiHead(latin1('70x')), ScgiErrorCode.BadLength);
    expect(err.message).toContain('"70x"');
  });

  test('S-1: "70 :" (space before the colon) → SCGI_BAD_LENGTH', () => {
    expectCode(() => decodeScgiHead(latin1('70 :')), ScgiErrorCode.BadLength);
  });

  test('S-1: ":" with no digits → SCGI_BAD_LENGTH', () => {
    expectCode(() => decodeScgiHead(latin1(':CONTENT_LENGTH')), ScgiErrorCode.BadLength);
  });

  test('S-1: a non-ASCII byte in the prefix is quoted as hex', () => {
    const err = expectCode(() => decodeScgiHead(Buffer.from([0x37, 0xff])), ScgiErrorCode.BadLength);
    expect(err.message).toContain('7\\xff');
  });

  test('S-1: "0:," is a legal netstring (a lone 0 is not a leading zero) but lacks CONTENT_LENGTH (S-4)', () => {
    expectCode(() => decodeScgiHead(latin1('0:,')), ScgiErrorCode.MissingContentLength);
  });

  test('S-1 §3.3: "99999999999:" → LimitError before the colon, nothing buffered', () => {
    const decoder = new ScgiDecoder();
    const err = expectCode(() => decoder.push(latin1('99999999999:')), ScgiErrorCode.HeadTooLarge, LimitError);
    expect((err as LimitError).limit).toBe('maxNetstringLength');
    expect(decoder.bufferedBytes).toBe(0);
    // Byte by byte: the 7th digit (9_999_999 > 1 MiB) is the one that fails.
    const slow = new ScgiDecoder();
    for (const b of latin1('999999')) expect(slow.push(Buffer.of(b))).toBeUndefined();
    expectCode(() => slow.push(latin1('9')), ScgiErrorCode.HeadTooLarge, LimitError);
  });

  test('S-1: an 8th digit is refused even with the largest allowed maxNetstringLength', () => {
    const decoder = new ScgiDecoder({ maxNetstringLength: 9_999_999 });
    expect(decoder.push(latin1('9999999'))).toBeUndefined();
    expectCode(() => decoder.push(latin1('9')), ScgiErrorCode.HeadTooLarge, LimitError);
    expectCode(() => decodeScgiHead(latin1('10000000:'), { maxNetstringLength: 9_999_999 }), ScgiErrorCode.HeadTooLarge, LimitError);
  });

  test('S-1: EOF before the first byte is silent; EOF in the prefix → SCGI_TRUNCATED_HEAD', () => {
    const idle = new ScgiDecoder();
    expect(() => idle.end()).not.toThrow();
    const partial = new ScgiDecoder();
    partial.push(latin1('70'));
    const err = expectCode(() => partial.end(), ScgiErrorCode.TruncatedHead);
    expect(err.message).toContain('"70"');
    expect(partial.state).toBe('failed');
  });
});

describe('SCGI header block (S-2, S-3, §3.3)', () => {
  test('S-2 §3.3: N bytes then ";" instead of "," → SCGI_MISSING_COMMA', () => {
    const bad = Buffer.from(SPEC_HEAD);
    bad[bad.length - 1] = 0x3b; // ';'
    const err = expectCode(() => decodeScgiHead(bad), ScgiErrorCode.MissingComma);
    expect(err.message).toContain('";"');
  });

  test('S-2: a length prefix one too small puts a NUL where the comma belongs → SCGI_MISSING_COMMA', () => {
    expectCode(() => decodeScgiHead(netstring('CONTENT_LENGTH\x000\x00', '16')), ScgiErrorCode.MissingComma);
  });

  test('S-2: a missing comma is detected with the comma byte alone in its own chunk', () => {
    const decoder = new ScgiDecoder();
    const bad = netstring('CONTENT_LENGTH\x000\x00', undefined, 'X');
    expect(decoder.push(bad.subarray(0, bad.length - 1))).toBeUndefined();
    expectCode(() => decoder.push(bad.subarray(bad.length - 1)), ScgiErrorCode.MissingComma);
  });

  test('S-2: EOF inside the header block → SCGI_TRUNCATED_HEAD with the byte count', () => {
    const decoder = new ScgiDecoder();
    decoder.push(SPEC_HEAD.subarray(0, 13));
    const err = expectCode(() => decoder.end(), ScgiErrorCode.TruncatedHead);
    expect(err.message).toContain('10 of 70');
  });

  test('S-3 §3.3: header block without trailing NUL → SCGI_UNTERMINATED_HEADERS', () => {
    expectCode(() => decodeScgiHead(netstring('CONTENT_LENGTH\x000\x00SCGI\x001')), ScgiErrorCode.Unterminated);
  });

  test('S-3 §3.3: odd string count (a name without value) → SCGI_ODD_STRING_COUNT naming it', () => {
    const err = expectCode(
      () => decodeScgiHead(netstring('CONTENT_LENGTH\x000\x00REQUEST_METHOD\x00')),
      ScgiErrorCode.OddStrings,
    );
    expect(err.message).toContain('REQUEST_METHOD');
  });

  test('S-3: empty name → SCGI_EMPTY_NAME', () => {
    expectCode(() => decodeScgiHead(netstring('CONTENT_LENGTH\x000\x00\x00value\x00')), ScgiErrorCode.EmptyName);
    expectCode(() => decodeScgiHeaderBlock(latin1('\x00')), ScgiErrorCode.EmptyName);
  });

  test('S-3: empty values are legal (nginx sends CONTENT_TYPE "")', () => {
    const head = decodeScgiHead(netstring('CONTENT_LENGTH\x000\x00CONTENT_TYPE\x00\x00HTTPS\x00\x00'));
    expect(head?.headers).toEqual([
      ['CONTENT_LENGTH', '0'],
      ['CONTENT_TYPE', ''],
      ['HTTPS', ''],
    ]);
  });

  test('S-3: decodeScgiHeaderBlock of an empty block is an empty list', () => {
    expect(decodeScgiHeaderBlock(Buffer.alloc(0))).toEqual([]);
  });

  test('S-12: names and values are latin1, one char per byte, never UTF-8', () => {
    const block = Buffer.concat([latin1('CONTENT_LENGTH\x000\x00HTTP_X\x00'), Buffer.from([0xc3, 0xa9, 0xff, 0x00])]);
    const head = decodeScgiHead(Buffer.concat([latin1(`${block.length}:`), block, latin1(',')]));
    const value = head?.headers[1]?.[1];
    expect(value).toBe('\u00c3\u00a9\u00ff');
    expect(value).toHaveLength(3);
  });
});

describe('SCGI CONTENT_LENGTH and SCGI marker (S-4, S-5, §3.3)', () => {
  test('S-4 §3.3: CONTENT_LENGTH "" → SCGI_BAD_CONTENT_LENGTH', () => {
    expectCode(() => decodeScgiHead(netstring('CONTENT_LENGTH\x00\x00SCGI\x001\x00')), ScgiErrorCode.BadContentLength);
  });

  test('S-4 §3.3: CONTENT_LENGTH "1e3" → SCGI_BAD_CONTENT_LENGTH quoting the value', () => {
    const err = expectCode(
      () => decodeScgiHead(netstring('CONTENT_LENGTH\x001e3\x00SCGI\x001\x00')),
      ScgiErrorCode.BadContentLength,
    );
    expect(err.message).toContain('"1e3"');
  });

  test('S-4 §3.3: CONTENT_LENGTH "-1" → SCGI_BAD_CONTENT_LENGTH', () => {
    expectCode(() => decodeScgiHead(netstring('CONTENT_LENGTH\x00-1\x00SCGI\x001\x00')), ScgiErrorCode.BadContentLength);
  });

  test('S-4: CONTENT_LENGTH " 5" and "+5" → SCGI_BAD_CONTENT_LENGTH', () => {
    expectCode(() => decodeScgiHead(netstring('CONTENT_LENGTH\x00 5\x00')), ScgiErrorCode.BadContentLength);
    expectCode(() => decodeScgiHead(netstring('CONTENT_LENGTH\x00+5\x00')), ScgiErrorCode.BadContentLength);
  });

  test('S-4: missing CONTENT_LENGTH → SCGI_MISSING_CONTENT_LENGTH', () => {
    expectCode(() => decodeScgiHead(netstring('SCGI\x001\x00REQUEST_METHOD\x00GET\x00')), ScgiErrorCode.MissingContentLength);
  });

  test('S-4: two CONTENT_LENGTH headers → SCGI_DUPLICATE_CONTENT_LENGTH, even when equal', () => {
    expectCode(
      () => decodeScgiHead(netstring('CONTENT_LENGTH\x005\x00CONTENT_LENGTH\x007\x00')),
      ScgiErrorCode.DuplicateContentLength,
    );
    expectCode(
      () => decodeScgiHead(netstring('CONTENT_LENGTH\x005\x00CONTENT_LENGTH\x005\x00')),
      ScgiErrorCode.DuplicateContentLength,
    );
  });

  test('S-4 policy: CONTENT_LENGTH accepted in any position', () => {
    const head = decodeScgiHead(netstring('SCGI\x001\x00REQUEST_METHOD\x00PUT\x00CONTENT_LENGTH\x0012\x00'));
    expect(head?.contentLength).toBe(12);
    expect(head?.headers[2]).toEqual(['CONTENT_LENGTH', '12']);
  });

  test('S-4: CONTENT_LENGTH above maxBodyBytes → LimitError SCGI_BODY_TOO_LARGE; at the limit → accepted', () => {
    const at = decodeScgiHead(netstring('CONTENT_LENGTH\x001000\x00'), { maxBodyBytes: 1000 });
    expect(at?.contentLength).toBe(1000);
    const err = expectCode(
      () => decodeScgiHead(netstring('CONTENT_LENGTH\x001001\x00'), { maxBodyBytes: 1000 }),
      ScgiErrorCode.BodyTooLarge,
      LimitError,
    );
    expect((err as LimitError).limit).toBe('maxBodyBytes');
  });

  test('S-4: a CONTENT_LENGTH beyond 2^53 is a LimitError, not an imprecise number', () => {
    expectCode(
      () => decodeScgiHead(netstring('CONTENT_LENGTH\x0099999999999999999999\x00')),
      ScgiErrorCode.BodyTooLarge,
      LimitError,
    );
  });

  test('S-4: CONTENT_LENGTH with leading zeros is still digits only: "007" → 7', () => {
    expect(decodeScgiHead(netstring('CONTENT_LENGTH\x00007\x00'))?.contentLength).toBe(7);
  });

  test('S-5: SCGI missing → accepted, hasScgiMarker false (front logs)', () => {
    const head = decodeScgiHead(netstring('CONTENT_LENGTH\x000\x00REQUEST_METHOD\x00GET\x00'));
    expect(head?.hasScgiMarker).toBe(false);
    expect(head?.headers).toHaveLength(2);
  });

  test('S-5 §10: SCGI "2" → SCGI_BAD_MARKER', () => {
    const err = expectCode(() => decodeScgiHead(netstring('CONTENT_LENGTH\x000\x00SCGI\x002\x00')), ScgiErrorCode.BadMarker);
    expect(err.message).toContain('"2"');
    expectCode(() => decodeScgiHead(netstring('CONTENT_LENGTH\x000\x00SCGI\x00\x00')), ScgiErrorCode.BadMarker);
  });

  test('S-6: duplicate names other than CONTENT_LENGTH are reported in wire order for the environ to merge', () => {
    const head = decodeScgiHead(
      netstring('CONTENT_LENGTH\x000\x00HTTP_COOKIE\x00a=1\x00HTTP_COOKIE\x00b=2\x00SERVER_NAME\x00x\x00SERVER_NAME\x00y\x00'),
    );
    expect(head?.headers.slice(1)).toEqual([
      ['HTTP_COOKIE', 'a=1'],
      ['HTTP_COOKIE', 'b=2'],
      ['SERVER_NAME', 'x'],
      ['SERVER_NAME', 'y'],
    ]);
  });

  test('S-6 §3.3: a header named wsgi.input is passed through raw (the environ builder drops it, F-23)', () => {
    const head = decodeScgiHead(netstring('CONTENT_LENGTH\x000\x00wsgi.input\x00evil\x00'));
    expect(head?.headers[1]).toEqual(['wsgi.input', 'evil']);
  });

  test('checkScgiHeaders applies S-4/S-5 to a list without bytes', () => {
    expect(checkScgiHeaders([['CONTENT_LENGTH', '3']])).toEqual({ contentLength: 3, hasScgiMarker: false });
    expectCode(() => checkScgiHeaders([['SCGI', '1']]), ScgiErrorCode.MissingContentLength);
  });
});

describe('SCGI body boundary (S-7, §3.3)', () => {
  test('S-7: the head is returned at the comma without waiting for any body byte', () => {
    const head = decodeScgiHead(SPEC_HEAD);
    expect(head?.contentLength).toBe(27);
    expect(head?.rest.length).toBe(0);
  });

  test('S-7 §3.3: body shorter than CONTENT_LENGTH: the decoder hands over what there is and stops', () => {
    const head = decodeScgiHead(Buffer.concat([SPEC_HEAD, SPEC_BODY.subarray(0, 10)]));
    expect(head?.contentLength).toBe(27);
    expect(head?.rest.toString('latin1')).toBe('What is th');
  });

  test('S-7 §3.3: extra bytes after the body stay in rest, uninterpreted', () => {
    const head = decodeScgiHead(Buffer.concat([SPEC_REQUEST, latin1('garbage')]));
    expect(head?.rest.toString('latin1')).toBe('What is the answer to life?garbage');
  });

  test('S-7 §3.3: a second netstring pipelined after the body is never decoded', () => {
    const decoder = new ScgiDecoder();
    const head = decoder.push(Buffer.concat([SPEC_REQUEST, SPEC_HEAD]));
    expect(head?.headers).toEqual(SPEC_HEADERS);
    expect(head?.rest.length).toBe(27 + SPEC_HEAD.length);
    // The decoder is one-shot: a further push is a caller bug, not a second request.
    expect(() => decoder.push(SPEC_HEAD)).toThrow(/after the request head was decoded/);
    expect(decoder.state).toBe('done');
  });

  test('errors are sticky: after a ProtocolError every push and end rethrow or stay silent', () => {
    const decoder = new ScgiDecoder();
    const first = caught(() => decoder.push(latin1('x')));
    expect(caught(() => decoder.push(SPEC_HEAD))).toBe(first);
    expect(() => decoder.end()).not.toThrow();
    expect(decoder.state).toBe('failed');
  });
});

describe('SCGI limits (§9)', () => {
  /** A head whose header block is exactly `size` bytes: CONTENT_LENGTH 0, SCGI 1, X=aaa…. */
  function headWithBlock(size: number): Buffer {
    const fixed = 'CONTENT_LENGTH\x000\x00'.length + 'SCGI\x001\x00'.length + 'X\x00\x00'.length;
    return encodeScgiRequest([['X', 'a'.repeat(size - fixed)]], 0);
  }

  test('§9: a header block of exactly 1 MiB is accepted by default, split in two', () => {
    const bytes = headWithBlock(DEFAULT_MAX_NETSTRING_LENGTH);
    expect(bytes.subarray(0, 8).toString('latin1')).toBe('1048576:');
    const outcome = decodeInChunks(bytes, [500_000]);
    expect(outcome.head?.headers[2]?.[1]).toHaveLength(DEFAULT_MAX_NETSTRING_LENGTH - 27);
    expect(outcome.head?.headBytes).toBe(bytes.length);
  });

  test('§9: 1 MiB + 1 → LimitError SCGI_HEAD_TOO_LARGE from the prefix alone', () => {
    const bytes = headWithBlock(DEFAULT_MAX_NETSTRING_LENGTH + 1);
    const decoder = new ScgiDecoder();
    expectCode(() => decoder.push(bytes.subarray(0, 8)), ScgiErrorCode.HeadTooLarge, LimitError);
  });

  test('S-11 maxNetstringLength: exactly at a custom limit accepted, one above refused', () => {
    const block = 'CONTENT_LENGTH\x000\x00SCGI\x001\x00'; // 24 bytes
    expect(decodeScgiHead(netstring(block), { maxNetstringLength: 24 })?.headers).toHaveLength(2);
    const err = expectCode(
      () => decodeScgiHead(netstring(`${block}A\x00\x00`), { maxNetstringLength: 24 }),
      ScgiErrorCode.HeadTooLarge,
      LimitError,
    );
    expect(err.message).toContain('27');
  });

  test('invalid limit options are a RangeError at construction (configuration, not bytes)', () => {
    expect(() => new ScgiDecoder({ maxNetstringLength: 10_000_000 })).toThrow(RangeError);
    expect(() => new ScgiDecoder({ maxNetstringLength: -1 })).toThrow(RangeError);
    expect(() => new ScgiDecoder({ maxBodyBytes: 1.5 })).toThrow(RangeError);
    expect(new ScgiDecoder().maxNetstringLength).toBe(1_048_576);
  });
});

describe('SCGI encoder input checks', () => {
  test('CONTENT_LENGTH in the list → SCGI_ENCODE_RESERVED (it comes from bodyLength)', () => {
    expectCode(() => encodeScgiRequest([['CONTENT_LENGTH', '1']], 1), ScgiErrorCode.EncodeReserved);
  });

  test('SCGI other than "1" → SCGI_ENCODE_RESERVED; SCGI "1" is kept in place', () => {
    expectCode(() => encodeScgiRequest([['SCGI', '2']], 0), ScgiErrorCode.EncodeReserved);
    const head = decodeScgiHead(encodeScgiRequest([['A', 'b'], ['SCGI', '1']], 0));
    expect(head?.headers).toEqual([
      ['CONTENT_LENGTH', '0'],
      ['A', 'b'],
      ['SCGI', '1'],
    ]);
  });

  test('empty name, NUL, or a char above U+00FF → SCGI_ENCODE_INVALID', () => {
    expectCode(() => encodeScgiRequest([['', 'x']], 0), ScgiErrorCode.EncodeInvalid);
    expectCode(() => encodeScgiRequest([['A\0B', 'x']], 0), ScgiErrorCode.EncodeInvalid);
    expectCode(() => encodeScgiRequest([['A', 'x\0y']], 0), ScgiErrorCode.EncodeInvalid);
    expectCode(() => encodeScgiRequest([['A', 'snow \u2603']], 0), ScgiErrorCode.EncodeInvalid);
  });

  test('negative or fractional bodyLength → SCGI_ENCODE_INVALID', () => {
    expectCode(() => encodeScgiRequest([], -1), ScgiErrorCode.EncodeInvalid);
    expectCode(() => encodeScgiRequest([], 2.5), ScgiErrorCode.EncodeInvalid);
  });

  test('a block beyond 7 digits → LimitError SCGI_ENCODE_TOO_LARGE', () => {
    expectCode(() => encodeScgiRequest([['X', 'a'.repeat(10_000_000)]], 0), ScgiErrorCode.EncodeTooLarge, LimitError);
  });

  test('latin1 chars 0x80..0xFF are written as single bytes', () => {
    const bytes = encodeScgiRequest([['HTTP_X', '\u00e9\u00ff']], 0);
    expect(bytes.includes(Buffer.from([0x00, 0xe9, 0xff, 0x00]))).toBe(true);
    expect(decodeScgiHead(bytes)?.headers[2]).toEqual(['HTTP_X', '\u00e9\u00ff']);
  });
});
