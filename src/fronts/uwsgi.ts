/**
 * The uwsgi front: the application side of nginx `uwsgi_pass`, Apache mod_proxy_uwsgi and
 * lighttpd (`scgi.protocol = "uwsgi"`) (docs/conformance.md §4, U-1..U-11).
 *
 * The connection life cycle is SCGI's (src/fronts/single-request.ts); what is
 * uwsgi's own:
 *   - U-2: modifier1 is checked as soon as the 4-byte packet header is in, before any vars byte
 *     is decoded; a type outside the allow-list (raw code evaluation, RPC, ping, spooler, ...) is
 *     closed without a reply and logged. Nothing a request carries is ever executed.
 *   - U-3: vars blocks up to the protocol's 65535 bytes are accepted (unless --max-params-bytes
 *     is set lower).
 *   - U-7: modifier1 30 strips SCRIPT_NAME from PATH_INFO, only on a segment boundary; a
 *     SCRIPT_NAME that is not a prefix leaves PATH_INFO alone and is logged.
 *   - U-8: the response starts with an HTTP status line, `HTTP/1.1 NNN Reason` (Apache
 *     mod_proxy_uwsgi answers 502 to anything else).
 *   - U-10: uWSGI's magic vars (UWSGI_FILE, UWSGI_SCRIPT, UWSGI_SCHEME, ...) are plain data
 *     passed to the app like any other variable; they never select code, files or the scheme.
 */
import type { HeaderList } from '../app.js';
import { type GatewayFrontOptions, gatewayOptions } from './common.js';
import type { FrontModule } from './registry.js';
import { CloseWithoutReply, type GatewayHead, HeadPeek, type HeadReader, type SingleRequestProtocol, singleRequestHandler, singleRequestListener } from './single-request.js';
import { uwsgiSignature } from '../../protocols/detect.js';
import { serializeHttpHead } from '../../protocols/cgi/head.js';
import {
  MAX_UWSGI_DATASIZE,
  Modifier1,
  UWSGI_REQUEST_MODIFIERS,
  UwsgiDecoder,
  peekUwsgiVar,
  type UwsgiPacketHeader,
  type UwsgiRequestHead,
  stripScriptName,
} from '../../protocols/uwsgi/index.js';

function serializeUwsgiHead(status: number, reason: string, headers: HeaderList): Buffer {
  return serializeHttpHead('HTTP/1.1', status, reason, headers);
}

function lastValue(pairs: GatewayHead['pairs'], name: string): string | undefined {
  let value: string | undefined;
  for (const [k, v] of pairs) if (k === name) value = v;
  return value;
}

/** uwsgi: 4-byte header + LE16 vars (U-1..U-6), HTTP status line response (U-8). */
function uwsgiProtocol(opts: GatewayFrontOptions, modifiers: ReadonlySet<number>): SingleRequestProtocol {
  const maxUwsgiPacketSize = Math.min(opts.maxParamsBytes, MAX_UWSGI_DATASIZE);
  let prefixWarned = false;
  const checkHeader = (header: UwsgiPacketHeader): void => {
    if (modifiers.has(header.modifier1)) return;
    throw new CloseWithoutReply(`packet type modifier1=${header.modifier1} is not a request type (allowed: ${[...modifiers].join(', ')})`);
  };
  const toHead = (head: UwsgiRequestHead): GatewayHead => ({
    pairs: head.vars,
    contentLength: head.contentLength,
    rest: head.rest,
    stripScriptName: head.modifier1 === Modifier1.WsgiPathInfo,
  });
  return {
    name: 'uwsgi',
    newReader(): HeadReader {
      // No body limit here: gatewayVars refuses a CONTENT_LENGTH over it with a 413, knowing the method.
      // U-2: modifier1 is checked as soon as the packet header is in, before any vars byte.
      const decoder = new UwsgiDecoder({ maxUwsgiPacketSize, checkHeader });
      const peek = new HeadPeek();
      return {
        push(chunk) {
          peek.add(chunk);
          const head = decoder.push(chunk);
          return head === undefined ? undefined : toHead(head);
        },
        end: () => decoder.end(),
        method: () => peekUwsgiVar(peek.seen, 'REQUEST_METHOD'),
      };
    },
    serializeHead: serializeUwsgiHead,
    inspect(head) {
      if (!head.stripScriptName) return;
      const scriptName = lastValue(head.pairs, 'SCRIPT_NAME') ?? '';
      const pathInfo = lastValue(head.pairs, 'PATH_INFO') ?? '';
      if (pathInfo === '' || stripScriptName(scriptName, pathInfo).outcome !== 'not-a-prefix') return;
      const message = `uwsgi: modifier1 30 but SCRIPT_NAME ${JSON.stringify(scriptName)} is not a segment prefix of PATH_INFO ${JSON.stringify(pathInfo)}; PATH_INFO left unchanged (U-7)`;
      if (!prefixWarned) {
        prefixWarned = true;
        opts.logger.warn(`${message} (logged once per listener; later ones at debug level)`);
      } else if (opts.logger.debugEnabled) opts.logger.debug(message);
    },
  };
}

export const front: FrontModule = {
  listen(ctx) {
    const opts = gatewayOptions(ctx, 'uwsgi');
    return singleRequestListener(opts, uwsgiProtocol(opts, UWSGI_REQUEST_MODIFIERS));
  },
  connections(ctx) {
    const opts = gatewayOptions(ctx, 'uwsgi');
    return singleRequestHandler(opts, uwsgiProtocol(opts, UWSGI_REQUEST_MODIFIERS));
  },
  signature: () => uwsgiSignature(UWSGI_REQUEST_MODIFIERS),
};
