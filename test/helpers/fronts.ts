/**
 * One harness per front for the behaviour matrix: start a server for a Service in this process,
 * send a request with that front's own client, and report what a client would observe.
 *
 * The list comes from the front registry (src/fronts/registry.ts): REGISTRY_HARNESSES is a
 * Record over its FrontName, so a front added there does not compile here until it has a
 * client, and --auto's harnesses are a Record over its ListenerProtocol (one per protocol it
 * tells apart). Then the two fronts without a listener: inject() and `gatewire cgi`.
 *
 * A harness says which kinds of case it cannot run (`cannot`, with the reason): the matrix skips
 * them for that front only, with the reason in the test name.
 */
import http from 'node:http';
import type { Service } from '../../src/app.js';
import { FRONT_NAMES, type FrontName, type ListenerProtocol } from '../../src/fronts/registry.js';
import { inject } from '../../src/inject.js';
import type { ServeOptions } from '../../src/options.js';
import { cgiFront } from './cgi-harness.js';
import { type FcgiAddress, fcgiRequest, nginxParams, parseCgiResponse } from './fcgi-client.js';
import {
  type GatewayAddress,
  type GatewayResponse,
  HeadClock,
  parseScgiResponse,
  rawExchange,
  responseTruncated,
  scgiRequestBytes,
  singleRequestMatrix,
  startGateway,
} from './scgi-client.js';
import { parseHttpResponse, uwsgiRequestBytes } from './uwsgi-client.js';

export interface MatrixRequest {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Send the body with chunked framing (HTTP) / without a known length (gateways). */
  chunked?: boolean;
  /** Disconnect once this many body bytes were received. */
  abortAfterBytes?: number;
  /**
   * Read the response as the bytes on the wire. Over HTTP: a raw socket instead of node:http,
   * so bytes after the head of a HEAD response show up as its body, and a second response on
   * the connection as trailing body bytes. The other clients always read bytes.
   */
  exact?: boolean;
  /** HTTP only: the version of the request line (`HTTP/2.0`); implies `exact`. */
  httpVersion?: string;
  /** HTTP only: the head is sent without its final empty line, and nothing more (a stalled client); implies `exact`. */
  incompleteHead?: boolean;
  /** Report when the head and the first body byte arrived (headAt, bodyAt). */
  timing?: boolean;
}

/** What the protocol clients (fcgi-client.ts, scgi-client.ts, uwsgi-client.ts) report. */
export interface MatrixResponse {
  status: number;
  headers: Record<string, string[]>;
  body: Buffer;
  /** The response did not end cleanly (reset, short body, no terminal chunk). */
  truncated: boolean;
  /** With `timing`: ms from sending the request to the complete head, and to the first body byte. */
  headAt?: number;
  bodyAt?: number;
}

/** What every matrix harness reports: the response and its reason phrase (HTTP/uwsgi status line, `Status:` text). */
export interface MatrixResult extends MatrixResponse {
  reason: string;
}

/**
 * The shape the protocol clients' own harnesses have (fastcgiFront, scgiFront, uwsgiFront and
 * listenerHarness in fcgi-client.ts / scgi-client.ts): a mount, no options, no reason phrase.
 * The matrix runs over MatrixFront below instead.
 */
export interface Running {
  request(req: MatrixRequest): Promise<MatrixResponse>;
  close(): Promise<void>;
}

export interface FrontHarness {
  name: string;
  start(service: Service, opts?: { mount?: string }): Promise<Running>;
}

/** A started matrix server. */
export interface MatrixServer {
  request(req: MatrixRequest): Promise<MatrixResult>;
  close(): Promise<void>;
}

/** Server option texts, as on the command line (`{ maxBodyBytes: '1000', maxHeaderBytes: '2k' }`). */
export type OptionTexts = Partial<Record<keyof ServeOptions, string>>;

export interface StartOptions {
  mount?: string;
  /** Given to resolveOptions by the listening fronts; the others apply what they have an equivalent for. */
  options?: OptionTexts;
}

/** Kinds of case that not every front can carry. */
export type Need =
  /** --max-body-bytes is enforced. */
  | 'bodyLimit'
  /** --max-header-bytes / --max-params-bytes: the request's header block reaches gatewire. */
  | 'headLimit'
  /** A body without a length reaches gatewire (HTTP chunked, FastCGI without CONTENT_LENGTH). */
  | 'streamedBody'
  /** A path with %00 reaches gatewire. */
  | 'nulPath'
  /** The HTTP request line and framing are gatewire's to parse (versions, Transfer-Encoding, CONNECT, timeouts). */
  | 'httpWire'
  /** --max-inflight applies. */
  | 'inflightLimit'
  /** A path outside --mount reaches gatewire and is refused. */
  | 'mountRefusal'
  /** An environ app's flushed head (R-12) reaches the client through the HTTP front's environ path (HttpSink). */
  /** A flushed head (R-12) crosses an upstream client hop before the first body byte. */
  | 'earlyHeadViaClient';

