// The smallest environ app: gatewire serve examples/hello.mjs --http 8080
export default function hello(environ, startResponse) {
  startResponse('200 OK', [['Content-Type', 'text/plain']]);
  return ['Hello, World!\n'];
}
