/**
 * A small FastCGI client (the web-server side) for tests: a connection object that sends any
 * record or raw bytes and collects every record that comes back, `fcgiRequest` for one whole
 * exchange, a CGI response-head parser, nginx-style params, and the `fastcgiFront` harness of
 * the behaviour matrix.
 *
 * Incoming records are framed here by our own reader (not the codec under test), keeping the
 * padding length of each, so tests can check what the server writes (F-4).
 */
import net from 'node:net';
import type { Service } from '../../src/app.js';
import { silentLogger } from '../../src/log.js';
import { resolveOptions } from '../../src/options.js';
import { Gateway } from '../../src/server.js';
import {
  RecordType,
  Role,
  encodeAbortRequest,
  encodeBeginRequest,
  encodeGetValues,
  encodeParamsStream,
  encodeRecord,
  encodeStdin,
} from '../../protocols/fastcgi/index.js';
import type { FrontHarness, MatrixRequest, MatrixResponse, Running } from './fronts.js';

export type Pair = [name: string, value: string];

/** Where a FastCGI listener is: TCP port (127.0.0.1) or unix socket path. */
export type FcgiAddress = { host?: string; port: number } | { path: string };

/** One record as the server wrote it. */
export interface FcgiRecord {
  type: number;
  id: number;
  content: Buffer;
  padding: number;
  /** Order of arrival on the connection, from 0. */
  seq: number;
}

export interface BeginOptions {
  role?: number;
  keepConn?: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Default bound for waits: a test that needs longer says so. Only guards against hangs. */
export const WAIT_MS = 10_000;

/**
 * One client connection. Everything the server writes is framed into `records`; `ended`
 * (FIN from the server), `closed` and `error` tell how the connection went. A malformed frame
 * from the server is kept in `badFrame` (tests assert it stays undefined).
 */
export class FcgiConn {
  readonly records: FcgiRecord[] = [];
  bytesReceived = 0;
  ended = false;
  closed = false;
  /** The client destroyed the socket itself. */
  destroyedByUs = false;
  error: NodeJS.ErrnoException | undefined;
  badFrame: string | undefined;
  private pending: Buffer = Buffer.alloc(0);
  private readonly waiters = new Set<() => void>();

