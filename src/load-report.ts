/**
 * What the start-up reports say about an app module (CLI-11, CLI-13): where a syntax error is,
 * and which interface and framework were detected.
 *
 * A SyntaxError from `import()` says where it is only for CommonJS: Node puts `FILE:LINE`, the
 * source line and a caret line in front of its stack. For an ES module, Node 20 keeps that
 * "arrow" to itself (it prints it only for an uncaught error) and the stack names no file. There,
 * `node --check FILE` prints the same arrow for one file without running it: the entry is
 * checked, then the relative modules it imports statically, breadth first and bounded, until one
 * fails. This runs only after a load failed, so its child processes cost a start that failed anyway.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Files checked with `node --check` at most, the entry included. */
const MAX_CHECKED = 25;

/**
 * `FILE:LINE:COLUMN` of a SyntaxError thrown while loading `entry` (an absolute path), or
 * undefined when it is no SyntaxError or the place cannot be found.
 */
export function syntaxErrorLocation(err: unknown, entry: string): string | undefined {
  if (!(err instanceof SyntaxError)) return undefined;
  return arrowLocation(err.stack ?? '') ?? checkModules(entry);
}

/**
 * The place an arrow-decorated error text starts with: `FILE:LINE` (a path or a file: URL),
 * the source line, then the caret line whose first `^` gives the column.
 */
export function arrowLocation(text: string): string | undefined {
  const lines = text.split('\n');
  const head = /^(.+):(\d+)$/.exec(lines[0] ?? '');
  if (head === null) return undefined;
  let file = head[1] as string;
  if (file.startsWith('file://')) {
    try {
      file = fileURLToPath(file);
    } catch {
      return undefined;
    }
  }
  if (!path.isAbsolute(file)) return undefined;
  const caret = (lines[2] ?? '').indexOf('^');
  return caret === -1 ? `${file}:${head[2]}` : `${file}:${head[2]}:${caret + 1}`;
}

/** `node --check` over the entry and the relative modules it imports statically, until one fails. */
function checkModules(entry: string): string | undefined {
  const queue = [entry];
  const seen = new Set(queue);
  for (let i = 0; i < queue.length && i < MAX_CHECKED; i++) {
    const file = queue[i] as string;
    const run = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'ignore', 'pipe'] });
    if (run.status !== 0 && typeof run.stderr === 'string') {
      const found = arrowLocation(run.stderr);
      if (found !== undefined) return found;
    }
    for (const next of staticImports(file)) {
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
  return undefined;
}

/** Relative specifiers of `import … from '…'`, `import '…'` and `export … from '…'`, as existing files. */
function staticImports(file: string): string[] {
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const m of source.matchAll(/(?:^|[\s;}])(?:import|export)\s*(?:[\w*${}\s,]*?\bfrom\s*)?['"](\.{1,2}\/[^'"\n]+)['"]/g)) {
    const target = path.resolve(path.dirname(file), m[1] as string);
    try {
      if (existsSync(target) && statSync(target).isFile()) out.push(target);
    } catch {
      // unreadable: not a candidate
    }
  }
  return out;
}

/** The framework an exported value is an app of, by its shape (as loader.ts detects the interface). */
export function frameworkOf(value: unknown): string | undefined {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return undefined;
  const v = value as Record<string, unknown>;
  const fn = (name: string): boolean => typeof v[name] === 'function';
  if (fn('fetch') && fn('route') && fn('basePath')) return 'Hono';
  if (fn('handle') && fn('use')) return fn('engine') && fn('render') ? 'Express' : 'Connect';
  if (fn('callback') && fn('use')) return 'Koa';
  if (fn('routing') && fn('ready')) return 'Fastify';
  return undefined;
}

/** `node handler: Express`, `fetch handler: Hono`, `environ app`: what the start-up line says (CLI-13). */
export function describeInterface(kind: 'environ' | 'node' | 'fetch', framework: string | undefined): string {
  if (kind === 'environ') return 'environ app';
  return `${kind} handler${framework === undefined ? '' : `: ${framework}`}`;
}
