/**
 * Every response gatewire writes itself, in one place: refusals of a request (400, 404, 405,
 * 408, 411, 413, 414, 431, 501, 503, 505), the 500 of a failed app, the 502/504 of the CGI host.
 * One reason table (RFC 9110 names, protocols/cgi/head.ts), one body naming the request id, an
 * exact Content-Length, and no body for HEAD (RFC 9110 §9.3.2). A front only puts a Reply on
 * its wire with its own framing: a status line (HTTP, uwsgi) or `Status:` (FastCGI, SCGI, CGI).
 *
 *   Status: 413 Content Too Large          HTTP/1.1 413 Content Too Large
 *   Content-Type: text/plain; charset=utf-8
 *   Content-Length: 38
 *
 *   Content Too Large
 *   request id: 3fa2c1-1k
 */
import { Buffer } from 'node:buffer';
import type { Body, HeaderList, StartResponse } from './app.js';
import type { ResponseSink } from './call.js';
import { reasonPhrase } from '../protocols/cgi/head.js';

/** A complete response: status, reason, headers (Content-Length included) and the body to send. */
export interface Reply {
  status: number;
  reason: string;
  headers: HeaderList;
  /** Undefined when nothing follows the head (HEAD): Content-Length still gives the GET body's size. */
  body: Buffer | undefined;
}

/** The reason phrase of a status gatewire writes (RFC 9110); `Error` for a code without one. */
export function replyReason(status: number): string {
  return reasonPhrase(status) || 'Error';
}

/** The body of every reply: the reason, then the request id an operator finds in the log line. */
export function replyText(status: number, requestId: string): string {
  return `${replyReason(status)}\nrequest id: ${requestId}\n`;
}

/**
 * gatewire's own response for `status`. `method` decides the body (none for HEAD); `extra` are
 * fields of the front's framing or the refusal itself (`Connection: close`, `Allow`, `Retry-After`).
 */
export function reply(status: number, requestId: string, method: string | undefined, extra: HeaderList = []): Reply {
  const text = Buffer.from(replyText(status, requestId), 'latin1');
  const headers: HeaderList = [
    ['Content-Type', 'text/plain; charset=utf-8'],
    ['Content-Length', String(text.length)],
    ...extra,
  ];
  return { status, reason: replyReason(status), headers, body: method === 'HEAD' ? undefined : text };
}

/** A Reply as one buffer, with a front's head serializer (a refusal written straight to a socket). */
export function replyBytes(r: Reply, serializeHead: (status: number, reason: string, headers: HeaderList) => Buffer): Buffer {
  const head = serializeHead(r.status, r.reason, r.headers);
  return r.body === undefined ? head : Buffer.concat([head, r.body]);
}

/** A Reply through a front's ResponseSink: in one call where the sink can (head, body and end in one write). */
export function sendReply(sink: ResponseSink, r: Reply): void {
  if (sink.complete !== undefined) {
    sink.complete(r.status, r.reason, r.headers, r.body);
    return;
  }
  sink.head(r.status, r.reason, r.headers);
  if (r.body !== undefined) sink.write(r.body);
  sink.end();
}

/**
 * The same reply from inside an app (the CGI host's 403/404/502/503/504, the 404 of a mount):
 * through start_response, so the response rules still apply. The exchange adds Content-Length
 * and drops the body for HEAD itself.
 */
export function replyFromApp(startResponse: StartResponse, status: number, requestId: string, extra: HeaderList = []): Body {
  startResponse(`${status} ${replyReason(status)}`, [['Content-Type', 'text/plain; charset=utf-8'], ...extra]);
  return [replyText(status, requestId)];
}
