/**
 * The --auto listener: one address for HTTP, FastCGI, SCGI and uwsgi, told apart by the first
 * bytes of each connection (protocols/detect.ts); and the cross-protocol check that the same
 * request gives the same environ over every front, apart from a documented list of differences.
 */
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type MatrixResponse, httpRequest } from './helpers/fronts.js';
import { FcgiConn, fcgiRequest, nginxParams, parseCgiResponse } from './helpers/fcgi-client.js';
import {
  type EchoResult,
  type GatewayAddress,
  RawConn,
  captureLogger,
  parseScgiResponse,
  probeService,
  rawExchange,
  scgiRequestBytes,
  startGateway,
} from './helpers/scgi-client.js';
import { parseHttpResponse, uwsgiRequestBytes } from './helpers/uwsgi-client.js';
import { encodeUwsgiRequest } from '../protocols/uwsgi/index.js';
import type { Gateway } from '../src/server.js';

type Proto = 'http' | 'fastcgi' | 'scgi' | 'uwsgi';
const netstring = (block: string): Buffer => Buffer.from(`${Buffer.byteLength(block, 'latin1')}:${block},`, 'latin1');
const PROTOS: Proto[] = ['http', 'fastcgi', 'scgi', 'uwsgi'];

const { service, probe } = probeService();
const log = captureLogger();
let gateway: Gateway;
let addr: GatewayAddress;
let port: number;

beforeAll(async () => {
  const started = await startGateway(service, { auto: ['127.0.0.1:0'], headersTimeout: '500ms' }, log);
  gateway = started.gateway;
  addr = started.addrs[0] as GatewayAddress;
  port = started.ports[0] as number;
});
afterAll(async () => {
  await gateway.close(1000);
});
beforeEach(() => {
  probe.reset();
  log.lines.length = 0;
});

interface Request {
  method?: string;
  uri: string;
  headers?: Record<string, string>;
  body?: Buffer;
}

/** One request over `proto` to `to`, as the matching web server (or an HTTP client) sends it. */
async function send(proto: Proto, to: GatewayAddress, req: Request, serverPort = port): Promise<MatrixResponse> {
  const method = req.method ?? 'GET';
  const headers = req.headers ?? { Host: 'localhost' };
  const fwd = { method, uri: req.uri, headers, serverPort, ...(req.body === undefined ? {} : { contentLength: req.body.length }) };
  switch (proto) {
    case 'http': {
      if ('path' in to) {
        const conn = await rawExchange(to, [Buffer.from(`${method} ${req.uri} HTTP/1.1\r\n${Object.entries({ ...headers, Connection: 'close', ...(req.body ? { 'Content-Length': String(req.body.length) } : {}) }).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`), req.body ?? Buffer.alloc(0)]);
        const res = parseHttpResponse(conn.data);
        return { status: res?.status ?? 0, headers: res?.headers ?? {}, body: res?.body ?? Buffer.alloc(0), truncated: conn.reset };
      }
      const { Host: _host, ...rest } = headers;
      return httpRequest(to.port, { method, path: req.uri, headers: { ...rest, Host: headers.Host ?? 'localhost' }, ...(req.body === undefined ? {} : { body: req.body }) });
    }
    case 'fastcgi': {
      const res = await fcgiRequest(to, { params: nginxParams(fwd), ...(req.body === undefined ? {} : { stdin: req.body }) });
      const parsed = parseCgiResponse(res.stdout);
      return { status: parsed?.status ?? 0, headers: parsed?.headers ?? {}, body: parsed?.body ?? Buffer.alloc(0), truncated: !res.completed };
    }
    case 'scgi': {
      const conn = await rawExchange(to, scgiRequestBytes(fwd, req.body));
      const res = parseScgiResponse(conn.data);
      return { status: res?.status ?? 0, headers: res?.headers ?? {}, body: res?.body ?? Buffer.alloc(0), truncated: conn.reset };
    }
    case 'uwsgi': {
      const conn = await rawExchange(to, uwsgiRequestBytes(fwd, req.body));
      const res = parseHttpResponse(conn.data);
      return { status: res?.status ?? 0, headers: res?.headers ?? {}, body: res?.body ?? Buffer.alloc(0), truncated: conn.reset };
    }
  }
}

