/**
 * What `gatewire serve` serves: the app module, the cgi-bin directory under its mount, or both.
 * A request whose PATH_INFO lies under the CGI mount goes to the cgi-bin App with the mount moved
 * from PATH_INFO to SCRIPT_NAME; every other request goes to the app (404 without one).
 */
import type { App, Service } from './app.js';
import { createCgiBinApp, CGI_INTERPRETERS, type CgiInterpreter } from './cgi-host/host.js';
import { describeSpawnMethod, spawnMethod } from './cgi-host/spawn.js';
import { workerInfo } from './worker-env.js';
import { splitMount } from './environ.js';
import { replyFromApp } from './reply.js';
import { describeInterface } from './load-report.js';
import { LoadError, loadService } from './loader.js';
import type { Logger } from './log.js';
import type { ServeOptions } from './options.js';
import { formatUpstream } from './upstream/address.js';
import { upstreamApp } from './upstream/index.js';

const notFound: App = (environ, startResponse) => replyFromApp(startResponse, 404, environ['gatewire.request_id']);

/**
 * Routes PATH_INFO under `prefix` to `inner` (SCRIPT_NAME gains the prefix), the rest to `outer`.
 * A web server that split the path itself (nginx's fastcgi_split_path_info: SCRIPT_NAME
 * `/cgi-bin/env.sh`, PATH_INFO `/a/b`) has put the prefix in SCRIPT_NAME already: the request is
 * `inner`'s when SCRIPT_NAME + PATH_INFO lies under the prefix, and it gets the prefix as its
 * SCRIPT_NAME and the rest as its PATH_INFO, as if the path had come whole.
 */
export function mountApp(prefix: string, inner: App, outer: App = notFound): App {
  return (environ, startResponse) => {
    let split = splitMount(environ.PATH_INFO, prefix);
    if (split === null && environ.SCRIPT_NAME !== '') {
      split = splitMount(environ.SCRIPT_NAME + environ.PATH_INFO, prefix);
      if (split !== null) environ.SCRIPT_NAME = '';
    }
    if (split === null) return outer(environ, startResponse);
    environ.SCRIPT_NAME += split[0];
    environ.PATH_INFO = split[1];
    return inner(environ, startResponse);
  };
}

/** `.py,.pl,.php` (the presets) or `.ext=command` entries → the cgi-bin interpreters table. */
export function parseInterpreters(list: string): Record<string, string | CgiInterpreter> {
  const out: Record<string, string | CgiInterpreter> = {};
  for (const raw of list.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    const ext = (eq === -1 ? entry : entry.slice(0, eq)).trim();
    const key = ext.startsWith('.') ? ext : `.${ext}`;
    if (eq !== -1) out[key] = entry.slice(eq + 1).trim();
    else {
      const preset = CGI_INTERPRETERS[key];
      if (preset === undefined) throw new LoadError(`--cgi-interpreters: no preset for ${key}; write ${key}=COMMAND`);
      out[key] = preset;
    }
  }
  return out;
}

