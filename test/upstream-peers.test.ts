/**
 * gatewire as the web server in front of real application servers, every process started
 * here in a temp folder:
 *
 *   php-fpm 8.2   `gatewire serve --http --upstream fastcgi… --php fixtures/php-fpm/www`, the pool
 *                 on a unix socket (and a second pool with pm.max_children = 1 on TCP): the
 *                 environment PHP sees, GET/POST/multipart, 100 MiB up and down with hashes and
 *                 gatewire's peak RSS, cookies and Location, a fatal error, queueing behind one
 *                 worker, php-fpm restarted and killed, the cgi.fix_pathinfo hole, traversal
 *   uWSGI         a Python app on `--fastcgi-socket` behind `--upstream fastcgi://`
 *   nginx         `uwsgi_pass` → gatewire `--uwsgi` → `--upstream fastcgi+unix://` → php-fpm
 *
 * The SCGI/uwsgi sockets of uWSGI are covered in test/upstream-single-request.test.ts; the
 * client's behaviour against fake upstreams in test/upstream-fastcgi.test.ts.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { CLI, ROOT, childEnv, ensureBuilt } from './fixtures/apps/cli-harness.js';
import { FIXTURES_DIR, describeWithPeers, peerPath, renderTemplate, runProcess, startNginx, startProcess } from './helpers/peers.js';
import type { PeerProcess, WebServer } from './helpers/peers.js';
import { freePort, tmpDir } from './helpers/net.js';
import { reportMeasure, servingPid } from './helpers/rss.js';

const WWW = path.join(FIXTURES_DIR, 'php-fpm', 'www');
const MiB = 1024 * 1024;

beforeAll(() => ensureBuilt(), 180_000);

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

interface Fpm {
  proc: PeerProcess;
  /** `unix:/path` or `127.0.0.1:PORT` */
  listen: string;
  /** The --upstream URL that reaches it. */
  url: string;
  dir: ReturnType<typeof tmpDir>;
  start(): Promise<void>;
}

async function startFpm(opts: { unix: boolean; children: number }): Promise<Fpm> {
  const dir = tmpDir('gw-fpm-bridge');
  fs.chmodSync(dir.path, 0o755);
  const port = opts.unix ? 0 : await freePort();
  const sock = path.join(dir.path, 'php-fpm.sock');
  const listen = opts.unix ? sock : `127.0.0.1:${port}`;
  const conf = path.join(dir.path, 'pool.conf');
  const template = fs.readFileSync(path.join(FIXTURES_DIR, 'php-fpm', 'bridge-pool.conf'), 'utf8');
  fs.writeFileSync(conf, renderTemplate(template, { DIR: dir.path, LISTEN: listen, CHILDREN: opts.children }, 'bridge-pool.conf'));
  const fpm: Fpm = {
    proc: undefined as unknown as PeerProcess,
    listen,
    url: opts.unix ? `fastcgi+unix://${sock}` : `fastcgi://127.0.0.1:${port}`,
    dir,
    start: async () => {
      if (opts.unix) fs.rmSync(sock, { force: true });
      fpm.proc = await startProcess(peerPath('php-fpm8.2'), ['-F', '-R', '-y', conf], {
        name: 'php-fpm',
        ...(opts.unix ? { readySocket: sock } : { readyPort: port }),
        stopSignal: 'SIGQUIT',
        logFiles: [path.join(dir.path, 'php-fpm.log')],
      });
    },
  };
  await fpm.start();
  return fpm;
}

interface Gatewire {
  proc: PeerProcess;
  port: number;
  /** Lines logged since `mark` (or since start). */
  log(mark?: number): string;
  mark(): number;
}

async function startGatewire(name: string, args: string[], front = 'http'): Promise<Gatewire> {
  const proc = await startProcess(process.execPath, [CLI, 'serve', `--${front}`, '127.0.0.1:0', '--shutdown-timeout', '2s', ...args], {
    name,
    inheritEnv: false,
    env: childEnv(),
    cwd: ROOT,
    readyLine: new RegExp(`listening: ${front} on 127\\.0\\.0\\.1:\\d+`),
    stopGraceMs: 5000,
  });
  const port = Number(new RegExp(`listening: ${front} on 127\\.0\\.0\\.1:(\\d+)`).exec(proc.output())?.[1]);
  return { proc, port, log: (mark = 0) => proc.output().slice(mark), mark: () => proc.output().length };
}

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function get(port: number, target: string, opts: { method?: string; headers?: http.OutgoingHttpHeaders; body?: Buffer | string | Readable } = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const body = opts.body;
    if (body instanceof Readable) body.pipe(req);
    else req.end(body);
  });
}

