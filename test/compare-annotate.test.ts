/**
 * The wire annotator of `gatewire compare` (src/compare/annotate.ts) and its terminal view
 * (src/compare/annotate-text.ts): golden spans for the spec examples and for the repo's own
 * encoders (names and values decoded as encoded), errors and truncation, the field cap, and
 * fast-check properties over every protocol and direction: never a throw, top-level fields that
 * tile the bytes, children inside their parent and in order, at most maxFields + 1 fields.
 */
import fc from 'fast-check';
import { annotateWire } from '../src/compare/annotate.js';
import { renderAnnotations } from '../src/compare/annotate-text.js';
import type { ProtocolName, WireField, WireFieldKind } from '../src/compare/types.js';
import { escapeBytes } from '../src/upstream/wire-dump.js';
import { encodeFastcgiRequest, encodeStdin, encodeStdinEnd } from '../protocols/fastcgi/client.js';
import { ProtocolStatus } from '../protocols/fastcgi/constants.js';
import {
  encodeEndRequest,
  encodeGetValues,
  encodeGetValuesResult,
  encodeParamsStream,
  encodeResponseEnd,
  encodeStderr,
  encodeStdout,
  encodeUnknownType,
} from '../protocols/fastcgi/encoder.js';
import { serializeCgiHead, serializeHttpHead } from '../protocols/cgi/head.js';
import { encodeScgiRequest } from '../protocols/scgi/encoder.js';
import { encodeUwsgiRequest } from '../protocols/uwsgi/encoder.js';

// ---- helpers ----------------------------------------------------------------------------------

type Shape = [start: number, end: number, label: string, kind: WireFieldKind, children?: Shape[]];

/** Fields as `[start, end, label, kind, children]`: what the golden vectors pin. */
function shape(fields: WireField[]): Shape[] {
  return fields.map((f) => (f.children === undefined ? [f.start, f.end, f.label, f.kind] : [f.start, f.end, f.label, f.kind, shape(f.children)]));
}

const ascii = (s: string): number[] => [...Buffer.from(s, 'latin1')];
const bytes = (...parts: Array<number | number[]>): Buffer => Buffer.from(parts.flat());
const concat = (parts: Uint8Array[]): Buffer => Buffer.concat(parts);

function countFields(fields: WireField[]): number {
  return fields.reduce((n, f) => n + 1 + countFields(f.children ?? []), 0);
}

/** The annotator's invariants; throws with the reason so that fast-check shows it. */
function checkFields(buf: Buffer, fields: WireField[], maxFields: number): void {
  let at = 0;
  for (const f of fields) {
    if (f.start !== at || f.end <= f.start) throw new Error(`top-level field ${JSON.stringify(f.label)} [${f.start}, ${f.end}) does not continue at ${at}`);
    at = f.end;
    checkChildren(f);
  }
  if (at !== buf.length) throw new Error(`the fields end at ${at}, the bytes at ${buf.length}`);
  const n = countFields(fields);
  if (n > maxFields + 1) throw new Error(`${n} fields, more than maxFields ${maxFields} + 1`);
  const internal = JSON.stringify(fields).includes('internal error');
  if (internal) throw new Error('an internal error was caught');
}

function checkChildren(parent: WireField): void {
  let at = parent.start;
  for (const c of parent.children ?? []) {
    if (c.start < at || c.end <= c.start || c.end > parent.end) {
      throw new Error(`child ${JSON.stringify(c.label)} [${c.start}, ${c.end}) of ${JSON.stringify(parent.label)} [${parent.start}, ${parent.end}) is out of order or outside it`);
    }
    at = c.end;
    checkChildren(c);
  }
}

function annotate(protocol: ProtocolName, direction: 'request' | 'response', buf: Buffer, options: { envBytes?: number; maxFields?: number } = {}): WireField[] {
  const fields = annotateWire(protocol, direction, buf, options);
  checkFields(buf, fields, options.maxFields ?? 2000);
  return fields;
}

/** The name-value pairs of FastCGI records as decoded: `[label, detail]` of each pair's last piece. */
function fastcgiPairs(fields: WireField[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const record of fields) {
    const content = record.children?.find((c) => c.label.endsWith(' content') && c.kind === 'value');
    for (const piece of content?.children ?? []) {
      if (piece.detail?.includes('continues in the next') === true) continue;
      out.push([piece.label, (piece.detail ?? '').replace(/; continued from an earlier FCGI_PARAMS record$/, '')]);
    }
  }
  return out;
}

const shown = (value: string): string => (value === '' ? '(empty)' : escapeBytes(value, 200));

const labels = (fields: WireField[]): string[] => fields.map((f) => f.label);

// ---- FastCGI ----------------------------------------------------------------------------------

