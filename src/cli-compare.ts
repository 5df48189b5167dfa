/**
 * `gatewire compare [APP]`: one request over HTTP, FastCGI, SCGI, uwsgi and CGI, side by side:
 * the bytes each way (annotated), what the app saw, how the answer was framed and what it cost.
 *
 *   gatewire compare                                   # the bundled echo app, a small POST
 *   gatewire compare --nginx                           # and what a real nginx sends
 *   gatewire compare app.mjs --request 'GET /items?page=2' -H 'Accept: application/json'
 *   gatewire compare --load 3s --json report.json --html report.html
 *   gatewire compare --serve 127.0.0.1:8090            # a page to edit the request and see it update
 *
 * The engine is src/compare/run.ts, the views src/compare/terminal.ts and src/compare/page.ts;
 * all are required only when the command runs.
 *
 * Exit status: 0 when every protocol answered, 1 when one did not (the report says why), 2 for
 * a usage error or an app that cannot be served.
 */
import { type Command, Option } from 'commander';
import { writeFileSync } from 'node:fs';
import { buildBody, collect, piece, type DataPiece } from './cli-request.js';
import { OptionError, parseDuration } from './options.js';
import type { CompareRequest, ProtocolName } from './compare/types.js';

export interface CompareCommandOptions {
  request?: string;
  header?: string[];
  data?: DataPiece[];
  dataBinary?: DataPiece[];
  interface?: 'environ' | 'node' | 'fetch';
  nginx?: boolean | string;
  load?: boolean | string;
  concurrency: string;
  samples: string;
  protocols?: string;
  json?: string;
  html?: string;
  serve?: string;
  wire: boolean;
  color: boolean;
}

const EXAMPLES = `
Without --request, -H or -d the request is a small POST with a query, a cookie and a form body.
Costs: without --load, a few sequential requests per protocol; with --load (3s by default),
--concurrency clients at once for that long per protocol, each request a new connection.

Examples:
  gatewire compare
  gatewire compare --nginx
  gatewire compare app.mjs --request 'GET /items?page=2' -H 'Accept: application/json'
  gatewire compare --load 3s --json report.json --html report.html
  gatewire compare --serve 127.0.0.1:8090
`;

export function registerCompareCommand(program: Command): Command {
  return program
    .command('compare')
    .summary('send one request over HTTP, FastCGI, SCGI, uwsgi and CGI and show the bytes, the environ and the costs side by side')
    .description('serve APP (default: the bundled echo app) over HTTP, FastCGI, SCGI and uwsgi and as a CGI program, send the same request over each, and show the wire bytes each way, the environ the app saw and what each cost')
    .argument('[app]', 'app module (PATH[:export]); default: the bundled echo app, which answers with its environ')
    .addOption(new Option('--request <line>', "the request: 'METHOD /path?query'").default(undefined))
    .addOption(new Option('-H, --header <header>', "request header 'Name: value' (repeatable)").argParser(collect))
    .addOption(new Option('-d, --data <data>', 'request body as curl -d: TEXT, or @FILE with CR, LF and NUL removed; makes the method POST unless --request gives one').argParser(piece('data')))
    .addOption(new Option('--data-binary <data>', 'request body byte for byte: TEXT or @FILE').argParser(piece('binary')))
    .addOption(new Option('--interface <kind>', 'force the app interface').choices(['environ', 'node', 'fetch']))
    .addOption(new Option('--nginx [path]', "also send through a real nginx (started on temporary ports, stopped afterwards) to see what it sends; PATH: nginx's binary"))
    .addOption(new Option('--load [duration]', 'measure each protocol under load for DURATION (default 3s): p50/p99 latency, req/s, CPU µs per request'))
    .addOption(new Option('--concurrency <n>', 'clients at once during --load (CGI: at most 2)').default('8'))
    .addOption(new Option('--samples <n>', 'sequential requests timed per protocol without --load (CGI: a fifth)').default('30'))
    .addOption(new Option('--protocols <list>', 'comma list of http, fastcgi, scgi, uwsgi, cgi (default: all)'))
    .addOption(new Option('--json <file>', 'write the report as JSON'))
    .addOption(new Option('--html <file>', 'write the report as one self-contained HTML page (opens offline)'))
    .addOption(new Option('--serve <addr>', 'serve a live page on ADDR (PORT, HOST:PORT) where the request can be edited; runs until Ctrl-C'))
    .addOption(new Option('--no-wire', 'leave the annotated wire bytes out of the terminal view'))
    .addOption(new Option('--no-color', 'no colours (NO_COLOR is honoured too)'))
    .addHelpText('after', EXAMPLES)
    .exitOverride()
    .action(async (app: string | undefined, opts: CompareCommandOptions) => {
      process.exitCode = await runCompareCommand(app, opts);
    });
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The request the options describe (the default POST when none of --request, -H, -d is given). */
export function requestFromOptions(opts: Pick<CompareCommandOptions, 'request' | 'header' | 'data' | 'dataBinary'>, defaults: CompareRequest): CompareRequest {
  const body = buildBody([...(opts.data ?? []), ...(opts.dataBinary ?? [])]);
  if (opts.request === undefined && opts.header === undefined && body === undefined) return defaults;
  let method = body === undefined ? 'GET' : 'POST';
  let target = '/';
  if (opts.request !== undefined) {
    const parts = opts.request.trim().split(/\s+/);
    if (parts.length === 1 && parts[0]?.startsWith('/')) target = parts[0];
    else if (parts.length === 2) [method, target] = parts as [string, string];
    else throw new OptionError(`--request ${JSON.stringify(opts.request)}: expected 'METHOD /path?query'`);
    if (!TOKEN.test(method)) throw new OptionError(`--request: invalid method ${JSON.stringify(method)}`);
    if (!target.startsWith('/')) throw new OptionError(`--request: the target must start with /, got ${JSON.stringify(target)}`);
  }
  const headers: Array<[string, string]> = (opts.header ?? []).map((h) => {
    const colon = h.indexOf(':');
    if (colon <= 0) throw new OptionError(`-H ${JSON.stringify(h)}: expected 'Name: value'`);
    return [h.slice(0, colon).trim(), h.slice(colon + 1).trim()];
  });
  const q = target.indexOf('?');
  return { method, path: q === -1 ? target : target.slice(0, q), query: q === -1 ? '' : target.slice(q + 1), headers, body: body?.toString('latin1') ?? '' };
}

function positive(text: string, what: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new OptionError(`${what}: expected a whole number from 1 to 1000, got ${JSON.stringify(text)}`);
  return n;
}

function protocolsOf(list: string | undefined): ProtocolName[] | undefined {
  if (list === undefined) return undefined;
  const names = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const n of names) if (!['http', 'fastcgi', 'scgi', 'uwsgi', 'cgi'].includes(n)) throw new OptionError(`--protocols: unknown protocol ${JSON.stringify(n)} (http, fastcgi, scgi, uwsgi, cgi)`);
  return names as ProtocolName[];
}

