import { scrubString } from '../util/scrub-text.ts';
import { quotedInput } from '../util/visible-text.ts';

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

  /** `hint`: what `lookalikeHint` adds, when the client_id differs from one only in look-alike letters. */
  static notFound(clientId: string, hint = ''): ApplicationError {
    return new ApplicationError('not_found', [
      { field: 'client_id', message: `no application with client_id ${quote(clientId)}${hint}` },
    ]);
  }
}

/**
 * The user information of a URL at the start of a value: all of it is masked (`https://***@host`),
 * since a user's name alone may be a token. With a password (a `:` after the user's name) it runs to
 * the last `@` of the value, which is one field's and so ends where the URL does: a password may hold
 * a `/`, `?`, `#` and white space together (`https://wiki:pa ss/x@host`), where a log line's scrubbing,
 * which cuts a URL in free text at white space, leaves it whole. This hides too much rather than
 * leak: an `@` in the path or the query takes the host with it, as there. Without a password it runs
 * to the last `@` before the path, query or fragment.
 */
const LEADING_USERINFO = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)(?:[^/?#@:]*:[\s\S]*@|[^/?#]*@)/;

/**
 * A value quoted for a message: what a log line hides of it is hidden first (`scrubString`: a URL's
 * password up to its last `@`, `/`, `?` or `#` in it included, `?token=…`, `#access_token=…`, JWTs),
 * then a URL's whole user information is masked, and what is left is quoted as every input is
 * (`quotedInput`: cut when long, after the hiding, since a cut could leave a password without the `@`
 * that shows it is one; JSON escapes make NUL and control characters visible).
 */
export function quote(value: unknown): string {
  const text = scrubString(typeof value === 'string' ? value : String(value));
  return quotedInput(text.replace(LEADING_USERINFO, '$1***@'));
}
