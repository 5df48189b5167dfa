/**
 * gatewire as a CGI host behind a real web server, against the reference it replaces: Debian's
 * nginx 1.22 `fastcgi_pass` → `gatewire serve --cgi-bin fixtures/cgi-bin --fastcgi ADDR`, and
 * the same nginx location → spawn-fcgi + fcgiwrap 1.1.0, on the same scripts with the same
 * params (fixtures/nginx/cgi-peers.conf: a request header picks the backend, so the URL, the
 * params and SCRIPT_NAME are identical). php-cgi runs a .php file without the exec bit through
 * `--cgi-interpreters .php`. gatewire's own HTTP front serves the same cgi-bin for comparison.
 * What is tested in-process (test/cgi-bin.test.ts) is not repeated: this file is about what a
 * real web server in front changes, and where fcgiwrap and gatewire part ways.
 *
 * Outcomes through nginx (fcgiwrap column as observed with Debian 12's nginx 1.22.1 and
 * fcgiwrap 1.1.0; asserted tolerantly, so a fixed peer does not fail the suite):
 *
 *   script                      gatewire                        fcgiwrap
 *   hello, status(404), cookies, no-content-type, header-latin1, location-status (301),
 *   exit-nonzero, args?-s, echo POST 32 KiB, HEAD             — identical
 *   location-local-body         302 Found + body                302 Moved Temporarily + body
 *   env.sh                      CGI set + SCRIPT_FILENAME,      + CONTENT_LENGTH="" CONTENT_TYPE=""
 *                               PATH_TRANSLATED, REMOTE_HOST    + HTTP_PROXY (httpoxy)
 *                                                               + fcgiwrap's own environment
 *   location-local              200, re-dispatched (var.sh)     302 Moved Temporarily, Location as is
 *   location-absolute/-netpath  302 Found, body discarded       302 Moved Temporarily, body kept
 *   content-length-lie          10 bytes (script CL dropped)    nginx trusts CL: 5 bytes
 *   no-colon, obs-fold, bad-status abc/99, long-line, many-headers, no-blank-line, no-output
 *                               502 (gatewire's text)           502 (nginx's page; fcgiwrap's text for no-output)
 *   bare-cr                     502                             200, the CR splits the field (X-Bad: a / b:)
 *   status-line (not NPH)       502                             200, nginx skips the line
 *   bad-status 2000 / 103       502                             "HTTP/1.1 2000" / "HTTP/1.1 103" to the client
 *   transfer-encoding, nph-te   502                             200, chunk framing inside the body
 *   nph-hello                   203 Straight From The Script    200 OK (status line skipped)
 *   crash (SIGKILL mid-body)    client sees the truncation      complete-looking response
 *   missing.sh                  404                             403
 *   env.sh/x + SCRIPT_FILENAME  path walk: PATH_INFO /x         403
 *   write-before-read 1 MiB     200, all bytes                  deadlock, nginx 504, script stuck
 *   echo.sh 256 KiB             200, echoed                     deadlock, nginx 504, script stuck
 *   epipe.sh (1 MiB unread)     200 "not reading"               502 (EPIPE writing the body)
 *   sleep.sh                    504 at --cgi-timeout, killed    nginx 504 at fastcgi_read_timeout, runs on
 *   background.sh               200 at exit + grace, child gone nginx 504 (waits for EOF), child runs on
 *     (idle timeout < grace)    200 (before b4df524: truncated)
 *   stream-gate                 streamed                        buffered (libfcgi): nginx 504
 *   client abort (slow.sh)      group killed                    script runs on
 *   hello.php (no exec bit)     201 through php-cgi (.php)      403
 * gatewire's --http front gives the same answers as nginx → gatewire; env.sh differs only in
 * what nginx's params add (DOCUMENT_URI, FCGI_ROLE, REDIRECT_STATUS, REMOTE_USER) and in each
 * server's own name, port and document root.
 *
 * Processes are found by a marker: the request carries `X-Gw-Mark: <random>`, every process of
 * that run (the script and its children) has HTTP_X_GW_MARK=<random> in /proc/PID/environ.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { CLI, ROOT, childEnv, ensureBuilt } from './fixtures/apps/cli-harness.js';
import { FIXTURES_DIR, describeWithPeers, peerPath, startNginx, startProcess, withPeerLogs } from './helpers/peers.js';
import type { PeerProcess, WebServer } from './helpers/peers.js';
import { freePort, rawRequest, tmpDir } from './helpers/net.js';

const CGI_DIR = path.join(FIXTURES_DIR, 'cgi-bin');
/** Put in both bridges' own environment: a CGI host must not hand it to scripts (C-3). */
const SECRET = 'CGI_PEERS_SECRET';
const MiB = 1024 * 1024;

beforeAll(() => ensureBuilt(), 180_000);

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

interface Gatewire {
  proc: PeerProcess;
  fcgiPort: number;
  httpPort: number;
}

