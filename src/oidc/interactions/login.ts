import type Koa from 'koa';
import type { Application } from '../../applications/types.ts';
import type { Authenticator, PasswordAuthenticator } from '../../directory/authenticator.ts';
import { requestLog } from '../../logging/request-context.ts';
import { loginPage } from '../../http/pages/login.ts';
import { passwordChangePage } from '../../http/pages/password-change.ts';
import { pageContext } from '../../http/pages/layout.ts';
import { assertNever } from '../../util/assert-never.ts';
import { sameText } from '../../util/same-text.ts';
import { normalizePassword } from '../../directory/builtin/passwords.ts';
import { stripPythonWhitespace } from '../../util/python-strip.ts';
import {
  type Interaction,
  type InteractionDependencies,
  renderStatus,
  SIGN_IN_FIELD_LIMITS,
  signInChoices,
} from './common.ts';
import { issueCsrfToken } from './csrf.ts';
import { askReleasingIfUnanswered } from './throttle.ts';
import { issuePasswordChangeToken, verifyPasswordChangeToken } from './password-change.ts';
import type { StepRequest, twoFactorStep } from './two-factor-step.ts';

/**
 * The login form: the username and password (throttled before they are checked), then a password
 * someone else chose replaced by the person's own, then the second factor when the user has one.
 */

/** Said for any failed login, whatever failed: it never tells whether the username exists. */
export const LOGIN_FAILED_MESSAGE = 'Invalid username or password.';
export const LOGIN_THROTTLED_MESSAGE =
  'Too many failed sign-in attempts. Wait a few minutes, then try again.';

export async function submitLogin(
  ctx: Koa.Context,
  deps: InteractionDependencies,
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
  // Stripped as Django's login form strips it (Python's `str.strip()`, before the directory reads it
  // in NFKC), so that a name is found exactly where Alliance Auth finds it. Never cut: the first 150
  // characters of a longer name may be another user's. A name longer than any directory holds goes
  // on like any unknown one (throttled, one hash check) and fails the same.
  const username = stripPythonWhitespace(form.get('username') ?? '');
  // Whole as well: one longer than any password may be (MAX_PASSWORD_LENGTH) fails in the directory as
  // a wrong one does (throttled, one hash check), never cut to a prefix that might be right.
  const password = form.get('password') ?? '';
  const again = (status: number, error: string) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = loginPage(
      {
        action: `${path}/login`,
        csrfToken: issueCsrfToken(ctx, interaction.uid, path, deps.csrf),
        clientName: app.name,
        username,
        fieldLimits: SIGN_IN_FIELD_LIMITS,
        error,
        ...signInChoices(deps, path),
      },
      pageContext(deps.branding, ctx),
    );
  };
  // No username holds a control character; PostgreSQL would refuse a NUL byte in the throttle query.
  // eslint-disable-next-line no-control-regex
  if (username === '' || password === '' || /[\u0000-\u001f\u007f]/.test(username)) {
    return again(400, LOGIN_FAILED_MESSAGE);
  }
  const authenticator = passwordAuthenticator(deps.authenticators);
  // Counted against the typed name as the directory compares it (`throttledName`), so every spelling
  // of one user shares a budget, and the same whether or not there is such a user. A directory that
  // cannot be read fails here, before the throttle, and is not asked again: one that does not answer
  // would keep the sign-in waiting twice as long.
  const passwordAttempt = authenticator ? await authenticator.prepare(username) : undefined;
  const account = passwordAttempt?.throttledName ?? username;
  // The attempt takes its place in the budgets before the password is verified: a burst of parallel
  // guesses gets at most the remaining budget checked, and the rest never reach argon2.
  const attempt = await deps.throttle.reserve(account, ctx.ip);
  if (!attempt) return again(429, LOGIN_THROTTLED_MESSAGE);

  // A directory that cannot answer now (its database down, or a privilege its login lacks) gives the
  // place back: an outage spends nobody's budget. Asked only after the reservation, so parallel
  // attempts stay bounded; a wrong password still counts.
  const result = passwordAttempt
    ? await askReleasingIfUnanswered(
        deps.throttle,
        attempt,
        requestLog(ctx, deps.logger),
        { clientId: app.clientId },
        () => passwordAttempt.authenticate(password),
      )
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
  const passed = { userId: result.userId, amr: result.amr, passwordAttempt: attempt };
  if (secondFactor && (await secondFactor.afterPassword(step, passed)) === 'handled') return;
  await deps.throttle.succeeded(attempt);
  return step.finishLogin(result.userId, result.amr);
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
      passwordMaxLength: SIGN_IN_FIELD_LIMITS.password,
      ...(error !== undefined && { error }),
    },
    pageContext(deps.branding, ctx),
  );
}

/**
 * The new password of an account that must choose its own: accepted only with the proof, bound to
 * this interaction, that its sign-in gave the current password. Then the sign-in goes on.
 */
export async function submitNewPassword(
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
  if (!sameText(normalizePassword(password), normalizePassword(form.get('confirm_password') ?? '')))
    return again('The two passwords differ.');
  const result = await authenticator.replacePassword(userId, password);
  switch (result.outcome) {
    case 'unacceptable':
      return again(result.message);
    case 'not_pending':
      return expired();
    case 'authenticated': {
      requestLog(ctx, deps.logger).info({ userId }, 'the first sign-in chose a new password');
      const passed = { userId: result.userId, amr: result.amr };
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
