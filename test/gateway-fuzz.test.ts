/**
 * Random bytes on every listener kind (http, fastcgi, scgi, uwsgi, auto): the server never
 * crashes and never hangs (every connection is closed by the server or after its EOF), and
 * valid requests keep being answered meanwhile and afterwards.
 *
 * Short timeouts make "never hangs" cheap to check: a connection that sends a plausible prefix
 * and then nothing must be closed by the headers / idle timeouts. The guard on each exchange
 * (10 s) only turns a hang into a failure; no test asserts a duration.
 */
import fc from 'fast-check';
import { encodeBeginRequest, encodeParamsStream, encodeRecord, RecordType, encodeStdin } from '../protocols/fastcgi/index.js';
import { nginxParams, parseCgiResponse } from './helpers/fcgi-client.js';
import { type GatewayAddress, captureLogger, parseScgiResponse, probeService, rawExchange, scgiRequestBytes, startGateway } from './helpers/scgi-client.js';
import { parseHttpResponse, uwsgiRequestBytes } from './helpers/uwsgi-client.js';
import type { Gateway } from '../src/server.js';

type Kind = 'http' | 'fastcgi' | 'scgi' | 'uwsgi' | 'auto';
type Proto = Exclude<Kind, 'auto'>;
const KINDS: Kind[] = ['http', 'fastcgi', 'scgi', 'uwsgi', 'auto'];
const PROTOS: Proto[] = ['http', 'fastcgi', 'scgi', 'uwsgi'];
const GUARD_MS = 10_000;

const { service } = probeService();
const log = captureLogger();
let gateway: Gateway;
const addrs = {} as Record<Kind, GatewayAddress>;
const ports = {} as Record<Kind, number>;

beforeAll(async () => {
  const started = await startGateway(
    service,
    {
      http: ['127.0.0.1:0'],
      fastcgi: ['127.0.0.1:0'],
      scgi: ['127.0.0.1:0'],
      uwsgi: ['127.0.0.1:0'],
      auto: ['127.0.0.1:0'],
      headersTimeout: '300ms',
      requestTimeout: '2s',
      keepAliveTimeout: '300ms',
      idleTimeout: '300ms',
      maxBodyBytes: '1m',
    },
    log,
  );
  gateway = started.gateway;
  // listenersOf order: http, fastcgi, scgi, uwsgi, auto
  KINDS.forEach((k, i) => {
    addrs[k] = started.addrs[i] as GatewayAddress;
    ports[k] = started.ports[i] as number;
  });
});
afterAll(async () => {
  await gateway.close(2000);
});

