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

/**
 * Binds every listener, or throws a ListenError naming the first that failed (after closing the
 * others). TCP listeners go in two steps. A bare bind succeeds on a port another server listens
 * on (SO_REUSEADDR) and only listen() would fail, which the primary must not call; so a
 * throw-away server first listens on each address (finding a conflict, and picking the port for
 * port 0), all of them at once so that two port-0 listeners cannot be given the same port; then
 * they close and the handles are bound on those ports.
 */
export async function bindAll(specs: readonly ListenerSpec[], opts: BindOptions): Promise<HeldSocket[]> {
  const held: HeldSocket[] = [];
  const probes: Array<{ spec: ListenerSpec; ip: string | undefined; server: net.Server; port: number }> = [];
  try {
    for (const spec of specs) {
      const address = spec.address;
      if (address.kind !== 'tcp') continue;
      let ip = address.host;
      if (ip !== undefined && isIP(ip) === 0) {
        try {
          ip = (await lookup(ip)).address;
        } catch (err) {
          throw new ListenError(`cannot listen on ${formatAddress(address)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
      }
      const entry = { spec, ip, server: net.createServer(), port: 0 };
      probes.push(entry);
      entry.port = await probe(entry.server, ip, address.port, address);
    }
    const ports = new Map<ListenerSpec, { ip: string | undefined; port: number }>(probes.map((p) => [p.spec, { ip: p.ip, port: p.port }]));
    await Promise.all(probes.map((p) => new Promise<void>((resolve) => p.server.close(() => resolve()))));
    probes.length = 0;
    for (const spec of specs) held.push(await bindOne(spec.front, spec.address, opts, ports.get(spec)));
  } catch (err) {
    for (const p of probes) p.server.close();
    releaseAll(held);
    throw err;
  }
  return held;
}

async function bindOne(front: ListenerSpec['front'], address: ListenAddress, opts: BindOptions, tcp?: { ip: string | undefined; port: number }): Promise<HeldSocket> {
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
  // As net.Server.listen(port, host): no host = every address (IPv6 with v4-mapped, IPv4
  // where there is no IPv6). The name was looked up and the port probed by bindAll.
  const ip = tcp?.ip;
  const port = tcp?.port ?? address.port;
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

/** Listens on the address with `server` (left open: the caller closes it) and gives the port. */
function probe(server: net.Server, host: string | undefined, port: number, address: ListenAddress): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new ListenError(`cannot listen on ${formatAddress(address)}: ${err.code ?? ''} ${err.message}`.trim())));
    server.listen({ host, port, exclusive: true }, () => {
      const bound = server.address();
      resolve(typeof bound === 'object' && bound !== null ? bound.port : port);
    });
  });
}

/** Closes the sockets the primary made (inherited descriptors stay open: systemd owns them). */
export function releaseAll(held: readonly HeldSocket[]): void {
  for (const h of held) h.handle?.close();
}
