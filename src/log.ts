/**
 * Logging: the only module that imports winston. Two streams:
 * - the error log (stderr): server events, bad input, app failures, tagged with the request id;
 * - the access log (a file or stdout, off by default): one line per exchange, Apache combined
 *   format in text mode, one JSON object in json mode. Client data is escaped either way.
 */
import * as winston from 'winston';

export type { AccessRecord, LogFormat, LogLevel, Logger } from './logger.js';
export { silentLogger } from './logger.js';
import type { AccessRecord, LogFormat, LogLevel, Logger } from './logger.js';

export interface LogOptions {
  level: LogLevel;
  format: LogFormat;
  /** A file path, `-` for stdout, or undefined for no access log. */
  accessLog: string | undefined;
}

export function createLogger(opts: LogOptions): Logger {
  const errorFormat =
    opts.format === 'json'
      ? winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: true }), winston.format.json())
      : winston.format.combine(
          winston.format.timestamp(),
          winston.format.printf((info) => {
            const { timestamp, level, message, stack, ...rest } = info as Record<string, unknown>;
            const extra = Object.entries(rest)
              .filter(([k]) => typeof k === 'string' && k !== 'splat')
              .map(([k, v]) => `${k}=${typeof v === 'string' ? escapeText(v) : JSON.stringify(v)}`)
              .join(' ');
            const tail = typeof stack === 'string' && level === 'error' ? `\n${stack}` : '';
            // Messages carry app text (gatewire.errors) that may quote client data: a line break
            // in it must not start a forged log line.
            const text = String(message).replace(/[\x00-\x08\x0a-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
            return `${String(timestamp)} ${level} ${text}${extra ? ` ${extra}` : ''}${tail}`;
          }),
        );
  const errors = winston.createLogger({
    level: opts.level,
    format: errorFormat,
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
  });

  let accessLogger: winston.Logger | undefined;
  let access: Logger['access'] = null;
  let reopen: (() => void) | undefined;
  if (opts.accessLog !== undefined) {
    const path = opts.accessLog;
    let transport: winston.transport =
      path === '-'
        ? new winston.transports.Console({ stderrLevels: [] })
        : new winston.transports.File({ filename: path });
    accessLogger = winston.createLogger({ level: 'info', format: winston.format.printf((i) => String(i.message)), transports: [transport] });
    if (path !== '-') {
      const logger = accessLogger;
      // winston cannot reopen a file: the transport is replaced; what the old one still buffers
      // ends in the moved file, the next line goes to the new one.
      reopen = () => {
        const old = transport;
        transport = new winston.transports.File({ filename: path });
        logger.add(transport);
        logger.remove(old);
        old.close?.();
      };
    }
    const line = opts.format === 'json' ? accessJson : accessCombined;
    const sink = accessLogger;
    access = (record) => sink.info(line(record));
  }

  const wrap =
    (level: LogLevel) =>
    (message: string, meta?: Record<string, unknown>): void => {
      if (meta === undefined) errors.log(level, message);
      else errors.log(level, message, meta);
    };
  return {
    error: wrap('error'),
    warn: wrap('warn'),
    info: wrap('info'),
    debug: wrap('debug'),
    debugEnabled: opts.level === 'debug',
    access,
    reopen: () => reopen?.(),
    close: () =>
      Promise.all(
        [errors, accessLogger].filter((l): l is winston.Logger => l !== undefined).map(
          (l) =>
            new Promise<void>((resolve) => {
              l.on('finish', () => resolve());
              l.end();
              setTimeout(resolve, 200).unref();
            }),
        ),
      ).then(() => undefined),
  };
}


const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** `[10/Oct/2000:13:55:36 +0000]` (always UTC). */
function clfTime(d: Date): string {
  return `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

/**
 * Escapes client data for a text log line the way Apache does: `"` and `\` backslashed,
 * control bytes and bytes ≥ 0x7f as `\xHH`, so a line can never be split or forged.
 */
export function escapeText(s: string): string {
  return escapeBytes(s, true);
}

/** Any char escapeBytes changes: a string without one is returned as it is. */
const NEEDS_ESCAPE = /[\x00-\x1f"\\\x7f-\uffff]/;

/**
 * Values are byte strings (E-1, latin1: one char per byte): `\` backslashed and every byte that
 * is not printable ASCII written `\xHH`, so the log says which bytes came, whatever their
 * encoding; `"` too when the line is not JSON (which escapes it itself).
 */
function escapeBytes(s: string, quote: boolean): string {
  if (!NEEDS_ESCAPE.test(s)) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x5c || (c === 0x22 && quote)) out += `\\${s[i]}`;
    else if (c < 0x20 || c >= 0x7f) out += c > 0xff ? `\\u${c.toString(16).padStart(4, '0')}` : `\\x${c.toString(16).padStart(2, '0')}`;
    else out += s[i];
  }
  return out;
}

/** Apache's %u: `-` without a user, `""` for an empty one (as mod_log_config writes it). */
function remoteUser(user: string | undefined): string {
  if (user === undefined) return '-';
  return user === '' ? '""' : escapeText(user);
}

/** Apache combined: `%h - %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`. */
export function accessCombined(r: AccessRecord): string {
  const request = escapeText(`${r.method} ${r.uri} ${r.serverProtocol}`);
  const bytes = r.bytes > 0 ? String(r.bytes) : '-';
  const referer = r.referer === undefined ? '-' : escapeText(r.referer);
  const agent = r.userAgent === undefined ? '-' : escapeText(r.userAgent);
  return `${escapeText(r.remoteAddr || '-')} - ${remoteUser(r.remoteUser)} [${clfTime(r.time)}] "${request}" ${r.status} ${bytes} "${referer}" "${agent}"`;
}

/**
 * One JSON object per request. Client values are escaped as in the text format (`\xHH` for
 * every byte that is not printable ASCII, `\` doubled): JSON would otherwise write each latin1
 * char as the UTF-8 of U+0080..U+00FF, which misstates the bytes (a UTF-8 `é` from the client
 * would read `Ã©`). JSON.stringify escapes quotes.
 */
export function accessJson(r: AccessRecord): string {
  const text = (s: string): string => escapeBytes(s, false);
  return JSON.stringify({
    time: r.time.toISOString(),
    id: r.id,
    protocol: r.protocol,
    remote_addr: text(r.remoteAddr),
    remote_user: r.remoteUser === undefined ? null : text(r.remoteUser),
    method: text(r.method),
    uri: text(r.uri),
    server_protocol: text(r.serverProtocol),
    status: r.status,
    bytes: r.bytes,
    referer: r.referer === undefined ? null : text(r.referer),
    user_agent: r.userAgent === undefined ? null : text(r.userAgent),
    duration_ms: Math.round(r.durationMs * 1000) / 1000,
  });
}
