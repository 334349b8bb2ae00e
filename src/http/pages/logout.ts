import { html, page, type PageContext } from './layout.ts';

/**
 * Presses "Yes, sign me out" once the page is read: the console's own sign-out was the click
 * (src/oidc/logout-source.ts allows this script by its hash).
 */
export const CONFIRM_BY_ITSELF_SCRIPT = "document.getElementById('aa-logout-yes').click();";

/**
 * The RP-initiated logout confirmation; `providerForm` is the provider's form (action + xsrf field).
 * With `confirmByItself`, the page answers "Yes" by itself where script runs; the buttons stay for
 * a browser without it.
 */
export function logoutConfirmPage(
  input: { providerForm: string; clientName?: string; confirmByItself?: boolean },
  context: PageContext,
): string {
  const trustedForm = { html: input.providerForm };
  const confirmScript = { html: `<script>${CONFIRM_BY_ITSELF_SCRIPT}</script>` };
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
        <button type="submit" form="op.logoutForm" name="logout" value="yes" id="aa-logout-yes" autofocus>
          Yes, sign me out
        </button>
        <button type="submit" form="op.logoutForm" class="secondary">No, stay signed in</button>
      </div>
      ${input.confirmByItself ? confirmScript : ''}`,
    { branding: context.branding },
  );
}

/**
 * The provider's logout request without a session (nobody signed in, or signed out already): it only
 * posts its confirmation (`action`, with the `xsrf` field bound to the session) with `logout=yes`,
 * which then redirects or says "Signed out". Where script runs the page presses Continue by itself.
 */
export function logoutWithoutSessionPage(
  input: { action: string; xsrf: string },
  context: PageContext,
): string {
  const confirmScript = { html: `<script>${CONFIRM_BY_ITSELF_SCRIPT}</script>` };
  return page(
    'Signing out',
    html`<h1>Signing out</h1>
      <p>You are not signed in to <strong>${context.branding.name}</strong>.</p>
      <form id="op.logoutForm" method="post" action="${input.action}">
        <input type="hidden" name="xsrf" value="${input.xsrf}" />
        <div class="actions">
          <button type="submit" name="logout" value="yes" id="aa-logout-yes" autofocus>Continue</button>
        </div>
      </form>
      ${confirmScript}`,
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
