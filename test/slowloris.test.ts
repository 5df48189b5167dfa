/**
 * One slowloris attack per front, against the real CLI: `gatewire serve examples/hello.mjs
 * --headers-timeout 2s` with --http, --fastcgi, --scgi, --uwsgi, then --auto (which gets all
 * four protocols' bytes), one front after another.
 *
 * For ATTACK_MS, SLOTS connections are kept open at once, each trickling the start of a
 * request one byte every TRICKLE_GAP_MS (a head that would take minutes to complete); when the
 * server closes one, its slot opens the next. Meanwhile a normal client sends one whole request
 * every NORMAL_EVERY_MS on a fresh connection. Asserted:
 * - every normal request got its 200 and "Hello, World!" (the attack does not starve anyone);
 * - every trickler was closed by the server, no sooner than the headers timeout (less timer
 *   slack: an earlier close would mean the bytes were refused, not timed out) and no later than
 *   DEADLINE_MS after its first byte (the headers timeout counts from the first byte however
 *   the bytes trickle in: F-46 for FastCGI, S-11 for SCGI/uwsgi, Node's headersTimeout for HTTP);
 * - no trickler is still open DEADLINE_MS after the attack's last connection started.
 */
import * as net from 'node:net';
import { CLI, ROOT, childEnv, ensureBuilt, example } from './fixtures/apps/cli-harness.js';
import { startProcess } from './helpers/peers.js';
import type { PeerProcess } from './helpers/peers.js';
import { RecordType, Role, encodeBeginRequest, encodeParamsStream, encodeRecord } from '../protocols/fastcgi/index.js';
import { encodeScgiRequest } from '../protocols/scgi/index.js';
import { encodeUwsgiRequest } from '../protocols/uwsgi/index.js';

const HEADERS_TIMEOUT_MS = 2000;
const SLOTS = 300;
const ATTACK_MS = 20_000;
const TRICKLE_GAP_MS = 500;
const NORMAL_EVERY_MS = 200;
/** Headers timeout plus generous slack (timer periods, a loaded machine). */
const DEADLINE_MS = 6000;
/** A close this much before the headers timeout is not the timeout (timers may fire a little early). */
const EARLY_SLACK_MS = 100;
const NORMAL_TIMEOUT_MS = 3000;
/** Slots start spread over this long, not in one burst of SYNs. */
const RAMP_MS = 500;

type Protocol = 'http' | 'fastcgi' | 'scgi' | 'uwsgi';
const PROTOCOLS: readonly Protocol[] = ['http', 'fastcgi', 'scgi', 'uwsgi'];

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------
// Bytes
// ---------------------------------------------------------------------------------------

/** One normal request's variables, as a web server would send them. */
const VARS: Array<[string, string]> = [
  ['REQUEST_METHOD', 'GET'],
  ['REQUEST_URI', '/'],
  ['QUERY_STRING', ''],
  ['SERVER_PROTOCOL', 'HTTP/1.1'],
  ['SERVER_NAME', 'localhost'],
  ['SERVER_PORT', '80'],
  ['REMOTE_ADDR', '127.0.0.1'],
  ['HTTP_HOST', 'localhost'],
];
/** Long enough that no trickler could finish its head in the test's time (1 byte / 500 ms). */
const SLOW_VALUE = 'a'.repeat(400);

/** The start of a request head, trickled a byte at a time: never complete within the test. */
const TRICKLE: Record<Protocol, Buffer> = {
  http: Buffer.from(`GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ${SLOW_VALUE}`, 'latin1'),
  // BEGIN_REQUEST, then the PARAMS stream without its end (the last, empty, record).
  fastcgi: ((): Buffer => {
    const params = encodeParamsStream(1, [...VARS, ['HTTP_X_SLOW', SLOW_VALUE]]);
    return Buffer.concat([encodeBeginRequest(1, Role.Responder, 0), params.subarray(0, params.length - 8)]);
  })(),
  scgi: encodeScgiRequest([...VARS, ['HTTP_X_SLOW', SLOW_VALUE]], 0).subarray(0, 300),
  uwsgi: encodeUwsgiRequest([...VARS, ['HTTP_X_SLOW', SLOW_VALUE]]).subarray(0, 300),
};

