/**
 * SCGI wire constants (docs/conformance.md §3.1, S-1, §9).
 *
 * request = netstring(headers) body; netstring(x) = decimal-length ":" x ","
 * headers = 1*( name NUL value NUL ); body = CONTENT_LENGTH octets.
 */

/** Byte that ends the netstring length prefix (S-1). */
export const NETSTRING_COLON = 0x3a; // ':'
/** Byte that must follow the header block (S-2). */
export const NETSTRING_COMMA = 0x2c; // ','
/** Separator and terminator of header names and values (S-3). */
export const SCGI_NUL = 0x00;

/** S-1: the length prefix has at most 7 digits (9_999_999 bytes). */
export const MAX_NETSTRING_DIGITS = 7;
/** Largest header block a 7-digit prefix can announce; upper bound of `maxNetstringLength`. */
export const MAX_NETSTRING_LENGTH = 9_999_999;
/** §9: default cap of the header block (the netstring payload), 1 MiB. */
export const DEFAULT_MAX_NETSTRING_LENGTH = 1_048_576;

/** S-4: the header carrying the body length; S-5: the protocol marker and its only legal value. */
export const SCGI_CONTENT_LENGTH = 'CONTENT_LENGTH';
export const SCGI_MARKER = 'SCGI';
export const SCGI_MARKER_VALUE = '1';

/**
 * Stable error codes of the SCGI codec (ProtocolError / LimitError `code`).
 * Decoder codes describe bytes received; `SCGI_ENCODE_*` codes describe encoder input.
 */
export const ScgiErrorCode = {
  /** Length prefix: empty, a non-digit (sign, space, `x`), or no `:` after the digits (S-1). */
  BadLength: 'SCGI_BAD_LENGTH',
  /** Length prefix with a leading `0` (`070:`); a lone `0` is legal (S-1). */
  LeadingZero: 'SCGI_LEADING_ZERO',
  /** Length prefix larger than `maxNetstringLength` (LimitError, S-1, §9). */
  HeadTooLarge: 'SCGI_HEAD_TOO_LARGE',
  /** The byte after the N header bytes is not `,` (S-2). */
  MissingComma: 'SCGI_MISSING_COMMA',
  /** Header block does not end with NUL (S-3). */
  Unterminated: 'SCGI_UNTERMINATED_HEADERS',
  /** Header block splits into an odd number of strings: a name without value (S-3). */
  OddStrings: 'SCGI_ODD_STRING_COUNT',
  /** Empty header name (S-3). */
  EmptyName: 'SCGI_EMPTY_NAME',
  /** No CONTENT_LENGTH header (S-4). */
  MissingContentLength: 'SCGI_MISSING_CONTENT_LENGTH',
  /** CONTENT_LENGTH not made of ASCII digits only (`""`, `1e3`, `-1`) (S-4). */
  BadContentLength: 'SCGI_BAD_CONTENT_LENGTH',
  /** Two CONTENT_LENGTH headers (S-4). */
  DuplicateContentLength: 'SCGI_DUPLICATE_CONTENT_LENGTH',
  /** CONTENT_LENGTH above `maxBodyBytes` (LimitError, S-4). */
  BodyTooLarge: 'SCGI_BODY_TOO_LARGE',
  /** `SCGI` header with a value other than `1` (S-5). */
  BadMarker: 'SCGI_BAD_MARKER',
  /** Connection ended inside the request head (reported by `end()`; S-1 says close silently). */
  TruncatedHead: 'SCGI_TRUNCATED_HEAD',
  /** Encoder: a name or value the wire cannot carry (empty name, NUL, char above U+00FF). */
  EncodeInvalid: 'SCGI_ENCODE_INVALID',
  /** Encoder: CONTENT_LENGTH in the header list (it comes from `bodyLength`), or SCGI ≠ `1`. */
  EncodeReserved: 'SCGI_ENCODE_RESERVED',
  /** Encoder: header block longer than a 7-digit netstring can announce (LimitError). */
  EncodeTooLarge: 'SCGI_ENCODE_TOO_LARGE',
} as const;
export type ScgiErrorCode = (typeof ScgiErrorCode)[keyof typeof ScgiErrorCode];
