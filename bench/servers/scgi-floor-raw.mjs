// The floor of Node itself for one-request-per-connection protocols (SCGI, uwsgi): a
// do-nothing server on the raw libuv TCP handle (process.binding('tcp_wrap')), without
// net.Socket, streams or events. Per connection: accept, readStart, one read, one write of a
// fixed hello response, close. Nothing is parsed and no app runs.
//
// This is a measuring stick only: it uses Node's internal bindings (unsupported, may change in
// any release), skips everything a real server needs (half-close, backpressure, timeouts,
// errors; the close after the write sends a RST if the peer sent more than the first read), and
// is not a design for the product. It shows how far below the net.Server floor
// (scgi-floor-net.mjs) Node can go at all.
//
// Usage: node bench/servers/scgi-floor-raw.mjs PORT [HOST] [--proto scgi|uwsgi]
import { responseFor, parseArgs } from './floor-common.mjs';

const { port, host, proto } = parseArgs(process.argv.slice(2));
const response = responseFor(proto);

const { TCP, constants: tcpConstants } = process.binding('tcp_wrap');
const { WriteWrap, streamBaseState, kReadBytesOrError, kLastWriteWasAsync } = process.binding('stream_wrap');

function onWriteDone() {
  this.handle.close();
}

function onRead() {
  const handle = this;
  // EOF or an error before the request: just close.
  if (streamBaseState[kReadBytesOrError] < 0 || handle.answered) {
    if (!handle.closed) {
      handle.closed = true;
      handle.close();
    }
    return;
  }
  handle.answered = true;
  const req = new WriteWrap();
  req.handle = handle;
  req.oncomplete = onWriteDone;
  req.async = false;
  const err = handle.writeBuffer(req, response);
  // A synchronous write is complete (oncomplete is not called); an asynchronous one closes
  // from oncomplete.
  if (err !== 0 || !streamBaseState[kLastWriteWasAsync]) {
    handle.closed = true;
    handle.close();
  }
}

const server = new TCP(tcpConstants.SERVER);
let err = server.bind(host, port);
if (err !== 0) throw new Error(`bind ${host}:${port}: error ${err}`);
server.onconnection = (status, client) => {
  if (status !== 0) return;
  client.onread = onRead;
  client.readStart();
};
err = server.listen(1024);
if (err !== 0) throw new Error(`listen: error ${err}`);
process.on('SIGTERM', () => process.exit(0));
