/**
 * FastCGI 1.0 wire constants. Section numbers refer to the FastCGI Specification
 * (FastCGI-Archives/fcgi2 `doc/fcgi-spec.html`, Open Market, 1996); see also
 * docs/conformance.md §2.1.
 */

/** §8: `FCGI_VERSION_1`, the only version there is. Anything else is fatal (F-2). */
export const FCGI_VERSION_1 = 1;

/** §8: `FCGI_HEADER_LEN`, the fixed record header size. */
export const FCGI_HEADER_LEN = 8;

/** §3.3: contentLength is a 16-bit field. */
export const FCGI_MAX_CONTENT_LENGTH = 0xffff;

/** §3.3: paddingLength is an 8-bit field. */
export const FCGI_MAX_PADDING_LENGTH = 0xff;

/**
 * Largest multiple of 8 that fits a record (0xFFF8): stream records of this size need no
 * padding (php-fpm writes its output this way; F-4).
 */
export const FCGI_MAX_ALIGNED_CONTENT_LENGTH = 0xfff8;

/** §3.3: requestId 0 marks a management record. */
export const FCGI_NULL_REQUEST_ID = 0;

/** §8: record types (`FCGI_BEGIN_REQUEST` … `FCGI_UNKNOWN_TYPE`). */
export const RecordType = {
  BeginRequest: 1, // §5.1, web server → app, content 8 bytes
  AbortRequest: 2, // §5.4, web server → app, content 0 bytes
  EndRequest: 3, // §5.5, app → web server, content 8 bytes
  Params: 4, // §5.2, stream of name-value pairs
  Stdin: 5, // §5.3, stream of request body bytes
  Stdout: 6, // §5.3, stream of response bytes
  Stderr: 7, // §5.3, stream of error-log bytes
  Data: 8, // §5.3, FILTER role only
  GetValues: 9, // §4.1, management, names with empty values
  GetValuesResult: 10, // §4.1, management, name-value pairs
  UnknownType: 11, // §4.2, management, content 8 bytes
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

/** §8: `FCGI_MAXTYPE`; types above this are unknown to this implementation (§4.2). */
export const FCGI_MAX_TYPE = RecordType.UnknownType;

/** §5.1: `FCGI_BeginRequestBody.role`. */
export const Role = {
  Responder: 1, // §6.2, the CGI equivalent
  Authorizer: 2, // §6.3
  Filter: 3, // §6.4, adds the DATA stream
} as const;
export type Role = (typeof Role)[keyof typeof Role];

/** §5.1: `FCGI_BeginRequestBody.flags` bits. */
export const Flag = {
  KeepConn: 1, // FCGI_KEEP_CONN: the app must not close the connection after this request
} as const;
export type Flag = (typeof Flag)[keyof typeof Flag];

/** §5.5: `FCGI_EndRequestBody.protocolStatus`. */
export const ProtocolStatus = {
  RequestComplete: 0, // FCGI_REQUEST_COMPLETE
  CantMpxConn: 1, // FCGI_CANT_MPX_CONN: a second request on a non-multiplexed connection
  Overloaded: 2, // FCGI_OVERLOADED
  UnknownRole: 3, // FCGI_UNKNOWN_ROLE
} as const;
export type ProtocolStatus = (typeof ProtocolStatus)[keyof typeof ProtocolStatus];

/** §4.1: management variables that GET_VALUES may ask for (F-6, F-45). */
export const ManagementVariable = {
  MaxConns: 'FCGI_MAX_CONNS', // max concurrent transport connections
  MaxReqs: 'FCGI_MAX_REQS', // max concurrent requests
  MpxsConns: 'FCGI_MPXS_CONNS', // "1" if connections are multiplexed, else "0"
} as const;
export type ManagementVariable = (typeof ManagementVariable)[keyof typeof ManagementVariable];

/** Byte sizes of the fixed-length bodies (§5.1, §5.5, §4.2). */
export const BEGIN_REQUEST_BODY_LEN = 8;
export const END_REQUEST_BODY_LEN = 8;
export const UNKNOWN_TYPE_BODY_LEN = 8;

/** Default limits (docs/conformance.md §9). */
export const DEFAULT_MAX_PARAMS_BYTES = 1024 * 1024; // 1 MiB of concatenated PARAMS content
export const DEFAULT_MAX_PAIRS = 1000;

/**
 * Stable error codes of FastCGI (ProtocolError / LimitError `code`). The codec raises the first
 * eight; the next three are stream-order rules the front enforces (src/fronts/fastcgi.ts) on
 * records the codec decoded well; the last seven are the client side's (protocols/fastcgi/client.ts:
 * what an application server sends back, and request encoding).
 */
export const FastcgiErrorCode = {
  /** A record header whose version byte is not 1 (F-2). */
  BadVersion: 'FCGI_BAD_VERSION',
  /** A record contentLength above `maxContentLength` (LimitError; the default accepts all, F-3). */
  RecordTooLarge: 'FCGI_RECORD_TOO_LARGE',
  /** A BEGIN_REQUEST body that is not exactly 8 bytes (F-10). */
  BadBeginRequest: 'FCGI_BAD_BEGIN_REQUEST',
  /** Client side: an END_REQUEST body that is not exactly 8 bytes. */
  BadEndRequest: 'FCGI_BAD_END_REQUEST',
  /** Client side: an UNKNOWN_TYPE body that is not exactly 8 bytes. */
  BadUnknownType: 'FCGI_BAD_UNKNOWN_TYPE',
  /** A name-value stream that ends inside a length or a pair (F-18). */
  ParamsTruncated: 'FCGI_PARAMS_TRUNCATED',
  /** A name-value stream over `maxParamsBytes` (LimitError, F-19). */
  ParamsTooLarge: 'FCGI_PARAMS_TOO_LARGE',
  /** More pairs than `maxPairs` (LimitError, F-19). */
  TooManyParams: 'FCGI_TOO_MANY_PARAMS',
  /** Front: a BEGIN_REQUEST on request id 0, the management id (F-11). */
  BadRequestId: 'FCGI_BAD_REQUEST_ID',
  /** Front: a BEGIN_REQUEST for a request id that is still running (F-12). */
  DuplicateRequestId: 'FCGI_DUPLICATE_REQUEST_ID',
  /** Front: STDIN for a request whose PARAMS stream has not ended (F-26). */
  StdinBeforeParams: 'FCGI_STDIN_BEFORE_PARAMS',
  /**
   * Client side: a STDOUT, STDERR or END_REQUEST record for a request id that is not active (never
   * begun, or already ended by END_REQUEST), or a management record on an id other than 0 (UP-8).
   */
  UnexpectedRequestId: 'FCGI_UNEXPECTED_REQUEST_ID',
  /** Client side: a record type only a web server sends (BEGIN_REQUEST, PARAMS, STDIN, …) (UP-8). */
  UnexpectedRecordType: 'FCGI_UNEXPECTED_RECORD_TYPE',
  /** Client side: a record type FastCGI 1.0 does not define (0, or above 11), any request id (UP-8). */
  UnknownRecordType: 'FCGI_UNKNOWN_RECORD_TYPE',
  /** Client side: the connection ended inside a record (raised by `end()`). */
  TruncatedRecord: 'FCGI_TRUNCATED_RECORD',
  /** Client side: the connection ended while requests still awaited their END_REQUEST (UP-12). */
  MissingEndRequest: 'FCGI_MISSING_END_REQUEST',
  /** Encoder: a param name or value with a char above U+00FF (it has no byte; UP-38). */
  EncodeInvalid: 'FCGI_ENCODE_INVALID',
  /** Encoder: a param pair longer than 65535 bytes, which no PARAMS record can carry whole (LimitError, UP-2). */
  EncodeTooLarge: 'FCGI_ENCODE_TOO_LARGE',
} as const;
export type FastcgiErrorCode = (typeof FastcgiErrorCode)[keyof typeof FastcgiErrorCode];
