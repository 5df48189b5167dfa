/**
 * The FastCGI front under hostile input (docs/conformance.md §2.4, F-1, F-2, F-9,
 * F-17..F-20), bounded fuzzing with fast-check against a live Gateway:
 *
 *   - random bytes on many connections at once,
 *   - random records (valid headers, random types, ids, lengths, padding, random params),
 *   - well-formed requests with random params and bodies,
 *   - one million random records through one connection while another keeps being served.
 *
 * Each property checks that the process survives (an unhandled error would fail the suite),
 * that every connection ends or answers within a bound (the server runs with short timeouts),
 * that the server only ever writes well-formed records, and that a fresh valid request is
 * still answered 200 afterwards. Loops are bounded by counts; the only waits are hang guards.
 */
import fc from 'fast-check';
import type { App } from '../src/app.js';
import { toService } from '../src/loader.js';
import type { Gateway } from '../src/server.js';
import {
  RecordType,
  Role,
  encodeBeginRequest,
  encodeParams,
  encodeParamsStream,
  encodeRecord,
} from '../protocols/fastcgi/index.js';
import { FcgiConn, type FcgiAddress, type Pair, fcgiRequest, nginxParams, parseCgiResponse, startFastcgiGateway } from './helpers/fcgi-client.js';

/** Reads the body (errors included), answers 200; `/quick` answers at once; a few routes fail. */
const app: App = async (environ, sr) => {
  if (environ.PATH_INFO === '/quick') {
    sr('200 OK', [['Content-Type', 'text/plain']]);
    return ['ok'];
  }
  if (environ.PATH_INFO === '/throw') throw new Error('fuzz: thrown');
  let length = 0;
  let error = '';
  try {
    for await (const c of environ['gatewire.input']) length += (c as Buffer).length;
  } catch (err) {
    error = (err as Error).message;
  }
  if (environ.PATH_INFO === '/fail-after') {
    sr('200 OK', [['Content-Type', 'text/plain']]);
    return (async function* () {
      yield 'part';
      throw new Error('fuzz: after headers');
    })();
  }
  sr('200 OK', [['Content-Type', 'application/json']]);
  return [JSON.stringify({ length, error })];
};

let gateway: Gateway;
let addr: FcgiAddress;

beforeAll(async () => {
  ({ gateway, addr } = await startFastcgiGateway(toService(app, 'environ', 'fuzz app'), {
    idleTimeout: '250ms',
    headersTimeout: '250ms',
    maxParamsBytes: '64k',
    maxBodyBytes: '1m',
  }));
});
afterAll(() => gateway.close(500));

/** Bound for one fuzz connection to end: the server's timeouts are 250 ms. Only a hang guard. */
const END_BOUND_MS = 8000;

/** Writes `pieces` with a turn of the event loop between them, then waits for the server to end the connection. */
async function feed(pieces: Uint8Array[]): Promise<FcgiConn> {
  const conn = await FcgiConn.open(addr);
  for (const p of pieces) {
    if (conn.gone) break;
    await conn.write(p);
    await new Promise((r) => setImmediate(r));
  }
  await conn.untilGone(END_BOUND_MS);
  return conn;
}

function expectSaneConnection(conn: FcgiConn): void {
  // ended or closed by the server within the bound; only well-formed records came out
  expect(conn.gone).toBe(true);
  expect(conn.badFrame).toBeUndefined();
  for (const r of conn.records) {
    expect(r.content.length).toBeLessThanOrEqual(65535);
    expect([RecordType.EndRequest, RecordType.Stdout, RecordType.Stderr, RecordType.GetValuesResult, RecordType.UnknownType]).toContain(r.type);
  }
  if (!conn.destroyedByUs) conn.destroy();
}

async function stillServes(): Promise<void> {
  const res = await fcgiRequest(addr, { params: nginxParams({ uri: '/echo?after' }) });
  expect(res.completed).toBe(true);
  expect(parseCgiResponse(res.stdout)?.status).toBe(200);
}

/** Cuts `buf` at the given points (taken modulo its length). */
function cut(buf: Buffer, points: number[]): Buffer[] {
  if (buf.length === 0) return [buf];
  const at = [...new Set(points.map((p) => p % buf.length))].filter((p) => p > 0).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of at) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

const latin1 = (maxLength: number): fc.Arbitrary<string> =>
  fc.array(fc.integer({ min: 0, max: 255 }), { maxLength }).map((codes) => String.fromCharCode(...codes));

