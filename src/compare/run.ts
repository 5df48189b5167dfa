/**
 * `gatewire compare`'s engine: one request over HTTP, FastCGI, SCGI, uwsgi and CGI, captured
 * byte for byte, then timed. The pieces, started once by {@link CompareSession.start} and
 * reused by every run (the `--serve` page runs many):
 *
 *   compare process ── gatewire's clients (src/upstream/request.ts) ──► child gatewire (child.ts)
 *        │                                                              HTTP FastCGI SCGI uwsgi
 *        ├── HTTP ──► nginx (--nginx) ── proxy/fastcgi/scgi/uwsgi_pass ──► tap ──► same listeners
 *        └── spawn per request: `gatewire cgi APP` (env block + stdin ► stdout)
 *
 * - The "gatewire" columns: the compare process is the web server, sending with the clients of
 *   `gatewire request` with the app mounted at the root (SCRIPT_NAME "", PATH_INFO the path, as
 *   gatewire's upstream client sends them). Their bytes are seen by the client's wire listener.
 * - The "nginx" columns: a real nginx (Debian's), started on temporary ports in a temporary
 *   folder with its own fastcgi_params, scgi_params and uwsgi_params, forwards to a tap: a relay
 *   that keeps the bytes each way and passes them on to the child's listeners.
 * - CGI: the compare process is the CGI host. The environment is built by the CGI host's own
 *   builder (src/cgi-host/env.ts) from the environ gatewire's HTTP front made for the same
 *   request, the program is `gatewire cgi APP`, its "request bytes" the environment block
 *   (NAME=VALUE\0 each) followed by stdin.
 *
 * What the app saw comes from a recorder around it (child.ts; for CGI a generated module writing
 * a file), armed only for the capture. Costs: without `--load`, a short sequential sample per
 * column; with it, a closed loop of `concurrency` clients for the duration, each request a new
 * connection (every client here is one-connection-per-request, so the columns compare alike).
 * CPU time is the serving side's, read from /proc: the child's threads (and nginx's worker)
 * from schedstat in ns, the CGI processes from this process's reaped-children times.
 */
import { Buffer } from 'node:buffer';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AppInterface, Environ } from '../app.js';
import { baseEnv, buildChildEnv } from '../cgi-host/env.js';
import { signalGroup } from '../cgi-host/process.js';
import { spawnScript } from '../cgi-host/spawn.js';
import { SERVER_SOFTWARE } from '../environ.js';
import { packageRoot } from '../package-root.js';
import { buildHttpRequest, buildRequestParams, sendHttpRequest, sendRequest, type RequestInput, type RequestResult, type RequestTarget } from '../upstream/request.js';
import { decodeParams } from '../../protocols/fastcgi/params.js';
import { decodeScgiHead } from '../../protocols/scgi/decoder.js';
import { decodeUwsgiHead } from '../../protocols/uwsgi/decoder.js';
import { annotateWire } from './annotate.js';
import { environRows } from './explain.js';
import { ChildServer, distFile, findNginx, Nginx, reapedChildrenCpuUs, Tap, threadsCpuUs } from './processes.js';
import { loadCost, replayOnce, sequentialCost, TIMEOUT, type Cost, type Send } from './timing.js';
import type { CompareReport, CompareRequest, ProtocolName, ProtocolResult, ResponseFraming, Via } from './types.js';

/** The app served when none is given: examples/echo.mjs, which answers with its environ and body. */
export const ECHO_APP = 'examples/echo.mjs';

/** The request sent when none is given: a small POST with a query, a cookie and a form body. */
export const DEFAULT_REQUEST: CompareRequest = {
  method: 'POST',
  path: '/greet/world',
  query: 'lang=en&n=2',
  headers: [
    ['Cookie', 'session=8f2c; theme=dark'],
    ['Content-Type', 'application/x-www-form-urlencoded'],
  ],
  body: 'name=gatewire&note=hello+world',
};

export interface CompareSessionOptions {
  /** App module (PATH[:export]); default: the bundled echo app. */
  app?: string;
  interface?: AppInterface;
  /** Start a real nginx too: true finds it on PATH or in /usr/sbin; a string is its path. */
  nginx?: boolean | string;
  /** Leave a protocol out (e.g. CGI on a machine where spawning node is slow). */
  protocols?: readonly ProtocolName[];
}