/** The FastCGI spec's Appendix B ("Typical Protocol Message Flow"): the request with a body, then the answer, as bytes. */
const SPEC_REQUEST = bytes(
  [0x01, 0x01, 0x00, 0x01, 0x00, 0x08, 0x00, 0x00], // BEGIN_REQUEST, id 1, length 8
  [0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // role RESPONDER, flags 0, reserved
  [0x01, 0x04, 0x00, 0x01, 0x00, 0x2a, 0x06, 0x00], // PARAMS, id 1, length 42, padding 6
  [0x0b, 0x02],
  ascii('SERVER_PORT80'), // "\013\002SERVER_PORT80"
  [0x0b, 0x0e],
  ascii('SERVER_ADDR199.170.183.42'), // "\013\016SERVER_ADDR199.170.183.42"
  [0, 0, 0, 0, 0, 0], // padding
  [0x01, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00], // PARAMS EOS
  [0x01, 0x05, 0x00, 0x01, 0x00, 0x19, 0x07, 0x00], // STDIN, id 1, length 25, padding 7
  ascii('quantity=100&item=3047936'),
  [0, 0, 0, 0, 0, 0, 0],
  [0x01, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00], // STDIN EOS
);

const SPEC_STDOUT = 'Content-type: text/html\r\n\r\n<html>\n<head>';
const SPEC_RESPONSE = bytes(
  [0x01, 0x06, 0x00, 0x01, 0x00, 0x28, 0x00, 0x00], // STDOUT, id 1, length 40
  ascii(SPEC_STDOUT),
  [0x01, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00], // STDOUT EOS
  [0x01, 0x03, 0x00, 0x01, 0x00, 0x08, 0x00, 0x00], // END_REQUEST, id 1, length 8
  [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // appStatus 0, REQUEST_COMPLETE, reserved
);

describe('FastCGI records, both ways', () => {
  test('the spec example request: BEGIN_REQUEST, PARAMS pairs, the empty PARAMS, STDIN, the empty STDIN', () => {
    const fields = annotate('fastcgi', 'request', SPEC_REQUEST);
    expect(shape(fields)).toEqual([
      [0, 16, 'FCGI_BEGIN_REQUEST', 'header', [
        [0, 8, 'FCGI_BEGIN_REQUEST header', 'header'],
        [8, 16, 'FCGI_BeginRequestBody', 'header', [[8, 10, 'role', 'value'], [10, 11, 'flags', 'value'], [11, 16, 'reserved', 'padding']]],
      ]],
      [16, 72, 'FCGI_PARAMS', 'value', [
        [16, 24, 'FCGI_PARAMS header', 'header'],
        [24, 66, 'FCGI_PARAMS content', 'value', [
          [24, 39, 'SERVER_PORT', 'value', [[24, 25, 'name length', 'length'], [25, 26, 'value length', 'length'], [26, 37, 'name', 'name'], [37, 39, 'value', 'value']]],
          [39, 66, 'SERVER_ADDR', 'value', [[39, 40, 'name length', 'length'], [40, 41, 'value length', 'length'], [41, 52, 'name', 'name'], [52, 66, 'value', 'value']]],
        ]],
        [66, 72, 'FCGI_PARAMS padding', 'padding'],
      ]],
      [72, 80, 'FCGI_PARAMS', 'end', [[72, 80, 'FCGI_PARAMS header', 'header']]],
      [80, 120, 'FCGI_STDIN', 'body', [
        [80, 88, 'FCGI_STDIN header', 'header'],
        [88, 113, 'stdin: request body bytes', 'body'],
        [113, 120, 'FCGI_STDIN padding', 'padding'],
      ]],
      [120, 128, 'FCGI_STDIN', 'end', [[120, 128, 'FCGI_STDIN header', 'header']]],
    ]);
    const [begin, params, paramsEnd, stdin, stdinEnd] = fields as [WireField, WireField, WireField, WireField, WireField];
    expect(begin.detail).toBe('version=1 type=1 requestId=1 contentLength=8 paddingLength=0');
    expect(begin.children?.[1]?.detail).toBe('role=FCGI_RESPONDER flags=0');
    expect(begin.children?.[1]?.children?.map((c) => c.detail)).toEqual(['FCGI_RESPONDER (1)', '0: the application closes the connection after the request', '5 bytes, ignored']);
    expect(params.detail).toBe('version=1 type=4 requestId=1 contentLength=42 paddingLength=6');
    expect(fastcgiPairs(fields)).toEqual([['SERVER_PORT', '80'], ['SERVER_ADDR', '199.170.183.42']]);
    expect(params.children?.[1]?.children?.[0]?.children?.map((c) => c.detail)).toEqual(['11 (1 byte)', '2 (1 byte)', 'SERVER_PORT', '80']);
    expect([paramsEnd.detail, stdinEnd.detail]).toEqual(['end of the PARAMS stream', 'end of the STDIN stream']);
    expect(paramsEnd.children?.[0]?.detail).toBe('version=1 type=4 requestId=1 contentLength=0 paddingLength=0');
    expect(stdin.children?.[1]?.detail).toBe('"quantity=100&item=3047936"');
  });

  test('the spec example answer: STDOUT with its text, the empty STDOUT, END_REQUEST', () => {
    const fields = annotate('fastcgi', 'response', SPEC_RESPONSE);
    expect(shape(fields)).toEqual([
      [0, 48, 'FCGI_STDOUT', 'body', [[0, 8, 'FCGI_STDOUT header', 'header'], [8, 48, 'stdout: CGI response bytes', 'body']]],
      [48, 56, 'FCGI_STDOUT', 'end', [[48, 56, 'FCGI_STDOUT header', 'header']]],
      [56, 72, 'FCGI_END_REQUEST', 'end', [
        [56, 64, 'FCGI_END_REQUEST header', 'header'],
        [64, 72, 'FCGI_EndRequestBody', 'end', [[64, 68, 'appStatus', 'value'], [68, 69, 'protocolStatus', 'value'], [69, 72, 'reserved', 'padding']]],
      ]],
    ]);
    expect(fields[0]?.children?.[1]?.detail).toBe(`"${escapeBytes(SPEC_STDOUT, 200, true)}"`);
    expect(fields[2]?.children?.[1]?.detail).toBe('appStatus=0 protocolStatus=FCGI_REQUEST_COMPLETE');
    expect(fields[2]?.children?.[1]?.children?.[1]?.detail).toBe('FCGI_REQUEST_COMPLETE (0)');
  });

  test("encodeFastcgiRequest's records: the pairs decode to the params given (4-byte lengths too), KEEP_CONN, STDIN", () => {
    const params: Array<[string, string]> = [
      ['SCRIPT_FILENAME', '/srv/www/index.php'],
      ['QUERY_STRING', ''],
      ['HTTP_X_LONG', 'v'.repeat(150)],
      ['N'.repeat(130), 'short'],
    ];
    const [begin, stream] = encodeFastcgiRequest(3, { keepConn: true, params });
    const buf = concat([begin, stream, ...encodeStdin(3, Buffer.from('a=1')), encodeStdinEnd(3)]);
    const fields = annotate('fastcgi', 'request', buf);
    expect(labels(fields)).toEqual(['FCGI_BEGIN_REQUEST', 'FCGI_PARAMS', 'FCGI_PARAMS', 'FCGI_STDIN', 'FCGI_STDIN']);
    expect(fields[0]?.children?.[1]?.children?.[1]?.detail).toBe('FCGI_KEEP_CONN: the connection stays open for the next request');
    expect(fastcgiPairs(fields)).toEqual(params.map(([n, v]): [string, string] => [escapeBytes(n, 80), shown(v)]));
    const long = fields[1]?.children?.[1]?.children?.[3];
    expect(long?.children?.map((c) => [c.label, c.detail])).toEqual([
      ['name length', '130 (4 bytes, high bit set)'],
      ['value length', '5 (1 byte)'],
      ['name', 'N'.repeat(130)],
      ['value', 'short'],
    ]);
    expect(fields[1]?.detail).toMatch(/^version=1 type=4 requestId=3 contentLength=\d+ paddingLength=\d$/);
    expect(fields[3]?.children?.[1]?.detail).toBe('"a=1"');
  });

  test('F-17: a pair cut across PARAMS records is annotated in each, "continues in the next record"', () => {
    const pairs: Array<[string, string]> = [['SCRIPT_FILENAME', '/srv/www/index.php'], ['A', 'b'], ['LONG', 'x'.repeat(200)]];
    const buf = encodeParamsStream(1, pairs, 5);
    const fields = annotate('fastcgi', 'request', buf);
    expect(fastcgiPairs(fields)).toEqual(pairs.map(([n, v]): [string, string] => [n, shown(v)]));
    const first = fields[0]?.children?.[1]?.children?.[0];
    expect(first?.label).toBe('SCRIPT_FILENAME');
    expect(first?.detail).toBe('/srv/www/index.php; continues in the next FCGI_PARAMS record');
    expect(first?.children?.map((c) => c.label)).toEqual(['name length', 'value length', 'name']);
    expect(first?.children?.[2]?.detail).toBe('SCRIPT_FILENAME (3 of its 15 bytes in this record)');
    const middle = fields[1]?.children?.[1]?.children?.[0];
    expect(middle?.detail).toBe('/srv/www/index.php; continued from an earlier FCGI_PARAMS record; continues in the next FCGI_PARAMS record');
    // The 4-byte length of LONG's value is itself cut by a record boundary somewhere: every byte is still annotated.
    expect(fields[fields.length - 1]?.detail).toBe('end of the PARAMS stream');
  });

  test("the server encoder's answers: STDOUT, STDERR, the F-35 end, END_REQUEST statuses, GET_VALUES(_RESULT), UNKNOWN_TYPE", () => {
    const answer = concat([
      ...encodeStdout(1, Buffer.from('Status: 404 Not Found\r\n\r\nnope')),
      ...encodeStderr(1, Buffer.from('warning\n')),
      encodeResponseEnd(1, 0, true),
      encodeEndRequest(2, 7, ProtocolStatus.Overloaded),
      encodeGetValuesResult([['FCGI_MPXS_CONNS', '1'], ['FCGI_MAX_REQS', '50']]),
      encodeUnknownType(99),
    ]);
    const fields = annotate('fastcgi', 'response', answer);
    expect(labels(fields)).toEqual(['FCGI_STDOUT', 'FCGI_STDERR', 'FCGI_STDOUT', 'FCGI_STDERR', 'FCGI_END_REQUEST', 'FCGI_END_REQUEST', 'FCGI_GET_VALUES_RESULT', 'FCGI_UNKNOWN_TYPE']);
    expect(fields.map((f) => f.kind)).toEqual(['body', 'body', 'end', 'end', 'end', 'end', 'value', 'header']);
    expect(fields[1]?.children?.[1]).toMatchObject({ label: 'stderr: error log bytes', detail: '"warning\\n"' });
    expect(fields[5]?.children?.[1]?.detail).toBe('appStatus=7 protocolStatus=FCGI_OVERLOADED');
    expect(fastcgiPairs(fields)).toEqual([['FCGI_MPXS_CONNS', '1'], ['FCGI_MAX_REQS', '50']]);
    expect(fields[7]?.children?.[1]?.children?.[0]).toMatchObject({ label: 'type', detail: '99 (record type 99)' });
    const query = annotate('fastcgi', 'request', encodeGetValues(['FCGI_MAX_CONNS', 'FCGI_MAX_REQS']));
    expect(fastcgiPairs(query)).toEqual([['FCGI_MAX_CONNS', '(empty)'], ['FCGI_MAX_REQS', '(empty)']]);
    expect(query[0]?.detail).toBe('version=1 type=9 requestId=0 contentLength=31 paddingLength=1');
  });

  test('not FastCGI, a short header, a record cut short, a bad BEGIN_REQUEST body, a stream that ends inside a pair', () => {
    expect(shape(annotate('fastcgi', 'response', Buffer.from('HTTP/1.1 200 OK\r\n')))).toEqual([[0, 17, 'not a FastCGI record', 'error']]);
    expect(annotate('fastcgi', 'response', Buffer.from('nope'))[0]?.detail).toBe('version byte 110 (0x6e), expected 1 (FCGI_VERSION_1); 4 bytes from here');
    const stdout = concat(encodeStdout(1, Buffer.from('x'.repeat(100))));
    const cut = annotate('fastcgi', 'response', Buffer.concat([stdout, Buffer.from([1, 6, 0])]));
    expect(shape(cut).slice(1)).toEqual([[112, 115, 'truncated record header', 'error']]);
    const short = annotate('fastcgi', 'response', stdout.subarray(0, 50));
    expect(shape(short)).toEqual([[0, 50, 'FCGI_STDOUT', 'body', [[0, 8, 'FCGI_STDOUT header', 'header'], [8, 50, 'stdout: CGI response bytes', 'body']]]]);
    expect(short[0]?.detail).toBe('version=1 type=6 requestId=1 contentLength=100 paddingLength=4; the bytes end after 50 of its 112 bytes');
    const badBegin = annotate('fastcgi', 'request', bytes([1, 1, 0, 1, 0, 7, 1, 0], [0, 1, 0, 0, 0, 0, 0], [0]));
    expect(shape(badBegin)[0]).toEqual([0, 16, 'FCGI_BEGIN_REQUEST', 'header', [[0, 8, 'FCGI_BEGIN_REQUEST header', 'header'], [8, 15, 'FCGI_BeginRequestBody', 'error'], [15, 16, 'FCGI_BEGIN_REQUEST padding', 'padding']]]);
    // F-18: PARAMS content 0b 02 "SERVER" (the pair wants 13 bytes), then the empty PARAMS record.
    const cutPair = annotate('fastcgi', 'request', bytes([1, 4, 0, 1, 0, 8, 0, 0, 0x0b, 0x02], ascii('SERVER'), [1, 4, 0, 1, 0, 0, 0, 0]));
    expect(cutPair[0]?.children?.[1]?.children?.[0]).toMatchObject({ label: 'incomplete pair', kind: 'error', detail: 'the stream ends inside this pair: 7 bytes missing (F-18)' });
    expect(cutPair[1]?.detail).toBe('end of the PARAMS stream, inside a pair (F-18: 8 bytes of it came before)');
    // The same cut by the end of the bytes is not the stream's fault.
    const open = annotate('fastcgi', 'request', bytes([1, 4, 0, 1, 0, 8, 0, 0, 0x0b, 0x02], ascii('SERVER')));
    expect(open[0]?.children?.[1]?.children?.[0]).toMatchObject({ label: 'incomplete pair', kind: 'value', detail: 'the bytes end inside this pair: 7 bytes missing' });
    expect(annotate('fastcgi', 'request', Buffer.alloc(0))).toEqual([]);
  });
});

// ---- SCGI, uwsgi, CGI requests ----------------------------------------------------------------

const SCGI_SPEC = Buffer.from('70:CONTENT_LENGTH\x0027\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00REQUEST_URI\x00/deepthought\x00,What is the answer to life?', 'latin1');

function scgiPair(start: number, name: string, value: string): Shape {
  const nul = start + name.length;
  const end = nul + 1 + value.length;
  return [start, end + 1, name, 'value', [[start, nul, 'name', 'name'], [nul, nul + 1, 'NUL', 'end'], [nul + 1, end, 'value', 'value'], [end, end + 1, 'NUL', 'end']]];
}

describe('SCGI, uwsgi and CGI requests', () => {
  test('the SCGI spec example: the netstring length, four pairs, the comma, the body', () => {
    const fields = annotate('scgi', 'request', SCGI_SPEC);
    expect(shape(fields)).toEqual([
      [0, 3, 'netstring length', 'length'],
      scgiPair(3, 'CONTENT_LENGTH', '27'),
      scgiPair(21, 'SCGI', '1'),
      scgiPair(28, 'REQUEST_METHOD', 'POST'),
      scgiPair(48, 'REQUEST_URI', '/deepthought'),
      [73, 74, 'netstring end', 'end'],
      [74, 101, 'body', 'body'],
    ]);
    expect(fields.map((f) => f.detail)).toEqual(['70 bytes of headers follow', '27', '1', 'POST', '/deepthought', '"," ends the header block; the body follows', '27 bytes']);
  });

  test('encodeScgiRequest: the pairs decode to the headers given; a body longer than CONTENT_LENGTH is said to be', () => {
    const headers: Array<[string, string]> = [['REQUEST_METHOD', 'PUT'], ['PATH_INFO', '/\u00e9'], ['HTTP_X_EMPTY', '']];
    const fields = annotate('scgi', 'request', Buffer.concat([encodeScgiRequest(headers, 2), Buffer.from('xyz')]));
    const pairs = fields.filter((f) => f.kind === 'value').map((f) => [f.label, f.detail]);
    expect(pairs).toEqual([['CONTENT_LENGTH', '2'], ['SCGI', '1'], ...headers.map(([n, v]) => [n, shown(v)])]);
    expect(fields[fields.length - 1]).toMatchObject({ label: 'body', detail: '3 bytes (CONTENT_LENGTH says 2)' });
  });

  test('SCGI errors: not a netstring, a name without a value, no comma', () => {
    expect(shape(annotate('scgi', 'request', Buffer.from('GET / HTTP/1.1\r\n')))).toEqual([[0, 16, 'not an SCGI netstring', 'error']]);
    const odd = annotate('scgi', 'request', Buffer.from('6:A\x00B\x00C\x00,body', 'latin1'));
    expect(shape(odd)).toEqual([[0, 2, 'netstring length', 'length'], scgiPair(2, 'A', 'B'), [6, 8, 'incomplete header', 'error'], [8, 9, 'netstring end', 'end'], [9, 13, 'body', 'body']]);
    const noComma = annotate('scgi', 'request', Buffer.from('4:A\x00B\x00;x', 'latin1'));
    expect(shape(noComma).slice(2)).toEqual([[6, 8, 'not the netstring end', 'error']]);
    const leading = annotate('scgi', 'request', Buffer.from('04:A\x00B\x00,', 'latin1'));
    expect(leading[0]?.detail).toBe('4 bytes of headers follow (a leading 0 is not allowed, S-1)');
  });

  test('a uwsgi packet: the header (modifier1, datasize, modifier2), the vars, the body', () => {
    const buf = bytes([0x00, 0x24, 0x00, 0x00], [0x0e, 0x00], ascii('REQUEST_METHOD'), [0x03, 0x00], ascii('GET'), [0x09, 0x00], ascii('PATH_INFO'), [0x02, 0x00], ascii('/a'), ascii('zz'));
    expect(buf.subarray(0, 40)).toEqual(encodeUwsgiRequest([['REQUEST_METHOD', 'GET'], ['PATH_INFO', '/a']]));
    const fields = annotate('uwsgi', 'request', buf);
    expect(shape(fields)).toEqual([
      [0, 4, 'uwsgi packet header', 'header', [[0, 1, 'modifier1', 'value'], [1, 3, 'datasize', 'length'], [3, 4, 'modifier2', 'value']]],
      [4, 25, 'REQUEST_METHOD', 'value', [[4, 6, 'key length', 'length'], [6, 20, 'key', 'name'], [20, 22, 'value length', 'length'], [22, 25, 'value', 'value']]],
      [25, 40, 'PATH_INFO', 'value', [[25, 27, 'key length', 'length'], [27, 36, 'key', 'name'], [36, 38, 'value length', 'length'], [38, 40, 'value', 'value']]],
      [40, 42, 'body', 'body'],
    ]);
    expect(fields[0]?.children?.map((c) => c.detail)).toEqual(['0 (WSGI/default)', '36 (little-endian): the size of the vars block', '0']);
    expect(fields[1]?.children?.map((c) => c.detail)).toEqual(['14 (LE16)', 'REQUEST_METHOD', '3 (LE16)', 'GET']);
  });

  test('encodeUwsgiRequest: vars with NUL and latin1 decode as given; modifiers named; errors inside the vars block', () => {
    const vars: Array<[string, string]> = [['CONTENT_LENGTH', '4'], ['HTTP_X_NUL', 'a\0b'], ['PATH_INFO', '/\u00ff']];
    const fields = annotate('uwsgi', 'request', Buffer.concat([encodeUwsgiRequest(vars, { modifier1: 5, modifier2: 1 }), Buffer.from('body')]));
    expect(fields.slice(1, 4).map((f) => [f.label, f.detail])).toEqual(vars.map(([k, v]) => [k, shown(v)]));
    expect(fields[0]?.children?.[0]?.detail).toBe('5 (Perl PSGI)');
    expect(fields[4]).toMatchObject({ label: 'body', detail: '4 bytes' });
    expect(shape(annotate('uwsgi', 'request', Buffer.from([0, 4])))).toEqual([[0, 2, 'truncated uwsgi header', 'error']]);
    // datasize 5: a key length of 1, key "A", then 2 bytes that are not a whole var.
    const bad = annotate('uwsgi', 'request', bytes([0, 5, 0, 0], [1, 0], ascii('A'), [9, 0], ascii('rest')));
    expect(shape(bad)).toEqual([[0, 4, 'uwsgi packet header', 'header', expect.any(Array) as unknown as Shape[]], [4, 9, 'incomplete var', 'error'], [9, 13, 'body', 'body']]);
  });

  test('a CGI environment block and stdin: NAME=VALUE NUL per variable, then stdin', () => {
    const env = Buffer.from('REQUEST_METHOD=POST\0CONTENT_LENGTH=5\0EMPTY=\0', 'latin1');
    const buf = Buffer.concat([env, Buffer.from('hello')]);
    const fields = annotate('cgi', 'request', buf, { envBytes: env.length });
    expect(shape(fields)).toEqual([
      [0, 20, 'REQUEST_METHOD', 'value', [[0, 14, 'name', 'name'], [14, 15, '=', 'end'], [15, 19, 'value', 'value'], [19, 20, 'NUL', 'end']]],
      [20, 37, 'CONTENT_LENGTH', 'value', [[20, 34, 'name', 'name'], [34, 35, '=', 'end'], [35, 36, 'value', 'value'], [36, 37, 'NUL', 'end']]],
      [37, 44, 'EMPTY', 'value', [[37, 42, 'name', 'name'], [42, 43, '=', 'end'], [43, 44, 'NUL', 'end']]],
      [44, 49, 'stdin', 'body'],
    ]);
    expect(fields.map((f) => f.detail)).toEqual(['POST', '5', '(empty)', '5 bytes']);
    // Without envBytes the whole buffer is the block; a variable without its NUL is said to be.
    expect(shape(annotate('cgi', 'request', Buffer.from('A=1\0B=2')))).toEqual([
      [0, 4, 'A', 'value', expect.any(Array) as unknown as Shape[]],
      [4, 7, 'incomplete variable', 'error'],
    ]);
    expect(labels(annotate('cgi', 'request', Buffer.from('NOEQUALS\0A=1\0'), { envBytes: 1e9 }))).toEqual(['not a variable', 'A']);
    expect(labels(annotate('cgi', 'request', Buffer.from('stdin only'), { envBytes: 0 }))).toEqual(['stdin']);
  });
});

// ---- HTTP-style heads -------------------------------------------------------------------------

describe('HTTP, and the CGI heads of SCGI, uwsgi and CGI answers', () => {
  test('an HTTP request: the request line, a field per line (name, value), the empty line, the body', () => {
    const buf = Buffer.from('POST /form?a=1 HTTP/1.1\r\nHost: example.com\r\nX-Probe:  two words \r\nContent-Length: 3\r\n\r\nk=v');
    const fields = annotate('http', 'request', buf);
    expect(shape(fields)).toEqual([
      [0, 25, 'request line', 'header', [[0, 4, 'method', 'value'], [5, 14, 'target', 'value'], [15, 23, 'version', 'value']]],
      [25, 44, 'Host', 'value', [[25, 29, 'name', 'name'], [31, 42, 'value', 'value']]],
      [44, 66, 'X-Probe', 'value', [[44, 51, 'name', 'name'], [54, 63, 'value', 'value']]],
      [66, 85, 'Content-Length', 'value', [[66, 80, 'name', 'name'], [82, 83, 'value', 'value']]],
      [85, 87, 'end of head', 'end'],
      [87, 90, 'body', 'body'],
    ]);
    expect(fields.map((f) => f.detail)).toEqual([
      'method=POST target=/form?a=1 version=HTTP/1.1',
      'example.com',
      'two words',
      '3',
      'empty line (CRLF): the head ends, the body follows',
      '3 bytes',
    ]);
  });

  test('an HTTP answer, a 100 Continue before it, bare LF line ends', () => {
    const buf = Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\nContent-Type: text/plain\n\nhi');
    const fields = annotate('http', 'response', buf);
    expect(shape(fields).map((f) => f.slice(0, 4))).toEqual([
      [0, 23, 'status line', 'header'],
      [23, 25, 'end of head', 'end'],
      [25, 41, 'status line', 'header'],
      [41, 66, 'Content-Type', 'value'],
      [66, 67, 'end of head', 'end'],
      [67, 69, 'body', 'body'],
    ]);
    expect(fields[2]?.detail).toBe('version=HTTP/1.1 status=200 reason=OK (bare LF)');
    expect(fields[2]?.children?.map((c) => [c.label, c.detail])).toEqual([['version', 'HTTP/1.1'], ['status code', '200'], ['reason', 'OK']]);
  });

  test('a chunked answer: each chunk (size line, data, CRLF), the last chunk, a trailer field, the end', () => {
    const buf = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nA;x=1\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n');
    const fields = annotate('http', 'response', buf);
    expect(shape(fields).slice(3)).toEqual([
      [47, 57, 'chunk', 'body', [[47, 50, 'chunk size', 'length'], [50, 55, 'chunk data', 'body'], [55, 57, 'chunk end', 'end']]],
      [57, 76, 'chunk', 'body', [[57, 64, 'chunk size', 'length'], [64, 74, 'chunk data', 'body'], [74, 76, 'chunk end', 'end']]],
      [76, 79, 'last chunk', 'end', [[76, 79, 'chunk size', 'length']]],
      [79, 89, 'X-Sum', 'value', [[79, 84, 'name', 'name'], [86, 87, 'value', 'value']]],
      [89, 91, 'end of chunked body', 'end'],
    ]);
    expect(fields[4]?.children?.[0]?.detail).toBe('0xA = 10 bytes of data follow, extensions ;x=1');
    const broken = annotate('http', 'response', Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'));
    expect(shape(broken)[3]).toEqual([47, 51, 'not a chunk size line', 'error']);
    const cut = annotate('http', 'response', Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel'));
    expect(cut[3]?.detail).toBe('5 bytes of data (the bytes end after 3)');
  });

  test('CGI heads (SCGI and CGI answers): Status field, HTTP status line (uWSGI), LF ends; uwsgi answers are HTTP', () => {
    const cgi = annotate('cgi', 'response', Buffer.from('Status: 404 Not Found\nContent-Type: text/plain\n\nnope'));
    expect(shape(cgi).map((f) => f.slice(0, 4))).toEqual([[0, 22, 'Status', 'value'], [22, 47, 'Content-Type', 'value'], [47, 48, 'end of head', 'end'], [48, 52, 'body', 'body']]);
    expect(cgi[0]?.detail).toBe('404 Not Found');
    const scgi = annotate('scgi', 'response', Buffer.concat([serializeHttpHead('HTTP/1.1', 200, 'OK', [['X-A', '1']]), Buffer.from('x')]));
    expect(labels(scgi)).toEqual(['status line', 'X-A', 'end of head', 'body']);
    expect(scgi[0]?.detail).toBe('version=HTTP/1.1 status=200 reason=OK (an HTTP status line where a CGI head has a Status field)');
    const head = serializeCgiHead(200, 'OK', [['Content-Type', 'text/html'], ['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2']]);
    expect(annotate('scgi', 'response', head).map((f) => [f.label, f.detail])).toEqual([
      ['Status', '200 OK'],
      ['Content-Type', 'text/html'],
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
      ['end of head', 'empty line (CRLF): the head ends, the body follows'],
    ]);
    expect(labels(annotate('uwsgi', 'response', Buffer.concat([serializeHttpHead('HTTP/1.1', 204, 'No Content', []), Buffer.alloc(0)])))).toEqual(['status line', 'end of head']);
  });

  test('not HTTP, an incomplete head, a line that is not a field', () => {
    expect(shape(annotate('http', 'request', Buffer.from('\x16\x03\x01 TLS?\r\n\r\n', 'latin1')))).toEqual([[0, 12, 'not a request line', 'error']]);
    expect(shape(annotate('http', 'response', Buffer.from('garbage')))).toEqual([[0, 7, 'incomplete head', 'error']]);
    expect(shape(annotate('uwsgi', 'response', Buffer.from('\r\nx')))).toEqual([[0, 3, 'not a status line', 'error']]);
    const odd = annotate('cgi', 'response', Buffer.from('Content-Type: text/plain\nno colon here\n continued\n\nbody'));
    expect(odd.map((f) => [f.label, f.kind])).toEqual([
      ['Content-Type', 'value'],
      ['not a header line', 'error'],
      ['continuation line', 'value'],
      ['end of head', 'end'],
      ['body', 'body'],
    ]);
  });
});

// ---- the cap ----------------------------------------------------------------------------------

describe('maxFields', () => {
  test('past the cap one field says what is not annotated; a record that does not fit keeps what does', () => {
    const buf = concat(Array.from({ length: 50 }, () => concat(encodeStdout(1, Buffer.from('ab')))));
    const fields = annotate('fastcgi', 'response', buf, { maxFields: 10 });
    expect(countFields(fields)).toBe(11);
    const last = fields[fields.length - 1] as WireField;
    expect(last).toMatchObject({ label: `not annotated (${buf.length - last.start} bytes)`, kind: 'body', detail: 'the first 10 fields are annotated (maxFields)' });
    const params = encodeParamsStream(1, Array.from({ length: 30 }, (_, i): [string, string] => [`N${i}`, `v${i}`]));
    const cut = annotate('fastcgi', 'request', params, { maxFields: 12 });
    expect(countFields(cut)).toBe(13);
    expect(cut[0]?.detail).toMatch(/; \d+ more fields not annotated \(maxFields\)$/);
    expect(cut.map((f) => f.label)).toEqual(['FCGI_PARAMS', 'not annotated (8 bytes)']);
    expect(annotate('http', 'request', Buffer.from('GET / HTTP/1.1\r\n\r\n'), { maxFields: 0 })).toEqual([
      { start: 0, end: 18, label: 'not annotated (18 bytes)', kind: 'body', detail: 'the first 0 fields are annotated (maxFields)' },
    ]);
  });
});

// ---- properties -------------------------------------------------------------------------------

const DIRECTIONS: Array<[ProtocolName, 'request' | 'response']> = [
  ['http', 'request'],
  ['http', 'response'],
  ['fastcgi', 'request'],
  ['fastcgi', 'response'],
  ['scgi', 'request'],
  ['scgi', 'response'],
  ['uwsgi', 'request'],
  ['uwsgi', 'response'],
  ['cgi', 'request'],
  ['cgi', 'response'],
];

/** Printable-ish latin1 text: the chars the grammars care about (NUL, CR, LF, ':', '=') come up often. */
const text = (maxLength: number) =>
  fc.string({ unit: fc.oneof(fc.constantFrom('\0', '\r', '\n', ':', '=', ' ', ';', ','), fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c))), maxLength });
const token = fc.string({ unit: fc.constantFrom(...'ABCXYZ_-09'), minLength: 1, maxLength: 12 });
const latin1 = (maxLength: number) => fc.string({ unit: fc.integer({ min: 1, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength });
/** FastCGI-shaped bytes: records of any type whose lengths are usually right, with name-value-ish content. */
const fastcgiLike = fc
  .array(
    fc.record({
      version: fc.oneof(fc.constant(1), fc.constant(1), fc.constant(1), fc.nat({ max: 3 })),
      type: fc.nat({ max: 12 }),
      id: fc.nat({ max: 2 }),
      content: fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.array(fc.oneof(fc.nat({ max: 6 }), fc.constantFrom(0x80, 0x00, 0x7f)), { maxLength: 20 }).map((a) => Uint8Array.from(a))),
      skew: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: -3, max: 3 })),
      padding: fc.nat({ max: 9 }),
    }),
    { maxLength: 8 },
  )
  .map((records) =>
    Buffer.concat(
      records.map(({ version, type, id, content, skew, padding }) => {
        const length = Math.max(0, content.length + skew);
        return Buffer.concat([Buffer.from([version, type, 0, id, length >> 8, length & 0xff, padding, 0]), Buffer.from(content), Buffer.alloc(padding)]);
      }),
    ),
  );
