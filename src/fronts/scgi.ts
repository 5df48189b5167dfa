/**
 * The SCGI front: the application side of nginx `scgi_pass`, Apache mod_proxy_scgi and lighttpd
 * mod_scgi (S-1..S-12 in docs/conformance.md). The connection life cycle is shared with uwsgi
 * (single-request.ts); what is SCGI's own is the netstring head and the CGI-style response head.
 */
import { type GatewayFrontOptions, gatewayOptions } from './common.js';
import type { FrontModule } from './registry.js';
import { HeadPeek, type HeadReader, type SingleRequestProtocol, singleRequestHandler, singleRequestListener } from './single-request.js';
import { scgiSignature } from '../../protocols/detect.js';
import { serializeCgiHead } from '../../protocols/cgi/head.js';
import { MAX_NETSTRING_LENGTH, ScgiDecoder, peekScgiHeader } from '../../protocols/scgi/index.js';

/** SCGI: netstring head (S-1..S-5), CGI-style response head (S-8). */
function scgiProtocol(opts: GatewayFrontOptions): SingleRequestProtocol {
  let markerWarned = false;
  const maxNetstringLength = Math.min(opts.maxParamsBytes, MAX_NETSTRING_LENGTH);
  return {
    name: 'scgi',
    newReader(): HeadReader {
      // No body limit here: gatewayVars refuses a CONTENT_LENGTH over it with a 413, knowing the method.
      const decoder = new ScgiDecoder({ maxNetstringLength });
      const peek = new HeadPeek();
      return {
        push(chunk) {
          peek.add(chunk);
          const head = decoder.push(chunk);
          if (head === undefined) return undefined;
          if (!head.hasScgiMarker && !markerWarned) {
            // S-5: accepted; nginx sends it only through `include scgi_params`.
            markerWarned = true;
            opts.logger.warn('scgi: request without the "SCGI: 1" header (is scgi_params included?); accepted (logged once per listener)');
          }
          return { pairs: head.headers, contentLength: head.contentLength, rest: head.rest, stripScriptName: false };
        },
        end: () => decoder.end(),
        method: () => peekScgiHeader(peek.seen, 'REQUEST_METHOD'),
      };
    },
    serializeHead: serializeCgiHead,
  };
}

export const front: FrontModule = {
  listen(ctx) {
    const opts = gatewayOptions(ctx, 'scgi');
    return singleRequestListener(opts, scgiProtocol(opts));
  },
  connections(ctx) {
    const opts = gatewayOptions(ctx, 'scgi');
    return singleRequestHandler(opts, scgiProtocol(opts));
  },
  signature: () => scgiSignature,
};
