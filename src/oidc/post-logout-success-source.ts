import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Branding } from '../http/pages/branding.ts';
import { pageContext } from '../http/pages/layout.ts';
import { logoutSuccessPage } from '../http/pages/logout.ts';

/** `features.rpInitiatedLogout.postLogoutSuccessSource`: shown when no post_logout_redirect_uri was given. */
export function postLogoutSuccessSource(branding: Branding) {
  return async (ctx: KoaContextWithOIDC): Promise<void> => {
    ctx.type = 'html';
    ctx.body = logoutSuccessPage(
      { clientName: ctx.oidc.client?.clientName ?? undefined },
      pageContext(branding, ctx),
    );
  };
}
