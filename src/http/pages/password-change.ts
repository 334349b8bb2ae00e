import { html, page, type PageContext } from './layout.ts';

export interface PasswordChangePageInput {
  action: string;
  csrfToken: string;
  /** Proves the current password was given in this sign-in (`password-change.ts`). */
  changeToken: string;
  clientName: string;
  username: string;
  /** The new password fields' `maxlength`: the longest password sign-in takes, in UTF-16 units. */
  passwordMaxLength: number;
  /** What was wrong with the last submission. */
  error?: string;
}

/** The first sign-in of an account whose password someone else chose: a new one, before anything else. */
export function passwordChangePage(input: PasswordChangePageInput, context: PageContext): string {
  // The field to type again takes the focus, and names the error.
  const described = input.error ? html` aria-invalid="true" aria-describedby="password-error" autofocus` : '';
  return page(
    'Choose a new password',
    html`<h1>Choose a new password</h1>
      <p>
        The password of <strong>${input.username}</strong> was set by someone else. Choose your own before you
        continue to <strong>${input.clientName}</strong>.
      </p>
      ${input.error ? html`<p class="alert" role="alert" id="password-error">${input.error}</p>` : ''}
      <form method="post" action="${input.action}" novalidate>
        <input type="hidden" name="csrf_token" value="${input.csrfToken}" />
        <input type="hidden" name="change_token" value="${input.changeToken}" />
        <label for="new_password">New password (at least 8 characters)</label>
        <input
          type="password"
          id="new_password"
          name="new_password"
          autocomplete="new-password"
          required
          minlength="8"
          maxlength="${input.passwordMaxLength}"
          ${described}
        />
        <label for="confirm_password">New password, again</label>
        <input
          type="password"
          id="confirm_password"
          name="confirm_password"
          autocomplete="new-password"
          required
          minlength="8"
          maxlength="${input.passwordMaxLength}"
        />
        <button type="submit">Set password and continue</button>
      </form>`,
    { branding: context.branding },
  );
}