/** One whole request. */
const NORMAL: Record<Protocol, Buffer> = {
  http: Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', 'latin1'),
  fastcgi: Buffer.concat([encodeBeginRequest(1, Role.Responder, 0), encodeParamsStream(1, [...VARS, ['SCRIPT_NAME', '/']]), encodeRecord(RecordType.Stdin, 1)]),
  scgi: encodeScgiRequest([...VARS, ['SCGI', '1']], 0),
  uwsgi: encodeUwsgiRequest(VARS),
};

/** STDOUT of request 1 from a FastCGI byte stream, and whether END_REQUEST came. */
function fastcgiStdout(raw: Buffer): { stdout: Buffer; ended: boolean } {
  const parts: Buffer[] = [];
  let ended = false;
  for (let at = 0; at + 8 <= raw.length; ) {
    const length = raw.readUInt16BE(at + 4);
    const end = at + 8 + length + (raw[at + 6] as number);
    if (end > raw.length) break;
    if (raw[at + 1] === RecordType.Stdout) parts.push(raw.subarray(at + 8, at + 8 + length));
    if (raw[at + 1] === RecordType.EndRequest) ended = true;
    at = end;
  }
  return { stdout: Buffer.concat(parts), ended };
}

/** Empty when the answer is hello.mjs's 200, else what is wrong with it. */
function checkNormal(protocol: Protocol, raw: Buffer): string | undefined {
  let text: string;
  if (protocol === 'fastcgi') {
    const { stdout, ended } = fastcgiStdout(raw);
    if (!ended) return `no END_REQUEST (${raw.length} bytes)`;
    text = stdout.toString('latin1');
    // A CGI head: Status: 200 (or no Status at all, which is 200).
    if (/^Status: (?!200)/im.test(text)) return `not 200: ${JSON.stringify(text.slice(0, 80))}`;
  } else {
    text = raw.toString('latin1');
    const first = text.slice(0, text.indexOf('\r\n'));
    const ok = protocol === 'scgi' ? /^Status: 200\b/.test(first) || /^HTTP\/1\.[01] 200 /.test(first) : /^HTTP\/1\.[01] 200 /.test(first);
    if (!ok) return `not 200: ${JSON.stringify(first)}`;
  }
  return text.endsWith('\r\n\r\nHello, World!\n') ? undefined : `unexpected answer ${JSON.stringify(text.slice(-80))}`;
}

// ---------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------

interface TrickleResult {
  protocol: Protocol;
  /** performance.now() of the first byte written; undefined when it never connected. */
  firstByte: number | undefined;
  /** performance.now() of the close. */
  closed: number | undefined;
  /** The server ended, reset or closed it (not us). */
  byServer: boolean;
  bytesSent: number;
  error: string | undefined;
}

/**
 * One trickling connection: a byte on connect, then one every TRICKLE_GAP_MS until the server
 * closes it; destroyed by us (a survivor) at `giveUpAt`.
 */
function trickler(port: number, protocol: Protocol, giveUpAt: number): Promise<TrickleResult> {
  return new Promise((resolve) => {
    const bytes = TRICKLE[protocol];
    const r: TrickleResult = { protocol, firstByte: undefined, closed: undefined, byServer: false, bytesSent: 0, error: undefined };
    let ours = false;
    let timer: NodeJS.Timeout | undefined;
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.setNoDelay(true);
    const send = (): void => {
      if (socket.destroyed || r.bytesSent >= bytes.length) return;
      if (performance.now() >= giveUpAt) {
        ours = true;
        socket.destroy();
        return;
      }
      socket.write(bytes.subarray(r.bytesSent, r.bytesSent + 1));
      r.bytesSent++;
      r.firstByte ??= performance.now();
    };
    socket.on('connect', () => {
      send();
      timer = setInterval(send, TRICKLE_GAP_MS);
    });
    // The server's answer to a timed-out head (a 408, a 4xx record) may come first: read it.
    socket.on('data', () => undefined);
    socket.on('end', () => {
      if (!ours) r.byServer = true;
      socket.destroy();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!ours && r.firstByte !== undefined) r.byServer = true; // a reset, or EPIPE after the server's close
      r.error ??= err.code ?? err.message;
    });
    socket.on('close', () => {
      clearInterval(timer);
      r.closed = performance.now();
      if (!ours && r.firstByte !== undefined) r.byServer = true;
      resolve(r);
    });
  });
}

