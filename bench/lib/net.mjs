// Network helpers: free ports, readiness polling, one checked GET, and a count of the
// established connections on a listening port (from /proc/net/tcp).

import net from 'node:net';
import http from 'node:http';
import { readFileSync } from 'node:fs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Every server in the bench listens on IPv4 loopback only. */
export const HOST = '127.0.0.1';

/**
 * A port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close).
 * Ports handed out in this run are never handed out twice.
 */
const handedOut = new Set();
export async function freePort() {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.on('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const { port: p } = srv.address();
        srv.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port found');
}

/** Try one TCP connect (or unix socket path); resolves true/false, never rejects. */
export function tryConnect(addr, timeoutMs = 500) {
  return new Promise((resolve) => {
    const opts = addr.path ? { path: addr.path } : { host: addr.host ?? '127.0.0.1', port: addr.port };
    const sock = net.connect(opts);
    const done = (ok) => {
      sock.removeAllListeners();
      sock.on('error', () => {});
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/**
 * Poll `addr` until a connect succeeds. `alive()` is checked between attempts so a
 * server that died is reported at once instead of after the timeout.
 * Resolves null on success, or a reason string.
 */
export async function waitForConnect(addr, { timeoutMs, alive }) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const why = alive();
    if (why) return why;
    if (await tryConnect(addr)) return null;
    await sleep(50);
  }
  const where = addr.path ? addr.path : `${addr.host ?? '127.0.0.1'}:${addr.port}`;
  return `nothing accepted connections on ${where} within ${timeoutMs / 1000} s`;
}

/** One GET with a fresh connection. Resolves { status, headers, body } or rejects. */
export function httpGet(url, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('latin1') }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no response within ${timeoutMs / 1000} s`)));
    req.on('error', reject);
  });
}

/**
 * GET `url` and check it is the hello response the whole bench relies on: 200,
 * Content-Type text/plain, the exact body. Resolves null when right, else a reason.
 */
export async function checkHello(url, expect) {
  let res;
  try {
    res = await httpGet(url);
  } catch (err) {
    return `GET ${url} failed: ${err.message}`;
  }
  if (res.status !== expect.status) {
    return `GET ${url} answered ${res.status}, expected ${expect.status} (body ${JSON.stringify(res.body.slice(0, 80))})`;
  }
  const ctype = String(res.headers['content-type'] ?? '');
  if (expect.contentType && !ctype.toLowerCase().startsWith(expect.contentType)) {
    return `GET ${url} answered Content-Type ${JSON.stringify(ctype)}, expected ${expect.contentType}`;
  }
  if (res.body !== expect.body) {
    return `GET ${url} answered body ${JSON.stringify(res.body.slice(0, 80))}, expected ${JSON.stringify(expect.body)}`;
  }
  return null;
}

/**
 * Established TCP connections whose local end is 127.0.0.1:`port` (IPv4 loopback only),
 * read from /proc/net/tcp. Used to show how many keep-alive connections a server held.
 */
export function establishedOn(port) {
  let text;
  try {
    text = readFileSync('/proc/net/tcp', 'latin1');
  } catch {
    return null;
  }
  const want = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let n = 0;
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    // f[1] local address, f[3] state (01 = ESTABLISHED)
    if (f[1] === want && f[3] === '01') n++;
  }
  return n;
}

/**
 * Open `n` keep-alive connections to 127.0.0.1:`port`, send one GET on each and wait for
 * its complete hello response, leaving every connection open and idle. Resolves
 * { sockets, ready } (ready = how many got their response); call close(sockets) after.
 */
export async function holdConnections(port, n, { path = '/', expectBody, timeoutMs = 10000 } = {}) {
  const request = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: keep-alive\r\n\r\n`;
  const sockets = [];
  const one = () =>
    new Promise((resolve) => {
      const sock = net.connect({ host: '127.0.0.1', port });
      sockets.push(sock);
      let got = '';
      const timer = setTimeout(() => resolve(false), timeoutMs);
      sock.on('error', () => {
        clearTimeout(timer);
        resolve(false);
      });
      sock.on('connect', () => sock.write(request));
      sock.on('data', (chunk) => {
        got += chunk.toString('latin1');
        const end = got.indexOf('\r\n\r\n');
        if (end >= 0 && (!expectBody || got.slice(end + 4).includes(expectBody))) {
          clearTimeout(timer);
          resolve(true);
        }
      });
    });
  const results = [];
  // Open in batches so the listen backlog is never the limit.
  for (let i = 0; i < n; i += 32) {
    results.push(...(await Promise.all(Array.from({ length: Math.min(32, n - i) }, one))));
  }
  return { sockets, ready: results.filter(Boolean).length };
}

export function closeAll(sockets) {
  for (const s of sockets) s.destroy();
}
