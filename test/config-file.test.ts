/**
 * The TOML config file (src/config-file.ts), its place in the precedence (src/options.ts:
 * flag > GATEWIRE_* variable > file > default, with the source of every value), and the
 * `gatewire config` command (src/cli-config.ts) and `serve --config` through the built CLI.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatConfig } from '../src/cli-config.js';
import { configKey, loadConfigFile, parseConfigFile } from '../src/config-file.js';
import { OptionError, type OptionSpec, SERVE_OPTIONS, type ServeOptions, optionsFromCli, resolveCliOptions, resolveOptions, resolveOptionsWithSources } from '../src/options.js';
import { ensureBuilt, example, killAll, oneLine, poll, portOf, request, runCli, spawnCli, tempDir } from './fixtures/apps/cli-harness.js';

afterEach(() => killAll());

/** Writes `text` to DIR/gatewire.toml (a fresh DIR) and returns its path. */
function writeConfig(text: string, name = 'gatewire.toml'): string {
  const file = path.join(tempDir('gatewire-config-'), name);
  fs.writeFileSync(file, text);
  return file;
}

/** The OptionError `fn` throws (fails the test when it throws nothing or something else). */
function optionError(fn: () => unknown): OptionError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(OptionError);
    return err as OptionError;
  }
  throw new Error('expected an OptionError, got none');
}

const spec = (key: keyof ServeOptions): OptionSpec => SERVE_OPTIONS.find((s) => s.key === key) as OptionSpec;

describe('loadConfigFile', () => {
  test('keys are the long option names; values become the texts a flag would give', () => {
    const file = writeConfig(
      [
        '# a comment',
        'http = ["127.0.0.1:8080", "unix:/tmp/g.sock"]',
        'workers = 2',
        'max-body-bytes = "10m"',
        'stats = "127.0.0.1:9100"',
        '',
        'cgi-pass-auth = true',
        'upstream-param = ["A=b"]',
        'fastcgi = "9000"            # a single string for a repeatable option',
        '"mount" = "/app"',
        'timeout = 1.5',
      ].join('\n'),
    );
    const layer = loadConfigFile(file);
    expect(layer.path).toBe(file);
    expect(layer.values).toEqual({
      http: ['127.0.0.1:8080', 'unix:/tmp/g.sock'],
      workers: ['2'],
      maxBodyBytes: ['10m'],
      stats: ['127.0.0.1:9100'],
      cgiPassAuth: ['true'],
      upstreamParam: ['A=b'],
      fastcgi: ['9000'],
      mount: ['/app'],
      timeout: ['1.5'],
    });
    expect(layer.lines).toEqual({ http: 2, workers: 3, maxBodyBytes: 4, stats: 5, cgiPassAuth: 7, upstreamParam: 8, fastcgi: 9, mount: 10, timeout: 11 });
    const o = resolveOptions({}, {}, layer);
    expect(o).toMatchObject({ workers: 2, maxBodyBytes: 10 * 1024 ** 2, cgiPassAuth: true, upstreamParam: [['A', 'b']], mount: '/app', timeout: 2 });
    expect(o.http).toEqual([
      { kind: 'tcp', host: '127.0.0.1', port: 8080 },
      { kind: 'unix', path: '/tmp/g.sock' },
    ]);
    expect(o.fastcgi).toEqual([{ kind: 'tcp', host: undefined, port: 9000 }]);
    expect(o.stats).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 9100 });
  });

  test('an empty file sets nothing; an empty array sets a repeatable option to none', () => {
    expect(parseConfigFile('', 'gatewire.toml').values).toEqual({});
    const layer = parseConfigFile('http = []\n', 'gatewire.toml');
    expect(layer.values).toEqual({ http: [] });
    expect(resolveOptionsWithSources({}, {}, layer).sources.http).toBe('file gatewire.toml:1');
  });

  test('a missing file is an OptionError naming it', () => {
    const missing = path.join(tempDir('gatewire-config-'), 'none.toml');
    expect(optionError(() => loadConfigFile(missing)).message).toMatch(new RegExp(`^cannot read the config file ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ENOENT`));
  });
});

