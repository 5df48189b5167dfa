/**
 * `gatewire config [APP] [--config FILE] [serve options] [--check]`: the options `gatewire serve`
 * would run with, resolved as it resolves them (flag > GATEWIRE_* variable > config file >
 * default), one line per option with where its value came from:
 *
 *   http = ["127.0.0.1:8080"]   # file gatewire.toml:1
 *   workers = 4                 # env GATEWIRE_WORKERS
 *   max-body-bytes = "1g"       # default
 *
 * The lines are TOML, so they can be pasted into a config file; an option without a value is a
 * comment. `--check` prints `ok` and exits 0 when serve would accept the options (every value
 * valid, a listener, something to serve). Errors: one line `gatewire: …` on stderr, exit 2.
 * cli.ts calls registerConfigCommand(program). What only this command needs (the TOML parser,
 * the list of fronts) is required when it runs: `gatewire cgi` loads this module too (K-17).
 */
import { type Command, Option } from 'commander';
import { OptionError, type OptionFlags, type OptionSpec, type ResolvedOptions, SERVE_OPTIONS, type ServeOptions, resolveCliOptions } from './options.js';

/**
 * Every serve option (SERVE_OPTIONS) on `command`, for `serve` and `config`. Option keys are
 * commander's attribute names for their flags (test/options.test.ts checks), so what commander
 * parsed is already keyed like ServeOptions.
 */
export function addServeOptions(command: Command): void {
  for (const spec of SERVE_OPTIONS) {
    // Every option shows its default: none, unless the text gives one.
    const dflt = spec.default === undefined ? (/\bdefault:/.test(spec.description) ? '' : 'default: none; ') : `default: ${spec.default === '' ? '""' : spec.default}; `;
    const option = new Option(spec.flags, `${spec.description} (${dflt}env: ${spec.env})`);
    if (spec.repeatable) option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
    command.addOption(option);
  }
}

export function registerConfigCommand(program: Command): Command {
  const config = program
    .command('config')
    .description('print the options serve would use, one TOML line each with where it came from (flag, env, file, default)')
    .argument('[app]', 'app module: PATH[:export], as given to serve')
    .exitOverride();
  // The same options as serve, so a serve command line can be checked as it is.
  addServeOptions(config);
  config.addOption(new Option('--check', 'print only `ok` (exit 0) when serve would accept these options; else the error (exit 2)'));
  config.action((app: string | undefined, parsed: Record<string, string | string[] | boolean>) => {
    const { check, ...flags } = parsed;
    let resolved: ResolvedOptions;
    try {
      resolved = resolveCliOptions(flags as OptionFlags, process.env);
      if (check === true) checkServable(app, resolved.options);
    } catch (err) {
      if (!(err instanceof OptionError)) throw err;
      process.stderr.write(`gatewire: ${err.message}\n`);
      process.exit(2);
    }
    process.stdout.write(check === true ? 'ok\n' : formatConfig(resolved, app));
  });
  return config;
}

/** What serve refuses before it loads anything (cli.ts serve): nothing to serve, nothing to listen on. */
function checkServable(app: string | undefined, options: ServeOptions): void {
  const { FRONTS, frontFlags } = require('./fronts/registry.js') as typeof import('./fronts/registry.js');
  if (app === undefined && options.cgiBin === undefined && options.upstream.length === 0) {
    throw new OptionError('config: no app given (gatewire serve APP --http ADDR, --upstream URL, or --cgi-bin DIR)');
  }
  if (FRONTS.every((f) => options[f.name].length === 0)) throw new OptionError(`config: nothing to listen on: give at least one of ${frontFlags()} ADDR`);
}

/** The key of an option in a config file: its long flag without the dashes. */
function fileKey(spec: OptionSpec): string {
  return (spec.flags.split(' ')[0] as string).replace(/^--/, '');
}

/** The effective options as TOML lines, `key = value   # source`; unset ones and `config` as comments. */
export function formatConfig(resolved: ResolvedOptions, app?: string): string {
  const rows: Array<[text: string, source: string]> = [];
  if (app !== undefined) rows.push([`# app = ${tomlString(app)}`, 'argument']);
  for (const spec of SERVE_OPTIONS) {
    const key = fileKey(spec);
    const texts = resolved.texts[spec.key];
    const source = resolved.sources[spec.key];
    let line: string;
    if (spec.boolean) line = `${key} = ${String(resolved.options[spec.key] === true)}`;
    else if (spec.repeatable) line = `${key} = [${(texts ?? []).map(tomlString).join(', ')}]`;
    else if (texts === undefined || texts.length === 0) line = `# ${key} (unset)`;
    else line = `${key} = ${tomlScalar(texts[texts.length - 1] as string)}`;
    // A config file names no other one: the line is a comment, the value still shown.
    if (spec.key === 'config' && !line.startsWith('#')) line = `# ${line}`;
    rows.push([line, source]);
  }
  const width = Math.min(40, Math.max(...rows.map(([text]) => text.length)));
  return rows.map(([text, source]) => `${text.padEnd(width)}   # ${source}\n`).join('');
}

/** A whole number as a TOML integer (it reads back as the same text), anything else as a string. */
function tomlScalar(text: string): string {
  return /^(0|[1-9][0-9]{0,14})$/.test(text) ? text : tomlString(text);
}

/** A TOML basic string: JSON's escapes are TOML's, and DEL must be escaped too. */
function tomlString(text: string): string {
  return JSON.stringify(text).replace(/\x7f/g, '\\u007F');
}