  private constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.error ??= err;
      this.wake();
    });
  }

  static open(addr: FcgiAddress): Promise<FcgiConn> {
    return new Promise((resolve, reject) => {
      const socket = 'path' in addr ? net.connect(addr.path) : net.connect(addr.port, addr.host ?? '127.0.0.1');
      const conn = new FcgiConn(socket);
      const onError = (err: Error): void => reject(err);
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        resolve(conn);
      });
    });
  }

  private onData(chunk: Buffer): void {
    this.bytesReceived += chunk.length;
    let buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (buf.length >= 8) {
      if (buf[0] !== 1) {
        this.badFrame ??= `version byte ${buf[0]} at record ${this.records.length}`;
        buf = Buffer.alloc(0);
        break;
      }
      const cl = buf.readUInt16BE(4);
      const pad = buf[6] as number;
      if (buf.length < 8 + cl + pad) break;
      this.records.push({ type: buf[1] as number, id: buf.readUInt16BE(2), content: Buffer.from(buf.subarray(8, 8 + cl)), padding: pad, seq: this.records.length });
      buf = buf.subarray(8 + cl + pad);
    }
    this.pending = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf);
    this.wake();
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Bytes of an incomplete record the server left behind (0 on a record boundary). */
  get leftover(): number {
    return this.pending.length;
  }

  /** True once the connection can carry nothing more from the server. */
  get gone(): boolean {
    return this.ended || this.closed || this.error !== undefined;
  }

  /** Writes bytes as they are; resolves when they were handed to the kernel (or failed). */
  write(...bufs: Uint8Array[]): Promise<void> {
    if (this.socket.destroyed || this.socket.writableEnded) return Promise.resolve();
    const data = bufs.length === 1 ? (bufs[0] as Uint8Array) : Buffer.concat(bufs);
    return new Promise((resolve) => {
      this.socket.write(data, () => resolve());
    });
  }

  /** Writes, waiting for 'drain' when the socket says so (large bodies). */
  async writeFlow(data: Uint8Array): Promise<void> {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    if (!this.socket.write(data)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.socket.off('drain', done);
          this.socket.off('close', done);
          resolve();
        };
        this.socket.on('drain', done);
        this.socket.on('close', done);
      });
    }
  }

  record(type: number, id: number, content?: Uint8Array, padding?: number): Promise<void> {
    return this.write(encodeRecord(type, id, content, padding));
  }

  begin(id: number, opts: BeginOptions = {}): Promise<void> {
    return this.write(encodeBeginRequest(id, opts.role ?? Role.Responder, opts.keepConn ? 1 : 0));
  }

  /** The PARAMS stream with its EOS; records of at most `recordSize` bytes (cut anywhere). */
  params(id: number, pairs: Iterable<readonly [string, string]>, recordSize?: number): Promise<void> {
    return this.write(encodeParamsStream(id, pairs, recordSize));
  }

  /** Body bytes as STDIN records (none for empty data); `eos` adds the empty record. */
  async stdin(id: number, data: Uint8Array, opts: { eos?: boolean; recordSize?: number } = {}): Promise<void> {
    const size = opts.recordSize;
    if (size === undefined) {
      for (const part of encodeStdin(id, data)) await this.writeFlow(part);
    } else {
      for (let off = 0; off < data.length; off += size) await this.writeFlow(encodeRecord(RecordType.Stdin, id, data.subarray(off, off + size)));
    }
    if (opts.eos ?? true) await this.write(encodeRecord(RecordType.Stdin, id));
  }

  abort(id: number): Promise<void> {
    return this.write(encodeAbortRequest(id));
  }

  getValues(names: Iterable<string>): Promise<void> {
    return this.write(encodeGetValues(names));
  }

  /**
   * Resolves when `pred()` holds, or false when the connection is gone first or `timeoutMs`
   * passes (a bound against hangs, not a measurement).
   */
  until(pred: () => boolean, timeoutMs = WAIT_MS): Promise<boolean> {
    if (pred()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = (): void => {
        if (pred()) finish(true);
        else if (this.gone) finish(false);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      const finish = (v: boolean): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(v);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Resolves when the server closed or half-closed the connection; false after `timeoutMs`. */
  untilGone(timeoutMs = WAIT_MS): Promise<boolean> {
    return this.until(() => this.gone, timeoutMs);
  }

  recordsOf(id: number, from = 0): FcgiRecord[] {
    return this.records.filter((r) => r.id === id && r.seq >= from);
  }

  endOf(id: number, from = 0): FcgiRecord | undefined {
    return this.records.find((r) => r.id === id && r.seq >= from && r.type === RecordType.EndRequest);
  }

  /** The END_REQUEST of `id` (arrived after `from`), or undefined if the connection went first. */
  async waitEnd(id: number, from = 0, timeoutMs = WAIT_MS): Promise<FcgiRecord | undefined> {
    await this.until(() => this.endOf(id, from) !== undefined, timeoutMs);
    return this.endOf(id, from);
  }

  stream(type: number, id: number, from = 0): Buffer {
    return Buffer.concat(this.recordsOf(id, from).filter((r) => r.type === type).map((r) => r.content));
  }

  stdoutOf(id: number, from = 0): Buffer {
    return this.stream(RecordType.Stdout, id, from);
  }

  /**
   * A round trip through the server's record loop: GET_VALUES, then wait for its answer.
   * Everything the server wrote before handling it has then arrived. Returns the answer.
   */
  async barrier(timeoutMs = WAIT_MS): Promise<FcgiRecord | undefined> {
    const from = this.records.length;
    await this.getValues(['FCGI_MPXS_CONNS']);
    await this.until(() => this.records.some((r) => r.seq >= from && r.type === RecordType.GetValuesResult), timeoutMs);
    return this.records.find((r) => r.seq >= from && r.type === RecordType.GetValuesResult);
  }

  /** Half-close: the server sees EOF. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.destroyedByUs = true;
    this.socket.destroy();
  }
}

export interface FcgiRequestOptions {
  params: Iterable<readonly [string, string]>;
  /** Body bytes; sent as STDIN records then STDIN EOS. */
  stdin?: Buffer;
  /** Body as separate pieces, each written as its own STDIN record(s) (overrides `stdin`). */
  stdinChunks?: Buffer[];
  /** Largest STDIN record (default 65528). */
  stdinRecordSize?: number;
  /** Largest PARAMS record (default 65528; 1 splits every byte). */
  paramsRecordSize?: number;
  id?: number;
  keepConn?: boolean;
  role?: number;
  /** Leave out STDIN EOS (the web server is still streaming). */
  noStdinEos?: boolean;
  /** Destroy the connection once this many STDOUT bytes arrived (a client that went away). */
  destroyAfterStdoutBytes?: number;
  /** Called with the STDOUT content so far on every event of the connection (the matrix's head clock). */
  onStdout?: (stdout: Buffer) => void;
  /** Bound for the whole exchange (guards against hangs). */
  timeoutMs?: number;
}

export interface FcgiResult {
  stdout: Buffer;
  stderr: Buffer;
  /** From END_REQUEST; -1 when none arrived. */
  appStatus: number;
  protocolStatus: number;
  /** Records of this request id, in order. */
  records: FcgiRecord[];
  /** END_REQUEST arrived. */
  completed: boolean;
  /** The server closed (or half-closed, or reset) the connection. */
  closedByServer: boolean;
  /** The connection was reset (ECONNRESET) rather than closed cleanly. */
  reset: boolean;
}

/**
 * One request on `target`: a fresh connection to an address (closed afterwards unless the
 * server keeps it and keepConn is set), or an open FcgiConn (left open).
 */
export async function fcgiRequest(target: FcgiAddress | FcgiConn, opts: FcgiRequestOptions): Promise<FcgiResult> {
  const own = !(target instanceof FcgiConn);
  const conn = target instanceof FcgiConn ? target : await FcgiConn.open(target);
  const id = opts.id ?? 1;
  const from = conn.records.length;
  const timeoutMs = opts.timeoutMs ?? WAIT_MS * 3;
  try {
    await conn.write(encodeBeginRequest(id, opts.role ?? Role.Responder, opts.keepConn ? 1 : 0), encodeParamsStream(id, opts.params, opts.paramsRecordSize));
    const sending = (async (): Promise<void> => {
      const chunks = opts.stdinChunks ?? (opts.stdin === undefined ? [] : [opts.stdin]);
      for (const c of chunks) {
        if (conn.gone) return;
        await conn.stdin(id, c, { eos: false, ...(opts.stdinRecordSize === undefined ? {} : { recordSize: opts.stdinRecordSize }) });
      }
      if (!opts.noStdinEos && !conn.gone) await conn.write(encodeRecord(RecordType.Stdin, id));
    })();
    const limit = opts.destroyAfterStdoutBytes;
    await conn.until(() => {
      opts.onStdout?.(conn.stdoutOf(id, from));
      if (limit !== undefined && !conn.destroyedByUs && conn.stdoutOf(id, from).length >= limit) conn.destroy();
      return conn.endOf(id, from) !== undefined || conn.destroyedByUs;
    }, timeoutMs);
    // keepConn 0: the server ends the connection after END_REQUEST (F-40); wait for it.
    if (own && !opts.keepConn && !conn.destroyedByUs && conn.endOf(id, from) !== undefined) await conn.untilGone(timeoutMs);
    await Promise.race([sending, sleep(50)]);
  } finally {
    if (own && !conn.closed) conn.destroy();
  }
  const records = conn.recordsOf(id, from);
  const end = records.find((r) => r.type === RecordType.EndRequest);
  return {
    stdout: conn.stdoutOf(id, from),
    stderr: conn.stream(RecordType.Stderr, id, from),
    appStatus: end === undefined ? -1 : end.content.readUInt32BE(0),
    protocolStatus: end === undefined ? -1 : (end.content[4] as number),
    records,
    completed: end !== undefined,
    closedByServer: conn.ended || conn.error !== undefined || (conn.closed && !conn.destroyedByUs),
    reset: conn.error?.code === 'ECONNRESET',
  };
}

export interface CgiResponse {
  status: number;
  reason: string;
  /** Header lines in order, as sent. */
  lines: string[];
  /** Lower-cased name → values. */
  headers: Record<string, string[]>;
  body: Buffer;
}

/**
 * Parses the CGI head at the start of STDOUT: header lines up to an empty line; `Status: NNN
 * reason` gives the status (then removed from `headers`), else 302 with Location, else 200.
 * Returns null when no complete head is there.
 */
export function parseCgiResponse(stdout: Buffer): CgiResponse | null {
  const end = stdout.indexOf('\r\n\r\n');
  if (end === -1) return null;
  const lines = end === 0 ? [] : stdout.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string[]> = {};
  let status = 0;
  let reason = '';
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) return null;
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'status') {
      const m = /^(\d{3})(?: (.*))?$/.exec(value);
      if (m === null) return null;
      status = Number(m[1]);
      reason = m[2] ?? '';
      continue;
    }
    (headers[name] ??= []).push(value);
  }
  if (status === 0) status = headers.location === undefined ? 200 : 302;
  return { status, reason, lines, headers, body: stdout.subarray(end + 4) };
}

