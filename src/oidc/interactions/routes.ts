import type Koa from 'koa';
import type { Provider } from 'oidc-provider';
import type { Application } from '../../applications/types.ts';
import type { Config } from '../../config/load.ts';
import type { Authenticator, PasswordAuthenticator } from '../../directory/authenticator.ts';
import type { Directory } from '../../directory/port.ts';
import type { Logger } from '../../logging/logger.ts';
import { requestLog } from '../../logging/request-context.ts';
import { isDatabaseUnavailable } from '../../db/errors.ts';
import { consentPage } from '../../http/pages/consent.ts';
import { deniedPage } from '../../http/pages/denied.ts';
import { errorPage } from '../../http/pages/error.ts';
import { loginPage } from '../../http/pages/login.ts';
import { passwordChangePage } from '../../http/pages/password-change.ts';
import type { Branding } from '../../http/pages/branding.ts';
import { pageContext } from '../../http/pages/layout.ts';
import { ACCESS_PROMPT } from '../check-access.ts';
import type { ApplicationLookup } from '../clients.ts';
import { interactionPath } from '../configuration.ts';
import { readBody, RequestBodyTooLarge } from '../../http/request-body.ts';
import { answerTooLarge } from '../../http/refusal.ts';
import { CSRF_FIELD, type CsrfOptions, issueCsrfToken, verifyCsrfToken } from './csrf.ts';
import { assertNever } from '../../util/assert-never.ts';
import { issuePasswordChangeToken, verifyPasswordChangeToken } from './password-change.ts';
import type { LoginThrottle } from './throttle.ts';
import {
  TWO_FACTOR_ACTIONS,
  type TwoFactorAction,
  type TwoFactorStepDependencies,
  twoFactorStep,
  type StepRequest,
} from './two-factor-step.ts';

type Interaction = Awaited<ReturnType<Provider['interactionDetails']>>;

export interface InteractionDependencies {
  config: Config;
  logger: Logger;
  provider: () => Provider;
  applications: ApplicationLookup;
  directory: Pick<Directory, 'profileById'>;
  /** The sign-in methods the login page offers; the password form needs a password authenticator. */
  authenticators: readonly Authenticator[];
  throttle: LoginThrottle;
  csrf: CsrfOptions;
  /** Signs the proof that a sign-in gave the right password before it must choose a new one. */
  passwordChangeKey: Buffer;
  branding: Branding;
  /** Two-factor sign-in: the code (or the enrolment) after the password, when the user needs one. */
  twoFactor?: Omit<TwoFactorStepDependencies, 'directory' | 'throttle' | 'key' | 'branding'>;
}

/** Said for any failed login, whatever failed: it never tells whether the username exists. */
export const LOGIN_FAILED_MESSAGE = 'Invalid username or password.';
export const LOGIN_THROTTLED_MESSAGE =
  'Too many failed sign-in attempts. Wait a few minutes, then try again.';
const FORM_LIMIT = 16 * 1024;

const SCOPE_DESCRIPTIONS: Readonly<Record<string, string>> = {
  openid: 'Your account identifier',
  profile: "Your username, groups and state, and your main character's name and portrait",
  email: 'Your email address',
  groups: 'Your groups and state',
  offline_access: 'Access while you are not signed in',
};

/** What the consent page says a scope gives the application; the EVE claims follow their scope. */
function scopeDescription(name: string, eveClaimsScope: string): string {
  const described = SCOPE_DESCRIPTIONS[name];
  if (name !== eveClaimsScope) return described ?? name;
  const eve = "your main character's corporation, alliance and faction";
  return described ? `${described}; ${eve}` : eve.charAt(0).toUpperCase() + eve.slice(1);
}

/**
 * The interaction pages (`/o/interaction/:uid`): login, the 403 denied page, consent. They are the
 * provider's interactions: each reads the pending interaction through the provider
 * (`interactionDetails`, bound to the interaction cookie) and ends it with `interactionResult`,
 * then sends the browser back to the provider's resume URL.
 */
