/**
 * The terminal view of a CompareReport: the overview table (one row per column: status, bytes,
 * framing, costs), the annotated wire of each column both ways, and the environ table with the
 * differences marked and explained in numbered notes. Pure: lines in, no I/O, so tests read it.
 *
 * Widths fit `width` (the terminal's columns): values are cut with `…`, never wrapped. Colour
 * (ANSI) only when asked, which the CLI does on a TTY unless NO_COLOR is set.
 */
import { Buffer } from 'node:buffer';
import { renderAnnotations } from './annotate-text.js';
import type { CompareReport, ProtocolResult } from './types.js';

export interface TerminalOptions {
  color?: boolean;
  /** Characters per line. @default 120 */
  width?: number;
  /** Show each column's annotated wire bytes. @default true */
  wire?: boolean;
}

const TITLES: Record<ProtocolResult['name'], string> = { http: 'HTTP', fastcgi: 'FastCGI', scgi: 'SCGI', uwsgi: 'uwsgi', cgi: 'CGI' };

/** `FastCGI` or `FastCGI via nginx`. */
export function columnTitle(p: Pick<ProtocolResult, 'name' | 'via'>): string {
  return p.via === 'nginx' ? `${TITLES[p.name]} via nginx` : TITLES[p.name];
}

interface Paint {
  bold(s: string): string;
  dim(s: string): string;
  mark(s: string): string;
  bad(s: string): string;
}

function paint(color: boolean): Paint {
  const wrap = (code: string) => (s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
  return { bold: wrap('1'), dim: wrap('2'), mark: wrap('33'), bad: wrap('31') };
}

/** Cuts to `n` visible chars with `…`; pads to `n` when `pad`. */
function fit(text: string, n: number, pad = true, right = false): string {
  const cut = text.length > n ? `${text.slice(0, Math.max(0, n - 1))}…` : text;
  if (!pad) return cut;
  return right ? cut.padStart(n) : cut.padEnd(n);
}

/** A value for a table cell: control bytes shown escaped, absent as an em dash. */
function cell(value: string | null): string {
  if (value === null) return '—';
  if (value === '') return '""';
  return value.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function number(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function overview(report: CompareReport, p: Paint): string[] {
  const header = ['protocol', 'status', 'request B', '± vs HTTP', 'response B', 'framing', 'p50 ms', 'p99 ms', 'req/s', 'CPU µs/req'];
  const rows = report.protocols.map((r) => [
    columnTitle(r),
    r.error === undefined ? String(r.status) : 'error',
    number(r.requestBytes),
    r.name === 'http' ? '' : `${r.overheadBytes >= 0 ? '+' : ''}${number(r.overheadBytes)}`,
    number(r.responseBytes),
    `${r.framing.status === 'status line' ? 'status line' : r.framing.status === 'Status field' ? 'Status:' : 'no status'}, ${r.framing.length}`,
    r.latency.samples === 0 ? '' : number(r.latency.p50, 2),
    r.latency.samples === 0 ? '' : number(r.latency.p99, 2),
    r.latency.samples === 0 ? '' : number(r.rps),
    r.latency.samples === 0 ? '' : number(r.cpuUsPerRequest),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const right = new Set([1, 2, 3, 4, 6, 7, 8, 9]);
  const line = (cells: string[]): string => cells.map((c, i) => fit(c, widths[i] as number, true, right.has(i))).join('  ');
  const out = [p.bold(line(header))];
  report.protocols.forEach((r, i) => {
    out.push(line(rows[i] as string[]));
    if (r.error !== undefined) out.push(p.bad(`  ${columnTitle(r)}: ${r.error}`));
  });
  return out;
}

function wireSection(r: ProtocolResult, options: Required<TerminalOptions>, p: Paint): string[] {
  const rule = (title: string): string => p.bold(`── ${title} ${'─'.repeat(Math.max(3, options.width - title.length - 4))}`);
  const out = [rule(`${columnTitle(r)}: request, ${number(r.requestBytes)} bytes`)];
  const request = Buffer.from(r.wire.request, 'hex');
  const response = Buffer.from(r.wire.response, 'hex');
  const render = { color: options.color, width: options.width };
  out.push(...renderAnnotations(request, r.annotations.request, render));
  out.push(rule(`${columnTitle(r)}: response, ${number(r.responseBytes)} bytes`));
  out.push(p.dim(`   ${r.framing.description}`));
  out.push(...renderAnnotations(response, r.annotations.response, render));
  out.push('');
  return out;
}

function environTable(report: CompareReport, options: Required<TerminalOptions>, p: Paint): string[] {
  const ids = report.protocols.map((r) => r.id);
  const nameWidth = Math.max(8, ...report.environ.map((row) => row.name.length)) + 5; // room for " *12"
  const colWidth = Math.max(8, Math.floor((options.width - nameWidth) / Math.max(1, ids.length)) - 1);
  const out = [p.bold(`${'variable'.padEnd(nameWidth)}${ids.map((id) => fit(id, colWidth)).join(' ')}`)];
  const notes: string[] = [];
  for (const row of report.environ) {
    const marker = row.note === undefined ? '' : `*${notes.length + 1}`;
    const name = `${row.name}${marker === '' ? '' : ` ${marker}`}`;
    const first = row.values[ids[0] as string] ?? null;
    const cells = ids.map((id) => {
      const v = row.values[id] ?? null;
      // `+`: the front set it; the request did not carry it.
      const text = row.derived.includes(id) ? `${fit(cell(v), colWidth - 1, false)}+`.padEnd(colWidth) : fit(cell(v), colWidth);
      return row.differs && v !== first ? p.mark(text) : text;
    });
    out.push(`${(row.differs ? p.mark : (s: string) => s)(fit(name, nameWidth))}${cells.join(' ')}`);
    if (row.note !== undefined) notes.push(`*${notes.length + 1} ${row.name}: ${row.note}`);
  }
  if (report.environ.some((row) => row.derived.length > 0)) out.push(p.dim('+ set by the front: the request did not carry it'));
  if (notes.length > 0) out.push('', p.bold('Why they differ'), ...notes);
  return out;
}

/** The whole terminal view, as lines. */
export function renderTerminal(report: CompareReport, given: TerminalOptions = {}): string[] {
  const options: Required<TerminalOptions> = { color: given.color ?? false, width: Math.max(60, given.width ?? 120), wire: given.wire ?? true };
  const p = paint(options.color);
  const r = report.request;
  const target = r.query === '' ? r.path : `${r.path}?${r.query}`;
  const out = [
    p.bold(`gatewire compare: ${r.method} ${target}`) + p.dim(`  app ${report.app}, body ${number(Buffer.byteLength(r.body, 'latin1'))} bytes, gatewire ${report.gatewire}`),
    ...r.headers.map(([n, v]) => p.dim(`  ${n}: ${v}`)),
    '',
    ...overview(report, p),
    p.dim(
      report.load === null
        ? `  costs: ${report.protocols[0]?.latency.samples ?? 0} sequential requests per protocol (CGI fewer), one connection each; --load 3s measures under load`
        : `  costs: ${report.load.durationMs / 1000} s per protocol, ${report.load.concurrency} clients at once (CGI 2), one connection per request`,
    ),
    '',
  ];
  if (options.wire) for (const column of report.protocols) out.push(...wireSection(column, options, p));
  out.push(p.bold('What the app saw'), ...environTable(report, options, p));
  return out;
}

/** A one-line progress bar for the load phase: `[#####-----]  40%  fastcgi-nginx`. */
export function progressLine(fraction: number, label: string, width = 30): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(Math.round(fraction * 100)).padStart(3)}%  ${label}`;
}
