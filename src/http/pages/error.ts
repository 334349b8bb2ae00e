import { assertNever } from '../../util/assert-never.ts';
import { html, type Html, page, type PageContext } from './layout.ts';

/**
 * Where an error page may be met, which sets its title and what it tells the person to do next:
 * `sign-in`, the routes a relying party sent them to (authorization, logout, the sign-in pages), or
 * `any-path`, an error that may come on any page (the account page, the admin pages), where there
 * may be no application to go back to.
 */
export type ErrorPageScope = 'sign-in' | 'any-path';

/**
 * An OAuth error that cannot be redirected back to the client (unknown client, unregistered
 * redirect_uri, …). Shows the error code and the provider's description, never internals: server
 * errors arrive here already reduced to `server_error`. Worded for the sign-in routes, which it mostly
 * answers, unless `scope` says otherwise.
 */
export function errorPage(
  input: { error: string; description?: string; status: number },
  context: PageContext,
  scope: ErrorPageScope = 'sign-in',
): string {
  const { title, nextStep } = wordingOf(scope, context);
  return page(
    title,
    html`<h1>Something went wrong</h1>
      <p class="alert" role="alert">The request could not be completed (${input.error}).</p>
      ${input.description ? html`<p>${input.description}</p>` : ''}
      <p>${nextStep}</p>`,
    { branding: context.branding, ...(context.requestId && { requestId: context.requestId }) },
  );
}

function wordingOf(scope: ErrorPageScope, context: PageContext): { title: string; nextStep: Html } {
  switch (scope) {
    case 'sign-in':
      return {
        title: 'Sign-in error',
        nextStep: html`Go back to the application and try again. If this keeps happening, tell its
        administrator.`,
      };
    case 'any-path': {
      const { supportUrl } = context.branding;
      return {
        title: 'Something went wrong',
        nextStep: html`Try again in a moment. If it keeps happening, tell your community's
        administrators${supportUrl ? html` (<a href="${supportUrl}">Help and support</a>)` : ''}.`,
      };
    }
    default:
      return assertNever(scope);
  }
}
