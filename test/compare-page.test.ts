/**
 * The browser side of `gatewire compare` (src/compare/page.ts, assets/compare/): the `--html`
 * report opened from a file in a real headless Chromium (Debian's /usr/bin/chromium, driven by
 * playwright-core), the live page served by createComparePageApp through gatewire's own HTTP
 * front, and the live page's API called directly.
 *
 * The report is a fixture built here, not a real comparison (src/compare/run.ts makes those):
 * real request bytes from the codecs in protocols/, annotated by annotate.ts, and an
 * environ with the differences a real run shows (SCGI=1, nginx's missing PATH_INFO, ...). The
 * fixture is built from a CompareRequest, so the live page's fake run() can answer with a report
 * of the request the form submitted.
 *
 * Chromium missing: the browser suites are skipped with the reason in their title, or, under
 * GATEWIRE_REQUIRE_PEERS=1 (CI), fail: chromium is one of test/helpers/peers.ts's peers.
 * GATEWIRE_UPDATE_SCREENSHOT=1 writes the screenshot to docs/compare.png.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { encodeFastcgiRequest, encodeStdinEnd } from '../protocols/fastcgi/client.js';
import { encodeResponseEnd, encodeStdin, encodeStdout } from '../protocols/fastcgi/encoder.js';
import { encodeScgiRequest } from '../protocols/scgi/encoder.js';
import { encodeUwsgiRequest } from '../protocols/uwsgi/encoder.js';
import type { App } from '../src/app.js';
import { annotateWire } from '../src/compare/annotate.js';
import { createComparePageApp, renderReportHtml } from '../src/compare/page.js';
import type { CompareReport, CompareRequest, EnvironRow, ProtocolName, ProtocolResult, ResponseFraming, Via, WireField } from '../src/compare/types.js';
import { percentDecodePath } from '../src/environ.js';
import { inject } from '../src/inject.js';
import type { Logger } from '../src/logger.js';
import { serve, type RunningServer } from '../src/serve.js';
import { ensureBuilt, killAll, poll, runCli, spawnCli } from './fixtures/apps/cli-harness.js';
import { describeWithPeers, peer, peerPath } from './helpers/peers.js';

const ROOT = path.resolve(__dirname, '..');
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

// ---- the fixture: a CompareReport built from a request --------------------------------------

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');
/** Text → its UTF-8 bytes as a latin1 string (what the report's strings are). */
const bytesOf = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');
const concat = (parts: ReadonlyArray<Uint8Array>): Buffer => Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));

/** The CGI request: the environment block (`NAME=value` NUL each) and stdin; and the block's length. */
function encodeCgi(vars: ReadonlyArray<readonly [string, string]>, body: string): [Buffer, number] {
  const block = vars.map(([name, value]) => `${name}=${value}\0`).join('');
  return [latin1(block + body), block.length];
}

interface FixtureOptions {
  /** A load phase: every protocol gets a timeline. */
  load: boolean;
  /** The CGI column failed (status 0, an error). */
  cgiFails?: boolean;
  generatedAt?: string;
}

interface Column {
  name: ProtocolName;
  via: Via;
  id: string;
  serverPort: number;
  remotePort: number;
  latency: [p50: number, p99: number];
  rps: number;
  cpu: number;
}

const COLUMNS: Column[] = [
  { name: 'http', via: 'gatewire', id: 'http', serverPort: 41001, remotePort: 50612, latency: [0.118, 0.342], rps: 8940, cpu: 61 },
  { name: 'fastcgi', via: 'gatewire', id: 'fastcgi', serverPort: 41002, remotePort: 50614, latency: [0.141, 0.407], rps: 7420, cpu: 74 },
  { name: 'scgi', via: 'gatewire', id: 'scgi', serverPort: 41003, remotePort: 50618, latency: [0.129, 0.376], rps: 7810, cpu: 69 },
  { name: 'uwsgi', via: 'gatewire', id: 'uwsgi', serverPort: 41004, remotePort: 50622, latency: [0.131, 0.388], rps: 7690, cpu: 70 },
  { name: 'cgi', via: 'gatewire', id: 'cgi', serverPort: 41005, remotePort: 50626, latency: [2.93, 4.81], rps: 338, cpu: 1870 },
  { name: 'fastcgi', via: 'nginx', id: 'fastcgi-nginx', serverPort: 41006, remotePort: 50630, latency: [0.192, 0.521], rps: 5260, cpu: 108 },
];

/** Why a variable differs, in one line, as src/compare/explain.ts would say it. */
const NOTES: Record<string, string> = {
  SCGI: 'SCGI requests carry SCGI=1 (the SCGI spec requires it); no other protocol has it',
  PATH_INFO: "nginx's fastcgi_params sends no PATH_INFO: gatewire's front derived it from the request path for fastcgi-nginx.",
  CONTENT_LENGTH: 'SCGI always sends CONTENT_LENGTH (0 without a body); nginx sends it empty',
  CONTENT_TYPE: 'nginx sends CONTENT_TYPE even when the request has none (empty)',
  GATEWAY_INTERFACE: 'the CGI host and nginx set GATEWAY_INTERFACE (RFC 3875 §4.1.4); gatewire’s clients do not',
  SERVER_SOFTWARE: 'each server names itself',
  SERVER_PORT: 'each protocol is served on its own port',
  REMOTE_PORT: 'a new client connection per protocol, from a new source port',
  SERVER_NAME: 'nginx takes server_name from its config, gatewire the Host header',
  HTTP_HOST: 'nginx passes the Host its client sent',
  DOCUMENT_ROOT: "only nginx's fastcgi_params sets it",
  DOCUMENT_URI: "only nginx's fastcgi_params sets it",
  REQUEST_SCHEME: "only nginx's fastcgi_params sets it",
  SERVER_ADDR: "only nginx's fastcgi_params sets it",
};

const APP_BODY = (request: CompareRequest, pathInfo: string): string =>
  bytesOf(JSON.stringify({ ok: true, method: request.method, path: Buffer.from(pathInfo, 'latin1').toString('utf8'), query: request.query }));

function httpVarName(header: string): string {
  return `HTTP_${header.toUpperCase().replace(/-/g, '_')}`;
}

