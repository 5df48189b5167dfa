/**
 * Black-box tests of the logs (CLI-9): the error log on stderr (--log-format, --log-level, app
 * diagnostics tagged with the request id) and the access log (--access-log FILE or -, Apache
 * combined or one JSON object per request), with client data that tries to break or forge lines.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import {
  type Proc,
  app,
  ensureBuilt,
  example,
  freePort,
  killAll,
  poll,
  portOf,
  oneLine,
  rawRequest,
  request,
  runCli,
  spawnCli,
  tempDir,
} from './fixtures/apps/cli-harness.js';

beforeAll(() => ensureBuilt(), 180_000);
afterEach(() => killAll());

async function serve(args: string[]): Promise<{ proc: Proc; port: number }> {
  const proc = spawnCli(['serve', ...args]);
  const [address] = await proc.listening(1);
  return { proc, port: portOf(address as string) };
}

const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');

/** Waits until FILE holds at least n lines and returns them. */
function fileLines(file: string, n: number): Promise<string[]> {
  return poll(`${n} line(s) in ${file}`, () => {
    const got = fs.existsSync(file) ? lines(fs.readFileSync(file, 'utf8')) : [];
    return got.length >= n ? got : undefined;
  });
}

const MONTH = '(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
const QUOTED = '"((?:[^"\\\\]|\\\\.)*)"';
/** Apache combined, every field anchored: a forged quote or line break cannot match it. */
const COMBINED = new RegExp(`^(\\S+) - (\\S+) \\[(0[1-9]|[12]\\d|3[01])/${MONTH}/(\\d{4}):([01]\\d|2[0-3]):([0-5]\\d):([0-5]\\d) \\+0000\\] ${QUOTED} (\\d{3}) (\\d+|-) ${QUOTED} ${QUOTED}$`);

interface Combined {
  remote: string;
  /** Apache's %u: REMOTE_USER from a web server, `-` without one. */
  user: string;
  request: string;
  status: number;
  bytes: string;
  referer: string;
  agent: string;
}

/** Reverses the access log's escaping: \" \\ \xHH. */
function unescape(s: string): string {
  return s.replace(/\\(x[0-9a-f]{2}|u[0-9a-f]{4}|.)/g, (_, e: string) => (e.length === 1 ? e : String.fromCharCode(parseInt(e.slice(1), 16))));
}

function parseCombined(line: string): Combined {
  const m = COMBINED.exec(line);
  if (m === null) throw new Error(`not an Apache combined line: ${JSON.stringify(line)}`);
  return { remote: m[1] as string, user: unescape(m[2] as string), request: unescape(m[8] as string), status: Number(m[9]), bytes: m[10] as string, referer: unescape(m[11] as string), agent: unescape(m[12] as string) };
}

interface AccessJson {
  id: string;
  remote_user: string | null;
  status: number;
  bytes: number;
  method: string;
  uri: string;
  remote_addr: string;
  referer: string | null;
  user_agent: string | null;
}

/** Hostile requests: quotes, backslashes, %0A, a forged tail, a tab and a latin1 byte. */
const HOSTILE: Array<{ target: string; agent: string; referer: string }> = [
  { target: '/a%0Ab"c\\d?x="y"', agent: 'ag"ent\\ "forged" 200', referer: 'http://r.example/"q"' },
  { target: '/x%0A127.0.0.1%20-%20-%20[01/Jan/2000:00:00:00%20+0000]%20"GET%20/forged%20HTTP/1.1"%20200%201', agent: 'tab\there \xe9t\xe9', referer: '" "-" "-' },
  { target: '/%0D%0A%22%5C?q=%0A', agent: '\\"\\', referer: '\\' },
];

function hostileBytes(h: { target: string; agent: string; referer: string }): Buffer {
  return Buffer.from(`GET ${h.target} HTTP/1.1\r\nHost: h\r\nUser-Agent: ${h.agent}\r\nReferer: ${h.referer}\r\nConnection: close\r\n\r\n`, 'latin1');
}

/** An SCGI request without a body: CONTENT_LENGTH first, then `vars` (latin1), as a web server sends it. */
function scgiBytes(vars: Record<string, string>): Buffer {
  const pairs = Object.entries({ CONTENT_LENGTH: '0', SCGI: '1', ...vars }).map(([k, v]) => `${k}\0${v}\0`).join('');
  const head = Buffer.from(pairs, 'latin1');
  return Buffer.concat([Buffer.from(`${head.length}:`), head, Buffer.from(',')]);
}

