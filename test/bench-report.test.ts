/**
 * bench/lib/report.mjs, the ratio table of `npm run bench`: a ratio whose side is missing names
 * that side, and says whether it was left out (--only) or failed. The module is ESM (.mjs), so it
 * runs in a child node, as the harness does.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

const REPORT = pathToFileURL(path.resolve(__dirname, '..', 'bench', 'lib', 'report.mjs')).href;

function ratios(group: unknown, summaries: unknown): Array<{ num: string; den: string; rps: number | null; note?: string }> {
  const script = `import(${JSON.stringify(REPORT)}).then(({ computeRatios }) => process.stdout.write(JSON.stringify(computeRatios(${JSON.stringify(group)}, ${JSON.stringify(summaries)}))))`;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as Array<{ num: string; den: string; rps: number | null; note?: string }>;
}

test('a ratio with a side left out by --only names that side, not the one that ran', () => {
  const got = ratios(
    { ratios: [{ num: 'gatewire', den: 'nginx' }, { num: 'gatewire', den: 'uwsgi' }, { num: 'node', den: 'nginx' }] },
    [
      { name: 'gatewire', ok: true, rps: 200 },
      { name: 'uwsgi', ok: false },
    ],
  );
  expect(got.map((r) => r.note)).toEqual(['n/a (nginx was not run)', 'n/a (uwsgi failed)', 'n/a (node was not run, nginx was not run)']);
  expect(got.every((r) => r.rps === null)).toBe(true);
});

test('both sides ran: the ratio of their req/s', () => {
  const [r] = ratios({ ratios: [{ num: 'a', den: 'b' }] }, [
    { name: 'a', ok: true, rps: 300, cpuUsPerReq: 50 },
    { name: 'b', ok: true, rps: 200, cpuUsPerReq: 100 },
  ]);
  expect(r?.rps).toBeCloseTo(1.5);
  expect(r?.note).toBeUndefined();
});
