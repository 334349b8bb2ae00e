/** What kind of refusal a `DirectoryError` is. */
/** `read_only`: the directory is another system's (Alliance Auth), changed there and only read here. */
export type DirectoryErrorCode = 'not_found' | 'invalid' | 'conflict' | 'read_only';

/**
 * A refused directory change or lookup. The message names the input and what would be valid; it
 * never contains a password.
 */
export class DirectoryError extends Error {
  override name = 'DirectoryError';
  readonly code: DirectoryErrorCode;
  constructor(code: DirectoryErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export function invalid(message: string): DirectoryError {
  return new DirectoryError('invalid', message);
}

export function notFound(message: string): DirectoryError {
  return new DirectoryError('not_found', message);
}

export function conflict(message: string): DirectoryError {
  return new DirectoryError('conflict', message);
}