export interface RunOptions {
  /** Load phase per column in ms; undefined: only the sequential sample. */
  loadMs?: number;
  /** Clients at once in the load phase. @default 8 */
  concurrency?: number;
  /** Sequential requests timed per column without --load (CGI: a fifth of them, at least 3). @default 30 */
  samples?: number;
  /** Progress of the costs phase, 0..1, with the column being measured. */
  onProgress?: (fraction: number, column: string) => void;
}

/** One column's transport: sends the request once, with the wire seen or not. */
interface Column {
  name: ProtocolName;
  via: Via;
  id: string;
  send(request: CompareRequest, capture: boolean): Promise<Exchange>;
  /** CPU µs of the serving side so far. */
  cpu(): number;
}

interface Exchange {
  status: number;
  request: Buffer;
  response: Buffer;
  /**
   * What the client wrote and where, for the timing: the same bytes replayed on a raw socket,
   * read to the end of the connection, so the client's cost is alike for every protocol (and
   * small: node:http's client costs several times a raw socket). Absent for CGI.
   */
  replay?: { port: number; bytes: Buffer };
  /** CGI: the length of the environment block at the start of `request`. */
  envBytes?: number;
}

const PROTOCOLS: readonly ProtocolName[] = ['http', 'fastcgi', 'scgi', 'uwsgi', 'cgi'];

// ---- the requests ------------------------------------------------------------------------

/** A target on 127.0.0.1:port that names `localhost` (Host, SERVER_NAME) without a port, as a public site would. */
function targetOf(protocol: RequestTarget['protocol'], port: number, request: CompareRequest): RequestTarget {
  return { protocol, address: { kind: 'tcp', host: '127.0.0.1', port }, host: 'localhost', port: undefined, path: request.path, query: request.query === '' ? undefined : request.query };
}

function inputOf(request: CompareRequest): RequestInput {
  return { method: request.method, headers: request.headers, ...(request.body === '' ? {} : { body: Buffer.from(request.body, 'latin1') }) };
}

/** The app is mounted at the root over every protocol: SCRIPT_NAME "", PATH_INFO the path (FastCGI too, without php-fpm's SCRIPT_FILENAME). */
function appParams(target: RequestTarget, request: CompareRequest): Array<[string, string]> {
  const built = buildRequestParams(target, inputOf(request));
  if (target.protocol !== 'fastcgi') return built;
  const out = built.filter(([name]) => name !== 'SCRIPT_FILENAME');
  const at = out.findIndex(([name]) => name === 'SCRIPT_NAME');
  out.splice(at, 1, ['SCRIPT_NAME', ''], ['PATH_INFO', target.path]);
  return out;
}


function wireSink(capture: boolean): { onWire?: (d: '>' | '<', chunk: Buffer) => void; request: Buffer[]; response: Buffer[] } {
  const request: Buffer[] = [];
  const response: Buffer[] = [];
  if (!capture) return { request, response };
  return { request, response, onWire: (d, chunk) => (d === '>' ? request : response).push(Buffer.from(chunk)) };
}

function gatewireColumn(name: Exclude<ProtocolName, 'cgi'>, child: ChildServer): Column {
  const port = child.ports[name];
  return {
    name,
    via: 'gatewire',
    id: name,
    cpu: () => child.cpu(),
    async send(request, capture) {
      const target = targetOf(name, port, request);
      const sink = wireSink(capture);
      const options = { timeout: TIMEOUT, ...(sink.onWire === undefined ? {} : { onWire: sink.onWire }) };
      const body = request.body === '' ? undefined : Buffer.from(request.body, 'latin1');
      const result: RequestResult =
        name === 'http' ? await sendHttpRequest(target, buildHttpRequest(target, inputOf(request)), body, options) : await sendRequest(target, appParams(target, request), body, options);
      const written = Buffer.concat(sink.request);
      return { status: result.status, request: written, response: Buffer.concat(sink.response), replay: { port, bytes: written } };
    },
  };
}

