/**
 * The gatewire that `gatewire compare` measures: a child process (node:child_process fork, with
 * an IPC channel) serving one app on HTTP, FastCGI, SCGI and uwsgi listeners on 127.0.0.1, as
 * `gatewire serve APP --http … --fastcgi … --scgi … --uwsgi …` would. A child, so that the CPU it
 * spends is its own and the load generator's is not counted with it.
 *
 * The app is wrapped once, at the environ level every front converges on, by a recorder that
 * keeps the CGI variables of each call while armed (during the one-request captures, never during
 * the load phase). The wrapper drops the Node-handler fast path of the HTTP front so that a node
 * app's environ is seen there too.
 *
 * Messages, parent → child: `{ type: 'start', app, interface? }`, `{ type: 'arm' }`,
 * `{ type: 'take' }` (answers with the recorded environs and disarms). Child → parent:
 * `{ type: 'ready', ports }`, `{ type: 'environs', list }`, `{ type: 'failed', message }`.
 */
import { writeFileSync } from 'node:fs';
import type { App, AppInterface, Environ } from '../app.js';
import { loadService } from '../loader.js';

export type ChildRequest = { type: 'start'; app: string; interface?: AppInterface } | { type: 'arm' } | { type: 'take' };
export type ChildReply =
  | { type: 'ready'; ports: Record<'http' | 'fastcgi' | 'scgi' | 'uwsgi', number> }
  | { type: 'environs'; list: Array<Record<string, string>> }
  | { type: 'failed'; message: string };

/** The CGI variables of an environ: string values under names without a dot (gatewire's own keys have one). */
export function cgiVariables(environ: Environ): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(environ).sort()) {
    const value = environ[key];
    if (!key.includes('.') && typeof value === 'string') out[key] = value;
  }
  return out;
}

/** Wraps an app so each call's CGI variables go to `sink` while `armed()` says so. */
export function recording(app: App, armed: () => boolean, sink: (vars: Record<string, string>) => void): App {
  return (environ, startResponse) => {
    if (armed()) sink(cgiVariables(environ));
    return app(environ, startResponse);
  };
}

/**
 * The app of a recorded CGI run (`gatewire cgi` loads a generated module whose default export
 * this is): every call's CGI variables are written to `file`.
 */
export async function cgiRecorder(spec: string, file: string): Promise<App> {
  const service = await loadService(spec);
  return recording(service.app, () => true, (vars) => writeFileSync(file, JSON.stringify(vars)));
}

function send(message: ChildReply): void {
  process.send?.(message);
}

async function start(spec: string, forced: AppInterface | undefined): Promise<void> {
  const service = await loadService(spec, forced);
  let armed = false;
  let seen: Array<Record<string, string>> = [];
  const app = recording(service.app, () => armed, (vars) => seen.push(vars));
  process.on('message', (message: ChildRequest) => {
    if (message.type === 'arm') {
      armed = true;
      seen = [];
    } else if (message.type === 'take') {
      armed = false;
      send({ type: 'environs', list: seen });
      seen = [];
    }
  });
  const { serve } = require('../serve.js') as typeof import('../serve.js'); // not for cgiRecorder's CGI runs
  const any = '127.0.0.1:0';
  const server = await serve({ app, interface: 'environ' }, { http: any, fastcgi: any, scgi: any, uwsgi: any, logLevel: 'error' });
  const ports: Record<string, number> = {};
  for (const listener of server.listeners) {
    if (listener.address.kind === 'tcp') ports[listener.front] = listener.address.port;
  }
  send({ type: 'ready', ports: ports as Record<'http' | 'fastcgi' | 'scgi' | 'uwsgi', number> });
  // The parent going away (its IPC channel closing) ends the child: nothing outlives a compare run.
  process.on('disconnect', () => void server.close(0).finally(() => process.exit(0)));
}

if (require.main === module) {
  process.once('message', (message: ChildRequest) => {
    if (message.type !== 'start') return;
    start(message.app, message.interface).catch((err: unknown) => {
      send({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
      process.exit(2);
    });
  });
}
