/**
 * The annotated wire dump of `gatewire request --raw` (src/cli-request.ts): pure formatters fed
 * the bytes of one direction of one connection (what was written, or what was read), returning
 * lines of text. Nothing here does I/O or trusts the bytes: lengths are checked against what is
 * there, a record or a block that is cut short is said to be, and bytes that are not the
 * protocol are shown in hex.
 *
 * Every line starts with the direction, `>` for what gatewire sent and `<` for what came back;
 * detail lines under a record or block are indented by four spaces instead:
 *
 *   > BEGIN_REQUEST id=1 len=8 pad=0 role=RESPONDER flags=0
 *   > PARAMS id=1 len=243 pad=5
 *       REQUEST_METHOD = GET
 *       SCRIPT_FILENAME = /ping
 *   < END_REQUEST id=1 len=8 pad=0 appStatus=0 protocolStatus=REQUEST_COMPLETE
 *
 * FastCGI: one line per record (type, request id, content and padding lengths, and the fields of
 * BEGIN_REQUEST, END_REQUEST and UNKNOWN_TYPE), the decoded name-value pairs of PARAMS,
 * GET_VALUES and GET_VALUES_RESULT (a pair may straddle PARAMS records, F-17), a text preview of
 * STDIN/STDOUT/STDERR content, and a hex+ASCII view of the first bytes of each record. SCGI: the
 * netstring's length and pairs, then the body. uwsgi: modifier1, datasize, modifier2 and the
 * vars, then the body. HTTP-style text (every answer but FastCGI's, and HTTP requests): the head
 * lines, then the body length. Values are escaped (`\r`, `\n`, `\t`, `\\`, `\xNN` for other bytes
 * outside printable ASCII) and cut after `maxValue` chars with their length; at most
 * `maxRecords` FastCGI records are listed per direction.
 *
 * The bytes are parsed once, by the wire annotator of `gatewire compare` (src/compare/annotate.ts:
 * parseFastcgi, scgiNetstring and scgiStrings, uwsgiVars, nextLine); this module only words what
 * that parse found, so `--raw` and the compare report cannot disagree about the bytes.
 */
import type { Buffer } from 'node:buffer';
import { FCGI_HEADER_LEN, Flag, RecordType, Role } from '../../protocols/fastcgi/constants.js';
import { protocolStatusName } from '../../protocols/fastcgi/client.js';
import {
  decodePairSpans,
  escapeBytes,
  fastcgiRecordName,
  nextLine,
  pairText,
  parseFastcgi,
  scgiNetstring,
  scgiStrings,
  uwsgiVars,
  type PairSpan,
} from '../compare/annotate.js';

// Shared with the annotator, which owns them now; exported here as they always were.
export { escapeBytes, fastcgiRecordName };

export type WireDirection = '>' | '<';

export interface WireDumpOptions {
  /** Bytes of each record (or block) shown in hex. @default 32 */
  hexBytes?: number;
  /** Chars of a value or a text preview shown before it is cut. @default 120 */
  maxValue?: number;
  /** FastCGI records listed per direction; the rest are counted. @default 200 */
  maxRecords?: number;
}

interface Limits {
  hexBytes: number;
  maxValue: number;
  maxRecords: number;
}

function limitsOf(options: WireDumpOptions): Limits {
  return { hexBytes: options.hexBytes ?? 32, maxValue: options.maxValue ?? 120, maxRecords: options.maxRecords ?? 200 };
}

const INDENT = '    ';

/** Hex and ASCII of the first `max` bytes, 16 per line, indented; a note when more bytes follow. */
export function hexDump(data: Buffer, max = 32): string[] {
  const lines: string[] = [];
  const shown = data.subarray(0, Math.max(0, max));
  for (let off = 0; off < shown.length; off += 16) {
    const row = shown.subarray(off, off + 16);
    let hex = '';
    let ascii = '';
    for (let i = 0; i < 16; i++) {
      if (i === 8) hex += ' ';
      const b = row[i];
      hex += b === undefined ? '   ' : `${b.toString(16).padStart(2, '0')} `;
      if (b !== undefined) ascii += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.';
    }
    lines.push(`${INDENT}${off.toString(16).padStart(4, '0')}  ${hex} |${ascii}|`);
  }
  if (data.length > shown.length) lines.push(`${INDENT}… ${data.length - shown.length} more bytes`);
  return lines;
}

function pairLine(name: string, value: string, limits: Limits): string {
  return `${INDENT}${escapeBytes(name, limits.maxValue)} = ${value === '' ? '(empty)' : escapeBytes(value, limits.maxValue)}`;
}

// ---- FastCGI ------------------------------------------------------------------------------

const ROLE_NAMES: Record<number, string> = { [Role.Responder]: 'RESPONDER', [Role.Authorizer]: 'AUTHORIZER', [Role.Filter]: 'FILTER' };

/**
 * The complete name-value pairs at the start of `buf` (spec §3.4 lengths: 1 byte up to 127, else
 * 4 bytes with the top bit set) and the bytes after the last complete pair.
 */
