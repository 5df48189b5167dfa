/**
 * `gatewire cgi APP`: the command and its process glue around the CGI front (fronts/cgi.ts): mode
 * detection, signals, exit codes, and FastCGI on a listening fd 0 through the server's own
 * Gateway. cli.ts calls registerCgiCommand(program). A CGI run loads neither winston, the server
 * nor a network front (K-17): those are required only for the fd-0 FastCGI mode.
 *
 * Exit codes: 0 response sent (or the server closed stdout), 1 the app failed or REQUEST_METHOD
 * is missing (K-2), 2 the app cannot be loaded or an option is bad, 143 SIGTERM (K-16).
 *
 * The end of a run (K-20): the response is complete once stdout is flushed, but the app may still
 * have work queued (Express logs a route's error from a setImmediate after the 500 went out, a
 * logger writes from a timer), and all of it may be writing to stderr. Exiting right after the
 * flush lost those lines, and process.exit() also drops what Node still queues for a stderr pipe
 * the web server reads slowly. So: stdout is released first, and the web server sees the end of
 * the response at once (releaseStdout); then the process lingers until its event loop is empty,
 * at most LINGER_MS (an app holding a timer or a pool open would keep it forever), waits for
 * stderr to drain, at most STDERR_DRAIN_MS, and exits. The response is not held up by it, except
 * under a host that itself waits for the script's stderr to close (Apache mod_cgi): there the
 * linger is the app's own pending work, LINGER_MS at worst. Diagnostics of our own go through
 * process.stderr too, so they keep their order with the app's.
 *
 * Drop-in for any cgi-bin (examples/cgi-wrapper.cgi):
 *   #!/bin/sh
 *   exec node /path/to/gatewire/dist/src/cli.js cgi /path/to/app.mjs
 * or an app module that is its own CGI script, first line:
 *   #!/usr/bin/env -S node /path/to/gatewire/dist/src/cli.js cgi
 */
import { type Command, Option } from 'commander';
import { closeSync, fstatSync, openSync } from 'node:fs';
import type { Service } from './app.js';
import { CgiStalled, CgiTermination, answerWithoutApp, isCgiEnvironment, readProcessEnviron, runCgiChild } from './fronts/cgi.js';
import { LoadError, loadService, splitAppSpec } from './loader.js';
import { OptionError, SERVE_OPTIONS, type ServeOptions, resolveOptions } from './options.js';

/** The serve options that mean something to `gatewire cgi` (the last ones only in spawned-FastCGI mode). */
const CGI_OPTION_KEYS: ReadonlyArray<keyof ServeOptions> = [
  'interface',
  'maxBodyBytes',
  'mount',
  'fastcgiAllow',
  'maxParamsBytes',
  'maxInflight',
  'headersTimeout',
  'idleTimeout',
  'shutdownTimeout',
  'logLevel',
  'logFormat',
  'accessLog',
];

export function registerCgiCommand(program: Command): Command {
  // Options of the program itself (-v, -h) come before the command; needed by passThroughOptions.
  program.enablePositionalOptions();
  const cgi = program
    .command('cgi')
    .summary('run an app as a CGI program (FastCGI when fd 0 is a listening socket)')
    .description(
      'run an app as a CGI program: one request from the environment and stdin, the response on stdout ' +
        '(nph-* script names answer with a complete HTTP response); when fd 0 is a listening socket ' +
        '(spawn-fcgi, mod_fcgid), serve FastCGI on it instead',
    )
    .argument('<app>', 'app module: PATH[:export] (.js, .mjs, .cjs; ESM or CommonJS)')
    // Apache mod_cgi and Python's http.server append the query string as arguments when it has
    // no `=` (RFC 3875 §4.4 "ISINDEX"); through a `#!` line they follow APP. Everything after
    // APP is passed through unparsed and ignored: options taken from a query string are what
    // gave PHP-CGI CVE-2012-1823. gatewire's own options go before APP.
    .passThroughOptions()
    .allowExcessArguments(true)
    .exitOverride();
  const attributes: Array<[key: keyof ServeOptions, attribute: string]> = [];
  for (const spec of SERVE_OPTIONS) {
    if (!CGI_OPTION_KEYS.includes(spec.key)) continue;
    const dflt = spec.default === undefined ? (/\bdefault:/.test(spec.description) ? '' : 'default: none; ') : `default: ${spec.default === '' ? '""' : spec.default}; `;
    const option = new Option(spec.flags, `${spec.description} (${dflt}env: ${spec.env})`);
    cgi.addOption(option);
    attributes.push([spec.key, option.attributeName()]);
  }
  cgi.action(async (app: string, parsed: Record<string, string>) => {
    const raw: Partial<Record<keyof ServeOptions, string>> = {};
    for (const [key, attribute] of attributes) if (parsed[attribute] !== undefined) raw[key] = parsed[attribute];
    let options: ServeOptions;
    try {
      options = resolveOptions(raw);
    } catch (err) {
      if (!(err instanceof OptionError)) throw err;
      processStderr.write(`gatewire: ${err.message}\n`);
      return exitAfterStderr(2);
    }
    await runCgiProcess(app, options);
  });
  return cgi;
}

