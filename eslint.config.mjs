// ESLint flat config: `npm run lint` (eslint . --max-warnings 0), run by .ci/run after the type-check.
//
// - TypeScript (src/, protocols/, test/): eslint recommended + typescript-eslint recommended, and
//   a few type-aware rules on src/ and test/ only (see TYPED_RULES).
// - JavaScript (bench/, scripts/, examples/, test/fixtures/, config files): eslint recommended
//   with Node's globals; .js is CommonJS (package.json has no "type": "module").
// - The architecture rules (below) keep protocols/ pure, the core free of the fronts, the server,
//   the CLI and winston, winston in src/log.ts alone, and src/cli.ts imported by nothing;
//   test/lint-rules.test.ts proves each one fires.
import { fileURLToPath } from 'node:url';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { defineConfig, globalIgnores } from 'eslint/config';

const ROOT = fileURLToPath(new URL('.', import.meta.url));

// ---------------------------------------------------------------------------------------------
// Architecture rules. Each restriction is a regex over the module specifier, checked for static
// imports and re-exports (no-restricted-imports) and for require() and import() with a literal
// argument, plus import('…') types (no-restricted-syntax), since src/ loads modules lazily with
// require() on purpose (K-17) and a lazy load must not be a way around these rules.
// Flat config does not merge the options of a rule set by two config objects (the last one
// wins), so every group of files below gets the full list of restrictions that applies to it.
// ---------------------------------------------------------------------------------------------

const NODE_IO_MODULES = [
  'net', 'http', 'https', 'http2', 'tls', 'dgram', 'dns', 'fs', 'child_process', 'cluster',
  'worker_threads', 'timers', 'readline', 'repl', 'tty', 'inspector', 'process', 'os',
];

/** @typedef {{ regex: string, message: string, allowTypeImports?: boolean }} Restriction */

/** @type {Restriction} */
const NO_WINSTON = {
  regex: '^winston(/|$)',
  message: 'Only src/log.ts imports winston: take a Logger (import type from ./log.js) from the caller. The CGI child must not load winston (K-17).',
};

/** @type {Restriction} */
const NO_CLI = {
  regex: '(^|/)src/cli(\\.[cm]?[jt]s)?$',
  message: 'Nothing imports src/cli.ts: it is the entry point of the `gatewire` bin (run it as a process, or import what it uses from its own module).',
};
/** @type {Restriction} src/x.ts importing ./cli(.js) */
const NO_CLI_FROM_SRC = { ...NO_CLI, regex: '^\\./cli(\\.[cm]?[jt]s)?$' };
/** @type {Restriction} src/dir/x.ts importing ../cli(.js) */
const NO_CLI_FROM_SRC_DIR = { ...NO_CLI, regex: '^\\.\\./cli(\\.[cm]?[jt]s)?$' };

/** @type {Restriction[]} */
const PURE_PROTOCOLS = [
  {
    regex: `^(node:)?(${NODE_IO_MODULES.join('|')})(/|$)`,
    message: 'protocols/ holds pure codecs: no I/O, sockets, files, processes, timers or OS access (node:net, node:fs, node:timers…). Take and return bytes; the fronts in src/ do the I/O.',
  },
  {
    regex: '^winston(/|$)',
    message: 'protocols/ does no logging: throw ProtocolError/LimitError or return a result, and let src/ log it.',
  },
  {
    regex: '^\\.{1,2}/(.*/)?src(/|$)',
    message: 'protocols/ must not import from src/: the codecs stand alone and src/ depends on them, never the reverse.',
  },
];

/** @type {Restriction[]} */
const CORE_FREE_OF_FRONTS = [
  {
    regex: '^\\./fronts/registry(\\.[cm]?[jt]s)?$',
    allowTypeImports: true,
    message: 'The core may only `import type` from ./fronts/registry.js (the names of the fronts); a value import would load the list of fronts into the core.',
  },
  {
    regex: '^\\./(fronts(?!/registry(\\.[cm]?[jt]s)?$)|cgi-host|apps)(/|\\.[cm]?[jt]s$|$)',
    message: 'The core (environ, app, call, request, input, validate, inject, reply, errors) must not depend on the fronts, the CGI host or the framework adapters: they depend on it.',
  },
  {
    regex: '^\\./(server|cli[^/]*)(\\.[cm]?[jt]s)?$',
    message: 'The core must not depend on the server or the CLI: they are built on it.',
  },
  {
    regex: '^\\./log(\\.[cm]?[jt]s)?$',
    allowTypeImports: true,
    message: 'The core may only `import type` from ./log.js: a value import loads winston. Take the Logger from the caller.',
  },
];

