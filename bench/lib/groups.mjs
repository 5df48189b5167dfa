// The benchmark groups. Each group is a small table of targets plus the ratios to
// report; a target says how to start its processes, where to send load, and which
// processes to measure (runner.mjs documents the target shape).
//
// To add a target: write one entry with the helpers below. To add a group: add an
// entry to GROUPS. See bench/README.md, "Adding a target or a group".

import { join } from 'node:path';
import { HOST } from './net.mjs';
import { nginxService, passTo, returnHello, PARAMS } from './nginx.mjs';

export { HOST };

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

const nginxReq = { cmd: 'nginx', hint: 'apt-get install nginx' };

/**
 * A target behind nginx: a backend service on ctx.ports.backend, and nginx on
 * ctx.ports.http whose `location /` is `location(ctx, backendPort)` (see nginx.mjs).
 * Load goes to nginx; CPU and RSS are measured over both (shown per service too).
 * Without `backend`, nginx alone (the `return 200` ceiling).
 */
export function behindNginx(name, label, { backend, location, path = '/', requires = [], stopSignal, note } = {}) {
  const services = [];
  if (backend) {
    services.push({
      name: 'backend',
      start: (ctx) => ({ stopSignal, ...backend(ctx, ctx.ports.backend) }),
      ready: (ctx) => ({ port: ctx.ports.backend }),
    });
  }
  services.push(nginxService((ctx) => location(ctx, ctx.ports.backend)));
  return {
    name,
    label,
    note,
    requires: [nginxReq, ...requires],
    ports: backend ? ['http', 'backend'] : ['http'],
    services,
    url: (ctx) => `http://${HOST}:${ctx.ports.http}${path}`,
    holdPort: (ctx) => ctx.ports.http,
  };
}

const uwsgiReq = { cmd: 'uwsgi', hint: 'apt-get install uwsgi uwsgi-plugin-python3' };

/** uWSGI, one process, Python hello, listening with `socketFlag` (e.g. --fastcgi-socket). */
function uwsgiPython(ctx, socketFlag, port) {
  return {
    cmd: 'uwsgi',
    args: [
      '--plugin', 'python3',
      socketFlag, `${HOST}:${port}`,
      '--wsgi-file', join(ctx.bench, 'servers/hello.py'),
      '--processes', '1',
      '--need-app',
      '--die-on-term',
      '--disable-logging',
      '--listen', '1024',
    ],
    env: python,
  };
}

const builtCli = { file: 'dist/src/cli.js', hint: 'run `npm run build` first' };

/** floor-net-<proto> and floor-raw-<proto>: the do-nothing floor servers behind nginx. */
function floorTargets(proto) {
  const make = (kind, what) =>
    behindNginx(`floor-${kind}-${proto}`, `nginx ${proto}_pass → do-nothing ${what} (bench/servers/scgi-floor-${kind}.mjs --proto ${proto})`, {
      backend: (ctx, port) => ({
        cmd: node,
        args: [join(ctx.bench, `servers/scgi-floor-${kind}.mjs`), String(port), HOST, '--proto', proto],
      }),
      location: (ctx, port) => passTo(proto, port),
      requires: [{ file: PARAMS[proto] }],
    });
  return {
    [`floor-net-${proto}`]: make('net', 'net.Server'),
    [`floor-raw-${proto}`]: make('raw', 'raw tcp_wrap handle'),
  };
}

/** Node flags for every gatewire process (e.g. BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"). */
function gatewireNodeArgs() {
  const extra = process.env.BENCH_NODE_ARGS;
  return extra ? extra.split(/\s+/).filter(Boolean) : [];
}

/** `gatewire serve [app] <front args>` from the built CLI. */
function gatewire(app, frontArgs) {
  const appArg = app ? [app] : [];
  return { cmd: node, args: [...gatewireNodeArgs(), 'dist/src/cli.js', 'serve', ...appArg, ...frontArgs, ...gatewireExtraArgs()] };
}

