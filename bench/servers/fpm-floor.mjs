// The php group's floor: the least any Node front can do per request in front of php-fpm
// with kept connections. node:http takes the request; one fixed, pre-encoded FastCGI
// request for SCRIPT (BEGIN_REQUEST with FCGI_KEEP_CONN, a few PARAMS, the empty PARAMS and
// STDIN records) goes out on one of N kept connections (a queue when all are busy); the
// answer is not parsed: the request is over when the bytes end with an END_REQUEST record,
// and the client gets a fixed "Hello, World!\n". No routing, no environ, no head parsing,
// no streaming: what is left is node:http, two socket writes and the reads.
//
// usage: node fpm-floor.mjs PORT HOST --fpm HOST:PORT|unix:PATH --script FILE [--conns N]

import http from 'node:http';
import net from 'node:net';

const [port, host = '127.0.0.1', ...rest] = process.argv.slice(2);
const opts = { fpm: '127.0.0.1:9000', script: '', conns: 2 };
for (let i = 0; i < rest.length; i += 2) {
  if (rest[i] === '--fpm') opts.fpm = rest[i + 1];
  else if (rest[i] === '--script') opts.script = rest[i + 1];
  else if (rest[i] === '--conns') opts.conns = Number(rest[i + 1]);
  else throw new Error(`unknown argument ${rest[i]}`);
}

function record(type, content) {
  const pad = (8 - (content.length % 8)) % 8;
  const h = Buffer.from([1, type, 0, 1, content.length >> 8, content.length & 0xff, pad, 0]);
  return Buffer.concat([h, content, Buffer.alloc(pad)]);
}
function pairs(list) {
  return Buffer.concat(list.map(([n, v]) => Buffer.concat([Buffer.from([n.length, v.length]), Buffer.from(n + v, 'latin1')])));
}
const REQUEST = Buffer.concat([
  record(1, Buffer.from([0, 1, 1, 0, 0, 0, 0, 0])),
  record(4, pairs([['SCRIPT_FILENAME', opts.script], ['SCRIPT_NAME', '/hello.php'], ['REQUEST_METHOD', 'GET'], ['QUERY_STRING', ''], ['SERVER_PROTOCOL', 'HTTP/1.1'], ['CONTENT_LENGTH', '0']])),
  record(4, Buffer.alloc(0)),
  record(5, Buffer.alloc(0)),
]);
const END = Buffer.from([1, 3, 0, 1, 0, 8, 0, 0]);
const BODY = 'Hello, World!\n';

const idle = [];
const queue = [];
function connect() {
  const s = opts.fpm.startsWith('unix:') ? net.connect(opts.fpm.slice(5)) : net.connect(Number(opts.fpm.split(':')[1]), opts.fpm.split(':')[0]);
  s.setNoDelay(true);
  s.tail = Buffer.alloc(0);
  s.on('data', (chunk) => {
    const t = s.tail.length + chunk.length >= 16 ? Buffer.concat([s.tail, chunk]).subarray(-16) : Buffer.concat([s.tail, chunk]);
    s.tail = t;
    if (t.length === 16 && t.subarray(0, 8).equals(END)) {
      s.tail = Buffer.alloc(0);
      const res = s.res;
      s.res = undefined;
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': BODY.length });
      res.end(BODY);
      const next = queue.shift();
      if (next) send(s, next);
      else idle.push(s);
    }
  });
  s.on('error', (err) => console.error(`fpm-floor: ${err.message}`));
  return s;
}
function send(s, res) {
  s.res = res;
  s.write(REQUEST);
}
for (let i = 0; i < opts.conns; i++) idle.push(connect());

http
  .createServer((req, res) => {
    req.resume();
    const s = idle.pop();
    if (s) send(s, res);
    else queue.push(res);
  })
  .listen(Number(port), host);
