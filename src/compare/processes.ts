/**
 * The processes `gatewire compare` starts and reads: the child gatewire it measures (child.ts),
 * nginx with the relays ("taps") that keep the bytes nginx sends, and the CPU time of each from
 * /proc. Everything listens on 127.0.0.1 only and stops with the session.
 */
import { Buffer } from 'node:buffer';
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { AppInterface } from '../app.js';
import { packageRoot } from '../package-root.js';
import type { ChildReply, ChildRequest } from './child.js';

/** A built file of the package (`src/cli.js` → dist/src/cli.js): processes are started from dist/ even under ts-jest. */
export function distFile(relative: string): string {
  return join(packageRoot(), 'dist', relative);
}

// ---- CPU time, from /proc ----------------------------------------------------------------

/** ns on CPU of every thread of `pid` (schedstat's first field), as µs; 0 when unreadable. */
export function threadsCpuUs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  let ns = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ')[0]);
      } catch {
        // the thread ended between the listing and the read
      }
    }
  } catch {
    return 0;
  }
  return ns / 1000;
}

/** User + system time of this process's reaped children (the CGI runs), µs; clock ticks of 10 ms. */
export function reapedChildrenCpuUs(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After the command: state is field 3, so cutime (16) and cstime (17) are at 13 and 14 here.
    return (Number(fields[13]) + Number(fields[14])) * 10_000;
  } catch {
    return 0;
  }
}

// ---- the child gatewire --------------------------------------------------------------------

export class ChildServer {
  private waiting: Array<(reply: ChildReply) => void> = [];
  private constructor(
    readonly process: ChildProcess,
    readonly ports: Record<'http' | 'fastcgi' | 'scgi' | 'uwsgi', number>,
  ) {
    process.on('message', (reply: ChildReply) => this.waiting.shift()?.(reply));
  }

