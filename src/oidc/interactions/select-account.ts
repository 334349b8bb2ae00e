import type Koa from 'koa';
import type { Provider } from 'oidc-provider';
import { type AccountChoice, SELECT_ACCOUNT_PROMPT } from '../select-account.ts';
import { finish, type Interaction, type InteractionDependencies, renderStatus } from './common.ts';

/**
 * The account-choice page's answer (`prompt=select_account`): go on as the signed-in user, or sign in
 * as another, which the login prompt then asks for (select-account.ts).
 */
export async function submitAccountChoice(
  ctx: Koa.Context,
  deps: InteractionDependencies,
  provider: Provider,
  interaction: Interaction,
  form: URLSearchParams,
): Promise<void> {
  if (interaction.prompt.name !== SELECT_ACCOUNT_PROMPT) {
    return renderStatus(ctx, deps, 400, 'invalid_request', 'This sign-in step is already complete.');
  }
  const answer = form.get('account');
  if (answer !== 'current' && answer !== 'another') {
    return renderStatus(
      ctx,
      deps,
      400,
      'invalid_request',
      'Choose to continue as the signed-in user or to sign in as another user (account is current or another).',
    );
  }
  const choice: AccountChoice = { another: answer === 'another' };
  return finish(ctx, provider, { [SELECT_ACCOUNT_PROMPT]: choice });
}
