/**
 * FastCGI record encoders. Pure functions returning bytes; the front writes them
 * (`socket.cork()`, one `write()` per returned buffer, `socket.uncork()`), which keeps the
 * bytes of one record together on the connection (F-5).
 * Section numbers (§) refer to the FastCGI Specification (FastCGI-Archives/fcgi2 `doc/fcgi-spec.html`).
 *
 * Misuse by the caller (a record over 65535 bytes, an id over 65535, a char above U+00FF in
 * a pair) is a programming error and throws `RangeError`; wire input never reaches here.
 */
import {
  FCGI_HEADER_LEN,
  FCGI_MAX_ALIGNED_CONTENT_LENGTH,
  FCGI_MAX_CONTENT_LENGTH,
  FCGI_NULL_REQUEST_ID,
  FCGI_VERSION_1,
  ProtocolStatus,
  RecordType,
  Role,
} from './constants.js';
import { type GetValuesConfig, type Pair, decodeGetValues, encodeParams, resolveGetValues } from './params.js';

/**
 * Stream payloads up to this many bytes are copied into one buffer with their header and
 * padding; larger ones are sent as header/padding buffers around the caller's bytes (zero
 * copy). Measured on loopback with cork + write (Node 20): one copied buffer is 15-40% faster
 * up to ~3 KiB, segments are ~30% faster from 4 KiB on. 4080 keeps the single buffer
 * (8 + 4080) under Buffer's 4 KiB pool cut-off, above which every allocation is a fresh
 * ArrayBuffer.
 */
export const SINGLE_BUFFER_MAX = 4080;

const ZERO8 = Buffer.alloc(8);

/** Padding that brings `contentLength` to a multiple of 8 (F-4). */
export function paddingFor(contentLength: number): number {
  return -contentLength & 7;
}

function checkU16(what: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) {
    throw new RangeError(`fastcgi: ${what} must be an integer 0..65535, got ${String(value)}`);
  }
}

function checkU8(what: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) {
    throw new RangeError(`fastcgi: ${what} must be an integer 0..255, got ${String(value)}`);
  }
}

/** Writes an 8-byte record header (§3.3) at `offset`. No validation: callers check. */
export function writeHeader(
  buf: Buffer,
  offset: number,
  type: number,
  requestId: number,
  contentLength: number,
  paddingLength: number,
): void {
  buf[offset] = FCGI_VERSION_1;
  buf[offset + 1] = type;
  buf[offset + 2] = requestId >>> 8;
  buf[offset + 3] = requestId & 0xff;
  buf[offset + 4] = contentLength >>> 8;
  buf[offset + 5] = contentLength & 0xff;
  buf[offset + 6] = paddingLength;
  buf[offset + 7] = 0;
}

/**
 * One complete record in one buffer: header, a copy of `content`, zeroed padding.
 * An empty STDOUT/STDERR/STDIN/PARAMS record written with this is that stream's end
 * (F-34: use {@link encodeStreamRecords} for payload, which never emits one).
 *
 * @param paddingLength @default padding to a multiple of 8
 */
export function encodeRecord(
  type: number,
  requestId: number,
  content?: Uint8Array,
  paddingLength?: number,
): Buffer {
  const cl = content === undefined ? 0 : content.length;
  const pad = paddingLength ?? paddingFor(cl);
  checkU8('record type', type);
  checkU16('requestId', requestId);
  checkU16('contentLength', cl);
  checkU8('paddingLength', pad);
  const buf = Buffer.allocUnsafe(FCGI_HEADER_LEN + cl + pad);
  writeHeader(buf, 0, type, requestId, cl, pad);
  if (content !== undefined && cl !== 0) buf.set(content, FCGI_HEADER_LEN);
  if (pad !== 0) buf.fill(0, FCGI_HEADER_LEN + cl);
  return buf;
}

/**
 * Payload bytes of a stream (STDOUT, STDERR, STDIN, DATA, PARAMS) as records, appended to
 * `out` and returned. Records carry at most 65528 bytes (a multiple of 8, so only the last
 * needs padding; F-4). Small payloads become one buffer; larger ones reference `data`
 * without copying, so the caller must not reuse `data` until the write is done.
 * Empty `data` appends nothing (F-34: an empty record would end the stream).
 */
