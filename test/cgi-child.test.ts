/**
 * CGI child mode (docs/conformance.md §6): `gatewire cgi APP`.
 *
 * Two layers:
 * - runCgiChild in-process, with a raw environment block and streams: every K- rule and each
 *   hostile input of §6.3, byte for byte;
 * - the built CLI as a real CGI program: a crafted environment (raw non-UTF-8 bytes through
 *   python3's execve), stdin left open, short and long bodies, SIGTERM, EPIPE, nph- names,
 *   node and fetch apps, a listening socket as fd 0 (FastCGI, K-18/K-19, with spawn-fcgi and
 *   cgi-fcgi as real peers), and real hosts: python3 -m http.server --cgi and Apache
 *   mod_cgi / mod_cgid running the drop-in examples/cgi-wrapper.cgi.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import type { App, Environ, Service } from '../src/app.js';
import { LINGER_MS } from '../src/cli-cgi.js';
import { CgiTermination, cgiVars, isCgiEnvironment, isNphName, parseEnvironBlock, runCgiChild } from '../src/fronts/cgi.js';
import { toService } from '../src/loader.js';
import { ROOT, CLI, ensureBuilt, example } from './fixtures/apps/cli-harness.js';
import { fcgiRequest, parseCgiResponse } from './helpers/fcgi-client.js';
import { freePort, httpGet, tmpDir, waitForPort, type TmpDir } from './helpers/net.js';
import { describeWithPeers, openToPeers, peerPath, startApache, withPeerLogs } from './helpers/peers.js';

// ---------------------------------------------------------------------------------------
// In-process harness
// ---------------------------------------------------------------------------------------

interface Outcome {
  code: number;
  out: Buffer;
  /** stdout as latin1 (one char per byte). */
  text: string;
  firstLine: string;
  headers: Array<[string, string]>;
  body: Buffer;
  stderr: string;
}

function splitResponse(out: Buffer): { firstLine: string; headers: Array<[string, string]>; body: Buffer } {
  const end = out.indexOf('\r\n\r\n');
  if (end === -1) return { firstLine: '', headers: [], body: Buffer.alloc(0) };
  const lines = out.subarray(0, end).toString('latin1').split('\r\n');
  const headers = lines.slice(1).map((l): [string, string] => {
    const colon = l.indexOf(':');
    return [l.slice(0, colon), l.slice(colon + 1).trim()];
  });
  return { firstLine: lines[0] as string, headers, body: out.subarray(end + 4) };
}

function header(o: { headers: Array<[string, string]> }, name: string): string | undefined {
  return o.headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];
}