/** One normal request on a fresh connection, read until the server closes. */
function normalRequest(port: number, protocol: Protocol): Promise<{ protocol: Protocol; ms: number; problem: string | undefined }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const chunks: Buffer[] = [];
    const socket = net.connect({ port, host: '127.0.0.1' });
    let settled = false;
    const done = (problem: string | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ protocol, ms: performance.now() - started, problem });
    };
    const timer = setTimeout(() => done(`no complete answer within ${NORMAL_TIMEOUT_MS} ms (${Buffer.concat(chunks).length} bytes)`), NORMAL_TIMEOUT_MS);
    socket.on('connect', () => socket.write(NORMAL[protocol]));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => done(`connection error ${err.code ?? err.message}`));
    socket.on('end', () => done(checkNormal(protocol, Buffer.concat(chunks))));
    socket.on('close', () => done(checkNormal(protocol, Buffer.concat(chunks))));
  });
}

interface AttackReport {
  tricklers: TrickleResult[];
  normal: Array<{ protocol: Protocol; ms: number; problem: string | undefined }>;
}

/** The attack on one listener: SLOTS tricklers (protocols in turn per slot) and the normal client. */
async function attack(port: number, protocols: readonly Protocol[]): Promise<AttackReport> {
  const start = performance.now();
  const attackEnd = start + ATTACK_MS;
  // A connection started at the end of the attack gets DEADLINE_MS; past that it is a survivor.
  const giveUpAt = attackEnd + DEADLINE_MS + TRICKLE_GAP_MS;
  const tricklers: TrickleResult[] = [];
  const slots = Array.from({ length: SLOTS }, async (_v, i) => {
    await sleep((i * RAMP_MS) / SLOTS);
    const protocol = protocols[i % protocols.length] as Protocol;
    while (performance.now() < attackEnd) {
      const r = await trickler(port, protocol, giveUpAt);
      tricklers.push(r);
      // Not connected at all (refused, reset before the first byte): pause instead of spinning.
      if (r.firstByte === undefined) await sleep(TRICKLE_GAP_MS);
    }
  });
  const normal: AttackReport['normal'] = [];
  const normalRuns: Array<Promise<void>> = [];
  for (let n = 0; performance.now() < attackEnd; n++) {
    const protocol = protocols[n % protocols.length] as Protocol;
    normalRuns.push(normalRequest(port, protocol).then((r) => void normal.push(r)));
    await sleep(Math.max(0, start + (n + 1) * NORMAL_EVERY_MS - performance.now()));
  }
  await Promise.all([...slots, ...normalRuns]);
  return { tricklers, normal };
}

/** Every way the report breaks the rules, counted and with a few examples. */
function problems(report: AttackReport): string[] {
  const out: string[] = [];
  const failedNormal = report.normal.filter((r) => r.problem !== undefined);
  if (report.normal.length < Math.floor(ATTACK_MS / NORMAL_EVERY_MS) - 5) out.push(`only ${report.normal.length} normal requests were sent`);
  if (failedNormal.length > 0) {
    out.push(`${failedNormal.length} of ${report.normal.length} normal requests failed, e.g. ${failedNormal.slice(0, 3).map((r) => `${r.protocol}: ${r.problem ?? ''}`).join('; ')}`);
  }
  const life = (r: TrickleResult): number => (r.closed ?? Number.POSITIVE_INFINITY) - (r.firstByte ?? Number.POSITIVE_INFINITY);
  const never = report.tricklers.filter((r) => r.firstByte === undefined);
  const survivors = report.tricklers.filter((r) => r.firstByte !== undefined && !r.byServer);
  const late = report.tricklers.filter((r) => r.byServer && life(r) > DEADLINE_MS);
  const early = report.tricklers.filter((r) => r.byServer && life(r) < HEADERS_TIMEOUT_MS - EARLY_SLACK_MS);
  const sample = (list: TrickleResult[]): string =>
    list
      .slice(0, 3)
      .map((r) => `${r.protocol} ${Number.isFinite(life(r)) ? `${Math.round(life(r))} ms` : 'open'} after ${r.bytesSent} bytes${r.error === undefined ? '' : ` (${r.error})`}`)
      .join('; ');
  if (never.length > 0) out.push(`${never.length} tricklers never got to send a byte, e.g. ${sample(never)}`);
  if (survivors.length > 0) out.push(`${survivors.length} tricklers were still open ${DEADLINE_MS} ms after the attack (not closed by the server), e.g. ${sample(survivors)}`);
  if (late.length > 0) {
    // Per protocol: how late, and after how many bytes (--auto: how far detection got).
    const by = PROTOCOLS.map((p) => [p, late.filter((r) => r.protocol === p)] as const).filter(([, list]) => list.length > 0);
    const range = (list: TrickleResult[]): string => {
      const lives = list.map(life).sort((a, b) => a - b);
      return `${Math.round(lives[0] as number)}..${Math.round(lives[lives.length - 1] as number)} ms, ${Math.min(...list.map((r) => r.bytesSent))}..${Math.max(...list.map((r) => r.bytesSent))} bytes sent`;
    };
    out.push(`${late.length} tricklers closed later than ${DEADLINE_MS} ms after their first byte: ${by.map(([p, list]) => `${p} ${list.length} of ${report.tricklers.filter((r) => r.protocol === p).length} (${range(list)})`).join('; ')}`);
  }
  if (early.length > 0) out.push(`${early.length} tricklers closed before the ${HEADERS_TIMEOUT_MS} ms headers timeout (their bytes refused?), e.g. ${sample(early)}`);
  return out;
}