export interface NginxRequest {
  method?: string;
  /** Raw request target: path and query, as the client sent it. */
  uri: string;
  headers?: Record<string, string>;
  /** Body length; undefined = no body (CONTENT_LENGTH ""); 'stream' = unknown length (""). */
  contentLength?: number | 'stream';
  serverPort?: number;
  remoteAddr?: string;
  remotePort?: number;
  https?: boolean;
  /** Extra params appended after the standard ones (fastcgi_param lines of a location). */
  extra?: Array<readonly [string, string]>;
}

/**
 * The params nginx sends with `include fastcgi_params` (conf/fastcgi_params) plus one HTTP_*
 * per request header: SCRIPT_NAME is the whole decoded path ($fastcgi_script_name = $uri), no
 * PATH_INFO, CONTENT_TYPE/CONTENT_LENGTH empty strings when absent (F-21), HTTP_CONTENT_* too.
 */
export function nginxParams(req: NginxRequest): Pair[] {
  const q = req.uri.indexOf('?');
  const rawPath = q === -1 ? req.uri : req.uri.slice(0, q);
  const query = q === -1 ? '' : req.uri.slice(q + 1);
  let uri: string;
  try {
    uri = decodeURIComponent(rawPath);
  } catch {
    uri = rawPath;
  }
  uri = Buffer.from(uri, 'utf8').toString('latin1'); // nginx passes bytes; params are latin1 here
  const headers = req.headers ?? {};
  const lower: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) lower[k.toLowerCase()] = v;
  const cl = req.contentLength === undefined || req.contentLength === 'stream' ? '' : String(req.contentLength);
  const pairs: Pair[] = [
    ['QUERY_STRING', query],
    ['REQUEST_METHOD', req.method ?? 'GET'],
    ['CONTENT_TYPE', lower['content-type'] ?? ''],
    ['CONTENT_LENGTH', cl],
    ['SCRIPT_NAME', uri],
    ['REQUEST_URI', req.uri],
    ['DOCUMENT_URI', uri],
    ['DOCUMENT_ROOT', '/var/www/html'],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['REQUEST_SCHEME', req.https ? 'https' : 'http'],
    ...(req.https ? ([['HTTPS', 'on']] as Pair[]) : []),
    ['GATEWAY_INTERFACE', 'CGI/1.1'],
    ['SERVER_SOFTWARE', 'nginx/1.22.1'],
    ['REMOTE_ADDR', req.remoteAddr ?? '127.0.0.1'],
    ['REMOTE_PORT', String(req.remotePort ?? 54321)],
    ['SERVER_ADDR', '127.0.0.1'],
    ['SERVER_PORT', String(req.serverPort ?? 80)],
    ['SERVER_NAME', 'localhost'],
    ['REDIRECT_STATUS', '200'],
  ];
  if (lower.host === undefined) pairs.push(['HTTP_HOST', 'localhost']);
  for (const [name, value] of Object.entries(headers)) pairs.push([`HTTP_${name.toUpperCase().replace(/-/g, '_')}`, value]);
  if (req.contentLength !== undefined && req.contentLength !== 'stream' && lower['content-length'] === undefined) pairs.push(['HTTP_CONTENT_LENGTH', cl]);
  for (const p of req.extra ?? []) pairs.push([p[0], p[1]]);
  return pairs;
}

