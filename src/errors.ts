/**
 * Errors of the server side of gatewire (listeners, options, loading), the server's error codes
 * and the full `ErrorCode` union. The base class, GatewireError, lives in protocols/errors.ts:
 * the codecs throw its subclasses and cannot import from src/. docs/errors.md has one row per
 * code (test/errors.test.ts keeps the two in step).
 */
import { type CodecErrorCode, GatewireError } from '../protocols/errors.js';

export { GatewireError };
export type { CodecErrorCode };

/** Stable codes of the errors of src/: one per class, `GATEWIRE_*`. */
export const ServerErrorCode = {
  /** RequestError: a request the front answers with its status (400, 404, 413, 501, 505, ...). */
  RequestRefused: 'GATEWIRE_REQUEST_REFUSED',
  /** AppContractError: the app broke the call contract (status, headers, body, start_response). */
  AppContract: 'GATEWIRE_APP_CONTRACT',
  /** ValidationError: validateApp() found a breach of the contract, by the server or the app. */
  Validation: 'GATEWIRE_VALIDATION',
  /** LoadError: the app module cannot be loaded or exports no app. */
  Load: 'GATEWIRE_LOAD',
  /** OptionError: a bad option value. */
  Option: 'GATEWIRE_OPTION',
  /** ListenError: a listener cannot be set up. */
  Listen: 'GATEWIRE_LISTEN',
  /** TruncatedBodyError: the request body ended before its CONTENT_LENGTH. */
  BodyTruncated: 'GATEWIRE_BODY_TRUNCATED',
  /** BodyLimitError: a body of unknown length passed the body limit. */
  BodyTooLarge: 'GATEWIRE_BODY_TOO_LARGE',
  /** NotCgiError: `gatewire cgi` started without REQUEST_METHOD. */
  NotCgi: 'GATEWIRE_NOT_CGI',
  /** CgiTermination: SIGTERM ended a `gatewire cgi` run. */
  CgiTerminated: 'GATEWIRE_CGI_TERMINATED',
  /** CgiStalled: a `gatewire cgi` app whose call can never finish. */
  CgiStalled: 'GATEWIRE_CGI_STALLED',
  /** CloseWithoutReply: SCGI/uwsgi input that gets no reply at all. */
  CloseWithoutReply: 'GATEWIRE_CLOSE_WITHOUT_REPLY',
  /** SpoolLimitError: the CGI host's spooled body passed the limit. */
  SpoolLimit: 'GATEWIRE_SPOOL_LIMIT',
  /** PeerGone (src/call.ts, internal): the peer went away while the body was iterated. */
  PeerGone: 'GATEWIRE_PEER_GONE',
  /** UpstreamError: an SCGI/uwsgi application server gatewire forwards to failed (refused, timed out, bad answer). */
  Upstream: 'GATEWIRE_UPSTREAM',
  /** RequestFailure: `gatewire request` got no valid answer (refused, reset, timeout, garbage). */
  RequestFailed: 'GATEWIRE_REQUEST_FAILED',
  /** CompareRequestError: the `gatewire compare --serve` page was sent a request it cannot compare. */
  CompareRequest: 'GATEWIRE_COMPARE_REQUEST',
} as const;
export type ServerErrorCode = (typeof ServerErrorCode)[keyof typeof ServerErrorCode];

/** Every code a GatewireError can carry: the codecs' and the server's. */
export type ErrorCode = CodecErrorCode | ServerErrorCode;

// The server's codes join the codec codes in GatewireError's `code` type (see ErrorCodeRegistry).
declare module '../protocols/errors.js' {
  interface ErrorCodeRegistry {
    server: ServerErrorCode;
  }
}

/** Thrown when a listener cannot be set up; the CLI prints it on one line and exits 2. */
export class ListenError extends GatewireError {
  override name = 'ListenError';
  override readonly code = ServerErrorCode.Listen;
}
