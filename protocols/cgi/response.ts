/**
 * The header block a CGI script writes on stdout (RFC 3875 §6; docs/conformance.md C-19..C-28), read
 * by a push parser: feed stdout chunks until the empty line, get the head plus the body bytes
 * that came with it.
 *
 *   const p = new CgiResponseParser();
 *   child.stdout.on('data', (c) => { const head = p.push(c); if (head) { ...; head.rest } });
 *   child.stdout.on('end', () => p.end()); // throws CGI_INCOMPLETE_HEAD if the head never ended
 *
 * Bytes stay bytes: names and values are latin1 strings, so a non-UTF-8 cookie comes out as
 * it went in. Every bad input throws ProtocolError/LimitError with a `CGI_*` code; the host
 * answers 502 for all of them (C-19..C-22, C-25). An NPH script's head (C-28) has its own
 * parser, NphResponseParser, used only to log the status of a byte-for-byte stream.
 */
import { Buffer } from 'node:buffer';
import { LimitError, ProtocolError, showBytes } from '../errors.js';
import { isHopByHop, isValidHeaderName, isValidHeaderValue, reasonPhrase } from './head.js';

/** Error codes thrown by the parsers in this file (all mean 502 for a CGI host). */
export const CgiResponseError = {
  /** EOF before the empty line ends the head, including no output at all (C-21). */
  IncompleteHead: 'CGI_INCOMPLETE_HEAD',
  /** The head is the empty line alone: RFC 3875 §6.2 requires at least one field. */
  NoHeaders: 'CGI_NO_HEADERS',
  /** A CR not directly before the LF (C-19). */
  BareCr: 'CGI_BARE_CR',
  /** A NUL byte anywhere in the head (C-20). */
  NulInHeader: 'CGI_NUL_IN_HEADER',
  /** A line starting with SP/HTAB: obsolete line folding (C-20, policy: reject). */
  ObsFold: 'CGI_OBS_FOLD',
  /** A line without `:` (C-20). */
  NoColon: 'CGI_NO_COLON',
  /** An empty name, or a byte that is not a token char before the `:` (C-20). */
  BadHeaderName: 'CGI_BAD_HEADER_NAME',
  /** A control char other than HTAB, or DEL, in a value (C-20; R-2 policy). */
  BadHeaderValue: 'CGI_BAD_HEADER_VALUE',
  /** A non-NPH script started with `HTTP/1.x NNN …` (§5.3). */
  UnexpectedStatusLine: 'CGI_UNEXPECTED_STATUS_LINE',
  /** `Status` not `NNN[ reason]` with NNN in 200..599 (C-22). */
  BadStatus: 'CGI_BAD_STATUS',
  /** `Status`, `Location` or `Content-Type` sent twice (RFC 3875 §6.3; C-22). */
  DuplicateField: 'CGI_DUPLICATE_FIELD',
  /** An empty `Location` (RFC 3875 §6.3.2 requires a URI). */
  BadLocation: 'CGI_BAD_LOCATION',
  /** Any `Transfer-Encoding` from a script (C-25, Apache mod_cgi). */
  TransferEncoding: 'CGI_TRANSFER_ENCODING',
  /** NPH head whose first line is not `HTTP/d.d NNN[ reason]` (C-28). */
  NphBadStatusLine: 'CGI_NPH_BAD_STATUS_LINE',
  /** LimitError: one line over `maxLineBytes` (C-19). */
  LineTooLong: 'CGI_LINE_TOO_LONG',
  /** LimitError: the head over `maxHeaderBytes` (C-19). */
  HeadTooLarge: 'CGI_HEAD_TOO_LARGE',
  /** LimitError: more than `maxHeaderFields` fields (C-19, §5.3). */
  TooManyFields: 'CGI_TOO_MANY_FIELDS',
} as const;
export type CgiResponseErrorCode = (typeof CgiResponseError)[keyof typeof CgiResponseError];