/** The CGI variables a client sends (or a server makes) for `request`, in wire order. */
function varsFor(col: Column, request: CompareRequest): Array<[string, string]> {
  const pathInfo = percentDecodePath(request.path) ?? request.path;
  const uri = request.query === '' ? request.path : `${request.path}?${request.query}`;
  const contentType = request.headers.find(([n]) => n.toLowerCase() === 'content-type')?.[1];
  const headerVars = request.headers.filter(([n]) => n.toLowerCase() !== 'content-type').map(([n, v]): [string, string] => [httpVarName(n), v]);
  const body = request.body.length;
  if (col.via === 'nginx') {
    return [
      ['QUERY_STRING', request.query],
      ['REQUEST_METHOD', request.method],
      ['CONTENT_TYPE', contentType ?? ''],
      ['CONTENT_LENGTH', body > 0 ? String(body) : ''],
      ['SCRIPT_NAME', pathInfo],
      ['REQUEST_URI', uri],
      ['DOCUMENT_URI', pathInfo],
      ['DOCUMENT_ROOT', '/srv/www'],
      ['SERVER_PROTOCOL', 'HTTP/1.1'],
      ['REQUEST_SCHEME', 'http'],
      ['GATEWAY_INTERFACE', 'CGI/1.1'],
      ['SERVER_SOFTWARE', 'nginx/1.22.1'],
      ['REMOTE_ADDR', '127.0.0.1'],
      ['REMOTE_PORT', String(col.remotePort)],
      ['SERVER_ADDR', '127.0.0.1'],
      ['SERVER_PORT', String(col.serverPort)],
      ['SERVER_NAME', 'localhost'],
      ['HTTP_HOST', `127.0.0.1:${col.serverPort}`],
      ...headerVars,
    ];
  }
  const vars: Array<[string, string]> = [
    ['REQUEST_METHOD', request.method],
    ['REQUEST_URI', uri],
    ['SCRIPT_NAME', ''],
    ['PATH_INFO', pathInfo],
    ['QUERY_STRING', request.query],
    ['SERVER_NAME', '127.0.0.1'],
    ['SERVER_PORT', String(col.serverPort)],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['SERVER_SOFTWARE', `gatewire/${VERSION}`],
    ['REMOTE_ADDR', '127.0.0.1'],
    ['REMOTE_PORT', String(col.remotePort)],
    ...(contentType === undefined ? [] : [['CONTENT_TYPE', contentType] as [string, string]]),
    ...(body > 0 && col.name !== 'scgi' ? [['CONTENT_LENGTH', String(body)] as [string, string]] : []),
    ['HTTP_HOST', '127.0.0.1:8080'],
    ...headerVars,
  ];
  if (col.name === 'cgi') vars.unshift(['GATEWAY_INTERFACE', 'CGI/1.1']);
  return vars;
}

function httpRequest(request: CompareRequest): Buffer {
  const uri = request.query === '' ? request.path : `${request.path}?${request.query}`;
  let head = `${request.method} ${uri} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n`;
  for (const [n, v] of request.headers) head += `${n}: ${v}\r\n`;
  if (request.body.length > 0) head += `Content-Length: ${request.body.length}\r\n`;
  return latin1(`${head}\r\n${request.body}`);
}

