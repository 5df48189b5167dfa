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

/**
 * The environ's constructor, there to give it room. An object from Object.create() keeps four
 * properties inside itself; the rest go to a separate array that V8 regrows by three slots at a
 * time, so a typical environ of 25 to 40 keys was copied eight times or more on its way (about
 * 1 KiB of garbage per request). An object made by `new` is sized from the `this[...] =`
 * assignments V8 finds in its constructor's source, whether they run or not, and after its
 * first few objects V8 trims that to what they used: the assignments below never run, they
 * only reserve room for 40 keys.
 */
function EnvironObject(this: Record<string, unknown> & { [kContext]: RequestContext }, ctx: RequestContext | null): void {
  this[kContext] = ctx as RequestContext;
  if (ctx !== null) return;
  this['r0'] = this['r1'] = this['r2'] = this['r3'] = this['r4'] = this['r5'] = this['r6'] = this['r7'] = 0;
  this['r8'] = this['r9'] = this['r10'] = this['r11'] = this['r12'] = this['r13'] = this['r14'] = this['r15'] = 0;
  this['r16'] = this['r17'] = this['r18'] = this['r19'] = this['r20'] = this['r21'] = this['r22'] = this['r23'] = 0;
  this['r24'] = this['r25'] = this['r26'] = this['r27'] = this['r28'] = this['r29'] = this['r30'] = this['r31'] = 0;
  this['r32'] = this['r33'] = this['r34'] = this['r35'] = this['r36'] = this['r37'] = this['r38'] = this['r39'] = 0;
}
EnvironObject.prototype = ENVIRON_PROTO;
const Environ = EnvironObject as unknown as new (ctx: RequestContext) => CgiVars;

/** An empty CGI variable object for a request, ready to become its environ (fast path). */
export function newVars(ctx: RequestContext): CgiVars {
  return new Environ(ctx);
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
