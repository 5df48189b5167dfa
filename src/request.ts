/**
 * What every front attaches to a request besides its CGI variables: an id, an abort signal
 * created only when the app asks for it (an AbortController costs microseconds, far more than
 * the rest of a hello request), and the error sink that tags app diagnostics with the id.
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { CgiVars, Environ, ErrorSink, Protocol } from './app.js';
import type { Logger } from './log.js';

const idPrefix = randomBytes(3).toString('hex');
let idCounter = 0;

/** A process-unique request id: a random per-process prefix and a counter. */
export function newRequestId(): string {
  idCounter = (idCounter + 1) % Number.MAX_SAFE_INTEGER;
  return `${idPrefix}-${idCounter.toString(36)}`;
}

/**
 * The abort of a request without an AbortSignal: what gatewire's own code (the upstream
 * clients) listens to, so that forwarding a request does not create the signal (see
 * RequestContext). Listeners run once, at the abort.
 */
export interface AbortWatch {
  readonly aborted: boolean;
  add(fn: () => void): void;
  remove(fn: () => void): void;
}

export class RequestContext implements ErrorSink, AbortWatch {
  readonly id = newRequestId();
  /** Why the request was aborted, once it was. */
  abortReason: string | undefined;
  private controller: AbortController | undefined;
  private listeners: Set<() => void> | undefined;

  get aborted(): boolean {
    return this.abortReason !== undefined;
  }

  add(fn: () => void): void {
    (this.listeners ??= new Set()).add(fn);
  }

  remove(fn: () => void): void {
    this.listeners?.delete(fn);
  }

  constructor(private readonly logger: Logger) {}

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(new Error(this.abortReason));
    }
    return this.controller.signal;
  }

  /** Aborts `gatewire.signal` (client gone, FCGI_ABORT_REQUEST, timeout). Idempotent. */
  abort(reason: string): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.controller?.abort(new Error(reason));
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners !== undefined) for (const fn of listeners) fn();
  }

  /** `environ['gatewire.errors'].write(...)`: app diagnostics, one log line each. */
  write(message: string): void {
    const text = String(message).replace(/\s+$/, '');
    if (text !== '') this.logger.error(`app: ${text}`, { request_id: this.id });
  }
}

export interface ServerKeys {
  input: Readable;
  protocol: Protocol;
  scheme: 'http' | 'https';
  inputTerminated: boolean;
  runOnce?: boolean;
  multiprocess?: boolean;
}

const kContext = Symbol('gatewire.context');

/**
 * `gatewire.signal` lives on the environ's prototype and creates the AbortController on first
 * use. Any own accessor (defineProperty, a getter in a literal) costs over a microsecond per
 * request because the object leaves V8's fast mode; an inherited getter costs nothing.
 * One consequence: `{...environ}` copies every key but this one.
 */
const ENVIRON_PROTO: object = Object.create(Object.prototype, {
  'gatewire.signal': {
    get(this: { [kContext]: RequestContext }): AbortSignal {
      return this[kContext].signal;
    },
    enumerable: false,
    configurable: false,
  },
});

/**
 * How to learn that `environ`'s request was aborted: its RequestContext when a front built it
 * (no AbortController made), else its `gatewire.signal`; undefined when it has neither.
 */
export function abortWatch(environ: Environ): AbortWatch | undefined {
  const ctx = (environ as unknown as { [kContext]?: unknown })[kContext];
  if (ctx instanceof RequestContext) return ctx;
  const signal = environ['gatewire.signal'] as unknown;
  if (!(signal instanceof AbortSignal)) return undefined;
  return {
    get aborted() {
      return signal.aborted;
    },
    add: (fn) => signal.addEventListener('abort', fn, { once: true }),
    remove: (fn) => signal.removeEventListener('abort', fn),
  };
}

/** An empty CGI variable object for a request, ready to become its environ (fast path). */
export function newVars(ctx: RequestContext): CgiVars {
  const vars = Object.create(ENVIRON_PROTO) as CgiVars & { [kContext]: RequestContext };
  vars[kContext] = ctx;
  return vars;
}

/** Completes an environ: the CGI variables first, then the server-owned keys (E-2). */
export function makeEnviron(vars: CgiVars, ctx: RequestContext, keys: ServerKeys): Environ {
  const env = vars as unknown as Environ;
  env['gatewire.input'] = keys.input;
  env['gatewire.errors'] = ctx;
  env['gatewire.url_scheme'] = keys.scheme;
  env['gatewire.protocol'] = keys.protocol;
  env['gatewire.request_id'] = ctx.id;
  env['gatewire.input_terminated'] = keys.inputTerminated;
  env['gatewire.run_once'] = keys.runOnce ?? false;
  env['gatewire.multithread'] = false;
  env['gatewire.multiprocess'] = keys.multiprocess ?? false;
  if (Object.getPrototypeOf(vars) !== ENVIRON_PROTO) {
    // Built elsewhere as a plain object: correct, only slower (see ENVIRON_PROTO).
    Object.defineProperty(env, 'gatewire.signal', { get: () => ctx.signal, enumerable: true, configurable: true });
  }
  return env;
}
