/**
 * The primary's listening sockets: bound once at start, held for the whole life of the process,
 * and handed to every worker as an inherited descriptor (the way systemd hands sockets to a
 * service). Workers come and go (reload, recycling, crashes); the sockets stay, so a connection
 * that arrives while no worker accepts waits in the kernel's backlog instead of being refused,
 * and a unix socket path never disappears.
 *
 * The primary must hold a bound socket without accepting on it: a net.Server would accept. So
 * it makes the bare handle with net._createServerHandle, the same call node:cluster's primary
 * uses for its shared handles (bound, not listening); the first worker's listen() turns it into
 * a listening socket. That is an internal of node:net, stable since Node 0.x; test/supervisor
 * exercises it on every run.
 */
import { chmodSync, chownSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import * as net from 'node:net';
import { getSystemErrorName } from 'node:util';
import { ListenError } from './errors.js';
import { type ListenAddress, formatAddress } from './options.js';
import { prepareSocketFile, type ListenerSpec } from './server.js';

/** A libuv handle (TCPWrap or PipeWrap) as node:net makes it. */
interface ServerHandle {
  readonly fd: number;
  getsockname?(out: Record<string, unknown>): number;
  close(): void;
}

type CreateServerHandle = (address: string | null, port: number, addressType: number, fd?: number, flags?: number) => ServerHandle | number;

const createServerHandle = (net as unknown as { _createServerHandle: CreateServerHandle })._createServerHandle;

export interface HeldSocket {
  front: ListenerSpec['front'];
  /** The descriptor in the primary. */
  fd: number;
  /** What log lines say: the address with its port resolved. */
  label: string;
  /** A unix socket file the primary created and removes at exit. */
  socketFile: string | undefined;
  handle: ServerHandle | undefined;
}

export interface BindOptions {
  socketMode: number | undefined;
  /** Unix socket files are given to this uid/gid (--user/--group). */
  owner: { uid: number; gid: number } | undefined;
  /** Resolves a `systemd:NAME` address to its inherited descriptor. */
  resolveNamed: (name: string) => number;
}

/** Binds every listener, or throws a ListenError naming the first that failed (after closing the others). */
export async function bindAll(specs: readonly ListenerSpec[], opts: BindOptions): Promise<HeldSocket[]> {
  const held: HeldSocket[] = [];
  try {
    for (const spec of specs) held.push(await bindOne(spec.front, spec.address, opts));
  } catch (err) {
    releaseAll(held);
    throw err;
  }
  return held;
}

async function bindOne(front: ListenerSpec['front'], address: ListenAddress, opts: BindOptions): Promise<HeldSocket> {
  const failed = (code: number): ListenError => new ListenError(`cannot listen on ${formatAddress(address)}: ${getSystemErrorName(code)}`);
  if (address.kind === 'fd') return { front, fd: address.fd, label: formatAddress(address), socketFile: undefined, handle: undefined };
  if (address.kind === 'systemd') {
    const fd = opts.resolveNamed(address.name);
    return { front, fd, label: `${formatAddress(address)} (fd ${fd})`, socketFile: undefined, handle: undefined };
  }
  if (address.kind === 'unix') {
    await prepareSocketFile(address.path);
    const handle = createServerHandle(address.path, -1, -1);
    if (typeof handle === 'number') throw failed(handle);
    if (opts.socketMode !== undefined) chmodSync(address.path, opts.socketMode);
    if (opts.owner !== undefined) chownSync(address.path, opts.owner.uid, opts.owner.gid);
    return { front, fd: handle.fd, label: formatAddress(address), socketFile: address.path, handle };
  }
  // As net.Server.listen(port, host): a name is looked up first; no host = every address (IPv6
  // with v4-mapped, IPv4 where there is no IPv6).
  let ip = address.host;
  if (ip !== undefined && isIP(ip) === 0) {
    try {
      ip = (await lookup(ip)).address;
    } catch (err) {
      throw new ListenError(`cannot listen on ${formatAddress(address)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  // A bare bind succeeds on a port another server listens on (SO_REUSEADDR); only listen()
  // would fail, and the primary must not listen. So a throw-away server tries the address first
  // (and picks the port for port 0).
  const port = await probe(ip, address.port, address);
  let handle: ServerHandle | number;
  if (ip === undefined) {
    handle = createServerHandle('::', port, 6);
    if (typeof handle === 'number') handle = createServerHandle('0.0.0.0', port, 4);
  } else handle = createServerHandle(ip, port, isIP(ip));
  if (typeof handle === 'number') throw failed(handle);
  const bound: Record<string, unknown> = {};
  handle.getsockname?.(bound);
  const label = formatAddress({ kind: 'tcp', host: String(bound.address ?? ip ?? '::'), port: Number(bound.port ?? port) });
  return { front, fd: handle.fd, label, socketFile: undefined, handle };
}

function probe(host: string | undefined, port: number, address: ListenAddress): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => reject(new ListenError(`cannot listen on ${formatAddress(address)}: ${err.code ?? ''} ${err.message}`.trim())));
    server.listen({ host, port, exclusive: true }, () => {
      const bound = server.address();
      server.close(() => resolve(typeof bound === 'object' && bound !== null ? bound.port : port));
    });
  });
}

/** Closes the sockets the primary made (inherited descriptors stay open: systemd owns them). */
export function releaseAll(held: readonly HeldSocket[]): void {
  for (const h of held) h.handle?.close();
}
