/**
 * The primary: what `gatewire serve` runs unless `--workers 0`. It binds every listener once and
 * holds the sockets (listen-sockets.ts), starts the workers (worker.ts) with the sockets as
 * inherited descriptors, and never serves a request itself. Because the sockets outlive every
 * worker, a worker can be replaced at any time without refusing a connection:
 *
 * - HUP reloads: a new set of workers loads the app again; once every one of them accepts, the
 *   old ones stop accepting and drain. A new set that fails to load is stopped and the old one
 *   keeps serving. This holds with one worker too.
 * - A worker that reaches --max-requests or --max-memory stops accepting and drains by itself
 *   (`retiring`); its replacement starts at once.
 * - A worker that dies is replaced (with a back-off when it dies right after starting); the
 *   connections it had accepted are lost, the ones still in the backlog are not.
 * - With --timeout, a worker whose heartbeat stops for longer (its event loop is blocked) is
 *   killed and replaced.
 *
 * Signals, as gunicorn's: HUP reload; TERM drain and exit 0; INT and QUIT stop now (130, 131);
 * TTIN and TTOU one worker more or less; USR1 and USR2 reopen log files (every worker does).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { unlinkSync } from 'node:fs';
import type { Logger } from './log.js';
import { type HeldSocket, bindAll, releaseAll } from './listen-sockets.js';
import type { ServeOptions } from './options.js';
import { removePidFile } from './privileges.js';
import { listenersOf } from './server.js';
import { WORKER_ENV, type PrimaryMessage, type WorkerInfo, type WorkerMessage } from './worker-env.js';

export type Readiness = 'starting' | 'ready' | 'reloading' | 'draining';
export type RestartReason = 'crash' | 'max_requests' | 'max_memory' | 'timeout' | 'reload';

/** What the supervisor tells whoever watches it (--stats, sd_notify); every hook is optional. */
export interface SupervisorHooks {
  /** The server became ready (first start or a reload done), is reloading, or is stopping. */
  state?(state: Readiness, detail: string): void;
  workerRestarted?(reason: RestartReason): void;
  reloaded?(result: 'ok' | 'failed'): void;
  workers?(count: number): void;
}

interface Worker {
  id: number;
  child: ChildProcess;
  pid: number;
  generation: number;
  state: 'starting' | 'ready' | 'retiring' | 'draining';
  startedAt: number;
  lastBeat: number;
  last: string | undefined;
  /** Why this worker was started (the reason its predecessor left), for /stats. */
  startReason: RestartReason | undefined;
  /** Set when the primary killed it or asked it to stop: its exit is no crash. */
  leaving: RestartReason | 'stop' | undefined;
  snapshots: Map<number, (data: unknown) => void>;
}

export interface WorkerStatus {
  pid: number;
  id: number;
  state: Worker['state'];
  startedAt: number;
  lastRestartReason: string | undefined;
}

export interface PrimaryRun {
  options: ServeOptions;
  logger: Logger;
  /** Resolves `systemd:NAME` listener addresses (systemd.ts). */
  resolveNamed: (name: string) => number;
  owner: { uid: number; gid: number } | undefined;
  hooks?: SupervisorHooks;
  /** Ends the process (after the logger is flushed). */
  exit: (code: number) => void;
}

/** How long a new worker may take to load the app and listen before it counts as failed. */
const START_TIMEOUT_MS = 60_000;
/** A worker that dies sooner than this after its start crashed "quickly" (the restart delay grows); one ready this long ends the streak. */
const STABLE_MS = 1000;

export class Supervisor {
  private held: HeldSocket[] = [];
  private readonly workers = new Map<number, Worker>();
  private nextId = 1;
  private generation = 0;
  private target: number;
  private readiness: Readiness = 'starting';
  /**
   * Workers that died within STABLE_MS of their start, one after another: the restart delay
   * doubles with each (100 ms, 200 ms, ... up to 5 s, OP-25). A worker that has served for
   * STABLE_MS since it was ready ends the streak.
   */
  private recentCrashes = 0;
  private appLine: string | undefined;
  private stopping = false;
  private reloadTimer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private snapshotSeq = 0;
  private readonly beatMs: number;
  private readonly hooks: SupervisorHooks;