/** Limits on a script's header block (docs/conformance.md §9). */
export interface CgiHeadLimits {
  /** Longest line, without its CR LF or LF. @default 8192 (Apache; Go's 1 KiB breaks long Set-Cookie lines) */
  maxLineBytes?: number;
  /** Whole head including line ends and the empty line. @default 65536 (lighttpd) */
  maxHeaderBytes?: number;
  /** Header fields (an NPH status line does not count). @default 100 */
  maxHeaderFields?: number;
}

/** The defaults of {@link CgiHeadLimits}. */
export const CGI_HEAD_LIMITS: Readonly<Required<CgiHeadLimits>> = {
  maxLineBytes: 8 * 1024,
  maxHeaderBytes: 64 * 1024,
  maxHeaderFields: 100,
};

/**
 * What the host does with a parsed head (RFC 3875 §6.2, C-23):
 * - `document`: send status, headers and body as they are;
 * - `local-redirect`: `Location: /path` with no Status and no body: re-dispatch internally as GET;
 *   only valid if stdout ends with no body byte (see {@link classifyCgiResponse});
 * - `client-redirect`: Location that is not a local path, no Status: answer 302 with the
 *   Location and discard the script's body (Apache);
 * - `client-redirect-with-document`: Location with a 3xx Status, or a local Location with no
 *   Status but with body bytes (302 + the body, §5.3): send status, headers and body as they are.
 */
export type CgiResponseKind = 'document' | 'local-redirect' | 'client-redirect' | 'client-redirect-with-document';

/** A parsed CGI response head. */
export interface CgiResponseHead {
  kind: CgiResponseKind;
  /** From `Status`; else 302 when a Location was sent (the fallback for a local redirect), else 200. */
  status: number;
  /** The script's reason, or the default phrase when `Status` had none. */
  reason: string;
  /** True when the script sent a `Status` field. */
  statusSent: boolean;
  /**
   * Fields to forward, in order, repeats kept apart (C-26), names as sent, values OWS-trimmed
   * latin1. Without `Status`, `Content-Length` and the hop-by-hop fields (see `removed`).
   */
  headers: Array<[name: string, value: string]>;
  /** The `Location` value (also in `headers`). */
  location: string | undefined;
  /** The `Content-Type` value (also in `headers`); undefined with a body is C-24's case. */
  contentType: string | undefined;
  /**
   * The script's `Content-Length`, NOT trusted (C-25): removed from `headers`; the host frames
   * the body itself, or re-adds it and verifies the count (the policy alternative). Undefined
   * when absent, not plain digits, or repeated with different values.
   */
  contentLength: number | undefined;
  /** Fields the parser took out of `headers`: `Content-Length` and Connection/Keep-Alive/…/Upgrade (C-25). */
  removed: Array<[name: string, value: string]>;
  /** Bytes of the head including the empty line. */
  headBytes: number;
  /** Body bytes that arrived in the same chunk as the end of the head (a subarray of it). */
  rest: Buffer;
}

/** A parsed NPH head (C-28): the status line and the fields, nothing interpreted or removed. */
export interface NphResponseHead {
  /** `HTTP/1.1`, `HTTP/1.0`, … as sent. */
  version: string;
  status: number;
  reason: string;
  headers: Array<[name: string, value: string]>;
  headBytes: number;
  rest: Buffer;
}

const LF = 0x0a;
const CR = 0x0d;

const SAMPLE = 48;

/** Quotes a line (latin1 text) for an error message. */
function show(text: string): string {
  return `"${showBytes(Buffer.from(text, 'latin1'), SAMPLE)}"`;
}

