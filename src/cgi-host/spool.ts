/**
 * C-9: a request body of unknown length (HTTP chunked, FastCGI without CONTENT_LENGTH) is read
 * completely before the script starts, so CONTENT_LENGTH can be set (RFC 3875 §4.2: "the server
 * MUST ... recompute CONTENT_LENGTH"). Small bodies stay in memory; past `memoryBytes` they go to
 * an unlinked temp file whose read descriptor becomes the child's stdin directly. Past
 * `maxBytes` the body is refused (413).
 */
import { randomBytes } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { GatewireError, ServerErrorCode } from '../errors.js';

export interface SpoolOptions {
  memoryBytes: number;
  maxBytes: number;
  dir: string;
}

/** A complete body: bytes in memory, or a file descriptor positioned at offset 0. */
export type SpooledBody =
  | { kind: 'memory'; data: Buffer; length: number }
  | { kind: 'file'; fd: number; length: number; close(): Promise<void> };

/** The body passed `maxBytes` (413). */
export class SpoolLimitError extends GatewireError {
  override name = 'SpoolLimitError';
  override readonly code = ServerErrorCode.SpoolLimit;
}

/** Reads `input` to its end. Throws SpoolLimitError past the limit; other errors are the input's. */
export async function spoolBody(input: Readable, opts: SpoolOptions): Promise<SpooledBody> {
  const chunks: Buffer[] = [];
  let length = 0;
  let writer: FileHandle | undefined;
  let reader: FileHandle | undefined;
  try {
    for await (const chunk of input as AsyncIterable<Buffer | string>) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      length += buf.length;
      if (length > opts.maxBytes) throw new SpoolLimitError(`request body over the limit ${opts.maxBytes}`);
      if (writer === undefined && length > opts.memoryBytes) {
        // Two descriptors: the writer's offset ends at EOF, the reader's stays at 0 for the child.
        const path = join(opts.dir, `gatewire-cgi-body-${process.pid}-${randomBytes(8).toString('hex')}`);
        writer = await open(path, 'wx', 0o600);
        try {
          reader = await open(path, 'r');
        } finally {
          await unlink(path);
        }
        for (const c of chunks) await writer.write(c);
        chunks.length = 0;
      }
      if (writer !== undefined) await writer.write(buf);
      else chunks.push(buf);
    }
    if (writer === undefined || reader === undefined) return { kind: 'memory', data: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length), length };
    await writer.close();
    writer = undefined;
    const fh = reader;
    reader = undefined;
    return { kind: 'file', fd: fh.fd, length, close: () => fh.close() };
  } finally {
    if (writer !== undefined) await writer.close().catch(() => undefined);
    if (reader !== undefined) await reader.close().catch(() => undefined);
  }
}