function cgiHead(status: 'status line' | 'Status field' | 'implied', body: string): string {
  const fields = `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
  if (status === 'status line') return `HTTP/1.1 200 OK\r\n${fields}${body}`;
  if (status === 'Status field') return `Status: 200 OK\r\n${fields}${body}`;
  return `Content-Type: application/json\r\n\r\n${body}`;
}

/** A load phase of 2 s in 100 ms slices: a short ramp-up, then the rate with some noise (seeded: the same each run). */
function timeline(col: Column): ProtocolResult['timeline'] {
  let seed = col.serverPort;
  const noise = (): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648 - 0.5;
  };
  return Array.from({ length: 20 }, (_, i) => {
    const ramp = i === 0 ? 0.72 : i === 1 ? 0.93 : 1;
    return { t: (i + 1) * 100, rps: Math.round(col.rps * ramp * (1 + 0.08 * noise())), p50: col.latency[0] * (1 + 0.15 * noise()) };
  });
}

function protocolResult(col: Column, request: CompareRequest, options: FixtureOptions, httpBytes: number): ProtocolResult {
  const vars = varsFor(col, request);
  const environ: Record<string, string> = Object.fromEntries(vars);
  const pathInfo = percentDecodePath(request.path) ?? request.path;
  if (col.via === 'nginx') {
    // nginx's SCRIPT_NAME is the whole path and it sends no PATH_INFO: the front repairs both (E-5.2).
    environ.SCRIPT_NAME = '';
    environ.PATH_INFO = pathInfo;
  }
  const appBody = APP_BODY(request, pathInfo);
  const bodyBytes = latin1(request.body);
  let wireRequest: Buffer;
  let envBytes: number | undefined;
  let wireResponse: Buffer;
  let framing: ResponseFraming;
  switch (col.name) {
    case 'http':
      wireRequest = httpRequest(request);
      wireResponse = latin1(cgiHead('status line', appBody));
      framing = { status: 'status line', statusText: 'HTTP/1.1 200 OK', length: 'Content-Length', description: `HTTP/1.1 200 OK status line, Content-Length: ${appBody.length}` };
      break;
    case 'fastcgi': {
      const [begin, params] = encodeFastcgiRequest(1, { keepConn: col.via === 'gatewire', params: vars });
      const stdin = bodyBytes.length > 0 ? encodeStdin(1, bodyBytes) : [];
      wireRequest = concat([begin, params, ...stdin, encodeStdinEnd(1)]);
      wireResponse = concat([...encodeStdout(1, latin1(cgiHead('Status field', appBody))), encodeResponseEnd(1, 0)]);
      framing = {
        status: 'Status field',
        statusText: 'Status: 200 OK',
        length: 'END_REQUEST',
        description: `Status: 200 OK field, Content-Length: ${appBody.length}, then FCGI_END_REQUEST (appStatus 0)`,
      };
      break;
    }
    case 'scgi': {
      const head = encodeScgiRequest(vars, bodyBytes.length);
      wireRequest = Buffer.concat([head, bodyBytes]);
      environ.CONTENT_LENGTH = String(bodyBytes.length);
      environ.SCGI = '1';
      wireResponse = latin1(cgiHead('Status field', appBody));
      framing = { status: 'Status field', statusText: 'Status: 200 OK', length: 'Content-Length', description: `Status: 200 OK field, Content-Length: ${appBody.length}; then the connection closes` };
      break;
    }
    case 'uwsgi':
      wireRequest = Buffer.concat([encodeUwsgiRequest(vars), bodyBytes]);
      wireResponse = latin1(cgiHead('status line', appBody));
      framing = { status: 'status line', statusText: 'HTTP/1.1 200 OK', length: 'Content-Length', description: `HTTP/1.1 200 OK status line, Content-Length: ${appBody.length}` };
      break;
    case 'cgi':
      [wireRequest, envBytes] = encodeCgi(vars, request.body);
      wireResponse = latin1(cgiHead('implied', appBody));
      framing = { status: 'implied', statusText: '', length: 'close', description: 'no Status field (200 implied); the body ends when the script exits' };
      break;
  }
  const requestFields = annotateWire(col.name, 'request', wireRequest, envBytes === undefined ? {} : { envBytes });
  const responseFields = annotateWire(col.name, 'response', wireResponse);
  const failed = col.name === 'cgi' && options.cgiFails === true;
  const [p50, p99] = col.latency;
  return {
    name: col.name,
    via: col.via,
    id: col.id,
    status: failed ? 0 : 200,
    requestBytes: wireRequest.length,
    responseBytes: failed ? 0 : wireResponse.length,
    overheadBytes: wireRequest.length - httpBytes,
    wire: { request: wireRequest.toString('hex'), response: failed ? '' : wireResponse.toString('hex') },
    annotations: { request: requestFields, response: failed ? [] : responseFields },
    framing,
    environ: failed ? {} : environ,
    ...(col.name === 'http' ? {} : { sent: col.name === 'scgi' ? ['CONTENT_LENGTH', 'SCGI', ...vars.map(([n]) => n)] : vars.map(([n]) => n) }),
    latency: { p50, p99, samples: options.load ? Math.round(col.rps * 2) : 200 },
    rps: col.rps,
    cpuUsPerRequest: col.cpu,
    timeline: options.load ? timeline(col) : [],
    ...(failed ? { error: 'cgi: the script exited with status 127 before it sent a head (sh: 1: ./app.cgi: not found)' } : {}),
  };
}

/** The rows as src/compare/explain.ts makes them: differences among the columns that answered, the variables a front set. */
function environRows(protocols: ProtocolResult[]): EnvironRow[] {
  const names = [...new Set(protocols.flatMap((p) => Object.keys(p.environ)))].sort();
  const answered = protocols.filter((p) => p.error === undefined);
  return names.map((name) => {
    const values: Record<string, string | null> = {};
    for (const p of protocols) values[p.id] = p.environ[name] ?? null;
    const differs = new Set(answered.map((p) => values[p.id])).size > 1;
    const derived = answered.filter((p) => p.sent !== undefined && p.environ[name] !== undefined && !p.sent.includes(name)).map((p) => p.id);
    const note = differs || derived.length > 0 ? (NOTES[name] ?? 'the protocols disagree') : undefined;
    return { name, values, differs, derived, ...(note === undefined ? {} : { note }) };
  });
}

function buildReport(request: CompareRequest, options: FixtureOptions): CompareReport {
  const httpBytes = httpRequest(request).length;
  const protocols = COLUMNS.map((col) => protocolResult(col, request, options, httpBytes));
  return {
    version: 1,
    generatedAt: options.generatedAt ?? '2026-03-14T09:41:27.000Z',
    gatewire: VERSION,
    app: 'examples/echo.mjs',
    request,
    load: options.load ? { durationMs: 2000, concurrency: 8 } : null,
    protocols,
    environ: environRows(protocols),
  };
}

const HERO_REQUEST: CompareRequest = {
  method: 'GET',
  path: '/hello/w%C3%B6rld',
  query: 'lang=en&n=3',
  headers: [
    ['User-Agent', 'gatewire-compare/0.1.0'],
    ['Accept', 'application/json'],
  ],
  body: '',
};

/** Strings that must stay text, and a body large enough to be cut at 4 KiB. */
const PROBE = '</script><img src="x" onerror="globalThis.__pwned=1"><!--';
const UPLOAD_REQUEST: CompareRequest = {
  method: 'POST',
  path: '/upload',
  query: '',
  headers: [
    ['Content-Type', 'application/json'],
    ['X-Probe', PROBE],
  ],
  body: JSON.stringify({ data: 'x'.repeat(6000) }),
};

/** The deepest field holding byte `i`, and its parent. */
function fieldAt(fields: WireField[], i: number, parent: WireField | null = null): { field: WireField; parent: WireField | null } | null {
  for (const f of fields) {
    if (i >= f.start && i < f.end) return fieldAt(f.children ?? [], i, f) ?? { field: f, parent };
  }
  return null;
}

// ---- the browser --------------------------------------------------------------------------

/** What the evaluate() callbacks touch in the page (the test's tsconfig has no DOM lib). */
interface PageGlobals {
  document: { getElementById(id: string): unknown; querySelectorAll(selector: string): { length: number } };
  Chart: { getChart(canvas: unknown): { config: { type: string }; data: { datasets: Array<{ label: string; data: unknown[] }> } } | undefined };
  __pwned?: unknown;
}

interface Watched {
  page: Page;
  context: BrowserContext;
  /** console.error lines and uncaught page errors. */
  errors: string[];
  /** Every URL the page requested. */
  requests: string[];
}


let browser: Browser | undefined;
let tmp = '';
const contexts: BrowserContext[] = [];

async function openPage(): Promise<Watched> {
  if (browser === undefined) {
    browser = await chromium.launch({ executablePath: peerPath('chromium'), headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  }
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, deviceScaleFactor: 1 });
  contexts.push(context);
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  const watched: Watched = { page, context, errors: [], requests: [] };
  page.on('console', (m) => {
    if (m.type() === 'error') watched.errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (err) => watched.errors.push(`page error: ${err.message}`));
  context.on('request', (r) => watched.requests.push(r.url()));
  return watched;
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gatewire-compare-page-'));
});

afterAll(async () => {
  await killAll();
  for (const c of contexts.splice(0)) await c.close().catch(() => undefined);
  await browser?.close().catch(() => undefined);
  browser = undefined;
  if (tmp !== '') fs.rmSync(tmp, { recursive: true, force: true });
}, 30_000);

// ---- renderReportHtml without a browser -----------------------------------------------------

describe('renderReportHtml', () => {
  const report = buildReport(UPLOAD_REQUEST, { load: false });

  test('one document: the CSS, Chart.js and report.js inline, the report as JSON no string can close', () => {
    const html = renderReportHtml(report);
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).toContain(fs.readFileSync(path.join(ROOT, 'assets/compare/report.css'), 'utf8').slice(0, 200));
    expect(html).toContain(fs.readFileSync(path.join(ROOT, 'assets/compare/report.js'), 'utf8').slice(0, 200));
    expect(html).toContain('Chart.js v');
    expect(html).not.toContain(PROBE);
    // Three scripts and one style, all inline: nothing to fetch.
    expect(html.match(/^<script\b[^>]*>/gm)).toEqual(['<script type="application/json" id="report-data">', '<script>', '<script>']);
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+rel="stylesheet"|@import|url\(\s*['"]?https?:/i);
    const json = /<script type="application\/json" id="report-data">([^<]*)<\/script>/.exec(html)?.[1];
    expect(json).toBeDefined();
    expect(JSON.parse(json as string)).toEqual(report);
  });

  test('a CSP that forbids every network load; connect-src self only for the live page', () => {
    const csp = (html: string): string => /<meta http-equiv="Content-Security-Policy" content="([^"]*)">/.exec(html)?.[1] ?? '';
    const file = csp(renderReportHtml(report));
    expect(file).toMatch(/^default-src 'none'; /);
    expect(file).toContain("connect-src 'none'");
    expect(file).not.toMatch(/https?:|\*/);
    expect(csp(renderReportHtml(report, { live: true }))).toContain("connect-src 'self'");
    expect(renderReportHtml(report, { live: true })).toContain('data-mode="live"');
  });

  test('the title is escaped', () => {
    expect(renderReportHtml(report, { title: '<b>"x" & y</b>' })).toContain('<title>&#60;b&#62;&#34;x&#34; &#38; y&#60;/b&#62;</title>');
    expect(renderReportHtml(report)).toContain('<title>gatewire compare · POST /upload</title>');
  });
});

// ---- the live page's API without a browser --------------------------------------------------

describe('createComparePageApp API', () => {
  const initial = buildReport(HERO_REQUEST, { load: false });
  const post = (app: App, body: string, headers: Array<[string, string]> = [['Content-Type', 'application/json']]) =>
    inject(app, { method: 'POST', url: '/api/compare', headers, body });
  const jsonOf = (body: Buffer): Record<string, unknown> => JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  const header = (headers: Array<[string, string]>, name: string): string | undefined => headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];

  test('GET / is the live page of the latest report; GET /api/report is that report', async () => {
    const app = createComparePageApp({ initial, run: (request) => Promise.resolve(buildReport(request, { load: false })) });
    const page = await inject(app, { url: '/' });
    expect(page.status).toBe(200);
    expect(header(page.headers, 'content-type')).toBe('text/html; charset=utf-8');
    expect(header(page.headers, 'content-security-policy')).toContain("default-src 'none'");
    expect(page.body.toString()).toContain('data-mode="live"');
    const head = await inject(app, { method: 'HEAD', url: '/' });
    expect([head.status, head.body.length]).toEqual([200, 0]);

    const before = await inject(app, { url: '/api/report' });
    expect(jsonOf(before.body)).toEqual(initial);
    const request: CompareRequest = { method: 'PUT', path: '/x', query: 'y=1', headers: [['X-A', 'b']], body: 'hi' };
    const ran = await post(app, JSON.stringify(request));
    expect(ran.status).toBe(200);
    expect(header(ran.headers, 'content-type')).toBe('application/json; charset=utf-8');
    expect(jsonOf(ran.body).request).toEqual(request);
    expect(jsonOf((await inject(app, { url: '/api/report' })).body).request).toEqual(request);
    expect((await inject(app, { url: '/' })).body.toString()).toContain('"path":"/x"');
  });

  test('a request that cannot be compared: 400, 413 or 415 with a JSON error, run() not called', async () => {
    const run = jest.fn((request: CompareRequest) => Promise.resolve(buildReport(request, { load: false })));
    const app = createComparePageApp({ initial, run });
    const ok = { method: 'GET', path: '/', query: '', headers: [], body: '' };
    const cases: Array<[string, number, RegExp, Array<[string, string]>?]> = [
      ['{"method": "GET", ', 400, /not JSON/],
      ['[1, 2]', 400, /JSON object/],
      [JSON.stringify({ ...ok, method: 'GE T' }), 400, /method must be a token/],
      [JSON.stringify({ ...ok, method: '' }), 400, /method must be a token/],
      [JSON.stringify({ ...ok, path: 'relative' }), 400, /path must start with "\/"/],
      [JSON.stringify({ ...ok, path: '/a b' }), 400, /path must not hold spaces/],
      [JSON.stringify({ ...ok, query: 'a\r\nb' }), 400, /query/],
      [JSON.stringify({ ...ok, headers: [['X-A']] }), 400, /pairs/],
      [JSON.stringify({ ...ok, headers: [['Bad Name', 'v']] }), 400, /not a token/],
      [JSON.stringify({ ...ok, headers: [['X-A', 'a\nb']] }), 400, /control char/],
      [JSON.stringify({ ...ok, body: '\u2603' }), 400, /latin1/],
      [JSON.stringify({ ...ok, body: 'x'.repeat(1024 * 1024 + 1) }), 400, /up to 1 MiB/],
      [JSON.stringify(ok), 415, /application\/json/, [['Content-Type', 'text/plain']]],
      ['x'.repeat(8 * 1024 * 1024 + 1), 413, /limit/],
    ];
    for (const [body, status, message, headers] of cases) {
      const res = await post(app, body, headers);
      expect({ body: body.slice(0, 60), status: res.status, type: header(res.headers, 'content-type') }).toEqual({ body: body.slice(0, 60), status, type: 'application/json; charset=utf-8' });
      expect(jsonOf(res.body).error).toMatch(message);
    }
    expect(run).not.toHaveBeenCalled();
    // A body of exactly 1 MiB is fine.
    expect((await post(app, JSON.stringify({ ...ok, method: 'POST', body: 'y'.repeat(1024 * 1024) }))).status).toBe(200);
  });

  test('405 with Allow for a wrong method, 404 elsewhere', async () => {
    const app = createComparePageApp({ initial, run: () => Promise.reject(new Error('not called')) });
    const getCompare = await inject(app, { url: '/api/compare' });
    expect([getCompare.status, header(getCompare.headers, 'allow')]).toEqual([405, 'POST']);
    const postPage = await inject(app, { method: 'POST', url: '/', body: '{}' });
    expect([postPage.status, header(postPage.headers, 'allow')]).toEqual([405, 'GET, HEAD']);
    const deleteReport = await inject(app, { method: 'DELETE', url: '/api/report' });
    expect([deleteReport.status, header(deleteReport.headers, 'allow')]).toEqual([405, 'GET, HEAD']);
    const missing = await inject(app, { url: '/favicon.ico' });
    expect(missing.status).toBe(404);
    expect(jsonOf(missing.body).error).toMatch(/no \/favicon\.ico here/);
  });

  test('a run that throws: 500 with its message, one log line, the latest report kept', async () => {
    const lines: string[] = [];
    const logger: Logger = {
      error: (m) => lines.push(m),
      warn: () => undefined,
      info: () => undefined,
      debug: () => undefined,
      debugEnabled: false,
      access: null,
      close: () => Promise.resolve(),
    };
    const app = createComparePageApp({ initial, run: () => Promise.reject(new Error('nginx did not start: port 41006 in use')), logger });
    const res = await post(app, JSON.stringify({ method: 'GET', path: '/p', query: '', headers: [], body: '' }));
    expect(res.status).toBe(500);
    expect(jsonOf(res.body)).toEqual({ error: 'the comparison failed: nginx did not start: port 41006 in use' });
    expect(lines).toEqual(['compare: the comparison of GET /p failed: nginx did not start: port 41006 in use']);
    expect(jsonOf((await inject(app, { url: '/api/report' })).body)).toEqual(initial);
  });

  test('one comparison at a time: concurrent POSTs wait their turn, in order; a failure does not block the next', async () => {
    let active = 0;
    let most = 0;
    const order: string[] = [];
    const app = createComparePageApp({
      initial,
      run: async (request) => {
        active++;
        most = Math.max(most, active);
        order.push(`start ${request.path}`);
        await new Promise((r) => setTimeout(r, 30));
        order.push(`end ${request.path}`);
        active--;
        if (request.path === '/fail') throw new Error('failed');
        return buildReport(request, { load: false });
      },
    });
    const body = (p: string): string => JSON.stringify({ method: 'GET', path: p, query: '', headers: [], body: '' });
    const statuses = await Promise.all(['/a', '/fail', '/c'].map((p) => post(app, body(p)).then((r) => r.status)));
    expect(statuses).toEqual([200, 500, 200]);
    expect(most).toBe(1);
    expect(order).toEqual(['start /a', 'end /a', 'start /fail', 'end /fail', 'start /c', 'end /c']);
  });
});

// ---- the --html page in Chromium ------------------------------------------------------------

describeWithPeers('the --html page in Chromium', ['chromium'], () => {
  const hero = buildReport(HERO_REQUEST, { load: true });

  async function openReport(report: CompareReport, name: string): Promise<Watched & { url: string }> {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, renderReportHtml(report));
    const w = await openPage();
    const url = `file://${file}`;
    await w.page.goto(url, { waitUntil: 'load', timeout: 15_000 });
    await w.page.waitForSelector('#columns .col');
    return { ...w, url };
  }

  function offPage(w: Watched & { url: string }): string[] {
    return w.requests.filter((u) => u !== w.url && !u.startsWith('data:'));
  }

  test('one column per protocol, with its numbers, framing and hex views', async () => {
    const w = await openReport(hero, 'hero.html');
    const { page } = w;
    expect(await page.locator('#columns > .col').evaluateAll((cols) => cols.map((c) => (c as unknown as { getAttribute(n: string): string }).getAttribute('data-id')))).toEqual(
      hero.protocols.map((p) => p.id),
    );
    const nginx = page.locator('.col[data-id="fastcgi-nginx"]');
    expect(await nginx.locator('.col-head h2').textContent()).toBe('FastCGI · via nginx');
    expect(await nginx.locator('.status').textContent()).toBe('200');
    const p = hero.protocols.find((x) => x.id === 'fastcgi-nginx') as ProtocolResult;
    expect(await nginx.locator('.framing-text').textContent()).toBe(p.framing.description);
    const stats = await nginx.locator('.stats').textContent();
    expect(stats).toContain(`${p.requestBytes.toLocaleString('en-US')} B`);
    expect(stats).toContain(`+${p.overheadBytes} B vs HTTP`);
    expect(stats).toContain('p50 192 µs');
    expect(stats).toContain('p99 521 µs');
    expect(stats).toContain('5,260 rps');
    expect(stats).toContain('108 µs');
    expect(await page.locator('.col[data-id="http"] .delta').textContent()).toBe('baseline');
    // 16 bytes a row, an ASCII column, every byte shown (small requests).
    const rows = nginx.locator('.wire').first().locator('.hex .row');
    expect(await rows.count()).toBe(Math.ceil(p.requestBytes / 16));
    expect(await nginx.locator('.wire').first().locator('.hex .b').count()).toBe(p.requestBytes);
    expect(await rows.first().locator('.hx .b').allTextContents()).toEqual(p.wire.request.slice(0, 32).match(/../g));
    expect(await nginx.locator('.wire').first().locator('.note').count()).toBe(0);
    // The header: request, app, version, date.
    expect(await page.locator('.request-line').textContent()).toBe('GET /hello/w%C3%B6rld?lang=en&n=3');
    const meta = await page.locator('.top .meta').textContent();
    expect(meta).toContain('examples/echo.mjs');
    expect(meta).toContain(VERSION);
    expect(meta).toContain('2026-03-14 09:41 UTC');
    expect(await page.locator('.req-headers .chip').allTextContents()).toEqual(['User-Agent: gatewire-compare/0.1.0', 'Accept: application/json']);
    expect(w.errors).toEqual([]);
    expect(offPage(w)).toEqual([]);
  }, 60_000);

  test('the environ table marks the differing rows with their notes; "only differences" filters', async () => {
    const w = await openReport(hero, 'hero.html');
    const { page } = w;
    const table = page.locator('#environ-table');
    expect(await table.locator('thead th[data-id]').count()).toBe(6);
    expect(await table.locator('tbody tr').count()).toBe(hero.environ.length);
    const differing = hero.environ.filter((r) => r.differs);
    expect(differing.map((r) => r.name)).toEqual(expect.arrayContaining(['SCGI', 'DOCUMENT_ROOT', 'CONTENT_LENGTH', 'GATEWAY_INTERFACE']));
    expect(await table.locator('tbody tr.differs').count()).toBe(differing.length);
    const scgi = table.locator('tr[data-name="SCGI"]');
    expect(await scgi.locator('.mark').textContent()).toBe('≠');
    expect(await scgi.locator('.note').textContent()).toBe(NOTES['SCGI']);
    expect(await scgi.locator('td[data-id="scgi"]').textContent()).toBe('1');
    expect(await scgi.locator('td[data-id="http"]').textContent()).toBe('(absent)');
    expect(await scgi.locator('td[data-id="scgi"]').getAttribute('class')).toContain('cell-diff');
    const root = table.locator('tr[data-name="DOCUMENT_ROOT"]');
    expect(await root.locator('td[data-id="http"] .absent').textContent()).toBe('(absent)');
    expect(await root.locator('td[data-id="fastcgi-nginx"]').textContent()).toBe('/srv/www');
    expect(await root.locator('td[data-id="fastcgi-nginx"]').getAttribute('class')).toContain('cell-diff');
    expect(await root.locator('td[data-id="fastcgi"]').getAttribute('class')).not.toContain('cell-diff');
    expect(await root.locator('.note').textContent()).toBe(NOTES['DOCUMENT_ROOT']);
    expect(await table.locator('tr[data-name="CONTENT_LENGTH"] td[data-id="fastcgi-nginx"]').textContent()).toBe('(empty)');
    // PATH_INFO agrees (the UTF-8 bytes, decoded for reading); nginx sent none, so its front's value is marked and explained.
    const pathInfo = table.locator('tr[data-name="PATH_INFO"]');
    expect(await pathInfo.getAttribute('class')).not.toContain('differs');
    expect(await pathInfo.locator('td[data-id="http"]').textContent()).toBe('/hello/wörld');
    expect(await pathInfo.locator('td[data-id="fastcgi-nginx"]').textContent()).toBe('/hello/wörld+');
    expect(await pathInfo.locator('td[data-id="fastcgi-nginx"]').getAttribute('class')).toContain('derived');
    expect(await pathInfo.locator('td.derived').count()).toBe(1);
    expect(await pathInfo.locator('td.cell-diff').count()).toBe(0);
    expect(await pathInfo.locator('.note').textContent()).toBe(NOTES['PATH_INFO']);
    expect(await page.locator('.environ .table-foot').textContent()).toContain('set by gatewire’s front');
    const method = table.locator('tr[data-name="REQUEST_METHOD"]');
    expect(await method.getAttribute('class')).not.toContain('differs');
    expect(await method.locator('.note').count()).toBe(0);

    expect(await table.locator('tbody tr:visible').count()).toBe(hero.environ.length);
    await page.locator('#only-diff').check();
    expect(await table.locator('tbody tr:visible').count()).toBe(differing.length);
    expect(await method.isVisible()).toBe(false);
    await page.locator('#only-diff').uncheck();
    expect(await table.locator('tbody tr:visible').count()).toBe(hero.environ.length);
    expect(w.errors).toEqual([]);
  }, 60_000);

  test('charts: one dataset per protocol; a line chart of the timelines, a bar chart without them', async () => {
    const charts = async (page: Page) =>
      page.evaluate(() => {
        const g = globalThis as unknown as PageGlobals;
        return ['latency-chart', 'throughput-chart'].map((id) => {
          const chart = g.Chart.getChart(g.document.getElementById(id));
          return chart === undefined ? null : { type: chart.config.type, datasets: chart.data.datasets.length, labels: chart.data.datasets.map((d) => d.label), points: chart.data.datasets[0]?.data.length };
        });
      });
    const labels = ['HTTP', 'FastCGI', 'SCGI', 'uwsgi', 'CGI', 'FastCGI · nginx'];
    const timed = await openReport(hero, 'hero.html');
    expect(await charts(timed.page)).toEqual([
      { type: 'bar', datasets: 6, labels, points: 2 },
      { type: 'line', datasets: 6, labels, points: 20 },
    ]);
    const plain = await openReport(buildReport(HERO_REQUEST, { load: false }), 'plain.html');
    expect(await charts(plain.page)).toEqual([
      { type: 'bar', datasets: 6, labels, points: 2 },
      { type: 'bar', datasets: 6, labels, points: 1 },
    ]);
    expect([...timed.errors, ...plain.errors]).toEqual([]);
  }, 60_000);

  test('hovering a byte highlights its field and its parent and fills the info line', async () => {
    const w = await openReport(hero, 'hero.html');
    const { page } = w;
    const p = hero.protocols.find((x) => x.id === 'fastcgi') as ProtocolResult;
    const wire = page.locator('.col[data-id="fastcgi"] .wire').first();
    // A byte in the value of the first PARAMS pair (REQUEST_METHOD=GET): BEGIN_REQUEST is 16 bytes, then a record header.
    const byte = 16 + 8 + 2 + 'REQUEST_METHOD'.length + 1;
    const hit = fieldAt(p.annotations.request, byte);
    expect(hit?.field.label).toBe('value');
    expect(hit?.parent?.label).toBe('REQUEST_METHOD');
    expect(await wire.locator('.info').textContent()).toContain('Hover a byte');
    await wire.locator('.field-list > summary').click(); // open the field list
    await wire.locator(`.hex .b[data-i="${byte}"]`).hover();
    const field = hit?.field as WireField;
    const parent = hit?.parent as WireField;
    expect(await wire.locator('.info .info-label').textContent()).toBe('value');
    expect(await wire.locator('.info .info-parent').textContent()).toBe('REQUEST_METHOD ›');
    expect(await wire.locator('.info .info-detail').textContent()).toBe('GET');
    expect(await wire.locator('.info .info-range').textContent()).toBe(`bytes ${field.start}–${field.end - 1} (${field.end - field.start})`);
    expect(await wire.locator('.hex .b.hl').evaluateAll((els) => els.map((e) => Number((e as unknown as { getAttribute(n: string): string }).getAttribute('data-i'))))).toEqual(
      Array.from({ length: field.end - field.start }, (_, i) => field.start + i),
    );
    expect(await wire.locator('.hex .c.hl').count()).toBe(field.end - field.start); // the ASCII column too
    expect(await wire.locator('.hex .b.hl-parent').count()).toBe(parent.end - parent.start);
    // The field list: its item is marked, and hovering another item moves the highlight.
    expect(await wire.locator('li.field.active > .field-line .field-label').textContent()).toBe('value');
    const header = p.annotations.request[0]?.children?.[0] as WireField;
    await wire.locator('li.field').first().locator('li.field').first().locator('.field-line').hover();
    expect(await wire.locator('.info .info-label').textContent()).toBe(header.label);
    expect(await wire.locator('.hex .b.hl').count()).toBe(header.end - header.start);
    // Leaving the bytes clears it.
    await page.mouse.move(5, 5);
    expect(await wire.locator('.hex .hl').count()).toBe(0);
    expect(w.errors).toEqual([]);
  }, 60_000);

  test('report strings stay text; large wires stop at 4 KiB with a note; a failed protocol shows its error', async () => {
    const report = buildReport(UPLOAD_REQUEST, { load: false, cgiFails: true });
    const w = await openReport(report, 'upload.html');
    const { page } = w;
    expect(await page.locator('.req-headers .chip').nth(1).textContent()).toBe(`X-Probe: ${PROBE}`);
    expect(await page.locator('tr[data-name="HTTP_X_PROBE"] td[data-id="http"]').textContent()).toBe(PROBE);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).__pwned)).toBeUndefined();
    const http = report.protocols[0] as ProtocolResult;
    expect(http.requestBytes).toBeGreaterThan(4096);
    const wire = page.locator('.col[data-id="http"] .wire').first();
    expect(await wire.locator('.hex .b').count()).toBe(4096);
    expect(await wire.locator('.note').textContent()).toBe(`The first 4,096 B are shown; ${(http.requestBytes - 4096).toLocaleString('en-US')} B more were left out.`);
    const cgi = page.locator('.col[data-id="cgi"]');
    expect(await cgi.locator('.status').textContent()).toBe('no answer');
    expect(await cgi.locator('.error').textContent()).toContain('exited with status 127');
    // Its environ cells say it had no answer, and are not differences.
    const method = page.locator('tr[data-name="REQUEST_METHOD"]');
    expect(await method.getAttribute('class')).not.toContain('differs');
    expect(await method.locator('td[data-id="cgi"]').textContent()).toBe('(no answer)');
    expect(await method.locator('td.cell-diff').count()).toBe(0);
    expect(w.errors).toEqual([]);
    expect(offPage(w)).toEqual([]);
  }, 60_000);

});

