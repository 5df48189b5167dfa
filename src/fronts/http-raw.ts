/**
 * A node:http connection handed to one response framed by the app itself (C-28: an NPH script's
 * output goes to the client unmodified, RFC 3875 §5.2, as Apache sends it). The HTTP front's sink
 * offers it as `raw()` (call.ts ResponseSink); the exchange then writes the app's bytes here.
 *
 * node:http keeps owning the connection's input (the request body still reaches the app through
 * its IncomingMessage), but writes nothing more on it: the ServerResponse is never written or
 * ended, so it holds the socket (`socket._httpMessage`) and any pipelined response queues behind
 * it instead of interleaving with the raw bytes. The framing is the app's, which the server cannot
 * know, so nothing may follow it: the end of the response half-closes the connection, the peer's
 * remaining input is drained until it closes or DRAIN_MS pass (as after a gateway response, F-40,
 * S-9), and the queued responses go with the connection. An abort resets it.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { RawOutput } from '../call.js';
import { DRAIN_MS, resetAfterFlush, waitDrain } from './common.js';

/**
 * The connection of `res` for a raw response, once `res` owns it: at once, or when the responses
 * pipelined before it are out. Undefined when `res` already wrote its head or the connection
 * closed first.
 */
export function takeConnection(res: ServerResponse): Promise<RawOutput | undefined> {
  if (res.headersSent || res.writableEnded || res.destroyed) return Promise.resolve(undefined);
  const owned = res.socket;
  if (owned !== null) return Promise.resolve(new RawConnection(owned));
  const connection = res.req.socket;
  return new Promise((resolve) => {
    const onSocket = (socket: Socket): void => {
      connection.off('close', onClose);
      resolve(new RawConnection(socket));
    };
    const onClose = (): void => {
      res.off('socket', onSocket);
      resolve(undefined);
    };
    res.once('socket', onSocket);
    connection.once('close', onClose);
  });
}

class RawConnection implements RawOutput {
  constructor(private readonly socket: Socket) {}

  get closed(): boolean {
    return this.socket.destroyed || !this.socket.writable;
  }

  write(chunk: Buffer): boolean {
    return this.socket.write(chunk);
  }

  drain(): Promise<void> {
    return waitDrain(this.socket);
  }

  end(): void {
    const socket = this.socket;
    if (socket.destroyed) return;
    // Once every byte is out, the peer gets DRAIN_MS to close its side.
    socket.once('finish', () => setTimeout(() => socket.destroy(), DRAIN_MS).unref());
    socket.end();
  }

  abort(): void {
    resetAfterFlush(this.socket);
  }
}