function isOws(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/**
 * Why a line is not a valid field, in a fixed order so the code never depends on where the bad
 * byte sits: NUL, bare CR, fold, colon, name, value.
 */
function fieldError(text: string, lineNo: number): ProtocolError {
  const where = `header line ${lineNo} ${show(text)}`;
  if (text.includes('\0')) return new ProtocolError('cgi', CgiResponseError.NulInHeader, `NUL byte in ${where}`);
  if (text.includes('\r')) return new ProtocolError('cgi', CgiResponseError.BareCr, `bare CR in ${where}`);
  if (isOws(text.charCodeAt(0))) return new ProtocolError('cgi', CgiResponseError.ObsFold, `continuation line (obs-fold) at ${where}`);
  const colon = text.indexOf(':');
  if (colon === -1) return new ProtocolError('cgi', CgiResponseError.NoColon, `no colon in ${where}`);
  if (colon === 0) return new ProtocolError('cgi', CgiResponseError.BadHeaderName, `empty field name in ${where}`);
  if (!isValidHeaderName(text.slice(0, colon))) return new ProtocolError('cgi', CgiResponseError.BadHeaderName, `invalid field name in ${where}`);
  return new ProtocolError('cgi', CgiResponseError.BadHeaderValue, `control character in the value of ${where}`);
}

/**
 * Splits `name: value` (RFC 3875 §6.3: the colon right after the name, optional whitespace
 * trimmed). The byte sets are head.ts's, so a script's field is valid iff an app's would be.
 */
function parseField(text: string, lineNo: number): [string, string] {
  const colon = text.indexOf(':');
  if (colon <= 0) throw fieldError(text, lineNo);
  const name = text.slice(0, colon);
  const raw = text.slice(colon + 1);
  if (!isValidHeaderName(name) || !isValidHeaderValue(raw)) throw fieldError(text, lineNo);
  let start = 0;
  let stop = raw.length;
  while (start < stop && isOws(raw.charCodeAt(start))) start++;
  while (stop > start && isOws(raw.charCodeAt(stop - 1))) stop--;
  return [name, start === 0 && stop === raw.length ? raw : raw.slice(start, stop)];
}

function checkLimit(name: keyof CgiHeadLimits, value: number | undefined): number {
  const v = value ?? CGI_HEAD_LIMITS[name];
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`Expected the \`${name}\` option to be a positive integer, got ${String(v)}`);
  return v;
}

/**
 * Line framing and limits shared by the CGI and NPH parsers. Lines end with LF or CR LF
 * (RFC 3875 §6.1: servers accept both); a limit error names the byte where it was first
 * exceeded, so the outcome is the same however the input is split into chunks.
 */
abstract class HeadParser<T> {
  private readonly maxFields: number;
  private readonly maxLine: number;
  private readonly maxHead: number;
  /** Pieces of the current unterminated line. */
  private pieces: Buffer[] = [];
  private partial = 0;
  /** Bytes of the complete lines so far, line ends included. */
  private consumed = 0;
  private lineNo = 0;
  private state: 'head' | 'done' | 'failed' = 'head';
  private failure: unknown;

  constructor(
    limits: CgiHeadLimits,
    /** Lines at the top that are not fields (1 for the NPH status line). */
    private readonly leadingLines: number,
  ) {
    this.maxLine = checkLimit('maxLineBytes', limits.maxLineBytes);
    this.maxHead = checkLimit('maxHeaderBytes', limits.maxHeaderBytes);
    this.maxFields = checkLimit('maxHeaderFields', limits.maxHeaderFields);
  }

  /** Handles one non-empty line: its bytes as latin1 text, without CR LF. */
  protected abstract line(text: string, lineNo: number): void;
  /** Builds the result once the empty line arrived. */
  protected abstract complete(rest: Buffer, headBytes: number, lines: number): T;

  /**
   * Feeds stdout bytes. Returns undefined while the head is incomplete, then the head once;
   * the parser is finished after that (later stdout is body, for the host to read directly).
   * Throws ProtocolError/LimitError on bad input; after a throw every call throws the same error.
   * The bytes of an unfinished line are kept by reference: do not reuse a pushed chunk's memory
   * (Node stream chunks are never reused).
   */
  push(chunk: Buffer): T | undefined {
    if (this.state !== 'head') {
      if (this.state === 'failed') throw this.failure;
      throw new Error('push() after the head was complete: later bytes are body');
    }
    try {
      return this.scan(chunk);
    } catch (err) {
      this.state = 'failed';
      this.failure = err;
      this.pieces = [];
      throw err;
    }
  }

