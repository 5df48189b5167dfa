/**
 * FastCGI client side (the web server's role, as for nginx's `fastcgi_pass`): the request
 * encoders and a push parser for what an application server (php-fpm, uWSGI, gatewire) sends back
 * on one connection. Pure: no I/O, no timers. The upstream client owns the socket, the pool and the
 * mapping of errors to HTTP statuses (docs/conformance.md §12).
 * Section numbers (§) refer to the FastCGI Specification (FastCGI-Archives/fcgi2 `doc/fcgi-spec.html`).
 */
import { LimitError, ProtocolError, showBytes } from '../errors.js';
import {
  END_REQUEST_BODY_LEN,
  FCGI_HEADER_LEN,
  FCGI_MAX_ALIGNED_CONTENT_LENGTH,
  FCGI_MAX_CONTENT_LENGTH,
  FCGI_NULL_REQUEST_ID,
  FCGI_VERSION_1,
  FastcgiErrorCode,
  Flag,
  ProtocolStatus,
  RecordType,
  Role,
  UNKNOWN_TYPE_BODY_LEN,
} from './constants.js';
import { encodeBeginRequest, encodeEndOfStream, paddingFor, writeHeader } from './encoder.js';
import { type Pair, ParamsDecoder, pairByteLength } from './params.js';

// The encoders of encoder.ts that already are the client's: one implementation, two doors.
export { encodeAbortRequest, encodeGetValues, encodeStdin } from './encoder.js';

const PROTOCOL = 'fastcgi';

// ---- request encoding -------------------------------------------------------------------

/** A char that latin1 cannot carry in one byte. */
const ABOVE_LATIN1 = /[\u0100-\uffff]/;

/**
 * Content bytes the PARAMS encoder puts in one record when it packs several pairs: 0xFFF8, the
 * largest multiple of 8, so that content plus padding never passes 65535 (php-fpm resets the
 * connection on a PARAMS record whose content and padding pass 65535: UP-1).
 */
export const PARAMS_RECORD_MAX = FCGI_MAX_ALIGNED_CONTENT_LENGTH;

/** The largest pair a PARAMS record can carry whole (UP-2): the 16-bit contentLength. */
export const MAX_PARAM_PAIR_BYTES = FCGI_MAX_CONTENT_LENGTH;

export interface FastcgiRequestOptions {
  /** `Role` of BEGIN_REQUEST (spec §5.1). @default Role.Responder */
  role?: number;
  /** FCGI_KEEP_CONN: the application keeps the connection open after END_REQUEST. */
  keepConn: boolean;
  /** The params, latin1 strings (one char per byte, UP-38), in wire order. */
  params: Iterable<readonly [string, string]>;
}

function checkRequestId(requestId: number): void {
  if (!Number.isInteger(requestId) || requestId < 1 || requestId > 0xffff) {
    throw new RangeError(`fastcgi: a request id must be an integer 1..65535, got ${String(requestId)}`);
  }
}

/**
 * The start of a request: `[BEGIN_REQUEST record, PARAMS stream]`, two buffers to write in this
 * order (the second holds every PARAMS record and the empty PARAMS record that ends the stream,
 * UP-3). STDIN follows with {@link encodeStdin} and {@link encodeStdinEnd}.
 *
 * PARAMS records hold whole pairs only (php-fpm, uWSGI and fastcgi-stream parse PARAMS per record:
 * a pair cut across records closes the connection, UP-2). Pairs are packed into records of at most
 * {@link PARAMS_RECORD_MAX} content bytes, padded to a multiple of 8; a single pair of
 * 65529..65535 bytes travels alone in a record without padding, so content plus padding never
 * passes 65535 (UP-1). A pair over 65535 bytes cannot be sent whole: LimitError
 * FCGI_ENCODE_TOO_LARGE, before anything is written (check it before connecting). A name or value
 * with a char above U+00FF: ProtocolError FCGI_ENCODE_INVALID. A bad id or role is a programming
 * error (RangeError).
 *
 * @example
 * const [begin, params] = encodeFastcgiRequest(1, { keepConn: true, params: [['REQUEST_METHOD', 'GET']] });
 */
