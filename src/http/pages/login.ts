import { html, page, type PageContext } from './layout.ts';

export interface LoginPageInput {
  action: string;
  csrfToken: string;
  /** The application asking, by name (its registered client name). */
  clientName: string;
  username?: string;
  /** The form fields' `maxlength`, in UTF-16 units as browsers count: the server decides within it. */
  fieldLimits: { username: number; password: number };
  /** Shown above the form: what went wrong, in words that do not say whether the user exists. */
  error?: string;
  /** Offer the username and password form (default true). */
  password?: boolean;
  /** Sign-in through other identity providers: one button each ("Sign in with EVE Online"). */
  external?: ReadonlyArray<{ label: string; action: string }>;
}

export function loginPage(input: LoginPageInput, context: PageContext): string {
  return page(
    'Sign in',
    html`<h1>Sign in</h1>
      <p>to continue to <strong>${input.clientName}</strong></p>
      ${input.error ? html`<p class="alert" role="alert" id="login-error">${input.error}</p>` : ''}
      ${(input.external ?? []).map(
        (provider) =>
          html`<form method="post" action="${provider.action}" class="external-sign-in">
            <input type="hidden" name="csrf_token" value="${input.csrfToken}" />
            <button type="submit">Sign in with ${provider.label}</button>
          </form>`,
      )}
      ${input.password === false ? '' : passwordForm(input)}`,
    { branding: context.branding },
  );
}

/**
 * After a failed sign-in the password, to type again, is the field marked invalid and given the focus
 * (the page's title then starts with "Error:"); which of the two was wrong is not told.
 */
function passwordForm(input: LoginPageInput) {
  return html`<form method="post" action="${input.action}" novalidate>
    <input type="hidden" name="csrf_token" value="${input.csrfToken}" />
    <label for="username">Username</label>
    <input
      type="text"
      id="username"
      name="username"
      autocomplete="username"
      autocapitalize="none"
      spellcheck="false"
      required
      maxlength="${input.fieldLimits.username}"
      value="${input.username ?? ''}"
      ${input.error ? html` aria-describedby="login-error"` : ''}
    />
    <label for="password">Password</label>
    <input
      type="password"
      id="password"
      name="password"
      autocomplete="current-password"
      required
      maxlength="${input.fieldLimits.password}"
      ${input.error ? html` aria-invalid="true" aria-describedby="login-error" autofocus` : ''}
    />
    <button type="submit">Sign in</button>
  </form>`;
}
