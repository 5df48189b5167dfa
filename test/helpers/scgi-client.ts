/**
 * Test clients for the single-request gateway protocols (the web-server side): a raw connection
 * that sends bytes and records everything the server does (data, FIN, reset, close), nginx-style
 * SCGI variables, one whole SCGI exchange, and the matrix harnesses of the SCGI listener and of
 * any listener a test client can reach (`listenerHarness`, used for --auto).
 *
 * uwsgi's own pieces are in uwsgi-client.ts; they reuse the raw connection from here.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import type { Body, Environ, Service, StartResponse } from '../../src/app.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { resolveOptions } from '../../src/options.js';
import { Gateway } from '../../src/server.js';
import { encodeScgiRequest } from '../../protocols/scgi/index.js';
import { type FcgiAddress, type Pair, WAIT_MS, parseCgiResponse } from './fcgi-client.js';
import type { FrontHarness, MatrixRequest, MatrixResponse, Running } from './fronts.js';

export type { Pair };
/** A listener: TCP port on 127.0.0.1, or a unix socket path. */
export type GatewayAddress = FcgiAddress;

const PROBE = Buffer.from([0]);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * One client connection that records what the server does. `data` is everything received;
 * `ended` = FIN from the server, `reset` = ECONNRESET, `closed` = fully closed.
 */
export class RawConn {
  data: Buffer = Buffer.alloc(0);
  ended = false;
  closed = false;
  reset = false;
  error: NodeJS.ErrnoException | undefined;
  destroyedByUs = false;
  private waiters: Array<() => void> = [];

