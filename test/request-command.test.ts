/**
 * `gatewire request URL` (src/cli-request.ts, src/upstream/request.ts, src/upstream/wire-dump.ts):
 * the URL forms and the params/head built from them, the --raw formatters on known bytes, then
 * the built CLI as a child process against gatewire's own --fastcgi, --scgi, --uwsgi and --http
 * fronts started in this process (TCP and unix sockets), against fake servers that refuse, stay
 * silent, send garbage or cut the answer (one exit code per kind, UP-35), and against php-fpm
 * (ping, status, GET_VALUES, a script through --param SCRIPT_FILENAME; TCP and a unix socket)
 * when it is installed.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { App, Environ, StartResponse } from '../src/app.js';
import type { Gateway } from '../src/server.js';
import { buildBody, stripForData } from '../src/cli-request.js';
import { buildHttpRequest, buildRequestParams, parseRequestUrl, RequestFailure, sendRequest } from '../src/upstream/request.js';
import { dumpFastcgi, dumpHead, dumpScgiRequest, dumpUwsgiRequest, escapeBytes, takePairs } from '../src/upstream/wire-dump.js';
import { encodeFastcgiRequest, encodeStdin, encodeStdinEnd } from '../protocols/fastcgi/client.js';
import { ProtocolStatus } from '../protocols/fastcgi/constants.js';
import { encodeEndRequest, encodeGetValuesResult, encodeParamsStream, encodeRecord, encodeStdout, encodeUnknownType } from '../protocols/fastcgi/encoder.js';
import { encodeScgiRequest } from '../protocols/scgi/encoder.js';
import { encodeUwsgiRequest } from '../protocols/uwsgi/encoder.js';
import { ensureBuilt, freePort, killAll, runCli } from './fixtures/apps/cli-harness.js';
import { FIXTURES_DIR, describeWithPeers, peerPath, renderTemplate, startProcess, type PeerProcess } from './helpers/peers.js';
import { startGateway } from './helpers/scgi-client.js';
import { tmpDir } from './helpers/net.js';

beforeAll(() => ensureBuilt(), 180_000);
afterEach(() => killAll());

/** Echoes what it got as JSON (the body as latin1, byte for byte); `/missing` answers 404, `/fail` 500. */
const echoApp: App = async (environ: Environ, startResponse: StartResponse) => {
  const chunks: Buffer[] = [];
  for await (const chunk of environ['gatewire.input'] as AsyncIterable<Buffer>) chunks.push(chunk);
  const target = `${String(environ['SCRIPT_NAME'] ?? '')}${String(environ['PATH_INFO'] ?? '')}`;
  if (target === '/missing') {
    startResponse('404 Not Found', [['Content-Type', 'text/plain']]);
    return ['no such thing\n'];
  }
  if (target === '/fail') {
    startResponse('500 Internal Server Error', [['Content-Type', 'text/plain']]);
    return ['broken\n'];
  }
  const vars: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(environ)) if (!k.includes('.')) vars[k] = v;
  startResponse('200 OK', [['Content-Type', 'application/json'], ['X-Echo', 'yes']]);
  return [Buffer.from(JSON.stringify({ target, environ: vars, body: Buffer.concat(chunks).toString('latin1') }), 'utf8')];
};

interface Echo {
  target: string;
  environ: Record<string, string>;
  body: string;
}

const request = (args: string[], env: Record<string, string> = {}): ReturnType<typeof runCli> => runCli(['request', ...args], { env }, 15_000);
const lines = (text: string): string[] => text.trimEnd().split('\n');

