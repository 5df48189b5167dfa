/**
 * FastCGI record decoder: a push parser over the bytes of one transport connection.
 * Section numbers (§) refer to the FastCGI Specification (FastCGI-Archives/fcgi2 `doc/fcgi-spec.html`).
 *
 * Every byte on a FastCGI connection belongs to a record (spec §3.3):
 *
 * ```
 * version(1) type(1) requestId(BE16) contentLength(BE16) paddingLength(1) reserved(1)
 * content[contentLength] padding[paddingLength]
 * ```
 *
 * The decoder knows framing only. It does not judge types, request ids or stream order:
 * unknown types are delivered like any other record, and the front decides (F-8, F-9).
 */
import { LimitError, ProtocolError, showBytes } from '../errors.js';
import {
  BEGIN_REQUEST_BODY_LEN,
  END_REQUEST_BODY_LEN,
  FCGI_HEADER_LEN,
  FCGI_MAX_CONTENT_LENGTH,
  FCGI_VERSION_1,
  FastcgiErrorCode,
  Flag,
  UNKNOWN_TYPE_BODY_LEN,
} from './constants.js';

/**
 * Receives each complete record, synchronously, in wire order.
 *
 * `content` is a subarray of the pushed chunk when the whole content arrived in that chunk
 * (zero copy: it aliases the caller's buffer, so copy it if you keep it past a reuse of that
 * buffer); otherwise a buffer of exactly `contentLength` bytes owned by the handler. Empty
 * content is one shared zero-length buffer.
 */
export type RecordHandler = (type: number, requestId: number, content: Buffer) => void;

export interface RecordDecoderOptions {
  /**
   * Largest contentLength accepted; larger records raise `LimitError` FCGI_RECORD_TOO_LARGE
   * before any content is buffered. The field is 16 bits, so the default accepts all (F-3).
   * @default 65535
   */
  maxContentLength?: number;
}

const S_HEADER = 0;
const S_CONTENT = 1;
const S_PADDING = 2;

const EMPTY: Buffer = Buffer.alloc(0);

/**
 * Push parser for FastCGI records.
 *
 * @example
 * const decoder = new RecordDecoder((type, requestId, content) => { ... });
 * socket.on('data', (chunk) => decoder.push(chunk));
 */
export class RecordDecoder {
  private readonly onRecord: RecordHandler;
  private readonly maxContentLength: number;

  private state = S_HEADER;
  /** Header bytes of a header that straddles chunks (only used on that slow path). */
  private readonly header = Buffer.allocUnsafe(FCGI_HEADER_LEN);
  private headerFill = 0;
  // Fields of the current record once its header is known.
  private type = 0;
  private requestId = 0;
  private contentLength = 0;
  private paddingLength = 0;
  /** Assembly buffer of exactly contentLength bytes, only for content that straddles chunks. */
  private body: Buffer | null = null;
  private bodyFill = 0;
  private paddingLeft = 0;

  private failure: unknown = null;
  private busy = false;

  constructor(onRecord: RecordHandler, options: RecordDecoderOptions = {}) {
    const max = options.maxContentLength ?? FCGI_MAX_CONTENT_LENGTH;
    if (!Number.isInteger(max) || max < 0 || max > FCGI_MAX_CONTENT_LENGTH) {
      throw new RangeError(`Expected the \`maxContentLength\` option to be an integer 0..65535, got \`${String(max)}\``);
    }
    this.onRecord = onRecord;
    this.maxContentLength = max;
  }

  /**
   * Bytes of the current, incomplete record received so far (header, content and padding).
   * 0 exactly when the decoder sits on a record boundary: EOF with `pending > 0` means the
   * peer closed mid-record.
   */
  get pending(): number {
    if (this.state === S_HEADER) return this.headerFill;
    if (this.state === S_CONTENT) return FCGI_HEADER_LEN + this.bodyFill;
    return FCGI_HEADER_LEN + this.contentLength + this.paddingLength - this.paddingLeft;
  }

  /** The error that killed this decoder, or null while it is alive. */
  get error(): unknown {
    return this.failure;
  }

