/**
 * The browser side of `gatewire compare`: the self-contained HTML report (`--html FILE`) and the
 * live page (`--serve ADDR`), both one document made from a CompareReport.
 *
 * The document carries everything it needs inline: the CSS and script of assets/compare/, the
 * Chart.js UMD build, and the report as JSON in a `<script type="application/json">` block that
 * assets/compare/report.js reads and renders. A Content-Security-Policy meta forbids every network
 * load (no fonts, no CDN, no images but data: ones): the file opens the same offline, years later,
 * and a report string cannot make the page fetch anything. Only the live page may talk to its own
 * origin, for `POST api/compare`.
 *
 * The assets are read from disk at each render, not bundled at build time: assets/ sits at the
 * package root (shipped through package.json "files"), found by walking up from this module's
 * folder to the package.json (src/compare under ts-jest, dist/src/compare when built); Chart.js
 * is found through Node's resolution of the chart.js dependency.
 *
 * createComparePageApp() is the live page as an environ App, so it runs behind any gatewire front:
 *
 *   GET  /             the page for the latest report
 *   GET  /api/report   the latest report (JSON)
 *   POST /api/compare  a CompareRequest (JSON) → run() → the CompareReport (JSON)
 *
 * This module knows nothing of how a comparison is made: the runner passes run().
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { App, Body, Environ, HeaderList, StartResponse } from '../app.js';
import type { Logger } from '../logger.js';
import { isValidHeaderName, isValidHeaderValue, reasonPhrase } from '../../protocols/cgi/head.js';
import { GatewireError, ServerErrorCode } from '../errors.js';
import type { CompareReport, CompareRequest } from './types.js';
import { packageRoot } from '../package-root.js';

export interface ReportHtmlOptions {
  /** The live page (`--serve`): the request form, and connect-src 'self' for `POST api/compare`. */
  live?: boolean;
  /** The document title; default: `gatewire compare · GET /path`. */
  title?: string;
}

export interface ComparePageOptions {
  /** The report the page shows until the first POST /api/compare. */
  initial: CompareReport;
  /** Makes a comparison; the page never runs two at once. */
  run(request: CompareRequest): Promise<CompareReport>;
  /** Where a failed run is logged. */
  logger?: Logger;
}

/**
 * Chart.js's UMD build (a browser script defining the global `Chart`). chart.js exports no subpath
 * for it, so it is found next to the entry Node resolves for require (dist/chart.cjs).
 */
function chartJsFile(): string {
  const file = join(dirname(require.resolve('chart.js')), 'chart.umd.js');
  if (!existsSync(file)) throw new Error(`gatewire compare: Chart.js's UMD build is not at ${file} (is the chart.js dependency installed?)`);
  return file;
}

function readAsset(name: string): string {
  const file = join(packageRoot(), 'assets', 'compare', name);
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`gatewire compare: cannot read the page asset ${file} (${(err as Error).message})`, { cause: err });
  }
}

/**
 * Inline text may not end its element early: `</script` (or `</style`) anywhere in it would, so
 * it is written `<\/script`, which means the same inside the JavaScript strings, regexes and
 * comments where such text can occur (and in CSS, where `\/` is `/`).
 */
function inlineSafe(text: string, element: 'script' | 'style'): string {
  return text.replace(new RegExp(`</(${element})`, 'gi'), '<\\/$1');
}

/** Text for an element or a double-quoted attribute. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The report as the text of a `<script type="application/json">`: every `<` written `\u003c`, so
 * no string in it (an environ value, a header) can close the element or open a comment; JSON.parse
 * gives the same string back. U+2028/U+2029 are escaped too, for any reader that evals it.
 */
