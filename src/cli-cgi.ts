/**
 * `gatewire cgi APP`: the command and its process glue around the CGI front (fronts/cgi.ts): mode
 * detection, signals, exit codes, and FastCGI on a listening fd 0 through the server's own
 * Gateway. cli.ts calls registerCgiCommand(program). A CGI run loads neither winston, the server
 * nor a network front (K-17): those are required only for the fd-0 FastCGI mode.
 *
 * Exit codes: 0 response sent (or the server closed stdout), 1 the app failed or REQUEST_METHOD
 * is missing (K-2), 2 the app cannot be loaded or an option is bad, 143 SIGTERM (K-16).
 *
 * Drop-in for any cgi-bin (examples/cgi-wrapper.cgi):
 *   #!/bin/sh
 *   exec node /path/to/gatewire/dist/src/cli.js cgi /path/to/app.mjs
 * or an app module that is its own CGI script, first line:
 *   #!/usr/bin/env -S node /path/to/gatewire/dist/src/cli.js cgi
 */
import { type Command, Option } from 'commander';
import { fstatSync, writeSync } from 'node:fs';
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
      process.stderr.write(`gatewire: ${err.message}\n`);
      process.exit(2);
    }
    await runCgiProcess(app, options);
  });
  return cgi;
}

// ---------------------------------------------------------------------------------------
// The process glue: `gatewire cgi APP`
// ---------------------------------------------------------------------------------------

/** stderr by plain blocking writes: a line is out before process.exit(). */
const processStderr = {
  write(text: string): void {
    try {
      writeSync(2, text);
    } catch {
      // EAGAIN on a non-blocking stderr, or no stderr: drop the line
    }
  },
};

/**
 * `gatewire cgi APP`: §6.1 mode detection, then one CGI request on stdin/stdout, or FastCGI on
 * the listening socket at fd 0. Never returns: exits with the codes of the module comment.
 */
export async function runCgiProcess(appSpec: string, options: ServeOptions): Promise<never> {
  // K-16: from the first moment; while the app loads there is nothing to clean up.
  let onSigterm = (): void => process.exit(143);
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
    process.exit(2);
  }

  if (!cgi && isSocket(0)) {
    const served = await serveSpawnedFastcgi(service, options, (handler) => (onSigterm = handler));
    if (served) return new Promise<never>(() => undefined); // runs until SIGTERM
  }

  const controller = new AbortController();
  onSigterm = () => controller.abort(new CgiTermination('SIGTERM'));
  process.on('uncaughtException', (err) => controller.abort(err));
  process.on('unhandledRejection', (reason) => controller.abort(reason instanceof Error ? reason : new Error(`unhandled rejection: ${String(reason)}`)));
  // Nothing left to wait for but no response yet: the app's promise can never settle.
  process.on('beforeExit', () => controller.abort(new CgiStalled('the app did not finish its response and has nothing left to wait for')));
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
  process.exit(code);
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
      process.exit(2);
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