function nginxColumn(name: Exclude<ProtocolName, 'cgi'>, nginx: Nginx, tap: Tap, child: ChildServer): Column {
  return {
    name,
    via: 'nginx',
    id: `${name}-nginx`,
    cpu: () => child.cpu() + nginx.workerPids().reduce((sum, pid) => sum + threadsCpuUs(pid), 0),
    async send(request, capture) {
      const target = targetOf('http', nginx.ports[name], request);
      tap.capture = capture ? { request: [], response: [] } : undefined;
      const seen = tap.capture;
      try {
        const body = request.body === '' ? undefined : Buffer.from(request.body, 'latin1');
        const written: Buffer[] = [];
        const onWire = (d: '>' | '<', chunk: Buffer): void => void (d === '>' && written.push(Buffer.from(chunk)));
        const result = await sendHttpRequest(target, buildHttpRequest(target, inputOf(request)), body, { timeout: TIMEOUT, onWire });
        const replay = { port: nginx.ports[name], bytes: Buffer.concat(written) };
        return { status: result.status, request: Buffer.concat(seen?.request ?? []), response: Buffer.concat(seen?.response ?? []), replay };
      } finally {
        tap.capture = undefined;
      }
    },
  };
}

/** The CGI column: `gatewire cgi APP` spawned per request, with the environment the CGI host builds. */
function cgiColumn(appPath: string, dir: string, httpEnviron: () => Record<string, string> | undefined): Column {
  const cli = distFile('src/cli.js');
  const environFile = join(dir, 'cgi-environ.json');
  const recorder = join(dir, 'cgi-recorded-app.mjs');
  writeFileSync(
    recorder,
    [
      `import { cgiRecorder } from ${JSON.stringify(pathToFileURL(distFile('src/compare/child.js')).href)};`,
      "export const gatewireInterface = 'environ';",
      `export default await cgiRecorder(${JSON.stringify(appPath)}, ${JSON.stringify(environFile)});`,
      '',
    ].join('\n'),
  );
  return {
    name: 'cgi',
    via: 'gatewire',
    id: 'cgi',
    cpu: reapedChildrenCpuUs,
    async send(request, capture) {
      const environ = httpEnviron();
      if (environ === undefined) throw new Error('no HTTP environ to build the CGI environment from (the HTTP column failed)');
      const body = Buffer.from(request.body, 'latin1');
      const built = buildChildEnv(
        environ as unknown as Environ, // its CGI variables: what buildChildEnv reads of an environ
        { scriptName: '', pathInfo: environ.PATH_INFO ?? request.path, scriptFilename: appPath, contentLength: body.length > 0 ? String(body.length) : undefined, interpreterEnv: undefined },
        { base: baseEnv(process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', ['LANG', 'LC_ALL', 'TZ'], {}, process.env), passAuthorization: false, rejectFunctionDefinitions: false, documentRoot: dirname(appPath) },
      );
      if ('status' in built) throw new Error(`the CGI host would answer 400: ${built.reason}`);
      // CGI byte strings (latin1), as the spawner hands them over.
      const block = Buffer.from(Object.entries(built.env).map(([k, v]) => `${k}=${v}\0`).join(''), 'latin1');
      const stdout = await runProgram(process.execPath, [cli, 'cgi', capture ? recorder : appPath], built.env, body, dirname(appPath));
      return { status: cgiStatus(stdout), request: Buffer.concat([block, body]), response: stdout, envBytes: block.length };
    },
  };
}

/**
 * Runs the CGI program as the CGI host runs a script (spawnScript: the native spawner or its
 * child_process fallback, both passing the environment's bytes exactly, C-6) and resolves with
 * its stdout once it has ended and the program has exited.
 */
function runProgram(command: string, args: string[], env: Record<string, string>, stdin: Buffer, cwd: string): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    spawnScript({ command, args, cwd, env, stdin: 'pipe' }, (err, child) => {
      if (err !== undefined || child === undefined) return reject(err ?? new Error('the CGI program did not start'));
      const out: Buffer[] = [];
      let ended = false;
      let exit: [number | null, string | null] | undefined;
      const timer = setTimeout(() => child.pid !== undefined && signalGroup(child.pid, 'SIGKILL'), TIMEOUT);
      const finish = (): void => {
        if (!ended || exit === undefined) return;
        clearTimeout(timer);
        const [code, signal] = exit;
        if (signal !== null) reject(new Error(`the CGI program was killed by ${signal}`));
        else if (out.length === 0) reject(new Error(`the CGI program wrote nothing (exit ${code})`));
        else resolvePromise(Buffer.concat(out));
      };
      child.once('error', reject);
      child.once('exit', (code: number | null, signal: string | null) => {
        exit = [code, signal];
        finish();
      });
      child.stderr?.resume();
      child.stdout?.on('data', (chunk) => out.push(chunk));
      child.stdout?.on('end', () => {
        ended = true;
        finish();
      });
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(stdin);
    });
  });
}

