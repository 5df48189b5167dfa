/**
 * `--upstream URL`: which application server gatewire forwards requests to, and over which
 * protocol.
 *
 *   fastcgi://127.0.0.1:9000       fastcgi+unix:///run/php/php8.2-fpm.sock   fastcgi://unix:/run/php/php8.2-fpm.sock
 *   scgi://127.0.0.1:4000          scgi+unix:///run/app.sock                 scgi://unix:/run/app.sock
 *   uwsgi://[::1]:3031             uwsgi+unix:///run/uwsgi.sock              uwsgi://unix:/run/uwsgi.sock
 *
 * `fcgi` is accepted for `fastcgi`. The `+unix` form takes the socket path as the URL's path
 * (three slashes for an absolute path, as in Caddy and Docker); the `unix:` form is nginx's
 * spelling (`fastcgi_pass unix:/path`).
 */
import { OptionError, parseAddress } from '../options.js';

/** Where an upstream listens: the TCP and unix forms of a listen address (src/options.ts). */
export type UpstreamAddress = { kind: 'tcp'; host: string | undefined; port: number } | { kind: 'unix'; path: string };

export type UpstreamProtocol = 'fastcgi' | 'scgi' | 'uwsgi';

/** A parsed `--upstream` value. */
export interface UpstreamTarget {
  protocol: UpstreamProtocol;
  address: UpstreamAddress;
}

const FORMS = 'fastcgi://HOST:PORT, fastcgi+unix:///PATH or fastcgi://unix:/PATH (also scgi and uwsgi)';

const SCHEMES: Record<string, UpstreamProtocol> = { fastcgi: 'fastcgi', fcgi: 'fastcgi', scgi: 'scgi', uwsgi: 'uwsgi' };

/** Parses an upstream URL; throws OptionError naming the accepted forms. */
export function parseUpstreamUrl(text: string): UpstreamTarget {
  const s = text.trim();
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/s.exec(s);
  const bad = (why: string): OptionError => new OptionError(`invalid upstream ${JSON.stringify(text)}: ${why}`);
  if (m === null) throw bad(`expected ${FORMS}`);
  const scheme = (m[1] as string).toLowerCase();
  const rest = m[2] as string;
  const unixSuffix = scheme.endsWith('+unix');
  const protocol = SCHEMES[unixSuffix ? scheme.slice(0, -5) : scheme];
  if (protocol === undefined) throw bad(`unknown protocol ${JSON.stringify(scheme)}: expected ${FORMS}`);
  if (unixSuffix) {
    // fastcgi+unix:///run/php.sock: an empty authority, then the socket path.
    if (!rest.startsWith('/')) throw bad(`${scheme}:// takes an absolute socket path after the empty host, e.g. ${scheme}:///run/app.sock`);
    if (rest === '/') throw bad(`${scheme}:// needs a socket path`);
    return { protocol, address: { kind: 'unix', path: decodeURIComponent(rest) } };
  }
  if (rest.startsWith('unix:')) {
    const path = rest.slice(5);
    if (path === '') throw bad('unix: needs a socket path');
    return { protocol, address: { kind: 'unix', path } };
  }
  let address;
  try {
    address = parseAddress(rest.replace(/\/$/, ''));
  } catch (err) {
    if (err instanceof OptionError) throw bad(`expected ${FORMS}`);
    throw err;
  }
  if (address.kind !== 'tcp' || address.host === undefined || address.host === '') throw bad(`a TCP upstream needs HOST:PORT (${FORMS})`);
  if (address.port === 0) throw bad('port 0 is not a port an upstream listens on');
  return { protocol, address: { kind: 'tcp', host: address.host, port: address.port } };
}

/** The URL form of a target, for log lines. */
export function formatUpstream(target: UpstreamTarget): string {
  const a = target.address;
  if (a.kind === 'unix') return `${target.protocol}://unix:${a.path}`;
  const host = a.host ?? '127.0.0.1';
  return `${target.protocol}://${host.includes(':') ? `[${host}]` : host}:${a.port}`;
}
