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
 */
import { Buffer } from 'node:buffer';
import { FCGI_HEADER_LEN, Flag, RecordType, Role } from '../../protocols/fastcgi/constants.js';
import { protocolStatusName } from '../../protocols/fastcgi/client.js';

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

/**
 * Escapes bytes (a Buffer, or a latin1 string: one char per byte) for one line; cuts after `max`
 * bytes, saying how many there were. `quoted`: `"` is escaped too, for text shown in quotes.
 */
export function escapeBytes(data: Buffer | string, max = 120, quoted = false): string {
  const text = typeof data === 'string' ? data : data.toString('latin1');
  const shown = text.length > max ? text.slice(0, max) : text;
  let out = '';
  for (let i = 0; i < shown.length; i++) {
    const c = shown.charCodeAt(i);
    if (c === 0x5c) out += '\\\\';
    else if (c === 0x22 && quoted) out += '\\"';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x09) out += '\\t';
    else if (c >= 0x20 && c < 0x7f) out += shown[i] as string;
    else out += `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return text.length > max ? `${out}… (${text.length} bytes)` : out;
}

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

const RECORD_NAMES: Record<number, string> = {
  [RecordType.BeginRequest]: 'BEGIN_REQUEST',
  [RecordType.AbortRequest]: 'ABORT_REQUEST',
  [RecordType.EndRequest]: 'END_REQUEST',
  [RecordType.Params]: 'PARAMS',
  [RecordType.Stdin]: 'STDIN',
  [RecordType.Stdout]: 'STDOUT',
  [RecordType.Stderr]: 'STDERR',
  [RecordType.Data]: 'DATA',
  [RecordType.GetValues]: 'GET_VALUES',
  [RecordType.GetValuesResult]: 'GET_VALUES_RESULT',
  [RecordType.UnknownType]: 'UNKNOWN_TYPE',
};

const ROLE_NAMES: Record<number, string> = { [Role.Responder]: 'RESPONDER', [Role.Authorizer]: 'AUTHORIZER', [Role.Filter]: 'FILTER' };

/** The name of a FastCGI record type: `STDOUT`, or `type 12` for one FastCGI 1.0 lacks. */
export function fastcgiRecordName(type: number): string {
  return RECORD_NAMES[type] ?? `type ${type}`;
}

/**
 * The complete name-value pairs at the start of `buf` (spec §3.4 lengths: 1 byte up to 127, else
 * 4 bytes with the top bit set) and the bytes after the last complete pair.
 */
export function takePairs(buf: Buffer): { pairs: Array<[string, string]>; rest: Buffer } {
  const pairs: Array<[string, string]> = [];
  let at = 0;
  const readLength = (pos: number): [number, number] | undefined => {
    const b = buf[pos];
    if (b === undefined) return undefined;
    if (b < 0x80) return [b, pos + 1];
    if (pos + 4 > buf.length) return undefined;
    return [buf.readUInt32BE(pos) & 0x7fffffff, pos + 4];
  };
  for (;;) {
    const n = readLength(at);
    if (n === undefined) break;
    const v = readLength(n[1]);
    if (v === undefined) break;
    const end = v[1] + n[0] + v[0];
    if (end > buf.length) break;
    pairs.push([buf.toString('latin1', v[1], v[1] + n[0]), buf.toString('latin1', v[1] + n[0], end)]);
    at = end;
  }
  return { pairs, rest: buf.subarray(at) };
}

/**
 * The records of one direction of a FastCGI connection, annotated. Bytes that are not a record
 * (a version other than 1) end the listing with a hex view of them; a record cut short by the
 * end of `bytes` is marked `(truncated: N of M bytes)`.
 */
export function dumpFastcgi(direction: WireDirection, bytes: Buffer, options: WireDumpOptions = {}): string[] {
  const limits = limitsOf(options);
  const lines: string[] = [];
  /** PARAMS bytes of a pair that runs into the next record (F-17), per request id. */
  const carry = new Map<string, Buffer>();
  let at = 0;
  let records = 0;
  while (at < bytes.length) {
    const left = bytes.length - at;
    if (records === limits.maxRecords) {
      lines.push(`${direction} … ${left} more bytes not shown (the first ${limits.maxRecords} records are)`);
      break;
    }
    const version = bytes[at] as number;
    if (version !== 1) {
      lines.push(`${direction} (not a FastCGI record: version byte ${version}, expected 1; ${left} bytes from here)`, ...hexDump(bytes.subarray(at), Math.max(limits.hexBytes, 64)));
      break;
    }
    if (left < FCGI_HEADER_LEN) {
      lines.push(`${direction} (truncated record header: ${left} of ${FCGI_HEADER_LEN} bytes)`, ...hexDump(bytes.subarray(at), limits.hexBytes));
      break;
    }
    const type = bytes[at + 1] as number;
    const id = bytes.readUInt16BE(at + 2);
    const len = bytes.readUInt16BE(at + 4);
    const pad = bytes[at + 6] as number;
    const total = FCGI_HEADER_LEN + len + pad;
    const record = bytes.subarray(at, Math.min(bytes.length, at + total));
    const content = record.subarray(FCGI_HEADER_LEN, FCGI_HEADER_LEN + len);
    const truncated = record.length < total ? ` (truncated: ${record.length} of ${total} bytes)` : '';
    const name = fastcgiRecordName(type);
    let head = `${direction} ${name} id=${id} len=${len} pad=${pad}`;
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
        const key = `${type}/${id}`;
        if (len === 0) {
          head += ' (end of stream)';
          const left = carry.get(key);
          if (left !== undefined && left.length > 0) detail.push(`${INDENT}(${left.length} bytes of an incomplete pair before the end of the stream)`);
          carry.delete(key);
          break;
        }
        const { pairs, rest } = takePairs(Buffer.concat([carry.get(key) ?? Buffer.alloc(0), content]));
        for (const [n, v] of pairs) detail.push(pairLine(n, v, limits));
        if (rest.length > 0) detail.push(`${INDENT}(${rest.length} bytes of a pair that continues in the next record)`);
        if (type === RecordType.Params) carry.set(key, Buffer.from(rest));
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
    records++;
    at += record.length;
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
  const colon = bytes.indexOf(0x3a);
  const digits = colon === -1 ? '' : bytes.toString('latin1', 0, colon);
  if (!/^[0-9]{1,9}$/.test(digits)) return ['> (not an SCGI netstring)', ...hexDump(bytes, 64)];
  const len = Number(digits);
  const start = colon + 1;
  const block = bytes.subarray(start, start + len);
  const lines = [`> SCGI netstring len=${len} ("${digits}:" + ${len} header bytes + ",")${block.length < len ? ` (truncated: ${block.length} of ${len} bytes)` : ''}`];
  const fields = block.toString('latin1').split('\0');
  if (fields[fields.length - 1] === '') fields.pop();
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
  const vars = bytes.subarray(4, 4 + size);
  let at = 0;
  while (at + 2 <= vars.length) {
    const kl = vars.readUInt16LE(at);
    if (at + 2 + kl + 2 > vars.length) break;
    const key = vars.toString('latin1', at + 2, at + 2 + kl);
    const vl = vars.readUInt16LE(at + 2 + kl);
    const vs = at + 4 + kl;
    if (vs + vl > vars.length) break;
    lines.push(pairLine(key, vars.toString('latin1', vs, vs + vl), limits));
    at = vs + vl;
  }
  if (at < vars.length || vars.length < size) lines.push(`${INDENT}(${size - at} bytes of the vars block not decoded)`);
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
    const nl = bytes.indexOf(0x0a, at);
    if (nl === -1) break;
    const raw = bytes.subarray(at, nl);
    const line = raw[raw.length - 1] === 0x0d ? raw.subarray(0, raw.length - 1) : raw;
    at = nl + 1;
    if (line.length === 0) {
      ended = true;
      break;
    }
    lines.push(`${direction} ${escapeBytes(line, Math.max(limits.maxValue, 256))}${raw === line ? ' (bare LF)' : ''}`);
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
