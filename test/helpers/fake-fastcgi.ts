/**
 * A scriptable fake FastCGI application server (the upstream side) for the FastCGI upstream
 * client's tests (test/upstream-fastcgi.test.ts): a net.Server that parses every record it
 * receives with the server-side RecordDecoder, keeps them per connection, and answers as the test
 * says.
 *
 * - GET_VALUES is answered with FCGI_MPXS_CONNS `0` (as php-fpm does), `1`, or not at all
 *   (`silent`: the probe connection is held open without a word). A connection whose first
 *   record is GET_VALUES is a probe connection; the counts of request connections leave it out.
 * - A request is announced at BEGIN_REQUEST (`onBegin`), at the end of its PARAMS (`onParams`)
 *   and at the end of its STDIN (`onRequest`, whose default answers a JSON echo of the params and
 *   the body's hash). A hook answers through the FakeRequest (stdout, stderr, end, respond) or
 *   through the raw socket for the hostile cases.
 * - Records for an id that is not active (STDIN after END_REQUEST, a second request's body
 *   mixed with the first's) are kept as `strays` of their connection.
 */
import { createHash } from 'node:crypto';
import * as net from 'node:net';
import { RecordDecoder } from '../../protocols/fastcgi/decoder.js';
import { FCGI_NULL_REQUEST_ID, Flag, ManagementVariable, ProtocolStatus, RecordType } from '../../protocols/fastcgi/constants.js';
import { answerGetValues, encodeEndOfStream, encodeEndRequest, encodeStderr, encodeStdout } from '../../protocols/fastcgi/encoder.js';
import { decodeParams, type Pair } from '../../protocols/fastcgi/params.js';

export interface FakeRecord {
  type: number;
  id: number;
  /** A copy of the content. */
  content: Buffer;
}

export interface FakeOptions {
  /** The answer to GET_VALUES. @default '0' */
  mpxs?: '0' | '1' | 'silent';
  /** FCGI_MAX_REQS in the GET_VALUES answer. @default 100 */
  maxReqs?: number;
  /** At BEGIN_REQUEST, before its PARAMS. */
  onBegin?(req: FakeRequest): void;
  /** At the end of the PARAMS stream. */
  onParams?(req: FakeRequest): void;
  /** At the end of the STDIN stream; @default an echo ({@link echoAnswer}) unless already answered. */
  onRequest?(req: FakeRequest): void;
  /** At FCGI_ABORT_REQUEST. */
  onAbort?(req: FakeRequest): void;
}

/** What the default answer carries. */
export interface FakeEcho {
  params: Record<string, string>;
  bytes: number;
  sha256: string;
  id: number;
  conn: number;
}

export const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

export class FakeRequest {
  role = 0;
  flags = 0;
  readonly params: Pair[] = [];
  private readonly paramBytes: Buffer[] = [];
  private readonly stdinChunks: Buffer[] = [];
  stdinBytes = 0;
  paramsEnded = false;
  stdinEnded = false;
  aborted = false;
  /** The fake wrote END_REQUEST for it. */
  ended = false;
  /** Something was written for it. */
  answered = false;

  constructor(
    readonly conn: FakeConn,
    readonly id: number,
  ) {}

  get keepConn(): boolean {
    return (this.flags & Flag.KeepConn) !== 0;
  }

  /** A param's value (latin1), or undefined. */
  param(name: string): string | undefined {
    return this.params.find(([n]) => n === name)?.[1];
  }

  get stdin(): Buffer {
    return Buffer.concat(this.stdinChunks);
  }

  /** @internal */
  addParams(content: Buffer): void {
    if (content.length === 0) {
      this.paramsEnded = true;
      this.params.push(...decodeParams(Buffer.concat(this.paramBytes)));
      return;
    }
    this.paramBytes.push(content);
  }

  /** @internal */
  addStdin(content: Buffer): void {
    if (content.length === 0) {
      this.stdinEnded = true;
      return;
    }
    this.stdinChunks.push(content);
    this.stdinBytes += content.length;
  }

  /** STDOUT records; what socket.write() said for the last one. */
  stdout(data: Buffer | string): boolean {
    this.answered = true;
    return this.conn.writeAll(encodeStdout(this.id, Buffer.from(data as string, 'latin1')));
  }

  stderr(data: Buffer | string): boolean {
    this.answered = true;
    return this.conn.writeAll(encodeStderr(this.id, Buffer.from(data as string, 'latin1')));
  }

  /** The empty STDOUT record and END_REQUEST. */
  end(appStatus = 0, protocolStatus: number = ProtocolStatus.RequestComplete): void {
    this.answered = true;
    this.ended = true;
    this.conn.active.delete(this.id);
    this.conn.writeAll([encodeEndOfStream(RecordType.Stdout, this.id), encodeEndRequest(this.id, appStatus, protocolStatus)]);
  }

  /** A whole answer: `head` (CRLF lines, without the empty line), the empty line, `body`, END_REQUEST. */
  respond(head: string, body: Buffer | string = ''): void {
    this.stdout(Buffer.concat([Buffer.from(`${head}\r\n\r\n`, 'latin1'), Buffer.from(body as string, 'latin1')]));
    this.end();
  }

  echo(): FakeEcho {
    const body = this.stdin;
    return { params: Object.fromEntries(this.params), bytes: body.length, sha256: sha256(body), id: this.id, conn: this.conn.index };
  }
}

/** The default answer: 200 with the JSON of {@link FakeEcho}. */
export function echoAnswer(req: FakeRequest): void {
  req.respond('Status: 200 OK\r\nContent-Type: application/json', JSON.stringify(req.echo()));
}