/** Closes, lifetimes and normal latencies of one run, for the log (tricklers per protocol). */
function summary(front: string, report: AttackReport): string {
  const at = (list: number[], q: number): number => Math.round(list[Math.min(list.length - 1, Math.floor(q * list.length))] ?? Number.NaN);
  const lines = PROTOCOLS.filter((p) => report.tricklers.some((r) => r.protocol === p)).map((p) => {
    const mine = report.tricklers.filter((r) => r.protocol === p);
    const lives = mine.filter((r) => r.byServer && r.firstByte !== undefined && r.closed !== undefined).map((r) => (r.closed as number) - (r.firstByte as number));
    lives.sort((x, y) => x - y);
    return `${front} ${p} tricklers: ${mine.length}, ${lives.length} closed by the server (life from the first byte: min ${at(lives, 0)} / median ${at(lives, 0.5)} / max ${at(lives, 1)} ms)`;
  });
  const ms = report.normal.map((r) => r.ms).sort((x, y) => x - y);
  lines.push(`${front} normal requests: ${report.normal.length}, ${report.normal.filter((r) => r.problem === undefined).length} answered (median ${at(ms, 0.5)} ms, max ${at(ms, 1)} ms)`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------

const FRONTS: ReadonlyArray<{ flag: string; protocols: readonly Protocol[] }> = [
  { flag: '--http', protocols: ['http'] },
  { flag: '--fastcgi', protocols: ['fastcgi'] },
  { flag: '--scgi', protocols: ['scgi'] },
  { flag: '--uwsgi', protocols: ['uwsgi'] },
  { flag: '--auto', protocols: PROTOCOLS },
];

describe(`slowloris: ${SLOTS} connections trickling a request head (1 byte / ${TRICKLE_GAP_MS} ms) for ${ATTACK_MS / 1000} s against --headers-timeout ${HEADERS_TIMEOUT_MS / 1000}s`, () => {
  let gw: PeerProcess | undefined;

  beforeAll(() => ensureBuilt(), 180_000);
  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
  }, 15_000);

  test.each(FRONTS.map((f) => [f.flag, f.protocols.join(', '), f] as const))(
    '%s (%s): every trickler closed by the server within its deadline, every normal request answered',
    async (flag, _protocols, front) => {
      const proc = await startProcess(process.execPath, [CLI, 'serve', example('hello.mjs'), flag, '127.0.0.1:0', '--headers-timeout', `${HEADERS_TIMEOUT_MS / 1000}s`, '--shutdown-timeout', '1s'], {
        name: `gatewire ${flag}`,
        inheritEnv: false,
        env: childEnv(),
        cwd: ROOT,
        readyLine: /listening: \w+ on 127\.0\.0\.1:\d+/,
      });
      gw = proc;
      const port = Number(/listening: \w+ on 127\.0\.0\.1:(\d+)/.exec(proc.output())?.[1]);
      const report = await attack(port, front.protocols);
      console.log(summary(flag, report));
      expect(problems(report)).toEqual([]);
      expect(proc.exitInfo).toBeUndefined(); // still running
    },
    45_000,
  );
});