// ---- a real comparison: the command's own --html and --serve -------------------------------

describeWithPeers('a real comparison in Chromium: gatewire compare --html and --serve', ['chromium'], () => {
  const nginx = peer('nginx').path !== undefined;
  beforeAll(() => ensureBuilt(), 180_000);

  test('the --html report of a real run (with nginx when installed, under load): every column, the marked differences, one series per protocol; the screenshot', async () => {
    const file = path.join(tmp, 'real.html');
    const args = ['compare', '--html', file, '--no-wire', '--load', '1s', '--concurrency', '4', ...(nginx ? ['--nginx'] : [])];
    const out = await runCli(args, {}, 120_000);
    expect(out.code).toBe(0);
    const w = await openPage();
    const { page } = w;
    const url = pathToFileURL(file).href;
    await page.goto(url, { waitUntil: 'load', timeout: 15_000 });
    await page.waitForSelector('#columns .col');
    const ids = ['http', 'fastcgi', 'scgi', 'uwsgi', 'cgi', ...(nginx ? ['http-nginx', 'fastcgi-nginx', 'scgi-nginx', 'uwsgi-nginx'] : [])];
    expect(await page.locator('#columns > .col').evaluateAll((cols) => cols.map((c) => c.getAttribute('data-id')))).toEqual(ids);
    // SCGI=1 is the one variable only SCGI has: marked, with its reason.
    const scgi = page.locator('tr[data-name="SCGI"]');
    expect(await scgi.getAttribute('class')).toContain('differs');
    expect(await page.locator('#environ-table').textContent()).toContain('SCGI spec requires');
    if (nginx) expect(await page.locator('tr[data-name="REDIRECT_STATUS"]').getAttribute('class')).toContain('differs');
    const series = await page.evaluate(() => {
      const g = globalThis as unknown as PageGlobals;
      const count = (id: string): number | undefined => g.Chart.getChart(g.document.getElementById(id))?.data.datasets.length;
      return [count('latency-chart'), count('throughput-chart')];
    });
    expect(series).toEqual([ids.length, ids.length]);
    // A reader's view: the value of PATH_INFO in gatewire's FastCGI request, hovered.
    const fastcgi = page.locator('.col[data-id="fastcgi"] .wire').first();
    const report = JSON.parse(fs.readFileSync(file, 'utf8').match(/<script type="application\/json" id="report-data">([^<]*)<\/script>/)?.[1] ?? '{}') as CompareReport;
    const at = Buffer.from(report.protocols.find((p) => p.id === 'fastcgi')?.wire.request ?? '', 'hex').indexOf('/greet/world');
    expect(at).toBeGreaterThan(0);
    await fastcgi.locator(`.hex .b[data-i="${at + 2}"]`).hover();
    expect(await page.locator('.col[data-id="fastcgi"] .info').first().textContent()).toContain('PATH_INFO');
    const shot = process.env['GATEWIRE_UPDATE_SCREENSHOT'] === '1' ? path.join(ROOT, 'docs/compare.png') : path.join(tmp, 'compare.png');
    await page.screenshot({ path: shot, fullPage: false, timeout: 15_000 });
    expect(fs.statSync(shot).size).toBeGreaterThan(10_000);
    expect(w.errors).toEqual([]);
    expect(w.requests.filter((u) => u !== url && !u.startsWith('data:'))).toEqual([]);
  }, 180_000);

  test('the --serve page of a real run updates after an edit', async () => {
    const proc = spawnCli(['compare', '--serve', '127.0.0.1:0', '--no-wire', '--samples', '3']);
    const url = await poll('the live page address', () => /live page is on (http:\/\/[0-9.]+:[0-9]+\/)/.exec(proc.stderr)?.[1], 60_000);
    const w = await openPage();
    const { page } = w;
    await page.goto(url);
    expect(await page.locator('.request-line .target').textContent()).toBe('/greet/world?lang=en&n=2');
    await page.fill('#f-path', '/edited/here?from=browser');
    await page.fill('#f-headers', 'X-Edited: yes');
    await page.click('#f-submit');
    await page.locator('.request-line .target', { hasText: '/edited/here?from=browser' }).waitFor({ timeout: 60_000 });
    expect(await page.locator('#columns > .col').count()).toBe(5);
    for (const id of ['http', 'fastcgi', 'scgi', 'uwsgi', 'cgi']) {
      expect(await page.locator(`tr[data-name="HTTP_X_EDITED"] td[data-id="${id}"]`).textContent()).toBe('yes');
      expect(await page.locator(`tr[data-name="QUERY_STRING"] td[data-id="${id}"]`).textContent()).toBe('from=browser');
    }
    expect(w.errors).toEqual([]);
    proc.signal('SIGINT');
    expect((await proc.waitExit(15_000)).code).toBe(0);
  }, 180_000);
});

