/**
 * `--upstream URL`: which application server gatewire forwards every request to, and over which
 * protocol.
 *
 *   scgi://127.0.0.1:9000      scgi://unix:/run/app.sock
 *   uwsgi://[::1]:3031         uwsgi://unix:/run/uwsgi.sock
 *
 * FastCGI (php-fpm) is not built yet: `fastcgi://` is refused with a message saying what exists.
 */
import { OptionError, parseAddress } from '../options.js';

/** Where an upstream listens: the TCP and unix forms of a listen address (src/options.ts). */
export type UpstreamAddress = { kind: 'tcp'; host: string | undefined; port: number } | { kind: 'unix'; path: string };

export type UpstreamProtocol = 'scgi' | 'uwsgi';

/** A parsed `--upstream` value. */
export interface UpstreamTarget {
  protocol: UpstreamProtocol;
  address: UpstreamAddress;
}

const FORMS = 'scgi://HOST:PORT, scgi://unix:/PATH, uwsgi://HOST:PORT or uwsgi://unix:/PATH';

/** Parses an upstream URL; throws OptionError naming the accepted forms. */
export function parseUpstreamUrl(text: string): UpstreamTarget {
  const s = text.trim();
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/s.exec(s);
  const bad = (why: string): OptionError => new OptionError(`invalid upstream ${JSON.stringify(text)}: ${why}`);
  if (m === null) throw bad(`expected ${FORMS}`);
  const scheme = (m[1] as string).toLowerCase();
  const rest = m[2] as string;
  if (scheme === 'fastcgi' || scheme === 'fcgi') {
    throw bad(`FastCGI upstreams (php-fpm) are not built yet; the upstream clients that exist are scgi:// and uwsgi:// (${FORMS})`);
  }
  if (scheme !== 'scgi' && scheme !== 'uwsgi') throw bad(`unknown protocol ${JSON.stringify(scheme)}: expected ${FORMS}`);
  if (rest.startsWith('unix:')) {
    const path = rest.slice(5);
    if (path === '') throw bad('unix: needs a socket path');
    return { protocol: scheme, address: { kind: 'unix', path } };
  }
  let address;
  try {
    address = parseAddress(rest);
  } catch (err) {
    if (err instanceof OptionError) throw bad(`expected ${FORMS}`);
    throw err;
  }
  if (address.kind !== 'tcp' || address.host === undefined || address.host === '') throw bad(`a TCP upstream needs HOST:PORT (${FORMS})`);
  if (address.port === 0) throw bad('port 0 is not a port an upstream listens on');
  return { protocol: scheme, address: { kind: 'tcp', host: address.host, port: address.port } };
}

/** The URL form of a target, for log lines. */
export function formatUpstream(target: UpstreamTarget): string {
  const a = target.address;
  if (a.kind === 'unix') return `${target.protocol}://unix:${a.path}`;
  const host = a.host ?? '127.0.0.1';
  return `${target.protocol}://${host.includes(':') ? `[${host}]` : host}:${a.port}`;
}
