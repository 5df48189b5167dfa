// The benchmark groups. Each group is a small table of targets plus the ratios to
// report; a target says how to start its processes, where to send load, and which
// processes to measure (runner.mjs documents the target shape).
//
// To add a target: write one entry with the helpers below. To add a group: add an
// entry to GROUPS. See bench/README.md, "Adding a target or a group".

import { join } from 'node:path';

/** Every hello server listens on loopback only. */
export const HOST = '127.0.0.1';

const node = process.execPath;
const python = { PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' };

/** Extra arguments appended to every gatewire command line (e.g. to silence a log). */
function gatewireExtraArgs() {
  const extra = process.env.BENCH_GATEWIRE_ARGS;
  return extra ? extra.split(/\s+/).filter(Boolean) : [];
}

/**
 * A target made of one server process that speaks HTTP itself on ctx.ports.http.
 * `start(ctx, port)` returns { cmd, args, cwd?, env? }.
 */
export function httpTarget(name, label, start, { requires = [], stopSignal, note } = {}) {
  return {
    name,
    label,
    note,
    requires,
    ports: ['http'],
    services: [
      {
        name: 'server',
        start: (ctx) => ({ stopSignal, ...start(ctx, ctx.ports.http) }),
        ready: (ctx) => ({ port: ctx.ports.http }),
      },
    ],
    url: (ctx) => `http://${HOST}:${ctx.ports.http}/`,
    // where the rss group holds idle keep-alive connections open
    holdPort: (ctx) => ctx.ports.http,
  };
}

const builtCli = { file: 'dist/src/cli.js', hint: 'run `npm run build` first' };

/** `gatewire serve <app> <front args>` from the built CLI. */
function gatewire(app, frontArgs) {
  return { cmd: node, args: ['dist/src/cli.js', 'serve', app, ...frontArgs, ...gatewireExtraArgs()] };
}

export const TARGETS = {
  'raw-node': httpTarget('raw-node', 'raw node:http hello (bench/servers/node-raw.mjs)', (ctx, port) => ({
    cmd: node,
    args: [join(ctx.bench, 'servers/node-raw.mjs'), String(port), HOST],
  })),

  'gatewire-environ': httpTarget(
    'gatewire-environ',
    'gatewire HTTP front, environ app (examples/hello.mjs)',
    (ctx, port) => gatewire('examples/hello.mjs', ['--http', `${HOST}:${port}`]),
    { requires: [builtCli, { file: 'examples/hello.mjs' }] },
  ),

  'gatewire-node': httpTarget(
    'gatewire-node',
    'gatewire HTTP front, node handler (examples/hello-node.mjs)',
    (ctx, port) => gatewire('examples/hello-node.mjs', ['--http', `${HOST}:${port}`]),
    { requires: [builtCli, { file: 'examples/hello-node.mjs' }] },
  ),

  // One sync worker (plus gunicorn's arbiter process, which is measured too).
  // Sync workers close the connection after each response: no keep-alive.
  gunicorn: httpTarget(
    'gunicorn',
    'gunicorn, 1 sync worker, Python hello (bench/servers/hello.py)',
    (ctx, port) => ({
      cmd: 'gunicorn',
      args: [
        '--workers', '1',
        '--worker-class', 'sync',
        '--bind', `${HOST}:${port}`,
        '--chdir', join(ctx.bench, 'servers'),
        '--log-level', 'warning',
        'hello:application',
      ],
      env: python,
    }),
    {
      requires: [{ cmd: 'gunicorn', hint: 'apt-get install gunicorn' }],
      note: 'gunicorn sync workers answer "Connection: close": one TCP connection per request.',
    },
  ),

  // One process, no master, no threads; request logging off (gunicorn and node log
  // nothing per request either).
  'uwsgi-http': httpTarget(
    'uwsgi-http',
    'uWSGI --http-socket, 1 process, Python hello (bench/servers/hello.py)',
    (ctx, port) => ({
      cmd: 'uwsgi',
      args: [
        '--plugin', 'python3',
        '--http-socket', `${HOST}:${port}`,
        '--wsgi-file', join(ctx.bench, 'servers/hello.py'),
        '--processes', '1',
        '--need-app',
        '--die-on-term',
        '--disable-logging',
        '--listen', '1024',
      ],
      env: python,
    }),
    // SIGTERM asks a master-less uWSGI for a graceful reload, which sometimes lingers;
    // SIGINT stops it at once.
    {
      requires: [{ cmd: 'uwsgi', hint: 'apt-get install uwsgi uwsgi-plugin-python3' }],
      stopSignal: 'SIGINT',
      note:
        'uWSGI --http-socket closes the connection after every response without sending ' +
        '"Connection: close"; wrk counts each close as a socket read error and reconnects. ' +
        'Those errors are connection churn, not failed requests (every counted request completed).',
    },
  ),
};

/**
 * Groups: `targets` run in this order, one at a time; `ratios` are num/den of
 * requests/s (and CPU per request), with optional `min`/`goal` from the issue's
 * acceptance criteria; `defaults` override the global load options (flags and env win).
 */
export const GROUPS = {
  http: {
    title: 'HTTP on loopback: gatewire HTTP front vs raw node:http, uWSGI, gunicorn',
    targets: ['raw-node', 'gatewire-environ', 'gatewire-node', 'uwsgi-http', 'gunicorn'],
    ratios: [
      { num: 'gatewire-environ', den: 'raw-node', min: 0.85, goal: 0.95 },
      { num: 'gatewire-node', den: 'raw-node' },
      { num: 'gatewire-environ', den: 'uwsgi-http', min: 1.3 },
      { num: 'gatewire-environ', den: 'gunicorn' },
    ],
  },

  // Memory: idle, and under 256 concurrent keep-alive connections.
  rss: {
    title: 'RSS idle and under 256 concurrent keep-alive connections',
    targets: ['gatewire-environ', 'gatewire-node', 'raw-node'],
    ratios: [],
    defaults: { connections: 256, hold: 256 },
    countConnections: true,
  },
};

export function resolveTargets(group) {
  return group.targets.map((t) => (typeof t === 'string' ? TARGETS[t] : t)).filter(Boolean);
}