  /** Close our side when the server ends (true by default, as web servers do). */
  closeOnEnd = true;
  private probing = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.data = Buffer.concat([this.data, chunk]);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      // Like a web server: the response ends at the upstream's EOF, then we close our side too.
      // First one probe byte: libuv reports a reset that arrives together with the last data
      // as a plain EOF (its POLLHUP shortcut after a short read), so a loaded machine can turn
      // an R-11 reset into a clean end. The kernel still knows: a write to a reset connection
      // fails, a write after a FIN does not (the server drains it).
      if (this.closeOnEnd && !socket.writableEnded && !socket.destroyed) {
        this.probing = true;
        socket.write(PROBE, (err) => {
          if (err) this.noteError(err, true);
          if (!socket.destroyed) socket.end();
          this.wake();
        });
      }
      this.wake();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // After our probe, an error is the server's kernel answering it (already judged by the probe).
      if (!this.probing) this.noteError(err, err.code === 'ECONNRESET');
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static open(addr: GatewayAddress, opts: { allowHalfOpen?: boolean; localAddress?: string } = {}): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const target =
        'path' in addr
          ? { path: addr.path }
          : { host: addr.host ?? '127.0.0.1', port: addr.port, ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }) };
      const socket = net.connect({ ...target, allowHalfOpen: opts.allowHalfOpen ?? true });
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawConn(socket));
      });
      socket.once('error', reject);
    });
  }

  private noteError(err: NodeJS.ErrnoException, reset: boolean): void {
    this.error ??= err;
    if (reset) this.reset = true;
  }

  /** True once the server closed, half-closed or reset the connection. */
  get gone(): boolean {
    return this.ended || this.closed || this.error !== undefined;
  }

  write(...chunks: Buffer[]): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed || this.socket.writableEnded) {
        resolve();
        return;
      }
      this.socket.write(Buffer.concat(chunks), () => resolve());
    });
  }

  /** Half-closes our side (a FIN to the server). */
  end(): void {
    if (!this.socket.destroyed) this.socket.end();
  }

  destroy(): void {
    this.destroyedByUs = true;
    this.socket.destroy();
  }

  /** Waits until `cond()` holds (checked on every event); rejects after `timeoutMs` (a hang). */
  until(cond: () => boolean, timeoutMs = WAIT_MS, what = 'condition'): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`RawConn: timed out after ${timeoutMs} ms waiting for ${what} (received ${this.data.length} bytes, ended=${this.ended}, closed=${this.closed})`));
      }, timeoutMs);
      const check = (): void => {
        if (!cond()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  /** Waits for the connection to be fully closed (by either side). */
  untilClosed(timeoutMs = WAIT_MS): Promise<void> {
    return this.until(() => this.closed, timeoutMs, 'the connection to close');
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

/**
 * When a response's head was complete and when its first body byte came, in ms since the
 * request was sent, from the bytes received so far (a CGI-style or HTTP head ends at CRLF CRLF).
 */
export class HeadClock {
  headAt: number | undefined;
  bodyAt: number | undefined;
  private readonly start = performance.now();

  see(data: Buffer): void {
    if (this.bodyAt !== undefined) return;
    const end = data.indexOf('\r\n\r\n');
    if (end === -1) return;
    const now = performance.now() - this.start;
    this.headAt ??= now;
    if (data.length > end + 4) this.bodyAt = now;
  }

  /** The body's first byte came now (a client that parses the head itself). */
  body(): void {
    this.bodyAt ??= performance.now() - this.start;
  }

  head(): void {
    this.headAt ??= performance.now() - this.start;
  }

  times(): { headAt?: number; bodyAt?: number } {
    return { ...(this.headAt === undefined ? {} : { headAt: this.headAt }), ...(this.bodyAt === undefined ? {} : { bodyAt: this.bodyAt }) };
  }
}

export interface RawExchangeOptions {
  /** Send a FIN after the bytes (default false: web servers do not half-close). */
  halfClose?: boolean;
  /** Pause between chunks, to make the server see them as separate reads. */
  gapMs?: number;
  /** Destroy our side once this many bytes arrived (a client that went away). */
  destroyAfterBytes?: number;
  /** Called with the bytes received so far on every event of the connection (the matrix's head clock). */
  onData?: (data: Buffer) => void;
  timeoutMs?: number;
  /** Source address of the connection (e.g. 127.0.0.2, to test allow-lists). */
  localAddress?: string;
}

/** Sends `chunks` on a fresh connection and waits until the server closes it; returns the connection. */
export async function rawExchange(addr: GatewayAddress, chunks: Buffer | Buffer[], opts: RawExchangeOptions = {}): Promise<RawConn> {
  const conn = await RawConn.open(addr, opts.localAddress === undefined ? {} : { localAddress: opts.localAddress });
  const list = Array.isArray(chunks) ? chunks : [chunks];
  const sending = (async (): Promise<void> => {
    for (let i = 0; i < list.length; i++) {
      if (conn.gone) return;
      await conn.write(list[i] as Buffer);
      if (opts.gapMs !== undefined && i < list.length - 1) await sleep(opts.gapMs);
    }
    if (opts.halfClose) conn.end();
  })();
  const limit = opts.destroyAfterBytes;
  try {
    await conn.until(() => {
      opts.onData?.(conn.data);
      if (limit !== undefined && !conn.destroyedByUs && conn.data.length >= limit) conn.destroy();
      return conn.closed || conn.destroyedByUs;
    }, opts.timeoutMs ?? WAIT_MS * 3, 'the server to close the connection');
  } finally {
    if (!conn.closed) conn.destroy();
  }
  await Promise.race([sending, sleep(50)]);
  return conn;
}

/** What a web server knows about the client request it forwards. */
/**
 * Sends `bytes` one at a time, `gapMs` apart (a slowloris), until the server closes or all are
 * sent; resolves once the connection is closed, with how long that took from the first byte.
 */
export async function trickle(addr: GatewayAddress, bytes: Buffer, gapMs = 100, timeoutMs = 5000): Promise<{ conn: RawConn; ms: number }> {
  const conn = await RawConn.open(addr);
  const started = performance.now();
  for (let i = 0; i < bytes.length && !conn.closed && performance.now() - started < timeoutMs; i++) {
    await conn.write(bytes.subarray(i, i + 1)).catch(() => undefined);
    await sleep(gapMs);
  }
  await conn.untilClosed(timeoutMs);
  return { conn, ms: performance.now() - started };
}

export interface ForwardedRequest {
  method?: string;
  /** Raw request target: path and query, as the client sent it. */
  uri: string;
  headers?: Record<string, string>;
  /** Body length; undefined = no body. */
  contentLength?: number;
  serverPort?: number;
  remoteAddr?: string;
  remotePort?: number;
  https?: boolean;
  /** Params appended after the standard ones (`scgi_param` / `uwsgi_param` lines of a location). */
  extra?: Array<readonly [string, string]>;
}

/** nginx's `$uri`: the percent-decoded path, as bytes (latin1 string); a bad escape stays literal. */
export function decodedPath(uri: string): string {
  const q = uri.indexOf('?');
  const raw = q === -1 ? uri : uri.slice(0, q);
  return raw.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

export function queryOf(uri: string): string {
  const q = uri.indexOf('?');
  return q === -1 ? '' : uri.slice(q + 1);
}

/** One HTTP_* per request header, as nginx adds them after the configured params. */
export function headerVars(headers: Record<string, string> | undefined): Pair[] {
  const out: Pair[] = [];
  for (const [name, value] of Object.entries(headers ?? {})) out.push([`HTTP_${name.toUpperCase().replace(/-/g, '_')}`, value]);
  return out;
}

function lowerHeaders(headers: Record<string, string> | undefined): Record<string, string> {
  const lower: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) lower[k.toLowerCase()] = v;
  return lower;
}

/**
 * The variables nginx sends with `include scgi_params` (fixtures/nginx/scgi_params, upstream
 * order), CONTENT_LENGTH excluded (the encoder puts it first): no SCRIPT_NAME, no PATH_INFO,
 * CONTENT_TYPE empty when absent, `SCGI 1`, then one HTTP_* per header (HTTP_CONTENT_* too).
 */
export function nginxScgiVars(req: ForwardedRequest): Pair[] {
  const lower = lowerHeaders(req.headers);
  const pairs: Pair[] = [
    ['REQUEST_METHOD', req.method ?? 'GET'],
    ['REQUEST_URI', req.uri],
    ['QUERY_STRING', queryOf(req.uri)],
    ['CONTENT_TYPE', lower['content-type'] ?? ''],
    ['DOCUMENT_URI', decodedPath(req.uri)],
    ['DOCUMENT_ROOT', '/var/www/html'],
    ['SCGI', '1'],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['REQUEST_SCHEME', req.https ? 'https' : 'http'],
    ...(req.https ? ([['HTTPS', 'on']] as Pair[]) : []),
    ['REMOTE_ADDR', req.remoteAddr ?? '127.0.0.1'],
    ['REMOTE_PORT', String(req.remotePort ?? 54321)],
    ['SERVER_PORT', String(req.serverPort ?? 80)],
    ['SERVER_NAME', 'localhost'],
    ...headerVars(req.headers),
  ];
  if (req.contentLength !== undefined && lower['content-length'] === undefined) pairs.push(['HTTP_CONTENT_LENGTH', String(req.contentLength)]);
  for (const p of req.extra ?? []) pairs.push([p[0], p[1]]);
  return pairs;
}

/** The bytes of one SCGI request as nginx sends it: netstring head, then the body. */
export function scgiRequestBytes(req: ForwardedRequest, body: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([encodeScgiRequest(nginxScgiVars(body.length > 0 ? { ...req, contentLength: body.length } : req), body.length), body]);
}

export interface GatewayResponse {
  status: number;
  reason: string;
  /** The first line of the head as sent (`Status: 200 OK` or `HTTP/1.1 200 OK`). */
  firstLine: string;
  headers: Record<string, string[]>;
  body: Buffer;
}

/** Parses a CGI-style response (SCGI): `Status:` header, other headers, empty line, body. */
export function parseScgiResponse(data: Buffer): GatewayResponse | null {
  const parsed = parseCgiResponse(data);
  if (parsed === null) return null;
  return { status: parsed.status, reason: parsed.reason, firstLine: parsed.lines[0] ?? '', headers: parsed.headers, body: parsed.body };
}

/**
 * Did the response end cleanly? Not when the connection was reset, the head is missing, or the
 * body is shorter or longer than a declared Content-Length (HEAD, 1xx, 204, 304: no body).
 */
export function responseTruncated(conn: RawConn, res: GatewayResponse | null, method: string): boolean {
  if (res === null || conn.reset) return true;
  const noBody = method === 'HEAD' || res.status === 204 || res.status === 304;
  const cl = res.headers['content-length'];
  if (noBody) return res.body.length > 0;
  if (cl !== undefined) return res.body.length !== Number(cl[0]);
  return false;
}

/** One request from a matrix case to a listener, with `encode` building the request bytes. */
export async function singleRequestMatrix(
  addr: GatewayAddress,
  req: MatrixRequest,
  encode: (fwd: ForwardedRequest, body: Buffer) => Buffer,
  parse: (data: Buffer) => GatewayResponse | null,
  serverPort: number,
): Promise<MatrixResponse> {
  const body = req.body === undefined ? Buffer.alloc(0) : Buffer.from(req.body);
  const method = req.method ?? 'GET';
  const headers = { Host: 'localhost', ...(req.headers ?? {}) };
  // A web server buffers a chunked client body first: the gateway always gets a length.
  const fwd: ForwardedRequest = { method, uri: req.path, headers, serverPort, ...(req.body === undefined ? {} : { contentLength: body.length }) };
  const clock = req.timing ? new HeadClock() : undefined;
  const conn = await rawExchange(addr, encode(fwd, body), {
    ...(req.abortAfterBytes === undefined ? {} : { destroyAfterBytes: req.abortAfterBytes }),
    ...(clock === undefined ? {} : { onData: (data: Buffer) => clock.see(data) }),
  });
  const res = parse(conn.data);
  if (res === null) return { status: 0, headers: {}, body: conn.data, truncated: true };
  const truncated = conn.destroyedByUs || responseTruncated(conn, res, method);
  return { status: res.status, headers: res.headers, body: res.body, truncated, ...clock?.times() };
}

/** Starts a Gateway from resolveOptions flags; returns it with its bound listeners. */
/** Polls `cond` until it holds; rejects after `timeoutMs` (only a guard against hangs). */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

export async function startGateway(service: Service, flags: Record<string, string | string[]>, logger: Logger = silentLogger()): Promise<{ gateway: Gateway; addrs: GatewayAddress[]; ports: number[] }> {
  const options = resolveOptions(flags, {});
  const gateway = new Gateway(service, options, logger);
  const listeners = await gateway.listen();
  const addrs: GatewayAddress[] = [];
  const ports: number[] = [];
  for (const l of listeners) {
    if (l.address.kind === 'unix') {
      addrs.push({ path: l.address.path });
      ports.push(0);
    } else {
      const port = (l.address as { port: number }).port;
      addrs.push({ port });
      ports.push(port);
    }
  }
  return { gateway, addrs, ports };
}

/**
 * A matrix harness for one listener kind (`scgi`, `uwsgi`, `auto`, ...) reached with `send`.
 * `send` gets the address, its port (for SERVER_PORT) and the request.
 */
export function listenerHarness(name: string, listen: string, send: (addr: GatewayAddress, port: number, req: MatrixRequest) => Promise<MatrixResponse>): FrontHarness {
  return {
    name,
    async start(service, opts = {}): Promise<Running> {
      const { gateway, addrs, ports } = await startGateway(service, { [listen]: ['127.0.0.1:0'], mount: opts.mount ?? '' });
      const addr = addrs[0] as GatewayAddress;
      const port = ports[0] as number;
      return {
        request: (req) => send(addr, port, req),
        close: () => gateway.close(1000),
      };
    },
  };
}

/** The matrix request over SCGI, as nginx `scgi_pass` with `include scgi_params` sends it. */
export function scgiMatrixRequest(addr: GatewayAddress, port: number, req: MatrixRequest): Promise<MatrixResponse> {
  return singleRequestMatrix(addr, req, scgiRequestBytes, parseScgiResponse, port);
}

/** The behaviour matrix over SCGI: a Gateway with an SCGI listener on 127.0.0.1:0. */
export const scgiFront: FrontHarness = listenerHarness('scgi', 'scgi', scgiMatrixRequest);

/** A Logger that keeps every line, for tests that check what was logged. */
export interface CapturedLog extends Logger {
  lines: Array<{ level: string; message: string }>;
  /** Lines at `level` (or any level) whose message matches. */
  matching(re: RegExp, level?: string): string[];
}

export function captureLogger(): CapturedLog {
  const lines: Array<{ level: string; message: string }> = [];
  const at =
    (level: string) =>
    (message: string): void => {
      lines.push({ level, message });
    };
  return {
    lines,
    matching: (re, level) => lines.filter((l) => (level === undefined || l.level === level) && re.test(l.message)).map((l) => l.message),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    debugEnabled: false,
    access: null,
    close: () => Promise.resolve(),
  };
}

/** What the probe app saw; tests reset it with `probe.reset()`. */
export interface GatewayProbe {
  /** Requests that reached the app, in order: method and path. */
  calls: string[];
  /** Bodies handed to /hold, not read until `release()`. */
  held: Array<import('node:stream').Readable & { received?: number }>;
  release: () => void;
  /** Requests whose gatewire.signal fired. */
  aborted: number;
  /** Body iterators closed. */
  closed: number;
  reset(): void;
}

/**
 * An environ app for front tests:
 *   /echo (and anything not below)  reads the body, answers JSON: environ (keys without a dot),
 *                                   protocol, url_scheme, input_terminated, body (latin1) or
 *                                   the body error's code, body_length
 *   /no-read     answers `ok` without touching the body
 *   /hold        keeps the body unread until probe.release(), then answers its length
 *   /wait        streams a heartbeat line every 20 ms until the signal fires (client gone), counts it
 *   /stream?n=&size=   n chunks of `size` bytes of 'x' without Content-Length
 *   /error-after sends `part-` then fails
 *   /status?s=NNN+Reason  answers that status line
 */
export function probeService(): { service: Service; probe: GatewayProbe } {
  let releaseAll: Array<() => void> = [];
  const probe: GatewayProbe = {
    calls: [],
    held: [],
    release: () => {
      for (const r of releaseAll) r();
      releaseAll = [];
    },
    aborted: 0,
    closed: 0,
    reset() {
      probe.calls = [];
      probe.held = [];
      probe.aborted = 0;
      probe.closed = 0;
      releaseAll = [];
    },
  };
  const readAll = async (input: AsyncIterable<Buffer>): Promise<{ body: Buffer; error: string | undefined }> => {
    const chunks: Buffer[] = [];
    try {
      for await (const c of input) chunks.push(c);
      return { body: Buffer.concat(chunks), error: undefined };
    } catch (err) {
      return { body: Buffer.concat(chunks), error: (err as NodeJS.ErrnoException).code ?? (err as Error).message };
    }
  };
  const app = (environ: Environ, startResponse: StartResponse): Body | Promise<Body> => {
    const route = String(environ.PATH_INFO);
    probe.calls.push(`${environ.REQUEST_METHOD} ${environ.SCRIPT_NAME}${route}`);
    const query = new URLSearchParams(String(environ.QUERY_STRING));
    const input = environ['gatewire.input'];
    switch (route) {
      case '/no-read':
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return ['ok'];
      case '/hold':
        probe.held.push(input);
        return new Promise<void>((resolve) => releaseAll.push(resolve)).then(async () => {
          const { body, error } = await readAll(input);
          startResponse('200 OK', [['Content-Type', 'text/plain']]);
          return [`${body.length} ${createHash('sha256').update(body).digest('hex')} ${error ?? ''}`];
        });
      case '/wait': {
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        const signal = environ['gatewire.signal'];
        return (async function* () {
          try {
            // A heartbeat: a web server that is gone shows when a write fails.
            for (let i = 0; i < 1000 && !signal.aborted; i++) {
              yield 'waiting\n';
              await new Promise((r) => setTimeout(r, 20));
            }
          } finally {
            if (signal.aborted) probe.aborted++;
            probe.closed++;
          }
        })();
      }
      case '/stream': {
        const n = Number(query.get('n') ?? 4);
        const size = Number(query.get('size') ?? 1024);
        startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
        return (async function* () {
          for (let i = 0; i < n; i++) yield Buffer.alloc(size, 'x');
        })();
      }
      case '/error-after':
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return (async function* () {
          yield 'part-';
          await new Promise((r) => setTimeout(r, 5));
          throw new Error('boom after headers');
        })();
      case '/status':
        startResponse(query.get('s') ?? '200 OK', [['Content-Type', 'text/plain']]);
        return ['status\n'];
      default:
        return readAll(input).then(({ body, error }) => {
          const vars: Record<string, unknown> = {};
          for (const key of Object.keys(environ).sort()) if (!key.includes('.')) vars[key] = environ[key];
          startResponse('200 OK', [['Content-Type', 'application/json']]);
          return [
            JSON.stringify({
              environ: vars,
              protocol: environ['gatewire.protocol'],
              url_scheme: environ['gatewire.url_scheme'],
              input_terminated: environ['gatewire.input_terminated'],
              body: body.toString('latin1'),
              body_error: error ?? null,
              body_length: body.length,
            }),
          ];
        });
    }
  };
  return { service: { app, interface: 'environ' }, probe };
}

/** The JSON the probe app's /echo answers. */
export interface EchoResult {
  environ: Record<string, string>;
  protocol: string;
  url_scheme: string;
  input_terminated: boolean;
  body: string;
  body_error: string | null;
  body_length: number;
}
