// node-fastcgi (npm) hello, the only other FastCGI server for Node, for the fastcgi group.
// Usage: node bench/servers/node-fastcgi.mjs PORT [HOST]
import fcgi from 'node-fastcgi';

const port = Number(process.argv[2] ?? process.env.PORT ?? 9000);
const host = process.argv[3] ?? '127.0.0.1';
const body = Buffer.from('Hello, World!\n');
const headers = { 'Content-Type': 'text/plain', 'Content-Length': body.length };

const server = fcgi.createServer((req, res) => {
  res.writeHead(200, headers);
  res.end(body);
});
server.listen(port, host);
process.on('SIGTERM', () => process.exit(0));
