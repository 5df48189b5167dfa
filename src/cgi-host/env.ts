/**
 * The environment of a CGI child, built from scratch (C-3..C-7): the request's meta-variables,
 * then PATH, the inherited allow-list and the operator's extras, later entries winning. Nothing
 * else of the server's own environment reaches a script (it may hold secrets).
 *
 * Environment variables are bytes on POSIX, so the child environment is made of CGI byte strings
 * (latin1, one char per byte, E-1), like the environ: every byte 0x01-0xFF the client sent
 * reaches the script as it came (C-6); spawn.ts hands them over byte-exactly on either spawn path.
 * Values that start out as text (file paths from node:fs, PATH and the inherited variables,
 * the operator's extras, an interpreter's variables) are turned into their UTF-8 bytes. Only a
 * NUL cannot be in an environment variable: it is a 400.
 */
import type { Environ } from '../app.js';
import { SERVER_SOFTWARE, isCgiKey } from '../environ.js';
import { textToBytes } from './select.js';

/** What the child environment needs besides the request. */
export interface EnvConfig {
  /** PATH, inherited names, extras: applied last, in that order (C-3); CGI byte strings (baseEnv). */
  base: Readonly<Record<string, string>>;
  /** Pass Authorization / Proxy-Authorization as HTTP_* (RFC 3875 §4.1.18; Apache CGIPassAuth). */
  passAuthorization: boolean;
  /** C-7: refuse HTTP_* values starting with `() {` (Shellshock-class exports). */
  rejectFunctionDefinitions: boolean;
  /** DOCUMENT_ROOT when the environ has none; PATH_TRANSLATED is built on it (C-2). */
  documentRoot: string;
}

/** The script-dependent variables, as CGI byte strings (file paths and interpreterEnv as fs strings, text). */
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

/** `env`: NAME → value as CGI byte strings, what spawnScript takes (C-6). */
export type EnvResult = { env: Record<string, string> } | { status: 400; reason: string };

/** A char no environment value can hold: NUL (C-6), or one above 0xFF (not a byte string at all). */
const NOT_A_VALUE = /[\0\u0100-\uffff]/;

/** Why `value` cannot be an environment value, or undefined when it can (C-6). */
function refusal(key: string, value: string): string | undefined {
  if (!NOT_A_VALUE.test(value)) return undefined;
  return value.includes('\0') ? `${key} holds a NUL byte, which no environment variable can (C-6)` : `${key} is not a byte string (a char above 0xFF)`;
}

/**
 * Builds the child's environment for one request. Returns a 400 reason when a value holds a NUL
 * (C-6) or is refused by C-7.
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
    const refused = refusal(key, value);
    if (refused !== undefined) return { status: 400, reason: refused };
    env[key] = value;
  }

  const vars: Array<[string, string]> = [
    ['SCRIPT_NAME', script.scriptName],
    ['PATH_INFO', script.pathInfo],
  ];
  for (const [key, value] of vars) {
    const refused = refusal(key, value);
    if (refused !== undefined) return { status: 400, reason: refused };
    env[key] = value;
  }
  env.GATEWAY_INTERFACE = 'CGI/1.1';
  env.SCRIPT_FILENAME = textToBytes(script.scriptFilename);
  if (env.DOCUMENT_ROOT === undefined) env.DOCUMENT_ROOT = textToBytes(cfg.documentRoot);
  // C-2: PATH_TRANSLATED only with a non-empty PATH_INFO.
  if (env.PATH_INFO !== '') env.PATH_TRANSLATED = `${env.DOCUMENT_ROOT.replace(/\/+$/, '')}${env.PATH_INFO}`;
  if (env.QUERY_STRING === undefined) env.QUERY_STRING = '';
  if (env.SERVER_SOFTWARE === undefined) env.SERVER_SOFTWARE = SERVER_SOFTWARE;
  // C-4: REMOTE_HOST = REMOTE_ADDR when no lookup was made (RFC 3875 §4.1.9).
  if (env.REMOTE_HOST === undefined && env.REMOTE_ADDR !== undefined) env.REMOTE_HOST = env.REMOTE_ADDR;
  if (environ['gatewire.url_scheme'] === 'https' && env.HTTPS === undefined) env.HTTPS = 'on';
  if (script.contentLength !== undefined) env.CONTENT_LENGTH = script.contentLength;
  if (script.interpreterEnv !== undefined) for (const [key, value] of Object.entries(script.interpreterEnv)) env[key] = textToBytes(value);
  Object.assign(env, cfg.base);
  return { env };
}

/** Names for the inherited allow-list and extras: the CGI key syntax (C-6: `=` in a name would forge an entry). */
export function checkEnvName(name: string, what: string): void {
  if (!isCgiKey(name)) throw new TypeError(`Expected every name in \`${what}\` to match [A-Za-z_][A-Za-z0-9_]*, got ${JSON.stringify(name)}`);
}

/**
 * The fixed part of every child environment (C-3): PATH, the inherited allow-list, the extras,
 * given as text (what process.env and options hold) and returned as CGI byte strings (their
 * UTF-8 bytes).
 */
export function baseEnv(path: string, inherit: readonly string[], extra: Readonly<Record<string, string>>, from: NodeJS.ProcessEnv): Record<string, string> {
  const base: Record<string, string> = { PATH: textToBytes(path) };
  for (const name of inherit) {
    checkEnvName(name, 'inheritEnv');
    const value = from[name];
    if (value !== undefined) base[name] = textToBytes(value);
  }
  for (const [name, value] of Object.entries(extra)) {
    checkEnvName(name, 'extraEnv');
    if (typeof value !== 'string' || value.includes('\0')) throw new TypeError(`Expected \`extraEnv.${name}\` to be a string without NUL, got ${JSON.stringify(value)}`);
    base[name] = textToBytes(value);
  }
  return base;
}
