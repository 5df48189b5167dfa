/**
 * The one error taxonomy of the wire layer. Codecs throw these and nothing else for bad
 * input; fronts map them to a response (400, 413, 431, 502) or a closed connection.
 * Codecs never choose a status code themselves.
 */

/** The codecs of protocols/: what a ProtocolError names as its source. */
export type CodecName = 'fastcgi' | 'scgi' | 'uwsgi' | 'cgi';

/** Input that breaks the protocol's grammar. Message starts with the protocol name. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
  constructor(
    readonly protocol: CodecName,
    /** Stable, documented code, e.g. `FCGI_BAD_VERSION`. */
    readonly code: string,
    message: string,
  ) {
    super(`${protocol}: ${message}`);
  }
}

/** Input that is well-formed but larger than a configured limit. */
export class LimitError extends ProtocolError {
  override name = 'LimitError';
  constructor(
    protocol: CodecName,
    code: string,
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