describe('OP-21: precedence flag > GATEWIRE_* variable > config file > default, with the source of each value', () => {
  test('OP-21: workers set as flag, env, file and default; removing the layers one by one shows each value and its source', () => {
    const file = writeConfig('# workers\n\nworkers = 2\n');
    const layer = loadConfigFile(file);
    const env = { GATEWIRE_WORKERS: '3' };
    const at = (flags: Record<string, string>, e: NodeJS.ProcessEnv, l?: typeof layer): [number, string] => {
      const r = resolveOptionsWithSources(flags, e, l);
      return [r.options.workers, r.sources.workers];
    };
    expect(at({ workers: '4' }, env, layer)).toEqual([4, 'flag']);
    expect(at({}, env, layer)).toEqual([3, 'env GATEWIRE_WORKERS']);
    expect(at({}, {}, layer)).toEqual([2, `file ${file}:3`]);
    expect(at({}, {}, undefined)).toEqual([1, 'default']);
    // resolveOptions is the same resolution without the sources.
    expect(resolveOptions({}, env, layer).workers).toBe(3);
    expect(resolveOptions({}, {}, layer).workers).toBe(2);
  });

  test('OP-21: a repeatable option (http) and a value-less flag (cgi-pass-auth) take the same order', () => {
    const layer = parseConfigFile('http = ["127.0.0.1:1", "127.0.0.1:2"]\ncgi-pass-auth = true\n', 'gatewire.toml');
    const r = (flags: Record<string, string | string[] | boolean>, env: NodeJS.ProcessEnv) => resolveOptionsWithSources(flags, env, layer);
    expect(r({ http: ['127.0.0.1:9'] }, { GATEWIRE_HTTP: '127.0.0.1:8' }).options.http).toEqual([{ kind: 'tcp', host: '127.0.0.1', port: 9 }]);
    expect(r({}, { GATEWIRE_HTTP: '127.0.0.1:8' }).sources.http).toBe('env GATEWIRE_HTTP');
    expect(r({}, {}).options.http.map((a) => (a.kind === 'tcp' ? a.port : 0))).toEqual([1, 2]);
    expect(r({}, {}).sources.http).toBe('file gatewire.toml:1');
    expect(r({}, { GATEWIRE_CGI_PASS_AUTH: 'false' }).options.cgiPassAuth).toBe(false);
    expect(r({}, {}).sources.cgiPassAuth).toBe('file gatewire.toml:2');
    expect(resolveOptionsWithSources({}, {}).sources.cgiPassAuth).toBe('default');
    expect(r({ cgiPassAuth: true }, { GATEWIRE_CGI_PASS_AUTH: 'false' }).sources.cgiPassAuth).toBe('flag');
  });

  test('OP-21: optionsFromCli reads the file of --config, else of GATEWIRE_CONFIG; the flag names the file over the variable', () => {
    const a = writeConfig('mount = "/from-a"\n', 'a.toml');
    const b = writeConfig('mount = "/from-b"\n', 'b.toml');
    expect(optionsFromCli({}, {}).mount).toBe('');
    expect(optionsFromCli({ config: a }, {}).mount).toBe('/from-a');
    expect(optionsFromCli({}, { GATEWIRE_CONFIG: b }).mount).toBe('/from-b');
    expect(optionsFromCli({ config: a }, { GATEWIRE_CONFIG: b }).mount).toBe('/from-a');
    expect(optionsFromCli({ config: a }, { GATEWIRE_MOUNT: '/env' }).mount).toBe('/env');
    const r = resolveCliOptions({}, { GATEWIRE_CONFIG: b });
    expect([r.options.config, r.sources.config, r.sources.mount]).toEqual([b, 'env GATEWIRE_CONFIG', `file ${b}:1`]);
    expect(resolveCliOptions({ config: a }, {}).sources.config).toBe('flag');
  });

  test('OP-21: the file is read on each call (each worker start, so a HUP reload sees a changed file)', () => {
    const file = writeConfig('workers = 2\n');
    expect(optionsFromCli({ config: file }, {}).workers).toBe(2);
    fs.writeFileSync(file, 'workers = 5\n');
    expect(optionsFromCli({ config: file }, {}).workers).toBe(5);
  });
});

