/**
 * CGI response head parser: the response-parsing items of docs/conformance.md §5.2
 * (C-19..C-28), the script-output rows of §5.3, the limits of §9. Every fixture is also fed
 * split at every byte offset and one byte at a time, with identical outcomes; random bytes
 * yield a head or a typed error, nothing else.
 */
import fc from 'fast-check';
import { LimitError, ProtocolError } from '../../protocols/errors.js';
import {
  CGI_HEAD_LIMITS,
  CgiResponseError,
  CgiResponseParser,
  NphResponseParser,
  classifyCgiResponse,
  isLocalLocation,
  parseCgiResponse,
  parseHttpStatusLine,
} from '../../protocols/cgi/index.js';
import type { CgiHeadLimits, CgiResponseHead, CgiResponseKind } from '../../protocols/cgi/index.js';

// ---- helpers -------------------------------------------------------------------------

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** What a host ends up with: the head, the kind once EOF is known, all body bytes. */
type Outcome =
  | {
      ok: true;
      kind: CgiResponseKind;
      status: number;
      reason: string;
      statusSent: boolean;
      headers: Array<[string, string]>;
      location: string | undefined;
      contentType: string | undefined;
      contentLength: number | undefined;
      removed: Array<[string, string]>;
      headBytes: number;
      body: string;
    }
  | { ok: false; code: string; limit: string | undefined };

function errorOutcome(err: unknown): Outcome {
  if (!(err instanceof ProtocolError)) throw err;
  expect(err.protocol).toBe('cgi');
  expect(err.message.startsWith('cgi: ')).toBe(true);
  return { ok: false, code: err.code, limit: err instanceof LimitError ? err.limit : undefined };
}

/** Feeds chunks like a host: push until the head, the remaining chunks are body, then end(). */
function run(chunks: Buffer[], limits?: CgiHeadLimits): Outcome {
  const p = new CgiResponseParser(limits);
  let head: CgiResponseHead | undefined;
  const body: Buffer[] = [];
  try {
    for (const c of chunks) {
      if (head !== undefined) {
        body.push(c);
        continue;
      }
      head = p.push(c);
      if (head !== undefined) {
        // The head's own kind assumes the body is whatever came with it.
        expect(head.kind).toBe(classifyCgiResponse(head, head.rest.length > 0));
        body.push(head.rest);
      }
    }
    p.end();
  } catch (err) {
    return errorOutcome(err);
  }
  const h = head as CgiResponseHead;
  const all = Buffer.concat(body);
  return {
    ok: true,
    kind: classifyCgiResponse(h, all.length > 0),
    status: h.status,
    reason: h.reason,
    statusSent: h.statusSent,
    headers: h.headers,
    location: h.location,
    contentType: h.contentType,
    contentLength: h.contentLength,
    removed: h.removed,
    headBytes: h.headBytes,
    body: all.toString('latin1'),
  };
}

function whole(input: string | Buffer, limits?: CgiHeadLimits): Outcome {
  return run([typeof input === 'string' ? b(input) : input], limits);
}

/** Every two-way split (empty chunks at both ends included) and byte-at-a-time. */
function* splits(buf: Buffer): Generator<Buffer[]> {
  for (let i = 0; i <= buf.length; i++) yield [buf.subarray(0, i), buf.subarray(i)];
  yield [...buf].map((x) => Buffer.from([x]));
}

function expectOk(o: Outcome): Extract<Outcome, { ok: true }> {
  if (!o.ok) throw new Error(`expected a head, got ${o.code}`);
  return o;
}

function expectCode(o: Outcome, code: string): void {
  expect(o.ok ? 'a head' : o.code).toBe(code);
}

// ---- fixtures ------------------------------------------------------------------------

interface Fixture {
  id: string;
  name: string;
  input: string;
  limits?: CgiHeadLimits;
  /** Error code, or a partial expected outcome. */
  expect: string | Partial<Extract<Outcome, { ok: true }>>;
}

const small: CgiHeadLimits = { maxLineBytes: 16, maxHeaderBytes: 48, maxHeaderFields: 3 };