/** A TCP server on 127.0.0.1 doing `onConnection`; closed (its sockets destroyed) by the returned close(). */
async function fakeServer(onConnection: (socket: net.Socket) => void): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    onConnection(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

const stdoutRecords = (id: number, text: string): Buffer => Buffer.concat(encodeStdout(id, Buffer.from(text, 'latin1')).map((r) => Buffer.from(r)));

describe('gatewire request: URL, params and HTTP head (src/upstream/request.ts)', () => {
  test('TCP, unix, +unix and --unix-socket URL forms; what is refused', () => {
    expect(parseRequestUrl('fastcgi://127.0.0.1:9000/ping')).toEqual({ protocol: 'fastcgi', address: { kind: 'tcp', host: '127.0.0.1', port: 9000 }, host: '127.0.0.1', port: 9000, path: '/ping', query: undefined });
    expect(parseRequestUrl('scgi://[::1]:4000/a/b?x=1&y')).toEqual({ protocol: 'scgi', address: { kind: 'tcp', host: '::1', port: 4000 }, host: '::1', port: 4000, path: '/a/b', query: 'x=1&y' });
    expect(parseRequestUrl('fastcgi://unix:/run/php.sock:/status?json')).toEqual({ protocol: 'fastcgi', address: { kind: 'unix', path: '/run/php.sock' }, host: 'localhost', port: undefined, path: '/status', query: 'json' });
    expect(parseRequestUrl('uwsgi://unix:/run/u.sock')).toEqual({ protocol: 'uwsgi', address: { kind: 'unix', path: '/run/u.sock' }, host: 'localhost', port: undefined, path: '/', query: undefined });
    expect(parseRequestUrl('fcgi+unix://%2Frun%2Fphp%2Ffpm.sock/ping?x')).toEqual({ protocol: 'fastcgi', address: { kind: 'unix', path: '/run/php/fpm.sock' }, host: 'localhost', port: undefined, path: '/ping', query: 'x' });
    // --unix-socket, as curl: the URL still gives the scheme, host, port and path.
    expect(parseRequestUrl('fastcgi://localhost/ping', { unixSocket: '/run/php/php8.2-fpm.sock' })).toEqual({ protocol: 'fastcgi', address: { kind: 'unix', path: '/run/php/php8.2-fpm.sock' }, host: 'localhost', port: undefined, path: '/ping', query: undefined });
    expect(parseRequestUrl('scgi://app.example:8080/x', { unixSocket: '/s' })).toMatchObject({ address: { kind: 'unix', path: '/s' }, host: 'app.example', port: 8080 });
    // http:// has a default port.
    expect(parseRequestUrl('http://example.com/health')).toEqual({ protocol: 'http', address: { kind: 'tcp', host: 'example.com', port: 80 }, host: 'example.com', port: undefined, path: '/health', query: undefined });
    expect(parseRequestUrl('HTTP://127.0.0.1:8080?q')).toMatchObject({ protocol: 'http', address: { kind: 'tcp', port: 8080 }, path: '/', query: 'q' });
    for (const bad of ['gopher://x:1/', 'fastcgi://host/ping', 'scgi://host', 'fastcgi://unix:', 'fastcgi://unix:/s.sock:ping', 'scgi://h:0/', 'scgi://h:1/a b', 'fastcgi+unix:///run/php.sock', 'fastcgi+unix://%E0%A4%A/x', 'x']) {
      expect(() => parseRequestUrl(bad)).toThrow(/invalid URL/);
    }
    expect(() => parseRequestUrl('fastcgi://unix:/a.sock:/x', { unixSocket: '/b.sock' })).toThrow(/give one/);
  });

  test('UP-34 UP-36: FastCGI gets SCRIPT_NAME and SCRIPT_FILENAME; only the built params and --param go out', () => {
    const params = buildRequestParams(parseRequestUrl('fastcgi://127.0.0.1:9000/ping?full'), { headers: [['X-A', '1'], ['x-a', '2']], params: [['SCRIPT_FILENAME', '/srv/ping.php'], ['PHP_VALUE', 'x=1']] });
    const map = new Map(params);
    expect(map.get('REQUEST_METHOD')).toBe('GET');
    expect(map.get('SCRIPT_NAME')).toBe('/ping');
    expect(map.get('SCRIPT_FILENAME')).toBe('/srv/ping.php');
    expect(map.get('QUERY_STRING')).toBe('full');
    expect(map.get('REQUEST_URI')).toBe('/ping?full');
    expect(map.get('HTTP_X_A')).toBe('1, 2');
    expect(map.get('PHP_VALUE')).toBe('x=1');
    expect(map.get('HTTP_HOST')).toBe('127.0.0.1:9000');
    expect(map.has('PATH_INFO')).toBe(false);
    expect(params.map(([n]) => n).filter((n) => n === 'SCRIPT_FILENAME')).toHaveLength(1);
    const keys = params.map(([n]) => n).sort();
    expect(keys).toEqual(
      ['GATEWAY_INTERFACE', 'HTTP_HOST', 'HTTP_X_A', 'PHP_VALUE', 'QUERY_STRING', 'REMOTE_ADDR', 'REQUEST_METHOD', 'REQUEST_URI', 'SCRIPT_FILENAME', 'SCRIPT_NAME', 'SERVER_NAME', 'SERVER_PORT', 'SERVER_PROTOCOL', 'SERVER_SOFTWARE'].sort(),
    );
    const scgi = new Map(buildRequestParams(parseRequestUrl('scgi://127.0.0.1:1/a'), { body: Buffer.from('xy') }));
    expect([scgi.get('SCRIPT_NAME'), scgi.get('PATH_INFO'), scgi.get('REQUEST_METHOD'), scgi.get('CONTENT_LENGTH'), scgi.get('CONTENT_TYPE')]).toEqual(['', '/a', 'POST', '2', 'application/x-www-form-urlencoded']);
    expect(() => buildRequestParams(parseRequestUrl('http://h/'), {})).toThrow(/--param is for/);
  });

  test('UP-34: with a unix socket, SERVER_NAME, SERVER_PORT and HTTP_HOST come from the URL', () => {
    const plain = new Map(buildRequestParams(parseRequestUrl('fastcgi://localhost/ping', { unixSocket: '/run/php.sock' })));
    expect([plain.get('SERVER_NAME'), plain.get('SERVER_PORT'), plain.get('HTTP_HOST'), plain.get('SCRIPT_FILENAME')]).toEqual(['localhost', '80', 'localhost', '/ping']);
    const named = new Map(buildRequestParams(parseRequestUrl('fastcgi://shop.example:8443/status', { unixSocket: '/run/php.sock' })));
    expect([named.get('SERVER_NAME'), named.get('SERVER_PORT'), named.get('HTTP_HOST')]).toEqual(['shop.example', '8443', 'shop.example:8443']);
  });

  test('the HTTP head: Host from the URL, -H in order, a body with its type and length; --param refused', () => {
    expect(buildHttpRequest(parseRequestUrl('http://127.0.0.1:8080/a?b=1'), { headers: [['X-A', '1'], ['X-A', '2']] })).toEqual({ method: 'GET', path: '/a?b=1', headers: [['Host', '127.0.0.1:8080'], ['X-A', '1'], ['X-A', '2']] });
    expect(buildHttpRequest(parseRequestUrl('http://example.com:80/'), { body: Buffer.from('k=v') })).toEqual({
      method: 'POST',
      path: '/',
      headers: [['Host', 'example.com'], ['Content-Type', 'application/x-www-form-urlencoded'], ['Content-Length', '3']],
    });
    expect(buildHttpRequest(parseRequestUrl('http://localhost/x', { unixSocket: '/s' }), { method: 'PUT', headers: [['Host', 'other'], ['Content-Type', 'text/plain']], body: Buffer.alloc(0) }).headers).toEqual([['Host', 'other'], ['Content-Type', 'text/plain'], ['Content-Length', '0']]);
    expect(() => buildHttpRequest(parseRequestUrl('http://h/'), { params: [['A', 'b']] })).toThrow(/--param/);
    expect(() => buildHttpRequest(parseRequestUrl('http://h/'), { headers: [['Content-Length', '3']] })).toThrow(/Content-Length/);
    expect(() => buildHttpRequest(parseRequestUrl('http://h/'), { method: 'GE T' })).toThrow(/invalid method/);
  });

  test('bodies as curl builds them: -d @FILE drops CR, LF and NUL, --data-binary keeps every byte, pieces join with & in order', () => {
    const dir = tmpDir('gw-data');
    try {
      const file = path.join(dir.path, 'body.bin');
      fs.writeFileSync(file, Buffer.from('a=1\r\nb=2\n\nc\x003\rd\n', 'latin1'));
      expect(stripForData(fs.readFileSync(file)).toString('latin1')).toBe('a=1b=2c3d');
      expect(buildBody([{ kind: 'data', value: `@${file}`, seq: 0 }])?.toString('latin1')).toBe('a=1b=2c3d');
      expect(buildBody([{ kind: 'binary', value: `@${file}`, seq: 0 }])).toEqual(fs.readFileSync(file));
      expect(buildBody([{ kind: 'raw', value: '@x', seq: 3 }, { kind: 'data', value: 'x', seq: 0 }, { kind: 'binary', value: 'y', seq: 2 }, { kind: 'data', value: '', seq: 4 }])?.toString()).toBe('x&y&@x&');
      expect(buildBody([{ kind: 'data', value: 'a\nb', seq: 0 }])?.toString()).toBe('a\nb'); // text is sent as given
      expect(buildBody([])).toBeUndefined();
      expect(() => buildBody([{ kind: 'data', value: `@${dir.path}/missing`, seq: 0 }])).toThrow(/cannot read --data/);
    } finally {
      dir.cleanup();
    }
  });
});

describe('gatewire request --raw: the annotated wire dump (src/upstream/wire-dump.ts)', () => {
  test('FastCGI records of a request: BEGIN_REQUEST, PARAMS with their pairs, STDIN, each with hex', () => {
    const params = buildRequestParams(parseRequestUrl('fastcgi://127.0.0.1:9000/ping'), { body: Buffer.from('k=v') });
    const [begin, paramsBuf] = encodeFastcgiRequest(1, { keepConn: false, params });
    const bytes = Buffer.concat([begin, paramsBuf, ...encodeStdin(1, Buffer.from('k=v')).map((r) => Buffer.from(r)), encodeStdinEnd(1)]);
    const out = dumpFastcgi('>', bytes);
    expect(out[0]).toBe('> BEGIN_REQUEST id=1 len=8 pad=0 role=RESPONDER flags=0');
    expect(out[1]).toBe('    0000  01 01 00 01 00 08 00 00  00 01 00 00 00 00 00 00  |................|');
    expect(out).toContainEqual(expect.stringMatching(/^> PARAMS id=1 len=\d+ pad=\d$/));
    expect(out).toContain('    SCRIPT_FILENAME = /ping');
    expect(out).toContain('    QUERY_STRING = (empty)');
    expect(out).toContain('    CONTENT_LENGTH = 3');
    expect(out).toContain('> PARAMS id=1 len=0 pad=0 (end of stream)');
    expect(out).toContain('> STDIN id=1 len=3 pad=5');
    expect(out).toContain('    "k=v"');
    expect(out[out.length - 2]).toBe('> STDIN id=1 len=0 pad=0 (end of stream)');
    expect(dumpFastcgi('>', encodeFastcgiRequest(7, { keepConn: true, params: [] })[0])[0]).toBe('> BEGIN_REQUEST id=7 len=8 pad=0 role=RESPONDER flags=KEEP_CONN');
  });

  test('FastCGI answer records, pairs across records, garbage, truncation, long values', () => {
    const answer = Buffer.concat([stdoutRecords(1, 'Status: 404\r\n\r\nnope'), encodeEndRequest(1, 3, ProtocolStatus.Overloaded), encodeGetValuesResult([['FCGI_MPXS_CONNS', '0']]), encodeUnknownType(99)]);
    const out = dumpFastcgi('<', answer);
    expect(out).toContain('< STDOUT id=1 len=19 pad=5');
    expect(out).toContain('    "Status: 404\\r\\n\\r\\nnope"');
    expect(out).toContain('< END_REQUEST id=1 len=8 pad=0 appStatus=3 protocolStatus=OVERLOADED');
    expect(out).toContain('< GET_VALUES_RESULT id=0 len=18 pad=6');
    expect(out).toContain('    FCGI_MPXS_CONNS = 0');
    expect(out).toContain('< UNKNOWN_TYPE id=0 len=8 pad=0 type=99 (type 99)');
    // A pair cut across PARAMS records (F-17) is shown once, in the record where it ends.
    const split = dumpFastcgi('>', encodeParamsStream(1, [['SCRIPT_FILENAME', '/srv/www/index.php'], ['A', 'b']], 5));
    expect(split.filter((l) => l.includes('SCRIPT_FILENAME = /srv/www/index.php'))).toHaveLength(1);
    expect(split).toContain('    A = b');
    expect(split).toContainEqual(expect.stringMatching(/bytes of a pair that continues in the next record/));
    // Not FastCGI at all: said once, then hex; cut short: said on the record.
    expect(dumpFastcgi('<', Buffer.from('this is not FastCGI'))[0]).toBe('< (not a FastCGI record: version byte 116, expected 1; 19 bytes from here)');
    expect(dumpFastcgi('<', stdoutRecords(1, 'x'.repeat(100)).subarray(0, 50))[0]).toBe('< STDOUT id=1 len=100 pad=4 (truncated: 50 of 112 bytes)');
    expect(dumpFastcgi('<', Buffer.from([1, 6, 0]))[0]).toBe('< (truncated record header: 3 of 8 bytes)');
    expect(dumpFastcgi('<', Buffer.from('nope'))[0]).toBe('< (not a FastCGI record: version byte 110, expected 1; 4 bytes from here)');
    expect(dumpFastcgi('<', Buffer.alloc(0))).toEqual(['< (nothing)']);
    const long = dumpFastcgi('>', encodeFastcgiRequest(1, { keepConn: false, params: [['PHP_VALUE', 'v'.repeat(500) + '\n']] })[1]);
    expect(long).toContain(`    PHP_VALUE = ${'v'.repeat(120)}… (501 bytes)`);
    const many = dumpFastcgi('<', Buffer.concat(Array.from({ length: 10 }, () => stdoutRecords(1, 'ab'))), { maxRecords: 3 });
    expect(many.filter((l) => l.startsWith('< STDOUT'))).toHaveLength(3);
    expect(many[many.length - 1]).toBe('< … 112 more bytes not shown (the first 3 records are)');
  });

  test('SCGI netstring, uwsgi header and vars, HTTP-style heads; bytes escaped', () => {
    const scgi = dumpScgiRequest(Buffer.concat([encodeScgiRequest([['REQUEST_METHOD', 'POST'], ['PATH_INFO', '/a']], 2), Buffer.from('xy')]));
    expect(scgi[0]).toMatch(/^> SCGI netstring len=\d+ \("\d+:" \+ \d+ header bytes \+ ","\)$/);
    expect(scgi).toEqual(expect.arrayContaining(['    CONTENT_LENGTH = 2', '    SCGI = 1', '    REQUEST_METHOD = POST', '    PATH_INFO = /a', '> SCGI body len=2', '    "xy"']));
    const uwsgi = dumpUwsgiRequest(Buffer.concat([encodeUwsgiRequest([['REQUEST_METHOD', 'GET'], ['PATH_INFO', '/\u00e9']]), Buffer.alloc(0)]));
    expect(uwsgi[0]).toMatch(/^> uwsgi modifier1=0 datasize=\d+ modifier2=0$/);
    expect(uwsgi).toEqual(expect.arrayContaining(['    REQUEST_METHOD = GET', '    PATH_INFO = /\\xe9', '> uwsgi body len=0']));
    const head = dumpHead('<', Buffer.from('HTTP/1.1 200 OK\r\nX-A: 1\n\r\nbody'));
    expect(head.slice(0, 5)).toEqual(['< HTTP/1.1 200 OK', '< X-A: 1 (bare LF)', '< (end of head, 26 bytes)', '< body len=4', '    "body"']);
    expect(dumpHead('<', Buffer.from('garbage'))[0]).toBe('< (no end of head in 7 bytes)');
    expect(escapeBytes(Buffer.from([0x5c, 0x22, 0x00, 0x7f, 0xff, 0x09]))).toBe('\\\\"\\x00\\x7f\\xff\\t');
    expect(escapeBytes('"', 10, true)).toBe('\\"');
    expect(takePairs(Buffer.from([1, 1, 0x41, 0x42, 3])).pairs).toEqual([['A', 'B']]);
  });
});

for (const front of ['fastcgi', 'scgi', 'uwsgi', 'http'] as const) {
  describe(`gatewire request ${front}:// against gatewire --${front}`, () => {
    let gateway: Gateway;
    let port: number;
    let dir: ReturnType<typeof tmpDir>;
    beforeAll(async () => {
      dir = tmpDir('gw-req');
      const started = await startGateway({ app: echoApp, interface: 'environ' }, { [front]: ['127.0.0.1:0'], mount: '' });
      gateway = started.gateway;
      port = started.ports[0] as number;
    });
    afterAll(async () => {
      await gateway.close(1000);
      dir.cleanup();
    });

    test('GET with a query and a header: the body on stdout, exit 0', async () => {
      const r = await request([`${front}://127.0.0.1:${port}/echo/x?a=1&b=two`, '-H', 'X-Probe: hello']);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      const echo = JSON.parse(r.stdout) as Echo;
      expect(echo.target).toBe('/echo/x');
      expect(echo.environ).toMatchObject({ REQUEST_METHOD: 'GET', QUERY_STRING: 'a=1&b=two', HTTP_X_PROBE: 'hello', REMOTE_ADDR: '127.0.0.1', HTTP_HOST: `127.0.0.1:${port}` });
    }, 20_000);

    test('POST with -d: CONTENT_LENGTH, CONTENT_TYPE and the body reach the app', async () => {
      const r = await request([`${front}://127.0.0.1:${port}/form`, '-d', 'name=value&x=1']);
      expect(r.code).toBe(0);
      const echo = JSON.parse(r.stdout) as Echo;
      expect(echo.environ).toMatchObject({ REQUEST_METHOD: 'POST', CONTENT_LENGTH: '14', CONTENT_TYPE: 'application/x-www-form-urlencoded' });
      expect(echo.body).toBe('name=value&x=1');
      const put = await request([`${front}://127.0.0.1:${port}/form`, '-X', 'PUT', '-H', 'Content-Type: text/plain', '-d', 'abc']);
      expect((JSON.parse(put.stdout) as Echo).environ).toMatchObject({ REQUEST_METHOD: 'PUT', CONTENT_TYPE: 'text/plain', CONTENT_LENGTH: '3' });
    }, 20_000);

    test('-d @FILE drops CR, LF and NUL; --data-binary @FILE arrives byte for byte; repeated pieces join with &', async () => {
      const file = path.join(dir.path, 'body.bin');
      const bytes = Buffer.from([...Buffer.from('a=1\r\nb=2\n'), 0, 0xff, 0x0d, ...Buffer.from('c=\u00e9', 'utf8'), 0x0a]);
      fs.writeFileSync(file, bytes);
      const d = await request([`${front}://127.0.0.1:${port}/`, '-d', `@${file}`]);
      expect(d.code).toBe(0);
      const dBody = Buffer.from((JSON.parse(d.stdout) as Echo).body, 'latin1');
      expect(dBody).toEqual(Buffer.from([...Buffer.from('a=1b=2'), 0xff, ...Buffer.from('c=\u00e9', 'utf8')]));
      const bin = await request([`${front}://127.0.0.1:${port}/`, '--data-binary', `@${file}`]);
      const echo = JSON.parse(bin.stdout) as Echo;
      expect(Buffer.from(echo.body, 'latin1')).toEqual(bytes);
      expect(echo.environ['CONTENT_LENGTH']).toBe(String(bytes.length));
      const joined = await request([`${front}://127.0.0.1:${port}/`, '-d', 'a=1', '--data-binary', 'b=2', '-d', `@${file}`, '--data-raw', '@raw']);
      expect((JSON.parse(joined.stdout) as Echo).body).toBe(`a=1&b=2&${dBody.toString('latin1')}&@raw`);
    }, 30_000);

    test('-i prints the response head before the body', async () => {
      const r = await request([`${front}://127.0.0.1:${port}/echo`, '-i']);
      expect(r.code).toBe(0);
      const split = r.stdout.indexOf('\r\n\r\n');
      expect(split).toBeGreaterThan(0);
      const head = r.stdout.slice(0, split);
      expect(head).toMatch(front === 'uwsgi' || front === 'http' ? /^HTTP\/1\.[01] 200 OK\r\n/ : /(^|\n)Status: 200 OK\r?$/m);
      expect(head).toMatch(/^X-Echo: yes$/im);
      expect((JSON.parse(r.stdout.slice(split + 4)) as Echo).target).toBe('/echo');
    }, 20_000);

    test('UP-35: a 404 or a 500 answer exits 1 and still prints the body', async () => {
      const r = await request([`${front}://127.0.0.1:${port}/missing`]);
      expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 1, stdout: 'no such thing\n' });
      const fail = await request([`${front}://127.0.0.1:${port}/fail`]);
      expect({ code: fail.code, stdout: fail.stdout }).toEqual({ code: 1, stdout: 'broken\n' });
    }, 20_000);

    test('--raw: the annotated bytes both ways on stderr, the body alone on stdout', async () => {
      const r = await request([`${front}://127.0.0.1:${port}/dump?q=1`, '-d', 'k=v', '--raw']);
      expect(r.code).toBe(0);
      expect((JSON.parse(r.stdout) as Echo).body).toBe('k=v');
      const err = lines(r.stderr);
      const expected: Record<typeof front, Array<string | RegExp>> = {
        fastcgi: [
          '> BEGIN_REQUEST id=1 len=8 pad=0 role=RESPONDER flags=0',
          /^> PARAMS id=1 len=\d+ pad=\d$/,
          '    SCRIPT_FILENAME = /dump',
          '    QUERY_STRING = q=1',
          '> STDIN id=1 len=3 pad=5',
          '> STDIN id=1 len=0 pad=0 (end of stream)',
          /^< STDOUT id=1 len=\d+ pad=\d$/,
          '< END_REQUEST id=1 len=8 pad=0 appStatus=0 protocolStatus=REQUEST_COMPLETE',
        ],
        scgi: [/^> SCGI netstring len=\d+/, '    CONTENT_LENGTH = 3', '    SCGI = 1', '    PATH_INFO = /dump', '> SCGI body len=3', '< Status: 200 OK', /^< \(end of head, \d+ bytes\)$/, /^< body len=\d+$/],
        uwsgi: [/^> uwsgi modifier1=0 datasize=\d+ modifier2=0$/, '    PATH_INFO = /dump', '    CONTENT_LENGTH = 3', '> uwsgi body len=3', /^< HTTP\/1\.1 200 OK$/, '< X-Echo: yes'],
        http: ['> POST /dump?q=1 HTTP/1.1', `> Host: 127.0.0.1:${port}`, '> Content-Type: application/x-www-form-urlencoded', '> Content-Length: 3', '> body len=3', '< HTTP/1.1 200 OK', '< X-Echo: yes'],
      };
      for (const want of expected[front]) {
        if (typeof want === 'string') expect(err).toContain(want);
        else expect(err).toContainEqual(expect.stringMatching(want));
      }
      expect(err).toContainEqual(expect.stringMatching(/^ {4}0000 {2}[0-9a-f]{2} /)); // hex of the first bytes
    }, 20_000);

    test('UP-36: the caller\u2019s environment does not leak into the request', async () => {
      const r = await request([`${front}://127.0.0.1:${port}/env`], { HTTP_PROXY: 'http://evil:1', SCRIPT_FILENAME: '/etc/passwd', PHP_VALUE: 'auto_prepend_file=/tmp/x', QUERY_STRING: 'leak=1', HTTP_X_LEAK: 'yes' });
      expect(r.code).toBe(0);
      const echo = JSON.parse(r.stdout) as Echo;
      expect(echo.environ['QUERY_STRING']).toBe('');
      for (const name of ['HTTP_PROXY', 'PHP_VALUE', 'HTTP_X_LEAK']) expect(echo.environ[name]).toBeUndefined();
      if (front === 'fastcgi') expect(echo.environ['SCRIPT_FILENAME']).toBe('/env');
      else expect(echo.environ['SCRIPT_FILENAME']).toBeUndefined();
    }, 20_000);
  });
}