class Collector extends Writable {
  readonly chunks: Buffer[] = [];
  constructor(private readonly delayMs = 0) {
    super({ highWaterMark: 1024 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.chunks.push(Buffer.from(chunk));
    if (this.delayMs > 0) setTimeout(done, this.delayMs);
    else done();
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** A stdin that records whether anything ever asked it for data. */
class SpyStdin extends Readable {
  reads = 0;
  constructor(private readonly data: Buffer = Buffer.alloc(0)) {
    super();
  }
  override _read(): void {
    this.reads++;
    if (this.data.length > 0 && this.reads === 1) this.push(this.data);
    this.push(null);
  }
}

interface InOptions {
  stdin?: Readable;
  stdout?: Writable;
  scriptName?: string;
  signal?: AbortSignal;
  maxBodyBytes?: number;
}

async function runIn(app: App | Service, env: Record<string, string> | Buffer, opts: InOptions = {}): Promise<Outcome> {
  const service: Service = typeof app === 'function' ? { app, interface: 'environ' } : app;
  const stdout = opts.stdout ?? new Collector();
  let stderr = '';
  const code = await runCgiChild(service, {
    env,
    stdin: opts.stdin ?? new SpyStdin(),
    stdout,
    stderr: { write: (t: string) => (stderr += t) },
    ...(opts.scriptName === undefined ? {} : { scriptName: opts.scriptName }),
    ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    ...(opts.maxBodyBytes === undefined ? {} : { maxBodyBytes: opts.maxBodyBytes }),
  });
  const out = stdout instanceof Collector ? stdout.bytes : Buffer.alloc(0);
  return { code, out, text: out.toString('latin1'), ...splitResponse(out), stderr };
}

const hello: App = (_env, start) => {
  start('200 OK', [['Content-Type', 'text/plain']]);
  return ['Hello, World!\n'];
};

/** Answers with the CGI variables (and what the app saw of the body) as JSON. */
function recorder(seen: { environ?: Environ; body?: Buffer; error?: Error }): App {
  return async (environ, start) => {
    seen.environ = environ;
    const chunks: Buffer[] = [];
    try {
      for await (const c of environ['gatewire.input']) chunks.push(c as Buffer);
      seen.body = Buffer.concat(chunks);
    } catch (err) {
      seen.error = err as Error;
      throw err;
    }
    start('200 OK', [['Content-Type', 'text/plain']]);
    return ['ok'];
  };
}

const GET = { REQUEST_METHOD: 'GET', SERVER_PROTOCOL: 'HTTP/1.1', SCRIPT_NAME: '/cgi-bin/app.cgi', SERVER_NAME: 'example.org', SERVER_PORT: '80' };

/** An environment block as /proc/self/environ holds it. */
function block(...entries: Array<string | Buffer>): Buffer {
  return Buffer.concat(entries.flatMap((e) => [typeof e === 'string' ? Buffer.from(e, 'latin1') : e, Buffer.from([0])]));
}

// ---------------------------------------------------------------------------------------
// In-process: the K- rules
// ---------------------------------------------------------------------------------------

describe('CGI child: environment (K-1, K-4..K-7, E-2, E-16)', () => {
  test('K-1: the environment block is split at NUL and the first =, bytes kept as latin1, first duplicate wins', () => {
    const env = parseEnvironBlock(
      block('A=1', Buffer.concat([Buffer.from('PATH_INFO=/'), Buffer.from([0xe9, 0xff])]), 'NOEQUALS', 'A=2', 'B=x=y', '=nameless', 'EMPTY='),
    );
    expect(env).toEqual({ A: '1', PATH_INFO: '/\u00e9\u00ff', B: 'x=y', EMPTY: '' });
  });

  test('K-1 / §6.3: PATH_INFO byte E9 reaches the app as latin1 \\u00e9, and REQUEST_URI is rebuilt from it', async () => {
    const seen: { environ?: Environ } = {};
    const raw = block('REQUEST_METHOD=GET', Buffer.concat([Buffer.from('PATH_INFO=/caf'), Buffer.from([0xe9])]), Buffer.concat([Buffer.from('HTTP_X_RAW='), Buffer.from([0xff, 0xfe, 0x41])]));
    const r = await runIn(recorder(seen), raw);
    expect(r.code).toBe(0);
    expect(seen.environ?.PATH_INFO).toBe('/caf\u00e9');
    expect(seen.environ?.HTTP_X_RAW).toBe('\u00ff\u00feA');
    expect(seen.environ?.REQUEST_URI).toBe('/caf%E9');
  });

  test('K-4: SERVER_PROTOCOL INCLUDED is HTTP/1.0; missing is HTTP/1.0; HTTP/2.0 is kept', () => {
    expect(cgiVars({ REQUEST_METHOD: 'GET', SERVER_PROTOCOL: 'INCLUDED' }).SERVER_PROTOCOL).toBe('HTTP/1.0');
    expect(cgiVars({ REQUEST_METHOD: 'GET' }).SERVER_PROTOCOL).toBe('HTTP/1.0');
    expect(cgiVars({ REQUEST_METHOD: 'GET', SERVER_PROTOCOL: 'HTTP/2.0' }).SERVER_PROTOCOL).toBe('HTTP/2.0');
  });

  test.each([
    [{ HTTPS: 'on' }, 'https'],
    [{ HTTPS: 'ON' }, 'https'],
    [{ HTTPS: '1' }, 'https'],
    [{ HTTPS: 'off' }, 'http'],
    [{ HTTPS: '' }, 'http'],
    [{ REQUEST_SCHEME: 'https' }, 'https'],
    [{}, 'http'],
  ])('K-5 / §6.3: %j → url_scheme %s', async (vars, scheme) => {
    const seen: { environ?: Environ } = {};
    await runIn(recorder(seen), { ...GET, ...vars });
    expect(seen.environ?.['gatewire.url_scheme']).toBe(scheme);
  });

  test('K-6: without REQUEST_URI it is rebuilt percent-encoded, so ?, # and % in PATH_INFO keep their meaning', () => {
    const v = cgiVars({ REQUEST_METHOD: 'GET', SCRIPT_NAME: '/cgi-bin/x.cgi', PATH_INFO: '/a?b#c%d e', QUERY_STRING: 'q=1' });
    expect(v.REQUEST_URI).toBe('/cgi-bin/x.cgi/a%3Fb%23c%25d%20e?q=1');
    expect(cgiVars({ REQUEST_METHOD: 'GET' }).REQUEST_URI).toBe('/');
    expect(cgiVars({ REQUEST_METHOD: 'GET', REQUEST_URI: '/raw%2Fpath?x' }).REQUEST_URI).toBe('/raw%2Fpath?x');
    // QUERY_STRING missing: taken from REQUEST_URI (E-3)
    expect(cgiVars({ REQUEST_METHOD: 'GET', REQUEST_URI: '/p?a=1&b' }).QUERY_STRING).toBe('a=1&b');
  });

  test('K-7: without HTTP_HOST a fetch app sees SERVER_NAME:SERVER_PORT; without REMOTE_PORT none is invented', async () => {
    let url = '';
    let remotePort: unknown = 'unset';
    const service = toService(
      (req: Request) => {
        url = req.url;
        return new Response('x');
      },
      'fetch',
      'test app',
    );
    const wrapped: Service = {
      ...service,
      app: (environ, start) => {
        remotePort = environ.REMOTE_PORT;
        return service.app(environ, start);
      },
    };
    await runIn(wrapped, { REQUEST_METHOD: 'GET', SCRIPT_NAME: '/cgi-bin/app', PATH_INFO: '/x', QUERY_STRING: 'y=1', SERVER_NAME: 'example.org', SERVER_PORT: '8080' });
    expect(url).toBe('http://example.org:8080/cgi-bin/app/x?y=1');
    expect(remotePort).toBeUndefined();
    await runIn(wrapped, { REQUEST_METHOD: 'GET', SCRIPT_NAME: '/app', SERVER_NAME: 'example.org', SERVER_PORT: '443', HTTPS: 'on' });
    expect(url).toBe('https://example.org/app');
  });

  test('E-2 / E-12: only CGI-shaped names reach the environ; HTTP_PROXY (httpoxy) is dropped; a name with a dot cannot forge a server key', async () => {
    const seen: { environ?: Environ } = {};
    await runIn(recorder(seen), block('REQUEST_METHOD=GET', 'HTTP_PROXY=http://evil:1', 'gatewire.url_scheme=https', 'A-B=1', 'lower_case=ok', 'HTTP_X_OK=yes'));
    const env = seen.environ as Environ;
    expect(env.HTTP_PROXY).toBeUndefined();
    expect(env['gatewire.url_scheme']).toBe('http');
    expect(env['A-B']).toBeUndefined();
    expect(env.lower_case).toBe('ok');
    expect(env.HTTP_X_OK).toBe('yes');
  });

  test('E-16: protocol cgi, run_once and multiprocess true, multithread false, input_terminated false', async () => {
    const seen: { environ?: Environ } = {};
    await runIn(recorder(seen), GET);
    const env = seen.environ as Environ;
    expect([env['gatewire.protocol'], env['gatewire.run_once'], env['gatewire.multiprocess'], env['gatewire.multithread'], env['gatewire.input_terminated']]).toEqual(['cgi', true, true, false, false]);
    expect(env.SCRIPT_NAME).toBe('/cgi-bin/app.cgi');
    expect(env.PATH_INFO).toBe('');
    expect(env.QUERY_STRING).toBe('');
  });

  test('§6.1: CGI mode is REQUEST_METHOD or GATEWAY_INTERFACE CGI/d.d', () => {
    expect(isCgiEnvironment({})).toBe(false);
    expect(isCgiEnvironment({ REQUEST_METHOD: 'GET' })).toBe(true);
    expect(isCgiEnvironment({ GATEWAY_INTERFACE: 'CGI/1.1' })).toBe(true);
    expect(isCgiEnvironment({ GATEWAY_INTERFACE: 'CGI/1' })).toBe(false);
    expect(isCgiEnvironment({ PATH: '/usr/bin' })).toBe(false);
  });
});

describe('CGI child: request body (K-2, K-3, §6.3)', () => {
  test('K-2: REQUEST_METHOD missing → Status: 500 and exit 1, the app is not called', async () => {
    let called = false;
    const r = await runIn(() => {
      called = true;
      return [];
    }, { SCRIPT_NAME: '/x' });
    expect(r.firstLine).toBe('Status: 500 Internal Server Error');
    expect(r.code).toBe(1);
    expect(called).toBe(false);
    expect(r.stderr).toMatch(/REQUEST_METHOD/);
  });

  test.each([[{}], [{ CONTENT_LENGTH: '' }], [{ CONTENT_LENGTH: '0' }]])('K-3 / §6.3: %j → stdin is never touched, the body is empty', async (vars) => {
    const stdin = new SpyStdin(Buffer.from('must not be read'));
    const seen: { body?: Buffer } = {};
    const r = await runIn(recorder(seen), { ...GET, REQUEST_METHOD: 'POST', ...vars }, { stdin });
    expect(r.code).toBe(0);
    expect(seen.body?.length).toBe(0);
    expect(stdin.reads).toBe(0);
  });

  test.each(['abc', '-1', ' 5', '5 ', '+5', '1e3', '0x10', '5,5'])('K-3: CONTENT_LENGTH %j → 400, the app is not called', async (cl) => {
    let called = false;
    const r = await runIn(() => {
      called = true;
      return [];
    }, { ...GET, REQUEST_METHOD: 'POST', CONTENT_LENGTH: cl });
    expect(r.firstLine).toBe('Status: 400 Bad Request');
    expect(called).toBe(false);
    expect(r.code).toBe(0);
  });

  test('K-3: CONTENT_LENGTH over --max-body-bytes → 413', async () => {
    const r = await runIn(hello, { ...GET, REQUEST_METHOD: 'POST', CONTENT_LENGTH: '11' }, { maxBodyBytes: 10 });
    expect(r.firstLine).toBe('Status: 413 Content Too Large');
  });

  test('K-3 / §6.3: CONTENT_LENGTH 10 with 20 bytes on stdin → the app reads 10, the other 10 are left unread', async () => {
    const stdin = new Readable({ read() {} });
    stdin.push(Buffer.from('0123456789ABCDEFGHIJ'));
    const seen: { body?: Buffer } = {};
    const r = await runIn(recorder(seen), { ...GET, REQUEST_METHOD: 'POST', CONTENT_LENGTH: '10' }, { stdin });
    expect(r.code).toBe(0);
    expect(seen.body?.toString()).toBe('0123456789');
    stdin.push(null);
    const rest: Buffer[] = [];
    for await (const c of stdin) rest.push(c as Buffer);
    expect(Buffer.concat(rest).toString()).toBe('ABCDEFGHIJ');
  });

  test('K-3 / §6.3: CONTENT_LENGTH 10, stdin ends after 4 → the app gets a truncated-body error; uncaught it is a 500, exit 1', async () => {
    const seen: { body?: Buffer; error?: Error } = {};
    const r = await runIn(recorder(seen), { ...GET, REQUEST_METHOD: 'POST', CONTENT_LENGTH: '10' }, { stdin: Readable.from([Buffer.from('abcd')]) });
    expect((seen.error as { code?: string }).code).toBe('GATEWIRE_BODY_TRUNCATED');
    expect(r.firstLine).toBe('Status: 500 Internal Server Error');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/truncated: 4 of 10 bytes/);
  });

  test('K-3: an app that catches the truncated body can answer itself', async () => {
    const app: App = async (environ, start) => {
      try {
        for await (const _ of environ['gatewire.input']) void _;
      } catch (err) {
        start('400 Bad Request', []);
        return [String((err as { code?: string }).code)];
      }
      start('200 OK', []);
      return ['complete'];
    };
    const r = await runIn(app, { ...GET, REQUEST_METHOD: 'POST', CONTENT_LENGTH: '10' }, { stdin: Readable.from([Buffer.from('abcd')]) });
    expect(r.firstLine).toBe('Status: 400 Bad Request');
    expect(r.body.toString()).toBe('GATEWIRE_BODY_TRUNCATED');
    expect(r.code).toBe(0);
  });

  test('K-3: stdin is read only when the app reads its body', async () => {
    const stdin = new SpyStdin(Buffer.from('hello'));
    let readsAtCall = -1;
    const app: App = (_environ, start) => {
      readsAtCall = stdin.reads;
      start('200 OK', []);
      return ['ignored the body'];
    };
    const r = await runIn(app, { ...GET, REQUEST_METHOD: 'POST', CONTENT_LENGTH: '5' }, { stdin });
    expect(readsAtCall).toBe(0);
    expect(r.code).toBe(0);
  });

  test('K-3: a body the app leaves unread is consumed (up to CONTENT_LENGTH) before the run ends: mod_cgid resets the response otherwise', async () => {
    const stdin = new Readable({ read() {} });
    stdin.push(Buffer.alloc(100_000, 0x61));
    stdin.push(Buffer.from('EXTENSION'));
    stdin.push(null);
    const r = await runIn(hello, { ...GET, REQUEST_METHOD: 'POST', CONTENT_LENGTH: '100000' }, { stdin });
    expect(r.code).toBe(0);
    const rest: Buffer[] = [];
    for await (const c of stdin) rest.push(c as Buffer);
    expect(Buffer.concat(rest).toString()).toBe('EXTENSION');
  });

  test('§0.1 item 12: a host that writes the whole body before reading any output (Apache mod_cgi) does not deadlock with an app that answers first and reads later', async () => {
    const body = Buffer.alloc(512 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = i % 253;
    let sent = 0;
    let hostWroteAll = false;
    const held: Array<() => void> = [];
    // The host hands out body pieces as we read them, and reads our output only once all are taken.
    const stdin = new Readable({
      highWaterMark: 16 * 1024,
      read() {
        if (sent >= body.length) {
          this.push(null);
          return;
        }
        const piece = body.subarray(sent, sent + 16 * 1024);
        sent += piece.length;
        this.push(piece);
        if (sent >= body.length) {
          hostWroteAll = true;
          for (const release of held.splice(0)) release();
        }
      },
    });
    const collected: Buffer[] = [];
    const stdout = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _enc, done) {
        collected.push(Buffer.from(chunk));
        if (hostWroteAll) done();
        else held.push(() => done());
      },
    });
    const app: App = (environ, start) => {
      start('200 OK', [['Content-Type', 'application/octet-stream']]);
      return (async function* () {
        for (let i = 0; i < 8; i++) yield Buffer.alloc(64 * 1024, 0x6f);
        let n = 0;
        const hash: number[] = [];
        for await (const c of environ['gatewire.input']) {
          for (const b of c as Buffer) hash.push(b);
          n += (c as Buffer).length;
        }
        yield `|${n}|${Buffer.from(hash).equals(body)}`;
      })();
    };
    const code = await runCgiChild({ app, interface: 'environ' }, { env: { ...GET, REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(body.length) }, stdin, stdout });
    expect(code).toBe(0);
    expect(Buffer.concat(collected).toString('latin1').endsWith(`|${body.length}|true`)).toBe(true);
  });

  test('K-3: a body larger than one read arrives whole and in order', async () => {
    const big = Buffer.alloc(300_000);
    for (let i = 0; i < big.length; i++) big[i] = i % 251;
    const pieces = [big.subarray(0, 1), big.subarray(1, 70_000), big.subarray(70_000)];
    const seen: { body?: Buffer } = {};
    await runIn(recorder(seen), { ...GET, REQUEST_METHOD: 'PUT', CONTENT_LENGTH: String(big.length) }, { stdin: Readable.from(pieces) });
    expect(seen.body?.equals(big)).toBe(true);
  });
});

describe('CGI child: response (K-8..K-16)', () => {
  test('K-8: Status: first, then the app headers in order, CRLF, body; exit 0', async () => {
    const r = await runIn(hello, GET);
    expect(r.text).toBe('Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, World!\n');
    expect(r.code).toBe(0);
  });

  test('K-8: a redirect still carries Status explicitly, with its Location', async () => {
    const r = await runIn((_e, start) => {
      start('302 Found', [['Location', 'http://example.org/next']]);
      return [];
    }, GET);
    expect(r.firstLine).toBe('Status: 302 Found');
    expect(header(r, 'Location')).toBe('http://example.org/next');
  });

  test('K-9 / R-6: an app setting Transfer-Encoding gets a 500; a streamed body has no chunk framing and no Transfer-Encoding', async () => {
    const te = await runIn((_e, start) => {
      start('200 OK', [['Transfer-Encoding', 'chunked']]);
      return ['x'];
    }, GET);
    expect(te.firstLine).toBe('Status: 500 Internal Server Error');
    const streamed = await runIn((_e, start) => {
      start('200 OK', [['Content-Type', 'text/plain']]);
      return (async function* () {
        yield 'one,';
        yield 'two,';
        yield 'three';
      })();
    }, GET);
    expect(streamed.body.toString()).toBe('one,two,three');
    expect(streamed.headers.map(([n]) => n.toLowerCase())).toEqual(['content-type']);
  });

  test('K-10 / R-9: HEAD → the head of the GET response (Content-Length included), no body', async () => {
    const r = await runIn(hello, { ...GET, REQUEST_METHOD: 'HEAD' });
    expect(r.text).toBe('Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\n');
  });

  test('K-11: an nph- script answers with a complete HTTP/1.1 response: status line, Date, Content-Length', async () => {
    const r = await runIn(hello, GET, { scriptName: '/srv/cgi-bin/nph-app.mjs' });
    expect(r.firstLine).toBe('HTTP/1.1 200 OK');
    expect(header(r, 'Content-Length')).toBe('14');
    expect(header(r, 'Date')).toMatch(/ GMT$/);
    expect(r.text).not.toMatch(/Status:/);
    expect(r.body.toString()).toBe('Hello, World!\n');
  });

  test('K-11: the nph- name comes from SCRIPT_FILENAME when not given; HTTP/1.0 and INCLUDED requests get an HTTP/1.0 line', async () => {
    const r10 = await runIn(hello, { ...GET, SERVER_PROTOCOL: 'HTTP/1.0', SCRIPT_FILENAME: '/srv/cgi-bin/nph-x.cgi' });
    expect(r10.firstLine).toBe('HTTP/1.0 200 OK');
    const inc = await runIn(hello, { ...GET, SERVER_PROTOCOL: 'INCLUDED', SCRIPT_FILENAME: '/srv/cgi-bin/nph-x.cgi' });
    expect(inc.firstLine).toBe('HTTP/1.0 200 OK');
    const notNph = await runIn(hello, { ...GET, SCRIPT_FILENAME: '/srv/nph-dir/app-nph.cgi' });
    expect(notNph.firstLine).toBe('Status: 200 OK');
    expect(isNphName('nph-')).toBe(true);
    expect(isNphName('/a/nph-b/c')).toBe(false);
    expect(isNphName(undefined)).toBe(false);
  });

  test('K-11: an nph- response of unknown length is delimited by Connection: close', async () => {
    const r = await runIn((_e, start) => {
      start('200 OK', []);
      return (async function* () {
        yield 'a';
        yield 'b';
      })();
    }, GET, { scriptName: 'nph-stream' });
    expect(r.firstLine).toBe('HTTP/1.1 200 OK');
    expect(header(r, 'Connection')).toBe('close');
    expect(header(r, 'Content-Length')).toBeUndefined();
    expect(r.body.toString()).toBe('ab');
  });

  test('K-12: every byte is written out before the run resolves, even through a slow stdout', async () => {
    const stdout = new Collector(2);
    const block64k = Buffer.alloc(65536, 0x61);
    const r = await runIn((_e, start) => {
      start('200 OK', [['Content-Length', String(block64k.length * 16)]]);
      return Array.from({ length: 16 }, () => block64k);
    }, GET, { stdout });
    expect(r.code).toBe(0);
    expect(r.body.length).toBe(block64k.length * 16);
  });

  test('K-13 / §6.3: stdout closed by the server mid-body (EPIPE) → the app stops, exit 0, no diagnostics', async () => {
    let writes = 0;
    const stdout = new Writable({
      write(_chunk, _enc, done) {
        writes++;
        if (writes >= 3) done(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
        else done();
      },
    });
    let produced = 0;
    let cleanedUp = false;
    const r = await runIn((_e, start) => {
      start('200 OK', []);
      return (async function* () {
        try {
          for (;;) {
            produced++;
            yield Buffer.alloc(1024);
            await new Promise((resolve) => setImmediate(resolve));
          }
        } finally {
          cleanedUp = true;
        }
      })();
    }, GET, { stdout });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(cleanedUp).toBe(true);
    expect(produced).toBeLessThan(50);
  });

  test('K-14: an error before any output → Status: 500 with a short body, exit 1', async () => {
    const r = await runIn(() => {
      throw new Error('boom');
    }, GET);
    expect(r.firstLine).toBe('Status: 500 Internal Server Error');
    expect(r.body.toString()).toMatch(/^Internal Server Error\n/);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/app failed: boom/);
  });

  test('K-14 / R-11: an error after output started → what was written stays, no second head, exit 1', async () => {
    const r = await runIn((_e, start) => {
      start('200 OK', [['Content-Type', 'text/plain']]);
      return (async function* () {
        yield 'partial ';
        yield 'more ';
        throw new Error('late failure');
      })();
    }, GET);
    expect(r.firstLine).toBe('Status: 200 OK');
    expect(r.body.toString()).toBe('partial more ');
    expect(r.text.match(/Status:/g)).toHaveLength(1);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/after the headers were sent: late failure/);
  });

  test('K-15: app diagnostics (gatewire.errors) go to stderr with the request id, never to stdout', async () => {
    const r = await runIn((environ, start) => {
      environ['gatewire.errors'].write('something to log\n');
      start('200 OK', []);
      return ['body'];
    }, GET);
    expect(r.text).not.toMatch(/something to log/);
    expect(r.stderr).toMatch(/^gatewire cgi: error: app: something to log request_id=\S+\n$/);
  });

  test('K-16: a termination (SIGTERM) while the app works → 143 at once, nothing more written, the app sees its signal abort', async () => {
    const controller = new AbortController();
    let aborted = false;
    const app: App = (environ, start) =>
      new Promise((resolve) => {
        environ['gatewire.signal'].addEventListener('abort', () => (aborted = true));
        setTimeout(() => {
          start('200 OK', []);
          resolve(['too late']);
        }, 200);
        setTimeout(() => controller.abort(new CgiTermination('SIGTERM')), 10);
      });
    const r = await runIn(app, GET, { signal: controller.signal });
    expect(r.code).toBe(143);
    expect(aborted).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(r.out.length).toBe(0);
    expect(r.stderr).toMatch(/SIGTERM/);
  });

  test('K-14: a failure reported from outside the call (an uncaught exception, a call that can never finish) → 500, exit 1', async () => {
    const controller = new AbortController();
    const r = await runIn(
      () =>
        new Promise(() => {
          setTimeout(() => controller.abort(new Error('stray async exception')), 5);
        }),
      GET,
      { signal: controller.signal },
    );
    expect(r.firstLine).toBe('Status: 500 Internal Server Error');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/stray async exception/);
  });
});

