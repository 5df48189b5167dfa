/**
 * The `gatewire cgi` harness of the behaviour matrix: every request is one runCgiChild() call in
 * this process (src/fronts/cgi.ts), with the environment and stdin a web server gives a CGI
 * program (RFC 3875 §4.1) and stdout captured, then read back as the web server reads a CGI
 * response: `Status: NNN Reason` (or 200), header lines, an empty line, the body.
 *
 * The program is mapped at the mount (SCRIPT_NAME, `""` without one) and gets the rest of the
 * decoded path as PATH_INFO, like Apache's `ScriptAlias /app /srv/app.cgi`.
 */
import { Readable, Writable } from 'node:stream';
import { runCgiChild } from '../../src/fronts/cgi.js';
import { resolveOptions } from '../../src/options.js';
import { parseCgiResponse } from './fcgi-client.js';
import type { MatrixFront, MatrixRequest, MatrixResult } from './fronts.js';
import { HeadClock, decodedPath, queryOf } from './scgi-client.js';

/** The environment a web server gives the CGI program for `req`, with the program at `mount`. */
export function cgiEnvironment(req: MatrixRequest, mount: string, bodyLength: number | undefined): Record<string, string> {
  const q = req.path.indexOf('?');
  const path = decodedPath(q === -1 ? req.path : req.path.slice(0, q));
  if (mount !== '' && path !== mount && !path.startsWith(`${mount}/`)) {
    throw new Error(`cgi harness: ${JSON.stringify(req.path)} is outside the program's URL ${mount}: a web server would not run it`);
  }
  const env: Record<string, string> = {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_SOFTWARE: 'matrix-web-server/1.0',
    SERVER_NAME: 'localhost',
    SERVER_PORT: '80',
    SERVER_PROTOCOL: 'HTTP/1.1',
    REQUEST_SCHEME: 'http',
    REQUEST_METHOD: req.method ?? 'GET',
    REQUEST_URI: req.path,
    SCRIPT_NAME: mount,
    SCRIPT_FILENAME: '/srv/cgi-bin/app.cgi',
    PATH_INFO: path.slice(mount.length),
    QUERY_STRING: queryOf(req.path),
    REMOTE_ADDR: '127.0.0.1',
    REMOTE_PORT: '54321',
    PATH: '/usr/bin:/bin',
  };
  let host = false;
  for (const [name, value] of Object.entries(req.headers ?? {})) {
    const lower = name.toLowerCase();
    if (lower === 'content-type') env.CONTENT_TYPE = value;
    else if (lower === 'content-length' || lower === 'transfer-encoding') continue; // the server's framing, not the program's
    else {
      if (lower === 'host') host = true;
      env[`HTTP_${name.toUpperCase().replace(/-/g, '_')}`] = value;
    }
  }
  if (!host) env.HTTP_HOST = 'localhost';
  if (bodyLength !== undefined) env.CONTENT_LENGTH = String(bodyLength);
  else delete env.CONTENT_TYPE;
  return env;
}

/** stdout of the program: keeps every byte, and closes itself (the web server gone) after `abortAfter` body bytes. */
class CapturedStdout extends Writable {
  readonly chunks: Buffer[] = [];
  /** We closed it: the client went away. */
  closedByUs = false;
  private total = 0;
  private headEnd = -1;

  constructor(
    private readonly abortAfter: number | undefined,
    readonly clock: HeadClock | undefined,
  ) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.chunks.push(chunk);
    this.clock?.see(Buffer.concat(this.chunks));
    this.total += chunk.length;
    if (this.headEnd < 0) {
      const at = Buffer.concat(this.chunks).indexOf('\r\n\r\n');
      if (at >= 0) this.headEnd = at + 4;
    }
    done();
    if (this.abortAfter !== undefined && this.headEnd >= 0 && this.total - this.headEnd >= this.abortAfter && !this.closedByUs) {
      this.closedByUs = true;
      this.destroy(); // the runner sees stdout close: the client is gone (K-13)
    }
  }
}

function stdinOf(body: Buffer | undefined): Readable {
  const stdin = new Readable({ read: () => undefined });
  if (body !== undefined && body.length > 0) stdin.push(body);
  stdin.push(null);
  return stdin;
}

/**
 * The CGI front. Of the server options only --max-body-bytes has a CGI equivalent (the
 * runner's maxBodyBytes, as `gatewire cgi --max-body-bytes` passes it); the header limits are the
 * web server's, and the cases that need them are skipped here.
 */
export const cgiFront: MatrixFront = {
  name: 'cgi',
  framing: [],
  cannot: {
    headLimit: "a CGI program gets no header block: the web server's own header limit applies before it runs",
    nulPath: 'a web server cannot put a NUL byte into an environment variable (C strings), so it never runs a CGI program with one in PATH_INFO',
    streamedBody: 'CGI needs CONTENT_LENGTH (RFC 3875 §4.1.2): the web server buffers a chunked body and sends its length',
    httpWire: 'the web server parses HTTP (request line, Transfer-Encoding, CONNECT, its own timeouts) and answers these itself',
    inflightLimit: 'one request per process: no in-flight count',
    mountRefusal: 'the web server runs the program only for its own URL space',
  },
  async start(service, opts = {}) {
    const { maxBodyBytes } = resolveOptions({ ...(opts.options ?? {}) }, {});
    const mount = opts.mount ?? '';
    return {
      async request(req: MatrixRequest): Promise<MatrixResult> {
        const method = req.method ?? 'GET';
        const body = req.body === undefined ? undefined : Buffer.from(req.body);
        // A chunked request too: CGI has no length-less body, the web server sends the length.
        const env = cgiEnvironment(req, mount, body?.length);
        const stdout = new CapturedStdout(req.abortAfterBytes, req.timing ? new HeadClock() : undefined);
        const code = await runCgiChild(service, { env, stdin: stdinOf(body), stdout, maxBodyBytes });
        const out = Buffer.concat(stdout.chunks);
        const parsed = parseCgiResponse(out);
        if (parsed === null) return { status: 0, reason: '', headers: {}, body: out, truncated: true };
        // What the web server can tell: a body shorter or longer than its Content-Length, and the
        // exit code (1: the app failed, R-11, as FastCGI's appStatus).
        const noBody = method === 'HEAD' || parsed.status === 204 || parsed.status === 304;
        const cl = parsed.headers['content-length']?.[0];
        const badLength = noBody ? parsed.body.length > 0 : cl !== undefined && Number(cl) !== parsed.body.length;
        return { status: parsed.status, reason: parsed.reason, headers: parsed.headers, body: parsed.body, truncated: stdout.closedByUs || code !== 0 || badLength, ...stdout.clock?.times() };
      },
      close: async () => undefined,
    };
  },
};
