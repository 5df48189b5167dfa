/**
 * The upstream clients: gatewire as the web server in front of an application server.
 *
 *   upstreamApp(parseUpstreamUrl('fastcgi+unix:///run/php/php8.2-fpm.sock'))   // php-fpm, pooled keep-conn
 *   upstreamApp([parseUpstreamUrl('uwsgi://10.0.0.1:3031'), parseUpstreamUrl('uwsgi://10.0.0.2:3031')])  // round robin
 *
 * FastCGI: src/upstream/fastcgi.ts (a connection pool per upstream). SCGI and uwsgi:
 * src/upstream/single-request.ts (one connection per request: neither protocol has keep-alive).
 * Several targets make a round-robin group with passive failure marking (src/upstream/group.ts).
 */
import type { UpstreamTarget } from './address.js';
import type { UpstreamApp } from './common.js';
import { fastcgiUpstream, type FastcgiUpstreamOptions } from './fastcgi.js';
import { singleRequestUpstream } from './single-request.js';

export { formatUpstream, parseUpstreamUrl, type UpstreamAddress, type UpstreamProtocol, type UpstreamTarget } from './address.js';
export { UpstreamError, UPSTREAM_DEFAULTS, type UpstreamApp, type UpstreamOptions } from './common.js';
export { FASTCGI_DEFAULTS, fastcgiUpstream, type FastcgiUpstreamOptions } from './fastcgi.js';
export { scgiUpstream, singleRequestUpstream, uwsgiUpstream } from './single-request.js';

/** Options of {@link upstreamApp}: the FastCGI ones are ignored by SCGI and uwsgi. */
export type UpstreamAppOptions = FastcgiUpstreamOptions;

/** The App that forwards every request to `targets` (one protocol; several = round robin). */
export function upstreamApp(targets: UpstreamTarget | readonly UpstreamTarget[], options: UpstreamAppOptions = {}): UpstreamApp {
  const list = Array.isArray(targets) ? (targets as readonly UpstreamTarget[]) : [targets as UpstreamTarget];
  if (list.length === 0) throw new TypeError('upstreamApp needs at least one upstream');
  const protocol = (list[0] as UpstreamTarget).protocol;
  for (const t of list) if (t.protocol !== protocol) throw new TypeError(`several upstreams must speak one protocol: ${protocol} and ${t.protocol} given`);
  return protocol === 'fastcgi' ? fastcgiUpstream(list, options) : singleRequestUpstream(list, options);
}