/** fcgiwrap with `workers` FastCGI worker processes (-c), started by spawn-fcgi, behind nginx. */
function fcgiwrapTarget(name, workers) {
  return behindNginx(name, `nginx fastcgi_pass → fcgiwrap -c ${workers} (spawn-fcgi), hello.cgi (sh)`, {
    // spawn-fcgi -n: stay in the foreground and exec fcgiwrap on the bound socket.
    backend: (ctx, port) => ({
      cmd: 'spawn-fcgi',
      args: ['-n', '-a', HOST, '-p', String(port), '--', '/usr/sbin/fcgiwrap', '-c', String(workers)],
    }),
    location: (ctx, port) =>
      passTo('fastcgi', port, {
        extra: [`fastcgi_param SCRIPT_FILENAME ${join(ctx.bench, 'servers/cgi-bin/hello.cgi')};`],
      }),
    path: '/cgi-bin/hello.cgi',
    requires: [
      { cmd: 'spawn-fcgi', hint: 'apt-get install spawn-fcgi' },
      { file: '/usr/sbin/fcgiwrap', hint: 'apt-get install fcgiwrap' },
      { file: PARAMS.fastcgi },
    ],
    note:
      `fcgiwrap runs ${workers} FastCGI worker process${workers === 1 ? '' : 'es'}, each forking one script at a time. ` +
      "Its scripts' CPU shows as \"other CPU\": its workers ignore SIGCHLD, so the kernel reaps the scripts " +
      "without adding their time to fcgiwrap's account (gatewire's column includes its scripts).",
  });
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

// ------------------------------------------------------------ behind nginx
// Scaffolding for the gateway-protocol groups. The gatewire flags (--fastcgi, --scgi,
// --uwsgi, --cgi-bin) follow DESIGN.md; a target whose flag the CLI does not have yet
// fails at start with the CLI's own message, and the others run.

Object.assign(TARGETS, {
  'nginx-return200': behindNginx('nginx-return200', 'nginx alone, `return 200` (the ceiling)', {
    location: () => returnHello(),
  }),

  'gatewire-fastcgi': behindNginx('gatewire-fastcgi', 'nginx fastcgi_pass (keep-conn) → gatewire FastCGI, environ app', {
    backend: (ctx, port) => gatewire('examples/hello.mjs', ['--fastcgi', `${HOST}:${port}`]),
    location: (ctx, port) => passTo('fastcgi', port, { keepConn: true }),
    requires: [builtCli, { file: 'examples/hello.mjs' }, { file: PARAMS.fastcgi }],
  }),

  'node-fastcgi': behindNginx('node-fastcgi', 'nginx fastcgi_pass → node-fastcgi 2 (npm), node handler', {
    backend: (ctx, port) => ({ cmd: node, args: [join(ctx.bench, 'servers/node-fastcgi.mjs'), String(port), HOST] }),
    location: (ctx, port) => passTo('fastcgi', port),
    requires: [{ file: 'node_modules/node-fastcgi/package.json', hint: 'npm ci' }, { file: PARAMS.fastcgi }],
  }),

  'uwsgi-fastcgi': behindNginx('uwsgi-fastcgi', 'nginx fastcgi_pass → uWSGI --fastcgi-socket, 1 process, Python hello', {
    backend: (ctx, port) => uwsgiPython(ctx, '--fastcgi-socket', port),
    location: (ctx, port) => passTo('fastcgi', port),
    requires: [uwsgiReq, { file: PARAMS.fastcgi }],
    stopSignal: 'SIGINT',
  }),

  'gatewire-scgi': behindNginx('gatewire-scgi', 'nginx scgi_pass → gatewire SCGI, environ app', {
    backend: (ctx, port) => gatewire('examples/hello.mjs', ['--scgi', `${HOST}:${port}`]),
    location: (ctx, port) => passTo('scgi', port),
    requires: [builtCli, { file: 'examples/hello.mjs' }, { file: PARAMS.scgi }],
  }),

  'uwsgi-scgi': behindNginx('uwsgi-scgi', 'nginx scgi_pass → uWSGI --scgi-socket, 1 process, Python hello', {
    backend: (ctx, port) => uwsgiPython(ctx, '--scgi-socket', port),
    location: (ctx, port) => passTo('scgi', port),
    requires: [uwsgiReq, { file: PARAMS.scgi }],
    stopSignal: 'SIGINT',
  }),

  'gatewire-uwsgi': behindNginx('gatewire-uwsgi', 'nginx uwsgi_pass → gatewire uwsgi, environ app', {
    backend: (ctx, port) => gatewire('examples/hello.mjs', ['--uwsgi', `${HOST}:${port}`]),
    location: (ctx, port) => passTo('uwsgi', port),
    requires: [builtCli, { file: 'examples/hello.mjs' }, { file: PARAMS.uwsgi }],
  }),

  'uwsgi-uwsgi': behindNginx('uwsgi-uwsgi', 'nginx uwsgi_pass → uWSGI --uwsgi-socket, 1 process, Python hello', {
    backend: (ctx, port) => uwsgiPython(ctx, '--uwsgi-socket', port),
    location: (ctx, port) => passTo('uwsgi', port),
    requires: [uwsgiReq, { file: PARAMS.uwsgi }],
    stopSignal: 'SIGINT',
  }),

  // The floors of any Node design for one-request-per-connection protocols: do-nothing
  // servers that answer every connection with a fixed hello (bench/servers/scgi-floor-*.mjs).
  // `floor-net-*` is a net.Server (what any gateway front on node:net pays per connection),
  // `floor-raw-*` the raw libuv TCP handle through internal bindings (what Node itself pays;
  // a measuring stick only). Their ratios to uWSGI are the ceiling of a Node server here.
  ...floorTargets('scgi'),
  ...floorTargets('uwsgi'),

  // CGI: one process per request running bench/servers/cgi-bin/hello.cgi (/bin/sh).
  'gatewire-cgi-bin': behindNginx('gatewire-cgi-bin', 'nginx fastcgi_pass (keep-conn) → gatewire --cgi-bin, hello.cgi (sh)', {
    backend: (ctx, port) =>
      gatewire(null, ['--cgi-bin', join(ctx.bench, 'servers/cgi-bin'), '--fastcgi', `${HOST}:${port}`]),
    location: (ctx, port) => passTo('fastcgi', port, { keepConn: true }),
    path: '/cgi-bin/hello.cgi',
    requires: [builtCli, { file: PARAMS.fastcgi }],
  }),

  fcgiwrap: fcgiwrapTarget('fcgiwrap', 1),
  'fcgiwrap-c4': fcgiwrapTarget('fcgiwrap-c4', 4),
});

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

  fastcgi: {
    title: 'FastCGI behind nginx: gatewire vs node-fastcgi vs uWSGI, with nginx `return 200` as the ceiling',
    targets: ['nginx-return200', 'gatewire-fastcgi', 'node-fastcgi', 'uwsgi-fastcgi'],
    ratios: [
      { num: 'gatewire-fastcgi', den: 'node-fastcgi' },
      { num: 'gatewire-fastcgi', den: 'uwsgi-fastcgi' },
      { num: 'gatewire-fastcgi', den: 'nginx-return200' },
    ],
  },

  scgi: {
    title: 'SCGI behind nginx: gatewire vs uWSGI --scgi-socket, with the do-nothing Node floors',
    targets: ['nginx-return200', 'gatewire-scgi', 'uwsgi-scgi', 'floor-net-scgi', 'floor-raw-scgi'],
    ratios: [
      { num: 'gatewire-scgi', den: 'uwsgi-scgi', min: 1.2 },
      { num: 'gatewire-scgi', den: 'floor-net-scgi' },
      { num: 'floor-net-scgi', den: 'uwsgi-scgi' },
      { num: 'floor-raw-scgi', den: 'uwsgi-scgi' },
      { num: 'gatewire-scgi', den: 'nginx-return200' },
    ],
  },

  uwsgi: {
    title: 'uwsgi protocol behind nginx: gatewire vs uWSGI --uwsgi-socket, with the do-nothing Node floors',
    targets: ['nginx-return200', 'gatewire-uwsgi', 'uwsgi-uwsgi', 'floor-net-uwsgi', 'floor-raw-uwsgi'],
    ratios: [
      { num: 'gatewire-uwsgi', den: 'uwsgi-uwsgi', min: 1.2 },
      { num: 'gatewire-uwsgi', den: 'floor-net-uwsgi' },
      { num: 'floor-net-uwsgi', den: 'uwsgi-uwsgi' },
      { num: 'floor-raw-uwsgi', den: 'uwsgi-uwsgi' },
      { num: 'gatewire-uwsgi', den: 'nginx-return200' },
    ],
  },

  cgi: {
    title: 'CGI scripts behind nginx: gatewire --cgi-bin vs fcgiwrap (1 and 4 workers)',
    targets: ['gatewire-cgi-bin', 'fcgiwrap-c4', 'fcgiwrap'],
    ratios: [
      { num: 'gatewire-cgi-bin', den: 'fcgiwrap-c4', min: 1.0 },
      { num: 'gatewire-cgi-bin', den: 'fcgiwrap' },
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

/**
 * The group's targets. With a baseline (`--baseline DIR` / BENCH_BASELINE: another checkout of
 * gatewire, built), every gatewire target gets a twin `NAME@base` running DIR's dist/src/cli.js
 * on the same app, config and port layout, right after it in every round: before/after ratios
 * measured in the same run.
 */
export function resolveTargets(group, baseline) {
  const targets = group.targets.map((t) => (typeof t === 'string' ? TARGETS[t] : t)).filter(Boolean);
  if (!baseline) return targets;
  return targets.flatMap((t) => (t.name.startsWith('gatewire-') ? [t, baselineTwin(t, baseline)] : [t]));
}

/** before/after ratios for the baseline twins, in group order. */
export function baselineRatios(group) {
  return group.targets.filter((t) => typeof t === 'string' && t.startsWith('gatewire-')).map((t) => ({ num: t, den: `${t}@base` }));
}

function baselineTwin(target, baseline) {
  const cli = join(baseline, 'dist/src/cli.js');
  const rewrite = (spec) => ({ ...spec, args: (spec.args ?? []).map((a) => (a === 'dist/src/cli.js' ? cli : a)) });
  return {
    ...target,
    name: `${target.name}@base`,
    label: `${target.label} [baseline: ${baseline}]`,
    requires: [...(target.requires ?? []).filter((r) => r.file !== 'dist/src/cli.js'), { file: cli, hint: 'build the baseline checkout first' }],
    services: target.services.map((svc) => ({ ...svc, start: (ctx) => rewrite(svc.start(ctx)) })),
  };
}
