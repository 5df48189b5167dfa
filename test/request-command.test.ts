/**
 * `gatewire request URL` (src/cli-request.ts, src/upstream/request.ts): the built CLI as a child
 * process, against gatewire's own --fastcgi, --scgi and --uwsgi fronts started in this process,
 * and against php-fpm (ping, and a script through --param SCRIPT_FILENAME) when it is installed.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { App, Environ, StartResponse } from '../src/app.js';
import type { Gateway } from '../src/server.js';
import { buildRequestParams, parseRequestUrl } from '../src/upstream/request.js';
import { ensureBuilt, freePort, killAll, runCli } from './fixtures/apps/cli-harness.js';
import { FIXTURES_DIR, describeWithPeers, peerPath, renderTemplate, startProcess, type PeerProcess } from './helpers/peers.js';
import { startGateway } from './helpers/scgi-client.js';
import { tmpDir } from './helpers/net.js';

beforeAll(() => ensureBuilt(), 180_000);
afterEach(() => killAll());

/** Echoes what it got as JSON; `/missing` answers 404. */
const echoApp: App = async (environ: Environ, startResponse: StartResponse) => {
  const chunks: Buffer[] = [];
  for await (const chunk of environ['gatewire.input'] as AsyncIterable<Buffer>) chunks.push(chunk);
  const target = `${String(environ['SCRIPT_NAME'] ?? '')}${String(environ['PATH_INFO'] ?? '')}`;
  if (target === '/missing') {
    startResponse('404 Not Found', [['Content-Type', 'text/plain']]);
    return ['no such thing\n'];
  }
  const vars: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(environ)) if (!k.includes('.')) vars[k] = v;
  startResponse('200 OK', [['Content-Type', 'application/json'], ['X-Echo', 'yes']]);
  return [JSON.stringify({ target, environ: vars, body: Buffer.concat(chunks).toString('latin1') })];
};

interface Echo {
  target: string;
  environ: Record<string, string>;
  body: string;
}

const request = (args: string[]): ReturnType<typeof runCli> => runCli(['request', ...args], {}, 15_000);

describe('gatewire request: URL and params (src/upstream/request.ts)', () => {
  test('TCP and unix URL forms', () => {
    expect(parseRequestUrl('fastcgi://127.0.0.1:9000/ping')).toEqual({ protocol: 'fastcgi', address: { kind: 'tcp', host: '127.0.0.1', port: 9000 }, path: '/ping', query: undefined });
    expect(parseRequestUrl('scgi://[::1]:4000/a/b?x=1&y')).toEqual({ protocol: 'scgi', address: { kind: 'tcp', host: '::1', port: 4000 }, path: '/a/b', query: 'x=1&y' });
    expect(parseRequestUrl('fastcgi://unix:/run/php.sock:/status?json')).toEqual({ protocol: 'fastcgi', address: { kind: 'unix', path: '/run/php.sock' }, path: '/status', query: 'json' });
    expect(parseRequestUrl('uwsgi://unix:/run/u.sock')).toEqual({ protocol: 'uwsgi', address: { kind: 'unix', path: '/run/u.sock' }, path: '/', query: undefined });
    for (const bad of ['http://x:1/', 'fastcgi://host/ping', 'fastcgi://unix:', 'fastcgi://unix:/s.sock:ping', 'scgi://h:0/', 'scgi://h:1/a b']) expect(() => parseRequestUrl(bad)).toThrow(/invalid URL/);
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
    expect(map.has('PATH_INFO')).toBe(false);
    expect(params.map(([n]) => n).filter((n) => n === 'SCRIPT_FILENAME')).toHaveLength(1);
    const keys = params.map(([n]) => n).sort();
    expect(keys).toEqual(
      ['GATEWAY_INTERFACE', 'HTTP_HOST', 'HTTP_X_A', 'PHP_VALUE', 'QUERY_STRING', 'REMOTE_ADDR', 'REQUEST_METHOD', 'REQUEST_URI', 'SCRIPT_FILENAME', 'SCRIPT_NAME', 'SERVER_NAME', 'SERVER_PORT', 'SERVER_PROTOCOL', 'SERVER_SOFTWARE'].sort(),
    );
    const scgi = new Map(buildRequestParams(parseRequestUrl('scgi://127.0.0.1:1/a'), { body: Buffer.from('xy') }));
    expect([scgi.get('SCRIPT_NAME'), scgi.get('PATH_INFO'), scgi.get('REQUEST_METHOD'), scgi.get('CONTENT_LENGTH'), scgi.get('CONTENT_TYPE')]).toEqual(['', '/a', 'POST', '2', 'application/x-www-form-urlencoded']);
  });
});

