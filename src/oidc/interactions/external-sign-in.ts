import type Koa from 'koa';
import type {
  Authenticator,
  ExternalAuthenticator,
  ExternalSignInResult,
  ExternalVerification,
} from '../../directory/authenticator.ts';
import type { Logger } from '../../logging/logger.ts';
import { requestLog } from '../../logging/request-context.ts';
import type { Branding } from '../../http/pages/branding.ts';
import { pagePolicy, setPageHeaders } from '../../http/content-security-policy.ts';
import { errorPage } from '../../http/pages/error.ts';
import { answerMethodNotAllowed } from '../../http/refusal.ts';
import { referralPage } from '../../http/pages/referral.ts';
import { pageContext } from '../../http/pages/layout.ts';
import { issuerPath } from '../configuration.ts';
import { externalAuthenticators } from './common.ts';
import { LOGIN_THROTTLED_MESSAGE } from './login.ts';
import { askReleasingIfUnanswered, type LoginThrottle, releaseUnanswered } from './throttle.ts';
import { assertNever } from '../../util/assert-never.ts';
import { sameText } from '../../util/same-text.ts';
import { sealValue, unsealValue } from './sealed-value.ts';

/**
 * Sign-in through another identity provider (EVE SSO) from the login page:
 *
 * 1. `POST /o/interaction/<uid>/<id>` (the login page's button, CSRF-checked by the interaction
 *    routes): the browser goes to the provider's authorize URL with a fresh `state` and PKCE; the
 *    state, the verifier and the interaction go into a signed, short-lived cookie scoped to the
 *    callback.
 * 2. `GET /o/<id>-sso/callback?code&state` (the one redirect URI registered at the provider): the
 *    state must match the cookie, which only such a callback clears (any other is refused and leaves
 *    the sign-in under way to finish); the code is redeemed at the provider, and the directory is asked
 *    about the person it proves only once the login throttle has room for that account (the
 *    character) and the client's address; one it cannot reach gives that place back (an outage
 *    spends nobody's budget) and asks the person to try again. Someone the directory would not let
 *    in gets a page sending them to the directory's own site; someone it would gets a signed,
 *    short-lived result cookie scoped to their interaction and goes back to it.
 * 3. `GET /o/interaction/<uid>/<id>`: the interaction routes take the result and finish the login.
 */
const FLOW_COOKIE = '_aa_oidc_external';
const RESULT_COOKIE = '_aa_oidc_external_result';
const FLOW_LIFETIME_MS = 10 * 60 * 1000;
const RESULT_LIFETIME_MS = 2 * 60 * 1000;

export interface ExternalSignInDependencies {
  issuer: string;
  logger: Logger;
  throttle: LoginThrottle;
  branding: Branding;
  /** Signs the flow and result cookies (derived from the secret key for this purpose only). */
  key: Buffer;
  secure: boolean;
}

/** The callback path of an external authenticator (`/o/eve-sso/callback`). */
export function externalCallbackPath(
  issuer: string,
  authenticator: Pick<ExternalAuthenticator, 'id'>,
): string {
  return `${issuerPath(issuer)}/${authenticator.id}-sso/callback`;
}

/**
 * The query parameters of each callback path that the access line must not show: the `state`, which
 * with the flow cookie makes the callback of a sign-in under way (its `code` is hidden on every path).
 * The authorization endpoint's `state` is the relying party's own value, and stays readable there.
 */
export function externalCallbackSecretParameters(
  issuer: string,
  authenticators: readonly Authenticator[],
): ReadonlyMap<string, ReadonlySet<string>> {
  const secret: ReadonlySet<string> = new Set(['state']);
  return new Map(
    externalAuthenticators(authenticators).map((authenticator) => [
      externalCallbackPath(issuer, authenticator),
      secret,
    ]),
  );
}

/** The redirect URI to register at the identity provider. */
export function externalRedirectUri(
  issuer: string,
  authenticator: Pick<ExternalAuthenticator, 'id'>,
): string {
  return `${new URL(issuer).origin}${externalCallbackPath(issuer, authenticator)}`;
}

/**
 * Sets the sealed cookie `name` for `lifetimeMs`, sent back to `path` only. Lax: the provider sends
 * the browser back with a top-level GET, and the callback on to the interaction with a redirect,
 * which carry a Lax cookie (not a Strict one).
 */
