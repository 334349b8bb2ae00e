import { type Db, type ThisChange, unexpired, unrevokedOrRevokedBy } from './payload-rows.ts';
import { raiseSignInGeneration } from '../db/sign-in-generation.ts';

/**
 * A user's grants and provider sessions: what the account page and the admin list, what
 * back-channel logout reads, and ending or deleting them when the user loses access. Part of the
 * token store (store.ts).
 */

/** One of a user's grants: what the user allowed one application (the account page lists them). */
export interface UserGrant {
  clientId: string;
  /** The OIDC scopes granted. */
  scopes: string[];
  /** Epoch milliseconds. */
  grantedAt: number | null;
  expiresAt: number | null;
}

interface StoredGrantPayload {
  clientId?: unknown;
  iat?: unknown;
  openid?: { scope?: unknown };
}

/** The user's live grants, one per application (the latest when several), newest first. */
export async function selectUserGrants(
  db: Db,
  userId: number,
  now: number = Date.now(),
): Promise<UserGrant[]> {
  const rows = await db
    .selectFrom('oidc_payload')
    .select(['client_id', 'payload', 'expires_at'])
    .where('user_id', '=', String(userId))
    .where('model', '=', 'Grant')
    .where((eb) => unexpired(eb, now))
    .execute();
  const byClient = new Map<string, UserGrant>();
  for (const row of rows) {
    const payload = JSON.parse(row.payload) as StoredGrantPayload;
    const clientId = row.client_id ?? (typeof payload.clientId === 'string' ? payload.clientId : null);
    if (clientId === null) continue;
    const scope = typeof payload.openid?.scope === 'string' ? payload.openid.scope : '';
    const grant: UserGrant = {
      clientId,
      scopes: [...new Set(scope.split(' ').filter(Boolean))],
      grantedAt: typeof payload.iat === 'number' ? payload.iat * 1000 : null,
      expiresAt: row.expires_at,
    };
    const known = byClient.get(clientId);
    if (!known || (grant.grantedAt ?? 0) > (known.grantedAt ?? 0)) byClient.set(clientId, grant);
  }
  return [...byClient.values()].sort((a, b) => (b.grantedAt ?? 0) - (a.grantedAt ?? 0));
}

/** Deletes the user's grants at one application; returns how many went. */
export async function deleteUserGrants(db: Db, userId: number, clientId: string): Promise<number> {
  const result = await db
    .deleteFrom('oidc_payload')
    .where('model', '=', 'Grant')
    .where('user_id', '=', String(userId))
    .where('client_id', '=', clientId)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/**
 * One of a user's live provider sessions (a browser signed in): what the admin page and `user show`
 * list, and what back-channel logout reads.
 */
export interface UserSession {
  /** The storage id (a digest of the session id, never the id the cookie carries). */
  storageId: string;
  /** The session's `uid` (what the web console's cookie names), when stored. */
  uid: string | null;
  /** Epoch milliseconds of the sign-in, when known. */
  loginAt: number | null;
  /** How the person signed in (`pwd`, `otp`…). */
  amr: string[];
  /** The applications signed in through this session. */
  clientIds: string[];
  /** The same, each with the `sid` its ID tokens carry. */
  clients: Array<{ clientId: string; sid: string | null }>;
  expiresAt: number | null;
}

interface StoredSessionPayload {
  uid?: unknown;
  loginTs?: unknown;
  amr?: unknown;
  authorizations?: Record<string, { sid?: unknown } | undefined>;
}

/** A session row as a `UserSession` (store-users.ts reads many users' at once). */
export function storedSession(row: { id: string; payload: string; expires_at: number | null }): UserSession {
  let payload: StoredSessionPayload = {};
  try {
    payload = JSON.parse(row.payload) as StoredSessionPayload;
  } catch {
    // An unreadable payload still names a session to end.
  }
  const authorizations =
    payload.authorizations && typeof payload.authorizations === 'object' ? payload.authorizations : {};
  const clients = Object.entries(authorizations)
    .map(([clientId, authorization]) => ({
      clientId,
      sid: typeof authorization?.sid === 'string' ? authorization.sid : null,
    }))
    .sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0));
  return {
    storageId: row.id,
    uid: typeof payload.uid === 'string' ? payload.uid : null,
    loginAt: typeof payload.loginTs === 'number' ? payload.loginTs * 1000 : null,
    amr: Array.isArray(payload.amr) ? payload.amr.filter((method) => typeof method === 'string') : [],
    clientIds: clients.map((client) => client.clientId),
    clients,
    expiresAt: row.expires_at,
  };
}

