/**
 * `gatewire request URL`: one request to a FastCGI, SCGI, uwsgi or HTTP server, printed like
 * curl prints an HTTP answer (the body on stdout). The health check that replaces
 * `cgi-fcgi -bind -connect`:
 *
 *   gatewire request fastcgi://127.0.0.1:9000/ping                      # php-fpm ping.path: pong
 *   gatewire request --unix-socket /run/php/php8.2-fpm.sock fastcgi://localhost/ping
 *   gatewire request 'fastcgi://unix:/run/php/php8.2-fpm.sock:/status?json'
 *   gatewire request scgi://127.0.0.1:4000/items -d @item.json -H 'Content-Type: application/json'
 *   gatewire request http://127.0.0.1:8080/health -i
 *   gatewire request fastcgi://127.0.0.1:9000 --get-values              # FCGI_MPXS_CONNS=0
 *   gatewire request fastcgi://127.0.0.1:9000/ping --raw                # the records, on stderr
 *
 * Bodies as curl builds them: `-d TEXT` as given, `-d @FILE` (`@-`: stdin) with every CR, LF and
 * NUL byte of the file removed (curl 8.7 and later; older curl cut a line at a lone CR or a
 * NUL), `--data-binary TEXT|@FILE` byte for byte, `--data-raw TEXT` with no `@` meaning; several
 * pieces in any mix are joined with `&` in command-line order. A body makes the method POST
 * (unless -X) and sends CONTENT_TYPE application/x-www-form-urlencoded unless -H gives one. The
 * body is read whole before connecting, the answer held in memory up to 64 MiB.
 *
 * Exit codes (UP-35), each failure one line on stderr naming the upstream and the errno or reason:
 *
 *   0  an answer with status 1xx-3xx (--get-values: a GET_VALUES_RESULT came)
 *   1  an answer with status 4xx/5xx, or a FastCGI request that ended with appStatus ≠ 0 or
 *      protocolStatus ≠ REQUEST_COMPLETE
 *   2  usage error (bad URL, option or file to send)
 *   3  the connection could not be made (refused, no socket file, permission, unreachable host)
 *   4  timeout: no complete answer within --timeout (connecting included)
 *   5  protocol error: bytes that are not the protocol or not a response head, a connection
 *      reset or closed before the answer was complete, an answer over the size cap
 *
 * The client is src/upstream/request.ts (and src/upstream/wire-dump.ts for --raw), required only
 * when the command runs (cli.ts loads nothing heavy up front).
 */
import { type Command, Option } from 'commander';
import { readFileSync, writeSync } from 'node:fs';
import { OptionError, parseDuration } from './options.js';

/** One -d/--data-binary/--data-raw value, numbered in command-line order (curl joins them with `&`). */
export interface DataPiece {
  kind: 'data' | 'binary' | 'raw';
  value: string;
  seq: number;
}

export interface RequestCommandOptions {
  method?: string;
  header?: string[];
  data?: DataPiece[];
  dataBinary?: DataPiece[];
  dataRaw?: DataPiece[];
  param?: string[];
  unixSocket?: string;
  timeout: string;
  include?: boolean;
  raw?: boolean;
  /** true: the three spec names; a string: a comma list of names. */
  getValues?: boolean | string;
}

/** A repeatable option's parser: each value appended. */
export const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

let pieces = 0;
/** A -d/--data-binary/--data-raw parser: each piece numbered in command-line order (shared by every command taking a body). */
export const piece =
  (kind: DataPiece['kind']) =>
  (value: string, previous: DataPiece[] | undefined): DataPiece[] => [...(previous ?? []), { kind, value, seq: pieces++ }];

const EXIT_CODES = `
Exit status:
  0  an answer with status 1xx-3xx (--get-values: a GET_VALUES_RESULT came)
  1  an answer with status 4xx/5xx, or a FastCGI request ended with appStatus != 0
     or protocolStatus != REQUEST_COMPLETE
  2  usage error
  3  connection failed: refused, no socket file, permission denied, unreachable
  4  timeout: no complete answer within --timeout
  5  protocol error: not the protocol, reset or closed mid-answer, truncated, too large
Every failure is one line on stderr naming the upstream and the errno or the reason.
Bodies (-d, --data-binary) are read whole before connecting; the answer is held in
memory up to 64 MiB.

Examples:
  gatewire request fastcgi://127.0.0.1:9000/ping
  gatewire request --unix-socket /run/php/php8.2-fpm.sock fastcgi://localhost/ping
  gatewire request 'fastcgi://unix:/run/php/php8.2-fpm.sock:/status?json'
  gatewire request fastcgi://127.0.0.1:9000/index.php --param SCRIPT_FILENAME=/srv/www/index.php -i
  gatewire request scgi://127.0.0.1:4000/items -H 'Content-Type: application/json' --data-binary @item.json
  gatewire request http://127.0.0.1:8080/health --timeout 2s
  gatewire request fastcgi://127.0.0.1:9000 --get-values
`;

