// Returns its environ (the CGI variables) and the request body as JSON.
// The body is given byte-exactly as a latin1 string when it is at most 1 MiB; its length and
// SHA-256 are always given, so large uploads can be checked without echoing them.
import { createHash } from 'node:crypto';

export default async function echo(environ, startResponse) {
  const hash = createHash('sha256');
  const kept = [];
  let length = 0;
  for await (const chunk of environ['gatewire.input']) {
    hash.update(chunk);
    length += chunk.length;
    if (length <= 1024 * 1024) kept.push(chunk);
  }
  const vars = {};
  for (const key of Object.keys(environ).sort()) if (!key.includes('.')) vars[key] = environ[key];
  const result = {
    environ: vars,
    protocol: environ['gatewire.protocol'],
    url_scheme: environ['gatewire.url_scheme'],
    input_terminated: environ['gatewire.input_terminated'],
    body: length <= 1024 * 1024 ? Buffer.concat(kept).toString('latin1') : null,
    body_length: length,
    body_sha256: hash.digest('hex'),
  };
  startResponse('200 OK', [['Content-Type', 'application/json']]);
  return [JSON.stringify(result)];
}
