/**
 * wrk (the Debian package) as the tests' load generator: `wrk -t1 -cC -dDs URL`, its totals
 * parsed. Tests that use it list 'wrk' among their peers (describeWithPeers).
 */
import { spawn } from 'node:child_process';
import { peerPath } from './peers.js';

export interface WrkResult {
  requests: number;
  /** "Non-2xx or 3xx responses". */
  non2xx: number;
  /** connect + read + write + timeout socket errors. */
  socketErrors: number;
  /** wrk's whole report, for a failure message. */
  text: string;
}

export function wrk(url: string, seconds: number, connections = 16): Promise<WrkResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(peerPath('wrk'), ['-t1', `-c${connections}`, `-d${seconds}s`, url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (c: Buffer) => (text += c.toString()));
    child.stderr.on('data', (c: Buffer) => (text += c.toString()));
    child.on('error', reject);
    child.on('close', () => {
      const requests = /(\d+) requests in/.exec(text);
      if (requests === null) return reject(new Error(`no wrk report:\n${text}`));
      const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
      const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
      resolve({
        requests: Number(requests[1]),
        non2xx: non2xx === null ? 0 : Number(non2xx[1]),
        socketErrors: errors === null ? 0 : errors.slice(1, 5).reduce((a, b) => a + Number(b), 0),
        text,
      });
    });
  });
}
