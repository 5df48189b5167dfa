// Summaries, ratios and printing (aligned text for the terminal, Markdown for README).

const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const max = (xs) => {
  const v = xs.filter((x) => typeof x === 'number');
  return v.length ? Math.max(...v) : null;
};
const sum = (xs) => xs.reduce((a, b) => a + (b ?? 0), 0);

/**
 * Fold the rounds of one target into one summary: medians of rates, latencies and
 * CPU per request; the highest loaded RSS; errors summed.
 */
export function summarize(target, rounds) {
  const ok = rounds.filter((r) => r.ok);
  const failed = rounds.filter((r) => !r.ok);
  if (!ok.length) {
    return { name: target.name, label: target.label, ok: false, reason: failed.at(-1)?.reason ?? 'not run' };
  }
  const note = target.note ?? null;
  const by = {};
  for (const key of Object.keys(ok[0].cpuUsPerReqBy ?? {})) by[key] = median(ok.map((r) => r.cpuUsPerReqBy[key]));
  return {
    name: target.name,
    label: target.label,
    note,
    ok: true,
    rounds: ok.length,
    failedRounds: failed.map((r) => r.reason),
    rps: median(ok.map((r) => r.rps)),
    p50Us: median(ok.map((r) => r.latencyUs.p50)),
    p99Us: median(ok.map((r) => r.latencyUs.p99)),
    cpuUsPerReq: median(ok.map((r) => r.cpuUsPerReq)),
    cpuUsPerReqBy: by,
    serverCpuPercent: median(ok.map((r) => r.serverCpuPercent)),
    wrkCpuPercent: median(ok.map((r) => r.wrkCpuPercent)),
    otherCpuPercent: max(ok.map((r) => r.otherCpuPercent)),
    rssIdle: median(ok.map((r) => r.rssIdle)),
    rssLoad: max(ok.map((r) => r.rssLoad)),
    rssHeld: median(ok.map((r) => r.held?.rss)),
    held: ok.map((r) => r.held).filter(Boolean),
    connectionsPeak: max(ok.map((r) => r.connectionsPeak)),
    processes: max(ok.map((r) => r.processes)),
    requests: sum(ok.map((r) => r.requests)),
    non2xx: sum(ok.map((r) => r.errors.status)),
    socketErrors: sum(ok.map((r) => r.errors.socket)),
    errors: ok.map((r) => r.errors),
  };
}

/** num/den of req/s and of CPU per request, with the issue's threshold if any. */
export function computeRatios(group, summaries) {
  const byName = new Map(summaries.map((s) => [s.name, s]));
  return (group.ratios ?? []).map((r) => {
    const a = byName.get(r.num);
    const b = byName.get(r.den);
    const out = { num: r.num, den: r.den, min: r.min ?? null, goal: r.goal ?? null };
    if (!a?.ok || !b?.ok) {
      // Name each side that has no result: left out by --only, or failed.
      const missing = [[r.num, a], [r.den, b]].filter(([, s]) => !s?.ok).map(([name, s]) => (s === undefined ? `${name} was not run` : `${name} failed`));
      return { ...out, rps: null, cpu: null, verdict: null, note: `n/a (${missing.join(', ')})` };
    }
    const rps = a.rps / b.rps;
    const cpu = a.cpuUsPerReq && b.cpuUsPerReq ? a.cpuUsPerReq / b.cpuUsPerReq : null;
    const busy = [a, b].filter((s) => s.otherCpuPercent > BUSY_PERCENT).map((s) => s.name);
    out.busy = busy.length ? busy : null;
    let verdict = null;
    if (r.min != null) {
      verdict = rps >= (r.goal ?? Infinity) ? 'goal met' : rps >= r.min ? 'pass' : 'FAIL';
    }
    return { ...out, rps, cpu, verdict };
  });
}

// ---------------------------------------------------------------- formatting

export const fmtInt = (n) => (n == null ? '-' : Math.round(n).toLocaleString('en-US'));
export const fmtUs = (us) => {
  if (us == null) return '-';
  if (us < 1000) return `${us.toFixed(0)} µs`;
  if (us < 1e6) return `${(us / 1000).toFixed(2)} ms`;
  return `${(us / 1e6).toFixed(2)} s`;
};
export const fmtMiB = (b) => (b == null ? '-' : `${(b / 1048576).toFixed(1)} MiB`);
const fmtPct = (p) => (p == null ? '-' : `${p.toFixed(0)}%`);
const fmtCpu = (us) => (us == null ? '-' : `${us.toFixed(1)} µs`);
const fmtX = (x) => (x == null ? '-' : `${x.toFixed(2)}×`);

const COLUMNS = [
  ['target', (s) => s.name],
  ['req/s', (s) => fmtInt(s.rps)],
  ['p50', (s) => fmtUs(s.p50Us)],
  ['p99', (s) => fmtUs(s.p99Us)],
  ['CPU/req', (s) => fmtCpu(s.cpuUsPerReq)],
  ['server CPU', (s) => fmtPct(s.serverCpuPercent)],
  ['wrk CPU', (s) => fmtPct(s.wrkCpuPercent)],
  ['other CPU', (s) => fmtPct(s.otherCpuPercent)],
  ['RSS idle', (s) => fmtMiB(s.rssIdle)],
  ['RSS load', (s) => fmtMiB(s.rssLoad)],
  ['non-2xx', (s) => fmtInt(s.non2xx)],
  ['sock err', (s) => fmtInt(s.socketErrors)],
];

