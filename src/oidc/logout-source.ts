import { createHash } from 'node:crypto';
import type Koa from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { ACCOUNT_CONSOLE_CLIENT_ID } from '../applications/account-console.ts';
import { notFramedPolicy } from '../http/content-security-policy.ts';
import type { Branding } from '../http/pages/branding.ts';
import { pageContext } from '../http/pages/layout.ts';
import { CONFIRM_BY_ITSELF_SCRIPT, logoutConfirmPage } from '../http/pages/logout.ts';
import { type ConsoleSignOutCookieOptions, takeConsoleSignOut } from './console-sign-out.ts';

/** The `script-src` source of `CONFIRM_BY_ITSELF_SCRIPT`: its hash, the one script it allows. */
export const CONFIRM_SCRIPT_SOURCE = `'sha256-${createHash('sha256').update(CONFIRM_BY_ITSELF_SCRIPT).digest('base64')}'`;

/**
 * `features.rpInitiatedLogout.logoutSource`: the confirmation page, asking about the community by
 * name. `form` is the provider's own form (its action and the `xsrf` field bound to the session),
 * which our buttons submit.
 *
 * The account console's own "Sign out" was the member's click already: when the request is the
 * console client's and carries the note the console's sign-out left for this session
 * (console-sign-out.ts), the page presses "Yes" by itself (one inline script, allowed by its hash
 * alone). The provider's form and its xsrf check are unchanged, and without script the buttons
 * remain. Every other logout request, the console client's without the note included, is asked.
 */
export function logoutSource(branding: Branding, cookies: ConsoleSignOutCookieOptions) {
  return async (ctx: KoaContextWithOIDC, form: string): Promise<void> => {
    const noted = takeConsoleSignOut(ctx as unknown as Koa.Context, ctx.oidc.session?.uid, cookies);
    const confirmByItself = noted && ctx.oidc.client?.clientId === ACCOUNT_CONSOLE_CLIENT_ID;
    // Without the script, the page keeps the policy mount.ts gives every provider page.
    if (confirmByItself) ctx.set('Content-Security-Policy', notFramedPolicy([CONFIRM_SCRIPT_SOURCE]));
    ctx.type = 'html';
    ctx.body = logoutConfirmPage(
      { providerForm: form, clientName: ctx.oidc.client?.clientName ?? undefined, confirmByItself },
      pageContext(branding, ctx),
    );
  };
}
