import { type Expression, type ExpressionBuilder, type Kysely, type SqlBool, sql } from 'kysely';
import { type LogPosition, logPosition, logPositionColumn } from '../../db/change-log.ts';
import { isPostgres } from '../../db/dialect.ts';
import { precompiled } from '../../db/precompiled.ts';
import type { Database, GroupRow, StateRow, UserRow } from '../../db/schema.ts';
import { nameKey } from '../../util/name-key.ts';
import type { LifecycleEvent, UserRecord, UserRef } from './types.ts';

/**
 * The built-in directory's SQL: the only module that queries `app_user`, `state`, `auth_group`,
 * `user_group` and `lifecycle_event`. Domain rules live in the modules that call these.
 */

/** A connection or a transaction: every query here runs on either. */
export type Db = Kysely<Database>;

type UserEb = ExpressionBuilder<Database, 'app_user'>;

/** Code-unit order: the same on SQLite and PostgreSQL, whatever the collation. */
export function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** By the normalised key (`nameKey`), which its unique index serves. */
function usernameIs(eb: UserEb, username: string) {
  return eb('app_user.username_key', '=', nameKey(username));
}

function userRefIs(eb: UserEb, ref: UserRef) {
  return 'id' in ref ? eb('app_user.id', '=', ref.id) : usernameIs(eb, ref.username);
}

/**
 * A value compared in a query that joins tables, as `cast(? as integer)` rather than a bare parameter:
 * SQLite plans such a statement again at every run when the comparison is with a bare parameter
 * (20–100 µs each time, several times a lookup by key), and keeps its plan when it is an expression.
 * PostgreSQL reads the same plan either way.
 */
function integerValue(value: number) {
  return sql<number>`cast(${value} as integer)`;
}

/**
 * The user's columns, named rather than `app_user.*`: PostgreSQL keeps the lookup prepared on each
 * connection (src/db/named-statements.ts), which it refuses for a statement whose result gains a
 * column. A column missing here fails the type check of `splitProfileRow`.
 */
const USER_COLUMNS = [
  'app_user.id',
  'app_user.username',
  'app_user.username_key',
  'app_user.email',
  'app_user.email_verified',
  'app_user.password_hash',
  'app_user.active',
  'app_user.superuser',
  'app_user.oidc_access',
  'app_user.state_id',
  'app_user.character_id',
  'app_user.character_name',
  'app_user.corporation_id',
  'app_user.corporation_name',
  'app_user.corporation_ticker',
  'app_user.alliance_id',
  'app_user.alliance_name',
  'app_user.alliance_ticker',
  'app_user.faction_id',
  'app_user.faction_name',
  'app_user.locale',
  'app_user.last_login_at',
  'app_user.must_change_password',
  'app_user.created_at',
  'app_user.updated_at',
] as const;

function profileQuery(db: Db) {
  return db
    .selectFrom('app_user')
    .leftJoin('state', 'state.id', 'app_user.state_id')
    .select(USER_COLUMNS)
    .select([
      'state.name as s_name',
      'state.name_key as s_name_key',
      'state.priority as s_priority',
      'state.oidc_access as s_oidc_access',
      'state.created_at as s_created_at',
    ]);
}

type ProfileRow = UserRow & {
  s_name: string | null;
  s_name_key: string | null;
  s_priority: number | null;
  s_oidc_access: 0 | 1 | null;
  s_created_at: number | null;
};

function splitProfileRow(row: ProfileRow): { user: UserRow; state: StateRow | null } {
  const { s_name, s_name_key, s_priority, s_oidc_access, s_created_at, ...user } = row;
  const state =
    user.state_id !== null && s_name !== null
      ? {
          id: user.state_id,
          name: s_name,
          name_key: s_name_key,
          priority: Number(s_priority),
          oidc_access: s_oidc_access ?? 0,
          created_at: Number(s_created_at),
        }
      : null;
  return { user, state };
}

