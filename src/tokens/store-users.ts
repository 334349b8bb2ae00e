import { type Expression, type QueryCreator, type SqlBool, sql } from 'kysely';
import type { Database } from '../db/schema.ts';
import { isPostgres } from '../db/dialect.ts';
import {
  type Db,
  liveAt,
  lockedInKeyOrder,
  type PayloadEb,
  type ThisChange,
  TOKEN_MODELS,
  TOKEN_ROW_COLUMNS,
  type TokenRow,
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
 * Users who lose the same applications: one group of a change's losses (users who lose different
 * sets of applications are in different groups).
 */
export interface UsersLosing {
  userIds: readonly number[];
  clientIds: readonly string[];
}

/**
 * Where the rows of `losses` are, as the statements that revoke or delete them start (`from`) and
 * their condition (`selected`): `(user_id, client_id)` one of the pairs of a group's users and its
 * applications.
 *
 * On PostgreSQL one statement for every group, whose pairs are made in SQL: each user id sent once,
 * tagged with the number of its group, and each group's applications once, a row of a
 * two-dimensional array (rows padded with nulls to one length, which pair with nobody). Three array
 * parameters however many users, where a list would meet PostgreSQL's 65,535 bound parameters, and
 * users plus applications values, not users × applications (pairs made in JavaScript were 500,000
 * for 20,000 users losing 25 applications, sent twice). The pairs are a CTE (`lost`), so the arrays
 * are sent once though `lockedInKeyOrder` puts the condition twice in the statement. A user's
 * applications are a lateral `unnest` of their group's row, which PostgreSQL (15) reckons at 10
 * pairs a user, near enough to plan by: a join of users and applications on the group number is
 * reckoned at a 200th of its pairs, and was planned (5,000 users) as a probe of the user index per
 * pair, slower than the scan below. Planned (EXPLAIN, 5,000 users losing 3 of 5 applications in one
 * or two groups among 155,000 rows) as one scan of the table hash-joined with the pairs, and for a
 * few users (50) as a loop over the pairs, each through the user index.
 *
 * SQLite takes lists, a statement per group and few hundred users (`chunks`). None for a group that
 * loses nothing.
 */
function lossStatements(db: Db, losses: readonly UsersLosing[]): LossStatement[] {
  const groups = losses.filter(({ userIds, clientIds }) => userIds.length > 0 && clientIds.length > 0);
  if (!isPostgres(db))
    return groups.flatMap(({ userIds, clientIds }) =>
      chunks(userIds).map((some) => ({
        from: db,
        selected: (eb: PayloadEb) =>
          eb.and([eb('user_id', 'in', some.map(String)), eb('client_id', 'in', [...clientIds])]),
      })),
    );
  if (groups.length === 0) return [];
  const userIds: string[] = [];
  const groupOfUser: number[] = [];
  groups.forEach((group, index) => {
    for (const userId of group.userIds) {
      userIds.push(String(userId));
      groupOfUser.push(index + 1);
    }
  });
  const width = Math.max(...groups.map(({ clientIds }) => clientIds.length));
  const clientsOfGroup = groups.map(({ clientIds }) => [
    ...clientIds,
    ...Array<null>(width - clientIds.length).fill(null),
  ]);
  return [
    {
      from: db.with(
        'lost(user_id, client_id)',
        () =>
          sql`(select u.id, c.id from unnest(${userIds}::text[], ${groupOfUser}::int[]) as u(id, g)
            cross join lateral unnest((${clientsOfGroup}::text[])[u.g:u.g]) as c(id) where c.id is not null)`,
      ),
      selected: () =>
        sql<SqlBool>`(${sql.ref('user_id')}, ${sql.ref('client_id')}) in (select ${sql.ref('lost.user_id')}, ${sql.ref('lost.client_id')} from ${sql.table('lost')})`,
    },
  ];
}

/** One statement of `lossStatements`: what it starts from, and the rows it concerns. */
interface LossStatement {
  from: Pick<QueryCreator<Database>, 'updateTable' | 'deleteFrom'>;
  selected: (eb: PayloadEb) => Expression<SqlBool>;
}

/**
 * Revokes every live code and token of these users at these applications, stamped `now` and
 * `reason` (as `revokeLiveTokenRows` does for one user: exchanged codes and rotated refresh tokens
 * are left alone), and returns them. On PostgreSQL in one statement for every group of users and
 * however many users, that locks all of their rows in key order (`lockedInKeyOrder`), as the merged
 * consumes lock them: a statement per group, or per few hundred users, would lock each part's rows
 * before the next part's, out of key order across parts (each statement of a transaction keeps its
 * locks), and a merged consume holding rows of two parts could deadlock with it. SQLite takes no row
 * locks, and keeps a statement per group and few hundred users (its bound parameters).
 */
export async function revokeLiveTokenRowsOfUsers(
  db: Db,
  losses: readonly UsersLosing[],
  reason: string,
  now: number,
): Promise<TokenRow[]> {
  const revoked: TokenRow[] = [];
  for (const { from, selected } of lossStatements(db, losses)) {
    const rows = await from
      .updateTable('oidc_payload')
      .set({ revoked_at: now, revoked_reason: reason })
      .where(
        lockedInKeyOrder(db, (eb) =>
          eb.and([selected(eb), eb('model', 'in', [...TOKEN_MODELS]), liveAt(eb, now)]),
        ),
      )
      .returning(TOKEN_ROW_COLUMNS)
      .execute();
    revoked.push(...(rows as TokenRow[]));
  }
  return revoked;
}

/**
 * Deletes these users' grants at these applications; returns how many went. On PostgreSQL in one
 * statement that locks them in key order (`lockedInKeyOrder`), as the merged writes of the adapter's
 * rows lock theirs (`writeAdapterRowsTogether`, which holds the grants of several users signing in at
 * once): a statement per group could deadlock with one. SQLite a statement per group and few hundred
 * users.
 */
export async function deleteGrantsOfUsers(db: Db, losses: readonly UsersLosing[]): Promise<number> {
  let deleted = 0;
  for (const { from, selected } of lossStatements(db, losses)) {
    const result = await from
      .deleteFrom('oidc_payload')
      .where(lockedInKeyOrder(db, (eb) => eb.and([eb('model', '=', 'Grant'), selected(eb)])))
      .executeTakeFirst();
    deleted += Number(result.numDeletedRows);
  }
  return deleted;
}