/** The status of a CGI answer: its Status field, 302 for a Location alone, else 200. */
function cgiStatus(stdout: Buffer): number {
  const head = headLines(stdout);
  const status = head.find((l) => /^status:/i.test(l));
  if (status !== undefined) return Number(/^status:\s*([0-9]{3})/i.exec(status)?.[1] ?? 0);
  return head.some((l) => /^location:/i.test(l)) ? 302 : 200;
}

// ---- what the answer looked like ------------------------------------------------------------

function headLines(bytes: Buffer): string[] {
  const text = bytes.toString('latin1');
  const end = /\r?\n\r?\n/.exec(text);
  return (end === null ? text : text.slice(0, end.index)).split(/\r?\n/);
}

/** The STDOUT content of FastCGI response records, in order. */
function fastcgiStdout(bytes: Buffer): { stdout: Buffer; appStatus: number | undefined } {
  const parts: Buffer[] = [];
  let appStatus: number | undefined;
  for (let at = 0; at + 8 <= bytes.length; ) {
    const type = bytes[at + 1] as number;
    const len = bytes.readUInt16BE(at + 4);
    const content = bytes.subarray(at + 8, at + 8 + len);
    if (type === 6) parts.push(content);
    if (type === 3 && content.length >= 4) appStatus = content.readUInt32BE(0);
    at += 8 + len + (bytes[at + 6] as number);
  }
  return { stdout: Buffer.concat(parts), appStatus };
}

export function framingOf(name: ProtocolName, response: Buffer): ResponseFraming {
  const fastcgi = name === 'fastcgi' ? fastcgiStdout(response) : undefined;
  const lines = headLines(fastcgi?.stdout ?? response);
  const first = lines[0] ?? '';
  const statusField = lines.find((l) => /^status:/i.test(l));
  const status: ResponseFraming['status'] = /^HTTP\/[0-9.]+ /.test(first) ? 'status line' : statusField !== undefined ? 'Status field' : 'implied';
  const statusText = status === 'status line' ? first : (statusField ?? '');
  const field = (n: string): string | undefined => lines.find((l) => l.toLowerCase().startsWith(`${n}:`))?.slice(n.length + 1).trim();
  const contentLength = field('content-length');
  const chunked = /chunked/i.test(field('transfer-encoding') ?? '');
  const length: ResponseFraming['length'] = name === 'fastcgi' ? 'END_REQUEST' : chunked ? 'chunked' : contentLength !== undefined ? 'Content-Length' : 'close';
  const how =
    status === 'status line' ? `status line "${statusText}"` : status === 'Status field' ? `CGI field "${statusText}"` : 'no status given (200 implied)';
  const end =
    name === 'fastcgi'
      ? `the body in FCGI_STDOUT records, ended by an empty STDOUT and FCGI_END_REQUEST (appStatus ${fastcgi?.appStatus ?? '?'})${contentLength === undefined ? '' : `; Content-Length: ${contentLength} too`}`
      : chunked
        ? 'a chunked body, ended by the zero-length chunk'
        : contentLength !== undefined
          ? `Content-Length: ${contentLength}${name === 'http' ? '' : ', then the connection closes'}`
          : name === 'cgi'
            ? 'the body runs to the end of stdout (the program exits)'
            : 'the body runs until the connection closes';
  return { status, statusText, length, description: `${how}; ${end}` };
}

/**
 * The variable names a captured request carried, decoded by the codecs the fronts use; undefined
 * for HTTP (the front builds every variable) and for bytes that do not decode.
 */