  constructor(private readonly run: PrimaryRun) {
    this.target = run.options.workers;
    this.hooks = run.hooks ?? {};
    const t = run.options.timeout;
    this.beatMs = t > 0 ? Math.min(1000, Math.max(50, Math.floor(t / 4))) : 0;
  }

  get state(): Readiness {
    return this.readiness;
  }

  /** Binds (throws ListenError) and starts the workers; resolves once every one is ready. */
  async start(): Promise<void> {
    const { options } = this.run;
    this.held = await bindAll(listenersOf(options), { socketMode: options.socketMode, owner: this.run.owner, resolveNamed: this.run.resolveNamed });
    for (let i = 0; i < this.target; i++) this.spawn(undefined);
    if (this.beatMs > 0) {
      this.watchdog = setInterval(() => this.checkBeats(), this.beatMs);
      this.watchdog.unref();
    }
  }

  /** Every worker, for /stats. */
  status(): WorkerStatus[] {
    return [...this.workers.values()].map((w) => ({ pid: w.pid, id: w.id, state: w.state, startedAt: w.startedAt, lastRestartReason: w.startReason }));
  }

  /** Asks every live worker for its snapshot (--stats); a worker that does not answer in 1 s is left out. */
  async snapshots(): Promise<Array<{ pid: number; data: unknown }>> {
    const live = [...this.workers.values()].filter((w) => w.state !== 'starting' && w.child.connected);
    const answers = await Promise.all(
      live.map(
        (w) =>
          new Promise<{ pid: number; data: unknown } | undefined>((resolve) => {
            const n = ++this.snapshotSeq;
            const timer = setTimeout(() => {
              w.snapshots.delete(n);
              resolve(undefined);
            }, 1000);
            w.snapshots.set(n, (data) => {
              clearTimeout(timer);
              resolve({ pid: w.pid, data });
            });
            this.tell(w, { t: 'snapshot', n });
          }),
      ),
    );
    return answers.filter((a): a is { pid: number; data: unknown } => a !== undefined);
  }

