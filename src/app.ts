/**
 * The application contract: PEP 3333's environ/start_response, in TypeScript.
 *
 *   const app: App = (environ, startResponse) => {
 *     startResponse('200 OK', [['Content-Type', 'text/plain']]);
 *     return ['Hello, World!\n'];
 *   };
 *
 * Every front (HTTP, FastCGI, SCGI, uwsgi, CGI) builds an Environ and calls the app through
 * `runExchange` in call.ts, which owns every response rule (R-1..R-13 in
 * docs/conformance.md §8). The head goes out with the first non-empty body chunk (R-4), or
 * earlier when the app calls `write('')` (R-12). Nothing here knows about sockets.
 */
import type { Readable } from 'node:stream';
import type { ListenerProtocol } from './fronts/registry.js';
import type { ServiceProbes } from './probes.js';
import { GatewireError, ServerErrorCode } from './errors.js';

/** What `gatewire.protocol` says: a listener's protocol, or `cgi` when run as a CGI program. */
export type Protocol = ListenerProtocol | 'cgi';

export type HeaderList = Array<[name: string, value: string]>;

/** A body chunk: bytes, or a string that is sent as UTF-8. */
export type Chunk = Uint8Array | string;

/**
 * The legacy write() callable returned by start_response (PEP 3333). `write('')` (an empty
 * chunk) before any body byte sends the head at once: the explicit flush for SSE and long polls
 * which PEP 3333 allows ("upon the application's first invocation of the write()
 * callable"). An empty chunk yielded by the body iterable never does: middleware yields those to
 * mean "nothing yet", and a head held back can still become a 500.
 */
export type Write = (chunk: Chunk) => void;

export type StartResponse = (status: string, headers: HeaderList, excInfo?: unknown) => Write;

/** A response body. A Node Readable is an AsyncIterable, so returning a stream works. */
export type Body = Iterable<Chunk> | AsyncIterable<Chunk>;

export type App = (environ: Environ, startResponse: StartResponse) => Body | Promise<Body>;

/** Where an app writes diagnostics (`environ['gatewire.errors']`); lines are tagged with the request id. */
export interface ErrorSink {
  write(message: string): void;
}

/**
 * The environ. CGI meta-variables are byte strings held as latin1 JS strings (E-1): one char per
 * byte, never UTF-8-decoded. Server-owned keys contain a dot, so no wire name can forge them (E-2).
 */
export interface Environ {
  REQUEST_METHOD: string;
  SCRIPT_NAME: string;
  PATH_INFO: string;
  QUERY_STRING: string;
  SERVER_NAME: string;
  SERVER_PORT: string;
  SERVER_PROTOCOL: string;
  CONTENT_TYPE?: string;
  CONTENT_LENGTH?: string;
  REMOTE_ADDR?: string;
  REMOTE_PORT?: string;
  REQUEST_URI?: string;

  /** The request body: reads end at CONTENT_LENGTH, or at the end of the stream when input_terminated. */
  'gatewire.input': Readable;
  'gatewire.errors': ErrorSink;
  'gatewire.url_scheme': 'http' | 'https';
  'gatewire.protocol': Protocol;
  /** Aborts when the client goes away, the web server aborts the request, or a timeout fires. */
  'gatewire.signal': AbortSignal;
  'gatewire.request_id': string;
  /** True when the body length is not known in advance and the stream ends at EOF (E-11). */
  'gatewire.input_terminated': boolean;
  'gatewire.run_once': boolean;
  'gatewire.multithread': boolean;
  'gatewire.multiprocess': boolean;
  /**
   * Only where the front can hand over its connection's bytes (the HTTP front), and only before
   * start_response: for a response the app frames itself (an NPH script's output, C-28). Resolves
   * true when the body the app returns will reach the client byte for byte, without a head of
   * ours, and the connection closes after it (`status` is what the access log reports); false, or
   * the key absent (the gateway fronts, whose web server frames every response, and the CGI
   * child), means start_response as usual.
   */
  'gatewire.raw_response'?: (status: number) => Promise<boolean>;

  [header: `HTTP_${string}`]: string | undefined;
  [key: string]: unknown;
}

/** The CGI part of an environ: what a wire carries, before the server-owned keys are added. */
export type CgiVars = Record<string, string>;

export type AppInterface = 'environ' | 'node' | 'fetch';

/** Thrown for a breach of the app contract (bad status, bad header, start_response misuse). */
export class AppContractError extends GatewireError {
  override name = 'AppContractError';
  override readonly code = ServerErrorCode.AppContract;
}

/** A Node-style handler: Express, Koa's `app.callback()`, `fastify.routing`, a plain function. */
export type NodeHandler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => unknown;

/** A fetch-style handler: Hono's `app.fetch`, or any `(Request) => Response`. */
export type FetchHandler = (request: Request, ...rest: never[]) => Response | Promise<Response>;

/**
 * An Upgrade handler (WebSocket): node:http's 'upgrade' listener, with its arguments — the
 * request, the connection (a net.Socket as a Duplex) and the bytes read after the head.
 * `ws`'s `wss.handleUpgrade(req, socket, head, cb)` and engine.io's
 * `engine.handleUpgrade(req, socket, head)` are such handlers.
 */
export type UpgradeHandler = (req: import('node:http').IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) => unknown;

/**
 * What a server serves: always an environ App (every front can call it), plus the original Node
 * handler when there is one, which the HTTP front hands Node's own req/res at no cost, and the
 * module's `upgrade` export when there is one: only the HTTP front (and --auto's HTTP) can
 * give a connection away, so only it calls that (H-15); without one an Upgrade request is a
 * plain request, as node:http does without an 'upgrade' listener (H-16).
 */
export interface Service {
  app: App;
  node?: NodeHandler;
  upgrade?: UpgradeHandler;
  interface: AppInterface;
  /** The framework the app was detected as (Express, Koa, Fastify, Hono), for the start-up line. */
  framework?: string;
  /** Figures of what serves behind the app (the cgi-bin host, upstreams) for the --stats metrics. */
  probes?: ServiceProbes;
}

