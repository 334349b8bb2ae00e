import type Koa from 'koa';
import type { ExternalAuthenticator } from '../../directory/authenticator.ts';
import { requestLog } from '../../logging/request-context.ts';
import { isDatabaseUnavailable, isTryAgainError } from '../../db/errors.ts';
import { interactionPath } from '../configuration.ts';
import {
  answerUnreadForm,
  isUnreadForm,
  MALFORMED_FORM_MESSAGE,
  repeatedField,
  repeatedFieldMessage,
  RequestBodyTooLarge,
} from '../../http/request-body.ts';
import { answerMethodNotAllowed, answerTooLarge } from '../../http/refusal.ts';
import { isForeignForm } from '../../http/foreign-form.ts';
import { pagePolicy, setPageHeaders } from '../../http/content-security-policy.ts';
import { SEND_ONCE_SCRIPT_SOURCE } from '../../http/pages/send-once.ts';
import {
  externalAuthenticators,
  finish,
  type Interaction,
  type InteractionDependencies,
  readForm,
  renderStatus,
} from './common.ts';
import {
  type ExternalSignInDependencies,
  externalCallbacks,
  startExternalSignIn,
  takeExternalResult,
} from './external-sign-in.ts';
import { submitConsent } from './consent.ts';
import { CSRF_FIELD, issueCsrfToken, verifyCsrfToken } from './csrf.ts';
import { submitLogin, submitNewPassword } from './login.ts';
import { show } from './pages.ts';
import { submitAccountChoice } from './select-account.ts';
import {
  TWO_FACTOR_ACTIONS,
  type TwoFactorAction,
  twoFactorStep,
  type StepRequest,
} from './two-factor-step.ts';

export type { InteractionDependencies } from './common.ts';
export { LOGIN_FAILED_MESSAGE, LOGIN_THROTTLED_MESSAGE } from './login.ts';

/** The sign-in pages' answer to a form another site sent (`isForeignForm`). */
export const FOREIGN_FORM_MESSAGE =
  'This form did not come from this site. Go back, reload the page and try again.';

/**
 * The interaction pages (`/o/interaction/:uid`): the account choice, login, the 403 denied page, consent. They are the
 * provider's interactions: each reads the pending interaction through the provider
 * (`interactionDetails`, bound to the interaction cookie) and ends it with `interactionResult`,
 * then sends the browser back to the provider's resume URL.
 */
