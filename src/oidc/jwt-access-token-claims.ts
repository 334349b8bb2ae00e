import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Directory, UserProfile } from '../directory/port.ts';
import { claimsFor, type ClaimsConfig } from './claims.ts';
import { userIdOf } from './policy-enforcer.ts';

/** What the JWT customizer reads from the request. */
interface CustomizerContext {
  oidc?: {
    account?: { accountId: string; profile?: UserProfile };
    entities?: {
      AuthorizationCode?: { authTime?: number };
      RefreshToken?: { authTime?: number };
    };
  };
}

interface CustomizedToken {
  accountId?: string;
  scope?: string;
}

/**
 * `formats.customizers.jwt`: completes the provider's RFC 9068 payload (`iss aud client_id exp iat
 * jti scope sub`) with `auth_time` and, for the granted scopes, the identity claims of `claimsFor`
 * — the same function and profile userinfo answers from. Registered claims are never overwritten.
 */
export function jwtAccessTokenCustomizer(config: ClaimsConfig, profiles: Pick<Directory, 'profileById'>) {
  return async (
    ctx: KoaContextWithOIDC | undefined,
    token: CustomizedToken,
    jwt: { header?: Record<string, unknown>; payload: Record<string, unknown> },
  ): Promise<void> => {
    const oidc = (ctx as unknown as CustomizerContext | undefined)?.oidc;
    const authTime = oidc?.entities?.AuthorizationCode?.authTime ?? oidc?.entities?.RefreshToken?.authTime;
    if (typeof authTime === 'number') jwt.payload.auth_time = authTime;
    if (token.accountId === undefined) return;
    let profile = oidc?.account?.accountId === token.accountId ? oidc.account.profile : undefined;
    const userId = userIdOf(token.accountId);
    if (!profile && userId !== null) profile = await profiles.profileById(userId);
    if (!profile) throw new Error('JWT access token for an account without a profile');
    const claims = claimsFor(profile, (token.scope ?? '').split(' ').filter(Boolean), config);
    for (const [name, value] of Object.entries(claims)) {
      if (!(name in jwt.payload) || jwt.payload[name] === undefined) jwt.payload[name] = value;
    }
  };
}