  /**
   * Stdout reached EOF. Throws CGI_INCOMPLETE_HEAD unless the head was complete (C-21:
   * "premature end of script headers", zero output included).
   */
  end(): void {
    if (this.state === 'done') return;
    if (this.state === 'failed') throw this.failure;
    this.state = 'failed';
    const seen = this.consumed + this.partial;
    this.failure = new ProtocolError(
      'cgi',
      CgiResponseError.IncompleteHead,
      seen === 0
        ? 'premature end of script headers: no output'
        : `premature end of script headers: EOF after ${seen} bytes without the empty line that ends the head`,
    );
    this.pieces = [];
    throw this.failure;
  }

  /** True once push() returned the head. */
  get finished(): boolean {
    return this.state === 'done';
  }

  private scan(chunk: Buffer): T | undefined {
    const len = chunk.length;
    let pos = 0;
    while (pos < len) {
      const lf = chunk.indexOf(LF, pos);
      if (lf === -1) {
        const n = len - pos;
        // A CR may still come before the LF, hence maxLine + 1 raw bytes are fine so far.
        this.limits(this.partial + n > this.maxLine + 1, this.consumed + this.partial + n > this.maxHead, () =>
          Buffer.concat([...this.pieces, chunk.subarray(pos, pos + SAMPLE)]),
        );
        this.pieces.push(chunk.subarray(pos));
        this.partial += n;
        return undefined;
      }
      // The line is buf[from, to) without its LF: in place when it came in one chunk.
      let buf = chunk;
      let from = pos;
      let to = lf;
      if (this.partial !== 0) {
        this.pieces.push(chunk.subarray(pos, lf));
        buf = Buffer.concat(this.pieces, this.partial + lf - pos);
        from = 0;
        to = buf.length;
        this.pieces = [];
        this.partial = 0;
      }
      pos = lf + 1;
      const raw = to - from;
      const end = raw > 0 && buf[to - 1] === CR ? to - 1 : to;
      this.limits(end - from > this.maxLine, this.consumed + raw + 1 > this.maxHead, () => buf.subarray(from, from + SAMPLE));
      this.consumed += raw + 1;
      this.lineNo++;
      if (end === from) {
        this.state = 'done';
        return this.complete(chunk.subarray(pos), this.consumed, this.lineNo - 1);
      }
      if (this.lineNo - this.leadingLines > this.maxFields) {
        throw new LimitError('cgi', CgiResponseError.TooManyFields, `more than ${this.maxFields} response header fields`, 'maxHeaderFields');
      }
      this.line(buf.toString('latin1', from, end), this.lineNo);
    }
    return undefined;
  }

  /**
   * When both limits are exceeded by the bytes seen, reports the one exceeded first: the line
   * limit at byte `lineStart + maxLine + 1` of the head, the head limit at byte `maxHead`.
   */
  private limits(lineOver: boolean, headOver: boolean, sample: () => Buffer): void {
    if (!lineOver && !headOver) return;
    if (lineOver && (!headOver || this.consumed + this.maxLine + 1 <= this.maxHead)) {
      throw new LimitError(
        'cgi',
        CgiResponseError.LineTooLong,
        `response header line ${this.lineNo + 1} longer than ${this.maxLine} bytes: "${showBytes(sample(), SAMPLE)}"`,
        'maxLineBytes',
      );
    }
    throw new LimitError('cgi', CgiResponseError.HeadTooLarge, `response head larger than ${this.maxHead} bytes`, 'maxHeaderBytes');
  }
}

/** `3DIGIT [ (SP|HTAB)+ reason ]`, the value already trimmed and free of controls. */
const CGI_STATUS_RE = /^([1-5][0-9]{2})(?:[ \t]+(.*))?$/s;

/**
 * Push parser for a non-NPH script's head (C-19..C-26).
 * @example
 * const head = new CgiResponseParser().push(Buffer.from('Content-Type: text/plain\n\nhi'));
 * // head.kind 'document', head.status 200, head.rest 'hi'
 */
export class CgiResponseParser extends HeadParser<CgiResponseHead> {
  private status = 0;
  private reason = '';
  private location: string | undefined;
  private contentType: string | undefined;
  private contentLength: number | undefined;
  private contentLengthBad = false;
  private readonly headers: Array<[string, string]> = [];
  private readonly removed: Array<[string, string]> = [];

