/**
 * Several `--upstream` URLs: round robin with passive failure marking, as nginx's `server ...
 * max_fails=1 fail_timeout=10s` does. A peer that fails `maxFails` times within `failTimeout`
 * (a refused or timed-out connection, a 502/504 before the response head) is left out for
 * `failTimeout`; any success clears its count. When every peer is out, the one due back first
 * is tried anyway (a request is better served by a peer that may be back than refused).
 *
 * A connection that cannot be made is tried on the next peer (nothing reached the upstream, so
 * this is safe for every method, like nginx's `proxy_next_upstream error timeout` before a byte
 * is sent); a failure after the request went out is not retried on another peer.
 */
import type { UpstreamTarget } from './address.js';
import { formatUpstream } from './address.js';

export interface GroupOptions {
  /** Failures within failTimeout that mark a peer down. @default 1 */
  maxFails?: number;
  /** The window failures are counted in, and how long a peer stays down. ms. @default 10000 */
  failTimeout?: number;
}

export const GROUP_DEFAULTS = { maxFails: 1, failTimeout: 10_000 } as const;

/** One upstream of a group and its failure record. */
export class Peer {
  readonly label: string;
  fails = 0;
  /** When the current count of failures started. */
  firstFail = 0;
  /** Left out of the rotation until this time (ms since the epoch); 0 = live. */
  downUntil = 0;
  /** Failures since start (the --stats metric), never reset. */
  failures = 0;
  /** Connections open to this peer now, where nothing else counts them (SCGI, uwsgi). */
  open = 0;
  constructor(readonly target: UpstreamTarget) {
    this.label = formatUpstream(target);
  }
}

export class UpstreamGroup {
  readonly peers: readonly Peer[];
  private readonly maxFails: number;
  private readonly failTimeout: number;
  private cursor = 0;

  constructor(targets: readonly UpstreamTarget[], options: GroupOptions = {}) {
    if (targets.length === 0) throw new TypeError('an upstream group needs at least one upstream');
    this.peers = targets.map((t) => new Peer(t));
    this.maxFails = options.maxFails ?? GROUP_DEFAULTS.maxFails;
    this.failTimeout = options.failTimeout ?? GROUP_DEFAULTS.failTimeout;
  }

  /** The next peer to try, round robin over the live ones not yet `tried`; undefined once every peer was tried. */
  pick(tried?: ReadonlySet<Peer>, now = Date.now()): Peer | undefined {
    const n = this.peers.length;
    if (n === 1) return tried?.has(this.peers[0] as Peer) === true ? undefined : this.peers[0];
    let soonest: Peer | undefined;
    for (let i = 0; i < n; i++) {
      const peer = this.peers[(this.cursor + i) % n] as Peer;
      if (tried?.has(peer) === true) continue;
      if (peer.downUntil <= now) {
        this.cursor = (this.cursor + i + 1) % n;
        return peer;
      }
      if (soonest === undefined || peer.downUntil < soonest.downUntil) soonest = peer;
    }
    return soonest;
  }

  /** Counts a failure; true when it marked the peer down. */
  failed(peer: Peer, now = Date.now()): boolean {
    peer.failures++;
    if (now - peer.firstFail > this.failTimeout) peer.fails = 0;
    if (peer.fails === 0) peer.firstFail = now;
    peer.fails++;
    if (peer.fails < this.maxFails || this.peers.length === 1) return false;
    peer.downUntil = now + this.failTimeout;
    peer.fails = 0;
    return true;
  }

  succeeded(peer: Peer): void {
    if (peer.fails !== 0 || peer.downUntil !== 0) {
      peer.fails = 0;
      peer.downUntil = 0;
    }
  }
}
