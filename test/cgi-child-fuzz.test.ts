/**
 * CGI child mode under random input (docs/conformance.md §6.3): whatever environment block, stdin and
 * CONTENT_LENGTH a host hands over, runCgiChild resolves with an exit code and one well-formed
 * response, and never reads stdin past CONTENT_LENGTH.
 */
import fc from 'fast-check';
import { Readable, Writable } from 'node:stream';
import type { App } from '../src/app.js';
import { NotCgiError, cgiVars, parseEnvironBlock, runCgiChild } from '../src/fronts/cgi.js';
import { RequestError } from '../src/environ.js';

const NUL = Buffer.from([0]);

/** A NAME=value entry; names and values drawn from bytes hosts really send and bytes they should not. */
const entry = fc.oneof(
  fc.tuple(fc.constantFrom('REQUEST_METHOD', 'CONTENT_LENGTH', 'CONTENT_TYPE', 'PATH_INFO', 'SCRIPT_NAME', 'QUERY_STRING', 'SERVER_PROTOCOL', 'HTTPS', 'HTTP_HOST', 'REQUEST_URI', 'SCRIPT_FILENAME', 'SERVER_PORT', 'HTTP_PROXY', 'gatewire.input'), fc.uint8Array({ maxLength: 24 })).map(([k, v]) =>
    Buffer.concat([Buffer.from(`${k}=`), Buffer.from(v).filter((b) => b !== 0)]),
  ),
  fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).filter((x) => x !== 0)),
);

const contentLength = fc.oneof(fc.constant(undefined), fc.nat({ max: 3000 }).map(String), fc.constantFrom('', '-1', ' 5', '1e2', 'abc', '0x10', '99999999999999999999'));

const apps: Record<string, App> = {
  reads: async (environ, start) => {
    let n = 0;
    for await (const c of environ['gatewire.input']) n += (c as Buffer).length;
    start('200 OK', [['Content-Type', 'text/plain']]);
    return [String(n)];
  },
  ignores: (_environ, start) => {
    start('204 No Content', []);
    return [];
  },
  streams: (_environ, start) => {
    start('200 OK', []);
    return (async function* () {
      yield 'a';
      yield Buffer.from([0xff, 0x00]);
    })();
  },
  throws: () => {
    throw new Error('random failure');
  },
};

class Sink extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    done();
  }
}

describe('CGI child fuzz (§6.3)', () => {
  test('K-1: any environment block parses to latin1 strings without throwing', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const env = parseEnvironBlock(Buffer.from(bytes));
        for (const [k, v] of Object.entries(env)) {
          expect(k.length).toBeGreaterThan(0);
          expect(k.includes('=') || k.includes('\0') || v.includes('\0')).toBe(false);
          for (let i = 0; i < v.length; i++) expect(v.charCodeAt(i)).toBeLessThanOrEqual(0xff);
        }
      }),
      { numRuns: 500 },
    );
  });

  test('K-2 / K-3: cgiVars throws only NotCgiError or RequestError', () => {
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 12 }), contentLength, (entries, cl) => {
        const env = parseEnvironBlock(Buffer.concat(entries.flatMap((e) => [e, NUL])));
        if (cl !== undefined) env.CONTENT_LENGTH = cl;
        try {
          const vars = cgiVars(env);
          expect(typeof vars.REQUEST_METHOD).toBe('string');
          expect(vars.HTTP_PROXY).toBeUndefined();
        } catch (err) {
          expect(err instanceof NotCgiError || err instanceof RequestError).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });

  test('K-3 / K-8 / K-14: random environment, stdin and app → one well-formed response, exit 0 or 1, never a read past CONTENT_LENGTH', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(entry, { maxLength: 10 }),
        fc.option(fc.constantFrom('GET', 'POST', 'HEAD', 'PUT', ''), { nil: undefined }),
        contentLength,
        fc.uint8Array({ maxLength: 4000 }),
        fc.constantFrom(...Object.keys(apps)),
        fc.boolean(),
        async (entries, method, cl, stdinBytes, appName, nph) => {
          const parts = [...entries];
          if (method !== undefined) parts.push(Buffer.from(`REQUEST_METHOD=${method}`));
          if (cl !== undefined) parts.push(Buffer.from(`CONTENT_LENGTH=${cl}`));
          const block = Buffer.concat(parts.flatMap((e) => [e, NUL]));
          const stdinData = Buffer.from(stdinBytes);
          const stdin = new Readable({ read() {} });
          if (stdinData.length > 0) stdin.push(stdinData);
          stdin.push(null);
          const out = new Sink();
          const code = await runCgiChild(
            { app: apps[appName] as App, interface: 'environ' },
            { env: block, stdin, stdout: out, scriptName: nph ? '/cgi-bin/nph-x' : '/cgi-bin/x' },
          );
          expect([0, 1]).toContain(code);
          const text = Buffer.concat(out.chunks).toString('latin1');
          expect(text).toMatch(nph ? /^HTTP\/1\.[01] [1-5][0-9]{2} / : /^Status: [1-5][0-9]{2}/);
          expect(text.indexOf('\r\n\r\n')).toBeGreaterThan(0);
          expect((text.match(/^(Status: |HTTP\/1\.)/gm) ?? []).length).toBe(1);
          // Never consumed more than CONTENT_LENGTH (the rest is still in the stream).
          const env = parseEnvironBlock(block);
          const declared = /^[0-9]{1,15}$/.test(env.CONTENT_LENGTH ?? '') ? Number(env.CONTENT_LENGTH) : 0;
          const left: Buffer[] = [];
          for await (const c of stdin) left.push(c as Buffer);
          expect(Buffer.concat(left).length).toBeGreaterThanOrEqual(Math.max(0, stdinData.length - declared));
        },
      ),
      { numRuns: 300 },
    );
  });
});