/** The core modules: none of them may know about the fronts, the server, the CLI or winston. */
const CORE_FILES = ['environ', 'app', 'call', 'request', 'input', 'validate', 'inject', 'reply', 'errors'].map((m) => `src/${m}.ts`);

// esquery regex literals end at the first `/`: spell it \x2F inside selectors.
const selectorRegex = (regex) => `/${regex.replaceAll('/', '\\x2F')}/`;

/**
 * The rule settings for a group of files, from its list of restrictions.
 * @param {'ts' | 'js'} lang
 * @param {Restriction[]} restrictions
 */
function architecture(lang, restrictions) {
  const patterns = restrictions.map(({ regex, message, allowTypeImports }) =>
    lang === 'ts' && allowTypeImports ? { regex, message, allowTypeImports } : { regex, message },
  );
  const dynamic = restrictions.flatMap(({ regex, message, allowTypeImports }) => {
    const re = selectorRegex(regex);
    return [
      { selector: `ImportExpression[source.value=${re}]`, message },
      { selector: `CallExpression[callee.name="require"][arguments.0.value=${re}]`, message },
      ...(lang === 'ts' && !allowTypeImports ? [{ selector: `TSImportType[argument.literal.value=${re}]`, message }] : []),
    ];
  });
  const importRule = lang === 'ts' ? '@typescript-eslint/no-restricted-imports' : 'no-restricted-imports';
  return {
    [importRule]: ['error', { patterns }],
    'no-restricted-syntax': ['error', ...dynamic],
  };
}

// Timers, microtask queueing and logging in protocols/ (Buffer is fine). `process` is refused
// as a whole: nextTick is a timer, and env/stdout are not a codec's business.
const PROTOCOL_GLOBALS = [
  ...['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate', 'queueMicrotask'].map((name) => ({
    name,
    message: 'protocols/ holds pure codecs: no timers or deferred work. Deadlines and scheduling belong to the fronts in src/.',
  })),
  { name: 'process', message: 'protocols/ holds pure codecs: no process.nextTick (a timer), process.env or process.stdout. Pass what the codec needs as an argument.' },
  { name: 'console', message: 'protocols/ does no logging: throw ProtocolError/LimitError or return a result, and let src/ log it.' },
];
const PROTOCOL_GLOBAL_PROPERTIES = PROTOCOL_GLOBALS.flatMap(({ name, message }) =>
  ['globalThis', 'global'].map((object) => ({ object, property: name, message })),
);

// ---------------------------------------------------------------------------------------------
// Type-aware rules: the promise rules, since an unhandled rejection ends a Node server. Only on
// src/ and test/: protocols/ has no promises, and type information is most of the cost of a lint
// run (about half of it; these rules are most of the rest). The rest of recommended-type-checked
// was tried and left out:
// - no-unsafe-*: only jest's `expect.any()`/`expect.objectContaining()` (typed any) and untyped
//   requires, at a cost;
// - require-await: async generators without an await are bodies (AsyncIterables) on purpose;
// - only-throw-error: the rethrow of a stored failure (R-3 exc_info, a decoder's sticky error);
// - unbound-method: protocol hooks declared as methods and passed as functions, which are fine;
// - no-unnecessary-type-assertion: its "receiver accepts the original type" check flags
//   load-bearing assertions (`current = m[1] as string` narrows `current` for the lines after
//   it, under noUncheckedIndexedAccess) and its --fix then breaks tsc.
// ---------------------------------------------------------------------------------------------
const TYPED_RULES = {
  '@typescript-eslint/await-thenable': 'error',
  '@typescript-eslint/no-floating-promises': 'error',
  '@typescript-eslint/no-misused-promises': 'error',
};

