#!/usr/bin/env node
/**
 * The command line. Thin: parse (commander), resolve options (options.ts), load the app
 * (loader.ts), run a Gateway (server.ts), handle signals and workers. Nothing imports this file.
 *
 * `gatewire request` has its own exit codes (src/cli-request.ts).
 *
 * Exit codes: 0 after a clean stop (SIGTERM), 130 after SIGINT, 2 for a usage error (bad option,
 * app that cannot be loaded, address that cannot be bound), 1 for anything unexpected.
 */
import type { Cluster } from 'node:cluster';
import { closeSync, openSync, unlinkSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import type { Logger } from './log.js';
import type * as LoaderModule from './loader.js';
import type * as ComposeModule from './compose.js';
import { OptionError, SERVE_OPTIONS, type ServeOptions, resolveOptions } from './options.js';
import type * as ServerModule from './server.js';
import type * as RegistryModule from './fronts/registry.js';
import { SERVER_SOFTWARE } from './environ.js';
import { registerCgiCommand } from './cli-cgi.js';
import { registerRequestCommand } from './cli-request.js';
import { registerCompareCommand } from './cli-compare.js';

// What only `serve` needs (cluster, winston, node:http and the fronts) is loaded when it runs:
// `gatewire cgi` pays its start-up on every request (K-17).
let cluster: Cluster;
let createLogger: (typeof import('./log.js'))['createLogger'];
let LoadError: typeof LoaderModule.LoadError;
let buildService: typeof ComposeModule.buildService;
let appLine: typeof ComposeModule.appLine;
let Gateway: typeof ServerModule.Gateway;
let ListenError: typeof ServerModule.ListenError;
let listenersOf: typeof ServerModule.listenersOf;
let prepareSocketFile: typeof ServerModule.prepareSocketFile;
let frontFlags: typeof RegistryModule.frontFlags;

// require, not import(): Node 20 loads CommonJS through import() with its export lexer (~50 ms).
function loadServeModules(): void {
  cluster = require('node:cluster') as Cluster;
  ({ createLogger } = require('./log.js') as typeof import('./log.js'));
  ({ LoadError } = require('./loader.js') as typeof LoaderModule);
  ({ buildService, appLine } = require('./compose.js') as typeof ComposeModule);
  ({ Gateway, ListenError, listenersOf, prepareSocketFile } = require('./server.js') as typeof ServerModule);
  ({ frontFlags } = require('./fronts/registry.js') as typeof RegistryModule);
}

const VERSION = SERVER_SOFTWARE.split('/')[1] as string;

function usageError(message: string): never {
  process.stderr.write(`gatewire: ${message}\n`);
  process.exit(2);
}

function buildProgram(onServe: (app: string | undefined, raw: Record<string, string | string[]>) => Promise<void>): Command {
  const program = new Command('gatewire')
    .description('One gateway server for Node.js: HTTP/1.1, FastCGI, SCGI, uwsgi and CGI into one environ/start_response app call.')
    .version(VERSION, '-v, --version')
    .exitOverride()
    .showHelpAfterError(false)
    // A usage error is one line: commander puts its "(Did you mean --http?)" on a second one.
    .configureOutput({ outputError: (str, write) => write(`${str.trimEnd().replace(/\s*\n\s*/g, ' ')}\n`) });
  const serve = program
    .command('serve')
    .description('serve an app on one or more listeners')
    .argument('[app]', 'app module: PATH[:export] (.js, .mjs, .cjs; ESM or CommonJS)')
    .exitOverride();
  // Option keys are commander's attribute names for their flags (test/options.test.ts checks),
  // so what commander parsed is already keyed like ServeOptions.
  for (const spec of SERVE_OPTIONS) {
    // Every option shows its default (the issue asks for it): none, unless the text gives one.
    const dflt = spec.default === undefined ? (/\bdefault:/.test(spec.description) ? '' : 'default: none; ') : `default: ${spec.default === '' ? '""' : spec.default}; `;
    const option = new Option(spec.flags, `${spec.description} (${dflt}env: ${spec.env})`);
    if (spec.repeatable) option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
    serve.addOption(option);
  }
  serve.action(async (app: string | undefined, parsed: Record<string, string | string[]>) => onServe(app, parsed));
  registerCgiCommand(program);
  registerRequestCommand(program); // its client (upstream/request.ts) is required when it runs
  registerCompareCommand(program); // its engine (compare/run.ts) too
  return program;
}

async function serve(appSpec: string | undefined, raw: Record<string, string | string[]>): Promise<void> {
  loadServeModules();
  let options: ServeOptions;
  try {
    options = resolveOptions(raw);
  } catch (err) {
    if (err instanceof OptionError) usageError(err.message);
    throw err;
  }
  if (appSpec === undefined && options.cgiBin === undefined && options.upstream.length === 0) {
    usageError('serve: no app given (gatewire serve APP --http ADDR, --upstream URL, or --cgi-bin DIR)');
  }
  if (listenersOf(options).length === 0) usageError(`serve: nothing to listen on: give at least one of ${frontFlags()} ADDR`);

  if (options.accessLog !== undefined && options.accessLog !== '-') {
    // Open it once now: a directory or a missing folder is a usage error, not lines lost in silence.
    try {
      closeSync(openSync(options.accessLog, 'a'));
    } catch (err) {
      usageError(`cannot open the access log ${options.accessLog}: ${(err as Error).message}`);
    }
  }
  const logger = createLogger({ level: options.logLevel, format: options.logFormat, accessLog: options.accessLog });
  let service;
  try {
    service = await buildService(appSpec, options, logger);
  } catch (err) {
    if (err instanceof LoadError) usageError(err.message);
    throw err;
  }
  // CLI-13: said once per server, by the primary or the only process, once start-up went well.
  const started = cluster.isWorker ? undefined : appLine(appSpec, service);
  if (options.workers > 1 && cluster.isPrimary) {
    await runPrimary(options, logger, started);
    return;
  }
  installCrashGuards(logger);
  const gateway = new Gateway(service, options, logger, { manageSocketFiles: !cluster.isWorker });
  // Handlers go in before listening: once `listening` is logged, a supervisor may signal at once,
  // and a SIGTERM without a handler kills the process (no graceful close, socket files left).
  let stopping = false;
  let exitCode = 0; // 130 once SIGINT arrived, even during a SIGTERM drain
  process.on('SIGTERM', () => {
    if (stopping) return;
    stopping = true;
    logger.info(`SIGTERM: finishing in-flight requests (up to ${options.shutdownTimeout} ms)`);
    void gateway.close(options.shutdownTimeout).then(() => exit(logger, exitCode));
  });
  let interrupted = false;
  process.on('SIGINT', () => {
    // "Stop now" holds during a SIGTERM drain too: Ctrl-C must not wait for the deadline.
    if (interrupted) return;
    interrupted = stopping = true;
    exitCode = 130;
    logger.info('SIGINT: stopping now');
    void gateway.closeNow().then(() => exit(logger, exitCode));
  });
  if (cluster.isWorker) {
    // The primary asks for a graceful stop with a message (a signal would reach the whole group).
    process.on('message', (msg: unknown) => {
      if (msg === 'gatewire:shutdown' && !stopping) {
        stopping = true;
        void gateway.close(options.shutdownTimeout).then(() => exit(logger, 0));
      }
    });
  }
  try {
    await gateway.listen();
  } catch (err) {
    // Socket files of the listeners already bound must not outlive this failed start.
    gateway.removeSocketFiles();
    if (err instanceof ListenError) usageError(err.message);
    throw err;
  }
  if (started !== undefined) logger.info(started);
}

/** Workers: fork N, replace any that dies, stop them all on SIGTERM/SIGINT. */
async function runPrimary(options: ServeOptions, logger: Logger, started: string | undefined): Promise<void> {
  for (const spec of listenersOf(options)) {
    if (spec.address.kind === 'fd') usageError('--workers cannot be used with fd: addresses');
    if (spec.address.kind === 'unix') {
      try {
        await prepareSocketFile(spec.address.path);
      } catch (err) {
        if (err instanceof ListenError) usageError(err.message);
        throw err;
      }
    }
  }
  if (started !== undefined) logger.info(started); // CLI-13, once the socket files are prepared
  let stopping = false;
  let recentCrashes = 0;
  const fork = (): void => {
    const started = Date.now();
    const worker = cluster.fork();
    worker.on('exit', (code, signal) => {
      if (stopping) return;
      if (code === 2) {
        // Exit 2 is a usage error (e.g. the address cannot be bound): a new worker would fail
        // the same way, forever. Stop them all and fail like a single process does.
        stopping = true;
        for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
        removeSocketFiles(options);
        exit(logger, 2);
        return;
      }
      const quick = Date.now() - started < 1000;
      recentCrashes = quick ? recentCrashes + 1 : 0;
      const delay = Math.min(100 * 2 ** recentCrashes, 5000);
      logger.error(`worker ${worker.process.pid} exited (${signal ?? `code ${code}`}); starting a new one in ${delay} ms`);
      setTimeout(() => {
        if (!stopping) fork();
      }, delay);
    });
  };
  for (let i = 0; i < options.workers; i++) fork();
  logger.info(`primary ${process.pid}: ${options.workers} workers`);
  let forced = false;
  const stop = (graceful: boolean): void => {
    if (!graceful && !forced && stopping) {
      // SIGINT during a graceful stop: stop now.
      forced = true;
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
      return;
    }
    if (stopping) return;
    stopping = true;
    forced = !graceful;
    const workers = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
    for (const w of workers) {
      if (graceful) w.send('gatewire:shutdown');
      else w.process.kill('SIGKILL');
    }
    const deadline = setTimeout(() => {
      for (const w of workers) w.process.kill('SIGKILL');
    }, options.shutdownTimeout + 1000);
    deadline.unref();
    const wait = (): void => {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        removeSocketFiles(options);
        exit(logger, forced ? 130 : 0);
      } else setTimeout(wait, 20);
    };
    wait();
  };
  process.on('SIGTERM', () => stop(true));
  process.on('SIGINT', () => stop(false));
}

function removeSocketFiles(options: ServeOptions): void {
  for (const spec of listenersOf(options)) {
    if (spec.address.kind !== 'unix') continue;
    try {
      unlinkSync(spec.address.path);
    } catch {
      // already gone
    }
  }
}

/** An app's stray exception or rejection is logged, never the end of the server. */
function installCrashGuards(logger: Logger): void {
  process.on('unhandledRejection', (reason) => {
    logger.error(`unhandled rejection: ${(reason as Error)?.message ?? String(reason)}`, { stack: (reason as Error)?.stack });
  });
  process.on('uncaughtException', (err) => {
    logger.error(`uncaught exception: ${err.message}`, { stack: err.stack });
    if (cluster.isWorker) process.exit(1); // the primary starts a fresh worker
  });
}

function exit(logger: Logger, code: number): void {
  void logger.close().finally(() => process.exit(code));
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram(serve);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') process.exit(0);
      process.exit(2); // commander already printed its one-line error
    }
    process.stderr.write(`gatewire: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  }
}

void main(process.argv);