const pairsArb = fc.array(fc.tuple(token, latin1(160)), { maxLength: 6 });
const bodyArb = fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b));

function chunked(body: Buffer, sizes: number[]): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (const size of sizes) {
    if (at >= body.length) break;
    const piece = body.subarray(at, at + Math.max(1, size));
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'));
    at += piece.length;
  }
  if (at < body.length) parts.push(Buffer.from(`${(body.length - at).toString(16)}\r\n`), body.subarray(at), Buffer.from('\r\n'));
  return Buffer.concat([...parts, Buffer.from('0\r\n\r\n')]);
}

const headerArb = fc.array(fc.tuple(token, latin1(30).map((v) => v.replace(/[\r\n]/g, ' '))), { maxLength: 5 });

/** Well-formed bytes of each protocol and direction, from the repo's encoders. */
const wellFormed: Record<`${ProtocolName}/${'request' | 'response'}`, fc.Arbitrary<{ buf: Buffer; envBytes?: number }>> = {
  'http/request': fc.tuple(headerArb, bodyArb).map(([headers, body]) => ({
    buf: Buffer.concat([Buffer.from(`POST /x HTTP/1.1\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}Content-Length: ${body.length}\r\n\r\n`, 'latin1'), body]),
  })),
  'http/response': fc.tuple(headerArb, bodyArb, fc.array(fc.nat({ max: 12 }), { maxLength: 4 }), fc.boolean()).map(([headers, body, sizes, isChunked]) => ({
    buf: Buffer.concat([serializeHttpHead('HTTP/1.1', 200, 'OK', isChunked ? [...headers, ['Transfer-Encoding', 'chunked']] : headers), isChunked ? chunked(body, sizes) : body]),
  })),
  'fastcgi/request': fc.tuple(pairsArb, bodyArb, fc.integer({ min: 1, max: 40 }), fc.boolean()).map(([params, body, recordSize, split]) => {
    const [begin, stream] = encodeFastcgiRequest(1, { keepConn: true, params });
    return { buf: concat([begin, split ? encodeParamsStream(1, params, recordSize) : stream, ...encodeStdin(1, body), encodeStdinEnd(1)]) };
  }),
  'fastcgi/response': fc.tuple(bodyArb, bodyArb, pairsArb).map(([out, err, values]) => ({
    buf: concat([...encodeStdout(1, out), ...encodeStderr(1, err), encodeResponseEnd(1, 0, err.length > 0), encodeGetValuesResult(values)]),
  })),
  'scgi/request': fc.tuple(fc.array(fc.tuple(token.filter((n) => n !== 'SCGI'), latin1(40).map((v) => v.replace(/\0/g, ''))), { maxLength: 5 }), bodyArb).map(([headers, body]) => ({
    buf: Buffer.concat([encodeScgiRequest(headers, body.length), body]),
  })),
  'scgi/response': fc.tuple(headerArb, bodyArb).map(([headers, body]) => ({ buf: Buffer.concat([serializeCgiHead(200, 'OK', headers), body]) })),
  'uwsgi/request': fc.tuple(pairsArb, bodyArb).map(([vars, body]) => ({ buf: Buffer.concat([encodeUwsgiRequest(vars), body]) })),
  'uwsgi/response': fc.tuple(headerArb, bodyArb).map(([headers, body]) => ({ buf: Buffer.concat([serializeHttpHead('HTTP/1.1', 404, 'Not Found', headers), body]) })),
  'cgi/request': fc.tuple(fc.array(fc.tuple(token, latin1(30).map((v) => v.replace(/\0/g, ''))), { maxLength: 6 }), bodyArb).map(([vars, body]) => {
    const env = Buffer.from(vars.map(([n, v]) => `${n}=${v}\0`).join(''), 'latin1');
    return { buf: Buffer.concat([env, body]), envBytes: env.length };
  }),
  'cgi/response': fc.tuple(headerArb, bodyArb).map(([headers, body]) => ({ buf: Buffer.concat([serializeCgiHead(500, 'Internal Server Error', headers), body]) })),
};