describe('OP-22: a bad config file is one OptionError naming file:line and the key', () => {
  test('OP-22: an unknown key names its line, with the nearest known key', () => {
    const e = optionError(() => parseConfigFile('http = ["8080"]\nworkers = 2\nmax-bodyy = "10m"\n', 'gatewire.toml'));
    expect(e.message).toBe('gatewire.toml:3: unknown key "max-bodyy" (did you mean "max-body-bytes"?)');
    expect(optionError(() => parseConfigFile('maxBodyBytes = 1\n', 'gatewire.toml')).message).toBe('gatewire.toml:1: unknown key "maxBodyBytes" (did you mean "max-body-bytes"?)');
    expect(optionError(() => parseConfigFile('\nzzz = 1\n', 'gatewire.toml')).message).toBe('gatewire.toml:2: unknown key "zzz"');
  });

  test('OP-22: a bad value fails at load, with the message of the option itself', () => {
    const file = writeConfig('http = ["8080"]\n\n\n\nworkers = "x"\n');
    expect(optionError(() => loadConfigFile(file)).message).toBe(`${file}:5: workers: invalid --workers value "x": expected a whole number from 0 to 1024`);
  });

  test('OP-22: a bad duration', () => {
    const e = optionError(() => parseConfigFile('workers = 2\nheaders-timeout = "soon"\n', 'gatewire.toml'));
    expect(e.message).toMatch(/^gatewire\.toml:2: headers-timeout: invalid --headers-timeout value "soon": expected milliseconds/);
  });

  test.each([
    ['an array for a one-value option', 'workers = 1\nstats = ["127.0.0.1:9100"]\n', 'gatewire.toml:2: stats: expected one value, not an array (--stats is not repeatable)'],
    ['a table', 'workers = 1\n\n[http]\nport = 8080\n', 'gatewire.toml:3: http: expected a string or an array of strings, not a table'],
    ['an inline table', 'mount = { a = 1 }\n', 'gatewire.toml:1: mount: expected a string or a number, not a table'],
    ['a dotted key', 'mount.x = "/a"\n', 'gatewire.toml:1: mount: expected a string or a number, not a table'],
    ['a string for a value-less flag', 'cgi-pass-auth = "yes"\n', 'gatewire.toml:1: cgi-pass-auth: expected true or false, not a string ("yes")'],
    ['a boolean for an option with a value', 'access-log = true\n', 'gatewire.toml:1: access-log: expected a string or a number, not a boolean (true)'],
    ['a boolean in an array', 'http = ["8080", true]\n', 'gatewire.toml:1: http: expected an array of strings, not one holding a boolean (true)'],
    ['a date', 'cgi-index = 1979-05-27\n', 'gatewire.toml:1: cgi-index: expected a string or a number, not a date'],
  ])('OP-22: wrong type: %s', (_what, text, message) => {
    expect(optionError(() => parseConfigFile(text, 'gatewire.toml')).message).toBe(message);
  });

  test('OP-22: a TOML syntax error names its line (and the key of that line)', () => {
    expect(optionError(() => parseConfigFile('workers = 2\nmount = = "/a"\n', 'gatewire.toml')).message).toBe('gatewire.toml:2: mount: invalid TOML: invalid value');
    expect(optionError(() => parseConfigFile('workers = 2\nworkers = 3\n', 'gatewire.toml')).message).toMatch(/^gatewire\.toml:2: workers: invalid TOML: /);
    expect(optionError(() => parseConfigFile('workers = 2\n[unclosed\n', 'gatewire.toml')).message).toMatch(/^gatewire\.toml:2: invalid TOML: /);
  });

  test('OP-22: the key config is refused in a file', () => {
    expect(optionError(() => parseConfigFile('workers = 2\nconfig = "other.toml"\n', 'gatewire.toml')).message).toBe('gatewire.toml:2: config: a config file cannot name another one (give --config or GATEWIRE_CONFIG)');
  });

  test('OP-22: the first error of the file is the one reported, and each message is one line', () => {
    const e = optionError(() => parseConfigFile('workers = "x"\nnope = 1\n', 'gatewire.toml'));
    expect(e.message).toMatch(/^gatewire\.toml:1: workers: /);
    expect(e.message).not.toContain('\n');
    expect(optionError(() => parseConfigFile('a = = 1\n', 'gatewire.toml')).message).not.toContain('\n');
  });

  test('OP-22: a bad value of a hand-made layer still names its file and line when resolved', () => {
    const e = optionError(() => resolveOptions({}, {}, { path: 'x.toml', values: { workers: ['x'] }, lines: { workers: 7 } }));
    expect(e.message).toBe('x.toml:7: workers: invalid --workers value "x": expected a whole number from 0 to 1024');
  });
});

