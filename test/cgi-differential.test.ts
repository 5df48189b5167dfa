/**
 * Differential test of CGI hosting: ONE cgi-bin folder (scripts written into a temporary
 * folder by this file) served by four hosts, the same raw request bytes sent to each:
 *
 *   gatewire        `gatewire serve --cgi-bin DIR --http ADDR` (its own HTTP/1.1 front)
 *   nginx→gatewire  nginx 1.22 fastcgi_pass → `gatewire serve --cgi-bin DIR --fastcgi ADDR`
 *   nginx→fcgiwrap  the same nginx config → spawn-fcgi + fcgiwrap
 *   apache          Apache httpd 2.4 mod_cgi (prefork), ScriptAlias /cgi-bin/
 *
 * nginx uses Debian's fastcgi_params plus SCRIPT_FILENAME and a PATH_INFO split
 * (fixtures/nginx/cgi-differential.conf). Per request the test compares the status, the
 * meta-variables the script sees (every variable but the process's own, NOISE), the script's
 * stdin, chosen response fields and the body hash. Where the hosts legitimately differ (by
 * RFC 3875 or by configuration), the difference is listed in DIFFERENCES with who is right and
 * why, and the test asserts that exactly those differences occur: a new difference, or a listed
 * one that went away, fails. Where a host is simply wrong the test fails; nothing is weakened
 * to make gatewire pass.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI, ROOT, childEnv, ensureBuilt } from './fixtures/apps/cli-harness.js';
import { describeWithPeers, peerPath, startApache, startNginx, startProcess, withPeerLogs } from './helpers/peers.js';
import type { PeerProcess, WebServer } from './helpers/peers.js';
import { freePort, rawRequest, tmpDir } from './helpers/net.js';
import type { TmpDir } from './helpers/net.js';

const KiB = 1024;
const MiB = 1024 * KiB;

// ---------------------------------------------------------------------------------------
// The cgi-bin
// ---------------------------------------------------------------------------------------

/**
 * The scripts, written to DOCROOT/cgi-bin (mode 0755: Apache runs them as www-data).
 * env.sh prints every exported variable as NAME=<hex of the value>, then STDIN=<hex of the
 * CONTENT_LENGTH bytes of stdin>; hex keeps raw bytes (latin-1 cookies) exact.
 */
const SCRIPTS: Record<string, string> = {
  'env.sh': [
    '#!/bin/sh',
    "printf 'Content-Type: text/plain\\r\\nX-Request-Method: %s\\r\\n\\r\\n' \"$REQUEST_METHOD\"",
    // LC_ALL=C: in a UTF-8 locale sed's .* stops at a latin-1 byte and leaves it in the name.
    "for name in $(env | LC_ALL=C sed -n 's/^\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\1/p' | LC_ALL=C sort -u); do",
    '  eval "value=\\${$name}"',
    "  printf '%s=' \"$name\"",
    "  printf '%s' \"$value\" | od -An -v -tx1 | tr -d ' \\n'",
    "  printf '\\n'",
    'done',
    "printf 'STDIN='",
    "head -c \"${CONTENT_LENGTH:-0}\" | LC_ALL=C od -An -v -tx1 | tr -d ' \\n'",
    "printf '\\n'",
    '',
  ].join('\n'),
  // RFC 3875 §6.2.3 client redirect (absolute URI) and RFC 3875 §6.2.2 local redirect (a path).
  'redirect.sh': [
    '#!/bin/sh',
    'case "$QUERY_STRING" in',
    "  local) printf 'Location: /cgi-bin/env.sh\\r\\n\\r\\n' ;;",
    "  *) printf 'Location: http://example.com/target?x=1\\r\\n\\r\\n' ;;",
    'esac',
    '',
  ].join('\n'),
  // RFC 3875 §5: a non-parsed header script writes the whole HTTP response, status line first,
  // in the protocol version of the request (RFC 3875 §5.1).
  'nph-status.sh': [
    '#!/bin/sh',
    "printf '%s 203 Non-Authoritative Information\\r\\nContent-Type: text/plain\\r\\nX-Nph: yes\\r\\n\\r\\nnph body\\n' \"$SERVER_PROTOCOL\"",
    '',
  ].join('\n'),
  // A form/upload echo: the byte count and sha256 of the CONTENT_LENGTH bytes of stdin.
  'upload.sh': [
    '#!/bin/sh',
    't=$(mktemp) || exit 1',
    'head -c "${CONTENT_LENGTH:-0}" > "$t"',
    "printf 'Content-Type: text/plain\\r\\n\\r\\ncontent_type=%s\\nbytes=%s\\nsha256=%s\\n' \"$CONTENT_TYPE\" \"$(wc -c < \"$t\" | tr -d ' ')\" \"$(sha256sum < \"$t\" | cut -d' ' -f1)\"",
    'rm -f "$t"',
    '',
  ].join('\n'),
};

// ---------------------------------------------------------------------------------------
// Hosts
// ---------------------------------------------------------------------------------------

const HOSTS = ['gatewire', 'nginx→gatewire', 'nginx→fcgiwrap', 'apache'] as const;
type Host = (typeof HOSTS)[number];

/** The process's own environment (not request meta-variables): never compared. */
const NOISE = new Set(['PATH', 'PWD', 'OLDPWD', 'SHLVL', '_', 'HOME', 'LANG', 'LANGUAGE', 'LC_ALL', 'LC_CTYPE', 'TZ', 'LD_LIBRARY_PATH', 'TERM']);

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/** What a request's answer is compared on, besides the status. */
type Kind =
  /** env.sh ran: variables, stdin, Content-Type, X-Request-Method. */
  | 'env'
  /** A script's own body: Content-Type and the sha256 of the body. */
  | 'body'
  /** A redirect: Location and the sha256 of the body. */
  | 'redirect'
  /** NPH: the reason phrase, X-Nph, Content-Type and the sha256 of the body. */
  | 'nph'
  /** A HEAD: Content-Type and X-Request-Method, and no body. */
  | 'head'
  /** Refused before any script: the status alone (each server has its own error page). */
  | 'refused';

