/**
 * gatewire to gatewire: the behaviour matrix through one upstream client hop.
 *
 *   HTTP client → OUTER gatewire --http (app: upstreamApp) → client hop (SCGI, uwsgi or FastCGI)
 *     → INNER gatewire --scgi / --uwsgi / --fastcgi → the case's app
 *
 * The user-facing front is the outer HTTP one: requests go to it with httpRequest (fronts.ts),
 * its framing is HTTP's, and a case's mount and options apply to it, except --max-inflight and
 * --max-params-bytes, which only the gateway fronts apply (src/options.ts): those go to the inner
 * front (its 503 comes back through the hop). HOP_NEEDS says where each kind of case applies.
 *
 * The outer app is upstreamApp() inside validateApp (src/validate.ts), so the client's own
 * contract slips and unclosed bodies (R-5) fail the case too, not only the inner app's.
 *
 * What reaches the inner app is the environ the outer front built, forwarded as CGI variables:
 * REMOTE_ADDR, SERVER_PORT, SERVER_PROTOCOL, SCRIPT_NAME and PATH_INFO are the outer front's.
 */
import type { App, Body, Service } from '../../src/app.js';
import type { ServeOptions } from '../../src/options.js';
import type { Gateway } from '../../src/server.js';
import type { UpstreamProtocol } from '../../src/upstream/address.js';
import { type UpstreamApp, upstreamApp } from '../../src/upstream/index.js';
import { ValidationError, validateApp } from '../../src/validate.js';
import { watchBody } from './behaviour-apps.js';
import { type MatrixFront, type MatrixResult, type Need, type OptionTexts, httpRequest } from './fronts.js';
import { captureLogger, startGateway } from './scgi-client.js';

const HTTP_FRAMING = ['connection', 'date', 'keep-alive'] as const;

/** Options only the gateway fronts apply (src/options.ts, src/fronts/http.ts): given to the inner front instead. */
const INNER_OPTIONS: ReadonlySet<keyof ServeOptions> = new Set<keyof ServeOptions>(['maxInflight', 'maxParamsBytes']);

/** Splits a case's option texts between the inner gateway front and the outer HTTP front. */
function splitOptions(options: OptionTexts = {}): { inner: OptionTexts; outer: OptionTexts } {
  const inner: OptionTexts = {};
  const outer: OptionTexts = {};
  for (const [key, value] of Object.entries(options) as Array<[keyof ServeOptions, string]>) {
    if (INNER_OPTIONS.has(key)) inner[key] = value;
    else outer[key] = value;
  }
  return { inner, outer };
}

/** How long a finished exchange may take to close the client's body (bounds a hang, not a measurement). */
const SETTLE_MS = 2000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The client App checked by validateApp, its slips noted (the outer front may swallow them into a 500). */
function checkedClient(client: App): { app: App; slips: string[]; openBodies: () => number } {
  const slips: string[] = [];
  const note = (err: unknown): void => {
    if (err instanceof ValidationError) slips.push(err.message);
  };
  const noting = <T>(run: () => T): T => {
    try {
      return run();
    } catch (err) {
      note(err);
      throw err;
    }
  };
  // Inside validateApp: the start_response and write() it hands the client throw on a slip.
  const observed: App = (environ, startResponse) =>
    client(environ, (status, headers, excInfo) => {
      const write = noting(() => startResponse(status, headers, excInfo));
      return (chunk) => noting(() => write(chunk));
    });
  const validated = validateApp(observed);
  const app: App = async (environ, startResponse) => {
    let body: Body;
    try {
      body = await validated(environ, startResponse);
    } catch (err) {
      note(err);
      throw err;
    }
    return watchBody(body, note);
  };
  return { app, slips, openBodies: () => validated.openBodies() };
}


/**
 * Where each kind of case applies through a hop, decided per Need (a Need added to fronts.ts does
 * not compile here until it is decided): `at` = it runs, and which front applies it; `cannot` =
 * it cannot be carried, with the reason (the matrix then lists it as not applicable).
 */
type HopNeed = { at: string } | { cannot: string };
const HOP_NEEDS: Record<UpstreamProtocol, Record<Need, HopNeed>> = {
  scgi: hopNeeds('SCGI'),
  uwsgi: hopNeeds('uwsgi'),
  fastcgi: hopNeeds('FastCGI'),
};

