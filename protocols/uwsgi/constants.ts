/**
 * uwsgi wire constants (docs/conformance.md §4.1, U-1..U-4, §9).
 *
 * packet header: modifier1 (u8) | datasize (LE16) | modifier2 (u8)
 * vars block (datasize bytes): repeated keysize (LE16) key valsize (LE16) value
 * then the body, CONTENT_LENGTH bytes (not counted in datasize).
 */

/** Bytes of the packet header (U-1). */
export const UWSGI_HEADER_SIZE = 4;
/** Largest datasize the LE16 field can carry; must work out of the box (U-3). */
export const MAX_UWSGI_DATASIZE = 65_535;
/** §9: default cap of the vars block, the protocol maximum. */
export const DEFAULT_MAX_UWSGI_PACKET_SIZE = 65_535;
/** Largest key or value: each is prefixed by an LE16 size. */
export const MAX_UWSGI_STRING = 65_535;

/** Var carrying the body length (U-6). */
export const UWSGI_CONTENT_LENGTH = 'CONTENT_LENGTH';

/**
 * modifier1 values (uWSGI protocol page). The request types a web server sends carry
 * "vars + body"; the others are uWSGI-internal and must never be executed (U-2).
 */
export const Modifier1 = {
  Wsgi: 0, // Python WSGI (nginx `uwsgi_modifier1` default)
  Psgi: 5, // Perl PSGI
  LuaWsapi: 6, // Lua WSAPI
  Rack: 7, // Ruby Rack
  Jvm: 8, // JVM (JWSGI, Ring)
  Cgi: 9, // CGI
  Management: 10, // management interface
  Php: 14, // PHP
  Mono: 15, // Mono ASP.NET
  Spooler: 17, // spooler request
  SymbolCall: 18, // symbol call
  Eval: 22, // raw code evaluation
  WsgiPathInfo: 30, // WSGI, PATH_INFO managed: strip SCRIPT_NAME (U-7)
  RawHttpResponse: 72, // 'H': an HTTP response is a valid "packet"
  Ping: 100, // ping
  Cache: 111, // cache
  Rpc: 173, // RPC
  PersistentClose: 200, // persistent-connection close mark
  Subscription: 224, // subscription
  Response: 255, // generic response
} as const;
export type Modifier1 = (typeof Modifier1)[keyof typeof Modifier1];

/**
 * U-2: modifier1 values accepted by default, the request types that mean "vars + body".
 * The decoder reports modifier1 as received; refusing others is the front's policy.
 */
export const UWSGI_REQUEST_MODIFIERS: ReadonlySet<number> = new Set<number>([
  Modifier1.Wsgi,
  Modifier1.Psgi,
  Modifier1.LuaWsapi,
  Modifier1.Rack,
  Modifier1.Jvm,
  Modifier1.Cgi,
  Modifier1.Php,
  Modifier1.Mono,
  Modifier1.WsgiPathInfo,
]);

/** U-2: true when `modifier1` is in the default allow-list (or in `allowed`, when given). */
export function isUwsgiRequestModifier(modifier1: number, allowed: ReadonlySet<number> = UWSGI_REQUEST_MODIFIERS): boolean {
  return allowed.has(modifier1);
}

/** Stable error codes of the uwsgi codec (ProtocolError / LimitError `code`). */
export const UwsgiErrorCode = {
  /** datasize above `maxUwsgiPacketSize` (LimitError, U-3, §9); raised right after the 4-byte header. */
  VarsTooLarge: 'UWSGI_VARS_TOO_LARGE',
  /** A key size of 0 (U-4; uWSGI rejects it too). */
  EmptyKey: 'UWSGI_EMPTY_KEY',
  /** A size field, key or value runs past the end of the vars block (U-4). */
  TruncatedVar: 'UWSGI_TRUNCATED_VAR',
  /** CONTENT_LENGTH not empty and not ASCII digits only (`12abc`) (U-6). */
  BadContentLength: 'UWSGI_BAD_CONTENT_LENGTH',
  /** Two CONTENT_LENGTH vars with different values (policy, see decoder). */
  DuplicateContentLength: 'UWSGI_DUPLICATE_CONTENT_LENGTH',
  /** CONTENT_LENGTH above `maxBodyBytes` (LimitError, U-6). */
  BodyTooLarge: 'UWSGI_BODY_TOO_LARGE',
  /** Connection ended inside the packet header or vars block (reported by `end()`). */
  TruncatedHead: 'UWSGI_TRUNCATED_HEAD',
  /** Encoder: empty key, char above U+00FF, modifier outside 0..255. */
  EncodeInvalid: 'UWSGI_ENCODE_INVALID',
  /** Encoder: a key, value or the vars block longer than 65535 bytes (LimitError). */
  EncodeTooLarge: 'UWSGI_ENCODE_TOO_LARGE',
} as const;
export type UwsgiErrorCode = (typeof UwsgiErrorCode)[keyof typeof UwsgiErrorCode];
