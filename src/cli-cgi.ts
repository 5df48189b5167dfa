/**
 * `gatewire cgi APP`: the command-line side of CGI child mode (cgi-child.ts). cli.ts calls
 * registerCgiCommand(program). This module stays light: the runner is imported only when the
 * command runs, and it loads neither winston nor the HTTP server (K-17).
 *
 * Drop-in for any cgi-bin (examples/cgi-wrapper.cgi):
 *   #!/bin/sh
 *   exec node /path/to/gatewire/dist/src/cli.js cgi /path/to/app.mjs
 * or an app module that is its own CGI script, first line:
 *   #!/usr/bin/env -S node /path/to/gatewire/dist/src/cli.js cgi
 */
import { type Command, Option } from 'commander';
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
    // require, not import(): Node 20 loads a CommonJS module through import() with its export
    // lexer, which costs ~50 ms here (measured), on every CGI request.
    const { runCgiProcess } = require('./cgi-child.js') as typeof import('./cgi-child.js');
    await runCgiProcess(app, options);
  });
  return cgi;
}