// ---------------------------------------------------------------------------------------
// The built CLI as a real CGI program
// ---------------------------------------------------------------------------------------

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

interface Spawned {
  child: ChildProcess;
  stdout(): Buffer;
  stderr(): string;
  done: Promise<Run>;
}

const running = new Set<ChildProcess>();

/** Spawns a command with exactly `env` (plus PATH), stdin piped and left as the test says. */
function spawnRaw(cmd: string, args: string[], env: Record<string, string>, opts: { stdin?: Buffer; keepStdinOpen?: boolean; cwd?: string } = {}): Spawned {
  const child = spawn(cmd, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, cwd: opts.cwd ?? ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  running.add(child);
  const out: Buffer[] = [];
  let err = '';
  child.stdout?.on('data', (c: Buffer) => out.push(c));
  child.stderr?.on('data', (c: Buffer) => (err += c.toString('latin1')));
  child.stdin?.on('error', () => undefined);
  if (opts.stdin !== undefined) child.stdin?.write(opts.stdin);
  if (!opts.keepStdinOpen) child.stdin?.end();
  const done = new Promise<Run>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} did not exit within 20 s (a hang)\nstdout: ${Buffer.concat(out).toString('latin1')}\nstderr: ${err}`));
    }, 20_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: err });
    });
  });
  return { child, stdout: () => Buffer.concat(out), stderr: () => err, done };
}

function cgi(app: string, env: Record<string, string>, opts: { stdin?: Buffer; keepStdinOpen?: boolean; extraArgs?: string[] } = {}): Spawned {
  return spawnRaw(process.execPath, [CLI, 'cgi', app, ...(opts.extraArgs ?? [])], env, opts);
}

async function until(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

let apps: TmpDir;
const appPath = (name: string): string => path.join(apps.path, name);

const TEST_APPS: Record<string, string> = {
  'slow.mjs': `export default async function slow(environ, start) {
  environ['gatewire.errors'].write('slow app started');
  await new Promise((resolve) => setTimeout(resolve, Number(environ.QUERY_STRING) || 60000));
  start('200 OK', [['Content-Type', 'text/plain']]);
  return ['finished\\n'];
}`,
  'endless.mjs': `export default function endless(environ, start) {
  start('200 OK', [['Content-Type', 'application/octet-stream']]);
  const block = Buffer.alloc(65536, 0x78);
  return (async function* () {
    for (let i = 0; i < 16384; i++) { yield block; await new Promise((r) => setImmediate(r)); }
  })();
}`,
  'big.mjs': `export default function big(environ, start) {
  const body = Buffer.alloc(8 * 1024 * 1024, 0x79);
  start('200 OK', [['Content-Type', 'application/octet-stream']]);
  return [body];
}`,
  'throws.mjs': `export default function throws() { throw new Error('app exploded'); }`,
  'ignores-body.mjs': `export default function ignoresBody(environ, start) {
  start('200 OK', [['Content-Type', 'application/octet-stream']]);
  const block = Buffer.alloc(64 * 1024, 0x6f);
  return environ.QUERY_STRING === 'stream' ? (function* () { for (let i = 0; i < 16; i++) yield block; })() : [Buffer.alloc(1024 * 1024, 0x6f)];
}`,
  'throws-late.mjs': `export default function late(environ, start) {
  start('200 OK', [['Content-Type', 'application/octet-stream']]);
  return (async function* () { yield Buffer.alloc(1024 * 1024, 0x7a); throw new Error('late explosion'); })();
}`,
  'status.mjs': `export default function status(environ, start) {
  start(environ.QUERY_STRING.replace('+', ' ') || '200 OK', [['Content-Type', 'text/plain']]);
  return ['status app\\n'];
}`,
  // K-20: stderr written at every moment of a run, the last of it well after the response.
  'late-stderr.mjs': `export default function late(environ, start) {
  const tag = environ.QUERY_STRING || 'late';
  process.stderr.write(tag + ': sync line\\n');
  setImmediate(() => process.stderr.write(tag + ': immediate line\\n'));
  setTimeout(() => console.error(tag + ': 10 ms timer line'), 10);
  setTimeout(() => console.error(tag + ': 200 ms timer line'), 200);
  start('200 OK', [['Content-Type', 'text/plain']]);
  return ['late-stderr app\\n'];
}`,
  // K-20: a timer that never ends keeps the event loop busy: only the cap ends the process.
  'holds-loop.mjs': `export default function holds(environ, start) {
  setInterval(() => undefined, 1000);
  setTimeout(() => process.stderr.write('held: 200 ms timer line\\n'), 200);
  start('200 OK', [['Content-Type', 'text/plain']]);
  return ['held\\n'];
}`,
  // K-20: an exception thrown from a timer once the response is out.
  'throws-after.mjs': `export default function throwsAfter(environ, start) {
  setTimeout(() => { throw new Error('thrown after the response'); }, 10);
  start('200 OK', [['Content-Type', 'text/plain']]);
  return ['answered\\n'];
}`,
  // K-20: Express logs a route's error from a setImmediate once its 500 is sent; an error
  // middleware of the app logs the stack from a timer after answering.
  'express-errors.cjs': `const express = require(${JSON.stringify(path.join(ROOT, 'node_modules', 'express'))});
const app = express();
app.get('/default', () => { throw new Error('default handler failure'); });
app.get('/custom', (req, res, next) => next(new Error('custom handler failure')));
app.use('/custom', (err, req, res, next) => {
  res.status(500).type('text/plain').send('failed\\n');
  setTimeout(() => console.error('custom error handler: ' + err.stack), 10);
});
module.exports = app;`,
};

beforeAll(async () => {
  await ensureBuilt();
  apps = tmpDir('gw-cgi-apps');
  fs.chmodSync(apps.path, 0o755);
  for (const [name, text] of Object.entries(TEST_APPS)) fs.writeFileSync(appPath(name), text, { mode: 0o644 });
  fs.copyFileSync(example('hello.mjs'), appPath('nph-hello.mjs'));
  fs.chmodSync(appPath('nph-hello.mjs'), 0o644);
}, 180_000);

afterEach(() => {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
});

afterAll(() => apps?.cleanup());

interface EchoJson {
  environ: Record<string, string>;
  url_scheme: string;
  protocol: string;
  body: string;
  body_length: number;
}

function echoOf(run: { stdout: Buffer }): EchoJson {
  return JSON.parse(splitResponse(run.stdout).body.toString('utf8')) as EchoJson;
}

describe('gatewire cgi: the built CLI under a crafted environment', () => {
  test('K-8: examples/hello.mjs answers Status: 200 and exits 0', async () => {
    const r = await cgi(example('hello.mjs'), GET).done;
    expect(r.stdout.toString('latin1')).toBe('Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, World!\n');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });

  test('K-17: a CGI run loads neither the server, the network fronts (only the light registry of their options), the FastCGI codec nor winston (start-up is paid per request)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-k17-'));
    try {
      // A preload writes the module list at exit; the node flag comes before the CLI path.
      const preload = path.join(dir, 'modules.js');
      const list = path.join(dir, 'modules.txt');
      fs.writeFileSync(preload, `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(list)}, Object.keys(require.cache).join('\\n')));`);
      const r = await spawnRaw(process.execPath, ['-r', preload, CLI, 'cgi', example('hello.mjs')], GET).done;
      expect(r.code).toBe(0);
      const loaded = fs.readFileSync(list, 'latin1').split('\n');
      expect(loaded.some((m) => m.endsWith(`${path.sep}fronts${path.sep}cgi.js`))).toBe(true); // the list is real
      const heavy = loaded.filter((m) => /[\\/](server|log)\.js$|[\\/]fronts[\\/](?!cgi\.js$|registry\.js$)|[\\/]protocols[\\/]fastcgi[\\/]|[\\/]node_modules[\\/]winston[\\/]/.test(m));
      expect(heavy).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('K-3 / §6.3: CONTENT_LENGTH absent, stdin left open by the server → answered without waiting for EOF, and stdin not consumed', async () => {
    // `cat` runs after gatewire exits, on the same stdin: it prints whatever gatewire left.
    const sh = spawnRaw('/bin/sh', ['-c', `"${process.execPath}" "${CLI}" cgi "${example('hello.mjs')}"; echo "gatewire exit $?"; cat`], GET, { keepStdinOpen: true, stdin: Buffer.from('UNREAD-BYTES') });
    await until('gatewire to answer while stdin is still open', () => sh.stdout().includes('gatewire exit 0'));
    sh.child.stdin?.end();
    const r = await sh.done;
    const text = r.stdout.toString('latin1');
    expect(text).toContain('Hello, World!\n');
    expect(text.endsWith('gatewire exit 0\nUNREAD-BYTES')).toBe(true);
  });

  test('K-3 / §6.3: CONTENT_LENGTH 10 with 20 bytes on stdin → the app reads 10; the other 10 are still in the pipe', async () => {
    const sh = spawnRaw('/bin/sh', ['-c', `"${process.execPath}" "${CLI}" cgi "${example('echo.mjs')}"; printf '\\nrest='; cat`], { ...GET, REQUEST_METHOD: 'POST', CONTENT_LENGTH: '10' }, { stdin: Buffer.from('0123456789ABCDEFGHIJ') });
    const r = await sh.done;
    const text = r.stdout.toString('latin1');
    const json = text.slice(text.indexOf('\r\n\r\n') + 4, text.lastIndexOf('\nrest='));
    expect((JSON.parse(json) as EchoJson).body).toBe('0123456789');
    expect(text.endsWith('\nrest=ABCDEFGHIJ')).toBe(true);
  });

  test('K-3 / §6.3: CONTENT_LENGTH 10, stdin EOF after 4 → Status: 500 (truncated body), exit 1', async () => {
    const r = await cgi(example('echo.mjs'), { ...GET, REQUEST_METHOD: 'POST', CONTENT_LENGTH: '10' }, { stdin: Buffer.from('abcd') }).done;
    expect(splitResponse(r.stdout).firstLine).toBe('Status: 500 Internal Server Error');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/request body truncated: 4 of 10 bytes/);
  });

  test('K-3: a POST body is delivered exactly (binary, 1 MiB)', async () => {
    const body = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) % 256;
    const r = await cgi(example('echo.mjs'), { ...GET, REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(body.length), CONTENT_TYPE: 'application/octet-stream' }, { stdin: body }).done;
    const echo = echoOf(r);
    expect(echo.body_length).toBe(body.length);
    expect(Buffer.from(echo.body, 'latin1').equals(body)).toBe(true);
  });

  test('§6.3: HTTPS=off → http; SERVER_PROTOCOL INCLUDED → HTTP/1.0 (K-4, K-5)', async () => {
    const r = await cgi(example('echo.mjs'), { ...GET, HTTPS: 'off', SERVER_PROTOCOL: 'INCLUDED' }).done;
    const echo = echoOf(r);
    expect(echo.url_scheme).toBe('http');
    expect(echo.environ.SERVER_PROTOCOL).toBe('HTTP/1.0');
    expect(echo.protocol).toBe('cgi');
  });

  test('K-13 / §6.3: stdout closed by the server mid-body → exit 0, no stack trace on stderr', async () => {
    const run = cgi(appPath('endless.mjs'), GET);
    await until('the first body bytes', () => run.stdout().length > 100_000);
    run.child.stdout?.destroy();
    const r = await run.done;
    expect(r.code).toBe(0);
    expect(r.stderr).not.toMatch(/Error|EPIPE|at /);
  });

  test('K-16: SIGTERM mid-request → the process exits at once with 143 and one stderr line (the app would run 60 s)', async () => {
    const run = cgi(appPath('slow.mjs'), GET);
    await until('the app to start', () => /slow app started/.test(run.stderr()));
    run.child.kill('SIGTERM');
    const r = await run.done;
    expect(r.code).toBe(143);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/app: slow app started/), expect.stringMatching(/^gatewire cgi: warn: SIGTERM: request aborted/)]);
  });

  test('K-11: a script file named nph-* answers with an HTTP/1.1 status line', async () => {
    const r = await cgi(appPath('nph-hello.mjs'), GET).done;
    const res = splitResponse(r.stdout);
    expect(res.firstLine).toBe('HTTP/1.1 200 OK');
    expect(header(res, 'Content-Length')).toBe('14');
    expect(res.body.toString()).toBe('Hello, World!\n');
  });

  test('K-12: an 8 MiB body through a pipe is complete when the process has exited', async () => {
    const r = await cgi(appPath('big.mjs'), GET).done;
    expect(r.code).toBe(0);
    const res = splitResponse(r.stdout);
    expect(header(res, 'Content-Length')).toBe(String(8 * 1024 * 1024));
    expect(res.body.length).toBe(8 * 1024 * 1024);
  });

  test('K-20: every stderr line of the app reaches the web server: written synchronously, from setImmediate, from a 10 ms and a 200 ms timer', async () => {
    const r = await cgi(appPath('late-stderr.mjs'), GET).done;
    expect(r.code).toBe(0);
    expect(splitResponse(r.stdout).body.toString()).toBe('late-stderr app\n');
    expect(r.stderr.split('\n').filter((l) => l !== '')).toEqual(['late: sync line', 'late: immediate line', 'late: 10 ms timer line', 'late: 200 ms timer line']);
  });

  test('K-20: Express logs a route error from a setImmediate after its 500, an error middleware from a timer: both stacks reach stderr', async () => {
    const byDefault = await cgi(appPath('express-errors.cjs'), { ...GET, PATH_INFO: '/default' }).done;
    expect(splitResponse(byDefault.stdout).firstLine).toBe('Status: 500 Internal Server Error');
    expect(byDefault.code).toBe(0);
    expect(byDefault.stderr).toMatch(/^Error: default handler failure\n {4}at .*express-errors\.cjs:3:/);
    const custom = await cgi(appPath('express-errors.cjs'), { ...GET, PATH_INFO: '/custom' }).done;
    expect(splitResponse(custom.stdout).body.toString()).toBe('failed\n');
    expect(custom.stderr).toMatch(/^custom error handler: Error: custom handler failure\n {4}at .*express-errors\.cjs:4:/);
  });

  test('K-20: the response is not held up by the linger: stdout (a socket) ends before the late lines, the process only after them, within the cap', async () => {
    const run = cgi(appPath('holds-loop.mjs'), GET);
    const started = Date.now();
    let atEof: { ms: number; stderr: string; exited: boolean } | undefined;
    run.child.stdout?.on('end', () => (atEof = { ms: Date.now() - started, stderr: run.stderr(), exited: run.child.exitCode !== null }));
    const r = await run.done;
    const lasted = Date.now() - started;
    expect(splitResponse(r.stdout).body.toString()).toBe('held\n');
    expect(atEof).toMatchObject({ stderr: '', exited: false });
    expect(r.stderr).toBe('held: 200 ms timer line\n');
    expect(r.code).toBe(0);
    // The interval never ends: the cap (LINGER_MS) does; stdout ended long before.
    expect(lasted - (atEof?.ms ?? 0)).toBeGreaterThanOrEqual(LINGER_MS - 100);
    expect(lasted).toBeLessThan(5000);
  });

  test('K-20: SIGTERM once the response is out (mod_cgid sends it to every script still alive) does not cut the late lines off; exit 0', async () => {
    const run = cgi(appPath('late-stderr.mjs'), { ...GET, QUERY_STRING: 'termed' });
    run.child.stdout?.on('end', () => run.child.kill('SIGTERM'));
    const r = await run.done;
    expect(splitResponse(r.stdout).body.toString()).toBe('late-stderr app\n');
    expect(r.stderr).toContain('termed: 200 ms timer line\n');
    expect(r.code).toBe(0);
  });

  test('K-20: an exception thrown by the app after its response is logged with its stack, not swallowed; the exit code stays the response\'s', async () => {
    const r = await cgi(appPath('throws-after.mjs'), GET).done;
    expect(splitResponse(r.stdout).body.toString()).toBe('answered\n');
    expect(r.stderr).toMatch(/^gatewire cgi: error: uncaught exception after the response: Error: thrown after the response\n {4}at .*throws-after\.mjs:2:/);
    expect(r.code).toBe(0);
  });

  test('K-20: stdin and stdout one socket (as mod_cgid passes it) → shut down for writing: the web server sees the end before the late line', async () => {
    const sockPath = path.join(apps.path, `shared-${process.pid}.sock`);
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(sockPath, resolve));
    try {
      const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
      const webServer = net.connect(sockPath);
      const shared = await accepted;
      const child = spawn(process.execPath, [CLI, 'cgi', appPath('holds-loop.mjs')], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...GET }, stdio: [shared, shared, 'pipe'] });
      running.add(child);
      shared.destroy(); // only the child holds it now
      let stderr = '';
      child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('latin1')));
      const out: Buffer[] = [];
      webServer.on('data', (c: Buffer) => out.push(c));
      const ended = new Promise<{ stderr: string; exited: boolean }>((resolve) => webServer.on('end', () => resolve({ stderr, exited: child.exitCode !== null })));
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      expect(await ended).toEqual({ stderr: '', exited: false });
      expect(splitResponse(Buffer.concat(out)).body.toString()).toBe('held\n');
      expect(await exited).toBe(0);
      expect(stderr).toBe('held: 200 ms timer line\n');
      webServer.destroy();
    } finally {
      server.close();
    }
  });

  test('K-20: stdout a pipe (as Apache mod_cgi and python3 give it): the reader sees EOF before the late stderr line, the exit comes after it', async () => {
    // Both ends of the pipe report on the shared stderr, in the order things happen. A FIFO, and
    // gatewire started with `&`: a shell keeps no copy of the write end (dash opens a foreground
    // command's redirections in the shell itself).
    const fifo = path.join(apps.path, `out-${process.pid}.fifo`);
    const gatewire = `"${process.execPath}" "${CLI}" cgi "${appPath('late-stderr.mjs')}" >"${fifo}"`;
    const script = `mkfifo "${fifo}"; { cat "${fifo}" >/dev/null; echo "stdout EOF" >&2; } & ${gatewire} & pid=$!; wait $pid; echo "gatewire exit $?" >&2; wait; rm -f "${fifo}"`;
    const r = await spawnRaw('/bin/sh', ['-c', script], { ...GET, QUERY_STRING: 'piped' }).done;
    expect(r.code).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    expect(lines.filter((l) => l.startsWith('piped: '))).toEqual(['piped: sync line', 'piped: immediate line', 'piped: 10 ms timer line', 'piped: 200 ms timer line']);
    const at = (line: string): number => lines.indexOf(line);
    expect(at('stdout EOF')).toBeGreaterThan(-1);
    expect(at('stdout EOF')).toBeLessThan(at('piped: 200 ms timer line'));
    expect(at('piped: 200 ms timer line')).toBeLessThan(at('gatewire exit 0'));
  });

  test('K-14: an app error before the head → Status: 500, exit 1; after → the bytes so far are flushed, exit 1', async () => {
    const before = await cgi(appPath('throws.mjs'), GET).done;
    expect(splitResponse(before.stdout).firstLine).toBe('Status: 500 Internal Server Error');
    expect(before.code).toBe(1);
    expect(before.stderr).toMatch(/app failed: app exploded/);
    const after = await cgi(appPath('throws-late.mjs'), GET).done;
    const res = splitResponse(after.stdout);
    expect(res.firstLine).toBe('Status: 200 OK');
    expect(res.body.length).toBe(1024 * 1024);
    expect(after.code).toBe(1);
  });

  test('K-2: no CGI variables and stdin a connected socket (not listening) → Status: 500, exit 1', async () => {
    const r = await cgi(example('hello.mjs'), {}).done;
    expect(splitResponse(r.stdout).firstLine).toBe('Status: 500 Internal Server Error');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/REQUEST_METHOD is not set/);
  });

  test('an app that cannot be loaded → exit 2 with one stderr line; under a CGI host also Status: 500', async () => {
    const plain = await cgi(appPath('missing.mjs'), {}).done;
    expect(plain.code).toBe(2);
    expect(plain.stdout.length).toBe(0);
    expect(plain.stderr.trim().split('\n')).toHaveLength(1);
    const underHost = await cgi(appPath('missing.mjs'), GET).done;
    expect(underHost.code).toBe(2);
    expect(splitResponse(underHost.stdout).firstLine).toBe('Status: 500 Internal Server Error');
  });

  test('arguments a host appends for a query without = (ISINDEX, RFC 3875 §4.4) are ignored, never parsed', async () => {
    for (const args of [['--interface', 'node'], ['-h'], ['--help'], ['--max-body-bytes', '1'], ['--', 'x']]) {
      const r = await cgi(example('echo.mjs'), { ...GET, QUERY_STRING: args.join('+') }, { extraArgs: args }).done;
      expect(r.code).toBe(0);
      expect(echoOf(r).environ.QUERY_STRING).toBe(args.join('+'));
    }
    // gatewire's own options go before APP
    const forced = await spawnRaw(process.execPath, [CLI, 'cgi', '--interface', 'environ', example('hello.mjs')], GET).done;
    expect(forced.stdout.toString()).toMatch(/Hello, World!/);
  });

  test('node app (examples/express.cjs): routing below SCRIPT_NAME, a JSON POST body, two Set-Cookie lines, HEAD (K-10)', async () => {
    const base = { ...GET, SCRIPT_NAME: '/cgi-bin/express.cgi', HTTP_HOST: 'example.org' };
    const named = await cgi(example('express.cjs'), { ...base, PATH_INFO: '/hello/world', QUERY_STRING: 'a=1', REQUEST_URI: '/cgi-bin/express.cgi/hello/world?a=1' }).done;
    expect(named.code).toBe(0);
    expect(JSON.parse(splitResponse(named.stdout).body.toString())).toEqual({ hello: 'world', query: { a: '1' }, url: '/hello/world?a=1', originalUrl: '/cgi-bin/express.cgi/hello/world?a=1' });
    const body = Buffer.from('{"k":"v"}');
    const posted = await cgi(example('express.cjs'), { ...base, REQUEST_METHOD: 'POST', PATH_INFO: '/echo', CONTENT_TYPE: 'application/json', CONTENT_LENGTH: String(body.length) }, { stdin: body }).done;
    expect(JSON.parse(splitResponse(posted.stdout).body.toString())).toEqual({ body: { k: 'v' } });
    const cookies = await cgi(example('express.cjs'), { ...base, PATH_INFO: '/cookie' }).done;
    expect(splitResponse(cookies.stdout).headers.filter(([n]) => n.toLowerCase() === 'set-cookie').map(([, v]) => v.split(';')[0])).toEqual(['a=1', 'b=2']);
    const head = await cgi(example('express.cjs'), { ...base, REQUEST_METHOD: 'HEAD', PATH_INFO: '/' }).done;
    const h = splitResponse(head.stdout);
    expect(h.firstLine).toBe('Status: 200 OK');
    expect(header(h, 'Content-Length')).toBe(String('Hello from Express\n'.length));
    expect(h.body.length).toBe(0);
  });

  test('fetch app (examples/hono.mjs): routing, query, a text POST body, two Set-Cookie lines', async () => {
    const base = { ...GET, SCRIPT_NAME: '', HTTP_HOST: 'example.org' };
    const root = await cgi(example('hono.mjs'), { ...base, PATH_INFO: '/' }).done;
    expect(splitResponse(root.stdout).body.toString()).toBe('Hello from Hono\n');
    const named = await cgi(example('hono.mjs'), { ...base, PATH_INFO: '/hello/x', QUERY_STRING: 'q=1' }).done;
    expect(JSON.parse(splitResponse(named.stdout).body.toString())).toEqual({ hello: 'x', q: '1' });
    const posted = await cgi(example('hono.mjs'), { ...base, REQUEST_METHOD: 'POST', PATH_INFO: '/echo', CONTENT_LENGTH: '5' }, { stdin: Buffer.from('hello+trailing') }).done;
    expect(JSON.parse(splitResponse(posted.stdout).body.toString())).toEqual({ body: 'hello' });
    const cookies = await cgi(example('hono.mjs'), { ...base, PATH_INFO: '/cookie' }).done;
    expect(splitResponse(cookies.stdout).headers.filter(([n]) => n.toLowerCase() === 'set-cookie').map(([, v]) => v)).toEqual(['a=1', 'b=2']);
    const failed = await cgi(example('hono.mjs'), { ...base, PATH_INFO: '/fail' }).done;
    expect(splitResponse(failed.stdout).firstLine).toBe('Status: 500 Internal Server Error');
  });

  test('examples/cgi-wrapper.cgi, run as it ships, is a working CGI script', async () => {
    const r = await spawnRaw(example('cgi-wrapper.cgi'), [], GET).done;
    expect(r.stdout.toString('latin1')).toBe('Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, World!\n');
    expect(r.code).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------
// Raw environment bytes and a listening fd 0 need python3 (execve with bytes, bind + dup2)
// ---------------------------------------------------------------------------------------

/** Runs `argv` with an environment of raw bytes: python3 execve, no UTF-8 re-encoding. */
const EXEC_BYTES = `
import json, os, sys
spec = json.loads(sys.argv[1])
env = {bytes.fromhex(k): bytes.fromhex(v) for k, v in spec['env']}
os.execve(spec['argv'][0], spec['argv'], env)
`;

/** Binds a listening TCP socket on 127.0.0.1, prints its port, makes it fd 0, execs argv. */
const LISTEN_ON_FD0 = `
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(('127.0.0.1', 0))
s.listen(64)
sys.stdout.write('%d\\n' % s.getsockname()[1])
sys.stdout.flush()
os.dup2(s.fileno(), 0)
s.close()
os.execv(sys.argv[1], sys.argv[1:])
`;

const hex = (b: Buffer | string): string => (typeof b === 'string' ? Buffer.from(b, 'latin1') : b).toString('hex');

/** `gatewire cgi APP` with a listening socket as fd 0; resolves once it accepts. */
async function spawnedFastcgi(app: string, env: Record<string, string> = {}): Promise<{ run: Spawned; port: number }> {
  const run = spawnRaw(peerPath('python3'), ['-c', LISTEN_ON_FD0, process.execPath, CLI, 'cgi', app], env);
  await until('the port line', () => /^\d+\n/.test(run.stdout().toString()));
  const port = Number(/^(\d+)\n/.exec(run.stdout().toString())?.[1]);
  await until('the FastCGI listening line', () => /listening: fastcgi on fd:0/.test(run.stderr()));
  return { run, port };
}

const fcgiParams = (extra: Record<string, string> = {}): Array<[string, string]> =>
  Object.entries({ REQUEST_METHOD: 'GET', SCRIPT_NAME: '/app', PATH_INFO: '', QUERY_STRING: '', SERVER_NAME: 'localhost', SERVER_PORT: '80', SERVER_PROTOCOL: 'HTTP/1.1', REQUEST_URI: '/app', ...extra });

describeWithPeers('gatewire cgi: raw environment bytes and a listening fd 0 (python3)', ['python3'], () => {
  test('K-1 / §6.3: raw non-UTF-8 environment bytes (PATH_INFO E9, a header FF FE) reach the app byte-exactly', async () => {
    const env: Array<[string, string]> = [
      [hex('PATH'), hex(process.env.PATH ?? '/usr/bin:/bin')],
      [hex('REQUEST_METHOD'), hex('GET')],
      [hex('SCRIPT_NAME'), hex('/cgi-bin/echo')],
      [hex('PATH_INFO'), hex(Buffer.from([0x2f, 0xe9]))],
      [hex('HTTP_X_RAW'), hex(Buffer.from([0xff, 0xfe, 0x41]))],
    ];
    const spec = JSON.stringify({ env, argv: [process.execPath, CLI, 'cgi', example('echo.mjs')] });
    const r = await spawnRaw(peerPath('python3'), ['-c', EXEC_BYTES, spec], {}).done;
    expect(r.code).toBe(0);
    const echo = echoOf(r);
    // process.env would hold U+FFFD here (docs/conformance.md K-1); /proc/self/environ keeps the bytes.
    expect(echo.environ.PATH_INFO).toBe('/\u00e9');
    expect(echo.environ.HTTP_X_RAW).toBe('\u00ff\u00feA');
    expect(echo.environ.REQUEST_URI).toBe('/cgi-bin/echo/%E9');
  });

  test('K-18: a listening socket on fd 0 → FastCGI served on it, request after request; K-19: SIGTERM → exit 0', async () => {
    const { run, port } = await spawnedFastcgi(example('echo.mjs'));
    const first = await fcgiRequest({ port }, { params: fcgiParams({ REQUEST_METHOD: 'POST', CONTENT_LENGTH: '3' }), stdin: Buffer.from('abc') });
    const res = parseCgiResponse(first.stdout);
    expect(res?.status).toBe(200);
    const echo = JSON.parse(first.stdout.subarray(first.stdout.indexOf('\r\n\r\n') + 4).toString()) as EchoJson;
    expect([echo.protocol, echo.body]).toEqual(['fastcgi', 'abc']);
    expect(first.appStatus).toBe(0);
    const second = await fcgiRequest({ port }, { params: fcgiParams() });
    expect(parseCgiResponse(second.stdout)?.status).toBe(200);
    run.child.kill('SIGTERM');
    const r = await run.done;
    expect(r.code).toBe(0);
  });

  test('K-19: SIGTERM while a request is in flight → it finishes, then exit 0', async () => {
    const { run, port } = await spawnedFastcgi(appPath('slow.mjs'));
    const pending = fcgiRequest({ port }, { params: fcgiParams({ QUERY_STRING: '700' }) });
    await until('the request to reach the app', () => /slow app started/.test(run.stderr()));
    run.child.kill('SIGTERM');
    const res = await pending;
    expect(res.completed).toBe(true);
    expect(res.stdout.toString()).toMatch(/finished\n$/);
    expect((await run.done).code).toBe(0);
  });

  test('K-18: FCGI_WEB_SERVER_ADDRS without our address → the connection is closed, no response', async () => {
    const { run, port } = await spawnedFastcgi(example('hello.mjs'), { FCGI_WEB_SERVER_ADDRS: '10.9.9.9,192.0.2.1' });
    const res = await fcgiRequest({ port }, { params: fcgiParams() });
    expect(res.completed).toBe(false);
    expect(res.stdout.length).toBe(0);
    expect(res.closedByServer).toBe(true);
    run.child.kill('SIGTERM');
    await run.done;
  });

  test('python3 -m http.server --cgi runs the drop-in wrapper (symlinked, unchanged), an edited copy, and a #! app', async () => {
    const site = tmpDir('gw-cgi-py');
    try {
      const bin = path.join(site.path, 'cgi-bin');
      fs.mkdirSync(bin);
      fs.symlinkSync(example('cgi-wrapper.cgi'), path.join(bin, 'hello.cgi'));
      fs.writeFileSync(path.join(bin, 'echo.cgi'), editedWrapper(example('echo.mjs')), { mode: 0o755 });
      fs.writeFileSync(path.join(bin, 'shebang.mjs'), shebangApp(), { mode: 0o755 });
      openToPeers(site.path, bin); // Python's CGI child runs as nobody when we are root
      const port = await freePort();
      const server = spawnRaw(peerPath('python3'), ['-m', 'http.server', '--cgi', '--bind', '127.0.0.1', String(port)], {}, { cwd: site.path });
      try {
        await waitForPort(port);
        const base = `http://127.0.0.1:${port}/cgi-bin`;
        const hi = await httpGet(`${base}/hello.cgi`);
        expect(hi.status).toBe(200); // Python writes its own status line; ours is a header to it
        expect(hi.body.toString()).toBe('Hello, World!\n');
        const post = await httpGet(`${base}/echo.cgi/p%C3%A9?q=1`, { method: 'POST', body: 'name=value', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
        const echo = JSON.parse(post.body.toString()) as EchoJson;
        expect(echo.body).toBe('name=value');
        expect(echo.environ.PATH_INFO).toBe('/p\u00c3\u00a9');
        expect(echo.environ.SCRIPT_NAME).toBe('/cgi-bin/echo.cgi');
        // No `=` in the query: Python appends it to argv (ISINDEX); gatewire ignores it.
        const sheb = await httpGet(`${base}/shebang.mjs/x?isindex`);
        expect(sheb.body.toString()).toBe('shebang app /x isindex\n');
      } finally {
        server.child.kill('SIGTERM');
        await server.done;
      }
    } finally {
      site.cleanup();
    }
  });
});

