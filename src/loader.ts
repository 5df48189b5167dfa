/**
 * Loads an app module (`PATH[:export]`, .js/.mjs/.cjs, ESM or CommonJS) and turns whatever it
 * exports into a Service. Interface detection, unless `--interface` says otherwise:
 *   - an object or function with a `fetch` method (Hono app), or a function of one parameter → fetch
 *   - an Express/Connect app (`handle` + `use`), a Koa app (`callback`), a Fastify instance
 *     (`routing` + `ready`) → node
 *   - any other function → environ (`(environ, startResponse) => body`)
 * A module can say which it is with `export const gatewireInterface = 'node'` (a plain
 * `(req, res)` function looks exactly like an environ app).
 * Whatever the interface, a module may also export `upgrade(req, socket, head)` (a named export,
 * or a property of the default export object): the Service's Upgrade handler (H-15).
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { App, AppInterface, FetchHandler, NodeHandler, Service, UpgradeHandler } from './app.js';
import { fromFetchHandler } from './apps/fetch.js';
import { fromNodeHandler } from './apps/node.js';
import { GatewireError, ServerErrorCode } from './errors.js';
import { frameworkOf, syntaxErrorLocation } from './load-report.js';

/** A load failure: the CLI prints the message on one line and exits 2. */
export class LoadError extends GatewireError {
  override name = 'LoadError';
  override readonly code = ServerErrorCode.Load;
}

export function splitAppSpec(spec: string): { file: string; exportName: string | undefined } {
  const colon = spec.lastIndexOf(':');
  if (colon > 0) {
    const name = spec.slice(colon + 1);
    if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name)) return { file: spec.slice(0, colon), exportName: name };
  }
  return { file: spec, exportName: undefined };
}

export async function loadService(spec: string, forced?: AppInterface, cwd = process.cwd()): Promise<Service> {
  const { file, exportName } = splitAppSpec(spec);
  const abs = path.resolve(cwd, file);
  if (!existsSync(abs)) throw new LoadError(`cannot load app ${JSON.stringify(spec)}: no such file ${abs}`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(abs).href)) as Record<string, unknown>;
  } catch (err) {
    // A module may throw anything (`throw null`, a string): still one line, never a TypeError here.
    const message = err instanceof Error ? err.message : `threw ${describe(err)}${typeof err === 'string' ? ` ${JSON.stringify(err)}` : ''}`;
    // CLI-11: a syntax error names its file, line and column.
    const where = syntaxErrorLocation(err, abs);
    throw new LoadError(`cannot load app ${JSON.stringify(spec)}: ${where === undefined ? '' : `${where}: SyntaxError: `}${message.split('\n')[0]}`);
  }
  const exported = pickExport(mod, exportName, spec);
  // A module may declare its interface: `export const gatewireInterface = 'node'`.
  const declared = mod.gatewireInterface ?? (mod.default as Record<string, unknown> | undefined)?.gatewireInterface;
  if (forced === undefined && declared !== undefined) {
    if (declared !== 'environ' && declared !== 'node' && declared !== 'fetch') throw new LoadError(`cannot load app ${JSON.stringify(spec)}: gatewireInterface must be environ, node or fetch, not ${JSON.stringify(declared)}`);
    forced = declared;
  }
  const service = toService(exported, forced, `${exportName ?? 'default'} export of ${file}`);
  const framework = frameworkOf(exported); // for the start-up line (CLI-13)
  if (framework !== undefined) service.framework = framework;
  const upgrade = upgradeExport(mod, spec);
  if (upgrade !== undefined) service.upgrade = upgrade;
  return service;
}

