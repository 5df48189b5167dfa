/**
 * Interop with fastcgi-stream (npm, an independent implementation): it must decode every
 * record stream our encoder writes, and ours must decode what it writes.
 *
 * Its known bugs are kept out of the way, not tested: it throws on unknown record types
 * (none are sent to it), parses PARAMS per record (our PARAMS records here hold whole
 * pairs) and decodes pairs as UTF-8 (ASCII is sent to it; the UTF-8 case is checked in the
 * other direction, where we must keep the bytes).
 */
import { EventEmitter } from 'node:events';
import {
  Flag,
  ParamsDecoder,
  ProtocolStatus,
  RecordDecoder,
  RecordType,
  Role,
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
  encodeParamsStream,
  encodeRecord,
  encodeResponseEnd,
  encodeStderr,
  encodeStdin,
  encodeStdout,
  encodeStreamRecords,
  encodeUnknownType,
  MANAGEMENT_VARIABLES,
} from '../../protocols/fastcgi/index.js';
import type { Pair } from '../../protocols/fastcgi/index.js';

// fastcgi-stream ships no types; this is the part of its API used here (lib/index.js).
interface TheirRecord {
  TYPE: number;
  role?: number;
  flags?: number;
  appStatus?: number;
  protocolStatus?: number;
  params?: Array<[string, string] | string>;
  values?: Array<[string, string] | string>;
  data?: Buffer | string;
  type?: number;
}
type RecordCtor = new (...args: unknown[]) => TheirRecord;
interface FastcgiStreamModule {
  FastCGIStream: new (stream: EventEmitter & { write(b: Buffer, cb?: () => void): boolean }) => EventEmitter & {
    writeRecord(requestId: number, record: TheirRecord): boolean;
  };
  records: Record<
    | 'BeginRequest'
    | 'AbortRequest'
    | 'EndRequest'
    | 'Params'
    | 'StdIn'
    | 'StdOut'
    | 'StdErr'
    | 'Data'
    | 'GetValues'
    | 'GetValuesResult'
    | 'UnknownType',
    RecordCtor
  >;
}
const fcgi = require('fastcgi-stream') as FastcgiStreamModule;
const R = fcgi.records;

/** A duplex stand-in for a socket: collects what is written, emits what is pushed. */
class Pipe extends EventEmitter {
  written: Buffer[] = [];
  write(b: Buffer, cb?: () => void): boolean {
    this.written.push(Buffer.from(b));
    cb?.();
    return true;
  }
}

/** Feeds `wire` to fastcgi-stream in chunks of `chunkSize` and returns what it emitted. */
function theirDecode(wire: Buffer, chunkSize = wire.length): Array<[number, TheirRecord]> {
  const pipe = new Pipe();
  const stream = new fcgi.FastCGIStream(pipe);
  const out: Array<[number, TheirRecord]> = [];
  stream.on('record', (id: number, record: TheirRecord) => out.push([id, record]));
  for (let i = 0; i < wire.length; i += chunkSize) pipe.emit('data', wire.subarray(i, i + chunkSize));
  return out;
}

/** Their pairs: `[name, value]`, or the bare name when the value is empty. */
function normalizePairs(list: Array<[string, string] | string> | undefined): Pair[] {
  return (list ?? []).map((p) => (typeof p === 'string' ? [p, ''] : [p[0], p[1]]));
}

function dataOf(record: TheirRecord): Buffer {
  return typeof record.data === 'string' ? Buffer.from(record.data) : (record.data ?? Buffer.alloc(0));
}

const params: Pair[] = [
  ['GATEWAY_INTERFACE', 'CGI/1.1'],
  ['REQUEST_METHOD', 'POST'],
  ['CONTENT_LENGTH', '100000'],
  ['CONTENT_TYPE', ''],
  ['HTTP_COOKIE', 'session=' + 'z'.repeat(300)], // 4-byte value length
  ['N'.repeat(130), 'long name'], // 4-byte name length
];
const body = Buffer.alloc(100000);
for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
const responseBody = Buffer.from('Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n' + 'r'.repeat(5000));