describeWithPeers('gatewire cgi: FastCGI on fd 0 behind real process managers (spawn-fcgi, cgi-fcgi)', ['python3', 'spawn-fcgi', 'cgi-fcgi'], () => {
  test('K-18: spawn-fcgi hands over its socket; cgi-fcgi (libfcgi) talks to it', async () => {
    const port = await freePort();
    const sf = spawnRaw(peerPath('spawn-fcgi'), ['-n', '-a', '127.0.0.1', '-p', String(port), '--', process.execPath, CLI, 'cgi', example('echo.mjs')], {});
    try {
      await until('the FastCGI listening line', () => /listening: fastcgi on fd:0/.test(sf.stderr()));
      const client = await spawnRaw(peerPath('cgi-fcgi'), ['-bind', '-connect', `127.0.0.1:${port}`], { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '7', SCRIPT_NAME: '/app', SERVER_PROTOCOL: 'HTTP/1.1', QUERY_STRING: 'via=cgi-fcgi' }, { stdin: Buffer.from('payload') }).done;
      const res = splitResponse(client.stdout);
      expect(res.firstLine).toBe('Status: 200 OK');
      const echo = JSON.parse(res.body.toString()) as EchoJson;
      expect([echo.protocol, echo.body, echo.environ.QUERY_STRING]).toEqual(['fastcgi', 'payload', 'via=cgi-fcgi']);
    } finally {
      sf.child.kill('SIGTERM');
      expect((await sf.done).code).toBe(0);
    }
  });
});