// Node 20's globals (beyond ECMAScript's), for the JavaScript files.
const NODE_GLOBALS = Object.fromEntries(
  `AbortController AbortSignal atob Blob BroadcastChannel btoa Buffer ByteLengthQueuingStrategy clearImmediate
  clearInterval clearTimeout CompressionStream console CountQueuingStrategy crypto Crypto CryptoKey CustomEvent
  DecompressionStream DOMException Event EventTarget fetch File FormData global Headers MessageChannel MessageEvent
  MessagePort performance Performance PerformanceEntry PerformanceMark PerformanceMeasure PerformanceObserver
  PerformanceObserverEntryList PerformanceResourceTiming process queueMicrotask ReadableByteStreamController
  ReadableStream ReadableStreamBYOBReader ReadableStreamBYOBRequest ReadableStreamDefaultController
  ReadableStreamDefaultReader Request Response setImmediate setInterval setTimeout structuredClone SubtleCrypto
  TextDecoder TextDecoderStream TextEncoder TextEncoderStream TransformStream TransformStreamDefaultController URL
  URLSearchParams WebAssembly WritableStream WritableStreamDefaultController WritableStreamDefaultWriter`
    .split(/\s+/)
    .map((name) => [name, 'readonly']),
);
const COMMONJS_GLOBALS = { require: 'readonly', module: 'writable', exports: 'writable', __filename: 'readonly', __dirname: 'readonly' };

// The page assets (assets/: inlined into the `gatewire compare` HTML report) are classic browser
// scripts: the browser's globals they use and Chart.js's `Chart`, and none of Node's.
const BROWSER_GLOBALS = {
  ...Object.fromEntries(Object.keys({ ...NODE_GLOBALS, ...COMMONJS_GLOBALS }).map((name) => [name, 'off'])),
  ...Object.fromEntries(
    'Chart console document fetch getComputedStyle globalThis TextDecoder TextEncoder window'.split(' ').map((name) => [name, 'readonly']),
  ),
};

export default defineConfig(
  globalIgnores(['dist/', 'build/', 'node_modules/', 'coverage/']),

  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },

  js.configs.recommended,
  {
    rules: {
      // The codecs and header checks match control characters on purpose (NUL in CGI/SCGI
      // variables, CTLs in header values, escaping of log lines): every hit was deliberate.
      'no-control-regex': 'off',
    },
  },

  // TypeScript.
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommended],
    rules: {
      // Unused names are also tsc's (noUnusedLocals/noUnusedParameters); same `_` convention.
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
      // require() is deliberate here: what `gatewire cgi` does not need is loaded lazily and
      // synchronously (K-17; Node 20's import() of CommonJS costs ~50 ms), typed with
      // `as typeof import(…)`, and jest.isolateModules needs it. The architecture rules check
      // require() calls too.
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  {
    files: ['src/**/*.ts', 'test/**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: ROOT } },
    rules: TYPED_RULES,
  },
  {
    // In the tests the promise rule that pays is no-floating-promises (an `expect(p).rejects…`
    // or a helper's promise left unawaited passes whatever happens). no-misused-promises checks
    // every argument of every call against the callee's signature, which jest's matchers and the
    // nested describe/test callbacks make slow, for little: async callbacks are what jest takes.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-misused-promises': 'off' },
  },

  // JavaScript, all run by Node.
  {
    files: ['**/*.{js,mjs,cjs}'],
    languageOptions: { globals: NODE_GLOBALS },
    rules: architecture('js', [NO_WINSTON, NO_CLI]),
  },
  {
    files: ['**/*.{js,cjs}'],
    languageOptions: { sourceType: 'commonjs', globals: { ...NODE_GLOBALS, ...COMMONJS_GLOBALS } },
  },
  {
    files: ['assets/**/*.js'],
    languageOptions: { sourceType: 'script', globals: BROWSER_GLOBALS },
  },

  // Architecture, from the general to the particular (the last match sets the rule).
  { files: ['**/*.ts'], rules: architecture('ts', [NO_WINSTON, NO_CLI]) },
  { files: ['src/*.ts'], rules: architecture('ts', [NO_WINSTON, NO_CLI, NO_CLI_FROM_SRC]) },
  { files: ['src/*/**/*.ts'], rules: architecture('ts', [NO_WINSTON, NO_CLI, NO_CLI_FROM_SRC_DIR]) },
  { files: CORE_FILES, rules: architecture('ts', [NO_WINSTON, NO_CLI, NO_CLI_FROM_SRC, ...CORE_FREE_OF_FRONTS]) },
  { files: ['src/log.ts'], rules: architecture('ts', [NO_CLI, NO_CLI_FROM_SRC]) },
  {
    files: ['protocols/**/*.ts'],
    rules: {
      ...architecture('ts', PURE_PROTOCOLS),
      'no-restricted-globals': ['error', ...PROTOCOL_GLOBALS],
      'no-restricted-properties': ['error', ...PROTOCOL_GLOBAL_PROPERTIES],
    },
  },
);
