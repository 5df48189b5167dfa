/**
 * `gatewire compare`: the engine (src/compare/run.ts) against a real child gatewire, the CGI
 * program and, where installed, a real nginx; the environ table's reasons (explain.ts), the
 * framing read of each answer, the terminal view and the command line (`--json`, `--serve`,
 * usage errors). The browser side is test/compare-page.test.ts.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { requestFromOptions } from '../src/cli-compare.js';
import { CompareSession, DEFAULT_REQUEST, framingOf } from '../src/compare/run.js';
import { environRows } from '../src/compare/explain.js';
import { renderTerminal } from '../src/compare/terminal.js';
import type { CompareReport, ProtocolResult, WireField } from '../src/compare/types.js';
import { encodeEndRequest, encodeStdout } from '../protocols/fastcgi/encoder.js';
import { ensureBuilt, killAll, runCli, spawnCli, tempDir } from './fixtures/apps/cli-harness.js';
import { describeWithPeers } from './helpers/peers.js';

beforeAll(() => ensureBuilt(), 180_000);
afterAll(() => killAll());

/** Top-level fields tile the bytes: in order, no gap, no overlap, up to the end. */
function expectTiled(fields: WireField[], length: number): void {
  let at = 0;
  for (const f of fields) {
    expect(f.start).toBe(at);
    expect(f.end).toBeGreaterThan(f.start);
    at = f.end;
  }
  expect(at).toBe(length);
}

function byId(report: CompareReport, id: string): ProtocolResult {
  const found = report.protocols.find((p) => p.id === id);
  if (found === undefined) throw new Error(`no column ${id} in ${report.protocols.map((p) => p.id).join(', ')}`);
  return found;
}

