/**
 * The environ table of `gatewire compare`: every CGI variable any app saw, one value per column,
 * and for each row where the columns disagree one line saying why. The reasons are facts about
 * the protocols, the web servers' params files and gatewire's fronts; a variable with no known
 * reason gets a line saying which columns have it and which do not, so no difference is shown
 * unexplained.
 */
import type { EnvironRow, ProtocolResult } from './types.js';

type Values = Record<string, string | null>;

/** Column ids grouped by what they have: `fastcgi-nginx, scgi-nginx`. */
function having(values: Values, test: (v: string | null) => boolean): string[] {
  return Object.entries(values)
    .filter(([, v]) => test(v))
    .map(([id]) => id);
}

const viaNginx = (values: Values): string[] => having(values, (v) => v !== null).filter((id) => id.endsWith('-nginx'));

/** Known reasons, by variable. Each returns its line, or undefined to fall back to the generic one. */
const REASONS: Record<string, (values: Values) => string | undefined> = {
  SCGI: () => 'The SCGI spec requires every request to carry SCGI=1 (the protocol version); the SCGI front passes it on like any other header.',
  CONTENT_LENGTH: (values) =>
    Object.values(values).includes('')
      ? "nginx's params files send CONTENT_LENGTH $content_length, which is empty for a request without a body; gatewire's clients leave it out."
      : 'The body length, as each client counted it; a CGI program gets it only when there is a body (RFC 3875 §4.1.2).',
  CONTENT_TYPE: (values) => (Object.values(values).includes('') ? "nginx's params files send CONTENT_TYPE $content_type, empty when the request has none; gatewire's clients leave it out." : undefined),
  SCRIPT_NAME: () => "Where the app is mounted: gatewire's clients and the HTTP front say the root (\"\"); nginx sends its location's path over FastCGI ($fastcgi_script_name).",
  SCRIPT_FILENAME: () => "The file to run: the CGI host names the program; nginx's fastcgi.conf (not the fastcgi_params used here) would send $document_root$fastcgi_script_name, as php-fpm needs.",
  PATH_TRANSLATED: () => 'The CGI host builds it from DOCUMENT_ROOT and PATH_INFO (RFC 3875 §4.1.6); no web server here sends it over the gateway protocols.',
  REDIRECT_STATUS: () => "nginx's fastcgi_params sets REDIRECT_STATUS 200 for php-cgi's cgi.force_redirect check: PHP refuses to run without it.",
  DOCUMENT_ROOT: () => "The web server's document root: nginx sends its root ($document_root, here its prefix's html/); the CGI host sends the program's folder; gatewire's clients have no document root to send.",
  DOCUMENT_URI: () => "nginx's $document_uri (fastcgi_params, scgi_params): the path after internal rewrites, without the query.",
  REQUEST_SCHEME: () => "Not an RFC 3875 variable: nginx's params files send $scheme and the HTTP front sets it; gatewire's clients do not send it.",
  SERVER_SOFTWARE: () => "Who sent the request: gatewire's clients name gatewire, nginx's fastcgi_params names nginx; its scgi_params and uwsgi_params send none, and the fronts pass on only what came.",
  GATEWAY_INTERFACE: () => "CGI/1.1 wherever it is sent: gatewire's clients and nginx's fastcgi_params send it; nginx's scgi_params and uwsgi_params do not.",
  SERVER_PORT: () => "The port the request came to: each column listens on its own port; gatewire's clients say 80 (the public port a web server would name), the HTTP front and nginx name the port they listen on.",
  SERVER_ADDR: () => "The address the request was accepted on: the HTTP front knows its socket, nginx's fastcgi_params and uwsgi_params send $server_addr; gatewire's clients and scgi_params do not.",
  SERVER_NAME: () => "The virtual host: over HTTP the front takes it from the Host header (which proxy_pass rewrote); nginx sends its server_name over the gateway protocols.",
  SERVER_PROTOCOL: () => "The HTTP version of the request that reached the server: nginx's proxy_pass speaks HTTP/1.0 to its upstream unless proxy_http_version 1.1 is set.",
  REMOTE_PORT: () => "The client's source port: a new ephemeral port for every connection, so it never matches (gatewire's clients do not send it).",
  REMOTE_HOST: () => 'The CGI host sets REMOTE_HOST to REMOTE_ADDR, as RFC 3875 §4.1.9 asks of a server that does not look names up.',
  REMOTE_USER: () => "nginx's fastcgi_params sends REMOTE_USER $remote_user: empty without HTTP authentication.",
  HTTPS: () => "Set (on) only for TLS requests; nginx's params files send $https, empty for plain HTTP.",
  HTTP_CONNECTION: () =>
    "A hop-by-hop header: proxy_pass sends its own Connection: close, and nginx passes the client's Connection on as HTTP_CONNECTION over the gateway protocols; gatewire's clients never forward hop-by-hop headers.",
  HTTP_HOST: () => "The Host header: proxy_pass rewrites it to the upstream's address ($proxy_host) unless proxy_set_header Host is set.",
  PATH: () => 'The CGI host sets PATH for the program it starts; a request over the other protocols has no process environment.',
  FCGI_ROLE: () => "Only the FastCGI front has roles: it sets FCGI_ROLE from FCGI_BEGIN_REQUEST's role, as libfcgi does.",
};