interface Req {
  id: string;
  method: string;
  target: string;
  /** Extra header lines, raw bytes (latin1 strings). */
  headers?: Array<[string, string]>;
  body?: Buffer;
  kind: Kind;
  /** The status a correct host gives (all four when no DIFFERENCES entry says otherwise). */
  status: number;
  /** env.sh: meta-variables every host must give exactly so (UNSET: must be absent). */
  vars?: Readonly<Record<string, string | typeof UNSET>>;
  /** What every host's answer must hold beyond the comparison: a problem text, or undefined. */
  check?: (a: Answer) => string | undefined;
}

/** A variable or field that must be absent. */
const UNSET = Symbol('unset');

const FORM = Buffer.from('name=Ren%C3%A9&city=S%E3o+Paulo&empty=', 'latin1');

/** A 2 MiB multipart/form-data body: a latin-1 text field and a binary file part (every byte value). */
const BOUNDARY = '----gatewire-differential-7c1e';
const UPLOAD = ((): Buffer => {
  const file = Buffer.alloc(2 * MiB);
  for (let i = 0; i < file.length; i++) file[i] = (i * 7 + (i >> 11)) & 0xff;
  const head = Buffer.from(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\ncaf\xe9\r\n` +
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="blob.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    'latin1',
  );
  const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`, 'latin1');
  // Trim the file so the whole body is exactly 2 MiB.
  return Buffer.concat([head, file.subarray(0, file.length - head.length - tail.length), tail]);
})();
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A traversal attempt must never show the system's password file. */
function noPasswd(a: Answer): string | undefined {
  return a.body.includes('root:x:0:0') ? 'the answer holds /etc/passwd' : undefined;
}

/** What every env.sh run must see, whatever the host (RFC 3875 §4.1). */
const BASE_VARS = {
  GATEWAY_INTERFACE: 'CGI/1.1',
  SERVER_PROTOCOL: 'HTTP/1.1',
  SERVER_NAME: 'localhost',
  REMOTE_ADDR: '127.0.0.1',
  REMOTE_PORT: '{REMOTE_PORT}',
  HTTP_HOST: 'localhost',
  SCRIPT_NAME: '/cgi-bin/env.sh',
  SCRIPT_FILENAME: '{DOCROOT}/cgi-bin/env.sh',
  REQUEST_METHOD: 'GET',
  QUERY_STRING: '',
  HTTP_USER_AGENT: 'gatewire-differential',
  HTTP_COOKIE: UNSET,
  AUTH_TYPE: UNSET,
  stdin: '',
} as const;

/** An env.sh request: the base variables plus these. */
const envVars = (extra: Record<string, string | typeof UNSET>): Record<string, string | typeof UNSET> => ({ ...BASE_VARS, ...extra });