export function interactionRoutes(deps: InteractionDependencies): Koa.Middleware {
  const base = interactionPath(deps.config.issuer, '');
  const secondFactor = deps.twoFactor
    ? twoFactorStep({
        ...deps.twoFactor,
        directory: deps.directory,
        throttle: deps.throttle,
        key: deps.csrf.key,
        branding: deps.branding,
      })
    : undefined;
  return async (ctx, next) => {
    if (!ctx.path.startsWith(base)) return next();
    const [uid, action, ...rest] = ctx.path.slice(base.length).split('/');
    if (!uid || rest.length > 0 || !/^[A-Za-z0-9_-]{1,64}$/.test(uid)) return next();
    const route = `${ctx.method} ${action ?? ''}`;
    const routes = [
      'GET ',
      'POST login',
      'POST password',
      'POST consent',
      ...TWO_FACTOR_ACTIONS.map((step) => `POST ${step}`),
    ];
    if (!routes.includes(route)) return next();

    ctx.set('X-Frame-Options', 'DENY');
    ctx.set(
      'Content-Security-Policy',
      "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; base-uri 'none'; frame-ancestors 'none'",
    );
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Pragma', 'no-cache');

    const provider = deps.provider();
    let interaction: Interaction;
    try {
      interaction = await provider.interactionDetails(ctx.req, ctx.res);
    } catch (error) {
      if (isDatabaseUnavailable(error)) throw error;
      return renderStatus(
        ctx,
        deps,
        400,
        'invalid_request',
        'This sign-in request has expired. Start again from the application.',
      );
    }
    if (interaction.uid !== uid) {
      return renderStatus(
        ctx,
        deps,
        400,
        'invalid_request',
        'This sign-in request does not match your browser session.',
      );
    }
    const clientId = String(interaction.params.client_id ?? '');
    const app = await deps.applications.findByClientId(clientId);
    if (!app || !app.active) {
      return renderStatus(ctx, deps, 400, 'invalid_client', 'The application is not available.');
    }
    const path = interactionPath(deps.config.issuer, uid);

    try {
      if (route === 'GET ') return await show(ctx, deps, provider, interaction, app, path);
      const form = await readForm(ctx);
      if (form instanceof RequestBodyTooLarge)
        return answerTooLarge(ctx, form.limit, { page: deps.branding });
      if (!form || !verifyCsrfToken(ctx, uid, form.get(CSRF_FIELD), deps.csrf)) {
        return renderStatus(
          ctx,
          deps,
          403,
          'invalid_request',
          'The form has expired. Go back and try again.',
        );
      }
      const step: StepRequest = {
        ctx,
        uid,
        path,
        clientName: app.name,
        csrfToken: () => issueCsrfToken(ctx, uid, path, deps.csrf),
        finishLogin: (userId, amr) =>
          finish(ctx, provider, { login: { accountId: String(userId), acr: '0', amr, remember: true } }),
        fail: (status, description) => renderStatus(ctx, deps, status, 'invalid_request', description),
      };
      if (route === 'POST login')
        return await submitLogin(ctx, deps, provider, interaction, app, path, form, step, secondFactor);
      if (route === 'POST password')
        return await submitNewPassword(ctx, deps, interaction, app, path, form, step, secondFactor);
      if (route !== 'POST consent') {
        if (!secondFactor || interaction.prompt.name !== 'login')
          return renderStatus(ctx, deps, 400, 'invalid_request', 'This sign-in step is already complete.');
        return await secondFactor.submit(step, action as TwoFactorAction, form);
      }
      return await submitConsent(ctx, deps, provider, interaction, form);
    } catch (error) {
      requestLog(ctx, deps.logger).error(
        { err: { name: (error as Error).name, message: (error as Error).message }, clientId },
        'interaction failed',
      );
      return renderStatus(ctx, deps, 500, 'server_error', undefined);
    }
  };
}