const KNOWN_NAMES = ['REQUEST_METHOD', 'REQUEST_URI', 'CONTENT_LENGTH', 'CONTENT_TYPE', 'SCRIPT_NAME', 'PATH_INFO', 'QUERY_STRING', 'SERVER_PORT', 'SERVER_NAME', 'HTTPS', 'HTTP_HOST', 'HTTP_COOKIE', 'HTTP_PROXY', 'DOCUMENT_URI', 'REMOTE_ADDR'];
const pairArb: fc.Arbitrary<Pair> = fc.tuple(
  fc.oneof(fc.constantFrom(...KNOWN_NAMES), latin1(12), fc.constantFrom('wsgi.input', 'A=B', 'X\0', '', 'gatewire.signal')),
  fc.oneof(latin1(20), fc.constantFrom('GET', 'POST', 'HEAD', '', '0', '5', '-1', '99999999999999999999', '/', '/a%00b', '/fail-after', '/throw', 'on'), fc.nat({ max: 2_000_000 }).map(String)),
);
const paramsArb = fc.array(pairArb, { maxLength: 12 });

const recordArb = fc.record({
  type: fc.oneof(fc.integer({ min: 1, max: 11 }), fc.integer({ min: 0, max: 255 })),
  id: fc.oneof(fc.constantFrom(0, 1, 2, 65535), fc.integer({ min: 0, max: 65535 })),
  content: fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    // BEGIN-shaped bodies: role, flags, reserved
    fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 3 })).map(([role, flags]) => Uint8Array.from([0, role, flags, 0, 0, 0, 0, 0])),
    paramsArb.map((pairs) => new Uint8Array(encodeParams(pairs))),
    fc.constant(new Uint8Array(0)),
  ),
  padding: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 255 })),
});

/** Records in a plausible order for a few ids: the state machine gets exercised past BEGIN. */
const smallId = fc.integer({ min: 1, max: 3 });
const padArb = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 255 }));
const baseParams = fc
  .tuple(fc.constantFrom('/echo', '/quick', '/throw', '/fail-after'), fc.constantFrom<number | 'stream'>(0, 3, 100, 'stream'), paramsArb)
  .map(([uri, contentLength, extra]) => new Uint8Array(encodeParams([...nginxParams({ uri, method: 'POST', contentLength }), ...extra])));
const structuredRecordArb = fc.oneof(
  { weight: 3, arbitrary: fc.record({ type: fc.constant(RecordType.BeginRequest), id: smallId, content: fc.tuple(fc.constantFrom(1, 1, 1, 2, 3), fc.integer({ min: 0, max: 1 })).map(([role, flags]) => Uint8Array.from([0, role, flags, 0, 0, 0, 0, 0])), padding: padArb }) },
  { weight: 4, arbitrary: fc.record({ type: fc.constant(RecordType.Params), id: smallId, content: fc.oneof(baseParams, paramsArb.map((p) => new Uint8Array(encodeParams(p)))), padding: padArb }) },
  { weight: 3, arbitrary: fc.record({ type: fc.constantFrom(RecordType.Params, RecordType.Stdin), id: smallId, content: fc.constant(new Uint8Array(0)), padding: padArb }) },
  { weight: 3, arbitrary: fc.record({ type: fc.constant(RecordType.Stdin), id: smallId, content: fc.uint8Array({ maxLength: 200 }), padding: padArb }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant(RecordType.AbortRequest), id: fc.integer({ min: 0, max: 4 }), content: fc.constant(new Uint8Array(0)), padding: padArb }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant(RecordType.GetValues), id: fc.constant(0), content: fc.array(fc.oneof(fc.constantFrom('FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS'), latin1(8)), { maxLength: 4 }).map((names) => new Uint8Array(encodeParams(names.map((n): Pair => [n, ''])))), padding: padArb }) },
  { weight: 2, arbitrary: recordArb },
);

