/**
 * The `--auto` listener: one address for HTTP/1.1, FastCGI, SCGI and uwsgi. Each connection's
 * first bytes (at most 16, protocols/detect.ts) tell which protocol it speaks; the buffered
 * bytes are put back into the socket (`unshift`) and the socket is handed to that front, which
 * then runs exactly as on its own listener. Bytes that match no protocol get one log line and a
 * closed connection; a connection that does not send enough bytes within the headers timeout
 * is closed too.
 *
 * The protocols and their order come from the front registry (every front with a signature).
 * The listener itself is the HTTP front's http.Server with its connection handler taken over
 * (node:http's timeouts are tied to the server that listens, so HTTP cannot be handed over to
 * a server that does not), so Node's HTTP timeouts and the graceful close of idle keep-alive
 * connections keep working, and an Upgrade request reaches the server's 'upgrade' listener, the
 * app's upgrade handler (H-15), as on --http. The peer allow-lists apply per detected protocol
 * (--fastcgi-allow, --scgi-allow, --uwsgi-allow); HTTP has none.
 */
import type { Socket } from 'node:net';
import { normalizeRemoteAddr } from '../environ.js';
import type { Logger } from '../log.js';
import { FRONTS, type ConnectionHandler, type FrontModule, type Listener, type SignatureResult } from './registry.js';
import { markHeadStart } from './common.js';
import { DETECT_MAX_BYTES } from '../../protocols/detect.js';
import { showBytes } from '../../protocols/errors.js';

/** A protocol --auto can tell apart: its name, its first-bytes test, where its connections go. */
interface Candidate {
  title: string;
  signature: (head: Uint8Array) => SignatureResult;
  handler: ConnectionHandler;
}

export const front: FrontModule = {
  listen(ctx) {
    const base = (FRONTS.find((f) => f.name === 'http')?.load() as FrontModule).listen(ctx);
    const server = base.server;
    // node:http serves a socket through its 'connection' listener; take it and call it ourselves.
    const httpListeners = server.listeners('connection') as Array<(socket: Socket) => void>;
    server.removeAllListeners('connection');
    const http: ConnectionHandler = {
      handle: (socket) => {
        for (const listener of httpListeners) listener.call(server, socket);
      },
      closeIdle: () => base.closeIdle(),
    };
    const candidates: Candidate[] = [];
    for (const entry of FRONTS) {
      if (!entry.protocol) continue;
      const module = entry.load();
      if (module.signature === undefined) continue;
      const handler = entry.name === 'http' ? http : module.connections?.(ctx);
      if (handler === undefined) continue;
      candidates.push({ title: entry.title, signature: module.signature(ctx), handler });
    }
    const detecting = new Set<Detection>();
    server.on('connection', (socket: Socket) => {
      const d = detect(socket, ctx.logger, ctx.options.headersTimeout, candidates);
      detecting.add(d);
      d.done = () => detecting.delete(d);
    });
    const listener: Listener = {
      server,
      // Graceful shutdown: every protocol's idle connections, and connections that have not sent a byte.
      closeIdle() {
        for (const c of candidates) c.handler.closeIdle();
        for (const d of detecting) d.closeIfIdle();
      },
    };
    return listener;
  },
};

interface Detection {
  closeIfIdle(): void;
  done: () => void;
}

/** The first candidate that matches, `need-more` while any may still match, else undefined. */
function decide(seen: Buffer, candidates: readonly Candidate[]): Candidate | 'need-more' | undefined {
  let waiting = false;
  for (const c of candidates) {
    const r = c.signature(seen);
    if (r === 'match') return c;
    if (r === 'need-more') waiting = true;
  }
  return waiting && seen.length < DETECT_MAX_BYTES ? 'need-more' : undefined;
}

function detect(socket: Socket, logger: Logger, headersTimeout: number, candidates: readonly Candidate[]): Detection {
  let seen: Buffer = Buffer.alloc(0);
  const detection: Detection = {
    closeIfIdle: () => {
      if (seen.length === 0) {
        cleanup();
        socket.destroy();
      }
    },
    done: () => undefined,
  };
  const remote = (): string => (socket.remoteAddress === undefined ? 'unix' : normalizeRemoteAddr(socket.remoteAddress));
  const cleanup = (): void => {
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('timeout', onTimeout);
    socket.setTimeout(0);
    detection.done();
  };
  let firstByteAt = 0;
  const onData = (chunk: Buffer): void => {
    if (seen.length === 0) firstByteAt = performance.now();
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const kind = decide(seen, candidates);
    if (kind === 'need-more') {
      // The headers timeout runs from the first byte, not from the last (a byte now and then
      // must not keep a connection in detection): the idle timer gets only what is left.
      const left = firstByteAt + headersTimeout - performance.now();
      if (left <= 0) onTimeout();
      else socket.setTimeout(Math.ceil(left));
      return;
    }
    cleanup();
    if (kind === undefined) {
      logger.warn(`auto: the first bytes from ${remote()} ("${showBytes(seen, DETECT_MAX_BYTES)}") are not ${candidates.map((c) => c.title).join(', ').replace(/, ([^,]*)$/, ' or $1')}; closing`);
      socket.destroy();
      return;
    }
    if (logger.debugEnabled) logger.debug(`auto: ${remote()} speaks ${kind.title}`);
    // Put the bytes back and let the front read them as its first data, in order: the socket
    // stays paused until the front has its listeners, and nothing is read in between.
    socket.pause();
    socket.unshift(seen);
    markHeadStart(socket, firstByteAt); // the front's head deadline counts from this first byte
    kind.handler.handle(socket);
    if (!socket.destroyed) socket.resume();
  };
  const onEnd = (): void => {
    cleanup();
    if (seen.length > 0) logger.warn(`auto: ${remote()} closed after ${seen.length} bytes ("${showBytes(seen, DETECT_MAX_BYTES)}"), too few to tell the protocol`);
    else if (logger.debugEnabled) logger.debug(`auto: ${remote()} closed before sending anything`);
    socket.destroy();
  };
  const onTimeout = (): void => {
    cleanup();
    logger.warn(`auto: ${remote()} sent ${seen.length} bytes in ${headersTimeout} ms, too few to tell the protocol; closing`);
    socket.destroy();
  };
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('timeout', onTimeout);
  socket.on('error', (err: NodeJS.ErrnoException) => {
    if (logger.debugEnabled) logger.debug(`auto: connection error from ${remote()}: ${err.code ?? err.message}`);
  });
  socket.setTimeout(headersTimeout);
  socket.once('close', () => detection.done());
  return detection;
}
