/** The gatewire library: the app contract, the adapters, the server. */
/// <reference types="node" preserve="true" />
export type { App, AppInterface, Body, CgiVars, Chunk, Environ, ErrorSink, FetchHandler, HeaderList, NodeHandler, Service, StartResponse, Write } from './app.js';
export { AppContractError } from './app.js';
export { Exchange, runExchange, type ResponseSink } from './call.js';
export { RequestError, gatewayVars, normalizeMount, percentDecodePath, requestUrl, splitMount } from './environ.js';
export { fromFetchHandler, toRequest } from './apps/fetch.js';
export { fromNodeHandler } from './apps/node.js';
export { CGI_INTERPRETERS, createCgiBinApp, type CgiBinApp, type CgiBinOptions, type CgiInterpreter } from './cgi-host/host.js';
export { describeSpawnMethod, spawnMethod, type SpawnMethod, type SpawnMethodInfo } from './cgi-host/spawn.js';
export { mountApp } from './compose.js';
export { GatewireError, ListenError, ServerErrorCode, type CodecErrorCode, type ErrorCode } from './errors.js';
export { inject, type InjectRequest, type InjectResponse } from './inject.js';
export { loadService, toService, LoadError } from './loader.js';
export { createLogger, silentLogger, type Logger } from './log.js';
export { OptionError, parseAddress, resolveOptions, type ServeOptions, type ListenAddress } from './options.js';
export { serve, type RunningServer, type ServeConfig, type ServeListener, type ServeTarget } from './serve.js';
export { Gateway, type ListenerSpec } from './server.js';
export { validateApp, ValidationError } from './validate.js';