export function registerRequestCommand(program: Command): Command {
  return program
    .command('request')
    .summary('send one request to a FastCGI, SCGI, uwsgi or HTTP server (health checks; replaces cgi-fcgi -bind -connect)')
    .description(
      'send one request to a FastCGI, SCGI, uwsgi or HTTP server and print the response body, curl-like; ' +
        'exit 0 for a 1xx-3xx answer, 1 for 4xx/5xx (or a failed FastCGI request), 2 for a usage error, ' +
        '3 when the connection failed, 4 on timeout, 5 on a protocol error',
    )
    .argument('[url]', 'fastcgi://HOST:PORT/PATH?QUERY, fastcgi://unix:/SOCKET:/PATH?QUERY or fastcgi+unix://%2FSOCKET/PATH; also scgi://, uwsgi://, http:// (port 80 by default)')
    .addOption(new Option('-X, --method <method>', 'request method (default: GET, or POST with a body)'))
    .addOption(new Option('-H, --header <header>', "request header 'Name: value'; over FastCGI/SCGI/uwsgi sent as HTTP_NAME (repeatable)").argParser(collect))
    .addOption(new Option('-d, --data <data>', 'request body as curl -d: TEXT, or @FILE / @- (stdin) with CR, LF and NUL bytes removed; repeated: joined with & (sets CONTENT_LENGTH; CONTENT_TYPE application/x-www-form-urlencoded unless -H gives one)').argParser(piece('data')))
    .addOption(new Option('--data-binary <data>', 'request body byte for byte: TEXT, or @FILE / @- as is; joins -d pieces with &').argParser(piece('binary')))
    .addOption(new Option('--data-raw <data>', 'request body TEXT, a leading @ included; joins -d pieces with &').argParser(piece('raw')))
    .addOption(new Option('--param <name=value>', 'extra CGI variable (fastcgi, scgi, uwsgi), e.g. SCRIPT_FILENAME=/srv/www/index.php; replaces a built one of that name (repeatable)').argParser(collect))
    .addOption(new Option('--unix-socket <path>', 'connect to this unix socket, as curl: the URL still gives the scheme, the host (SERVER_NAME, HTTP_HOST), the port and the path'))
    .addOption(new Option('--timeout <duration>', 'total time for connect and the whole answer: ms, or with ms, s, m').default('5s'))
    .addOption(new Option('-i, --include', 'print the response head before the body (FastCGI/SCGI/uwsgi: as the upstream sent it)'))
    .addOption(new Option('--raw', 'print an annotated dump of the bytes both ways on stderr: FastCGI records (type, id, lengths, pairs), the SCGI netstring, the uwsgi header and vars, the answer head; hex of the first bytes'))
    .addOption(new Option('--get-values [names]', 'FastCGI management query (GET_VALUES, request id 0) for FCGI_MAX_CONNS,FCGI_MAX_REQS,FCGI_MPXS_CONNS or the given comma list; prints NAME=VALUE lines'))
    .addHelpText('after', EXIT_CODES)
    .exitOverride()
    .action(async (url: string | undefined, opts: RequestCommandOptions) => {
      // `--get-values URL` reads the URL as the option's optional value: take it back.
      if (url === undefined && typeof opts.getValues === 'string' && opts.getValues.includes('://')) {
        url = opts.getValues;
        opts.getValues = true;
      }
      process.exitCode = url === undefined ? usage("missing URL (see 'gatewire request --help')") : await runRequestCommand(url, opts);
    });
}

function usage(message: string): 2 {
  write(2, `gatewire: request: ${message}\n`);
  return 2;
}

/** Blocking writes: everything is out before the process exits. */
function write(fd: number, data: string | Buffer): void {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      return; // EPIPE: the reader is gone
    }
  }
}

/** Removes every CR, LF and NUL byte, as curl -d @FILE does. */
export function stripForData(bytes: Buffer): Buffer {
  const out = Buffer.allocUnsafe(bytes.length);
  let n = 0;
  for (const b of bytes) if (b !== 0x0d && b !== 0x0a && b !== 0x00) out[n++] = b;
  return out.subarray(0, n);
}

/** The body curl would send for these pieces, or undefined without any; throws OptionError for a file that cannot be read. */
export function buildBody(all: readonly DataPiece[]): Buffer | undefined {
  if (all.length === 0) return undefined;
  const parts: Buffer[] = [];
  for (const p of [...all].sort((a, b) => a.seq - b.seq)) {
    if (parts.length > 0) parts.push(Buffer.from('&'));
    if (p.kind !== 'raw' && p.value.startsWith('@')) {
      const file = p.value.slice(1);
      let bytes: Buffer;
      try {
        bytes = readFileSync(file === '-' ? 0 : file);
      } catch (err) {
        throw new OptionError(`cannot read ${p.kind === 'data' ? '--data' : '--data-binary'} ${p.value}: ${(err as Error).message}`);
      }
      parts.push(p.kind === 'data' ? stripForData(bytes) : bytes);
    } else parts.push(Buffer.from(p.value, 'utf8'));
  }
  return Buffer.concat(parts);
}