function putSealed(
  ctx: Koa.Context,
  deps: ExternalSignInDependencies,
  name: string,
  path: string,
  value: Flow | SealedResult,
  lifetimeMs: number,
): void {
  ctx.cookies.set(name, sealValue(deps.key, name, value), {
    httpOnly: true,
    sameSite: 'lax',
    secure: deps.secure,
    path,
    maxAge: lifetimeMs,
    overwrite: true,
    signed: false,
  });
}

/** The value of the sealed cookie `name`, left in place; undefined when there is none or it is forged. */
function readSealed<T extends Flow | SealedResult>(
  ctx: Koa.Context,
  deps: ExternalSignInDependencies,
  name: string,
): T | undefined {
  return unsealValue(deps.key, name, ctx.cookies.get(name, { signed: false })) as T | undefined;
}

function clearSealed(ctx: Koa.Context, deps: ExternalSignInDependencies, name: string, path: string): void {
  ctx.cookies.set(name, null, { path, httpOnly: true, secure: deps.secure, overwrite: true });
}

/** The value of the sealed cookie `name`, taken once: the cookie is cleared, whatever it held. */
function takeSealed<T extends Flow | SealedResult>(
  ctx: Koa.Context,
  deps: ExternalSignInDependencies,
  name: string,
  path: string,
): T | undefined {
  const value = readSealed<T>(ctx, deps, name);
  clearSealed(ctx, deps, name, path);
  return value;
}

interface Flow {
  uid: string;
  state: string;
  verifier: string;
  authenticator: string;
  expiresAt: number;
}

interface SealedResult {
  uid: string;
  userId: number;
  amr: string[];
  expiresAt: number;
}

/** Step 1: sends the browser to the identity provider. */
export function startExternalSignIn(
  ctx: Koa.Context,
  deps: ExternalSignInDependencies,
  authenticator: ExternalAuthenticator,
  uid: string,
): void {
  const request = authenticator.authorizationRequest(externalRedirectUri(deps.issuer, authenticator));
  const flow: Flow = {
    uid,
    state: request.state,
    verifier: request.codeVerifier,
    authenticator: authenticator.id,
    expiresAt: Date.now() + FLOW_LIFETIME_MS,
  };
  putSealed(ctx, deps, FLOW_COOKIE, externalCallbackPath(deps.issuer, authenticator), flow, FLOW_LIFETIME_MS);
  ctx.status = 303;
  ctx.redirect(request.url);
}

/** Step 3: the verified sign-in for this interaction, once; undefined when there is none. */
export function takeExternalResult(
  ctx: Koa.Context,
  deps: ExternalSignInDependencies,
  uid: string,
  path: string,
): { userId: number; amr: string[] } | undefined {
  const result = takeSealed<SealedResult>(ctx, deps, RESULT_COOKIE, path);
  if (!result || result.uid !== uid || result.expiresAt < Date.now()) return undefined;
  return { userId: result.userId, amr: result.amr };
}