describe('gatewire request over unix sockets against gatewire (--unix-socket, unix:, +unix)', () => {
  let fcgi: Gateway;
  let web: Gateway;
  let dir: ReturnType<typeof tmpDir>;
  let fcgiSock: string;
  let httpSock: string;
  beforeAll(async () => {
    dir = tmpDir('gw-rq');
    fcgiSock = path.join(dir.path, 'fcgi.sock');
    httpSock = path.join(dir.path, 'http.sock');
    fcgi = (await startGateway({ app: echoApp, interface: 'environ' }, { fastcgi: [`unix:${fcgiSock}`], mount: '', maxInflight: '7' })).gateway;
    web = (await startGateway({ app: echoApp, interface: 'environ' }, { http: [`unix:${httpSock}`], mount: '' })).gateway;
  });
  afterAll(async () => {
    await fcgi.close(1000);
    await web.close(1000);
    dir.cleanup();
  });

  test('UP-34: --unix-socket SOCK fastcgi://HOST/PATH: the URL gives SERVER_NAME, HTTP_HOST, SCRIPT_NAME and SCRIPT_FILENAME', async () => {
    const r = await request(['--unix-socket', fcgiSock, 'fastcgi://localhost/ping?x=1']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const echo = JSON.parse(r.stdout) as Echo;
    expect(echo.environ).toMatchObject({ SERVER_NAME: 'localhost', SERVER_PORT: '80', HTTP_HOST: 'localhost', SCRIPT_FILENAME: '/ping', QUERY_STRING: 'x=1' });
    const named = await request([`fastcgi://shop.example:8443/a`, '--unix-socket', fcgiSock]);
    expect((JSON.parse(named.stdout) as Echo).environ).toMatchObject({ SERVER_NAME: 'shop.example', SERVER_PORT: '8443', HTTP_HOST: 'shop.example:8443' });
  }, 20_000);

  test('the fastcgi://unix:SOCK:/PATH and fastcgi+unix://%2FSOCK/PATH forms reach the same socket', async () => {
    const nginx = await request([`fastcgi://unix:${fcgiSock}:/a/b?c`]);
    expect(nginx.code).toBe(0);
    const echo = JSON.parse(nginx.stdout) as Echo;
    expect(echo.target).toBe('/a/b');
    expect(echo.environ).toMatchObject({ SCRIPT_FILENAME: '/a/b', QUERY_STRING: 'c', SERVER_NAME: 'localhost' });
    const plus = await request([`fastcgi+unix://${encodeURIComponent(fcgiSock)}/p`]);
    expect(plus.code).toBe(0);
    expect((JSON.parse(plus.stdout) as Echo).environ['SCRIPT_FILENAME']).toBe('/p');
  }, 20_000);

  test('http:// with --unix-socket: the Host field is the URL\u2019s host', async () => {
    const r = await request(['--unix-socket', httpSock, 'http://app.local/health', '-H', 'X-Probe: 1']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as Echo).environ).toMatchObject({ HTTP_HOST: 'app.local', HTTP_X_PROBE: '1', PATH_INFO: '/health' });
    const missing = await request(['--unix-socket', httpSock, 'http://localhost/missing']);
    expect(missing.code).toBe(1);
  }, 20_000);

  test('--get-values against gatewire\u2019s FastCGI front: its own --max-inflight and FCGI_MPXS_CONNS=1', async () => {
    const r = await request(['--unix-socket', fcgiSock, 'fastcgi://localhost', '--get-values']);
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: 'FCGI_MAX_CONNS=7\nFCGI_MAX_REQS=7\nFCGI_MPXS_CONNS=1\n', stderr: '' });
    const some = await request(['--get-values', 'FCGI_MPXS_CONNS,X_UNKNOWN', `fastcgi://unix:${fcgiSock}`]);
    expect({ code: some.code, stdout: some.stdout }).toEqual({ code: 0, stdout: 'FCGI_MPXS_CONNS=1\n' });
    // `--get-values URL`: the URL is not taken for the list of names.
    const swapped = await request(['--get-values', `fastcgi://unix:${fcgiSock}`, '--raw']);
    expect(swapped.stdout).toBe('FCGI_MAX_CONNS=7\nFCGI_MAX_REQS=7\nFCGI_MPXS_CONNS=1\n');
    expect(lines(swapped.stderr)).toEqual(expect.arrayContaining(['> GET_VALUES id=0 len=48 pad=0', '    FCGI_MAX_CONNS = (empty)', '    FCGI_MAX_REQS = 7']));
    expect(lines(swapped.stderr)).toContainEqual(expect.stringMatching(/^< GET_VALUES_RESULT id=0 len=\d+ pad=\d$/));
  }, 20_000);
});

