/**
 * OP-9: a 1 MiB POST to an app that answers without reading it. Every front sends the whole
 * response and ends the exchange cleanly (a FIN, END_REQUEST): the unread body is read and
 * dropped, never left in the socket's receive buffer, where closing would send the client an
 * RST and lose the response it had not read yet (the client sees ECONNRESET, a web server
 * "reset by peer" and a 502).
 */
import { createHash } from 'node:crypto';
import * as net from 'node:net';
import type { Service } from '../src/app.js';
import { FRONTS, type MatrixServer } from './helpers/fronts.js';
import { startGateway } from './helpers/scgi-client.js';

const BODY = Buffer.alloc(1 << 20, 0x61);
const ANSWER = 'answered without reading the body\n';

const environService: Service = {
  interface: 'environ',
  app: (_environ, startResponse) => {
    startResponse('200 OK', [['Content-Type', 'text/plain']]);
    return [ANSWER];
  },
};

const nodeService: Service = {
  interface: 'node',
  app: environService.app,
  node: (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(ANSWER);
  },
};

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const servers: MatrixServer[] = [];
afterAll(() => Promise.all(servers.splice(0).map((s) => s.close())));

describe.each(FRONTS.map((f) => [f.name, f] as const))('OP-9 over %s', (_name, front) => {
  for (const [flavour, service] of [['environ', environService], ['node', nodeService]] as const) {
    test(`${flavour} app: a 1 MiB POST it never reads gets the whole response, no reset; the server serves the next request`, async () => {
      const server = await front.start(service);
      servers.push(server);
      for (let i = 0; i < 3; i++) {
        const res = await server.request({ method: 'POST', path: '/upload', body: BODY, headers: { 'Content-Type': 'application/octet-stream' } });
        expect({ status: res.status, truncated: res.truncated, body: sha(res.body) }).toEqual({ status: 200, truncated: false, body: sha(Buffer.from(ANSWER)) });
      }
      const after = await server.request({ path: '/' });
      expect({ status: after.status, truncated: after.truncated }).toEqual({ status: 200, truncated: false });
    });
  }
});

/** The socket's own view: what arrived, and whether it ended with a FIN ('end') or an error (RST). */
function rawPost(port: number, head: string, body: Buffer): Promise<{ response: string; ended: boolean; error: string | undefined }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let ended = false;
    let error: string | undefined;
    const timer = setTimeout(() => socket.destroy(new Error('no end in 10 s')), 10_000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      ended = true;
      socket.end();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ response: Buffer.concat(chunks).toString('latin1'), ended, error });
    });
    socket.write(head);
    socket.write(body);
  });
}

describe('OP-9 on the wire', () => {
  test.each([['environ', environService], ['node', nodeService]] as const)('HTTP, Connection: close, %s app: the response, then a FIN, never an RST', async (_flavour, service) => {
    const { gateway, ports } = await startGateway(service, { http: ['127.0.0.1:0'] });
    try {
      const got = await rawPost(ports[0] as number, `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${BODY.length}\r\nConnection: close\r\n\r\n`, BODY);
      // (The node handler's writeHead() fixes the head before end() knows the length: chunked.)
      expect({ ended: got.ended, error: got.error, status: got.response.split('\r\n')[0], answered: got.response.includes(`\r\n\r\n${ANSWER}`) || got.response.includes(`\r\n${ANSWER}\r\n0\r\n\r\n`) }).toEqual({
        ended: true,
        error: undefined,
        status: 'HTTP/1.1 200 OK',
        answered: true,
      });
    } finally {
      await gateway.close(200);
    }
  });
});
