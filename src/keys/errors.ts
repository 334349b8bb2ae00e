export type KeyErrorCode =
  | 'invalid_kid'
  | 'unknown_kid'
  | 'active_key'
  | 'not_retirable'
  | 'already_removed'
  | 'invalid_key'
  | 'already_imported'
  | 'keys_changed'
  | 'unpublished_key'
  | 'next_key_exists';

/** A refused key operation, with a message an operator can act on. */
export class KeyError extends Error {
  override name = 'KeyError';
  readonly code: KeyErrorCode;
  constructor(code: KeyErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}