  constructor(limits: CgiHeadLimits = {}) {
    super(limits, 0);
  }

  protected line(text: string, lineNo: number): void {
    if (lineNo === 1 && text.startsWith('HTTP/')) {
      throw new ProtocolError(
        'cgi',
        CgiResponseError.UnexpectedStatusLine,
        `script output starts with an HTTP status line ${show(text)}; only NPH scripts may send one`,
      );
    }
    const field = parseField(text, lineNo);
    const [name, value] = field;
    const lower = name.toLowerCase();
    switch (lower) {
      case 'status':
        // C-22: matched in any case (Go's case-sensitive match turns `status:` into a header).
        if (this.status !== 0) throw duplicate(name, lineNo);
        this.parseStatus(value, lineNo);
        return;
      case 'location':
        if (this.location !== undefined) throw duplicate(name, lineNo);
        if (value === '') throw new ProtocolError('cgi', CgiResponseError.BadLocation, `empty Location at header line ${lineNo}`);
        this.location = value;
        break;
      case 'content-type':
        if (this.contentType !== undefined) throw duplicate(name, lineNo);
        this.contentType = value;
        break;
      case 'content-length':
        // C-25: not trusted. Kept aside for a host that verifies instead of dropping.
        if (!/^[0-9]{1,15}$/.test(value) || (this.contentLength !== undefined && this.contentLength !== Number(value))) {
          this.contentLengthBad = true;
        } else {
          this.contentLength = Number(value);
        }
        this.removed.push(field);
        return;
      case 'transfer-encoding':
        // C-25: the host frames the body; a script's coding would reach the client as body bytes.
        throw new ProtocolError('cgi', CgiResponseError.TransferEncoding, `script sent Transfer-Encoding: "${showBytes(Buffer.from(value, 'latin1'), SAMPLE)}"`);
      default:
        // C-25: Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade.
        if (isHopByHop(lower)) {
          this.removed.push(field);
          return;
        }
    }
    this.headers.push(field);
  }

  private parseStatus(value: string, lineNo: number): void {
    const m = CGI_STATUS_RE.exec(value);
    const code = m === null ? 0 : Number(m[1]);
    if (m === null || code < 200) {
      // 1xx: no interim responses from a script (C-22 policy), and never as the final status.
      throw new ProtocolError(
        'cgi',
        CgiResponseError.BadStatus,
        `invalid Status "${showBytes(Buffer.from(value, 'latin1'), SAMPLE)}" at header line ${lineNo} (expected NNN in 200..599 and an optional reason)`,
      );
    }
    this.status = code;
    this.reason = m[2] ?? reasonPhrase(code);
  }

  protected complete(rest: Buffer, headBytes: number, lines: number): CgiResponseHead {
    if (lines === 0) throw new ProtocolError('cgi', CgiResponseError.NoHeaders, 'script output starts with an empty line: no header fields');
    const statusSent = this.status !== 0;
    const status = statusSent ? this.status : this.location !== undefined ? 302 : 200;
    const reason = statusSent ? this.reason : reasonPhrase(status);
    return {
      kind: classifyCgiResponse({ statusSent, status, location: this.location }, rest.length > 0),
      status,
      reason,
      statusSent,
      headers: this.headers,
      location: this.location,
      contentType: this.contentType,
      contentLength: this.contentLengthBad ? undefined : this.contentLength,
      removed: this.removed,
      headBytes,
      rest,
    };
  }
}

function duplicate(name: string, lineNo: number): ProtocolError {
  return new ProtocolError('cgi', CgiResponseError.DuplicateField, `${name} sent twice (header line ${lineNo})`);
}

/** A Location the host may re-dispatch: an absolute path, not `//host` (a network-path reference, §5.3). */
export function isLocalLocation(location: string): boolean {
  return location.charCodeAt(0) === 0x2f && location.charCodeAt(1) !== 0x2f;
}

