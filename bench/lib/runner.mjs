// Runs one target once: start its services, wait until each is ready, check one real
// GET, sample idle RSS, warm up, measure under wrk while sampling /proc, stop everything.
//
// A target (see groups.mjs) is a plain object:
//   {
//     name: 'raw-node',                  // id used by --only, ratios and the JSON
//     label: 'raw node:http hello',      // one human line
//     requires: [{ cmd: 'gunicorn' }, { file: 'dist/src/cli.js', hint: 'npm run build' }],
//     ports: ['http'],                   // free 127.0.0.1 ports to allocate (ctx.ports.http)
//     services: [                        // started in order, stopped in reverse
//       { name: 'server',
//         start: (ctx) => ({ cmd, args, cwd?, env? }),
//         ready: (ctx) => ({ port }) | ({ path }),   // what to poll with connect()
//         measure: true },               // count its process tree in CPU and RSS (default)
//     ],
//     url: (ctx) => `http://127.0.0.1:${ctx.ports.http}/`,
//   }
// ctx = { root, bench, tmp, ports, opts } ; tmp is a fresh directory removed afterwards.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { freePort, waitForConnect, checkHello, establishedOn, holdConnections, closeAll } from './net.mjs';
import { startProcess, describeExit, treeCpuSeconds, treeRss, readStat, clockTicks, findCommand, machineCpu } from './proc.mjs';
import { runWrk } from './wrk.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const HELLO = { status: 200, contentType: 'text/plain', body: 'Hello, World!\n' };

/** Why a target cannot run here (missing command or file), or null. */
export function missingRequirement(target, root) {
  for (const req of target.requires ?? []) {
    if (req.cmd && !findCommand(req.cmd)) {
      return `command not found: ${req.cmd}${req.hint ? ` (${req.hint})` : ''}`;
    }
    if (req.file) {
      const p = isAbsolute(req.file) ? req.file : join(root, req.file);
      if (!existsSync(p)) return `missing ${req.file}${req.hint ? ` (${req.hint})` : ''}`;
    }
  }
  return null;
}

class TargetFailure extends Error {}

