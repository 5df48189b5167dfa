/**
 * Every server option, in one table: flag, environment variable, default, parser, help text.
 * The CLI builds its commander options from this table, so `--help` documents each with its
 * default and variable, and precedence is the same everywhere: flag > GATEWIRE_* env > default.
 */
import type { AppInterface } from './app.js';
import { GatewireError, ServerErrorCode } from './errors.js';
import { type AllowKey, FRONTS, type FrontName } from './fronts/registry.js';
import type { LogFormat, LogLevel } from './log.js';
import type { UpstreamTarget } from './upstream/address.js';

/** A bad option value; the CLI prints the message on one line and exits 2. */
export class OptionError extends GatewireError {
  override name = 'OptionError';
  override readonly code = ServerErrorCode.Option;
}

export type ListenAddress =
  | { kind: 'tcp'; host: string | undefined; port: number }
  | { kind: 'unix'; path: string }
  | { kind: 'fd'; fd: number }
  /** A socket systemd passed by name (FileDescriptorName=, LISTEN_FDNAMES): see src/systemd.ts. */
  | { kind: 'systemd'; name: string };

/** ADDR = PORT | HOST:PORT | [V6]:PORT | unix:PATH | fd:N | fd:NAME | systemd:NAME */
export function parseAddress(text: string): ListenAddress {
  const s = text.trim();
  if (s.startsWith('unix:')) {
    const p = s.slice(5);
    if (p === '') throw new OptionError(`invalid address ${JSON.stringify(text)}: unix: needs a path`);
    return { kind: 'unix', path: p };
  }
  if (s.startsWith('fd:') || s.startsWith('systemd:')) {
    const scheme = s.startsWith('fd:') ? 'fd' : 'systemd';
    const rest = s.slice(scheme.length + 1);
    if (scheme === 'fd' && /^[0-9]+$/.test(rest)) return { kind: 'fd', fd: Number(rest) };
    // fd:NAME = systemd:NAME. A name as systemd allows in FileDescriptorName=: 1-255 printable ASCII, no ':'.
    if (!/^[\x21-\x39\x3b-\x7e]{1,255}$/.test(rest)) throw new OptionError(`invalid address ${JSON.stringify(text)}: ${scheme}: needs ${scheme === 'fd' ? 'a number or ' : ''}a socket name (FileDescriptorName=)`);
    return { kind: 'systemd', name: rest };
  }
  let host: string | undefined;
  let port: string;
  const v6 = /^\[([0-9A-Fa-f:.]+)\]:([0-9]+)$/.exec(s);
  if (v6) {
    host = v6[1];
    port = v6[2] as string;
  } else if (/^[0-9]+$/.test(s)) {
    port = s;
  } else {
    const colon = s.lastIndexOf(':');
    if (colon <= 0 || s.indexOf(':') !== colon) throw new OptionError(`invalid address ${JSON.stringify(text)}: expected PORT, HOST:PORT, [V6]:PORT, unix:PATH, fd:N or systemd:NAME`);
    host = s.slice(0, colon);
    port = s.slice(colon + 1);
  }
  const n = Number(port);
  if (!/^[0-9]+$/.test(port) || n > 65535) throw new OptionError(`invalid address ${JSON.stringify(text)}: bad port ${JSON.stringify(port)}`);
  return { kind: 'tcp', host, port: n };
}

export function formatAddress(a: ListenAddress): string {
  if (a.kind === 'unix') return `unix:${a.path}`;
  if (a.kind === 'fd') return `fd:${a.fd}`;
  if (a.kind === 'systemd') return `systemd:${a.name}`;
  if (a.host === undefined) return String(a.port);
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };

