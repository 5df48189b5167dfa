/**
 * The `--auto` listener: one address for HTTP/1.1, FastCGI, SCGI and uwsgi. Each connection's
 * first bytes (at most 16, protocols/detect.ts) tell which protocol it speaks; the buffered
 * bytes are put back into the socket (`unshift`) and the socket is handed to that front, which
 * then runs exactly as on its own listener. Bytes that match no protocol get one log line and a
 * closed connection; a connection that does not send enough bytes within the headers timeout
 * is closed too.
 *
 * The listener itself is the HTTP front's http.Server with its connection handler taken over,
 * so Node's HTTP timeouts and the graceful close of idle keep-alive connections keep working.
 * The peer allow-lists apply per detected protocol (--fastcgi-allow, --scgi-allow,
 * --uwsgi-allow); HTTP has none.
 */
import type http from 'node:http';
import type net from 'node:net';
import type { Socket } from 'node:net';
import { normalizeRemoteAddr } from '../environ.js';
import type { Logger } from '../log.js';
import type { GatewayFrontOptions } from './common.js';
import { createFastcgiServer } from './fastcgi.js';
import { type HttpFrontOptions, createHttpServer } from './http.js';
import { scgiConnectionHandler } from './scgi.js';
import { uwsgiConnectionHandler } from './uwsgi.js';
import { DETECT_MAX_BYTES, type DetectResult, detectProtocol } from '../../protocols/detect.js';
import { showBytes } from '../../protocols/errors.js';

export interface AutoFrontOptions {
  http: HttpFrontOptions;
  fastcgi: GatewayFrontOptions;
  scgi: GatewayFrontOptions;
  uwsgi: GatewayFrontOptions;
  logger: Logger;
  /** Time for a connection to send the bytes that decide its protocol. */
  headersTimeout: number;
}

type Handoff = (socket: Socket) => void;

export function createAutoServer(opts: AutoFrontOptions): http.Server {
  const server = createHttpServer(opts.http);
  // node:http serves a socket through its 'connection' listener; take it and call it ourselves.
  const httpListeners = server.listeners('connection') as Handoff[];
  server.removeAllListeners('connection');
  // FastCGI's front is reached through its (never listening) server's connection handler.
  const fastcgi = createFastcgiServer(opts.fastcgi) as net.Server & { closeIdleConnections?: () => void };
  const scgi = scgiConnectionHandler(opts.scgi);
  const uwsgi = uwsgiConnectionHandler(opts.uwsgi);
  const fronts: Record<Detected, Handoff> = {
    http: (socket) => {
      for (const listener of httpListeners) listener.call(server, socket);
    },
    fastcgi: (socket) => fastcgi.emit('connection', socket),
    scgi: (socket) => scgi.handle(socket),
    uwsgi: (socket) => uwsgi.handle(socket),
  };
  const detecting = new Set<Detection>();
  server.on('connection', (socket: Socket) => {
    const d = detect(socket, opts, fronts);
    detecting.add(d);
    d.done = () => detecting.delete(d);
  });
  // Graceful shutdown: idle HTTP keep-alive (native), idle FastCGI keep-conn, and connections
  // that have not sent a byte.
  const closeHttpIdle = server.closeIdleConnections.bind(server);
  server.closeIdleConnections = (): void => {
    closeHttpIdle();
    fastcgi.closeIdleConnections?.();
    scgi.closeIdle();
    uwsgi.closeIdle();
    for (const d of detecting) d.closeIfIdle();
  };
  return server;
}

type Detected = Exclude<DetectResult, 'unknown' | 'need-more'>;

interface Detection {
  closeIfIdle(): void;
  done: () => void;
}

function detect(socket: Socket, opts: AutoFrontOptions, fronts: Record<Detected, Handoff>): Detection {
  const logger = opts.logger;
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
  const onData = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const kind = detectProtocol(seen);
    if (kind === 'need-more') return;
    cleanup();
    if (kind === 'unknown') {
      logger.warn(`auto: the first bytes from ${remote()} ("${showBytes(seen, DETECT_MAX_BYTES)}") are not HTTP, FastCGI, SCGI or uwsgi; closing`);
      socket.destroy();
      return;
    }
    if (logger.debugEnabled) logger.debug(`auto: ${remote()} speaks ${kind}`);
    // Put the bytes back and let the front read them as its first data, in order: the socket
    // stays paused until the front has its listeners, and nothing is read in between.
    socket.pause();
    socket.unshift(seen);
    fronts[kind](socket);
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
    logger.warn(`auto: ${remote()} sent ${seen.length} bytes in ${opts.headersTimeout} ms, too few to tell the protocol; closing`);
    socket.destroy();
  };
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('timeout', onTimeout);
  socket.on('error', (err: NodeJS.ErrnoException) => {
    if (logger.debugEnabled) logger.debug(`auto: connection error from ${remote()}: ${err.code ?? err.message}`);
  });
  socket.setTimeout(opts.headersTimeout);
  socket.once('close', () => detection.done());
  return detection;
}