const groupsOfUser = precompiled((db: Db, userId: number) =>
  db
    .selectFrom('user_group')
    .innerJoin('auth_group', 'auth_group.id', 'user_group.group_id')
    .selectAll('auth_group')
    .where('user_group.user_id', '=', integerValue(userId)),
);

/** The groups of one user, sorted by name. */
export async function selectUserGroups(db: Db, userId: number): Promise<GroupRow[]> {
  return (await groupsOfUser.rows(db, userId)).sort(byName);
}

/**
 * The profile lookup of every request that names a user, in one statement compiled once: the user
 * and its state, and one row per group (group columns null when the user has none).
 */
function profileRowsQuery(db: Db, userId: number) {
  return profileQuery(db)
    .leftJoin('user_group', 'user_group.user_id', 'app_user.id')
    .leftJoin('auth_group', 'auth_group.id', 'user_group.group_id')
    .select([
      'auth_group.id as g_id',
      'auth_group.name as g_name',
      'auth_group.name_key as g_name_key',
      'auth_group.oidc_access as g_oidc_access',
      'auth_group.created_at as g_created_at',
    ])
    .where('app_user.id', '=', integerValue(userId));
}

const profileRowsById = precompiled((db: Db, userId: number) => profileRowsQuery(db, userId));

/** The same, with the change log's position as the statement saw it (src/db/change-log.ts). */
const profileRowsWithPositionById = precompiled((db: Db, userId: number) =>
  profileRowsQuery(db, userId).select(logPositionColumn(db).as('log_position')),
);

type ProfileRowWithGroup = Awaited<ReturnType<typeof profileRowsById.rows>>[number];

/** The record of the rows of one user's profile lookup (one row per group). */
function profileRecord(rows: readonly ProfileRowWithGroup[]): UserRecord | undefined {
  const first = rows[0];
  if (!first) return undefined;
  const groups: GroupRow[] = [];
  for (const { g_id, g_name, g_name_key, g_oidc_access, g_created_at } of rows) {
    if (g_id === null || g_name === null) continue;
    groups.push({
      id: g_id,
      name: g_name,
      name_key: g_name_key!,
      oidc_access: g_oidc_access ?? 0,
      created_at: Number(g_created_at),
    });
  }
  const {
    g_id: _id,
    g_name: _name,
    g_name_key: _key,
    g_oidc_access: _access,
    g_created_at: _at,
    ...row
  } = first;
  return { ...splitProfileRow(row), groups: groups.sort(byName) };
}

/** User, state and groups (sorted by name) in one query. */
export async function selectProfileById(db: Db, userId: number): Promise<UserRecord | undefined> {
  return profileRecord(await profileRowsById.rows(db, userId));
}

/**
 * `selectProfileById` with the change log's position as its statement saw it (undefined when there
 * is no such user): a profile that may be kept in memory (src/oidc/kept-profiles.ts).
 */
export async function selectProfileWithPositionById(
  db: Db,
  userId: number,
): Promise<{ record: UserRecord | undefined; position: LogPosition | undefined }> {
  const rows = await profileRowsWithPositionById.rows(db, userId);
  const record = profileRecord(rows.map(({ log_position: _position, ...row }) => row));
  return { record, position: logPosition(rows[0]?.log_position) };
}

export async function selectProfile(db: Db, ref: UserRef): Promise<UserRecord | undefined> {
  if ('id' in ref) return selectProfileById(db, ref.id);
  const row = await profileQuery(db)
    .where((eb) => usernameIs(eb, ref.username))
    .executeTakeFirst();
  if (!row) return undefined;
  return { ...splitProfileRow(row), groups: await selectUserGroups(db, row.id) };
}

export function selectUser(db: Db, ref: UserRef): Promise<UserRow | undefined> {
  return db
    .selectFrom('app_user')
    .selectAll()
    .where((eb) => userRefIs(eb, ref))
    .executeTakeFirst();
}

/**
 * Locks a user's row for the rest of the transaction (a write that changes nothing: a row lock on
 * PostgreSQL, the write lock on SQLite) and returns it, so that concurrent changes to one user
 * serialise and each sees the other's result.
 */
