#!/usr/bin/env node
// gatewire benchmark harness. Usage: `npm run bench -- <group>... [options]`
// (= `node bench/run.mjs <group>... [options]`). See bench/README.md for the method.

import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GROUPS, baselineRatios, resolveTargets } from './lib/groups.mjs';
import { runTarget, removeTempDirs } from './lib/runner.mjs';
import { MIXED_FRONTS, mixedPlan, mixedReport, runMixed } from './lib/mixed.mjs';
import {
  summarize,
  computeRatios,
  targetLine,
  textTable,
  markdownTable,
  ratioLines,
  markdownRatios,
  noteLines,
} from './lib/report.mjs';
import { killAllSync, killAllAndWait, commandVersion, findCommand } from './lib/proc.mjs';
import { cleanupWrk } from './lib/wrk.mjs';

const bench = dirname(fileURLToPath(import.meta.url));
const root = dirname(bench);

// Load options: flag > BENCH_* environment variable > group default > built-in default.
const LOAD_OPTIONS = {
  duration: { env: 'BENCH_DURATION', def: 10, help: 'seconds of measured load per target' },
  warmup: { env: 'BENCH_WARMUP', def: 2, help: 'seconds of discarded load before measuring' },
  connections: { env: 'BENCH_CONNECTIONS', def: 64, help: 'concurrent connections (wrk -c)' },
  threads: { env: 'BENCH_THREADS', def: 1, help: 'wrk threads (wrk -t)' },
  timeout: { env: 'BENCH_TIMEOUT', def: 2, help: 'wrk per-request timeout, seconds' },
  rounds: { env: 'BENCH_ROUNDS', def: 1, help: 'run every target this many times, interleaved; medians reported' },
  'ready-timeout': { env: 'BENCH_READY_TIMEOUT', def: 20, help: 'seconds to wait for a server to accept connections' },
  settle: { env: 'BENCH_SETTLE', def: 1, help: 'quiet seconds before reading idle RSS' },
  hold: { env: 'BENCH_HOLD', def: 0, help: 'before the load, hold N idle keep-alive connections and read RSS (rss group: 256)' },
};

function usage() {
  const lines = [
    'usage: node bench/run.mjs <group>... [options]     (npm run bench -- <group>... [options])',
    '',
    'groups:',
    ...Object.entries(GROUPS).map(([k, g]) => `  ${k.padEnd(10)} ${g.title}`),
    '',
    'options (each also settable by the environment variable shown):',
    ...Object.entries(LOAD_OPTIONS).map(
      ([k, o]) => `  --${k} N`.padEnd(23) + `${o.help} [${o.env}, default ${o.def}]`,
    ),
    ...[
      ['--only a,b', 'run only these targets of the group(s) [BENCH_ONLY]'],
      ['--baseline DIR', 'also run every gatewire target from DIR (another built checkout) as NAME@base, interleaved [BENCH_BASELINE]'],
      ['--pairs LIST', 'mixed group: all (default), none, or FRONT:OTHER,... (FRONT measured alone, after OTHER) [BENCH_MIXED_PAIRS]'],
      ['--no-save', 'do not write bench/results/<group>-<timestamp>.json'],
      ['--list', 'list groups and targets, then exit'],
    ].map(([flag, help]) => `  ${flag}`.padEnd(23) + help),
  ];
  return lines.join('\n');
}

function parseCli(argv) {
  const options = { only: { type: 'string' }, baseline: { type: 'string' }, pairs: { type: 'string' }, 'no-save': { type: 'boolean' }, list: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } };
  for (const k of Object.keys(LOAD_OPTIONS)) options[k] = { type: 'string' };
  const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true });
  return { values, groups: positionals };
}