const REQUESTS: readonly Req[] = [
  { id: 'query-utf8', method: 'GET', target: '/cgi-bin/env.sh?q=caf%C3%A9', kind: 'env', status: 200, vars: envVars({ QUERY_STRING: 'q=caf%C3%A9', REQUEST_URI: '/cgi-bin/env.sh?q=caf%C3%A9' }) },
  // QUERY_STRING is the query as sent, still URL-encoded (RFC 3875 §4.1.7): %E9 is no reason to refuse.
  { id: 'query-latin1', method: 'GET', target: '/cgi-bin/env.sh?q=caf%E9', kind: 'env', status: 200, vars: envVars({ QUERY_STRING: 'q=caf%E9', REQUEST_URI: '/cgi-bin/env.sh?q=caf%E9' }) },
  {
    // obs-text in field values (RFC 9110 §5.5): passed on as the bytes sent (RFC 3875 §4.1.18; Unix
    // environment values are bytes, as Apache and nginx → fcgiwrap show).
    id: 'latin1-headers',
    method: 'GET',
    target: '/cgi-bin/env.sh',
    headers: [
      ['Cookie', 'n=Ren\xe9'],
      ['User-Agent', 'caf\xe9'],
    ],
    kind: 'env',
    status: 200,
    vars: envVars({ HTTP_COOKIE: 'n=Ren\xe9', HTTP_USER_AGENT: 'caf\xe9' }),
  },
  // PATH_INFO is decoded (RFC 3875 §4.1.5); non-ASCII bytes are "system-defined": on Unix, the bytes.
  { id: 'path-info', method: 'GET', target: '/cgi-bin/env.sh/a/b%20c', kind: 'env', status: 200, vars: envVars({ PATH_INFO: '/a/b c', REQUEST_URI: '/cgi-bin/env.sh/a/b%20c' }) },
  { id: 'path-info-utf8', method: 'GET', target: '/cgi-bin/env.sh/caf%C3%A9', kind: 'env', status: 200, vars: envVars({ PATH_INFO: '/caf\xc3\xa9' }) },
  { id: 'path-info-latin1', method: 'GET', target: '/cgi-bin/env.sh/caf%E9', kind: 'env', status: 200, vars: envVars({ PATH_INFO: '/caf\xe9' }) },
  {
    id: 'form-post',
    method: 'POST',
    target: '/cgi-bin/env.sh?via=form',
    headers: [['Content-Type', 'application/x-www-form-urlencoded']],
    body: FORM,
    kind: 'env',
    status: 200,
    vars: envVars({
      REQUEST_METHOD: 'POST',
      QUERY_STRING: 'via=form',
      CONTENT_LENGTH: String(FORM.length),
      CONTENT_TYPE: 'application/x-www-form-urlencoded',
      stdin: FORM.toString('latin1'),
    }),
  },
  {
    id: 'upload-2mib',
    method: 'POST',
    target: '/cgi-bin/upload.sh',
    headers: [['Content-Type', `multipart/form-data; boundary=${BOUNDARY}`]],
    body: UPLOAD,
    kind: 'body',
    status: 200,
    check: (a) => {
      const want = `content_type=multipart/form-data; boundary=${BOUNDARY}\nbytes=${UPLOAD.length}\nsha256=${sha256(UPLOAD)}\n`;
      return a.body.toString('latin1') === want ? undefined : `upload.sh saw ${JSON.stringify(a.body.toString('latin1'))}, sent ${JSON.stringify(want)}`;
    },
  },
  {
    id: 'head',
    method: 'HEAD',
    target: '/cgi-bin/env.sh',
    kind: 'head',
    status: 200,
    check: (a) => (a.body.length === 0 && field(a, 'x-request-method') === 'HEAD' ? undefined : `HEAD: ${a.body.length} body bytes, X-Request-Method ${String(field(a, 'x-request-method'))}`),
  },
  {
    id: 'redirect-absolute',
    method: 'GET',
    target: '/cgi-bin/redirect.sh?abs',
    kind: 'redirect',
    status: 302,
    check: (a) => (field(a, 'location') === 'http://example.com/target?x=1' ? undefined : `Location ${String(field(a, 'location'))}`),
  },
  // RFC 3875 §6.2.2: the server answers as for a GET of /cgi-bin/env.sh, inside (no 302 to the client).
  { id: 'redirect-local', method: 'GET', target: '/cgi-bin/redirect.sh?local', kind: 'env', status: 200, vars: envVars({}) },
  {
    id: 'nph',
    method: 'GET',
    target: '/cgi-bin/nph-status.sh',
    kind: 'nph',
    status: 203,
    check: (a) => (a.body.toString('latin1') === 'nph body\n' ? undefined : `NPH body ${JSON.stringify(a.body.toString('latin1'))}`),
  },
  { id: 'traversal-dotdot', method: 'GET', target: '/cgi-bin/../etc/passwd', kind: 'refused', status: 404, check: noPasswd },
  { id: 'traversal-encoded', method: 'GET', target: '/cgi-bin/%2e%2e/x', kind: 'refused', status: 404, check: noPasswd },
  { id: 'traversal-encoded-passwd', method: 'GET', target: '/cgi-bin/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd', kind: 'refused', status: 400, check: noPasswd },
  {
    id: 'header-20kib',
    method: 'GET',
    target: '/cgi-bin/env.sh',
    headers: [['X-Big', 'b'.repeat(20 * KiB)]],
    kind: 'refused',
    status: 400,
  },
];

// ---------------------------------------------------------------------------------------
// The raw client
// ---------------------------------------------------------------------------------------

interface Answer {
  status: number;
  reason: string;
  headers: Array<[string, string]>;
  body: Buffer;
}

const field = (a: Answer, name: string): string | undefined => a.headers.find(([k]) => k.toLowerCase() === name)?.[1];

function requestBytes(req: Req): Buffer {
  const lines = [`${req.method} ${req.target} HTTP/1.1`, 'Host: localhost', 'Connection: close'];
  const own = new Set((req.headers ?? []).map(([k]) => k.toLowerCase()));
  if (!own.has('user-agent')) lines.push('User-Agent: gatewire-differential');
  for (const [k, v] of req.headers ?? []) lines.push(`${k}: ${v}`);
  if (req.body !== undefined) lines.push(`Content-Length: ${req.body.length}`);
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  return req.body === undefined ? head : Buffer.concat([head, req.body]);
}

