/**
 * The environment of a CGI child, built from scratch (C-3..C-7): the request's meta-variables,
 * then PATH, the inherited allow-list and the operator's extras, later entries winning. Nothing
 * else of the server's own environment reaches a script (it may hold secrets).
 *
 * Node's spawn() re-encodes env strings as UTF-8 and throws on NUL (C-6, verified), so a value
 * is passed only when it survives byte-exactly: an ASCII byte string as is, a valid UTF-8 byte
 * string decoded (Node's re-encoding restores the bytes). Anything else is a 400.
 */
import type { Environ } from '../app.js';
import { SERVER_SOFTWARE, isCgiKey } from '../environ.js';
import { bytesToText } from './select.js';

/** What the child environment needs besides the request. */
export interface EnvConfig {
  /** PATH, inherited names, extras: applied last, in that order (C-3). */
  base: Readonly<Record<string, string>>;
  /** Pass Authorization / Proxy-Authorization as HTTP_* (RFC 3875 §4.1.18; Apache CGIPassAuth). */
  passAuthorization: boolean;
  /** C-7: refuse HTTP_* values starting with `() {` (Shellshock-class exports). */
  rejectFunctionDefinitions: boolean;
  /** DOCUMENT_ROOT when the environ has none; PATH_TRANSLATED is built on it (C-2). */
  documentRoot: string;
}

/** The script-dependent variables, as CGI byte strings (file paths as fs strings). */
export interface ScriptVars {
  scriptName: string;
  pathInfo: string;
  scriptFilename: string;
  /** CONTENT_LENGTH to set, or undefined for a request without a body (C-4). */
  contentLength: string | undefined;
  /** Variables an interpreter adds (php-cgi's REDIRECT_STATUS). */
  interpreterEnv: Readonly<Record<string, string>> | undefined;
}

/** Request keys the host never forwards as they came: it sets them itself, or they must not pass (C-5). */
const OWN_KEYS = new Set(['SCRIPT_NAME', 'PATH_INFO', 'PATH_TRANSLATED', 'SCRIPT_FILENAME', 'CONTENT_LENGTH', 'GATEWAY_INTERFACE']);
const NEVER = new Set(['HTTP_PROXY', 'HTTP_CONTENT_LENGTH', 'HTTP_CONTENT_TYPE']);
const AUTH = new Set(['HTTP_AUTHORIZATION', 'HTTP_PROXY_AUTHORIZATION']);

export type EnvResult = { env: Record<string, string> } | { status: 400; reason: string };

/**
 * Builds the child's environment for one request. Returns a 400 reason when a value cannot be
 * passed byte-exactly (NUL, bytes that are not UTF-8) or is refused by C-7.
 */
export function buildChildEnv(environ: Environ, script: ScriptVars, cfg: EnvConfig): EnvResult {
  const env: Record<string, string> = {};
  for (const key of Object.keys(environ)) {
    // Server-owned keys contain a dot and fail the CGI key syntax (E-2), as do forged names.
    if (!isCgiKey(key) || OWN_KEYS.has(key) || NEVER.has(key)) continue;
    if (!cfg.passAuthorization && AUTH.has(key)) continue;
    const value = environ[key];
    if (typeof value !== 'string') continue;
    if (cfg.rejectFunctionDefinitions && key.startsWith('HTTP_') && value.startsWith('() {')) {
      return { status: 400, reason: `${key} looks like an exported shell function (C-7)` };
    }
    const text = bytesToText(value);
    if (text === null) return { status: 400, reason: `${key} cannot be passed to a script byte-exactly (NUL or not UTF-8)` };
    env[key] = text;
  }

  const vars: Array<[string, string]> = [
    ['SCRIPT_NAME', script.scriptName],
    ['PATH_INFO', script.pathInfo],
  ];
  for (const [key, value] of vars) {
    const text = bytesToText(value);
    if (text === null) return { status: 400, reason: `${key} cannot be passed to a script byte-exactly (NUL or not UTF-8)` };
    env[key] = text;
  }
  env.GATEWAY_INTERFACE = 'CGI/1.1';
  env.SCRIPT_FILENAME = script.scriptFilename;
  if (env.DOCUMENT_ROOT === undefined) env.DOCUMENT_ROOT = cfg.documentRoot;
  // C-2: PATH_TRANSLATED only with a non-empty PATH_INFO.
  if (env.PATH_INFO !== '') env.PATH_TRANSLATED = `${env.DOCUMENT_ROOT.replace(/\/+$/, '')}${env.PATH_INFO}`;
  if (env.QUERY_STRING === undefined) env.QUERY_STRING = '';
  if (env.SERVER_SOFTWARE === undefined) env.SERVER_SOFTWARE = SERVER_SOFTWARE;
  // C-4: REMOTE_HOST = REMOTE_ADDR when no lookup was made (RFC 3875 §4.1.9).
  if (env.REMOTE_HOST === undefined && env.REMOTE_ADDR !== undefined) env.REMOTE_HOST = env.REMOTE_ADDR;
  if (environ['gatewire.url_scheme'] === 'https' && env.HTTPS === undefined) env.HTTPS = 'on';
  if (script.contentLength !== undefined) env.CONTENT_LENGTH = script.contentLength;
  if (script.interpreterEnv !== undefined) Object.assign(env, script.interpreterEnv);
  Object.assign(env, cfg.base);
  return { env };
}

/** Names for the inherited allow-list and extras: the CGI key syntax (C-6: `=` in a name would forge an entry). */
export function checkEnvName(name: string, what: string): void {
  if (!isCgiKey(name)) throw new TypeError(`Expected every name in \`${what}\` to match [A-Za-z_][A-Za-z0-9_]*, got ${JSON.stringify(name)}`);
}

/** The fixed part of every child environment (C-3): PATH, the inherited allow-list, the extras. */
export function baseEnv(path: string, inherit: readonly string[], extra: Readonly<Record<string, string>>, from: NodeJS.ProcessEnv): Record<string, string> {
  const base: Record<string, string> = { PATH: path };
  for (const name of inherit) {
    checkEnvName(name, 'inheritEnv');
    const value = from[name];
    if (value !== undefined) base[name] = value;
  }
  for (const [name, value] of Object.entries(extra)) {
    checkEnvName(name, 'extraEnv');
    if (typeof value !== 'string' || value.includes('\0')) throw new TypeError(`Expected \`extraEnv.${name}\` to be a string without NUL, got ${JSON.stringify(value)}`);
    base[name] = value;
  }
  return base;
}
