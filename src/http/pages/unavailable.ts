import { html, page, type PageContext } from './layout.ts';

/**
 * The 503 page of a request that could not reach the database: nothing is wrong with the request. It
 * carries the community's look and the request id, as every other page does.
 */
export function unavailablePage(context: PageContext): string {
  return page(
    'Temporarily unavailable',
    html`<h1>Temporarily unavailable</h1>
      <p class="alert" role="alert">The sign-in service cannot reach its database right now.</p>
      <p>Nothing is wrong with your request. Try again in a few seconds.</p>`,
    { branding: context.branding, ...(context.requestId && { requestId: context.requestId }) },
  );
}
