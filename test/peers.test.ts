/**
 * Tests of the real-peer harness itself (test/helpers/peers.ts, test/helpers/net.ts and the
 * configs in fixtures/nginx, fixtures/apache): every peer starts here for real, as root or
 * not, on loopback or unix sockets, answers through the fixture configs, and is stopped.
 * The FastCGI/SCGI/uwsgi backends are Debian's own (fcgiwrap, uWSGI) or a 40-line FastCGI
 * recorder below, so these tests do not depend on gatewire's fronts.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import {
  FIXTURES_DIR,
  RUNNING_AS_ROOT,
  apacheRunAs,
  copyForPeers,
  describeWithPeers,
  openToPeers,
  peer,
  peerPath,
  planPeerSuite,
  renderTemplate,
  runProcess,
  startApache,
  startFcgiwrap,
  startNginx,
  startProcess,
  startUwsgi,
  withPeerLogs,
} from './helpers/peers.js';
import type { PeerLookup, PeerName, WebServer } from './helpers/peers.js';
import { freePort, httpGet, rawRequest, tmpDir, waitForPort } from './helpers/net.js';

const HELLO = path.join(FIXTURES_DIR, 'cgi', 'hello.sh');
const SH = '/bin/sh';

/** True while `pid` exists and is not a zombie (a killed orphan may wait a moment for init). */
function isAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** Polls isAlive until it is false or 5 s pass (SIGKILL delivery is asynchronous). */
async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 250 && isAlive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  return !isAlive(pid);
}

// --- A minimal FastCGI responder that records what the web server sent -------------------

interface RecordedRequest {
  connection: number;
  requestId: number;
  flags: number;
  params: Map<string, string>;
  stdinBytes: number;
}

interface FcgiRecorder {
  requests: RecordedRequest[];
  connections: number;
  close(): Promise<void>;
}

/** Decodes FastCGI name-value pairs (FastCGI 1.0 §3.4: 1- or 4-byte lengths). */
function decodePairs(buf: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  const len = (): number => {
    const b = buf[i] ?? 0;
    if (b < 0x80) {
      i += 1;
      return b;
    }
    const n = buf.readUInt32BE(i) & 0x7fffffff;
    i += 4;
    return n;
  };
  while (i < buf.length) {
    const nl = len();
    const vl = len();
    out.set(buf.toString('latin1', i, i + nl), buf.toString('latin1', i + nl, i + nl + vl));
    i += nl + vl;
  }
  return out;
}

function record(type: number, id: number, content: Buffer): Buffer {
  const header = Buffer.from([1, type, id >> 8, id & 0xff, content.length >> 8, content.length & 0xff, 0, 0]);
  return Buffer.concat([header, content]);
}

/**
 * Answers every request with `flags=<n> conn=<n>` and keeps the connection only when the
 * web server asked for FCGI_KEEP_CONN. Listens on a TCP port or a unix socket path.
 */