/** Texts tried, in order, for an option of the table: the first its parser takes and that is not its default is used. */
const SAMPLES = ['fastcgi://127.0.0.1:9000', '127.0.0.1:9123', 'NAME=value', 'environ', 'debug', 'json', '/prefix', '640', '3', '7s', '10m', 'plain-text'];

function sampleFor(s: OptionSpec): string {
  for (const t of SAMPLES) {
    try {
      s.parse(t, 'sample');
    } catch {
      continue;
    }
    if (t !== s.default) return t;
  }
  throw new Error(`no sample value is valid for ${s.flags}: add one to SAMPLES`);
}

/** A config file setting every option of SERVE_OPTIONS but config: [text, key → line]. */
function everyOptionFile(): [string, Map<keyof ServeOptions, number>] {
  const lines = ['# every option of SERVE_OPTIONS'];
  const at = new Map<keyof ServeOptions, number>();
  for (const s of SERVE_OPTIONS) {
    if (s.key === 'config') continue;
    const value = s.boolean ? 'true' : s.repeatable ? JSON.stringify([sampleFor(s)]) : JSON.stringify(sampleFor(s));
    lines.push(`${configKey(s)} = ${value}`);
    at.set(s.key, lines.length);
  }
  return [`${lines.join('\n')}\n`, at];
}

