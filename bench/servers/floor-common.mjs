// What the floor servers (scgi-floor-net.mjs, scgi-floor-raw.mjs) share: arguments, the fixed
// hello response of each protocol, and the two optional duties that make a floor a little less
// of a do-nothing (`--work-ns`, `--split`), which show how sensitive these protocols' req/s is
// to a server's work per connection.

const BODY = 'Hello, World!\n';

/** The whole response as one buffer: SCGI's CGI head, or uwsgi's HTTP status line. */
export function responseFor(proto) {
  const first = proto === 'uwsgi' ? 'HTTP/1.1 200 OK' : 'Status: 200 OK';
  return Buffer.from(`${first}\r\nContent-Type: text/plain\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`, 'latin1');
}

/**
 * `PORT [HOST] [--proto scgi|uwsgi] [--work-ns N] [--split]` → { port, host, proto, workNs, split }.
 * --work-ns: spin for N ns per connection before answering (no allocation, no I/O).
 * --split: decode the request head into its name and value strings before answering, the
 * least any gateway does to give an app its variables.
 */
export function parseArgs(argv) {
  const rest = [];
  let proto = 'scgi';
  let workNs = 0;
  let split = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--proto') proto = argv[++i];
    else if (argv[i] === '--work-ns') workNs = Number(argv[++i]);
    else if (argv[i] === '--split') split = true;
    else rest.push(argv[i]);
  }
  if (proto !== 'scgi' && proto !== 'uwsgi') throw new Error(`--proto must be scgi or uwsgi, not ${proto}`);
  if (!Number.isInteger(workNs) || workNs < 0) throw new Error('--work-ns must be a whole number of nanoseconds');
  const port = Number(rest[0]);
  if (!Number.isInteger(port) || port <= 0) throw new Error('usage: PORT [HOST] [--proto scgi|uwsgi] [--work-ns N] [--split]');
  return { port, host: rest[1] ?? '127.0.0.1', proto, workNs, split };
}

/** Busy-waits `ns` nanoseconds on the clock (performance.now() allocates nothing). */
export function spin(ns) {
  const until = performance.now() + ns / 1e6;
  while (performance.now() < until);
}

/**
 * The head's names and values as strings, in wire order: one latin1 decode of the block and a
 * split at NUL for SCGI's netstring, a substring per length-prefixed string for uwsgi's vars.
 * No validation; a first read that does not hold the whole head gives what it holds.
 */
export function splitHead(proto, chunk) {
  if (proto === 'scgi') {
    const colon = chunk.indexOf(58);
    if (colon < 0) return [];
    const length = Number(chunk.latin1Slice(0, colon));
    return chunk.latin1Slice(colon + 1, Math.min(chunk.length, colon + 1 + length)).split('\0');
  }
  if (chunk.length < 4) return [];
  const end = Math.min(chunk.length, 4 + chunk.readUInt16LE(1));
  const text = chunk.latin1Slice(4, end);
  const out = [];
  for (let at = 4; at + 2 <= end; ) {
    const n = chunk[at] | (chunk[at + 1] << 8);
    out.push(text.substring(at + 2 - 4, at + 2 + n - 4));
    at += 2 + n;
  }
  return out;
}
