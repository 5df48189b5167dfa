/**
 * Loopback networking helpers for tests: free ports, readiness probes, temporary folders and
 * two tiny HTTP clients (one raw, one through node:http). Everything here talks only to
 * 127.0.0.1, ::1 or unix sockets.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

const POLL_INTERVAL_MS = 20;

/**
 * A TCP port that was free a moment ago on 127.0.0.1: listen on port 0, read the port the
 * kernel chose, close. Another process may take it before the caller binds it, so peers
 * started on it should retry on "address already in use" (startNginx and startApache do).
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error(`freePort: unexpected address ${String(address)}`));
      });
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves true when a connection to `options` succeeds, false on any error. */
function canConnect(options: net.NetConnectOpts): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(options);
    const done = (ok: boolean): void => {
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.setTimeout(1000, () => done(false));
  });
}

/**
 * Polls until something accepts TCP connections on host:port.
 * @param shouldStop checked between attempts; when it returns a string the wait fails at once
 *   with that text (used to stop waiting for a peer that has already exited).
 */
export async function waitForPort(
  port: number,
  host = '127.0.0.1',
  timeoutMs = 10_000,
  shouldStop?: () => string | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await canConnect({ port, host })) return;
    const stop = shouldStop?.();
    if (stop !== undefined) throw new Error(`waitForPort ${host}:${port}: ${stop}`);
    if (Date.now() > deadline) throw new Error(`waitForPort: nothing listening on ${host}:${port} after ${timeoutMs} ms`);
    await sleep(POLL_INTERVAL_MS);
  }
}

/** Polls until the unix socket at `socketPath` exists and accepts a connection. */
export async function waitForUnixSocket(
  socketPath: string,
  timeoutMs = 10_000,
  shouldStop?: () => string | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (fs.existsSync(socketPath) && (await canConnect({ path: socketPath }))) return;
    const stop = shouldStop?.();
    if (stop !== undefined) throw new Error(`waitForUnixSocket ${socketPath}: ${stop}`);
    if (Date.now() > deadline) throw new Error(`waitForUnixSocket: nothing listening on ${socketPath} after ${timeoutMs} ms`);
    await sleep(POLL_INTERVAL_MS);
  }
}

/** Polls until `file` exists (a pid file, a ready marker). */
export async function waitForFile(file: string, timeoutMs = 10_000, shouldStop?: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (fs.existsSync(file)) return;
    const stop = shouldStop?.();
    if (stop !== undefined) throw new Error(`waitForFile ${file}: ${stop}`);
    if (Date.now() > deadline) throw new Error(`waitForFile: ${file} did not appear after ${timeoutMs} ms`);
    await sleep(POLL_INTERVAL_MS);
  }
}

export interface TmpDir {
  /** Absolute path of the new folder. */
  readonly path: string;
  /** Removes the folder and everything in it; safe to call twice. */
  cleanup(): void;
}

/**
 * A fresh folder under os.tmpdir() (mode 0700, as mkdtemp makes it). Keep prefixes short:
 * unix socket paths inside it must stay under 108 bytes.
 */
export function tmpDir(prefix: string): TmpDir {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix.replace(/[^A-Za-z0-9_.-]/g, '_')}-`));
  return {
    path: dir,
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

export interface RawRequestOptions {
  /** Stop collecting after this long and resolve with what arrived. @default 5000 */
  timeoutMs?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /**
   * Send FIN after the bytes. Off by default: nginx treats a half-closed client as gone
   * and aborts the upstream request.
   */
  halfClose?: boolean;
}

/**
 * Writes `bytes` to host:port exactly as given and resolves with every byte received until
 * the server closes the connection or `timeoutMs` passes (then the socket is destroyed and
 * whatever arrived is returned; a timeout is not an error). Rejects only when the
 * connection cannot be made. Send `Connection: close` to get a prompt answer.
 */
export function rawRequest(port: number, bytes: Buffer | string, options: RawRequestOptions = {}): Promise<Buffer> {
  const { timeoutMs = 5000, host = '127.0.0.1', halfClose = false } = options;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let connected = false;
    let settled = false;
    const socket = net.connect({ port, host });
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.on('connect', () => {
      connected = true;
      socket.write(bytes);
      if (halfClose) socket.end();
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('close', finish);
    socket.on('error', (err) => {
      if (connected) return finish(); // ECONNRESET after an answer: keep what arrived
      settled = true;
      clearTimeout(timer);
      reject(err);
    });
  });
}

export interface HttpGetOptions {
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: Buffer | string;
  /** Abort the request after this long. @default 30000 */
  timeoutMs?: number;
}

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Names and values as received, in order (duplicates kept). */
  rawHeaders: string[];
  body: Buffer;
}

/**
 * One HTTP/1.1 request through node:http with `agent: false` (a fresh connection, closed
 * afterwards), resolving with status, headers and the whole body.
 */
export function httpGet(url: string, options: HttpGetOptions = {}): Promise<HttpResult> {
  const { method = 'GET', headers = {}, body, timeoutMs = 30_000 } = options;
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body: Buffer.concat(chunks),
        }),
      );
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`httpGet ${method} ${url}: no answer after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