export function sentVariables(name: ProtocolName, request: Buffer, envBytes?: number): string[] | undefined {
  try {
    if (name === 'fastcgi') {
      const params: Buffer[] = [];
      for (let at = 0; at + 8 <= request.length; ) {
        const len = request.readUInt16BE(at + 4);
        if (request[at + 1] === 4) params.push(request.subarray(at + 8, at + 8 + len));
        at += 8 + len + (request[at + 6] as number);
      }
      return decodeParams(Buffer.concat(params)).map(([n]) => n);
    }
    if (name === 'scgi') return decodeScgiHead(request)?.headers.map(([n]) => n);
    if (name === 'uwsgi') return decodeUwsgiHead(request)?.vars.map(([n]) => n);
    if (name === 'cgi') {
      const block = request.subarray(0, envBytes ?? request.length).toString('latin1');
      return block.split('\0').filter((e) => e !== '').map((e) => e.slice(0, e.indexOf('=')));
    }
  } catch {
    return undefined;
  }
  return undefined;
}

// ---- the session -------------------------------------------------------------------------

/** A started comparison: the child gatewire, nginx and its taps when asked for; run() as often as needed. */
export class CompareSession {
  private constructor(
    private readonly options: CompareSessionOptions,
    /** The environ the HTTP column's app saw last: the CGI column builds its environment from it. */
    private readonly shared: { httpEnviron?: Record<string, string> | undefined },
    private readonly dir: string,
    private readonly child: ChildServer,
    private readonly columns: Column[],
    private readonly stops: Array<() => void>,
    /** Why nginx's columns are missing when --nginx was given, e.g. not installed. */
    readonly nginxProblem: string | undefined,
  ) {}

  /** The app path as given (or the bundled echo app's), absolute. */
  static appPath(options: CompareSessionOptions): string {
    return options.app === undefined ? join(packageRoot(), ECHO_APP) : resolve(options.app.replace(/:[A-Za-z_$][A-Za-z0-9_$]*$/, ''));
  }

  static async start(options: CompareSessionOptions = {}): Promise<CompareSession> {
    const dir = mkdtempSync(join(tmpdir(), 'gatewire-compare-'));
    const stops: Array<() => void> = [() => rmSync(dir, { recursive: true, force: true })];
    const appSpec = options.app === undefined ? join(packageRoot(), ECHO_APP) : resolve(options.app);
    const wanted = new Set(options.protocols ?? PROTOCOLS);
    let child: ChildServer;
    try {
      child = await ChildServer.start(appSpec, options.interface);
    } catch (err) {
      for (const stop of stops) stop();
      throw err;
    }
    stops.unshift(() => child.stop());
    const shared: { httpEnviron?: Record<string, string> | undefined } = {};
    const columns: Column[] = [];
    for (const name of ['http', 'fastcgi', 'scgi', 'uwsgi'] as const) if (wanted.has(name)) columns.push(gatewireColumn(name, child));
    if (wanted.has('cgi')) columns.push(cgiColumn(CompareSession.appPath(options), dir, () => shared.httpEnviron));
    let nginxProblem: string | undefined;
    if (options.nginx !== undefined && options.nginx !== false) {
      const binary = findNginx(options.nginx);
      if (binary === undefined) nginxProblem = 'nginx is not installed (Debian: apt-get install nginx), or not at the path given';
      else {
        try {
          const taps = {
            http: await Tap.start(child.ports.http),
            fastcgi: await Tap.start(child.ports.fastcgi),
            scgi: await Tap.start(child.ports.scgi),
            uwsgi: await Tap.start(child.ports.uwsgi),
          };
          stops.unshift(() => Object.values(taps).forEach((t) => t.close()));
          const nginx = await Nginx.start(binary, dir, taps);
          stops.unshift(() => nginx.stop());
          for (const name of ['http', 'fastcgi', 'scgi', 'uwsgi'] as const) if (wanted.has(name)) columns.push(nginxColumn(name, nginx, taps[name], child));
        } catch (err) {
          nginxProblem = (err as Error).message;
        }
      }
    }
    return new CompareSession(options, shared, dir, child, columns, stops, nginxProblem);
  }

