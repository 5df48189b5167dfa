/**
 * The behaviour matrix: one list of cases, run over every front (test/helpers/fronts.ts) for
 * every app flavour (environ, plain node, Express, Koa, Hono). The same app must give the same
 * observable result whatever carries it.
 */
import { createHash } from 'node:crypto';
import { FRONTS, type Running } from './helpers/fronts.js';
import { behaviourService, probe, resetProbe, type Flavour } from './helpers/behaviour-apps.js';

const FLAVOURS: Flavour[] = ['environ', 'node', 'express', 'koa', 'hono'];
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

interface Case {
  name: string;
  run(server: Running, flavour: Flavour): Promise<void>;
}

const CASES: Case[] = [
  {
    name: 'echo: method, decoded path, raw query, request header (E-5, E-6)',
    async run(s) {
      const res = await s.request({ path: '/echo?x=1+2&y', headers: { 'X-Test': 'yes' } });
      expect(res.status).toBe(200);
      expect(res.truncated).toBe(false);
      const json = JSON.parse(res.body.toString());
      expect(json).toMatchObject({ method: 'GET', path: '/echo', query: 'x=1+2&y', length: 0, test: 'yes' });
    },
  },
  {
    name: 'request body: a small POST arrives byte-exact',
    async run(s) {
      const body = Buffer.from([0x00, 0xff, 0xc3, 0xa9, 0x41]);
      const res = await s.request({ method: 'POST', path: '/echo', body, headers: { 'Content-Type': 'application/octet-stream' } });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString())).toMatchObject({ method: 'POST', length: 5, sha256: sha(body) });
    },
  },
  {
    name: 'large request body: 8 MiB hashed by the app',
    async run(s) {
      const body = Buffer.alloc(8 * 1024 * 1024);
      for (let i = 0; i < body.length; i += 4096) body[i] = i & 0xff;
      const res = await s.request({ method: 'POST', path: '/echo', body, headers: { 'Content-Type': 'application/octet-stream' } });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString())).toMatchObject({ length: body.length, sha256: sha(body) });
    },
  },
  {
    name: 'streaming response body: 64 chunks of 64 KiB arrive whole',
    async run(s) {
      const res = await s.request({ path: '/stream?n=64&size=65536' });
      expect(res.status).toBe(200);
      expect(res.truncated).toBe(false);
      expect(res.body.length).toBe(64 * 65536);
      expect(res.body.every((b) => b === 0x78)).toBe(true);
    },
  },
  {
    name: 'error before headers → 500, no stack trace to the client',
    async run(s) {
      const res = await s.request({ path: '/error-before' });
      expect(res.status).toBe(500);
      expect(res.body.toString()).toMatch(/^Internal Server Error/);
      expect(res.body.toString()).not.toMatch(/boom|at .*\.ts/);
    },
  },
  {
    name: 'error after headers → the client sees a truncated response (R-11)',
    async run(s) {
      const res = await s.request({ path: '/error-after' });
      expect(res.status).toBe(200);
      expect(res.truncated).toBe(true);
      expect(res.body.toString()).toBe('part-');
    },
  },
  {
    name: 'HEAD: same status and headers as GET, no body (R-9)',
    async run(s) {
      const get = await s.request({ path: '/cookies' });
      const head = await s.request({ method: 'HEAD', path: '/cookies' });
      expect(head.status).toBe(200);
      expect(head.body.length).toBe(0);
      expect(head.headers['content-type']).toEqual(get.headers['content-type']);
      expect(head.truncated).toBe(false);
    },
  },
  {
    name: '204 and 304: no body; no Content-Length on 204 (R-9)',
    async run(s) {
      const noContent = await s.request({ path: '/no-content' });
      expect(noContent.status).toBe(204);
      expect(noContent.body.length).toBe(0);
      expect(noContent.headers['content-length']).toBeUndefined();
      const notModified = await s.request({ path: '/not-modified' });
      expect(notModified.status).toBe(304);
      expect(notModified.body.length).toBe(0);
      expect(notModified.headers.etag).toEqual(['"x"']);
    },
  },
  {
    name: 'repeated Set-Cookie fields stay separate (R-10)',
    async run(s) {
      const res = await s.request({ path: '/cookies' });
      expect(res.headers['set-cookie']?.map((c) => c.split(';')[0])).toEqual(['a=1', 'b=2']);
    },
  },
  {
    name: 'client abort: the app learns it and its body is closed (H-10, R-5)',
    async run(s) {
      resetProbe();
      const res = await s.request({ path: '/forever', abortAfterBytes: 4096 });
      expect(res.truncated).toBe(true);
      for (let i = 0; i < 200 && probe.closed === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(probe.started).toBe(1);
      expect(probe.closed).toBe(1);
    },
  },
];

describe.each(FRONTS.map((f) => [f.name, f] as const))('behaviour matrix over %s', (_name, front) => {
  describe.each(FLAVOURS)('%s app', (flavour) => {
    let server: Running;
    beforeAll(async () => {
      server = await front.start(behaviourService(flavour));
    });
    afterAll(async () => {
      await server.close();
    });
    test.each(CASES.map((c) => [c.name, c] as const))('%s', async (_n, c) => {
      await c.run(server, flavour);
    });
  });
});
