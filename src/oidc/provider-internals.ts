import type Koa from 'koa';
import Provider, { errors, type KoaContextWithOIDC } from 'oidc-provider';
import introspection from 'oidc-provider/lib/actions/introspection.js';
import revocation from 'oidc-provider/lib/actions/revocation.js';
import userinfoStack from 'oidc-provider/lib/actions/userinfo.js';
import { confirm as endSessionConfirmStack } from 'oidc-provider/lib/actions/end_session.js';
import requestStore from 'oidc-provider/lib/helpers/als.js';
import certificateThumbprint from 'oidc-provider/lib/helpers/certificate_thumbprint.js';
import { account as validateAccount } from 'oidc-provider/lib/helpers/configuration_result.js';
import revokeGrant from 'oidc-provider/lib/helpers/revoke.js';
import dpopValidate, { checkDpopReplay } from 'oidc-provider/lib/helpers/validate_dpop.js';
import instance from 'oidc-provider/lib/helpers/weak_cache.js';

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

/**
 * Runs `work` as part of serving `ctx` (`currentRequest()` answers it), for work a middleware outside
 * the provider's routes does on its behalf once they are done (a rotation refused once written,
 * code-exchange.ts).
 */
export function withinRequest<T>(ctx: KoaContextWithOIDC, work: () => T): T {
  return requestStore.run(ctx, work);
}

/**
 * What oidc-provider does to a grant when a consumed code or refresh token is presented again
 * (`helpers/revoke.js`): revokes the grant's codes and tokens, destroys the grant (as its
 * `revokeGrantPolicy` says) and emits `grant.revoked`. For a replay the provider could not see as one
 * (the adapter found the row unconsumed in memory, own-codes.ts). test/oidc/multi-instance.test.ts
 * fails if a provider upgrade moves it.
 */
export function revokeGrantAsProvider(ctx: KoaContextWithOIDC, grantId: string | undefined): Promise<void> {
  return revokeGrant(ctx, grantId);
}

type GrantHandler = (ctx: KoaContextWithOIDC) => Promise<void>;

/**
 * Puts `around` in front of this provider's handler of `grantType` at the token endpoint, once the
 * client is authenticated and the parameters parsed (`ctx.oidc.params`); `around` calls `handler` to
 * run the provider's own. oidc-provider registers its grant handlers per Provider
 * (`registerGrantType`) and calls them from its `grantTypeHandlers` map. Throws when a provider
 * upgrade moved the map; test/oidc/flow.test.ts fails if the refresh grant is no longer wrapped.
 */
export function aroundGrantHandler(
  provider: Provider,
  grantType: string,
  around: (ctx: KoaContextWithOIDC, handler: GrantHandler) => Promise<void>,
): void {
  const handlers = instance(provider).grantTypeHandlers as Map<string, GrantHandler> | undefined;
  const handler = handlers?.get(grantType);
  if (!handlers || !handler) throw new Error(`oidc-provider: the ${grantType} grant handler was not found`);
  handlers.set(grantType, (ctx) => around(ctx, handler));
}

/** The name of the provider route a request matched (`introspection`, `end_session_confirm`, …). */
export function matchedRouteName(ctx: Koa.Context | KoaContextWithOIDC): string | undefined {
  return (ctx as unknown as { _matchedRouteName?: string })._matchedRouteName;
}

/** The methods a provider route can be registered for (oidc-provider's `lib/helpers/router.js`). */
const ROUTE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS'] as const;

/**
 * The methods oidc-provider's own router has a route for at `path` (relative to its mount, as the
 * router sees it): `['POST', 'OPTIONS']` at `/token/`, none where it has no route. Empty, too, when
 * a provider upgrade moved the router (test/oidc/wrong-method.test.ts fails then).
 */
