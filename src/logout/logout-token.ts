import { type KeyObject, sign } from 'node:crypto';

/** The `events` member of every back-channel logout token (OpenID Connect Back-Channel Logout 1.0 §2.4). */
export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/**
 * Everything a logout token is made of. Each delivery attempt signs one afresh (delivery.ts): a new
 * `iat` and `exp` and the key that signs then; the job keeps the rest, its `jti` among them, so that
 * a receiver recognises a retry as the same logout.
 */
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
 * is deterministic and the header and claims are serialised in a fixed order, so the same input
 * always gives the same bytes. The signature is computed off the event loop (libuv's thread pool):
 * a fan-out signs thousands of tokens while the server keeps answering.
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
  const header = { alg: 'RS256', typ: 'logout+jwt', kid: claims.kid };
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}`;
  const signature = await new Promise<Buffer>((resolve, reject) =>
    sign('sha256', Buffer.from(signingInput, 'utf8'), privateKey, (error, value) =>
      error ? reject(error) : resolve(value),
    ),
  );
  return `${signingInput}.${signature.toString('base64url')}`;
}

function base64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}
