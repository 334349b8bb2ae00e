import { html, page, type PageContext } from './layout.ts';

/**
 * The page of someone who proved who they are at another identity provider (EVE SSO) but whom only
 * the directory's own site can let in: it says what to do there and links to it. Nothing was created
 * or changed here. Each part of the message is interpolated on its own: a right-to-left character name
 * is isolated alone, never the whole sentence, which would then read right to left around it.
 */
export function referralPage(
  input: { label: string; message: readonly string[]; referTo: string },
  context: PageContext,
): string {
  return page(
    'Continue on Alliance Auth',
    html`<h1>Continue on Alliance Auth</h1>
      <p class="alert" role="alert">${input.message}</p>
      <p>
        <a href="${input.referTo}" id="alliance-auth-login">Go to the Alliance Auth sign-in</a>, then come
        back to the application and sign in with ${input.label} again.
      </p>`,
    { branding: context.branding, ...(context.requestId && { requestId: context.requestId }) },
  );
}