/**
 * The user's live provider sessions (one indexed query by user), newest sign-in first. Sessions that
 * this very unit of work ended (same time and reason) still count, so that back-channel logout of the
 * same change still finds their `sid`s.
 */
export async function selectUserSessions(
  db: Db,
  userId: number,
  now: number = Date.now(),
  endedByThisChange?: ThisChange,
): Promise<UserSession[]> {
  const rows = await db
    .selectFrom('oidc_payload')
    .select(['id', 'payload', 'expires_at'])
    .where('user_id', '=', String(userId))
    .where('model', '=', 'Session')
    .where((eb) => unexpired(eb, now))
    .where((eb) => unrevokedOrRevokedBy(eb, endedByThisChange))
    .execute();
  return rows.map(storedSession).sort((a, b) => (b.loginAt ?? 0) - (a.loginAt ?? 0));
}

/**
 * Ends every live provider session of the user (but the one whose uid is `exceptUid`), in place (`revoked_at`): the adapter no longer finds
 * them, so a kept session cookie meets the login page (or `login_required`) on its next request, on
 * every instance. Ending in place rather than deleting means a request that read the session just
 * before cannot bring it back by saving it. Returns the sessions ended, read in the same statement.
 * Raises the user's sign-in generation too (src/db/sign-in-generation.ts): a sign-in waiting at the
 * two-factor step since before does not complete, sessions or not.
 */
export async function endUserSessions(
  db: Db,
  userId: number,
  at: number,
  reason: string,
  options: { dryRun?: boolean; exceptUid?: string } = {},
): Promise<UserSession[]> {
  if (options.dryRun) return selectUserSessions(db, userId, at);
  await raiseSignInGeneration(db, userId);
  let query = db
    .updateTable('oidc_payload')
    .set({ revoked_at: at, revoked_reason: reason })
    .where('user_id', '=', String(userId))
    .where('model', '=', 'Session')
    .where('revoked_at', 'is', null)
    .where((eb) => unexpired(eb, at));
  if (options.exceptUid !== undefined)
    query = query.where((eb) => eb.or([eb('uid', 'is', null), eb('uid', '!=', options.exceptUid!)]));
  const rows = await query.returning(['id', 'payload', 'expires_at']).execute();
  return rows.map(storedSession).sort((a, b) => (b.loginAt ?? 0) - (a.loginAt ?? 0));
}

/** Deletes the user's grants (at one application, when given); returns how many went. */
export async function deleteGrantsOfUser(
  db: Db,
  userId: number,
  options: { clientId?: string; dryRun?: boolean } = {},
): Promise<number> {
  if (options.dryRun) {
    let query = db
      .selectFrom('oidc_payload')
      .select((eb) => eb.fn.countAll<string | number>().as('count'))
      .where('model', '=', 'Grant')
      .where('user_id', '=', String(userId));
    if (options.clientId !== undefined) query = query.where('client_id', '=', options.clientId);
    return Number((await query.executeTakeFirst())?.count ?? 0);
  }
  let query = db
    .deleteFrom('oidc_payload')
    .where('model', '=', 'Grant')
    .where('user_id', '=', String(userId));
  if (options.clientId !== undefined) query = query.where('client_id', '=', options.clientId);
  return Number((await query.executeTakeFirst()).numDeletedRows);
}