/** `16384`, `16k`, `1MiB`, `1g` → bytes. */
export function parseSize(text: string, what = 'size'): number {
  const m = /^([0-9]+)\s*([a-zA-Z]*)$/.exec(text.trim());
  const unit = m ? SIZE_UNITS[(m[2] as string).toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new OptionError(`invalid ${what} ${JSON.stringify(text)}: expected bytes, or a number with k, m or g`);
  return Number(m[1]) * unit;
}

const TIME_UNITS: Record<string, number> = { '': 1, ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000 };

/** `500`, `500ms`, `30s`, `5m` → milliseconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)$/.exec(text.trim());
  const unit = m ? TIME_UNITS[m[2] as string] : undefined;
  if (!m || unit === undefined) throw new OptionError(`invalid ${what} ${JSON.stringify(text)}: expected milliseconds, or a number with ms, s, m or h`);
  return Math.round(Number(m[1]) * unit);
}

function parseChoice<T extends string>(choices: readonly T[]) {
  return (text: string, what: string): T => {
    if ((choices as readonly string[]).includes(text)) return text as T;
    throw new OptionError(`invalid ${what} ${JSON.stringify(text)}: expected ${choices.join(', ')}`);
  };
}

function parseCount(text: string, what: string, max = 1024): number {
  if (!/^[0-9]+$/.test(text.trim()) || Number(text) < 1 || Number(text) > max) throw new OptionError(`invalid ${what} ${JSON.stringify(text)}: expected a whole number from 1 to ${max}`);
  return Number(text);
}

/** A whole number from 0 (off) to max. */
function parseCountOrZero(text: string, what: string, max: number): number {
  if (!/^[0-9]+$/.test(text.trim()) || Number(text) > max) throw new OptionError(`invalid ${what} ${JSON.stringify(text)}: expected a whole number from 0 to ${max}`);
  return Number(text);
}

function parseBoolean(text: string, what: string): boolean {
  const t = text.trim().toLowerCase();
  if (t === 'true' || t === '1' || t === 'yes' || t === 'on') return true;
  if (t === 'false' || t === '0' || t === 'no' || t === 'off') return false;
  throw new OptionError(`invalid ${what} ${JSON.stringify(text)}: expected true or false`);
}

function parseMode(text: string, what: string): number {
  if (!/^0?[0-7]{3}$/.test(text.trim())) throw new OptionError(`invalid ${what} ${JSON.stringify(text)}: expected an octal mode like 660`);
  return parseInt(text, 8);
}

function parseMount(text: string, what: string): string {
  if (text !== '' && !text.startsWith('/')) throw new OptionError(`invalid ${what} ${JSON.stringify(text)}: a mount prefix starts with /`);
  return text.replace(/\/+$/, '');
}

/**
 * Keys are commander's attribute names of the flags (`--headers-timeout` → headersTimeout);
 * durations in ms, sizes in bytes. A listener option per front of the registry (`http`,
 * `fastcgi`, …) and an allow-list per front that has one (`fastcgiAllow`, …).
 */
export type ServeOptions = ListenerOptions & CommonOptions;

type ListenerOptions = { [K in FrontName]: ListenAddress[] } & { [K in AllowKey]: string | undefined };

interface CommonOptions {
  /** --config: the TOML file the options were read from (src/config-file.ts), if any. */
  config: string | undefined;
  socketMode: number | undefined;
  mount: string;
  interface: AppInterface | undefined;
  workers: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  accessLog: string | undefined;
  maxHeaderBytes: number;
  maxBodyBytes: number;
  maxParamsBytes: number;
  maxInflight: number;
  headersTimeout: number;
  idleTimeout: number;
  requestTimeout: number;
  keepAliveTimeout: number;
  shutdownTimeout: number;
  drainDelay: number;
  cgiBin: string | undefined;
  cgiMount: string;
  cgiTimeout: number;
  cgiIdleTimeout: number;
  cgiTotalTimeout: number;
  cgiMaxProcesses: number | undefined;
  cgiMaxQueue: number;
  cgiInterpreters: string | undefined;
  cgiInheritEnv: string | undefined;
  cgiIndex: string | undefined;
  cgiPassAuth: boolean;
  cgiScriptLog: string | undefined;
  cgiDocumentRoot: string | undefined;
  cgiFollowSymlinks: boolean;
  upstream: UpstreamTarget[];
  upstreamParam: Array<[string, string]>;
  upstreamConns: number;
  upstreamConnectTimeout: number;
  upstreamReadTimeout: number;
  upstreamIdleTimeout: number;
  upstreamMaxFails: number;
  upstreamFailTimeout: number;
  php: string | undefined;
  timeout: number;
  maxRequests: number;
  maxRequestsJitter: number;
  maxMemory: number;
  stats: ListenAddress | undefined;
  user: string | undefined;
  group: string | undefined;
  pidFile: string | undefined;
}

export interface OptionSpec {
  key: keyof ServeOptions;
  flags: string;
  env: string;
  description: string;
  /** The default as text (shown in --help and parsed like a user value); undefined = unset. */
  default: string | undefined;
  parse: (text: string, what: string) => unknown;
  repeatable?: boolean;
  /** A flag without a value (`--cgi-pass-auth`); its variable takes true/false/1/0. */
  boolean?: boolean;
}

/** `--NAME <addr>` and `--NAME-allow <list>` for every front of the registry, in its order. */
function listenerOptions(): OptionSpec[] {
  const rows: OptionSpec[] = [];
  for (const f of FRONTS) {
    const upper = f.name.toUpperCase();
    rows.push({ key: f.name, flags: `--${f.name} <addr>`, env: `GATEWIRE_${upper}`, description: f.summary, default: undefined, parse: (t) => parseAddress(t), repeatable: true });
    if ('allow' in f) rows.push({ key: `${f.name}Allow`, flags: `--${f.name}-allow <list>`, env: `GATEWIRE_${upper}_ALLOW`, description: f.allow.summary, default: undefined, parse: (t) => t });
  }
  return rows;
}

export const SERVE_OPTIONS: readonly OptionSpec[] = [
  ...listenerOptions(),
  { key: 'config', flags: '--config <file>', env: 'GATEWIRE_CONFIG', description: 'read options from a TOML file, keyed by long option name (http = ["127.0.0.1:8080"], max-body-bytes = "10m"); flags and GATEWIRE_* variables override it', default: undefined, parse: (t) => t },
  { key: 'socketMode', flags: '--socket-mode <mode>', env: 'GATEWIRE_SOCKET_MODE', description: 'file mode of unix sockets, octal (e.g. 660)', default: undefined, parse: parseMode },
  { key: 'mount', flags: '--mount <prefix>', env: 'GATEWIRE_MOUNT', description: 'URL prefix the app is mounted at: becomes SCRIPT_NAME, the rest PATH_INFO', default: '', parse: parseMount },
  { key: 'interface', flags: '--interface <kind>', env: 'GATEWIRE_INTERFACE', description: 'app interface: environ, node or fetch (default: detected)', default: undefined, parse: parseChoice(['environ', 'node', 'fetch'] as const) },
  { key: 'workers', flags: '--workers <n>', env: 'GATEWIRE_WORKERS', description: 'worker processes under a supervising primary (HUP reloads them, a crashed one is replaced); 0 = serve in this one process, without reload, recycling or watchdog', default: '1', parse: (t, w) => parseCountOrZero(t, w, 1024) },
  { key: 'logLevel', flags: '--log-level <level>', env: 'GATEWIRE_LOG_LEVEL', description: 'error, warn, info or debug', default: 'info', parse: parseChoice(['error', 'warn', 'info', 'debug'] as const) },
  { key: 'logFormat', flags: '--log-format <format>', env: 'GATEWIRE_LOG_FORMAT', description: 'text (access log in Apache combined format) or json (one object per line)', default: 'text', parse: parseChoice(['text', 'json'] as const) },
  { key: 'accessLog', flags: '--access-log <path>', env: 'GATEWIRE_ACCESS_LOG', description: 'write an access log to PATH, or - for stdout (default: off)', default: undefined, parse: (t) => t },
  { key: 'maxHeaderBytes', flags: '--max-header-bytes <size>', env: 'GATEWIRE_MAX_HEADER_BYTES', description: 'largest request header block; beyond it 431', default: '16k', parse: (t, w) => parseSize(t, w) },
  { key: 'maxBodyBytes', flags: '--max-body-bytes <size>', env: 'GATEWIRE_MAX_BODY_BYTES', description: 'largest request body; beyond it 413', default: '1g', parse: (t, w) => parseSize(t, w) },
  { key: 'maxParamsBytes', flags: '--max-params-bytes <size>', env: 'GATEWIRE_MAX_PARAMS_BYTES', description: 'largest FastCGI PARAMS / SCGI header / uwsgi vars block; beyond it 431', default: '1m', parse: (t, w) => parseSize(t, w) },
  { key: 'maxInflight', flags: '--max-inflight <n>', env: 'GATEWIRE_MAX_INFLIGHT', description: 'requests in flight per process, all fronts together; beyond it a 503 (also FCGI_MAX_REQS)', default: '1024', parse: (t, w) => parseCount(t, w, 1_000_000) },
  { key: 'headersTimeout', flags: '--headers-timeout <time>', env: 'GATEWIRE_HEADERS_TIMEOUT', description: 'time to receive a request head', default: '60s', parse: (t, w) => parseDuration(t, w) },
  { key: 'requestTimeout', flags: '--request-timeout <time>', env: 'GATEWIRE_REQUEST_TIMEOUT', description: 'time to receive a whole request, body included', default: '300s', parse: (t, w) => parseDuration(t, w) },
  { key: 'keepAliveTimeout', flags: '--keep-alive-timeout <time>', env: 'GATEWIRE_KEEP_ALIVE_TIMEOUT', description: 'idle time before a kept-alive connection is closed', default: '5s', parse: (t, w) => parseDuration(t, w) },
  { key: 'idleTimeout', flags: '--idle-timeout <time>', env: 'GATEWIRE_IDLE_TIMEOUT', description: 'idle time before a gateway connection (FastCGI keep-conn) or a stalled gateway request is closed', default: '300s', parse: (t, w) => parseDuration(t, w) },
  { key: 'shutdownTimeout', flags: '--shutdown-timeout <time>', env: 'GATEWIRE_SHUTDOWN_TIMEOUT', description: 'on SIGTERM, how long in-flight requests may finish', default: '30s', parse: (t, w) => parseDuration(t, w) },
  { key: 'drainDelay', flags: '--drain-delay <time>', env: 'GATEWIRE_DRAIN_DELAY', description: 'on SIGTERM, keep accepting and serving this long with /readyz at 503 (a load balancer takes the server out of rotation) before the drain starts; a second SIGTERM drains at once', default: '0s', parse: (t, w) => parseDuration(t, w) },
  { key: 'cgiBin', flags: '--cgi-bin <dir>', env: 'GATEWIRE_CGI_BIN', description: 'host the CGI scripts of DIR (one process per request) under --cgi-mount', default: undefined, parse: (t) => t },
  { key: 'cgiMount', flags: '--cgi-mount <prefix>', env: 'GATEWIRE_CGI_MOUNT', description: 'URL prefix of the CGI scripts, below --mount ("" for all requests)', default: '/cgi-bin', parse: parseMount },
  { key: 'cgiTimeout', flags: '--cgi-timeout <time>', env: 'GATEWIRE_CGI_TIMEOUT', description: 'time for a script to send its response head; then 504 and its process group is killed', default: '60s', parse: (t, w) => parseDuration(t, w) },
  { key: 'cgiIdleTimeout', flags: '--cgi-idle-timeout <time>', env: 'GATEWIRE_CGI_IDLE_TIMEOUT', description: 'longest silence of a script after its head', default: '60s', parse: (t, w) => parseDuration(t, w) },
  { key: 'cgiTotalTimeout', flags: '--cgi-total-timeout <time>', env: 'GATEWIRE_CGI_TOTAL_TIMEOUT', description: 'longest run of a script', default: '300s', parse: (t, w) => parseDuration(t, w) },
  { key: 'cgiMaxProcesses', flags: '--cgi-max-processes <n>', env: 'GATEWIRE_CGI_MAX_PROCESSES', description: 'scripts running at once (default: 4 per CPU)', default: undefined, parse: (t, w) => parseCount(t, w, 100_000) },
  { key: 'cgiMaxQueue', flags: '--cgi-max-queue <n>', env: 'GATEWIRE_CGI_MAX_QUEUE', description: 'requests waiting for a script slot; beyond it 503', default: '64', parse: (t, w) => parseCount(t, w, 1_000_000) },
  { key: 'cgiInterpreters', flags: '--cgi-interpreters <list>', env: 'GATEWIRE_CGI_INTERPRETERS', description: 'run files without the exec bit by extension: presets .py,.pl,.php or .ext=COMMAND (default: off)', default: undefined, parse: (t) => t },
  { key: 'cgiInheritEnv', flags: '--cgi-inherit-env <names>', env: 'GATEWIRE_CGI_INHERIT_ENV', description: 'server environment variables passed to scripts (default: LANG,LC_ALL,LC_CTYPE,TZ,LD_LIBRARY_PATH; PATH always)', default: undefined, parse: (t) => t },
  { key: 'cgiIndex', flags: '--cgi-index <names>', env: 'GATEWIRE_CGI_INDEX', description: 'scripts tried for a directory, e.g. index.cgi (default: none, 403)', default: undefined, parse: (t) => t },
  { key: 'cgiPassAuth', flags: '--cgi-pass-auth', env: 'GATEWIRE_CGI_PASS_AUTH', description: 'pass Authorization to scripts as HTTP_AUTHORIZATION (like Apache CGIPassAuth)', default: 'false', parse: (t, w) => parseBoolean(t, w), boolean: true },
  { key: 'cgiScriptLog', flags: '--cgi-script-log <path>', env: 'GATEWIRE_CGI_SCRIPT_LOG', description: 'Apache ScriptLog-style dump of failing script requests (default: off)', default: undefined, parse: (t) => t },
  { key: 'cgiDocumentRoot', flags: '--cgi-document-root <dir>', env: 'GATEWIRE_CGI_DOCUMENT_ROOT', description: 'DOCUMENT_ROOT of scripts when the front sends none (--http), and PATH_TRANSLATED = DIR + PATH_INFO (default: the --cgi-bin DIR)', default: undefined, parse: (t) => t },
  { key: 'cgiFollowSymlinks', flags: '--cgi-follow-symlinks', env: 'GATEWIRE_CGI_FOLLOW_SYMLINKS', description: 'let a symlink under --cgi-bin lead to a script outside it (like Apache Options FollowSymLinks); the URL path must still stay under DIR', default: 'false', parse: (t, w) => parseBoolean(t, w), boolean: true },
  // Loaded lazily: src/upstream/address.ts imports OptionError from this module.
  { key: 'upstream', flags: '--upstream <url>', env: 'GATEWIRE_UPSTREAM', description: 'forward every request to an application server instead of an APP: fastcgi://HOST:PORT, fastcgi+unix:///PATH (also fastcgi://unix:/PATH), scgi://..., uwsgi://...; repeat for round robin', default: undefined, parse: (t) => (require('./upstream/address.js') as typeof import('./upstream/address.js')).parseUpstreamUrl(t), repeatable: true },
  { key: 'upstreamParam', flags: '--upstream-param <pair>', env: 'GATEWIRE_UPSTREAM_PARAM', description: 'NAME=VALUE: a variable sent with every upstream request, replacing the front\'s (e.g. SCRIPT_FILENAME=/srv/app.php, PHP_VALUE=...); repeatable', default: undefined, parse: parseParam, repeatable: true },
  { key: 'upstreamConns', flags: '--upstream-conns <n>', env: 'GATEWIRE_UPSTREAM_CONNS', description: 'FastCGI connections per upstream (keep-conn pool); at most php-fpm\'s pm.max_children', default: '8', parse: (t, w) => parseCount(t, w, 10_000) },
  { key: 'upstreamConnectTimeout', flags: '--upstream-connect-timeout <time>', env: 'GATEWIRE_UPSTREAM_CONNECT_TIMEOUT', description: 'time to connect to an upstream; then 504', default: '5s', parse: (t, w) => parseDuration(t, w) },
  { key: 'upstreamReadTimeout', flags: '--upstream-read-timeout <time>', env: 'GATEWIRE_UPSTREAM_READ_TIMEOUT', description: 'longest silence of an upstream (before its response head: 504)', default: '60s', parse: (t, w) => parseDuration(t, w) },
  { key: 'upstreamIdleTimeout', flags: '--upstream-idle-timeout <time>', env: 'GATEWIRE_UPSTREAM_IDLE_TIMEOUT', description: 'an idle pooled FastCGI connection is closed after this (php-fpm: keep it well under 5s)', default: '2s', parse: (t, w) => parseDuration(t, w) },
  { key: 'upstreamMaxFails', flags: '--upstream-max-fails <n>', env: 'GATEWIRE_UPSTREAM_MAX_FAILS', description: 'failures within --upstream-fail-timeout that take an upstream out of the rotation', default: '1', parse: (t, w) => parseCount(t, w, 1_000_000) },
  { key: 'upstreamFailTimeout', flags: '--upstream-fail-timeout <time>', env: 'GATEWIRE_UPSTREAM_FAIL_TIMEOUT', description: 'how long a failed upstream stays out of the rotation', default: '10s', parse: (t, w) => parseDuration(t, w) },
  { key: 'timeout', flags: '--timeout <time>', env: 'GATEWIRE_TIMEOUT', description: 'an app that has not started its response in TIME gets a 504 (its gatewire.signal aborts); a worker whose event loop is blocked longer is killed and replaced; 0 = off', default: '0', parse: (t, w) => parseDuration(t, w) },
  { key: 'maxRequests', flags: '--max-requests <n>', env: 'GATEWIRE_MAX_REQUESTS', description: 'replace a worker after N requests, without failing one (0 = never)', default: '0', parse: (t, w) => parseCountOrZero(t, w, 1e12) },
  { key: 'maxRequestsJitter', flags: '--max-requests-jitter <n>', env: 'GATEWIRE_MAX_REQUESTS_JITTER', description: 'add a random 0..N to --max-requests per worker, so workers do not recycle together', default: '0', parse: (t, w) => parseCountOrZero(t, w, 1e12) },
  { key: 'maxMemory', flags: '--max-memory <size>', env: 'GATEWIRE_MAX_MEMORY', description: 'replace a worker whose RSS passes SIZE, after its in-flight requests (0 = never)', default: '0', parse: (t, w) => parseSize(t, w) },
  { key: 'stats', flags: '--stats <addr>', env: 'GATEWIRE_STATS', description: 'a listener of its own for /metrics (Prometheus), /healthz, /readyz and /stats (JSON per worker), served by the primary', default: undefined, parse: (t) => parseAddress(t) },
  { key: 'user', flags: '--user <name>', env: 'GATEWIRE_USER', description: 'workers run as this user (name or uid); the primary binds first, so port 80 or a socket under /run works as root', default: undefined, parse: (t) => t },
  { key: 'group', flags: '--group <name>', env: 'GATEWIRE_GROUP', description: 'workers run with this group (default: the --user\'s primary group)', default: undefined, parse: (t) => t },
  { key: 'pidFile', flags: '--pid-file <path>', env: 'GATEWIRE_PID_FILE', description: 'write the primary\'s pid to PATH (atomically); refuse to start while it names a live process', default: undefined, parse: (t) => t },
  { key: 'php', flags: '--php <root>', env: 'GATEWIRE_PHP', description: 'with a fastcgi --upstream (php-fpm): run ROOT\'s .php files there (SCRIPT_FILENAME, PATH_INFO as nginx/Caddy compute them) and serve its other files', default: undefined, parse: (t) => t },
];

/** `NAME=VALUE` of --upstream-param: NAME a CGI variable name. */
function parseParam(text: string, what: string): [string, string] {
  const eq = text.indexOf('=');
  const name = eq === -1 ? '' : text.slice(0, eq);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new OptionError(`invalid ${what} ${JSON.stringify(text)}: expected NAME=VALUE with NAME made of letters, digits and _`);
  return [name, text.slice(eq + 1)];
}

/** What a command line gives resolveOptions: commander's texts keyed like ServeOptions (arrays for repeatable options, true for a value-less flag). */
export type OptionFlags = Partial<Record<keyof ServeOptions, string | string[] | boolean>>;

/**
 * The options of a config file (src/config-file.ts loads it): per key, the texts a flag would
 * give (already checked by the option's parse), and the line that sets it.
 */
export interface ConfigLayer {
  /** The file as it was named: sources and messages say `PATH:LINE`. */
  readonly path: string;
  readonly values: Partial<Record<keyof ServeOptions, readonly string[]>>;
  readonly lines: Partial<Record<keyof ServeOptions, number>>;
}

/** Where an option's value came from: `flag`, `env GATEWIRE_X`, `file PATH:LINE` or `default`. */
export type OptionSource = 'flag' | `env ${string}` | `file ${string}` | 'default';

export interface ResolvedOptions {
  options: ServeOptions;
  sources: Record<keyof ServeOptions, OptionSource>;
  /** The texts each value was parsed from (undefined: unset); what `gatewire config` prints. */
  texts: Record<keyof ServeOptions, readonly string[] | undefined>;
}

/**
 * Resolves every option: the flag's text if given, else the environment variable, else the
 * config file's value, else the default.
 */
export function resolveOptions(flags: OptionFlags, env: NodeJS.ProcessEnv = process.env, file?: ConfigLayer): ServeOptions {
  return resolveOptionsWithSources(flags, env, file).options;
}

/** resolveOptions, and for each key where its value came from and the texts it was parsed from. */
export function resolveOptionsWithSources(flags: OptionFlags, env: NodeJS.ProcessEnv = process.env, file?: ConfigLayer): ResolvedOptions {
  const out: Record<string, unknown> = {};
  const sources: Record<string, OptionSource> = {};
  const chosen: Record<string, readonly string[] | undefined> = {};
  for (const spec of SERVE_OPTIONS) {
    const given = flags[spec.key];
    const flag = typeof given === 'boolean' ? String(given) : given; // a value-less flag (--cgi-pass-auth)
    const what = `${spec.flags.split(' ')[0]} value`;
    const fromEnv = env[spec.env];
    const fromFile = file?.values[spec.key];
    let texts: readonly string[] | undefined;
    let source: OptionSource = 'default';
    if (flag !== undefined && (!Array.isArray(flag) || flag.length > 0)) {
      texts = Array.isArray(flag) ? flag : [flag];
      source = 'flag';
    } else if (fromEnv !== undefined && fromEnv !== '') {
      texts = spec.repeatable ? fromEnv.split(',').filter((t) => t.trim() !== '') : [fromEnv];
      source = `env ${spec.env}`;
    } else if (file !== undefined && fromFile !== undefined) {
      texts = fromFile;
      source = `file ${file.path}:${file.lines[spec.key] ?? 1}`;
    } else if (spec.default !== undefined) texts = [spec.default];
    try {
      if (spec.repeatable) out[spec.key] = (texts ?? []).map((t) => spec.parse(t, what));
      else out[spec.key] = texts === undefined || texts.length === 0 ? undefined : spec.parse(texts[texts.length - 1] as string, what);
    } catch (err) {
      // A bad value from the environment names its variable: the user may never have typed the flag.
      if (err instanceof OptionError && source !== 'flag' && source !== 'default') {
        throw new OptionError(source.startsWith('env ') ? `${err.message} (from ${spec.env})` : `${source.slice(5)}: ${spec.flags.split(' ')[0]?.slice(2)}: ${err.message}`);
      }
      throw err;
    }
    sources[spec.key] = source;
    chosen[spec.key] = texts;
  }
  return { options: out as unknown as ServeOptions, sources: sources as ResolvedOptions['sources'], texts: chosen as ResolvedOptions['texts'] };
}

/**
 * The CLI's options: flag > GATEWIRE_* variable > the config file (--config FILE, or
 * GATEWIRE_CONFIG) > default. The file is read on each call, so each worker start (and so a HUP
 * reload) sees its current content. A bad file is one OptionError naming `PATH:LINE`.
 */
export function optionsFromCli(flags: OptionFlags, env: NodeJS.ProcessEnv = process.env): ServeOptions {
  return resolveCliOptions(flags, env).options;
}

/** optionsFromCli with the sources of every value (`gatewire config`). */
export function resolveCliOptions(flags: OptionFlags, env: NodeJS.ProcessEnv = process.env): ResolvedOptions {
  const path = typeof flags.config === 'string' && flags.config !== '' ? flags.config : env.GATEWIRE_CONFIG || undefined;
  // Required here, not imported: `gatewire cgi` reads this table on every request and needs no TOML parser (K-17).
  const file = path === undefined ? undefined : (require('./config-file.js') as typeof import('./config-file.js')).loadConfigFile(path);
  return resolveOptionsWithSources(flags, env, file);
}