function hopNeeds(wire: string): Record<Need, HopNeed> {
  return {
    bodyLimit: { at: "the outer HTTP front (--max-body-bytes); a streamed body over it fails the client's read, which refuses 413" },
    headLimit: { at: 'the outer HTTP front (--max-header-bytes); --max-params-bytes goes to the inner front, which never sees a block the outer one refused' },
    streamedBody: {
      at:
        wire === 'FastCGI'
          ? 'the outer HTTP front takes the chunked body; FastCGI can carry it without a length (STDIN records until the empty one)'
          : `the outer HTTP front takes the chunked body; ${wire} needs CONTENT_LENGTH, so the client buffers it to learn it (UP-4) and the app still gets it whole`,
    },
    nulPath: { at: `the outer HTTP front refuses %00 with 400 before the client${wire === 'SCGI' ? ' (SCGI could not carry the NUL anyway)' : ''}` },
    httpWire: { at: 'the outer HTTP front parses the request line and framing: the hop only sees requests it accepted' },
    inflightLimit:
      wire === 'FastCGI'
        ? {
            cannot:
              "the FastCGI client learns --max-inflight from the inner front's FCGI_GET_VALUES answer (FCGI_MAX_CONNS, FCGI_MAX_REQS) and queues a request beyond it (up to its read timeout, then 504) rather than sending it to be refused with 503",
          }
        : { at: `the inner ${wire} front (--max-inflight applies to the gateway fronts only): its 503 comes back through the client` },
    mountRefusal: { at: 'the outer HTTP front has the mount and refuses outside it; the inner front keeps the SCRIPT_NAME / PATH_INFO it was sent (E-5.2)' },
    earlyHeadViaClient: { at: `the upstream client passes a head that came alone on after LONE_HEAD_MS (100 ms) as an explicit flush (R-12): the outer front sends it before the body` },
  };
}

function cannotOf(needs: Record<Need, HopNeed>): MatrixFront['cannot'] {
  const out: MatrixFront['cannot'] = {};
  for (const [need, where] of Object.entries(needs) as Array<[Need, HopNeed]>) if ('cannot' in where) out[need] = where.cannot;
  return out;
}

/** The matrix through `outer HTTP front → upstreamApp(protocol) → inner <protocol> front → app`. */
export function viaHarness(protocol: UpstreamProtocol): MatrixFront {
  return {
    name: `via-${protocol}`,
    framing: HTTP_FRAMING,
    cannot: cannotOf(HOP_NEEDS[protocol]),
    async start(service: Service, opts = {}) {
      const { inner: innerOptions, outer: outerOptions } = splitOptions(opts.options);
      const gateways: Gateway[] = [];
      let client: UpstreamApp | undefined;
      const close = async (): Promise<void> => {
        // The user-facing front first, then the client's pooled connections, then the inner front.
        const [outer, inner] = [gateways[1], gateways[0]];
        await outer?.close(1000);
        await client?.close();
        await inner?.close(1000);
      };
      try {
        const inner = await startGateway(service, { ...innerOptions, [protocol]: ['127.0.0.1:0'] });
        gateways.push(inner.gateway);
        const port = inner.ports[0] as number;
        const log = captureLogger();
        client = upstreamApp({ protocol, address: { kind: 'tcp', host: '127.0.0.1', port } }, { logger: log });
        const checked = checkedClient(client);
        const outer = await startGateway({ app: checked.app, interface: 'environ' }, { ...outerOptions, http: ['127.0.0.1:0'], mount: opts.mount ?? '' });
        gateways.push(outer.gateway);
        const outerPort = outer.ports[0] as number;
        let inflight = 0;
        return {
          async request(req): Promise<MatrixResult> {
            const slipsBefore = checked.slips.length;
            const linesBefore = log.lines.length;
            inflight++;
            let res: MatrixResult;
            try {
              res = await httpRequest(outerPort, req);
            } finally {
              inflight--;
            }
            // The client's body is closed once the exchange is over (R-5): checked when no other
            // request of this server is still in flight (the /hold one of the --max-inflight case).
            const deadline = Date.now() + SETTLE_MS;
            while (inflight === 0 && checked.openBodies() > 0 && Date.now() < deadline) await sleep(5);
            const problems = [...checked.slips.slice(slipsBefore)];
            if (inflight === 0 && checked.openBodies() > 0) problems.push(`${checked.openBodies()} body/bodies of the upstream client not closed (R-5)`);
            if (problems.length > 0) {
              const lines = log.lines.slice(linesBefore).map((l) => `${l.level}: ${l.message}`);
              throw new Error(`via-${protocol}: the upstream client broke the app contract: ${problems.join('; ')}${lines.length > 0 ? ` (client log: ${lines.join(' | ')})` : ''}`);
            }
            return res;
          },
          close,
        };
      } catch (err) {
        await close();
        throw err;
      }
    },
  };
}

/** One client hop per upstream protocol: a protocol added to src/upstream/address.ts does not compile here until it has one. */
export const VIA_HARNESSES: Record<UpstreamProtocol, MatrixFront> = {
  scgi: viaHarness('scgi'),
  uwsgi: viaHarness('uwsgi'),
  fastcgi: viaHarness('fastcgi'),
};