describe('compare: the five protocols through gatewire', () => {
  let session: CompareSession;
  let report: CompareReport;

  beforeAll(async () => {
    session = await CompareSession.start();
    report = await session.run(DEFAULT_REQUEST, { samples: 5 });
  }, 60_000);
  afterAll(() => session?.close());

  test('every protocol answers 200 with its bytes, environ and costs', () => {
    expect(report.protocols.map((p) => p.id)).toEqual(['http', 'fastcgi', 'scgi', 'uwsgi', 'cgi']);
    for (const p of report.protocols) {
      expect({ id: p.id, error: p.error, status: p.status }).toEqual({ id: p.id, error: undefined, status: 200 });
      expect(p.requestBytes).toBe(p.wire.request.length / 2);
      expect(p.responseBytes).toBe(p.wire.response.length / 2);
      expect(p.environ.REQUEST_METHOD).toBe('POST');
      expect(p.environ.QUERY_STRING).toBe('lang=en&n=2');
      expect(p.environ.HTTP_COOKIE).toBe('session=8f2c; theme=dark');
      expect(p.latency.samples).toBeGreaterThan(0);
      expect(p.latency.p99).toBeGreaterThanOrEqual(p.latency.p50);
      expect(p.rps).toBeGreaterThan(0);
      expect(p.cpuUsPerRequest).toBeGreaterThan(0);
      expectTiled(p.annotations.request, p.requestBytes);
      expectTiled(p.annotations.response, p.responseBytes);
    }
    expect(report.load).toBeNull();
  });

  test('the wire bytes are each protocol\'s own framing of the same request', () => {
    const bytes = (id: string): Buffer => Buffer.from(byId(report, id).wire.request, 'hex');
    expect(bytes('http').toString('latin1')).toMatch(/^POST \/greet\/world\?lang=en&n=2 HTTP\/1\.1\r\n/);
    expect(bytes('http').toString('latin1').endsWith('\r\n\r\nname=gatewire&note=hello+world')).toBe(true);
    // FastCGI: version 1, FCGI_BEGIN_REQUEST (1), request id 1, content length 8.
    expect([...bytes('fastcgi').subarray(0, 6)]).toEqual([1, 1, 0, 1, 0, 8]);
    expect(bytes('scgi').toString('latin1')).toMatch(/^[0-9]+:CONTENT_LENGTH\x0030\x00/);
    // uwsgi: modifier1 0, datasize (LE16) = the vars block, modifier2 0.
    const uwsgi = bytes('uwsgi');
    expect(uwsgi[0]).toBe(0);
    expect(uwsgi[3]).toBe(0);
    expect(uwsgi.length).toBe(4 + uwsgi.readUInt16LE(1) + 30);
    const cgi = byId(report, 'cgi');
    expect(bytes('cgi').toString('latin1')).toContain('REQUEST_METHOD=POST\0');
    expect(bytes('cgi').toString('latin1').endsWith('\0name=gatewire&note=hello+world')).toBe(true);
    expect(cgi.overheadBytes).toBe(cgi.requestBytes - byId(report, 'http').requestBytes);
  });

  test('each answer\'s framing is named', () => {
    expect(byId(report, 'http').framing).toMatchObject({ status: 'status line', length: 'Content-Length' });
    expect(byId(report, 'fastcgi').framing).toMatchObject({ status: 'Status field', length: 'END_REQUEST' });
    expect(byId(report, 'scgi').framing.status).toBe('Status field');
    expect(byId(report, 'uwsgi').framing.status).toBe('status line');
    expect(byId(report, 'cgi').framing).toMatchObject({ status: 'Status field' });
  });

  test('the environ table marks what differs and says why', () => {
    const row = (name: string) => report.environ.find((r) => r.name === name);
    expect(row('SCGI')).toMatchObject({ differs: true, values: { http: null, fastcgi: null, scgi: '1', uwsgi: null, cgi: null } });
    expect(row('SCGI')?.note).toMatch(/SCGI spec requires/);
    expect(row('REQUEST_METHOD')).toMatchObject({ differs: false });
    expect(row('REQUEST_METHOD')?.note).toBeUndefined();
    expect(row('PATH')?.values.cgi).not.toBeNull();
    for (const r of report.environ) if (r.differs) expect(r.note).toEqual(expect.any(String));
  });

  test('a second run with another request reuses the session', async () => {
    const again = await session.run({ method: 'GET', path: '/other', query: '', headers: [['X-Trace', 'abc']], body: '' }, { samples: 2 });
    for (const p of again.protocols) {
      expect(p.error).toBeUndefined();
      expect(p.environ.REQUEST_METHOD).toBe('GET');
      expect(p.environ.HTTP_X_TRACE).toBe('abc');
    }
  }, 30_000);

  test('a header byte that is not UTF-8 reaches every app as sent, CGI included', async () => {
    const latin1 = await session.run({ method: 'GET', path: '/bytes', query: '', headers: [['X-Bytes', 'caf\xe9']], body: '' }, { samples: 1 });
    for (const p of latin1.protocols) {
      expect({ id: p.id, error: p.error, value: p.environ.HTTP_X_BYTES }).toEqual({ id: p.id, error: undefined, value: 'caf\xe9' });
    }
    expect(Buffer.from(byId(latin1, 'cgi').wire.request, 'hex').includes(Buffer.from('HTTP_X_BYTES=caf\xe9\0', 'latin1'))).toBe(true);
  }, 30_000);

  test('--load: a closed loop per protocol, with its timeline', async () => {
    const loaded = await session.run(DEFAULT_REQUEST, { loadMs: 600, concurrency: 2 });
    expect(loaded.load).toEqual({ durationMs: 600, concurrency: 2 });
    for (const p of loaded.protocols) {
      expect(p.error).toBeUndefined();
      expect(p.timeline.length).toBeGreaterThan(0);
      expect(p.latency.samples).toBeGreaterThan(0);
      expect(p.cpuUsPerRequest).toBeGreaterThan(0);
    }
  }, 60_000);

  test('the terminal view: the overview, the wire, the environ with numbered reasons', () => {
    const plain = renderTerminal(report, { width: 140 }).join('\n');
    expect(plain).not.toContain('\x1b[');
    for (const title of ['HTTP', 'FastCGI', 'SCGI', 'uwsgi', 'CGI']) expect(plain).toContain(`── ${title}: request`);
    expect(plain).toMatch(/SCGI \*[0-9]+/);
    expect(plain).toContain('Why they differ');
    const colored = renderTerminal(report, { color: true, width: 140, wire: false }).join('\n');
    expect(colored).toContain('\x1b[');
    expect(colored).not.toContain('── FastCGI: request');
    const lines = renderTerminal(report, { width: 100, wire: false });
    const table = lines.slice(lines.indexOf('What the app saw'), lines.indexOf('Why they differ'));
    expect(table.length).toBeGreaterThan(10);
    for (const line of table) expect(line.length).toBeLessThanOrEqual(100);
  });
});