/** Temporary directories of targets still running (removed on interrupt too). */
const tempDirs = new Set();
export function removeTempDirs() {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

/**
 * Run `target` once with `opts` = { root, bench, duration, warmup, connections, threads,
 * timeout, readyTimeout, settle, sampleMs, countConnections, log }.
 * Always resolves: { name, label, ok: true, ... } or { name, label, ok: false, reason }.
 */
export async function runTarget(target, opts) {
  const base = { name: target.name, label: target.label };
  const missing = missingRequirement(target, opts.root);
  if (missing) return { ...base, ok: false, stage: 'requirements', reason: missing };

  const tmp = mkdtempSync(join(tmpdir(), `gatewire-bench-${target.name}-`));
  tempDirs.add(tmp);
  const ports = {};
  for (const p of target.ports ?? ['http']) ports[p] = await freePort();
  const ctx = { root: opts.root, bench: opts.bench, tmp, ports, opts };
  const started = [];
  let stage = 'start';
  try {
    // 1. Start each service and wait until it accepts connections.
    for (const svc of target.services) {
      const spec = svc.start(ctx);
      const handle = startProcess(`${target.name}/${svc.name}`, { cwd: opts.root, ...spec });
      started.push({ svc, handle });
      const alive = () => {
        if (handle.exitInfo) return `${svc.name} ${describeExit(handle)}`;
        for (const s of started) if (s.handle.exitInfo) return `${s.svc.name} ${describeExit(s.handle)}`;
        return null;
      };
      if (!handle.pid) {
        await handle.exited;
        throw new TargetFailure(`${svc.name} ${describeExit(handle)}`);
      }
      const why = await waitForConnect(svc.ready(ctx), { timeoutMs: opts.readyTimeout * 1000, alive });
      if (why) {
        const last = handle.lastLine();
        throw new TargetFailure(handle.exitInfo || !last ? why : `${why} (last output: ${last})`);
      }
    }
    const url = target.url(ctx);
    const serviceDied = () => {
      for (const s of started) if (s.handle.exitInfo) return `${s.svc.name} ${describeExit(s.handle)}`;
      return null;
    };

    // 2. One real request must give exactly the hello response.
    stage = 'check';
    const wrong = await checkHello(url, HELLO);
    if (wrong) throw new TargetFailure(wrong);

    const measured = started.filter((s) => s.svc.measure !== false);
    const pids = measured.map((s) => s.handle.pid);
    const servicePids = Object.fromEntries(measured.map((s) => [s.svc.name, s.handle.pid]));

    // 3. Idle RSS, after a short quiet moment.
    await sleep(opts.settle * 1000);
    const rssIdle = treeRss(pids);
    const rssIdleBy = Object.fromEntries(measured.map((s) => [s.svc.name, treeRss([s.handle.pid])]));

    // 3b. Optionally: RSS with N idle keep-alive connections held open, each of which
    //     has carried one request (memory per connection, without load-rate effects).
    let held = null;
    if (opts.hold > 0 && target.holdPort) {
      stage = 'hold';
      const port = target.holdPort(ctx);
      const h = await holdConnections(port, opts.hold, { expectBody: HELLO.body });
      try {
        await sleep(500);
        held = {
          connections: opts.hold,
          answered: h.ready,
          established: establishedOn(port),
          rss: treeRss(pids),
        };
      } finally {
        closeAll(h.sockets);
      }
      await sleep(opts.settle * 1000);
      const died = serviceDied();
      if (died) throw new TargetFailure(`while holding ${opts.hold} connections: ${died}`);
    }

    const wrkBase = {
      url,
      threads: opts.threads,
      connections: opts.connections,
      timeoutSeconds: opts.timeout,
    };

    // 4. Warm-up (JIT, caches, connection pools); results discarded.
    stage = 'warmup';
    if (opts.warmup > 0) {
      await runWrk({ ...wrkBase, seconds: opts.warmup });
      const died = serviceDied();
      if (died) throw new TargetFailure(`during warm-up: ${died}`);
    }

    // 5. Measured run: CPU before/after, RSS and wrk CPU sampled while it runs.
    stage = 'measure';
    const cpuBefore = treeCpuSeconds(pids);
    const cpuBeforeBy = Object.fromEntries(measured.map((s) => [s.svc.name, treeCpuSeconds([s.handle.pid]).seconds]));
    let rssPeak = 0;
    let rssLast = 0;
    let connPeak = null;
    let processesPeak = cpuBefore.processes;
    // The harness's own stat: utime+stime is the harness (sampling), cutime+cstime grows
    // by wrk's whole CPU time when wrk exits and is reaped: an exact wrk CPU figure.
    const self0 = readStat(process.pid);
    const machine0 = machineCpu();
    const sample = () => {
      rssLast = treeRss(pids);
      if (rssLast > rssPeak) rssPeak = rssLast;
      if (opts.countConnections && ports.http) {
        const n = establishedOn(ports.http);
        if (n !== null && (connPeak === null || n > connPeak)) connPeak = n;
      }
    };
    const t0 = Date.now();
    const timer = setInterval(sample, opts.sampleMs);
    let wrk;
    try {
      wrk = await runWrk({ ...wrkBase, seconds: opts.duration });
    } finally {
      clearInterval(timer);
    }
    const wall = (Date.now() - t0) / 1000;
    const cpuAfter = treeCpuSeconds(pids);
    const self1 = readStat(process.pid);
    const machine1 = machineCpu();
    processesPeak = Math.max(processesPeak, cpuAfter.processes);
    const cpuBy = {};
    for (const s of measured) {
      cpuBy[s.svc.name] = treeCpuSeconds([s.handle.pid]).seconds - cpuBeforeBy[s.svc.name];
    }
    const rssEnd = treeRss(pids);
    if (rssEnd > rssPeak) rssPeak = rssEnd;
    const died = serviceDied();
    if (died) throw new TargetFailure(`during the measured run: ${died}`);

    const cpuSeconds = cpuAfter.seconds - cpuBefore.seconds;
    const tick = clockTicks();
    const wrkCpu = self0 && self1 ? (self1.cutime + self1.cstime - self0.cutime - self0.cstime) / tick : null;
    const harnessCpu = self0 && self1 ? (self1.utime + self1.stime - self0.utime - self0.stime) / tick : null;
    let otherCpu = null;
    let stealCpu = null;
    if (machine0 && machine1 && wrkCpu != null) {
      otherCpu = Math.max(0, machine1.busy - machine0.busy - cpuSeconds - wrkCpu - harnessCpu);
      stealCpu = machine1.steal - machine0.steal;
    }
    const requests = wrk.requests;
    return {
      ...base,
      ok: true,
      url,
      pids: servicePids,
      processes: processesPeak,
      rps: wrk.rps,
      requests,
      seconds: wrk.seconds,
      latencyUs: wrk.latencyUs,
      errors: wrk.errors,
      cpuSeconds,
      cpuUsPerReq: requests > 0 ? (cpuSeconds / requests) * 1e6 : null,
      cpuUsPerReqBy: Object.fromEntries(
        Object.entries(cpuBy).map(([k, v]) => [k, requests > 0 ? (v / requests) * 1e6 : null]),
      ),
      serverCpuPercent: (cpuSeconds / wrk.seconds) * 100,
      wrkCpuPercent: wrkCpu == null ? null : (wrkCpu / wall) * 100,
      harnessCpuPercent: harnessCpu == null ? null : (harnessCpu / wall) * 100,
      otherCpuPercent: otherCpu == null ? null : (otherCpu / wall) * 100,
      stealCpuPercent: stealCpu == null ? null : (stealCpu / wall) * 100,
      rssIdle,
      rssIdleBy,
      rssLoad: rssPeak,
      held,
      connectionsPeak: connPeak,
      wrkCommand: wrk.command,
    };
  } catch (err) {
    const reason = err instanceof TargetFailure ? err.message : `${stage}: ${err.message}`;
    return { ...base, ok: false, stage, reason };
  } finally {
    for (const { handle } of started.reverse()) await handle.stop();
    rmSync(tmp, { recursive: true, force: true });
    tempDirs.delete(tmp);
  }
}
