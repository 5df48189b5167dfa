/**
 * The one error taxonomy of gatewire, and the wire layer's part of it. Every error class of
 * gatewire extends GatewireError and carries a stable `code` (docs/errors.md has one row per
 * code). Codecs throw ProtocolError/LimitError and nothing else for bad input; fronts map them
 * to a response (400, 413, 431, 502) or a closed connection. Codecs never choose a status code
 * themselves.
 */
import type { CgiResponseErrorCode } from './cgi/response.js';
import type { FastcgiErrorCode } from './fastcgi/constants.js';
import type { ScgiErrorCode } from './scgi/constants.js';
import type { UwsgiErrorCode } from './uwsgi/constants.js';

/** The codecs of protocols/: what a ProtocolError names as its source. */
export type CodecName = 'fastcgi' | 'scgi' | 'uwsgi' | 'cgi';

/** Every code a ProtocolError or LimitError can carry: the `as const` code objects of the codecs. */
export type CodecErrorCode = FastcgiErrorCode | ScgiErrorCode | UwsgiErrorCode | CgiResponseErrorCode;

/**
 * The codes of GatewireError, by owner. protocols/ knows only its own codes (it must not import
 * from src/), so src/errors.ts adds the server's by declaration merging (`declare module`, types
 * only: nothing runs) and exports the full union as `ErrorCode`.
 *
 * Why a registry rather than a type parameter: `err instanceof GatewireError` narrows a generic
 * class to `GatewireError<any>`, so every `err.code` after an instanceof check would be `any`;
 * and a base typed `code: string` would let a subclass invent a code no one documented. Merged
 * into this interface, `GatewireError['code']` is the full union wherever src/errors.ts is part
 * of the program (all of gatewire, and the published .d.ts through dist/src/index.d.ts): a
 * subclass with a code outside it fails to compile, and instanceof gives the precise type. A
 * program that uses protocols/ alone sees the codec codes only, which is all it can meet.
 */
export interface ErrorCodeRegistry {
  codec: CodecErrorCode;
}

/** The union of the codes in {@link ErrorCodeRegistry}; src/errors.ts's `ErrorCode` equals it. */
export type RegisteredErrorCode = ErrorCodeRegistry[keyof ErrorCodeRegistry];

/**
 * Base of every error gatewire throws on purpose. Abstract: each subclass fixes its `code` (a
 * class field, or a constructor argument for ProtocolError/LimitError), so the constructors of
 * the subclasses stay those they had. No `name` here: a subclass that sets none keeps `Error`.
 */
export abstract class GatewireError extends Error {
  /** Stable, documented code (docs/errors.md), e.g. `FCGI_BAD_VERSION` or `GATEWIRE_LOAD`. */
  abstract readonly code: RegisteredErrorCode;
}

/** Input that breaks the protocol's grammar. Message starts with the protocol name. */
export class ProtocolError extends GatewireError {
  override name = 'ProtocolError';
  constructor(
    readonly protocol: CodecName,
    /** Stable, documented code, e.g. `FCGI_BAD_VERSION`. */
    override readonly code: CodecErrorCode,
    /** What is wrong, without the protocol prefix (for a log line that names the protocol itself). */
    readonly detail: string,
  ) {
    super(`${protocol}: ${detail}`);
  }
}

/** Input that is well-formed but larger than a configured limit. */
export class LimitError extends ProtocolError {
  override name = 'LimitError';
  constructor(
    protocol: CodecName,
    code: CodecErrorCode,
    message: string,
    /** Name of the limit option that was exceeded, e.g. `maxParamsBytes`. */
    readonly limit: string,
  ) {
    super(protocol, code, message);
  }
}

export function isProtocolError(err: unknown): err is ProtocolError {
  return err instanceof ProtocolError;
}

/** Renders a byte or short byte run for an error message: printable ASCII as is, else hex. */
export function showBytes(bytes: Uint8Array, max = 16): string {
  const head = bytes.subarray(0, max);
  let out = '';
  for (const b of head) out += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return bytes.length > max ? `${out}…` : out;
}
