/**
 * The wire annotator of `gatewire compare`: pure functions fed the bytes of one direction of one
 * exchange, returning annotated spans (WireField, src/compare/types.ts) that the terminal view
 * (annotate-text.ts) and the pages colour and explain byte by byte. Nothing here does I/O or
 * trusts the bytes: every length is checked against what is there, and nothing throws.
 *
 * The top-level fields tile the bytes: one per FastCGI record, per head line, per SCGI pair or
 * uwsgi var, per chunk, and the body. Children subdivide their parent: a record's header,
 * content and padding, a pair's lengths, name and value. Where the bytes stop making sense one
 * `error` field covers the rest, saying what was expected there. An error inside a unit that has
 * its own frame (a FastCGI record's content, the SCGI netstring, the uwsgi vars block, a head
 * line) stays inside it, since the frame says where the next unit starts.
 *
 * The parsers under the annotators (parseFastcgi, scgiNetstring and scgiStrings, uwsgiVars,
 * nextLine) and the escaping are exported: the `gatewire request --raw` dumper
 * (src/upstream/wire-dump.ts, where escapeBytes was born) words the same parse as lines of text,
 * so the two views cannot disagree about the bytes.
 */
import { Buffer } from 'node:buffer';
import {
  BEGIN_REQUEST_BODY_LEN,
  END_REQUEST_BODY_LEN,
  FCGI_HEADER_LEN,
  FCGI_VERSION_1,
  Flag,
  RecordType,
  Role,
  UNKNOWN_TYPE_BODY_LEN,
} from '../../protocols/fastcgi/constants.js';
import { protocolStatusName } from '../../protocols/fastcgi/client.js';
import { NETSTRING_COLON, NETSTRING_COMMA, SCGI_CONTENT_LENGTH, SCGI_NUL } from '../../protocols/scgi/constants.js';
import { Modifier1, UWSGI_CONTENT_LENGTH, UWSGI_HEADER_SIZE } from '../../protocols/uwsgi/constants.js';
import type { ProtocolName, WireField, WireFieldKind } from './types.js';

export interface AnnotateOptions {
  /** CGI requests: bytes of the environment block at the start; the rest is stdin. @default all of them */
  envBytes?: number;
  /** Fields listed (children included); the bytes after them become one `not annotated` field. @default 2000 */
  maxFields?: number;
}

export const DEFAULT_MAX_FIELDS = 2000;

/** Chars of a name shown in a label, and of a value or preview shown in a detail. */
const LABEL_CHARS = 80;
const VALUE_CHARS = 200;

/**
 * The bytes of one direction of one exchange, annotated. `protocol` and `direction` say what the
 * bytes should be: an HTTP request or answer, FastCGI records (both ways), an SCGI netstring or
 * uwsgi packet and the body, a CGI answer head (SCGI and CGI answers), a CGI environment block and
 * stdin (`envBytes` long, CGI requests).
 */
export function annotateWire(
  protocol: ProtocolName,
  direction: 'request' | 'response',
  bytes: Buffer,
  options: AnnotateOptions = {},
): WireField[] {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes as Uint8Array);
  const max = options.maxFields;
  const out = new Fields(buf, max !== undefined && max >= 0 ? Math.floor(max) : DEFAULT_MAX_FIELDS);
  try {
    if (protocol === 'fastcgi') annotateFastcgi(buf, out);
    else if (direction === 'response') annotateHttpMessage(buf, out, protocol === 'scgi' || protocol === 'cgi' ? 'cgi' : 'response');
    else if (protocol === 'http') annotateHttpMessage(buf, out, 'request');
    else if (protocol === 'scgi') annotateScgiRequest(buf, out);
    else if (protocol === 'uwsgi') annotateUwsgiRequest(buf, out);
    else annotateCgiRequest(buf, out, options.envBytes);
  } catch (err) {
    // A bug here must not take the report down with it: what was annotated stands.
    out.rest('error', `not annotated (internal error: ${err instanceof Error ? err.message : String(err)})`);
  }
  out.rest('body', undefined);
  return out.list;
}

// ---- fields ---------------------------------------------------------------------------------

function span(start: number, end: number, label: string, kind: WireFieldKind, detail?: string, children?: Array<WireField | null>): WireField {
  const field: WireField = { start, end, label, kind };
  if (detail !== undefined) field.detail = detail;
  const kids = children?.filter((c): c is WireField => c !== null && c.end > c.start);
  if (kids !== undefined && kids.length > 0) field.children = kids;
  return field;
}

/** A child span, or null when it would be empty (a zero-length name, no padding). */
function part(start: number, end: number, label: string, kind: WireFieldKind, detail?: string): WireField | null {
  return end > start ? span(start, end, label, kind, detail) : null;
}

function fieldCount(field: WireField): number {
  let n = 1;
  for (const child of field.children ?? []) n += fieldCount(child);
  return n;
}

/**
 * `field` with as many of its descendants, in order, as make `budget` fields (at least the
 * field itself); its detail says how many were left out.
 */
function fit(field: WireField, budget: number, top = true): WireField {
  const kept: WireField[] = [];
  let used = 1;
  for (const child of field.children ?? []) {
    if (used >= budget) break;
    const c = fit(child, budget - used, false);
    kept.push(c);
    used += fieldCount(c);
  }
  const { children: _all, ...rest } = field;
  const out: WireField = kept.length > 0 ? { ...rest, children: kept } : rest;
  const dropped = fieldCount(field) - used;
  if (top && dropped > 0) out.detail = `${out.detail === undefined ? '' : `${out.detail}; `}${dropped} more fields not annotated (maxFields)`;
  return out;
}

/**
 * The top-level fields, in order, and the cap on their number: once it is reached the field
 * that did not fit is cut to what fits and one `not annotated` field covers the rest, so the list
 * holds at most maxFields + 1 fields.
 */
class Fields {
  readonly list: WireField[] = [];
  /** Offset the next field must start at. */
  at = 0;
  full = false;
  private count = 0;

  constructor(
    private readonly bytes: Buffer,
    private readonly max: number,
  ) {}

  /** Units (records, pairs) beyond this many cannot be listed: each is at least one field. */
  get unitLimit(): number {
    return this.max + 1;
  }

  /** Adds the next field; false once the cap is reached (the caller stops). */
  add(field: WireField): boolean {
    if (this.full) return false;
    const n = fieldCount(field);
    if (this.count + n <= this.max) {
      this.list.push(field);
      this.count += n;
      this.at = field.end;
      return true;
    }
    if (this.count < this.max) {
      const cut = fit(field, this.max - this.count);
      this.list.push(cut);
      this.count += fieldCount(cut);
      this.at = field.end;
    }
    this.rest('body', undefined);
    return false;
  }

