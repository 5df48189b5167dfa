// A large body produced chunk by chunk: ?chunks=N&size=BYTES (default 1024 chunks of 64 KiB = 64 MiB).
// Backpressure: the server awaits each chunk's write, so memory stays flat whatever the size.
export default function stream(environ, startResponse) {
  const params = new URLSearchParams(environ.QUERY_STRING);
  const chunks = Number(params.get('chunks') ?? 1024);
  const size = Number(params.get('size') ?? 65536);
  startResponse('200 OK', [
    ['Content-Type', 'application/octet-stream'],
    ['Content-Length', String(chunks * size)],
  ]);
  const block = Buffer.alloc(size, 'x');
  return (function* () {
    for (let i = 0; i < chunks; i++) yield block;
  })();
}