  static start(app: string, forced: AppInterface | undefined): Promise<ChildServer> {
    const child = fork(distFile('src/compare/child.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
    return new Promise((resolvePromise, reject) => {
      const failed = (why: string): void => {
        child.kill('SIGKILL');
        reject(new Error(`compare: the gatewire child did not start: ${why}`));
      };
      const timer = setTimeout(() => failed('no answer in 15 s'), 15_000);
      child.once('error', (err) => failed(err.message));
      child.once('exit', (code) => failed(`it exited with ${code}`));
      child.once('message', (reply: ChildReply) => {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        if (reply.type === 'ready') resolvePromise(new ChildServer(child, reply.ports));
        else failed(reply.type === 'failed' ? reply.message : `unexpected message ${reply.type}`);
      });
      child.send({ type: 'start', app, ...(forced === undefined ? {} : { interface: forced }) } satisfies ChildRequest);
    });
  }

  arm(): void {
    this.process.send({ type: 'arm' } satisfies ChildRequest);
  }

  /** The environs recorded since arm(). */
  take(): Promise<Array<Record<string, string>>> {
    return new Promise((resolvePromise) => {
      this.waiting.push((reply) => resolvePromise(reply.type === 'environs' ? reply.list : []));
      this.process.send({ type: 'take' } satisfies ChildRequest);
    });
  }

  cpu(): number {
    return threadsCpuUs(this.process.pid);
  }

  stop(): void {
    if (this.process.connected) this.process.disconnect();
    setTimeout(() => this.process.kill('SIGKILL'), 2000).unref();
  }
}

// ---- taps: the relays between nginx and the child, which keep the bytes --------------------

export class Tap {
  /** The bytes of the connection being captured; undefined while not capturing. */
  capture: { request: Buffer[]; response: Buffer[] } | undefined;
  port = 0;
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;

  private constructor(private readonly targetPort: number) {
    this.server = createServer((downstream) => this.relay(downstream));
  }

  static start(targetPort: number): Promise<Tap> {
    const tap = new Tap(targetPort);
    return new Promise((resolvePromise, reject) => {
      tap.server.once('error', reject);
      tap.server.listen(0, '127.0.0.1', () => {
        const address = tap.server.address();
        tap.port = typeof address === 'object' && address !== null ? address.port : 0;
        resolvePromise(tap);
      });
    });
  }

  /** One connection from nginx: passed on to the child as is, its bytes kept while capturing. */
  private relay(downstream: Socket): void {
    const upstream = connect(this.targetPort, '127.0.0.1');
    const seen = this.capture;
    for (const s of [downstream, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {
        downstream.destroy();
        upstream.destroy();
      });
    }
    downstream.on('data', (chunk: Buffer) => {
      seen?.request.push(chunk);
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      seen?.response.push(chunk);
      downstream.write(chunk);
    });
    downstream.on('end', () => upstream.end());
    upstream.on('end', () => downstream.end());
  }

  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }
}

// ---- nginx -------------------------------------------------------------------------------

/** nginx's binary: the given path, else `nginx` on PATH or /usr/sbin/nginx; undefined when there is none. */
export function findNginx(given: boolean | string | undefined): string | undefined {
  if (typeof given === 'string') return existsSync(given) ? given : undefined;
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/usr/local/nginx/sbin'];
  for (const dir of dirs) {
    if (dir !== '' && existsSync(join(dir, 'nginx'))) return join(dir, 'nginx');
  }
  return undefined;
}

/** The folder of nginx's own fastcgi_params, scgi_params and uwsgi_params (from `nginx -V`'s --conf-path). */
function nginxConfDir(binary: string): string {
  const out = spawnSync(binary, ['-V'], { encoding: 'latin1' });
  const conf = /--conf-path=(\S+)/.exec(`${out.stderr}${out.stdout}`)?.[1];
  return conf === undefined ? '/etc/nginx' : dirname(conf);
}

export function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePromise(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

export class Nginx {
  private constructor(
    readonly process: ChildProcess,
    readonly ports: Record<'http' | 'fastcgi' | 'scgi' | 'uwsgi', number>,
    readonly version: string,
  ) {}

  static async start(binary: string, dir: string, taps: Record<'http' | 'fastcgi' | 'scgi' | 'uwsgi', Tap>): Promise<Nginx> {
    const params = nginxConfDir(binary);
    const ports = { http: await freePort(), fastcgi: await freePort(), scgi: await freePort(), uwsgi: await freePort() };
    const pass: Record<keyof typeof ports, string> = {
      http: `proxy_pass http://127.0.0.1:${taps.http.port};`,
      fastcgi: `include ${params}/fastcgi_params; fastcgi_pass 127.0.0.1:${taps.fastcgi.port};`,
      scgi: `include ${params}/scgi_params; scgi_pass 127.0.0.1:${taps.scgi.port};`,
      uwsgi: `include ${params}/uwsgi_params; uwsgi_pass 127.0.0.1:${taps.uwsgi.port};`,
    };
    const servers = (Object.keys(ports) as Array<keyof typeof ports>).map((p) => `  server { listen 127.0.0.1:${ports[p]}; server_name localhost; location / { ${pass[p]} } }`);
    const temp = ['client_body', 'proxy', 'fastcgi', 'scgi', 'uwsgi'].map((t) => `  ${t}_temp_path ${dir}/${t};`);
    const conf = [
      // As root, nginx would drop its worker to nobody, who cannot enter the temporary folder.
      ...(process.getuid?.() === 0 ? ['user root root;'] : []),
      'daemon off;',
      'worker_processes 1;',
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/error.log warn;`,
      'events { worker_connections 512; }',
      'http {',
      '  access_log off;',
      ...temp,
      ...servers,
      '}',
      '',
    ].join('\n');
    writeFileSync(join(dir, 'nginx.conf'), conf);
    const child = spawn(binary, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('latin1')));
    const version = /nginx\/([0-9.]+)/.exec(spawnSync(binary, ['-v'], { encoding: 'latin1' }).stderr)?.[1] ?? '';
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${stderr.trim() || readLog(join(dir, 'error.log'))}`);
      if (await canConnect(ports.uwsgi)) break;
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`nginx did not listen within 10 s: ${readLog(join(dir, 'error.log'))}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return new Nginx(child, ports, version);
  }

  /** The worker's pid (the master's only child). */
  workerPids(): number[] {
    const master = this.process.pid;
    const pids: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^[0-9]+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === master) pids.push(Number(entry));
      } catch {
        // gone meanwhile
      }
    }
    return pids;
  }

  stop(): void {
    this.process.kill('SIGQUIT');
    setTimeout(() => this.process.kill('SIGKILL'), 2000).unref();
  }
}

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch {
    return '(no error log)';
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolvePromise(true);
    });
    s.once('error', () => resolvePromise(false));
  });
}