// ---- the live page through gatewire's HTTP front ------------------------------------------

describeWithPeers('the live page (--serve) in Chromium', ['chromium'], () => {
  let server: RunningServer | undefined;
  let base = '';
  const calls: CompareRequest[] = [];
  let gate: Promise<void> = Promise.resolve();

  beforeAll(async () => {
    const app = createComparePageApp({
      initial: buildReport(HERO_REQUEST, { load: false }),
      run: async (request) => {
        calls.push(request);
        await gate;
        if (request.path === '/boom') throw new Error('the uwsgi listener did not start');
        return buildReport(request, { load: false, generatedAt: '2026-03-14T10:02:00.000Z' });
      },
    });
    server = await serve(app, { http: '127.0.0.1:0', logLevel: 'error' });
    const address = server.listeners[0]?.address;
    if (address?.kind !== 'tcp') throw new Error('the HTTP listener has no TCP address');
    base = `http://127.0.0.1:${address.port}/`;
  }, 30_000);

  afterAll(async () => {
    await server?.close(100);
  }, 30_000);

  test('the form submits a CompareRequest and the page shows the report that comes back', async () => {
    const w = await openPage();
    const { page } = w;
    await page.goto(base, { waitUntil: 'load', timeout: 15_000 });
    await page.waitForSelector('#compare-form');
    expect(await page.inputValue('#f-method')).toBe('GET');
    expect(await page.inputValue('#f-path')).toBe('/hello/w%C3%B6rld?lang=en&n=3');
    expect(await page.inputValue('#f-headers')).toBe('User-Agent: gatewire-compare/0.1.0\nAccept: application/json');

    await page.fill('#f-path', '/changed/path?x=1&y=2');
    await page.fill('#f-headers', 'User-Agent: gatewire-compare/0.1.0\nX-Extra: from the form');
    let open!: () => void;
    gate = new Promise((resolve) => (open = resolve));
    await page.click('#f-submit');
    // Busy while run() waits.
    await page.waitForSelector('#compare-form.busy');
    expect(await page.isDisabled('#f-submit')).toBe(true);
    expect(await page.locator('#f-submit').textContent()).toBe('Comparing…');
    open();
    await page.waitForSelector('#f-status.done');
    expect(await page.isDisabled('#f-submit')).toBe(false);

    const sent: CompareRequest = {
      method: 'GET',
      path: '/changed/path',
      query: 'x=1&y=2',
      headers: [
        ['User-Agent', 'gatewire-compare/0.1.0'],
        ['X-Extra', 'from the form'],
      ],
      body: '',
    };
    expect(calls).toEqual([sent]);
    const report = buildReport(sent, { load: false });
    expect(await page.locator('.request-line .target').textContent()).toBe('/changed/path?x=1&y=2');
    expect(await page.locator('#columns > .col').count()).toBe(6);
    for (const p of report.protocols) {
      const col = page.locator(`.col[data-id="${p.id}"]`);
      expect(await col.locator('.stat-value').first().textContent()).toBe(`${p.requestBytes.toLocaleString('en-US')} B`);
      expect((await col.locator('.wire').first().locator('.as').allTextContents()).join('')).toContain('/changed/path');
    }
    const table = page.locator('#environ-table');
    expect(await table.locator('tr[data-name="PATH_INFO"] td[data-id="http"]').textContent()).toBe('/changed/path');
    expect(await table.locator('tr[data-name="QUERY_STRING"] td[data-id="uwsgi"]').textContent()).toBe('x=1&y=2');
    expect(await table.locator('tr[data-name="HTTP_X_EXTRA"] td[data-id="scgi"]').textContent()).toBe('from the form');
    expect(await table.locator('tr[data-name="HTTP_ACCEPT"]').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).Chart.getChart((globalThis as unknown as PageGlobals).document.getElementById('latency-chart'))?.data.datasets.length)).toBe(6);
    // The form holds the request of the new report.
    expect(await page.inputValue('#f-path')).toBe('/changed/path?x=1&y=2');
    expect(w.errors).toEqual([]);
    expect(w.requests.filter((u) => !u.startsWith(base) && !u.startsWith('data:'))).toEqual([]);
    expect(w.requests.filter((u) => u === `${base}api/compare`)).toHaveLength(1);

    // A run that fails: its message under the form, the report left as it was.
    await page.fill('#f-path', '/boom');
    await page.click('#f-submit');
    await page.waitForSelector('#f-status.error');
    expect(await page.locator('#f-status').textContent()).toBe('500 Internal Server Error: the comparison failed: the uwsgi listener did not start');
    expect(await page.locator('.request-line .target').textContent()).toBe('/changed/path?x=1&y=2');
    // Chromium logs the failed load of a 500; nothing else.
    expect(w.errors).toEqual([expect.stringMatching(/^console: Failed to load resource: .*500/)]);

    // A form the page refuses itself: nothing sent.
    await page.fill('#f-path', 'no-slash');
    await page.click('#f-submit');
    expect(await page.locator('#f-status').textContent()).toBe('The path must start with “/”.');
    expect(calls).toHaveLength(2);
  }, 60_000);
});
