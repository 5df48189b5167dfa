/**
 * The costs phase of `gatewire compare`: a short sequential sample, or a closed loop under load,
 * of one column's request, with latency percentiles, requests per second, the serving side's CPU
 * time per request and (under load) a timeline in slices of 250 ms.
 */
import type { Buffer } from 'node:buffer';
import { connect } from 'node:net';
import type { Latency, TimelinePoint } from './types.js';

/** Longest wait for one answer, ms. */
export const TIMEOUT = 10_000;


function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const at = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[at] as number;
}

export function round(n: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export interface Cost {
  latency: Latency;
  rps: number;
  cpuUsPerRequest: number;
  timeline: TimelinePoint[];
}

/** Writes `bytes` on a new connection to 127.0.0.1:port and resolves with the answer's length once the server ends the connection (every request here asks it to). */
export function replayOnce(port: number, bytes: Buffer): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const socket = connect(port, '127.0.0.1');
    let got = 0;
    socket.setTimeout(TIMEOUT, () => socket.destroy(new Error(`no end of the answer within ${TIMEOUT} ms`)));
    socket.on('data', (chunk: Buffer) => (got += chunk.length));
    socket.once('error', reject);
    socket.once('end', () => {
      socket.end();
      if (got === 0) reject(new Error('the connection ended without an answer'));
      else resolvePromise(got);
    });
    // Not end(): nginx takes a half-closed client for one that left and aborts the request.
    socket.write(bytes);
  });
}

/** One timed request: the captured bytes replayed, or (CGI) the whole run again. */
export type Send = () => Promise<unknown>;

/** `samples` requests one after another. */
export async function sequentialCost(cpuUs: () => number, send: Send, samples: number): Promise<Cost> {
  await send(); // warm-up: the first request of a column pays for lazy loading
  const latencies: number[] = [];
  const cpu0 = cpuUs();
  const t0 = performance.now();
  for (let i = 0; i < samples; i++) {
    const start = performance.now();
    await send();
    latencies.push(performance.now() - start);
  }
  const elapsed = performance.now() - t0;
  const cpu = cpuUs() - cpu0;
  latencies.sort((a, b) => a - b);
  return {
    latency: { p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)), samples },
    rps: round(samples / (elapsed / 1000), 1),
    cpuUsPerRequest: round(cpu / samples, 1),
    timeline: [],
  };
}

const SLICE_MS = 250;

/** `concurrency` clients, each sending its next request when the last is answered, for `durationMs`. */
export async function loadCost(cpuUs: () => number, send: Send, durationMs: number, concurrency: number, progress: (f: number) => void): Promise<Cost> {
  for (let i = 0; i < Math.min(concurrency, 4); i++) await send();
  const latencies: number[] = [];
  const slices: number[][] = [];
  let failures = 0;
  const cpu0 = cpuUs();
  const t0 = performance.now();
  const deadline = t0 + durationMs;
  const ticker = setInterval(() => progress(Math.min(1, (performance.now() - t0) / durationMs)), 100);
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const start = performance.now();
      try {
        await send();
      } catch {
        failures++;
        continue;
      }
      const end = performance.now();
      latencies.push(end - start);
      ((slices[Math.floor((end - t0) / SLICE_MS)] ??= [])).push(end - start);
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    clearInterval(ticker);
  }
  const elapsed = performance.now() - t0;
  const cpu = cpuUs() - cpu0;
  if (latencies.length === 0) throw new Error(`no request succeeded under load (${failures} failed)`);
  const timeline: TimelinePoint[] = [];
  for (let i = 0; i * SLICE_MS < durationMs; i++) {
    const slice = (slices[i] ?? []).sort((a, b) => a - b);
    timeline.push({ t: (i + 1) * SLICE_MS, rps: round(slice.length / (SLICE_MS / 1000), 1), p50: round(percentile(slice, 50)) });
  }
  latencies.sort((a, b) => a - b);
  return {
    latency: { p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)), samples: latencies.length },
    rps: round(latencies.length / (elapsed / 1000), 1),
    cpuUsPerRequest: round(cpu / latencies.length, 1),
    timeline,
  };
}