function hasError(fields: WireField[]): boolean {
  return fields.some((f) => f.kind === 'error' || hasError(f.children ?? []));
}

describe('properties, every protocol and direction', () => {
  for (const [protocol, direction] of DIRECTIONS) {
    const key = `${protocol}/${direction}` as const;
    test(`${key}: arbitrary bytes never throw, tile the buffer, nest in order, stay under maxFields + 1`, () => {
      fc.assert(
        fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)), text(200).map((t) => Buffer.from(t, 'latin1')), fastcgiLike), fc.option(fc.nat({ max: 30 }), { nil: undefined }), fc.option(fc.integer({ min: -5, max: 400 }), { nil: undefined }), (buf, maxFields, envBytes) => {
          const options = { ...(maxFields === undefined ? {} : { maxFields }), ...(envBytes === undefined ? {} : { envBytes }) };
          checkFields(buf, annotateWire(protocol, direction, buf, options), maxFields ?? 2000);
        }),
        { numRuns: 600 },
      );
    });

    test(`${key}: encoder output whole has no error field; cut, sliced or with a byte changed it keeps the invariants`, () => {
      fc.assert(
        fc.property(wellFormed[key], fc.nat(), fc.nat(), fc.nat({ max: 255 }), fc.option(fc.nat({ max: 30 }), { nil: undefined }), ({ buf, envBytes }, a, b, byte, maxFields) => {
          const env = envBytes === undefined ? {} : { envBytes };
          const whole = annotateWire(protocol, direction, buf, env);
          checkFields(buf, whole, 2000);
          if (hasError(whole)) throw new Error(`an error field in well-formed bytes: ${JSON.stringify(whole)}`);
          const cut = a % (buf.length + 1);
          const from = Math.min(cut, b % (buf.length + 1));
          const changed = Buffer.from(buf);
          if (changed.length > 0) changed[b % changed.length] = byte;
          const limit = maxFields === undefined ? {} : { maxFields };
          for (const variant of [buf.subarray(0, cut), buf.subarray(from, cut), changed]) {
            checkFields(variant, annotateWire(protocol, direction, variant, { ...env, ...limit }), maxFields ?? 2000);
          }
        }),
        { numRuns: 400 },
      );
    });
  }

  test('FastCGI PARAMS cut into records of any size: every pair decodes once, as encoded', () => {
    const name = fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJ_'), minLength: 1, maxLength: 140 });
    const value = fc.string({ unit: fc.constantFrom(...'abc/.=&?x- '), maxLength: 180 });
    fc.assert(
      fc.property(fc.array(fc.tuple(name, value), { maxLength: 6 }), fc.integer({ min: 1, max: 300 }), (pairs, recordSize) => {
        const fields = annotate('fastcgi', 'request', encodeParamsStream(9, pairs, recordSize));
        expect(fastcgiPairs(fields)).toEqual(pairs.map(([n, v]): [string, string] => [escapeBytes(n, 80), shown(v)]));
        expect(hasError(fields)).toBe(false);
      }),
      { numRuns: 500 },
    );
  });
});

