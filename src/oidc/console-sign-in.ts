import type Koa from 'koa';
import type { Provider } from 'oidc-provider';
import { ACCOUNT_CONSOLE_CLIENT_ID } from '../applications/account-console.ts';

/**
 * What the web console (src/console/) needs from the provider to be its relying party: the provider
 * session of a request, and the in-process redemption of the console client's authorization codes.
 */

/** The provider session behind a request, when someone is signed in. */
export interface ProviderSessionInfo {
  accountId: string;
  uid: string;
  /** How the person signed in (`pwd`, `otp`). */
  amr: readonly string[];
  /** Epoch seconds of the sign-in. */
  loginTs: number | null;
}

export interface ConsoleSignIn {
  providerSession(ctx: Koa.Context): Promise<ProviderSessionInfo | undefined>;
  /**
   * Redeems a code issued to the console client for `redirectUri` with PKCE `codeChallenge` (S256):
   * once, bound to the provider session it was issued in. Undefined when the code is not such a code.
   */
  redeemCode(
    value: string,
    expected: { redirectUri: string; codeChallenge: string },
  ): Promise<{ accountId: string; sessionUid: string } | undefined>;
  /**
   * Ends the provider session behind a request, as the provider's own logout does (its cookie then
   * names no session: the next sign-in asks for the password), but tells no application: for the
   * console's "Sign out" when RP-initiated logout is off (`logout.rpInitiated`).
   */
  endSession(ctx: Koa.Context): Promise<void>;
}

export function consoleSignIn(current: () => Provider): ConsoleSignIn {
  return {
    async providerSession(ctx) {
      const session = await current().Session.get(ctx);
      if (!session.accountId || !session.uid) return undefined;
      return {
        accountId: session.accountId,
        uid: session.uid,
        amr: Array.isArray(session.amr) ? session.amr.map(String) : [],
        loginTs: typeof session.loginTs === 'number' ? session.loginTs : null,
      };
    },
    async redeemCode(value, expected) {
      const code = await current().AuthorizationCode.find(value);
      if (
        !code ||
        !code.isValid ||
        code.clientId !== ACCOUNT_CONSOLE_CLIENT_ID ||
        code.redirectUri !== expected.redirectUri ||
        code.codeChallengeMethod !== 'S256' ||
        code.codeChallenge !== expected.codeChallenge ||
        typeof code.accountId !== 'string' ||
        typeof code.sessionUid !== 'string'
      )
        return undefined;
      try {
        await code.consume();
      } catch {
        return undefined;
      }
      return { accountId: code.accountId, sessionUid: code.sessionUid };
    },
    async endSession(ctx) {
      const session = await current().Session.get(ctx);
      if (session.accountId) await session.destroy();
    },
  };
}