/** Runs the command; resolves with its exit code. */
export async function runRequestCommand(url: string, opts: RequestCommandOptions): Promise<number> {
  const req = require('./upstream/request.js') as typeof import('./upstream/request.js');
  let timeout: number;
  try {
    timeout = parseDuration(opts.timeout, '--timeout');
  } catch (err) {
    if (err instanceof OptionError) return usage(err.message);
    throw err;
  }
  if (timeout <= 0) return usage('--timeout must be more than 0');
  let target;
  try {
    target = req.parseRequestUrl(url, opts.unixSocket === undefined ? {} : { unixSocket: opts.unixSocket });
  } catch (err) {
    if (err instanceof OptionError) return usage(err.message);
    throw err;
  }
  const sent: Buffer[] = [];
  const received: Buffer[] = [];
  const options = {
    timeout,
    ...(opts.raw === true ? { onWire: (direction: '>' | '<', chunk: Buffer) => (direction === '>' ? sent : received).push(chunk) } : {}),
  };
  const dump = (): void => {
    if (opts.raw !== true || (sent.length === 0 && received.length === 0)) return;
    const { dumpWire } = require('./upstream/wire-dump.js') as typeof import('./upstream/wire-dump.js');
    const protocol = target.protocol;
    const lines = [...dumpWire(protocol, '>', Buffer.concat(sent)), ...dumpWire(protocol, '<', Buffer.concat(received))];
    write(2, `${lines.join('\n')}\n`);
  };
  const failed = (err: unknown): number => {
    dump();
    if (err instanceof OptionError) return usage(err.message);
    if (err instanceof req.RequestFailure) {
      write(2, `gatewire: request: ${err.message.replace(/\s*\n\s*/g, ' ')}\n`);
      return err.exitCode;
    }
    throw err;
  };

  const pieces = [...(opts.data ?? []), ...(opts.dataBinary ?? []), ...(opts.dataRaw ?? [])];
  if (opts.getValues !== undefined && opts.getValues !== false) {
    const extra = [opts.method === undefined ? '' : '-X', (opts.header ?? []).length > 0 ? '-H' : '', pieces.length > 0 ? '-d' : '', (opts.param ?? []).length > 0 ? '--param' : '', opts.include === true ? '-i' : ''].filter((f) => f !== '');
    if (extra.length > 0) return usage(`--get-values sends a management record, not a request: ${extra.join(', ')} do not apply`);
    const names = opts.getValues === true ? req.DEFAULT_GET_VALUES : opts.getValues.split(',').map((n) => n.trim());
    let pairs;
    try {
      pairs = await req.getFastcgiValues(target, names, options);
    } catch (err) {
      return failed(err);
    }
    dump();
    write(1, pairs.map(([n, v]) => `${n}=${v}\n`).join(''));
    return 0;
  }

  const headers: Array<[string, string]> = [];
  for (const h of opts.header ?? []) {
    const colon = h.indexOf(':');
    if (colon <= 0) return usage(`invalid header ${JSON.stringify(h)}: expected 'Name: value'`);
    headers.push([h.slice(0, colon).trim(), h.slice(colon + 1).trim()]);
  }
  const params: Array<[string, string]> = [];
  for (const p of opts.param ?? []) {
    const eq = p.indexOf('=');
    if (eq <= 0) return usage(`invalid --param ${JSON.stringify(p)}: expected NAME=VALUE`);
    params.push([p.slice(0, eq), p.slice(eq + 1)]);
  }
  let body: Buffer | undefined;
  try {
    body = buildBody(pieces);
  } catch (err) {
    if (err instanceof OptionError) return usage(err.message);
    throw err;
  }
  // Params and header fields are bytes (latin1 strings): UTF-8 given on the command line travels as its bytes.
  const latin1 = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');
  const bytesTarget = { ...target, path: latin1(target.path), query: target.query === undefined ? undefined : latin1(target.query) };
  const input = {
    ...(opts.method === undefined ? {} : { method: opts.method }),
    headers: headers.map(([n, v]) => [n, latin1(v)] as const),
    ...(body === undefined ? {} : { body }),
    params: params.map(([n, v]) => [n, latin1(v)] as const),
  };
  let result;
  try {
    if (target.protocol === 'http') {
      result = await req.sendHttpRequest(bytesTarget, req.buildHttpRequest(bytesTarget, input), body, options);
    } else {
      result = await req.sendRequest(bytesTarget, req.buildRequestParams(bytesTarget, input), body, options);
    }
  } catch (err) {
    return failed(err);
  }
  dump();
  if (result.stderr.length > 0) write(2, result.stderr);
  if (opts.include === true) write(1, result.head);
  write(1, result.body);
  const code = req.exitCodeFor(result);
  if (result.appStatus !== undefined && (result.appStatus !== 0 || result.protocolStatus !== 0)) {
    write(2, `gatewire: request: ${req.describeUpstream(target)}: the FastCGI request ended with appStatus ${result.appStatus}, ${result.protocolStatusName ?? ''}\n`);
  }
  return code;
}