/** Step 2: the callback of every external authenticator. */
export function externalCallbacks(
  deps: ExternalSignInDependencies,
  authenticators: readonly ExternalAuthenticator[],
  interactionPath: (uid: string) => string,
): Koa.Middleware {
  const byPath = new Map(
    authenticators.map((authenticator) => [externalCallbackPath(deps.issuer, authenticator), authenticator]),
  );
  const handle = async (ctx: Koa.Context, authenticator: ExternalAuthenticator) => {
    ctx.set('Cache-Control', 'no-store');
    setPageHeaders(ctx, pagePolicy());
    const callbackPath = externalCallbackPath(deps.issuer, authenticator);
    const flow = readSealed<Flow>(ctx, deps, FLOW_COOKIE);
    const render = (status: number, body: string) => {
      ctx.status = status;
      ctx.type = 'html';
      ctx.body = body;
    };
    const fail = (status: number, error: string, description: string) =>
      render(status, errorPage({ error, description, status }, pageContext(deps.branding, ctx)));
    const state = typeof ctx.query.state === 'string' ? ctx.query.state : '';
    const code = typeof ctx.query.code === 'string' ? ctx.query.code : '';
    const expired = () =>
      fail(400, 'invalid_request', 'This sign-in has expired. Start again from the application.');
    // Only the callback that carries the flow's state ends the flow. Any other leaves its cookie in
    // place: the cookie is Lax, so a link on another site can make the browser send it here with a
    // state of its own, and the sign-in under way must still finish when the provider answers.
    if (!flow || flow.authenticator !== authenticator.id || state === '' || !sameText(state, flow.state)) {
      return expired();
    }
    clearSealed(ctx, deps, FLOW_COOKIE, callbackPath);
    if (flow.expiresAt < Date.now()) return expired();
    // An error response carries no code (RFC 6749 §4.1.2.1): one that carries both is taken at its
    // error, and its code never redeemed. With the flow's state, it is the provider's answer to this
    // sign-in: the flow ends with it.
    if (code === '' || ctx.query.error !== undefined) {
      // The person declined at the identity provider, or it answered with an error.
      return fail(
        400,
        'access_denied',
        `Sign-in with ${authenticator.label} did not finish. Start again from the application.`,
      );
    }
    const redirectUri = externalRedirectUri(deps.issuer, authenticator);
    const verified: ExternalVerification<unknown> = await authenticator.verify(
      code,
      redirectUri,
      flow.verifier,
    );
    const unavailable = () =>
      fail(
        503,
        'temporarily_unavailable',
        `${authenticator.label} cannot be reached right now. Try again in a few minutes.`,
      );
    const didNotSucceed = () =>
      fail(
        400,
        'access_denied',
        `Sign-in with ${authenticator.label} did not succeed. Start again from the application.`,
      );
    if (verified.outcome === 'failed' && verified.kind === 'unavailable') return unavailable();
    // The character is the account whose budget the attempt takes (an external one, which no name
    // typed into the password form can spend); the address's budget counts too. Reserved before the
    // directory is asked anything (as the password form reserves before the hash is checked); the
    // account is known only once the provider has verified the code.
    const subject = verified.outcome === 'failed' ? `${authenticator.id}:unverified` : verified.subject;
    const attempt = await deps.throttle.reserveExternal(subject, ctx.ip);
    if (!attempt) return fail(429, 'invalid_request', LOGIN_THROTTLED_MESSAGE);
    const log = requestLog(ctx, deps.logger);
    if (verified.outcome === 'failed') {
      log.info({ authenticator: authenticator.id }, 'external sign-in did not verify');
      return didNotSucceed();
    }
    // The directory not answering (its database down or unreachable, or refusing the read: a privilege
    // its login lacks) is not the person's failure: the attempt's place is given back, else an outage
    // would spend every budget of the people trying again. Given back only once the directory has
    // failed to answer, never before it is asked: parallel attempts stay bounded whatever the outcome.
    const fields = { authenticator: authenticator.id };
    // Answered "try again" (503) further out (http/unavailable.ts); any other error stays a failure.
    const result: ExternalSignInResult = await askReleasingIfUnanswered(
      deps.throttle,
      attempt,
      log,
      fields,
      () => authenticator.judge(verified.identity),
    );
    switch (result.outcome) {
      case 'failed':
        if (result.kind === 'unavailable') {
          await releaseUnanswered(deps.throttle, attempt, log, fields);
          return unavailable();
        }
        log.info({ authenticator: authenticator.id }, 'external sign-in refused by the directory');
        return didNotSucceed();
      case 'referred':
        return render(
          200,
          referralPage(
            { label: authenticator.label, message: result.message, referTo: result.referTo },
            pageContext(deps.branding, ctx),
          ),
        );
      case 'authenticated': {
        await deps.throttle.succeeded(attempt);
        const path = interactionPath(flow.uid);
        const sealed: SealedResult = {
          uid: flow.uid,
          userId: result.userId,
          amr: result.amr,
          expiresAt: Date.now() + RESULT_LIFETIME_MS,
        };
        putSealed(ctx, deps, RESULT_COOKIE, path, sealed, RESULT_LIFETIME_MS);
        log.info({ userId: result.userId, authenticator: authenticator.id }, 'external sign-in verified');
        ctx.status = 303;
        ctx.redirect(`${path}/${authenticator.id}`);
        return;
      }
      default:
        return assertNever(result);
    }
  };
  return (ctx, next) => {
    const authenticator = byPath.get(ctx.path);
    if (!authenticator) return next();
    if (ctx.method === 'GET') return handle(ctx, authenticator);
    // Not HEAD either: the GET redeems the code and ends the flow, which a HEAD must not do.
    answerMethodNotAllowed(ctx, ['GET'], { page: deps.branding });
  };
}
