/**
 * The process-level server: one listener per address, each a front of the registry
 * (fronts/registry.ts); unix socket files prepared and removed; graceful close; a log line when
 * file descriptors run out and connections are turned away at accept (descriptors.ts, CLI-10).
 */
import { chmodSync, existsSync, lstatSync, statSync, unlinkSync } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import * as net from 'node:net';
import type { Service } from './app.js';
import { DescriptorWatch } from './descriptors.js';
import { normalizeMount } from './environ.js';
import { ListenError } from './errors.js';
import { InflightCounter, trackSockets } from './fronts/common.js';
import { FRONTS, type FrontContext, type FrontName, type Listener, frontByName, frontFlags } from './fronts/registry.js';
import type { Logger } from './log.js';
import { type ListenAddress, type ServeOptions, formatAddress } from './options.js';
import { listenFds, resolveNamedFd } from './systemd.js';

export { ListenError } from './errors.js';
export type { FrontName } from './fronts/registry.js';

export interface ListenerSpec {
  front: FrontName;
  address: ListenAddress;
  /** What log lines call it, when not its address (a worker's inherited fd: the primary's address). */
  label?: string;
}

export interface BoundListener {
  front: FrontName;
  /** The address actually bound (port 0 resolved). */
  address: ListenAddress;
  server: net.Server;
  /** What log lines call it (ListenerSpec.label, else the address). */
  label: string;
}

/** Every listener the options ask for, in registry order. */
export function listenersOf(options: ServeOptions): ListenerSpec[] {
  return FRONTS.flatMap((f) => (options[f.name] ?? []).map((address) => ({ front: f.name, address })));
}

export interface GatewayOptions {
  /** False in cluster workers: the primary prepares and removes unix socket files. Default true. */
  manageSocketFiles?: boolean;
  /** Called for every 504 of --timeout, with the front's protocol (--stats counts them). */
  onTimeout?: FrontContext['onTimeout'];
  /** Several processes serve these listeners (E-16). Default: `options.workers > 1`. */
  multiprocess?: boolean;
}

export class Gateway {
  readonly listeners: BoundListener[] = [];
  private readonly opened: Listener[] = [];
  /** Every accepted socket until it closes: shutdown cuts what is left. */
  private readonly sockets = new Set<net.Socket>();
  private readonly track = trackSockets(this.sockets);
  private ownedSocketFiles: string[] = [];
  private closing: Promise<void> | undefined;
  private readonly descriptors: DescriptorWatch;
  /** Requests in flight in this process, all fronts together (--max-inflight), and how many were admitted. */
  readonly inflight: InflightCounter;

  constructor(
    private readonly service: Service,
    private readonly options: ServeOptions,
    private readonly logger: Logger,
    private readonly gatewayOptions: GatewayOptions = {},
  ) {
    this.inflight = new InflightCounter(options.maxInflight);
    this.descriptors = new DescriptorWatch(logger, {
      refusing: () => this.listeners.map((l) => `${l.front} on ${l.label}`).join(', '),
    });
  }

  private get manageSocketFiles(): boolean {
    return this.gatewayOptions.manageSocketFiles ?? true;
  }

  async listen(specs: ListenerSpec[] = listenersOf(this.options)): Promise<BoundListener[]> {
    if (specs.length === 0) throw new ListenError(`nothing to listen on: give at least one of ${frontFlags()} ADDR`);
    const ctx: FrontContext = {
      service: this.service,
      options: this.options,
      mount: normalizeMount(this.options.mount),
      logger: this.logger,
      inflight: this.inflight,
      multiprocess: this.gatewayOptions.multiprocess ?? this.options.workers > 1,
      ...(this.gatewayOptions.onTimeout === undefined ? {} : { onTimeout: this.gatewayOptions.onTimeout }),
    };
    for (const spec of specs) {
      const listener = frontByName(spec.front).load().listen(ctx);
      const server = listener.server;
      this.opened.push(listener);
      server.on('connection', this.track);
      const address = await this.bind(server, spec.address);
      const label = spec.label ?? formatAddress(address);
      this.listeners.push({ front: spec.front, address, server, label });
      this.logger.info(`listening: ${spec.front} on ${label}`);
    }
    this.descriptors.start();
    return this.listeners;
  }

