/**
 * `gatewire serve --config gatewire.toml` (or GATEWIRE_CONFIG): the serve options as a TOML file.
 *
 *   http = ["127.0.0.1:8080"]
 *   workers = 2
 *   max-body-bytes = "10m"
 *   cgi-pass-auth = true
 *
 * A key is a long option name without its dashes (SERVE_OPTIONS in src/options.ts); a value is a
 * TOML string, number or boolean (a boolean only for a value-less flag such as --cgi-pass-auth),
 * or an array of them for a repeatable option. Each value becomes the text the flag would have
 * given and is checked with the option's own parser when the file is read, so a bad file is one
 * OptionError naming `PATH:LINE: key`, before anything starts. The file holds no `config` key.
 * Precedence (src/options.ts): flag > GATEWIRE_* variable > file > default.
 */
import { readFileSync } from 'node:fs';
import { TomlError, parse } from 'smol-toml';
import { type ConfigLayer, OptionError, type OptionSpec, SERVE_OPTIONS, type ServeOptions } from './options.js';

export type { ConfigLayer } from './options.js';

/** The key of an option in a config file: its long flag without the dashes (`max-body-bytes`). */
export function configKey(spec: OptionSpec): string {
  return (spec.flags.split(' ')[0] as string).replace(/^--/, '');
}

/** Reads and checks a config file; a missing file, bad TOML or a bad key or value is an OptionError. */
export function loadConfigFile(path: string): ConfigLayer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new OptionError(`cannot read the config file ${path}: ${(err as Error).message}`);
  }
  return parseConfigFile(text, path);
}

/** The options of the TOML `text` of a file named `path` (how messages and sources name it). */
export function parseConfigFile(text: string, path: string): ConfigLayer {
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  let table: Record<string, unknown>;
  try {
    table = parse(text);
  } catch (err) {
    if (err instanceof TomlError) {
      const reason = (err.message.replace(/^Invalid TOML document:\s*/, '').split('\n')[0] ?? '').trim();
      const key = keyOnLine(text, err.line);
      throw new OptionError(`${path}:${err.line}: ${key === undefined ? '' : `${key}: `}invalid TOML: ${reason}`);
    }
    throw new OptionError(`${path}: invalid TOML: ${(err as Error).message.split('\n')[0] ?? ''}`);
  }
  const byKey = new Map(SERVE_OPTIONS.map((spec) => [configKey(spec), spec] as const));
  const lines = topLevelLines(text);
  const values: Partial<Record<keyof ServeOptions, readonly string[]>> = {};
  const at: Partial<Record<keyof ServeOptions, number>> = {};
  // In the order of the file: the error reported is the first one in it.
  const entries = Object.entries(table).map(([key, value]) => ({ key, value, line: lines.get(key) ?? 1 }));
  entries.sort((a, b) => a.line - b.line);
  for (const { key, value, line } of entries) {
    const where = `${path}:${line}`;
    const spec = byKey.get(key);
    if (spec?.key === 'config') throw new OptionError(`${where}: config: a config file cannot name another one (give --config or GATEWIRE_CONFIG)`);
    if (spec === undefined) {
      const near = suggest(key, [...byKey.keys()].filter((k) => k !== 'config'));
      throw new OptionError(`${where}: unknown key ${JSON.stringify(key)}${near === undefined ? '' : ` (did you mean ${JSON.stringify(near)}?)`}`);
    }
    const texts = textsOf(spec, value);
    if (typeof texts === 'string') throw new OptionError(`${where}: ${key}: ${texts}`);
    const what = `${spec.flags.split(' ')[0] as string} value`;
    for (const t of texts) {
      try {
        spec.parse(t, what);
      } catch (err) {
        if (err instanceof OptionError) throw new OptionError(`${where}: ${key}: ${err.message}`);
        throw err;
      }
    }
    values[spec.key] = texts;
    at[spec.key] = line;
  }
  return { path, values, lines: at };
}

/** What TOML gave, as the texts a flag would give; or why it is the wrong type. */
function textsOf(spec: OptionSpec, value: unknown): string[] | string {
  if (spec.boolean) return typeof value === 'boolean' ? [String(value)] : `expected true or false, not ${describe(value)}`;
  if (Array.isArray(value)) {
    if (!spec.repeatable) return `expected one value, not an array (${spec.flags.split(' ')[0] as string} is not repeatable)`;
    const texts: string[] = [];
    for (const item of value as unknown[]) {
      const t = scalarText(item);
      if (t === undefined) return `expected an array of strings, not one holding ${describe(item)}`;
      texts.push(t);
    }
    return texts;
  }
  const t = scalarText(value);
  if (t === undefined) return `expected ${spec.repeatable ? 'a string or an array of strings' : 'a string or a number'}, not ${describe(value)}`;
  return [t];
}

function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  return undefined;
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a date';
  if (typeof value === 'object' && value !== null) return 'a table';
  if (typeof value === 'boolean') return `a boolean (${String(value)})`;
  if (typeof value === 'number' || typeof value === 'bigint') return `a number (${String(value)})`;
  if (typeof value === 'string') return `a string (${JSON.stringify(value)})`;
  return `a ${typeof value}`;
}

const BARE_OR_QUOTED_KEY = String.raw`(?:([A-Za-z0-9_-]+)|"([^"\\]*)"|'([^']*)')`;
const ASSIGNMENT = new RegExp(String.raw`^\s*${BARE_OR_QUOTED_KEY}\s*[=.]`);
const HEADER = new RegExp(String.raw`^\s*\[\[?\s*${BARE_OR_QUOTED_KEY}\s*(?:\.[^\]#]*)?\]\]?\s*(?:#.*)?$`);

/**
 * The line of each top-level key (smol-toml gives no positions): its first `key =` (or dotted
 * `key.x =`) before the first table header, or its first `[key]` / `[key.x]` / `[[key]]` header.
 */
function topLevelLines(text: string): Map<string, number> {
  const found = new Map<string, number>();
  let topLevel = true;
  text.split(/\r?\n/).forEach((line, i) => {
    const header = HEADER.exec(line);
    if (header !== null) {
      topLevel = false;
      const key = header[1] ?? header[2] ?? header[3] ?? '';
      if (!found.has(key)) found.set(key, i + 1);
      return;
    }
    const assignment = topLevel ? ASSIGNMENT.exec(line) : null;
    if (assignment !== null) {
      const key = assignment[1] ?? assignment[2] ?? assignment[3] ?? '';
      if (!found.has(key)) found.set(key, i + 1);
    }
  });
  return found;
}

/** The key assigned on a line (1-based), if it is a `key = …` line. */
function keyOnLine(text: string, line: number): string | undefined {
  const m = ASSIGNMENT.exec(text.split(/\r?\n/)[line - 1] ?? '');
  return m === null ? undefined : (m[1] ?? m[2] ?? m[3]);
}

/** The known key closest to a mistyped one (`max_body_bytes`, `maxBodyBytes`, `max-bodyy`), if one is close. */
function suggest(key: string, known: readonly string[]): string | undefined {
  const normal = key.replace(/([a-z0-9])([A-Z])/g, '$1-$2').replace(/[_\s]+/g, '-').toLowerCase();
  if (known.includes(normal)) return normal;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = distance(normal, k);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best !== undefined && (bestDistance <= 2 || bestDistance <= 0.4 * Math.max(normal.length, best.length)) ? best : undefined;
}

/** Levenshtein distance. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length] as number;
}
