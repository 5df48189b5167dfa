/**
 * The one list of listener fronts. A front is a module under src/fronts/ exporting a FrontModule
 * (how to listen, how to take over a connection for --auto, how to recognize its first bytes);
 * its line here says what the rest of gatewire needs to know without loading it: the name (the
 * `--NAME ADDR` flag, the `GATEWIRE_NAME` variable, the listener kind in logs and the value of
 * `gatewire.protocol`), the help text, and its peer allow-list option. The CLI options, the
 * error strings, --auto's detection and the test harnesses all come from this list.
 *
 * Lines are light on purpose: `gatewire cgi` reads the option table on every CGI request and
 * must not load a network front (K-17), so a front's module is required only when one of its
 * listeners is opened (`load`).
 *
 * Adding a front: write src/fronts/NAME.ts exporting `front: FrontModule`, add its line here.
 */
import type { Socket, Server } from 'node:net';
import type { Service } from '../app.js';
import type { Logger } from '../log.js';
import type { ServeOptions } from '../options.js';
import type { InflightCounter } from './common.js';

/** What a listener needs from the server: the app, the options, the mount, the log, the shared in-flight cap. */
export interface FrontContext {
  service: Service;
  options: ServeOptions;
  /** `""` or `/prefix` (normalized). */
  mount: string;
  logger: Logger;
  /** Shared by every front of this process (F-16, H-14). */
  inflight: InflightCounter;
  /** Several processes serve the same listeners (`--workers`, spawn-fcgi -F): E-16. */
  multiprocess: boolean;
  /**
   * Optional: called once for each request answered 504 by --timeout (OP-10), with the front's
   * protocol (`http`, `fastcgi`, `scgi`, `uwsgi`; --auto reports the protocol it detected). For
   * metrics; must not throw (a throw is logged and ignored).
   */
  onTimeout?: (protocol: ListenerProtocol) => void;
}

/** Serves accepted sockets. `closeIdle` (graceful shutdown) closes what carries no request now. */
export interface ConnectionHandler {
  handle(socket: Socket): void;
  closeIdle(): void;
}

/** A listening front: the server to bind, and how to close its idle connections on shutdown. */
export interface Listener {
  server: Server;
  closeIdle(): void;
}

/** The first bytes of a connection: this protocol, surely not it, or too few bytes to tell. */
export type SignatureResult = 'match' | 'no' | 'need-more';

export interface FrontModule {
  /** A listener of this front. */
  listen(ctx: FrontContext): Listener;
  /** Connections handed over by --auto once `signature` matched. */
  connections?(ctx: FrontContext): ConnectionHandler;
  /** --auto: decides within DETECT_MAX_BYTES (protocols/detect.ts) whether a connection speaks this protocol. */
  signature?(ctx: FrontContext): (head: Uint8Array) => SignatureResult;
}

export interface FrontDescriptor {
  /** `--NAME ADDR`, `GATEWIRE_NAME`, the listener kind, and `gatewire.protocol` for a protocol front. */
  readonly name: string;
  /** How log lines and messages name it (`FastCGI`). */
  readonly title: string;
  /** Help text of `--NAME <addr>`. */
  readonly summary: string;
  /** A peer allow-list option `--NAME-allow <list>` (F-43). */
  readonly allow?: {
    readonly summary: string;
    /** An environment variable honoured when neither the flag nor GATEWIRE_NAME_ALLOW is set. */
    readonly fallbackEnv?: string;
  };
  /** False for a listener that speaks no protocol of its own (--auto). */
  readonly protocol: boolean;
  /** The front's module, loaded when a listener of it opens. */
  load(): FrontModule;
}

// require, not import(): a front is loaded only when it listens (K-17), and Node 20 loads
// CommonJS through import() with its export lexer (~50 ms).
export const FRONTS = [
  {
    name: 'http',
    title: 'HTTP',
    summary: 'serve HTTP/1.1 on ADDR (PORT, HOST:PORT, [V6]:PORT, unix:PATH, fd:N); repeatable; env takes a comma-separated list',
    protocol: true,
    load: () => (require('./http.js') as typeof import('./http.js')).front,
  },
  {
    name: 'fastcgi',
    title: 'FastCGI',
    summary: 'serve FastCGI on ADDR (nginx fastcgi_pass, Apache mod_proxy_fcgi; fd:0 when spawned by spawn-fcgi or mod_fcgid); repeatable',
    allow: {
      summary: 'comma list of addresses/CIDR ranges allowed to connect to FastCGI listeners (FCGI_WEB_SERVER_ADDRS is honoured too; default: any)',
      fallbackEnv: 'FCGI_WEB_SERVER_ADDRS',
    },
    protocol: true,
    load: () => (require('./fastcgi.js') as typeof import('./fastcgi.js')).front,
  },
  {
    name: 'scgi',
    title: 'SCGI',
    summary: 'serve SCGI on ADDR (nginx scgi_pass, Apache mod_proxy_scgi, lighttpd mod_scgi); repeatable',
    allow: { summary: 'comma list of addresses/CIDR ranges allowed to connect to SCGI listeners (default: any)' },
    protocol: true,
    load: () => (require('./scgi.js') as typeof import('./scgi.js')).front,
  },
  {
    name: 'uwsgi',
    title: 'uwsgi',
    summary: 'serve the uwsgi protocol on ADDR (nginx uwsgi_pass, Apache mod_proxy_uwsgi); repeatable',
    allow: { summary: 'comma list of addresses/CIDR ranges allowed to connect to uwsgi listeners (default: any)' },
    protocol: true,
    load: () => (require('./uwsgi.js') as typeof import('./uwsgi.js')).front,
  },
  {
    name: 'auto',
    title: 'auto',
    summary: 'serve HTTP, FastCGI, SCGI and uwsgi on one ADDR, told apart by the first bytes of each connection (allow-lists apply per protocol); repeatable',
    protocol: false,
    load: () => (require('./auto.js') as typeof import('./auto.js')).front,
  },
] as const satisfies readonly FrontDescriptor[];

type Entry = (typeof FRONTS)[number];

/** Every listener kind: `--http`, `--fastcgi`, … */
export type FrontName = Entry['name'];

/** The fronts that speak a protocol of their own (what --auto tells apart). */
export type ListenerProtocol = Extract<Entry, { protocol: true }>['name'];

/** The fronts with a peer allow-list option. */
export type AllowFront = Extract<Entry, { allow: object }>['name'];

/** The option key of a front's allow-list: `fastcgiAllow` for `--fastcgi-allow`. */
export type AllowKey = `${AllowFront}Allow`;

export const FRONT_NAMES: readonly FrontName[] = FRONTS.map((f) => f.name);

export function frontByName(name: FrontName): FrontDescriptor {
  return FRONTS.find((f) => f.name === name) as FrontDescriptor;
}

/** `--http, --fastcgi, --scgi, --uwsgi or --auto`, for messages. */
export function frontFlags(conjunction = 'or'): string {
  const flags = FRONT_NAMES.map((n) => `--${n}`);
  return flags.length < 2 ? flags.join('') : `${flags.slice(0, -1).join(', ')} ${conjunction} ${flags[flags.length - 1] as string}`;
}
