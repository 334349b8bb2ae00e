import type { KoaContextWithOIDC } from 'oidc-provider';
import { logoutConfirmPage, logoutSuccessPage } from '../http/pages/logout.ts';

/**
 * `features.rpInitiatedLogout.logoutSource`: the confirmation page. `form` is the provider's own
 * form (its action and the `xsrf` field bound to the session), which our buttons submit.
 */
export async function logoutSource(ctx: KoaContextWithOIDC, form: string): Promise<void> {
  ctx.type = 'html';
  ctx.body = logoutConfirmPage({
    providerForm: form,
    host: ctx.host,
    clientName: ctx.oidc.client?.clientName ?? undefined,
  });
}

/** `features.rpInitiatedLogout.postLogoutSuccessSource`: shown when no post_logout_redirect_uri was given. */
export async function postLogoutSuccessSource(ctx: KoaContextWithOIDC): Promise<void> {
  ctx.type = 'html';
  ctx.body = logoutSuccessPage({ clientName: ctx.oidc.client?.clientName ?? undefined });
}
