import type Koa from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { notFramedPolicy } from '../http/content-security-policy.ts';
import type { Branding } from '../http/pages/branding.ts';
import { pageContext } from '../http/pages/layout.ts';
import { logoutWithoutSessionPage } from '../http/pages/logout.ts';
import { CONFIRM_SCRIPT_SOURCE } from './logout-source.ts';

/**
 * A logout request (`end_session`) with no one signed in gets no `logoutSource` page: oidc-provider
 * answers it with its own unbranded form_post page (`renderLogout` in lib/actions/end_session.js),
 * which posts the confirmation with `logout=yes`. Installed with `provider.use()`, this puts the
 * same form (the provider's action and the `xsrf` it wrote into the session) on a page of the
 * community's. The request, the session and the confirmation are the provider's, as they were.
 */
export function logoutWithoutSession(branding: Branding): Koa.Middleware {
  return async (ctx, next) => {
    await next();
    // No route matched (a method it has none for): no `ctx.oidc` at all.
    const { oidc } = ctx as unknown as Partial<KoaContextWithOIDC>;
    if (ctx.status !== 200 || oidc?.route !== 'end_session') return;
    const session = oidc.session;
    // With someone signed in, logoutSource rendered the confirmation page already.
    if (!session || session.accountId) return;
    const xsrf = (session.state as { secret?: unknown } | undefined)?.secret;
    if (typeof xsrf !== 'string') return;
    // The page presses Continue by itself: the one inline script, allowed by its hash.
    ctx.set('Content-Security-Policy', notFramedPolicy([CONFIRM_SCRIPT_SOURCE]));
    ctx.type = 'html';
    ctx.body = logoutWithoutSessionPage(
      { action: oidc.urlFor('end_session_confirm'), xsrf },
      pageContext(branding, ctx),
    );
  };
}
