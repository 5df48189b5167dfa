/**
 * `gatewire request URL`: one request to a FastCGI, SCGI or uwsgi application server, printed
 * like curl prints an HTTP answer. The health check that replaces `cgi-fcgi -bind -connect`:
 *
 *   gatewire request fastcgi://127.0.0.1:9000/ping                      # php-fpm ping.path
 *   gatewire request 'fastcgi://unix:/run/php/php8.2-fpm.sock:/status?json'
 *   gatewire request scgi://127.0.0.1:4000/items -X POST -d @item.json -H 'Content-Type: application/json'
 *
 * The client is src/upstream/request.ts, required only when the command runs (cli.ts loads
 * nothing heavy up front). Exit codes: 0 a 1xx-3xx answer, 1 a 4xx/5xx answer or a FastCGI
 * request that failed (appStatus ≠ 0, protocolStatus ≠ REQUEST_COMPLETE), 2 a usage error, 3 no
 * valid answer (refused, reset, timeout, garbage), with one line on stderr saying which.
 */
import { type Command, Option } from 'commander';
import { readFileSync, writeSync } from 'node:fs';
import { OptionError, parseDuration } from './options.js';

export interface RequestCommandOptions {
  method?: string;
  header?: string[];
  data?: string;
  param?: string[];
  timeout: string;
  include?: boolean;
  raw?: boolean;
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export function registerRequestCommand(program: Command): Command {
  return program
    .command('request')
    .summary('send one request to a FastCGI, SCGI or uwsgi server (health checks; replaces cgi-fcgi -bind -connect)')
    .description(
      'send one request to a FastCGI, SCGI or uwsgi application server and print the response body; ' +
        'exit 0 for a 1xx-3xx answer, 1 for 4xx/5xx (or a failed FastCGI request), 2 for a usage error, ' +
        '3 when no valid answer came (refused, reset, timeout, garbage)',
    )
    .argument('<url>', 'fastcgi://HOST:PORT/PATH?QUERY or fastcgi://unix:/SOCKET:/PATH?QUERY; also scgi:// and uwsgi://')
    .addOption(new Option('-X, --method <method>', 'request method (default: GET, or POST with --data)'))
    .addOption(new Option('-H, --header <header>', "request header 'Name: value', sent as HTTP_NAME (repeatable)").argParser(collect))
    .addOption(new Option('-d, --data <data>', 'request body: TEXT, @FILE, or @- for stdin (sets CONTENT_LENGTH; CONTENT_TYPE application/x-www-form-urlencoded unless -H gives one)'))
    .addOption(new Option('--param <name=value>', 'extra CGI variable, e.g. SCRIPT_FILENAME=/srv/www/index.php; replaces a built one of that name (repeatable)').argParser(collect))
    .addOption(new Option('--timeout <duration>', 'total time for connect and answer: ms, or with ms, s, m').default('5s'))
    .addOption(new Option('-i, --include', 'print the response head (as the upstream sent it) before the body'))
    .addOption(new Option('--raw', 'print the upstream response bytes as received (FastCGI: STDOUT) instead of the body'))
    .exitOverride()
    .action(async (url: string, opts: RequestCommandOptions) => {
      process.exitCode = await runRequestCommand(url, opts);
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

/** Runs the command; resolves with its exit code. */
export async function runRequestCommand(url: string, opts: RequestCommandOptions): Promise<number> {
  const { RequestFailure, buildRequestParams, exitCodeFor, parseRequestUrl, sendRequest } = require('./upstream/request.js') as typeof import('./upstream/request.js');
  let timeout: number;
  try {
    timeout = parseDuration(opts.timeout, '--timeout');
  } catch (err) {
    if (err instanceof OptionError) return usage(err.message);
    throw err;
  }
  if (timeout <= 0) return usage('--timeout must be more than 0');
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
  if (opts.data !== undefined) {
    if (opts.data.startsWith('@')) {
      const file = opts.data.slice(1);
      try {
        body = readFileSync(file === '-' ? 0 : file);
      } catch (err) {
        return usage(`cannot read --data ${opts.data}: ${(err as Error).message}`);
      }
    } else body = Buffer.from(opts.data, 'utf8');
  }
  let target;
  let vars;
  try {
    target = parseRequestUrl(url);
    // Params are bytes (latin1 strings): UTF-8 given on the command line travels as its bytes.
    const latin1 = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');
    vars = buildRequestParams(
      { ...target, path: latin1(target.path), query: target.query === undefined ? undefined : latin1(target.query) },
      {
        ...(opts.method === undefined ? {} : { method: opts.method }),
        headers: headers.map(([n, v]) => [n, latin1(v)] as const),
        ...(body === undefined ? {} : { body }),
        params: params.map(([n, v]) => [n, latin1(v)] as const),
      },
    );
  } catch (err) {
    if (err instanceof OptionError) return usage(err.message);
    throw err;
  }
  let result;
  try {
    result = await sendRequest(target, vars, body, { timeout });
  } catch (err) {
    if (err instanceof OptionError) return usage(err.message);
    if (err instanceof RequestFailure) {
      write(2, `gatewire: request: ${err.message.replace(/\s*\n\s*/g, ' ')}\n`);
      return 3;
    }
    throw err;
  }
  if (result.stderr.length > 0) write(2, result.stderr);
  if (opts.raw === true) write(1, result.raw);
  else {
    if (opts.include === true) write(1, result.head);
    write(1, result.body);
  }
  const code = exitCodeFor(result);
  if (result.appStatus !== undefined && (result.appStatus !== 0 || result.protocolStatus !== 0)) {
    write(2, `gatewire: request: FastCGI request ended with appStatus ${result.appStatus}, ${result.protocolStatusName ?? ''}\n`);
  }
  return code;
}