// ---------------------------------------------------------------------------------------
// The process glue: `gatewire cgi APP`
// ---------------------------------------------------------------------------------------

/**
 * After the response: how long the app's queued work (timers, immediates, I/O) may keep the
 * process alive to write its last stderr lines (K-20). Most apps are done long before (Express
 * logs from a setImmediate) and the process ends as soon as its event loop is empty; the cap
 * only binds an app that holds a timer or a pool open. It is short because some hosts finish the
 * response only when the process is gone: Apache mod_cgi reads the script's stderr to EOF before
 * it completes the response, python3 http.server waits for the exit. mod_cgid is not held up.
 */
export const LINGER_MS = 500;

/** At exit: how long stderr bytes Node still queues (the web server reads slowly) may take to leave. */
export const STDERR_DRAIN_MS = 1000;

/** On SIGTERM the wait for stderr is shorter: the process must end promptly (K-16). */
const SIGTERM_DRAIN_MS = 200;

/**
 * Our diagnostics go through process.stderr, in order with what the app writes there; exits wait
 * for it to drain (exitAfterStderr), so a line is out before the process ends (K-20).
 */
const processStderr = {
  write(text: string): void {
    try {
      process.stderr.write(text);
    } catch {
      // no stderr: drop the line
    }
  },
};

/**
 * `gatewire cgi APP`: §6.1 mode detection, then one CGI request on stdin/stdout, or FastCGI on
 * the listening socket at fd 0. Never returns: exits with the codes of the module comment.
 */