export function encodeFastcgiRequest(requestId: number, options: FastcgiRequestOptions): [beginRequest: Buffer, params: Buffer] {
  checkRequestId(requestId);
  const role = options.role ?? Role.Responder;
  if (!Number.isInteger(role) || role < 0 || role > 0xffff) {
    throw new RangeError(`fastcgi: role must be an integer 0..65535, got ${String(role)}`);
  }
  const list = Array.isArray(options.params)
    ? (options.params as ReadonlyArray<readonly [string, string]>)
    : [...options.params];

  // Pass 1: check every pair, lay the records out (pairs per record, content length of each)
  // and build the content as one latin1 string (a char per byte: the lengths as chars too), so
  // that pass 2 copies it with one write per record instead of two per pair.
  const recordLengths: number[] = [];
  let pairsInRecord = 0;
  let length = 0;
  let total = FCGI_HEADER_LEN; // the empty PARAMS record
  let content = '';
  const close = (): void => {
    recordLengths.push(length);
    total += FCGI_HEADER_LEN + length + recordPadding(length);
    pairsInRecord = 0;
    length = 0;
  };
  for (let i = 0; i < list.length; i++) {
    const [name, value] = list[i]!;
    const size = pairByteLength(name, value);
    if (size > MAX_PARAM_PAIR_BYTES) {
      checkLatin1(list, i + 1);
      throw new LimitError(
        PROTOCOL,
        FastcgiErrorCode.EncodeTooLarge,
        `param "${preview(name)}" takes ${size} bytes; a PARAMS record carries at most 65535`,
        'maxContentLength',
      );
    }
    if (length + size > PARAMS_RECORD_MAX && pairsInRecord > 0) close();
    pairsInRecord++;
    length += size;
    content += lengthChars(name.length) + lengthChars(value.length) + name + value;
    if (length > PARAMS_RECORD_MAX) close(); // one big pair, alone and unpadded
  }
  if (pairsInRecord > 0) close();
  if (ABOVE_LATIN1.test(content)) checkLatin1(list, list.length);

  // Pass 2: write them.
  const buf = Buffer.allocUnsafe(total);
  let offset = 0;
  let at = 0;
  for (const cl of recordLengths) {
    const pad = recordPadding(cl);
    writeHeader(buf, offset, RecordType.Params, requestId, cl, pad);
    offset += FCGI_HEADER_LEN;
    offset += buf.write(recordLengths.length === 1 ? content : content.substring(at, at + cl), offset, cl, 'latin1');
    at += cl;
    if (pad !== 0) buf.fill(0, offset, offset + pad);
    offset += pad;
  }
  writeHeader(buf, offset, RecordType.Params, requestId, 0, 0);
  const flags = options.keepConn ? Flag.KeepConn : 0;
  return [encodeBeginRequest(requestId, role, flags), buf];
}