export interface MatrixFront {
  name: string;
  /** Response header fields that are the front's framing, not gatewire's reply (HTTP: Connection, Date, Keep-Alive). */
  framing: readonly string[];
  /** Why a kind of case cannot apply to this front; absent = it can. */
  cannot: Partial<Record<Need, string>>;
  start(service: Service, opts?: StartOptions): Promise<MatrixServer>;
}

const HTTP_FRAMING = ['connection', 'date', 'keep-alive'] as const;

// ---------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------

function collectHeaders(raw: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 0; i < raw.length; i += 2) (out[(raw[i] as string).toLowerCase()] ??= []).push(raw[i + 1] as string);
  return out;
}

/** A body in three pieces (chunk boundaries inside it, as a streaming client sends it). */
function thirds(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const step = Math.max(1, Math.ceil(body.length / 3));
  for (let i = 0; i < body.length; i += step) out.push(body.subarray(i, i + step));
  return out;
}

/** The matrix request over HTTP with node:http, or over a raw socket when it asks for the exact bytes. */
export function httpRequest(port: number, req: MatrixRequest): Promise<MatrixResult> {
  if (req.exact || req.httpVersion !== undefined || req.incompleteHead) return httpRawRequest({ port }, req);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...(req.headers ?? {}) };
    const body = req.body === undefined ? undefined : Buffer.from(req.body);
    if (body !== undefined && !req.chunked) headers['Content-Length'] = String(body.length);
    if (req.chunked) headers['Transfer-Encoding'] = 'chunked';
    const clock = req.timing ? new HeadClock() : undefined;
    const r = http.request({ host: '127.0.0.1', port, method: req.method ?? 'GET', path: req.path, headers, agent: false });
    // A reset after the response began (R-11) is a truncated response, not a failed request:
    // node:http reports it on the request too, before the response's 'close'.
    let lateError: (() => void) | undefined;
    r.on('error', (err) => (lateError === undefined ? reject(err) : lateError()));
    r.on('response', (res) => {
      clock?.head();
      lateError = () => {
        truncated = true;
        finish();
      };
      const chunks: Buffer[] = [];
      let received = 0;
      let truncated = false;
      res.on('data', (c: Buffer) => {
        clock?.body();
        chunks.push(c);
        received += c.length;
        if (req.abortAfterBytes !== undefined && received >= req.abortAfterBytes) {
          truncated = true;
          r.destroy();
          finish();
        }
      });
      res.on('aborted', () => {
        truncated = true;
      });
      res.on('error', () => {
        truncated = true;
        finish();
      });
      res.on('end', () => {
        if (!res.complete) truncated = true;
        finish();
      });
      res.on('close', finish);
      let done = false;
      function finish(): void {
        if (done) return;
        done = true;
        resolve({
          status: res.statusCode ?? 0,
          reason: res.statusMessage ?? '',
          headers: collectHeaders(res.rawHeaders),
          body: Buffer.concat(chunks),
          truncated: truncated || !res.complete,
          ...clock?.times(),
        });
      }
    });
    if (body === undefined) r.end();
    else if (req.chunked) {
      // Several chunks, so the server sees real chunk framing rather than one piece.
      for (const piece of thirds(body)) r.write(piece);
      r.end();
    } else r.end(body);
  });
}

/**
 * One HTTP/1.1 request on a fresh socket, `Connection: close`, and everything the server sends
 * until it closes: the first response head is parsed, every byte after it is the body.
 */
export async function httpRawRequest(addr: GatewayAddress, req: MatrixRequest): Promise<MatrixResult> {
  const method = req.method ?? 'GET';
  const body = req.body === undefined ? undefined : Buffer.from(req.body);
  const fields: Array<[string, string]> = [];
  const given = new Set(Object.keys(req.headers ?? {}).map((k) => k.toLowerCase()));
  if (!given.has('host')) fields.push(['Host', 'localhost']);
  for (const [k, v] of Object.entries(req.headers ?? {})) fields.push([k, v]);
  if (!given.has('connection')) fields.push(['Connection', 'close']);
  if (req.chunked) fields.push(['Transfer-Encoding', 'chunked']);
  else if (body !== undefined && !given.has('content-length')) fields.push(['Content-Length', String(body.length)]);
  let head = `${method} ${req.path} ${req.httpVersion ?? 'HTTP/1.1'}\r\n${fields.map(([k, v]) => `${k}: ${v}\r\n`).join('')}`;
  if (!req.incompleteHead) head += '\r\n';
  const parts: Buffer[] = [Buffer.from(head, 'latin1')];
  if (body !== undefined && !req.incompleteHead) {
    if (req.chunked) {
      for (const piece of thirds(body)) parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'));
      parts.push(Buffer.from('0\r\n\r\n'));
    } else parts.push(body);
  }
  const clock = req.timing ? new HeadClock() : undefined;
  const conn = await rawExchange(addr, Buffer.concat(parts), {
    ...(req.abortAfterBytes === undefined ? {} : { destroyAfterBytes: req.abortAfterBytes }),
    ...(clock === undefined ? {} : { onData: (data: Buffer) => clock.see(data) }),
  });
  const res = parseHttpResponse(conn.data);
  if (res === null) return { status: 0, reason: '', headers: {}, body: conn.data, truncated: true };
  return { status: res.status, reason: res.reason, headers: res.headers, body: res.body, truncated: conn.destroyedByUs || responseTruncated(conn, res, method), ...clock?.times() };
}

