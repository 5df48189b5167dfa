/**
 * One behaviour, written once per app flavour: an environ app, a plain Node handler, Express,
 * Koa and Hono. Each serves the same routes with the same observable results, so the matrix can
 * run every case against every flavour over every front.
 *
 *   GET|POST /echo       → JSON { method, path, route, query, length, sha256, test, script_name,
 *                          path_info } (body hashed; path is the full decoded path, route the
 *                          one the app routes on, below the mount; SCRIPT_NAME and PATH_INFO
 *                          as the environ app got them, null for the other flavours)
 *   GET /stream?n=&size= → n chunks of `size` bytes of 'x', produced one by one
 *   GET /error-before    → fails before any output (→ 500)
 *   GET /error-after     → sends headers and 5 bytes, then fails (→ truncated response)
 *   GET /no-content      → 204;  GET /not-modified → 304
 *   GET /cookies         → two Set-Cookie fields
 *   GET /forever         → streams a chunk every 5 ms until the client goes away; records it in `probe`
 *   GET /hold            → (environ app) waits until `gate.release()`, then answers `held`
 *   GET /hono-stream-text, /hono-sse, /hop-by-hop, /length/:kind → (Hono only) streamText,
 *                          streamSSE, a Response with hop-by-hop fields, bodies of known length
 *   GET /sse             → an SSE stream, one `data: N` event every 20 ms; the Node flavours
 *                          stop their timer on req 'close' (the tutorial pattern), the environ
 *                          app on gatewire.signal; counted in `sse`
 *   GET /flush[?how=write] → flushes its head (flushHeaders(); the node flavour with
 *                          `how=write`: write(''); the environ app: write('')), waits 500 ms,
 *                          then sends `late body`
 *
 * validatedService() wraps any of them in validateApp (src/validate.ts) and records every
 * contract slip it reports, so a test can fail on one even when the app swallowed the error.
 */
import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import express from 'express';
import Koa from 'koa';
import { Hono } from 'hono';
import { streamSSE, streamText } from 'hono/streaming';
import type { App, Body, Chunk, Environ, Service, StartResponse } from '../../src/app.js';
import { toService } from '../../src/loader.js';
import { ValidationError, validateApp } from '../../src/validate.js';

/** What the /forever route saw; tests reset it and read it after aborting a client. */
export const probe = { started: 0, aborted: 0, closed: 0 };

export function resetProbe(): void {
  probe.started = probe.aborted = probe.closed = 0;
}

const FOREVER_CHUNK = Buffer.alloc(1024, 'f');

/** What the /sse route did: events written, and streams stopped by the app's close handler. */
export const sse = { written: 0, stopped: 0 };

export function resetSse(): void {
  sse.written = sse.stopped = 0;
}