export function providerRouteMethods(provider: Provider, path: string): string[] {
  const router = instance(provider).router;
  if (typeof router?.match !== 'function') return [];
  return ROUTE_METHODS.filter((method) => router.match(method, path) !== undefined);
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

/** What the userinfo steps read of `ctx.oidc` beyond its published type. */
interface InternalOidcContext {
  provider: Provider;
  accessToken?: { clientId: string; accountId: string };
  getAccessToken(options: { acceptDPoP: boolean }): string;
  entity(name: string, value: unknown): void;
}

type Step = ((ctx: KoaContextWithOIDC, next: () => Promise<void>) => Promise<void>) & { name?: string };

/**
 * oidc-provider 9's userinfo steps that load the access token, its client and its account
 * (`shared/access_token.js`) build their `InvalidToken` before they know whether they need it
 * (`ctx.assert(found, new InvalidToken(…))`): three errors, each with two stack captures, on every
 * userinfo request that succeeds, a tenth of its CPU. The same steps in their place build the error
 * only when they throw it: same checks, same order, same error, same entities set.
 *
 * The steps are replaced in the endpoint's middleware list, which oidc-provider reads when a
 * Provider is constructed: call this before `new Provider(...)`. Idempotent. Throws when a provider
 * upgrade moved a step (test/oidc/provider-internals.test.ts).
 */
export function buildUserinfoErrorsOnlyWhenThrown(): void {
  const stack = userinfoStack as Step[];
  const replacements: Record<string, Step> = {
    validateAccessToken: validateUserinfoAccessToken,
    loadAccessTokenClient: loadUserinfoClient,
    loadAccessTokenAccount: loadUserinfoAccount,
  };
  if (stack.some((step) => step === validateUserinfoAccessToken)) return;
  for (const [name, replacement] of Object.entries(replacements)) {
    const index = stack.findIndex((step) => step.name === name);
    if (index === -1) throw new Error(`oidc-provider: the userinfo step ${name} was not found`);
    stack[index] = replacement;
  }
}

/** `getValidateAccessToken({ afterFind })` of actions/userinfo.js, the error built when thrown. */
async function validateUserinfoAccessToken(
  ctx: KoaContextWithOIDC,
  next: () => Promise<void>,
): Promise<void> {
  const oidc = ctx.oidc as unknown as InternalOidcContext;
  const value = oidc.getAccessToken({ acceptDPoP: true });
  // Without a DPoP header the provider's check answers undefined: it is not entered (one async step
  // less on every bearer request), nor is the replay check, which returns at once without a proof.
  const dPoP = ctx.get('DPoP') ? await dpopValidate(oidc.provider, ctx, value) : undefined;
  const accessToken = await oidc.provider.AccessToken.find(value);
  if (!accessToken) throw new errors.InvalidToken('access token not found');
  oidc.entity('AccessToken', accessToken);

  // The userinfo endpoint's afterFind.
  if (!accessToken.scopes.size || !accessToken.scopes.has('openid')) {
    throw new errors.InsufficientScope('access token missing openid scope', 'openid');
  }

  const token = accessToken as unknown as { 'x5t#S256'?: string; jkt?: string; clientId: string };
  if (token['x5t#S256']) {
    const { getCertificate } = instance(oidc.provider).features.mTLS;
    const cert = getCertificate(ctx);
    if (!cert || token['x5t#S256'] !== certificateThumbprint(cert)) {
      throw new errors.InvalidToken('failed x5t#S256 verification');
    }
  }

  if (dPoP) await checkDpopReplay(oidc.provider, ctx, dPoP, token.clientId, errors.InvalidToken);

  if (dPoP && !token.jkt) {
    throw new errors.InvalidToken(
      'access token is not sender-constrained but proof of possession was provided',
    );
  }
  if (token.jkt && (!dPoP || token.jkt !== dPoP.thumbprint)) {
    throw new errors.InvalidToken('failed jkt verification');
  }

  await next();
}

/** `loadAccessTokenClient` of shared/access_token.js, the error built when thrown. */
async function loadUserinfoClient(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
  const oidc = ctx.oidc as unknown as InternalOidcContext;
  const client = await oidc.provider.Client.find(oidc.accessToken!.clientId);
  if (!client) throw new errors.InvalidToken('associated client not found');
  oidc.entity('Client', client);
  await next();
}

/** `loadAccessTokenAccount` of shared/access_token.js, the error built when thrown. */
async function loadUserinfoAccount(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
  const oidc = ctx.oidc as unknown as InternalOidcContext;
  const account = validateAccount(
    await instance(oidc.provider).configuration.findAccount(
      ctx,
      oidc.accessToken!.accountId,
      oidc.accessToken,
    ),
  );
  if (!account) throw new errors.InvalidToken('associated account not found');
  oidc.entity('Account', account);
  await next();
}

interface ClientClass {
  find(this: ClientClass, id: unknown): Promise<unknown>;
  adapter: { find(id: string): Promise<unknown> };
}
const clientFinds = new WeakSet<object>();

/**
 * oidc-provider 9's `Client.find` (models/client.js) serializes the metadata its adapter found and
 * hashes it on every call, to find the client it built from the same metadata before (its
 * `dynamicClients`): a `JSON.stringify` and a SHA-256 on every request that authenticates a client or
 * loads a token's client. Inside a provider request our client adapter (clients.ts) hands out one
 * metadata object per application object, kept while the change epoch stands, and a changed
 * application is a new object with new metadata: the client the provider's `find` answered for a
 * metadata object is kept beside it (a WeakMap entry, gone with the object) and answers the next
 * requests without the digest. A metadata object seen for the first time goes to the provider's
 * `find` (which asks the adapter again: the same request's application, from memory); so does every
 * find outside a request. An unknown or refused client is undefined, as the provider answers it
 * (`clientIdMetadataDocument`, its one other source of clients, is off), and the adapter is asked
 * once, so a refusal is recorded once.
 *
 * Replaces `find` on this provider's Client class (each provider has its own). Idempotent.
 */
export function findClientsByMetadataObject(provider: Provider): void {
  const Client = provider.Client as unknown as ClientClass;
  if (clientFinds.has(Client)) return;
  clientFinds.add(Client);
  const providerFind = Client.find;
  const built = new WeakMap<object, unknown>();
  // Not an async function: a chain on the adapter's promise, without a frame awaiting it.
  Client.find = function find(this: ClientClass, id: unknown): Promise<unknown> {
    if (currentRequest() === undefined) return providerFind.call(this, id);
    if (typeof id !== 'string' || id.length === 0) return Promise.resolve(undefined);
    return this.adapter.find(id).then((metadata) => {
      if (!metadata || typeof metadata !== 'object') return undefined;
      const known = built.get(metadata);
      if (known !== undefined) return known;
      return providerFind.call(this, id).then((client) => {
        if (client !== undefined) built.set(metadata, client);
        return client;
      });
    });
  };
}