describeWithPeers('compare --nginx: what a real nginx sends', ['nginx'], () => {
  let session: CompareSession;
  let report: CompareReport;

  beforeAll(async () => {
    session = await CompareSession.start({ nginx: true, protocols: ['http', 'fastcgi', 'scgi', 'uwsgi'] });
    report = await session.run(DEFAULT_REQUEST, { samples: 3 });
  }, 60_000);
  afterAll(() => session?.close());

  test('nginx adds its four columns, each answered', () => {
    expect(session.nginxProblem).toBeUndefined();
    expect(report.protocols.map((p) => p.id)).toEqual(['http', 'fastcgi', 'scgi', 'uwsgi', 'http-nginx', 'fastcgi-nginx', 'scgi-nginx', 'uwsgi-nginx']);
    for (const p of report.protocols) {
      expect({ id: p.id, status: p.status, error: p.error }).toEqual({ id: p.id, status: 200, error: undefined });
      expect(p.requestBytes).toBeGreaterThan(0);
      expect(p.environ.REQUEST_METHOD).toBe('POST');
    }
  });

  test("nginx's params files show: REDIRECT_STATUS, DOCUMENT_ROOT, no PATH_INFO over FastCGI", () => {
    const row = (name: string) => report.environ.find((r) => r.name === name);
    expect(row('REDIRECT_STATUS')?.values['fastcgi-nginx']).toBe('200');
    expect(row('REDIRECT_STATUS')?.note).toMatch(/force_redirect/);
    expect(row('DOCUMENT_ROOT')?.values['fastcgi-nginx']).toEqual(expect.any(String));
    expect(row('SERVER_SOFTWARE')?.values['fastcgi-nginx']).toMatch(/^nginx\//);
    // nginx's fastcgi_params has no PATH_INFO: the FastCGI front derived it, and the table says so.
    expect(row('PATH_INFO')?.values['fastcgi-nginx']).toBe('/greet/world');
    expect(row('PATH_INFO')?.derived).toContain('fastcgi-nginx');
    expect(row('PATH_INFO')?.note).toMatch(/fastcgi_params sends no PATH_INFO/);
    // What the wire carried: nginx's fastcgi_params has no PATH_INFO line.
    const sent = Buffer.from(byId(report, 'fastcgi-nginx').wire.request, 'hex').toString('latin1');
    expect(sent).toContain('REDIRECT_STATUS');
    expect(sent).not.toContain('PATH_INFO');
    // proxy_pass speaks HTTP/1.0 with Connection: close to its upstream.
    const proxied = Buffer.from(byId(report, 'http-nginx').wire.request, 'hex').toString('latin1');
    expect(proxied).toMatch(/^POST \/greet\/world\?lang=en&n=2 HTTP\/1\.0\r\n/);
    expect(proxied).toMatch(/\r\nConnection: close\r\n/i);
  });
});

describe('compare: pieces', () => {
  test('framingOf: status line or Status field, and how the body ends', () => {
    expect(framingOf('http', Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi'))).toMatchObject({ status: 'status line', statusText: 'HTTP/1.1 200 OK', length: 'Content-Length' });
    expect(framingOf('http', Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'))).toMatchObject({ length: 'chunked' });
    expect(framingOf('scgi', Buffer.from('Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno'))).toMatchObject({ status: 'Status field', statusText: 'Status: 404 Not Found', length: 'close' });
    expect(framingOf('cgi', Buffer.from('Content-Type: text/plain\n\nhi'))).toMatchObject({ status: 'implied', length: 'close' });
    const records = Buffer.concat([...encodeStdout(1, Buffer.from('Status: 201 Created\r\n\r\nmade')), ...encodeStdout(1, new Uint8Array(0)), encodeEndRequest(1, 0)]);
    const f = framingOf('fastcgi', records);
    expect(f).toMatchObject({ status: 'Status field', statusText: 'Status: 201 Created', length: 'END_REQUEST' });
    expect(f.description).toMatch(/appStatus 0/);
  });

  test('environRows: agreeing rows have no note, a difference always has one', () => {
    const base = (): Omit<ProtocolResult, 'name' | 'id' | 'environ'> => ({ via: 'gatewire', status: 200, requestBytes: 0, responseBytes: 0, overheadBytes: 0, wire: { request: '', response: '' }, annotations: { request: [], response: [] }, framing: framingOf('http', Buffer.alloc(0)), latency: { p50: 0, p99: 0, samples: 0 }, rps: 0, cpuUsPerRequest: 0, timeline: [] });
    const rows = environRows([
      { ...base(), name: 'http', id: 'http', environ: { A: '1', ODD: 'x' } },
      { ...base(), name: 'scgi', id: 'scgi', environ: { A: '1', SCGI: '1', ODD: 'y', PATH_INFO: '/p' }, sent: ['A', 'SCGI', 'ODD'] },
      { ...base(), name: 'uwsgi', id: 'uwsgi', environ: {}, error: 'refused' },
    ]);
    expect(rows.map((r) => r.name)).toEqual(['A', 'ODD', 'PATH_INFO', 'SCGI']);
    expect(rows[0]).toEqual({ name: 'A', values: { http: '1', scgi: '1', uwsgi: null }, differs: false, derived: [] });
    expect(rows[1]?.note).toMatch(/http: "x"; scgi: "y"/);
    // Not carried by the SCGI request, yet seen by its app: the front set it.
    expect(rows[2]).toMatchObject({ differs: true, derived: ['scgi'] });
    expect(rows[2]?.note).toMatch(/derived it from the request path for scgi/);
    expect(rows[3]?.note).toMatch(/SCGI=1/);
  });

  test('requestFromOptions: the default, --request, -H and -d', () => {
    expect(requestFromOptions({}, DEFAULT_REQUEST)).toBe(DEFAULT_REQUEST);
    expect(requestFromOptions({ request: 'PUT /a/b?x=1', header: ['X-A: 1'] }, DEFAULT_REQUEST)).toEqual({ method: 'PUT', path: '/a/b', query: 'x=1', headers: [['X-A', '1']], body: '' });
    expect(requestFromOptions({ data: [{ kind: 'data', value: 'a=1', seq: 0 }] }, DEFAULT_REQUEST)).toMatchObject({ method: 'POST', path: '/', body: 'a=1' });
    expect(requestFromOptions({ request: '/only-a-path' }, DEFAULT_REQUEST)).toMatchObject({ method: 'GET', path: '/only-a-path' });
    expect(() => requestFromOptions({ request: 'GET nopath' }, DEFAULT_REQUEST)).toThrow(/must start with \//);
    expect(() => requestFromOptions({ request: 'G@T /' }, DEFAULT_REQUEST)).toThrow(/invalid method/);
    expect(() => requestFromOptions({ header: ['no colon'] }, DEFAULT_REQUEST)).toThrow(/Name: value/);
  });
});

describe('gatewire compare (the command)', () => {
  test('--json writes every protocol with its wire, environ, byte counts and latency; exit 0', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'report.json');
    const out = await runCli(['compare', '--json', file, '--samples', '3', '--no-wire'], {}, 60_000);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toContain('gatewire compare: POST /greet/world?lang=en&n=2');
    const report = JSON.parse(fs.readFileSync(file, 'utf8')) as CompareReport;
    expect(report.protocols.map((p) => `${p.name}/${p.via}`)).toEqual(['http/gatewire', 'fastcgi/gatewire', 'scgi/gatewire', 'uwsgi/gatewire', 'cgi/gatewire']);
    for (const p of report.protocols) {
      expect(p.wire.request.length).toBeGreaterThan(0);
      expect(p.wire.response.length).toBeGreaterThan(0);
      expect(p.requestBytes).toBeGreaterThan(0);
      expect(Object.keys(p.environ).length).toBeGreaterThan(5);
      expect(p.latency.p50).toBeGreaterThan(0);
    }
  }, 90_000);

  test('usage errors exit 2 with one line; an app that cannot load too', async () => {
    const bad = await runCli(['compare', '--request', 'GET nopath'], {}, 20_000);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^gatewire: compare: --request: the target must start with \//);
    const noApp = await runCli(['compare', '/nonexistent/app.mjs', '--protocols', 'http'], {}, 20_000);
    expect(noApp.code).toBe(2);
    expect(noApp.stderr).toMatch(/gatewire: compare: .*app/);
    const proto = await runCli(['compare', '--protocols', 'http,gopher'], {}, 20_000);
    expect(proto.code).toBe(2);
    expect(proto.stderr).toMatch(/unknown protocol "gopher"/);
  }, 60_000);

  test('--serve: the live page runs a new comparison for an edited request', async () => {
    const proc = spawnCli(['compare', '--serve', '127.0.0.1:0', '--samples', '2', '--no-wire', '--protocols', 'http,scgi']);
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no live page address in: ${proc.stderr}`)), 30_000);
      const check = setInterval(() => {
        const m = /live page is on (http:\/\/[0-9.]+:[0-9]+\/)/.exec(proc.stderr);
        if (m !== null) {
          clearTimeout(timer);
          clearInterval(check);
          resolve(m[1] as string);
        }
      }, 50);
    });
    const post = (body: string): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = http.request(`${url}api/compare`, { method: 'POST', headers: { 'Content-Type': 'application/json' } }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        });
        req.on('error', reject);
        req.end(body);
      });
    const edited = await post(JSON.stringify({ method: 'GET', path: '/edited', query: 'q=1', headers: [['X-Edit', 'yes']], body: '' }));
    expect(edited.status).toBe(200);
    const report = JSON.parse(edited.body) as CompareReport;
    expect(report.protocols.map((p) => p.id)).toEqual(['http', 'scgi']);
    for (const p of report.protocols) {
      expect(p.environ.HTTP_X_EDIT).toBe('yes');
      expect(p.environ.QUERY_STRING).toBe('q=1');
    }
    proc.signal('SIGINT');
    const exit = await proc.waitExit(10_000);
    expect(exit.code).toBe(0);
  }, 60_000);
});
