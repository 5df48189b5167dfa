/**
 * Annotated wire bytes (annotate.ts) as terminal lines for `gatewire compare`: one line per
 * field, `offset  length  label  detail`, children indented under their parent. Framing fields
 * (record headers, length prefixes, terminators, padding) and errors show their bytes in hex,
 * bodies a preview, when they have no children to show them instead. A name-value pair is one line, `SCRIPT_NAME = /index.php (name 11,
 * value 10)`, its lengths, name and value folded into it. Pure: fields in, lines out.
 *
 *      0     8  FCGI_BEGIN_REQUEST  version=1 type=1 requestId=1 contentLength=8 paddingLength=0
 *      0     8    header  01 01 00 01 00 08 00 00
 *      8     8    FCGI_BeginRequestBody  role=FCGI_RESPONDER flags=0  00 01 00 00 00 00 00 00
 *      8     2      role = FCGI_RESPONDER (1)
 */
import { Buffer } from 'node:buffer';
import { escapeBytes } from './annotate.js';
import type { WireField, WireFieldKind } from './types.js';

export interface RenderOptions {
  /** ANSI colours by kind of field. @default false */
  color?: boolean;
  /** Characters per line; longer lines are cut with `…`. @default 120 */
  width?: number;
  /** Bytes of a framing field shown in hex. @default 16 */
  hexBytes?: number;
  /** Chars of a value or a body preview shown before it is cut. @default 60 */
  maxValue?: number;
}

/** SGR codes by kind: a small palette that reads on dark and light terminals. */
const PALETTE: Readonly<Record<WireFieldKind, string>> = {
  header: '36', // cyan
  length: '33', // yellow
  name: '34', // blue
  value: '32', // green
  body: '0',
  padding: '90', // grey
  end: '35', // magenta
  error: '1;31', // bold red
};

const FRAMING: ReadonlySet<WireFieldKind> = new Set<WireFieldKind>(['header', 'length', 'end', 'padding', 'error']);
const PAIR_PARTS: ReadonlySet<WireFieldKind> = new Set<WireFieldKind>(['length', 'name', 'value', 'end']);

interface Settings {
  color: boolean;
  width: number;
  hexBytes: number;
  maxValue: number;
  digits: number;
}

/** The fields of `bytes` (annotateWire's output for them) as lines, depth first. */
export function renderAnnotations(bytes: Buffer, fields: WireField[], options: RenderOptions = {}): string[] {
  const s: Settings = {
    color: options.color ?? false,
    width: options.width ?? 120,
    hexBytes: options.hexBytes ?? 16,
    maxValue: options.maxValue ?? 60,
    digits: Math.max(4, String(bytes.length).length),
  };
  const lines: string[] = [];
  const walk = (field: WireField, depth: number, parent: WireField | undefined): void => {
    const pair = isPair(field);
    lines.push(renderLine(bytes, field, depth, parent, pair, s));
    if (!pair) for (const child of field.children ?? []) walk(child, depth + 1, field);
  };
  for (const field of fields) walk(field, 0, undefined);
  return lines;
}

/** A name-value pair: a value whose children are its lengths, name, value and terminators only. */
function isPair(field: WireField): boolean {
  const children = field.children;
  if (children === undefined || (field.kind !== 'value' && field.kind !== 'error')) return false;
  return children.every((c) => c.children === undefined && PAIR_PARTS.has(c.kind));
}

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, Math.max(0, max))}…` : text;
}

function hexOf(bytes: Buffer, field: WireField, max: number): string {
  const shown = bytes.subarray(field.start, Math.min(field.end, field.start + max));
  const hex = [...shown].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  return field.end - field.start > shown.length ? `${hex} …` : hex;
}

/** The field's bytes escaped, cut after `max` of them with their count (as escapeBytes does, without decoding them all). */
function preview(bytes: Buffer, field: WireField, max: number): string {
  const n = field.end - field.start;
  const shown = escapeBytes(bytes.subarray(field.start, field.start + Math.min(n, max)), max, true);
  return n > max ? `${shown}… (${n} bytes)` : shown;
}

/** `name 11, value 10`: a pair's length fields, each by the first word of its label. */
function lengths(field: WireField): string {
  const parts = (field.children ?? [])
    .filter((c) => c.kind === 'length')
    .map((c) => `${c.label.split(' ')[0] as string} ${/^\d+/.exec(c.detail ?? '')?.[0] ?? '?'}`);
  return parts.length === 0 ? '' : ` (${parts.join(', ')})`;
}

function renderLine(bytes: Buffer, field: WireField, depth: number, parent: WireField | undefined, pair: boolean, s: Settings): string {
  const prefix = `${String(field.start).padStart(s.digits)}  ${String(field.end - field.start).padStart(s.digits)}  `;
  // Under a record, `FCGI_PARAMS header` is just `header`; a detail the parent already gave is not repeated.
  const label = parent !== undefined && field.label.startsWith(`${parent.label} `) ? field.label.slice(parent.label.length + 1) : field.label;
  const detail = parent !== undefined && field.detail === parent.detail ? undefined : field.detail;
  const leaf = field.children === undefined;
  let text: string;
  if (pair) {
    text = `${label} = ${cut(detail ?? '', s.maxValue)}${lengths(field)}`;
  } else if (leaf && field.kind === 'body') {
    // A detail that is a preview already (FastCGI stream content) gives way to the one made here.
    const note = detail === undefined || detail.startsWith('"') ? '' : `  ${detail}`;
    text = `${label}${note}  "${preview(bytes, field, s.maxValue)}"`;
  } else if (leaf && (field.kind === 'value' || field.kind === 'name')) {
    text = `${label} = ${detail ?? ''}`;
  } else if (leaf && field.kind === 'length') {
    text = `${label}: ${detail ?? ''}`;
  } else {
    text = detail === undefined ? label : `${label}  ${detail}`;
  }
  text = '  '.repeat(depth) + text;
  // Hex for the framing bytes themselves; a field with children leaves it to them.
  const hex = leaf && FRAMING.has(field.kind) ? `  ${hexOf(bytes, field, s.hexBytes)}` : '';
  const room = Math.max(1, s.width - prefix.length);
  const rest = cut(text + hex, room - 1);
  if (!s.color) return prefix + rest;
  const paint = (code: string, t: string): string => (t === '' ? '' : `\x1b[${code}m${t}\x1b[0m`);
  const shownText = rest.slice(0, text.length);
  return paint('2', prefix) + paint(PALETTE[field.kind], shownText) + paint('2', rest.slice(text.length));
}
