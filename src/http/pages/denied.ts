import { html, page, type PageContext } from './layout.ts';

/**
 * The 403 page of a refused authorization. It names neither the application nor the reason, so that
 * it cannot be used to learn which applications exist or what they admit.
 */
export function deniedPage(context: PageContext): string {
  return page(
    'Access denied',
    html`<h1>Access denied</h1>
      <p>Your account is not allowed to use this application.</p>
      <p>If you think this is wrong, ask an administrator of ${context.branding.name}.</p>`,
    { branding: context.branding, ...(context.requestId && { requestId: context.requestId }) },
  );
}
