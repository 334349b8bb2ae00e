import { sql } from 'kysely';
import { isPostgres } from '../db/dialect.ts';
import {
  type Db,
  lockedInKeyOrder,
  type PayloadEb,
  type ThisChange,
  TOKEN_MODELS,
  TOKEN_ROW_COLUMNS,
  type TokenRow,
  unexpired,
  unrevokedOrRevokedBy,
} from './payload-rows.ts';
import { storedSession, type UserSession } from './user-sessions.ts';

/**
 * The queries of store.ts for many users at once (one state or group change is a change of every
 * member, thousands in one unit of work): a statement per few hundred users instead of one per
 * user. Same rows, same conditions; one of the token store's files (store.ts).
 */

/**
 * Users per statement: well under every database's limit on bound parameters (SQLite's 32,766,
 * PostgreSQL's 65,535), whatever the number of users a change concerns.
 */
export const USERS_PER_STATEMENT = 500;

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let start = 0; start < items.length; start += USERS_PER_STATEMENT)
    out.push(items.slice(start, start + USERS_PER_STATEMENT));
  return out;
}

/** Unexpired at `now`, and unrevoked or revoked by this very unit of work (same time and reason). */
function liveAt(eb: PayloadEb, now: number, revokedByThisChange?: ThisChange) {
  return eb.and([unexpired(eb, now), unrevokedOrRevokedBy(eb, revokedByThisChange)]);
}

/** `clientsWithLiveTokens` of each user: the client ids where they hold live access or refresh tokens. */
export async function clientsWithLiveTokensOfUsers(
  db: Db,
  userIds: readonly number[],
  now: number,
  revokedByThisChange?: ThisChange,
): Promise<Map<number, Set<string>>> {
  const held = new Map<number, Set<string>>();
  for (const some of chunks(userIds)) {
    const rows = await db
      .selectFrom('oidc_payload')
      .select(['user_id', 'client_id'])
      .distinct()
      .where('user_id', 'in', some.map(String))
      .where('model', 'in', ['AccessToken', 'RefreshToken'])
      .where('client_id', 'is not', null)
      .where((eb) => liveAt(eb, now, revokedByThisChange))
      .execute();
    for (const row of rows) {
      const userId = Number(row.user_id);
      let clients = held.get(userId);
      if (!clients) held.set(userId, (clients = new Set()));
      clients.add(row.client_id!);
    }
  }
  return held;
}

/**
 * Of `userIds`, those who hold a live session, code or token: people who signed in here. Alliance
 * Auth's poller asks it of users it sees for the first time already inactive, who signed in before
 * AA deactivated them.
 */
export async function usersHoldingSignIns(
  db: Db,
  userIds: readonly number[],
  now: number,
): Promise<Set<number>> {
  const holding = new Set<number>();
  for (const some of chunks(userIds)) {
    const rows = await db
      .selectFrom('oidc_payload')
      .select('user_id')
      .distinct()
      .where('user_id', 'in', some.map(String))
      .where('model', 'in', ['Session', 'AuthorizationCode', 'AccessToken', 'RefreshToken'])
      .where((eb) => liveAt(eb, now))
      .execute();
    for (const row of rows) holding.add(Number(row.user_id));
  }
  return holding;
}

/**
 * Of the users who redeemed an authorization code at or after `since` and before `until`, those who
 * still hold a live access or refresh token: who signed in to an application lately and kept it.
 * Alliance Auth's poller asks it every cycle, since a user may sign in on access AA gives and takes
 * back between two cycles, which neither cycle's fingerprint shows. Reads the codes redeemed then
 * (`issued_code`, purged after the refresh-token lifetime), then their users' tokens by the user
 * index.
 */
export async function usersHoldingTokensRedeemedSince(
  db: Db,
  since: number,
  until: number,
  now: number,
): Promise<Set<number>> {
  const rows = await db
    .selectFrom('issued_code')
    .select('user_id')
    .distinct()
    .where('created_at', '>=', since)
    .where('created_at', '<', until)
    .where('user_id', 'is not', null)
    .execute();
  const userIds = rows.map((row) => Number(row.user_id)).filter((id) => Number.isSafeInteger(id));
  if (userIds.length === 0) return new Set();
  return new Set((await clientsWithLiveTokensOfUsers(db, userIds, now)).keys());
}

/**
 * Who holds anything live at one application: each user with a live code, token or grant there
 * (`signedIn`), and among them those with a live access or refresh token (`holdingTokens`: whom a
 * back-channel logout goes to). One statement, on the client_id index, however many users.
 */