/** The matrix request over FastCGI, with the params nginx's fastcgi_params send; truncation as a web server sees it. */
export async function fastcgiRequest(addr: FcgiAddress, port: number, req: MatrixRequest): Promise<MatrixResult> {
  const body = req.body === undefined ? undefined : Buffer.from(req.body);
  const params = nginxParams({
    method: req.method ?? 'GET',
    uri: req.path,
    headers: { Host: 'localhost', ...(req.headers ?? {}) },
    // A streamed body: CONTENT_LENGTH "" (nginx with fastcgi_request_buffering off and a chunked client body).
    ...(body === undefined ? {} : { contentLength: req.chunked ? ('stream' as const) : body.length }),
    serverPort: port,
  });
  const clock = req.timing ? new HeadClock() : undefined;
  const res = await fcgiRequest(addr, {
    params,
    ...(clock === undefined ? {} : { onStdout: (stdout: Buffer) => clock.see(stdout) }),
    ...(body === undefined ? {} : req.chunked ? { stdinChunks: thirds(body) } : { stdin: body }),
    ...(req.abortAfterBytes === undefined ? {} : { destroyAfterStdoutBytes: req.abortAfterBytes }),
  });
  const parsed = parseCgiResponse(res.stdout);
  if (parsed === null) return { status: 0, reason: '', headers: {}, body: res.stdout, truncated: true };
  // A web server reports a failure when the connection is cut before END_REQUEST, or when
  // END_REQUEST carries a non-zero appStatus after the head went out (F-38).
  return { status: parsed.status, reason: parsed.reason, headers: parsed.headers, body: parsed.body, truncated: !res.completed || res.appStatus !== 0, ...clock?.times() };
}

/** A response parser that also keeps the reason phrase it saw. */
function keepingReason(parse: (data: Buffer) => GatewayResponse | null): { parse: (data: Buffer) => GatewayResponse | null; reason: () => string } {
  let reason = '';
  return {
    parse: (data) => {
      const res = parse(data);
      reason = res?.reason ?? '';
      return res;
    },
    reason: () => reason,
  };
}

/** The matrix request over SCGI, as nginx `scgi_pass` with `include scgi_params` sends it. */
export async function scgiRequest(addr: GatewayAddress, port: number, req: MatrixRequest): Promise<MatrixResult> {
  const p = keepingReason(parseScgiResponse);
  const res = await singleRequestMatrix(addr, req, scgiRequestBytes, p.parse, port);
  return { ...res, reason: p.reason() };
}

/** The matrix request over uwsgi, as nginx `uwsgi_pass` with `include uwsgi_params` sends it. */
export async function uwsgiRequest(addr: GatewayAddress, port: number, req: MatrixRequest): Promise<MatrixResult> {
  const p = keepingReason(parseHttpResponse);
  const res = await singleRequestMatrix(addr, req, (fwd, body) => uwsgiRequestBytes(fwd, body), p.parse, port);
  return { ...res, reason: p.reason() };
}

// ---------------------------------------------------------------------------------------
// Harnesses
// ---------------------------------------------------------------------------------------

type Send = (addr: GatewayAddress, port: number, req: MatrixRequest) => Promise<MatrixResult>;

/** A Gateway with one `listen` listener on 127.0.0.1:0, its options from resolveOptions, reached with `send`. */
function listening(name: string, listen: FrontName, send: Send, framing: readonly string[], cannot: MatrixFront['cannot']): MatrixFront {
  return {
    name,
    framing,
    cannot,
    async start(service, opts = {}) {
      const { gateway, addrs, ports } = await startGateway(service, { ...(opts.options ?? {}), [listen]: ['127.0.0.1:0'], mount: opts.mount ?? '' });
      const addr = addrs[0] as GatewayAddress;
      const port = ports[0] as number;
      return {
        request: (req) => send(addr, port, req),
        close: () => gateway.close(1000),
      };
    },
  };
}

