/**
 * The architecture rules of eslint.config.mjs fire: protocols/ stays pure (no node I/O modules,
 * timers, logging or src/), the core stays free of the fronts, the server, the CLI and winston,
 * only src/log.ts imports winston, and nothing imports src/cli.ts. Each refused snippet is linted
 * at a virtual path and must get the rule's error with its message; each allowed one must lint
 * clean.
 *
 * ESLint loads eslint.config.mjs with import(), which jest's module VM refuses (no
 * --experimental-vm-modules), so the linting runs in a plain node child: one ESLint instance
 * for every snippet, with type information switched off (these rules need none, and building
 * the program is most of a lint run's cost).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Linter } from 'eslint';

const ROOT = path.resolve(__dirname, '..');

interface Snippet {
  file: string;
  code: string;
}

interface Refused extends Snippet {
  rule: string;
  says: string;
}

const LINT_IN_NODE = `
const { ESLint } = require('eslint');
const { configs } = require('typescript-eslint');
(async () => {
  const snippets = JSON.parse(process.argv[1]);
  const eslint = new ESLint({ cwd: process.cwd(), overrideConfig: [{ ...configs.disableTypeChecked, files: ['**/*.ts'] }] });
  const out = [];
  for (const s of snippets) out.push((await eslint.lintText(s.code, { filePath: s.file }))[0].messages);
  process.stdout.write(JSON.stringify(out));
})().catch((err) => { console.error(err); process.exit(1); });
`;

async function lint(snippets: Snippet[]): Promise<Linter.LintMessage[][]> {
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', LINT_IN_NODE, JSON.stringify(snippets)], { cwd: ROOT, maxBuffer: 16 << 20 });
  return JSON.parse(stdout) as Linter.LintMessage[][];
}

const TS_IMPORT = '@typescript-eslint/no-restricted-imports';
const JS_IMPORT = 'no-restricted-imports';
const SYNTAX = 'no-restricted-syntax';
const GLOBAL = 'no-restricted-globals';
const PROPERTY = 'no-restricted-properties';

const PURE = 'protocols/ holds pure codecs';
const NO_LOGGING = 'protocols/ does no logging';
const NO_SRC = 'protocols/ must not import from src/';
const CORE = 'The core (environ, app, call';
const CORE_SERVER = 'The core must not depend on the server or the CLI';
const CORE_LOG = 'The core may only `import type` from ./log.js';
const CORE_REGISTRY = 'The core may only `import type` from ./fronts/registry.js';
const WINSTON = 'Only src/log.ts imports winston';
const CLI = 'Nothing imports src/cli.ts';

const REFUSED: Refused[] = [
  // protocols/: node I/O modules, with and without node:, and their subpaths.
  { file: 'protocols/x.ts', code: "export { createServer } from 'node:net';\n", rule: TS_IMPORT, says: PURE },
  { file: 'protocols/x.ts', code: "import * as fs from 'fs';\nexport const f = fs;\n", rule: TS_IMPORT, says: PURE },
  { file: 'protocols/x.ts', code: "import { readFile } from 'node:fs/promises';\nexport const r = readFile;\n", rule: TS_IMPORT, says: PURE },
  { file: 'protocols/x.ts', code: "import type { Socket } from 'node:tls';\nexport type S = Socket;\n", rule: TS_IMPORT, says: PURE },
  { file: 'protocols/scgi/x.ts', code: "export { request } from 'http';\n", rule: TS_IMPORT, says: PURE },
  { file: 'protocols/x.ts', code: "export { spawn } from 'node:child_process';\n", rule: TS_IMPORT, says: PURE },
  { file: 'protocols/x.ts', code: "export { Worker } from 'worker_threads';\n", rule: TS_IMPORT, says: PURE },
  { file: 'protocols/x.ts', code: "export { setTimeout } from 'node:timers/promises';\n", rule: TS_IMPORT, says: PURE },
  { file: 'protocols/x.ts', code: "export { createInterface } from 'node:readline';\n", rule: TS_IMPORT, says: PURE },
  { file: 'protocols/x.ts', code: "export const load = () => import('node:dgram');\n", rule: SYNTAX, says: PURE },
  { file: 'protocols/x.ts', code: "export type S = import('node:net').Socket;\n", rule: SYNTAX, says: PURE },
  // protocols/: timers, deferred work and logging.
  { file: 'protocols/x.ts', code: 'setTimeout(() => undefined, 1);\n', rule: GLOBAL, says: PURE },
  { file: 'protocols/x.ts', code: 'export const t = setInterval(() => undefined, 1);\n', rule: GLOBAL, says: PURE },
  { file: 'protocols/x.ts', code: 'setImmediate(() => undefined);\n', rule: GLOBAL, says: PURE },
  { file: 'protocols/x.ts', code: 'export function stop(t: NodeJS.Timeout): void {\n  clearTimeout(t);\n}\n', rule: GLOBAL, says: PURE },
  { file: 'protocols/x.ts', code: 'queueMicrotask(() => undefined);\n', rule: GLOBAL, says: PURE },
  { file: 'protocols/x.ts', code: 'process.nextTick(() => undefined);\n', rule: GLOBAL, says: 'process.nextTick' },
  { file: 'protocols/x.ts', code: 'globalThis.setTimeout(() => undefined, 1);\n', rule: PROPERTY, says: PURE },
  { file: 'protocols/x.ts', code: "console.log('decoded');\n", rule: GLOBAL, says: NO_LOGGING },
  { file: 'protocols/x.ts', code: "import winston from 'winston';\nexport const w = winston;\n", rule: TS_IMPORT, says: NO_LOGGING },
  // protocols/: nothing from src/, not even types.
  { file: 'protocols/x.ts', code: "export { Exchange } from '../src/call.js';\n", rule: TS_IMPORT, says: NO_SRC },
  { file: 'protocols/fastcgi/x.ts', code: "import type { App } from '../../src/app.js';\nexport type A = App;\n", rule: TS_IMPORT, says: NO_SRC },
  { file: 'protocols/fastcgi/x.ts', code: "export const load = () => import('../../src/fronts/fastcgi.js');\n", rule: SYNTAX, says: NO_SRC },

  // The core: no fronts, CGI host, adapters, server, CLI, or value imports of ./log.
  { file: 'src/call.ts', code: "export { front } from './fronts/http.js';\n", rule: TS_IMPORT, says: CORE },
  { file: 'src/reply.ts', code: "import type { CgiHost } from './cgi-host/host.js';\nexport type H = CgiHost;\n", rule: TS_IMPORT, says: CORE },
  { file: 'src/errors.ts', code: "export * from './apps/node.js';\n", rule: TS_IMPORT, says: CORE },
  { file: 'src/app.ts', code: "export const load = () => import('./fronts/http.js');\n", rule: SYNTAX, says: CORE },
  { file: 'src/app.ts', code: "export const load = () => import('./fronts/registry.js');\n", rule: SYNTAX, says: CORE_REGISTRY },
  { file: 'src/call.ts', code: "import { FRONTS } from './fronts/registry.js';\nexport const f = FRONTS;\n", rule: TS_IMPORT, says: CORE_REGISTRY },
  { file: 'src/environ.ts', code: "export { Gateway } from './server.js';\n", rule: TS_IMPORT, says: CORE_SERVER },
  { file: 'src/request.ts', code: "export { registerCgiCommand } from './cli-cgi.js';\n", rule: TS_IMPORT, says: CORE_SERVER },
  { file: 'src/input.ts', code: "import './cli.js';\n", rule: TS_IMPORT, says: CORE_SERVER },
  { file: 'src/inject.ts', code: "export { silentLogger } from './log.js';\n", rule: TS_IMPORT, says: CORE_LOG },
  { file: 'src/validate.ts', code: "export const log = require('./log.js') as unknown;\n", rule: SYNTAX, says: CORE_LOG },

  // winston: only in src/log.ts.
  { file: 'src/fronts/http.ts', code: "import winston from 'winston';\nexport const w = winston;\n", rule: TS_IMPORT, says: WINSTON },
  { file: 'src/server.ts', code: "export const w = require('winston') as unknown;\n", rule: SYNTAX, says: WINSTON },
  { file: 'test/x.test.ts', code: "export { format } from 'winston';\n", rule: TS_IMPORT, says: WINSTON },
  { file: 'bench/x.mjs', code: "export { createLogger } from 'winston';\n", rule: JS_IMPORT, says: WINSTON },

  // src/cli.ts: imported by nothing.
  { file: 'src/server.ts', code: "import './cli.js';\n", rule: TS_IMPORT, says: CLI },
  { file: 'src/fronts/x.ts', code: "import '../cli.js';\n", rule: TS_IMPORT, says: CLI },
  { file: 'src/log.ts', code: "import './cli.js';\n", rule: TS_IMPORT, says: CLI },
  { file: 'test/x.test.ts', code: "import '../src/cli.js';\n", rule: TS_IMPORT, says: CLI },
  { file: 'test/helpers/x.ts', code: "export const cli = require('../../src/cli.js') as unknown;\n", rule: SYNTAX, says: CLI },
  { file: 'scripts/x.mjs', code: "await import('../dist/src/cli.js');\n", rule: SYNTAX, says: CLI },
  { file: 'test/fixtures/apps/x.cjs', code: "require('../../../src/cli');\n", rule: SYNTAX, says: CLI },
];

const ALLOWED: Snippet[] = [
  { file: 'src/app.ts', code: "import type { ListenerProtocol } from './fronts/registry.js';\nexport type P = ListenerProtocol;\n" },
  { file: 'protocols/x.ts', code: "import { Buffer } from 'node:buffer';\nexport { ProtocolError } from './errors.js';\nexport const b = Buffer.alloc(1);\n" },
  { file: 'protocols/fastcgi/x.ts', code: "import type { Readable } from 'node:stream';\nexport { LimitError } from '../errors.js';\nexport type R = Readable;\nexport const empty = Buffer.alloc(0);\n" },
  { file: 'src/call.ts', code: "export { isCgiKey } from './environ.js';\nexport type { Logger } from './log.js';\nexport { isHopByHop } from '../protocols/cgi/head.js';\n" },
  { file: 'src/inject.ts', code: "import type { Logger } from './log.js';\nexport type L = Logger;\n" },
  { file: 'src/server.ts', code: "export { front } from './fronts/http.js';\nexport { createLogger } from './log.js';\nexport const t = setTimeout(() => undefined, 1);\n" },
  { file: 'src/log.ts', code: "import winston from 'winston';\nexport const w = winston;\n" },
  { file: 'src/cli.ts', code: "export { registerCgiCommand } from './cli-cgi.js';\nexport const m = require('./server.js') as unknown;\n" },
  { file: 'test/x.test.ts', code: "export { registerCgiCommand } from '../src/cli-cgi.js';\nexport { CLI } from './fixtures/apps/cli-harness.js';\n" },
];

let refused: Linter.LintMessage[][];
let allowed: Linter.LintMessage[][];

beforeAll(async () => {
  const all = await lint([...REFUSED, ...ALLOWED]);
  refused = all.slice(0, REFUSED.length);
  allowed = all.slice(REFUSED.length);
}, 60000);

const show = (messages: Linter.LintMessage[]): string[] => messages.map((m) => `${m.line}:${m.column} ${m.ruleId ?? 'fatal'}: ${m.message}`);

describe('architecture rules (eslint.config.mjs)', () => {
  test.each(REFUSED.map((s, i) => [i, s.file, s.code.trim().split('\n')[0]] as const))('#%i %s refuses %s', (i) => {
    const s = REFUSED[i]!;
    const messages = refused[i]!;
    expect(messages.some((m) => m.fatal)).toBe(false);
    const hit = messages.find((m) => m.ruleId === s.rule && m.message.includes(s.says));
    if (hit === undefined) throw new Error(`no ${s.rule} error saying "${s.says}" for ${s.file}; got:\n${show(messages).join('\n') || '(nothing)'}`);
    expect(hit.severity).toBe(2);
  });

  test.each(ALLOWED.map((s, i) => [i, s.file, s.code.trim().split('\n')[0]] as const))('#%i %s allows %s', (i) => {
    expect(show(allowed[i]!)).toEqual([]);
  });
});