  /** One field for the bytes not covered yet (if any), and no more fields after it. */
  rest(kind: WireFieldKind, label: string | undefined): void {
    if (this.full) return;
    this.full = true;
    const n = this.bytes.length - this.at;
    if (n <= 0) return;
    const detail = this.count >= this.max ? `the first ${this.max} fields are annotated (maxFields)` : undefined;
    this.list.push(span(this.at, this.bytes.length, label ?? `not annotated (${n} bytes)`, kind, detail));
    this.at = this.bytes.length;
  }

  /** Bytes that are not what was expected: one error field for all that is left, and the end. */
  error(label: string, detail: string): void {
    if (this.full || this.at >= this.bytes.length) return;
    if (this.add(span(this.at, this.bytes.length, label, 'error', detail))) this.full = true;
  }
}

// ---- text -----------------------------------------------------------------------------------

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

/** bytes[start, end) escaped for one line (escapeBytes), at most `max` of them shown. */
function textOf(bytes: Buffer, start: number, end: number, max = VALUE_CHARS, quoted = false): string {
  const n = end - start;
  if (n <= max) return escapeBytes(bytes.subarray(start, end), max, quoted);
  return `${escapeBytes(bytes.subarray(start, start + max), max, quoted)}… (${n} bytes)`;
}

