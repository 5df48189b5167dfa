/**
 * What the rest of gatewire knows of logging: the Logger interface, the access record, and a
 * logger that writes nothing. No winston here (src/log.ts is the only module that loads it), so
 * the core and inject() can take a Logger without loading it.
 */

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogFormat = 'text' | 'json';

export interface AccessRecord {
  /** Request id, also given to the app and in error lines. */
  id: string;
  protocol: string;
  remoteAddr: string;
  /** REMOTE_USER as a web server sent it (its authenticated user); undefined on the HTTP front. */
  remoteUser?: string | undefined;
  method: string;
  uri: string;
  serverProtocol: string;
  status: number;
  /** Response body bytes. */
  bytes: number;
  /** Request body bytes received (read by the app or drained); 0 without a body. */
  requestBytes?: number;
  referer: string | undefined;
  userAgent: string | undefined;
  /** Milliseconds from the first byte of the request to the end of the response. */
  durationMs: number;
  time: Date;
}

export interface Logger {
  error(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  debug(message: string, meta?: Record<string, unknown>): void;
  /** True when debug lines would be written (to skip building them otherwise). */
  readonly debugEnabled: boolean;
  /** Null when the access log is off. */
  readonly access: ((record: AccessRecord) => void) | null;
  /** Opens the log files again under their names (logrotate moved them: SIGUSR1). */
  reopen?(): void;
  close(): Promise<void>;
}

/** A logger that writes nothing: for embedding and tests. */
export function silentLogger(): Logger {
  const noop = (): void => undefined;
  return { error: noop, warn: noop, info: noop, debug: noop, debugEnabled: false, access: null, close: () => Promise.resolve() };
}
