// The floor of any net.Server design for one-request-per-connection protocols (SCGI, uwsgi):
// a do-nothing server that answers every connection's first 'data' event with a fixed hello
// response and end(). It does not parse the request, keep state or run an app; all it pays
// for is what node:net costs per connection (accept, net.Socket and its streams, one read,
// one write, shutdown, close). No gateway front built on net.Server can cost less per request.
//
// Usage: node bench/servers/scgi-floor-net.mjs PORT [HOST] [--proto scgi|uwsgi]
//   scgi  answers with a CGI head (`Status: 200 OK`), as an SCGI application does;
//   uwsgi answers with an HTTP status line (`HTTP/1.1 200 OK`), as a uwsgi application does.
import net from 'node:net';
import { responseFor, parseArgs } from './floor-common.mjs';

const { port, host, proto } = parseArgs(process.argv.slice(2));
const response = responseFor(proto);

const server = net.createServer((socket) => {
  socket.once('data', () => socket.end(response));
  socket.on('error', () => {}); // a peer reset: nothing to do
});
server.listen(port, host);
process.on('SIGTERM', () => process.exit(0));