  /** Sends `request` over every column, captures it, then measures the costs. */
  async run(request: CompareRequest, runOptions: RunOptions = {}): Promise<CompareReport> {
    const captured = new Map<string, { exchange?: Exchange; environ?: Record<string, string>; error?: string }>();
    // HTTP first: the CGI column builds its environment from the environ HTTP gave the app.
    const ordered = [...this.columns].sort((a, b) => Number(a.name === 'cgi') - Number(b.name === 'cgi'));
    for (const column of ordered) {
      const environFile = join(this.dir, 'cgi-environ.json');
      rmSync(environFile, { force: true });
      this.child.arm();
      let exchange: Exchange | undefined;
      let error: string | undefined;
      try {
        exchange = await column.send(request, true);
      } catch (err) {
        error = (err as Error).message;
      }
      const list = await this.child.take();
      let environ = column.name === 'cgi' ? readJson(environFile) : list[list.length - 1];
      if (environ === undefined && error === undefined) error = 'the app was not called';
      if (column.id === 'http') this.shared.httpEnviron = environ;
      environ ??= {};
      captured.set(column.id, { ...(exchange === undefined ? {} : { exchange }), environ, ...(error === undefined ? {} : { error }) });
    }

    const costs = new Map<string, Cost>();
    const samples = runOptions.samples ?? 30;
    let done = 0;
    for (const column of this.columns) {
      if (captured.get(column.id)?.error !== undefined) continue;
      const report = (f: number): void => runOptions.onProgress?.((done + f) / this.columns.length, column.id);
      const send = sendOf(column, request, captured.get(column.id)?.exchange);
      try {
        costs.set(
          column.id,
          runOptions.loadMs === undefined
            ? await sequentialCost(() => column.cpu(), send, column.name === 'cgi' ? Math.max(3, Math.round(samples / 5)) : samples)
            : await loadCost(() => column.cpu(), send, runOptions.loadMs, column.name === 'cgi' ? Math.min(runOptions.concurrency ?? 8, 2) : (runOptions.concurrency ?? 8), report),
        );
      } catch (err) {
        const entry = captured.get(column.id);
        if (entry !== undefined) entry.error = `measuring failed: ${(err as Error).message}`;
      }
      done++;
      report(0);
    }

    const httpBytes = (via: Via): number => captured.get(via === 'nginx' ? 'http-nginx' : 'http')?.exchange?.request.length ?? 0;
    const protocols: ProtocolResult[] = this.columns.map((column) => {
      const entry = captured.get(column.id) ?? {};
      const ex = entry.exchange;
      const cost = costs.get(column.id);
      const requestBytes = ex?.request ?? Buffer.alloc(0);
      const responseBytes = ex?.response ?? Buffer.alloc(0);
      const sent = ex === undefined ? undefined : sentVariables(column.name, requestBytes, ex.envBytes);
      const result: ProtocolResult = {
        name: column.name,
        via: column.via,
        id: column.id,
        status: ex?.status ?? 0,
        requestBytes: requestBytes.length,
        responseBytes: responseBytes.length,
        overheadBytes: requestBytes.length - httpBytes(column.via),
        wire: { request: requestBytes.toString('hex'), response: responseBytes.toString('hex') },
        annotations: {
          request: annotateWire(column.name, 'request', requestBytes, ex?.envBytes === undefined ? {} : { envBytes: ex.envBytes }),
          response: annotateWire(column.name, 'response', responseBytes),
        },
        framing: framingOf(column.name, responseBytes),
        environ: entry.environ ?? {},
        ...(sent === undefined ? {} : { sent }),
        latency: cost?.latency ?? { p50: 0, p99: 0, samples: 0 },
        rps: cost?.rps ?? 0,
        cpuUsPerRequest: cost?.cpuUsPerRequest ?? 0,
        timeline: cost?.timeline ?? [],
        ...(entry.error === undefined ? {} : { error: entry.error }),
      };
      return result;
    });
    return {
      version: 1,
      generatedAt: new Date().toISOString(),
      gatewire: SERVER_SOFTWARE.split('/')[1] as string,
      app: this.options.app ?? 'echo (bundled)',
      request,
      load: runOptions.loadMs === undefined ? null : { durationMs: runOptions.loadMs, concurrency: runOptions.concurrency ?? 8 },
      protocols,
      environ: environRows(protocols),
    };
  }

  async close(): Promise<void> {
    for (const stop of this.stops) {
      try {
        stop();
      } catch {
        // best effort: the rest must still stop
      }
    }
  }
}

/** A column's timed request: the captured bytes replayed, or (CGI) the whole run again. */
function sendOf(column: Column, request: CompareRequest, exchange: Exchange | undefined): Send {
  const replay = exchange?.replay;
  return replay === undefined ? () => column.send(request, false) : () => replayOnce(replay.port, replay.bytes);
}

function readJson(file: string): Record<string, string> | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
  } catch {
    return undefined;
  }
}
