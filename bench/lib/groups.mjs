// The benchmark groups. Each group is a small table of targets plus the ratios to
// report; a target says how to start its processes, where to send load, and which
// processes to measure (runner.mjs documents the target shape).
//
// To add a target: write one entry with the helpers below. To add a group: add an
// entry to GROUPS. See bench/README.md, "Adding a target or a group".

import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HOST } from './net.mjs';
import { nginxService, passTo, returnHello, PARAMS, FASTCGI_CONF } from './nginx.mjs';
import { HELLO } from './runner.mjs';

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

export const builtCli = { file: 'dist/src/cli.js', hint: 'run `npm run build` first' };

/**
 * floor-net-<proto> and floor-raw-<proto>: the do-nothing floor servers behind nginx; and two
 * net.Server floors that do a little before answering: floor-work-<proto> spins 1 µs,
 * floor-split-<proto> decodes the head into its name and value strings. Their ratios to
 * floor-net-<proto> show how much req/s a microsecond per connection costs here.
 */
function floorTargets(proto) {
  const make = (name, kind, what, extra = []) =>
    behindNginx(name, `nginx ${proto}_pass → ${what} (bench/servers/scgi-floor-${kind}.mjs --proto ${proto}${extra.map((a) => ` ${a}`).join('')})`, {
      backend: (ctx, port) => ({
        cmd: node,
        args: [join(ctx.bench, `servers/scgi-floor-${kind}.mjs`), String(port), HOST, '--proto', proto, ...extra],
      }),
      location: (ctx, port) => passTo(proto, port),
      requires: [{ file: PARAMS[proto] }],
    });
  return {
    [`floor-net-${proto}`]: make(`floor-net-${proto}`, 'net', 'do-nothing net.Server'),
    [`floor-raw-${proto}`]: make(`floor-raw-${proto}`, 'raw', 'do-nothing raw tcp_wrap handle'),
    [`floor-work-${proto}`]: make(`floor-work-${proto}`, 'net', 'the net.Server floor spinning 1 µs per connection', ['--work-ns', '1000']),
    [`floor-split-${proto}`]: make(`floor-split-${proto}`, 'net', 'the net.Server floor splitting the head into strings', ['--split']),
  };
}

/** Node flags for every gatewire process (e.g. BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"). */
function gatewireNodeArgs() {
  const extra = process.env.BENCH_NODE_ARGS;
  return extra ? extra.split(/\s+/).filter(Boolean) : [];
}

