/**
 * CGI on the wire: the response head a script writes (response.ts) and the response heads
 * every front writes (head.ts). Pure; no I/O.
 */
export {
  CGI_HEAD_LIMITS,
  CgiResponseError,
  CgiResponseParser,
  NphResponseParser,
  classifyCgiResponse,
  isLocalLocation,
  parseCgiResponse,
  parseHttpStatusLine,
} from './response.js';
export type {
  CgiHeadLimits,
  CgiResponseErrorCode,
  CgiResponseHead,
  CgiResponseKind,
  HttpStatusLine,
  NphResponseHead,
} from './response.js';
export {
  HOP_BY_HOP,
  isHopByHop,
  isValidHeaderName,
  isValidHeaderValue,
  parseStatusLine,
  reasonPhrase,
  serializeCgiHead,
  serializeHttpHead,
} from './head.js';
export type { HeaderPair, HttpVersion, ParsedStatus } from './head.js';
