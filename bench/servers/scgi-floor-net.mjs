// The floor of any net.Server design for one-request-per-connection protocols (SCGI, uwsgi):
// a do-nothing server that answers every connection's first 'data' event with a fixed hello
// response and end(). It does not parse the request, keep state or run an app; all it pays
// for is what node:net costs per connection (accept, net.Socket and its streams, one read,
// one write, shutdown, close). No gateway front built on net.Server can cost less per request.
//
// Usage: node bench/servers/scgi-floor-net.mjs PORT [HOST] [--proto scgi|uwsgi] [--work-ns N] [--split]
//   scgi  answers with a CGI head (`Status: 200 OK`), as an SCGI application does;
//   uwsgi answers with an HTTP status line (`HTTP/1.1 200 OK`), as a uwsgi application does.
//   --work-ns N  spins N ns per connection first; --split decodes the head into its strings
//                first (floor-common.mjs). Both measure how req/s reacts to a little work.
import net from 'node:net';
import { responseFor, parseArgs, spin, splitHead } from './floor-common.mjs';

const { port, host, proto, workNs, split } = parseArgs(process.argv.slice(2));
const response = responseFor(proto);
let seen = 0;

const server = net.createServer((socket) => {
  socket.once('data', (chunk) => {
    if (workNs > 0) spin(workNs);
    if (split) seen += splitHead(proto, chunk).length;
    socket.end(response);
  });
  socket.on('error', () => {}); // a peer reset: nothing to do
});
server.listen(port, host);
process.on('SIGTERM', () => {
  if (split && seen === 0) console.error('floor: --split saw no head strings');
  process.exit(0);
});