/**
 * C-23 / RFC 3875 §6.2. `hasBody` is whether stdout carried any body byte. A parsed head was
 * classified with `hasBody = rest.length > 0`; a host that got `local-redirect` must read stdout
 * to EOF and call this again with `true` if any body byte arrived (→ `client-redirect-with-document`,
 * status stays 302). Policy (Apache's rule, plus §5.3's body rule): a local redirect needs a
 * local Location, no Status and no body; other fields (Content-Type, Set-Cookie) do not prevent
 * it, and the host drops them with the script's response. An explicit Status always passes
 * through (C-23), as a redirect document when 3xx.
 */
export function classifyCgiResponse(
  head: { statusSent: boolean; status: number; location: string | undefined },
  hasBody: boolean,
): CgiResponseKind {
  if (head.location === undefined) return 'document';
  if (head.statusSent) return head.status >= 300 && head.status < 400 ? 'client-redirect-with-document' : 'document';
  if (isLocalLocation(head.location)) return hasBody ? 'client-redirect-with-document' : 'local-redirect';
  return 'client-redirect';
}

/**
 * Parses a complete buffered script output (head and body); throws CGI_INCOMPLETE_HEAD when
 * the empty line is missing.
 */
export function parseCgiResponse(output: Buffer, limits: CgiHeadLimits = {}): CgiResponseHead {
  const parser = new CgiResponseParser(limits);
  const head = parser.push(output);
  if (head === undefined) parser.end();
  return head as CgiResponseHead;
}

/** Parsed `HTTP/d.d NNN reason` line. */
export interface HttpStatusLine {
  version: string;
  status: number;
  reason: string;
}

/** RFC 9112 §4 status-line; the SP before an empty reason may be missing (lenient reading). */
const HTTP_STATUS_RE = /^(HTTP\/[0-9]\.[0-9]) ([1-5][0-9]{2})(?: ([\t\x20-\x7e\x80-\xff]*))?$/;

/**
 * Recognizes an HTTP status line (latin1 string, no line end): the first line of an NPH
 * response (C-28, K-11). Null when it is not one.
 * @example parseHttpStatusLine('HTTP/1.1 404 Not Found') // { version: 'HTTP/1.1', status: 404, reason: 'Not Found' }
 */
export function parseHttpStatusLine(line: string): HttpStatusLine | null {
  const m = HTTP_STATUS_RE.exec(line);
  if (m === null) return null;
  return { version: m[1] as string, status: Number(m[2]), reason: m[3] ?? '' };
}

/**
 * Push parser for an NPH script's head (C-28): status line, then fields with the same syntax
 * rules and limits, nothing interpreted or removed. The host streams NPH output byte for byte
 * anyway; this is for the access log, so its errors are for logging, not for the client.
 */
export class NphResponseParser extends HeadParser<NphResponseHead> {
  private statusLine: HttpStatusLine | undefined;
  private readonly headers: Array<[string, string]> = [];

  constructor(limits: CgiHeadLimits = {}) {
    super(limits, 1);
  }

  protected line(text: string, lineNo: number): void {
    if (lineNo > 1) {
      this.headers.push(parseField(text, lineNo));
      return;
    }
    const parsed = parseHttpStatusLine(text);
    if (parsed === null) {
      if (text.includes('\0')) throw new ProtocolError('cgi', CgiResponseError.NulInHeader, `NUL byte in the NPH status line ${show(text)}`);
      if (text.includes('\r')) throw new ProtocolError('cgi', CgiResponseError.BareCr, `bare CR in the NPH status line ${show(text)}`);
      throw new ProtocolError('cgi', CgiResponseError.NphBadStatusLine, `NPH output does not start with an HTTP status line: ${show(text)}`);
    }
    this.statusLine = parsed;
  }

  protected complete(rest: Buffer, headBytes: number): NphResponseHead {
    const s = this.statusLine;
    if (s === undefined) throw new ProtocolError('cgi', CgiResponseError.NphBadStatusLine, 'NPH output starts with an empty line');
    return { version: s.version, status: s.status, reason: s.reason, headers: this.headers, headBytes, rest };
  }
}