/** A whole HTTP/1.x response read until close: Content-Length, chunked or close-delimited. */
function parseAnswer(raw: Buffer, method: string): Answer {
  const end = raw.indexOf('\r\n\r\n');
  if (end === -1) throw new Error(`no response head in ${JSON.stringify(raw.toString('latin1').slice(0, 300))}`);
  const [statusLine = '', ...lines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
  if (m === null) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
  const headers = lines.map((l): [string, string] => {
    const colon = l.indexOf(':');
    return [l.slice(0, colon), l.slice(colon + 1).trim()];
  });
  const status = Number(m[1]);
  const a: Answer = { status, reason: m[2] ?? '', headers, body: Buffer.alloc(0) };
  let rest = raw.subarray(end + 4);
  if (method === 'HEAD' || status === 204 || status === 304) {
    a.body = rest; // must be empty: checked by the caller
    return a;
  }
  if (field(a, 'transfer-encoding')?.toLowerCase() === 'chunked') {
    const parts: Buffer[] = [];
    for (;;) {
      const nl = rest.indexOf('\r\n');
      if (nl === -1) throw new Error('chunked body cut short');
      const size = parseInt(rest.subarray(0, nl).toString('latin1'), 16);
      if (Number.isNaN(size)) throw new Error('bad chunk size');
      if (size === 0) break;
      parts.push(rest.subarray(nl + 2, nl + 2 + size));
      rest = rest.subarray(nl + 4 + size);
    }
    a.body = Buffer.concat(parts);
    return a;
  }
  const length = field(a, 'content-length');
  a.body = length === undefined ? rest : rest.subarray(0, Number(length));
  return a;
}


// ---------------------------------------------------------------------------------------
// What is compared
// ---------------------------------------------------------------------------------------

/**
 * One host's answer as compared: `status`, then (env.sh) `var:NAME` for every variable but
 * NOISE and `stdin`, and per kind `header:NAME`, `reason`, `body-sha256`, `body-length`.
 * undefined = absent.
 */
interface View {
  fields: Record<string, string | undefined>;
  /** env.sh's output was there to read (var:* fields are compared only then). */
  ran: boolean;
}

/** Parses env.sh's output: NAME=hex lines, then STDIN=hex. */
function envOf(body: Buffer): { vars: Map<string, Buffer>; stdin: Buffer } | undefined {
  const vars = new Map<string, Buffer>();
  let stdin: Buffer | undefined;
  for (const line of body.toString('latin1').split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=([0-9a-f]*)$/.exec(line);
    if (m === null) continue;
    const value = Buffer.from(m[2] as string, 'hex');
    if (m[1] === 'STDIN') stdin = value;
    else vars.set(m[1] as string, value);
  }
  return stdin === undefined ? undefined : { vars, stdin };
}

interface Ctx {
  docroot: string;
  port: Record<Host, number>;
}

/**
 * A value as compared: raw bytes as a latin1 string, the host's own port and the temporary
 * document root replaced by {PORT} and {DOCROOT} (each host listens on its own port), the
 * client's ephemeral port (REMOTE_PORT, Apache's REDIRECT_REMOTE_PORT) by {REMOTE_PORT}.
 */
function normalize(ctx: Ctx, host: Host, name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (/^var:(REDIRECT_)?REMOTE_PORT$/.test(name) && /^\d+$/.test(value)) return '{REMOTE_PORT}';
  return value.split(ctx.docroot).join('{DOCROOT}').split(String(ctx.port[host])).join('{PORT}');
}

function view(ctx: Ctx, host: Host, req: Req, a: Answer, expectedStatus: number): View {
  const fields: Record<string, string | undefined> = { status: String(a.status) };
  const set = (name: string, value: string | undefined): void => {
    fields[name] = normalize(ctx, host, name, value);
  };
  let ran = false;
  if (req.kind === 'env' && a.status === expectedStatus) {
    const env = envOf(a.body);
    if (env !== undefined) {
      ran = true;
      for (const [k, v] of env.vars) if (!NOISE.has(k)) set(`var:${k}`, v.toString('latin1'));
      set('stdin', env.stdin.toString('latin1'));
    }
  }
  if (req.kind === 'env' || req.kind === 'body' || req.kind === 'nph' || req.kind === 'head') set('header:content-type', field(a, 'content-type'));
  if (req.kind === 'env' || req.kind === 'head') set('header:x-request-method', field(a, 'x-request-method'));
  if (req.kind === 'body' || req.kind === 'redirect' || req.kind === 'nph') set('body-sha256', sha256(a.body));
  if (req.kind === 'head') set('body-length', String(a.body.length));
  if (req.kind === 'redirect') set('header:location', field(a, 'location'));
  if (req.kind === 'nph') {
    set('reason', a.reason);
    set('header:x-nph', field(a, 'x-nph'));
  }
  return { fields, ran };
}

// ---------------------------------------------------------------------------------------
// The differences that are allowed
// ---------------------------------------------------------------------------------------

/** The host gives no such answer in this request (another status, listed): nothing to compare. */
const NOT_RUN = Symbol('not run');

/** What one host gives: a value, a pattern, UNSET, NOT_RUN, or a value computed per request. */
type Want = string | RegExp | typeof UNSET | typeof NOT_RUN | ((req: Req) => string | typeof UNSET);

interface Difference {
  /** The compared field: `status`, `var:NAME`, `reason`, `body-sha256`...; a RegExp for a family. */
  field: string | RegExp;
  /** The requests it occurs in (by id). */
  requests: readonly string[];
  values: Record<Host, Want>;
  /** Who is right, by RFC 3875 unless another RFC is named. */
  right: string;
  why: string;
}

const ids = (pred: (r: Req) => boolean): string[] => REQUESTS.filter(pred).map((r) => r.id);
const ENV = ids((r) => r.kind === 'env');
const WITH_PATH_INFO = ['path-info', 'path-info-utf8', 'path-info-latin1'];
const ENV_NO_PATH_INFO = ENV.filter((id) => !WITH_PATH_INFO.includes(id));
const ENV_NO_BODY = ENV.filter((id) => id !== 'form-post');
const EMPTY_SHA256 = sha256(Buffer.alloc(0));
const ANY = /^[\s\S]*$/;

/** The request path, percent-decoded, as a latin1 byte string (nginx's $uri, DOCUMENT_URI). */
function decodedPath(req: Req): string {
  const p = req.target.split('?')[0] as string;
  return Buffer.from(p.replace(/%([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('latin1');
}
const pathInfoOf = (req: Req): string => decodedPath(req).slice('/cgi-bin/env.sh'.length);

/**
 * Every way the four hosts may differ, and nothing else. Each host's value is what it gives
 * (UNSET: the variable is absent). A difference here that stops occurring fails too.
 */
const DIFFERENCES: readonly Difference[] = [
  // --- Each server's own identity and configuration ---------------------------------
  {
    field: 'var:SERVER_SOFTWARE',
    requests: ENV,
    values: { gatewire: /^gatewire\/\d/, 'nginx→gatewire': /^nginx\/\d/, 'nginx→fcgiwrap': /^nginx\/\d/, apache: /^Apache\/2\.4/ },
    right: 'all',
    why: 'RFC 3875 §4.1.17: the server software, the same as told to the client (Server:). Behind nginx that is nginx (fastcgi_params: SERVER_SOFTWARE nginx/$nginx_version), and gatewire keeps the web server\'s value.',
  },
  {
    field: 'var:SERVER_PORT',
    requests: ENV,
    values: { gatewire: '{PORT}', 'nginx→gatewire': '{PORT}', 'nginx→fcgiwrap': '{PORT}', apache: '80' },
    right: 'gatewire, nginx',
    why: 'RFC 3875 §4.1.16: MUST be the port the request was received on. Apache (UseCanonicalName Off, UseCanonicalPhysicalPort Off: its defaults) takes the port of the Host field, and `Host: localhost` has none, so 80.',
  },
  {
    field: 'var:DOCUMENT_ROOT',
    requests: ENV,
    values: { gatewire: '{DOCROOT}/cgi-bin', 'nginx→gatewire': '{DOCROOT}', 'nginx→fcgiwrap': '{DOCROOT}', apache: '{DOCROOT}' },
    right: 'configuration (not an RFC 3875 variable)',
    why: 'nginx sends its root (fastcgi_params), Apache its DocumentRoot; gatewire\'s HTTP front has no document root of its own and gives its cgi-bin folder unless --cgi-document-root names one (C-2; not given here).',
  },
  {
    field: 'var:PATH_TRANSLATED',
    requests: WITH_PATH_INFO,
    values: {
      gatewire: (r) => `{DOCROOT}/cgi-bin${pathInfoOf(r)}`,
      'nginx→gatewire': (r) => `{DOCROOT}${pathInfoOf(r)}`,
      'nginx→fcgiwrap': UNSET,
      apache: (r) => `{DOCROOT}${pathInfoOf(r)}`,
    },
    right: 'gatewire, Apache (nginx → fcgiwrap misses a SHOULD)',
    why: 'RFC 3875 §4.1.6: SHOULD be set when the URI has a path-info, mapped onto the server\'s document repository (the mapping is the server\'s: each host uses its DOCUMENT_ROOT). nginx\'s params carry none and fcgiwrap derives none.',
  },
  // --- NULL or unset: the same to a script ----------------------------------------------
  {
    field: 'var:PATH_INFO',
    requests: ENV_NO_PATH_INFO,
    values: { gatewire: '', 'nginx→gatewire': '', 'nginx→fcgiwrap': '', apache: UNSET },
    right: 'all',
    why: 'RFC 3875 §4.1.5: PATH_INFO = "" | ( "/" path ): without a path-info it is NULL, and NULL may be empty or unset (RFC 3875 §4.1).',
  },
  {
    field: 'var:CONTENT_LENGTH',
    requests: ENV_NO_BODY,
    values: { gatewire: UNSET, 'nginx→gatewire': UNSET, 'nginx→fcgiwrap': '', apache: UNSET },
    right: 'all',
    why: 'RFC 3875 §4.1.2: "If no data is attached, then NULL (or unset)". nginx sends $content_length empty, fcgiwrap passes it on; gatewire drops an empty CONTENT_* (E-4).',
  },
  {
    field: 'var:CONTENT_TYPE',
    requests: ENV_NO_BODY,
    values: { gatewire: UNSET, 'nginx→gatewire': UNSET, 'nginx→fcgiwrap': '', apache: UNSET },
    right: 'all',
    why: 'RFC 3875 §4.1.3: no body, no media type; empty is NULL. As CONTENT_LENGTH.',
  },
  {
    field: 'var:REMOTE_USER',
    requests: ENV,
    values: { gatewire: UNSET, 'nginx→gatewire': '', 'nginx→fcgiwrap': '', apache: UNSET },
    right: 'all',
    why: 'RFC 3875 §4.1.11: only for an authenticated request; nginx\'s fastcgi_params send $remote_user, empty (NULL) here.',
  },
  // --- Extension variables: RFC 3875 §4.1 lets a server add its own --------------------------------
  {
    field: 'var:REMOTE_HOST',
    requests: ENV,
    values: { gatewire: '127.0.0.1', 'nginx→gatewire': '127.0.0.1', 'nginx→fcgiwrap': UNSET, apache: UNSET },
    right: 'gatewire',
    why: 'RFC 3875 §4.1.9: SHOULD be set; without a DNS lookup the server MAY substitute REMOTE_ADDR, as gatewire does. Apache (HostnameLookups Off) and nginx\'s params leave it out.',
  },
  {
    field: 'var:REDIRECT_STATUS',
    requests: ENV.filter((id) => id !== 'redirect-local'),
    values: { gatewire: UNSET, 'nginx→gatewire': '200', 'nginx→fcgiwrap': '200', apache: UNSET },
    right: 'all (not RFC 3875)',
    why: 'nginx\'s fastcgi_params send REDIRECT_STATUS 200 for php-cgi\'s force-redirect check; gatewire sets it only for its .php preset and, like Apache, after a local redirect (redirect-local: 200 on every host that runs the second script, C-23).',
  },
  {
    field: 'var:DOCUMENT_URI',
    requests: ENV,
    values: { gatewire: UNSET, 'nginx→gatewire': decodedPath, 'nginx→fcgiwrap': decodedPath, apache: UNSET },
    right: 'all (not RFC 3875)',
    why: 'nginx\'s fastcgi_params: $document_uri, the decoded path nginx served. After a local redirect inside gatewire it still names the first script (nginx never saw the redirect).',
  },
  {
    field: 'var:FCGI_ROLE',
    requests: ENV,
    values: { gatewire: UNSET, 'nginx→gatewire': 'RESPONDER', 'nginx→fcgiwrap': 'RESPONDER', apache: UNSET },
    right: 'all (not RFC 3875)',
    why: 'The FastCGI role of the request (FastCGI 1.0 §6): libfcgi puts it in fcgiwrap\'s environment, gatewire\'s FastCGI front likewise; no FastCGI, no role.',
  },
  ...(
    [
      ['var:CONTEXT_DOCUMENT_ROOT', '{DOCROOT}/cgi-bin/'],
      ['var:CONTEXT_PREFIX', '/cgi-bin/'],
      ['var:SERVER_ADMIN', '[no address given]'],
      ['var:SERVER_SIGNATURE', ''],
    ] as const
  ).map(
    ([name, value]): Difference => ({
      field: name,
      requests: ENV,
      values: { gatewire: UNSET, 'nginx→gatewire': UNSET, 'nginx→fcgiwrap': UNSET, apache: value },
      right: 'all (not RFC 3875)',
      why: 'Apache\'s own variables (the ScriptAlias context, ServerAdmin, ServerSignature Off).',
    }),
  ),
  {
    field: 'var:HTTP_CONTENT_LENGTH',
    requests: ['form-post'],
    values: { gatewire: UNSET, 'nginx→gatewire': UNSET, 'nginx→fcgiwrap': String(FORM.length), apache: UNSET },
    right: 'gatewire, Apache',
    why: 'RFC 3875 §4.1.18: the server SHOULD NOT pass header fields available in other variables (Content-Length is CONTENT_LENGTH). nginx sends every field as HTTP_*; gatewire drops these two (E-4), fcgiwrap passes them on.',
  },
  {
    field: 'var:HTTP_CONTENT_TYPE',
    requests: ['form-post'],
    values: { gatewire: UNSET, 'nginx→gatewire': UNSET, 'nginx→fcgiwrap': 'application/x-www-form-urlencoded', apache: UNSET },
    right: 'gatewire, Apache',
    why: 'RFC 3875 §4.1.18, as HTTP_CONTENT_LENGTH.',
  },
  // --- The local redirect (RFC 3875 §6.2.2) -------------------------------------------------------
  {
    field: 'status',
    requests: ['redirect-local'],
    values: { gatewire: '200', 'nginx→gatewire': '200', 'nginx→fcgiwrap': '302', apache: '200' },
    right: 'gatewire, Apache',
    why: 'RFC 3875 §6.2.2: a local redirect (a path in Location) MUST be served by the server as a new request. nginx does no CGI local redirects (to it a Location without Status is a 302) and fcgiwrap hands the field on; gatewire serves it inside, also behind nginx.',
  },
  {
    field: 'var:REQUEST_URI',
    requests: ['redirect-local'],
    values: { gatewire: '/cgi-bin/env.sh', 'nginx→gatewire': '/cgi-bin/env.sh', 'nginx→fcgiwrap': NOT_RUN, apache: '/cgi-bin/redirect.sh?local' },
    right: 'both (not RFC 3875)',
    why: 'RFC 3875 §6.2.2 says "as if the client requested that URI": gatewire rewrites REQUEST_URI to the new target; Apache keeps the target of the client\'s request line. Both name the first script in REDIRECT_URL.',
  },
  {
    field: /^var:REDIRECT_(?!URL$|STATUS$)/,
    requests: ['redirect-local'],
    values: { gatewire: UNSET, 'nginx→gatewire': UNSET, 'nginx→fcgiwrap': NOT_RUN, apache: ANY },
    right: 'all (not RFC 3875)',
    why: 'Apache\'s internal redirect copies every variable of the first request with a REDIRECT_ prefix (REDIRECT_QUERY_STRING, REDIRECT_REQUEST_URI, ...); RFC 3875 §6.2.2 asks for none.',
  },
  // --- Responses ---------------------------------------------------------------------------
  {
    field: 'status',
    requests: ['nph'],
    values: { gatewire: '203', 'nginx→gatewire': '203', 'nginx→fcgiwrap': '200', apache: '203' },
    right: 'gatewire, Apache',
    why: 'RFC 3875 §5: an NPH script\'s status line is the response\'s. FastCGI has no NPH path: fcgiwrap hands the status line on as if it were a field, nginx drops it and answers 200; gatewire behind nginx turns it into Status: 203.',
  },
  {
    field: 'reason',
    requests: ['nph'],
    values: { gatewire: 'Non-Authoritative Information', 'nginx→gatewire': 'Non-Authoritative Information', 'nginx→fcgiwrap': 'OK', apache: 'Non-Authoritative Information' },
    right: 'gatewire, Apache',
    why: 'As the NPH status.',
  },
  {
    field: 'body-sha256',
    requests: ['redirect-absolute'],
    values: { gatewire: EMPTY_SHA256, 'nginx→gatewire': EMPTY_SHA256, 'nginx→fcgiwrap': EMPTY_SHA256, apache: new RegExp(`^(?!${EMPTY_SHA256}$)[0-9a-f]{64}$`) },
    right: 'all',
    why: 'RFC 3875 §6.2.3: a client redirect has no body from the script; the server makes the 302. Apache adds its hypertext note (RFC 9110 §15.4.3 "usually contains"); gatewire and nginx send none.',
  },
  {
    field: 'status',
    requests: ['traversal-dotdot', 'traversal-encoded'],
    values: { gatewire: '400', 'nginx→gatewire': '404', 'nginx→fcgiwrap': '404', apache: '404' },
    right: 'all (RFC 3986 §5.2.4)',
    why: 'nginx and Apache remove the dot segments (%2e is unreserved and decoded first): the path leaves /cgi-bin/ and names no file under the root, 404. gatewire\'s HTTP front refuses a target with dot segments (400); behind nginx it never sees them. No host runs anything or shows /etc/passwd.',
  },
  {
    field: 'status',
    requests: ['header-20kib'],
    values: { gatewire: '431', 'nginx→gatewire': '400', 'nginx→fcgiwrap': '400', apache: '400' },
    right: 'all (RFC 6585 §5, RFC 9110 §15.5.1)',
    why: 'A 20 KiB field is over every limit: gatewire (--max-header-bytes 16k) answers 431 Request Header Fields Too Large; nginx (large_client_header_buffers 8k) and Apache (LimitRequestFieldSize 8190) answer 400, also allowed. Behind nginx, nginx refuses first.',
  },
];

const isField = (d: Difference, name: string): boolean => (typeof d.field === 'string' ? d.field === name : d.field.test(name));
const differenceFor = (req: Req, name: string): Difference | undefined => DIFFERENCES.find((d) => d.requests.includes(req.id) && isField(d, name));

const show = (v: string | undefined): string => (v === undefined ? '(unset)' : JSON.stringify(v));
function showWant(w: Want, req: Req): string {
  if (w === UNSET) return '(unset)';
  if (w === NOT_RUN) return '(not run)';
  if (typeof w === 'function') return showWant(w(req), req);
  return typeof w === 'string' ? JSON.stringify(w) : String(w);
}
function matches(w: Want, req: Req, v: string | undefined): boolean {
  if (w === NOT_RUN) return false;
  if (w === UNSET) return v === undefined;
  if (typeof w === 'function') return matches(w(req), req, v);
  if (v === undefined) return false;
  return typeof w === 'string' ? v === w : w.test(v);
}

/** The status a host must give: DIFFERENCES' when listed, else the request's. */
function expectedStatus(req: Req, host: Host): number {
  const d = differenceFor(req, 'status');
  const w = d?.values[host];
  return typeof w === 'string' ? Number(w) : req.status;
}

/**
 * Every way the answers break the rules: a status not expected, a field where the hosts
 * differ without a DIFFERENCES entry, a host not giving what its entry says, a listed
 * difference that did not occur, a request's own expectations (vars, check) not met.
 */
function compare(ctx: Ctx, req: Req, got: Record<Host, Answer>): string[] {
  const problems: string[] = [];
  const views = {} as Record<Host, View>;
  for (const h of HOSTS) {
    const want = expectedStatus(req, h);
    views[h] = view(ctx, h, req, got[h], want);
    if (got[h].status !== want) problems.push(`${h}: status ${got[h].status}, expected ${want}: ${JSON.stringify(got[h].body.toString('latin1').slice(0, 120))}`);
  }
  // Compared: the status of every host; the rest on hosts that gave their expected status,
  // and for env.sh requests only where env.sh's answer came (not a listed 302 instead).
  const ok = HOSTS.filter((h) => got[h].status === expectedStatus(req, h));
  const ran = ok.filter((h) => views[h].ran);
  const comparedFor = (name: string): Host[] => (name === 'status' ? [...HOSTS] : req.kind === 'env' ? ran : ok);
  const names = new Set<string>();
  for (const h of HOSTS) for (const k of Object.keys(views[h].fields)) names.add(k);
  for (const d of DIFFERENCES) if (typeof d.field === 'string' && d.requests.includes(req.id)) names.add(d.field);
  const regexUsed = new Set<Difference>();
  for (const name of [...names].sort()) {
    const hosts = comparedFor(name);
    if (hosts.length === 0) continue;
    const values = hosts.map((h) => views[h].fields[name]);
    const d = differenceFor(req, name);
    if (d === undefined) {
      // A status off its mark is reported per host above.
      if (name !== 'status' && values.some((v) => v !== values[0])) problems.push(`${name} differs (not in DIFFERENCES): ${hosts.map((h, i) => `${h} ${show(values[i])}`).join(', ')}`);
      continue;
    }
    if (typeof d.field !== 'string') regexUsed.add(d);
    for (const [i, h] of hosts.entries()) {
      if (!matches(d.values[h], req, values[i])) problems.push(`${name}: ${h} gave ${show(values[i])}, DIFFERENCES says ${showWant(d.values[h], req)}`);
    }
    // All hosts the entry speaks of were compared, and they agree: the difference is gone.
    const expected = HOSTS.filter((h) => d.values[h] !== NOT_RUN);
    if (expected.every((h) => hosts.includes(h)) && values.every((v) => v === values[0])) problems.push(`${name}: listed in DIFFERENCES but every host gave ${show(values[0])}`);
  }
  for (const d of DIFFERENCES) {
    if (typeof d.field !== 'string' && d.requests.includes(req.id) && !regexUsed.has(d) && HOSTS.every((h) => d.values[h] === NOT_RUN || ran.includes(h))) {
      problems.push(`${String(d.field)}: listed in DIFFERENCES for ${req.id} but no such field occurred`);
    }
  }
  // The request's own truth, on every host that ran (a field DIFFERENCES covers is judged there).
  for (const [name, want] of Object.entries(req.vars ?? {})) {
    const key = name === 'stdin' ? name : `var:${name}`;
    if (differenceFor(req, key) !== undefined) continue;
    for (const h of comparedFor(key)) {
      const v = views[h].fields[key];
      if (want === UNSET ? v !== undefined : v !== want) problems.push(`${key}: ${h} gave ${show(v)}, a correct host gives ${want === UNSET ? '(unset)' : JSON.stringify(want)}`);
    }
  }
  if (req.kind === 'env') for (const h of ok) if (got[h].status === req.status && !views[h].ran) problems.push(`${h}: env.sh's output is incomplete: ${JSON.stringify(got[h].body.toString('latin1').slice(-200))}`);
  for (const h of ok) {
    const p = req.check?.(got[h]);
    if (p !== undefined) problems.push(`${h}: ${p}`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------

describeWithPeers('CGI differential: one cgi-bin through gatewire, nginx→gatewire, nginx→fcgiwrap and Apache mod_cgi', ['nginx', 'apache2', 'spawn-fcgi', 'fcgiwrap'], () => {
  let dir: TmpDir | undefined;
  let gw: PeerProcess | undefined;
  let wrap: PeerProcess | undefined;
  let servers: WebServer[] = [];
  let ctx: Ctx;

  beforeAll(async () => {
    await ensureBuilt();
    dir = tmpDir('gw-cgidiff');
    fs.chmodSync(dir.path, 0o755); // Apache's children (www-data) walk into it
    const docroot = path.join(dir.path, 'www');
    const cgiBin = path.join(docroot, 'cgi-bin');
    fs.mkdirSync(cgiBin, { recursive: true });
    fs.chmodSync(docroot, 0o755);
    fs.chmodSync(cgiBin, 0o755);
    for (const [name, text] of Object.entries(SCRIPTS)) {
      fs.writeFileSync(path.join(cgiBin, name), text);
      fs.chmodSync(path.join(cgiBin, name), 0o755);
    }

    // One gatewire with both fronts: --http is a host, --fastcgi is nginx's backend.
    const started = await startProcess(process.execPath, [CLI, 'serve', '--cgi-bin', cgiBin, '--http', '127.0.0.1:0', '--fastcgi', '127.0.0.1:0', '--shutdown-timeout', '2s'], {
      name: 'gatewire',
      inheritEnv: false,
      env: childEnv(),
      cwd: ROOT,
      readyLine: /(?=[\s\S]*listening: fastcgi on 127\.0\.0\.1:\d+)(?=[\s\S]*listening: http on 127\.0\.0\.1:\d+)/,
      stopGraceMs: 5000,
    });
    gw = started;
    const gwPort = (front: string): number => Number(new RegExp(`listening: ${front} on 127\\.0\\.0\\.1:(\\d+)`).exec(started.output())?.[1]);

    // fcgiwrap with only PATH in its environment (it hands its own environment to scripts).
    let wrapAddr: string | undefined;
    let lastError: unknown;
    for (let attempt = 0; attempt < 3 && wrapAddr === undefined; attempt++) {
      const port = await freePort();
      try {
        wrap = await startProcess(peerPath('spawn-fcgi'), ['-n', '-a', '127.0.0.1', '-p', String(port), '--', peerPath('fcgiwrap'), '-c', '4'], {
          name: 'spawn-fcgi+fcgiwrap',
          inheritEnv: false,
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
          readyPort: port,
        });
        wrapAddr = `127.0.0.1:${port}`;
      } catch (err) {
        lastError = err;
      }
    }
    if (wrapAddr === undefined) throw lastError instanceof Error ? lastError : new Error(String(lastError));

    const [nginxGw, nginxWrap, apache] = await Promise.all([
      startNginx({ template: 'cgi-differential', vars: { DOCROOT: docroot, FASTCGI_ADDR: `127.0.0.1:${gwPort('fastcgi')}` } }),
      startNginx({ template: 'cgi-differential', vars: { DOCROOT: docroot, FASTCGI_ADDR: wrapAddr } }),
      startApache({ template: 'cgi', mpm: 'prefork', vars: { DOCROOT: docroot, CGI_DIR: cgiBin } }),
    ]);
    servers = [nginxGw, nginxWrap, apache];
    ctx = { docroot, port: { gatewire: gwPort('http'), 'nginx→gatewire': nginxGw.port, 'nginx→fcgiwrap': nginxWrap.port, apache: apache.port } };
  }, 90_000);

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await Promise.all([gw?.stop(), wrap?.stop()]);
    dir?.cleanup();
  }, 30_000);

  async function ask(host: Host, req: Req): Promise<Answer> {
    const raw = await rawRequest(ctx.port[host], requestBytes(req), { timeoutMs: 15_000 });
    try {
      return parseAnswer(raw, req.method);
    } catch (err) {
      throw new Error(`${host}: ${(err as Error).message}`, { cause: err });
    }
  }

  test('DIFFERENCES names only requests that exist, and each host once per entry', () => {
    const known = new Set(REQUESTS.map((r) => r.id));
    expect(DIFFERENCES.flatMap((d) => d.requests.filter((id) => !known.has(id)))).toEqual([]);
    expect(DIFFERENCES.filter((d) => Object.keys(d.values).sort().join() !== [...HOSTS].sort().join())).toEqual([]);
    // No two entries for one field and request: the first would hide the second.
    const seen = new Set<string>();
    const twice: string[] = [];
    for (const d of DIFFERENCES) {
      for (const id of d.requests) {
        const key = `${String(d.field)} ${id}`;
        if (seen.has(key)) twice.push(key);
        seen.add(key);
      }
    }
    expect(twice).toEqual([]);
  });

  test.each(REQUESTS.map((r) => [r.id, `${r.method} ${r.target.length > 60 ? `${r.target.slice(0, 60)}…` : r.target}`, r] as const))(
    '%s: %s: same status, variables and body on the four hosts, but for DIFFERENCES',
    (_id, _line, req) =>
      withPeerLogs(async () => {
        const got = {} as Record<Host, Answer>;
        await Promise.all(HOSTS.map(async (h) => (got[h] = await ask(h, req))));
        expect(compare(ctx, req, got)).toEqual([]);
      })(),
    30_000,
  );
});