describe('FastCGI front fuzzing (§2.4)', () => {
  test('F-2 / §2.4: random bytes on many connections: every connection ends, the server keeps serving', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            // sometimes a valid BEGIN first, so the bytes land deeper in the state machine
            prefix: fc.constantFrom<'none' | 'begin' | 'params'>('none', 'begin', 'params'),
            bytes: fc.uint8Array({ minLength: 1, maxLength: 600 }),
            cuts: fc.array(fc.nat(), { maxLength: 6 }),
          }),
          { minLength: 1, maxLength: 16 },
        ),
        async (conns) => {
          const results = await Promise.all(
            conns.map(({ prefix, bytes, cuts }) => {
              const head =
                prefix === 'none'
                  ? Buffer.alloc(0)
                  : Buffer.concat([encodeBeginRequest(1, Role.Responder, 1), prefix === 'params' ? encodeParamsStream(1, nginxParams({ uri: '/echo' })).subarray(0, 40) : Buffer.alloc(0)]);
              return feed(cut(Buffer.concat([head, bytes]), cuts));
            }),
          );
          for (const conn of results) expectSaneConnection(conn);
          await stillServes();
        },
      ),
      { numRuns: 20 },
    );
  });

  test('F-9 / F-17..F-20 / §2.4: random records (valid headers, random types, ids, lengths, padding, params): every connection ends, only well-formed records come back', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.array(fc.oneof({ weight: 1, arbitrary: recordArb }, { weight: 4, arbitrary: structuredRecordArb }), { minLength: 1, maxLength: 25 }), fc.array(fc.nat(), { maxLength: 8 })), { minLength: 1, maxLength: 8 }),
        async (conns) => {
          const results = await Promise.all(
            conns.map(([recs, cuts]) => feed(cut(Buffer.concat(recs.map((r) => encodeRecord(r.type, r.id, r.content, r.padding))), cuts))),
          );
          for (const conn of results) {
            expectSaneConnection(conn);
            for (const r of conn.records) {
              if (r.type === RecordType.EndRequest || r.type === RecordType.UnknownType) expect(r.content.length).toBe(8);
              if (r.type === RecordType.GetValuesResult || r.type === RecordType.UnknownType) expect(r.id).toBe(0);
              else expect(r.id).not.toBe(0);
            }
          }
          await stillServes();
        },
      ),
      { numRuns: 30 },
    );
  });

  test('F-17..F-23 / §2.4: well-formed requests with random params and bodies are always answered completely', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            pairs: paramsArb,
            base: fc.boolean(),
            body: fc.uint8Array({ maxLength: 3000 }),
            paramsRecordSize: fc.integer({ min: 1, max: 65535 }),
            stdinRecordSize: fc.integer({ min: 1, max: 4000 }),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        async (reqs) => {
          const conn = await FcgiConn.open(addr);
          let id = 0;
          for (const r of reqs) {
            id++;
            // the fuzz pairs come after nginx's, so they override (last wins) or join (HTTP_*)
            const params = r.base ? [...nginxParams({ uri: '/echo', method: 'POST', contentLength: r.body.length }), ...r.pairs] : r.pairs;
            const res = await fcgiRequest(conn, { params, stdin: Buffer.from(r.body), id, keepConn: true, paramsRecordSize: r.paramsRecordSize, stdinRecordSize: r.stdinRecordSize });
            if (conn.gone) {
              // only an app failure after its head may cut the connection (F-38)
              expect(res.stdout.toString('latin1')).toContain('part');
              break;
            }
            expect(res.completed).toBe(true);
            expect(res.protocolStatus).toBe(0);
            const parsed = parseCgiResponse(res.stdout);
            expect(parsed).not.toBeNull();
            expect([200, 400, 404, 413, 431, 500]).toContain(parsed?.status);
          }
          expect(conn.badFrame).toBeUndefined();
          conn.destroy();
          await stillServes();
        },
      ),
      { numRuns: 40 },
    );
  });

  test('F-1 / F-9: one million random records through one connection while another connection keeps being served', async () => {
    const TOTAL = 1_000_000;
    const VALID_EVERY = 1000;
    const BATCH = 50_000;
    let x = 0x9e3779b9;
    const rand = (): number => {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      return x;
    };
    const validParams = encodeParams([['REQUEST_METHOD', 'GET'], ['REQUEST_URI', '/quick'], ['SERVER_PORT', '80']]);
    const STRAY_TYPES = [RecordType.EndRequest, RecordType.Stdout, RecordType.Stderr, RecordType.GetValuesResult, RecordType.UnknownType, RecordType.Data, RecordType.Params, RecordType.Stdin, RecordType.AbortRequest];
    const ZERO_ID_IGNORED = [RecordType.AbortRequest, RecordType.EndRequest, RecordType.Params, RecordType.Stdin, RecordType.Stdout, RecordType.Stderr, RecordType.Data, RecordType.GetValuesResult, RecordType.UnknownType];
    const getValues = encodeRecord(RecordType.GetValues, 0, encodeParams([['FCGI_MPXS_CONNS', ''], ['FCGI_MAX_REQS', '']]));
    const expected = { ends: 0, unknown: 0, gvr: 0, records: 0 };

    /** One batch of records as one buffer: mostly records the front ignores, some it answers. */
    function batch(first: number, count: number): Buffer {
      const buf = Buffer.allocUnsafe(count * (8 + 40 + 15) + (count / VALID_EVERY + 2) * 200);
      let off = 0;
      const put = (type: number, id: number, cl: number, pad: number): void => {
        buf[off] = 1;
        buf[off + 1] = type;
        buf.writeUInt16BE(id, off + 2);
        buf.writeUInt16BE(cl, off + 4);
        buf[off + 6] = pad;
        buf[off + 7] = rand() & 0xff;
        off += 8;
        for (let i = 0; i < cl + pad; i++) buf[off + i] = rand() & 0xff;
        off += cl + pad;
      };
      const copy = (b: Buffer): void => {
        b.copy(buf, off);
        off += b.length;
      };
      for (let n = first; n < first + count; n++) {
        const r = rand();
        const kind = r % 1000;
        if (n % VALID_EVERY === 0) {
          const id = ((n / VALID_EVERY) % 999) + 1; // ids 1..999; strays use 1000 and up
          copy(encodeBeginRequest(id, Role.Responder, 1));
          copy(encodeRecord(RecordType.Params, id, validParams, rand() & 0xff));
          copy(encodeRecord(RecordType.Params, id, undefined, rand() & 7));
          copy(encodeRecord(RecordType.Stdin, id));
          expected.ends++;
        } else if (kind < 5) {
          put(12 + (r % 244), 0, (r >>> 8) % 24, (r >>> 16) % 16); // unknown management type
          expected.unknown++;
        } else if (kind < 10) {
          copy(getValues);
          expected.gvr++;
        } else if (kind < 40) {
          put(ZERO_ID_IGNORED[(r >>> 8) % ZERO_ID_IGNORED.length] as number, 0, (r >>> 12) % 24, (r >>> 20) % 16);
        } else {
          const type = kind < 700 ? (STRAY_TYPES[(r >>> 8) % STRAY_TYPES.length] as number) : 12 + ((r >>> 8) % 244);
          const cl = type === RecordType.AbortRequest ? 0 : (r >>> 16) % 40;
          put(type, 1000 + ((r >>> 4) % 64536), cl, (r >>> 24) % 16);
        }
        expected.records++;
      }
      return buf.subarray(0, off);
    }

    // Its own server with default timeouts: generating a batch blocks this process's event loop,
    // which the short idle timeout of the fuzz server would take for idle connections.
    const own = await startFastcgiGateway(toService(app, 'environ', 'flood app'), {});
    const flood = await FcgiConn.open(own.addr);
    let floodDone = false;
    let servedDuring = 0;
    const sideConn = await FcgiConn.open(own.addr);
    const side = (async (): Promise<void> => {
      let id = 0;
      while (!floodDone && servedDuring < 10_000) {
        id = (id % 65535) + 1;
        const res = await fcgiRequest(sideConn, { params: nginxParams({ uri: `/quick?${id}` }), id, keepConn: true });
        expect(res.completed).toBe(true);
        expect(parseCgiResponse(res.stdout)?.status).toBe(200);
        if (!floodDone) servedDuring++;
      }
    })();
    let sent = 0;
    for (let first = 0; first < TOTAL; first += BATCH) {
      const buf = batch(first, Math.min(BATCH, TOTAL - first));
      sent += buf.length;
      // stream in big pieces cut at arbitrary points (records straddle writes)
      let off = 0;
      while (off < buf.length) {
        const size = 256 * 1024 + (rand() % (768 * 1024));
        await flood.writeFlow(buf.subarray(off, off + size));
        off += size;
      }
    }
    const total = (): { ends: number; unknown: number; gvr: number } => ({
      ends: flood.records.filter((r) => r.type === RecordType.EndRequest).length,
      unknown: flood.records.filter((r) => r.type === RecordType.UnknownType).length,
      gvr: flood.records.filter((r) => r.type === RecordType.GetValuesResult).length,
    });
    // the stream ends with one more GET_VALUES; its answer means every record before it was handled
    await flood.write(getValues);
    expected.gvr++;
    await flood.until(() => total().gvr === expected.gvr, 60_000);
    floodDone = true;
    await side;

    expect(expected.records).toBe(TOTAL);
    expect(sent).toBeGreaterThan(10 * 1024 * 1024);
    expect(flood.gone).toBe(false);
    expect(flood.badFrame).toBeUndefined();
    expect(total()).toEqual({ ends: expected.ends, unknown: expected.unknown, gvr: expected.gvr });
    const ends = flood.records.filter((r) => r.type === RecordType.EndRequest);
    expect(ends.every((r) => r.content.readUInt32BE(0) === 0 && r.content[4] === 0)).toBe(true);
    expect(servedDuring).toBeGreaterThan(0);
    flood.destroy();
    sideConn.destroy();
    const after = await fcgiRequest(own.addr, { params: nginxParams({ uri: '/echo?after' }) });
    expect(parseCgiResponse(after.stdout)?.status).toBe(200);
    await own.gateway.close(500);
    await stillServes();
  }, 120_000);
});
