import type { KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';

/** The `events` member of every back-channel logout token (OpenID Connect Back-Channel Logout 1.0 §2.4). */
export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/** Everything a logout token is made of; a job pins these so that every retry sends the same bytes. */
export interface LogoutTokenClaims {
  issuer: string;
  clientId: string;
  sub: string;
  jti: string;
  /** Seconds since the epoch. */
  iat: number;
  exp: number;
  kid: string;
  /** The session id the client saw, when the logout comes from a known session. */
  sid?: string | null;
}

/**
 * Builds and signs a logout token: `typ: logout+jwt`, RS256, claims exactly `iss aud iat exp jti sub
 * events` (and `sid` when known). No personal data: `sub` is the opaque subject. RSASSA-PKCS1-v1_5
 * is deterministic and the claims are serialised in a fixed order, so the same input always gives
 * the same bytes.
 */
export async function buildLogoutToken(claims: LogoutTokenClaims, privateKey: KeyObject): Promise<string> {
  const payload: Record<string, unknown> = {
    iss: claims.issuer,
    aud: claims.clientId,
    iat: claims.iat,
    exp: claims.exp,
    jti: claims.jti,
    sub: claims.sub,
    events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
  };
  if (claims.sid) payload.sid = claims.sid;
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'RS256', typ: 'logout+jwt', kid: claims.kid })
    .sign(privateKey);
}
