/**
 * Request-body garbage and RSS (F-28): a process-wide "GC nudge" for the gateway fronts.
 *
 * Body bytes arrive in the 64 KiB ArrayBuffers Node allocates for every socket read, and in
 * copies of them (a FastCGI record that straddles two reads is assembled; a Readable read by
 * async iteration hands out its buffered chunks concatenated): about 2.5 bytes of short-lived
 * ArrayBuffer per body byte. Once the app has consumed them they are garbage, but V8 frees
 * ArrayBuffers only at a GC, and a body stream allocates too few JS objects to fill the young
 * generation: the GC comes when external memory has grown by ~64 MiB since the last one, and
 * glibc keeps the pages. A cold gatewire's first 100 MiB upload through nginx thus raised RSS
 * by 38..53 MiB (later uploads reuse the pages: +3..8 MiB).
 *
 * The nudge asks V8 for a minor GC (a scavenge: the buffers are young, and it takes well under
 * 1 ms) after every BODY_GC_INTERVAL bytes of request body, across all requests of the process;
 * the bytes of an upstream's answers count a quarter (ANSWER_GC_INTERVAL, below).
 * The buffers are then freed while the allocator can hand the same pages to the next reads:
 * measured through nginx, the cold first 100 MiB upload grows RSS by 9..11 MiB, and the CPU
 * time of a raw 256 MiB FastCGI upload stays within the noise (bench numbers in the commit).
 *
 * V8's `gc()` is normally only visible with `--expose-gc`; it is obtained once, lazily, from a
 * throwaway context created while that flag is set (the flag is reset at once, so neither the
 * app's global scope nor its later vm contexts see a `gc`). If that fails, nudging is off.
 */
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

/** Request-body bytes between two nudges (a process-wide count). */
export const BODY_GC_INTERVAL = 2 * 1024 * 1024;

/** The part of V8's `gc()` extension used here. */
export type GcFunction = (options?: { type?: 'minor' | 'major'; execution?: 'sync' | 'async' }) => unknown;

let gcFunction: GcFunction | null | undefined;

/** V8's `gc()`: the global one if node runs with --expose-gc, else one from a throwaway context; null if neither works. */
export function obtainGc(): GcFunction | null {
  if (gcFunction !== undefined) return gcFunction;
  const global: unknown = (globalThis as { gc?: unknown }).gc;
  if (typeof global === 'function') return (gcFunction = global as GcFunction);
  gcFunction = null;
  try {
    v8.setFlagsFromString('--expose-gc');
    try {
      const fn: unknown = vm.runInNewContext('gc');
      if (typeof fn === 'function') gcFunction = fn as GcFunction;
    } finally {
      v8.setFlagsFromString('--no-expose-gc');
    }
  } catch {
    // flags frozen or the extension missing: no nudges
  }
  return gcFunction;
}

/** Counts bytes; after every `interval` of them, calls `collect` once. */
export class GcNudge {
  private count = 0;

  constructor(
    private readonly interval: number,
    private readonly collect: () => void,
  ) {}

  add(bytes: number): void {
    this.count += bytes;
    if (this.count < this.interval) return;
    this.count = 0;
    this.collect();
  }
}

function minorGc(): void {
  const gc = obtainGc();
  if (gc !== null) gc({ type: 'minor', execution: 'sync' });
}

const bodyNudge = new GcNudge(BODY_GC_INTERVAL, minorGc);

/** A front passed `bytes` of request body to an app (see the module comment). */
export function noteBodyBytes(bytes: number): void {
  bodyNudge.add(bytes);
}

/**
 * Bytes of upstream answers between two nudges, when they are all that is counted. Answers come
 * at the request rate, not at one upload's: a 64 KiB page from php-fpm at 5,000 req/s is
 * 320 MiB/s, and a nudge every 2 MiB of it was 150 forced scavenges a second, each of which
 * scans the young objects of every request in flight. Measured by hand (2026-12-03, 3 rounds
 * each, page64k.php behind `--php`): 4.8k req/s at 2 MiB, 6.4k..7.1k at 8 MiB. A 100 MiB
 * download through the upstream client stays well under the 32 MiB bound (UP-32).
 */
export const ANSWER_GC_INTERVAL = 4 * BODY_GC_INTERVAL;

/** An upstream client read `bytes` of its upstream's answer body (counted in the same nudge). */
export function noteAnswerBytes(bytes: number): void {
  bodyNudge.add(bytes * (BODY_GC_INTERVAL / ANSWER_GC_INTERVAL));
}