export function lockUser(trx: Db, ref: UserRef): Promise<UserRow | undefined> {
  return trx
    .updateTable('app_user')
    .set((eb) => ({ updated_at: eb.ref('updated_at') }))
    .where((eb) => userRefIs(eb, ref))
    .returningAll()
    .executeTakeFirst();
}

/** Locks every active superuser but `exceptId`; returns how many there are. */
export async function lockOtherActiveSuperusers(trx: Db, exceptId: number): Promise<number> {
  const rows = await trx
    .updateTable('app_user')
    .set((eb) => ({ updated_at: eb.ref('updated_at') }))
    .where('superuser', '=', 1)
    .where('active', '=', 1)
    .where('id', '<>', exceptId)
    .returning('id')
    .execute();
  return rows.length;
}

export async function hasActiveSuperuser(db: Db): Promise<boolean> {
  const row = await db
    .selectFrom('app_user')
    .select('id')
    .where('superuser', '=', 1)
    .where('active', '=', 1)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

/** Usernames equal to `base` or starting with `base-`, regardless of case. */
export async function selectUsernamesLike(db: Db, base: string): Promise<string[]> {
  const rows = await db
    .selectFrom('app_user')
    .select('username')
    .where((eb) =>
      eb.or([
        eb(eb.fn('lower', ['username']), '=', base.toLowerCase()),
        eb(eb.fn('lower', ['username']), 'like', `${base.toLowerCase()}-%`),
      ]),
    )
    .execute();
  return rows.map((row) => row.username.toLowerCase());
}

export function selectStateByName(db: Db, name: string): Promise<StateRow | undefined> {
  return db.selectFrom('state').selectAll().where('name_key', '=', nameKey(name)).executeTakeFirst();
}

/**
 * Locks a state's row for the rest of the transaction and returns it, as `lockUser` does: two changes
 * of one state sent at once (a form double-submitted) serialise, and the second sees the first's
 * result (renamed or deleted: no longer under this name) instead of making the change again.
 */
export function lockStateByName(trx: Db, name: string): Promise<StateRow | undefined> {
  return trx
    .updateTable('state')
    .set((eb) => ({ created_at: eb.ref('created_at') }))
    .where('name_key', '=', nameKey(name))
    .returningAll()
    .executeTakeFirst();
}

export function selectStateByPriority(db: Db, priority: number): Promise<StateRow | undefined> {
  return db.selectFrom('state').selectAll().where('priority', '=', priority).executeTakeFirst();
}

export function selectGroupByName(db: Db, name: string): Promise<GroupRow | undefined> {
  return db.selectFrom('auth_group').selectAll().where('name_key', '=', nameKey(name)).executeTakeFirst();
}

/** Locks a group's row for the rest of the transaction and returns it (`lockStateByName`). */
export function lockGroupByName(trx: Db, name: string): Promise<GroupRow | undefined> {
  return trx
    .updateTable('auth_group')
    .set((eb) => ({ created_at: eb.ref('created_at') }))
    .where('name_key', '=', nameKey(name))
    .returningAll()
    .executeTakeFirst();
}

export async function selectStateNames(db: Db): Promise<string[]> {
  const rows = await db.selectFrom('state').select('name').execute();
  return rows.map((row) => row.name).sort();
}

export async function selectGroupNames(db: Db): Promise<string[]> {
  const rows = await db.selectFrom('auth_group').select('name').execute();
  return rows.map((row) => row.name).sort();
}

export async function selectStateSummaries(db: Db): Promise<Array<StateRow & { userCount: number }>> {
  const rows = await db
    .selectFrom('state')
    .selectAll('state')
    .select((eb) =>
      eb
        .selectFrom('app_user')
        .whereRef('app_user.state_id', '=', 'state.id')
        .select(eb.fn.countAll<number>().as('n'))
        .as('user_count'),
    )
    .orderBy('priority', 'desc')
    .execute();
  return rows.map(({ user_count, ...state }) => ({ ...state, userCount: Number(user_count ?? 0) }));
}

export async function selectGroupSummaries(db: Db): Promise<Array<GroupRow & { userCount: number }>> {
  const rows = await db
    .selectFrom('auth_group')
    .selectAll('auth_group')
    .select((eb) =>
      eb
        .selectFrom('user_group')
        .whereRef('user_group.group_id', '=', 'auth_group.id')
        .select(eb.fn.countAll<number>().as('n'))
        .as('user_count'),
    )
    .execute();
  return rows
    .map(({ user_count, ...group }) => ({ ...group, userCount: Number(user_count ?? 0) }))
    .sort(byName);
}

export interface UserQuery {
  /** A state id, or null for users without a state; absent for any. */
  stateId?: number | null;
  groupId?: number;
  /** Only these user ids. */
  ids?: readonly number[];
  active?: boolean;
  search?: string;
  limit?: number;
  offset?: number;
}

function likePattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (char) => `\\${char}`)}%`;
}

/** The condition on `app_user` that `query` names (its ids, if any, are the caller's to apply). */
function matchingUsers(query: Omit<UserQuery, 'ids' | 'limit' | 'offset'>) {
  return (eb: ExpressionBuilder<Database, 'app_user'>) => {
    const conditions: Array<Expression<SqlBool>> = [];
    if (query.stateId === null) conditions.push(eb('app_user.state_id', 'is', null));
    else if (query.stateId !== undefined) conditions.push(eb('app_user.state_id', '=', query.stateId));
    if (query.groupId !== undefined) {
      conditions.push(
        eb.exists(
          eb
            .selectFrom('user_group')
            .select('user_group.user_id')
            .whereRef('user_group.user_id', '=', 'app_user.id')
            .where('user_group.group_id', '=', query.groupId),
        ),
      );
    }
    if (query.active !== undefined) conditions.push(eb('app_user.active', '=', query.active ? 1 : 0));
    if (query.search !== undefined && query.search !== '') {
      // The username by its key, as a lookup finds it (`usernameIs`): regardless of case over all of
      // Unicode and of Unicode form, where SQLite's lower() folds ASCII only.
      const usernamePattern = likePattern(nameKey(query.search));
      const pattern = likePattern(query.search);
      conditions.push(
        sql<boolean>`(app_user.username_key like ${usernamePattern} escape '\\' or lower(app_user.email) like lower(${pattern}) escape '\\')`,
      );
    }
    return eb.and(conditions);
  };
}

/** How many users match `query`, counted by the database (no profile is read). */
export async function countProfiles(
  db: Db,
  query: Omit<UserQuery, 'ids' | 'limit' | 'offset'>,
): Promise<number> {
  const row = await db
    .selectFrom('app_user')
    .where(matchingUsers(query))
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** Users matching `query` with their state and groups, sorted by username: two queries in all. */
export async function selectProfiles(db: Db, query: UserQuery): Promise<UserRecord[]> {
  let select = profileQuery(db).where(matchingUsers(query));
  if (query.ids !== undefined) {
    if (query.ids.length === 0) return [];
    select = select.where('app_user.id', 'in', [...query.ids]);
  }
  select = select.orderBy('app_user.username');
  if (query.limit !== undefined) select = select.limit(query.limit);
  if (query.offset !== undefined) select = select.offset(query.offset);
  const rows = await select.execute();
  if (rows.length === 0) return [];

  const groupsByUser = new Map<number, GroupRow[]>();
  const ids = rows.map((row) => row.id);
  // Bounded `in` lists: SQLite allows 32766 parameters, PostgreSQL 65535.
  for (let start = 0; start < ids.length; start += 1000) {
    const memberships = await db
      .selectFrom('user_group')
      .innerJoin('auth_group', 'auth_group.id', 'user_group.group_id')
      .selectAll('auth_group')
      .select('user_group.user_id')
      .where('user_group.user_id', 'in', ids.slice(start, start + 1000))
      .execute();
    for (const { user_id, ...group } of memberships) {
      const list = groupsByUser.get(user_id) ?? [];
      list.push(group);
      groupsByUser.set(user_id, list);
    }
  }
  return rows.map((row) => ({
    ...splitProfileRow(row),
    groups: (groupsByUser.get(row.id) ?? []).sort(byName),
  }));
}

/** The ids of the users whose state is named in `states` or who belong to a group named in `groups`. */
export async function selectUsersCoveredBy(
  db: Db,
  states: readonly string[],
  groups: readonly string[],
): Promise<number[]> {
  const stateKeys = [...new Set(states.map(nameKey))];
  const groupKeys = [...new Set(groups.map(nameKey))];
  if (stateKeys.length === 0 && groupKeys.length === 0) return [];
  const rows = await db
    .selectFrom('app_user')
    .select('app_user.id')
    .where((eb) =>
      eb.or([
        ...(stateKeys.length > 0
          ? [
              eb.exists(
                eb
                  .selectFrom('state')
                  .select('state.id')
                  .whereRef('state.id', '=', 'app_user.state_id')
                  .where('state.name_key', 'in', stateKeys),
              ),
            ]
          : []),
        ...(groupKeys.length > 0
          ? [
              eb.exists(
                eb
                  .selectFrom('user_group')
                  .innerJoin('auth_group', 'auth_group.id', 'user_group.group_id')
                  .select('user_group.user_id')
                  .whereRef('user_group.user_id', '=', 'app_user.id')
                  .where('auth_group.name_key', 'in', groupKeys),
              ),
            ]
          : []),
      ]),
    )
    .orderBy('app_user.id')
    .execute();
  return rows.map((row) => row.id);
}

/** Writes the outbox row of one event; returns its id. */
export async function insertLifecycleEvent(
  trx: Db,
  event: LifecycleEvent,
  actor: string | null,
  at: number,
): Promise<number> {
  const row = await trx
    .insertInto('lifecycle_event')
    .values({
      kind: event.kind,
      user_id: 'userId' in event ? event.userId : null,
      actor,
      payload: JSON.stringify(event),
      created_at: at,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return Number(row.id);
}

/** How many users the built-in directory holds (the backup report). */
export async function countUsers(db: Db): Promise<number> {
  const row = await db
    .selectFrom('app_user')
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** A user's stored texts that `aa-oidc check` judges for their characters (W015). */
export interface UserTextRow {
  id: number;
  username: string;
  email: string;
  character_name: string | null;
}

/**
 * The users whose email or main character's name holds a character of `ranges` (code point ranges;
 * a NUL, which neither column can hold, is left out), by id: one scan, in the database, so that only
 * the few such users are read. PostgreSQL's regular expression, SQLite's GLOB with a character class
 * (which compares code points).
 */
export async function selectUsersWithCharacters(
  db: Db,
  ranges: ReadonlyArray<readonly [number, number]>,
): Promise<UserTextRow[]> {
  const pairs = ranges.map(([first, last]) => [Math.max(first, 1), last] as const);
  const postgres = isPostgres(db);
  const char = (code: number) =>
    postgres
      ? code > 0xffff
        ? `\\U${code.toString(16).padStart(8, '0')}`
        : `\\u${code.toString(16).padStart(4, '0')}`
      : String.fromCodePoint(code);
  const members = pairs.map(([first, last]) =>
    first === last ? char(first) : `${char(first)}-${char(last)}`,
  );
  const pattern = postgres ? `[${members.join('')}]` : `*[${members.join('')}]*`;
  const holds = (column: 'app_user.email' | 'app_user.character_name') =>
    postgres
      ? sql<SqlBool>`${sql.ref(column)} ~ ${pattern}`
      : sql<SqlBool>`${sql.ref(column)} glob ${pattern}`;
  return db
    .selectFrom('app_user')
    .select(['app_user.id', 'app_user.username', 'app_user.email', 'app_user.character_name'])
    .where((eb) => eb.or([holds('app_user.email'), holds('app_user.character_name')]))
    .orderBy('app_user.id')
    .execute();
}