for (const front of ['fastcgi', 'scgi', 'uwsgi'] as const) {
  describe(`gatewire request ${front}:// against gatewire --${front}`, () => {
    let gateway: Gateway;
    let port: number;
    beforeAll(async () => {
      const started = await startGateway({ app: echoApp, interface: 'environ' }, { [front]: ['127.0.0.1:0'], mount: '' });
      gateway = started.gateway;
      port = started.ports[0] as number;
    });
    afterAll(() => gateway.close(1000));

    test('GET with a query and a header: the body on stdout, exit 0', async () => {
      const r = await request([`${front}://127.0.0.1:${port}/echo/x?a=1&b=two`, '-H', 'X-Probe: hello']);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      const echo = JSON.parse(r.stdout) as Echo;
      expect(echo.target).toBe('/echo/x');
      expect(echo.environ).toMatchObject({ REQUEST_METHOD: 'GET', QUERY_STRING: 'a=1&b=two', HTTP_X_PROBE: 'hello', REMOTE_ADDR: '127.0.0.1' });
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

    test('-i prints the response head before the body', async () => {
      const r = await request([`${front}://127.0.0.1:${port}/echo`, '-i']);
      expect(r.code).toBe(0);
      const split = r.stdout.indexOf('\r\n\r\n');
      expect(split).toBeGreaterThan(0);
      const head = r.stdout.slice(0, split);
      expect(head).toMatch(front === 'uwsgi' ? /^HTTP\/1\.[01] 200 OK\r\n/ : /(^|\n)Status: 200 OK\r?$/m);
      expect(head).toMatch(/^X-Echo: yes$/im);
      expect((JSON.parse(r.stdout.slice(split + 4)) as Echo).target).toBe('/echo');
    }, 20_000);

    test('UP-35: a 404 answer exits 1 and still prints the body', async () => {
      const r = await request([`${front}://127.0.0.1:${port}/missing`]);
      expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 1, stdout: 'no such thing\n' });
    }, 20_000);
  });
}

describe('gatewire request: failures and usage', () => {
  test('UP-35: a refused port exits 3 with one stderr line, well under the timeout', async () => {
    const port = await freePort();
    const started = Date.now();
    const r = await request([`fastcgi://127.0.0.1:${port}/ping`, '--timeout', '5s']);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/connection refused/);
  }, 20_000);

  test('UP-35: silence exits 3 after --timeout with one line saying so', async () => {
    const sockets: net.Socket[] = [];
    const server = net.createServer((s) => sockets.push(s)); // accepts, never answers
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const r = await request([`scgi://127.0.0.1:${port}/`, '--timeout', '300ms']);
      expect(r.code).toBe(3);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/within 300 ms/);
    } finally {
      for (const s of sockets) s.destroy();
      server.close();
    }
  }, 20_000);

  test('UP-35: garbage from the peer exits 3', async () => {
    const server = net.createServer((s) => s.end('this is not FastCGI at all\r\n'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const r = await request([`fastcgi://127.0.0.1:${port}/ping`]);
      expect(r.code).toBe(3);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/not a FastCGI answer/);
    } finally {
      server.close();
    }
  }, 20_000);

  test('a bad URL or option exits 2', async () => {
    for (const args of [['http://127.0.0.1:1/'], ['fastcgi://127.0.0.1:1/', '-H', 'novalue'], ['fastcgi://127.0.0.1:1/', '--timeout', 'soon'], ['fastcgi://127.0.0.1:1/', '--param', '=x']]) {
      const r = await request(args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(/^gatewire: request: /);
    }
  }, 30_000);
});

describeWithPeers('gatewire request against php-fpm', ['php-fpm8.2'], () => {
  let fpm: PeerProcess;
  let port: number;
  let dir: ReturnType<typeof tmpDir>;
  const script = path.join(FIXTURES_DIR, 'php-fpm', 'echo.php');
  beforeAll(async () => {
    dir = tmpDir('gw-fpm');
    port = await freePort();
    const conf = path.join(dir.path, 'pool.conf');
    fs.writeFileSync(conf, renderTemplate(fs.readFileSync(path.join(FIXTURES_DIR, 'php-fpm', 'pool.conf'), 'utf8'), { DIR: dir.path, LISTEN: `127.0.0.1:${port}` }, 'pool.conf'));
    fpm = await startProcess(peerPath('php-fpm8.2'), ['-F', '-R', '-y', conf], { name: 'php-fpm', readyPort: port, logFiles: [path.join(dir.path, 'php-fpm.log')] });
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
    const post = await request([`fastcgi://127.0.0.1:${port}/echo.php`, '--param', `SCRIPT_FILENAME=${script}`, '-d', 'k=v']);
    expect(post.code).toBe(0);
    expect(JSON.parse(post.stdout)).toMatchObject({ method: 'POST', body: 'k=v' });
  }, 20_000);

  test('a 4xx/5xx from PHP exits 1; a missing script is 404 with php-fpm STDERR on stderr', async () => {
    const r = await request([`fastcgi://127.0.0.1:${port}/echo.php?status=503`, '--param', `SCRIPT_FILENAME=${script}`]);
    expect(r.code).toBe(1);
    const missing = await request([`fastcgi://127.0.0.1:${port}/nope.php`]);
    expect({ code: missing.code, stdout: missing.stdout.trim() }).toEqual({ code: 1, stdout: 'File not found.' });
    expect(missing.stderr).toMatch(/Primary script unknown/);
  }, 20_000);
});
