import type Koa from 'koa';
import Provider, { type KoaContextWithOIDC } from 'oidc-provider';
import introspection from 'oidc-provider/lib/actions/introspection.js';
import revocation from 'oidc-provider/lib/actions/revocation.js';
import { confirm as endSessionConfirmStack } from 'oidc-provider/lib/actions/end_session.js';

/**
 * Everything aa-oidc reads or changes of oidc-provider beyond its documented configuration, in one
 * place: the request it is serving (`Provider.ctx`, its AsyncLocalStorage), the route it matched,
 * and the module-level patch of its endpoint middleware lists. A provider upgrade that moves any of
 * these breaks here (and in the tests that cover each), nowhere else.
 */

/** The request oidc-provider is serving now (our Koa context), or undefined outside one. */
export function currentRequest(): KoaContextWithOIDC | undefined {
  return Provider.ctx as KoaContextWithOIDC | undefined;
}

/** The name of the provider route a request matched (`introspection`, `end_session_confirm`, …). */
export function matchedRouteName(ctx: Koa.Context | KoaContextWithOIDC): string | undefined {
  return (ctx as unknown as { _matchedRouteName?: string })._matchedRouteName;
}

/**
 * oidc-provider 9 answers `unsupported_token_type` when a JWT is presented at the introspection or
 * revocation endpoint (`shared/reject_structured_tokens.js`): it assumes JWT access tokens are
 * stateless. Ours are stored (src/oidc/access-token-format.ts), and the adapter finds a JWT by the
 * whole token, so both endpoints must look them up like any other token: a JWT we did not issue is
 * simply not found (`active: false`, or a no-op revocation), as RFC 7662 and RFC 7009 want.
 *
 * The step is removed from the two endpoints' middleware lists, which oidc-provider reads when a
 * Provider is constructed: call this before `new Provider(...)`. Idempotent. The tests of
 * test/tokens/jwt-access-tokens.test.ts fail if a provider upgrade moves the step.
 */
export function acceptStoredJwtsAtIntrospectionAndRevocation(): void {
  for (const stack of [introspection, revocation] as unknown as Array<Array<{ name?: string }>>) {
    const index = stack.findIndex((step) => step.name === 'rejectStructuredTokens');
    if (index !== -1) stack.splice(index, 1);
  }
}

type ConfirmStep = (ctx: KoaContextWithOIDC, next: () => Promise<void>) => Promise<void>;
const confirmSteps = new WeakMap<object, ConfirmStep>();

/**
 * oidc-provider 9's answer to the logout confirmation (`end_session_confirm`, the `endSession`
 * step of `actions/end_session.js`) revokes the requesting client's grant even when the user
 * declines, and destroys the session apart from anything we write. `step` runs in its place's
 * front, after the session is loaded and the xsrf field checked, for this provider only; calling
 * `next` runs the provider's own step.
 *
 * The step goes into the endpoint's middleware list, which oidc-provider reads when a Provider is
 * constructed: call this before `new Provider(...)` and `provider`-specific registration after.
 * Idempotent. test/oidc/logout-and-keys.test.ts fails if a provider upgrade moves the step.
 */
export function runBeforeEndSessionStep(): void {
  const stack = endSessionConfirmStack as Array<{ name?: string } | ConfirmStep>;
  if (stack.some((step) => step.name === 'aaOidcEndSessionConfirm')) return;
  const index = stack.findIndex((step) => step.name === 'endSession');
  if (index === -1) throw new Error('oidc-provider: the end_session confirm step was not found');
  const aaOidcEndSessionConfirm = async (ctx: KoaContextWithOIDC, next: () => Promise<void>) => {
    const step = confirmSteps.get(ctx.oidc.provider);
    if (step) await step(ctx, next);
    else await next();
  };
  stack.splice(index, 0, aaOidcEndSessionConfirm);
}

/** Registers the end-session confirmation step of one provider (see `runBeforeEndSessionStep`). */
export function registerEndSessionStep(provider: object, step: ConfirmStep): void {
  confirmSteps.set(provider, step);
}
