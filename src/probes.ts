/**
 * What the parts behind an app report to the --stats metrics (src/metrics.ts): the cgi-bin host
 * (src/cgi-host/host.ts) and the upstream clients (src/upstream/). Types only: the core's
 * Service carries the probes without depending on either part.
 */

/** How a script run ended, as counted in {@link CgiStats}. */
export type CgiOutcome = 'ok' | 'error' | 'signal' | 'timeout' | 'killed' | 'spawn_error';

/** The cgi-bin host's figures since it was created. */
export interface CgiStats {
  /** Scripts running now. */
  running: number;
  /** Requests waiting for a slot now. */
  queued: number;
  spawned: number;
  /**
   * Runs that ended, by how: `ok` (exit 0), `error` (another exit status), `signal` (died from
   * one), `timeout` (killed by the host's headers, idle or total timeout), `killed` (by the host
   * for another reason: the client left, bad output, shutdown), `spawn_error` (never started).
   */
  exits: Record<CgiOutcome, number>;
  /** Requests answered 503 because no slot was free (queue full or waited too long). */
  refused: number;
}

/** One upstream of an upstream app, as the metrics see it. */
export interface UpstreamPeerStats {
  /** The upstream's URL (formatUpstream). */
  upstream: string;
  /** Connections open to it now (busy and idle). */
  connections: number;
  /** Of those, idle in the pool (FastCGI keep-conn; always 0 for SCGI and uwsgi). */
  idle: number;
  /** Failures counted against it since start (refused, timed out, reset or garbage before the answer). */
  failures: number;
  /** Left out of the rotation now for its failures. */
  down: boolean;
}

/** Read at every metrics collection; each is there when `serve` built that part. */
export interface ServiceProbes {
  cgi?: () => CgiStats;
  upstream?: () => UpstreamPeerStats[];
}