export async function buildService(appSpec: string | undefined, options: ServeOptions, logger: Logger): Promise<Service> {
  const upstream = options.upstream.length > 0 ? upstreamService(options, logger) : undefined;
  if (appSpec !== undefined && upstream !== undefined) {
    throw new LoadError(`serve: give an APP or --upstream URL, not both (got ${appSpec} and ${options.upstream.map(formatUpstream).join(', ')})`);
  }
  if (options.php !== undefined && upstream === undefined) throw new LoadError('serve: --php ROOT needs a FastCGI --upstream (php-fpm), e.g. --upstream fastcgi+unix:///run/php/php8.2-fpm.sock');
  const app: Service | undefined = upstream ?? (appSpec === undefined ? undefined : await loadService(appSpec, options.interface));
  if (options.cgiBin === undefined) {
    if (app === undefined) throw new LoadError('serve: no app given (gatewire serve APP --http ADDR, --upstream URL, or --cgi-bin DIR)');
    return app;
  }
  const cgi = createCgiBinApp({
    root: options.cgiBin,
    headersTimeout: options.cgiTimeout,
    idleTimeout: options.cgiIdleTimeout,
    totalTimeout: options.cgiTotalTimeout,
    ...(options.cgiMaxProcesses === undefined ? {} : { maxProcesses: options.cgiMaxProcesses }),
    maxQueue: options.cgiMaxQueue,
    maxBodyBytes: options.maxBodyBytes,
    interpreters: options.cgiInterpreters === undefined ? {} : parseInterpreters(options.cgiInterpreters),
    ...(options.cgiInheritEnv === undefined ? {} : { inheritEnv: options.cgiInheritEnv.split(',').map((n) => n.trim()).filter((n) => n !== '') }),
    ...(options.cgiIndex === undefined ? {} : { index: options.cgiIndex.split(',').map((n) => n.trim()).filter((n) => n !== '') }),
    passAuthorization: options.cgiPassAuth,
    ...(options.cgiScriptLog === undefined ? {} : { scriptLog: options.cgiScriptLog }),
    ...(options.cgiDocumentRoot === undefined ? {} : { documentRoot: options.cgiDocumentRoot }),
    followSymlinks: options.cgiFollowSymlinks,
    logger,
  });
  // One line per server: the first workers (or the only process) say it, later ones do not.
  // The fallback is a warning (every script costs the server a fork), unless it was asked for.
  if (workerInfo()?.announce !== false) {
    const how = spawnMethod();
    const line = `cgi-bin: scripts start with ${describeSpawnMethod(how)}`;
    if (how.method === 'native' || process.env.GATEWIRE_SPAWN === 'node') logger.info(line);
    else logger.warn(line);
  }
  // Node handlers lose the HTTP front's zero-cost path here: the CGI mount must see every request.
  return {
    app: mountApp(options.cgiMount, cgi, app?.app),
    interface: app?.interface ?? 'environ',
    ...(app?.framework === undefined ? {} : { framework: app.framework }),
    probes: { ...app?.probes, cgi: () => cgi.stats() },
  };
}

/**
 * CLI-13: the start-up line naming the app and what it was detected as
 * (`app: app.mjs (node handler: Express)`); undefined when no app module is served.
 */
export function appLine(appSpec: string | undefined, service: Service): string | undefined {
  return appSpec === undefined ? undefined : `app: ${appSpec} (${describeInterface(service.interface, service.framework)})`;
}

/** --upstream (and --php): the application servers behind gatewire are the app (src/upstream/). */
function upstreamService(options: ServeOptions, logger: Logger): Service {
  const protocols = new Set(options.upstream.map((t) => t.protocol));
  if (protocols.size > 1) throw new LoadError(`serve: several --upstream must speak one protocol, got ${[...protocols].join(' and ')}`);
  const fastcgi = protocols.has('fastcgi');
  if (options.php !== undefined && !fastcgi) throw new LoadError('serve: --php ROOT needs a FastCGI --upstream (php-fpm), not scgi:// or uwsgi://');
  const upstream = upstreamApp(options.upstream, {
    logger,
    params: options.upstreamParam,
    connectTimeout: options.upstreamConnectTimeout,
    readTimeout: options.upstreamReadTimeout,
    idleTimeout: options.upstreamIdleTimeout,
    maxConnections: options.upstreamConns,
    maxFails: options.upstreamMaxFails,
    failTimeout: options.upstreamFailTimeout,
  });
  const probes = { upstream: () => upstream.stats() };
  if (options.php === undefined) return { app: upstream, interface: 'environ', probes };
  const { phpApp } = require('./upstream/php.js') as typeof import('./upstream/php.js');
  return { app: phpApp({ root: options.php, upstream, logger }), interface: 'environ', probes };
}