async function show(
  ctx: Koa.Context,
  deps: InteractionDependencies,
  provider: Provider,
  interaction: Interaction,
  app: Application,
  path: string,
): Promise<void> {
  switch (interaction.prompt.name) {
    case 'login':
      ctx.type = 'html';
      ctx.body = loginPage(
        {
          action: `${path}/login`,
          csrfToken: issueCsrfToken(ctx, interaction.uid, path, deps.csrf),
          clientName: app.name,
          username:
            typeof interaction.params.login_hint === 'string' ? interaction.params.login_hint : undefined,
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
      if (app.skipAuthorization && !requested.includes('consent')) {
        return finish(ctx, provider, { consent: await grantConsent(provider, interaction) });
      }
      const details = interaction.prompt.details as {
        missingOIDCScope?: string[];
        missingOIDCClaims?: string[];
      };
      const accountId = interaction.session?.accountId;
      const user = accountId ? await deps.directory.profileById(Number(accountId)) : undefined;
      ctx.type = 'html';
      ctx.body = consentPage(
        {
          action: `${path}/consent`,
          csrfToken: issueCsrfToken(ctx, interaction.uid, path, deps.csrf),
          clientName: app.name,
          logoUrl: app.logoUrl,
          username: user?.username ?? '',
          scopes: (details.missingOIDCScope ?? []).map((name) => ({
            name,
            description: scopeDescription(name, deps.config.oidc.eveClaimsScope),
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

async function submitLogin(
  ctx: Koa.Context,
  deps: InteractionDependencies,
  provider: Provider,
  interaction: Interaction,
  app: Application,
  path: string,
  form: URLSearchParams,
  step: StepRequest,
  secondFactor: ReturnType<typeof twoFactorStep> | undefined,
): Promise<void> {
  if (interaction.prompt.name !== 'login') {
    return renderStatus(ctx, deps, 400, 'invalid_request', 'This sign-in step is already complete.');
  }
  const username = (form.get('username') ?? '').trim().slice(0, 150);
  const password = (form.get('password') ?? '').slice(0, 1024);
  const again = (status: number, error: string) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = loginPage(
      {
        action: `${path}/login`,
        csrfToken: issueCsrfToken(ctx, interaction.uid, path, deps.csrf),
        clientName: app.name,
        username,
        error,
      },
      pageContext(deps.branding, ctx),
    );
  };
  // No username holds a control character; PostgreSQL would refuse a NUL byte in the throttle query.
  // eslint-disable-next-line no-control-regex
  if (username === '' || password === '' || /[\u0000-\u001f\u007f]/.test(username)) {
    return again(400, LOGIN_FAILED_MESSAGE);
  }
  // The attempt takes its place in the budgets before the password is verified: a burst of parallel
  // guesses gets at most the remaining budget checked, and the rest never reach argon2.
  const attempt = await deps.throttle.reserve(username, ctx.ip);
  if (!attempt) return again(429, LOGIN_THROTTLED_MESSAGE);

  const authenticator = passwordAuthenticator(deps.authenticators);
  const result = authenticator
    ? await authenticator.authenticate(username, password)
    : ({ outcome: 'refused', reason: 'invalid' } as const);
  if (result.outcome === 'refused') {
    requestLog(ctx, deps.logger).info({ clientId: app.clientId, outcome: result.reason }, 'login failed');
    return again(401, LOGIN_FAILED_MESSAGE);
  }
  // A password someone else chose (the bootstrap superuser's) is replaced before anything else
  // (a second factor included): the password was right, so its attempt is no failure.
  if (result.outcome === 'password_change_required') {
    await deps.throttle.succeeded(attempt);
    return askForNewPassword(ctx, deps, interaction, app, path, result);
  }
  // With two-factor sign-in the password's attempt stays counted until the code is right.
  const passed = { userId: result.userId, username, amr: result.amr };
  if (secondFactor && (await secondFactor.afterPassword(step, passed)) === 'handled') return;
  await deps.throttle.succeeded(attempt);
  return finish(ctx, provider, {
    login: { accountId: String(result.userId), acr: '0', amr: result.amr, remember: true },
  });
}

function askForNewPassword(
  ctx: Koa.Context,
  deps: InteractionDependencies,
  interaction: Interaction,
  app: Application,
  path: string,
  user: { userId: number; username: string },
  error?: string,
): void {
  ctx.status = error === undefined ? 200 : 400;
  ctx.type = 'html';
  ctx.body = passwordChangePage(
    {
      action: `${path}/password`,
      csrfToken: issueCsrfToken(ctx, interaction.uid, path, deps.csrf),
      changeToken: issuePasswordChangeToken(deps.passwordChangeKey, interaction.uid, user.userId),
      clientName: app.name,
      username: user.username,
      ...(error !== undefined && { error }),
    },
    pageContext(deps.branding, ctx),
  );
}

/**
 * The new password of an account that must choose its own: accepted only with the proof, bound to
 * this interaction, that its sign-in gave the current password. Then the sign-in goes on.
 */
async function submitNewPassword(
  ctx: Koa.Context,
  deps: InteractionDependencies,
  interaction: Interaction,
  app: Application,
  path: string,
  form: URLSearchParams,
  step: StepRequest,
  secondFactor: ReturnType<typeof twoFactorStep> | undefined,
): Promise<void> {
  const expired = () =>
    renderStatus(
      ctx,
      deps,
      400,
      'invalid_request',
      'This password change has expired. Start again from the application.',
    );
  const userId = verifyPasswordChangeToken(deps.passwordChangeKey, form.get('change_token'), interaction.uid);
  const authenticator = passwordAuthenticator(deps.authenticators);
  if (interaction.prompt.name !== 'login' || userId === undefined || !authenticator) return expired();
  const profile = await deps.directory.profileById(userId);
  if (!profile) return expired();
  const password = form.get('new_password') ?? '';
  const again = (message: string) =>
    askForNewPassword(ctx, deps, interaction, app, path, { userId, username: profile.username }, message);
  if (password !== (form.get('confirm_password') ?? '')) return again('The two passwords differ.');
  const result = await authenticator.replacePassword(userId, password);
  switch (result.outcome) {
    case 'unacceptable':
      return again(result.message);
    case 'not_pending':
      return expired();
    case 'authenticated': {
      requestLog(ctx, deps.logger).info({ userId }, 'the first sign-in chose a new password');
      const passed = { userId: result.userId, username: profile.username, amr: result.amr };
      if (secondFactor && (await secondFactor.afterPassword(step, passed)) === 'handled') return;
      return step.finishLogin(result.userId, result.amr);
    }
    default:
      return assertNever(result);
  }
}

function passwordAuthenticator(authenticators: readonly Authenticator[]): PasswordAuthenticator | undefined {
  return authenticators.find((authenticator) => authenticator.kind === 'password');
}

async function submitConsent(
  ctx: Koa.Context,
  deps: InteractionDependencies,
  provider: Provider,
  interaction: Interaction,
  form: URLSearchParams,
): Promise<void> {
  if (interaction.prompt.name !== 'consent') {
    return renderStatus(ctx, deps, 400, 'invalid_request', 'This sign-in step is already complete.');
  }
  if (form.get('decision') !== 'allow') {
    return finish(ctx, provider, {
      error: 'access_denied',
      error_description: 'the End-User denied the request',
    });
  }
  return finish(ctx, provider, { consent: await grantConsent(provider, interaction) });
}

/** Adds what the consent prompt found missing to the grant (a new one if there is none yet). */
async function grantConsent(provider: Provider, interaction: Interaction): Promise<{ grantId: string }> {
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

async function finish(
  ctx: Koa.Context,
  provider: Provider,
  result: Parameters<Provider['interactionResult']>[2],
): Promise<void> {
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission: true,
  });
  ctx.status = 303;
  ctx.redirect(returnTo);
}

/** The posted form; undefined when it is not one or cannot be read; the error when it is too long. */
async function readForm(ctx: Koa.Context): Promise<URLSearchParams | RequestBodyTooLarge | undefined> {
  if (!ctx.is('application/x-www-form-urlencoded')) return undefined;
  try {
    return new URLSearchParams(await readBody(ctx.req, FORM_LIMIT));
  } catch (error) {
    return error instanceof RequestBodyTooLarge ? error : undefined;
  }
}

function renderStatus(
  ctx: Koa.Context,
  deps: Pick<InteractionDependencies, 'branding'>,
  status: number,
  error: string,
  description: string | undefined,
): void {
  ctx.status = status;
  ctx.type = 'html';
  ctx.body = errorPage({ error, description, status }, pageContext(deps.branding, ctx));
}
