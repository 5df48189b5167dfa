/** uwsgi wire codec: request packet decoder (4-byte header + LE16 vars), encoder, U-7 helper. */
export * from './constants.js';
export { UwsgiDecoder, checkUwsgiVars, decodeUwsgiHead, decodeUwsgiVars, peekUwsgiVar, stripScriptName } from './decoder.js';
export type {
  ScriptNameStrip,
  UwsgiDecoderOptions,
  UwsgiDecoderState,
  UwsgiPacketHeader,
  UwsgiRequestHead,
  UwsgiVar,
} from './decoder.js';
export { encodeUwsgiRequest } from './encoder.js';
export type { UwsgiEncodeOptions } from './encoder.js';