export class FakeConn {
  readonly records: FakeRecord[] = [];
  /** Records for an id without an active request (after its END_REQUEST, or never begun). */
  readonly strays: FakeRecord[] = [];
  readonly requests: FakeRequest[] = [];
  readonly active = new Map<number, FakeRequest>();
  /** Whether the first record was GET_VALUES. */
  probe = false;
  closed = false;
  /** The client closed (EOF) before the fake did. */
  endedByClient = false;
  /** The fake ended or destroyed it. */
  closedByFake = false;
  /** socket.write() returned false at least once. */
  sawBackpressure = false;
  private readonly decoder: RecordDecoder;

  constructor(
    readonly server: FakeFastcgi,
    readonly socket: net.Socket,
    readonly index: number,
  ) {
    this.decoder = new RecordDecoder((type, id, content) => this.onRecord(type, id, Buffer.from(content)));
    socket.on('data', (chunk: Buffer) => {
      if (this.closedByFake) return;
      try {
        this.decoder.push(chunk);
      } catch (err) {
        server.errors.push(err as Error);
        this.destroy();
      }
    });
    socket.on('end', () => {
      if (!this.closedByFake) this.endedByClient = true;
    });
    socket.on('error', () => undefined);
  }

  /** Request connections only: first record BEGIN_REQUEST. */
  get isRequestConn(): boolean {
    return this.records.length > 0 && !this.probe;
  }

  writeAll(pieces: readonly Uint8Array[]): boolean {
    if (this.socket.destroyed || this.closedByFake) return true;
    let ok = true;
    this.socket.cork();
    for (const p of pieces) ok = this.socket.write(p);
    this.socket.uncork();
    if (!ok) this.sawBackpressure = true;
    return ok;
  }

  /** Raw bytes on the connection. */
  write(data: Buffer | string): boolean {
    return this.writeAll([Buffer.from(data as string, 'latin1')]);
  }

  destroy(): void {
    this.closedByFake = true;
    this.socket.destroy();
  }

  end(): void {
    this.closedByFake = true;
    this.socket.end();
  }

  /** The records of `type` (and `id`). */
  ofType(type: number, id?: number): FakeRecord[] {
    return this.records.filter((r) => r.type === type && (id === undefined || r.id === id));
  }

  private onRecord(type: number, id: number, content: Buffer): void {
    if (this.closedByFake) return; // the rest of a chunk after the fake closed
    const record = { type, id, content };
    if (this.records.length === 0 && type === RecordType.GetValues) this.probe = true;
    if (this.records.length === 0 && !this.probe) this.server.requestConnOpened();
    this.records.push(record);
    const opts = this.server.options;
    if (id === FCGI_NULL_REQUEST_ID) {
      if (type === RecordType.GetValues) {
        const mpxs = opts.mpxs ?? '0';
        if (mpxs === 'silent') return;
        const max = opts.maxReqs ?? 100;
        this.write(answerGetValues(content, { [ManagementVariable.MaxConns]: 100, [ManagementVariable.MaxReqs]: max, [ManagementVariable.MpxsConns]: mpxs }));
      }
      return;
    }
    if (type === RecordType.BeginRequest) {
      const req = new FakeRequest(this, id);
      req.role = (content[0]! << 8) | content[1]!;
      req.flags = content[2]!;
      this.active.set(id, req);
      this.requests.push(req);
      this.server.requests.push(req);
      opts.onBegin?.(req);
      return;
    }
    const req = this.active.get(id);
    if (req === undefined) {
      this.strays.push(record);
      return;
    }
    if (type === RecordType.Params) {
      req.addParams(content);
      if (req.paramsEnded) opts.onParams?.(req);
    } else if (type === RecordType.Stdin) {
      req.addStdin(content);
      if (req.stdinEnded) (opts.onRequest ?? ((r: FakeRequest) => (r.answered ? undefined : echoAnswer(r))))(req);
    } else if (type === RecordType.AbortRequest) {
      req.aborted = true;
      opts.onAbort?.(req);
    }
  }
}

/** A fake FastCGI upstream on 127.0.0.1. */
export class FakeFastcgi {
  port = 0;
  readonly conns: FakeConn[] = [];
  readonly requests: FakeRequest[] = [];
  /** Framing errors in what the client sent. */
  readonly errors: Error[] = [];
  /** Request connections open now, and the most that were open at once. */
  openRequestConns = 0;
  peakRequestConns = 0;
  private readonly server: net.Server;

  constructor(readonly options: FakeOptions = {}) {
    this.server = net.createServer((socket) => {
      const conn = new FakeConn(this, socket, this.conns.length);
      this.conns.push(conn);
      socket.on('close', () => {
        conn.closed = true;
        if (conn.isRequestConn) this.openRequestConns--;
      });
    });
  }

  /** Listens on 127.0.0.1:`port` (0: any free port). */
  static async start(options: FakeOptions = {}, port = 0): Promise<FakeFastcgi> {
    const fake = new FakeFastcgi(options);
    await new Promise<void>((resolve, reject) => {
      fake.server.once('error', reject);
      fake.server.listen(port, '127.0.0.1', resolve);
    });
    fake.port = (fake.server.address() as net.AddressInfo).port;
    return fake;
  }

  /** @internal */
  requestConnOpened(): void {
    this.openRequestConns++;
    this.peakRequestConns = Math.max(this.peakRequestConns, this.openRequestConns);
  }

  /** Connections that carried requests (probe connections left out). */
  get requestConns(): FakeConn[] {
    return this.conns.filter((c) => c.isRequestConn);
  }

  get probes(): FakeConn[] {
    return this.conns.filter((c) => c.probe);
  }

  close(): Promise<void> {
    for (const c of this.conns) c.socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
