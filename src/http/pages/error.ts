import { html, page, type PageContext } from './layout.ts';

/**
 * An OAuth error that cannot be redirected back to the client (unknown client, unregistered
 * redirect_uri, …). Shows the error code and the provider's description, never internals: server
 * errors arrive here already reduced to `server_error`. Titled "Sign-in error", the routes it mostly
 * answers, unless `title` says otherwise.
 */
export function errorPage(
  input: { error: string; description?: string; status: number },
  context: PageContext,
  title = 'Sign-in error',
): string {
  return page(
    title,
    html`<h1>Something went wrong</h1>
      <p class="alert" role="alert">The request could not be completed (${input.error}).</p>
      ${input.description ? html`<p>${input.description}</p>` : ''}
      <p>Go back to the application and try again. If this keeps happening, tell its administrator.</p>`,
    { branding: context.branding, ...(context.requestId && { requestId: context.requestId }) },
  );
}
