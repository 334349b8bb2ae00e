import { escapeHiddenCharacters } from '../util/hidden-characters.ts';

/** What went wrong with one input field, in words an operator can act on. */
export interface ApplicationIssue {
  /** The spec's field name (`redirect_uris[0]`, `name`, `client_id`). */
  field: string;
  message: string;
}

export type ApplicationErrorCode = 'invalid_input' | 'not_found' | 'conflict';

/**
 * A refused application write or lookup. The message is one line naming each bad field and what
 * would be valid; it never contains a secret or a URI's credentials.
 */
export class ApplicationError extends Error {
  override name = 'ApplicationError';
  readonly code: ApplicationErrorCode;
  readonly issues: readonly ApplicationIssue[];

  constructor(code: ApplicationErrorCode, issues: readonly ApplicationIssue[]) {
    super(issues.map((issue) => `${issue.field}: ${issue.message}`).join('; '));
    this.code = code;
    this.issues = issues;
  }

  static notFound(clientId: string): ApplicationError {
    return new ApplicationError('not_found', [
      { field: 'client_id', message: `no application with client_id ${quote(clientId)}` },
    ]);
  }
}

/**
 * A value quoted for a message: JSON escapes make NUL and control characters visible, long values
 * are cut, and URI credentials (`user:pass@`) are masked.
 */
export function quote(value: unknown, max = 120): string {
  let text = typeof value === 'string' ? value : String(value);
  text = text.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#]*@/, '$1***@');
  if (text.length > max) text = `${text.slice(0, max)}…`;
  return escapeHiddenCharacters(JSON.stringify(text));
}
