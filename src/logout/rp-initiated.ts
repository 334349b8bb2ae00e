import type Koa from 'koa';
import type { Logger } from '../logging/logger.ts';
import type { LogoutService } from './service.ts';

interface EndedSession {
  accountId?: string;
  destroyed?: boolean;
  authorizations?: Record<string, unknown>;
  sidFor(clientId: string): string | undefined;
}

/**
 * The RP-initiated logout trigger (section G), installed with `provider.use()`: once the provider
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
    const route = (ctx as unknown as { _matchedRouteName?: string })._matchedRouteName;
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

/**
 * Every ID token carries `sid` (the session id this client knows the session by), so that a
 * relying party can match the `sid` of a logout token to its own session. oidc-provider includes
 * it only for clients it sees with a back-channel URI, and ours never do (delivery is ours).
 */
export function includeSessionIdInIdTokens(provider: { Client: { prototype: object } }): void {
  Object.defineProperty(provider.Client.prototype, 'includeSid', {
    configurable: true,
    writable: true,
    value: () => true,
  });
}
