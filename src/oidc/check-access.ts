import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import type { PolicyEnforcer } from './policy-enforcer.ts';
import type { PolicyStage } from '../policy/stages.ts';
import { assertNever } from '../util/assert-never.ts';
import type { ProfileAccount } from './find-account.ts';
import { grantSkippedConsent } from './skipped-consent.ts';

/** The interaction prompt under which a denied authorization is shown (see `interactions/`). */
export const ACCESS_PROMPT = 'access';

/**
 * Which access-policy stage an authorization request is at: `authorize` right after the user signed in
 * (the interaction result carries a login), `validate_silent_auth` when an existing session
 * authorizes without one (a returning user, every `prompt=none` request).
 */
export function authorizationStage(ctx: KoaContextWithOIDC): PolicyStage {
  return ctx.oidc.result?.login ? 'authorize' : 'validate_silent_auth';
}

/**
 * The `authorize` and `validate_silent_auth` stages of the access policy: a prompt, placed after `login` and
 * before `consent`, whose one check asks the policy about the session's user and the requesting
 * application. oidc-provider runs the interaction policy on every authorization request and on every
 * resume, before any code is issued, so no authorization can skip it.
 *
 * Once it allows, an application with `skip_authorization` is given the grant the consent page would
 * have asked for (skipped-consent.ts).
 *
 * Not requestable (it is not a `prompt` value a client can send). A refusal becomes the 403 denied
 * page (which names neither the application nor any whitelist) for an interactive request, and an
 * `access_denied` error redirect for `prompt=none`.
 */
export function accessPrompt(policy: PolicyEnforcer): interactionPolicy.Prompt {
  const { Prompt, Check } = interactionPolicy;
  return new Prompt(
    { name: ACCESS_PROMPT, requestable: false },
    new Check('access_denied', 'the End-User may not use this application', 'access_denied', async (ctx) => {
      const { oidc } = ctx;
      const accountId = oidc.session?.accountId;
      // No session yet: the login prompt comes first, and this check runs again once it is done.
      if (!accountId) return Check.NO_NEED_TO_PROMPT;
      const decision = await policy.enforce(
        authorizationStage(ctx),
        {
          kind: 'user',
          clientId: oidc.client!.clientId,
          accountId,
          // Loaded in this request by findAccount; absent for an unknown or deactivated user, whom
          // the policy then loads itself (and refuses at the global gate).
          profile: (oidc.account as ProfileAccount | undefined)?.profile,
        },
        ctx,
      );
      switch (decision.outcome) {
        case 'allow':
          await grantSkippedConsent(ctx);
          return Check.NO_NEED_TO_PROMPT;
        case 'deny':
          return Check.REQUEST_PROMPT;
        default:
          return assertNever(decision);
      }
    }),
  );
}
