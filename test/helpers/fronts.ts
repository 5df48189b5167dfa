/**
 * One harness per front for the behaviour matrix: start a server for a Service in this process,
 * send a request with that front's own client, and report what a client would observe. A new
 * front joins the matrix by adding one entry to FRONTS.
 */
import http from 'node:http';
import type { Service } from '../../src/app.js';
import { inject } from '../../src/inject.js';
import { silentLogger } from '../../src/log.js';
import { resolveOptions } from '../../src/options.js';
import { Gateway } from '../../src/server.js';
import { fastcgiFront, fastcgiMatrixRequest } from './fcgi-client.js';
import { listenerHarness, scgiFront, scgiMatrixRequest } from './scgi-client.js';
import { uwsgiFront, uwsgiMatrixRequest } from './uwsgi-client.js';

export interface MatrixRequest {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Send the body with chunked framing (HTTP) / without a known length (gateways). */
  chunked?: boolean;
  /** Disconnect once this many body bytes were received. */
  abortAfterBytes?: number;
}

export interface MatrixResponse {
  status: number;
  headers: Record<string, string[]>;
  body: Buffer;
  /** The response did not end cleanly (reset, short body, no terminal chunk). */
  truncated: boolean;
}

export interface Running {
  request(req: MatrixRequest): Promise<MatrixResponse>;
  close(): Promise<void>;
}

export interface FrontHarness {
  name: string;
  start(service: Service, opts?: { mount?: string }): Promise<Running>;
}

function collectHeaders(raw: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 0; i < raw.length; i += 2) (out[(raw[i] as string).toLowerCase()] ??= []).push(raw[i + 1] as string);
  return out;
}

export const httpFront: FrontHarness = {
  name: 'http',
  async start(service, opts = {}) {
    const options = resolveOptions({ http: ['127.0.0.1:0'], mount: opts.mount ?? '' }, {});
    const gateway = new Gateway(service, options, silentLogger());
    const [bound] = await gateway.listen();
    const port = (bound?.address as { port: number }).port;
    return {
      request: (req) => httpRequest(port, req),
      close: () => gateway.close(1000),
    };
  },
};

export function httpRequest(port: number, req: MatrixRequest): Promise<MatrixResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...(req.headers ?? {}) };
    const body = req.body === undefined ? undefined : Buffer.from(req.body);
    if (body !== undefined && !req.chunked) headers['Content-Length'] = String(body.length);
    if (req.chunked) headers['Transfer-Encoding'] = 'chunked';
    const r = http.request({ host: '127.0.0.1', port, method: req.method ?? 'GET', path: req.path, headers, agent: false });
    // A reset after the response began is a truncated response, not a failed request:
    // node:http reports it on the request too, before the response's 'close'.
    let lateError: (() => void) | undefined;
    r.on('error', (err) => (lateError === undefined ? reject(err) : lateError()));
    r.on('response', (res) => {
      lateError = () => {
        truncated = true;
        finish();
      };
      const chunks: Buffer[] = [];
      let received = 0;
      let truncated = false;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        received += c.length;
        if (req.abortAfterBytes !== undefined && received >= req.abortAfterBytes) {
          truncated = true;
          r.destroy();
          finish();
        }
      });
      res.on('aborted', () => {
        truncated = true;
      });
      res.on('error', () => {
        truncated = true;
        finish();
      });
      res.on('end', () => {
        if (!res.complete) truncated = true;
        finish();
      });
      res.on('close', finish);
      let done = false;
      function finish(): void {
        if (done) return;
        done = true;
        resolve({ status: res.statusCode ?? 0, headers: collectHeaders(res.rawHeaders), body: Buffer.concat(chunks), truncated: truncated || !res.complete });
      }
    });
    if (body !== undefined) r.end(body);
    else r.end();
  });
}

/** No socket: the exchange as the HTTP front runs it, through the environ path for every flavour. */
export const injectFront: FrontHarness = {
  name: 'inject',
  async start(service, opts = {}) {
    return {
      async request(req) {
        const res = await inject(service.app, {
          method: req.method ?? 'GET',
          url: req.path,
          headers: req.headers ?? {},
          ...(req.body === undefined ? {} : { body: Buffer.from(req.body) }),
          ...(opts.mount === undefined ? {} : { mount: opts.mount }),
          ...(req.abortAfterBytes === undefined ? {} : { abortAfterBytes: req.abortAfterBytes }),
        });
        const headers: Record<string, string[]> = {};
        for (const [k, v] of res.headers) (headers[k.toLowerCase()] ??= []).push(v);
        return { status: res.status, headers, body: res.body, truncated: res.aborted };
      },
      close: async () => undefined,
    };
  },
};

/** Every front the matrix runs over. */
export const FRONTS: FrontHarness[] = [
  httpFront,
  injectFront,
  fastcgiFront,
  scgiFront,
  uwsgiFront,
  // One --auto listener, reached with each protocol's client.
  listenerHarness('auto-http', 'auto', (_addr, port, req) => httpRequest(port, req)),
  listenerHarness('auto-fastcgi', 'auto', fastcgiMatrixRequest),
  listenerHarness('auto-scgi', 'auto', scgiMatrixRequest),
  listenerHarness('auto-uwsgi', 'auto', uwsgiMatrixRequest),
];