export function interactionRoutes(deps: InteractionDependencies): Koa.Middleware {
  const base = interactionPath(deps.config.issuer, '');
  const issuerOrigin = new URL(deps.config.issuer).origin;
  const secondFactor = deps.twoFactor
    ? twoFactorStep({
        ...deps.twoFactor,
        directory: deps.directory,
        throttle: deps.throttle,
        logger: deps.logger,
        key: deps.csrf.key,
        branding: deps.branding,
      })
    : undefined;
  const externals = externalAuthenticators(deps.authenticators);
  const passwordAuthenticator = deps.authenticators.find(
    (authenticator) => authenticator.kind === 'password',
  );
  const external: ExternalSignInDependencies = {
    issuer: deps.config.issuer,
    logger: deps.logger,
    throttle: deps.throttle,
    branding: deps.branding,
    key: deps.externalSignInKey,
    secure: deps.csrf.secure,
  };
  const callbacks = externalCallbacks(external, externals, (uid) => interactionPath(deps.config.issuer, uid));
  const routes = interactionRouteMethods(externals);
  const handle: Koa.Middleware = async (ctx, next) => {
    const [uid, action = '', ...rest] = ctx.path.slice(base.length).split('/');
    if (!uid || rest.length > 0 || !/^[A-Za-z0-9_-]{1,64}$/.test(uid)) return next();
    const methods = routes.get(action);
    if (!methods) return next();

    setPageHeaders(ctx, pagePolicy({ scripts: [SEND_ONCE_SCRIPT_SOURCE] }));
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Pragma', 'no-cache');
    if (!methods.includes(ctx.method)) return answerMethodNotAllowed(ctx, methods, { page: deps.branding });
    const route = `${ctx.method} ${action}`;

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

    // Every way a sign-in completes (a password, with its second factor if any, or another identity
    // provider) passes here: the last login is stamped now, never at a password whose code is to come.
    const finishLogin = async (userId: number, amr: string[]) => {
      await passwordAuthenticator?.recordSignIn?.(userId);
      await finish(ctx, provider, { login: { accountId: String(userId), acr: '0', amr, remember: true } });
    };
    const stepRequest = (): StepRequest => ({
      ctx,
      uid,
      path,
      clientId: app.clientId,
      clientName: app.name,
      csrfToken: () => issueCsrfToken(ctx, uid, path, deps.csrf),
      finishLogin,
      fail: (status, description) => renderStatus(ctx, deps, status, 'invalid_request', description),
    });
    try {
      if (route === 'GET ') return await show(ctx, deps, provider, interaction, app, path);
      const viaExternal = externals.find((authenticator) => route === `GET ${authenticator.id}`);
      if (viaExternal) {
        // Back from the identity provider: the verified result for this interaction, once.
        const result = takeExternalResult(ctx, external, uid, path);
        if (!result || interaction.prompt.name !== 'login') {
          return renderStatus(
            ctx,
            deps,
            400,
            'invalid_request',
            'This sign-in has expired. Start again from the application.',
          );
        }
        // Its code (if any) counts against the user, as after a password: one budget of codes a user.
        const passed = { userId: result.userId, amr: result.amr };
        if (secondFactor && (await secondFactor.afterPassword(stepRequest(), passed)) === 'handled') return;
        return await finishLogin(result.userId, result.amr);
      }
      const form = await readForm(ctx);
      if (form instanceof RequestBodyTooLarge)
        return answerTooLarge(ctx, form.limit, { page: deps.branding });
      // A form the browser says another site sent is refused before anything of it is used or
      // counted (no failed sign-in, no code tried): the interaction and its CSRF cookie stay as they
      // were, so the page, reloaded, signs in. As the console's POSTs (console/http.ts).
      if (isForeignForm(ctx, issuerOrigin)) {
        // A body left unread (refused unread below) stays unread.
        if (isUnreadForm(form)) ctx.set('Connection', 'close');
        return renderStatus(ctx, deps, 403, 'invalid_request', FOREIGN_FORM_MESSAGE);
      }
      // Nothing of it is used, its CSRF token included: U+FFFD would stand where a byte was sent.
      if (form === 'malformed')
        return renderStatus(ctx, deps, 400, 'invalid_request', MALFORMED_FORM_MESSAGE);
      // Refused unread (a JSON or multipart body too), its CSRF token unused, no sign-in counted: the
      // same page takes the form sent again as it should be. As the account and admin pages answer.
      if (isUnreadForm(form))
        return renderStatus(ctx, deps, 415, 'invalid_request', answerUnreadForm(ctx, form));
      // No sign-in form has a field that may be given twice (`decision=allow&decision=deny`, two CSRF
      // tokens): refused before anything of it is used or counted, the page still good for a form sent right.
      const repeated = form && repeatedField(form);
      if (repeated !== undefined)
        return renderStatus(ctx, deps, 400, 'invalid_request', repeatedFieldMessage(repeated));
      if (!form || !verifyCsrfToken(ctx, uid, form.get(CSRF_FIELD), deps.csrf)) {
        return renderStatus(
          ctx,
          deps,
          403,
          'invalid_request',
          'The form has expired. Go back and try again.',
        );
      }
      const step = stepRequest();
      const startExternal = externals.find((authenticator) => route === `POST ${authenticator.id}`);
      if (startExternal) {
        if (interaction.prompt.name !== 'login')
          return renderStatus(ctx, deps, 400, 'invalid_request', 'This sign-in step is already complete.');
        return startExternalSignIn(ctx, external, startExternal, uid);
      }
      if (route === 'POST login')
        return await submitLogin(ctx, deps, interaction, app, path, form, step, secondFactor);
      if (route === 'POST password')
        return await submitNewPassword(ctx, deps, interaction, app, path, form, step, secondFactor);
      if (route === 'POST select_account')
        return await submitAccountChoice(ctx, deps, provider, interaction, form);
      if (route !== 'POST consent') {
        if (!secondFactor || interaction.prompt.name !== 'login')
          return renderStatus(ctx, deps, 400, 'invalid_request', 'This sign-in step is already complete.');
        return await secondFactor.submit(step, action as TwoFactorAction, form);
      }
      return await submitConsent(ctx, deps, provider, interaction, form);
    } catch (error) {
      // A database (ours, or the directory's) that cannot be reached answers "try again", not 500;
      // so does one that answered but could not serve the step (a fault, logged as what it is): both
      // are answered further out (http/unavailable.ts).
      if (isTryAgainError(error)) throw error;
      requestLog(ctx, deps.logger).error(
        { err: { name: (error as Error).name, message: (error as Error).message }, clientId },
        'interaction failed',
      );
      return renderStatus(ctx, deps, 500, 'server_error', undefined);
    }
  };
  return (ctx, next) => (ctx.path.startsWith(base) ? handle(ctx, next) : callbacks(ctx, next));
}

/**
 * The methods each interaction route takes, by its action (`''` for the page itself): another method
 * is answered 405 with `Allow`. No HEAD: a HEAD must change nothing (RFC 9110 §9.2.1), and a GET
 * may end a step: the page's grants consent at an application that skips it, or passes an account
 * that is gone to the login page (pages.ts); an external authenticator's (the return from the
 * identity provider) takes its one-time result. Refused on every route, whatever the step, so that
 * `Allow` does not change with it and no HEAD has to work out what its GET would do.
 */
function interactionRouteMethods(externals: readonly ExternalAuthenticator[]): Map<string, string[]> {
  const routes = new Map<string, string[]>([['', ['GET']]]);
  for (const action of ['login', 'password', 'consent', 'select_account', ...TWO_FACTOR_ACTIONS]) {
    routes.set(action, ['POST']);
  }
  for (const authenticator of externals) routes.set(authenticator.id, ['GET', 'POST']);
  return routes;
}