/** `node dist/src/cli.js serve --cgi-bin fixtures/cgi-bin --fastcgi 127.0.0.1:0 --http 127.0.0.1:0 ...`. */
async function startGatewire(name: string, extra: string[]): Promise<Gatewire> {
  const args = [CLI, 'serve', '--cgi-bin', CGI_DIR, '--fastcgi', '127.0.0.1:0', '--http', '127.0.0.1:0', '--shutdown-timeout', '2s', ...extra];
  const proc = await startProcess(process.execPath, args, {
    name,
    inheritEnv: false,
    env: childEnv({ [SECRET]: 'gatewire-keeps-this' }),
    cwd: ROOT,
    readyLine: /(?=[\s\S]*listening: fastcgi on 127\.0\.0\.1:\d+)(?=[\s\S]*listening: http on 127\.0\.0\.1:\d+)/,
    stopGraceMs: 5000,
  });
  const port = (front: string): number => Number(new RegExp(`listening: ${front} on 127\\.0\\.0\\.1:(\\d+)`).exec(proc.output())?.[1]);
  return { proc, fcgiPort: port('fastcgi'), httpPort: port('http') };
}

/**
 * spawn-fcgi + fcgiwrap with a small known environment (PATH and the secret), 16 workers: the
 * tests below leave some workers stuck for good (fcgiwrap has no timeouts), and nginx's
 * keepalive pool holds one worker per idle connection.
 */
async function startWrap(): Promise<{ proc: PeerProcess; addr: string }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      const proc = await startProcess(peerPath('spawn-fcgi'), ['-n', '-a', '127.0.0.1', '-p', String(port), '--', peerPath('fcgiwrap'), '-c', '16'], {
        name: 'spawn-fcgi+fcgiwrap',
        inheritEnv: false,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', [SECRET]: 'fcgiwrap-leaks-this' },
        readyPort: port,
      });
      return { proc, addr: `127.0.0.1:${port}` };
    } catch (err) {
      lastError = err;
      if (!/EADDRINUSE|already in use/i.test((err as Error).message)) break;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

/** Live processes whose environment holds HTTP_X_GW_MARK=<mark> (the run of one request). */
function marked(mark: string): number[] {
  const needle = Buffer.from(`HTTP_X_GW_MARK=${mark}\0`);
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'latin1');
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') continue;
      if (fs.readFileSync(`/proc/${name}/environ`).includes(needle)) out.push(Number(name));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` holds; false after `ms` (processes take a moment to die). */
async function eventually(check: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await sleep(20);
  }
  return check();
}

/** Ends what fcgiwrap left running for a request (its worker is freed when the script dies). */
function killMarked(mark: string): void {
  for (const pid of marked(mark)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

const newMark = (): string => randomBytes(6).toString('hex');

// ---------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: the peers' answers are not always valid HTTP (status 2000, a bare
// 103, a reset mid-body), so nothing here trusts node:http.
// ---------------------------------------------------------------------------------------

type Backend = 'gatewire' | 'strict' | 'fcgiwrap';

interface Answer {
  status: number;
  reason: string;
  /** As received, in order. */
  headers: Array<[string, string]>;
  body: Buffer;
  /** The framing said the body ended (chunked terminator, Content-Length reached, or close-delimited). */
  complete: boolean;
}

interface Ask {
  /** Through nginx to this backend (default gatewire), or straight to a port (gatewire's HTTP front). */
  backend?: Backend;
  port?: number;
  method?: string;
  body?: Buffer | string;
  /** Send the body chunked. */
  chunked?: boolean;
  headers?: Array<[string, string]>;
  /** Ask nginx to add SCRIPT_FILENAME $document_root$fastcgi_script_name (Debian's fcgiwrap example). */
  scriptFilename?: boolean;
  mark?: string;
}

function requestBytes(target: string, opts: Ask): Buffer {
  const { method = opts.body === undefined ? 'GET' : 'POST', body, chunked = false } = opts;
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: localhost', 'Connection: close', 'User-Agent: cgi-peers'];
  if (opts.port === undefined) lines.push(`X-Cgi-Host: ${opts.backend ?? 'gatewire'}`);
  if (opts.scriptFilename === true) lines.push('X-Cgi-Params: filename');
  if (opts.mark !== undefined) lines.push(`X-Gw-Mark: ${opts.mark}`);
  for (const [k, v] of opts.headers ?? []) lines.push(`${k}: ${v}`);
  const data = body === undefined ? undefined : Buffer.from(body);
  if (data !== undefined) lines.push(chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${data.length}`);
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  if (data === undefined) return head;
  return Buffer.concat([head, chunked ? Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n0\r\n\r\n')]) : data]);
}

/** Parses a whole HTTP/1.x response (as read until close); tolerates anything after the head. */
function parseAnswer(raw: Buffer, method = 'GET'): Answer {
  const end = raw.indexOf('\r\n\r\n');
  if (end === -1) throw new Error(`no response head in ${JSON.stringify(raw.toString('latin1').slice(0, 200))}`);
  const [statusLine = '', ...fieldLines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d+)(?: (.*))?$/.exec(statusLine);
  if (m === null) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
  const headers = fieldLines.map((l): [string, string] => {
    const colon = l.indexOf(':');
    return [l.slice(0, colon), l.slice(colon + 1).trim()];
  });
  const field = (name: string): string | undefined => headers.find(([k]) => k.toLowerCase() === name)?.[1];
  const status = Number(m[1]);
  let rest = raw.subarray(end + 4);
  if (method === 'HEAD' || status === 204 || status === 304 || status < 200) return { status, reason: m[2] ?? '', headers, body: Buffer.alloc(0), complete: true };
  if (field('transfer-encoding')?.toLowerCase() === 'chunked') {
    const parts: Buffer[] = [];
    for (;;) {
      const nl = rest.indexOf('\r\n');
      if (nl === -1) return { status, reason: m[2] ?? '', headers, body: Buffer.concat(parts), complete: false };
      const size = parseInt(rest.subarray(0, nl).toString('latin1'), 16);
      if (size === 0) return { status, reason: m[2] ?? '', headers, body: Buffer.concat(parts), complete: rest.length >= nl + 4 };
      const chunk = rest.subarray(nl + 2, nl + 2 + size);
      parts.push(chunk);
      if (chunk.length < size || rest.length < nl + 4 + size) return { status, reason: m[2] ?? '', headers, body: Buffer.concat(parts), complete: false };
      rest = rest.subarray(nl + 4 + size);
    }
  }
  const length = field('content-length');
  if (length !== undefined) return { status, reason: m[2] ?? '', headers, body: rest.subarray(0, Number(length)), complete: rest.length >= Number(length) };
  return { status, reason: m[2] ?? '', headers, body: rest, complete: true };
}

const header = (a: Answer, name: string): string[] => a.headers.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
const text = (a: Answer): string => a.body.toString('latin1');

/** What must match between two bridges: everything but Date, Server and the framing nginx chose. */
const FRAMING = new Set(['date', 'server', 'connection', 'keep-alive', 'transfer-encoding', 'content-length']);
function comparable(a: Answer): { status: number; reason: string; headers: Array<[string, string]>; body: string; complete: boolean } {
  return {
    status: a.status,
    reason: a.reason,
    headers: a.headers.filter(([k]) => !FRAMING.has(k.toLowerCase())).map(([k, v]) => [k.toLowerCase(), v]),
    body: text(a),
    complete: a.complete,
  };
}

/** `NAME=value` lines of env.sh's output. */
function envOf(a: Answer): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of a.body.toString('latin1').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return out;
}

