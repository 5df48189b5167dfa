/**
 * uwsgi test client (the web-server side): nginx-style vars, request bytes, an HTTP response
 * head parser (uwsgi answers with a status line, U-8), and the matrix harness of the uwsgi
 * listener. The raw connection and the generic pieces are in scgi-client.ts.
 */
import { encodeUwsgiRequest } from '../../protocols/uwsgi/index.js';
import type { FrontHarness, MatrixRequest, MatrixResponse } from './fronts.js';
import {
  type ForwardedRequest,
  type GatewayAddress,
  type GatewayResponse,
  type Pair,
  decodedPath,
  headerVars,
  listenerHarness,
  queryOf,
  singleRequestMatrix,
} from './scgi-client.js';

/**
 * The variables nginx sends with `include uwsgi_params` (fixtures/nginx/uwsgi_params, upstream
 * order): PATH_INFO = `$document_uri` (decoded), no SCRIPT_NAME, CONTENT_TYPE and
 * CONTENT_LENGTH empty when absent, then one HTTP_* per header (HTTP_CONTENT_* too).
 */
export function nginxUwsgiVars(req: ForwardedRequest): Pair[] {
  const lower: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers ?? {})) lower[k.toLowerCase()] = v;
  const cl = req.contentLength === undefined ? '' : String(req.contentLength);
  const pairs: Pair[] = [
    ['QUERY_STRING', queryOf(req.uri)],
    ['REQUEST_METHOD', req.method ?? 'GET'],
    ['CONTENT_TYPE', lower['content-type'] ?? ''],
    ['CONTENT_LENGTH', cl],
    ['REQUEST_URI', req.uri],
    ['PATH_INFO', decodedPath(req.uri)],
    ['DOCUMENT_ROOT', '/var/www/html'],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['REQUEST_SCHEME', req.https ? 'https' : 'http'],
    ...(req.https ? ([['HTTPS', 'on']] as Pair[]) : []),
    ['REMOTE_ADDR', req.remoteAddr ?? '127.0.0.1'],
    ['REMOTE_PORT', String(req.remotePort ?? 54321)],
    ['SERVER_PORT', String(req.serverPort ?? 80)],
    ['SERVER_NAME', 'localhost'],
    ...headerVars(req.headers),
  ];
  if (req.contentLength !== undefined && lower['content-length'] === undefined) pairs.push(['HTTP_CONTENT_LENGTH', cl]);
  for (const p of req.extra ?? []) pairs.push([p[0], p[1]]);
  return pairs;
}

/** The bytes of one uwsgi request as nginx sends it: packet header, vars, body. */
export function uwsgiRequestBytes(req: ForwardedRequest, body: Buffer = Buffer.alloc(0), modifier1 = 0): Buffer {
  const fwd = body.length > 0 ? { ...req, contentLength: body.length } : req;
  return Buffer.concat([encodeUwsgiRequest(nginxUwsgiVars(fwd), { modifier1 }), body]);
}

/** Parses an HTTP/1.x response head (`HTTP/1.1 200 OK`, headers, empty line) and the raw body after it. */
export function parseHttpResponse(data: Buffer): GatewayResponse | null {
  const end = data.indexOf('\r\n\r\n');
  if (end === -1) return null;
  const lines = data.subarray(0, end).toString('latin1').split('\r\n');
  const first = lines[0] as string;
  const m = /^HTTP\/1\.[01] (\d{3}) (.*)$/.exec(first);
  if (m === null) return null;
  const headers: Record<string, string[]> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return null;
    (headers[line.slice(0, colon).toLowerCase()] ??= []).push(line.slice(colon + 1).trim());
  }
  return { status: Number(m[1]), reason: m[2] as string, firstLine: first, headers, body: data.subarray(end + 4) };
}

/** The matrix request over uwsgi, as nginx `uwsgi_pass` with `include uwsgi_params` sends it. */
export function uwsgiMatrixRequest(addr: GatewayAddress, port: number, req: MatrixRequest): Promise<MatrixResponse> {
  return singleRequestMatrix(addr, req, (fwd, body) => uwsgiRequestBytes(fwd, body), parseHttpResponse, port);
}

/** The behaviour matrix over uwsgi: a Gateway with a uwsgi listener on 127.0.0.1:0. */
export const uwsgiFront: FrontHarness = listenerHarness('uwsgi', 'uwsgi', uwsgiMatrixRequest);