/** A valid request of `proto` for GET/POST /echo, as its web server (or client) sends it. */
function validRequest(proto: Proto, body = Buffer.alloc(0), serverPort = 80): Buffer {
  const fwd = { method: body.length > 0 ? 'POST' : 'GET', uri: '/echo?fuzz=1', headers: { Host: 'localhost' }, serverPort, ...(body.length > 0 ? { contentLength: body.length } : {}) };
  switch (proto) {
    case 'http':
      return Buffer.concat([Buffer.from(`${fwd.method} /echo?fuzz=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
    case 'fastcgi':
      return Buffer.concat([
        encodeBeginRequest(1),
        encodeParamsStream(1, nginxParams(fwd)),
        ...encodeStdin(1, body).map((b) => Buffer.from(b)),
        encodeRecord(RecordType.Stdin, 1),
      ]);
    case 'scgi':
      return scgiRequestBytes(fwd, body);
    case 'uwsgi':
      return uwsgiRequestBytes(fwd, body);
  }
}

/** The status of the response in `data` as `proto`'s client reads it (undefined: none). */
function statusOf(proto: Proto, data: Buffer): number | undefined {
  if (proto === 'http' || proto === 'uwsgi') return parseHttpResponse(data)?.status;
  if (proto === 'scgi') return parseScgiResponse(data)?.status;
  let out = Buffer.alloc(0);
  for (let i = 0; i + 8 <= data.length; ) {
    const len = data.readUInt16BE(i + 4);
    if (data[i + 1] === RecordType.Stdout) out = Buffer.concat([out, data.subarray(i + 8, i + 8 + len)]);
    i += 8 + len + (data[i + 6] as number);
  }
  return parseCgiResponse(out)?.status;
}

/** Sends a valid request of `proto` to `kind` and expects a 200 with the body echoed. */
async function expectServed(kind: Kind, proto: Proto): Promise<void> {
  const conn = await rawExchange(addrs[kind], validRequest(proto, Buffer.from('still here')), { timeoutMs: GUARD_MS });
  expect({ kind, proto, status: statusOf(proto, conn.data) }).toEqual({ kind, proto, status: 200 });
  expect(conn.data.toString('latin1')).toContain('"body":"still here"');
}

async function expectAllServed(): Promise<void> {
  for (const kind of KINDS) {
    if (kind === 'auto') for (const proto of PROTOS) await expectServed('auto', proto);
    else await expectServed(kind, kind);
  }
}

/** Splits bytes into the given piece sizes (the rest in one piece). */
function split(bytes: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const s of sizes) {
    if (at >= bytes.length) break;
    out.push(bytes.subarray(at, at + s));
    at += s;
  }
  if (at < bytes.length) out.push(bytes.subarray(at));
  return out.length === 0 ? [bytes] : out;
}

/** A byte mutation of a valid request: flip, overwrite, insert, delete or truncate. */
const mutation = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(bytes: Buffer, ms: Mutation[]): Buffer {
  let b = Buffer.from(bytes);
  for (const m of ms) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    switch (m.op) {
      case 'flip':
        b[at] = (b[at] as number) ^ (1 << m.bit);
        break;
      case 'set':
        b[at] = m.value;
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), Buffer.from(m.bytes), b.subarray(at)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.count)]);
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
    }
  }
  return b;
}

const kindArb = fc.constantFrom(...KINDS);
const piecesArb = fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 6 });

/** Sends and waits until the connection is closed; throws if it is not within the guard. */
async function survive(kind: Kind, bytes: Buffer, pieces: number[], halfClose: boolean): Promise<void> {
  await rawExchange(addrs[kind], split(bytes, pieces), { halfClose, timeoutMs: GUARD_MS });
}

describe('gateway fuzzing', () => {
  test('valid requests are served on every listener before the fuzzing', async () => {
    await expectAllServed();
  });

  test('random bytes, half-closed after sending, on every listener kind: each connection is closed, nothing crashes', async () => {
    await fc.assert(
      fc.asyncProperty(kindArb, fc.uint8Array({ maxLength: 2048 }), piecesArb, async (kind, bytes, pieces) => {
        await survive(kind, Buffer.from(bytes), pieces, true);
      }),
      { numRuns: 150 },
    );
    await expectAllServed();
  }, 120_000);

  test('random bytes and then silence (no EOF): the server closes every connection by itself (timeouts), while valid requests keep answering', async () => {
    const inputs = fc.sample(fc.tuple(kindArb, fc.uint8Array({ minLength: 1, maxLength: 512 }), piecesArb), { numRuns: 100, seed: 4242 });
    const fuzz = Promise.all(inputs.map(([kind, bytes, pieces]) => survive(kind, Buffer.from(bytes), pieces, false)));
    const valid = (async () => {
      for (let i = 0; i < 3; i++) await expectAllServed();
    })();
    await Promise.all([fuzz, valid]);
  }, 120_000);

  test('protocol-shaped random input: a valid prefix byte (FastCGI version, SCGI digit, uwsgi modifier, HTTP method) then random bytes', async () => {
    const prefixes = [Buffer.from([1, 1, 0, 1, 0, 8, 0, 0]), Buffer.from('70:CONTENT_LENGTH\0'), Buffer.from([0, 0x40, 0, 0, 14, 0]), Buffer.from('GET /'), Buffer.from([30, 255, 255, 0])];
    await fc.assert(
      fc.asyncProperty(kindArb, fc.constantFrom(...prefixes), fc.uint8Array({ maxLength: 1024 }), fc.boolean(), piecesArb, async (kind, prefix, tail, halfClose, pieces) => {
        await survive(kind, Buffer.concat([prefix, Buffer.from(tail)]), pieces, halfClose);
      }),
      { numRuns: 120 },
    );
    await expectAllServed();
  }, 120_000);

  test('mutated valid requests (flipped, overwritten, inserted, deleted, truncated bytes) on their listener and on --auto', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...PROTOS),
        fc.boolean(),
        fc.uint8Array({ maxLength: 300 }),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        piecesArb,
        async (proto, viaAuto, body, ms, halfClose, pieces) => {
          const bytes = mutate(validRequest(proto, Buffer.from(body)), ms);
          await survive(viaAuto ? 'auto' : proto, bytes, pieces, halfClose);
        },
      ),
      { numRuns: 200 },
    );
    await expectAllServed();
  }, 180_000);

  test('no front hit an unexpected (non-protocol) error while decoding', () => {
    expect(log.matching(/unexpected error/, 'error')).toEqual([]);
    expect(log.matching(/^(uncaught|unhandled)/, 'error')).toEqual([]);
  });
});