function json(res: Res): Record<string, unknown> {
  try {
    return JSON.parse(res.body.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new Error(`not JSON (status ${res.status}): ${res.body.toString('utf8').slice(0, 300)}`);
  }
}

/** VmRSS and VmHWM (peak) of a process, in bytes. */
function memory(pid: number): { rss: number; peak: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/** `mib` MiB of a fixed pattern as a stream, and its sha256. */
function patternStream(mib: number): { stream: Readable; sha256: string } {
  const block = Buffer.alloc(MiB);
  for (let i = 0; i < MiB; i++) block[i] = (i * 31 + (i >> 10)) & 0xff;
  const hash = createHash('sha256');
  for (let i = 0; i < mib; i++) hash.update(block);
  let sent = 0;
  const stream = new Readable({
    read() {
      if (sent === mib) this.push(null);
      else {
        sent++;
        this.push(block);
      }
    },
  });
  return { stream, sha256: hash.digest('hex') };
}

/** What www/download.php writes for ?mib=N. */
function downloadSha(mib: number): string {
  let block = '';
  for (let i = 0; i < 256; i++) block += i.toString(16).padStart(256, '.');
  const hash = createHash('sha256');
  const buf = Buffer.from(block, 'latin1');
  for (let i = 0; i < mib * 16; i++) hash.update(buf);
  return hash.digest('hex');
}

/** Streams a response, hashing it, without keeping it. */
function download(port: number, target: string): Promise<{ status: number; length: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: target, agent: false }, (res) => {
        const hash = createHash('sha256');
        let length = 0;
        res.on('data', (c: Buffer) => {
          length += c.length;
          hash.update(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, length, sha256: hash.digest('hex') }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

// ---------------------------------------------------------------------------------------
// php-fpm behind gatewire --http --upstream fastcgi+unix:// --php
// ---------------------------------------------------------------------------------------

describeWithPeers('gatewire --php in front of php-fpm 8.2 (unix socket)', ['php-fpm8.2'], () => {
  let fpm: Fpm;
  let gw: Gatewire;
  beforeAll(async () => {
    fpm = await startFpm({ unix: true, children: 2 });
    gw = await startGatewire('gatewire-php', ['--upstream', fpm.url, '--php', WWW, '--upstream-conns', '2']);
  }, 30_000);
  afterAll(async () => {
    await gw?.proc.stop();
    await fpm?.proc.stop();
    fpm?.dir.cleanup();
  });

  test('the environment PHP sees: split path, SCRIPT_FILENAME under the root, the client facts, no Proxy header (UP-19, UP-20, UP-24)', async () => {
    const res = await get(gw.port, '/env.php/extra/path?x=1&y=%C3%A9', { headers: { 'X-Probe': 'hi', Proxy: 'http://evil', Host: 'example.test' } });
    expect(res.status).toBe(200);
    const env = json(res);
    expect(env).toMatchObject({
      SCRIPT_FILENAME: path.join(fs.realpathSync(WWW), 'env.php'),
      SCRIPT_NAME: '/env.php',
      PATH_INFO: '/extra/path',
      PATH_TRANSLATED: path.join(fs.realpathSync(WWW), 'extra/path'),
      DOCUMENT_ROOT: fs.realpathSync(WWW),
      REQUEST_URI: '/env.php/extra/path?x=1&y=%C3%A9',
      QUERY_STRING: 'x=1&y=%C3%A9',
      REQUEST_METHOD: 'GET',
      SERVER_PROTOCOL: 'HTTP/1.1',
      SERVER_PORT: String(gw.port),
      REMOTE_ADDR: '127.0.0.1',
      HTTP_HOST: 'example.test',
      HTTP_X_PROBE: 'hi',
      HTTP_PROXY: null,
      PHP_SELF: '/env.php/extra/path',
      get: { x: '1', y: 'é' },
    });
    expect(Number(env.REMOTE_PORT)).toBeGreaterThan(0);
  }, 20_000);

  test('a POST form and a multipart upload reach $_POST and $_FILES', async () => {
    const form = await get(gw.port, '/form.php', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'a=1&b=two+words' });
    expect(json(form)).toEqual({ method: 'POST', post: { a: '1', b: 'two words' }, files: [] });
    const file = Buffer.from('x'.repeat(300_000) + 'end', 'latin1');
    const boundary = '----gatewire-test-boundary';
    const multipart = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nhello\r\n`),
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="doc"; filename="big.txt"\r\nContent-Type: text/plain\r\n\r\n`),
      file,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const up = await get(gw.port, '/form.php', { method: 'POST', headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}` }, body: multipart });
    expect(json(up)).toEqual({
      method: 'POST',
      post: { title: 'hello' },
      files: { doc: { name: 'big.txt', size: file.length, error: 0, sha256: createHash('sha256').update(file).digest('hex') } },
    });
  }, 20_000);

  test('100 MiB up and 100 MiB down: hashes right, gatewire\'s peak RSS grows by less than 32 MiB (UP-5, UP-32)', async () => {
    // Warm up first (JIT, buffers), so the peak measured is the transfer's, not the start's.
    await download(gw.port, '/download.php?mib=4');
    const before = memory(servingPid(gw.proc.pid)); // the worker: its peak (VmHWM) is what the bound is about
    const { stream, sha256 } = patternStream(100);
    const up = await get(gw.port, '/upload.php', { method: 'POST', headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(100 * MiB) }, body: stream });
    expect(json(up)).toEqual({ length: 100 * MiB, sha256 });
    const down = await download(gw.port, '/download.php?mib=100');
    expect(down).toEqual({ status: 200, length: 100 * MiB, sha256: downloadSha(100) });
    const after = memory(servingPid(gw.proc.pid));
    const grew = after.peak - Math.max(before.peak, before.rss);
    // The figure, not only the bound, for a closing note (GATEWIRE_PEER_REPORT=1).
    reportMeasure('upstream-peers', `gatewire RSS: before ${(before.rss / MiB).toFixed(1)} MiB (peak ${(before.peak / MiB).toFixed(1)}), after ${(after.rss / MiB).toFixed(1)} MiB (peak ${(after.peak / MiB).toFixed(1)}); peak grew ${(grew / MiB).toFixed(1)} MiB`);
    expect(grew).toBeLessThan(32 * MiB);
  }, 120_000);

  test('cookies stay apart; header("Location: …") is PHP\'s 302 with the cookies (UP-16, UP-17)', async () => {
    const res = await get(gw.port, '/cookie.php', { headers: { Cookie: 'c=seen' } });
    expect(res.status).toBe(200);
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2; path=/; HttpOnly']);
    expect(res.body.toString()).toBe('cookie seen: seen\n');
    const go = await get(gw.port, '/cookie.php?go=1');
    expect(go.status).toBe(302);
    expect(go.headers.location).toBe('/landing?from=cookie');
    expect(go.headers['set-cookie']).toHaveLength(2);
  }, 20_000);

  test('a PHP fatal error is php-fpm\'s 500; its STDERR is in gatewire\'s log with the request id, not in the body (UP-11)', async () => {
    const mark = gw.mark();
    const res = await get(gw.port, '/fatal.php');
    expect(res.status).toBe(500);
    expect(res.body.toString()).not.toMatch(/Fatal/);
    await waitForLog(gw, mark, /stderr: PHP message: PHP Fatal error: +Uncaught Error: Call to undefined function no_such_function_here\(\).*request_id=\S+/);
  }, 20_000);

  test('the cgi.fix_pathinfo hole is closed: /uploads/evil.jpg/x.php is a 404 and nothing runs (UP-21)', async () => {
    const res = await get(gw.port, '/uploads/evil.jpg/x.php');
    expect(res.status).toBe(404);
    expect(res.body.toString()).not.toMatch(/EXECUTED/);
    // The file itself is a static file: its bytes, never executed.
    const raw = await get(gw.port, '/uploads/evil.jpg');
    expect(raw.status).toBe(200);
    expect(raw.headers['content-type']).toBe('image/jpeg');
    expect(raw.body.toString()).toBe('<?php echo "EXECUTED"; ?>\n');
  }, 20_000);

  test('traversal never leaves the root (UP-20, UP-22)', async () => {
    for (const target of ['/../../../../etc/passwd', '/%2e%2e/%2e%2e/%2e%2e/etc/passwd', '/blog/..%2f..%2f..%2fetc/passwd', '/env.php/../../../../etc/passwd', '/%00.php', '/a%0a.php']) {
      const res = await get(gw.port, target);
      expect({ target, passwd: /root:x:0:0/.test(res.body.toString()) }).toEqual({ target, passwd: false });
      expect({ target, ok: [400, 404].includes(res.status) || res.body.toString().startsWith('front controller') }).toEqual({ target, ok: true });
    }
  }, 20_000);

  test('.php source is never served; static files are, with their type; directories find index.php; unknown paths the front controller', async () => {
    const css = await get(gw.port, '/style.css');
    expect(css.status).toBe(200);
    expect(css.headers['content-type']).toMatch(/^text\/css/);
    expect(css.body.toString()).toBe('body { color: #333; }\n');
    const hello = await get(gw.port, '/hello.php');
    expect(hello.body.toString()).toBe('Hello, World!\n');
    const blog = await get(gw.port, '/blog/');
    expect(blog.body.toString()).toBe('blog: /blog/index.php \n');
    const route = await get(gw.port, '/some/route?id=7');
    expect(route.body.toString()).toBe('front controller: /some/route?id=7\n');
  }, 20_000);

  test('php-fpm\'s ping answers through gatewire request on the same socket (UP-34)', async () => {
    const sock = fpm.listen;
    const r = await runCli(['request', '--unix-socket', sock, 'fastcgi://localhost/ping']);
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 0, stdout: 'pong' });
  }, 20_000);

  test('php-fpm restarted mid-run: the pool recovers, no request fails (UP-29, UP-30)', async () => {
    for (let i = 0; i < 4; i++) expect((await get(gw.port, '/hello.php')).status).toBe(200);
    await fpm.proc.stop();
    await fpm.start();
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await get(gw.port, '/hello.php')).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200]);
  }, 30_000);

  test('php-fpm killed: 502 at once, one log line naming the socket error (UP-33)', async () => {
    expect((await get(gw.port, '/hello.php')).status).toBe(200);
    process.kill(-fpm.proc.pid, 'SIGKILL');
    await fpm.proc.exited;
    fs.rmSync(fpm.listen, { force: true });
    const mark = gw.mark();
    const t0 = Date.now();
    const res = await get(gw.port, '/hello.php');
    const ms = Date.now() - t0;
    expect(res.status).toBe(502);
    expect(ms).toBeLessThan(1000);
    await waitForLog(gw, mark, /upstream fastcgi:\/\/unix:\S+php-fpm\.sock: 502 cannot connect: ENOENT request_id=\S+/);
    expect(gw.log(mark).match(/ 502 /g)).toHaveLength(1);
    await fpm.start(); // for afterAll's stop
  }, 30_000);
});

describeWithPeers('gatewire in front of php-fpm with pm.max_children = 1 (TCP)', ['php-fpm8.2'], () => {
  let fpm: Fpm;
  let gw: Gatewire;
  beforeAll(async () => {
    fpm = await startFpm({ unix: false, children: 1 });
    // The default pool size (8): more connections than workers, the case the idle rule is for.
    gw = await startGatewire('gatewire-php1', ['--upstream', fpm.url, '--php', WWW]);
  }, 30_000);
  afterAll(async () => {
    await gw?.proc.stop();
    await fpm?.proc.stop();
    fpm?.dir.cleanup();
  });

  test('six concurrent requests queue behind the one worker and all succeed, in about their summed time (UP-28)', async () => {
    const t0 = Date.now();
    const all = await Promise.all(Array.from({ length: 6 }, () => get(gw.port, '/sleep.php?ms=150')));
    const ms = Date.now() - t0;
    expect(all.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(new Set(all.map((r) => r.body.toString())).size).toBe(1); // one worker served them all
    // Serialized (≥ 6 × 150 ms), and not held up by idle pooled connections pinning the worker
    // (2 s each with the idle timeout): a bound on a wait, not a speed claim.
    expect(ms).toBeGreaterThanOrEqual(6 * 150 - 50);
    expect(ms).toBeLessThan(6000);
  }, 30_000);
});

// ---------------------------------------------------------------------------------------
// uWSGI's FastCGI socket behind --upstream fastcgi://
// ---------------------------------------------------------------------------------------

const WSGI_ECHO = [
  'def application(environ, start_response):',
  '    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))',
  '    out = ("%s %s %s %d\\n" % (environ["REQUEST_METHOD"], environ.get("PATH_INFO"), environ.get("QUERY_STRING"), len(body))).encode() + body',
  '    start_response("201 Created", [("Content-Type", "text/plain"), ("X-Seen", environ.get("HTTP_X_PROBE", "-"))])',
  '    return [out]',
].join('\n');

describeWithPeers('uWSGI --fastcgi-socket behind gatewire --upstream fastcgi://', ['uwsgi-python3'], () => {
  let uwsgi: PeerProcess;
  let gw: Gatewire;
  beforeAll(async () => {
    const port = await freePort();
    uwsgi = await startProcess(peerPath('uwsgi-python3'), ['--plugin', 'python3', '--fastcgi-socket', `127.0.0.1:${port}`, '--eval', WSGI_ECHO, '--disable-logging', '--post-buffering', '65536'], {
      name: 'uwsgi',
      readyPort: port,
      readyLine: /spawned uWSGI worker|Operational MODE/,
      stopSignal: 'SIGINT',
    });
    gw = await startGatewire('gatewire-uwsgi-fcgi', ['--upstream', `fastcgi://127.0.0.1:${port}`]);
  }, 30_000);
  afterAll(async () => {
    await gw?.proc.stop();
    await uwsgi?.stop();
  });

  test('GET, HEAD and POST: the status, a header and the body come back; uWSGI closes every connection and gatewire copes', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await get(gw.port, '/items/7?q=1', { headers: { 'X-Probe': 'p' } });
      expect({ status: res.status, seen: res.headers['x-seen'], body: res.body.toString() }).toEqual({ status: 201, seen: 'p', body: 'GET /items/7 q=1 0\n' });
    }
    const head = await get(gw.port, '/h', { method: 'HEAD' });
    expect({ status: head.status, body: head.body.length }).toEqual({ status: 201, body: 0 });
    // 60 kB, within --post-buffering: past it, uWSGI 2.0.21's FastCGI socket intermittently
    // fails the request before running the app ("[uwsgi-body-read] Error reading 65536 bytes …
    // consumed: 0 … Resource temporarily unavailable": an EAGAIN taken as an error) when the
    // client is node:http; curl, a raw socket client and nginx in front did not show it.
    const body = 'z'.repeat(60_000);
    const post = await get(gw.port, '/p', { method: 'POST', body });
    const text = post.body.toString();
    // Compared by length and head: a failed comparison must not print 200 kB.
    expect({ head: text.slice(0, 15), length: text.length, intact: text.endsWith(body) }).toEqual({ head: 'POST /p  60000\n', length: 15 + body.length, intact: true });
  }, 20_000);
});

// ---------------------------------------------------------------------------------------
// nginx uwsgi_pass → gatewire --uwsgi → --upstream fastcgi+unix:// → php-fpm
// ---------------------------------------------------------------------------------------

describeWithPeers('nginx uwsgi_pass → gatewire --uwsgi → FastCGI → php-fpm', ['nginx', 'php-fpm8.2'], () => {
  let fpm: Fpm;
  let gw: Gatewire;
  let nginx: WebServer;
  beforeAll(async () => {
    fpm = await startFpm({ unix: true, children: 2 });
    gw = await startGatewire('gatewire-bridge', ['--upstream', fpm.url, '--php', WWW, '--mount', '/uwsgi'], 'uwsgi');
    nginx = await startNginx({ template: 'uwsgi.conf', vars: { UWSGI_ADDR: `127.0.0.1:${gw.port}` } });
  }, 30_000);
  afterAll(async () => {
    await nginx?.stop();
    await gw?.proc.stop();
    await fpm?.proc.stop();
    fpm?.dir.cleanup();
  });

  test('a PHP script answers through three protocols: HTTP → uwsgi → FastCGI', async () => {
    const res = await get(nginx.port, '/uwsgi/env.php/x?k=v', { headers: { 'X-Probe': 'bridge' } });
    expect(res.status).toBe(200);
    expect(json(res)).toMatchObject({ SCRIPT_NAME: '/uwsgi/env.php', PATH_INFO: '/x', QUERY_STRING: 'k=v', HTTP_X_PROBE: 'bridge', REQUEST_METHOD: 'GET' });
    const post = await get(nginx.port, '/uwsgi/form.php', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'n=1' });
    expect(json(post)).toEqual({ method: 'POST', post: { n: '1' }, files: [] });
    const redirect = await get(nginx.port, '/uwsgi/cookie.php?go=1');
    expect(redirect.status).toBe(302);
    expect(redirect.headers['set-cookie']).toHaveLength(2);
  }, 20_000);
});

// ---------------------------------------------------------------------------------------

async function waitForLog(gw: Gatewire, mark: number, pattern: RegExp, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!pattern.test(gw.log(mark))) {
    if (Date.now() > until) throw new Error(`no log line matching ${pattern} in:\n${gw.log(mark)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = await runProcess(process.execPath, [CLI, ...args], { env: childEnv(), inheritEnv: false, timeoutMs: 10_000 });
  return { code: r.code, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8') };
}
