// What the floor servers (scgi-floor-net.mjs, scgi-floor-raw.mjs) share: arguments and the
// fixed hello response of each protocol.

const BODY = 'Hello, World!\n';

/** The whole response as one buffer: SCGI's CGI head, or uwsgi's HTTP status line. */
export function responseFor(proto) {
  const first = proto === 'uwsgi' ? 'HTTP/1.1 200 OK' : 'Status: 200 OK';
  return Buffer.from(`${first}\r\nContent-Type: text/plain\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`, 'latin1');
}

/** `PORT [HOST] [--proto scgi|uwsgi]` → { port, host, proto }. */
export function parseArgs(argv) {
  const rest = [];
  let proto = 'scgi';
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--proto') proto = argv[++i];
    else rest.push(argv[i]);
  }
  if (proto !== 'scgi' && proto !== 'uwsgi') throw new Error(`--proto must be scgi or uwsgi, not ${proto}`);
  const port = Number(rest[0]);
  if (!Number.isInteger(port) || port <= 0) throw new Error('usage: PORT [HOST] [--proto scgi|uwsgi]');
  return { port, host: rest[1] ?? '127.0.0.1', proto };
}