function loadOptions(values, group) {
  const out = {};
  for (const [k, o] of Object.entries(LOAD_OPTIONS)) {
    const key = k.replace(/-(\w)/g, (_, c) => c.toUpperCase());
    const raw = values[k] ?? process.env[o.env] ?? group.defaults?.[key] ?? o.def;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${k} must be a non-negative number, got ${JSON.stringify(raw)}`);
    out[key] = n;
  }
  if (out.duration < 1) throw new Error('--duration must be at least 1 second (wrk)');
  if (out.connections < out.threads) throw new Error('--connections must be at least --threads (wrk)');
  out.rounds = Math.max(1, Math.round(out.rounds));
  return out;
}

function hostInfo() {
  const c = cpus();
  let wrk = commandVersion('wrk', ['--version']);
  if (wrk) wrk = wrk.replace(/\s+Copyright.*/, '');
  // The measured commit, and whether tracked files differ from it (then the build may not be the
  // commit's code). Through git itself: a fresh clone keeps its refs packed, not in .git/refs.
  const git = (...args) => execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  let gitCommit = null;
  let gitDirty = null;
  try {
    gitCommit = git('rev-parse', 'HEAD');
    gitDirty = git('status', '--porcelain', '--untracked-files=no') !== '';
  } catch {
    /* not a git checkout, or no git */
  }
  return {
    cpus: c.length,
    cpuModel: c[0]?.model ?? null,
    memory: totalmem(),
    kernel: release(),
    node: process.version,
    wrk,
    loadavg: loadavg(),
    gitCommit,
    gitDirty,
    peers: {
      gunicorn: commandVersion('gunicorn', ['--version']),
      uwsgi: commandVersion('uwsgi', ['--version']),
      nginx: commandVersion('nginx', ['-v']),
      python3: commandVersion('/usr/bin/python3', ['--version']),
    },
  };
}

/** Which code is measured: the commit, and whether tracked files differ from it. */
function codeLine(host) {
  if (host.gitCommit === null) return 'not a git checkout';
  return `commit ${host.gitCommit.slice(0, 7)}${host.gitDirty ? ' with uncommitted changes' : ''}`;
}

const stamp = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');

async function runGroup(name, baseGroup, values) {
  if (baseGroup.mixed) return runMixedGroup(name, baseGroup, values);
  let group = baseGroup;
  const opts = loadOptions(values, group);
  const baseline = values.baseline ?? process.env.BENCH_BASELINE;
  if (baseline) group = { ...group, ratios: [...baselineRatios(group), ...(group.ratios ?? [])] };
  let targets = resolveTargets(group, baseline);
  const only = values.only ?? process.env.BENCH_ONLY;
  if (only) {
    const wanted = new Set(only.split(',').map((s) => s.trim()));
    targets = targets.filter((t) => wanted.has(t.name) || wanted.has(t.name.replace(/@base$/, '')));
  }
  const runOpts = {
    ...opts,
    root,
    bench,
    sampleMs: 500,
    countConnections: Boolean(group.countConnections),
  };
  const host = hostInfo();
  const startedAt = new Date().toISOString();
  console.log(`\n== ${name}: ${group.title}`);
  console.log(
    `   wrk -t${opts.threads} -c${opts.connections} -d${opts.duration}s --latency, warm-up ${opts.warmup} s, ` +
      `${opts.rounds} round(s); ${host.cpus} CPU(s) shared by wrk and the server; ` +
      `load average ${host.loadavg.map((x) => x.toFixed(2)).join(' ')}; ${codeLine(host)}`,
  );

  const rounds = new Map(targets.map((t) => [t.name, []]));
  for (let round = 1; round <= opts.rounds; round++) {
    if (opts.rounds > 1) console.log(`-- round ${round}/${opts.rounds}`);
    for (const t of targets) {
      const r = await runTarget(t, runOpts);
      rounds.get(t.name).push(r);
      console.log(targetLine(r));
    }
  }
  const summaries = targets.map((t) => summarize(t, rounds.get(t.name)));
  const ratios = computeRatios(group, summaries);
  const tableOpts = { countConnections: runOpts.countConnections, hold: opts.hold };

  console.log(`\n${textTable(summaries, tableOpts)}`);
  const notes = noteLines(summaries);
  if (notes.length) console.log(`\nnotes:\n${notes.join('\n')}`);
  if (ratios.length) console.log(`\nratios (num / den; req/s higher is better, CPU/req lower is better):\n${ratioLines(ratios).join('\n')}`);
  const md = [
    markdownTable(summaries, tableOpts),
    notes.map((l) => `- ${l.trim()}`).join('\n'),
    markdownRatios(ratios),
  ]
    .filter(Boolean)
    .join('\n\n');
  console.log(`\nMarkdown:\n\n${md}\n`);

  const result = {
    group: name,
    title: group.title,
    startedAt,
    finishedAt: new Date().toISOString(),
    host,
    options: { ...opts, ...extraArgs(), generator: 'wrk', command: `wrk -t${opts.threads} -c${opts.connections} -d${opts.duration}s --latency` },
    summaries,
    ratios,
    runs: Object.fromEntries(rounds),
    markdown: md,
  };
  if (!values['no-save']) {
    const dir = join(bench, 'results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${name}-${stamp()}.json`);
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`results written to ${relative(process.cwd(), file) || file}`);
  }
  return result;
}

/** The extra gatewire arguments and node flags of the run (groups.mjs), kept with its results. */
function extraArgs() {
  return { gatewireArgs: process.env.BENCH_GATEWIRE_ARGS ?? '', nodeArgs: process.env.BENCH_NODE_ARGS ?? '' };
}