/** Set by sh itself, by env.sh, or the process's own (PATH, locale): not request meta-variables. */
const NOT_CGI = new Set(['PWD', 'OLDPWD', 'SHLVL', '_', 'ARGC', 'PATH', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'LD_LIBRARY_PATH', SECRET]);
const cgiNames = (env: Map<string, string>): string[] => [...env.keys()].filter((k) => !NOT_CGI.has(k)).sort();

// ---------------------------------------------------------------------------------------

describeWithPeers('CGI hosting behind nginx: gatewire vs fcgiwrap (fixtures/nginx/cgi-peers.conf)', ['nginx', 'spawn-fcgi', 'fcgiwrap'], () => {
  let gw: Gatewire;
  let strict: Gatewire;
  let wrap: { proc: PeerProcess; addr: string };
  let nginx: WebServer;
  let scratch: ReturnType<typeof tmpDir>;

  beforeAll(async () => {
    scratch = tmpDir('gw-cgipeers');
    [gw, strict, wrap] = await Promise.all([
      startGatewire('gatewire', ['--cgi-interpreters', '.php']),
      startGatewire('gatewire --cgi-timeout 1s', ['--cgi-timeout', '1s', '--cgi-idle-timeout', '500ms']),
      startWrap(),
    ]);
    nginx = await startNginx({
      template: 'cgi-peers',
      vars: {
        DOCROOT: FIXTURES_DIR,
        GATEWIRE_ADDR: `127.0.0.1:${gw.fcgiPort}`,
        STRICT_ADDR: `127.0.0.1:${strict.fcgiPort}`,
        FCGIWRAP_ADDR: wrap.addr,
        READ_TIMEOUT: '3s',
      },
    });
  }, 60_000);

  afterAll(async () => {
    await nginx?.stop();
    // fcgiwrap's stuck workers and the scripts they left die with its process group.
    await Promise.all([gw?.proc.stop(), strict?.proc.stop(), wrap?.proc.stop()]);
    scratch?.cleanup();
  }, 30_000);

  /** One request, Connection: close, read until nginx (or gatewire) closes. */
  async function ask(target: string, opts: Ask = {}): Promise<Answer> {
    const port = opts.port ?? nginx.port;
    const raw = await rawRequest(port, requestBytes(target, opts), { timeoutMs: 20_000 });
    return parseAnswer(raw, opts.method);
  }

  /** The same request through nginx to gatewire and to fcgiwrap, at once. */
  function both(target: string, opts: Omit<Ask, 'backend' | 'port'> = {}): Promise<[Answer, Answer]> {
    return Promise.all([ask(target, { ...opts, backend: 'gatewire' }), ask(target, { ...opts, backend: 'fcgiwrap' })]);
  }

  // --- Same answers --------------------------------------------------------------------

  test.each([
    ['hello.sh', {}, 200, 'Hello, CGI\n'],
    ['status.sh', {}, 404, 'missing\n'],
    ['cookies.sh', {}, 200, 'cookies\n'],
    ['no-content-type.sh', {}, 200, '<html>not sniffed</html>\n'],
    ['header-latin1.sh', {}, 200, 'raw\n'],
    ['location-status.sh', {}, 301, 'moved\n'],
    ['exit-nonzero.sh', {}, 200, 'complete\n'],
    ['args.sh?-s', {}, 200, 'argc=0\nargs=\nquery=-s\n'],
    ['hello.sh', { method: 'HEAD' }, 200, ''],
    ['hello.sh', { scriptFilename: true }, 200, 'Hello, CGI\n'],
  ] as Array<[string, Ask, number, string]>)('C-19..C-27: %s %j: same status, fields and body from gatewire and fcgiwrap', (script, opts, status, body) =>
    withPeerLogs(async () => {
      const [g, f] = await both(`/cgi-bin/${script}`, opts);
      expect(g.status).toBe(status);
      expect(text(g)).toBe(body);
      expect(comparable(g)).toEqual(comparable(f));
    })(),
  );

  test('C-22/C-26/E-1: the fields compared above are the script\'s own (reason, repeated Set-Cookie, raw bytes)', withPeerLogs(async () => {
    const [status, cookies, latin1, redirect] = await Promise.all([
      ask('/cgi-bin/status.sh'),
      ask('/cgi-bin/cookies.sh'),
      ask('/cgi-bin/header-latin1.sh'),
      ask('/cgi-bin/location-local-body.sh'),
    ]);
    expect(status.reason).toBe('Nothing Here');
    expect(header(cookies, 'set-cookie')).toEqual(['a=1', 'b=2']);
    expect(header(cookies, 'x-dup')).toEqual(['one', 'two']);
    expect(header(latin1, 'x-raw')).toEqual(['caf\xe9 \xff']);
    expect(header(redirect, 'location')).toEqual(['/elsewhere']);
  }));

  test('C-9/C-10: a POST body (Content-Length and chunked, which nginx buffers) reaches echo.sh the same way', withPeerLogs(async () => {
    // 32 KiB: echoed through pipes that hold 64 KiB, so fcgiwrap's write-all-then-read works (see C-10 below).
    const body = Buffer.alloc(32 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    for (const chunked of [false, true]) {
      const [g, f] = await both('/cgi-bin/echo.sh', { body, chunked });
      expect(g.status).toBe(200);
      expect(header(g, 'x-content-length')).toEqual([String(body.length)]);
      expect(g.body.equals(body)).toBe(true);
      expect(comparable(g)).toEqual(comparable(f));
    }
  }));

  test('C-2..C-5: env.sh: the same meta-variables and values; gatewire adds SCRIPT_FILENAME, PATH_TRANSLATED, REMOTE_HOST and drops nginx\'s empty CONTENT_*', withPeerLogs(async () => {
    const [g, f] = await both('/cgi-bin/env.sh/extra/p?a=b&c', { headers: [['X-Test', 'yes'], ['Proxy', 'http://evil.example:8080']] });
    const ge = envOf(g);
    const fe = envOf(f);
    const gNames = cgiNames(ge);
    const fNames = cgiNames(fe);
    expect(gNames.filter((n) => !fNames.includes(n))).toEqual(['PATH_TRANSLATED', 'REMOTE_HOST', 'SCRIPT_FILENAME']);
    // nginx's fastcgi_params send CONTENT_LENGTH and CONTENT_TYPE empty on a GET: fcgiwrap
    // passes them on as set-but-empty; gatewire drops them (E-4, C-4: only with a body).
    expect(fNames.filter((n) => !gNames.includes(n) && n !== 'HTTP_PROXY')).toEqual(['CONTENT_LENGTH', 'CONTENT_TYPE']);
    expect([fe.get('CONTENT_LENGTH'), fe.get('CONTENT_TYPE')]).toEqual(['', '']);
    for (const name of gNames.filter((n) => fNames.includes(n) && n !== 'REMOTE_PORT')) expect([name, ge.get(name)]).toEqual([name, fe.get(name)]);
    expect(Object.fromEntries([...ge].filter(([k]) => ['SCRIPT_NAME', 'PATH_INFO', 'QUERY_STRING', 'REQUEST_URI', 'HTTP_X_TEST', 'GATEWAY_INTERFACE', 'DOCUMENT_ROOT'].includes(k)))).toEqual({
      SCRIPT_NAME: '/cgi-bin/env.sh',
      PATH_INFO: '/extra/p',
      QUERY_STRING: 'a=b&c',
      REQUEST_URI: '/cgi-bin/env.sh/extra/p?a=b&c',
      HTTP_X_TEST: 'yes',
      GATEWAY_INTERFACE: 'CGI/1.1',
      DOCUMENT_ROOT: FIXTURES_DIR,
    });
    expect(ge.get('SCRIPT_FILENAME')).toBe(path.join(CGI_DIR, 'env.sh'));
    expect(ge.get('PATH_TRANSLATED')).toBe(`${FIXTURES_DIR}/extra/p`);
    expect(ge.get('REMOTE_HOST')).toBe(ge.get('REMOTE_ADDR'));
    // httpoxy: nginx forwards the Proxy header as HTTP_PROXY (no `fastcgi_param HTTP_PROXY ""`
    // here). gatewire drops it (C-5); fcgiwrap hands it to the script (observed).
    expect(ge.has('HTTP_PROXY')).toBe(false);
    expect([undefined, 'http://evil.example:8080']).toContain(fe.get('HTTP_PROXY'));
    // C-3: fcgiwrap hands its own environment to every script; gatewire starts from scratch.
    expect(fe.get(SECRET)).toBe('fcgiwrap-leaks-this');
    expect(ge.has(SECRET)).toBe(false);
  }));

  // --- Where the bridges differ by design ----------------------------------------------

  test('C-23: a local redirect is re-dispatched inside gatewire (var.sh answers, as GET); through fcgiwrap nginx answers 302 with the path as is', withPeerLogs(async () => {
    // A POST to gatewire (its body is dropped); a GET to fcgiwrap, which may answer 502 to a
    // body the script never read (see C-11 below).
    const [g, f] = await Promise.all([ask('/cgi-bin/location-local.sh', { body: 'dropped' }), ask('/cgi-bin/location-local.sh', { backend: 'fcgiwrap' })]);
    expect(g.status).toBe(200);
    expect(text(g)).toBe('GET');
    expect(header(g, 'location')).toEqual([]);
    // nginx does no CGI local redirects: Location without Status is a 302 (fcgiwrap passes it).
    expect(f.status).toBe(302);
    expect(header(f, 'location')).toEqual(['/cgi-bin/var.sh?REQUEST_METHOD']);
  }));

  test('§5.3: Location: /x followed by a body is a 302 with that body from both; the reason phrase is gatewire\'s "Found", nginx\'s "Moved Temporarily"', withPeerLogs(async () => {
    const [g, f] = await both('/cgi-bin/location-local-body.sh');
    expect([g.status, g.reason]).toEqual([302, 'Found']);
    expect(header(g, 'location')).toEqual(['/elsewhere']);
    expect(text(g)).toBe('see /elsewhere\n');
    expect({ ...comparable(f), reason: 'Found' }).toEqual(comparable(g));
  }));

  test.each([
    ['location-absolute.sh', 'http://example.com/target?x=1'],
    ['location-netpath.sh', '//evil.example/'],
    ['location-outside.sh', '/outside/page?y=2'],
  ])('C-23: %s → 302 Found with the Location and no body from gatewire; nginx → fcgiwrap: 302 too', (script, location) =>
    withPeerLogs(async () => {
      const [g, f] = await both(`/cgi-bin/${script}`);
      expect([g.status, g.reason]).toEqual([302, 'Found']);
      expect(header(g, 'location')).toEqual([location]);
      expect(g.body.length).toBe(0);
      expect(f.status).toBe(302);
      expect(header(f, 'location')).toEqual([location]);
      // nginx says "Moved Temporarily" and keeps the script's body (location-absolute.sh's
      // "discarded body"); gatewire discards it, as Apache does.
      if (script === 'location-absolute.sh') expect(['discarded body\n', '']).toContain(text(f));
    })(),
  );

  test('C-25: the script\'s Content-Length is not trusted: gatewire delivers all 10 bytes; nginx trusts fcgiwrap\'s and cuts at 5', withPeerLogs(async () => {
    const [g, f] = await both('/cgi-bin/content-length-lie.sh');
    expect(text(g)).toBe('0123456789');
    expect(g.complete).toBe(true);
    expect(['01234', '0123456789']).toContain(text(f));
  }));

  test('C-1: a missing script is 404 from gatewire (fcgiwrap: 403); a file without the exec bit 403 from both', withPeerLogs(async () => {
    const [g, f] = await both('/cgi-bin/missing.sh');
    expect(g.status).toBe(404);
    expect([403, 404]).toContain(f.status);
    const [gn, fn] = await both('/cgi-bin/noexec.sh');
    expect(gn.status).toBe(403);
    expect(fn.status).toBe(403);
  }));

  test('C-2: Debian\'s fcgiwrap config (SCRIPT_FILENAME $document_root$fastcgi_script_name) with a PATH_INFO: gatewire walks the path, fcgiwrap 403', withPeerLogs(async () => {
    const [g, f] = await both('/cgi-bin/env.sh/x', { scriptFilename: true });
    expect(g.status).toBe(200);
    const env = envOf(g);
    expect([env.get('SCRIPT_NAME'), env.get('PATH_INFO'), env.get('SCRIPT_FILENAME')]).toEqual(['/cgi-bin/env.sh', '/x', path.join(CGI_DIR, 'env.sh')]);
    // fcgiwrap takes SCRIPT_FILENAME (…/env.sh/x) as the file: not there, 403.
    expect([200, 403]).toContain(f.status);
  }));

  // Malformed heads: gatewire answers 502 itself ("Bad Gateway\n" and the request id, text/plain, src/reply.ts). What the
  // fcgiwrap column records is nginx parsing fcgiwrap's pass-through: 502 = nginx refused the
  // head (its HTML page); other values are what reached the client anyway.
  test.each([
    ['no-colon.sh', 502],
    ['obs-fold.sh', 502],
    ['bad-status.sh?abc', 502],
    ['bad-status.sh?99', 502],
    ['long-line.sh', 502],
    ['many-headers.sh', 502],
    ['no-blank-line.sh', 502],
    ['no-output.sh', 502],
    ['bare-cr.sh', 200],
    ['status-line.sh', 200],
    ['bad-status.sh', 2000],
    ['bad-status.sh?103', 103],
    ['transfer-encoding.sh', 200],
    ['nph-te.sh', 200],
  ])('C-19..C-22/C-25/C-28 §5.3: %s → 502 from gatewire (nginx → fcgiwrap seen: %s)', (script, fcgiwrapSeen) =>
    withPeerLogs(async () => {
      const [g, f] = await both(`/cgi-bin/${script}`);
      expect(g.status).toBe(502);
      expect(header(g, 'content-type')).toEqual(['text/plain; charset=utf-8']);
      expect(text(g)).toMatch(/^Bad Gateway\nrequest id: \S+\n$/);
      expect([502, fcgiwrapSeen]).toContain(f.status);
      if (script === 'bare-cr.sh' && f.status === 200) {
        // The bare CR ended the field inside nginx: a second field reached the client (splitting).
        expect(header(f, 'x-bad')).toEqual(['a']);
      }
      if (script === 'transfer-encoding.sh' && f.status === 200) expect(text(f)).toBe('4\r\nbody\r\n0\r\n\r\n');
    })(),
  );

  test('C-28: an NPH script behind nginx: gatewire turns its status line into Status: 203 with the reason (Connection dropped); via fcgiwrap nginx skips the line', withPeerLogs(async () => {
    const [g, f] = await both('/cgi-bin/nph-hello.sh');
    expect([g.status, g.reason]).toEqual([203, 'Straight From The Script']);
    expect(header(g, 'x-nph')).toEqual(['yes']);
    expect(header(g, 'content-type')).toEqual(['text/plain']);
    expect(text(g)).toBe('nph body\nnph second chunk\n');
    // FastCGI has no raw path: the only status nginx accepts is a Status field. fcgiwrap sends
    // the HTTP status line on as if it were a field; nginx drops it and answers 200.
    expect([200, 203]).toContain(f.status);
    expect(text(f)).toBe('nph body\nnph second chunk\n');
  }));

  test('C-29: a script killed mid-body: through gatewire the client sees the truncation; through fcgiwrap the answer looks complete', withPeerLogs(async () => {
    const [g, f] = await both('/cgi-bin/crash.sh');
    expect(g.status).toBe(200);
    expect(text(g)).toBe('part of the body\n');
    // gatewire resets the FastCGI connection; nginx ends the chunked body without its terminator.
    expect(g.complete).toBe(false);
    expect(text(f)).toBe('part of the body\n');
    expect(typeof f.complete).toBe('boolean'); // observed: true (fcgiwrap ends the request normally)
  }));

  // --- Where fcgiwrap is wrong (each costs nginx's 3 s fastcgi_read_timeout on its side) -

  test('C-10 §5.3: 1 MiB written before reading a 1 MiB body: gatewire answers; fcgiwrap deadlocks until nginx gives up (504)', withPeerLogs(async () => {
    const body = Buffer.alloc(MiB, 'i');
    const gMark = newMark();
    const fMark = newMark();
    try {
      const [g, f] = await Promise.all([
        ask('/cgi-bin/write-before-read.sh', { body, mark: gMark }),
        ask('/cgi-bin/write-before-read.sh', { body, mark: fMark, backend: 'fcgiwrap' }),
      ]);
      expect(g.status).toBe(200);
      expect(g.complete).toBe(true);
      expect(g.body.length).toBe(MiB + '\nread=1048576\n'.length);
      expect(text(g).endsWith('\nread=1048576\n')).toBe(true);
      expect(await eventually(() => marked(gMark).length === 0)).toBe(true);
      // fcgiwrap writes the whole body to the script before reading its output: both block on
      // full pipes, for good. nginx answers 504; the script is still there, stuck.
      expect(f.status).toBe(504);
      expect(marked(fMark).length).toBeGreaterThan(0);
    } finally {
      killMarked(fMark);
    }
  }));

  test('C-10: a script echoing its 256 KiB body as it reads it (`head -c`): gatewire answers; fcgiwrap deadlocks once both pipes are full (504)', withPeerLogs(async () => {
    const body = Buffer.alloc(256 * 1024, 'e');
    const fMark = newMark();
    try {
      const [g, f] = await Promise.all([ask('/cgi-bin/echo.sh', { body }), ask('/cgi-bin/echo.sh', { body, mark: fMark, backend: 'fcgiwrap' })]);
      expect(g.status).toBe(200);
      expect(g.body.equals(body)).toBe(true);
      expect(f.status).toBe(504);
      expect(marked(fMark).length).toBeGreaterThan(0);
    } finally {
      killMarked(fMark);
    }
  }));

  test('C-11 §5.3: a script that answers without reading a 1 MiB POST body: gatewire sends its answer; fcgiwrap fails on EPIPE (502)', withPeerLogs(async () => {
    const body = Buffer.alloc(MiB, 'p');
    const [g, f] = await both('/cgi-bin/epipe.sh', { body });
    expect(g.status).toBe(200);
    expect(text(g)).toBe('not reading\n');
    // fcgiwrap writes the whole body before reading any output; the script is gone, the write
    // fails, and fcgiwrap answers 502 "An error occurred while reading the request" itself.
    expect([200, 502]).toContain(f.status); // observed: 502
  }));

  test('C-14 §5.3: a script that never answers: gatewire 504 at --cgi-timeout 1s and the group is killed; fcgiwrap runs it on after nginx\'s 504', withPeerLogs(async () => {
    const gMark = newMark();
    const fMark = newMark();
    try {
      const [g, f] = await Promise.all([
        ask('/cgi-bin/sleep.sh', { backend: 'strict', mark: gMark }),
        ask('/cgi-bin/sleep.sh', { backend: 'fcgiwrap', mark: fMark }),
      ]);
      // gatewire's own 504 (text/plain), not nginx's HTML page.
      expect(g.status).toBe(504);
      expect(text(g)).toMatch(/^Gateway Timeout\nrequest id: \S+\n$/);
      expect(await eventually(() => marked(gMark).length === 0)).toBe(true);
      expect(f.status).toBe(504);
      expect(text(f)).toContain('<center>nginx');
      // No timeout in fcgiwrap: `sleep 600` and its shell outlive nginx's answer.
      expect(marked(fMark).length).toBe(2);
    } finally {
      killMarked(fMark);
    }
  }));

  test('C-15 §5.3: `sleep 60 &` holding stdout: gatewire completes the response at exit + grace and kills the child; fcgiwrap waits for EOF (nginx 504)', withPeerLogs(async () => {
    const gMark = newMark();
    const fMark = newMark();
    try {
      const [g, f] = await Promise.all([
        ask('/cgi-bin/background.sh', { mark: gMark }),
        ask('/cgi-bin/background.sh', { backend: 'fcgiwrap', mark: fMark }),
      ]);
      expect(g.status).toBe(200);
      expect(g.complete).toBe(true);
      expect(text(g)).toMatch(/^background pid \d+\n$/);
      expect(await eventually(() => marked(gMark).length === 0)).toBe(true);
      expect([200, 504]).toContain(f.status); // observed: 504, the head never left fcgiwrap's buffer
      expect(marked(fMark).length).toBeGreaterThan(0); // the background child lives on
    } finally {
      killMarked(fMark);
    }
  }));

  test('C-15/C-14: with --cgi-idle-timeout (500 ms) shorter than the exit grace (1 s), a script that exited still gets its grace: the response completes', withPeerLogs(async () => {
    const mark = newMark();
    const a = await ask('/cgi-bin/background.sh', { backend: 'strict', mark });
    expect(a.status).toBe(200);
    expect(text(a)).toMatch(/^background pid \d+\n$/);
    expect(a.complete).toBe(true);
    expect(await eventually(() => marked(mark).length === 0)).toBe(true);
  }));

  test('C-30: the body streams through nginx from gatewire (a gate opened by the first line releases the second); fcgiwrap buffers it', withPeerLogs(async () => {
    const gate = (name: string): string => path.join(scratch.path, name);
    const run = (backend: Backend, file: string): Promise<{ body: string; gateOpened: boolean; status: number }> =>
      new Promise((resolve, reject) => {
        const socket = net.connect(nginx.port, '127.0.0.1');
        let raw = Buffer.alloc(0);
        let opened = false;
        socket.on('data', (c: Buffer) => {
          raw = Buffer.concat([raw, c]);
          // "second" is written only once the gate exists, and the gate opens only when
          // "first" reached this client: a buffering bridge never releases it (the script
          // gives up after 10 s; nginx after 3 s).
          if (!opened && raw.includes('first\n') && !raw.includes('second')) {
            opened = true;
            fs.writeFileSync(file, '');
          }
        });
        socket.on('error', reject);
        socket.on('close', () => {
          const a = parseAnswer(raw);
          resolve({ body: text(a), gateOpened: opened, status: a.status });
        });
        socket.write(requestBytes(`/cgi-bin/stream-gate.sh?${file}`, { backend }));
      });
    const [g, f] = await Promise.all([run('gatewire', gate('g')), run('fcgiwrap', gate('f'))]);
    expect(g).toEqual({ body: 'first\nsecond\n', gateOpened: true, status: 200 });
    expect(f.gateOpened).toBe(false);
    expect([200, 504]).toContain(f.status); // observed: 504 (libfcgi flushes only at the end)
  }));

  test('C-14: a client abort mid-response through nginx kills the script\'s process group (gatewire); fcgiwrap lets it run', withPeerLogs(async () => {
    /** Sends the request, waits for `until`, then drops the connection. */
    const abortWhen = (backend: Backend, mark: string, until: (received: Buffer) => boolean): Promise<Buffer> =>
      new Promise((resolve, reject) => {
        const socket = net.connect(nginx.port, '127.0.0.1');
        let raw = Buffer.alloc(0);
        let timer: NodeJS.Timeout | undefined;
        const check = (): void => {
          if (!until(raw)) return;
          clearInterval(timer);
          socket.destroy();
          resolve(raw);
        };
        socket.on('data', (c: Buffer) => {
          raw = Buffer.concat([raw, c]);
          check();
        });
        socket.on('error', reject);
        socket.on('connect', () => {
          timer = setInterval(check, 20);
        });
        socket.on('close', () => clearInterval(timer));
        socket.write(requestBytes('/cgi-bin/slow.sh', { backend, mark }));
      });
    const gMark = newMark();
    const fMark = newMark();
    try {
      // gatewire streams: the abort comes after the head and a few ticks reached the client.
      let running: number[] = [];
      const got = await abortWhen('gatewire', gMark, (raw) => raw.includes('tick 2\n') && (running = marked(gMark)).length > 0);
      expect(got.toString('latin1')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(running.length).toBeGreaterThan(0);
      expect(await eventually(() => marked(gMark).length === 0)).toBe(true);
      // fcgiwrap sends nothing before the end (buffered): abort once the script runs, and
      // check once nginx logged that it closed the upstream connection too.
      const closes = (): number => nginx.errorLog().split('client prematurely closed connection').length;
      const before = closes();
      await abortWhen('fcgiwrap', fMark, () => marked(fMark).length > 0);
      await eventually(() => closes() > before, 2000);
      expect(marked(fMark).length).toBeGreaterThan(0); // still running (slow.sh lasts ~10 s)
    } finally {
      killMarked(fMark);
    }
  }));

  // --- php-cgi ---------------------------------------------------------------------------

  describeWithPeers('php-cgi through --cgi-interpreters .php', ['php-cgi'], () => {
    test('C-1: hello.php (no exec bit) runs through php-cgi behind nginx: its Status: 201 and fields parsed, the POST body read; fcgiwrap 403', withPeerLogs(async () => {
      expect(fs.statSync(path.join(CGI_DIR, 'hello.php')).mode & 0o111).toBe(0);
      const [g, f] = await Promise.all([ask('/cgi-bin/hello.php?q=42', { body: 'abc' }), ask('/cgi-bin/hello.php?q=42', { backend: 'fcgiwrap' })]);
      expect([g.status, g.reason]).toEqual([201, 'Created']);
      expect(header(g, 'content-type')).toEqual(['text/plain; charset=utf-8']);
      expect(header(g, 'x-php-major')).toEqual([expect.stringMatching(/^\d+$/)]);
      expect(text(g)).toBe('method=POST redirect_status=200 script=/cgi-bin/hello.php q=42 body=abc\n');
      expect(f.status).toBe(403);
    }));

    test('C-1: through gatewire\'s HTTP front REDIRECT_STATUS comes from the .php preset alone (no nginx param)', withPeerLogs(async () => {
      const a = await ask('/cgi-bin/hello.php?q=1', { port: gw.httpPort });
      expect(a.status).toBe(201);
      expect(text(a)).toBe('method=GET redirect_status=200 script=/cgi-bin/hello.php q=1 body=\n');
    }));

    test('C-8 §5.3: ?-s reaches php-cgi as QUERY_STRING only, never argv (CVE-2012-1823): the script runs, its source is not shown', withPeerLogs(async () => {
      for (const query of ['-s', '-d+allow_url_include%3d1+-s']) {
        const a = await ask(`/cgi-bin/hello.php?${query}`);
        expect(a.status).toBe(201);
        expect(text(a)).toMatch(/^method=GET redirect_status=200 script=\/cgi-bin\/hello\.php q= body=\n$/);
        expect(text(a)).not.toContain('<?php');
      }
    }));
  });

  // --- gatewire's own HTTP front on the same cgi-bin -------------------------------------

  test('E-5/C-2: gatewire\'s --http front serves the same cgi-bin as nginx → gatewire: hello, POST echo, env.sh (apart from nginx\'s own params)', withPeerLogs(async () => {
    const body = 'name=value&x=1';
    const pairs: Array<[string, Ask]> = [
      ['/cgi-bin/hello.sh', {}],
      ['/cgi-bin/echo.sh', { body, headers: [['Content-Type', 'application/x-www-form-urlencoded']] }],
      ['/cgi-bin/echo.sh', { body, chunked: true }],
    ];
    for (const [target, opts] of pairs) {
      const [viaNginx, direct] = await Promise.all([ask(target, opts), ask(target, { ...opts, port: gw.httpPort })]);
      expect(viaNginx.status).toBe(200);
      expect(comparable(direct)).toEqual(comparable(viaNginx));
    }
    const target = '/cgi-bin/env.sh/extra?a=b';
    const [viaNginx, direct] = await Promise.all([ask(target, { body }), ask(target, { body, port: gw.httpPort })]);
    const n = envOf(viaNginx);
    const d = envOf(direct);
    // Only nginx's fastcgi_params add these; the HTTP front has no equivalent.
    expect(cgiNames(n).filter((k) => !d.has(k))).toEqual(['DOCUMENT_URI', 'FCGI_ROLE', 'REDIRECT_STATUS', 'REMOTE_USER']);
    expect(cgiNames(d).filter((k) => !n.has(k))).toEqual([]);
    // What differs is what each server knows of itself: its name, port, document root.
    const own = ['SERVER_SOFTWARE', 'SERVER_PORT', 'REMOTE_PORT', 'DOCUMENT_ROOT', 'PATH_TRANSLATED'];
    const differing = cgiNames(d).filter((k) => n.has(k) && n.get(k) !== d.get(k));
    expect(differing.filter((k) => !own.includes(k))).toEqual([]);
    expect(d.get('SERVER_SOFTWARE')).toMatch(/^gatewire\//);
    expect(n.get('SERVER_SOFTWARE')).toMatch(/^nginx\//);
    expect([d.get('DOCUMENT_ROOT'), n.get('DOCUMENT_ROOT')]).toEqual([CGI_DIR, FIXTURES_DIR]);
    expect(Object.fromEntries(['SCRIPT_NAME', 'PATH_INFO', 'QUERY_STRING', 'CONTENT_LENGTH', 'REQUEST_METHOD', 'HTTP_HOST', 'SERVER_NAME'].map((k) => [k, d.get(k)]))).toEqual({
      SCRIPT_NAME: '/cgi-bin/env.sh',
      PATH_INFO: '/extra',
      QUERY_STRING: 'a=b',
      CONTENT_LENGTH: String(body.length),
      REQUEST_METHOD: 'POST',
      HTTP_HOST: 'localhost',
      SERVER_NAME: 'localhost',
    });
  }));
});