function valueText(bytes: Buffer, start: number, end: number): string {
  return end > start ? textOf(bytes, start, end) : '(empty)';
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** A name shown as a label; a stand-in when it is empty. */
function nameLabel(bytes: Buffer, start: number, end: number, empty = '(empty name)'): string {
  return end > start ? textOf(bytes, start, end, LABEL_CHARS) : empty;
}

/** A whole pair (SCGI, uwsgi, CGI): label the name, detail the value, children the parts given. */
function pairSpan(bytes: Buffer, start: number, end: number, name: [number, number], value: [number, number], parts: Array<WireField | null>): WireField {
  return span(start, end, nameLabel(bytes, name[0], name[1]), 'value', valueText(bytes, value[0], value[1]), parts);
}

function nameChild(bytes: Buffer, start: number, end: number, label = 'name'): WireField | null {
  return part(start, end, label, 'name', textOf(bytes, start, end));
}

function valueChild(bytes: Buffer, start: number, end: number, label = 'value'): WireField | null {
  return part(start, end, label, 'value', textOf(bytes, start, end));
}

/** A body; `declared` is what its length field (`Content-Length`, `CONTENT_LENGTH`) says, when it says. */
function bodySpan(start: number, end: number, label: string, declared?: [field: string, length: number | undefined]): WireField {
  const n = end - start;
  const said = declared?.[1];
  const note = said !== undefined && said !== n ? ` (${declared?.[0] as string} says ${said})` : '';
  return span(start, end, label, 'body', `${plural(n, 'byte')}${note}`);
}

/** A decimal length field's value: digits only, else undefined. */
function decimal(text: string | undefined): number | undefined {
  return text !== undefined && /^[0-9]{1,15}$/.test(text) ? Number(text) : undefined;
}

// ---- FastCGI --------------------------------------------------------------------------------

/** One record as framed by its header; `contentEnd` and `end` fall short when the bytes end first. */
export interface FastcgiRecordSpan {
  start: number;
  type: number;
  requestId: number;
  contentLength: number;
  paddingLength: number;
  contentEnd: number;
  end: number;
}

/**
 * A name-value pair (spec §3.4) in a stream of PARAMS content: `cuts` are the offsets in the
 * stream's data of its name length, value length, name, value and end. A pair the data ends
 * inside is cut where the data ends (`complete` false; a length not read yet is undefined).
 */
export interface PairSpan {
  cuts: [nameLengthAt: number, valueLengthAt: number, nameAt: number, valueAt: number, end: number];
  nameLength: number | undefined;
  valueLength: number | undefined;
  /** Bytes of each length field: 1 up to 127, else 4 with the high bit set. */
  nameSize: 1 | 4;
  valueSize: 1 | 4;
  complete: boolean;
}

/** Where one record's content lies in its stream's data (`at`) and in the bytes (`bytesAt`). */
export interface PairSegment {
  record: number;
  at: number;
  bytesAt: number;
  length: number;
}

/**
 * The name-value content of one PARAMS stream (the records of one request id up to the empty
 * record; a pair may straddle records, F-17), or of one GET_VALUES or GET_VALUES_RESULT record
 * (management records are not streams: they hold whole pairs).
 */
export interface PairStream {
  type: number;
  data: Buffer;
  segments: PairSegment[];
  pairs: PairSpan[];
  /** How the stream ended: its empty record, the end of its one record, or not within the bytes. */
  ended: 'empty record' | 'record' | 'open';
  /** End of the last complete pair in `data`: the bytes after it are a pair that is not whole. */
  done: number;
}

export interface FastcgiParse {
  records: FastcgiRecordSpan[];
  /** Why the records stop before the end of the bytes, and where; null when they reach it. */
  stop: { at: number; reason: 'version' | 'short header' | 'limit' } | null;
  /**
   * By record index: the stream of a PARAMS, GET_VALUES or GET_VALUES_RESULT record with content
   * and where that content lies in it; for the empty PARAMS record that ends a stream, that
   * stream and a null segment.
   */
  streams: Map<number, { stream: PairStream; segment: PairSegment | null }>;
}

function readPairLength(data: Buffer, at: number): { value: number | undefined; size: 1 | 4; end: number } {
  const b = data[at];
  if (b === undefined) return { value: undefined, size: 1, end: at };
  if (b < 0x80) return { value: b, size: 1, end: at + 1 };
  if (at + 4 > data.length) return { value: undefined, size: 4, end: data.length };
  return { value: data.readUInt32BE(at) & 0x7fffffff, size: 4, end: at + 4 };
}

function readPair(data: Buffer, start: number): PairSpan {
  const n = data.length;
  const nl = readPairLength(data, start);
  const vl = nl.value === undefined ? { value: undefined, size: 1 as const, end: nl.end } : readPairLength(data, nl.end);
  const nameEnd = nl.value === undefined || vl.value === undefined ? vl.end : Math.min(n, vl.end + nl.value);
  const end = nl.value === undefined || vl.value === undefined ? vl.end : Math.min(n, nameEnd + vl.value);
  const complete = nl.value !== undefined && vl.value !== undefined && vl.end + nl.value + vl.value <= n;
  return { cuts: [start, nl.end, vl.end, nameEnd, end], nameLength: nl.value, valueLength: vl.value, nameSize: nl.size, valueSize: vl.size, complete };
}

/**
 * The pairs of a name-value stream, in order (at most `max` of them); the last is cut short when
 * the data ends inside it.
 */
export function decodePairSpans(data: Buffer, max = Number.POSITIVE_INFINITY): PairSpan[] {
  const pairs: PairSpan[] = [];
  for (let at = 0; at < data.length && pairs.length < max; ) {
    const pair = readPair(data, at);
    pairs.push(pair);
    if (!pair.complete) break;
    at = pair.cuts[4];
  }
  return pairs;
}

/** The text of a pair's name or value (part 2 or 3), as far as the stream has it. */
export function pairText(stream: PairStream, pair: PairSpan, which: 'name' | 'value'): string {
  const i = which === 'name' ? 2 : 3;
  return stream.data.toString('latin1', pair.cuts[i], pair.cuts[i + 1]);
}

function isPairsType(type: number): boolean {
  return type === RecordType.Params || type === RecordType.GetValues || type === RecordType.GetValuesResult;
}

/**
 * The records of one direction of a FastCGI connection (at most `maxRecords`), and the
 * name-value pairs of their PARAMS, GET_VALUES and GET_VALUES_RESULT content (at most `maxPairs`
 * per stream: the annotator cannot list more fields than that, and 64 KiB of 2-byte pairs is
 * 32768 of them per record).
 */
export function parseFastcgi(bytes: Buffer, maxRecords = Number.POSITIVE_INFINITY, maxPairs = Number.POSITIVE_INFINITY): FastcgiParse {
  const records: FastcgiRecordSpan[] = [];
  const streams = new Map<number, { stream: PairStream; segment: PairSegment | null }>();
  const all: Array<{ stream: PairStream; parts: Buffer[]; size: number }> = [];
  /** Open PARAMS streams by request id. */
  const open = new Map<number, { stream: PairStream; parts: Buffer[]; size: number }>();
  let stop: FastcgiParse['stop'] = null;
  let at = 0;
  while (at < bytes.length) {
    if (records.length >= maxRecords) {
      stop = { at, reason: 'limit' };
      break;
    }
    if (bytes[at] !== FCGI_VERSION_1) {
      stop = { at, reason: 'version' };
      break;
    }
    if (bytes.length - at < FCGI_HEADER_LEN) {
      stop = { at, reason: 'short header' };
      break;
    }
    const contentLength = bytes.readUInt16BE(at + 4);
    const paddingLength = bytes[at + 6] as number;
    const contentStart = at + FCGI_HEADER_LEN;
    const record: FastcgiRecordSpan = {
      start: at,
      type: bytes[at + 1] as number,
      requestId: bytes.readUInt16BE(at + 2),
      contentLength,
      paddingLength,
      contentEnd: Math.min(bytes.length, contentStart + contentLength),
      end: Math.min(bytes.length, contentStart + contentLength + paddingLength),
    };
    const index = records.push(record) - 1;
    if (isPairsType(record.type)) {
      const isParams = record.type === RecordType.Params;
      if (contentLength === 0) {
        const ending = isParams ? open.get(record.requestId) : undefined;
        if (ending !== undefined) {
          ending.stream.ended = 'empty record';
          streams.set(index, { stream: ending.stream, segment: null });
          open.delete(record.requestId);
        }
      } else {
        let entry = isParams ? open.get(record.requestId) : undefined;
        if (entry === undefined) {
          entry = { stream: { type: record.type, data: Buffer.alloc(0), segments: [], pairs: [], ended: 'open', done: 0 }, parts: [], size: 0 };
          all.push(entry);
          if (isParams) open.set(record.requestId, entry);
        }
        const content = bytes.subarray(contentStart, record.contentEnd);
        const segment: PairSegment = { record: index, at: entry.size, bytesAt: contentStart, length: content.length };
        entry.parts.push(content);
        entry.size += content.length;
        entry.stream.segments.push(segment);
        streams.set(index, { stream: entry.stream, segment });
        if (!isParams && record.contentEnd - contentStart === contentLength) entry.stream.ended = 'record';
      }
    }
    at = record.end;
  }
  for (const { stream, parts } of all) {
    stream.data = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
    stream.pairs = decodePairSpans(stream.data, maxPairs);
    const last = stream.pairs[stream.pairs.length - 1];
    stream.done = last === undefined ? 0 : last.complete ? last.cuts[4] : last.cuts[0];
  }
  return { records, stop, streams };
}

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

/** The name of a FastCGI record type: `STDOUT`, or `type 12` for one FastCGI 1.0 lacks. */
export function fastcgiRecordName(type: number): string {
  return RECORD_NAMES[type] ?? `type ${type}`;
}

/** `FCGI_PARAMS`, or `record type 12` for a type FastCGI 1.0 does not define. */
function recordLabel(type: number): string {
  const name = fastcgiRecordName(type);
  return name.startsWith('type ') ? `record type ${type}` : `FCGI_${name}`;
}

const STREAM_TYPES: ReadonlySet<number> = new Set([RecordType.Params, RecordType.Stdin, RecordType.Stdout, RecordType.Stderr, RecordType.Data]);

const STREAM_CONTENT: Readonly<Record<number, string>> = {
  [RecordType.Stdin]: 'stdin: request body bytes',
  [RecordType.Stdout]: 'stdout: CGI response bytes',
  [RecordType.Stderr]: 'stderr: error log bytes',
  [RecordType.Data]: 'data: FILTER data bytes',
};

function annotateFastcgi(bytes: Buffer, out: Fields): void {
  // Each record, and each pair, is at least one field: more of them than the cap cannot be listed.
  const wire = parseFastcgi(bytes, out.unitLimit, out.unitLimit);
  for (let i = 0; i < wire.records.length; i++) if (!out.add(recordField(bytes, wire, i))) return;
  const stop = wire.stop;
  if (stop === null || stop.reason === 'limit') return;
  const left = bytes.length - stop.at;
  if (stop.reason === 'version') {
    const b = bytes[stop.at] as number;
    out.error('not a FastCGI record', `version byte ${b} (0x${b.toString(16).padStart(2, '0')}), expected ${FCGI_VERSION_1} (FCGI_VERSION_1); ${plural(left, 'byte')} from here`);
  } else {
    out.error('truncated record header', `the bytes end after ${left} of the ${FCGI_HEADER_LEN} bytes of a record header`);
  }
}

function recordField(bytes: Buffer, wire: FastcgiParse, index: number): WireField {
  const r = wire.records[index] as FastcgiRecordSpan;
  const label = recordLabel(r.type);
  const numbers = `version=${FCGI_VERSION_1} type=${r.type} requestId=${r.requestId} contentLength=${r.contentLength} paddingLength=${r.paddingLength}`;
  const total = FCGI_HEADER_LEN + r.contentLength + r.paddingLength;
  const cut = r.end - r.start < total ? `; the bytes end after ${r.end - r.start} of its ${total} bytes` : '';
  const contentStart = r.start + FCGI_HEADER_LEN;
  const paddingStart = contentStart + r.contentLength;
  const children = [
    span(r.start, contentStart, `${label} header`, 'header', numbers),
    recordContent(bytes, wire, index, label),
    part(paddingStart, r.end, `${label} padding`, 'padding', `${plural(r.paddingLength, 'byte')}${r.end - paddingStart < r.paddingLength ? ` (${r.end - paddingStart} here)` : ''}, ignored`),
  ];
  let kind: WireFieldKind = 'body';
  let detail = numbers + cut;
  if (r.contentLength === 0 && STREAM_TYPES.has(r.type)) {
    kind = 'end';
    detail = `end of the ${fastcgiRecordName(r.type)} stream`;
    const ended = wire.streams.get(index)?.stream;
    if (ended !== undefined && ended.done < ended.data.length) {
      detail += `, inside a pair (F-18: ${plural(ended.data.length - ended.done, 'byte')} of it came before)`;
    }
  } else if (r.contentLength === 0 && isPairsType(r.type)) {
    kind = 'end';
    detail = `empty ${label}: no pairs`;
  } else if (r.type === RecordType.BeginRequest || r.type === RecordType.AbortRequest || r.type === RecordType.UnknownType) {
    kind = 'header';
  } else if (r.type === RecordType.EndRequest) {
    kind = 'end';
  } else if (isPairsType(r.type)) {
    kind = 'value';
  }
  return span(r.start, r.end, label, kind, detail, children);
}

function recordContent(bytes: Buffer, wire: FastcgiParse, index: number, label: string): WireField | null {
  const r = wire.records[index] as FastcgiRecordSpan;
  const start = r.start + FCGI_HEADER_LEN;
  const end = r.contentEnd;
  if (end === start) return null;
  switch (r.type) {
    case RecordType.BeginRequest:
      return fixedBody(bytes, r, 'FCGI_BeginRequestBody', BEGIN_REQUEST_BODY_LEN, 'header', 'role (2 bytes), flags, 5 reserved bytes', beginRequestBody);
    case RecordType.EndRequest:
      return fixedBody(bytes, r, 'FCGI_EndRequestBody', END_REQUEST_BODY_LEN, 'end', 'appStatus (4 bytes), protocolStatus, 3 reserved bytes', endRequestBody);
    case RecordType.UnknownType:
      return fixedBody(bytes, r, 'FCGI_UnknownTypeBody', UNKNOWN_TYPE_BODY_LEN, 'header', 'type, 7 reserved bytes', unknownTypeBody);
    case RecordType.Params:
    case RecordType.GetValues:
    case RecordType.GetValuesResult: {
      const entry = wire.streams.get(index);
      const pieces = entry?.segment ? pairPieces(entry.stream, entry.segment, label) : [];
      return span(start, end, `${label} content`, 'value', `${plural(end - start, 'byte')} of name-value pairs`, pieces);
    }
    case RecordType.Stdin:
    case RecordType.Stdout:
    case RecordType.Stderr:
    case RecordType.Data:
      return span(start, end, STREAM_CONTENT[r.type] as string, 'body', `"${textOf(bytes, start, end, VALUE_CHARS, true)}"`);
    case RecordType.AbortRequest:
      return span(start, end, `${label} content`, 'error', `${plural(end - start, 'byte')}; FCGI_ABORT_REQUEST has no content`);
    default:
      return span(start, end, `${label} content`, 'body', `${plural(end - start, 'byte')} (a record type FastCGI 1.0 does not define)`);
  }
}

type BodyParts = (bytes: Buffer, at: number) => { detail: string; children: Array<WireField | null> };

/** The 8-byte body of BEGIN_REQUEST, END_REQUEST or UNKNOWN_TYPE, decoded when it is all there. */
function fixedBody(bytes: Buffer, r: FastcgiRecordSpan, label: string, size: number, kind: WireFieldKind, layout: string, parts: BodyParts): WireField {
  const start = r.start + FCGI_HEADER_LEN;
  if (r.contentLength !== size) return span(start, r.contentEnd, label, 'error', `expected ${size} bytes (${layout}), the header says ${r.contentLength}`);
  if (r.contentEnd - start < size) return span(start, r.contentEnd, label, kind, `the bytes end after ${r.contentEnd - start} of its ${size} bytes (${layout})`);
  const { detail, children } = parts(bytes, start);
  return span(start, start + size, label, kind, detail, children);
}

const ROLE_NAMES: Readonly<Record<number, string>> = {
  [Role.Responder]: 'FCGI_RESPONDER',
  [Role.Authorizer]: 'FCGI_AUTHORIZER',
  [Role.Filter]: 'FCGI_FILTER',
};

function beginRequestBody(bytes: Buffer, at: number): ReturnType<BodyParts> {
  const role = bytes.readUInt16BE(at);
  const flags = bytes[at + 2] as number;
  const roleText = `${ROLE_NAMES[role] ?? 'unknown role'} (${role})`;
  const flagsText =
    flags === 0
      ? '0: the application closes the connection after the request'
      : flags === Flag.KeepConn
        ? 'FCGI_KEEP_CONN: the connection stays open for the next request'
        : `0x${flags.toString(16).padStart(2, '0')}${flags & Flag.KeepConn ? ': FCGI_KEEP_CONN and unknown bits' : ': unknown bits'}`;
  return {
    detail: `role=${ROLE_NAMES[role] ?? role} flags=${flags & Flag.KeepConn ? 'FCGI_KEEP_CONN' : flags}`,
    children: [span(at, at + 2, 'role', 'value', roleText), span(at + 2, at + 3, 'flags', 'value', flagsText), span(at + 3, at + 8, 'reserved', 'padding', '5 bytes, ignored')],
  };
}

function protocolStatusText(status: number): string {
  const name = protocolStatusName(status);
  return name.startsWith('UNKNOWN') ? `unknown (${status})` : `FCGI_${name} (${status})`;
}

function endRequestBody(bytes: Buffer, at: number): ReturnType<BodyParts> {
  const appStatus = bytes.readUInt32BE(at);
  const status = bytes[at + 4] as number;
  return {
    detail: `appStatus=${appStatus} protocolStatus=${protocolStatusText(status).replace(/ \(\d+\)$/, '')}`,
    children: [
      span(at, at + 4, 'appStatus', 'value', `${appStatus}: the application's exit status`),
      span(at + 4, at + 5, 'protocolStatus', 'value', protocolStatusText(status)),
      span(at + 5, at + 8, 'reserved', 'padding', '3 bytes, ignored'),
    ],
  };
}

function unknownTypeBody(bytes: Buffer, at: number): ReturnType<BodyParts> {
  const type = bytes[at] as number;
  return {
    detail: `type=${type}: the application does not know this record type`,
    children: [span(at, at + 1, 'type', 'value', `${type} (${recordLabel(type)})`), span(at + 1, at + 8, 'reserved', 'padding', '7 bytes, ignored')],
  };
}

function lengthText(value: number | undefined, size: 1 | 4): string {
  if (value === undefined) return size === 4 ? 'a 4-byte length (high bit set), cut short' : 'missing';
  return size === 1 ? `${value} (1 byte)` : `${value} (4 bytes, high bit set)`;
}

/** The pieces of the stream's pairs that lie in one record's content (`segment`), in order. */
function pairPieces(stream: PairStream, segment: PairSegment, recordLabel: string): WireField[] {
  const segEnd = segment.at + segment.length;
  // The first pair that ends past the segment's start: pairs are in stream order.
  let lo = 0;
  for (let hi = stream.pairs.length; lo < hi; ) {
    const mid = (lo + hi) >>> 1;
    if ((stream.pairs[mid] as PairSpan).cuts[4] <= segment.at) lo = mid + 1;
    else hi = mid;
  }
  const pieces: WireField[] = [];
  for (let i = lo; i < stream.pairs.length && (stream.pairs[i] as PairSpan).cuts[0] < segEnd; i++) {
    pieces.push(pairPiece(stream, segment, stream.pairs[i] as PairSpan, recordLabel));
  }
  return pieces;
}

/**
 * The part of one pair that lies in one record's content: the whole pair, or a piece of one that
 * straddles records (F-17), labelled with the whole pair's name and value where the stream has them.
 */
function pairPiece(stream: PairStream, segment: PairSegment, pair: PairSpan, recordLabel: string): WireField {
  const data = stream.data;
  const segEnd = segment.at + segment.length;
  const toBytes = (x: number): number => segment.bytesAt + (x - segment.at);
  const [start, , nameAt, valueAt, end] = pair.cuts;
  const parts: Array<[label: string, kind: WireFieldKind, size: number | undefined, detail: string]> = [
    ['name length', 'length', pair.nameSize, lengthText(pair.nameLength, pair.nameSize)],
    ['value length', 'length', pair.valueSize, lengthText(pair.valueLength, pair.valueSize)],
    ['name', 'name', pair.nameLength, textOf(data, nameAt, valueAt)],
    ['value', 'value', pair.valueLength, textOf(data, valueAt, end)],
  ];
  const children = parts.map(([label, kind, size, detail], k) => {
    const from = Math.max(pair.cuts[k] as number, segment.at);
    const to = Math.min(pair.cuts[k + 1] as number, segEnd);
    const note = size !== undefined && to - from < size ? ` (${to - from} of its ${size} bytes in this record)` : '';
    return part(toBytes(from), toBytes(to), label, kind, detail + note);
  });
  const notes: string[] = [];
  if (start < segment.at) notes.push(`continued from an earlier ${recordLabel} record`);
  if (end > segEnd) notes.push(`continues in the next ${recordLabel} record`);
  let kind: WireFieldKind = 'value';
  if (!pair.complete && end <= segEnd) {
    const missing = pair.nameLength !== undefined && pair.valueLength !== undefined ? `: ${nameAt + pair.nameLength + pair.valueLength - end} bytes missing` : '';
    if (stream.ended === 'open') notes.push(`the bytes end inside this pair${missing}`);
    else {
      kind = 'error';
      notes.push(stream.ended === 'record' ? `the record ends inside this pair${missing} (${recordLabel} holds whole pairs)` : `the stream ends inside this pair${missing} (F-18)`);
    }
  }
  const nameWhole = pair.nameLength !== undefined && valueAt - nameAt === pair.nameLength;
  const value = pair.complete ? valueText(data, valueAt, end) : nameWhole ? textOf(data, valueAt, end) : '';
  const detail = [value, ...notes].filter((t) => t !== '').join('; ');
  const label = nameWhole ? nameLabel(data, nameAt, valueAt) : 'incomplete pair';
  return span(toBytes(Math.max(start, segment.at)), toBytes(Math.min(end, segEnd)), label, kind, detail, children);
}

// ---- HTTP-style heads and bodies --------------------------------------------------------------

/** One line of a head: `[start, textEnd)` is its text, `end` is past its LF (a CR before it is not text). */
export interface HeadLine {
  start: number;
  textEnd: number;
  end: number;
}

/** The line starting at `at`, or null when no LF ends it within the bytes. */
export function nextLine(bytes: Buffer, at: number): HeadLine | null {
  const nl = bytes.indexOf(0x0a, at);
  if (nl === -1) return null;
  return { start: at, textEnd: nl > at && bytes[nl - 1] === 0x0d ? nl - 1 : nl, end: nl + 1 };
}

/**
 * What a head says about the body after it. `request`: an HTTP request head; `response`: an HTTP
 * answer (the status line first); `cgi`: a CGI answer head (fields only, `Status:` among them;
 * an HTTP status line first is taken too, as uWSGI's SCGI answers have one).
 */
type HeadMode = 'request' | 'response' | 'cgi';

interface HeadInfo {
  status: number | undefined;
  chunked: boolean;
  contentLength: number | undefined;
}

const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([^ ]+) (HTTP\/[0-9]\.[0-9])$/;
const STATUS_LINE = /^(HTTP\/[0-9]\.[0-9]) ([0-9]{3})(?: (.*))?$/s;

function annotateHttpMessage(bytes: Buffer, out: Fields, mode: HeadMode): void {
  for (;;) {
    const head = annotateHead(bytes, out, mode);
    if (head === null) return;
    // An interim answer (100 Continue, 103 Early Hints) is followed by another head.
    if (mode === 'response' && head.status !== undefined && head.status < 200 && head.status !== 101 && out.at < bytes.length) continue;
    if (head.chunked) annotateChunks(bytes, out);
    else if (out.at < bytes.length) out.add(bodySpan(out.at, bytes.length, 'body', ['Content-Length', head.contentLength]));
    return;
  }
}

/** The head lines from `out.at` through the empty line; null when annotation ended inside it. */
function annotateHead(bytes: Buffer, out: Fields, mode: HeadMode): HeadInfo | null {
  const info: HeadInfo = { status: undefined, chunked: false, contentLength: undefined };
  let first = true;
  while (!out.full) {
    const line = nextLine(bytes, out.at);
    if (line === null) {
      if (out.at < bytes.length) {
        out.error('incomplete head', `no line end (LF) in the last ${plural(bytes.length - out.at, 'byte')}: a head is lines, then an empty line`);
      }
      return null;
    }
    if (line.textEnd === line.start) {
      const crlf = line.end - line.start === 2;
      if (first && mode !== 'cgi') {
        out.error(mode === 'request' ? 'not a request line' : 'not a status line', `an empty line where the ${mode === 'request' ? 'request line (METHOD target HTTP/1.1)' : 'status line (HTTP/1.1 200 OK)'} belongs`);
        return null;
      }
      if (!out.add(span(line.start, line.end, 'end of head', 'end', `empty line (${crlf ? 'CRLF' : 'LF'}): the head ends, the body follows`))) return null;
      return info;
    }
    const text = bytes.toString('latin1', line.start, line.textEnd);
    let field: WireField;
    if (first && mode === 'request') {
      const m = REQUEST_LINE.exec(text);
      if (m === null) {
        out.error('not a request line', `"${textOf(bytes, line.start, line.textEnd, LABEL_CHARS, true)}": expected METHOD SP target SP HTTP/1.1`);
        return null;
      }
      field = requestLine(bytes, line, m);
    } else if (first && (mode === 'response' || text.startsWith('HTTP/'))) {
      const m = STATUS_LINE.exec(text);
      if (m === null) {
        out.error('not a status line', `"${textOf(bytes, line.start, line.textEnd, LABEL_CHARS, true)}": expected HTTP/1.1 SP code SP reason`);
        return null;
      }
      info.status = Number(m[2]);
      field = statusLine(bytes, line, m, mode === 'cgi');
    } else {
      field = headerLine(bytes, line, info);
    }
    first = false;
    if (!out.add(field)) return null;
  }
  return null;
}

function lineEnding(line: HeadLine): string {
  return line.end - line.textEnd === 2 ? '' : ' (bare LF)';
}

function requestLine(bytes: Buffer, line: HeadLine, m: RegExpExecArray): WireField {
  const method = m[1] as string;
  const target = m[2] as string;
  const t = line.start + method.length + 1;
  const v = t + target.length + 1;
  return span(line.start, line.end, 'request line', 'header', `method=${method} target=${textOf(bytes, t, v - 1)} version=${m[3] as string}${lineEnding(line)}`, [
    span(line.start, t - 1, 'method', 'value', method),
    span(t, v - 1, 'target', 'value', textOf(bytes, t, v - 1)),
    span(v, line.textEnd, 'version', 'value', m[3] as string),
  ]);
}

function statusLine(bytes: Buffer, line: HeadLine, m: RegExpExecArray, inCgi: boolean): WireField {
  const version = m[1] as string;
  const code = m[2] as string;
  const c = line.start + version.length + 1;
  const r = c + 4;
  const reason = r <= line.textEnd ? textOf(bytes, r, line.textEnd) : '';
  const note = inCgi ? ' (an HTTP status line where a CGI head has a Status field)' : '';
  return span(line.start, line.end, 'status line', 'header', `version=${version} status=${code} reason=${reason}${note}${lineEnding(line)}`, [
    span(line.start, c - 1, 'version', 'value', version),
    span(c, c + 3, 'status code', 'value', code),
    part(r, line.textEnd, 'reason', 'value', reason),
  ]);
}

/** A `Name: value` line (or an obs-fold continuation line); notes what frames the body. */
function headerLine(bytes: Buffer, line: HeadLine, info: HeadInfo): WireField {
  const first = bytes[line.start] as number;
  if (first === 0x20 || first === 0x09) {
    return span(line.start, line.end, 'continuation line', 'value', `${textOf(bytes, line.start, line.textEnd)} (obs-fold: continues the field above)`);
  }
  const colon = line.start + bytes.subarray(line.start, line.textEnd).indexOf(0x3a);
  const nameText = colon > line.start ? bytes.toString('latin1', line.start, colon) : '';
  if (nameText === '' || /[ \t]/.test(nameText)) {
    return span(line.start, line.end, 'not a header line', 'error', `"${textOf(bytes, line.start, line.textEnd, LABEL_CHARS, true)}": expected "Name: value", or the empty line that ends the head`);
  }
  let vs = colon + 1;
  let ve = line.textEnd;
  while (vs < ve && (bytes[vs] === 0x20 || bytes[vs] === 0x09)) vs++;
  while (ve > vs && (bytes[ve - 1] === 0x20 || bytes[ve - 1] === 0x09)) ve--;
  const name = nameText.toLowerCase();
  const value = bytes.toString('latin1', vs, ve);
  if (name === 'transfer-encoding') info.chunked = /(^|,)[ \t]*chunked[ \t]*$/i.test(value);
  else if (name === 'content-length') info.contentLength = decimal(value);
  else if (name === 'status' && info.status === undefined) info.status = decimal(value.slice(0, 3));
  return pairSpan(bytes, line.start, line.end, [line.start, colon], [vs, ve], [nameChild(bytes, line.start, colon), valueChild(bytes, vs, ve)]);
}

/** A chunked body (RFC 9112 §7.1): chunks, the last chunk, trailer fields, the empty line. */
function annotateChunks(bytes: Buffer, out: Fields): void {
  while (!out.full && out.at < bytes.length) {
    const line = nextLine(bytes, out.at);
    if (line === null) {
      out.error('incomplete chunk size line', `no line end (LF) in the last ${plural(bytes.length - out.at, 'byte')}: expected the chunk size in hex, then CRLF`);
      return;
    }
    const text = bytes.toString('latin1', line.start, line.textEnd);
    const m = /^([0-9A-Fa-f]{1,13})[ \t]*(;.*)?$/s.exec(text);
    if (m === null) {
      out.error('not a chunk size line', `"${textOf(bytes, line.start, line.textEnd, LABEL_CHARS, true)}": expected the chunk size in hex (then ;extensions), then CRLF`);
      return;
    }
    const size = parseInt(m[1] as string, 16);
    const ext = m[2] === undefined ? '' : `, extensions ${textOf(bytes, line.textEnd - m[2].length, line.textEnd)}`;
    const sizeLine = span(line.start, line.end, 'chunk size', 'length', `0x${m[1] as string} = ${plural(size, 'byte')}${size === 0 ? ': the last chunk' : ' of data follow'}${ext}`);
    if (size === 0) {
      if (!out.add(span(line.start, line.end, 'last chunk', 'end', 'size 0: the body ends; trailer fields may follow, then an empty line', [sizeLine]))) return;
      annotateTrailer(bytes, out);
      return;
    }
    const dataEnd = Math.min(bytes.length, line.end + size);
    const crlf = bytes[dataEnd] === 0x0d && bytes[dataEnd + 1] === 0x0a ? 2 : bytes[dataEnd] === 0x0a ? 1 : bytes[dataEnd] === 0x0d && dataEnd + 1 === bytes.length ? 1 : 0;
    const cut = dataEnd - line.end < size ? ` (the bytes end after ${dataEnd - line.end})` : '';
    const chunk = span(line.start, dataEnd + crlf, 'chunk', 'body', `${plural(size, 'byte')} of data${cut}`, [
      sizeLine,
      part(line.end, dataEnd, 'chunk data', 'body', `${plural(dataEnd - line.end, 'byte')}${cut}`),
      part(dataEnd, dataEnd + crlf, 'chunk end', 'end', crlf === 2 ? 'CRLF after the data' : bytes[dataEnd] === 0x0a ? 'LF after the data' : 'CR, then the bytes end'),
    ]);
    if (!out.add(chunk)) return;
    if (crlf === 0 && dataEnd < bytes.length) {
      out.error('not a chunk end', `expected CRLF after the ${plural(size, 'byte')} of chunk data`);
      return;
    }
  }
}

function annotateTrailer(bytes: Buffer, out: Fields): void {
  const info: HeadInfo = { status: undefined, chunked: false, contentLength: undefined };
  while (!out.full && out.at < bytes.length) {
    const line = nextLine(bytes, out.at);
    if (line === null) {
      out.error('incomplete trailer', `no line end (LF) in the last ${plural(bytes.length - out.at, 'byte')}: expected trailer fields, then an empty line`);
      return;
    }
    if (line.textEnd === line.start) {
      if (!out.add(span(line.start, line.end, 'end of chunked body', 'end', 'empty line: the message ends'))) return;
      if (out.at < bytes.length) out.error('after the message', `${plural(bytes.length - out.at, 'byte')} after the end of the chunked body`);
      return;
    }
    if (!out.add(headerLine(bytes, line, info))) return;
  }
}

// ---- SCGI -----------------------------------------------------------------------------------

/** The netstring's length prefix: its digits and the offset of the header block (after `:`); null when there is none. */
export function scgiNetstring(bytes: Buffer): { digits: string; length: number; blockStart: number } | null {
  let i = 0;
  while (i < bytes.length && i < 10 && (bytes[i] as number) >= 0x30 && (bytes[i] as number) <= 0x39) i++;
  if (i === 0 || i > 9 || bytes[i] !== NETSTRING_COLON) return null;
  const digits = bytes.toString('latin1', 0, i);
  return { digits, length: Number(digits), blockStart: i + 1 };
}

/** The NUL-terminated strings of `bytes[start, end)`; the last lacks its NUL (`nul` false) when the block ends first. */
export function* scgiStrings(bytes: Buffer, start: number, end: number): Generator<{ start: number; end: number; nul: boolean }> {
  let at = start;
  while (at < end) {
    const nul = bytes.indexOf(SCGI_NUL, at);
    if (nul === -1 || nul >= end) {
      yield { start: at, end, nul: false };
      return;
    }
    yield { start: at, end: nul, nul: true };
    at = nul + 1;
  }
}

function annotateScgiRequest(bytes: Buffer, out: Fields): void {
  const ns = scgiNetstring(bytes);
  if (ns === null) {
    out.error('not an SCGI netstring', 'expected the netstring length: decimal digits, then ":"');
    return;
  }
  const blockEnd = Math.min(bytes.length, ns.blockStart + ns.length);
  const zero = ns.digits.length > 1 && ns.digits.startsWith('0') ? ' (a leading 0 is not allowed, S-1)' : '';
  const cut = blockEnd - ns.blockStart < ns.length ? `; the bytes end after ${blockEnd - ns.blockStart} of them` : '';
  const lengthField = span(0, ns.blockStart, 'netstring length', 'length', `${plural(ns.length, 'byte')} of headers follow${zero}${cut}`);
  if (!out.add(lengthField)) return;
  let contentLength: number | undefined;
  const strings = scgiStrings(bytes, ns.blockStart, blockEnd);
  for (let name = strings.next(); !name.done && !out.full; name = strings.next()) {
    const n = name.value;
    const v = n.nul ? strings.next() : undefined;
    if (!n.nul || v === undefined || v.done === true || !v.value.nul) {
      const what = !n.nul ? 'a NUL after the header name' : v === undefined || v.done === true ? 'a value and its NUL after the header name' : 'a NUL after the header value';
      out.add(span(n.start, blockEnd, 'incomplete header', 'error', `expected ${what}${blockEnd < ns.blockStart + ns.length ? ' (the bytes end inside the header block)' : ' before the end of the header block'}`));
      break;
    }
    const value = v.value;
    if (bytes.toString('latin1', n.start, n.end) === SCGI_CONTENT_LENGTH) contentLength = decimal(bytes.toString('latin1', value.start, value.end));
    const pair = pairSpan(bytes, n.start, value.end + 1, [n.start, n.end], [value.start, value.end], [
      nameChild(bytes, n.start, n.end),
      span(n.end, n.end + 1, 'NUL', 'end', 'ends the name'),
      valueChild(bytes, value.start, value.end),
      span(value.end, value.end + 1, 'NUL', 'end', 'ends the value'),
    ]);
    if (!out.add(pair)) return;
  }
  if (out.full || blockEnd >= bytes.length) return;
  if (bytes[blockEnd] !== NETSTRING_COMMA) {
    out.error('not the netstring end', `expected "," after the ${plural(ns.length, 'header byte')}, found 0x${(bytes[blockEnd] as number).toString(16).padStart(2, '0')}`);
    return;
  }
  if (!out.add(span(blockEnd, blockEnd + 1, 'netstring end', 'end', '"," ends the header block; the body follows'))) return;
  if (out.at < bytes.length) out.add(bodySpan(out.at, bytes.length, 'body', [SCGI_CONTENT_LENGTH, contentLength]));
}

// ---- uwsgi ----------------------------------------------------------------------------------

const MODIFIER1_NAMES: Readonly<Record<number, string>> = {
  [Modifier1.Wsgi]: 'WSGI/default',
  [Modifier1.Psgi]: 'Perl PSGI',
  [Modifier1.LuaWsapi]: 'Lua WSAPI',
  [Modifier1.Rack]: 'Ruby Rack',
  [Modifier1.Jvm]: 'JVM',
  [Modifier1.Cgi]: 'CGI',
  [Modifier1.Management]: 'management',
  [Modifier1.Php]: 'PHP',
  [Modifier1.Mono]: 'Mono ASP.NET',
  [Modifier1.Spooler]: 'spooler',
  [Modifier1.SymbolCall]: 'symbol call',
  [Modifier1.Eval]: 'code evaluation',
  [Modifier1.WsgiPathInfo]: 'WSGI, PATH_INFO managed',
  [Modifier1.RawHttpResponse]: 'raw HTTP response',
  [Modifier1.Ping]: 'ping',
  [Modifier1.Cache]: 'cache',
  [Modifier1.Rpc]: 'RPC',
  [Modifier1.PersistentClose]: 'persistent-connection close',
  [Modifier1.Subscription]: 'subscription',
  [Modifier1.Response]: 'generic response',
};

/** One var of the uwsgi vars block: `[start, end)`, key `[keyStart, keyEnd)`, value `[valueStart, end)`. */
export interface UwsgiVar {
  start: number;
  keyEnd: number;
  valueStart: number;
  end: number;
}

/**
 * The whole vars of `bytes[start, end)` (the vars block, at most 65535 bytes), in order, and
 * `decoded`: where the first one that is not whole starts, or `end`.
 */
export function uwsgiVars(bytes: Buffer, start: number, end: number): { vars: UwsgiVar[]; decoded: number } {
  const vars: UwsgiVar[] = [];
  let at = start;
  while (at + 2 <= end) {
    const keyEnd = at + 2 + bytes.readUInt16LE(at);
    if (keyEnd + 2 > end) break;
    const valueStart = keyEnd + 2;
    const valueEnd = valueStart + bytes.readUInt16LE(keyEnd);
    if (valueEnd > end) break;
    vars.push({ start: at, keyEnd, valueStart, end: valueEnd });
    at = valueEnd;
  }
  return { vars, decoded: at };
}

function annotateUwsgiRequest(bytes: Buffer, out: Fields): void {
  if (bytes.length < UWSGI_HEADER_SIZE) {
    out.error('truncated uwsgi header', `the bytes end after ${bytes.length} of the ${UWSGI_HEADER_SIZE} header bytes (modifier1, datasize, modifier2)`);
    return;
  }
  const m1 = bytes[0] as number;
  const size = bytes.readUInt16LE(1);
  const m2 = bytes[3] as number;
  const header = span(0, UWSGI_HEADER_SIZE, 'uwsgi packet header', 'header', `modifier1=${m1} datasize=${size} modifier2=${m2}`, [
    span(0, 1, 'modifier1', 'value', `${m1} (${MODIFIER1_NAMES[m1] ?? 'unknown'})`),
    span(1, 3, 'datasize', 'length', `${size} (little-endian): the size of the vars block`),
    span(3, 4, 'modifier2', 'value', String(m2)),
  ]);
  if (!out.add(header)) return;
  const blockEnd = Math.min(bytes.length, UWSGI_HEADER_SIZE + size);
  let contentLength: number | undefined;
  const { vars, decoded } = uwsgiVars(bytes, UWSGI_HEADER_SIZE, blockEnd);
  for (const v of vars) {
    if (bytes.toString('latin1', v.start + 2, v.keyEnd) === UWSGI_CONTENT_LENGTH) contentLength = decimal(bytes.toString('latin1', v.valueStart, v.end));
    const field = pairSpan(bytes, v.start, v.end, [v.start + 2, v.keyEnd], [v.valueStart, v.end], [
      span(v.start, v.start + 2, 'key length', 'length', `${v.keyEnd - v.start - 2} (LE16)`),
      nameChild(bytes, v.start + 2, v.keyEnd, 'key'),
      span(v.keyEnd, v.valueStart, 'value length', 'length', `${v.end - v.valueStart} (LE16)`),
      valueChild(bytes, v.valueStart, v.end),
    ]);
    if (!out.add(field)) return;
  }
  if (decoded < blockEnd) {
    const cut = blockEnd < UWSGI_HEADER_SIZE + size;
    const detail = cut
      ? `the bytes end inside the vars block (${blockEnd - UWSGI_HEADER_SIZE} of its ${size} bytes)`
      : `${plural(blockEnd - decoded, 'byte')} that are not a whole var (key length LE16, key, value length LE16, value) before the end of the vars block`;
    if (!out.add(span(decoded, blockEnd, 'incomplete var', 'error', detail))) return;
  }
  if (out.at < bytes.length) out.add(bodySpan(out.at, bytes.length, 'body', [UWSGI_CONTENT_LENGTH, contentLength]));
}

// ---- CGI ------------------------------------------------------------------------------------

function annotateCgiRequest(bytes: Buffer, out: Fields, envBytes: number | undefined): void {
  const envEnd = envBytes !== undefined && Number.isFinite(envBytes) ? Math.min(bytes.length, Math.max(0, Math.floor(envBytes))) : bytes.length;
  let contentLength: number | undefined;
  for (const s of scgiStrings(bytes, 0, envEnd)) {
    if (out.full) return;
    const at = bytes.subarray(s.start, s.end).indexOf(0x3d);
    const eq = at === -1 ? -1 : s.start + at;
    if (!s.nul) {
      out.add(span(s.start, s.end, 'incomplete variable', 'error', `expected a NUL after "${textOf(bytes, s.start, s.end, LABEL_CHARS, true)}" before the end of the environment block`));
      break;
    }
    if (eq === -1) {
      out.add(span(s.start, s.end + 1, 'not a variable', 'error', `"${textOf(bytes, s.start, s.end, LABEL_CHARS, true)}": expected NAME=VALUE, then NUL`));
      continue;
    }
    if (bytes.toString('latin1', s.start, eq) === 'CONTENT_LENGTH') contentLength = decimal(bytes.toString('latin1', eq + 1, s.end));
    const field = pairSpan(bytes, s.start, s.end + 1, [s.start, eq], [eq + 1, s.end], [
      nameChild(bytes, s.start, eq),
      span(eq, eq + 1, '=', 'end', 'ends the name'),
      valueChild(bytes, eq + 1, s.end),
      span(s.end, s.end + 1, 'NUL', 'end', 'ends the variable'),
    ]);
    if (!out.add(field)) return;
  }
  if (!out.full && out.at < bytes.length) out.add(bodySpan(out.at, bytes.length, 'stdin', ['CONTENT_LENGTH', contentLength]));
}