/** `gatewire serve [app] <front args>` from the built CLI (`cli`: another checkout's, for --baseline). */
export function gatewire(app, frontArgs, cli = 'dist/src/cli.js') {
  const appArg = app ? [app] : [];
  return { cmd: node, args: [...gatewireNodeArgs(), cli, 'serve', ...appArg, ...frontArgs, ...gatewireExtraArgs()] };
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

// ------------------------------------------------------------ php: fronts for php-fpm
// Three HTTP fronts, each in front of its own fresh php-fpm pool (php-fpm8.2, pm = static,
// pm.max_children = 2, bench/servers/php/fpm.conf), each loaded on two pages:
// /hello.php (the hello response) and /page64k.php (65536 bytes). The pool is a service
// of the target like the front, so it is started and stopped with it and never runs while
// another target is loaded; its CPU shows as `php-fpm`, the front's as `front`.
//
// The pool listens on a unix socket in the target's temp directory (Debian's way:
// /run/php/php8.2-fpm.sock), or on 127.0.0.1:<port> with BENCH_FPM_LISTEN=tcp. Over TCP,
// php-fpm's multi-write answers (the 64 KiB page) meet Nagle + delayed ACK on a kept
// connection (~40 ms per request for a keep-conn client); README, "php".

const fpmReq = { cmd: 'php-fpm8.2', hint: 'apt-get install php8.2-fpm' };
const phpRoot = (ctx) => join(ctx.bench, 'servers/php');
const fpmUnix = () => process.env.BENCH_FPM_LISTEN !== 'tcp';
const fpmSocket = (ctx) => join(ctx.tmp, 'php-fpm.sock');

/** What page64k.php answers (1024 lines of 64 bytes); checked like the hello response. */
export const PAGE64K = {
  status: 200,
  contentType: 'text/plain',
  body: 'Hello, World! This line is 64 bytes long, 1024 of them = 64 KiB\n'.repeat(1024),
};

/** The php-fpm pool: bench/servers/php/fpm.conf with the temp dir and listen address filled in. */
function phpFpmService() {
  return {
    name: 'php-fpm',
    start: (ctx) => {
      const listen = fpmUnix() ? fpmSocket(ctx) : `${HOST}:${ctx.ports.fpm}`;
      const conf = join(ctx.tmp, 'php-fpm.conf');
      const text = readFileSync(join(ctx.bench, 'servers/php/fpm.conf'), 'utf8')
        .replaceAll('@TMP@', ctx.tmp)
        .replaceAll('@LISTEN@', listen);
      writeFileSync(conf, text);
      // nginx started as root runs its worker as nobody: it must reach the socket
      // (listen.mode 0666) through the temp directory (mkdtemp makes it 0700).
      if (fpmUnix()) chmodSync(ctx.tmp, 0o711);
      // -F: foreground (the harness owns its process group); -R: allowed to run as root
      // (workers then stay root; without root the pool runs as the calling user).
      const asRoot = process.getuid?.() === 0 ? ['-R'] : [];
      // SIGTERM: php-fpm's immediate shutdown (SIGQUIT would be the graceful one).
      return { cmd: 'php-fpm8.2', args: ['-F', ...asRoot, '-p', ctx.tmp, '-y', conf], stopSignal: 'SIGTERM' };
    },
    ready: (ctx) => (fpmUnix() ? { path: fpmSocket(ctx) } : { port: ctx.ports.fpm }),
  };
}

/** The pool's address in the forms the fronts take. */
const fpmAddr = {
  gatewire: (ctx) => (fpmUnix() ? `fastcgi://unix:${fpmSocket(ctx)}` : `fastcgi://${HOST}:${ctx.ports.fpm}`),
  client: (ctx) => (fpmUnix() ? `unix:${fpmSocket(ctx)}` : `${HOST}:${ctx.ports.fpm}`),
};

const PHP_FRONTS = {
  'nginx-fpm': {
    label: 'nginx fastcgi_pass (keep-conn, upstream keepalive 8, fastcgi.conf) → php-fpm',
    requires: [nginxReq, { file: FASTCGI_CONF }],
    service: () =>
      nginxService(
        (ctx) =>
          passTo('fastcgi', ctx.ports.fpm, {
            keepConn: true,
            keepalive: 8,
            params: FASTCGI_CONF,
            socket: fpmUnix() ? fpmSocket(ctx) : undefined,
            before: [`root ${phpRoot(ctx)};`],
          }),
        { name: 'front' },
      ),
  },
  // nginx's default for FastCGI (and Debian's snippets/fastcgi-php.conf): no keep-conn,
  // one connection per request, which php-fpm's workers take from the listen queue in order.
  'nginx-fpm-nokeep': {
    label: 'nginx fastcgi_pass, no keep-conn (a connection per request), fastcgi.conf → php-fpm',
    requires: [nginxReq, { file: FASTCGI_CONF }],
    service: () =>
      nginxService(
        (ctx) =>
          passTo('fastcgi', ctx.ports.fpm, {
            params: FASTCGI_CONF,
            socket: fpmUnix() ? fpmSocket(ctx) : undefined,
            before: [`root ${phpRoot(ctx)};`],
          }),
        { name: 'front' },
      ),
  },
  'gatewire-php': {
    label: 'gatewire --http --upstream fastcgi://… --php ROOT --upstream-conns 2 → php-fpm',
    requires: [builtCli],
    service: () => ({
      name: 'front',
      start: (ctx) =>
        gatewire(null, [
          '--http', `${HOST}:${ctx.ports.http}`,
          '--upstream', fpmAddr.gatewire(ctx),
          '--php', phpRoot(ctx),
          '--upstream-conns', '2',
          '--log-level', 'warn',
        ]),
      ready: (ctx) => ({ port: ctx.ports.http }),
    }),
  },
  'fastcgi-client': {
    label: 'node:http + npm fastcgi-client 0.2.0 (bench/servers/fastcgi-client-server.mjs) → php-fpm',
    requires: [{ file: 'node_modules/fastcgi-client/package.json', hint: 'npm ci' }],
    service: () => ({
      name: 'front',
      start: (ctx) => ({
        cmd: node,
        args: [
          join(ctx.bench, 'servers/fastcgi-client-server.mjs'), String(ctx.ports.http), HOST,
          '--fpm', fpmAddr.client(ctx),
          '--root', phpRoot(ctx),
        ],
      }),
      ready: (ctx) => ({ port: ctx.ports.http }),
    }),
  },
};

const PHP_PAGES = {
  hello: { suffix: '', path: '/hello.php', expect: null, what: 'hello.php' },
  '64k': { suffix: '-64k', path: '/page64k.php', expect: PAGE64K, what: 'page64k.php (64 KiB)' },
};

function phpTarget(front, page) {
  const f = PHP_FRONTS[front];
  const p = PHP_PAGES[page];
  const name = `${front}${p.suffix}`;
  return {
    name,
    label: `${f.label}, ${p.what}`,
    requires: [fpmReq, { file: 'bench/servers/php/fpm.conf' }, ...f.requires],
    ports: ['http', 'fpm'],
    services: [phpFpmService(), f.service()],
    url: (ctx) => `http://${HOST}:${ctx.ports.http}${p.path}`,
    holdPort: (ctx) => ctx.ports.http,
    ...(p.expect ? { expect: p.expect } : {}),
  };
}

// The Node floor (hello only: it answers a fixed body without reading php-fpm's): see the file.
TARGETS['node-fpm-floor'] = {
  name: 'node-fpm-floor',
  label: 'Node floor: node:http + 2 kept connections, a fixed pre-encoded FastCGI request, the answer not parsed (bench/servers/fpm-floor.mjs) → php-fpm, hello.php',
  requires: [fpmReq, { file: 'bench/servers/php/fpm.conf' }],
  ports: ['http', 'fpm'],
  services: [
    phpFpmService(),
    {
      name: 'front',
      start: (ctx) => ({
        cmd: node,
        args: [join(ctx.bench, 'servers/fpm-floor.mjs'), String(ctx.ports.http), HOST, '--fpm', fpmAddr.client(ctx), '--script', join(phpRoot(ctx), 'hello.php'), '--conns', '2'],
      }),
      ready: (ctx) => ({ port: ctx.ports.http }),
    },
  ],
  url: (ctx) => `http://${HOST}:${ctx.ports.http}/hello.php`,
  holdPort: (ctx) => ctx.ports.http,
};

for (const page of Object.keys(PHP_PAGES)) {
  for (const front of Object.keys(PHP_FRONTS)) {
    const t = phpTarget(front, page);
    TARGETS[t.name] = t;
  }
}

// ------------------------------------------------------------ bridge: fronts for uWSGI
// One uWSGI app server (master + 2 worker processes, Python hello, bench/servers/hello.py)
// per target, with an HTTP front before it: gatewire --upstream or nginx. uWSGI listens
// with --uwsgi-socket (or --scgi-socket for the SCGI pair). Both protocols carry one
// request per connection from either front. CPU: `uwsgi` and `front`.
// These names are the bridge group's own (the uwsgi group's gatewire-uwsgi is nginx →
// gatewire), so the targets are listed in the group directly, not in TARGETS.

function uwsgiAppService(socketFlag) {
  return {
    name: 'uwsgi',
    start: (ctx) => ({
      cmd: 'uwsgi',
      args: [
        '--plugin', 'python3',
        socketFlag, `${HOST}:${ctx.ports.app}`,
        '--wsgi-file', join(ctx.bench, 'servers/hello.py'),
        '--master',
        '--processes', '2',
        '--need-app',
        '--die-on-term',
        '--disable-logging',
        '--listen', '1024',
      ],
      env: python,
      // SIGINT: uWSGI's immediate shutdown, master and workers (the group gets it).
      stopSignal: 'SIGINT',
    }),
    ready: (ctx) => ({ port: ctx.ports.app }),
  };
}

function bridgeTarget(name, label, proto, front) {
  const socketFlag = proto === 'scgi' ? '--scgi-socket' : '--uwsgi-socket';
  const frontService =
    front === 'nginx'
      ? nginxService((ctx) => passTo(proto, ctx.ports.app), { name: 'front' })
      : {
          name: 'front',
          start: (ctx) =>
            gatewire(null, ['--http', `${HOST}:${ctx.ports.http}`, '--upstream', `${proto}://${HOST}:${ctx.ports.app}`, '--log-level', 'warn']),
          ready: (ctx) => ({ port: ctx.ports.http }),
        };
  return {
    name,
    label,
    requires: [uwsgiReq, ...(front === 'nginx' ? [nginxReq, { file: PARAMS[proto] }] : [builtCli])],
    ports: ['http', 'app'],
    services: [uwsgiAppService(socketFlag), frontService],
    url: (ctx) => `http://${HOST}:${ctx.ports.http}/`,
    holdPort: (ctx) => ctx.ports.http,
  };
}

export const BRIDGE_TARGETS = {
  'gatewire-uwsgi': bridgeTarget('gatewire-uwsgi', 'gatewire --http --upstream uwsgi://… → uWSGI --uwsgi-socket (master + 2 processes)', 'uwsgi', 'gatewire'),
  'nginx-uwsgi': bridgeTarget('nginx-uwsgi', 'nginx uwsgi_pass (uwsgi_params) → uWSGI --uwsgi-socket (master + 2 processes)', 'uwsgi', 'nginx'),
  'gatewire-uwsgi-scgi': bridgeTarget('gatewire-uwsgi-scgi', 'gatewire --http --upstream scgi://… → uWSGI --scgi-socket (master + 2 processes)', 'scgi', 'gatewire'),
  'nginx-uwsgi-scgi': bridgeTarget('nginx-uwsgi-scgi', 'nginx scgi_pass (scgi_params) → uWSGI --scgi-socket (master + 2 processes)', 'scgi', 'nginx'),
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
    targets: ['nginx-return200', 'gatewire-scgi', 'uwsgi-scgi', 'floor-net-scgi', 'floor-raw-scgi', 'floor-work-scgi', 'floor-split-scgi'],
    ratios: [
      { num: 'gatewire-scgi', den: 'uwsgi-scgi', min: 1.2 },
      { num: 'gatewire-scgi', den: 'floor-net-scgi' },
      { num: 'floor-net-scgi', den: 'uwsgi-scgi' },
      { num: 'floor-raw-scgi', den: 'uwsgi-scgi' },
      { num: 'gatewire-scgi', den: 'nginx-return200' },
      { num: 'floor-work-scgi', den: 'floor-net-scgi' },
      { num: 'floor-split-scgi', den: 'floor-net-scgi' },
    ],
  },

  uwsgi: {
    title: 'uwsgi protocol behind nginx: gatewire vs uWSGI --uwsgi-socket, with the do-nothing Node floors',
    targets: ['nginx-return200', 'gatewire-uwsgi', 'uwsgi-uwsgi', 'floor-net-uwsgi', 'floor-raw-uwsgi', 'floor-work-uwsgi', 'floor-split-uwsgi'],
    ratios: [
      { num: 'gatewire-uwsgi', den: 'uwsgi-uwsgi', min: 1.2 },
      { num: 'gatewire-uwsgi', den: 'floor-net-uwsgi' },
      { num: 'floor-net-uwsgi', den: 'uwsgi-uwsgi' },
      { num: 'floor-raw-uwsgi', den: 'uwsgi-uwsgi' },
      { num: 'gatewire-uwsgi', den: 'nginx-return200' },
      { num: 'floor-work-uwsgi', den: 'floor-net-uwsgi' },
      { num: 'floor-split-uwsgi', den: 'floor-net-uwsgi' },
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

  // HTTP fronts for php-fpm (one fresh pool of 2 static workers per target), two pages.
  php: {
    title: 'HTTP fronts for php-fpm (pm static, 2 workers): gatewire --upstream fastcgi:// --php vs nginx vs node + fastcgi-client',
    targets: [
      'nginx-fpm', 'nginx-fpm-nokeep', 'gatewire-php', 'fastcgi-client', 'node-fpm-floor',
      'nginx-fpm-64k', 'nginx-fpm-nokeep-64k', 'gatewire-php-64k', 'fastcgi-client-64k',
    ],
    ratios: [
      { num: 'gatewire-php', den: 'nginx-fpm', min: 0.9 },
      { num: 'gatewire-php', den: 'nginx-fpm-nokeep' },
      { num: 'gatewire-php', den: 'fastcgi-client', min: 3 },
      { num: 'node-fpm-floor', den: 'nginx-fpm' },
      { num: 'gatewire-php', den: 'node-fpm-floor' },
      { num: 'gatewire-php-64k', den: 'nginx-fpm-64k', min: 0.9 },
      { num: 'gatewire-php-64k', den: 'nginx-fpm-nokeep-64k' },
      { num: 'gatewire-php-64k', den: 'fastcgi-client-64k', min: 3 },
    ],
  },

  // HTTP fronts for a uWSGI app server (master + 2 workers): gatewire --upstream vs nginx.
  bridge: {
    title: 'HTTP fronts for uWSGI (master + 2 workers): gatewire --upstream uwsgi:// | scgi:// vs nginx uwsgi_pass | scgi_pass',
    targets: Object.values(BRIDGE_TARGETS),
    ratios: [
      { num: 'gatewire-uwsgi', den: 'nginx-uwsgi' },
      { num: 'gatewire-uwsgi-scgi', den: 'nginx-uwsgi-scgi' },
      { num: 'gatewire-uwsgi-scgi', den: 'gatewire-uwsgi' },
    ],
  },

  // One gatewire process serving every front at once; run by bench/lib/mixed.mjs (sessions
  // of several loads on one process, not one load per target). `targets` are the references,
  // run as ordinary targets in every round; the fronts and their references are MIXED_FRONTS
  // in mixed.mjs. README, "mixed".
  mixed: {
    title: 'one gatewire process serving --http, --fastcgi, --scgi, --uwsgi and --cgi-bin: each front after the others, vs the references',
    mixed: true,
    targets: ['raw-node', 'gatewire-environ', 'uwsgi-fastcgi', 'floor-net-scgi', 'floor-net-uwsgi', 'fcgiwrap-c4'],
    ratios: [],
    // the issue's measurement: wrk -t1 -c32, 5 s loads
    defaults: { duration: 5, connections: 32, rounds: 3 },
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
  if (!baseline) return targets.map(withExpect);
  return targets.flatMap((t) => (t.name.startsWith('gatewire-') ? [t, baselineTwin(t, baseline)] : [t])).map(withExpect);
}

/**
 * A target may set `expect` ({ status, contentType, body }) when its first response is
 * not the hello one (the php group's 64 KiB page). The runner checks every target's first
 * response (and the held connections' bodies) against its exported HELLO object, so each
 * target's url() — called by the runner just before that check — sets HELLO to the
 * target's expectation, or back to the hello response. (A runner that read
 * `target.expect` itself would make this wrapper unnecessary.)
 */
const HELLO_DEFAULT = { ...HELLO };
function withExpect(target) {
  return {
    ...target,
    url: (ctx) => {
      Object.assign(HELLO, HELLO_DEFAULT, target.expect ?? {});
      return target.url(ctx);
    },
  };
}

/** before/after ratios for the baseline twins, in group order. */
export function baselineRatios(group) {
  return group.targets
    .map((t) => (typeof t === 'string' ? t : t.name))
    .filter((t) => t.startsWith('gatewire-'))
    .map((t) => ({ num: t, den: `${t}@base` }));
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
