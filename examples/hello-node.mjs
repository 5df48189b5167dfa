// The same hello as a Node (req, res) handler. Exported under the name the loader detects as
// a node handler only with --interface node; we mark it explicitly instead:
export default function helloNode(req, res) {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '14' });
  res.end('Hello, World!\n');
}
export const gatewireInterface = 'node';
