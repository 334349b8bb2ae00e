import type { Mode } from '../config/load.ts';
import type { ExternalAuthenticator } from '../directory/authenticator.ts';
import type { Logger } from '../logging/logger.ts';
import { decideEveSignIn, referralMessage } from './eve-login.ts';
import {
  createEveSsoClient,
  type EveIdentity,
  type EveSsoClient,
  EveSsoError,
  type EveSsoSettings,
} from './eve-sso.ts';
import type { AaDb } from './schema.ts';
import { selectCharacterOwnership, unkeptUserId } from './sign-in-queries.ts';

/**
 * "Sign in with EVE Online": EVE SSO v2 proves which character (and owner) is at the keyboard, and
 * Alliance Auth's tables say whether AA itself would log that person in without writing anything
 * (an ownership of the character with the same owner hash, the character is the user's main, the
 * user is active). Every other case is sent to Alliance Auth's own login (`AA_OIDC_AA_LOGIN_URL`),
 * where AA registers users, records new owners and lets people pick a main; nothing is created here.
 */
export interface EveAuthenticatorDependencies {
  aa: AaDb;
  settings: EveSsoSettings;
  /** The server's mode: EVE SSO's endpoints may be http only in development. */
  mode: Mode;
  /** Alliance Auth's own sign-in page. */
  loginUrl: string;
  logger: Pick<Logger, 'info' | 'warn'>;
  /** The EVE SSO client (tests may pass one with its own clock or network). */
  client?: EveSsoClient;
}

export const EVE_AUTHENTICATOR_ID = 'eve';

export function eveSsoAuthenticator(deps: EveAuthenticatorDependencies): ExternalAuthenticator<EveIdentity> {
  const client = deps.client ?? createEveSsoClient(deps.settings, { mode: deps.mode });
  return {
    kind: 'external',
    label: 'EVE Online',
    id: EVE_AUTHENTICATOR_ID,
    authorizationRequest: (redirectUri) => client.authorizationRequest(redirectUri),
    async verify(code, redirectUri, codeVerifier) {
      try {
        const identity = await client.identify(code, redirectUri, codeVerifier);
        return { outcome: 'verified', subject: `eve:${identity.characterId}`, identity };
      } catch (error) {
        if (!(error instanceof EveSsoError)) throw error;
        deps.logger.warn({ err: { kind: error.kind, message: error.message } }, 'EVE SSO sign-in failed');
        return { outcome: 'failed', kind: error.kind, message: error.message };
      }
    },
    async judge(identity) {
      const decision = decideEveSignIn(
        identity,
        await selectCharacterOwnership(deps.aa, identity.characterId),
      );
      const unkept = decision.outcome === 'accept' ? unkeptUserId(decision.userId) : undefined;
      if (unkept !== undefined) {
        const message = `the Alliance Auth user's ${unkept}`;
        deps.logger.warn({ characterId: identity.characterId }, `EVE SSO sign-in refused: ${message}`);
        return { outcome: 'failed', kind: 'rejected', message };
      }
      if (decision.outcome === 'accept') {
        return { outcome: 'authenticated', userId: decision.userId, amr: ['eve_sso'] };
      }
      deps.logger.info(
        { characterId: identity.characterId, reason: decision.reason },
        'EVE SSO sign-in sent to Alliance Auth',
      );
      return {
        outcome: 'referred',
        reason: decision.reason,
        message: referralMessage(decision.reason, identity.characterName),
        referTo: deps.loginUrl,
      };
    },
  };
}
