/**
 * The SCGI front over real sockets: S-1..S-12 and the §3.3 hostile inputs that concern the
 * front (the codec's own cases are in test/protocols/scgi.test.ts).
 */
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  type EchoResult,
  type GatewayAddress,
  type Pair,
  RawConn,
  captureLogger,
  nginxScgiVars,
  parseScgiResponse,
  probeService,
  rawExchange,
  scgiRequestBytes,
  startGateway,
  waitFor,
  trickle,
} from './helpers/scgi-client.js';
import { encodeScgiRequest } from '../protocols/scgi/index.js';
import type { Gateway } from '../src/server.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A netstring around a raw block. */
const ns = (block: string, terminator = ','): Buffer => Buffer.from(`${Buffer.byteLength(block, 'latin1')}:${block}${terminator}`, 'latin1');
const block = (pairs: ReadonlyArray<readonly [string, string]>): string => pairs.map(([k, v]) => `${k}\0${v}\0`).join('');
const base = (uri = '/echo', method = 'GET'): Pair[] => [
  ['REQUEST_METHOD', method],
  ['REQUEST_URI', uri],
  ['SERVER_PROTOCOL', 'HTTP/1.1'],
  ['SERVER_NAME', 'localhost'],
  ['SERVER_PORT', '80'],
];

const { service, probe } = probeService();
const log = captureLogger();
let gateway: Gateway;
let addr: GatewayAddress;

