import type Koa from 'koa';
import type { Provider } from 'oidc-provider';
import { finish, type Interaction, type InteractionDependencies, renderStatus } from './common.ts';

/** The consent page's answer, and the grant it extends. */

export async function submitConsent(
  ctx: Koa.Context,
  deps: InteractionDependencies,
  provider: Provider,
  interaction: Interaction,
  form: URLSearchParams,
): Promise<void> {
  if (interaction.prompt.name !== 'consent') {
    return renderStatus(ctx, deps, 400, 'invalid_request', 'This sign-in step is already complete.');
  }
  const decision = form.get('decision');
  // Only the page's two buttons decide: anything else (no decision, `Allow`) is told to the person,
  // the sign-in kept, never told to the application as a denial the person did not make.
  if (decision !== 'allow' && decision !== 'deny') {
    return renderStatus(
      ctx,
      deps,
      400,
      'invalid_request',
      'Choose to allow or to deny the application (decision is allow or deny). Go back and choose again.',
    );
  }
  if (decision === 'deny') {
    return finish(ctx, provider, {
      error: 'access_denied',
      error_description: 'the End-User denied the request',
    });
  }
  return finish(ctx, provider, { consent: await grantConsent(provider, interaction) });
}

/** Adds what the consent prompt found missing to the grant (a new one if there is none yet). */
export async function grantConsent(
  provider: Provider,
  interaction: Interaction,
): Promise<{ grantId: string }> {
  const accountId = interaction.session?.accountId;
  const clientId = String(interaction.params.client_id ?? '');
  let grant = interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined;
  if (!grant || grant.accountId !== accountId || grant.clientId !== clientId) {
    grant = new provider.Grant({ accountId, clientId });
  }
  const details = interaction.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] };
  if (details.missingOIDCScope?.length) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims?.length) grant.addOIDCClaims(details.missingOIDCClaims);
  return { grantId: await grant.save() };
}
