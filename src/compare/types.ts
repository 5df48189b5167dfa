/**
 * The report of `gatewire compare`: one request sent over every protocol, what went over the
 * wire each way, what the app saw, and what it cost. The terminal view, the `--json` file, the
 * `--html` page and the `--serve` page are all made from one CompareReport; the JSON file is it,
 * as is.
 */

/** The five ways a request reaches an app. */
export type ProtocolName = 'http' | 'fastcgi' | 'scgi' | 'uwsgi' | 'cgi';

/** Who sent the request to gatewire: gatewire's own client (`gatewire request`'s), or a real nginx. */
export type Via = 'gatewire' | 'nginx';

/** The request every protocol carries. */
export interface CompareRequest {
  method: string;
  /** Path as sent, starting with `/`, without the query. */
  path: string;
  /** Query string without `?`; '' when there is none. */
  query: string;
  /** Header fields as given (`-H`), in order; Host and Content-Length are added by each client. */
  headers: Array<[string, string]>;
  /** The body as a latin1 string (one char per byte); '' for none. */
  body: string;
}

/**
 * One annotated span of wire bytes, `[start, end)` offsets into the direction's bytes. Top-level
 * fields tile the bytes in order (every byte is in exactly one top-level field); `children`
 * subdivide their parent in order (they need not cover it all).
 */
export interface WireField {
  start: number;
  end: number;
  /** What the bytes are: `FCGI_PARAMS header`, `SCRIPT_NAME`, `netstring length`. */
  label: string;
  /** The decoded value or an explanation: `type=4 (PARAMS) requestId=1 contentLength=243 paddingLength=5`. */
  detail?: string;
  /**
   * A class for colouring: `header` (framing: record headers, netstring length, uwsgi header,
   * status line), `length` (a length prefix), `name`, `value`, `body`, `padding`, `end`
   * (an end-of-stream marker), `error` (bytes that are not the protocol).
   */
  kind: WireFieldKind;
  children?: WireField[];
}

export type WireFieldKind = 'header' | 'length' | 'name' | 'value' | 'body' | 'padding' | 'end' | 'error';

/** How the response was framed, in a protocol's own terms. */
export interface ResponseFraming {
  /** How the status came: `HTTP/1.1 200 OK` status line, `Status: 200 OK` CGI field, or none (200 implied). */
  status: 'status line' | 'Status field' | 'implied';
  /** The status line or field as sent (`HTTP/1.1 200 OK`, `Status: 200 OK`), '' when implied. */
  statusText: string;
  /** How the end of the body is known. */
  length: 'Content-Length' | 'chunked' | 'close' | 'END_REQUEST';
  /** One line for the reader: `Content-Length: 1234, then FCGI_END_REQUEST (appStatus 0)`. */
  description: string;
}

/** Latency of the measured requests, in milliseconds. */
export interface Latency {
  p50: number;
  p99: number;
  /** Requests measured. */
  samples: number;
}

/** A point of the load phase: requests completed in one slice of time. */
export interface TimelinePoint {
  /** Milliseconds since the protocol's load began (the slice's end). */
  t: number;
  /** Requests per second over the slice. */
  rps: number;
  /** Median latency of the slice's requests, ms. */
  p50: number;
}

/** One protocol's column. */
export interface ProtocolResult {
  name: ProtocolName;
  via: Via;
  /** Unique column id: `fastcgi` for gatewire's client, `fastcgi-nginx` for nginx's. */
  id: string;
  /** The response status the client got (0 when it got none: see `error`). */
  status: number;
  /** Bytes sent to the app's server (CGI: the environment block plus stdin). */
  requestBytes: number;
  /** Bytes that came back (CGI: stdout). */
  responseBytes: number;
  /** requestBytes minus the bytes of the HTTP request sent by the same client (`via`). */
  overheadBytes: number;
  /** The bytes each way, as lowercase hex. */
  wire: { request: string; response: string };
  /** The bytes each way, annotated (src/compare/annotate.ts). */
  annotations: { request: WireField[]; response: WireField[] };
  framing: ResponseFraming;
  /** The CGI variables the app saw (keys with a dot, gatewire's own, left out). */
  environ: Record<string, string>;
  /**
   * The variables the request itself carried (FastCGI PARAMS, SCGI headers, uwsgi vars, the CGI
   * environment block), in wire order; absent for HTTP, where the front builds every variable.
   */
  sent?: string[];
  latency: Latency;
  /** Requests per second: under load with `--load`, else of the sequential latency sample. */
  rps: number;
  /** CPU time per request of the serving side (gatewire, nginx when via nginx, the CGI processes), µs. */
  cpuUsPerRequest: number;
  /** The load phase, slice by slice (empty without `--load`). */
  timeline: TimelinePoint[];
  /** Why this protocol has no answer, when it has none. */
  error?: string;
}

/** One row of the environ table. */
export interface EnvironRow {
  name: string;
  /** Per column id: the value, or null when that app did not see the variable. */
  values: Record<string, string | null>;
  /** True when the columns do not all agree. */
  differs: boolean;
  /** Column ids whose app saw the variable although the request did not carry it: the front set it. */
  derived: string[];
  /** Why they differ, or why a front set it, in one line (src/compare/explain.ts); absent when they agree and nothing was set by a front. */
  note?: string;
}

export interface CompareReport {
  /** Schema version of this file. */
  version: 1;
  /** ISO time the report was made. */
  generatedAt: string;
  /** gatewire's version. */
  gatewire: string;
  /** The app served: its path, or `echo (bundled)`. */
  app: string;
  request: CompareRequest;
  /** The load phase, when `--load` was given: how long per protocol and how many requests at once. */
  load: { durationMs: number; concurrency: number } | null;
  protocols: ProtocolResult[];
  /** Every variable any app saw, in name order. */
  environ: EnvironRow[];
}
