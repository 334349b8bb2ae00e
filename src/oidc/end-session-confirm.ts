import type { KoaContextWithOIDC } from 'oidc-provider';
import type { DatabaseHandle } from '../db/connect.ts';
import type { Branding } from '../http/pages/branding.ts';
import { errorPage } from '../http/pages/error.ts';
import { pageContext } from '../http/pages/layout.ts';
import type { Logger } from '../logging/logger.ts';
import type { LogoutService, QueuedLogout } from '../logout/service.ts';
import { deleteLiveSession, storageId } from '../tokens/store.ts';

/** What the confirmation step reads of the provider's session. */
interface ConfirmedSession {
  id: string;
  accountId?: string;
  authorizations?: Record<string, unknown>;
  state?: { clientId?: string; postLogoutRedirectUri?: string; state?: string };
  sidFor(clientId: string): string | undefined;
}

export interface EndSessionConfirmDependencies {
  database: Pick<DatabaseHandle, 'db'>;
  branding: Branding;
  logger: Pick<Logger, 'error'>;
  /** Absent when back-channel logout is not wired (the session still ends). */
  logout?: Pick<LogoutService, 'enqueueSessionLogout' | 'published'>;
}

/**
 * The answer to the RP-initiated logout confirmation (`POST /o/logout/confirm`, after the
 * provider checked its xsrf field), run just before the provider's own step:
 *
 * - **"No, stay signed in"** changes nothing: the provider would revoke the requesting client's
 *   grant, drop it from the session and rotate the session's id; here the session, every grant and
 *   every token stay as they were, and the browser goes where the provider would have sent it.
 * - **"Yes, sign me out"** destroys the session in the same transaction that queues the
 *   back-channel logout of each of its applications (with the `sid` each was given), so a crash
 *   loses neither half; when the jobs cannot be queued the user gets an error page and nothing is
 *   destroyed. A session another request ended first (the same confirmation posted twice at once,
 *   on any instance) queues nothing again. The provider's own step then revokes the grants, clears
 *   the cookie and redirects.
 */
export function endSessionConfirm(deps: EndSessionConfirmDependencies) {
  return async (ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> => {
    const session = ctx.oidc.session as unknown as ConfirmedSession;
    if (!ctx.oidc.params?.logout) {
      stayedSignedIn(ctx, session);
      return;
    }
    let queued: QueuedLogout[];
    try {
      queued = await deps.database.db.transaction().execute(async (trx) => {
        // Only the request that ends the session tells its applications: a confirmation posted
        // twice at once (a double click, the posts balanced onto two instances) loaded the session
        // twice, and another sign-out (everywhere, a deactivation) may have ended it meanwhile and
        // told them already.
        if (!(await deleteLiveSession(trx, storageId(session.id)))) return [];
        const accountId = session.accountId;
        if (!deps.logout || !accountId || !/^\d+$/.test(accountId)) return [];
        const clients = Object.keys(session.authorizations ?? {}).map((clientId) => ({
          clientId,
          sid: session.sidFor(clientId) ?? null,
        }));
        return deps.logout.enqueueSessionLogout(trx, { userId: Number(accountId), clients });
      });
    } catch (error) {
      deps.logger.error(
        { err: { name: (error as Error).name, message: (error as Error).message } },
        'sign-out refused: the back-channel logouts of the session could not be queued; nothing was ended',
      );
      ctx.status = 503;
      ctx.type = 'html';
      ctx.set('Cache-Control', 'no-store');
      ctx.body = errorPage(
        {
          error: 'temporarily_unavailable',
          description:
            'You are still signed in: the applications of this session could not be told about the sign-out. Try again in a moment.',
          status: 503,
        },
        pageContext(deps.branding, ctx),
      );
      return;
    }
    await next();
    deps.logout?.published(queued);
  };
}

/** Where the provider sends a browser that declined, without anything it would have changed. */
function stayedSignedIn(ctx: KoaContextWithOIDC, session: ConfirmedSession): void {
  const state = session.state ?? {};
  // The logout request's state (its xsrf secret) is spent; the session is as it was before.
  session.state = undefined;
  let target: URL;
  if (state.postLogoutRedirectUri) {
    target = new URL(state.postLogoutRedirectUri);
    if (state.state != null) target.searchParams.set('state', state.state);
  } else {
    target = new URL(ctx.oidc.urlFor('end_session_success'));
    if (state.clientId) target.searchParams.set('client_id', state.clientId);
  }
  ctx.status = 303;
  ctx.redirect(target.href);
}