export function encodeStreamRecords(
  type: number,
  requestId: number,
  data: Uint8Array,
  out: Uint8Array[] = [],
): Uint8Array[] {
  checkU8('record type', type);
  checkU16('requestId', requestId);
  const size = data.length;
  if (size === 0) return out;
  if (size <= SINGLE_BUFFER_MAX) {
    const pad = paddingFor(size);
    const buf = Buffer.allocUnsafe(FCGI_HEADER_LEN + size + pad);
    writeHeader(buf, 0, type, requestId, size, pad);
    buf.set(data, FCGI_HEADER_LEN);
    if (pad !== 0) buf.fill(0, FCGI_HEADER_LEN + size);
    out.push(buf);
    return out;
  }
  const step = FCGI_MAX_ALIGNED_CONTENT_LENGTH;
  const records = Math.ceil(size / step);
  const lastLength = size - (records - 1) * step;
  const lastPad = paddingFor(lastLength);
  // All headers (and the final padding) in one small allocation, handed out as views.
  const headers = Buffer.allocUnsafe(records * FCGI_HEADER_LEN + lastPad);
  let offset = 0;
  for (let i = 0; i < records; i++) {
    const h = i * FCGI_HEADER_LEN;
    const last = i === records - 1;
    const length = last ? lastLength : step;
    writeHeader(headers, h, type, requestId, length, last ? lastPad : 0);
    out.push(headers.subarray(h, h + FCGI_HEADER_LEN), data.subarray(offset, offset + length));
    offset += length;
  }
  if (lastPad !== 0) {
    const p = records * FCGI_HEADER_LEN;
    headers.fill(0, p);
    out.push(headers.subarray(p));
  }
  return out;
}

/** Response body bytes as STDOUT records (see {@link encodeStreamRecords}). */
export function encodeStdout(requestId: number, data: Uint8Array, out?: Uint8Array[]): Uint8Array[] {
  return encodeStreamRecords(RecordType.Stdout, requestId, data, out);
}

/** Error-log bytes as STDERR records (see {@link encodeStreamRecords}). */
export function encodeStderr(requestId: number, data: Uint8Array, out?: Uint8Array[]): Uint8Array[] {
  return encodeStreamRecords(RecordType.Stderr, requestId, data, out);
}

/** Request body bytes as STDIN records, client side (see {@link encodeStreamRecords}). */
export function encodeStdin(requestId: number, data: Uint8Array, out?: Uint8Array[]): Uint8Array[] {
  return encodeStreamRecords(RecordType.Stdin, requestId, data, out);
}

/** The empty record that ends a stream of `type` (EOS, §3.3). */
export function encodeEndOfStream(type: number, requestId: number): Buffer {
  return encodeRecord(type, requestId);
}

/** §5.5 END_REQUEST `{appStatus (BE32), protocolStatus}`. */
export function encodeEndRequest(
  requestId: number,
  appStatus = 0,
  protocolStatus: number = ProtocolStatus.RequestComplete,
): Buffer {
  checkU16('requestId', requestId);
  checkU8('protocolStatus', protocolStatus);
  if (!Number.isInteger(appStatus) || appStatus < -0x80000000 || appStatus > 0xffffffff) {
    throw new RangeError(`fastcgi: appStatus must be a 32-bit integer, got ${String(appStatus)}`);
  }
  const buf = Buffer.alloc(FCGI_HEADER_LEN + 8);
  writeHeader(buf, 0, RecordType.EndRequest, requestId, 8, 0);
  buf.writeUInt32BE(appStatus >>> 0, 8);
  buf[12] = protocolStatus;
  return buf;
}

/**
 * The whole end of a response in one buffer, in F-35 order: STDOUT EOS, STDERR EOS (only
 * if STDERR data was sent), END_REQUEST `{appStatus, REQUEST_COMPLETE}`. Nothing may follow
 * it for this id (F-35, F-42).
 */
export function encodeResponseEnd(requestId: number, appStatus = 0, stderrSent = false): Buffer {
  const end = encodeEndRequest(requestId, appStatus, ProtocolStatus.RequestComplete);
  const eosCount = stderrSent ? 2 : 1;
  const buf = Buffer.allocUnsafe(eosCount * FCGI_HEADER_LEN + end.length);
  writeHeader(buf, 0, RecordType.Stdout, requestId, 0, 0);
  if (stderrSent) writeHeader(buf, FCGI_HEADER_LEN, RecordType.Stderr, requestId, 0, 0);
  end.copy(buf, eosCount * FCGI_HEADER_LEN);
  return buf;
}