/** Sends a request and closes the connection after `afterMs`, or once `afterBytes` of the answer arrived. */
function hangUp(port: number, bytes: string, when: { afterMs?: number; afterBytes?: number }): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let got = 0;
    const close = (): void => {
      socket.destroy();
      resolve(got);
    };
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (c: Buffer) => {
      got += c.length;
      if (when.afterBytes !== undefined && got >= when.afterBytes) close();
    });
    socket.on('error', reject);
    if (when.afterMs !== undefined) setTimeout(close, when.afterMs);
  });
}

describe('CLI-9: the error log', () => {
  test('CLI-9: --log-format json makes every stderr line a JSON object', async () => {
    const { proc, port } = await serve([example('hello.mjs'), '--http', '127.0.0.1:0', '--log-format', 'json']);
    expect((await request({ port })).status).toBe(200);
    proc.signal('SIGTERM');
    expect((await proc.waitExit()).code).toBe(0);
    const all = lines(proc.stderr);
    expect(all.length).toBeGreaterThanOrEqual(2);
    const records = all.map((l) => JSON.parse(l) as { level: string; message: string; timestamp: string });
    for (const r of records) expect(r).toEqual(expect.objectContaining({ level: expect.any(String), message: expect.any(String), timestamp: expect.any(String) }));
    expect(records.map((r) => r.message)).toEqual(expect.arrayContaining([`listening: http on 127.0.0.1:${port}`, expect.stringMatching(/^SIGTERM: /)]));
  });

  test('CLI-9: --log-level error silences the listening info line (and every info line)', async () => {
    const port = await freePort();
    const proc = spawnCli(['serve', example('hello.mjs'), '--http', `127.0.0.1:${port}`, '--log-level', 'error']);
    const reply = await poll('the server to answer', async () => request({ port, timeoutMs: 2000 }).catch(() => undefined));
    expect(reply.status).toBe(200);
    proc.signal('SIGTERM');
    expect((await proc.waitExit()).code).toBe(0);
    expect(proc.stderr).toBe('');
  });

  test.each(['text', 'json'] as const)('CLI-9: an app writing to gatewire.errors produces a log line with its request id (%s)', async (format) => {
    const { proc, port } = await serve([app('errors.mjs'), '--http', '127.0.0.1:0', '--log-format', format]);
    const id = (await request({ port })).body;
    expect(id).toMatch(/^[0-9a-f]+-[0-9a-z]+$/);
    if (format === 'text') {
      const m = await proc.waitFor(/^.* error app: fixture diagnostic: something odd request_id=(\S+)$/m);
      expect(m[1]).toBe(id);
    } else {
      await proc.waitFor(/fixture diagnostic/);
      const record = lines(proc.stderr)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((r) => String(r.message).includes('fixture diagnostic'));
      expect(record).toMatchObject({ level: 'error', message: 'app: fixture diagnostic: something odd', request_id: id });
    }
  });

  test('CLI-9: app text with line breaks cannot start a forged error-log line (text format)', async () => {
    const { proc, port } = await serve([app('errors.mjs'), '--http', '127.0.0.1:0']);
    const forged = 'x\n2000-01-01T00:00:00.000Z info forged line\r\nend';
    const id = (await request({ port, path: `/?say=${encodeURIComponent(forged)}` })).body;
    await proc.waitFor(/fixture says: .*end request_id=\S+$/m);
    const said = lines(proc.stderr).filter((l) => l.includes('fixture says'));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/^\d{4}-\d\d-\d\dT\S+ error app: fixture says: x\\x0a2000-01-01T00:00:00\.000Z info forged line\\x0d\\x0aend request_id=(\S+)$/);
    expect(said[0]).toContain(`request_id=${id}`);
    expect(proc.stderr).not.toMatch(/^2000-01-01/m);
  });
});

