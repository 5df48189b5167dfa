/**
 * The V8 settings gatewire's processes run with, set once at start, before any app is loaded.
 *
 * Allocation-site pretenuring is turned off (issue 15, "the second slow state"). V8 watches the
 * objects each object or array literal creates; when nearly all of a site's objects survive a
 * young-generation GC (a scavenge), it decides the site makes long-lived objects and allocates
 * them straight in the old generation from then on. A request's objects live for one request,
 * but a scavenge that runs while the new space is small (during the first seconds, or after an
 * idle spell in which the memory reducer shrank it) finds most of the in-flight ones alive. The
 * environ path's sites then get tenured, and each tenured object in the old generation holds the
 * young objects it points to alive through every later scavenge (they are reached from the
 * remembered set), so they are copied and promoted too, and full GCs follow in a loop: half of
 * the new space survived each scavenge, against 0.2 % for raw node:http. Measured with
 * `--max-semi-space-size=4` (the small-new-space state, made reproducible) on the HTTP front:
 * 50,000 req/s with pretenuring, 87,000 without, raw node:http 99,000 with either (it is
 * insensitive). `--trace-pretenuring-statistics` shows the decisions: eleven sites tenured with
 * a survival ratio of 1.0 within the first second of load.
 *
 * A user who passes `--allocation-site-pretenuring` (or `--no-...`) to node keeps that choice.
 */
import { setFlagsFromString } from 'node:v8';

const PRETENURING = /^--(no-)?allocation-site-pretenuring$/;

export function setServingFlags(execArgv: readonly string[] = process.execArgv): void {
  if (execArgv.some((a) => PRETENURING.test(a))) return;
  setFlagsFromString('--no-allocation-site-pretenuring');
}