/** H-15: `export function upgrade(req, socket, head)`, or `upgrade` on the default export object. */
function upgradeExport(mod: Record<string, unknown>, spec: string): UpgradeHandler | undefined {
  const dflt = mod.default;
  const owner = mod.upgrade !== undefined ? undefined : dflt !== null && typeof dflt === 'object' ? (dflt as Record<string, unknown>) : undefined;
  const value = mod.upgrade ?? owner?.upgrade;
  if (value === undefined) return undefined;
  if (typeof value !== 'function') throw new LoadError(`cannot load app ${JSON.stringify(spec)}: the upgrade export must be a function (req, socket, head), not ${describe(value)}`);
  return owner === undefined ? (value as UpgradeHandler) : (value as UpgradeHandler).bind(owner);
}

function pickExport(mod: Record<string, unknown>, name: string | undefined, spec: string): unknown {
  const dflt = mod.default as Record<string, unknown> | undefined;
  if (name !== undefined) {
    const v = mod[name] ?? (dflt !== null && typeof dflt === 'object' ? dflt[name] : typeof dflt === 'function' ? (dflt as unknown as Record<string, unknown>)[name] : undefined);
    if (v === undefined) throw new LoadError(`cannot load app ${JSON.stringify(spec)}: no export named ${name} (exports: ${exportNames(mod)})`);
    return v;
  }
  for (const candidate of [mod.default, mod.app, mod.handler]) if (candidate !== undefined) return candidate;
  throw new LoadError(`cannot load app ${JSON.stringify(spec)}: no default export, and no export named app or handler (exports: ${exportNames(mod)})`);
}

function exportNames(mod: Record<string, unknown>): string {
  const names = Object.keys(mod);
  return names.length === 0 ? 'none' : names.join(', ');
}

/** Turns an exported value into a Service, detecting its interface unless one is forced. */
export function toService(value: unknown, forced: AppInterface | undefined, what: string): Service {
  const obj = value as Record<string, unknown> | null;
  const kind = forced ?? detectInterface(value);
  if (kind === undefined) throw new LoadError(`the ${what} is not an app (got ${describe(value)}); expected an environ app, a node (req, res) handler or a fetch handler`);
  if (kind === 'fetch') {
    const fetchFn = typeof obj?.fetch === 'function' ? (obj.fetch as FetchHandler).bind(obj) : (value as FetchHandler);
    if (typeof fetchFn !== 'function') throw new LoadError(`the ${what} is not a fetch handler (got ${describe(value)})`);
    return { app: fromFetchHandler(fetchFn), interface: 'fetch' };
  }
  if (kind === 'node') {
    const node = nodeHandlerOf(value);
    if (node === undefined) throw new LoadError(`the ${what} is not a node handler (got ${describe(value)})`);
    return { app: fromNodeHandler(node), node, interface: 'node' };
  }
  if (typeof value !== 'function') throw new LoadError(`the ${what} is not an environ app (got ${describe(value)})`);
  return { app: value as App, interface: 'environ' };
}

function detectInterface(value: unknown): AppInterface | undefined {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.fetch === 'function') return 'fetch';
  if (nodeHandlerOf(value) !== undefined && typeof value !== 'function') return 'node';
  if (typeof value === 'function') {
    if (typeof v.handle === 'function' && typeof v.use === 'function') return 'node'; // Express, Connect
    return (value as (...a: unknown[]) => unknown).length === 1 ? 'fetch' : 'environ';
  }
  return undefined;
}

/** Koa → its callback(); Fastify → routing after ready(); a function → itself. */
function nodeHandlerOf(value: unknown): NodeHandler | undefined {
  const v = value as Record<string, unknown> | null;
  if (v === null) return undefined;
  if (typeof v.callback === 'function' && typeof v.use === 'function') return (v.callback as () => NodeHandler).call(v);
  if (typeof v.routing === 'function' && typeof v.ready === 'function') {
    const ready = (v.ready as () => Promise<unknown>).call(v);
    const routing = (v.routing as NodeHandler).bind(v);
    return (req, res) => ready.then(() => routing(req, res));
  }
  if (typeof value === 'function') return value as NodeHandler;
  return undefined;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? `an object with keys ${Object.keys(value).slice(0, 5).join(', ') || '(none)'}` : typeof value;
}
