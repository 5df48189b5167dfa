/**
 * Response-head serializers and the checks the core runs on every status and header:
 * docs/conformance.md §8.1, table 8.2 (first line per front),
 * K-8, K-9, K-11. Round trips: serializeCgiHead → CgiResponseParser and serializeHttpHead →
 * NphResponseParser for random valid heads.
 */
import fc from 'fast-check';
import {
  CgiResponseParser,
  HOP_BY_HOP,
  NphResponseParser,
  isHopByHop,
  isValidHeaderName,
  isValidHeaderValue,
  parseCgiResponse,
  parseStatusLine,
  reasonPhrase,
  serializeCgiHead,
  serializeHttpHead,
} from '../../protocols/cgi/index.js';
import type { HeaderPair } from '../../protocols/cgi/index.js';

const latin1 = (buf: Buffer): string => buf.toString('latin1');

describe('R-1: parseStatusLine', () => {
  const valid: Array<[string, number, string]> = [
    ['200 OK', 200, 'OK'],
    ['404 Not Found', 404, 'Not Found'],
    ['599 Whatever You Like', 599, 'Whatever You Like'],
    ['204 ', 204, ''], // empty reason (policy of R-1)
    ['200  two spaces', 200, ' two spaces'], // exactly one separator; the rest is the reason
    ['200 tab\tinside', 200, 'tab\tinside'],
    ['200 caf\xe9 \xff', 200, 'caf\xe9 \xff'], // obs-text
    ['100 Continue', 100, 'Continue'], // parsed; refusing 1xx as final is the caller's
    ['101 Switching Protocols', 101, 'Switching Protocols'],
  ];
  for (const [input, code, reason] of valid) {
    test(`R-1: ${JSON.stringify(input)} → ${code} ${JSON.stringify(reason)}`, () => {
      expect(parseStatusLine(input)).toEqual({ code, reason });
    });
  }

  const invalid: Array<[string, string]> = [
    ['200', 'no space (PEP 3333 requires it)'],
    ['200OK', 'no space'],
    ['200\tOK', 'HTAB instead of SP'],
    [' 200 OK', 'leading space'],
    ['2000 OK', 'four digits'],
    ['20 OK', 'two digits'],
    ['099 OK', 'leading zero'],
    ['600 Custom', 'outside 100..599 (C-22 would refuse it on the CGI host)'],
    ['abc OK', 'not digits'],
    ['２００ OK', 'non-ASCII digits'],
    ['200 OK\r\nX-Injected: 1', 'CR LF injection'],
    ['200 OK\n', 'LF'],
    ['200 O\0K', 'NUL'],
    ['200 O\x01K', 'control char'],
    ['200 O\x7fK', 'DEL'],
    ['200 \u010d\u010aX: 1', 'chars above U+00FF (latin1 encoding would turn U+010A into LF)'],
    ['200 \u{1F600}', 'astral char'],
    ['', 'empty'],
  ];
  for (const [input, why] of invalid) {
    test(`R-1: ${JSON.stringify(input)} is refused (${why})`, () => {
      expect(parseStatusLine(input)).toBeNull();
    });
  }

  test('R-1: agrees with the reference regex on ASCII, stricter only on code range and reason chars', () => {
    const ref = /^[1-9][0-9]{2} [^\r\n\0]*$/;
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'0123456789 \t\r\n\0\x01\x7faZ\xe9\u0100'.split('')), maxLength: 8 }), (s) => {
        const ours = parseStatusLine(s);
        const mine = /^[1-5][0-9]{2} [\t\x20-\x7e\x80-\xff]*$/.test(s);
        expect(ours !== null).toBe(mine);
        if (ours !== null) {
          expect(ref.test(s)).toBe(true); // never more permissive than R-1
          expect(ours).toEqual({ code: Number(s.slice(0, 3)), reason: s.slice(4) });
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe('R-2: header names and values', () => {
  const TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

  test('R-2: a name is a non-empty token; every char 0..0x1FF checked', () => {
    for (let c = 0; c < 0x200; c++) {
      const ch = String.fromCharCode(c);
      expect({ c, ok: isValidHeaderName(`X${ch}`) }).toEqual({ c, ok: TCHAR.includes(ch) });
    }
    expect(isValidHeaderName('Content-Type')).toBe(true);
    expect(isValidHeaderName("x!#$%&'*+.^_`|~-9")).toBe(true);
    for (const bad of ['', 'a b', 'a:b', 'a\0', 'caf\xe9', '(x)', 'a/b', 'X-A\r\n', 'a@b', '"q"']) {
      expect({ bad, ok: isValidHeaderName(bad) }).toEqual({ bad, ok: false });
    }
  });

  test('R-2: a value has no CR, LF, NUL; HTAB and obs-text allowed; every char 0..0x1FF checked', () => {
    for (let c = 0; c < 0x200; c++) {
      const ok = c === 0x09 || (c >= 0x20 && c <= 0x7e) || (c >= 0x80 && c <= 0xff);
      expect({ c, ok: isValidHeaderValue(`a${String.fromCharCode(c)}b`) }).toEqual({ c, ok });
    }
  });

  test('R-2: typical values, empty value, the injection cases', () => {
    expect(isValidHeaderValue('')).toBe(true);
    expect(isValidHeaderValue('text/html; charset=utf-8')).toBe(true);
    expect(isValidHeaderValue('id=\xe9\xff; Path=/')).toBe(true); // latin1-held bytes E9 FF
    expect(isValidHeaderValue(' leading and trailing ')).toBe(true);
    expect(isValidHeaderValue('a\r\nSet-Cookie: evil=1')).toBe(false);
    expect(isValidHeaderValue('a\nb')).toBe(false);
    expect(isValidHeaderValue('a\rb')).toBe(false);
    expect(isValidHeaderValue('a\0b')).toBe(false);
    expect(isValidHeaderValue('\u010d\u010aSet-Cookie: evil=1')).toBe(false); // would encode to CR LF
    expect(isValidHeaderValue('\u{1F600}')).toBe(false);
  });

  test('R-2: validators are plain predicates (no state between calls, regex lastIndex safe)', () => {
    for (let i = 0; i < 3; i++) {
      expect(isValidHeaderName('X-A')).toBe(true);
      expect(isValidHeaderValue('v')).toBe(true);
      expect(isValidHeaderValue('v\n')).toBe(false);
    }
  });
});

describe('R-6: hop-by-hop fields', () => {
  test('R-6: the set holds exactly the seven fields, lowercase', () => {
    expect([...HOP_BY_HOP].sort()).toEqual(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
  });

  test('R-6: isHopByHop in any case, nothing else', () => {
    for (const name of ['Connection', 'connection', 'KEEP-ALIVE', 'Proxy-Connection', 'TE', 'te', 'Trailer', 'Transfer-Encoding', 'transfer-encoding', 'Upgrade']) {
      expect({ name, hop: isHopByHop(name) }).toEqual({ name, hop: true });
    }
    for (const name of ['Content-Length', 'Trailers', 'Connection-X', 'X-Connection', 't', 'Set-Cookie', 'Status', '', 'proxy-connectionx']) {
      expect({ name, hop: isHopByHop(name) }).toEqual({ name, hop: false });
    }
  });
});

describe('reason phrases', () => {
  test('R-1: default reasons follow RFC 9110 wording', () => {
    expect(reasonPhrase(200)).toBe('OK');
    expect(reasonPhrase(302)).toBe('Found');
    expect(reasonPhrase(404)).toBe('Not Found');
    expect(reasonPhrase(413)).toBe('Content Too Large');
    expect(reasonPhrase(422)).toBe('Unprocessable Content');
    expect(reasonPhrase(502)).toBe('Bad Gateway');
    expect(reasonPhrase(504)).toBe('Gateway Timeout');
    expect(reasonPhrase(599)).toBe('');
    expect(reasonPhrase(0)).toBe('');
  });

  test('R-1: every default reason is itself a valid status reason', () => {
    for (let code = 100; code < 600; code++) {
      expect(parseStatusLine(`${code} ${reasonPhrase(code)}`)).toEqual({ code, reason: reasonPhrase(code) });
    }
  });
});

describe('table 8.2: serialization per front', () => {
  test('8.2: the FastCGI STDOUT example, byte for byte', () => {
    const head = serializeCgiHead(404, 'Not Found', [
      ['Content-Type', 'text/plain; charset=utf-8'],
      ['Content-Length', '9'],
    ]);
    expect(latin1(Buffer.concat([head, Buffer.from('not found')]))).toBe(
      'Status: 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 9\r\n\r\nnot found',
    );
  });

  test('8.2 / K-8: CGI head: Status first, then the fields in order, CRLF everywhere, one empty line', () => {
    expect(latin1(serializeCgiHead(200, 'OK', []))).toBe('Status: 200 OK\r\n\r\n');
    expect(latin1(serializeCgiHead(201, 'Created', [['Location', 'http://h/x'], ['X-B', '']]))).toBe('Status: 201 Created\r\nLocation: http://h/x\r\nX-B: \r\n\r\n');
  });

  test('K-8: a redirect is sent with an explicit Status', () => {
    expect(latin1(serializeCgiHead(302, 'Found', [['Location', 'https://example.com/next']]))).toBe('Status: 302 Found\r\nLocation: https://example.com/next\r\n\r\n');
  });

  test('C-22: an empty reason gives `Status: NNN` (the reason is optional in CGI)', () => {
    expect(latin1(serializeCgiHead(599, '', []))).toBe('Status: 599\r\n\r\n');
  });

  test('8.2 (uwsgi): HTTP/1.1 status line', () => {
    expect(latin1(serializeHttpHead('HTTP/1.1', 200, 'OK', [['Content-Type', 'text/plain']]))).toBe('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n');
  });

  test('K-11: NPH uses the version of SERVER_PROTOCOL, HTTP/1.0 included', () => {
    expect(latin1(serializeHttpHead('HTTP/1.0', 503, 'Service Unavailable', [['Connection', 'close']]))).toBe('HTTP/1.0 503 Service Unavailable\r\nConnection: close\r\n\r\n');
  });

  test('8.2: an empty reason keeps the space after the code on a status line (RFC 9112 §4)', () => {
    expect(latin1(serializeHttpHead('HTTP/1.1', 599, '', []))).toBe('HTTP/1.1 599 \r\n\r\n');
  });

  test('R-10: repeated fields are separate lines, never merged', () => {
    const h: HeaderPair[] = [
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2; Path=/'],
      ['X-A', '1'],
      ['Set-Cookie', 'c=3'],
    ];
    const expected = 'Set-Cookie: a=1\r\nSet-Cookie: b=2; Path=/\r\nX-A: 1\r\nSet-Cookie: c=3\r\n\r\n';
    expect(latin1(serializeCgiHead(200, 'OK', h))).toBe(`Status: 200 OK\r\n${expected}`);
    expect(latin1(serializeHttpHead('HTTP/1.1', 200, 'OK', h))).toBe(`HTTP/1.1 200 OK\r\n${expected}`);
  });

  test('K-9: the serializers add nothing (no Content-Length, no Transfer-Encoding, no Date)', () => {
    const out = latin1(serializeCgiHead(200, 'OK', [['X-A', '1']]));
    expect(out).toBe('Status: 200 OK\r\nX-A: 1\r\n\r\n');
    expect(latin1(serializeHttpHead('HTTP/1.1', 204, 'No Content', []))).toBe('HTTP/1.1 204 No Content\r\n\r\n');
  });

  test('R-7: a field named Status in the list would be read by a CGI peer as a second Status', () => {
    // Why the core refuses the name: our own CGI host (like nginx/Apache) sees two Status lines.
    expect(() => parseCgiResponse(serializeCgiHead(200, 'OK', [['status', '404 Not Found']]))).toThrow(expect.objectContaining({ code: 'CGI_DUPLICATE_FIELD' }));
  });

  test('E-1: latin1-held values are written as single bytes (non-UTF-8 survives)', () => {
    const head = serializeCgiHead(200, 'OK', [['Set-Cookie', 'n=\xe9\xff']]);
    expect([...head.subarray(head.indexOf('n=') + 2, head.indexOf('n=') + 4)]).toEqual([0xe9, 0xff]);
    expect(head.length).toBe('Status: 200 OK\r\nSet-Cookie: n=..\r\n\r\n'.length);
  });
});

describe('round trips', () => {
  const tokenChar = fc.constantFrom(..."!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".split(''));
  const name = fc.string({ unit: tokenChar, minLength: 1, maxLength: 20 });
  const valueChar = fc.oneof(
    fc.integer({ min: 0x20, max: 0x7e }),
    fc.integer({ min: 0x80, max: 0xff }),
    fc.constant(0x09),
  ).map((c) => String.fromCharCode(c));
  /** Valid values without surrounding whitespace (the parser trims OWS, RFC 3875 §6.3). */
  const value = fc.string({ unit: valueChar, maxLength: 40 }).map((s) => s.replace(/^[ \t]+|[ \t]+$/g, ''));
  const CGI_SPECIAL = new Set(['status', 'location', 'content-type', 'content-length', ...HOP_BY_HOP]);
  const cgiHeaders = fc.array(fc.tuple(name.filter((n) => !CGI_SPECIAL.has(n.toLowerCase())), value), { maxLength: 30 });
  const status = fc.integer({ min: 200, max: 599 });

  test('R-2 / 8.2: serializeCgiHead → CgiResponseParser gives back status, reason and headers', () => {
    fc.assert(
      fc.property(status, value, cgiHeaders, (code, reason, headers) => {
        fc.pre(parseStatusLine(`${code} ${reason}`) !== null);
        const body = Buffer.from('body\r\n\r\nmore');
        const head = parseCgiResponse(Buffer.concat([serializeCgiHead(code, reason, headers), body]));
        expect(head.status).toBe(code);
        expect(head.reason).toBe(reason === '' ? reasonPhrase(code) : reason);
        expect(head.statusSent).toBe(true);
        expect(head.headers).toEqual(headers);
        expect(head.kind).toBe('document');
        expect(head.rest.equals(body)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  test('K-11 / C-28: serializeHttpHead → NphResponseParser gives back everything, any field names', () => {
    fc.assert(
      fc.property(fc.constantFrom('HTTP/1.1' as const, 'HTTP/1.0' as const), status, value, fc.array(fc.tuple(name, value), { maxLength: 30 }), (version, code, reason, headers) => {
        const p = new NphResponseParser();
        const head = p.push(serializeHttpHead(version, code, reason, headers));
        expect(head).toBeDefined();
        expect(head?.version).toBe(version);
        expect(head?.status).toBe(code);
        expect(head?.reason).toBe(reason);
        expect(head?.headers).toEqual(headers);
        expect(head?.rest.length).toBe(0);
      }),
      { numRuns: 2000 },
    );
  });

  test('C-19: a serialized head fed one byte at a time parses the same', () => {
    const bytes = serializeCgiHead(404, 'Not Found', [['Content-Type', 'text/plain'], ['Set-Cookie', 'a=\xe9'], ['Set-Cookie', 'b=2']]);
    const p = new CgiResponseParser();
    let head;
    for (const x of bytes) head ??= p.push(Buffer.from([x]));
    expect(head?.headers).toEqual([['Content-Type', 'text/plain'], ['Set-Cookie', 'a=\xe9'], ['Set-Cookie', 'b=2']]);
    expect(head?.status).toBe(404);
  });
});