  /**
   * Feeds the next bytes of the connection. Calls the handler for every record completed by
   * them. Throws `ProtocolError`/`LimitError` on bad framing; any throw (also one from the
   * handler) leaves the decoder dead, and later pushes rethrow the same error.
   */
  push(chunk: Buffer): void {
    if (this.failure !== null) throw this.failure;
    if (this.busy) throw new Error('fastcgi: RecordDecoder.push() called from inside its record handler');
    this.busy = true;
    try {
      this.parse(chunk);
    } catch (err) {
      this.failure = err;
      throw err;
    } finally {
      this.busy = false;
    }
  }

  private parse(chunk: Buffer): void {
    const len = chunk.length;
    let pos = 0;
    while (pos < len) {
      const state = this.state;
      if (state === S_HEADER) {
        let cl: number;
        if (this.headerFill === 0 && len - pos >= FCGI_HEADER_LEN) {
          // Fast path: the whole header is in this chunk; read it in place. Plain byte reads,
          // not readUInt16BE: its bounds checks cost ~40 % of small-record throughput here.
          if (chunk[pos] !== FCGI_VERSION_1) throw badVersion(chunk.subarray(pos, pos + FCGI_HEADER_LEN));
          cl = (chunk[pos + 4]! << 8) | chunk[pos + 5]!;
          if (cl > this.maxContentLength) throw tooLarge(cl, this.maxContentLength);
          const type = chunk[pos + 1]!;
          const requestId = (chunk[pos + 2]! << 8) | chunk[pos + 3]!;
          const pad = chunk[pos + 6]!;
          pos += FCGI_HEADER_LEN;
          if (len - pos >= cl) {
            // Whole content here too: hand out a view of the chunk (zero copy).
            const content = cl === 0 ? EMPTY : chunk.subarray(pos, pos + cl);
            pos += cl;
            if (len - pos >= pad) {
              pos += pad;
            } else {
              this.contentLength = cl;
              this.paddingLength = pad;
              this.paddingLeft = pad - (len - pos);
              this.state = S_PADDING;
              pos = len;
            }
            this.onRecord(type, requestId, content);
            continue;
          }
          this.type = type;
          this.requestId = requestId;
          this.contentLength = cl;
          this.paddingLength = pad;
        } else {
          // Slow path: the header straddles chunks; collect its 8 bytes.
          const take = Math.min(FCGI_HEADER_LEN - this.headerFill, len - pos);
          chunk.copy(this.header, this.headerFill, pos, pos + take);
          this.headerFill += take;
          pos += take;
          if (this.headerFill < FCGI_HEADER_LEN) return;
          this.headerFill = 0;
          const h = this.header;
          if (h[0] !== FCGI_VERSION_1) throw badVersion(h);
          cl = h.readUInt16BE(4);
          if (cl > this.maxContentLength) throw tooLarge(cl, this.maxContentLength);
          this.type = h[1]!;
          this.requestId = h.readUInt16BE(2);
          this.contentLength = cl;
          this.paddingLength = h[6]!;
        }
        this.state = S_CONTENT;
        this.bodyFill = 0;
        // An empty record is complete with its header, even at the very end of a chunk.
        if (cl === 0) {
          this.finishContent(EMPTY);
          pos = this.skipPadding(len, pos);
          continue;
        }
      }

      if (this.state === S_CONTENT) {
        const avail = len - pos;
        const body = this.body;
        if (body === null) {
          const cl = this.contentLength;
          if (avail >= cl) {
            // Header came from an earlier chunk, content lies wholly in this one.
            const content = chunk.subarray(pos, pos + cl);
            pos += cl;
            this.finishContent(content);
            pos = this.skipPadding(len, pos);
            continue;
          }
          // Nothing of it here yet: wait, so that content arriving whole stays zero-copy.
          if (avail === 0) return;
          // Straddles: one buffer of the record's exact size, filled once, never regrown.
          const assembly = Buffer.allocUnsafe(cl);
          chunk.copy(assembly, 0, pos, len);
          this.body = assembly;
          this.bodyFill = avail;
          return;
        }
        const take = Math.min(this.contentLength - this.bodyFill, avail);
        chunk.copy(body, this.bodyFill, pos, pos + take);
        this.bodyFill += take;
        pos += take;
        if (this.bodyFill < this.contentLength) return;
        this.body = null;
        this.finishContent(body);
        pos = this.skipPadding(len, pos);
        continue;
      }

      // S_PADDING: padding bytes are ignored (§3.3).
      pos = this.skipPadding(len, pos);
    }
  }

