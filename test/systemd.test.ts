/**
 * systemd: socket activation (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES) and sd_notify
 * (NOTIFY_SOCKET), src/systemd.ts, as systemd gives them: the variables and descriptors set by
 * the real systemd-socket-activate, and a NOTIFY_SOCKET receiver in python3 (Node has no
 * AF_UNIX datagram sockets) that also reports the sender's pid (SCM_CREDENTIALS).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAddress } from '../src/options';
import { listenFds, resolveNamedFd, sdNotify, stripListenEnv } from '../src/systemd';
import { CLI, type Proc, ensureBuilt, killAll, request, spawnCommand, tempDir } from './fixtures/apps/cli-harness.js';
import { fcgiRequest } from './helpers/fcgi-client.js';
import { freePort } from './helpers/net.js';
import { describeWithPeers, peerPath } from './helpers/peers.js';

jest.setTimeout(60_000);
beforeAll(() => ensureBuilt());
const receivers: ChildProcess[] = [];
afterEach(async () => {
  for (const r of receivers.splice(0)) r.kill('SIGKILL');
  await killAll();
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const RECEIVER = String.raw`
import json, os, socket, struct, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path if not path.startswith('@') else '\0' + path[1:])
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"ready": True}), flush=True)
while True:
    msg, anc, flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = None
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack('iii', data[:12])[0]
    print(json.dumps({"pid": pid, "msg": msg.decode('latin-1')}), flush=True)
`;

interface Receiver {
  child: ChildProcess;
  messages: Array<{ pid: number | null; msg: string }>;
  until(what: string, check: (m: Array<{ pid: number | null; msg: string }>) => boolean, timeoutMs?: number): Promise<void>;
}

async function receiver(address: string): Promise<Receiver> {
  const child = spawn(peerPath('python3'), ['-c', RECEIVER, address], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: Receiver['messages'] = [];
  let ready = false;
  let buffered = '';
  child.stdout?.on('data', (c: Buffer) => {
    buffered += c.toString('latin1');
    let nl: number;
    while ((nl = buffered.indexOf('\n')) !== -1) {
      const line = JSON.parse(buffered.slice(0, nl)) as { ready?: boolean; pid: number | null; msg: string };
      buffered = buffered.slice(nl + 1);
      if (line.ready === true) ready = true;
      else messages.push({ pid: line.pid, msg: line.msg });
    }
  });
  const until: Receiver['until'] = async (what, check, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!check(messages)) {
      if (Date.now() > deadline) throw new Error(`NOTIFY_SOCKET: timed out waiting for ${what}; got ${JSON.stringify(messages)}`);
      await sleep(20);
    }
  };
  receivers.push(child);
  await until('the receiver', () => ready);
  return { child, messages, until };
}

describe('OP-16: LISTEN_* as sd_listen_fds reads them', () => {
  test('OP-16: fds from 3 with their names, only for our pid; a missing name is "unknown"', () => {
    expect(listenFds({ LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'web:fcgi' }, 42)).toEqual({ fds: [3, 4], names: ['web', 'fcgi'] });
    expect(listenFds({ LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'web' }, 42)).toEqual({ fds: [3, 4], names: ['web', 'unknown'] });
    expect(listenFds({ LISTEN_PID: '41', LISTEN_FDS: '2' }, 42)).toBeUndefined();
    expect(listenFds({ LISTEN_FDS: '2' }, 42)).toBeUndefined();
    const found = listenFds({ LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'web:fcgi' }, 42);
    expect(resolveNamedFd('fcgi', found)).toBe(4);
    expect(() => resolveNamedFd('nope', found)).toThrow(/no socket named "nope" among those systemd passed: "web" \(fd 3\), "fcgi" \(fd 4\)/);
    expect(stripListenEnv({ LISTEN_PID: '1', LISTEN_FDS: '1', LISTEN_FDNAMES: 'a', PATH: '/bin' })).toEqual({ PATH: '/bin' });
  });

  test('OP-16: fd:N, fd:NAME and systemd:NAME addresses', () => {
    expect(parseAddress('fd:3')).toEqual({ kind: 'fd', fd: 3 });
    expect(parseAddress('fd:web')).toEqual({ kind: 'systemd', name: 'web' });
    expect(parseAddress('systemd:gatewire-fcgi')).toEqual({ kind: 'systemd', name: 'gatewire-fcgi' });
    expect(() => parseAddress('systemd:')).toThrow(/socket name/);
  });
});

describeWithPeers('OP-16, OP-17, OP-19, OP-28: gatewire under systemd-socket-activate', ['python3'], () => {
  const activate = '/usr/bin/systemd-socket-activate';

  test('OP-19: sdNotify sends one datagram to a path and to an abstract name', async () => {
    const dir = tempDir();
    const sock = path.join(dir, 'notify.sock');
    const r = await receiver(sock);
    expect(sdNotify('READY=1\nSTATUS=hello', { NOTIFY_SOCKET: sock })).toBe(true);
    await r.until('READY', (m) => m.length >= 1);
    expect(r.messages[0]).toEqual({ pid: process.pid, msg: 'READY=1\nSTATUS=hello' });
    const abstract = `@gatewire-test-${process.pid}-${Date.now()}`;
    const a = await receiver(abstract);
    expect(sdNotify('STOPPING=1', { NOTIFY_SOCKET: abstract })).toBe(true);
    await a.until('STOPPING', (m) => m.length >= 1);
    expect(a.messages[0]?.msg).toBe('STOPPING=1');
    expect(sdNotify('READY=1', {})).toBe(false);
  });

  async function activated(extra: string[], names = 'web:fcgi'): Promise<{ proc: Proc; http: number; fcgi: number; notify: Receiver; dir: string }> {
    const dir = tempDir();
    const notifySock = path.join(dir, 'notify.sock');
    const notify = await receiver(notifySock);
    const [http, fcgi] = [await freePort(), await freePort()];
    const app = path.join(dir, 'app.mjs');
    fs.writeFileSync(app, "export default function app(environ, startResponse) {\n  startResponse('200 OK', [['Content-Type', 'text/plain']]);\n  return [String(process.pid)];\n}\n");
    const proc = spawnCommand(activate, [
      '-l', `127.0.0.1:${http}`, '-l', `127.0.0.1:${fcgi}`, ...names.split(':').map((n) => `--fdname=${n}`), '-E', `NOTIFY_SOCKET=${notifySock}`,
      process.execPath, CLI, 'serve', app, '--http', 'systemd:web', '--fastcgi', 'fd:fcgi', ...extra,
    ]);
    // systemd-socket-activate execs the command at the first connection, as a socket unit does.
    await proc.waitFor(/Listening on/);
    const first = request({ port: http, timeoutMs: 15_000 });
    await proc.waitFor(/primary \d+: \d+ workers? ready/);
    expect((await first).status).toBe(200);
    return { proc, http, fcgi, notify, dir };
  }

  test('OP-16, OP-19: two named sockets, each served with its protocol; READY=1 from the primary, RELOADING=1 + MONOTONIC_USEC then READY=1 on HUP, STOPPING=1 on TERM', async () => {
    const { proc, http, fcgi, notify } = await activated([]);
    const reply = await request({ port: http });
    expect(reply.status).toBe(200);
    const f = await fcgiRequest({ port: fcgi }, { params: [['REQUEST_METHOD', 'GET'], ['SCRIPT_NAME', ''], ['PATH_INFO', '/'], ['SERVER_PROTOCOL', 'HTTP/1.1'], ['SERVER_NAME', 'x'], ['SERVER_PORT', '80']] });
    expect(f.stdout.toString('latin1')).toMatch(/^Status: 200|Content-Type: text\/plain/);
    await notify.until('READY=1', (m) => m.some((x) => x.msg.startsWith('READY=1')));
    expect(notify.messages[0]?.pid).toBe(proc.pid);
    proc.signal('SIGHUP');
    await notify.until('RELOADING then READY', (m) => m.length >= 3);
    expect(notify.messages[1]?.msg).toMatch(/^RELOADING=1\nMONOTONIC_USEC=\d+$/);
    expect(notify.messages[2]?.msg).toMatch(/^READY=1/);
    const usec = BigInt(/MONOTONIC_USEC=(\d+)/.exec(notify.messages[1]?.msg ?? '')?.[1] ?? '0');
    expect(usec).toBeGreaterThan(0n);
    proc.signal('SIGTERM');
    await notify.until('STOPPING=1', (m) => m.some((x) => x.msg.startsWith('STOPPING=1')));
    expect((await proc.waitExit()).code).toBe(0);
    for (const m of notify.messages) expect(m.pid).toBe(proc.pid);
  });

  test('OP-28: as systemd drives it: READY=1 after a HUP comes only once the new workers serve; a TERM to the main pid alone (KillMode=mixed) lets an in-flight CGI script finish', async () => {
    const dir = tempDir();
    const cgi = path.join(dir, 'cgi');
    fs.mkdirSync(cgi);
    fs.writeFileSync(path.join(cgi, 'nap.sh'), '#!/bin/sh\nsleep 1.5\nprintf "Content-Type: text/plain\\n\\nrested\\n"\n', { mode: 0o755 });
    const { proc, http, notify } = await activated(['--cgi-bin', cgi]);
    await notify.until('READY=1', (m) => m.some((x) => x.msg.startsWith('READY=1')));
    // A reload whose new worker takes a while to load: READY=1 waits for it (notify-reload's
    // `systemctl reload` returns then, not at the signal).
    const file = /app: (\S+)/.exec(proc.stderr)?.[1] as string;
    fs.writeFileSync(file, "await new Promise((r) => setTimeout(r, 800));\nexport default function app(environ, startResponse) {\n  startResponse('200 OK', [['Content-Type', 'text/plain']]);\n  return ['v2 ' + process.pid];\n}\n");
    proc.signal('SIGHUP');
    await notify.until('RELOADING=1', (m) => m.some((x) => x.msg.startsWith('RELOADING=1')));
    const reloadingSeen = Date.now();
    await notify.until('READY=1 after the reload', (m) => m.filter((x) => x.msg.startsWith('READY=1')).length >= 2);
    expect(Date.now() - reloadingSeen).toBeGreaterThanOrEqual(700);
    expect((await request({ port: http })).body).toMatch(/^v2 \d+$/);
    // systemctl stop with KillMode=mixed: SIGTERM to the main pid only.
    const started = Date.now();
    const script = request({ port: http, path: '/cgi-bin/nap.sh', timeoutMs: 10_000 });
    await sleep(300);
    proc.signal('SIGTERM');
    await notify.until('STOPPING=1', (m) => m.some((x) => x.msg.startsWith('STOPPING=1')));
    const reply = await script;
    expect([reply.status, reply.body]).toEqual([200, 'rested\n']);
    expect((await proc.waitExit()).code).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000); // well within TimeoutStopSec (examples/systemd: 40 s)
  });

  test('OP-16: socket activation meant for another pid is ignored: a systemd:NAME listener is then a one-line error, exit 2', async () => {
    const dir = tempDir();
    const app = path.join(dir, 'app.mjs');
    fs.writeFileSync(app, 'export default () => [];\n');
    const proc = spawnCommand(process.execPath, [CLI, 'serve', app, '--http', 'systemd:web'], { env: { LISTEN_PID: '1', LISTEN_FDS: '1', LISTEN_FDNAMES: 'web' } });
    const exit = await proc.waitExit();
    expect(exit.code).toBe(2);
    expect(proc.stderr.trim()).toMatch(/^gatewire: no socket named "web": systemd passed this process none/);
  });

  test('OP-17: --workers 2 and three HUPs: still served; workers and CGI scripts see no LISTEN_* or NOTIFY_SOCKET', async () => {
    const dir = tempDir();
    const cgi = path.join(dir, 'cgi');
    fs.mkdirSync(cgi);
    fs.writeFileSync(path.join(cgi, 'env.sh'), '#!/bin/sh\necho "Content-Type: text/plain"\necho\nenv | grep -E "^(LISTEN_|NOTIFY_SOCKET)" || echo none\nls /proc/self/fd | tr "\\n" " "\n', { mode: 0o755 });
    const { proc, http } = await activated(['--workers', '2', '--cgi-bin', cgi]);
    for (let i = 1; i <= 3; i++) {
      proc.signal('SIGHUP');
      await proc.until(`reload ${i}`, () => ((proc.stderr.match(/reload done/g) ?? []).length >= i ? true : undefined));
      expect((await request({ port: http })).status).toBe(200);
    }
    const script = await request({ port: http, path: '/cgi-bin/env.sh' });
    expect(script.status).toBe(200);
    expect(script.body.split('\n')[0]).toBe('none');
    // 0-2, plus the descriptor ls itself opens: no listener, no IPC channel.
    expect(script.body.split('\n')[1]?.trim().split(' ').map(Number).filter((fd) => fd > 3)).toEqual([]);
    for (const pid of new Set([...proc.stderr.matchAll(/worker (\d+) ready/g)].map((m) => Number(m[1])))) {
      let environ: string;
      try {
        environ = fs.readFileSync(`/proc/${pid}/environ`, 'latin1');
      } catch {
        continue; // replaced by a reload
      }
      expect(environ).not.toMatch(/(^|\0)(LISTEN_PID|LISTEN_FDS|NOTIFY_SOCKET)=/);
    }
  });
});