describe('CLI-9: the access log', () => {
  test('CLI-9: --access-log FILE writes Apache combined lines', async () => {
    const file = path.join(tempDir(), 'access.log');
    const { port } = await serve([example('hello.mjs'), '--http', '127.0.0.1:0', '--access-log', file]);
    await request({ port, path: '/path?q', headers: { Referer: 'http://ref.example/page', 'User-Agent': 'agent/1.0' } });
    await request({ port, path: '/bare' });
    const got = await fileLines(file, 2);
    expect(got).toHaveLength(2);
    expect(got[0]).toMatch(new RegExp(`^127\\.0\\.0\\.1 - - \\[\\d{2}/${MONTH}/\\d{4}:\\d{2}:\\d{2}:\\d{2} \\+0000\\] "GET /path\\?q HTTP/1\\.1" 200 14 "http://ref\\.example/page" "agent/1\\.0"$`));
    expect(parseCombined(got[1] as string)).toEqual({ remote: '127.0.0.1', user: '-', request: 'GET /bare HTTP/1.1', status: 200, bytes: '14', referer: '-', agent: '-' });
  });

  test('CLI-9: a request refused by the server (404 outside the mount) is logged with its status', async () => {
    const file = path.join(tempDir(), 'access.log');
    const { port } = await serve([example('hello.mjs'), '--http', '127.0.0.1:0', '--access-log', file, '--mount', '/app']);
    expect((await request({ port, path: '/elsewhere' })).status).toBe(404);
    expect((await request({ port, path: '/app/x' })).status).toBe(200);
    const got = (await fileLines(file, 2)).map(parseCombined);
    expect(got.map((r) => [r.request, r.status])).toEqual([
      ['GET /elsewhere HTTP/1.1', 404],
      ['GET /app/x HTTP/1.1', 200],
    ]);
  });

  test('CLI-9: --access-log - writes the lines to stdout (and not to stderr)', async () => {
    const { proc, port } = await serve([example('hello.mjs'), '--http', '127.0.0.1:0', '--access-log', '-']);
    await request({ port, path: '/to-stdout', headers: { 'User-Agent': 'ua' } });
    await proc.waitFor(/GET \/to-stdout/, 'stdout');
    const got = lines(proc.stdout);
    expect(got).toHaveLength(1);
    expect(parseCombined(got[0] as string)).toMatchObject({ request: 'GET /to-stdout HTTP/1.1', status: 200, bytes: '14', agent: 'ua' });
    expect(proc.stderr).not.toContain('/to-stdout');
  });

  test('CLI-9: --log-format json --access-log FILE: one JSON object per request, with the id the app saw', async () => {
    const file = path.join(tempDir(), 'access.json');
    const { port } = await serve([app('errors.mjs'), '--http', '127.0.0.1:0', '--access-log', file, '--log-format', 'json']);
    const ids = [(await request({ port, path: '/one?a=1', headers: { 'User-Agent': 'ua1' } })).body, (await request({ port, path: '/two' })).body];
    const records = (await fileLines(file, 2)).map((l) => JSON.parse(l) as AccessJson);
    expect(records).toHaveLength(2);
    expect(records[0]).toMatchObject({ id: ids[0], status: 200, bytes: ids[0]?.length, method: 'GET', uri: '/one?a=1', remote_addr: '127.0.0.1', user_agent: 'ua1', referer: null });
    expect(records[1]).toMatchObject({ id: ids[1], status: 200, method: 'GET', uri: '/two', remote_addr: '127.0.0.1', user_agent: null });
    expect(ids[0]).not.toBe(ids[1]);
  });

  test('CLI-9: every access line is on disk when the process has exited after SIGTERM', async () => {
    const file = path.join(tempDir(), 'access.log');
    const { proc, port } = await serve([example('hello.mjs'), '--http', '127.0.0.1:0', '--access-log', file]);
    for (let i = 0; i < 20; i++) expect((await request({ port, path: `/n/${i}` })).status).toBe(200);
    proc.signal('SIGTERM');
    expect((await proc.waitExit()).code).toBe(0);
    const got = lines(fs.readFileSync(file, 'utf8')).map((l) => parseCombined(l).request);
    expect(got).toEqual(Array.from({ length: 20 }, (_, i) => `GET /n/${i} HTTP/1.1`));
  });

  test.each([
    ['a directory', (dir: string) => dir, /EISDIR/],
    ['a path in a missing folder', (dir: string) => path.join(dir, 'missing', 'access.log'), /ENOENT/],
  ])('CLI-9: --access-log naming %s → one line, exit 2 (nothing created)', async (_name, target, pattern) => {
    const dir = tempDir();
    const r = await runCli(['serve', example('hello.mjs'), '--http', '127.0.0.1:0', '--access-log', target(dir)]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(pattern);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test('CLI-9: hostile User-Agent, Referer and path cannot break or forge a combined line', async () => {
    const file = path.join(tempDir(), 'access.log');
    const { port } = await serve([example('hello.mjs'), '--http', '127.0.0.1:0', '--access-log', file]);
    for (const h of HOSTILE) expect((await rawRequest(port, hostileBytes(h))).toString('latin1')).toMatch(/^HTTP\/1\.1 200 /);
    await request({ port, path: '/last' });
    const got = await fileLines(file, HOSTILE.length + 1);
    expect(got).toHaveLength(HOSTILE.length + 1); // one line per request, whatever the client sent
    HOSTILE.forEach((h, i) => {
      const line = got[i] as string;
      expect(parseCombined(line)).toEqual({ remote: '127.0.0.1', user: '-', request: `GET ${h.target} HTTP/1.1`, status: 200, bytes: '14', referer: h.referer, agent: h.agent });
      // Every quote inside a field is backslashed: exactly six unescaped quotes delimit the fields.
      expect(line.replace(/\\./g, '').match(/"/g)).toHaveLength(6);
      expect(line).not.toMatch(/[\x00-\x1f\x7f-\xff]/);
    });
    expect(parseCombined(got[HOSTILE.length] as string).request).toBe('GET /last HTTP/1.1');
  });

  test('CLI-9: in json the hostile values survive JSON.parse, escaped as in the text format', async () => {
    const file = path.join(tempDir(), 'access.json');
    const { port } = await serve([example('hello.mjs'), '--http', '127.0.0.1:0', '--access-log', file, '--log-format', 'json']);
    for (const h of HOSTILE) expect((await rawRequest(port, hostileBytes(h))).toString('latin1')).toMatch(/^HTTP\/1\.1 200 /);
    const got = await fileLines(file, HOSTILE.length);
    expect(got).toHaveLength(HOSTILE.length);
    HOSTILE.forEach((h, i) => {
      const record = JSON.parse(got[i] as string) as AccessJson;
      expect(record).toMatchObject({ method: 'GET', status: 200, bytes: 14, remote_addr: '127.0.0.1' });
      // Header values are byte strings (latin1): escaped as the text format escapes them.
      expect([unescape(record.uri), unescape(record.user_agent as string), unescape(record.referer as string)]).toEqual([h.target, h.agent, h.referer]);
    });
  });

  test('CLI-9: HEAD is logged with the body bytes it sent (none), the GET with its own', async () => {
    const file = path.join(tempDir(), 'access.log');
    const json = path.join(tempDir(), 'access.json');
    const { port } = await serve([example('hello.mjs'), '--http', '127.0.0.1:0', '--access-log', file]);
    const { port: jsonPort } = await serve([example('hello.mjs'), '--http', '127.0.0.1:0', '--access-log', json, '--log-format', 'json']);
    for (const p of [port, jsonPort]) {
      expect((await request({ port: p, method: 'HEAD' })).headers['content-length']).toBe('14');
      expect((await request({ port: p })).body).toBe('Hello, World!\n');
    }
    expect((await fileLines(file, 2)).map(parseCombined).map((r) => [r.request, r.bytes])).toEqual([
      ['HEAD / HTTP/1.1', '-'],
      ['GET / HTTP/1.1', '14'],
    ]);
    expect((await fileLines(json, 2)).map((l) => JSON.parse(l) as AccessJson).map((r) => [r.method, r.bytes])).toEqual([
      ['HEAD', 0],
      ['GET', 14],
    ]);
    // A node handler (Express) is logged by its own path: the same for HEAD.
    const node = path.join(tempDir(), 'access.log');
    const { port: nodePort } = await serve([example('express.cjs'), '--http', '127.0.0.1:0', '--access-log', node]);
    expect((await request({ port: nodePort, method: 'HEAD' })).headers['content-length']).toBe('19');
    expect((await request({ port: nodePort })).body).toBe('Hello from Express\n');
    expect((await fileLines(node, 2)).map(parseCombined).map((r) => [r.request, r.bytes])).toEqual([
      ['HEAD / HTTP/1.1', '-'],
      ['GET / HTTP/1.1', '19'],
    ]);
  });

  test('CLI-9: a client that hangs up is logged 499 with the bytes sent: a CGI script still silent (was 502), a body cut off mid-way', async () => {
    const dir = tempDir();
    const cgiBin = path.join(dir, 'cgi-bin');
    fs.mkdirSync(cgiBin);
    fs.writeFileSync(path.join(cgiBin, 'silent.sh'), '#!/bin/sh\nsleep 5\nprintf "Content-Type: text/plain\\n\\nlate\\n"\n', { mode: 0o755 });
    const file = path.join(dir, 'access.log');
    const { port } = await serve([example('stream.mjs'), '--cgi-bin', cgiBin, '--http', '127.0.0.1:0', '--access-log', file]);
    await hangUp(port, 'GET /cgi-bin/silent.sh HTTP/1.1\r\nHost: h\r\n\r\n', { afterMs: 300 });
    const [silent] = (await fileLines(file, 1)).map(parseCombined);
    expect(silent).toMatchObject({ request: 'GET /cgi-bin/silent.sh HTTP/1.1', status: 499, bytes: '-' });
    const total = 256 * 65536;
    await hangUp(port, 'GET /?chunks=256&size=65536 HTTP/1.1\r\nHost: h\r\n\r\n', { afterBytes: 100_000 });
    const cut = parseCombined((await fileLines(file, 2))[1] as string);
    expect(cut).toMatchObject({ request: 'GET /?chunks=256&size=65536 HTTP/1.1', status: 499 });
    expect(Number(cut.bytes)).toBeGreaterThanOrEqual(100_000 - 200); // the head took a few of the first 100 000
    expect(Number(cut.bytes)).toBeLessThan(total);
  });

  test('CLI-9: latin-1 bytes in json are \\xHH inside the string, exactly as in the text format (not re-encoded as UTF-8)', async () => {
    const file = path.join(tempDir(), 'access.log');
    const json = path.join(tempDir(), 'access.json');
    const { port } = await serve([example('hello.mjs'), '--http', '127.0.0.1:0', '--access-log', file]);
    const { port: jsonPort } = await serve([example('hello.mjs'), '--http', '127.0.0.1:0', '--access-log', json, '--log-format', 'json']);
    // A latin-1 é (E9), a UTF-8 é (C3 A9) and a backslash, as a client sends them.
    const agent = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x63, 0x61, 0x66, 0xc3, 0xa9, 0x20, 0x5c, 0x78]);
    const bytes = Buffer.concat([Buffer.from('GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\nUser-Agent: '), agent, Buffer.from('\r\n\r\n')]);
    for (const p of [port, jsonPort]) expect((await rawRequest(p, bytes)).toString('latin1')).toMatch(/^HTTP\/1\.1 200 /);
    const escaped = 'caf\\xe9 caf\\xc3\\xa9 \\\\x';
    const [text] = await fileLines(file, 1);
    expect(text).toContain(`"${escaped}"`);
    await fileLines(json, 1);
    const raw = fs.readFileSync(json);
    expect([...raw].every((b) => b < 0x80)).toBe(true); // pure ASCII: no byte was re-encoded
    const record = JSON.parse(raw.toString('utf8')) as AccessJson;
    expect(record.user_agent).toBe(escaped);
    expect(unescape(record.user_agent as string)).toBe(agent.toString('latin1'));
  });

  test('CLI-9: the remote user is REMOTE_USER from the web server (%u, remote_user); "-" and null without one', async () => {
    const file = path.join(tempDir(), 'access.log');
    const json = path.join(tempDir(), 'access.json');
    const proc = spawnCli(['serve', example('hello.mjs'), '--scgi', '127.0.0.1:0', '--http', '127.0.0.1:0', '--access-log', file]);
    const { proc: jsonProc } = await serve([example('hello.mjs'), '--scgi', '127.0.0.1:0', '--access-log', json, '--log-format', 'json']);
    await proc.listening(2);
    const listener = (p: Proc, front: string): number => portOf(new RegExp(`listening: ${front} on ([^\\s"]+)`).exec(p.stderr)?.[1] as string);
    const scgiPort = (p: Proc): number => listener(p, 'scgi');
    const port = listener(proc, 'http');
    const vars = { REQUEST_METHOD: 'GET', REQUEST_URI: '/private', SERVER_PROTOCOL: 'HTTP/1.1', SERVER_NAME: 'h', SERVER_PORT: '80', REMOTE_ADDR: '192.0.2.7' };
    for (const p of [proc, jsonProc]) {
      expect((await rawRequest(scgiPort(p), scgiBytes({ ...vars, REMOTE_USER: 'al\xefce' }))).toString('latin1')).toMatch(/^Status: 200 /);
      expect((await rawRequest(scgiPort(p), scgiBytes(vars))).toString('latin1')).toMatch(/^Status: 200 /);
    }
    await request({ port, path: '/direct' });
    expect((await fileLines(file, 3)).map(parseCombined).map((r) => [r.remote, r.user, r.request])).toEqual([
      ['192.0.2.7', 'al\xefce', 'GET /private HTTP/1.1'],
      ['192.0.2.7', '-', 'GET /private HTTP/1.1'],
      ['127.0.0.1', '-', 'GET /direct HTTP/1.1'],
    ]);
    expect((await fileLines(file, 3))[0]).toContain(' - al\\xefce [');
    expect((await fileLines(json, 2)).map((l) => (JSON.parse(l) as AccessJson).remote_user)).toEqual(['al\\xefce', null]);
  });
});
