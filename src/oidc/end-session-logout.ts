import type Koa from 'koa';
import type { Logger } from '../logging/logger.ts';
import type { LogoutService } from '../logout/service.ts';
import { matchedRouteName } from './provider-internals.ts';

interface EndedSession {
  accountId?: string;
  destroyed?: boolean;
  authorizations?: Record<string, unknown>;
  sidFor(clientId: string): string | undefined;
}

/**
 * The RP-initiated logout trigger of back-channel logout, installed with `provider.use()`: once the provider
 * has ended a session at `end_session_confirm` (the user confirmed "sign me out"), every application
 * of that session gets a back-channel logout with the `sid` it was given. The jobs are queued before
 * the redirect leaves, so a crash after the response loses none. The provider never delivers itself
 * (no client it sees has a back-channel URI).
 */
export function endSessionLogout(
  logout: Pick<LogoutService, 'enqueueSessionLogout'>,
  logger: Pick<Logger, 'error'>,
): Koa.Middleware {
  return async (ctx, next) => {
    await next();
    const route = matchedRouteName(ctx);
    if (route !== 'end_session_confirm' || ctx.status !== 303) return;
    const session = (ctx as unknown as { oidc?: { session?: EndedSession } }).oidc?.session;
    if (!session?.destroyed || !session.accountId || !/^\d+$/.test(session.accountId)) return;
    const clients = Object.keys(session.authorizations ?? {}).map((clientId) => ({
      clientId,
      sid: session.sidFor(clientId) ?? null,
    }));
    if (clients.length === 0) return;
    try {
      await logout.enqueueSessionLogout({ userId: Number(session.accountId), clients });
    } catch (error) {
      // The session is over either way; the operator must know that its applications were not told.
      logger.error(
        { err: { name: (error as Error).name, message: (error as Error).message } },
        'back-channel logouts of an ended session could not be queued',
      );
    }
  };
}