/** Everything our encoder can write, client side and server side. */
const ourWire = Buffer.concat([
  encodeGetValues(MANAGEMENT_VARIABLES),
  encodeBeginRequest(7, Role.Responder, Flag.KeepConn),
  encodeParamsStream(7, params), // one PARAMS record (whole pairs) + PARAMS EOS
  ...encodeStdin(7, body), // two STDIN records, zero-copy segments
  encodeEndOfStream(RecordType.Stdin, 7),
  ...encodeStreamRecords(RecordType.Data, 7, Buffer.from('filter data')),
  encodeEndOfStream(RecordType.Data, 7),
  encodeAbortRequest(7),
  ...encodeStdout(7, responseBody), // one STDOUT record, zero-copy segments
  ...encodeStderr(7, Buffer.from('a warning\n')),
  encodeResponseEnd(7, 3, true),
  encodeEndRequest(8, 0, ProtocolStatus.UnknownRole),
  encodeGetValuesResult([
    ['FCGI_MAX_CONNS', '10'],
    ['FCGI_MPXS_CONNS', '0'],
  ]),
  encodeUnknownType(0x7f),
]);

function checkTheirView(got: Array<[number, TheirRecord]>): void {
  const summary = got.map(([id, r]) => [r.TYPE, id]);
  expect(summary).toEqual([
    [9, 0],
    [1, 7],
    [4, 7],
    [4, 7],
    [5, 7],
    [5, 7],
    [5, 7],
    [8, 7],
    [8, 7],
    [2, 7],
    [6, 7],
    [7, 7],
    [6, 7],
    [7, 7],
    [3, 7],
    [3, 8],
    [10, 0],
    [11, 0],
  ]);
  const rec = (i: number): TheirRecord => got[i]![1];
  expect(normalizePairs(rec(0).values).map((p) => p[0])).toEqual([...MANAGEMENT_VARIABLES]);
  expect([rec(1).role, rec(1).flags]).toEqual([Role.Responder, Flag.KeepConn]);
  expect(normalizePairs(rec(2).params)).toEqual(params);
  expect(normalizePairs(rec(3).params)).toEqual([]);
  expect(Buffer.concat([dataOf(rec(4)), dataOf(rec(5))]).equals(body)).toBe(true);
  expect(dataOf(rec(6)).length).toBe(0);
  expect(dataOf(rec(7)).toString()).toBe('filter data');
  expect(dataOf(rec(10)).equals(responseBody)).toBe(true);
  expect(dataOf(rec(11)).toString()).toBe('a warning\n');
  expect([dataOf(rec(12)).length, dataOf(rec(13)).length]).toEqual([0, 0]);
  expect([rec(14).appStatus, rec(14).protocolStatus]).toEqual([3, ProtocolStatus.RequestComplete]);
  expect([rec(15).appStatus, rec(15).protocolStatus]).toEqual([0, ProtocolStatus.UnknownRole]);
  expect(normalizePairs(rec(16).values)).toEqual([
    ['FCGI_MAX_CONNS', '10'],
    ['FCGI_MPXS_CONNS', '0'],
  ]);
  expect(rec(17).type).toBe(0x7f);
}

describe('fastcgi-stream decodes what we encode', () => {
  test('F-4 / F-35: every record type we write, in one chunk', () => {
    checkTheirView(theirDecode(ourWire));
  });

  test('F-1: the same stream in 7-byte and 4096-byte chunks', () => {
    checkTheirView(theirDecode(ourWire, 7));
    checkTheirView(theirDecode(ourWire, 4096));
  });

  test('F-4: a 1 MiB STDOUT body in ≤ 65528-byte records is reassembled', () => {
    const big = Buffer.alloc(1024 * 1024 + 3, 0x5a);
    const wire = Buffer.concat([...encodeStdout(1, big), encodeResponseEnd(1)]);
    const got = theirDecode(wire, 65536);
    const stdout = got.filter(([, r]) => r.TYPE === RecordType.Stdout).map(([, r]) => dataOf(r));
    expect(stdout.at(-1)!.length).toBe(0);
    expect(Buffer.concat(stdout).equals(big)).toBe(true);
    expect(got.at(-1)![1].TYPE).toBe(RecordType.EndRequest);
  });
});

