/**
 * src/v8-flags.ts: gatewire serves with V8's allocation-site pretenuring off (issue 15, the
 * "second slow state"). With a small new space (--max-semi-space-size=1 stands for the first
 * seconds of a process, or the new space the memory reducer shrank after an idle spell), a
 * burst of environ requests makes V8 tenure the request path's literal sites, and from then on
 * every scavenge copies half the new space. V8's own trace of its decisions is the witness:
 * the control run, with the user's explicit `--allocation-site-pretenuring`, shows the
 * decisions (and proves the load triggers them); the default run shows none.
 */
import * as http from 'node:http';
import { CLI, EXAMPLES, ensureBuilt, freePort, killAll, spawnCommand } from './fixtures/apps/cli-harness.js';
import * as path from 'node:path';

beforeAll(() => ensureBuilt());
afterEach(() => killAll());

const REQUESTS = 6000;
const PARALLEL = 32;

/** REQUESTS environ requests over PARALLEL keep-alive connections; resolves the 200 count. */
async function load(port: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: PARALLEL });
  let next = 0;
  let ok = 0;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
        if (res.statusCode === 200) ok++;
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    });
  const lane = async (): Promise<void> => {
    while (next++ < REQUESTS) await one();
  };
  try {
    await Promise.all(Array.from({ length: PARALLEL }, lane));
  } finally {
    agent.destroy();
  }
  return ok;
}

/** Serves examples/hello.mjs in one process with `nodeArgs`, loads it, returns V8's tenure decisions. */
async function tenureDecisions(nodeArgs: string[]): Promise<number> {
  const port = await freePort();
  const proc = spawnCommand(process.execPath, [
    '--trace-pretenuring-statistics',
    '--max-semi-space-size=1',
    ...nodeArgs,
    CLI,
    'serve',
    path.join(EXAMPLES, 'hello.mjs'),
    '--workers', '0',
    '--http', `127.0.0.1:${port}`,
  ]);
  await proc.listening(1);
  expect(await load(port)).toBe(REQUESTS);
  proc.signal('SIGTERM');
  const exit = await proc.waitExit(10_000);
  expect(exit.code).toBe(0);
  return (proc.stdout.match(/=> tenure/g) ?? []).length;
}

describe('allocation-site pretenuring', () => {
  test('control: with the user\'s --allocation-site-pretenuring, the environ load makes V8 tenure sites', async () => {
    expect(await tenureDecisions(['--allocation-site-pretenuring'])).toBeGreaterThan(0);
  }, 60_000);

  test('gatewire serve turns it off: the same load, no site tenured', async () => {
    expect(await tenureDecisions([])).toBe(0);
  }, 60_000);
});
