import { html, page, type PageContext } from './layout.ts';

export interface SelectAccountPageInput {
  action: string;
  csrfToken: string;
  /** The application asking, by name (its registered client name). */
  clientName: string;
  /** The user the browser is signed in as. */
  username: string;
}

/**
 * The account choice of `prompt=select_account`: a browser is signed in as one user at a time, so the
 * choice is to go on as that user or to sign in as another (which signs the first one out).
 */
export function selectAccountPage(input: SelectAccountPageInput, context: PageContext): string {
  return page(
    'Choose an account',
    html`<h1>Choose an account</h1>
      <p>to continue to <strong>${input.clientName}</strong></p>
      <p>You are signed in as <strong>${input.username}</strong>.</p>
      <form method="post" action="${input.action}">
        <input type="hidden" name="csrf_token" value="${input.csrfToken}" />
        <div class="actions">
          <button type="submit" name="account" value="current">Continue as ${input.username}</button>
          <button type="submit" name="account" value="another" class="secondary">
            Sign in as another user
          </button>
        </div>
      </form>
      <p>
        <small>Signing in as another user signs ${input.username} out of ${context.branding.name}.</small>
      </p>`,
    { branding: context.branding },
  );
}
