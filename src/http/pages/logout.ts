import { html, page, type PageContext } from './layout.ts';

/** The RP-initiated logout confirmation; `providerForm` is the provider's form (action + xsrf field). */
export function logoutConfirmPage(
  input: { providerForm: string; clientName?: string },
  context: PageContext,
): string {
  const trustedForm = { html: input.providerForm };
  return page(
    'Sign out',
    html`<h1>Sign out?</h1>
      <p>
        Do you want to sign out of
        <strong>${context.branding.name}</strong
        >${input.clientName ? html` and leave <strong>${input.clientName}</strong>` : ''}?
      </p>
      ${trustedForm}
      <div class="actions">
        <button type="submit" form="op.logoutForm" name="logout" value="yes" autofocus>
          Yes, sign me out
        </button>
        <button type="submit" form="op.logoutForm" class="secondary">No, stay signed in</button>
      </div>`,
    { branding: context.branding },
  );
}

export function logoutSuccessPage(input: { clientName?: string }, context: PageContext): string {
  return page(
    'Signed out',
    html`<h1>Signed out</h1>
      <p>
        You have been signed out${input.clientName ? html` of <strong>${input.clientName}</strong>` : ''}.
      </p>
      <p><a href="/">${context.branding.name}</a></p>`,
    { branding: context.branding },
  );
}