const SSE_MS = 20;
/** A bound against a stream nobody stops (10 s). */
const SSE_MAX = 500;
const sseEvent = (n: number): string => `data: ${String(n).padStart(4, '0')}\n\n`;
export const SSE_EVENT_BYTES = sseEvent(0).length;
const FLUSH_WAIT_MS = 500;
const sseHeaders = { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' };

/** The tutorial SSE handler on node:http's req/res: the timer is cleared in req.on('close'). */
function nodeSse(req: import('node:http').IncomingMessage, write: (s: string) => void, open: () => void): void {
  open();
  let n = 0;
  const timer = setInterval(() => {
    if (n >= SSE_MAX) return;
    write(sseEvent(n++));
    sse.written++;
  }, SSE_MS);
  req.on('close', () => {
    clearInterval(timer);
    sse.stopped++;
  });
}

/** Requests waiting in /hold; release() lets them all answer. */
export const gate = {
  waiting: 0,
  release(): void {
    const all = holders;
    holders = [];
    for (const r of all) r();
  },
};
let holders: Array<() => void> = [];

interface EchoView {
  route: string;
  scriptName?: string;
  pathInfo?: string;
}

function echoJson(method: string, path: string, query: string, body: Buffer, test: string | undefined, view: EchoView): string {
  return JSON.stringify({
    method,
    path,
    route: view.route,
    query,
    length: body.length,
    sha256: createHash('sha256').update(body).digest('hex'),
    test: test ?? null,
    script_name: view.scriptName ?? null,
    path_info: view.pathInfo ?? null,
  });
}

async function readAll(stream: AsyncIterable<Uint8Array | string>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

function streamParams(query: string): { n: number; size: number } {
  const p = new URLSearchParams(query);
  return { n: Number(p.get('n') ?? 16), size: Number(p.get('size') ?? 65536) };
}

async function* foreverChunks(signal: AbortSignal | undefined): AsyncGenerator<Buffer> {
  probe.started++;
  try {
    for (let i = 0; i < 2000 && !signal?.aborted; i++) {
      yield FOREVER_CHUNK;
      await new Promise((r) => setTimeout(r, 5));
    }
    if (signal?.aborted) probe.aborted++;
  } finally {
    probe.closed++;
  }
}

export function environApp(environ: Environ, startResponse: StartResponse): unknown {
  const path = environ.SCRIPT_NAME + environ.PATH_INFO;
  const route = environ.PATH_INFO;
  switch (route) {
    case '/echo':
      return (async () => {
        const body = await readAll(environ['gatewire.input']);
        startResponse('200 OK', [['Content-Type', 'application/json']]);
        return [echoJson(environ.REQUEST_METHOD, path, environ.QUERY_STRING, body, environ.HTTP_X_TEST, { route, scriptName: environ.SCRIPT_NAME, pathInfo: environ.PATH_INFO })];
      })();
    case '/hold':
      return (async () => {
        gate.waiting++;
        await new Promise<void>((resolve) => holders.push(resolve));
        gate.waiting--;
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return ['held\n'];
      })();
    case '/stream': {
      const { n, size } = streamParams(environ.QUERY_STRING);
      startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
      return (async function* () {
        for (let i = 0; i < n; i++) yield Buffer.alloc(size, 'x');
      })();
    }
    case '/error-before':
      throw new Error('boom before headers');
    case '/error-after':
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return (async function* () {
        yield 'part-';
        await new Promise((r) => setTimeout(r, 5));
        throw new Error('boom after headers');
      })();
    case '/no-content':
      startResponse('204 No Content', []);
      return [];
    case '/not-modified':
      startResponse('304 Not Modified', [['ETag', '"x"']]);
      return [];
    case '/cookies':
      startResponse('200 OK', [['Content-Type', 'text/plain'], ['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2']]);
      return ['two cookies\n'];
    case '/forever': {
      startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
      return foreverChunks(environ['gatewire.signal']);
    }
    case '/sse': {
      const signal = environ['gatewire.signal'];
      startResponse('200 OK', Object.entries(sseHeaders));
      return (async function* () {
        try {
          for (let n = 0; n < SSE_MAX && !signal.aborted; n++) {
            yield sseEvent(n);
            sse.written++;
            await new Promise((r) => setTimeout(r, SSE_MS));
          }
        } finally {
          sse.stopped++;
        }
      })();
    }
    case '/flush': {
      const write = startResponse('200 OK', [['Content-Type', 'text/plain'], ['X-Flushed', 'yes']]);
      write(''); // the head now
      return (async function* () {
        await new Promise((r) => setTimeout(r, FLUSH_WAIT_MS));
        yield 'late body\n';
      })();
    }
    default:
      startResponse('404 Not Found', [['Content-Type', 'text/plain']]);
      return ['not found\n'];
  }
}

function nodeApp(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void {
  const url = new URL((req as { originalUrl?: string }).originalUrl ?? req.url ?? '/', 'http://x');
  const route = new URL(req.url ?? '/', 'http://x').pathname;
  const path = decodeURIComponent(url.pathname);
  switch (route) {
    case '/echo':
      readAll(req).then(
        (body) => {
          res.setHeader('Content-Type', 'application/json');
          res.end(echoJson(req.method ?? '', path, url.search.slice(1), body, req.headers['x-test'] as string | undefined, { route }));
        },
        // The body failed (over the limit, client gone): the server may have answered already.
        () => {
          if (!res.headersSent) res.writeHead(400, { 'Content-Type': 'text/plain' }).end('unreadable body\n');
        },
      );
      return;
    case '/stream': {
      const { n, size } = streamParams(url.search.slice(1));
      res.setHeader('Content-Type', 'application/octet-stream');
      Readable.from((function* () {
        for (let i = 0; i < n; i++) yield Buffer.alloc(size, 'x');
      })()).pipe(res);
      return;
    }
    case '/error-before':
      throw new Error('boom before headers');
    case '/error-after':
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.write('part-');
      setTimeout(() => res.destroy(new Error('boom after headers')), 5);
      return;
    case '/no-content':
      res.writeHead(204).end();
      return;
    case '/not-modified':
      res.writeHead(304, { ETag: '"x"' }).end();
      return;
    case '/cookies':
      res.setHeader('Set-Cookie', ['a=1', 'b=2']);
      res.setHeader('Content-Type', 'text/plain');
      res.end('two cookies\n');
      return;
    case '/forever': {
      const ac = new AbortController();
      res.on('close', () => ac.abort());
      res.setHeader('Content-Type', 'application/octet-stream');
      Readable.from(foreverChunks(ac.signal)).pipe(res);
      return;
    }
    case '/sse':
      nodeSse(req, (e) => res.write(e), () => res.writeHead(200, sseHeaders).flushHeaders());
      return;
    case '/flush':
      res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Flushed': 'yes' });
      if (url.searchParams.get('how') === 'write') res.write('');
      else res.flushHeaders();
      setTimeout(() => res.end('late body\n'), FLUSH_WAIT_MS);
      return;
    default:
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
  }
}

function expressApp(): express.Express {
  const app = express();
  const pathOf = (req: express.Request): string => decodeURIComponent(new URL(req.originalUrl, 'http://x').pathname);
  app.all('/echo', (req, res, next) => {
    readAll(req)
      .then((body) => res.type('application/json').send(echoJson(req.method, pathOf(req), new URL(req.originalUrl, 'http://x').search.slice(1), body, req.get('x-test'), { route: req.path })))
      .catch(next);
  });
  app.get('/stream', (req, res) => {
    const { n, size } = streamParams(new URL(req.originalUrl, 'http://x').search.slice(1));
    res.type('application/octet-stream');
    Readable.from((function* () {
      for (let i = 0; i < n; i++) yield Buffer.alloc(size, 'x');
    })()).pipe(res);
  });
  app.get('/error-before', () => {
    throw new Error('boom before headers');
  });
  app.get('/error-after', (_req, res, next) => {
    res.type('text/plain');
    res.write('part-');
    setTimeout(() => next(new Error('boom after headers')), 5);
  });
  app.get('/no-content', (_req, res) => res.status(204).end());
  app.get('/not-modified', (_req, res) => res.status(304).set('ETag', '"x"').end());
  app.get('/cookies', (_req, res) => {
    res.cookie('a', '1', { encode: String });
    res.cookie('b', '2', { encode: String });
    res.type('text/plain').send('two cookies\n');
  });
  app.get('/forever', (_req, res) => {
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    res.type('application/octet-stream');
    Readable.from(foreverChunks(ac.signal)).pipe(res);
  });
  app.get('/sse', (req, res) => {
    nodeSse(req, (e) => res.write(e), () => {
      res.set(sseHeaders);
      res.flushHeaders();
    });
  });
  app.get('/flush', (_req, res) => {
    res.type('text/plain').set('X-Flushed', 'yes');
    res.flushHeaders();
    setTimeout(() => res.end('late body\n'), FLUSH_WAIT_MS);
  });
  // Errors: a plain 500 without the stack, quietly (the default handler prints to the console).
  app.use((err: Error, _req: express.Request, res: express.Response, next: express.NextFunction) => {
    if (res.headersSent) return next(err);
    res.status(500).type('text/plain').send('Internal Server Error\n');
  });
  app.set('env', 'test');
  return app;
}

function koaApp(): Koa {
  const app = new Koa();
  app.silent = true;
  app.use(async (ctx) => {
    // Koa's originalUrl is req.url as Koa got it (below a mount); the front's originalUrl is the full one.
    const path = decodeURIComponent(new URL((ctx.req as { originalUrl?: string }).originalUrl ?? ctx.originalUrl, 'http://x').pathname);
    switch (ctx.path) {
      case '/echo': {
        const body = await readAll(ctx.req);
        ctx.type = 'application/json';
        ctx.body = echoJson(ctx.method, path, ctx.querystring, body, ctx.get('x-test') || undefined, { route: ctx.path });
        return;
      }
      case '/stream': {
        const { n, size } = streamParams(ctx.querystring);
        ctx.type = 'application/octet-stream';
        ctx.body = Readable.from((function* () {
          for (let i = 0; i < n; i++) yield Buffer.alloc(size, 'x');
        })());
        return;
      }
      case '/error-before':
        throw new Error('boom before headers');
      case '/error-after':
        ctx.type = 'text/plain';
        ctx.body = Readable.from((async function* () {
          yield 'part-';
          await new Promise((r) => setTimeout(r, 5));
          throw new Error('boom after headers');
        })());
        return;
      case '/no-content':
        ctx.status = 204;
        return;
      case '/not-modified':
        ctx.status = 304;
        ctx.set('ETag', '"x"');
        return;
      case '/cookies':
        ctx.cookies.set('a', '1', { httpOnly: false, path: null as unknown as string });
        ctx.cookies.set('b', '2', { httpOnly: false, path: null as unknown as string });
        ctx.type = 'text/plain';
        ctx.body = 'two cookies\n';
        return;
      case '/forever': {
        const ac = new AbortController();
        ctx.res.on('close', () => ac.abort());
        ctx.type = 'application/octet-stream';
        ctx.body = Readable.from(foreverChunks(ac.signal));
        return;
      }
      case '/sse': {
        const stream = new PassThrough();
        nodeSse(ctx.req, (e) => stream.write(e), () => {
          ctx.set(sseHeaders);
          ctx.status = 200;
          ctx.body = stream;
        });
        ctx.req.on('close', () => stream.end());
        return;
      }
      case '/flush':
        ctx.status = 200;
        ctx.type = 'text/plain';
        ctx.set('X-Flushed', 'yes');
        ctx.flushHeaders();
        ctx.body = Readable.from((async function* () {
          await new Promise((r) => setTimeout(r, FLUSH_WAIT_MS));
          yield 'late body\n';
        })());
        return;
      default:
        ctx.status = 404;
        ctx.body = 'not found\n';
    }
  });
  return app;
}

function honoApp(): Hono {
  const app = new Hono();
  const pathOf = (url: string): string => decodeURIComponent(new URL(url).pathname);
  app.all('/echo', async (c) => {
    const body = Buffer.from(await c.req.arrayBuffer());
    const url = new URL(c.req.url);
    return c.body(echoJson(c.req.method, pathOf(c.req.url), url.search.slice(1), body, c.req.header('x-test'), { route: c.req.path }), 200, { 'Content-Type': 'application/json' });
  });
  app.get('/stream', (c) => {
    const { n, size } = streamParams(new URL(c.req.url).search.slice(1));
    let i = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (i++ < n) controller.enqueue(Buffer.alloc(size, 'x'));
        else controller.close();
      },
    });
    return new Response(stream, { headers: { 'Content-Type': 'application/octet-stream' } });
  });
  app.get('/error-before', () => {
    throw new Error('boom before headers');
  });
  app.get('/error-after', () => {
    let sent = false;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (!sent) {
          sent = true;
          controller.enqueue(Buffer.from('part-'));
          return;
        }
        await new Promise((r) => setTimeout(r, 5));
        controller.error(new Error('boom after headers'));
      },
    });
    return new Response(stream, { headers: { 'Content-Type': 'text/plain' } });
  });
  app.get('/no-content', () => new Response(null, { status: 204 }));
  app.get('/not-modified', () => new Response(null, { status: 304, headers: { ETag: '"x"' } }));
  app.get('/cookies', (c) => {
    c.header('Set-Cookie', 'a=1', { append: true });
    c.header('Set-Cookie', 'b=2', { append: true });
    return c.text('two cookies\n');
  });
  app.get('/forever', (c) => {
    const it = foreverChunks(c.req.raw.signal);
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const r = await it.next();
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      },
      async cancel() {
        await it.return(undefined);
      },
    });
    return new Response(stream, { headers: { 'Content-Type': 'application/octet-stream' } });
  });
  // Hono-only routes: what a fetch Response carries that no other flavour has.
  app.get('/hono-stream-text', (c) =>
    streamText(c, async (stream) => {
      await stream.write('one ');
      await stream.sleep(5);
      await stream.write('two');
    }),
  );
  app.get('/hono-sse', (c) =>
    streamSSE(c, async (stream) => {
      await stream.writeSSE({ data: 'a', event: 'tick', id: '1' });
      await stream.sleep(5);
      await stream.writeSSE({ data: 'b' });
    }),
  );
  app.get('/hop-by-hop', () => new Response('hop\n', { headers: { Connection: 'keep-alive', 'Keep-Alive': 'timeout=5', 'Proxy-Connection': 'x', 'X-Kept': 'yes' } }));
  app.get('/length/:kind', (c) => {
    const kind = c.req.param('kind');
    const bytes = Buffer.from(LENGTH_BODY, 'utf8');
    switch (kind) {
      case 'text':
        return c.text(LENGTH_BODY);
      case 'json':
        return c.json({ body: LENGTH_BODY });
      case 'string':
        return new Response(LENGTH_BODY);
      case 'bytes':
        return new Response(new Uint8Array(bytes));
      case 'arraybuffer':
        return new Response(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
      case 'blob':
        return new Response(new Blob([LENGTH_BODY.slice(0, 5), LENGTH_BODY.slice(5)]));
      case 'params':
        return new Response(new URLSearchParams({ body: LENGTH_BODY }));
      case 'empty':
        return new Response('');
      default:
        return c.notFound();
    }
  });
  app.onError((_err, c) => c.text('Internal Server Error\n', 500));
  return app;
}

