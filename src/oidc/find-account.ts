import { errors, type Account, type FindAccount, type KoaContextWithOIDC } from 'oidc-provider';
import type { Config } from '../config/load.ts';
import type { Directory, UserProfile } from '../directory/port.ts';
import { type PolicyEnforcer, userIdOf } from './policy-enforcer.ts';
import type { PolicyStage } from '../policy/stages.ts';
import { assertNever } from '../util/assert-never.ts';
import { type Claims, type ClaimValue, claimsFor } from './claims.ts';
import { idTokenClaims } from './id-token-claims.ts';
import { loadOncePerRequest } from './request-memo.ts';

/** What `findAccount` needs from the directory. */
export type ProfileSource = Pick<Directory, 'profileById'>;

/** The provider's account: the accountId plus the profile it was built from. */
export interface ProfileAccount extends Account {
  profile: UserProfile;
}

/**
 * The access-policy stage at which the provider loads an account for a token it was handed: every grant
 * that issues tokens for a user loads the account of the code or refresh token it redeems
 * (`validateAccount` in oidc-provider's grant handlers), and userinfo loads the access token's.
 * Undefined for any other kind of token: this provider issues none, and one it does not know is
 * refused rather than let through.
 */
export function stageForToken(kind: string): PolicyStage | undefined {
  switch (kind) {
    case 'AuthorizationCode':
      return 'validate_code';
    case 'RefreshToken':
      return 'validate_refresh';
    case 'AccessToken':
      return 'validate_bearer';
    default:
      return undefined;
  }
}

/**
 * The provider's `findAccount` hook. The account id is the directory's user id as a string. The profile is loaded
 * once per request (the provider may ask several times while answering one request; across requests
 * the built-in directory's profiles are kept while unchanged: kept-profiles.ts), and an
 * unknown or deactivated user is no account: codes, refresh tokens and access tokens of a
 * deactivated user stop working at once (`invalid_grant`, `invalid_token`).
 *
 * When the provider asks on behalf of a token (code exchange, refresh, userinfo) the access policy
 * is asked too, at the stage of that token (`validate_code`, `validate_refresh`, `validate_bearer`),
 * for the token's own application; a refusal is `invalid_grant` at the token endpoint and a 401
 * `invalid_token` at userinfo. Without a token (an authorization request's session) the policy is
 * the access prompt's business (`check-access.ts`).
 */
export function createFindAccount(
  directory: ProfileSource,
  config: Pick<Config, 'oidc'>,
  policy: PolicyEnforcer,
): FindAccount &
  ((ctx: KoaContextWithOIDC, sub: string, token?: PolicyToken) => Promise<ProfileAccount | undefined>) {
  const loadProfile = loadOncePerRequest((sub: string) => directory.profileById(Number(sub)));
  const load = (ctx: object | undefined, sub: string): Promise<UserProfile | undefined> =>
    userIdOf(sub) === null ? Promise.resolve(undefined) : loadProfile(ctx, sub);
  return async (ctx: KoaContextWithOIDC | undefined, sub: string, token?: PolicyToken) => {
    const profile = await load(ctx, sub);
    if (token !== undefined) await enforceForToken(policy, ctx, sub, profile, token);
    if (!profile || !profile.active) return undefined;
    return accountFor(profile, config, ctx);
  };
}

/** What findAccount reads of the token it is given. */
export interface PolicyToken {
  kind: string;
  clientId?: string;
}

async function enforceForToken(
  policy: PolicyEnforcer,
  ctx: KoaContextWithOIDC | undefined,
  accountId: string,
  profile: UserProfile | undefined,
  token: PolicyToken,
): Promise<void> {
  const stage = stageForToken(token.kind);
  const refused = (description: string) =>
    stage === 'validate_bearer' ? new errors.InvalidToken(description) : new errors.InvalidGrant(description);
  if (stage === undefined || typeof token.clientId !== 'string') {
    throw new errors.InvalidGrant('this kind of token is not accepted here');
  }
  const decision = await policy.enforce(
    stage,
    { kind: 'user', clientId: token.clientId, accountId, profile },
    ctx,
  );
  switch (decision.outcome) {
    case 'allow':
      return;
    case 'deny':
      // The token's own client asks: it knows its application, and the reason is not told.
      throw refused('the user may not use this application');
    default:
      assertNever(decision);
  }
}

export function accountFor(
  profile: UserProfile,
  config: Pick<Config, 'oidc'>,
  ctx?: KoaContextWithOIDC,
): ProfileAccount {
  return {
    accountId: String(profile.id),
    profile,
    // Every configured scope: the provider then keeps only what the granted scopes and the claims
    // parameter release (its `claims` configuration is `scopeClaims()`, the same mapping). An
    // id_token gets them only when its application asks for them (id-token-claims.ts).
    claims: (use, _scope, requested) => {
      const claims = accountClaims(profile, config.oidc);
      return use === 'id_token' ? idTokenClaims(claims, ctx?.oidc?.client, requested) : claims;
    },
  };
}

/** The claims built for a kept profile, with the configuration they were built with. */
const claimsOfKeptProfiles = new WeakMap<UserProfile, { config: Config['oidc']; claims: Claims }>();

/**
 * The account's claims for every configured scope. A kept profile (kept-profiles.ts: frozen, the
 * same object from request to request until the user changes) has them built once, frozen to the
 * last member, and each call gets a copy of the top level (the provider picks from it); any other
 * profile has them built at each call, as before.
 */
function accountClaims(profile: UserProfile, config: Config['oidc']): Claims {
  if (!Object.isFrozen(profile)) return claimsFor(profile, config.scopes, config);
  let built = claimsOfKeptProfiles.get(profile);
  if (built?.config !== config) {
    built = { config, claims: deepFrozen(claimsFor(profile, config.scopes, config)) };
    claimsOfKeptProfiles.set(profile, built);
  }
  return { ...built.claims };
}

function deepFrozen<T extends Claims | ClaimValue>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  for (const member of Object.values(value)) deepFrozen(member as ClaimValue);
  return Object.freeze(value);
}