async function startFcgiRecorder(listen: { port: number } | { path: string }): Promise<FcgiRecorder> {
  const requests: RecordedRequest[] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const connection = connections++;
    let buf = Buffer.alloc(0);
    let params = Buffer.alloc(0);
    let current: RecordedRequest | undefined;
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 8) {
        const type = buf[1] ?? 0;
        const id = buf.readUInt16BE(2);
        const length = buf.readUInt16BE(4);
        const padding = buf[6] ?? 0;
        if (buf.length < 8 + length + padding) return;
        const content = buf.subarray(8, 8 + length);
        buf = buf.subarray(8 + length + padding);
        if (type === 1) {
          current = { connection, requestId: id, flags: content[2] ?? 0, params: new Map(), stdinBytes: 0 };
          params = Buffer.alloc(0);
        } else if (type === 4 && current !== undefined) {
          if (length === 0) current.params = decodePairs(params);
          else params = Buffer.concat([params, content]);
        } else if (type === 5 && length > 0 && current !== undefined) {
          current.stdinBytes += length;
        } else if (type === 5 && length === 0 && current !== undefined) {
          requests.push(current);
          const body = Buffer.from(
            `Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nflags=${current.flags} conn=${connection}\n`,
            'latin1',
          );
          const endRequest = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]); // appStatus 0, REQUEST_COMPLETE
          socket.write(Buffer.concat([record(6, id, body), record(6, id, Buffer.alloc(0)), record(3, id, endRequest)]));
          if ((current.flags & 1) === 0) socket.end();
          current = undefined;
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if ('port' in listen) server.listen(listen.port, '127.0.0.1', resolve);
    else server.listen(listen.path, resolve);
  });
  return {
    requests,
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// --- Harness pieces that need no peer ---------------------------------------------------

describe('harness: templates, peer lookup and suite gating', () => {
  test('renderTemplate fills {{NAME}} and {{NAME=default}}, and names what is missing', () => {
    expect(renderTemplate('a {{X}} b {{Y=dflt}} c {{Z=}}', { X: 1 })).toBe('a 1 b dflt c ');
    expect(renderTemplate('{{Y=dflt}}', { Y: 'given' })).toBe('given');
    expect(() => renderTemplate('{{A}} {{B}} {{A}}', {}, 'demo')).toThrow('demo: no value for {{A}}, {{B}}');
  });

  test('every nginx and Apache template renders with the documented variables', () => {
    const vars = {
      PORT: 1,
      PREFIX: '/p',
      DOCROOT: '/d',
      LOG_LEVEL: 'info',
      MODULES: '/m',
      USER: '#1',
      GROUP: '#1',
      FASTCGI_ADDR: '127.0.0.1:2',
      SCGI_ADDR: '127.0.0.1:3',
      UWSGI_ADDR: '127.0.0.1:4',
      CGI_DIR: '/c',
      SOCK_DIR: '/s',
    };
    for (const dir of ['nginx', 'apache']) {
      for (const file of fs.readdirSync(path.join(FIXTURES_DIR, dir)).filter((f) => f.endsWith('.conf'))) {
        const text = renderTemplate(fs.readFileSync(path.join(FIXTURES_DIR, dir, file), 'utf8'), vars, file);
        expect(text).not.toContain('{{');
      }
    }
  });

  test('the vendored *_params carry the params of Debian nginx 1.22 (HTTP_HOST is $host)', () => {
    const names = (file: string): string[] =>
      [...fs.readFileSync(path.join(FIXTURES_DIR, 'nginx', file), 'utf8').matchAll(/^\w+_param\s+(\w+)/gm)].map((m) => m[1] ?? '');
    expect(names('fastcgi_params')).toEqual([
      'QUERY_STRING', 'REQUEST_METHOD', 'CONTENT_TYPE', 'CONTENT_LENGTH', 'SCRIPT_NAME', 'REQUEST_URI',
      'DOCUMENT_URI', 'DOCUMENT_ROOT', 'SERVER_PROTOCOL', 'REQUEST_SCHEME', 'HTTPS', 'GATEWAY_INTERFACE',
      'SERVER_SOFTWARE', 'REMOTE_ADDR', 'REMOTE_PORT', 'REMOTE_USER', 'SERVER_ADDR', 'SERVER_PORT',
      'SERVER_NAME', 'REDIRECT_STATUS', 'HTTP_HOST',
    ]);
    expect(names('scgi_params')).toEqual([
      'REQUEST_METHOD', 'REQUEST_URI', 'QUERY_STRING', 'CONTENT_TYPE', 'DOCUMENT_URI', 'DOCUMENT_ROOT', 'SCGI',
      'SERVER_PROTOCOL', 'REQUEST_SCHEME', 'HTTPS', 'REMOTE_ADDR', 'REMOTE_PORT', 'SERVER_PORT', 'SERVER_NAME',
      'HTTP_HOST',
    ]);
    expect(names('uwsgi_params')).toEqual([
      'QUERY_STRING', 'REQUEST_METHOD', 'CONTENT_TYPE', 'CONTENT_LENGTH', 'REQUEST_URI', 'PATH_INFO',
      'DOCUMENT_ROOT', 'SERVER_PROTOCOL', 'REQUEST_SCHEME', 'HTTPS', 'REMOTE_ADDR', 'REMOTE_PORT', 'SERVER_PORT',
      'SERVER_NAME', 'HTTP_HOST',
    ]);
  });

  test('peer() honours GATEWIRE_PEER_<NAME> and explains a missing binary', () => {
    const saved = process.env['GATEWIRE_PEER_PHP_CGI'];
    try {
      process.env['GATEWIRE_PEER_PHP_CGI'] = '/nonexistent/php-cgi';
      expect(peer('php-cgi')).toEqual({
        name: 'php-cgi',
        path: undefined,
        reason: 'php-cgi not executable at GATEWIRE_PEER_PHP_CGI=/nonexistent/php-cgi',
      });
      process.env['GATEWIRE_PEER_PHP_CGI'] = SH;
      expect(peer('php-cgi').path).toBe(SH);
    } finally {
      if (saved === undefined) delete process.env['GATEWIRE_PEER_PHP_CGI'];
      else process.env['GATEWIRE_PEER_PHP_CGI'] = saved;
    }
  });

  test('a missing peer skips with its reason, or fails under GATEWIRE_REQUIRE_PEERS=1', () => {
    const fake = (name: PeerName): PeerLookup =>
      name === 'nginx' ? { name, path: undefined, reason: 'nginx not installed' } : { name, path: '/bin/true', reason: 'found' };
    expect(planPeerSuite('suite', ['fcgiwrap'], {}, fake)).toEqual({ mode: 'run', title: 'suite' });
    expect(planPeerSuite('suite', ['nginx', 'fcgiwrap'], {}, fake)).toEqual({
      mode: 'skip',
      title: 'suite (skipped: nginx not installed)',
      reason: 'nginx not installed',
    });
    const fail = planPeerSuite('suite', ['nginx'], { GATEWIRE_REQUIRE_PEERS: '1' }, fake);
    expect(fail.mode).toBe('fail');
    expect(fail.mode === 'fail' && fail.message).toContain('nginx is required (GATEWIRE_REQUIRE_PEERS=1) but not installed');
  });

  test('Apache children run as www-data (or nobody) under root, as the current user otherwise', () => {
    const runAs = apacheRunAs();
    if (RUNNING_AS_ROOT) expect(['www-data', 'nobody']).toContain(runAs.user);
    else expect(runAs.uid).toBe(process.getuid?.());
    expect(runAs.uid).not.toBe(0);
  });
});

describe('harness: net helpers and process groups', () => {
  test('freePort gives a port that can be bound; waitForPort and rawRequest talk to it', async () => {
    const port = await freePort();
    const server = net.createServer((s) => {
      s.on('data', () => s.end('pong'));
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    try {
      await waitForPort(port, '127.0.0.1', 2000);
      expect((await rawRequest(port, 'ping')).toString()).toBe('pong');
    } finally {
      server.close();
    }
  });

  test('rawRequest resolves with what arrived when the server never closes', async () => {
    const server = net.createServer((s) => s.write('partial'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      expect((await rawRequest(port, 'x', { timeoutMs: 1000 })).toString()).toBe('partial');
    } finally {
      server.close();
    }
  });

  test('tmpDir creates a private folder and cleanup removes it', () => {
    const dir = tmpDir('gw-test');
    fs.writeFileSync(path.join(dir.path, 'f'), 'x');
    expect(fs.statSync(dir.path).mode & 0o777).toBe(0o700);
    dir.cleanup();
    expect(fs.existsSync(dir.path)).toBe(false);
  });

  test('copyForPeers stages scripts readable and executable by another user', () => {
    const dir = copyForPeers('gw-test', { 'cgi-bin/hello.sh': HELLO });
    try {
      expect(fs.statSync(dir.path).mode & 0o777).toBe(0o755);
      expect(fs.statSync(path.join(dir.path, 'cgi-bin')).mode & 0o777).toBe(0o755);
      expect(fs.statSync(path.join(dir.path, 'cgi-bin', 'hello.sh')).mode & 0o755).toBe(0o755);
    } finally {
      dir.cleanup();
    }
  });

  test('startProcess waits for a ready line; stop() kills the whole process group', async () => {
    const proc = await startProcess(SH, ['-c', 'sleep 300 & echo "child $!"; echo ready; wait'], { readyLine: /^ready$/m });
    const grandchild = Number(/child (\d+)/.exec(proc.stdout())?.[1]);
    expect(isAlive(grandchild)).toBe(true);
    const exit = await proc.stop();
    expect(exit.signal).toBe('SIGTERM');
    expect(await gone(grandchild)).toBe(true);
  });

  test('startProcess rejects with the output when the process exits before it is ready', async () => {
    const port = await freePort();
    await expect(
      startProcess(SH, ['-c', 'echo "cannot bind: boom" >&2; exit 3'], { name: 'doomed', readyPort: port }),
    ).rejects.toThrow(/doomed did not become ready: .*exited \(code 3[\s\S]*cannot bind: boom/);
  });

  test('withPeerLogs appends the output of started peers to a failure', async () => {
    const proc = await startProcess(SH, ['-c', 'echo marker-7f3a; exec sleep 300'], { name: 'chatty', readyLine: 'marker-7f3a' });
    try {
      const failing = withPeerLogs(() => {
        throw new Error('assertion failed');
      });
      await expect(failing()).rejects.toThrow(/assertion failed[\s\S]*--- chatty \(pid \d+\) running ---\nmarker-7f3a/);
    } finally {
      await proc.stop();
    }
  });

  test('runProcess feeds stdin and collects stdout and the exit code', async () => {
    const result = await runProcess(SH, ['-c', 'cat; exit 4'], { input: 'abc' });
    expect(result.code).toBe(4);
    expect(result.stdout.toString()).toBe('abc');
  });
});

// --- nginx ------------------------------------------------------------------------------

describeWithPeers('nginx (fixtures/nginx/all.conf)', ['nginx'], () => {
  let nginx: WebServer;
  beforeAll(async () => {
    nginx = await startNginx({ template: 'all' });
  });
  afterAll(() => nginx.stop());

  test('GET /ceiling answers 200 "Hello, World!\\n" from nginx itself', withPeerLogs(async () => {
    const res = await httpGet(nginx.url('/ceiling'));
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('Hello, World!\n');
    expect(res.headers['server']).toMatch(/^nginx\//);
  }));

  test('pid, logs and temp paths live in the prefix; errorLog() reads the error log', () => {
    expect(fs.existsSync(path.join(nginx.prefix, 'nginx.pid'))).toBe(true);
    for (const temp of ['client_body', 'proxy', 'fastcgi', 'scgi', 'uwsgi']) {
      expect(fs.existsSync(path.join(nginx.prefix, 'temp', temp))).toBe(true);
    }
    expect(nginx.errorLog()).toMatch(/\[notice\] .*nginx\/1\.\d+/);
  });

  test('an unset address answers 502 and the error log names it', withPeerLogs(async () => {
    const res = await httpGet(nginx.url('/scgi/x'));
    expect(res.status).toBe(502);
    expect(nginx.errorLog()).toContain('gatewire-SCGI_ADDR-unset.sock');
  }));
});

describeWithPeers('nginx lifecycle', ['nginx'], () => {
  test('stop() ends master and worker and removes the prefix', async () => {
    const nginx = await startNginx({ template: 'all' });
    const res = await httpGet(nginx.url('/ceiling'));
    expect(res.status).toBe(200);
    const pid = nginx.process.pid;
    await nginx.stop();
    expect(nginx.process.exitInfo?.code).toBe(0); // SIGQUIT: graceful shutdown, exit 0
    expect(await gone(pid)).toBe(true);
    expect(fs.existsSync(nginx.prefix)).toBe(false);
    expect(nginx.errorLog()).toContain('exit'); // last copy survives the prefix
  });

  test('master_process off also starts and stops cleanly', async () => {
    const nginx = await startNginx({ template: 'all', masterProcess: false });
    expect((await httpGet(nginx.url('/ceiling'))).body.toString()).toBe('Hello, World!\n');
    await nginx.stop();
    expect(nginx.process.exitInfo?.code).toBe(0);
  });

  test('a broken template fails to start with the nginx error in the message', async () => {
    const dir = tmpDir('gw-badconf');
    try {
      const bad = path.join(dir.path, 'bad.conf');
      fs.writeFileSync(bad, 'server { listen 127.0.0.1:{{PORT}}; no_such_directive on; }\n');
      await expect(startNginx({ template: bad })).rejects.toThrow(/unknown directive "no_such_directive"/);
    } finally {
      dir.cleanup();
    }
  });
});

describeWithPeers('nginx fastcgi_pass → spawn-fcgi + fcgiwrap → fixtures/cgi/hello.sh', ['nginx', 'spawn-fcgi', 'fcgiwrap'], () => {
  let docroot: ReturnType<typeof tmpDir>;
  let wrap: Awaited<ReturnType<typeof startFcgiwrap>>;
  let wrapUnix: Awaited<ReturnType<typeof startFcgiwrap>>;
  let nginx: WebServer;
  let nginxUnix: WebServer;
  beforeAll(async () => {
    // fcgiwrap runs DOCUMENT_ROOT + SCRIPT_NAME (nginx sends no SCRIPT_FILENAME by default).
    docroot = tmpDir('gw-docroot');
    for (const loc of ['fcgi', 'fcgi-nokeep', 'fcgi-stream']) {
      fs.mkdirSync(path.join(docroot.path, loc));
      fs.symlinkSync(HELLO, path.join(docroot.path, loc, 'hello.sh'));
    }
    wrap = await startFcgiwrap();
    wrapUnix = await startFcgiwrap({ socket: path.join(docroot.path, 'fcgiwrap.sock') });
    nginx = await startNginx({ template: 'fastcgi', vars: { FASTCGI_ADDR: wrap.nginxAddr, DOCROOT: docroot.path } });
    nginxUnix = await startNginx({ template: 'all', vars: { FASTCGI_ADDR: wrapUnix.nginxAddr, DOCROOT: docroot.path } });
  });
  afterAll(async () => {
    await Promise.all([nginx?.stop(), nginxUnix?.stop(), wrap?.stop(), wrapUnix?.stop()]);
    docroot.cleanup();
  });

  test('F-44: GET /fcgi/hello.sh runs the script (keep-conn location)', withPeerLogs(async () => {
    const res = await httpGet(nginx.url('/fcgi/hello.sh?x=1&y=2'));
    expect(res.status).toBe(200);
    expect(res.headers['x-fixture']).toBe('hello.sh');
    const body = res.body.toString();
    expect(body).toContain('Hello from hello.sh\n');
    expect(body).toContain('env-GATEWAY_INTERFACE=CGI/1.1\n');
    expect(body).toContain('env-SCRIPT_NAME=/fcgi/hello.sh\n');
    expect(body).toContain('env-QUERY_STRING=x=1&y=2\n');
    expect(body).toContain('env-HTTP_HOST=127.0.0.1\n'); // Debian's params: $host, port dropped
    expect(body).not.toContain('env-PATH_INFO');
  }));

  test('F-25: POST /fcgi-nokeep/hello.sh delivers the body as STDIN', withPeerLogs(async () => {
    const res = await httpGet(nginx.url('/fcgi-nokeep/hello.sh'), { method: 'POST', body: 'name=value', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toContain('env-CONTENT_TYPE=application/x-www-form-urlencoded\n');
    expect(res.body.toString()).toContain('env-CONTENT_LENGTH=10\n');
    expect(res.body.toString()).toMatch(/\nbody=name=value\n$/);
  }));

  test('F-25: /fcgi-stream/ (request buffering off) passes a body of known length', withPeerLogs(async () => {
    const res = await httpGet(nginx.url('/fcgi-stream/hello.sh'), { method: 'PUT', body: 'streamed' });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toContain('env-REQUEST_METHOD=PUT\nenv-SCRIPT_NAME=/fcgi-stream/hello.sh\n');
    expect(res.body.toString()).toContain('body=streamed\n');
  }));

  test('F-43: fcgiwrap on a unix socket behind all.conf', withPeerLogs(async () => {
    const res = await httpGet(nginxUnix.url('/fcgi/hello.sh'));
    expect(res.status).toBe(200);
    expect(res.body.toString()).toContain('Hello from hello.sh\n');
    expect((await httpGet(nginxUnix.url('/ceiling'))).body.toString()).toBe('Hello, World!\n');
  }));
});

describeWithPeers('nginx fastcgi.conf keep-conn on and off (FastCGI recorder)', ['nginx'], () => {
  let recorder: FcgiRecorder;
  let nginx: WebServer;
  beforeAll(async () => {
    const port = await freePort();
    recorder = await startFcgiRecorder({ port });
    nginx = await startNginx({ template: 'fastcgi', vars: { FASTCGI_ADDR: `127.0.0.1:${port}` } });
  });
  afterAll(async () => {
    await nginx?.stop();
    await recorder?.close();
  });

  test('F-41: /fcgi/ sets FCGI_KEEP_CONN and reuses one connection', withPeerLogs(async () => {
    const a = await httpGet(nginx.url('/fcgi/a'));
    const b = await httpGet(nginx.url('/fcgi/b'));
    expect(a.body.toString()).toMatch(/^flags=1 conn=(\d+)\n$/);
    expect(b.body.toString()).toBe(a.body.toString());
  }));

  test('F-40: /fcgi-nokeep/ sends flags 0 and a new connection per request', withPeerLogs(async () => {
    const a = await httpGet(nginx.url('/fcgi-nokeep/a'));
    const b = await httpGet(nginx.url('/fcgi-nokeep/b'));
    expect(a.body.toString()).toMatch(/^flags=0 conn=\d+\n$/);
    expect(b.body.toString()).toMatch(/^flags=0 conn=\d+\n$/);
    expect(b.body.toString()).not.toBe(a.body.toString());
  }));

  test('F-21: /fcgi-stream/ streams a chunked body with an empty CONTENT_LENGTH', withPeerLogs(async () => {
    // Large enough that nginx cannot have read it all with the headers: it starts the
    // upstream request before the body's length is known.
    const chunk = 'x'.repeat(65_536);
    let request = 'POST /fcgi-stream/c HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n';
    for (let i = 0; i < 4; i++) request += `${chunk.length.toString(16)}\r\n${chunk}\r\n`;
    request += '0\r\n\r\n';
    const answer = (await rawRequest(nginx.port, request, { timeoutMs: 10_000 })).toString('latin1');
    expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*flags=1 conn=\d+\n/);
    const last = recorder.requests[recorder.requests.length - 1];
    expect(last?.params.get('CONTENT_LENGTH')).toBe('');
    expect(last?.params.get('HTTP_TRANSFER_ENCODING')).toBe('chunked');
    expect(last?.stdinBytes).toBe(4 * 65_536);
  }));

  test('F-14: nginx uses request id 1 and sends the vendored params', withPeerLogs(async () => {
    await httpGet(nginx.url('/fcgi/params?q=1'));
    const last = recorder.requests[recorder.requests.length - 1];
    expect(last?.requestId).toBe(1);
    expect(last?.params.get('SCRIPT_NAME')).toBe('/fcgi/params');
    expect(last?.params.get('QUERY_STRING')).toBe('q=1');
    expect(last?.params.get('SERVER_PORT')).toBe(String(nginx.port));
    expect(last?.params.has('SCRIPT_FILENAME')).toBe(false);
  }));
});

describeWithPeers('nginx scgi.conf and uwsgi.conf → uWSGI (python3 plugin)', ['nginx', 'uwsgi-python3'], () => {
  const wsgiApp = [
    'def application(environ, start_response):',
    "    body = environ['wsgi.input'].read()",
    "    start_response('200 OK', [('Content-Type', 'text/plain')])",
    "    keys = ('REQUEST_METHOD', 'SCRIPT_NAME', 'PATH_INFO', 'CONTENT_LENGTH', 'SCGI')",
    "    lines = ['%s=%s' % (k, environ.get(k, '<unset>')) for k in keys]",
    "    return [('\\n'.join(lines) + '\\nbody=' + body.decode('latin1') + '\\n').encode('latin1')]",
  ].join('\n');
  let uwsgi: Awaited<ReturnType<typeof startUwsgi>>;
  let scgi: WebServer;
  let uw: WebServer;
  beforeAll(async () => {
    uwsgi = await startUwsgi({ wsgiApp });
    scgi = await startNginx({ template: 'scgi', vars: { SCGI_ADDR: `127.0.0.1:${uwsgi.scgiPort}` } });
    uw = await startNginx({ template: 'uwsgi', vars: { UWSGI_ADDR: `127.0.0.1:${uwsgi.uwsgiPort}` } });
  });
  afterAll(async () => {
    await Promise.all([scgi?.stop(), uw?.stop()]);
    await uwsgi?.stop();
  });

  test('S-4: scgi_pass sends CONTENT_LENGTH and SCGI=1; the body arrives', withPeerLogs(async () => {
    const res = await httpGet(scgi.url('/scgi/x'), { method: 'POST', body: 'abc' });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('REQUEST_METHOD=POST\nSCRIPT_NAME=<unset>\nPATH_INFO=<unset>\nCONTENT_LENGTH=3\nSCGI=1\nbody=abc\n');
  }));

  test('S-7: /scgi-stream/ (scgi_request_buffering off) still delivers a small body', withPeerLogs(async () => {
    const res = await httpGet(scgi.url('/scgi-stream/x'), { method: 'POST', body: 'stream' });
    expect(res.body.toString()).toContain('body=stream\n');
  }));

  test('U-8: uwsgi_pass reaches the app; PATH_INFO is the URI', withPeerLogs(async () => {
    const res = await httpGet(uw.url('/uwsgi/y'));
    expect(res.status).toBe(200);
    expect(res.body.toString()).toContain('SCRIPT_NAME=<unset>\nPATH_INFO=/uwsgi/y\n');
  }));

  test('U-7: /mnt/ sends SCRIPT_NAME /mnt with modifier1 30', withPeerLogs(async () => {
    const res = await httpGet(uw.url('/mnt/z'));
    expect(res.status).toBe(200);
    expect(res.body.toString()).toContain('SCRIPT_NAME=/mnt\n');
  }));
});

// --- Apache -----------------------------------------------------------------------------

describeWithPeers('Apache mod_cgi / mod_cgid (fixtures/apache/cgi.conf)', ['apache2'], () => {
  // The script runs as www-data under root: a copy it can reach, wherever the checkout is.
  let cgiDir: ReturnType<typeof tmpDir>;
  beforeAll(() => {
    cgiDir = copyForPeers('gw-cgi', { 'hello.sh': HELLO });
  });
  afterAll(() => cgiDir.cleanup());

  for (const mpm of ['event', 'prefork'] as const) {
    test(`C-2: /cgi-bin/hello.sh runs under ${mpm} (${mpm === 'event' ? 'mod_cgid' : 'mod_cgi'})`, async () => {
      const apache = await startApache({ template: 'cgi', mpm, vars: { CGI_DIR: cgiDir.path } });
      try {
        await withPeerLogs(async () => {
          const res = await httpGet(apache.url('/cgi-bin/hello.sh/extra?k=v'), { headers: { 'x-test': 'yes' } });
          expect(res.status).toBe(200);
          const body = res.body.toString();
          expect(body).toContain('Hello from hello.sh\n');
          expect(body).toContain('env-SCRIPT_NAME=/cgi-bin/hello.sh\n');
          expect(body).toContain('env-PATH_INFO=/extra\n');
          expect(body).toContain('env-QUERY_STRING=k=v\n');
          expect(body).toContain('env-HTTP_X_TEST=yes\n');
          expect(apache.errorLog()).toContain('resuming normal operations');
        })();
      } finally {
        await apache.stop();
      }
      expect(fs.existsSync(apache.prefix)).toBe(false);
    });
  }
});

describeWithPeers('Apache mod_proxy_fcgi → spawn-fcgi + fcgiwrap', ['apache2', 'spawn-fcgi', 'fcgiwrap'], () => {
  let sockDir: ReturnType<typeof tmpDir>;
  let wrap: Awaited<ReturnType<typeof startFcgiwrap>>;
  let wrapUnix: Awaited<ReturnType<typeof startFcgiwrap>>;
  let apache: WebServer;
  beforeAll(async () => {
    sockDir = tmpDir('gw-sock');
    openToPeers(sockDir.path); // Apache's children (www-data under root) must reach the socket
    wrap = await startFcgiwrap();
    wrapUnix = await startFcgiwrap({ socket: path.join(sockDir.path, 'fcgiwrap.sock') });
    // mod_proxy_fcgi always sends SCRIPT_FILENAME, which fcgiwrap runs: point it at the fixture.
    const setScript = `ProxyFCGISetEnvIf "reqenv('SCRIPT_NAME') =~ m#/([^/]+)$#" SCRIPT_FILENAME "${path.dirname(HELLO)}/$1"`;
    apache = await startApache({
      template: 'proxy_fcgi',
      vars: { FASTCGI_ADDR: `127.0.0.1:${String(wrap.port)}`, FASTCGI_SOCKET: path.join(sockDir.path, 'fcgiwrap.sock'), FCGI_EXTRA: setScript },
    });
  });
  afterAll(async () => {
    await Promise.all([apache?.stop(), wrap?.stop(), wrapUnix?.stop()]);
    sockDir.cleanup();
  });

  for (const location of ['/fcgi/', '/fcgi-noreuse/', '/fcgi-unix/']) {
    test(`F-33: ${location}hello.sh answers through mod_proxy_fcgi`, withPeerLogs(async () => {
      const res = await httpGet(apache.url(`${location}hello.sh?a=b`), { method: 'POST', body: 'xyz' });
      expect(res.status).toBe(200);
      const body = res.body.toString();
      expect(body).toContain('Hello from hello.sh\n');
      expect(body).toContain(`env-SCRIPT_NAME=${location}hello.sh\n`);
      expect(body).toContain('env-QUERY_STRING=a=b\n');
      expect(body).toContain('body=xyz\n');
    }));
  }
});

describeWithPeers('Apache proxy_fcgi.conf enablereuse on and off (FastCGI recorder)', ['apache2'], () => {
  let sockDir: ReturnType<typeof tmpDir>;
  let recorder: FcgiRecorder;
  let recorderUnix: FcgiRecorder;
  let apache: WebServer;
  beforeAll(async () => {
    const port = await freePort();
    sockDir = tmpDir('gw-sock');
    openToPeers(sockDir.path);
    const socketPath = path.join(sockDir.path, 'rec.sock');
    recorder = await startFcgiRecorder({ port });
    recorderUnix = await startFcgiRecorder({ path: socketPath });
    openToPeers(socketPath);
    apache = await startApache({ template: 'proxy_fcgi', vars: { FASTCGI_ADDR: `127.0.0.1:${port}`, FASTCGI_SOCKET: socketPath } });
  });
  afterAll(async () => {
    await apache?.stop();
    await Promise.all([recorder?.close(), recorderUnix?.close()]);
    sockDir.cleanup();
  });

  test('F-41: /fcgi/ (enablereuse=on) sets FCGI_KEEP_CONN and reuses the connection', withPeerLogs(async () => {
    const a = await httpGet(apache.url('/fcgi/a'));
    const b = await httpGet(apache.url('/fcgi/b'));
    expect(a.body.toString()).toMatch(/^flags=1 conn=\d+\n$/);
    expect(b.body.toString()).toBe(a.body.toString());
  }));

  test('F-40: /fcgi-noreuse/ sends flags 0 on a new connection each time', withPeerLogs(async () => {
    const a = await httpGet(apache.url('/fcgi-noreuse/a'));
    const b = await httpGet(apache.url('/fcgi-noreuse/b'));
    expect(a.body.toString()).toMatch(/^flags=0 conn=\d+\n$/);
    expect(b.body.toString()).toMatch(/^flags=0 conn=\d+\n$/);
    expect(b.body.toString()).not.toBe(a.body.toString());
  }));

  test('F-19: Apache sends the full CGI environment (GENERIC: SCRIPT_FILENAME is the path)', withPeerLogs(async () => {
    await httpGet(apache.url('/fcgi/x/y?z=1'));
    const last = recorder.requests[recorder.requests.length - 1];
    expect(last?.params.get('SCRIPT_NAME')).toBe('/fcgi/x/y');
    expect(last?.params.get('SCRIPT_FILENAME')).toBe('/x/y');
    expect(last?.params.get('QUERY_STRING')).toBe('z=1');
    expect(last?.params.get('GATEWAY_INTERFACE')).toBe('CGI/1.1');
  }));

  test('F-43: /fcgi-unix/ reaches a unix-socket backend', withPeerLogs(async () => {
    const res = await httpGet(apache.url('/fcgi-unix/u'));
    expect(res.body.toString()).toMatch(/^flags=1 conn=0\n$/);
    expect(recorderUnix.requests).toHaveLength(1);
  }));
});

describeWithPeers('Apache proxy_scgi.conf and proxy_uwsgi.conf → uWSGI', ['apache2', 'uwsgi-python3'], () => {
  const wsgiApp = [
    'def application(environ, start_response):',
    "    start_response('200 OK', [('Content-Type', 'text/plain')])",
    "    return [('SCRIPT_NAME=%s PATH_INFO=%s' % (environ.get('SCRIPT_NAME', '<unset>'), environ.get('PATH_INFO', '<unset>'))).encode()]",
  ].join('\n');
  let uwsgi: Awaited<ReturnType<typeof startUwsgi>>;
  let scgi: WebServer;
  let uw: WebServer;
  beforeAll(async () => {
    uwsgi = await startUwsgi({ wsgiApp });
    scgi = await startApache({ template: 'proxy_scgi', vars: { SCGI_ADDR: `127.0.0.1:${uwsgi.scgiPort}` } });
    uw = await startApache({ template: 'proxy_uwsgi', vars: { UWSGI_ADDR: `127.0.0.1:${uwsgi.uwsgiPort}` } });
  });
  afterAll(async () => {
    await Promise.all([scgi?.stop(), uw?.stop()]);
    await uwsgi?.stop();
  });

  test('S-8: mod_proxy_scgi reaches the app', withPeerLogs(async () => {
    const res = await httpGet(scgi.url('/scgi/p'));
    expect(res.status).toBe(200);
    expect(res.body.toString()).toMatch(/^SCRIPT_NAME=\S* PATH_INFO=\S+$/);
  }));

  test('U-8: mod_proxy_uwsgi reaches the app; PATH_INFO is the path after the mount', withPeerLogs(async () => {
    const res = await httpGet(uw.url('/uwsgi/q/r'));
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('SCRIPT_NAME=/uwsgi PATH_INFO=/q/r');
  }));
});

// --- One-shot FastCGI clients and other CGI hosts ----------------------------------------

describeWithPeers('cgi-fcgi -bind -connect → spawn-fcgi + fcgiwrap', ['cgi-fcgi', 'spawn-fcgi', 'fcgiwrap'], () => {
  test('F-44: cgi-fcgi sends its environment as PARAMS and stdin as STDIN', withPeerLogs(async () => {
    const wrap = await startFcgiwrap();
    try {
      const result = await runProcess(peerPath('cgi-fcgi'), ['-bind', '-connect', `127.0.0.1:${String(wrap.port)}`], {
        inheritEnv: false,
        env: {
          PATH: '/usr/bin:/bin',
          GATEWAY_INTERFACE: 'CGI/1.1',
          REQUEST_METHOD: 'POST',
          SCRIPT_FILENAME: HELLO,
          SCRIPT_NAME: '/hello.sh',
          QUERY_STRING: 'from=cgi-fcgi',
          CONTENT_LENGTH: '4',
          SERVER_PROTOCOL: 'HTTP/1.1',
        },
        input: 'ping',
      });
      expect(result.code).toBe(0);
      const out = result.stdout.toString('latin1');
      expect(out).toMatch(/^Status: 200 OK\r\nContent-Type: text\/plain; charset=utf-8\r\nX-Fixture: hello.sh\r\n\r\n/);
      expect(out).toContain('env-REQUEST_METHOD=POST\n');
      expect(out).toContain('env-QUERY_STRING=from=cgi-fcgi\n');
      expect(out).toContain('body=ping\n');
    } finally {
      await wrap.stop();
    }
  }));
});

describeWithPeers('php-cgi -b as a FastCGI server, driven by cgi-fcgi', ['php-cgi', 'cgi-fcgi'], () => {
  test('F-43: php-cgi -b listens on loopback and runs a script', withPeerLogs(async () => {
    const dir = tmpDir('gw-php');
    const port = await freePort();
    const php = await startProcess(peerPath('php-cgi'), ['-b', `127.0.0.1:${port}`], {
      name: 'php-cgi',
      readyPort: port,
      env: { PHP_FCGI_CHILDREN: '0' },
    });
    try {
      const script = path.join(dir.path, 'hi.php');
      fs.writeFileSync(script, '<?php header("X-Php: 1"); echo "php says ", $_SERVER["REQUEST_METHOD"], "\\n";');
      const result = await runProcess(peerPath('cgi-fcgi'), ['-bind', '-connect', `127.0.0.1:${port}`], {
        inheritEnv: false,
        env: { REQUEST_METHOD: 'GET', SCRIPT_FILENAME: script, REDIRECT_STATUS: '200', SERVER_PROTOCOL: 'HTTP/1.1' },
      });
      const out = result.stdout.toString('latin1');
      expect(out).toContain('X-Php: 1\r\n');
      expect(out).toMatch(/\r\n\r\nphp says GET\n$/);
    } finally {
      await php.stop();
      dir.cleanup();
    }
  }));
});

describeWithPeers('python3 -m http.server --cgi as a CGI host', ['python3'], () => {
  test('C-2: it runs cgi-bin/hello.sh', withPeerLogs(async () => {
    // As root http.server drops to nobody (uid only) before exec: the script must be reachable.
    const dir = copyForPeers('gw-pycgi', { 'cgi-bin/hello.sh': HELLO });
    const port = await freePort();
    const py = await startProcess(peerPath('python3'), ['-m', 'http.server', '--cgi', '--bind', '127.0.0.1', String(port)], {
      name: 'python3 http.server',
      cwd: dir.path,
      readyPort: port,
      env: { PYTHONWARNINGS: 'ignore' },
    });
    try {
      const res = await httpGet(`http://127.0.0.1:${port}/cgi-bin/hello.sh?p=1`);
      expect(res.status).toBe(200);
      expect(res.body.toString()).toContain('env-QUERY_STRING=p=1\n');
    } finally {
      await py.stop();
      dir.cleanup();
    }
  }));
});