function columnsFor(summaries, opts) {
  const cols = [...COLUMNS];
  if (opts.countConnections) {
    cols.splice(10, 0, ['conns', (s) => (s.connectionsPeak == null ? '-' : String(s.connectionsPeak))]);
  }
  if (opts.hold > 0) {
    cols.splice(9, 0, [`RSS ${opts.hold} idle conns`, (s) => fmtMiB(s.rssHeld)]);
  }
  return cols;
}

/** Above this much CPU (percent of one core) used by other processes, a run is flagged. */
export const BUSY_PERCENT = 15;

/** One line for a finished (or failed) run of a target. */
export function targetLine(r) {
  if (!r.ok) return `  ${r.name}: FAILED (${r.reason})`;
  const by = Object.entries(r.cpuUsPerReqBy ?? {});
  const split = by.length > 1 ? ` [${by.map(([k, v]) => `${k} ${fmtCpu(v)}`).join(', ')}]` : '';
  const conns = r.connectionsPeak != null ? `, ${r.connectionsPeak} conns` : '';
  const held = r.held
    ? `, RSS ${fmtMiB(r.held.rss)} holding ${r.held.connections} idle keep-alive conns ` +
      `(${r.held.answered} answered, ${r.held.established ?? '?'} established)`
    : '';
  return (
    `  ${r.name}: ${fmtInt(r.rps)} req/s, p50 ${fmtUs(r.latencyUs.p50)}, p99 ${fmtUs(r.latencyUs.p99)}, ` +
    `CPU ${fmtCpu(r.cpuUsPerReq)}/req${split} (server ${fmtPct(r.serverCpuPercent)}, wrk ${fmtPct(r.wrkCpuPercent)}, other ${fmtPct(r.otherCpuPercent)}), ` +
    `RSS ${fmtMiB(r.rssIdle)} idle / ${fmtMiB(r.rssLoad)} load${conns}${held}, ` +
    `non-2xx ${r.errors.status}, socket errors ${r.errors.socket}` +
    (r.otherCpuPercent > BUSY_PERCENT ? `  [warning: ${fmtPct(r.otherCpuPercent)} of a CPU used by other processes]` : '')
  );
}

/** Aligned text table of the summaries; failed targets get one line with the reason. */
export function textTable(summaries, opts = {}) {
  const cols = columnsFor(summaries, opts);
  const rows = summaries.filter((s) => s.ok).map((s) => cols.map(([, f]) => f(s)));
  const head = cols.map(([h]) => h);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const out = [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
  for (const s of summaries.filter((x) => !x.ok)) out.push(`${s.name.padEnd(widths[0])}  FAILED: ${s.reason}`);
  return out.join('\n');
}

/** The same table in Markdown, ready to paste into a README or an issue note. */
export function markdownTable(summaries, opts = {}) {
  const cols = columnsFor(summaries, opts);
  const esc = (t) => String(t).replace(/\|/g, '\\|');
  const out = [
    `| ${cols.map(([h]) => h).join(' | ')} |`,
    `|${cols.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`,
  ];
  for (const s of summaries) {
    if (s.ok) out.push(`| ${cols.map(([, f]) => esc(f(s))).join(' | ')} |`);
    else out.push(`| ${esc(s.name)} | failed: ${esc(s.reason)} |${' |'.repeat(cols.length - 2)}`);
  }
  return out.join('\n');
}

/** Ratio lines: "a / b: 0.91× req/s, CPU/req 1.10× (min 0.85×, goal 0.95×: pass)". */
export function ratioLines(ratios) {
  return ratios.map((r) => {
    const name = `${r.num} / ${r.den}`;
    if (r.rps == null) return `  ${name}: ${r.note}`;
    const bar =
      r.min != null ? ` (min ${fmtX(r.min)}${r.goal != null ? `, goal ${fmtX(r.goal)}` : ''}: ${r.verdict})` : '';
    const busy = r.busy ? `  [unreliable: machine busy during ${r.busy.join(', ')}]` : '';
    return `  ${name}: ${fmtX(r.rps)} req/s, CPU/req ${fmtX(r.cpu)}${bar}${busy}`;
  });
}

export function markdownRatios(ratios) {
  if (!ratios.length) return '';
  const out = ['| ratio | req/s | CPU/req | criterion |', '| --- | ---: | ---: | --- |'];
  for (const r of ratios) {
    const crit =
      r.min != null ? `≥ ${fmtX(r.min)}${r.goal != null ? ` (goal ${fmtX(r.goal)})` : ''}: ${r.verdict ?? 'n/a'}` : '';
    const busy = r.busy ? ' (machine busy)' : '';
    out.push(`| ${r.num} / ${r.den} | ${r.rps == null ? 'n/a' : fmtX(r.rps)}${busy} | ${fmtX(r.cpu)} | ${crit} |`);
  }
  return out.join('\n');
}

/** "name: note" lines for the targets that ran and carry a note. */
export function noteLines(summaries) {
  return summaries.filter((s) => s.ok && s.note).map((s) => `  ${s.name}: ${s.note}`);
}
