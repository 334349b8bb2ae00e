import type Koa from 'koa';
import type { Provider } from 'oidc-provider';
import type { Application } from '../../applications/types.ts';
import { isShownLogoUrl } from '../../applications/validate.ts';
import { consentPage } from '../../http/pages/consent.ts';
import { deniedPage } from '../../http/pages/denied.ts';
import { loginPage } from '../../http/pages/login.ts';
import { pageContext } from '../../http/pages/layout.ts';
import { ACCESS_PROMPT } from '../check-access.ts';
import { SELECT_ACCOUNT_PROMPT } from '../select-account.ts';
import { selectAccountPage } from '../../http/pages/select-account.ts';
import {
  finish,
  type Interaction,
  type InteractionDependencies,
  renderStatus,
  SIGN_IN_FIELD_LIMITS,
  signInChoices,
} from './common.ts';
import { scopeDescription } from '../../http/pages/scope-descriptions.ts';
import { grantConsent } from './consent.ts';
import { issueCsrfToken } from './csrf.ts';

/**
 * The page an interaction shows for its prompt: the account choice, the login form, the 403 denied
 * page, or consent.
 */

/** The signed-in user of the interaction's session, or undefined when there is none (or they are gone). */
async function sessionUser(deps: InteractionDependencies, interaction: Interaction) {
  const accountId = interaction.session?.accountId;
  return accountId ? await deps.directory.profileById(Number(accountId)) : undefined;
}

export async function show(
  ctx: Koa.Context,
  deps: InteractionDependencies,
  provider: Provider,
  interaction: Interaction,
  app: Application,
  path: string,
): Promise<void> {
  switch (interaction.prompt.name) {
    case SELECT_ACCOUNT_PROMPT: {
      const user = await sessionUser(deps, interaction);
      // A user who is gone is not offered: the login page asks for an account instead.
      if (!user) return finish(ctx, provider, { [SELECT_ACCOUNT_PROMPT]: { another: true } });
      ctx.type = 'html';
      ctx.body = selectAccountPage(
        {
          action: `${path}/select_account`,
          csrfToken: issueCsrfToken(ctx, interaction.uid, path, deps.csrf),
          clientName: app.name,
          username: user.username,
        },
        pageContext(deps.branding, ctx),
      );
      return;
    }
    case 'login':
      ctx.type = 'html';
      ctx.body = loginPage(
        {
          action: `${path}/login`,
          csrfToken: issueCsrfToken(ctx, interaction.uid, path, deps.csrf),
          clientName: app.name,
          username:
            typeof interaction.params.login_hint === 'string' ? interaction.params.login_hint : undefined,
          fieldLimits: SIGN_IN_FIELD_LIMITS,
          ...signInChoices(deps, path),
        },
        pageContext(deps.branding, ctx),
      );
      return;
    case ACCESS_PROMPT:
      ctx.status = 403;
      ctx.type = 'html';
      ctx.body = deniedPage(pageContext(deps.branding, ctx));
      return;
    case 'consent': {
      const requested = String(interaction.params.prompt ?? '').split(' ');
      // Its grant is made before this prompt (skipped-consent.ts); a native application's consent
      // prompt, which asks for an interaction whatever the grant, is answered here.
      if (app.skipAuthorization && !requested.includes('consent')) {
        return finish(ctx, provider, { consent: await grantConsent(provider, interaction) });
      }
      const details = interaction.prompt.details as {
        missingOIDCScope?: string[];
        missingOIDCClaims?: string[];
      };
      const user = await sessionUser(deps, interaction);
      ctx.type = 'html';
      ctx.body = consentPage(
        {
          action: `${path}/consent`,
          csrfToken: issueCsrfToken(ctx, interaction.uid, path, deps.csrf),
          clientName: app.name,
          logoUrl: isShownLogoUrl(app.logoUrl) ? app.logoUrl : null,
          username: user?.username ?? '',
          scopes: (details.missingOIDCScope ?? []).map((name) => ({
            name,
            description: scopeDescription(name, deps.config.oidc.eveClaimsScope, 'start'),
          })),
          claims: details.missingOIDCClaims ?? [],
        },
        pageContext(deps.branding, ctx),
      );
      return;
    }
    default:
      return renderStatus(ctx, deps, 400, 'invalid_request', 'This sign-in step is not supported.');
  }
}