function genericReason(values: Values): string {
  const present = having(values, (v) => v !== null);
  const absent = having(values, (v) => v === null);
  if (absent.length > 0) {
    const nginx = viaNginx(values);
    if (nginx.length === present.length && nginx.length > 0) return `Sent only by nginx's params files (${present.join(', ')}).`;
    if (present.length === 1 && present[0] === 'cgi') return 'Only the CGI program has it: it is inherited from the CGI host\'s allowed environment (LANG, LC_ALL, TZ).';
    return `Only ${present.join(', ')} ${present.length === 1 ? 'has' : 'have'} it; ${absent.join(', ')} ${absent.length === 1 ? 'does' : 'do'} not send it.`;
  }
  const groups = new Map<string, string[]>();
  for (const [id, v] of Object.entries(values)) groups.set(v as string, [...(groups.get(v as string) ?? []), id]);
  return `Each client sends its own value: ${[...groups.entries()].map(([v, ids]) => `${ids.join(', ')}: ${JSON.stringify(v)}`).join('; ')}.`;
}

/** Known reasons a front set a variable the request did not carry, by variable. */
const SET_BY_FRONT: Record<string, (ids: string[]) => string> = {
  PATH_INFO: (ids) =>
    [
      ids.includes('fastcgi-nginx') ? "nginx's fastcgi_params sends no PATH_INFO (that takes fastcgi_split_path_info and a fastcgi_param line)" : '',
      ids.includes('scgi-nginx') ? "nginx's scgi_params sends neither PATH_INFO nor SCRIPT_NAME" : '',
    ]
      .filter((t) => t !== '')
      .join('; ') + `${ids.some((id) => id.endsWith('-nginx')) ? ': ' : ''}gatewire's front derived it from the request path for ${ids.join(', ')}.`,
  SCRIPT_NAME: (ids) => `Not sent for ${ids.join(', ')} (nginx's scgi_params and uwsgi_params have no SCRIPT_NAME): the front mounts the app at the root, or at --mount.`,
};

function setByFront(name: string, ids: string[]): string {
  return SET_BY_FRONT[name]?.(ids) ?? `Set by gatewire's front for ${ids.join(', ')}: the request did not carry it.`;
}

/** Every variable any column's app saw, in name order, with the columns' values, the reason they differ, and the columns whose front set it. */
export function environRows(protocols: readonly ProtocolResult[]): EnvironRow[] {
  const names = new Set<string>();
  for (const p of protocols) for (const name of Object.keys(p.environ)) names.add(name);
  const answered = protocols.filter((p) => p.error === undefined);
  const sent = new Map(answered.map((p) => [p.id, p.sent === undefined ? undefined : new Set(p.sent)]));
  return [...names].sort().map((name) => {
    const values: Values = {};
    for (const p of protocols) values[p.id] = p.error === undefined ? (p.environ[name] ?? null) : null;
    const derived = answered.filter((p) => p.environ[name] !== undefined && sent.get(p.id)?.has(name) === false).map((p) => p.id);
    const differs = new Set(answered.map((p) => values[p.id] ?? null)).size > 1;
    const subset: Values = {};
    for (const p of answered) subset[p.id] = values[p.id] ?? null;
    const notes = [
      ...(differs ? [REASONS[name]?.(subset) ?? genericReason(subset)] : []),
      // A known reason for the difference already says where the variable comes from.
      ...(derived.length > 0 && !(differs && name in REASONS) ? [setByFront(name, derived)] : []),
    ];
    return { name, values, differs, derived, ...(notes.length === 0 ? {} : { note: notes.join(' ') }) };
  });
}