async function echoOver(proto: Proto, to: GatewayAddress, req: Request, serverPort = port): Promise<EchoResult> {
  const res = await send(proto, to, req, serverPort);
  expect(res.status).toBe(200);
  return JSON.parse(res.body.toString()) as EchoResult;
}

/** The request bytes each protocol's peer sends for a plain GET /echo. */
function requestBytes(proto: Proto): Buffer {
  const fwd = { uri: '/echo?via=bytes', headers: { Host: 'localhost' }, serverPort: port };
  switch (proto) {
    case 'http':
      return Buffer.from('GET /echo?via=bytes HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    case 'scgi':
      return scgiRequestBytes(fwd);
    case 'uwsgi':
      return uwsgiRequestBytes(fwd);
    case 'fastcgi': {
      const { encodeBeginRequest, encodeParamsStream, encodeRecord, RecordType } = require('../protocols/fastcgi/index.js') as typeof import('../protocols/fastcgi/index.js');
      return Buffer.concat([encodeBeginRequest(1), encodeParamsStream(1, nginxParams(fwd)), encodeRecord(RecordType.Stdin, 1)]);
    }
  }
}

/** The response status from the raw bytes a protocol's peer receives. */
function statusOf(proto: Proto, data: Buffer): number | undefined {
  if (proto === 'http' || proto === 'uwsgi') return parseHttpResponse(data)?.status;
  if (proto === 'scgi') return parseScgiResponse(data)?.status;
  // FastCGI: the STDOUT records' content, concatenated.
  let out = Buffer.alloc(0);
  for (let i = 0; i + 8 <= data.length; ) {
    const len = data.readUInt16BE(i + 4);
    if (data[i + 1] === 6) out = Buffer.concat([out, data.subarray(i + 8, i + 8 + len)]);
    i += 8 + len + (data[i + 6] as number);
  }
  return parseCgiResponse(out)?.status;
}

describe('--auto listener', () => {
  test.each(PROTOS)('%s is recognized and served on the one address, with its protocol tag', async (proto) => {
    const json = await echoOver(proto, addr, { method: 'POST', uri: '/echo?p=1', headers: { Host: 'localhost', 'Content-Type': 'text/plain' }, body: Buffer.from(`hello ${proto}`) });
    expect(json.protocol).toBe(proto);
    expect(json).toMatchObject({ body: `hello ${proto}`, body_length: proto.length + 6 });
    expect(json.environ.QUERY_STRING).toBe('p=1');
  });

  test.each(PROTOS)('%s trickled one byte per write is still recognized (detection waits for enough bytes)', async (proto) => {
    const bytes = requestBytes(proto);
    const pieces = [...bytes.subarray(0, 20)].map((b) => Buffer.from([b]));
    const conn = await rawExchange(addr, [...pieces, bytes.subarray(20)], { gapMs: 2 });
    expect(statusOf(proto, conn.data)).toBe(200);
    expect(probe.calls).toEqual(['GET /echo']);
  });

  test.each([
    ['lower-case text', Buffer.from('hello world\r\n')],
    ['a TLS ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0, 0, 0, 0, 0, 0, 0])],
    ['the PROXY protocol v1', Buffer.from('PROXY TCP4 192.0.2.1 192.0.2.2 1234 80\r\nGET / HTTP/1.1\r\n\r\n')],
    ['a leading CRLF before an HTTP request', Buffer.from('\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ['an SCGI netstring with a leading zero', Buffer.from('070:CONTENT_LENGTH\u00000\u0000')],
    ['SCGI without CONTENT_LENGTH first (a dedicated --scgi listener takes it)', netstring('REQUEST_METHOD\u0000GET\u0000CONTENT_LENGTH\u00000\u0000SCGI\u00001\u0000')],
    ['uwsgi with modifier1 22 (raw code evaluation, U-2)', encodeUwsgiRequest([['REQUEST_METHOD', 'GET']], { modifier1: 22 })],
    ['a FastCGI PARAMS record before BEGIN_REQUEST', Buffer.from([1, 4, 0, 1, 0, 0, 0, 0, 1, 4, 0, 1, 0, 0, 0, 0])],
    ['binary zeros', Buffer.alloc(32)],
  ])('%s → one log line and a closed connection, no reply', async (_what, bytes) => {
    const { data, closed } = await rawExchange(addr, bytes);
    expect(data.length).toBe(0);
    expect(closed).toBe(true);
    expect(probe.calls).toEqual([]);
    expect(log.matching(/^auto: the first bytes from 127\.0\.0\.1 \(".*"\) are not HTTP, FastCGI, SCGI or uwsgi; closing$/, 'warn')).toHaveLength(1);
  });

  test('too few bytes, then EOF → closed with a log line', async () => {
    const conn = await rawExchange(addr, Buffer.from('GE'), { halfClose: true });
    expect(conn.data.length).toBe(0);
    expect(log.matching(/^auto: 127\.0\.0\.1 closed after 2 bytes \("GE"\), too few to tell the protocol$/, 'warn')).toHaveLength(1);
  });

  test('too few bytes, then silence → closed after --headers-timeout with a log line', async () => {
    const conn = await rawExchange(addr, Buffer.from('1'));
    expect(conn.data.length).toBe(0);
    expect(log.matching(/^auto: 127\.0\.0\.1 sent 1 bytes in 500 ms, too few to tell the protocol; closing$/, 'warn')).toHaveLength(1);
  });

  test('HTTP keep-alive and pipelining work after the hand-over (the buffered bytes are read first, in order)', async () => {
    const conn = await RawConn.open(addr);
    await conn.write(Buffer.from('GET /echo?n=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo?n=2 HTTP/1.1\r\nHost: a\r\n\r\n'));
    await conn.until(() => (conn.data.toString('latin1').match(/HTTP\/1\.1 200/g) ?? []).length === 2, 10_000, 'two responses');
    await conn.write(Buffer.from('POST /echo?n=3 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc'));
    await conn.untilClosed();
    const text = conn.data.toString('latin1');
    expect(text.match(/HTTP\/1\.1 200/g)).toHaveLength(3);
    expect(probe.calls).toEqual(['GET /echo', 'GET /echo', 'POST /echo']);
    expect(text).toContain('"QUERY_STRING":"n=3"');
    expect(text).toContain('"body":"abc"');
  });

  test('FastCGI keep-conn works after the hand-over (two requests on one connection)', async () => {
    const conn = await FcgiConn.open(addr);
    try {
      for (const n of [1, 2]) {
        const res = await fcgiRequest(conn, { params: nginxParams({ uri: `/echo?n=${n}`, serverPort: port }), keepConn: true });
        expect(parseCgiResponse(res.stdout)?.status).toBe(200);
        expect(res.completed).toBe(true);
      }
      expect(probe.calls).toEqual(['GET /echo', 'GET /echo']);
    } finally {
      conn.destroy();
    }
  });

  test('the allow-list of the detected protocol applies (--fastcgi-allow, --scgi-allow); the others serve', async () => {
    const local = captureLogger();
    const g = await startGateway(service, { auto: ['127.0.0.1:0'], fastcgiAllow: '127.0.0.2', scgiAllow: '127.0.0.2' }, local);
    try {
      const to = g.addrs[0] as GatewayAddress;
      const refused = await rawExchange(to, requestBytes('fastcgi'), { localAddress: '127.0.0.1' });
      expect(refused.data.length).toBe(0);
      const refusedScgi = await rawExchange(to, requestBytes('scgi'), { localAddress: '127.0.0.1' });
      expect(refusedScgi.data.length).toBe(0);
      expect(local.matching(/^fastcgi: connection from 127\.0\.0\.1 refused/, 'warn')).toHaveLength(1);
      expect(local.matching(/^scgi: connection from 127\.0\.0\.1 refused/, 'warn')).toHaveLength(1);
      for (const proto of ['http', 'uwsgi'] as const) {
        const conn = await rawExchange(to, requestBytes(proto), { localAddress: '127.0.0.1' });
        expect(statusOf(proto, conn.data)).toBe(200);
      }
      for (const proto of ['fastcgi', 'scgi'] as const) {
        const conn = await rawExchange(to, requestBytes(proto), { localAddress: '127.0.0.2' });
        expect(statusOf(proto, conn.data)).toBe(200);
      }
    } finally {
      await g.gateway.close(1000);
    }
  });

  test('graceful close: a connection that never sent a byte is closed at once, not waited for', async () => {
    const local = captureLogger();
    const g = await startGateway(service, { auto: ['127.0.0.1:0'] }, local);
    const idle = await RawConn.open(g.addrs[0] as GatewayAddress);
    await new Promise((r) => setTimeout(r, 50));
    await g.gateway.close(10_000);
    await idle.untilClosed(1000);
    expect(local.matching(/still busy/)).toEqual([]);
  });

  describe('over a unix socket', () => {
    const sock = path.join(os.tmpdir(), `gatewire-auto-${process.pid}.sock`);
    let g: Awaited<ReturnType<typeof startGateway>>;
    beforeAll(async () => {
      g = await startGateway(service, { auto: [`unix:${sock}`] }, log);
    });
    afterAll(async () => {
      await g.gateway.close(1000);
      rmSync(sock, { force: true });
    });
    test.each(PROTOS)('%s on --auto unix:PATH', async (proto) => {
      const json = await echoOver(proto, g.addrs[0] as GatewayAddress, { uri: '/echo?u=1' });
      expect(json.protocol).toBe(proto);
    });
  });
});

/**
 * The same request over HTTP and through nginx-style FastCGI, SCGI and uwsgi gives the same
 * environ, apart from these keys. Every difference comes from what the web server sends with
 * its stock params file (nginx 1.22's fastcgi_params, scgi_params, uwsgi_params); gatewire adds
 * nothing per protocol except FCGI_ROLE. REMOTE_PORT differs per connection and is left out.
 */
const DOCUMENTED_DIFFERENCES: Record<Exclude<Proto, 'http'>, { missing: string[]; extra: string[]; changed: string[]; inputTerminatedWithoutBody?: true }> = {
  // fastcgi_params: SERVER_SOFTWARE is nginx's; DOCUMENT_* and REDIRECT_STATUS added; FCGI_ROLE is ours.
  // nginx sends CONTENT_LENGTH "" without a body: the body is then delimited by the empty STDIN
  // record, so gatewire.input_terminated is true (E-11), where HTTP says false.
  fastcgi: { missing: [], extra: ['DOCUMENT_ROOT', 'DOCUMENT_URI', 'FCGI_ROLE', 'REDIRECT_STATUS'], changed: ['SERVER_SOFTWARE'], inputTerminatedWithoutBody: true },
  // scgi_params: no GATEWAY_INTERFACE, SERVER_SOFTWARE, SERVER_ADDR; DOCUMENT_*, SCGI=1 added;
  // CONTENT_LENGTH always present ("0" without a body, the protocol requires it).
  scgi: { missing: ['GATEWAY_INTERFACE', 'SERVER_ADDR', 'SERVER_SOFTWARE'], extra: ['CONTENT_LENGTH?', 'DOCUMENT_ROOT', 'DOCUMENT_URI', 'SCGI'], changed: [] },
  // uwsgi_params: no GATEWAY_INTERFACE, SERVER_SOFTWARE, SERVER_ADDR; DOCUMENT_ROOT added.
  uwsgi: { missing: ['GATEWAY_INTERFACE', 'SERVER_ADDR', 'SERVER_SOFTWARE'], extra: ['DOCUMENT_ROOT'], changed: [] },
};

function diff(http: Record<string, string>, other: Record<string, string>): { missing: string[]; extra: string[]; changed: string[] } {
  const skip = new Set(['REMOTE_PORT']);
  const keys = new Set([...Object.keys(http), ...Object.keys(other)]);
  const out = { missing: [] as string[], extra: [] as string[], changed: [] as string[] };
  for (const k of [...keys].sort()) {
    if (skip.has(k)) continue;
    if (!(k in other)) out.missing.push(k);
    else if (!(k in http)) out.extra.push(k);
    else if (http[k] !== other[k]) out.changed.push(k);
  }
  return out;
}

describe('same request, same environ over every protocol (apart from the documented differences)', () => {
  const REQUESTS: Array<[string, Request]> = [
    ['GET with a query, an encoded path and a custom header', { uri: '/echo/a%20b%2Fc?x=1+2&y=%41', headers: { Host: 'localhost', 'X-Test': 'yes', Cookie: 'a=1' } }],
    ['POST with a body and a content type', { method: 'POST', uri: '/echo?form', headers: { Host: 'localhost', 'Content-Type': 'application/x-www-form-urlencoded' }, body: Buffer.from('a=1&b=\u00e9', 'latin1') }],
  ];

  describe.each([
    ['one --auto listener', 'auto'],
    ['dedicated listeners', 'dedicated'],
  ])('%s', (_name, mode) => {
    let g: Awaited<ReturnType<typeof startGateway>>;
    const targets = {} as Record<Proto, GatewayAddress>;
    let httpPort = 0;
    beforeAll(async () => {
      if (mode === 'auto') {
        g = await startGateway(service, { auto: ['127.0.0.1:0'] });
        for (const p of PROTOS) targets[p] = g.addrs[0] as GatewayAddress;
        httpPort = g.ports[0] as number;
      } else {
        g = await startGateway(service, { http: ['127.0.0.1:0'], fastcgi: ['127.0.0.1:0'], scgi: ['127.0.0.1:0'], uwsgi: ['127.0.0.1:0'] });
        // listenersOf order: http, fastcgi, scgi, uwsgi
        PROTOS.forEach((p, i) => (targets[p] = g.addrs[i] as GatewayAddress));
        httpPort = g.ports[0] as number;
      }
    });
    afterAll(async () => {
      await g.gateway.close(1000);
    });

    test.each(REQUESTS)('%s', async (_what, req) => {
      // The web server in front listens where the HTTP front does: same SERVER_PORT.
      const results = {} as Record<Proto, EchoResult>;
      for (const p of PROTOS) results[p] = await echoOver(p, targets[p], { ...req, headers: { ...req.headers, Connection: 'close' } }, httpPort);
      const http = results.http;
      expect(http.environ.SERVER_PORT).toBe(String(httpPort));
      for (const p of ['fastcgi', 'scgi', 'uwsgi'] as const) {
        const got = results[p];
        expect(got.protocol).toBe(p);
        const expected = DOCUMENTED_DIFFERENCES[p];
        const terminated = req.body === undefined && expected.inputTerminatedWithoutBody === true ? true : http.input_terminated;
        expect({ body: got.body, url_scheme: got.url_scheme, input_terminated: got.input_terminated }).toEqual({ body: http.body, url_scheme: http.url_scheme, input_terminated: terminated });
        const d = diff(http.environ, got.environ);
        // CONTENT_LENGTH? : only an extra key when the request has no body.
        const extra = expected.extra.filter((k) => !k.endsWith('?') || req.body === undefined).map((k) => k.replace('?', ''));
        expect({ protocol: p, ...d }).toEqual({ protocol: p, missing: expected.missing, extra, changed: expected.changed });
      }
    });
  });
});
