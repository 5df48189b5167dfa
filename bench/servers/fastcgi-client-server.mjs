// The php group's "typical npm way" to put Node in front of php-fpm: a node:http
// server that forwards each request with the npm `fastcgi-client` package (0.2.0),
// used the way its README and the `php-fpm` npm middleware built on it use it:
// `fastcgiConnector({ host, port | sockFile, skipCheckServer: true })`, then
// `client.request(params, cb)` per request, the request body piped into
// `request.stdin`, `request.stdout` collected and split into the CGI head and the body.
//
// fastcgi-client opens one connection per request (php-fpm announces
// FCGI_MPXS_CONNS 0, so it never multiplexes and never sends FCGI_KEEP_CONN).
// skipCheckServer: true as the `php-fpm` middleware sets it; without it the client
// asks php-fpm for FCGI_MAX_CONNS (= pm.max_children) and fails every request beyond
// that many in flight with "Requests reached maximum allowed concurrency limit".
//
// usage: node fastcgi-client-server.mjs PORT HOST --fpm HOST:PORT|unix:PATH --root DIR

import http from 'node:http';
import { join, normalize } from 'node:path';
import fastcgiConnector from 'fastcgi-client';

function parse(argv) {
  const [port, host = '127.0.0.1', ...rest] = argv;
  const opts = { port: Number(port), host, fpm: '127.0.0.1:9000', root: process.cwd() };
  for (let i = 0; i < rest.length; i += 2) {
    if (rest[i] === '--fpm') opts.fpm = rest[i + 1];
    else if (rest[i] === '--root') opts.root = rest[i + 1];
    else throw new Error(`unknown argument ${rest[i]}`);
  }
  if (!Number.isInteger(opts.port)) throw new Error('usage: fastcgi-client-server.mjs PORT HOST --fpm HOST:PORT|unix:PATH --root DIR');
  return opts;
}

const opts = parse(process.argv.slice(2));
const fpm = opts.fpm.startsWith('unix:')
  ? { sockFile: opts.fpm.slice(5) }
  : { host: opts.fpm.slice(0, opts.fpm.lastIndexOf(':')), port: Number(opts.fpm.slice(opts.fpm.lastIndexOf(':') + 1)) };

const client = fastcgiConnector({ ...fpm, skipCheckServer: true });
const ready = new Promise((resolve) => client.once('ready', resolve));
client.on('error', (err) => console.error(`fastcgi-client: ${err.message}`));

const CRLFCRLF = Buffer.from('\r\n\r\n');

/** The CGI/1.1 variables nginx's fastcgi.conf sends, plus HTTP_* from the request head. */
function paramsFor(req) {
  const q = req.url.indexOf('?');
  const path = q < 0 ? req.url : req.url.slice(0, q);
  let file;
  try {
    file = join(opts.root, normalize(`/${decodeURIComponent(path)}`));
  } catch {
    file = join(opts.root, normalize(`/${path}`));
  }
  const query = q < 0 ? '' : req.url.slice(q + 1);
  const sock = req.socket;
  const params = {
    SCRIPT_FILENAME: file,
    QUERY_STRING: query,
    REQUEST_METHOD: req.method,
    CONTENT_TYPE: req.headers['content-type'] ?? '',
    CONTENT_LENGTH: req.headers['content-length'] ?? '',
    SCRIPT_NAME: path,
    REQUEST_URI: req.url,
    DOCUMENT_URI: path,
    DOCUMENT_ROOT: opts.root,
    SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
    REQUEST_SCHEME: 'http',
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_SOFTWARE: `node/${process.version} fastcgi-client`,
    REMOTE_ADDR: sock.remoteAddress,
    REMOTE_PORT: sock.remotePort,
    SERVER_ADDR: sock.localAddress,
    SERVER_PORT: sock.localPort,
    SERVER_NAME: (req.headers.host ?? opts.host).replace(/:\d+$/, ''),
    REDIRECT_STATUS: 200,
  };
  for (const [name, value] of Object.entries(req.headers)) {
    if (name === 'content-type' || name === 'content-length') continue;
    params[`HTTP_${name.toUpperCase().replace(/-/g, '_')}`] = Array.isArray(value) ? value.join(', ') : value;
  }
  return params;
}

function fail(res, status, message) {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'Content-Type': 'text/plain' });
  res.end(`${message}\n`);
}

const server = http.createServer(async (req, res) => {
  await ready;
  client.request(paramsFor(req), (err, request) => {
    if (err) {
      fail(res, 502, `fastcgi-client: ${err.message}`);
      return;
    }
    const chunks = [];
    request.stdout.on('data', (c) => chunks.push(c));
    request.stderr.on('data', (c) => process.stderr.write(c));
    request.stdout.on('end', () => {
      const status = request.getExitStatus();
      if (status instanceof Error) {
        fail(res, 502, `fastcgi-client: ${status.message}`);
        return;
      }
      const out = Buffer.concat(chunks);
      const end = out.indexOf(CRLFCRLF);
      if (end < 0) {
        fail(res, 502, 'php-fpm sent no response head');
        return;
      }
      let code = 200;
      let reason;
      const headers = {};
      for (const line of out.toString('latin1', 0, end).split('\r\n')) {
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === 'status') {
          code = Number.parseInt(value, 10) || 200;
          reason = value.replace(/^\d+\s*/, '') || undefined;
        } else {
          (headers[name] ??= []).push(value);
        }
      }
      if (reason) res.writeHead(code, reason, headers);
      else res.writeHead(code, headers);
      res.end(out.subarray(end + 4));
    });
    req.pipe(request.stdin);
  });
});

server.listen(opts.port, opts.host);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