  private spawn(reason: RestartReason | undefined): Worker {
    const { options, logger } = this.run;
    const id = this.nextId++;
    const jitter = options.maxRequests > 0 && options.maxRequestsJitter > 0 ? Math.floor(Math.random() * (options.maxRequestsJitter + 1)) : 0;
    const info: WorkerInfo = {
      id,
      announce: this.generation === 0 && id <= this.target && reason === undefined,
      listeners: this.held.map((h, i) => ({ front: h.front, fd: 4 + i, label: h.label })),
      maxRequests: options.maxRequests > 0 ? options.maxRequests + jitter : 0,
      beatMs: this.beatMs,
    };
    const env: NodeJS.ProcessEnv = { ...process.env, [WORKER_ENV]: JSON.stringify(info) };
    // systemd's variables are the primary's: a worker (or a CGI script it runs) must not see them.
    for (const name of ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES', 'NOTIFY_SOCKET']) delete env[name];
    const child = fork(process.argv[1] as string, process.argv.slice(2), {
      stdio: ['inherit', 'inherit', 'inherit', 'ipc', ...this.held.map((h) => h.fd)],
      env,
      // A debugger flag of the primary would make every worker race for its port.
      execArgv: process.execArgv.filter((a) => !/^--(inspect|debug)/.test(a)),
    });
    const worker: Worker = {
      id,
      child,
      pid: child.pid ?? 0,
      generation: this.generation,
      state: 'starting',
      startedAt: Date.now(),
      lastBeat: Date.now(),
      last: undefined,
      startReason: reason,
      leaving: undefined,
      snapshots: new Map(),
    };
    this.workers.set(worker.pid, worker);
    // Said at debug level on the first start: a usage error in the app stays one line (the worker's).
    const starting = `worker ${worker.pid} (#${id}) starting${reason === undefined ? '' : ` (${reason.replace('_', ' ')})`}`;
    if (this.readiness === 'starting') logger.debug(starting);
    else logger.info(starting);
    child.on('message', (msg: WorkerMessage) => this.onMessage(worker, msg));
    child.on('exit', (code, signal) => this.onExit(worker, code, signal));
    child.on('error', (err) => logger.error(`worker ${worker.pid}: ${err.message}`));
    const startTimer = setTimeout(() => {
      if (worker.state === 'starting') {
        logger.error(`worker ${worker.pid} not ready after ${START_TIMEOUT_MS} ms; killing it`);
        worker.child.kill('SIGKILL');
      }
    }, START_TIMEOUT_MS);
    startTimer.unref();
    return worker;
  }

  private tell(w: Worker, message: PrimaryMessage): void {
    if (w.child.connected) w.child.send(message, (err) => err && this.run.logger.debug(`worker ${w.pid}: ${err.message}`));
  }

  private onMessage(w: Worker, msg: WorkerMessage): void {
    const { logger } = this.run;
    switch (msg.t) {
      case 'ready': {
        w.state = w.state === 'starting' ? 'ready' : w.state;
        w.lastBeat = Date.now();
        if (this.readiness === 'starting') logger.debug(`worker ${w.pid} ready`);
        else logger.info(`worker ${w.pid} ready`);
        if (this.recentCrashes > 0) {
          setTimeout(() => {
            if (this.workers.get(w.pid) === w) this.recentCrashes = 0;
          }, STABLE_MS).unref();
        }
        if (this.appLine === undefined && msg.app !== undefined) {
          this.appLine = msg.app;
          logger.info(msg.app); // CLI-13: once per server
        }
        this.progress();
        break;
      }
      case 'beat':
        w.lastBeat = Date.now();
        w.last = msg.last;
        break;
      case 'retiring':
        if (w.state === 'ready') {
          w.state = 'retiring';
          w.leaving = msg.reason;
          if (!this.stopping) {
            this.hooks.workerRestarted?.(msg.reason);
            this.spawn(msg.reason);
          }
        }
        break;
      case 'snapshot':
        w.snapshots.get(msg.n)?.(msg.data);
        w.snapshots.delete(msg.n);
        break;
    }
  }

  /** Called whenever a worker became ready: ends the start-up or a reload. */
  private progress(): void {
    if (this.stopping) return;
    const current = [...this.workers.values()].filter((w) => w.generation === this.generation && w.state !== 'retiring' && w.state !== 'draining');
    if (current.some((w) => w.state === 'starting')) return;
    if (this.readiness === 'starting') {
      this.readiness = 'ready';
      const pids = current.map((w) => w.pid).join(', ');
      this.run.logger.info(`primary ${process.pid}: ${current.length} worker${current.length === 1 ? '' : 's'} ready (${pids})`);
      this.hooks.state?.('ready', `${current.length} workers`);
    } else if (this.readiness === 'reloading' && current.length >= this.target) {
      clearTimeout(this.reloadTimer);
      for (const old of this.workers.values()) {
        if (old.generation < this.generation && (old.state === 'ready' || old.state === 'starting')) this.retire(old, 'reload');
      }
      this.hooks.reloaded?.('ok');
      this.setReadiness('ready', `reload done: ${current.length} new worker${current.length === 1 ? '' : 's'}`);
    }
    this.hooks.workers?.(this.serving().length);
  }

  private serving(): Worker[] {
    return [...this.workers.values()].filter((w) => w.state === 'ready');
  }

  private setReadiness(state: Readiness, detail: string): void {
    this.readiness = state;
    this.run.logger.info(`${state === 'ready' ? 'ready' : state}: ${detail}`);
    this.hooks.state?.(state, detail);
  }

  /** Asks a worker to stop accepting and finish; SIGKILL when it overstays --shutdown-timeout. */
  private retire(w: Worker, why: RestartReason | 'stop'): void {
    if (w.state === 'draining') return;
    w.state = 'draining';
    w.leaving = why;
    this.tell(w, { t: 'drain' });
    const deadline = setTimeout(() => {
      if (this.workers.has(w.pid)) {
        this.run.logger.warn(`worker ${w.pid} still busy ${this.run.options.shutdownTimeout} ms after it was asked to stop; killing it`);
        w.child.kill('SIGKILL');
      }
    }, this.run.options.shutdownTimeout + 1000);
    deadline.unref();
  }

  private onExit(w: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    const { logger } = this.run;
    this.workers.delete(w.pid);
    for (const reply of w.snapshots.values()) reply(undefined);
    const how = signal ?? `code ${code}`;
    if (this.stopping) {
      if (!this.quiet) logger.info(`worker ${w.pid} stopped (${how})`);
      if (this.workers.size === 0) this.finish();
      return;
    }
    if (w.leaving !== undefined && w.leaving !== 'timeout') {
      logger.info(`worker ${w.pid} stopped (${how}; ${w.leaving.replace('_', ' ')})`);
      this.hooks.workers?.(this.serving().length);
      return;
    }
    if (w.state === 'starting' && code === 2) {
      // Exit 2 is a usage error: the app cannot be loaded, the options are wrong. Retrying
      // would fail the same way, forever.
      if (this.readiness === 'starting') {
        // The worker said why, in one line; the server fails the way a single process does.
        this.quiet = true;
        this.stopAll('kill', 2);
        return;
      }
      if (this.readiness === 'reloading') {
        this.failReload(`a new worker could not load the app (worker ${w.pid}, exit 2)`);
        return;
      }
    }
    const reason: RestartReason = w.leaving === 'timeout' ? 'timeout' : 'crash';
    const quick = Date.now() - w.startedAt < STABLE_MS;
    this.recentCrashes = quick ? this.recentCrashes + 1 : 0;
    const delay = reason === 'timeout' ? 0 : Math.min(100 * 2 ** this.recentCrashes, 5000);
    logger.error(`worker ${w.pid} exited (${how}${reason === 'timeout' ? ', killed by the watchdog' : ''}); starting a new one in ${delay} ms`);
    this.hooks.workerRestarted?.(reason);
    this.hooks.workers?.(this.serving().length);
    const generation = w.generation;
    setTimeout(() => {
      // A worker of a set a reload already replaced is not brought back.
      if (!this.stopping && generation === this.generation && this.countOf(generation) < this.target) this.spawn(reason);
    }, delay);
  }

  private countOf(generation: number): number {
    return [...this.workers.values()].filter((w) => w.generation === generation && (w.state === 'starting' || w.state === 'ready')).length;
  }

  private failReload(why: string): void {
    clearTimeout(this.reloadTimer);
    const failed = this.generation;
    for (const w of this.workers.values()) if (w.generation === failed) this.retire(w, 'stop');
    // The old set serves on as the current one; none of it was touched.
    this.generation = Math.max(0, ...[...this.workers.values()].filter((w) => w.generation < failed).map((w) => w.generation));
    this.run.logger.error(`reload failed: ${why}; the old workers keep serving`);
    this.hooks.reloaded?.('failed');
    this.setReadiness('ready', 'reload failed, old workers serving');
  }

  /** HUP: a new set of workers, then the old set drains. */
  reload(): void {
    const { logger } = this.run;
    if (this.stopping) return;
    if (this.readiness !== 'ready') {
      logger.warn(`SIGHUP: ignored while ${this.readiness}`);
      return;
    }
    this.generation++;
    this.setReadiness('reloading', `SIGHUP: starting ${this.target} new worker${this.target === 1 ? '' : 's'}`);
    for (let i = 0; i < this.target; i++) this.spawn('reload');
    this.reloadTimer = setTimeout(() => this.failReload(`the new workers were not ready in ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    this.reloadTimer.unref();
  }

  /** TTIN/TTOU. */
  resize(delta: 1 | -1): void {
    if (this.stopping) return;
    const next = Math.max(1, this.target + delta);
    if (next === this.target) {
      this.run.logger.info('SIGTTOU: already at 1 worker');
      return;
    }
    this.target = next;
    this.run.logger.info(`${delta > 0 ? 'SIGTTIN' : 'SIGTTOU'}: ${next} worker${next === 1 ? '' : 's'}`);
    if (delta > 0) this.spawn(undefined);
    else {
      const newest = this.serving().filter((w) => w.generation === this.generation).sort((a, b) => b.startedAt - a.startedAt)[0];
      if (newest !== undefined) this.retire(newest, 'stop');
    }
  }

  reopenLogs(signal: string): void {
    this.run.logger.info(`${signal}: reopening log files`);
    this.run.logger.reopen?.();
    for (const w of this.workers.values()) this.tell(w, { t: 'reopen-logs' });
  }

  /**
   * TERM. With --drain-delay, the server first says it is going (/readyz 503, STOPPING=1) and
   * serves on, listeners open, for that long: a load balancer or Kubernetes takes it out of
   * rotation before new connections would be refused (OP-29). Then every worker drains. A
   * second TERM during the delay drains at once.
   */
  terminate(): void {
    if (this.stopping) return;
    const delay = this.run.options.drainDelay;
    if (delay > 0 && this.delayTimer === undefined) {
      clearTimeout(this.reloadTimer);
      this.setReadiness('draining', `serving on for ${delay} ms (--drain-delay), then finishing in-flight requests`);
      this.delayTimer = setTimeout(() => this.stopAll('drain', 0), delay);
      return;
    }
    this.stopAll('drain', 0);
  }

  private delayTimer: NodeJS.Timeout | undefined;

  /** TERM's drain (every worker finishes its requests), INT/QUIT (now), or a failed start (kill). */
  stopAll(how: 'drain' | 'now' | 'kill', code: number): void {
    if (this.stopping && how !== 'now') return;
    const wasStopping = this.stopping;
    this.stopping = true;
    this.exitCode = Math.max(this.exitCode, code);
    clearTimeout(this.reloadTimer);
    clearTimeout(this.delayTimer);
    clearInterval(this.watchdog);
    // The server is going away: new connections are refused from now on, not left waiting in a
    // backlog nobody will accept from (the workers close their copies as they start to drain).
    if (!wasStopping) this.releaseSockets();
    if (!wasStopping && !this.quiet) this.setReadiness('draining', how === 'drain' ? `finishing in-flight requests (up to ${this.run.options.shutdownTimeout} ms)` : 'stopping now');
    for (const w of this.workers.values()) {
      if (how === 'drain') this.retire(w, 'stop');
      else if (how === 'now') w.child.kill('SIGINT');
      else w.child.kill('SIGKILL');
    }
    if (how === 'now') {
      const hard = setTimeout(() => {
        for (const w of this.workers.values()) w.child.kill('SIGKILL');
      }, 1000);
      hard.unref();
    }
    if (this.workers.size === 0) this.finish();
  }

  private exitCode = 0;
  /** A failed first start: the worker's own line is the whole report. */
  private quiet = false;
  private finished = false;

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.releaseSockets();
    if (this.run.options.pidFile !== undefined) removePidFile(this.run.options.pidFile);
    if (!this.quiet) this.run.logger.info(`primary ${process.pid}: stopped`);
    this.run.exit(this.exitCode);
  }

  private releaseSockets(): void {
    releaseAll(this.held);
    for (const h of this.held) {
      if (h.socketFile === undefined) continue;
      try {
        unlinkSync(h.socketFile);
      } catch {
        // libuv removed it with the handle
      }
    }
    this.held = [];
  }

  /** The watchdog (--timeout): a worker whose heartbeat stopped has its event loop blocked. */
  private checkBeats(): void {
    const now = Date.now();
    const limit = this.run.options.timeout + 2 * this.beatMs;
    for (const w of this.workers.values()) {
      if (w.state === 'starting' || w.leaving === 'timeout') continue;
      if (now - w.lastBeat > limit) {
        w.leaving = 'timeout';
        this.run.logger.error(`worker ${w.pid}: event loop blocked for over ${this.run.options.timeout} ms (--timeout); killing it (last request started: ${w.last ?? 'none'})`);
        w.child.kill('SIGKILL');
      }
    }
  }
}
