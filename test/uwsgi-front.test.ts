/**
 * The uwsgi front over real sockets: U-1..U-11 and the §4.3 hostile inputs that concern the
 * front (the codec's own cases are in test/protocols/uwsgi.test.ts).
 */
import { createHash } from 'node:crypto';
import {
  type EchoResult,
  type GatewayAddress,
  type Pair,
  RawConn,
  captureLogger,
  probeService,
  rawExchange,
  startGateway,
  waitFor,
  trickle,
} from './helpers/scgi-client.js';
import { nginxUwsgiVars, parseHttpResponse, uwsgiRequestBytes } from './helpers/uwsgi-client.js';
import { encodeUwsgiRequest } from '../protocols/uwsgi/index.js';
import type { Gateway } from '../src/server.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const base = (uri = '/echo', method = 'GET'): Pair[] => [
  ['REQUEST_METHOD', method],
  ['REQUEST_URI', uri],
  ['PATH_INFO', uri.split('?')[0] as string],
  ['QUERY_STRING', uri.includes('?') ? (uri.split('?')[1] as string) : ''],
  ['SERVER_PROTOCOL', 'HTTP/1.1'],
  ['SERVER_NAME', 'localhost'],
  ['SERVER_PORT', '80'],
];
const packet = (vars: ReadonlyArray<readonly [string, string]>, modifier1 = 0, modifier2 = 0): Buffer => encodeUwsgiRequest(vars, { modifier1, modifier2 });
/** A packet whose vars block is given raw (for malformed blocks). */
const rawPacket = (vars: Buffer, modifier1 = 0, datasize = vars.length): Buffer => Buffer.concat([Buffer.from([modifier1, datasize & 0xff, datasize >> 8, 0]), vars]);
const le16 = (n: number): Buffer => Buffer.from([n & 0xff, n >> 8]);
const entry = (k: string, v: string): Buffer => Buffer.concat([le16(k.length), Buffer.from(k, 'latin1'), le16(v.length), Buffer.from(v, 'latin1')]);

const { service, probe } = probeService();
const log = captureLogger();
let gateway: Gateway;
let addr: GatewayAddress;

beforeAll(async () => {
  const started = await startGateway(service, { uwsgi: ['127.0.0.1:0'], headersTimeout: '500ms', idleTimeout: '500ms', maxBodyBytes: '64m' }, log);
  gateway = started.gateway;
  addr = started.addrs[0] as GatewayAddress;
});
afterAll(async () => {
  probe.release();
  await gateway.close(1000);
});
beforeEach(() => {
  probe.reset();
  log.lines.length = 0;
});

async function exchange(bytes: Buffer | Buffer[], opts: Parameters<typeof rawExchange>[2] = {}, to: GatewayAddress = addr) {
  const conn = await rawExchange(to, bytes, opts);
  return { conn, res: parseHttpResponse(conn.data) };
}

async function echo(bytes: Buffer | Buffer[], opts: Parameters<typeof rawExchange>[2] = {}): Promise<EchoResult> {
  const { res } = await exchange(bytes, opts);
  expect(res?.status).toBe(200);
  return JSON.parse((res?.body as Buffer).toString()) as EchoResult;
}