/** The body of the Hono /length routes: non-ASCII, so a length counted in chars shows. */
export const LENGTH_BODY = 'known length: \u00e9\u20ac\n';

export type Flavour = 'environ' | 'node' | 'express' | 'koa' | 'hono';

export function behaviourService(flavour: Flavour): Service {
  switch (flavour) {
    case 'environ':
      return toService(environApp, 'environ', 'environ behaviour app');
    case 'node':
      return toService(nodeApp, 'node', 'node behaviour app');
    case 'express':
      return toService(expressApp(), undefined, 'express behaviour app');
    case 'koa':
      return toService(koaApp(), undefined, 'koa behaviour app');
    case 'hono':
      return toService(honoApp(), undefined, 'hono behaviour app');
  }
}

/** What validateApp found wrong in the calls of one validated service. */
export interface ContractWatch {
  /** Every ValidationError message, in order (the app or the exchange may have swallowed it). */
  readonly slips: string[];
  /** Bodies whose close() the server has not called yet. */
  openBodies(): number;
}

/** Rethrows `err` after noting it when it is a contract slip. */
function noting<T>(note: (err: unknown) => void, run: () => T): T {
  try {
    return run();
  } catch (err) {
    note(err);
    throw err;
  }
}

/** The validated body, with its iteration watched for ValidationErrors (chunk checks) and its close() kept. */
export function watchBody(body: Body, note: (err: unknown) => void): Body {
  const close = (): void => {
    (body as { close?: () => void }).close?.();
  };
  if (typeof (body as Iterable<Chunk>)[Symbol.iterator] === 'function') {
    const inner = body as Iterable<Chunk>;
    return {
      *[Symbol.iterator]() {
        try {
          yield* inner;
        } catch (err) {
          note(err);
          throw err;
        }
      },
      close,
    } as Iterable<Chunk> & { close(): void };
  }
  const inner = body as AsyncIterable<Chunk>;
  return {
    async *[Symbol.asyncIterator]() {
      try {
        yield* inner;
      } catch (err) {
        note(err);
        throw err;
      }
    },
    close,
  } as AsyncIterable<Chunk> & { close(): void };
}

