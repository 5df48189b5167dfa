// The load generator: wrk (Debian package). One instance at a time, always.
//
// wrk's own text report rounds (e.g. "1.93ms"); a tiny Lua `done()` hook prints the exact
// numbers as one JSON line instead, which is what we parse. Defining only `done()` does
// not slow wrk down (unlike a `response()` hook, which makes wrk hand every response to
// Lua).

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const MARK = 'GATEWIRE_WRK_JSON ';

const LUA = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '${MARK}{"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,' ..
    '"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f},' ..
    '"latency_us":{"min":%.3f,"mean":%.3f,"max":%.3f,"stdev":%.3f,' ..
    '"p50":%.3f,"p75":%.3f,"p90":%.3f,"p99":%.3f,"p999":%.3f}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency.stdev,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
`;

let scriptDir = null;
let current = null;
let closed = false;
function scriptPath() {
  if (!scriptDir) {
    scriptDir = mkdtempSync(join(tmpdir(), 'gatewire-bench-wrk-'));
    writeFileSync(join(scriptDir, 'report.lua'), LUA);
  }
  return join(scriptDir, 'report.lua');
}

/** Remove the temporary Lua script (call once at the end of the run). */
export function cleanupWrk({ final = false } = {}) {
  if (final) closed = true;
  if (current && current.exitCode === null) current.kill('SIGKILL');
  current = null;
  if (scriptDir) rmSync(scriptDir, { recursive: true, force: true });
  scriptDir = null;
}

/**
 * Run `wrk -t<threads> -c<connections> -d<seconds>s --latency -s report.lua <url>`.
 * Resolves { requests, seconds, rps, bytes, errors, latencyUs, command, raw }.
 * Rejects if wrk fails or prints no report.
 */
export function runWrk({ url, threads, connections, seconds, timeoutSeconds }) {
  if (closed) return Promise.reject(new Error('interrupted'));
  const args = [
    `-t${threads}`,
    `-c${connections}`,
    `-d${seconds}s`,
    `--timeout`,
    `${timeoutSeconds}s`,
    '--latency',
    '-s',
    scriptPath(),
    url,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    current = child;
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.on('error', (e) => reject(new Error(`cannot run wrk: ${e.message}`)));
    child.on('close', (code, signal) => {
      if (current === child) current = null;
      const line = out.split('\n').find((l) => l.startsWith(MARK));
      if (code !== 0 || !line) {
        const why = (err || out).trim().split('\n').pop() || `exit ${code ?? signal}`;
        reject(new Error(`wrk failed: ${why}`));
        return;
      }
      let data;
      try {
        data = JSON.parse(line.slice(MARK.length));
      } catch (e) {
        reject(new Error(`wrk report unreadable: ${e.message}: ${line}`));
        return;
      }
      const secs = data.duration_us / 1e6;
      const e = data.errors;
      resolve({
        command: ['wrk', ...args.slice(0, 6), url].join(' '),
        requests: data.requests,
        seconds: secs,
        rps: secs > 0 ? data.requests / secs : 0,
        bytes: data.bytes,
        errors: { ...e, socket: e.connect + e.read + e.write + e.timeout },
        latencyUs: data.latency_us,
        raw: out.split('\n').filter((l) => !l.startsWith(MARK)).join('\n').trim(),
      });
    });
  });
}