const fixtures: Fixture[] = [
  // C-19: line ends and limits
  { id: 'C-19', name: 'CRLF line ends', input: 'Content-Type: text/plain\r\n\r\nhello', expect: { kind: 'document', status: 200, reason: 'OK', headers: [['Content-Type', 'text/plain']], body: 'hello', headBytes: 28 } },
  { id: 'C-19', name: 'bare LF line ends', input: 'Content-Type: text/plain\n\nhello', expect: { status: 200, headers: [['Content-Type', 'text/plain']], body: 'hello', headBytes: 26 } },
  { id: 'C-19', name: 'mixed LF and CRLF line ends', input: 'A: 1\r\nB: 2\n\r\nC: x\n', expect: { headers: [['A', '1'], ['B', '2']], body: 'C: x\n' } },
  { id: 'C-19', name: 'a lone CR inside a value', input: 'X-A: a\rb\n\n', expect: CgiResponseError.BareCr },
  { id: 'C-19', name: 'CR CR LF', input: 'X-A: ab\r\r\n\r\n', expect: CgiResponseError.BareCr },
  { id: 'C-19', name: 'a CR alone on the empty line is still a bare CR when doubled', input: 'X-A: 1\n\r\r\n', expect: CgiResponseError.BareCr },
  { id: 'C-19', name: 'line of exactly maxLineBytes, with CRLF', input: 'X-Abc: 123456789\r\n\r\n', limits: small, expect: { headers: [['X-Abc', '123456789']] } },
  { id: 'C-19', name: 'line one byte over maxLineBytes (LF)', input: 'X-Abc: 1234567890\n\n', limits: small, expect: CgiResponseError.LineTooLong },
  { id: 'C-19', name: 'line one byte over maxLineBytes (CRLF)', input: 'X-Abc: 1234567890\r\n\r\n', limits: small, expect: CgiResponseError.LineTooLong },
  { id: 'C-19', name: 'an endless line is cut at the line limit', input: 'X-Abc: 1234567890123456789012345678901234567890', limits: small, expect: CgiResponseError.LineTooLong },
  { id: 'C-19', name: 'head of exactly maxHeaderBytes', input: 'A: 123456789012\nB: 123456789012\nC: 12345678901\n\nbody', limits: small, expect: { headBytes: 48, body: 'body' } },
  { id: 'C-19', name: 'head over maxHeaderBytes', input: 'A: 123456789012\nB: 123456789012\nC: 123456789012\n\n', limits: small, expect: CgiResponseError.HeadTooLarge },
  { id: 'C-19', name: 'head limit hit before the line limit in the same line', input: 'A: 123456789012\nB: 123456789012\nCCCCCCCCCCCCCCCCCCCCCCCC', limits: small, expect: CgiResponseError.HeadTooLarge },
  { id: 'C-19', name: 'line limit hit before the head limit', input: 'A: 123456789012\nB: 12345678901234567890', limits: small, expect: CgiResponseError.LineTooLong },
  { id: 'C-19', name: 'maxHeaderFields fields', input: 'A: 1\nB: 2\nC: 3\n\n', limits: small, expect: { headers: [['A', '1'], ['B', '2'], ['C', '3']] } },
  { id: 'C-19', name: 'one field over maxHeaderFields', input: 'A: 1\nB: 2\nC: 3\nD: 4\n\n', limits: small, expect: CgiResponseError.TooManyFields },
  { id: 'C-19', name: 'the field limit wins over a syntax error on the same line', input: 'A: 1\nB: 2\nC: 3\nbad\n\n', limits: small, expect: CgiResponseError.TooManyFields },

  // C-20: field syntax
  { id: 'C-20', name: 'optional whitespace around the value is trimmed, inner kept', input: 'X-A:value\nX-B: \t two  words \t\nX-C:\n\n', expect: { headers: [['X-A', 'value'], ['X-B', 'two  words'], ['X-C', '']] } },
  { id: 'C-20', name: 'continuation line (obs-fold)', input: 'X-A: one\n  two\n\n', expect: CgiResponseError.ObsFold },
  { id: 'C-20', name: 'continuation line with HTAB', input: 'X-A: one\n\ttwo\n\n', expect: CgiResponseError.ObsFold },
  { id: 'C-20', name: 'leading whitespace on the first line', input: ' Content-Type: text/plain\n\n', expect: CgiResponseError.ObsFold },
  { id: 'C-20', name: 'a line without colon', input: 'Content-Type text/plain\n\n', expect: CgiResponseError.NoColon },
  { id: 'C-20', name: 'empty field name', input: ': value\n\n', expect: CgiResponseError.BadHeaderName },
  { id: 'C-20', name: 'whitespace between name and colon', input: 'Content-Type : text/plain\n\n', expect: CgiResponseError.BadHeaderName },
  { id: 'C-20', name: 'non-token char in the name', input: 'X(A): 1\n\n', expect: CgiResponseError.BadHeaderName },
  { id: 'C-20', name: 'obs-text byte in the name', input: 'X-\xe9: 1\n\n', expect: CgiResponseError.BadHeaderName },
  { id: 'C-20', name: 'NUL in a value', input: 'X-A: a\0b\n\n', expect: CgiResponseError.NulInHeader },
  { id: 'C-20', name: 'NUL in a name', input: 'X\0A: ab\n\n', expect: CgiResponseError.NulInHeader },
  { id: 'C-20', name: 'NUL wins over a bad name on the same line', input: 'X A: a\0b\n\n', expect: CgiResponseError.NulInHeader },
  { id: 'C-20', name: 'control char 0x01 in a value', input: 'X-A: a\x01b\n\n', expect: CgiResponseError.BadHeaderValue },
  { id: 'C-20', name: 'DEL in a value', input: 'X-A: a\x7fb\n\n', expect: CgiResponseError.BadHeaderValue },
  { id: 'C-20', name: 'HTAB inside a value', input: 'X-A: a\tb\n\n', expect: { headers: [['X-A', 'a\tb']] } },
  { id: 'C-20', name: 'non-UTF-8 bytes survive as latin1', input: 'Set-Cookie: n=\xe9\xff\x80\n\n', expect: { headers: [['Set-Cookie', 'n=\xe9\xff\x80']] } },
  { id: 'C-20', name: 'UTF-8 bytes are not decoded', input: 'X-A: \xc3\xa9\n\n', expect: { headers: [['X-A', '\xc3\xa9']] } },
  { id: 'C-20', name: 'names keep their case', input: 'x-lower: 1\nX-UPPER: 2\n\n', expect: { headers: [['x-lower', '1'], ['X-UPPER', '2']] } },

  // C-21: premature end
  { id: 'C-21', name: 'no output at all', input: '', expect: CgiResponseError.IncompleteHead },
  { id: 'C-21', name: 'fields but no empty line', input: 'Content-Type: text/plain\n', expect: CgiResponseError.IncompleteHead },
  { id: 'C-21', name: 'EOF inside a line', input: 'Content-Type: text/pl', expect: CgiResponseError.IncompleteHead },
  { id: 'C-21', name: 'an empty line first: no fields', input: '\nbody', expect: CgiResponseError.NoHeaders },
  { id: 'C-21', name: 'a CRLF empty line first: no fields', input: '\r\n', expect: CgiResponseError.NoHeaders },
  { id: 'C-21', name: 'header-only response', input: 'Status: 204 No Content\r\n\r\n', expect: { status: 204, reason: 'No Content', statusSent: true, headers: [], body: '', kind: 'document' } },

  // C-22: Status
  { id: 'C-22', name: 'Status with reason, not forwarded as a header', input: 'Content-Type: text/html\nStatus: 404 Not Here\n\n', expect: { status: 404, reason: 'Not Here', statusSent: true, headers: [['Content-Type', 'text/html']] } },
  { id: 'C-22', name: 'lowercase status: is the Status field', input: 'status: 404 Not Found\n\n', expect: { status: 404, statusSent: true, headers: [] } },
  { id: 'C-22', name: 'uppercase STATUS is the Status field', input: 'STATUS: 201 Created\n\n', expect: { status: 201, reason: 'Created' } },
  { id: 'C-22', name: 'Status without reason gets the default phrase', input: 'Status: 404\n\n', expect: { status: 404, reason: 'Not Found' } },
  { id: 'C-22', name: 'Status without reason, unregistered code', input: 'Status: 599\n\n', expect: { status: 599, reason: '' } },
  { id: 'C-22', name: 'Status without space after the colon, HTAB before the reason', input: 'Status:503\tBusy\n\n', expect: { status: 503, reason: 'Busy' } },
  { id: 'C-22', name: 'Status 2000', input: 'Status: 2000\n\n', expect: CgiResponseError.BadStatus },
  { id: 'C-22', name: 'Status abc', input: 'Status: abc\n\n', expect: CgiResponseError.BadStatus },
  { id: 'C-22', name: 'Status 600', input: 'Status: 600 Nope\n\n', expect: CgiResponseError.BadStatus },
  { id: 'C-22', name: 'Status 099', input: 'Status: 099 Nope\n\n', expect: CgiResponseError.BadStatus },
  { id: 'C-22', name: 'Status 20', input: 'Status: 20\n\n', expect: CgiResponseError.BadStatus },
  { id: 'C-22', name: 'Status 200OK (no separator)', input: 'Status: 200OK\n\n', expect: CgiResponseError.BadStatus },
  { id: 'C-22', name: 'empty Status', input: 'Status:\n\n', expect: CgiResponseError.BadStatus },
  { id: 'C-22', name: 'Status 100 (no interim responses from scripts)', input: 'Status: 100 Continue\n\n', expect: CgiResponseError.BadStatus },
  { id: 'C-22', name: 'Status 103', input: 'Status: 103 Early Hints\nLink: </a>\n\n', expect: CgiResponseError.BadStatus },
  { id: 'C-22', name: 'repeated Status', input: 'Status: 200 OK\nStatus: 200 OK\n\n', expect: CgiResponseError.DuplicateField },
  { id: 'C-22', name: 'repeated Status in different case', input: 'Status: 200 OK\nstatus: 404\n\n', expect: CgiResponseError.DuplicateField },

  // C-23: Location
  { id: 'C-23', name: 'local Location, no Status, no body: local redirect', input: 'Location: /other?a=b\n\n', expect: { kind: 'local-redirect', status: 302, reason: 'Found', statusSent: false, location: '/other?a=b', body: '' } },
  { id: 'C-23', name: 'local Location with a Content-Type but no body: still local (Apache)', input: 'Content-Type: text/html\nLocation: /x\n\n', expect: { kind: 'local-redirect', location: '/x' } },
  { id: 'C-23', name: 'local Location followed by body bytes: 302 with the body', input: 'Location: /x\n\nsee /x', expect: { kind: 'client-redirect-with-document', status: 302, body: 'see /x' } },
  { id: 'C-23', name: 'absolute Location: client redirect 302', input: 'Location: http://example.com/a\r\n\r\nignored', expect: { kind: 'client-redirect', status: 302, reason: 'Found', location: 'http://example.com/a', headers: [['Location', 'http://example.com/a']] } },
  { id: 'C-23', name: 'network-path Location //evil is not local', input: 'Location: //evil.example/\n\n', expect: { kind: 'client-redirect', status: 302 } },
  { id: 'C-23', name: 'relative Location is not local', input: 'Location: other\n\n', expect: { kind: 'client-redirect', status: 302 } },
  { id: 'C-23', name: 'Status 301 with absolute Location and body: redirect with document', input: 'Status: 301 Moved\nLocation: https://example.com/\nContent-Type: text/html\n\n<a>moved</a>', expect: { kind: 'client-redirect-with-document', status: 301, reason: 'Moved', body: '<a>moved</a>' } },
  { id: 'C-23', name: 'Status 200 with a local Location passes through as a document', input: 'Status: 200 OK\nLocation: /x\n\n', expect: { kind: 'document', status: 200, location: '/x' } },
  { id: 'C-23', name: 'Status 201 with Location is a document', input: 'Status: 201 Created\nLocation: /items/7\n\n', expect: { kind: 'document', status: 201, headers: [['Location', '/items/7']] } },
  { id: 'C-23', name: 'Status 302 with a local Location passes through', input: 'Status: 302 Found\nLocation: /x\n\n', expect: { kind: 'client-redirect-with-document', status: 302 } },
  { id: 'C-23', name: 'empty Location', input: 'Location:\n\n', expect: CgiResponseError.BadLocation },
  { id: 'C-23', name: 'repeated Location', input: 'Location: /a\nLocation: /b\n\n', expect: CgiResponseError.DuplicateField },

  // C-24: no Content-Type
  { id: 'C-24', name: 'body without Content-Type passes, nothing guessed', input: 'X-A: 1\n\n<html>', expect: { kind: 'document', contentType: undefined, headers: [['X-A', '1']], body: '<html>' } },
  { id: 'C-24', name: 'Content-Type reported and kept in place', input: 'X-A: 1\nContent-type: text/plain; charset=latin1\nX-B: 2\n\n', expect: { contentType: 'text/plain; charset=latin1', headers: [['X-A', '1'], ['Content-type', 'text/plain; charset=latin1'], ['X-B', '2']] } },
  { id: 'C-24', name: 'repeated Content-Type', input: 'Content-Type: text/plain\nContent-Type: text/html\n\n', expect: CgiResponseError.DuplicateField },

  // C-25: framing and hop-by-hop fields from the script
  { id: 'C-25', name: 'Transfer-Encoding: chunked', input: 'Content-Type: text/plain\nTransfer-Encoding: chunked\n\n5\r\nhello\r\n0\r\n\r\n', expect: CgiResponseError.TransferEncoding },
  { id: 'C-25', name: 'Transfer-Encoding: identity in lowercase', input: 'transfer-encoding: identity\n\n', expect: CgiResponseError.TransferEncoding },
  { id: 'C-25', name: 'Content-Length 5 then 10 bytes: length reported, removed, all bytes kept', input: 'Content-Type: text/plain\nContent-Length: 5\n\n0123456789', expect: { contentLength: 5, headers: [['Content-Type', 'text/plain']], removed: [['Content-Length', '5']], body: '0123456789' } },
  { id: 'C-25', name: 'Content-Length not digits: removed, not reported', input: 'Content-Length: 5x\n\n', expect: { contentLength: undefined, headers: [], removed: [['Content-Length', '5x']] } },
  { id: 'C-25', name: 'two different Content-Lengths: not reported', input: 'Content-Length: 5\ncontent-length: 6\n\n', expect: { contentLength: undefined, removed: [['Content-Length', '5'], ['content-length', '6']] } },
  { id: 'C-25', name: 'the same Content-Length twice: reported', input: 'Content-Length: 5\nContent-Length: 5\n\n12345', expect: { contentLength: 5 } },
  {
    id: 'C-25',
    name: 'Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade removed',
    input: 'Connection: close\nKeep-Alive: timeout=5\nContent-Type: a/b\nProxy-Connection: x\nte: trailers\nTrailer: X\nUPGRADE: h2c\n\n',
    expect: {
      headers: [['Content-Type', 'a/b']],
      removed: [['Connection', 'close'], ['Keep-Alive', 'timeout=5'], ['Proxy-Connection', 'x'], ['te', 'trailers'], ['Trailer', 'X'], ['UPGRADE', 'h2c']],
    },
  },

  // C-26: repeats
  {
    id: 'C-26',
    name: 'repeated Set-Cookie and other repeats kept apart, in order',
    input: 'Set-Cookie: a=1\nX-B: 1\nSet-Cookie: b=2; Path=/\nX-B: 2\nSet-Cookie: c=3\n\n',
    expect: { headers: [['Set-Cookie', 'a=1'], ['X-B', '1'], ['Set-Cookie', 'b=2; Path=/'], ['X-B', '2'], ['Set-Cookie', 'c=3']] },
  },

  // §5.3: script output rows
  { id: '§5.3', name: 'HTTP/1.1 200 OK from a non-NPH script', input: 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhi', expect: CgiResponseError.UnexpectedStatusLine },
  { id: '§5.3', name: 'an HTTP/ line after the first is just a line without colon', input: 'X-A: 1\nHTTP/1.1 200 OK\n\n', expect: CgiResponseError.NoColon },
];

describe('CGI response head: fixtures (C-19..C-26, §5.3)', () => {
  for (const f of fixtures) {
    test(`${f.id}: ${f.name}`, () => {
      const o = whole(f.input, f.limits);
      if (typeof f.expect === 'string') {
        expectCode(o, f.expect);
        if (!o.ok && (f.expect === CgiResponseError.LineTooLong || f.expect === CgiResponseError.HeadTooLarge || f.expect === CgiResponseError.TooManyFields)) {
          expect(o.limit).toBeDefined();
        }
      } else {
        expect(expectOk(o)).toMatchObject(f.expect);
      }
    });
  }

  test('C-19: every fixture split at every byte offset and byte by byte gives the same outcome', () => {
    let runs = 0;
    for (const f of fixtures) {
      const buf = b(f.input);
      const reference = whole(buf, f.limits);
      for (const chunks of splits(buf)) {
        expect({ fixture: f.name, outcome: run(chunks, f.limits) }).toEqual({ fixture: f.name, outcome: reference });
        runs++;
      }
    }
    expect(runs).toBeGreaterThan(2000);
  });
});

describe('C-19: default limits of §9', () => {
  test('C-19: the defaults are 8 KiB lines, 64 KiB head, 100 fields', () => {
    expect(CGI_HEAD_LIMITS).toEqual({ maxLineBytes: 8192, maxHeaderBytes: 65536, maxHeaderFields: 100 });
  });

  test('C-19: an 8192-byte Set-Cookie line passes (Go 1 KiB limit would break it), 8193 does not', () => {
    const line = (n: number): string => 'Set-Cookie: ' + 'v'.repeat(n - 12);
    const ok = expectOk(whole(`${line(8192)}\r\n\r\n`));
    expect(ok.headers[0]?.[1]).toHaveLength(8180);
    const o = whole(`${line(8193)}\n\n`);
    expectCode(o, CgiResponseError.LineTooLong);
    expect(!o.ok && o.limit).toBe('maxLineBytes');
  });

  test('C-19: a 64 KiB head passes, one byte more does not', () => {
    // 8 lines of 8190 + CRLF, then filler so the head is exactly 65536 bytes with its empty line.
    const lines = Array.from({ length: 7 }, (_, i) => `X-${i}: ${'a'.repeat(8190 - 5)}\r\n`).join('');
    const fill = 65536 - lines.length - 2 - 2; // last line's CRLF and the empty line
    const last = `X-9: ${'b'.repeat(fill - 5)}`;
    const head = `${lines}${last}\r\n\r\n`;
    expect(head.length).toBe(65536);
    expect(expectOk(whole(head + 'body')).headBytes).toBe(65536);
    const over = whole(`${lines}${last}b\r\n\r\n`);
    expectCode(over, CgiResponseError.HeadTooLarge);
    expect(!over.ok && over.limit).toBe('maxHeaderBytes');
  });

  test('C-19: 100 fields pass, 101 do not', () => {
    const fields = (n: number): string => Array.from({ length: n }, (_, i) => `X-${i}: ${i}\n`).join('');
    expect(expectOk(whole(`${fields(100)}\n`)).headers).toHaveLength(100);
    const o = whole(`${fields(101)}\n`);
    expectCode(o, CgiResponseError.TooManyFields);
    expect(!o.ok && o.limit).toBe('maxHeaderFields');
  });

  test('§5.3: 100 000 header lines stop at the field limit, read in 4 KiB chunks', () => {
    const buf = b('X: 1\n'.repeat(100_000));
    const p = new CgiResponseParser();
    let thrown: unknown;
    let pushed = 0;
    try {
      for (let i = 0; i < buf.length; i += 4096) {
        p.push(buf.subarray(i, i + 4096));
        pushed++;
      }
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(LimitError);
    expect((thrown as LimitError).code).toBe(CgiResponseError.TooManyFields);
    expect(pushed).toBeLessThan(2); // 101 lines are 505 bytes: the first chunk already fails
  });

  test('C-19: a line with no LF is refused as soon as it passes the limit, not at EOF', () => {
    const p = new CgiResponseParser();
    expect(p.push(b('X-A: ' + 'a'.repeat(8000)))).toBeUndefined();
    expect(() => p.push(b('a'.repeat(500)))).toThrow(expect.objectContaining({ code: CgiResponseError.LineTooLong }));
  });

  test('C-19: limits are options; a bad limit value is a RangeError at construction', () => {
    expect(expectOk(whole('X-A: 12345\n\n', { maxLineBytes: 10 })).headers).toEqual([['X-A', '12345']]);
    expectCode(whole('X-A: 123456\n\n', { maxLineBytes: 10 }), CgiResponseError.LineTooLong);
    expect(() => new CgiResponseParser({ maxHeaderFields: 0 })).toThrow(RangeError);
    expect(() => new CgiResponseParser({ maxLineBytes: 1.5 })).toThrow(RangeError);
  });
});

describe('parser lifecycle', () => {
  test('C-19: rest is a subarray of the chunk that completed the head (no copy)', () => {
    const chunk = b('Content-Type: text/plain\n\nbody bytes');
    const head = new CgiResponseParser().push(chunk) as CgiResponseHead;
    expect(head.rest.toString()).toBe('body bytes');
    expect(head.rest.buffer).toBe(chunk.buffer);
    expect(head.rest.byteOffset).toBe(chunk.byteOffset + 26);
  });

  test('C-21: end() after a complete head is a no-op; push() after it is a usage error', () => {
    const p = new CgiResponseParser();
    expect(p.push(b('X: 1\n\n'))).toBeDefined();
    expect(p.finished).toBe(true);
    expect(() => p.end()).not.toThrow();
    expect(() => p.push(b('more'))).toThrow(/after the head was complete/);
  });

  test('C-21: after an error, push() and end() throw the same error again', () => {
    const p = new CgiResponseParser();
    let first: unknown;
    try {
      p.push(b('bad line\n'));
    } catch (err) {
      first = err;
    }
    expect(first).toBeInstanceOf(ProtocolError);
    expect(() => p.push(b('X: 1\n\n'))).toThrow(first as Error);
    expect(() => p.end()).toThrow(first as Error);
  });

  test('C-21: end() before the empty line throws CGI_INCOMPLETE_HEAD with the byte count', () => {
    const p = new CgiResponseParser();
    p.push(b('Content-Type: text/plain\n'));
    expect(() => p.end()).toThrow(expect.objectContaining({ code: CgiResponseError.IncompleteHead, message: expect.stringMatching(/premature end of script headers.*25 bytes/) }));
    const empty = new CgiResponseParser();
    expect(() => empty.end()).toThrow(/no output/);
  });

  test('C-20: error messages quote the offending line', () => {
    expect(() => parseCgiResponse(b('X-A: a\0b\n\n'))).toThrow('cgi: NUL byte in header line 1 "X-A: a\\x00b"');
    expect(() => parseCgiResponse(b('Foo\n\n'))).toThrow(/line 1 "Foo"/);
  });

  test('C-23: parseCgiResponse classifies with the whole buffered body', () => {
    expect(parseCgiResponse(b('Location: /x\n\n')).kind).toBe('local-redirect');
    expect(parseCgiResponse(b('Location: /x\n\n.')).kind).toBe('client-redirect-with-document');
    expect(() => parseCgiResponse(b('Location: /x\n'))).toThrow(expect.objectContaining({ code: CgiResponseError.IncompleteHead }));
  });

  test('C-23: a local redirect seen at head time becomes 302-with-body when body bytes follow', () => {
    const p = new CgiResponseParser();
    const head = p.push(b('Location: /next\r\n\r\n')) as CgiResponseHead;
    expect(head.kind).toBe('local-redirect');
    expect(classifyCgiResponse(head, true)).toBe('client-redirect-with-document');
    expect(head.status).toBe(302);
  });

  test('C-23: isLocalLocation accepts /path only', () => {
    expect(isLocalLocation('/')).toBe(true);
    expect(isLocalLocation('/a?b=c')).toBe(true);
    expect(isLocalLocation('//evil.example/')).toBe(false);
    expect(isLocalLocation('http://x/')).toBe(false);
    expect(isLocalLocation('a/b')).toBe(false);
  });

  test('C-20: the parser rejects exactly the value bytes isValidHeaderValue rejects', () => {
    // Same byte set in both places, so a script's header is valid iff an app's would be.
    for (let x = 0; x < 256; x++) {
      if (x === 0x0a) continue; // ends the line: not a value byte
      const o = whole(Buffer.concat([b('X-A: a'), Buffer.from([x]), b('b\n\n')]));
      const ok = x === 0x09 || (x >= 0x20 && x !== 0x7f);
      expect({ byte: x, ok: o.ok }).toEqual({ byte: x, ok });
    }
  });
});

describe('C-28: NPH heads', () => {
  function nph(chunks: Buffer[]): unknown {
    const p = new NphResponseParser();
    try {
      let head;
      for (const c of chunks) head ??= p.push(c);
      p.end();
      return head === undefined ? undefined : { ...head, rest: head.rest.toString('latin1') };
    } catch (err) {
      return errorOutcome(err);
    }
  }

  const cases: Array<[string, string, unknown]> = [
    [
      'status line and fields, nothing removed (TE and Connection stay)',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n',
      { version: 'HTTP/1.1', status: 200, reason: 'OK', headers: [['Transfer-Encoding', 'chunked'], ['Connection', 'close']], headBytes: 66, rest: '0\r\n\r\n' },
    ],
    ['HTTP/1.0 with LF line ends', 'HTTP/1.0 404 Not Found\nContent-Length: 0\n\n', { version: 'HTTP/1.0', status: 404, reason: 'Not Found', headers: [['Content-Length', '0']], headBytes: 42, rest: '' }],
    ['status line without reason', 'HTTP/1.1 599\r\n\r\n', { version: 'HTTP/1.1', status: 599, reason: '', headers: [], headBytes: 16, rest: '' }],
    ['a CGI head is not an NPH head', 'Status: 200 OK\r\n\r\n', { ok: false, code: CgiResponseError.NphBadStatusLine, limit: undefined }],
    ['empty line first', '\r\nHTTP/1.1 200 OK\r\n', { ok: false, code: CgiResponseError.NphBadStatusLine, limit: undefined }],
    ['NUL in the status line', 'HTTP/1.1 200 O\0K\r\n\r\n', { ok: false, code: CgiResponseError.NulInHeader, limit: undefined }],
    ['bad field after the status line', 'HTTP/1.1 200 OK\r\nno colon\r\n\r\n', { ok: false, code: CgiResponseError.NoColon, limit: undefined }],
    ['EOF inside the head', 'HTTP/1.1 200 OK\r\n', { ok: false, code: CgiResponseError.IncompleteHead, limit: undefined }],
  ];

  for (const [name, input, expected] of cases) {
    test(`C-28: ${name}`, () => {
      const buf = b(input);
      const reference = nph([buf]);
      expect(reference).toEqual(expected);
      // Same outcome at every split, except rest which holds only the last chunk's tail.
      for (const chunks of splits(buf)) {
        const o = nph(chunks) as Record<string, unknown>;
        expect({ ...o, rest: undefined }).toEqual({ ...(reference as Record<string, unknown>), rest: undefined });
      }
    });
  }

  test('C-28: the status line does not count as a field', () => {
    const p = new NphResponseParser({ maxHeaderFields: 1 });
    expect(p.push(b('HTTP/1.1 200 OK\r\nA: 1\r\n\r\n'))?.headers).toEqual([['A', '1']]);
    expect(() => new NphResponseParser({ maxHeaderFields: 1 }).push(b('HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n'))).toThrow(LimitError);
  });

  test('C-28 / K-11: parseHttpStatusLine recognizes status lines only', () => {
    expect(parseHttpStatusLine('HTTP/1.1 200 OK')).toEqual({ version: 'HTTP/1.1', status: 200, reason: 'OK' });
    expect(parseHttpStatusLine('HTTP/1.0 503 Service Unavailable')).toEqual({ version: 'HTTP/1.0', status: 503, reason: 'Service Unavailable' });
    expect(parseHttpStatusLine('HTTP/1.1 204 ')).toEqual({ version: 'HTTP/1.1', status: 204, reason: '' });
    expect(parseHttpStatusLine('HTTP/1.1 100 Continue')?.status).toBe(100);
    for (const bad of ['Status: 200 OK', 'HTTP/1.1 2000 OK', 'HTTP/1.1  200 OK', 'HTTP/11 200 OK', 'http/1.1 200 OK', 'HTTP/1.1 200 O\rK', 'HTTP/1.1 200 O\u0100', 'HTTP/1.1 600 X', '']) {
      expect({ bad, parsed: parseHttpStatusLine(bad) }).toEqual({ bad, parsed: null });
    }
  });
});

describe('property tests', () => {
  const ERROR_CODES = new Set<string>(Object.values(CgiResponseError));

  /** Byte soup biased towards the grammar's interesting tokens. */
  const soup = fc
    .array(
      fc.oneof(
        fc.constantFrom('Status: ', 'status:', 'Location: ', '/', '//', 'http://h/', 'Content-Type: ', 'Content-Length: ', 'Transfer-Encoding: ', 'Connection: ', 'HTTP/1.1 200 OK', '200 OK', '404', ': ', ':', ' ', '\t', '\r', '\n', '\r\n', '\0', 'X-A', '\xe9', '\x7f'),
        fc.uint8Array({ maxLength: 12 }).map((u) => Buffer.from(u).toString('latin1')),
      ),
      { maxLength: 40 },
    )
    .map((parts) => b(parts.join('')));

  const limits = fc.record({ maxLineBytes: fc.integer({ min: 1, max: 64 }), maxHeaderBytes: fc.integer({ min: 1, max: 256 }), maxHeaderFields: fc.integer({ min: 1, max: 8 }) });

  test('C-19..C-25: random bytes give a head or a CGI_* ProtocolError/LimitError, nothing else', () => {
    fc.assert(
      fc.property(fc.oneof(soup, fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.from(u))), (buf) => {
        for (const P of [CgiResponseParser, NphResponseParser]) {
          const p = new P();
          try {
            if (p.push(buf) === undefined) p.end();
          } catch (err) {
            expect(err).toBeInstanceOf(ProtocolError);
            expect(ERROR_CODES.has((err as ProtocolError).code)).toBe(true);
          }
        }
      }),
      { numRuns: 3000 },
    );
  });

  test('C-19: random inputs, random limits, random chunking: same outcome as one chunk', () => {
    fc.assert(
      fc.property(soup, limits, fc.array(fc.nat(), { maxLength: 6 }), (buf, lim, cuts) => {
        const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((x, y) => x - y);
        const chunks: Buffer[] = [];
        let last = 0;
        for (const p of points) {
          chunks.push(buf.subarray(last, p));
          last = p;
        }
        chunks.push(buf.subarray(last));
        expect(run(chunks, lim)).toEqual(run([buf], lim));
      }),
      { numRuns: 3000 },
    );
  });

  test('C-22: any Status value outside NNN[ reason] with NNN in 200..599 is CGI_BAD_STATUS', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'0123456789 \tabcXYZ-'.split('')), maxLength: 8 }), (v) => {
        const o = whole(`Status: ${v}\n\n`);
        const t = v.replace(/^[ \t]+|[ \t]+$/g, '');
        const valid = /^[2-5][0-9]{2}(?:[ \t].*)?$/.test(t);
        if (valid) {
          expect(expectOk(o).status).toBe(Number(t.slice(0, 3)));
        } else {
          expectCode(o, CgiResponseError.BadStatus);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