describe('uwsgi front', () => {
  test('U-1 / §4.3: the 54-byte vector (datasize 36 00, little-endian) is served', async () => {
    const bytes = Buffer.concat([Buffer.from([0x00, 0x36, 0x00, 0x00]), entry('REQUEST_METHOD', 'GET'), entry('PATH_INFO', '/a'), entry('CONTENT_LENGTH', '')]);
    expect(bytes.length).toBe(4 + 54);
    const json = await echo(bytes);
    expect(json.environ).toMatchObject({ REQUEST_METHOD: 'GET', PATH_INFO: '/a', SCRIPT_NAME: '' });
    expect(json.environ.CONTENT_LENGTH).toBeUndefined();
    expect(json.protocol).toBe('uwsgi');
  });

  test('U-1: a datasize whose big-endian reading differs (0x0101 = 257) is read little-endian', async () => {
    const vars = Buffer.concat([entry('REQUEST_METHOD', 'GET'), entry('PATH_INFO', '/le'), entry('HTTP_X_PAD', 'p'.repeat(257 - 37 - 4 - 10))]);
    expect(vars.length).toBe(257);
    const json = await echo(rawPacket(vars));
    expect(json.environ.HTTP_X_PAD).toHaveLength(206);
  });

  describe('U-2: modifier1', () => {
    test.each([0, 5, 6, 7, 8, 9, 14, 15, 30])('U-2: request type %i is served', async (m) => {
      const { res } = await exchange(packet([...base('/echo'), ['CONTENT_LENGTH', '']], m));
      expect(res?.status).toBe(200);
    });
    test.each([
      [22, 'raw code evaluation'],
      [100, 'ping'],
      [173, 'RPC'],
      [10, 'management'],
      [17, 'spooler'],
      [18, 'symbol call'],
      [72, "'H' raw response"],
      [111, 'cache'],
      [224, 'subscription'],
      [255, 'generic response'],
      [1, 'unassigned'],
    ])('U-2 / §4.3: modifier1 %i (%s) → closed without a reply, nothing run, one log line', async (m) => {
      const { conn } = await exchange(packet([['UWSGI_FILE', '/tmp/x.py'], ...base('/echo')], m));
      expect(conn.data.length).toBe(0);
      expect(probe.calls).toEqual([]);
      expect(log.matching(new RegExp(`^uwsgi: packet type modifier1=${m} is not a request type.*without a reply`), 'warn')).toHaveLength(1);
    });
    test('U-2: a refused type is closed on its 4-byte header, before its vars arrive', async () => {
      const conn = await RawConn.open(addr);
      await conn.write(Buffer.from([22, 0xff, 0xff, 0]));
      await conn.untilClosed(10_000);
      expect(conn.data.length).toBe(0);
      expect(log.matching(/modifier1=22/, 'warn')).toHaveLength(1);
    });
    test('U-2: modifier2 is ignored for request types', async () => {
      const { res } = await exchange(packet(base('/echo'), 0, 77));
      expect(res?.status).toBe(200);
    });
  });

  describe('U-3: vars block size', () => {
    test('U-3 / §4.3: a 65535-byte vars block (a big cookie) is accepted by default', async () => {
      const fixed = [...base('/echo'), ['CONTENT_LENGTH', '']] as Pair[];
      const fixedSize = encodeUwsgiRequest(fixed).length - 4;
      const cookie = 'c'.repeat(65535 - fixedSize - 4 - 'HTTP_COOKIE'.length);
      const bytes = packet([...fixed, ['HTTP_COOKIE', cookie]]);
      expect(bytes.readUInt16LE(1)).toBe(65535);
      const json = await echo(bytes);
      expect(json.environ.HTTP_COOKIE).toBe(cookie);
    });
    test('U-3, S-11: a vars block over --max-params-bytes → HTTP/1.1 431, the vars are not waited for', async () => {
      const g = await startGateway(service, { uwsgi: ['127.0.0.1:0'], maxParamsBytes: '1000' }, log);
      try {
        const { res } = await exchange(Buffer.from([0, 0xe9, 0x03, 0]), {}, g.addrs[0]); // datasize 1001
        expect(res?.status).toBe(431);
        const ok = await exchange(packet(base('/echo')), {}, g.addrs[0]);
        expect(ok.res?.status).toBe(200);
      } finally {
        await g.gateway.close(1000);
      }
    });
  });

  describe('U-4: the vars block is parsed exactly', () => {
    test('U-4 / §4.3: key size 0 → HTTP/1.1 400 (policy), the app is not called', async () => {
      const vars = Buffer.concat([entry('REQUEST_METHOD', 'GET'), le16(0), le16(1), Buffer.from('x')]);
      const { res } = await exchange(rawPacket(vars));
      expect(res?.status).toBe(400);
      expect(res?.firstLine).toBe('HTTP/1.1 400 Bad Request');
      expect(probe.calls).toEqual([]);
    });
    test("U-4 / §4.3: the last entry's value runs past datasize → 400", async () => {
      const vars = Buffer.concat([entry('REQUEST_METHOD', 'GET'), le16(9), Buffer.from('PATH_INFO'), le16(50), Buffer.from('/short')]);
      const { res } = await exchange(rawPacket(vars));
      expect(res?.status).toBe(400);
    });
    test('U-4: empty values are legal', async () => {
      const json = await echo(packet([...base('/echo'), ['DOCUMENT_ROOT', ''], ['CONTENT_TYPE', '']]));
      expect(json.environ.DOCUMENT_ROOT).toBe('');
      expect(json.environ.CONTENT_TYPE).toBeUndefined();
    });
    test('U-4: EOF inside the vars block closes silently', async () => {
      const bytes = packet(base('/echo'));
      const { conn } = await exchange(bytes.subarray(0, 20), { halfClose: true });
      expect(conn.data.length).toBe(0);
      expect(probe.calls).toEqual([]);
    });
  });

  test('U-5: duplicate HTTP_* joined, others last wins; names with "=", "." or NUL dropped; a NUL in a value → 400', async () => {
    const json = await echo(
      packet([
        ...base('/echo'),
        ['HTTP_ACCEPT', 'a'],
        ['HTTP_ACCEPT', 'b'],
        ['DOCUMENT_ROOT', '/one'],
        ['DOCUMENT_ROOT', '/two'],
        ['wsgi.input', 'x'],
        ['A=B', 'x'],
        ['NUL\0NAME', 'x'],
      ]),
    );
    expect(json.environ.HTTP_ACCEPT).toBe('a, b');
    expect(json.environ.DOCUMENT_ROOT).toBe('/two');
    expect(Object.keys(json.environ).filter((k) => /[=.\0]/.test(k))).toEqual([]);
    const { res } = await exchange(packet([...base('/echo'), ['HTTP_X', 'a\0b']]));
    expect(res?.status).toBe(400);
  });

  describe('U-6: the body', () => {
    test('U-6: exactly CONTENT_LENGTH bytes reach the app, byte-exact, across reads', async () => {
      const body = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) % 256));
      const bytes = uwsgiRequestBytes({ method: 'POST', uri: '/echo' }, body);
      const json = await echo([bytes.subarray(0, 3), bytes.subarray(3, 200), bytes.subarray(200)], { gapMs: 10 });
      expect(Buffer.from(json.body, 'latin1').equals(body)).toBe(true);
    });
    test('U-6 / §4.3: CONTENT_LENGTH "12abc" → 400 (uWSGI would read 12)', async () => {
      const { res } = await exchange([packet([...base('/echo', 'POST'), ['CONTENT_LENGTH', '12abc']]), Buffer.alloc(12)]);
      expect(res?.status).toBe(400);
      expect(probe.calls).toEqual([]);
    });
    test('U-6: CONTENT_LENGTH absent or empty → no body, even when bytes follow; one request per connection', async () => {
      const second = uwsgiRequestBytes({ method: 'DELETE', uri: '/forged' });
      for (const vars of [base('/echo', 'POST'), [...base('/echo', 'POST'), ['CONTENT_LENGTH', '']] as Pair[]]) {
        probe.reset();
        const json = await echo(Buffer.concat([packet(vars), second]));
        expect(json.body_length).toBe(0);
        expect(json.body_error).toBeNull();
        expect(probe.calls).toEqual(['POST /echo']);
      }
    });
    test('U-6, §0.1 #15: nginx 1.22 with uwsgi_request_buffering off (short CONTENT_LENGTH): the rest, even a forged packet, is never parsed', async () => {
      const forged = uwsgiRequestBytes({ method: 'DELETE', uri: '/forged' });
      const head = encodeUwsgiRequest(nginxUwsgiVars({ method: 'POST', uri: '/echo', contentLength: 4 }));
      const { conn, res } = await exchange([head, Buffer.from('abcd'), forged, Buffer.alloc(10000, 'r')], { gapMs: 20 });
      expect(JSON.parse((res?.body as Buffer).toString()).body).toBe('abcd');
      expect(probe.calls).toEqual(['POST /echo']);
      expect(conn.data.toString('latin1').match(/HTTP\/1\.1 /g)).toHaveLength(1);
    });
    test('U-6: EOF before CONTENT_LENGTH → the app gets a truncated-body error', async () => {
      const bytes = uwsgiRequestBytes({ method: 'POST', uri: '/echo' }, Buffer.alloc(10, 'q'));
      const json = await echo(bytes.subarray(0, bytes.length - 3), { halfClose: true });
      expect(json).toMatchObject({ body_error: 'GATEWIRE_BODY_TRUNCATED', body_length: 7 });
    });
    test('U-6: the body streams with backpressure: an app that does not read holds at most ~1 MiB, then reads all 32 MiB', async () => {
      const body = Buffer.alloc(32 * 1024 * 1024, 7);
      // Built before connecting: copying 32 MiB (and the GC it may set off) on a loaded machine
      // must not count against the 500 ms headers timeout of the open connection.
      const request = uwsgiRequestBytes({ method: 'POST', uri: '/hold' }, body);
      const conn = await RawConn.open(addr);
      const writing = conn.write(request);
      await waitFor(() => probe.held.length === 1, 'the app to get the request');
      await sleep(300);
      expect((probe.held[0] as { received?: number }).received).toBeLessThan(1024 * 1024);
      probe.release();
      await writing;
      await conn.untilClosed(30_000);
      expect(parseHttpResponse(conn.data)?.body.toString()).toBe(`${body.length} ${sha(body)} `);
    });
  });

  describe('U-7: modifier1 30', () => {
    const mounted = (scriptName: string, pathInfo: string): Pair[] => [...base('/x'), ['PATH_INFO', pathInfo], ['SCRIPT_NAME', scriptName], ['REQUEST_URI', pathInfo]];
    test.each([
      ['/app', '/app/echo', '/echo'],
      ['/app/', '/app/echo', '/echo'],
    ])('U-7: SCRIPT_NAME %j, PATH_INFO %j → PATH_INFO %j', async (sn, pi, expected) => {
      const json = await echo(packet(mounted(sn, pi), 30));
      expect(json.environ.SCRIPT_NAME).toBe(sn);
      expect(json.environ.PATH_INFO).toBe(expected);
    });
    // Known bug in src/environ.ts repairScriptName (since a293805): when U-7 leaves PATH_INFO
    // empty and no --mount is set, SCRIPT_NAME/PATH_INFO are re-derived from REQUEST_URI, giving
    // ("", "/app") instead of E-5.2's "as sent, U-7 applied" ("/app", ""). Flips when fixed.
    test('U-7: SCRIPT_NAME "/app", PATH_INFO "/app" → SCRIPT_NAME "/app", PATH_INFO ""', async () => {
      const json = await echo(packet(mounted('/app', '/app'), 30));
      expect([json.environ.SCRIPT_NAME, json.environ.PATH_INFO]).toEqual(['/app', '']);
    });
    test.each([
      ['/app', '/application/x'],
      ['/app', '/other'],
    ])('U-7 / §4.3: SCRIPT_NAME %j is not a segment prefix of %j → PATH_INFO unchanged, logged (once per listener)', async (sn, pi) => {
      const json = await echo(packet(mounted(sn, pi), 30));
      expect(json.environ.PATH_INFO).toBe(pi);
      expect(json.environ.SCRIPT_NAME).toBe(sn);
    });
    test('U-7: the not-a-prefix warning is one line per listener', async () => {
      const local = captureLogger();
      const g = await startGateway(service, { uwsgi: ['127.0.0.1:0'] }, local);
      try {
        for (let i = 0; i < 3; i++) await exchange(packet(mounted('/app', '/other'), 30), {}, g.addrs[0]);
        expect(local.matching(/modifier1 30 but SCRIPT_NAME "\/app" is not a segment prefix of PATH_INFO "\/other"/, 'warn')).toHaveLength(1);
      } finally {
        await g.gateway.close(1000);
      }
    });
    test('U-7: without modifier1 30 nothing is stripped', async () => {
      const json = await echo(packet(mounted('/app', '/app/echo'), 0));
      expect(json.environ.PATH_INFO).toBe('/app/echo');
    });
    test('U-7: the nginx idiom (uwsgi_param SCRIPT_NAME /app; uwsgi_modifier1 30) gives what the HTTP front gives with --mount /app', async () => {
      const bytes = Buffer.concat([encodeUwsgiRequest(nginxUwsgiVars({ uri: '/app/echo?x=1', extra: [['SCRIPT_NAME', '/app']] }), { modifier1: 30 })]);
      const json = await echo(bytes);
      expect(json.environ).toMatchObject({ SCRIPT_NAME: '/app', PATH_INFO: '/echo', QUERY_STRING: 'x=1', REQUEST_URI: '/app/echo?x=1' });
    });
  });

  describe('U-8, U-9: the response', () => {
    test('U-8: an HTTP/1.1 status line first, as Apache mod_proxy_uwsgi requires (mask "HTTP/#.# ###*"), tokens as names, CRLF', async () => {
      const { conn, res } = await exchange(uwsgiRequestBytes({ uri: '/status?s=404+Gone' }));
      const text = conn.data.toString('latin1');
      expect(text).toMatch(/^HTTP\/\d\.\d \d{3}/);
      expect(text).toMatch(/^HTTP\/1\.1 404 Gone\r\nContent-Type: text\/plain\r\nContent-Length: 7\r\n\r\nstatus\n$/);
      expect(res?.headers['status']).toBeUndefined();
    });
    test('U-9: a streamed body of unknown length: no Transfer-Encoding, raw bytes, ended by the close (FIN)', async () => {
      const { conn, res } = await exchange(uwsgiRequestBytes({ uri: '/stream?n=5&size=20000' }));
      expect(res?.headers['transfer-encoding']).toBeUndefined();
      expect(res?.body.length).toBe(100_000);
      expect(conn.ended).toBe(true);
      expect(conn.reset).toBe(false);
    });
    test('R-11 on uwsgi: an error after the head resets the connection', async () => {
      const { conn, res } = await exchange(uwsgiRequestBytes({ uri: '/error-after' }));
      expect(res?.body.toString()).toBe('part-');
      expect(conn.reset).toBe(true);
    });
  });

  test('U-10 / §4.3: uWSGI magic vars are plain data: UWSGI_FILE, UWSGI_SCRIPT, UWSGI_CHDIR never select code; UWSGI_SCHEME and X-Forwarded-Proto never set the scheme', async () => {
    const json = await echo(
      packet([
        ...base('/echo'),
        ['UWSGI_FILE', '/tmp/x.py'],
        ['UWSGI_SCRIPT', 'evil:app'],
        ['UWSGI_CHDIR', '/'],
        ['UWSGI_SCHEME', 'https'],
        ['HTTP_X_FORWARDED_PROTO', 'https'],
      ]),
    );
    expect(probe.calls).toEqual(['GET /echo']);
    expect(json.url_scheme).toBe('http');
    expect(json.environ.UWSGI_FILE).toBe('/tmp/x.py');
    const https = await echo(packet([...base('/echo'), ['HTTPS', 'on']]));
    expect(https.url_scheme).toBe('https');
  });

  test('U-11: values are latin1 strings, one char per byte', async () => {
    const json = await echo(packet([...base('/echo'), ['HTTP_X_BYTES', '\u00c3\u00a9\u00ff'], ['PATH_INFO', '/caf\u00c3\u00a9']]));
    expect(json.environ.HTTP_X_BYTES).toBe('\u00c3\u00a9\u00ff');
    expect(json.environ.PATH_INFO).toBe('/caf\u00c3\u00a9');
  });

  test('timeouts: a packet header that never completes is closed after --headers-timeout, with a log line', async () => {
    const { conn } = await exchange(Buffer.from([0, 0x40]));
    expect(conn.data.length).toBe(0);
    expect(log.matching(/^uwsgi: no complete request head .* within 500 ms/, 'warn')).toHaveLength(1);
  });

  test('timeouts / slowloris: a vars block trickled a byte at a time is closed at --headers-timeout from its first byte, though it never goes quiet', async () => {
      // A byte every 100 ms keeps re-arming the 500 ms idle timer; the head deadline still holds.
      const { conn, ms } = await trickle(addr, packet(base('/echo')));
      expect(ms).toBeLessThan(3000);
      expect(conn.data.length).toBe(0);
      expect(log.matching(/^uwsgi: no complete request head .* within 500 ms/, 'warn')).toHaveLength(1);
      expect(probe.calls).toEqual([]);
    });
  test('overload: beyond --max-inflight a request gets HTTP/1.1 503 at once', async () => {
    const g = await startGateway(service, { uwsgi: ['127.0.0.1:0'], maxInflight: '1' }, log);
    try {
      const first = await RawConn.open(g.addrs[0] as GatewayAddress);
      await first.write(uwsgiRequestBytes({ method: 'POST', uri: '/hold' }, Buffer.from('x')));
      await waitFor(() => probe.held.length === 1, 'the first request');
      const { res } = await exchange(uwsgiRequestBytes({ uri: '/echo' }), {}, g.addrs[0]);
      expect(res?.firstLine).toBe('HTTP/1.1 503 Service Unavailable');
      probe.release();
      await first.untilClosed();
    } finally {
      await g.gateway.close(1000);
    }
  });

  test('peer allow-list (--uwsgi-allow): outside → closed with a log line; inside → served', async () => {
    const g = await startGateway(service, { uwsgi: ['127.0.0.1:0'], uwsgiAllow: '127.0.0.2' }, log);
    try {
      const refused = await exchange(uwsgiRequestBytes({ uri: '/echo' }), { localAddress: '127.0.0.1' }, g.addrs[0]);
      expect(refused.conn.data.length).toBe(0);
      expect(probe.calls).toEqual([]);
      expect(log.matching(/^uwsgi: connection from 127\.0\.0\.1 refused \(not in the allow-list 127\.0\.0\.2\)/, 'warn')).toHaveLength(1);
      const served = await exchange(uwsgiRequestBytes({ uri: '/echo' }), { localAddress: '127.0.0.2' }, g.addrs[0]);
      expect(served.res?.status).toBe(200);
    } finally {
      await g.gateway.close(1000);
    }
  });
});