// ---- the terminal view ------------------------------------------------------------------------

describe('renderAnnotations', () => {
  const [begin, params] = encodeFastcgiRequest(1, { keepConn: false, params: [['SCRIPT_NAME', '/index.php'], ['QUERY_STRING', '']] });
  const request = concat([begin, params, ...encodeStdin(1, Buffer.from('k=v')), encodeStdinEnd(1)]);

  test('a line per field, offset and length first, children indented; a PARAMS record shows its pairs', () => {
    const lines = renderAnnotations(request, annotateWire('fastcgi', 'request', request));
    expect(lines.slice(0, 6)).toEqual([
      '   0    16  FCGI_BEGIN_REQUEST  version=1 type=1 requestId=1 contentLength=8 paddingLength=0',
      '   0     8    header  01 01 00 01 00 08 00 00',
      '   8     8    FCGI_BeginRequestBody  role=FCGI_RESPONDER flags=0',
      '   8     2      role = FCGI_RESPONDER (1)',
      '  10     1      flags = 0: the application closes the connection after the request',
      '  11     5      reserved  5 bytes, ignored  00 00 00 00 00',
    ]);
    expect(lines).toContain('  24    23      SCRIPT_NAME = /index.php (name 11, value 10)');
    expect(lines).toContain('  47    14      QUERY_STRING = (empty) (name 12, value 0)');
    expect(lines).toContainEqual(expect.stringMatching(/^ +\d+ +8 {2}FCGI_PARAMS {2}end of the PARAMS stream$/));
    expect(lines).toContainEqual(expect.stringMatching(/ {4}stdin: request body bytes {2}"k=v"$/));
    expect(lines.join('\n')).not.toContain('\x1b');
  });

  test('colour by kind only when asked; width and maxValue cut lines and values', () => {
    const fields = annotateWire('fastcgi', 'request', request);
    const plain = renderAnnotations(request, fields);
    const colored = renderAnnotations(request, fields, { color: true });
    expect(colored).toHaveLength(plain.length);
    expect(colored.join('\n')).toContain('\x1b[36m'); // header
    expect(colored.join('\n')).toContain('\x1b[32m'); // value
    expect(colored.map((l) => l.replace(/\x1b\[[0-9;]*m/g, ''))).toEqual(plain);
    const narrow = renderAnnotations(request, fields, { width: 40 });
    expect(narrow.every((l) => l.length <= 40)).toBe(true);
    expect(narrow[0]).toBe('   0    16  FCGI_BEGIN_REQUEST  version…');
    const body = Buffer.from('HTTP/1.1 200 OK\r\n\r\n' + 'z'.repeat(100));
    const lines = renderAnnotations(body, annotateWire('http', 'response', body), { maxValue: 10, hexBytes: 4 });
    expect(lines[0]).toBe('   0    17  status line  version=HTTP/1.1 status=200 reason=OK');
    expect(lines).toContain('  17     2  end of head  empty line (CRLF): the head ends, the body follows  0d 0a');
    expect(lines[lines.length - 1]).toBe(`  19   100  body  100 bytes  "${'z'.repeat(10)}… (100 bytes)"`);
    expect(renderAnnotations(Buffer.alloc(0), [])).toEqual([]);
  });

  test('errors show their bytes; uwsgi and SCGI fields read as the brief has them', () => {
    const garbage = Buffer.from('nope');
    expect(renderAnnotations(garbage, annotateWire('fastcgi', 'response', garbage))).toEqual([
      '   0     4  not a FastCGI record  version byte 110 (0x6e), expected 1 (FCGI_VERSION_1); 4 bytes from here  6e 6f 70 65',
    ]);
    const uwsgi = encodeUwsgiRequest([['PATH_INFO', '/a']]);
    expect(renderAnnotations(uwsgi, annotateWire('uwsgi', 'request', uwsgi))).toEqual([
      '   0     4  uwsgi packet header  modifier1=0 datasize=15 modifier2=0',
      '   0     1    modifier1 = 0 (WSGI/default)',
      '   1     2    datasize: 15 (little-endian): the size of the vars block  0f 00',
      '   3     1    modifier2 = 0',
      '   4    15  PATH_INFO = /a (key 9, value 2)',
    ]);
    expect(renderAnnotations(SCGI_SPEC, annotateWire('scgi', 'request', SCGI_SPEC)).slice(0, 2)).toEqual([
      '   0     3  netstring length: 70 bytes of headers follow  37 30 3a',
      '   3    18  CONTENT_LENGTH = 27',
    ]);
  });
});