export async function usersSignedInAt(
  db: Db,
  clientId: string,
  now: number,
): Promise<{ signedIn: Set<number>; holdingTokens: Set<number> }> {
  const rows = await db
    .selectFrom('oidc_payload')
    .select(['user_id', 'model'])
    .distinct()
    .where('client_id', '=', clientId)
    .where('user_id', 'is not', null)
    .where('model', 'in', [...TOKEN_MODELS, 'Grant'])
    .where((eb) => liveAt(eb, now))
    .execute();
  const signedIn = new Set<number>();
  const holdingTokens = new Set<number>();
  for (const row of rows) {
    const userId = Number(row.user_id);
    signedIn.add(userId);
    if (row.model === 'AccessToken' || row.model === 'RefreshToken') holdingTokens.add(userId);
  }
  return { signedIn, holdingTokens };
}

/** `selectUserSessions` of each user: their live provider sessions, newest sign-in first. */
export async function selectSessionsOfUsers(
  db: Db,
  userIds: readonly number[],
  now: number,
  endedByThisChange?: ThisChange,
): Promise<Map<number, UserSession[]>> {
  const sessions = new Map<number, UserSession[]>();
  for (const some of chunks(userIds)) {
    const rows = await db
      .selectFrom('oidc_payload')
      .select(['user_id', 'id', 'payload', 'expires_at'])
      .where('user_id', 'in', some.map(String))
      .where('model', '=', 'Session')
      .where((eb) => liveAt(eb, now, endedByThisChange))
      .execute();
    for (const row of rows) {
      const userId = Number(row.user_id);
      let list = sessions.get(userId);
      if (!list) sessions.set(userId, (list = []));
      list.push(storedSession(row));
    }
  }
  for (const list of sessions.values()) list.sort((a, b) => (b.loginAt ?? 0) - (a.loginAt ?? 0));
  return sessions;
}

/**
 * `user_id` is one of `userIds`. On PostgreSQL as one array parameter (`= any($1::text[])`, planned
 * as an `in` list is: on the user index, or a scan of the table when the users hold much of it): one
 * parameter however many users, where a list would meet PostgreSQL's 65,535 bound parameters. SQLite
 * takes the list, a few hundred users at a time (`chunks`).
 */
function userIdIn(eb: PayloadEb, userIds: readonly number[], asArray: boolean) {
  const ids = userIds.map(String);
  return asArray
    ? eb('user_id', '=', eb.fn.any(sql<readonly string[]>`${ids}::text[]`))
    : eb('user_id', 'in', ids);
}

/**
 * Revokes every live code and token of these users at these applications, stamped `now` and
 * `reason` (as `revokeLiveTokenRows` does for one user: exchanged codes and rotated refresh tokens
 * are left alone), and returns them. On PostgreSQL in one statement, whatever the number of users,
 * that locks all of their rows in key order (`lockedInKeyOrder`), as the merged consumes lock them:
 * a statement per few hundred users would lock each part's rows before the next part's, out of key
 * order across parts, and a merged consume holding rows of two parts could deadlock with it. SQLite
 * takes no row locks, and keeps a statement per few hundred users (its bound parameters).
 */
export async function revokeLiveTokenRowsOfUsers(
  db: Db,
  userIds: readonly number[],
  clientIds: readonly string[],
  reason: string,
  now: number,
): Promise<TokenRow[]> {
  if (userIds.length === 0 || clientIds.length === 0) return [];
  const postgres = isPostgres(db);
  const revoked: TokenRow[] = [];
  for (const some of postgres ? [userIds] : chunks(userIds)) {
    const condition = (eb: PayloadEb) =>
      eb.and([
        userIdIn(eb, some, postgres),
        eb('model', 'in', [...TOKEN_MODELS]),
        eb('client_id', 'in', [...clientIds]),
        eb('consumed_at', 'is', null),
        liveAt(eb, now),
      ]);
    const rows = await db
      .updateTable('oidc_payload')
      .set({ revoked_at: now, revoked_reason: reason })
      .where(lockedInKeyOrder(db, condition))
      .returning(TOKEN_ROW_COLUMNS)
      .execute();
    revoked.push(...(rows as TokenRow[]));
  }
  return revoked;
}

/** Deletes these users' grants at these applications; returns how many went. */
export async function deleteGrantsOfUsers(
  db: Db,
  userIds: readonly number[],
  clientIds: readonly string[],
): Promise<number> {
  if (clientIds.length === 0) return 0;
  let deleted = 0;
  for (const some of chunks(userIds)) {
    const result = await db
      .deleteFrom('oidc_payload')
      .where('model', '=', 'Grant')
      .where('user_id', 'in', some.map(String))
      .where('client_id', 'in', [...clientIds])
      .executeTakeFirst();
    deleted += Number(result.numDeletedRows);
  }
  return deleted;
}