/** §4.2 UNKNOWN_TYPE `{type, reserved[7]}` with the null request id (F-8). */
export function encodeUnknownType(type: number): Buffer {
  checkU8('record type', type);
  const body = Buffer.alloc(8);
  body[0] = type;
  return encodeRecord(RecordType.UnknownType, FCGI_NULL_REQUEST_ID, body);
}

/** §4.1 GET_VALUES_RESULT with the given pairs, one record, null request id (F-6). */
export function encodeGetValuesResult(pairs: Iterable<readonly [string, string]>): Buffer {
  return encodeRecord(RecordType.GetValuesResult, FCGI_NULL_REQUEST_ID, encodeParams(pairs));
}

/**
 * The complete answer to a GET_VALUES body: one GET_VALUES_RESULT with only the requested
 * names found in `values`, and no trailing empty record (F-6; Go's extra record is a quirk).
 * Throws `ProtocolError` if the query's pairs are malformed.
 *
 * @example
 * answerGetValues(content, { FCGI_MAX_CONNS: 100, FCGI_MAX_REQS: 100, FCGI_MPXS_CONNS: false })
 */
export function answerGetValues(content: Buffer, values: GetValuesConfig): Buffer {
  return encodeGetValuesResult(resolveGetValues(decodeGetValues(content), values));
}

// ---- client side (web-server role): tests, and the planned FastCGI client --------------

/** §5.1 BEGIN_REQUEST `{role (BE16), flags, reserved[5]}`. */
export function encodeBeginRequest(requestId: number, role: number = Role.Responder, flags = 0): Buffer {
  checkU16('role', role);
  checkU8('flags', flags);
  const body = Buffer.alloc(8);
  body[0] = role >>> 8;
  body[1] = role & 0xff;
  body[2] = flags;
  return encodeRecord(RecordType.BeginRequest, requestId, body);
}

/** §5.4 ABORT_REQUEST, no content. */
export function encodeAbortRequest(requestId: number): Buffer {
  return encodeRecord(RecordType.AbortRequest, requestId);
}

/**
 * A whole PARAMS stream in one buffer: the encoded pairs cut into records of at most
 * `recordSize` content bytes (cuts fall anywhere, even inside a length; that is legal,
 * F-17), each padded to 8, then PARAMS EOS.
 *
 * @param recordSize @default 65528
 */
export function encodeParamsStream(
  requestId: number,
  pairs: Iterable<readonly [string, string]>,
  recordSize: number = FCGI_MAX_ALIGNED_CONTENT_LENGTH,
): Buffer {
  checkU16('requestId', requestId);
  if (!Number.isInteger(recordSize) || recordSize < 1 || recordSize > FCGI_MAX_CONTENT_LENGTH) {
    throw new RangeError(`fastcgi: recordSize must be an integer 1..65535, got ${String(recordSize)}`);
  }
  const data = encodeParams(pairs);
  const records = Math.ceil(data.length / recordSize);
  let total = FCGI_HEADER_LEN;
  for (let i = 0; i < records; i++) {
    const length = Math.min(recordSize, data.length - i * recordSize);
    total += FCGI_HEADER_LEN + length + paddingFor(length);
  }
  const buf = Buffer.allocUnsafe(total);
  let offset = 0;
  for (let i = 0; i < records; i++) {
    const start = i * recordSize;
    const length = Math.min(recordSize, data.length - start);
    const pad = paddingFor(length);
    writeHeader(buf, offset, RecordType.Params, requestId, length, pad);
    data.copy(buf, offset + FCGI_HEADER_LEN, start, start + length);
    offset += FCGI_HEADER_LEN + length;
    ZERO8.copy(buf, offset, 0, pad);
    offset += pad;
  }
  writeHeader(buf, offset, RecordType.Params, requestId, 0, 0);
  return buf;
}

/** §4.1 GET_VALUES asking for `names` (values empty), null request id. */
export function encodeGetValues(names: Iterable<string>): Buffer {
  const pairs: Pair[] = [];
  for (const name of names) pairs.push([name, '']);
  return encodeRecord(RecordType.GetValues, FCGI_NULL_REQUEST_ID, encodeParams(pairs));
}