/**
 * A behaviour service whose environ app runs inside validateApp (src/validate.ts). Its checks
 * throw ValidationError where the slip happens: the server's environ (before the app), the
 * app's start_response and write() calls, and the body's chunks. Each is recorded in `slips`
 * on its way through, so a test fails on it even when a framework caught it and answered 500.
 * A Node handler keeps its direct path on the HTTP front (Node's own req/res: no environ to check).
 */
export function validatedService(flavour: Flavour): { service: Service; watch: ContractWatch } {
  const base = behaviourService(flavour);
  const slips: string[] = [];
  const note = (err: unknown): void => {
    if (err instanceof ValidationError) slips.push(err.message);
  };
  // Inside validateApp: the start_response and write() it hands the app throw on a slip.
  const observed: App = (environ, startResponse) =>
    base.app(environ, (status, headers, excInfo) => {
      const write = noting(note, () => startResponse(status, headers, excInfo));
      return (chunk) => noting(note, () => write(chunk));
    });
  const validated = validateApp(observed);
  const app: App = (environ, startResponse) =>
    Promise.resolve(validated(environ, startResponse)).then(
      (body) => watchBody(body, note),
      (err: unknown) => {
        note(err);
        throw err;
      },
    );
  return { service: { ...base, app }, watch: { slips, openBodies: () => validated.openBodies() } };
}
