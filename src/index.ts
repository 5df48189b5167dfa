/** The gatewire library: the app contract, the adapters, the server. */
export type { App, AppInterface, Body, CgiVars, Chunk, Environ, ErrorSink, FetchHandler, HeaderList, NodeHandler, Service, StartResponse, Write } from './app.js';
export { AppContractError } from './app.js';
export { Exchange, runExchange, type ResponseSink } from './call.js';
export { RequestError, gatewayVars, normalizeMount, percentDecodePath, requestUrl, splitMount } from './environ.js';
export { fromFetchHandler, toRequest } from './apps/fetch.js';
export { fromNodeHandler } from './apps/node.js';
export { loadService, toService, LoadError } from './loader.js';
export { createLogger, silentLogger, type Logger } from './log.js';
export { parseAddress, resolveOptions, type ServeOptions, type ListenAddress } from './options.js';
export { Gateway, type ListenerSpec } from './server.js';
export { validateApp, ValidationError } from './validate.js';
