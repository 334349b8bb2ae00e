import { html, page, type PageContext } from './layout.ts';

/**
 * The 404 page of an address no route answers. It does not repeat the address asked for: it names
 * nothing but the way back to the landing page.
 */
export function notFoundPage(context: PageContext): string {
  return page(
    'Page not found',
    html`<h1>Page not found</h1>
      <p class="alert" role="alert">There is no page at this address.</p>
      <p><a href="/">Go to the start page of ${context.branding.name}</a>.</p>`,
    { branding: context.branding, ...(context.requestId && { requestId: context.requestId }) },
  );
}