export async function runCompareCommand(app: string | undefined, opts: CompareCommandOptions): Promise<number> {
  const { CompareSession, DEFAULT_REQUEST } = require('./compare/run.js') as typeof import('./compare/run.js');
  const { renderTerminal, progressLine } = require('./compare/terminal.js') as typeof import('./compare/terminal.js');
  let request: CompareRequest;
  let loadMs: number | undefined;
  let concurrency: number;
  let samples: number;
  let protocols: ProtocolName[] | undefined;
  try {
    request = requestFromOptions(opts, DEFAULT_REQUEST);
    loadMs = opts.load === undefined || opts.load === false ? undefined : parseDuration(opts.load === true ? '3s' : opts.load, '--load');
    concurrency = positive(opts.concurrency, '--concurrency');
    samples = positive(opts.samples, '--samples');
    protocols = protocolsOf(opts.protocols);
  } catch (err) {
    if (!(err instanceof OptionError)) throw err;
    process.stderr.write(`gatewire: compare: ${err.message}\n`);
    return 2;
  }
  const color = opts.color && process.stdout.isTTY === true && process.env.NO_COLOR === undefined;
  let session: import('./compare/run.js').CompareSession;
  try {
    session = await CompareSession.start({
      ...(app === undefined ? {} : { app }),
      ...(opts.interface === undefined ? {} : { interface: opts.interface }),
      ...(opts.nginx === undefined ? {} : { nginx: opts.nginx }),
      ...(protocols === undefined ? {} : { protocols }),
    });
  } catch (err) {
    process.stderr.write(`gatewire: compare: ${(err as Error).message}\n`);
    return 2;
  }
  if (session.nginxProblem !== undefined) process.stderr.write(`gatewire: compare: --nginx: ${session.nginxProblem}; comparing without it\n`);
  const tty = process.stderr.isTTY === true;
  try {
    const report = await session.run(request, {
      ...(loadMs === undefined ? {} : { loadMs }),
      concurrency,
      samples,
      onProgress: (fraction, column) => {
        if (tty && loadMs !== undefined) process.stderr.write(`\r${progressLine(fraction, column.padEnd(14))}`);
      },
    });
    if (tty && loadMs !== undefined) process.stderr.write('\r\x1b[K');
    process.stdout.write(`${renderTerminal(report, { color, width: process.stdout.columns ?? 120, wire: opts.wire }).join('\n')}\n`);
    if (opts.json !== undefined) writeFileSync(opts.json, `${JSON.stringify(report, null, 2)}\n`);
    if (opts.html !== undefined) {
      const { renderReportHtml } = require('./compare/page.js') as typeof import('./compare/page.js');
      writeFileSync(opts.html, renderReportHtml(report));
    }
    if (opts.serve !== undefined) return await serveLive(session, report, opts.serve, samples);
    return report.protocols.every((p) => p.error === undefined) && session.nginxProblem === undefined ? 0 : 1;
  } finally {
    await session.close();
  }
}

/** --serve: the live page, until SIGINT or SIGTERM. */
async function serveLive(session: import('./compare/run.js').CompareSession, initial: import('./compare/types.js').CompareReport, addr: string, samples: number): Promise<number> {
  const { createComparePageApp } = require('./compare/page.js') as typeof import('./compare/page.js');
  const { serve } = require('./serve.js') as typeof import('./serve.js');
  const app = createComparePageApp({ initial, run: (request) => session.run(request, { samples: Math.min(samples, 10) }) });
  let server: Awaited<ReturnType<typeof serve>>;
  try {
    server = await serve(app, { http: addr, logLevel: 'warn' });
  } catch (err) {
    process.stderr.write(`gatewire: compare: --serve ${addr}: ${(err as Error).message}\n`);
    return 2;
  }
  const bound = server.listeners[0]?.address;
  const where = bound?.kind === 'tcp' ? `http://${bound.host === undefined || bound.host === '0.0.0.0' ? '127.0.0.1' : bound.host}:${bound.port}/` : addr;
  process.stderr.write(`gatewire: compare: the live page is on ${where} (Ctrl-C to stop)\n`);
  await new Promise<void>((resolvePromise) => {
    process.once('SIGINT', resolvePromise);
    process.once('SIGTERM', resolvePromise);
  });
  await server.close(1000);
  return 0;
}