  /**
   * Content of the current record is complete: switch to padding and deliver. State is
   * settled before the handler runs, so a throwing handler leaves nothing half-done.
   */
  private finishContent(content: Buffer): void {
    this.bodyFill = 0;
    this.paddingLeft = this.paddingLength;
    this.state = S_PADDING;
    this.onRecord(this.type, this.requestId, content);
  }

  /** Skips what is available of the current padding; returns the new chunk position. */
  private skipPadding(len: number, pos: number): number {
    if (this.state !== S_PADDING) return pos;
    const skip = Math.min(this.paddingLeft, len - pos);
    this.paddingLeft -= skip;
    if (this.paddingLeft === 0) this.state = S_HEADER;
    return pos + skip;
  }
}

function badVersion(header: Uint8Array): ProtocolError {
  return new ProtocolError(
    'fastcgi',
    FastcgiErrorCode.BadVersion,
    `unsupported record version ${header[0]!} (expected 1) in header "${showBytes(header)}"`,
  );
}

function tooLarge(contentLength: number, max: number): LimitError {
  return new LimitError(
    'fastcgi',
    FastcgiErrorCode.RecordTooLarge,
    `record contentLength ${contentLength} exceeds maxContentLength ${max}`,
    'maxContentLength',
  );
}

/** §5.1 `FCGI_BeginRequestBody`. */
export interface BeginRequestBody {
  /** `Role`: 1 RESPONDER, 2 AUTHORIZER, 3 FILTER; anything else is an unknown role (F-13). */
  readonly role: number;
  /** Raw flags byte. */
  readonly flags: number;
  /** `flags & FCGI_KEEP_CONN` (F-40, F-41). */
  readonly keepConn: boolean;
}

/**
 * Decodes a BEGIN_REQUEST body. Its length must be exactly 8 (F-10: 7 or 9 bytes is a
 * protocol error and closes the connection).
 */
export function decodeBeginRequest(content: Uint8Array): BeginRequestBody {
  if (content.length !== BEGIN_REQUEST_BODY_LEN) {
    throw new ProtocolError(
      'fastcgi',
      FastcgiErrorCode.BadBeginRequest,
      `BEGIN_REQUEST body is ${content.length} bytes (expected 8): "${showBytes(content)}"`,
    );
  }
  const flags = content[2]!;
  return { role: (content[0]! << 8) | content[1]!, flags, keepConn: (flags & Flag.KeepConn) !== 0 };
}

/** §5.5 `FCGI_EndRequestBody`. */
export interface EndRequestBody {
  readonly appStatus: number;
  readonly protocolStatus: number;
}

/** Decodes an END_REQUEST body (client side). Length must be exactly 8. */
export function decodeEndRequest(content: Uint8Array): EndRequestBody {
  if (content.length !== END_REQUEST_BODY_LEN) {
    throw new ProtocolError(
      'fastcgi',
      FastcgiErrorCode.BadEndRequest,
      `END_REQUEST body is ${content.length} bytes (expected 8): "${showBytes(content)}"`,
    );
  }
  const appStatus = content[0]! * 0x1000000 + ((content[1]! << 16) | (content[2]! << 8) | content[3]!);
  return { appStatus, protocolStatus: content[4]! };
}

/** Decodes an UNKNOWN_TYPE body (client side): the type the peer did not understand. */
export function decodeUnknownType(content: Uint8Array): number {
  if (content.length !== UNKNOWN_TYPE_BODY_LEN) {
    throw new ProtocolError(
      'fastcgi',
      FastcgiErrorCode.BadUnknownType,
      `UNKNOWN_TYPE body is ${content.length} bytes (expected 8): "${showBytes(content)}"`,
    );
  }
  return content[0]!;
}