describe('gatewire request: failures, one exit code per kind (UP-35)', () => {
  test('UP-35: a refused port exits 3 at once with one stderr line naming the upstream and ECONNREFUSED', async () => {
    const port = await freePort();
    // The failure path itself, in process: well under a second with a 5 s timeout.
    const t0 = Date.now();
    const err = await sendRequest(parseRequestUrl(`fastcgi://127.0.0.1:${port}/ping`), [], Buffer.alloc(0), { timeout: 5000 }).catch((e: unknown) => e);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(err).toBeInstanceOf(RequestFailure);
    expect({ kind: (err as RequestFailure).kind, exitCode: (err as RequestFailure).exitCode }).toEqual({ kind: 'connect', exitCode: 3 });
    // The command: under a second more than starting the CLI at all takes.
    const b0 = Date.now();
    await runCli(['--version']);
    const baseline = Date.now() - b0;
    const started = Date.now();
    const r = await request([`fastcgi://127.0.0.1:${port}/ping`, '--timeout', '5s']);
    expect(Date.now() - started).toBeLessThan(baseline + 1000);
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 3, stdout: '' });
    expect(lines(r.stderr)).toEqual([`gatewire: request: fastcgi://127.0.0.1:${port}: cannot connect: connection refused (ECONNREFUSED)`]);
    const web = await request([`http://127.0.0.1:${port}/`]);
    expect({ code: web.code, stderr: web.stderr }).toEqual({ code: 3, stderr: `gatewire: request: http://127.0.0.1:${port}: cannot connect: connection refused (ECONNREFUSED)\n` });
  }, 20_000);

  test('UP-35: a socket path that does not exist exits 3 (ENOENT), for every protocol', async () => {
    const dir = tmpDir('gw-nosock');
    try {
      const sock = path.join(dir.path, 'missing.sock');
      for (const url of ['fastcgi://localhost/ping', 'scgi://localhost/', 'uwsgi://localhost/', 'http://localhost/']) {
        const r = await request(['--unix-socket', sock, url]);
        expect({ url, code: r.code }).toEqual({ url, code: 3 });
        expect(lines(r.stderr)).toEqual([`gatewire: request: ${url.split(':')[0] as string}://unix:${sock}: cannot connect: no such socket file (ENOENT)`]);
      }
    } finally {
      dir.cleanup();
    }
  }, 30_000);

  test('UP-35: a server that accepts and never answers exits 4 after --timeout, for every protocol', async () => {
    const silent = await fakeServer(() => undefined);
    try {
      for (const scheme of ['fastcgi', 'scgi', 'uwsgi', 'http']) {
        const r = await request([`${scheme}://127.0.0.1:${silent.port}/`, '--timeout', '300ms']);
        expect({ scheme, code: r.code }).toEqual({ scheme, code: 4 });
        expect(lines(r.stderr)).toEqual([`gatewire: request: ${scheme}://127.0.0.1:${silent.port}: timeout: no complete answer within 300 ms`]);
      }
      const values = await request([`fastcgi://127.0.0.1:${silent.port}`, '--get-values', '--timeout', '200ms']);
      expect({ code: values.code, stdout: values.stdout }).toEqual({ code: 4, stdout: '' });
    } finally {
      silent.close();
    }
  }, 30_000);

  test('UP-35: garbage from the peer exits 5, for every protocol', async () => {
    const garbage = await fakeServer((s) => s.end('this is not a response at all\r\n\r\n'));
    try {
      const want: Record<string, RegExp> = {
        fastcgi: /not a FastCGI answer: fastcgi: unsupported record version 116/,
        scgi: /the answer is not a valid response: cgi: no colon/,
        uwsgi: /the answer is not a valid response: cgi: NPH output does not start with an HTTP status line/,
        http: /not an HTTP answer: Parse Error.*\(HPE_/,
      };
      for (const [scheme, pattern] of Object.entries(want)) {
        const r = await request([`${scheme}://127.0.0.1:${garbage.port}/`]);
        expect({ scheme, code: r.code, stdout: r.stdout }).toEqual({ scheme, code: 5, stdout: '' });
        expect(lines(r.stderr)).toHaveLength(1);
        expect(r.stderr).toMatch(pattern);
      }
      const values = await request([`fastcgi://127.0.0.1:${garbage.port}`, '--get-values']);
      expect(values.code).toBe(5);
      expect(values.stderr).toMatch(/not a FastCGI answer/);
    } finally {
      garbage.close();
    }
  }, 30_000);

  test('UP-35: an answer cut short (truncated record, no END_REQUEST, short Content-Length, reset) exits 5', async () => {
    const cases: Array<[string, (s: net.Socket) => void, RegExp]> = [
      ['fastcgi', (s) => s.end(stdoutRecords(1, 'Status: 200\r\n\r\nabcdef').subarray(0, 20)), /connection ended inside the STDOUT record of request 1/],
      ['fastcgi', (s) => s.end(stdoutRecords(1, 'Status: 200\r\n\r\nabcdef')), /connection ended before the END_REQUEST of request 1/],
      ['scgi', (s) => s.end('Status: 200 OK\r\nContent-Length: 10\r\n\r\nabc'), /closed 7 bytes short of the Content-Length 10/],
      ['http', (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'), /closed before the end of the body \(3 bytes of it came\)/],
      ['http', (s) => s.resetAndDestroy(), /reset before the answer was complete \(ECONNRESET\)/],
      ['scgi', (s) => s.resetAndDestroy(), /reset before the answer was complete \(ECONNRESET\)/],
    ];
    for (const [scheme, answer, pattern] of cases) {
      const server = await fakeServer(answer);
      try {
        const r = await request([`${scheme}://127.0.0.1:${server.port}/`]);
        expect({ scheme, pattern: String(pattern), code: r.code }).toEqual({ scheme, pattern: String(pattern), code: 5 });
        expect(lines(r.stderr)).toHaveLength(1);
        expect(r.stderr).toMatch(pattern);
      } finally {
        server.close();
      }
    }
  }, 30_000);

  test('UP-35: a FastCGI request that ends with appStatus != 0 or protocolStatus != REQUEST_COMPLETE exits 1', async () => {
    const cases: Array<[Buffer, RegExp]> = [
      [Buffer.concat([stdoutRecords(1, 'Status: 200 OK\r\n\r\nok'), encodeEndRequest(1, 2)]), /appStatus 2, REQUEST_COMPLETE/],
      [encodeEndRequest(1, 0, ProtocolStatus.Overloaded), /appStatus 0, OVERLOADED/],
    ];
    for (const [answer, pattern] of cases) {
      const server = await fakeServer((s) => s.end(answer));
      try {
        const r = await request([`fastcgi://127.0.0.1:${server.port}/`]);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(pattern);
      } finally {
        server.close();
      }
    }
  }, 30_000);

  test('--get-values: UNKNOWN_TYPE or a close without GET_VALUES_RESULT exits 5; names as the app sends them (UP-37)', async () => {
    const unknown = await fakeServer((s) => s.end(encodeUnknownType(9)));
    const closes = await fakeServer((s) => s.end());
    const odd = await fakeServer((s) => s.end(Buffer.concat([encodeGetValuesResult([['FCGI_MAX_REQS', 'many'], ['X_OTHER', '1']]), encodeRecord(10, 0)])));
    try {
      const u = await request([`fastcgi://127.0.0.1:${unknown.port}`, '--get-values']);
      expect(u.code).toBe(5);
      expect(u.stderr).toMatch(/UNKNOWN_TYPE \(type 9\)/);
      const c = await request([`fastcgi://127.0.0.1:${closes.port}`, '--get-values']);
      expect(c.code).toBe(5);
      expect(c.stderr).toMatch(/closed before a GET_VALUES_RESULT/);
      const o = await request([`fastcgi://127.0.0.1:${odd.port}`, '--get-values', 'FCGI_MAX_REQS']);
      expect({ code: o.code, stdout: o.stdout }).toEqual({ code: 0, stdout: 'FCGI_MAX_REQS=many\nX_OTHER=1\n' });
    } finally {
      unknown.close();
      closes.close();
      odd.close();
    }
  }, 30_000);

  test('--raw on a failure: what came is dumped, then the one failure line last', async () => {
    const garbage = await fakeServer((s) => s.end('nope, not FastCGI'));
    try {
      const r = await request([`fastcgi://127.0.0.1:${garbage.port}/ping`, '--raw']);
      expect(r.code).toBe(5);
      const err = lines(r.stderr);
      expect(err).toContain('> BEGIN_REQUEST id=1 len=8 pad=0 role=RESPONDER flags=0');
      expect(err).toContain('< (not a FastCGI record: version byte 110, expected 1; 17 bytes from here)');
      expect(err[err.length - 1]).toMatch(/^gatewire: request: fastcgi:\/\/127\.0\.0\.1:\d+: not a FastCGI answer/);
    } finally {
      garbage.close();
    }
  }, 20_000);

  test('UP-35: usage errors exit 2 with one line', async () => {
    const cases = [
      ['gopher://127.0.0.1:1/'],
      ['fastcgi://127.0.0.1/'],
      ['fastcgi://127.0.0.1:1/', '-H', 'novalue'],
      ['fastcgi://127.0.0.1:1/', '--timeout', 'soon'],
      ['fastcgi://127.0.0.1:1/', '--param', '=x'],
      ['http://127.0.0.1:1/', '--param', 'A=b'],
      ['http://127.0.0.1:1/', '-H', 'Content-Length: 3'],
      ['fastcgi://127.0.0.1:1/', '-d', '@/nonexistent/file'],
      ['fastcgi://127.0.0.1:1/', '--get-values', '-d', 'x'],
      ['scgi://127.0.0.1:1/', '--get-values'],
      ['--unix-socket', '/a.sock', 'fastcgi://unix:/b.sock:/'],
      ['-X', 'GE T', 'fastcgi://127.0.0.1:1/'],
      [],
    ];
    for (const args of cases) {
      const r = await request(args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(/^gatewire: request: /);
      expect(lines(r.stderr)).toHaveLength(1);
    }
    const unknown = await request(['fastcgi://127.0.0.1:1/', '--bogus']);
    expect(unknown.code).toBe(2);
  }, 60_000);

  test('--help documents every flag and the exit codes', async () => {
    const r = await runCli(['request', '--help']);
    expect(r.code).toBe(0);
    for (const flag of ['-X, --method', '-H, --header', '-d, --data', '--data-binary', '--data-raw', '--param', '--unix-socket', '--timeout', '-i, --include', '--raw', '--get-values']) expect(r.stdout).toContain(flag);
    for (const code of ['0  an answer with status 1xx-3xx', '1  an answer with status 4xx/5xx', '2  usage error', '3  connection failed', '4  timeout', '5  protocol error']) expect(r.stdout).toContain(code);
  }, 20_000);
});

/** php-fpm from fixtures/php-fpm/pool.conf, listening on `listen` (127.0.0.1:PORT or a socket path). */
async function startFpm(dir: string, listen: string, ready: { readyPort: number } | { readySocket: string }): Promise<PeerProcess> {
  const conf = path.join(dir, 'pool.conf');
  fs.writeFileSync(conf, renderTemplate(fs.readFileSync(path.join(FIXTURES_DIR, 'php-fpm', 'pool.conf'), 'utf8'), { DIR: dir, LISTEN: listen }, 'pool.conf'));
  return startProcess(peerPath('php-fpm8.2'), ['-F', '-R', '-y', conf], { name: 'php-fpm', ...ready, logFiles: [path.join(dir, 'php-fpm.log')] });
}

describeWithPeers('gatewire request against php-fpm', ['php-fpm8.2'], () => {
  let fpm: PeerProcess;
  let port: number;
  let dir: ReturnType<typeof tmpDir>;
  const script = path.join(FIXTURES_DIR, 'php-fpm', 'echo.php');
  beforeAll(async () => {
    dir = tmpDir('gw-fpm');
    port = await freePort();
    fpm = await startFpm(dir.path, `127.0.0.1:${port}`, { readyPort: port });
  }, 20_000);
  afterAll(async () => {
    await fpm?.stop();
    dir?.cleanup();
  });

  test('UP-34: fastcgi://127.0.0.1:PORT/ping prints pong, exit 0 (the cgi-fcgi health check)', async () => {
    const r = await request([`fastcgi://127.0.0.1:${port}/ping`]);
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 0, stdout: 'pong' });
    const i = await request([`fastcgi://127.0.0.1:${port}/ping`, '-i']);
    expect(i.stdout).toMatch(/^Content-type: text\/plain/im);
    expect(i.stdout.endsWith('\r\n\r\npong')).toBe(true);
  }, 20_000);

  test('the status page answers, ?json too', async () => {
    const r = await request([`fastcgi://127.0.0.1:${port}/status?json`]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ 'process manager': 'static' });
  }, 20_000);

  test('a script through --param SCRIPT_FILENAME sees $_GET, the method, a header and the body', async () => {
    const get = await request([`fastcgi://127.0.0.1:${port}/echo.php?a=1&b=x`, '--param', `SCRIPT_FILENAME=${script}`, '-H', 'X-Probe: hi']);
    expect(get.code).toBe(0);
    expect(JSON.parse(get.stdout)).toEqual({ method: 'GET', get: { a: '1', b: 'x' }, header: 'hi', body: '', script_name: '/echo.php' });
    const post = await request([`fastcgi://127.0.0.1:${port}/echo.php`, '--param', `SCRIPT_FILENAME=${script}`, '-d', 'k=v', '-d', 'w=x']);
    expect(post.code).toBe(0);
    expect(JSON.parse(post.stdout)).toMatchObject({ method: 'POST', body: 'k=v&w=x' });
  }, 20_000);

  test('UP-35: a 4xx/5xx from PHP exits 1; a missing script is 404 with php-fpm STDERR on stderr', async () => {
    const r = await request([`fastcgi://127.0.0.1:${port}/echo.php?status=503`, '--param', `SCRIPT_FILENAME=${script}`]);
    expect(r.code).toBe(1);
    const fail = await request([`fastcgi://127.0.0.1:${port}/echo.php?status=500`, '--param', `SCRIPT_FILENAME=${script}`]);
    expect(fail.code).toBe(1);
    const missing = await request([`fastcgi://127.0.0.1:${port}/nope.php`]);
    expect({ code: missing.code, stdout: missing.stdout.trim() }).toEqual({ code: 1, stdout: 'File not found.' });
    expect(missing.stderr).toMatch(/Primary script unknown/);
  }, 20_000);

  test('--get-values: php-fpm answers FCGI_MPXS_CONNS=0 and nothing else', async () => {
    const r = await request([`fastcgi://127.0.0.1:${port}`, '--get-values']);
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: 'FCGI_MPXS_CONNS=0\n', stderr: '' });
  }, 20_000);

  test('UP-34: --raw shows the records php-fpm got and sent', async () => {
    const r = await request([`fastcgi://127.0.0.1:${port}/ping`, '--raw']);
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 0, stdout: 'pong' });
    const err = lines(r.stderr);
    expect(err).toEqual(
      expect.arrayContaining([
        '> BEGIN_REQUEST id=1 len=8 pad=0 role=RESPONDER flags=0',
        '    SCRIPT_NAME = /ping',
        '    SCRIPT_FILENAME = /ping',
        '    REQUEST_METHOD = GET',
        '> PARAMS id=1 len=0 pad=0 (end of stream)',
        '> STDIN id=1 len=0 pad=0 (end of stream)',
        '< END_REQUEST id=1 len=8 pad=0 appStatus=0 protocolStatus=REQUEST_COMPLETE',
      ]),
    );
    expect(err).toContainEqual(expect.stringMatching(/^< STDOUT id=1 len=\d+ pad=\d+$/));
    expect(err).toContainEqual(expect.stringMatching(/^ {4}"Content-type: text\/plain/));
  }, 20_000);
});