describe('we decode what fastcgi-stream encodes', () => {
  function theirWire(write: (w: (id: number, r: TheirRecord) => void) => void): Buffer {
    const pipe = new Pipe();
    const stream = new fcgi.FastCGIStream(pipe);
    write((id, r) => stream.writeRecord(id, r));
    return Buffer.concat(pipe.written);
  }

  const wire = theirWire((w) => {
    w(0, new R.GetValues(['FCGI_MAX_CONNS', 'FCGI_MPXS_CONNS']));
    w(300, new R.BeginRequest(Role.Authorizer, Flag.KeepConn));
    w(300, new R.Params(params));
    w(300, new R.Params());
    w(300, new R.StdIn(body.subarray(0, 60000)));
    w(300, new R.StdIn(Buffer.from('tail, 13 byte'))); // padding 13 % 8 = 5: legal, not aligned
    w(300, new R.StdIn());
    w(300, new R.Data(Buffer.from('d')));
    w(300, new R.AbortRequest());
    w(300, new R.StdOut(Buffer.from('out')));
    w(300, new R.StdErr(Buffer.from('err')));
    w(300, new R.EndRequest(0x7fffffff, ProtocolStatus.Overloaded));
    w(0, new R.GetValuesResult([['FCGI_MAX_REQS', '1']]));
    w(0, new R.UnknownType(200));
  });

  function ourDecode(chunks: Buffer[]): Array<[number, number, Buffer]> {
    const out: Array<[number, number, Buffer]> = [];
    const d = new RecordDecoder((type, id, content) => out.push([type, id, Buffer.from(content)]));
    for (const c of chunks) d.push(c);
    expect(d.pending).toBe(0);
    return out;
  }

  function check(recs: Array<[number, number, Buffer]>): void {
    expect(recs.map((r) => [r[0], r[1]])).toEqual([
      [9, 0],
      [1, 300],
      [4, 300],
      [4, 300],
      [5, 300],
      [5, 300],
      [5, 300],
      [8, 300],
      [2, 300],
      [6, 300],
      [7, 300],
      [3, 300],
      [10, 0],
      [11, 0],
    ]);
    const c = (i: number): Buffer => recs[i]![2];
    expect(decodeGetValues(c(0))).toEqual(['FCGI_MAX_CONNS', 'FCGI_MPXS_CONNS']);
    expect(decodeBeginRequest(c(1))).toEqual({ role: Role.Authorizer, flags: Flag.KeepConn, keepConn: true });
    const p = new ParamsDecoder();
    p.push(c(2));
    expect(c(3).length).toBe(0);
    expect(p.end()).toEqual(params);
    expect(c(4).equals(body.subarray(0, 60000))).toBe(true);
    expect(c(5).toString()).toBe('tail, 13 byte');
    expect(c(6).length).toBe(0);
    expect(c(7).toString()).toBe('d');
    expect(c(8).length).toBe(0);
    expect(c(9).toString() + c(10).toString()).toBe('outerr');
    expect(decodeEndRequest(c(11))).toEqual({ appStatus: 0x7fffffff, protocolStatus: ProtocolStatus.Overloaded });
    expect(decodeParams(c(12))).toEqual([['FCGI_MAX_REQS', '1']]);
    expect(decodeUnknownType(c(13))).toBe(200);
  }

  test('F-3: every record type it writes (its padding is length % 8), in one chunk', () => {
    check(ourDecode([wire]));
  });

  test('F-1: the same bytes one at a time and in 1000-byte chunks', () => {
    const ones: Buffer[] = [];
    for (let i = 0; i < wire.length; i++) ones.push(wire.subarray(i, i + 1));
    check(ourDecode(ones));
    const thousands: Buffer[] = [];
    for (let i = 0; i < wire.length; i += 1000) thousands.push(wire.subarray(i, i + 1000));
    check(ourDecode(thousands));
  });

  test('E-2: UTF-8 it writes arrives as latin1 byte strings, bytes intact', () => {
    const utf8 = theirWire((w) => w(1, new R.Params([['HTTP_X_NAME', 'Zoë 日本']])));
    const [[, , content]] = ourDecode([utf8]) as [[number, number, Buffer]];
    const [[name, value]] = decodeParams(content) as [Pair];
    expect(name).toBe('HTTP_X_NAME');
    expect(value).toBe(Buffer.from('Zoë 日本', 'utf8').toString('latin1'));
    expect(Buffer.from(value, 'latin1').toString('utf8')).toBe('Zoë 日本');
  });

  test('F-8: records it cannot decode itself (type 0x7F) we still deliver', () => {
    const mixed = Buffer.concat([theirWire((w) => w(0, new R.AbortRequest())), encodeRecord(0x7f, 0, Buffer.from('?'))]);
    expect(ourDecode([mixed]).map((r) => r[0])).toEqual([RecordType.AbortRequest, 0x7f]);
  });
});