/** The mixed group (bench/lib/mixed.mjs): sessions on one gatewire process, not one load per target. */
async function runMixedGroup(name, group, values) {
  const opts = loadOptions(values, group);
  const baseline = values.baseline ?? process.env.BENCH_BASELINE;
  const only = values.only ?? process.env.BENCH_ONLY;
  const pairs = values.pairs ?? process.env.BENCH_MIXED_PAIRS;
  const plan = mixedPlan(group, { only, pairs });
  const runOpts = { ...opts, root, bench, sampleMs: 500, countConnections: false };
  const host = hostInfo();
  const startedAt = new Date().toISOString();
  const sessions = (1 + plan.pairs.length) * (baseline ? 2 : 1);
  const loads = plan.refs.length + (2 * plan.fronts.length + 3 * plan.pairs.length) * (baseline ? 2 : 1);
  console.log(`\n== ${name}: ${group.title}`);
  console.log(
    `   wrk -t${opts.threads} -c${opts.connections} -d${opts.duration}s --latency, warm-up ${opts.warmup} s, ${opts.rounds} round(s); ` +
      `fronts ${plan.fronts.join(', ') || '-'}; references ${plan.refs.join(', ') || '-'}; ${plan.pairs.length} pair(s); ` +
      `per round ${sessions} gatewire session(s), ${loads} loads (about ${Math.ceil((loads * (opts.warmup + opts.duration + opts.settle + 1) + sessions * 3 + plan.refs.length * 3) / 60)} min); ` +
      `${host.cpus} CPU(s) shared by wrk and the servers; load average ${host.loadavg.map((x) => x.toFixed(2)).join(' ')}; ${codeLine(host)}`,
  );
  const result = await runMixed(group, runOpts, { baseline, only, pairs });
  const { text, markdown } = mixedReport(result);
  console.log(`\n${text}`);
  console.log(`\nMarkdown:\n\n${markdown}\n`);
  const out = {
    group: name,
    title: group.title,
    startedAt,
    finishedAt: new Date().toISOString(),
    host,
    options: { ...opts, pairs: pairs ?? 'all', baseline: baseline ?? null, ...extraArgs(), generator: 'wrk', command: `wrk -t${opts.threads} -c${opts.connections} -d${opts.duration}s --latency` },
    plan: result.plan,
    summaries: result.summaries,
    ratios: result.ratios,
    losses: result.losses,
    rounds: result.rounds,
    markdown,
  };
  if (!values['no-save']) {
    const dir = join(bench, 'results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${name}-${stamp()}.json`);
    writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
    console.log(`results written to ${relative(process.cwd(), file) || file}`);
  }
  return out;
}

async function main() {
  let cli;
  try {
    cli = parseCli(process.argv.slice(2));
  } catch (err) {
    console.error(`${err.message}\n\n${usage()}`);
    return 2;
  }
  const { values, groups } = cli;
  if (values.help) {
    console.log(usage());
    return 0;
  }
  if (values.list) {
    for (const [k, g] of Object.entries(GROUPS)) {
      console.log(`${k}: ${g.title}`);
      for (const t of resolveTargets(g)) console.log(`  ${t.name.padEnd(22)} ${t.label}`);
      if (g.mixed) for (const [f, spec] of Object.entries(MIXED_FRONTS)) console.log(`  front ${f.padEnd(16)} ${spec.what} (reference: ${spec.ref})`);
    }
    return 0;
  }
  if (!groups.length) {
    console.error(`no group given\n\n${usage()}`);
    return 2;
  }
  const unknown = groups.filter((g) => !GROUPS[g]);
  if (unknown.length) {
    console.error(`unknown group(s): ${unknown.join(', ')}\n\n${usage()}`);
    return 2;
  }
  if (!findCommand('wrk')) {
    console.error('wrk not found: the harness needs it as its one load generator (Debian: apt-get install wrk)');
    return 1;
  }
  if (process.platform !== 'linux') {
    console.error('the harness reads /proc for CPU time and RSS: Linux only');
    return 1;
  }
  let anyOk = false;
  for (const g of groups) {
    try {
      const res = await runGroup(g, GROUPS[g], values);
      if (res.summaries.some((s) => s.ok)) anyOk = true;
    } catch (err) {
      console.error(`${g}: ${err.message}`);
      return 2;
    }
  }
  return anyOk ? 0 : 1;
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, async () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\ninterrupted (${sig}): stopping the servers started by this run`);
    cleanupWrk({ final: true });
    await killAllAndWait();
    cleanupWrk(); // again: the interrupted run may have started a wrk meanwhile
    removeTempDirs();
    process.exit(130);
  });
}
process.on('exit', () => killAllSync());

main()
  .then((code) => {
    cleanupWrk();
    process.exitCode = code;
  })
  .catch((err) => {
    killAllSync();
    cleanupWrk();
    removeTempDirs();
    console.error(err.stack ?? err);
    process.exitCode = 1;
  });