describeWithPeers('gatewire cgi under Apache mod_cgi / mod_cgid (fixtures/apache/cgi.conf)', ['apache2'], () => {
  for (const mpm of ['prefork', 'event'] as const) {
    test(`${mpm === 'prefork' ? 'mod_cgi' : 'mod_cgid'}: the drop-in wrapper, a POST body, NPH, a 404 from the app, an app error, HEAD`, withPeerLogs(async () => {
      const dir = tmpDir('gw-cgi-apache');
      try {
        fs.writeFileSync(path.join(dir.path, 'hello.cgi'), editedWrapper(example('hello.mjs')), { mode: 0o755 });
        fs.writeFileSync(path.join(dir.path, 'echo.cgi'), editedWrapper(example('echo.mjs')), { mode: 0o755 });
        fs.writeFileSync(path.join(dir.path, 'nph-hello.cgi'), editedWrapper(example('hello.mjs')), { mode: 0o755 });
        fs.writeFileSync(path.join(dir.path, 'status.cgi'), editedWrapper(appPath('status.mjs')), { mode: 0o755 });
        fs.writeFileSync(path.join(dir.path, 'throws.cgi'), editedWrapper(appPath('throws.mjs')), { mode: 0o755 });
        fs.writeFileSync(path.join(dir.path, 'shebang.mjs'), shebangApp(), { mode: 0o755 });
        fs.writeFileSync(path.join(dir.path, 'ignores-body.cgi'), editedWrapper(appPath('ignores-body.mjs')), { mode: 0o755 });
        openToPeers(dir.path);
        const apache = await startApache({ template: 'cgi', mpm, vars: { CGI_DIR: dir.path } });
        try {
          const hi = await httpGet(apache.url('/cgi-bin/hello.cgi'));
          expect(hi.status).toBe(200);
          expect(hi.body.toString()).toBe('Hello, World!\n');
          const post = await httpGet(apache.url('/cgi-bin/echo.cgi/a%20b?x=1'), { method: 'POST', body: 'posted body', headers: { 'content-type': 'text/plain' } });
          const echo = JSON.parse(post.body.toString()) as EchoJson;
          expect([echo.body, echo.environ.PATH_INFO, echo.environ.QUERY_STRING, echo.environ.SCRIPT_NAME]).toEqual(['posted body', '/a b', 'x=1', '/cgi-bin/echo.cgi']);
          const nph = await httpGet(apache.url('/cgi-bin/nph-hello.cgi'));
          expect(nph.status).toBe(200);
          // NPH: our response goes to the client as is; Apache adds no Server header of its own.
          expect(hi.headers.server).toBeDefined();
          expect(nph.headers.server).toBeUndefined();
          expect(nph.headers.date).toBeDefined();
          expect(nph.body.toString()).toBe('Hello, World!\n');
          const missing = await httpGet(apache.url('/cgi-bin/status.cgi?404+Not+Found'));
          expect(missing.status).toBe(404);
          const failed = await httpGet(apache.url('/cgi-bin/throws.cgi'));
          expect(failed.status).toBe(500);
          expect(failed.body.toString()).toMatch(/^Internal Server Error\nrequest id: /);
          const head = await httpGet(apache.url('/cgi-bin/hello.cgi'), { method: 'HEAD' });
          expect(head.status).toBe(200);
          expect(head.headers['content-type']).toBe('text/plain');
          expect(head.body.length).toBe(0);
          const sheb = await httpGet(apache.url('/cgi-bin/shebang.mjs/p?isindex'));
          expect(sheb.body.toString()).toBe('shebang app /p isindex\n');
          // Apache writes the whole body before it reads the output (docs/conformance.md §0.1 item 12):
          // an app that ignores a 1 MiB body and answers 1 MiB must not deadlock with it.
          const ignored = await httpGet(apache.url('/cgi-bin/ignores-body.cgi'), { method: 'POST', body: Buffer.alloc(1024 * 1024, 0x69), timeoutMs: 20_000 });
          expect(ignored.status).toBe(200);
          expect(ignored.body.length).toBe(1024 * 1024);
          const streamed = await httpGet(apache.url('/cgi-bin/ignores-body.cgi?stream'), { method: 'POST', body: Buffer.alloc(1024 * 1024, 0x69), timeoutMs: 20_000 });
          expect(streamed.body.length).toBe(1024 * 1024);
        } finally {
          await apache.stop();
        }
      } finally {
        dir.cleanup();
      }
    }), 60_000);
  }

  for (const mpm of ['prefork', 'event'] as const) {
    test(`K-20 under ${mpm === 'prefork' ? 'mod_cgi' : 'mod_cgid'}: stderr lines the app writes after its response (setImmediate, timers, an Express error stack) land in Apache's error log`, withPeerLogs(async () => {
      const dir = tmpDir('gw-cgi-apache-stderr');
      try {
        fs.writeFileSync(path.join(dir.path, 'late.cgi'), editedWrapper(appPath('late-stderr.mjs')), { mode: 0o755 });
        fs.writeFileSync(path.join(dir.path, 'express.cgi'), editedWrapper(appPath('express-errors.cjs')), { mode: 0o755 });
        openToPeers(dir.path);
        const apache = await startApache({ template: 'cgi', mpm, vars: { CGI_DIR: dir.path } });
        try {
          const late = await httpGet(apache.url(`/cgi-bin/late.cgi?${mpm}`));
          expect(late.status).toBe(200);
          expect(late.body.toString()).toBe('late-stderr app\n');
          // mod_cgid writes the script's stderr straight into the log and does not wait for it:
          // the client has its response before the app's 200 ms timer writes its line. mod_cgi
          // completes a response only once the script's stderr is closed (the process is gone).
          if (mpm === 'event') expect(apache.errorLog()).not.toContain(`${mpm}: 200 ms timer line`);
          const failed = await httpGet(apache.url('/cgi-bin/express.cgi/default'));
          expect(failed.status).toBe(500);
          const wanted = [`${mpm}: sync line`, `${mpm}: immediate line`, `${mpm}: 10 ms timer line`, `${mpm}: 200 ms timer line`, 'Error: default handler failure'];
          await until('the late lines in the error log', () => wanted.every((line) => apache.errorLog().includes(line)), 10_000).catch(() => undefined);
          const log = apache.errorLog();
          expect(wanted.filter((line) => !log.includes(line))).toEqual([]);
          expect(log).toMatch(/express-errors\.cjs:3:/); // a line of the stack, not only its message
        } finally {
          await apache.stop();
        }
      } finally {
        dir.cleanup();
      }
    }), 60_000);
  }
});

/** examples/cgi-wrapper.cgi with its last line pointed at this checkout's CLI and `app` (the documented edit). */
function editedWrapper(app: string): string {
  const text = fs.readFileSync(example('cgi-wrapper.cgi'), 'utf8');
  const edited = text.replace('"$here/../dist/src/cli.js"', `"${CLI}"`).replace('"$here/hello.mjs"', `"${app}"`);
  expect(edited).not.toBe(text);
  return edited;
}

/** An app module that is its own CGI script through a `#!/usr/bin/env -S node …/cli.js cgi` line. */
function shebangApp(): string {
  return `#!/usr/bin/env -S ${process.execPath} ${CLI} cgi
export default function app(environ, start) {
  start('200 OK', [['Content-Type', 'text/plain']]);
  return [\`shebang app \${environ.PATH_INFO} \${environ.QUERY_STRING}\\n\`];
}
`;
}
