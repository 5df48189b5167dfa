/**
 * src/memory.ts: the GC nudge that lets the fronts free consumed request-body buffers while
 * they are young (F-28). The RSS effect itself is proved end to end in fastcgi-peers.test.ts
 * (100 MiB through nginx into a cold gatewire).
 */
import * as vm from 'node:vm';
import { ANSWER_GC_INTERVAL, BODY_GC_INTERVAL, GcNudge, obtainGc } from '../src/memory.js';

describe('GcNudge', () => {
  test('F-28: collects once per interval of bytes, counting across calls', () => {
    let calls = 0;
    const nudge = new GcNudge(100, () => calls++);
    nudge.add(60);
    nudge.add(39);
    expect(calls).toBe(0);
    nudge.add(1);
    expect(calls).toBe(1);
    nudge.add(99);
    expect(calls).toBe(1);
    nudge.add(250); // a large add collects once, and the count starts again
    expect(calls).toBe(2);
    nudge.add(99);
    expect(calls).toBe(2);
  });

  test('the body interval is a few MiB (the RSS bound of F-28 is 32 MiB)', () => {
    expect(BODY_GC_INTERVAL).toBeGreaterThanOrEqual(1024 * 1024);
    expect(BODY_GC_INTERVAL).toBeLessThanOrEqual(8 * 1024 * 1024);
  });

  test('upstream answers nudge less often than request bodies, still within 8 MiB (UP-32)', () => {
    expect(ANSWER_GC_INTERVAL).toBeGreaterThan(BODY_GC_INTERVAL);
    expect(ANSWER_GC_INTERVAL).toBeLessThanOrEqual(8 * 1024 * 1024);
  });
});

describe('obtainGc', () => {
  test('returns V8 gc(), and a minor GC frees dropped 64 KiB buffers (what socket reads allocate)', async () => {
    const gc = obtainGc();
    expect(typeof gc).toBe('function');
    expect(obtainGc()).toBe(gc); // obtained once
    gc!({ type: 'minor', execution: 'sync' });
    const before = process.memoryUsage().arrayBuffers;
    // 4 MiB, held while counted (a scavenge V8 starts on its own mid-loop cannot free them),
    // dropped at once when the function returns.
    const grown = ((): number => {
      const held: Buffer[] = [];
      for (let i = 0; i < 64; i++) held.push(Buffer.alloc(65_536, i));
      expect(held.reduce((sum, b) => sum + b[0]!, 0)).toBe(2016);
      return process.memoryUsage().arrayBuffers - before;
    })();
    expect(grown).toBeGreaterThan(3 * 1024 * 1024);
    gc!({ type: 'minor', execution: 'sync' });
    // ArrayBuffers are swept on a helper thread after the scavenge: give it a moment.
    for (let i = 0; i < 50 && process.memoryUsage().arrayBuffers - before > 1024 * 1024; i++) await new Promise((r) => setTimeout(r, 10));
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1024 * 1024);
  });

  test('leaves no gc visible to the app: neither in its global scope nor in new vm contexts', () => {
    obtainGc();
    if (!process.execArgv.includes('--expose-gc')) expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
    expect(vm.runInNewContext('typeof gc')).toBe('undefined');
  });
});
