/** Errors of the server side of gatewire (listeners, options, loading). */

/** Thrown when a listener cannot be set up; the CLI prints it on one line and exits 2. */
export class ListenError extends Error {
  override name = 'ListenError';
}
