import type Koa from 'koa';
import type { Provider } from 'oidc-provider';
import type { ApplicationLookup } from '../clients.ts';
import type { Config } from '../../config/load.ts';
import type { Authenticator, ExternalAuthenticator } from '../../directory/authenticator.ts';
import { MAX_PASSWORD_LENGTH } from '../../directory/builtin/passwords.ts';
import { USERNAME_FIELD_MAXLENGTH } from '../../directory/builtin/validation.ts';
import type { Directory } from '../../directory/port.ts';
import type { Logger } from '../../logging/logger.ts';
import { errorPage } from '../../http/pages/error.ts';
import type { Branding } from '../../http/pages/branding.ts';
import { pageContext } from '../../http/pages/layout.ts';
import {
  parseFormBody,
  readBodyBytes,
  RequestBodyTooLarge,
  type UnreadForm,
  unreadForm,
} from '../../http/request-body.ts';
import type { CsrfOptions } from './csrf.ts';
import type { LoginThrottle } from './throttle.ts';
import type { TwoFactorStepDependencies } from './two-factor-step.ts';

/** What every interaction page shares: its dependencies, ending an interaction, the error page, the form. */

export type Interaction = Awaited<ReturnType<Provider['interactionDetails']>>;

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
  /** Signs the state and the result of a sign-in through another identity provider (EVE SSO). */
  externalSignInKey: Buffer;
  branding: Branding;
  /** Two-factor sign-in: the code (or the enrolment) after the password, when the user needs one. */
  twoFactor?: Omit<TwoFactorStepDependencies, 'directory' | 'throttle' | 'logger' | 'key' | 'branding'>;
}

const FORM_LIMIT = 16 * 1024;

export async function finish(
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

/**
 * The posted form; undefined when there is no body or it cannot be read; the error when it is too
 * long; 'malformed' when it is not UTF-8 text with well-formed %-escapes (`parseFormBody`); why it is
 * refused unread (`unreadForm`), as on the account and admin pages: a content coding (gzip…), as the
 * provider's routes refuse it (src/oidc/mount.ts), a body of another type (JSON, multipart), a
 * Content-Type whose parameters cannot be read, a charset other than UTF-8.
 */
export async function readForm(
  ctx: Koa.Context,
): Promise<URLSearchParams | RequestBodyTooLarge | 'malformed' | UnreadForm | undefined> {
  const unread = unreadForm(ctx);
  if (unread) return unread;
  if (!ctx.is('application/x-www-form-urlencoded')) return undefined;
  let body: Buffer;
  try {
    body = await readBodyBytes(ctx.req, FORM_LIMIT);
  } catch (error) {
    return error instanceof RequestBodyTooLarge ? error : undefined;
  }
  return parseFormBody(body) ?? 'malformed';
}

export function renderStatus(
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

export function externalAuthenticators(authenticators: readonly Authenticator[]): ExternalAuthenticator[] {
  return authenticators.filter((authenticator) => authenticator.kind === 'external');
}

/**
 * The sign-in form's `maxlength`s, in UTF-16 units as browsers count them: a username's 150
 * characters may take twice as many (the directory decides), a password's limit is counted in them.
 */
export const SIGN_IN_FIELD_LIMITS = { username: USERNAME_FIELD_MAXLENGTH, password: MAX_PASSWORD_LENGTH };

/** What the login page offers besides the form: one button per external authenticator. */
export function signInChoices(deps: Pick<InteractionDependencies, 'authenticators'>, path: string) {
  return {
    password: deps.authenticators.some((authenticator) => authenticator.kind === 'password'),
    external: externalAuthenticators(deps.authenticators).map((authenticator) => ({
      label: authenticator.label,
      action: `${path}/${authenticator.id}`,
    })),
  };
}