export function takePairs(buf: Buffer): { pairs: Array<[string, string]>; rest: Buffer } {
  const spans = decodePairSpans(buf).filter((p) => p.complete);
  const pairs = spans.map((p): [string, string] => [buf.toString('latin1', p.cuts[2], p.cuts[3]), buf.toString('latin1', p.cuts[3], p.cuts[4])]);
  return { pairs, rest: buf.subarray(spans.length === 0 ? 0 : (spans[spans.length - 1] as PairSpan).cuts[4]) };
}

/**
 * The records of one direction of a FastCGI connection, annotated. Bytes that are not a record
 * (a version other than 1) end the listing with a hex view of them; a record cut short by the
 * end of `bytes` is marked `(truncated: N of M bytes)`.
 */
export function dumpFastcgi(direction: WireDirection, bytes: Buffer, options: WireDumpOptions = {}): string[] {
  const limits = limitsOf(options);
  // A count that is not a whole number >= 0 never matched the record count: no limit.
  const wire = parseFastcgi(bytes, Number.isInteger(limits.maxRecords) && limits.maxRecords >= 0 ? limits.maxRecords : Number.POSITIVE_INFINITY);
  const lines: string[] = [];
  wire.records.forEach((r, index) => {
    const { type, requestId: id, contentLength: len, paddingLength: pad } = r;
    const total = FCGI_HEADER_LEN + len + pad;
    const record = bytes.subarray(r.start, r.end);
    const content = bytes.subarray(r.start + FCGI_HEADER_LEN, r.contentEnd);
    const truncated = record.length < total ? ` (truncated: ${record.length} of ${total} bytes)` : '';
    let head = `${direction} ${fastcgiRecordName(type)} id=${id} len=${len} pad=${pad}`;
    const detail: string[] = [];
    const whole = content.length === len;
    switch (type) {
      case RecordType.BeginRequest:
        if (whole && len === 8) {
          const role = content.readUInt16BE(0);
          const flags = content[2] as number;
          head += ` role=${ROLE_NAMES[role] ?? role} flags=${flags === Flag.KeepConn ? 'KEEP_CONN' : flags === 0 ? '0' : `0x${flags.toString(16)}`}`;
        }
        break;
      case RecordType.EndRequest:
        if (whole && len === 8) head += ` appStatus=${content.readUInt32BE(0)} protocolStatus=${protocolStatusName(content[4] as number)}`;
        break;
      case RecordType.UnknownType:
        if (whole && len === 8) head += ` type=${content[0] as number} (${fastcgiRecordName(content[0] as number)})`;
        break;
      case RecordType.Params:
      case RecordType.GetValues:
      case RecordType.GetValuesResult: {
        const entry = wire.streams.get(index);
        if (len === 0) {
          head += ' (end of stream)';
          const left = entry === undefined ? 0 : entry.stream.data.length - entry.stream.done;
          if (left > 0) detail.push(`${INDENT}(${left} bytes of an incomplete pair before the end of the stream)`);
          break;
        }
        if (entry === undefined || entry.segment === null) break;
        // A pair is shown once, in the record where it ends (F-17: it may begin records earlier).
        const { stream, segment } = entry;
        const segEnd = segment.at + segment.length;
        let done = 0;
        for (const pair of stream.pairs) {
          if (!pair.complete || pair.cuts[4] > segEnd) break;
          done = pair.cuts[4];
          if (done > segment.at) detail.push(pairLine(pairText(stream, pair, 'name'), pairText(stream, pair, 'value'), limits));
        }
        if (segEnd > done) detail.push(`${INDENT}(${segEnd - done} bytes of a pair that continues in the next record)`);
        break;
      }
      case RecordType.Stdin:
      case RecordType.Stdout:
      case RecordType.Stderr:
      case RecordType.Data:
        if (len === 0) head += ' (end of stream)';
        else detail.push(`${INDENT}"${escapeBytes(content, limits.maxValue, true)}"`);
        break;
      default:
        break;
    }
    lines.push(head + truncated, ...detail, ...hexDump(record, limits.hexBytes));
  });
  const stop = wire.stop;
  if (stop !== null) {
    const left = bytes.length - stop.at;
    if (stop.reason === 'limit') lines.push(`${direction} … ${left} more bytes not shown (the first ${limits.maxRecords} records are)`);
    else if (stop.reason === 'version') {
      lines.push(`${direction} (not a FastCGI record: version byte ${bytes[stop.at] as number}, expected 1; ${left} bytes from here)`, ...hexDump(bytes.subarray(stop.at), Math.max(limits.hexBytes, 64)));
    } else lines.push(`${direction} (truncated record header: ${left} of ${FCGI_HEADER_LEN} bytes)`, ...hexDump(bytes.subarray(stop.at), limits.hexBytes));
  }
  if (bytes.length === 0) lines.push(`${direction} (nothing)`);
  return lines;
}

// ---- SCGI, uwsgi ----------------------------------------------------------------------------