beforeAll(async () => {
  const started = await startGateway(service, { scgi: ['127.0.0.1:0'], headersTimeout: '500ms', idleTimeout: '500ms', maxBodyBytes: '64m' }, log);
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
  return { conn, res: parseScgiResponse(conn.data) };
}

async function echo(bytes: Buffer | Buffer[], opts: Parameters<typeof rawExchange>[2] = {}): Promise<EchoResult> {
  const { res } = await exchange(bytes, opts);
  expect(res?.status).toBe(200);
  return JSON.parse((res?.body as Buffer).toString()) as EchoResult;
}

describe('SCGI front', () => {
  test('§3.1: the spec example (70-byte block, 27-byte body) is answered CGI-style, then the connection ends', async () => {
    const head = ns(block([['CONTENT_LENGTH', '27'], ['SCGI', '1'], ['REQUEST_METHOD', 'POST'], ['REQUEST_URI', '/deepthought']]));
    expect(head.subarray(0, 3).toString()).toBe('70:');
    const { conn, res } = await exchange([head, Buffer.from('What is the answer to life?')]);
    expect(conn.data.toString('latin1')).toMatch(/^Status: 200 OK\r\n/);
    const json = JSON.parse((res?.body as Buffer).toString()) as EchoResult;
    expect(json).toMatchObject({ protocol: 'scgi', body: 'What is the answer to life?', body_length: 27 });
    expect(json.environ).toMatchObject({ REQUEST_METHOD: 'POST', PATH_INFO: '/deepthought', SCRIPT_NAME: '', CONTENT_LENGTH: '27', SCGI: '1' });
    expect(conn.ended).toBe(true);
    expect(conn.reset).toBe(false);
  });

  describe('S-1: the length prefix', () => {
    test.each([
      ['leading zero', '070:'],
      ['sign', '+70:'],
      ['leading space', ' 70:'],
      ['letter', '70x'],
      ['empty', ':'],
    ])('S-1 / §3.3: %s (%j) → Status: 400 Bad Request, then close', async (_what, prefix) => {
      const { conn, res } = await exchange(Buffer.from(`${prefix}CONTENT_LENGTH\u00000\u0000`, 'latin1'));
      expect(conn.data.toString('latin1')).toMatch(/^Status: 400 Bad Request\r\n/);
      expect(res?.headers['content-type']).toEqual(['text/plain; charset=utf-8']);
      expect(conn.ended).toBe(true);
      expect(probe.calls).toEqual([]);
      expect(log.matching(/^scgi: 400 /, 'warn')).toHaveLength(1);
    });

    test('S-1: EOF before ":" closes silently (no reply, no warning)', async () => {
      const { conn } = await exchange(Buffer.from('12'), { halfClose: true });
      expect(conn.data.length).toBe(0);
      expect(conn.closed).toBe(true);
      expect(log.matching(/./, 'warn')).toEqual([]);
    });

    test('S-1 / §3.3: 99999999999: → 431 before any body byte is read', async () => {
      const { conn, res } = await exchange(Buffer.from('99999999999:'));
      expect(res?.status).toBe(431);
      expect(conn.data.toString('latin1')).toMatch(/^Status: 431 /);
      expect(probe.calls).toEqual([]);
    });

    test('S-11: a header block over --max-params-bytes → 431 as soon as the prefix says so', async () => {
      const small = await startGateway(service, { scgi: ['127.0.0.1:0'], maxParamsBytes: '200' }, log);
      try {
        const { res } = await exchange(Buffer.from('201:'), {}, small.addrs[0]);
        expect(res?.status).toBe(431);
        const ok = await exchange(ns(block([['CONTENT_LENGTH', '0'], ...base()])), {}, small.addrs[0]);
        expect(ok.res?.status).toBe(200);
      } finally {
        await small.gateway.close(1000);
      }
    });
  });

  test('S-2 / §3.3: N bytes then ";" instead of "," → 400', async () => {
    const { res } = await exchange(ns(block([['CONTENT_LENGTH', '0'], ...base()]), ';'));
    expect(res?.status).toBe(400);
    expect(probe.calls).toEqual([]);
  });

  describe('S-3: the header block', () => {
    test('S-3 / §3.3: a block without the trailing NUL → 400', async () => {
      const { res } = await exchange(ns(block([['CONTENT_LENGTH', '0'], ...base()]).slice(0, -1)));
      expect(res?.status).toBe(400);
    });
    test('S-3 / §3.3: an odd number of strings (a name without value) → 400', async () => {
      const { res } = await exchange(ns(`${block([['CONTENT_LENGTH', '0'], ...base()])}LONELY\0`));
      expect(res?.status).toBe(400);
    });
    test('S-3, E-4: empty values are legal; an empty CONTENT_TYPE is removed from the environ', async () => {
      const json = await echo(ns(block([['CONTENT_LENGTH', '0'], ...base(), ['CONTENT_TYPE', ''], ['DOCUMENT_ROOT', '']])));
      expect(json.environ.CONTENT_TYPE).toBeUndefined();
      expect(json.environ.DOCUMENT_ROOT).toBe('');
    });
  });

  describe('S-4: CONTENT_LENGTH', () => {
    test.each(['', '1e3', '-1', ' 5', '0x10'])('S-4 / §3.3: CONTENT_LENGTH %j → 400', async (cl) => {
      const { res } = await exchange(ns(block([['CONTENT_LENGTH', cl], ...base()])));
      expect(res?.status).toBe(400);
      expect(probe.calls).toEqual([]);
    });
    test('S-4: missing CONTENT_LENGTH → 400', async () => {
      const { res } = await exchange(ns(block(base())));
      expect(res?.status).toBe(400);
    });
    test('S-4: two CONTENT_LENGTH entries → 400', async () => {
      const { res } = await exchange(ns(block([['CONTENT_LENGTH', '0'], ...base(), ['CONTENT_LENGTH', '0']])));
      expect(res?.status).toBe(400);
    });
    test('S-4 (policy): CONTENT_LENGTH accepted in any position', async () => {
      const json = await echo([ns(block([...base('/echo', 'POST'), ['CONTENT_LENGTH', '3']])), Buffer.from('abc')]);
      expect(json).toMatchObject({ body: 'abc', body_length: 3 });
    });
    test('S-4: CONTENT_LENGTH over --max-body-bytes → 413, the app is not called', async () => {
      const { res } = await exchange(ns(block([['CONTENT_LENGTH', String(65 * 1024 * 1024)], ...base('/echo', 'POST')])));
      expect(res?.status).toBe(413);
      expect(probe.calls).toEqual([]);
    });
  });

  describe('S-5: the SCGI marker', () => {
    test('S-5: SCGI = 2 → 400', async () => {
      const { res } = await exchange(ns(block([['CONTENT_LENGTH', '0'], ['SCGI', '2'], ...base()])));
      expect(res?.status).toBe(400);
    });
    test('S-5: a request without SCGI is served; one warning per listener', async () => {
      const local = captureLogger();
      const g = await startGateway(service, { scgi: ['127.0.0.1:0'] }, local);
      try {
        for (let i = 0; i < 2; i++) {
          const { res } = await exchange(ns(block([['CONTENT_LENGTH', '0'], ...base()])), {}, g.addrs[0]);
          expect(res?.status).toBe(200);
        }
        expect(local.matching(/without the "SCGI: 1" header/, 'warn')).toHaveLength(1);
      } finally {
        await g.gateway.close(1000);
      }
    });
  });

  test('S-6 / §3.3: duplicate HTTP_* joined (cookies with "; "), other duplicates last wins, names with "=" or "." (wsgi.input) dropped', async () => {
    const json = await echo(
      ns(
        block([
          ['CONTENT_LENGTH', '0'],
          ...base(),
          ['HTTP_ACCEPT', 'a'],
          ['HTTP_ACCEPT', 'b'],
          ['HTTP_COOKIE', 'x=1'],
          ['HTTP_COOKIE', 'y=2'],
          ['DOCUMENT_ROOT', '/one'],
          ['DOCUMENT_ROOT', '/two'],
          ['wsgi.input', 'forged'],
          ['gatewire.protocol', 'http'],
          ['A=B', 'x'],
          ['HTTP_PROXY', 'http://evil'],
        ]),
      ),
    );
    expect(json.environ.HTTP_ACCEPT).toBe('a, b');
    expect(json.environ.HTTP_COOKIE).toBe('x=1; y=2');
    expect(json.environ.DOCUMENT_ROOT).toBe('/two');
    expect(json.environ['wsgi.input']).toBeUndefined();
    expect(json.environ['A=B']).toBeUndefined();
    expect(json.environ.HTTP_PROXY).toBeUndefined();
    expect(json.protocol).toBe('scgi');
  });

  describe('S-7: the body', () => {
    test('S-7: exactly CONTENT_LENGTH bytes reach the app, in pieces, byte-exact', async () => {
      const body = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 256));
      const bytes = scgiRequestBytes({ method: 'POST', uri: '/echo' }, body);
      const pieces = [bytes.subarray(0, 5), bytes.subarray(5, 100), bytes.subarray(100, bytes.length - 1000), bytes.subarray(bytes.length - 1000)];
      const json = await echo(pieces, { gapMs: 10 });
      expect(json.body_length).toBe(3000);
      expect(Buffer.from(json.body, 'latin1').equals(body)).toBe(true);
    });

    test('S-7 / §3.3: EOF before CONTENT_LENGTH → the app gets a truncated-body error', async () => {
      const bytes = scgiRequestBytes({ method: 'POST', uri: '/echo' }, Buffer.alloc(100, 'a'));
      const json = await echo(bytes.subarray(0, bytes.length - 40), { halfClose: true });
      expect(json.body_error).toBe('GATEWIRE_BODY_TRUNCATED');
      expect(json.body_length).toBe(60);
      expect(log.matching(/after 60 of 100 body bytes/, 'warn')).toHaveLength(1);
    });

    test('S-7 / §3.3: extra bytes after the body are ignored and the connection closes after the response', async () => {
      const bytes = scgiRequestBytes({ method: 'POST', uri: '/echo' }, Buffer.from('exact'));
      const { conn, res } = await exchange([bytes, Buffer.from('TRAILING GARBAGE')]);
      expect(JSON.parse((res?.body as Buffer).toString()).body).toBe('exact');
      expect(conn.ended).toBe(true);
    });

    test('S-7 / §3.3: a second netstring pipelined after the body is never served (no keep-alive)', async () => {
      const first = scgiRequestBytes({ method: 'POST', uri: '/echo' }, Buffer.from('one'));
      const second = scgiRequestBytes({ method: 'GET', uri: '/second' });
      const { conn } = await exchange(Buffer.concat([first, second]));
      expect(probe.calls).toEqual(['POST /echo']);
      expect(conn.data.toString('latin1').match(/Status: /g)).toHaveLength(1);
    });

    test('S-7, §0.1 #15: nginx 1.22 with scgi_request_buffering off (short CONTENT_LENGTH): the rest of the body, even a whole forged request, is never parsed', async () => {
      const forged = scgiRequestBytes({ method: 'DELETE', uri: '/forged' });
      const real = Buffer.concat([Buffer.from('0123456789'), forged]);
      // CONTENT_LENGTH says 10: what nginx had buffered when it sent the head; the rest follows.
      const head = encodeScgiRequest(nginxScgiVars({ method: 'POST', uri: '/echo', contentLength: 10 }), 10);
      const { conn, res } = await exchange([head, real.subarray(0, 10), real.subarray(10)], { gapMs: 20 });
      expect(JSON.parse((res?.body as Buffer).toString()).body).toBe('0123456789');
      expect(probe.calls).toEqual(['POST /echo']);
      expect(conn.data.toString('latin1').match(/Status: /g)).toHaveLength(1);
    });

    test('S-7: the body streams with backpressure: an app that does not read holds at most ~1 MiB, then reads all 32 MiB', async () => {
      const body = Buffer.alloc(32 * 1024 * 1024);
      for (let i = 0; i < body.length; i += 4096) body[i] = (i >> 12) & 0xff;
      // Built before connecting: copying 32 MiB (and the GC it may set off) on a loaded machine
      // must not count against the 500 ms headers timeout of the open connection.
      const request = scgiRequestBytes({ method: 'POST', uri: '/hold' }, body);
      const conn = await RawConn.open(addr);
      const writing = conn.write(request);
      await waitFor(() => probe.held.length === 1, 'the app to get the request');
      await sleep(300);
      const held = probe.held[0] as { received?: number; readableLength: number };
      expect(held.received).toBeLessThan(1024 * 1024);
      probe.release();
      await writing;
      await conn.untilClosed(30_000);
      const res = parseScgiResponse(conn.data);
      expect(res?.body.toString()).toBe(`${body.length} ${sha(body)} `);
    });

    test('E-11: an app that answers without reading the body: the response goes out, the rest of the body is drained, the connection closes', async () => {
      const { conn, res } = await exchange(scgiRequestBytes({ method: 'POST', uri: '/no-read' }, Buffer.alloc(2 * 1024 * 1024, 'z')));
      expect(res?.status).toBe(200);
      expect(res?.body.toString()).toBe('ok');
      expect(conn.reset).toBe(false);
    });
  });

  describe('S-8: the response', () => {
    test('S-8: CGI style: "Status: NNN Reason" first, CRLF line ends, exact Content-Length, no Transfer-Encoding', async () => {
      const { conn, res } = await exchange(scgiRequestBytes({ uri: '/status?s=404+Gone' }));
      const text = conn.data.toString('latin1');
      expect(text).toMatch(/^Status: 404 Gone\r\nContent-Type: text\/plain\r\nContent-Length: 7\r\n\r\nstatus\n$/);
      expect(res?.headers['transfer-encoding']).toBeUndefined();
    });
    test('S-8, table 8.2: a streamed body of unknown length is raw bytes (no chunk framing), ended by the close', async () => {
      const { conn, res } = await exchange(scgiRequestBytes({ uri: '/stream?n=8&size=10000' }));
      expect(res?.headers['transfer-encoding']).toBeUndefined();
      expect(res?.headers['content-length']).toBeUndefined();
      expect(res?.body.length).toBe(80_000);
      expect(res?.body.every((b) => b === 0x78)).toBe(true);
      expect(conn.reset).toBe(false);
    });
    test('R-11 on SCGI: an error after the head resets the connection (the web server sees the truncation)', async () => {
      const { conn, res } = await exchange(scgiRequestBytes({ uri: '/error-after' }));
      expect(res?.body.toString()).toBe('part-');
      expect(conn.reset).toBe(true);
    });
    test('S-10: an app asking for 101 gets a 500 (no tunnel on SCGI)', async () => {
      const { res } = await exchange(scgiRequestBytes({ uri: '/status?s=101+Switching+Protocols' }));
      expect(res?.status).toBe(500);
    });
  });

  test('S-9: after the response, half-close (FIN) first; bytes the peer still sends are drained, not answered with a reset', async () => {
    const conn = await RawConn.open(addr);
    conn.closeOnEnd = false;
    await conn.write(scgiRequestBytes({ uri: '/echo' }));
    await conn.until(() => conn.ended, 10_000, 'the FIN');
    expect(parseScgiResponse(conn.data)?.status).toBe(200);
    expect(conn.closed).toBe(false);
    await conn.write(Buffer.alloc(1000, 'late'));
    conn.end();
    await conn.untilClosed(10_000);
    expect(conn.reset).toBe(false);
    expect(conn.error).toBeUndefined();
  });

  test('S-9: a peer that never closes its side is closed by the server after the drain period', async () => {
    const conn = await RawConn.open(addr);
    conn.closeOnEnd = false;
    await conn.write(scgiRequestBytes({ uri: '/echo' }));
    await conn.until(() => conn.ended, 10_000, 'the FIN');
    // Once the server has closed its socket, a write is answered with a reset.
    for (let i = 0; i < 100 && conn.error === undefined; i++) {
      await conn.write(Buffer.from('x'));
      await sleep(100);
    }
    expect(['ECONNRESET', 'EPIPE']).toContain(conn.error?.code);
  });

  describe('S-11: timeouts and limits', () => {
    test('S-11: a head that never completes is closed after --headers-timeout, with a log line', async () => {
      const { conn } = await exchange(Buffer.from('70:CONTENT_LENGTH\u0000', 'latin1'));
      expect(conn.data.length).toBe(0);
      expect(conn.closed).toBe(true);
      expect(log.matching(/no complete request head .* within 500 ms/, 'warn')).toHaveLength(1);
      expect(probe.calls).toEqual([]);
    });
    test('S-11 / slowloris: a head trickled a byte at a time is closed at --headers-timeout from its first byte, though it never goes quiet', async () => {
      // A byte every 100 ms keeps re-arming the 500 ms idle timer; the head deadline still holds.
      const { conn, ms } = await trickle(addr, scgiRequestBytes({ uri: '/echo' }));
      expect(ms).toBeLessThan(3000);
      expect(conn.data.length).toBe(0);
      expect(log.matching(/no complete request head .* within 500 ms/, 'warn')).toHaveLength(1);
      expect(probe.calls).toEqual([]);
    });
    test('S-11: a body that stalls is closed after --idle-timeout; the app sees the error', async () => {
      const bytes = scgiRequestBytes({ method: 'POST', uri: '/echo' }, Buffer.alloc(100, 'b'));
      const { conn } = await exchange(bytes.subarray(0, bytes.length - 50));
      expect(conn.closed).toBe(true);
      expect(log.matching(/request body .* stalled at 50 of 100 bytes/, 'warn')).toHaveLength(1);
      expect(probe.calls).toEqual(['POST /echo']);
    });
    test('F-16 policy on SCGI: beyond --max-inflight a request gets Status: 503 at once', async () => {
      const g = await startGateway(service, { scgi: ['127.0.0.1:0'], maxInflight: '1' }, log);
      try {
        const first = await RawConn.open(g.addrs[0] as GatewayAddress);
        await first.write(scgiRequestBytes({ method: 'POST', uri: '/hold' }, Buffer.from('x')));
        await waitFor(() => probe.held.length === 1, 'the first request');
        const { res } = await exchange(scgiRequestBytes({ uri: '/echo' }), {}, g.addrs[0]);
        expect(res?.status).toBe(503);
        expect(log.matching(/^scgi: 503 more than 1 requests in flight/, 'warn')).toHaveLength(1);
        probe.release();
        await first.untilClosed();
        expect(parseScgiResponse(first.data)?.status).toBe(200);
        const again = await exchange(scgiRequestBytes({ uri: '/echo' }), {}, g.addrs[0]);
        expect(again.res?.status).toBe(200);
      } finally {
        await g.gateway.close(1000);
      }
    });
  });

  test('S-12: values are bytes held as latin1 strings (never UTF-8-decoded)', async () => {
    const uri = Buffer.from('/caf\u00c3\u00a9?q=\u00e9', 'latin1').toString('latin1');
    const json = await echo(Buffer.concat([encodeScgiRequest([...base(), ['REQUEST_URI', uri], ['HTTP_X_NAME', '\u00ff\u00fe']], 0)]));
    expect(json.environ.REQUEST_URI).toBe(uri);
    expect(json.environ.PATH_INFO).toBe('/caf\u00c3\u00a9');
    expect(json.environ.HTTP_X_NAME).toBe('\u00ff\u00fe');
  });

  test('E-5.2: nginx scgi_params (no SCRIPT_NAME, no PATH_INFO) split by --mount', async () => {
    const g = await startGateway(service, { scgi: ['127.0.0.1:0'], mount: '/app' }, log);
    try {
      const { res } = await exchange(scgiRequestBytes({ uri: '/app/echo%20x?q=1' }), {}, g.addrs[0]);
      const json = JSON.parse((res?.body as Buffer).toString()) as EchoResult;
      expect(json.environ).toMatchObject({ SCRIPT_NAME: '/app', PATH_INFO: '/echo x', QUERY_STRING: 'q=1' });
    } finally {
      await g.gateway.close(1000);
    }
  });

  test('the web server goes away mid-response: the app is told (signal) and its body closed (R-5)', async () => {
    const conn = await RawConn.open(addr);
    await conn.write(scgiRequestBytes({ uri: '/wait' }));
    await conn.until(() => conn.data.includes('waiting'), 10_000, 'the first chunk');
    conn.destroy();
    for (let i = 0; i < 200 && probe.closed === 0; i++) await sleep(10);
    expect(probe.aborted).toBe(1);
    expect(probe.closed).toBe(1);
  });

  describe('peer allow-list (--scgi-allow, as F-43)', () => {
    test('a peer outside the list is closed without a reply, with a log line', async () => {
      const g = await startGateway(service, { scgi: ['127.0.0.1:0'], scgiAllow: '10.0.0.0/8, ::1' }, log);
      try {
        const { conn } = await exchange(scgiRequestBytes({ uri: '/echo' }), {}, g.addrs[0]);
        expect(conn.data.length).toBe(0);
        expect(probe.calls).toEqual([]);
        expect(log.matching(/^scgi: connection from 127\.0\.0\.1 refused \(not in the allow-list/, 'warn')).toHaveLength(1);
      } finally {
        await g.gateway.close(1000);
      }
    });
    test('a listed peer is served', async () => {
      const g = await startGateway(service, { scgi: ['127.0.0.1:0'], scgiAllow: '127.0.0.0/8' }, log);
      try {
        const { res } = await exchange(scgiRequestBytes({ uri: '/echo' }), {}, g.addrs[0]);
        expect(res?.status).toBe(200);
      } finally {
        await g.gateway.close(1000);
      }
    });
  });

  describe('unix socket listener', () => {
    const sock = path.join(os.tmpdir(), `gatewire-scgi-${process.pid}.sock`);
    let g: Awaited<ReturnType<typeof startGateway>>;
    beforeAll(async () => {
      g = await startGateway(service, { scgi: [`unix:${sock}`], scgiAllow: '10.0.0.0/8' }, log);
    });
    afterAll(async () => {
      await g.gateway.close(1000);
      rmSync(sock, { force: true });
    });
    test('--scgi unix:PATH serves (the allow-list does not apply to unix peers)', async () => {
      const { res } = await exchange(scgiRequestBytes({ method: 'POST', uri: '/echo' }, Buffer.from('over unix')), {}, g.addrs[0]);
      expect(JSON.parse((res?.body as Buffer).toString())).toMatchObject({ body: 'over unix', protocol: 'scgi' });
    });
    test('R-11 over a unix socket (no reset there): the connection is cut without the clean half-close', async () => {
      const { conn, res } = await exchange(scgiRequestBytes({ uri: '/error-after' }), {}, g.addrs[0]);
      expect(res?.body.toString()).toBe('part-');
      expect(conn.reset).toBe(true); // our probe byte after EOF fails: no draining half-close
    });
  });
});
