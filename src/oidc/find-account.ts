import type { Account, FindAccount, KoaContextWithOIDC } from 'oidc-provider';
import type { Config } from '../config/load.ts';
import type { UserProfile } from '../directory/types.ts';
import { claimsFor } from './claims.ts';

/** What `findAccount` needs from the directory. */
export interface ProfileSource {
  loadUserProfile(userId: number): Promise<UserProfile | undefined>;
}

/** The provider's account: the accountId plus the profile it was built from. */
export interface ProfileAccount extends Account {
  profile: UserProfile;
}

const ACCOUNT_ID = /^[1-9][0-9]{0,15}$/;

/**
 * The provider's `findAccount` hook. The account id is `String(app_user.id)`. The profile is loaded
 * once per request (the provider may ask several times while answering one request), and an
 * unknown or deactivated user is no account: codes, refresh tokens and access tokens of a
 * deactivated user stop working at once (`invalid_grant`, `invalid_token`).
 */
export function createFindAccount(
  directory: ProfileSource,
  config: Pick<Config, 'oidc'>,
): FindAccount & ((ctx: KoaContextWithOIDC, sub: string) => Promise<ProfileAccount | undefined>) {
  const perRequest = new WeakMap<object, Map<string, Promise<UserProfile | undefined>>>();
  const load = (ctx: object | undefined, sub: string): Promise<UserProfile | undefined> => {
    if (!ACCOUNT_ID.test(sub)) return Promise.resolve(undefined);
    if (!ctx) return directory.loadUserProfile(Number(sub));
    let cache = perRequest.get(ctx);
    if (!cache) {
      cache = new Map();
      perRequest.set(ctx, cache);
    }
    let pending = cache.get(sub);
    if (!pending) {
      pending = directory.loadUserProfile(Number(sub));
      cache.set(sub, pending);
    }
    return pending;
  };
  return async (ctx: KoaContextWithOIDC | undefined, sub: string) => {
    const profile = await load(ctx, sub);
    if (!profile || profile.user.active !== 1) return undefined;
    return accountFor(profile, config);
  };
}

export function accountFor(profile: UserProfile, config: Pick<Config, 'oidc'>): ProfileAccount {
  return {
    accountId: String(profile.user.id),
    profile,
    // Every configured scope: the provider then keeps only what the granted scopes and the claims
    // parameter release (its `claims` configuration is `scopeClaims()`, the same mapping).
    claims: () => claimsFor(profile, config.oidc.scopes, config.oidc),
  };
}
