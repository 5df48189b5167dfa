/** SCGI wire codec: request head decoder (netstring + NUL-separated headers) and encoder. */
export * from './constants.js';
export { ScgiDecoder, checkScgiHeaders, decodeScgiHead, decodeScgiHeaderBlock, peekScgiHeader } from './decoder.js';
export type { ScgiDecoderOptions, ScgiDecoderState, ScgiHeader, ScgiRequestHead } from './decoder.js';
export { encodeScgiRequest } from './encoder.js';