/** A pair length as latin1 chars: one byte up to 127, else four with the high bit set. */
function lengthChars(n: number): string {
  if (n < 0x80) return String.fromCharCode(n);
  return String.fromCharCode(((n >>> 24) & 0x7f) | 0x80, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** Throws FCGI_ENCODE_INVALID for the first of `list[0..end)` with a char above U+00FF. */
function checkLatin1(list: ReadonlyArray<readonly [string, string]>, end: number): void {
  for (let i = 0; i < end; i++) {
    const [name, value] = list[i]!;
    if (ABOVE_LATIN1.test(name) || ABOVE_LATIN1.test(value)) {
      throw new ProtocolError(
        PROTOCOL,
        FastcgiErrorCode.EncodeInvalid,
        `param "${preview(name)}" has a char above U+00FF in its name or value (params are bytes: latin1 strings)`,
      );
    }
  }
}

/** Padding of a PARAMS record: to a multiple of 8, unless that would pass 65535 (UP-1). */
function recordPadding(contentLength: number): number {
  const pad = paddingFor(contentLength);
  return contentLength + pad > FCGI_MAX_CONTENT_LENGTH ? 0 : pad;
}

/** The empty STDIN record that ends the request body: always sent, also without a body (UP-3). */
export function encodeStdinEnd(requestId: number): Buffer {
  checkRequestId(requestId);
  return encodeEndOfStream(RecordType.Stdin, requestId);
}

function preview(text: string): string {
  // Chars above U+00FF are shown as '?': the message only has to point at the param.
  return showBytes(Buffer.from(text.replace(/[\u0100-\uffff]/g, '?'), 'latin1'), 32);
}

// ---- response decoding ------------------------------------------------------------------

/**
 * What {@link FastcgiResponseDecoder} reports, synchronously and in wire order. Every method is
 * optional: a missing one drops that event (the decoder still checks the record).
 *
 * `data` is a view of the pushed chunk (zero copy: copy it to keep it past a reuse of that
 * buffer), never empty. A record's content may come in several pieces when it straddles
 * chunks; `recordEnd` is true on the last piece of each record.
 */
export interface FastcgiResponseHandler {
  /** STDOUT bytes of an active request: the CGI-style response head and body. */
  onStdout?(requestId: number, data: Buffer, recordEnd: boolean): void;
  /**
   * An empty STDOUT record: end of the STDOUT stream. Reported each time one arrives: a
   * STDOUT record after it is reported too (php-fpm bug #72185 sent an empty record first), so the
   * end of a response is END_REQUEST, not this.
   */
  onStdoutEnd?(requestId: number): void;
  /** STDERR bytes of an active request: the application's error log, never response body. */
  onStderr?(requestId: number, data: Buffer, recordEnd: boolean): void;
  /** An empty STDERR record: end of the STDERR stream. */
  onStderrEnd?(requestId: number): void;
  /**
   * END_REQUEST (spec §5.5). `appStatus` is the unsigned 32-bit value; `protocolStatus` is the
   * raw byte (see `ProtocolStatus`; any other value is passed on as is, {@link protocolStatusName}).
   * The reserved bytes are ignored (php-fpm leaves stale bytes there: UP-9). The id is no longer
   * active when this runs, so the handler may register it again for the next request.
   */
  onEndRequest?(requestId: number, appStatus: number, protocolStatus: number): void;
  /**
   * GET_VALUES_RESULT (spec §4.1), its pairs in wire order as latin1 strings, unvalidated: names
   * that were not asked for, missing names, non-numeric values all come through (UP-37). An empty
   * record gives `[]` (Go's server sends one after its answer).
   */
  onGetValuesResult?(pairs: Pair[]): void;
  /** UNKNOWN_TYPE (spec §4.2): the application did not understand a management record of `type`. */
  onUnknownType?(type: number): void;
}

/** The name of a `protocolStatus` of END_REQUEST, for logs: `UNKNOWN(7)` for a value the spec lacks. */
export function protocolStatusName(protocolStatus: number): string {
  switch (protocolStatus) {
    case ProtocolStatus.RequestComplete:
      return 'REQUEST_COMPLETE';
    case ProtocolStatus.CantMpxConn:
      return 'CANT_MPX_CONN';
    case ProtocolStatus.Overloaded:
      return 'OVERLOADED';
    case ProtocolStatus.UnknownRole:
      return 'UNKNOWN_ROLE';
    default:
      return `UNKNOWN(${protocolStatus})`;
  }
}

const TYPE_NAMES: readonly string[] = [
  'type 0',
  'BEGIN_REQUEST',
  'ABORT_REQUEST',
  'END_REQUEST',
  'PARAMS',
  'STDIN',
  'STDOUT',
  'STDERR',
  'DATA',
  'GET_VALUES',
  'GET_VALUES_RESULT',
  'UNKNOWN_TYPE',
];

function typeName(type: number): string {
  return TYPE_NAMES[type] ?? `type ${type}`;
}

const S_HEADER = 0;
/** STDOUT/STDERR content: handed out as it arrives. */
const S_STREAM = 1;
/** END_REQUEST/UNKNOWN_TYPE content: 8 bytes, collected. */
const S_FIXED = 2;
/** GET_VALUES_RESULT content: fed to a ParamsDecoder as it arrives. */
const S_VALUES = 3;
const S_PADDING = 4;

/**
 * Push parser for the application's side of one FastCGI connection.
 *
 * The client calls {@link register} with each request id when it sends that BEGIN_REQUEST; the
 * decoder forgets the id at its END_REQUEST. It throws a ProtocolError (and stays dead: every
 * later `push()` or `end()` rethrows it, and no handler runs again) for:
 *
 * - a record header whose version is not 1 (FCGI_BAD_VERSION);
 * - STDOUT, STDERR or END_REQUEST for an id that is not active: never registered, id 0, or
 *   already ended (a record after END_REQUEST, a second END_REQUEST); GET_VALUES_RESULT or
 *   UNKNOWN_TYPE on an id other than 0 (FCGI_UNEXPECTED_REQUEST_ID, UP-8). A record after
 *   END_REQUEST comes when that response is complete: the client keeps the response and drops
 *   the connection instead of pooling it;
 * - a type only web servers send: BEGIN_REQUEST, ABORT_REQUEST, PARAMS, STDIN, DATA, GET_VALUES
 *   (FCGI_UNEXPECTED_RECORD_TYPE, UP-8);
 * - a type FastCGI 1.0 does not define, 0 or 12..255, with any request id
 *   (FCGI_UNKNOWN_RECORD_TYPE, UP-8). An error rather than a skipped record, unlike the front
 *   (F-9): spec §4.2 gives an application UNKNOWN_TYPE to answer a web server's new management
 *   types, but nothing lets an application send a web server a type it does not know, and no
 *   server does. Such a record comes from a peer that is not speaking FastCGI to us or from a
 *   stream whose framing is already lost (a length misread upstream turns body bytes into
 *   "records", as in the HAProxy truncation bug), so skipping it would trust lengths that are
 *   likely wrong and answer the client with whatever follows;
 * - an END_REQUEST or UNKNOWN_TYPE body that is not 8 bytes (FCGI_BAD_END_REQUEST,
 *   FCGI_BAD_UNKNOWN_TYPE), seen in the header, before any of it is read;
 * - a GET_VALUES_RESULT body that is not whole pairs, a length running past the record included
 *   (FCGI_PARAMS_TRUNCATED), or that holds more than 1000 pairs (LimitError FCGI_TOO_MANY_PARAMS).
 *
 * Memory is bounded: it holds at most one record header, the 8-byte body of END_REQUEST or
 * UNKNOWN_TYPE, and the pairs of one GET_VALUES_RESULT (at most 65535 bytes); STDOUT and STDERR are
 * handed out as views of the pushed chunks as they arrive, within a record. Padding is skipped,
 * never read.
 *
 * @example
 * const decoder = new FastcgiResponseDecoder({ onStdout: (id, data) => head.push(data), onEndRequest: done });
 * decoder.register(1);
 * for (const b of [...encodeFastcgiRequest(1, { keepConn: true, params }), encodeStdinEnd(1)]) socket.write(b);
 * socket.on('data', (chunk) => decoder.push(chunk));
 * socket.on('end', () => decoder.end());
 */
export class FastcgiResponseDecoder {
  private readonly handler: FastcgiResponseHandler;
  private readonly active = new Set<number>();
  /** The id of the latest END_REQUEST, for the message of a record that comes after it. */
  private lastEnded = -1;

  private state = S_HEADER;
  /** A header that straddles chunks (slow path only). */
  private readonly header = Buffer.alloc(FCGI_HEADER_LEN);
  private headerFill = 0;
  // The current record, once its header is read.
  private type = 0;
  private requestId = 0;
  private contentLength = 0;
  private paddingLength = 0;
  private contentLeft = 0;
  private paddingLeft = 0;
  /** The 8-byte body of END_REQUEST/UNKNOWN_TYPE when it straddles chunks. */
  private readonly fixed = Buffer.alloc(8);
  private values: ParamsDecoder | null = null;

  private failure: unknown = null;
  private busy = false;
  private ended = false;

  constructor(handler: FastcgiResponseHandler) {
    this.handler = handler;
  }

  /**
   * Marks `requestId` active: call it when sending its BEGIN_REQUEST. Misuse (id 0, out of
   * range, already active) throws RangeError.
   */
  register(requestId: number): void {
    checkRequestId(requestId);
    if (this.active.has(requestId)) throw new RangeError(`fastcgi: request id ${requestId} is already active on this connection`);
    this.active.add(requestId);
  }

  /** Whether `requestId` is registered and has not had its END_REQUEST. */
  isActive(requestId: number): boolean {
    return this.active.has(requestId);
  }

  /** The active request ids, in registration order. */
  get activeRequestIds(): number[] {
    return [...this.active];
  }

  /** Bytes of the current, incomplete record received so far; 0 on a record boundary. */
  get pending(): number {
    if (this.state === S_HEADER) return this.headerFill;
    return FCGI_HEADER_LEN + this.contentLength - this.contentLeft + this.paddingLength - this.paddingLeft;
  }

  /** The error that killed this decoder, or null while it is alive. */
  get error(): unknown {
    return this.failure;
  }

  /**
   * Feeds the next bytes of the connection; runs the handler for what they complete. Throws
   * ProtocolError for bad input; any throw (also one from the handler) leaves the decoder dead.
   */
  push(chunk: Buffer): void {
    if (this.failure !== null) throw this.failure;
    if (this.busy) throw new Error('fastcgi: FastcgiResponseDecoder.push() called from inside its handler');
    if (this.ended) throw new Error('fastcgi: FastcgiResponseDecoder.push() after end()');
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

  /**
   * The connection ended (EOF). Throws ProtocolError FCGI_TRUNCATED_RECORD if it ended inside a
   * record, else FCGI_MISSING_END_REQUEST if a registered request never got its END_REQUEST
   * (UP-12: that response failed, whatever STDOUT brought).
   */
  end(): void {
    if (this.failure !== null) throw this.failure;
    if (this.busy) throw new Error('fastcgi: FastcgiResponseDecoder.end() called from inside its handler');
    this.ended = true;
    let err: ProtocolError | null = null;
    if (this.state === S_HEADER && this.headerFill !== 0) {
      err = new ProtocolError(
        PROTOCOL,
        FastcgiErrorCode.TruncatedRecord,
        `connection ended inside a record header (${this.headerFill} of 8 bytes)`,
      );
    } else if (this.state !== S_HEADER) {
      err = new ProtocolError(
        PROTOCOL,
        FastcgiErrorCode.TruncatedRecord,
        `connection ended inside the ${typeName(this.type)} record of request ${this.requestId} ` +
          `(${this.pending} of ${FCGI_HEADER_LEN + this.contentLength + this.paddingLength} bytes)`,
      );
    } else if (this.active.size !== 0) {
      err = new ProtocolError(
        PROTOCOL,
        FastcgiErrorCode.MissingEndRequest,
        `connection ended before the END_REQUEST of request ${[...this.active].join(', ')}`,
      );
    }
    if (err !== null) {
      this.failure = err;
      throw err;
    }
  }

  private parse(chunk: Buffer): void {
    const len = chunk.length;
    let pos = 0;
    while (pos < len) {
      switch (this.state) {
        case S_HEADER: {
          if (this.headerFill === 0 && len - pos >= FCGI_HEADER_LEN) {
            // Fast path: the whole header is in this chunk; read it in place.
            const at = pos;
            pos += FCGI_HEADER_LEN;
            this.startRecord(chunk, at);
          } else {
            const take = Math.min(FCGI_HEADER_LEN - this.headerFill, len - pos);
            chunk.copy(this.header, this.headerFill, pos, pos + take);
            this.headerFill += take;
            pos += take;
            if (this.headerFill < FCGI_HEADER_LEN) return;
            this.headerFill = 0;
            this.startRecord(this.header, 0);
          }
          break;
        }
        case S_STREAM: {
          const take = Math.min(this.contentLeft, len - pos);
          const data = take === len ? chunk : chunk.subarray(pos, pos + take);
          pos += take;
          this.contentLeft -= take;
          const recordEnd = this.contentLeft === 0;
          if (recordEnd) this.toPadding();
          if (this.type === RecordType.Stdout) this.handler.onStdout?.(this.requestId, data, recordEnd);
          else this.handler.onStderr?.(this.requestId, data, recordEnd);
          break;
        }
        case S_FIXED: {
          let body: Buffer;
          let at: number;
          if (this.contentLeft === 8 && len - pos >= 8) {
            body = chunk;
            at = pos;
            pos += 8;
          } else {
            const fill = 8 - this.contentLeft;
            const take = Math.min(this.contentLeft, len - pos);
            chunk.copy(this.fixed, fill, pos, pos + take);
            pos += take;
            this.contentLeft -= take;
            if (this.contentLeft !== 0) return;
            body = this.fixed;
            at = 0;
          }
          this.contentLeft = 0;
          this.toPadding();
          this.finishFixed(body, at);
          break;
        }
        case S_VALUES: {
          const take = Math.min(this.contentLeft, len - pos);
          const values = this.values!;
          let pairs: Pair[];
          try {
            values.push(take === len ? chunk : chunk.subarray(pos, pos + take));
            pos += take;
            this.contentLeft -= take;
            if (this.contentLeft !== 0) return;
            pairs = values.end();
          } catch (err) {
            throw aboutValues(err);
          }
          this.toPadding();
          this.handler.onGetValuesResult?.(pairs);
          break;
        }
        default: {
          // S_PADDING: skipped, never read.
          const skip = Math.min(this.paddingLeft, len - pos);
          pos += skip;
          this.paddingLeft -= skip;
          if (this.paddingLeft === 0) this.state = S_HEADER;
        }
      }
    }
  }

  /** Checks a complete header (at `at` in `h`) and enters the state of its content. */
  private startRecord(h: Buffer, at: number): void {
    if (h[at] !== FCGI_VERSION_1) {
      throw new ProtocolError(
        PROTOCOL,
        FastcgiErrorCode.BadVersion,
        `unsupported record version ${h[at]!} (expected 1) in header "${showBytes(h.subarray(at, at + FCGI_HEADER_LEN))}"`,
      );
    }
    const type = h[at + 1]!;
    const requestId = (h[at + 2]! << 8) | h[at + 3]!;
    const cl = (h[at + 4]! << 8) | h[at + 5]!;
    let state: number;
    switch (type) {
      case RecordType.Stdout:
      case RecordType.Stderr:
        this.checkActive(type, requestId);
        state = S_STREAM;
        break;
      case RecordType.EndRequest:
        this.checkActive(type, requestId);
        if (cl !== END_REQUEST_BODY_LEN) {
          throw new ProtocolError(
            PROTOCOL,
            FastcgiErrorCode.BadEndRequest,
            `END_REQUEST of request ${requestId} has a ${cl}-byte body (expected 8)`,
          );
        }
        state = S_FIXED;
        break;
      case RecordType.GetValuesResult:
        this.checkManagement(type, requestId);
        state = S_VALUES;
        break;
      case RecordType.UnknownType:
        this.checkManagement(type, requestId);
        if (cl !== UNKNOWN_TYPE_BODY_LEN) {
          throw new ProtocolError(PROTOCOL, FastcgiErrorCode.BadUnknownType, `UNKNOWN_TYPE has a ${cl}-byte body (expected 8)`);
        }
        state = S_FIXED;
        break;
      case RecordType.BeginRequest:
      case RecordType.AbortRequest:
      case RecordType.Params:
      case RecordType.Stdin:
      case RecordType.Data:
      case RecordType.GetValues:
        throw new ProtocolError(
          PROTOCOL,
          FastcgiErrorCode.UnexpectedRecordType,
          `${typeName(type)} record (request id ${requestId}) from the application: only a web server sends it`,
        );
      default:
        throw new ProtocolError(
          PROTOCOL,
          FastcgiErrorCode.UnknownRecordType,
          `record of unknown type ${type} (request id ${requestId}, ${cl} content bytes) from the application`,
        );
    }
    this.type = type;
    this.requestId = requestId;
    this.contentLength = cl;
    this.paddingLength = h[at + 6]!;
    this.contentLeft = cl;
    this.paddingLeft = this.paddingLength;
    if (cl !== 0) {
      this.state = state;
      if (state === S_VALUES) {
        // No byte limit but the record's own length: a pair that runs past the record is
        // FCGI_PARAMS_TRUNCATED at its end, not a limit error. The pair count stays capped (1000).
        if (this.values === null) this.values = new ParamsDecoder({ maxParamsBytes: Number.MAX_SAFE_INTEGER });
        else this.values.reset();
      }
      return;
    }
    // Empty content (END_REQUEST and UNKNOWN_TYPE cannot get here): complete with its header.
    this.toPadding();
    if (type === RecordType.Stdout) this.handler.onStdoutEnd?.(requestId);
    else if (type === RecordType.Stderr) this.handler.onStderrEnd?.(requestId);
    else this.handler.onGetValuesResult?.([]);
  }

  private checkActive(type: number, requestId: number): void {
    if (this.active.has(requestId)) return;
    const why =
      requestId === FCGI_NULL_REQUEST_ID
        ? 'the management id 0'
        : requestId === this.lastEnded
          ? 'it has already ended with END_REQUEST'
          : 'not an active request';
    throw new ProtocolError(PROTOCOL, FastcgiErrorCode.UnexpectedRequestId, `${typeName(type)} record for request id ${requestId}: ${why}`);
  }

  private checkManagement(type: number, requestId: number): void {
    if (requestId === FCGI_NULL_REQUEST_ID) return;
    throw new ProtocolError(
      PROTOCOL,
      FastcgiErrorCode.UnexpectedRequestId,
      `${typeName(type)} record on request id ${requestId}: a management record has id 0`,
    );
  }

  /** Content done: skip the padding next (or read the next header if there is none). */
  private toPadding(): void {
    this.state = this.paddingLeft === 0 ? S_HEADER : S_PADDING;
  }

  /** The 8-byte body of END_REQUEST or UNKNOWN_TYPE at `at` in `b`; state is already settled. */
  private finishFixed(b: Buffer, at: number): void {
    if (this.type === RecordType.UnknownType) {
      this.handler.onUnknownType?.(b[at]!);
      return;
    }
    // appStatus BE32, protocolStatus, reserved[3] ignored (UP-9).
    const appStatus = b[at]! * 0x1000000 + ((b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!);
    const requestId = this.requestId;
    this.active.delete(requestId);
    this.lastEnded = requestId;
    this.handler.onEndRequest?.(requestId, appStatus, b[at + 4]!);
  }
}

/** A ParamsDecoder error, restated as one about a GET_VALUES_RESULT record (same code and class). */
function aboutValues(err: unknown): unknown {
  if (err instanceof LimitError) return new LimitError(PROTOCOL, err.code, `GET_VALUES_RESULT: ${err.detail}`, err.limit);
  if (err instanceof ProtocolError) return new ProtocolError(PROTOCOL, err.code, `GET_VALUES_RESULT: ${err.detail}`);
  return err;
}
