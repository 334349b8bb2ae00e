import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Branding } from '../http/pages/branding.ts';
import { pageContext } from '../http/pages/layout.ts';
import { logoutConfirmPage } from '../http/pages/logout.ts';

/**
 * `features.rpInitiatedLogout.logoutSource`: the confirmation page, asking about the community by
 * name. `form` is the provider's own form (its action and the `xsrf` field bound to the session),
 * which our buttons submit.
 */
export function logoutSource(branding: Branding) {
  return async (ctx: KoaContextWithOIDC, form: string): Promise<void> => {
    ctx.type = 'html';
    ctx.body = logoutConfirmPage(
      { providerForm: form, clientName: ctx.oidc.client?.clientName ?? undefined },
      pageContext(branding, ctx),
    );
  };
}