/** Starts a Gateway with FastCGI listeners only; flags as in resolveOptions (strings). */
export async function startFastcgiGateway(
  service: Service,
  flags: Record<string, string | string[]> = {},
  logger = silentLogger(),
): Promise<{ gateway: Gateway; addr: FcgiAddress; port: number }> {
  const options = resolveOptions({ fastcgi: ['127.0.0.1:0'], ...flags }, {});
  const gateway = new Gateway(service, options, logger);
  const listeners = await gateway.listen();
  const first = listeners[0]?.address;
  if (first?.kind === 'unix') return { gateway, addr: { path: first.path }, port: 0 };
  const port = (first as { port: number }).port;
  return { gateway, addr: { port }, port };
}

/** The matrix request over FastCGI with nginx-style params; truncation as a web server sees it. */
export async function fastcgiMatrixRequest(addr: FcgiAddress, port: number, req: MatrixRequest): Promise<MatrixResponse> {
  const body = req.body === undefined ? undefined : Buffer.from(req.body);
  const method = req.method ?? 'GET';
  const headers = { Host: 'localhost', ...(req.headers ?? {}) };
  const params = nginxParams({
    method,
    uri: req.path,
    headers,
    ...(body === undefined ? {} : { contentLength: req.chunked ? ('stream' as const) : body.length }),
    serverPort: port,
  });
  const res = await fcgiRequest(addr, {
    params,
    ...(body === undefined ? {} : req.chunked ? { stdinChunks: splitBody(body) } : { stdin: body }),
    ...(req.abortAfterBytes === undefined ? {} : { destroyAfterStdoutBytes: req.abortAfterBytes }),
  });
  const parsed = parseCgiResponse(res.stdout);
  if (parsed === null) {
    return { status: 0, headers: {}, body: res.stdout, truncated: true };
  }
  // A web server reports a failure when the connection is cut before END_REQUEST, or when
  // END_REQUEST carries a non-zero appStatus after the head went out (F-38).
  const truncated = !res.completed || res.appStatus !== 0;
  return { status: parsed.status, headers: parsed.headers, body: parsed.body, truncated };
}

function splitBody(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const step = Math.max(1, Math.ceil(body.length / 3));
  for (let i = 0; i < body.length; i += step) out.push(body.subarray(i, i + step));
  return out;
}

/** The behaviour matrix over FastCGI: a Gateway with a FastCGI listener on 127.0.0.1:0. */
export const fastcgiFront: FrontHarness = {
  name: 'fastcgi',
  async start(service, opts = {}): Promise<Running> {
    const { gateway, addr, port } = await startFastcgiGateway(service, { mount: opts.mount ?? '' });
    return {
      request: (req) => fastcgiMatrixRequest(addr, port, req),
      close: () => gateway.close(1000),
    };
  },
};
