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
import { chownSync, closeSync, openSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { Command, CommanderError } from 'commander';
import type { Service } from './app.js';
import type { Logger } from './log.js';
import type * as LoaderModule from './loader.js';
import type * as ComposeModule from './compose.js';
import { OptionError, type ServeOptions, formatAddress, optionsFromCli } from './options.js';
import type * as ServerModule from './server.js';
import type * as RegistryModule from './fronts/registry.js';
import { setServingFlags } from './v8-flags.js';
import { SERVER_SOFTWARE } from './environ.js';
import { registerCgiCommand } from './cli-cgi.js';
import { registerRequestCommand } from './cli-request.js';
import { registerCompareCommand } from './cli-compare.js';
import { addServeOptions, registerConfigCommand } from './cli-config.js';
import { type Identity, dropTo, removePidFile, resolveIdentity, writePidFile } from './privileges.js';
import { workerInfo } from './worker-env.js';

// What only `serve` needs (cluster, winston, node:http and the fronts) is loaded when it runs:
// `gatewire cgi` pays its start-up on every request (K-17).
let createLogger: (typeof import('./log.js'))['createLogger'];
let LoadError: typeof LoaderModule.LoadError;
let buildService: typeof ComposeModule.buildService;
let appLine: typeof ComposeModule.appLine;
let Gateway: typeof ServerModule.Gateway;
let ListenError: typeof ServerModule.ListenError;
let listenersOf: typeof ServerModule.listenersOf;
let frontFlags: typeof RegistryModule.frontFlags;

// require, not import(): Node 20 loads CommonJS through import() with its export lexer (~50 ms).
function loadServeModules(): void {
  ({ createLogger } = require('./log.js') as typeof import('./log.js'));
  ({ LoadError } = require('./loader.js') as typeof LoaderModule);
  ({ buildService, appLine } = require('./compose.js') as typeof ComposeModule);
  ({ Gateway, ListenError, listenersOf } = require('./server.js') as typeof ServerModule);
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
  addServeOptions(serve);
  serve.action(async (app: string | undefined, parsed: Record<string, string | string[]>) => onServe(app, parsed));
  registerCgiCommand(program);
  registerRequestCommand(program); // its client (upstream/request.ts) is required when it runs
  registerCompareCommand(program); // its engine (compare/run.ts) too
  registerConfigCommand(program);
  return program;
}

async function serve(appSpec: string | undefined, raw: Record<string, string | string[]>): Promise<void> {
  loadServeModules();
  let options: ServeOptions;
  try {
    options = optionsFromCli(raw);
  } catch (err) {
    if (err instanceof OptionError) usageError(err.message);
    throw err;
  }
  if (appSpec === undefined && options.cgiBin === undefined && options.upstream.length === 0) {
    usageError('serve: no app given (gatewire serve APP --http ADDR, --upstream URL, or --cgi-bin DIR)');
  }
  if (listenersOf(options).length === 0) usageError(`serve: nothing to listen on: give at least one of ${frontFlags()} ADDR`);
  let identity: Identity | undefined;
  try {
    identity = resolveIdentity(options.user, options.group);
  } catch (err) {
    if (err instanceof OptionError) usageError(err.message);
    throw err;
  }
  const worker = workerInfo();
  if (worker === undefined && options.accessLog !== undefined && options.accessLog !== '-') {
    // Open it once now: a directory or a missing folder is a usage error, not lines lost in silence.
    try {
      closeSync(openSync(options.accessLog, 'a'));
      if (identity !== undefined) chownSync(options.accessLog, identity.uid, identity.gid); // workers reopen it
    } catch (err) {
      usageError(`cannot open the access log ${options.accessLog}: ${(err as Error).message}`);
    }
  }
  if (options.workers === 0 && options.stats !== undefined) usageError('--stats is served by the primary: it needs --workers 1 or more, not 0');
  if (worker === undefined && options.workers > 0) {
    await runPrimary(options, identity);
    return;
  }
  if (identity !== undefined) {
    // Before the app is loaded: app code never runs as root.
    try {
      dropTo(identity);
    } catch (err) {
      if (err instanceof OptionError) usageError(err.message);
      throw err;
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
  installCrashGuards(logger, worker !== undefined);
  if (worker !== undefined) {
    const { runWorker } = require('./worker.js') as typeof import('./worker.js');
    try {
      await runWorker({ info: worker, options, logger, service, appLine: appLine(appSpec, service), exit: (code) => exit(logger, code) });
    } catch (err) {
      if (err instanceof ListenError) usageError(err.message);
      throw err;
    }
    return;
  }
  await runSingleProcess(options, logger, service, appLine(appSpec, service));
}

/** What a SIGTERM does now: serve on for --drain-delay first, unless that delay is running already. */
function termPlan(options: ServeOptions, delaying: boolean): string {
  const drain = `finishing in-flight requests (up to ${options.shutdownTimeout} ms)`;
  if (options.drainDelay > 0 && !delaying) return `serving on for ${options.drainDelay} ms (--drain-delay), then ${drain}`;
  return drain;
}

/** --workers 0: this process serves; no reload, recycling or watchdog. */
async function runSingleProcess(options: ServeOptions, logger: Logger, service: Service, started: string | undefined): Promise<void> {
  const gateway = new Gateway(service, options, logger);
  if (options.pidFile !== undefined) writePidFileOrExit(options.pidFile);
  // Handlers go in before listening: once `listening` is logged, a supervisor may signal at once,
  // and a SIGTERM without a handler kills the process (no graceful close, socket files left).
  let stopping = false;
  let exitCode = 0; // 130 once SIGINT arrived, even during a SIGTERM drain
  const done = (): void => {
    if (options.pidFile !== undefined) removePidFile(options.pidFile);
    exit(logger, exitCode);
  };
  let delayed: NodeJS.Timeout | undefined;
  process.on('SIGTERM', () => {
    if (stopping) return;
    const drain = (): void => {
      stopping = true;
      void gateway.close(options.shutdownTimeout).then(done);
    };
    logger.info(`SIGTERM: ${termPlan(options, delayed !== undefined)}`);
    if (options.drainDelay > 0 && delayed === undefined) delayed = setTimeout(drain, options.drainDelay);
    else {
      clearTimeout(delayed);
      drain();
    }
  });
  let interrupted = false;
  const stopNow = (signal: 'SIGINT' | 'SIGQUIT', code: number): void => {
    // "Stop now" holds during a SIGTERM drain too: Ctrl-C must not wait for the deadline.
    if (interrupted) return;
    interrupted = stopping = true;
    clearTimeout(delayed);
    exitCode = code;
    logger.info(`${signal}: stopping now`);
    void gateway.closeNow().then(done);
  };
  process.on('SIGINT', () => stopNow('SIGINT', 130));
  process.on('SIGQUIT', () => stopNow('SIGQUIT', 131));
  process.on('SIGHUP', () => logger.warn('SIGHUP: ignored (--workers 0 serves in one process, which cannot reload; use --workers 1 or more)'));
  for (const signal of ['SIGUSR1', 'SIGUSR2'] as const) {
    process.on(signal, () => {
      logger.info(`${signal}: reopening log files`);
      logger.reopen?.();
    });
  }
  installIgnoredSignals(logger, ['SIGTTIN', 'SIGTTOU']);
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

function writePidFileOrExit(path: string): void {
  try {
    writePidFile(path);
  } catch (err) {
    if (err instanceof OptionError) usageError(err.message);
    throw err;
  }
}

/**
 * Signals gatewire has no use for would end it silently with Node's default action: each gets a
 * handler that says it was ignored. (SIGPROF stays: V8's profiler uses it.)
 */
function installIgnoredSignals(logger: Logger, extra: NodeJS.Signals[]): void {
  for (const signal of [...extra, 'SIGWINCH', 'SIGALRM', 'SIGVTALRM', 'SIGXCPU', 'SIGXFSZ', 'SIGPWR', 'SIGIO'] as NodeJS.Signals[]) {
    if (!(signal in osConstants.signals)) continue;
    process.on(signal, () => (signal === 'SIGWINCH' ? undefined : logger.warn(`${signal}: ignored`)));
  }
}

/** The supervising primary (src/supervisor.ts): binds, starts the workers, handles the signals. */
async function runPrimary(options: ServeOptions, identity: Identity | undefined): Promise<void> {
  const { Supervisor } = require('./supervisor.js') as typeof import('./supervisor.js');
  // The primary writes no access lines: its workers do.
  const logger = createLogger({ level: options.logLevel, format: options.logFormat, accessLog: undefined });
  if (options.pidFile !== undefined) writePidFileOrExit(options.pidFile);
  const systemd = require('./systemd.js') as typeof import('./systemd.js');
  // --stats: a listener of the primary's own, never one of the app's.
  const stats = options.stats === undefined ? undefined : (require('./stats-server.js') as typeof import('./stats-server.js'));
  const primaryMetrics = stats === undefined ? undefined : new stats.PrimaryMetrics();
  const activated = systemd.listenFds(process.env, process.pid);
  // sd_notify (Type=notify / notify-reload): the primary is systemd's main pid and speaks for all.
  const notify = (state: string): void => {
    if (!systemd.sdNotify(state)) {
      const problem = systemd.notifyProblem();
      if (problem !== undefined) logger.warn(`sd_notify: ${problem}`);
    }
  };
  const supervisor = new Supervisor({
    options,
    logger,
    owner: identity === undefined ? undefined : { uid: identity.uid, gid: identity.gid },
    resolveNamed: (name) => systemd.resolveNamedFd(name, activated),
    hooks: {
      state: (state, detail) => {
        if (state === 'ready') notify(`READY=1\nSTATUS=${detail}`);
        else if (state === 'reloading') notify(systemd.reloadingMessage());
        else if (state === 'draining') notify(`STOPPING=1\nSTATUS=${detail}`);
      },
      workerRestarted: (reason) => primaryMetrics?.workerRestarted(reason),
      reloaded: (result) => primaryMetrics?.reloaded(result),
      workers: (n) => primaryMetrics?.setWorkers(n),
    },
    exit: (code) => exit(logger, code),
  });
  // Handlers before binding: a supervisor (systemd, a test) may signal as soon as the process runs.
  process.on('SIGHUP', () => supervisor.reload());
  process.on('SIGTERM', () => {
    logger.info(`SIGTERM: ${termPlan(options, supervisor.state === 'draining')}`);
    supervisor.terminate();
  });
  process.on('SIGINT', () => {
    logger.info('SIGINT: stopping now');
    supervisor.stopAll('now', 130);
  });
  process.on('SIGQUIT', () => {
    logger.info('SIGQUIT: stopping now');
    supervisor.stopAll('now', 131);
  });
  process.on('SIGTTIN', () => supervisor.resize(1));
  process.on('SIGTTOU', () => supervisor.resize(-1));
  process.on('SIGUSR1', () => supervisor.reopenLogs('SIGUSR1'));
  process.on('SIGUSR2', () => supervisor.reopenLogs('SIGUSR2'));
  installIgnoredSignals(logger, []);
  try {
    await supervisor.start();
  } catch (err) {
    if (options.pidFile !== undefined) removePidFile(options.pidFile);
    if (err instanceof ListenError) usageError(err.message);
    throw err;
  }
  if (stats !== undefined && primaryMetrics !== undefined && options.stats !== undefined) {
    const at = options.stats;
    if (at.kind !== 'tcp' && at.kind !== 'unix') usageError('--stats takes HOST:PORT, PORT or unix:PATH');
    try {
      const server = await stats.startStatsServer(at.kind === 'unix' ? { path: at.path } : { host: at.host, port: at.port }, {
        snapshots: () => supervisor.snapshots(),
        status: () => supervisor.status(),
        state: () => supervisor.state,
        primary: primaryMetrics,
      });
      logger.info(`stats: /metrics, /healthz, /readyz, /stats on ${at.kind === 'unix' ? `unix:${at.path}` : `${at.host ?? '*'}:${server.port ?? at.port}`}`);
    } catch (err) {
      logger.error(`stats: cannot listen on ${formatAddress(at)}: ${(err as Error).message}`);
      supervisor.stopAll('now', 2);
    }
  }
}

/** An app's stray exception or rejection is logged, never the end of the server. */
function installCrashGuards(logger: Logger, isWorker: boolean): void {
  process.on('unhandledRejection', (reason) => {
    logger.error(`unhandled rejection: ${(reason as Error)?.message ?? String(reason)}`, { stack: (reason as Error)?.stack });
  });
  process.on('uncaughtException', (err) => {
    logger.error(`uncaught exception: ${err.message}`, { stack: err.stack });
    if (isWorker) process.exit(1); // the primary starts a fresh worker
  });
}

function exit(logger: Logger, code: number): void {
  void logger.close().finally(() => process.exit(code));
}

async function main(argv: string[]): Promise<void> {
  setServingFlags();
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
