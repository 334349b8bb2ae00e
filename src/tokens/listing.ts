import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { storageIdHex } from './revocation.ts';
import { selectListedTokens, selectUserSessions } from './store.ts';

export type TokenStatus = 'active' | 'revoked' | 'expired' | 'consumed';

/** One token as operators see it: never its value, only the digest the audit events also use. */
export interface TokenListing {
  tokenSha256: string;
  type: 'access_token' | 'refresh_token';
  grantType: string | null;
  format: 'opaque' | 'jwt';
  clientId: string | null;
  /** The directory's user id (null for client credentials); `tokens audit` adds the username. */
  userId: number | null;
  scopes: string[];
  issuedAt: number | null;
  expiresAt: number | null;
  status: TokenStatus;
  revokedAt: number | null;
  revokedReason: string | null;
}

export interface TokenListingFilter {
  userId?: number;
  clientId?: string;
  /** Include tokens whose lifetime is over (default: only unexpired ones). */
  includeExpired?: boolean;
}

/** Lists stored tokens, newest expiry first. */
export async function listTokens(
  db: Kysely<Database>,
  filter: TokenListingFilter = {},
  now = Date.now(),
): Promise<TokenListing[]> {
  const rows = await selectListedTokens(db, filter, now);

  return rows.map((row) => {
    const payload = JSON.parse(row.payload) as { scope?: unknown; iat?: unknown; gty?: unknown };
    const userId = row.user_id !== null && /^\d+$/.test(row.user_id) ? Number(row.user_id) : null;
    const status: TokenStatus =
      row.revoked_at !== null
        ? 'revoked'
        : row.expires_at !== null && row.expires_at <= now
          ? 'expired'
          : row.consumed_at !== null
            ? 'consumed'
            : 'active';
    return {
      tokenSha256: storageIdHex(row.id),
      type: row.model === 'RefreshToken' ? 'refresh_token' : 'access_token',
      grantType:
        typeof payload.gty === 'string'
          ? (payload.gty.split(' ').at(-1) ?? null)
          : row.model === 'ClientCredentials'
            ? 'client_credentials'
            : null,
      format: row.format === 'jwt' ? 'jwt' : 'opaque',
      clientId: row.client_id,
      userId,
      scopes: typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [],
      issuedAt: typeof payload.iat === 'number' ? payload.iat * 1000 : null,
      expiresAt: row.expires_at,
      status,
      revokedAt: row.revoked_at,
      revokedReason: row.revoked_reason,
    };
  });
}

/** One live browser session of a user as operators see it: never the id its cookie carries. */
export interface SessionListing {
  /** Epoch milliseconds of the sign-in, when known. */
  signedInAt: number | null;
  expiresAt: number | null;
  /** How the person signed in (`pwd`, `otp`…). */
  amr: string[];
  /** The applications this session signed in to. */
  clientIds: string[];
}

/** The user's live provider sessions, newest sign-in first. */
export async function listUserSessions(
  db: Kysely<Database>,
  userId: number,
  now = Date.now(),
): Promise<SessionListing[]> {
  return (await selectUserSessions(db, userId, now)).map((session) => ({
    signedInAt: session.loginAt,
    expiresAt: session.expiresAt,
    amr: session.amr,
    clientIds: session.clients.map((client) => client.clientId),
  }));
}