  private async bind(server: net.Server, address: ListenAddress): Promise<ListenAddress> {
    if (address.kind === 'unix' && this.manageSocketFiles) await prepareSocketFile(address.path);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        // CLI-12: Node says EACCES (or ENOENT) for a socket path in a folder that does not exist.
        const missing = address.kind === 'unix' ? missingFolder(address.path) : undefined;
        if (missing !== undefined) reject(new ListenError(`cannot listen on ${formatAddress(address)}: the folder ${missing} does not exist`));
        else reject(new ListenError(`cannot listen on ${formatAddress(address)}: ${err.code ?? ''} ${err.message}`.trim()));
      };
      server.once('error', onError);
      const done = (): void => {
        server.off('error', onError);
        server.on('error', (err: NodeJS.ErrnoException) => {
          // CLI-10: rate-limited, not a line per refused connection; the listener goes on accepting.
          if (err.code === 'EMFILE' || err.code === 'ENFILE') this.descriptors.exhausted(err.code);
          else this.logger.error(`listener ${formatAddress(address)}: ${err.message}`);
        });
        resolve();
      };
      if (address.kind === 'unix') server.listen(address.path, done);
      else if (address.kind === 'fd') server.listen({ fd: address.fd }, done);
      else if (address.kind === 'systemd') server.listen({ fd: resolveNamedFd(address.name, listenFds()) }, done);
      else server.listen(address.port, address.host, done);
    });
    if (address.kind === 'unix') {
      if (this.manageSocketFiles) this.ownedSocketFiles.push(address.path);
      if (this.options.socketMode !== undefined) chmodSync(address.path, this.options.socketMode);
      return address;
    }
    const bound = server.address();
    if (bound !== null && typeof bound === 'object' && address.kind === 'tcp') return { kind: 'tcp', host: bound.address, port: bound.port };
    return address;
  }

  /**
   * Stops accepting, lets in-flight requests finish for up to `graceMs`, then cuts what is left.
   * Idle keep-alive connections are closed at once. Unix socket files are removed.
   */
  close(graceMs: number): Promise<void> {
    this.closing ??= this.doClose(graceMs);
    return this.closing;
  }

  private async doClose(graceMs: number): Promise<void> {
    this.descriptors.stop();
    const closed = this.listeners.map((l) => new Promise<void>((resolve) => l.server.close(() => resolve())));
    const idle = (): void => {
      for (const l of this.opened) l.closeIdle();
    };
    idle();
    const sweep = setInterval(idle, 50);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), graceMs);
    });
    const outcome = await Promise.race([Promise.all(closed).then(() => 'done' as const), deadline]);
    clearInterval(sweep);
    clearTimeout(timer);
    if (outcome === 'deadline') {
      this.logger.warn(`shutdown: ${this.sockets.size} connection(s) still busy after ${graceMs} ms; closing them`);
      for (const socket of this.sockets) socket.destroy();
      await Promise.all(closed);
    }
    this.removeSocketFiles();
  }

  /** Closes everything now (SIGINT). */
  async closeNow(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await this.close(0);
  }

  removeSocketFiles(): void {
    for (const path of this.ownedSocketFiles) {
      try {
        unlinkSync(path);
      } catch {
        // already gone
      }
    }
    this.ownedSocketFiles = [];
  }
}

/**
 * The folder of a unix socket path when it does not exist (CLI-12), else undefined. Abstract
 * socket names (Linux, a leading NUL or `@`) have no folder.
 */
function missingFolder(socketPath: string): string | undefined {
  if (socketPath.startsWith('\0') || socketPath.startsWith('@')) return undefined;
  const folder = dirname(resolvePath(socketPath));
  return existsSync(folder) ? undefined : folder;
}

/**
 * A unix socket path that exists is replaced only when it is a stale socket (nothing accepts on
 * it); a live socket or another kind of file is refused with a clear error, and a path in a
 * folder that does not exist is named as such (CLI-12).
 */
export async function prepareSocketFile(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    const missing = missingFolder(path);
    if (missing !== undefined) throw new ListenError(`cannot listen on unix:${path}: the folder ${missing} does not exist`);
    return; // does not exist
  }
  if (!isSocket) throw new ListenError(`cannot listen on unix:${path}: the path exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new ListenError(`cannot listen on unix:${path}: another server is listening on it`);
  try {
    if (statSync(path).isSocket()) unlinkSync(path);
  } catch {
    // raced with someone else removing it
  }
}
