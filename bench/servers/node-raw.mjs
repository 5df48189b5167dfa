// The baseline: the smallest node:http server that answers the hello response.
// Usage: node bench/servers/node-raw.mjs PORT [HOST]
import http from 'node:http';

const port = Number(process.argv[2] ?? process.env.PORT ?? 8080);
const host = process.argv[3] ?? '127.0.0.1';
const body = Buffer.from('Hello, World!\n');
const headers = { 'Content-Type': 'text/plain', 'Content-Length': body.length };

const server = http.createServer((req, res) => {
  res.writeHead(200, headers);
  res.end(body);
});
server.listen(port, host);
process.on('SIGTERM', () => server.close(() => process.exit(0)).closeAllConnections());
