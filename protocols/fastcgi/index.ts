/**
 * FastCGI wire codec: record framing, name-value pairs, encoders. Pure: no I/O, no timers.
 * The FastCGI front (src/fronts/fastcgi.ts) owns sockets and the per-request state machine;
 * client.ts is the web-server side (request encoding, response decoding) for upstream clients.
 */
export * from './constants.js';
export * from './decoder.js';
export * from './params.js';
export * from './encoder.js';
export * from './client.js';
