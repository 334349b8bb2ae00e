import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import type { Application } from '../applications/types.ts';
import type { UserProfile } from '../directory/types.ts';
import type { ApplicationLookup } from './clients.ts';
import type { ProfileAccount } from './find-account.ts';

export type AccessCheck =
  { outcome: 'allow' } | { outcome: 'deny'; reason: 'inactive_user' | 'inactive_app' | 'no_client' };

/**
 * Whether `profile` may use `app`, asked at every authorization request (interactive: the 403
 * denied page; `prompt=none`: an `access_denied` error redirect).
 *
 * PENDING issue 5 (section D): this allows every active user of an active application. The state
 * and group whitelists and the global `oidc_access` gate (`decide()` in src/policy/decide.ts) take
 * its place there, together with the checks at the token, refresh, userinfo and introspection
 * stages.
 */
export function checkAccess(profile: UserProfile | undefined, app: Application | undefined): AccessCheck {
  if (!app) return { outcome: 'deny', reason: 'no_client' };
  if (!app.active) return { outcome: 'deny', reason: 'inactive_app' };
  if (!profile || profile.user.active !== 1) return { outcome: 'deny', reason: 'inactive_user' };
  return { outcome: 'allow' };
}

/** The interaction prompt under which a denied authorization is shown (see `interactions/`). */
export const ACCESS_PROMPT = 'access';

/**
 * A prompt, placed after `login` and before `consent`, whose one check asks `checkAccess`. Not
 * requestable (it is not a `prompt` value a client can send). Its error is `access_denied`, which
 * is what a `prompt=none` request receives.
 */
export function accessPrompt(
  applications: ApplicationLookup,
  onDenied?: (ctx: KoaContextWithOIDC, decision: Extract<AccessCheck, { outcome: 'deny' }>) => void,
): interactionPolicy.Prompt {
  const { Prompt, Check } = interactionPolicy;
  return new Prompt(
    { name: ACCESS_PROMPT, requestable: false },
    new Check('access_denied', 'the End-User may not use this application', 'access_denied', async (ctx) => {
      const { oidc } = ctx;
      if (!oidc.session?.accountId) return Check.NO_NEED_TO_PROMPT;
      const account = oidc.account as ProfileAccount | undefined;
      const app = await applications.findByClientId(oidc.client!.clientId);
      const decision = checkAccess(account?.profile, app);
      if (decision.outcome === 'allow') return Check.NO_NEED_TO_PROMPT;
      onDenied?.(ctx, decision);
      return Check.REQUEST_PROMPT;
    }),
  );
}
