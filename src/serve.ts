/**
 * serve(): a Gateway for an app in one call, for programs that embed gatewire.
 *
 *   const server = await serve(app, { http: '127.0.0.1:8080' });
 *   server.listeners[0].address; // { kind: 'tcp', host: '127.0.0.1', port: 8080 }
 *   await server.close();
 *
 * The options are the CLI's, by their ServeOptions names (`--headers-timeout 10s` is
 * `headersTimeout: '10s'`), as texts parsed like the flags; numbers are taken as their text.
 * Unlike the CLI, GATEWIRE_* variables are not read unless `env` is given, no signal handlers
 * are installed, and there are no cluster workers.
 */
import type { App, FetchHandler, NodeHandler, Service } from './app.js';
import { toService } from './loader.js';
import { createLogger, type Logger } from './log.js';
import { OptionError, resolveOptions, SERVE_OPTIONS, type ServeOptions } from './options.js';
import { Gateway } from './server.js';

/** What serve() serves: an environ App, a Service, a Node (req, res) handler, a fetch handler or an object with fetch(), an Express/Koa/Fastify app. */
export type ServeTarget = App | Service | NodeHandler | FetchHandler | { fetch: FetchHandler } | object;

/** The CLI's serve options as texts (`http: '127.0.0.1:8080'`, `maxBodyBytes: '10m'`), plus how to log. */
export type ServeConfig = {
  [K in keyof ServeOptions]?: string | number | boolean | ReadonlyArray<string | number>;
} & {
  /** Where server events go; default: a logger made from logLevel / logFormat / accessLog (stderr). */
  logger?: Logger;
  /** Environment variables read for options not given (GATEWIRE_HTTP...); default: none. */
  env?: NodeJS.ProcessEnv;
};

/** One bound listener: its front, the address actually bound (port 0 resolved), its net.Server. */
export type ServeListener = Awaited<ReturnType<Gateway['listen']>>[number];

export interface RunningServer {
  readonly gateway: Gateway;
  readonly listeners: readonly ServeListener[];
  readonly options: ServeOptions;
  readonly logger: Logger;
  /** Stops listening, lets in-flight requests finish for up to graceMs (default: shutdownTimeout), then closes the logger serve() made. */
  close(graceMs?: number): Promise<void>;
}

const OPTION_KEYS = new Set<string>(SERVE_OPTIONS.map((spec) => spec.key));

function isService(value: unknown): value is Service {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return typeof v.app === 'function' && (v.interface === 'environ' || v.interface === 'node' || v.interface === 'fetch');
}

export async function serve(target: ServeTarget, config: ServeConfig = {}): Promise<RunningServer> {
  const { logger: givenLogger, env = {}, ...texts } = config;
  const flags: Partial<Record<keyof ServeOptions, string | string[] | boolean>> = {};
  for (const [key, value] of Object.entries(texts) as Array<[string, ServeConfig[keyof ServeOptions]]>) {
    if (!OPTION_KEYS.has(key)) throw new OptionError(`serve(): unknown option ${JSON.stringify(key)}`);
    if (value === undefined) continue;
    flags[key as keyof ServeOptions] = typeof value === 'boolean' ? value : Array.isArray(value) ? value.map(String) : String(value);
  }
  const options = resolveOptions(flags, env);
  if (options.workers > 1) throw new OptionError('serve(): workers > 1 needs the gatewire CLI (node:cluster)');
  if (options.cgiBin !== undefined) throw new OptionError('serve(): cgiBin is for the CLI; serve mountApp(prefix, createCgiBinApp({ root }), app) instead');
  const service = isService(target) ? target : toService(target, options.interface, 'value given to serve()');

  const logger = givenLogger ?? createLogger({ level: options.logLevel, format: options.logFormat, accessLog: options.accessLog });
  const ownLogger = givenLogger === undefined;
  const gateway = new Gateway(service, options, logger);
  let listeners: ServeListener[];
  try {
    listeners = await gateway.listen();
  } catch (err) {
    await gateway.close(0).catch(() => undefined);
    if (ownLogger) await logger.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    gateway,
    listeners,
    options,
    logger,
    close(graceMs = options.shutdownTimeout) {
      closing ??= gateway.close(graceMs).then(async () => {
        if (ownLogger) await logger.close();
      });
      return closing;
    },
  };
}