function reportJson(report: CompareReport): string {
  return JSON.stringify(report).replace(/[<\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** No network at all: inline script and style only, data: images (the empty favicon). */
function contentSecurityPolicy(live: boolean): string {
  return [
    "default-src 'none'",
    "script-src 'unsafe-inline'",
    "style-src 'unsafe-inline'",
    'img-src data:',
    `connect-src ${live ? "'self'" : "'none'"}`,
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
}

/** One self-contained HTML document showing `report`; with `live`, the page of `--serve`. */
export function renderReportHtml(report: CompareReport, options: ReportHtmlOptions = {}): string {
  const live = options.live === true;
  const css = readAsset('report.css');
  const script = readAsset('report.js');
  const chart = readFileSync(chartJsFile(), 'utf8');
  const target = report.request.query === '' ? report.request.path : `${report.request.path}?${report.request.query}`;
  const title = options.title ?? `gatewire compare · ${report.request.method} ${target}`;
  return `<!doctype html>
<html lang="en" data-mode="${live ? 'live' : 'static'}">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(contentSecurityPolicy(live))}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="gatewire ${escapeHtml(report.gatewire)}">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="data:,">
<style>
${inlineSafe(css, 'style')}
</style>
</head>
<body>
<div id="app"><noscript><p class="noscript">This report is drawn by JavaScript; the data is in the report-data block of this file.</p></noscript></div>
<script type="application/json" id="report-data">${reportJson(report)}</script>
<script>
${inlineSafe(chart, 'script')}
</script>
<script>
${inlineSafe(script, 'script')}
</script>
</body>
</html>
`;
}

// ---- the live page's App ------------------------------------------------------------------

/** Largest POST /api/compare body. A 1 MiB latin1 body can take 6 bytes a byte in JSON (`\u0000`). */
const MAX_POST_BYTES = 8 * 1024 * 1024;
/** Largest body of the compared request. */
const MAX_REQUEST_BODY = 1024 * 1024;

/** A path or query char that would end or split the request target on the wire (CTL, SP, DEL, above latin1). */
const BAD_TARGET_CHAR = /[^\x21-\x7e\x80-\xff]/;
const ABOVE_LATIN1 = /[\u0100-\uffff]/;

/** A POST /api/compare the page answers with `status` (400, 413, 415) and this message, as JSON. */
export class CompareRequestError extends GatewireError {
  override name = 'CompareRequestError';
  override readonly code = ServerErrorCode.CompareRequest;
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The CompareRequest in a POST body, checked as far as every protocol's client needs it. */
function parseCompareRequest(text: string): CompareRequest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CompareRequestError(400, `the body is not JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new CompareRequestError(400, 'the body must be a JSON object (a CompareRequest)');
  const v = value as Record<string, unknown>;
  const { method, path } = v;
  const query = v.query ?? '';
  const body = v.body ?? '';
  const headers = v.headers ?? [];
  // A method is a token, as a field name is (RFC 9110 §9.1, §5.1).
  if (typeof method !== 'string' || !isValidHeaderName(method)) throw new CompareRequestError(400, `method must be a token (GET, POST, ...), got ${JSON.stringify(method)}`);
  if (typeof path !== 'string' || !path.startsWith('/')) throw new CompareRequestError(400, `path must start with "/", got ${JSON.stringify(path)}`);
  if (BAD_TARGET_CHAR.test(path) || path.includes('?') || path.includes('#')) {
    throw new CompareRequestError(400, 'path must not hold spaces, control chars, "?" or "#" (percent-encode them; the query goes in query)');
  }
  if (typeof query !== 'string' || BAD_TARGET_CHAR.test(query) || query.includes('#')) {
    throw new CompareRequestError(400, 'query must be a string without spaces, control chars or "#"');
  }
  if (!Array.isArray(headers)) throw new CompareRequestError(400, 'headers must be an array of [name, value] pairs');
  const pairs: Array<[string, string]> = [];
  for (const h of headers as unknown[]) {
    if (!Array.isArray(h) || h.length !== 2 || typeof h[0] !== 'string' || typeof h[1] !== 'string') {
      throw new CompareRequestError(400, `headers must be [name, value] pairs of strings, got ${JSON.stringify(h)}`);
    }
    const [name, val] = h as [string, string];
    if (!isValidHeaderName(name)) throw new CompareRequestError(400, `header name ${JSON.stringify(name)} is not a token`);
    if (!isValidHeaderValue(val)) throw new CompareRequestError(400, `header ${name}: the value holds a control char or a char above U+00FF`);
    pairs.push([name, val]);
  }
  if (typeof body !== 'string' || ABOVE_LATIN1.test(body)) throw new CompareRequestError(400, 'body must be a latin1 string (one char per byte)');
  if (body.length > MAX_REQUEST_BODY) throw new CompareRequestError(400, `body of ${body.length} bytes: the page compares bodies of up to 1 MiB`);
  return { method, path, query, headers: pairs, body };
}

/** The POST body, up to MAX_POST_BYTES (then 413 without reading the rest). */
async function readBody(environ: Environ): Promise<string> {
  const declared = environ.CONTENT_LENGTH;
  if (declared !== undefined && declared !== '' && Number(declared) > MAX_POST_BYTES) {
    throw new CompareRequestError(413, `the body of ${declared} bytes is over the ${MAX_POST_BYTES}-byte limit`);
  }
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of environ['gatewire.input'] as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > MAX_POST_BYTES) throw new CompareRequestError(413, `the body is over the ${MAX_POST_BYTES}-byte limit`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function respond(startResponse: StartResponse, status: number, contentType: string, text: string, extra: HeaderList = []): Body {
  startResponse(`${status} ${reasonPhrase(status) || 'Error'}`, [
    ['Content-Type', contentType],
    ['Cache-Control', 'no-store'],
    ['X-Content-Type-Options', 'nosniff'],
    ...extra,
  ]);
  return [Buffer.from(text, 'utf8')];
}

function json(startResponse: StartResponse, status: number, value: unknown, extra: HeaderList = []): Body {
  return respond(startResponse, status, 'application/json; charset=utf-8', JSON.stringify(value), extra);
}

function jsonError(startResponse: StartResponse, status: number, message: string, extra: HeaderList = []): Body {
  return json(startResponse, status, { error: message }, extra);
}

/**
 * The live page of `gatewire compare --serve`. Comparisons run one at a time, in the order they
 * came: each one measures latency and CPU, which a second one running beside it would skew.
 */
export function createComparePageApp(options: ComparePageOptions): App {
  let latest = options.initial;
  let queue: Promise<unknown> = Promise.resolve();
  const serial = (request: CompareRequest): Promise<CompareReport> => {
    const turn = queue.then(() => options.run(request));
    queue = turn.catch(() => undefined);
    return turn;
  };

  const compare = async (environ: Environ, startResponse: StartResponse): Promise<Body> => {
    // A JSON content type makes a cross-site POST a CORS preflight that this app never answers,
    // so another site open in the browser cannot start comparisons against a local app.
    const type = (environ.CONTENT_TYPE ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/json') return jsonError(startResponse, 415, 'POST api/compare takes Content-Type: application/json');
    let request: CompareRequest;
    try {
      request = parseCompareRequest(await readBody(environ));
    } catch (err) {
      if (err instanceof CompareRequestError) return jsonError(startResponse, err.status, err.message);
      throw err;
    }
    let report: CompareReport;
    try {
      report = await serial(request);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      options.logger?.error(`compare: the comparison of ${request.method} ${request.path} failed: ${message}`, {
        request_id: environ['gatewire.request_id'],
        ...(err instanceof Error && err.stack !== undefined ? { stack: err.stack } : {}),
      });
      return jsonError(startResponse, 500, `the comparison failed: ${message}`);
    }
    latest = report;
    return json(startResponse, 200, report);
  };

  return (environ, startResponse) => {
    const method = environ.REQUEST_METHOD;
    const path = environ.PATH_INFO === '' ? '/' : environ.PATH_INFO;
    const read = method === 'GET' || method === 'HEAD';
    switch (path) {
      case '/':
        if (!read) return jsonError(startResponse, 405, `${method} / is not allowed`, [['Allow', 'GET, HEAD']]);
        return respond(startResponse, 200, 'text/html; charset=utf-8', renderReportHtml(latest, { live: true }), [
          ['Content-Security-Policy', contentSecurityPolicy(true)],
        ]);
      case '/api/report':
        if (!read) return jsonError(startResponse, 405, `${method} /api/report is not allowed`, [['Allow', 'GET, HEAD']]);
        return json(startResponse, 200, latest);
      case '/api/compare':
        if (method !== 'POST') return jsonError(startResponse, 405, `${method} /api/compare is not allowed`, [['Allow', 'POST']]);
        return compare(environ, startResponse);
      default:
        return jsonError(startResponse, 404, `no ${path} here: the page is at /, the API at /api/compare and /api/report`);
    }
  };
}