function bodyLines(direction: WireDirection, label: string, body: Buffer, limits: Limits): string[] {
  if (body.length === 0) return [`${direction} ${label} len=0`];
  return [`${direction} ${label} len=${body.length}`, `${INDENT}"${escapeBytes(body, limits.maxValue, true)}"`, ...hexDump(body, limits.hexBytes)];
}

/** An SCGI request as written: the netstring (its length and pairs), then the body. */
export function dumpScgiRequest(bytes: Buffer, options: WireDumpOptions = {}): string[] {
  const limits = limitsOf(options);
  const ns = scgiNetstring(bytes);
  if (ns === null) return ['> (not an SCGI netstring)', ...hexDump(bytes, 64)];
  const { digits, length: len, blockStart: start } = ns;
  const have = Math.min(bytes.length, start + len) - start;
  const lines = [`> SCGI netstring len=${len} ("${digits}:" + ${len} header bytes + ",")${have < len ? ` (truncated: ${have} of ${len} bytes)` : ''}`];
  // Names and values alternate, whether or not the last has its NUL; a name alone is said to be.
  const fields = [...scgiStrings(bytes, start, start + have)].map((f) => bytes.toString('latin1', f.start, f.end));
  for (let i = 0; i + 1 < fields.length; i += 2) lines.push(pairLine(fields[i] as string, fields[i + 1] as string, limits));
  if (fields.length % 2 === 1) lines.push(`${INDENT}(a name without a value: ${escapeBytes(fields[fields.length - 1] as string, limits.maxValue)})`);
  const comma = bytes[start + len];
  if (comma !== undefined && comma !== 0x2c) lines.push(`${INDENT}(byte after the header block is 0x${comma.toString(16).padStart(2, '0')}, not ",")`);
  lines.push(...bodyLines('>', 'SCGI body', bytes.subarray(start + len + 1), limits));
  return lines;
}

/** A uwsgi request as written: the 4-byte header (modifier1, datasize, modifier2), the vars, then the body. */
export function dumpUwsgiRequest(bytes: Buffer, options: WireDumpOptions = {}): string[] {
  const limits = limitsOf(options);
  if (bytes.length < 4) return ['> (truncated uwsgi header)', ...hexDump(bytes, 64)];
  const size = bytes.readUInt16LE(1);
  const lines = [`> uwsgi modifier1=${bytes[0] as number} datasize=${size} modifier2=${bytes[3] as number}`, ...hexDump(bytes.subarray(0, 4), 4)];
  const blockEnd = Math.min(bytes.length, 4 + size);
  const { vars, decoded } = uwsgiVars(bytes, 4, blockEnd);
  for (const v of vars) lines.push(pairLine(bytes.toString('latin1', v.start + 2, v.keyEnd), bytes.toString('latin1', v.valueStart, v.end), limits));
  if (decoded < blockEnd || blockEnd - 4 < size) lines.push(`${INDENT}(${size - (decoded - 4)} bytes of the vars block not decoded)`);
  lines.push(...bodyLines('>', 'uwsgi body', bytes.subarray(4 + size), limits));
  return lines;
}

/**
 * HTTP-style text: a head of lines up to the first empty line (an HTTP request or answer, a CGI
 * answer over SCGI or uwsgi), each line shown escaped, then the body's length and first bytes.
 */
export function dumpHead(direction: WireDirection, bytes: Buffer, options: WireDumpOptions = {}): string[] {
  const limits = limitsOf(options);
  if (bytes.length === 0) return [`${direction} (nothing)`];
  const lines: string[] = [];
  let at = 0;
  let ended = false;
  while (at < bytes.length) {
    const line = nextLine(bytes, at);
    if (line === null) break;
    at = line.end;
    if (line.textEnd === line.start) {
      ended = true;
      break;
    }
    lines.push(`${direction} ${escapeBytes(bytes.subarray(line.start, line.textEnd), Math.max(limits.maxValue, 256))}${line.end - line.textEnd === 1 ? ' (bare LF)' : ''}`);
    if (lines.length > 500) break;
  }
  if (!ended) {
    lines.push(`${direction} (no end of head in ${bytes.length} bytes)`, ...hexDump(bytes.subarray(at), limits.hexBytes));
    return lines;
  }
  lines.push(`${direction} (end of head, ${at} bytes)`, ...bodyLines(direction, 'body', bytes.subarray(at), limits));
  return lines;
}

/** The dump of one direction of a `gatewire request` exchange, in the protocol's terms. */
export function dumpWire(protocol: 'fastcgi' | 'scgi' | 'uwsgi' | 'http', direction: WireDirection, bytes: Buffer, options: WireDumpOptions = {}): string[] {
  if (protocol === 'fastcgi') return dumpFastcgi(direction, bytes, options);
  if (direction === '>' && protocol === 'scgi') return dumpScgiRequest(bytes, options);
  if (direction === '>' && protocol === 'uwsgi') return dumpUwsgiRequest(bytes, options);
  return dumpHead(direction, bytes, options);
}
