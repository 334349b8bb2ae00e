import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';

/** The interaction prompt of `prompt=select_account` (OpenID Connect Core 1.0 §3.1.2.1). */
export const SELECT_ACCOUNT_PROMPT = 'select_account';

/** What the account-choice page puts in the interaction result (interactions/select-account.ts). */
export type AccountChoice = { another: boolean };

/** The choice made in this authorization, when the account-choice page was answered. */
function accountChoice(ctx: KoaContextWithOIDC): AccountChoice | undefined {
  return (ctx.oidc.result as Record<string, AccountChoice | undefined> | undefined)?.[SELECT_ACCOUNT_PROMPT];
}

/**
 * `prompt=select_account`: a browser session holds one account, so the choice is between going on as
 * the signed-in user and signing in as someone else. The prompt, placed before `login`, shows that
 * choice when the session has a user; without one, or when the user signs in anyway (`prompt=login`, a
 * sign-in earlier in this authorization), the login page is where the account is chosen.
 *
 * Requestable, so the provider accepts the value and discovery can list it. `prompt=none` with
 * it is refused by the provider as `invalid_request` (`none` must be used alone); should the check
 * ever run without an interaction allowed, its error is the spec's `account_selection_required`.
 */
export function selectAccountPrompt(): interactionPolicy.Prompt {
  const { Prompt, Check } = interactionPolicy;
  const prompt = new Prompt({ name: SELECT_ACCOUNT_PROMPT, requestable: true });
  // The provider's own check asks whenever the value was sent; this one knows when the login page asks instead.
  prompt.checks.clear();
  prompt.checks.add(
    new Check(
      'select_account_prompt',
      'the End-User is to choose the account to continue with',
      'account_selection_required',
      (ctx) => {
        const { oidc } = ctx;
        if (!oidc.prompts.has(SELECT_ACCOUNT_PROMPT) || !oidc.promptPending(SELECT_ACCOUNT_PROMPT))
          return Check.NO_NEED_TO_PROMPT;
        if (!oidc.session?.accountId || oidc.prompts.has('login') || oidc.result?.login)
          return Check.NO_NEED_TO_PROMPT;
        return Check.REQUEST_PROMPT;
      },
    ),
  );
  return prompt;
}

/**
 * Added to the `login` prompt: the user chose to sign in as someone else on the account-choice page.
 * Once another user signs in, the provider ends the earlier user's session (its logout confirmation,
 * posted for the user: end-session-confirm.ts) before it goes on with the new one.
 */
export function anotherAccountCheck(): interactionPolicy.Check {
  const { Check } = interactionPolicy;
  return new Check(
    'select_account_another',
    'the End-User chose to sign in with another account',
    'login_required',
    (ctx) =>
      accountChoice(ctx)?.another === true && !ctx.oidc.result?.login
        ? Check.REQUEST_PROMPT
        : Check.NO_NEED_TO_PROMPT,
  );
}