export async function runCgiProcess(appSpec: string, options: ServeOptions): Promise<never> {
  // A web server that closed our stderr (EPIPE) must not crash the run.
  process.stderr.on('error', () => undefined);
  // K-16: from the first moment; while the app loads there is nothing to clean up.
  let onSigterm = (): void => void exitAfterStderr(143, SIGTERM_DRAIN_MS);
  process.on('SIGTERM', () => onSigterm());
  const env = readProcessEnviron();
  const cgi = isCgiEnvironment(env);
  let service: Service;
  try {
    service = await loadService(appSpec, options.interface);
  } catch (err) {
    if (!(err instanceof LoadError)) throw err;
    processStderr.write(`gatewire: ${err.message}\n`);
    if (cgi) {
      // The web server still gets a response it can show, not "premature end of script headers".
      await answerWithoutApp(env, env.SCRIPT_FILENAME || splitAppSpec(appSpec).file, process.stdout, 500);
    }
    return exitAfterStderr(2);
  }

  if (!cgi && isSocket(0)) {
    const served = await serveSpawnedFastcgi(service, options, (handler) => (onSigterm = handler));
    if (served) return new Promise<never>(() => undefined); // runs until SIGTERM
  }

  const controller = new AbortController();
  // Before the response an uncaught error is the app's failure (a 500); after it, a line on stderr.
  let responded = false;
  const crashed = (what: string, err: unknown): void => {
    if (responded) processStderr.write(`gatewire cgi: error: ${what} after the response: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    else controller.abort(err instanceof Error ? err : new Error(`${what}: ${String(err)}`));
  };
  onSigterm = () => controller.abort(new CgiTermination('SIGTERM'));
  process.on('uncaughtException', (err) => crashed('uncaught exception', err));
  process.on('unhandledRejection', (reason) => crashed('unhandled rejection', reason));
  // Nothing left to wait for but no response yet: the app's promise can never settle.
  const stalled = (): void => controller.abort(new CgiStalled('the app did not finish its response and has nothing left to wait for'));
  process.on('beforeExit', stalled);
  process.stdout.on('error', () => undefined); // K-13: handled by the sink; never an uncaught EPIPE

  const code = await runCgiChild(service, {
    env,
    stdin: 0,
    stdout: process.stdout,
    stderr: processStderr,
    scriptName: env.SCRIPT_FILENAME || splitAppSpec(appSpec).file,
    maxBodyBytes: options.maxBodyBytes,
    signal: controller.signal,
  });
  if (code === 143) return exitAfterStderr(code, SIGTERM_DRAIN_MS);

  // K-20: the response is out; the app's late work may still log.
  process.off('beforeExit', stalled);
  responded = true;
  // mod_cgid SIGTERMs every script still running when its request ends (and SIGKILLs it 3 s
  // later): after the response SIGTERM is routine, not a reason to drop the app's last lines.
  onSigterm = () => undefined;
  return exitAfterLinger(code);
}

/** K-20: stdout released, the app's queued work given up to LINGER_MS, stderr drained, exit. */
async function exitAfterLinger(code: number): Promise<never> {
  process.exitCode = code; // whatever ends the process from here on
  await releaseStdout();
  await lingerForApp(LINGER_MS);
  return exitAfterStderr(code);
}

/**
 * K-20: the web server sees the end of the response now, while the process may still linger.
 * fd 1 is closed and taken again at once by /dev/null (open() returns the lowest free
 * descriptor), so a descriptor the app opens later never becomes its stdout; whoever else holds
 * the same pipe (a wrapper shell that runs more commands) keeps its copy, as if we had exited.
 * One socket as both stdin and stdout (mod_cgid) stays open through fd 0, so it is shut down for
 * writing instead, which ends it for the web server. A terminal is left alone.
 */
function releaseStdout(): Promise<void> {
  let how: 'shutdown' | 'close' | undefined;
  try {
    const out = fstatSync(1);
    if (out.isSocket() && sameFile(0, out.dev, out.ino)) how = 'shutdown';
    else if (out.isSocket() || out.isFIFO() || out.isFile()) how = 'close';
  } catch {
    return Promise.resolve(); // fd 1 is not open: nothing to release
  }
  if (how === 'shutdown') {
    // end() shuts the socket down (the stdio stream never closes its fd); a stdout that already
    // failed (EPIPE) may never call back, hence the bound.
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, STDERR_DRAIN_MS);
      process.stdout.end(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  if (how === 'close') {
    try {
      closeSync(1);
      const fd = openSync('/dev/null', 'w');
      if (fd !== 1) closeSync(fd); // fd 1 was taken between the two calls: keep nothing extra open
    } catch {
      // closing failed: the web server sees EOF when the process exits
    }
  }
  return Promise.resolve();
}

function sameFile(fd: number, dev: number, ino: number): boolean {
  try {
    const st = fstatSync(fd);
    return st.dev === dev && st.ino === ino;
  } catch {
    return false;
  }
}

/**
 * K-20: resolves when the event loop has nothing left to do (the app's timers, immediates and
 * I/O are done: `beforeExit`), or after `capMs` at most. The cap timer is unref'd: it never keeps
 * the process alive by itself.
 */
function lingerForApp(capMs: number): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(cap);
      process.off('beforeExit', done);
      resolve();
    };
    const cap = setTimeout(done, capMs);
    cap.unref();
    process.once('beforeExit', done);
  });
}

/**
 * Exits with `code` once what the process queued for stderr has left (a pipe the web server reads
 * slowly holds it in Node's queue, and process.exit() would drop it), after `drainMs` at most.
 */
function exitAfterStderr(code: number, drainMs = STDERR_DRAIN_MS): Promise<never> {
  return new Promise<never>(() => {
    const exit = (): void => process.exit(code);
    setTimeout(exit, drainMs);
    try {
      process.stderr.write('', exit);
    } catch {
      exit();
    }
  });
}

function isSocket(fd: number): boolean {
  try {
    return fstatSync(fd).isSocket();
  } catch {
    return false;
  }
}

/**
 * K-18: FastCGI on the listening socket a process manager handed over as fd 0, served by the
 * same Gateway as `gatewire serve --fastcgi fd:0` (its listener, its graceful close). False when
 * fd 0 is a socket that does not listen (a connected socketpair from the parent), so the caller
 * falls back to CGI mode. Loaded only here: a CGI run never pays for the server (K-17).
 */
async function serveSpawnedFastcgi(service: Service, options: ServeOptions, onSigterm: (handler: () => void) => void): Promise<boolean> {
  const { Gateway, ListenError } = require('./server.js') as typeof import('./server.js');
  const { createLogger } = require('./log.js') as typeof import('./log.js');
  const logger = createLogger({ level: options.logLevel, format: options.logFormat, accessLog: options.accessLog });
  // spawn-fcgi -F and mod_fcgid run several of us on one socket: multiprocess (E-16).
  const gateway = new Gateway(service, options, logger, { manageSocketFiles: false, multiprocess: true });
  try {
    await gateway.listen([{ front: 'fastcgi', address: { kind: 'fd', fd: 0 } }]);
  } catch (err) {
    if (!(err instanceof ListenError)) throw err;
    if (/allow-list/.test(err.message)) {
      processStderr.write(`gatewire: ${err.message}\n`);
      return exitAfterStderr(2);
    }
    return false;
  }
  process.on('unhandledRejection', (reason) => logger.error(`unhandled rejection: ${(reason as Error)?.message ?? String(reason)}`, { stack: (reason as Error)?.stack }));
  process.on('uncaughtException', (err) => logger.error(`uncaught exception: ${err.message}`, { stack: err.stack }));
  let stopping = false;
  onSigterm(() => {
    // K-19: stop accepting, let in-flight requests finish, exit 0.
    if (stopping) return;
    stopping = true;
    logger.info(`SIGTERM: finishing in-flight requests (up to ${options.shutdownTimeout} ms)`);
    void gateway.close(options.shutdownTimeout).then(() => logger.close().finally(() => process.exit(0)));
  });
  return true;
}