describeWithPeers('gatewire request against php-fpm on a unix socket', ['php-fpm8.2'], () => {
  let fpm: PeerProcess;
  let dir: ReturnType<typeof tmpDir>;
  let sock: string;
  beforeAll(async () => {
    dir = tmpDir('gw-fpmu');
    sock = path.join(dir.path, 'php-fpm.sock');
    fpm = await startFpm(dir.path, sock, { readySocket: sock });
  }, 20_000);
  afterAll(async () => {
    await fpm?.stop();
    dir?.cleanup();
  });

  test('UP-34: --unix-socket SOCK fastcgi://localhost/ping prints pong, exit 0', async () => {
    const r = await request(['--unix-socket', sock, 'fastcgi://localhost/ping']);
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: 'pong', stderr: '' });
    const nginx = await request([`fastcgi://unix:${sock}:/ping`]);
    expect({ code: nginx.code, stdout: nginx.stdout }).toEqual({ code: 0, stdout: 'pong' });
  }, 20_000);

  test('--get-values over the socket: FCGI_MPXS_CONNS=0', async () => {
    const r = await request(['--unix-socket', sock, 'fastcgi://localhost/', '--get-values']);
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 0, stdout: 'FCGI_MPXS_CONNS=0\n' });
  }, 20_000);

  test('UP-35: a php-fpm path that is not a script exits 1', async () => {
    const r = await request(['--unix-socket', sock, 'fastcgi://localhost/missing.php']);
    expect(r.code).toBe(1);
    expect(r.stdout.trim()).toBe('File not found.');
  }, 20_000);
});