const sendHttp: Send = (addr, port, req) => ('path' in addr ? httpRawRequest(addr, req) : httpRequest(port, req));

/** What a web server in front of a gateway front answers itself. */
const GATEWAY_CANNOT = {
  httpWire: 'the web server parses HTTP (request line, Transfer-Encoding, CONNECT, its own timeouts) and answers these itself',
  mountRefusal: 'a gateway passes a path outside the mount on as sent (E-5.2): the web server chose to route it here',
} as const;
const LENGTH_ONLY = 'SCGI and uwsgi always carry CONTENT_LENGTH: the web server buffers a chunked body and sends its length';
const httpHarness = (name: string, listen: FrontName): MatrixFront => listening(name, listen, sendHttp, HTTP_FRAMING, {});
const fastcgiHarness = (name: string, listen: FrontName): MatrixFront => listening(name, listen, fastcgiRequest, [], GATEWAY_CANNOT);
const SCGI_NO_NUL = 'SCGI cannot carry a NUL byte in a value (its pairs are NUL-separated): no web server can forward a decoded %00';
const scgiHarness = (name: string, listen: FrontName): MatrixFront =>
  listening(name, listen, scgiRequest, [], { ...GATEWAY_CANNOT, streamedBody: LENGTH_ONLY, nulPath: SCGI_NO_NUL });
const uwsgiHarness = (name: string, listen: FrontName): MatrixFront => listening(name, listen, uwsgiRequest, [], { ...GATEWAY_CANNOT, streamedBody: LENGTH_ONLY });

/** One --auto listener, reached with the client of every protocol it tells apart. */
const AUTO_HARNESSES: Record<ListenerProtocol, MatrixFront> = {
  http: httpHarness('auto-http', 'auto'),
  fastcgi: fastcgiHarness('auto-fastcgi', 'auto'),
  scgi: scgiHarness('auto-scgi', 'auto'),
  uwsgi: uwsgiHarness('auto-uwsgi', 'auto'),
};

/** Every listener front of the registry, with its clients: a new front must be added here to compile. */
export const REGISTRY_HARNESSES: Record<FrontName, readonly [MatrixFront, ...MatrixFront[]]> = {
  http: [httpHarness('http', 'http')],
  fastcgi: [fastcgiHarness('fastcgi', 'fastcgi')],
  scgi: [scgiHarness('scgi', 'scgi')],
  uwsgi: [uwsgiHarness('uwsgi', 'uwsgi')],
  auto: [AUTO_HARNESSES.http, AUTO_HARNESSES.fastcgi, AUTO_HARNESSES.scgi, AUTO_HARNESSES.uwsgi],
};

const INJECT_REFUSES = 'inject() throws for a request the HTTP front would refuse, instead of answering it (src/inject.ts)';

/**
 * No socket: the exchange as the HTTP front runs it, through the environ path for every flavour.
 * inject() takes a mount but no server options: the cases that depend on them are skipped.
 */
export const injectFront: MatrixFront = {
  name: 'inject',
  framing: [],
  cannot: {
    bodyLimit: 'inject() has no --max-body-bytes (it checks Content-Length against MAX_SAFE_INTEGER)',
    headLimit: 'inject() has no header block to limit',
    nulPath: INJECT_REFUSES,
    mountRefusal: INJECT_REFUSES,
    httpWire: 'inject() takes no request line and no framing',
    inflightLimit: 'inject() has no listener and no in-flight count',
  },
  async start(service, opts = {}) {
    return {
      async request(req) {
        const headers: Record<string, string> = { ...(req.headers ?? {}) };
        const clock = req.timing ? new HeadClock() : undefined;
        // inject() adds Content-Length unless it is given; a chunked request has none (httpVars drops it).
        if (req.chunked) headers['Transfer-Encoding'] = 'chunked';
        const res = await inject(service.app, {
          method: req.method ?? 'GET',
          url: req.path,
          headers,
          ...(req.body === undefined ? {} : { body: Buffer.from(req.body) }),
          ...(opts.mount === undefined ? {} : { mount: opts.mount }),
          ...(req.abortAfterBytes === undefined ? {} : { abortAfterBytes: req.abortAfterBytes }),
          ...(clock === undefined ? {} : { onHead: () => clock.head(), onBody: () => clock.body() }),
        });
        const out: Record<string, string[]> = {};
        for (const [k, v] of res.headers) (out[k.toLowerCase()] ??= []).push(v);
        return { status: res.status, reason: res.reason, headers: out, body: res.body, truncated: res.aborted, ...clock?.times() };
      },
      close: async () => undefined,
    };
  },
};

/** Every front the matrix runs over: the registry's listeners, then inject() and `gatewire cgi`. */
export const FRONTS: MatrixFront[] = [...FRONT_NAMES.flatMap((name) => REGISTRY_HARNESSES[name]), injectFront, cgiFront];