describe('a file with every option', () => {
  test('every option of SERVE_OPTIONS (config aside) can be set in a file, and resolves to its value with the file as its source', () => {
    const [text, at] = everyOptionFile();
    const file = writeConfig(text);
    const { options, sources } = resolveOptionsWithSources({}, {}, loadConfigFile(file));
    for (const s of SERVE_OPTIONS) {
      if (s.key === 'config') {
        expect(sources.config).toBe('default');
        continue;
      }
      expect([s.key, sources[s.key]]).toEqual([s.key, `file ${file}:${at.get(s.key) as number}`]);
      const expected = s.boolean ? true : s.repeatable ? [s.parse(sampleFor(s), 'x')] : s.parse(sampleFor(s), 'x');
      expect([s.key, options[s.key]]).toEqual([s.key, expected]);
    }
  });

  test('config keys are the long option names: lower-case words joined by dashes, one per option', () => {
    const keys = SERVE_OPTIONS.map(configKey);
    for (const k of keys) expect(k).toMatch(/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/);
    expect(new Set(keys).size).toBe(keys.length);
    expect(configKey(spec('maxBodyBytes'))).toBe('max-body-bytes');
  });

  test('what `gatewire config` prints is a config file that resolves to the same options', () => {
    const [text] = everyOptionFile();
    const first = resolveOptionsWithSources({ mount: '/flag' }, { GATEWIRE_WORKERS: '5' }, parseConfigFile(text, 'a.toml'));
    const printed = formatConfig(first, 'app.mjs');
    const again = resolveOptionsWithSources({}, {}, parseConfigFile(printed, 'b.toml'));
    expect(again.options).toEqual({ ...first.options, config: undefined });
    // And the defaults alone: unset options are comments, empty lists `[]`.
    const defaults = resolveOptionsWithSources({}, {});
    expect(resolveOptions({}, {}, parseConfigFile(formatConfig(defaults), 'c.toml'))).toEqual(defaults.options);
  });

  test('`gatewire config` lines: key = TOML value   # source, one per option', () => {
    const layer = parseConfigFile('http = ["127.0.0.1:8080"]\nworkers = 2\n', 'gatewire.toml');
    const out = formatConfig(resolveOptionsWithSources({ mount: '/m' }, { GATEWIRE_LOG_LEVEL: 'debug' }, layer));
    const lines = out.trimEnd().split('\n');
    expect(lines).toHaveLength(SERVE_OPTIONS.length);
    expect(lines).toContainEqual(expect.stringMatching(/^http = \["127\.0\.0\.1:8080"\] +# file gatewire\.toml:1$/));
    expect(lines).toContainEqual(expect.stringMatching(/^workers = 2 +# file gatewire\.toml:2$/));
    expect(lines).toContainEqual(expect.stringMatching(/^mount = "\/m" +# flag$/));
    expect(lines).toContainEqual(expect.stringMatching(/^log-level = "debug" +# env GATEWIRE_LOG_LEVEL$/));
    expect(lines).toContainEqual(expect.stringMatching(/^max-body-bytes = "1g" +# default$/));
    expect(lines).toContainEqual(expect.stringMatching(/^cgi-pass-auth = false +# default$/));
    expect(lines).toContainEqual(expect.stringMatching(/^# access-log \(unset\) +# default$/));
    expect(lines).toContainEqual(expect.stringMatching(/^fastcgi = \[\] +# default$/));
  });
});

// Through the built CLI: these need src/cli.ts to call optionsFromCli (serve) and registerConfigCommand.
describe('OP-21, OP-22: the CLI', () => {
  beforeAll(() => ensureBuilt(), 180_000);

  test('OP-21: gatewire config --config F prints every option with its source, exit 0', async () => {
    const file = writeConfig('http = ["127.0.0.1:8080"]\nworkers = 2\nmax-body-bytes = "10m"\n');
    const r = await runCli(['config', '--config', file, '--mount', '/m'], { env: { GATEWIRE_LOG_LEVEL: 'debug' } });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(SERVE_OPTIONS.length);
    for (const s of SERVE_OPTIONS) expect(lines.filter((l) => new RegExp(`^(# )?${configKey(s)}( =| \\(unset\\))`).test(l))).toHaveLength(1);
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^http = \\["127\\.0\\.0\\.1:8080"\\] +# file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:1$`)));
    expect(lines).toContainEqual(expect.stringMatching(/^max-body-bytes = "10m" +# file .*:3$/));
    expect(lines).toContainEqual(expect.stringMatching(/^mount = "\/m" +# flag$/));
    expect(lines).toContainEqual(expect.stringMatching(/^log-level = "debug" +# env GATEWIRE_LOG_LEVEL$/));
    expect(lines).toContainEqual(expect.stringMatching(/^# config = ".*" +# flag$/));
    // Pasted into a file, it is the same configuration.
    const copy = writeConfig(r.stdout, 'copy.toml');
    expect(resolveOptions({}, {}, loadConfigFile(copy))).toEqual({ ...optionsFromCli({ config: file, mount: '/m' }, { GATEWIRE_LOG_LEVEL: 'debug' }), config: undefined });
  });

  test('OP-22: gatewire serve --config BAD exits 2 with one stderr line naming file:line:key', async () => {
    const file = writeConfig('http = ["127.0.0.1:0"]\nworkers = 0\nmax-bodyy = "10m"\n');
    const r = await runCli(['serve', example('echo.mjs'), '--config', file]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toBe(`gatewire: ${file}:3: unknown key "max-bodyy" (did you mean "max-body-bytes"?)`);
    const viaEnv = await runCli(['serve', example('echo.mjs')], { env: { GATEWIRE_CONFIG: file } });
    expect(viaEnv.code).toBe(2);
    expect(oneLine(viaEnv.stderr)).toBe(`gatewire: ${file}:3: unknown key "max-bodyy" (did you mean "max-body-bytes"?)`);
  });

  test('OP-22: gatewire config with a bad file: the same one line, exit 2', async () => {
    const file = writeConfig('workers = 2\nheaders-timeout = "soon"\n');
    const r = await runCli(['config', '--config', file]);
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 2, stdout: '' });
    expect(oneLine(r.stderr)).toMatch(new RegExp(`^gatewire: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: headers-timeout: invalid --headers-timeout value "soon"`));
  });

  test('OP-21: gatewire config --check prints ok (exit 0) when serve would accept the options, else the error (exit 2)', async () => {
    const good = writeConfig('http = ["127.0.0.1:8080"]\nupstream = "fastcgi://127.0.0.1:9000"\n');
    expect(await runCli(['config', '--check', '--config', good])).toMatchObject({ code: 0, stdout: 'ok\n', stderr: '' });
    const noListener = writeConfig('workers = 2\n');
    const r = await runCli(['config', example('echo.mjs'), '--check', '--config', noListener]);
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 2, stdout: '' });
    expect(oneLine(r.stderr)).toMatch(/^gatewire: config: nothing to listen on/);
    expect(await runCli(['config', example('echo.mjs'), '--check', '--config', noListener, '--http', '8080'])).toMatchObject({ code: 0, stdout: 'ok\n' });
    const bad = writeConfig('workers = "many"\n');
    const b = await runCli(['config', '--check', '--config', bad]);
    expect(b.code).toBe(2);
    expect(oneLine(b.stderr)).toMatch(/:1: workers: invalid --workers value "many"/);
  });

  test('OP-21: serve --config F serves with the file; a flag beats it; a HUP reload re-reads it', async () => {
    const file = writeConfig('http = ["127.0.0.1:0"]\nworkers = 1\nmount = "/a"\n');
    const proc = spawnCli(['serve', example('echo.mjs'), '--config', file]);
    const [address] = await proc.listening(1);
    const port = portOf(address as string);
    const scriptName = async (urlPath: string): Promise<string | undefined> => {
      const reply = await request({ port, path: urlPath });
      return reply.status === 200 ? (JSON.parse(reply.body) as { environ: Record<string, string> }).environ.SCRIPT_NAME : undefined;
    };
    await poll('the first worker', () => scriptName('/a/x'));
    expect(await scriptName('/a/x')).toBe('/a');
    fs.writeFileSync(file, 'http = ["127.0.0.1:0"]\nworkers = 1\nmount = "/b"\n');
    proc.signal('SIGHUP');
    await proc.waitFor(/reload done/);
    expect(await poll('the new mount', async () => ((await scriptName('/b/x')) === '/b' ? true : undefined))).toBe(true);
    proc.signal('SIGTERM');
    expect(await proc.waitExit()).toEqual({ code: 0, signal: null });
    const flagged = spawnCli(['serve', example('echo.mjs'), '--config', file, '--mount', '/flag', '--workers', '0']);
    const [a2] = await flagged.listening(1);
    const reply = await request({ port: portOf(a2 as string), path: '/flag/x' });
    expect((JSON.parse(reply.body) as { environ: Record<string, string> }).environ.SCRIPT_NAME).toBe('/flag');
  });
});
