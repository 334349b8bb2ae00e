import { sql } from 'kysely';
import { isRowId } from '../db/row-id.ts';
import type { KeptPassword } from '../directory/port.ts';
import { holdsAccess, holdsAccessThroughGroups } from './access-permission.ts';
import { readDjangoPassword } from './django-password.ts';
import { type AaDb, truthy } from './schema.ts';

/**
 * Alliance Auth's users as aa-oidc reads them: one user with its profile, state, main character,
 * groups and where it holds the access permission, by id, by username, or many at once. SELECTs
 * only, the same SQL on MariaDB/MySQL and PostgreSQL.
 */
/** An AA user as aa-oidc sees it: plain values, no row types. */
export interface AllianceAuthUser {
  /** `auth_user.id`: the OIDC `sub`, as the Python plugin. */
  id: number;
  username: string;
  email: string;
  active: boolean;
  superuser: boolean;
  /** The stored state (authoritative in AA), or null for a user without a profile. */
  state: { id: number; name: string; priority: number; grantsAccess: boolean } | null;
  /** Sorted by name (code-unit order); `grantsAccess`: the group holds the access permission. */
  groups: AllianceAuthMembership[];
  mainCharacter: MainCharacter | null;
  /** `authentication_userprofile.language`, or null when empty. */
  locale: string | null;
  /** Where `allianceauth_oidc.access_oidc` is held, superuser aside. */
  permissionVia: Array<'user' | 'group' | 'state'>;
  /** Epoch milliseconds, or null when the user never signed in to AA. */
  lastLoginAt: number | null;
  /** When AA made the account (`date_joined`), epoch milliseconds. */
  joinedAt: number | null;
  /**
   * What the user's AA password is worth at password sign-in here (`readDjangoPassword`): none or
   * Django's unusable one (`!…`, which AA gives the accounts EVE SSO makes), one aa-oidc verifies,
   * or one it cannot. Read with the row and reduced at once to this one fact: the hash goes no further.
   */
  keptPassword: KeptPassword;
}

export interface AllianceAuthMembership {
  id: number;
  name: string;
  grantsAccess: boolean;
}

export interface MainCharacter {
  characterId: number;
  characterName: string;
  corporationId: number;
  corporationName: string;
  corporationTicker: string;
  allianceId: number | null;
  allianceName: string | null;
  allianceTicker: string | null;
  factionId: number | null;
  factionName: string | null;
}

/** The plugin's global gate: active AND (superuser OR the access permission by user, group or state). */
export function passesAllianceAuthGate(
  user: Pick<AllianceAuthUser, 'active' | 'superuser' | 'permissionVia'>,
): boolean {
  return user.active && (user.superuser || user.permissionVia.length > 0);
}

/** AA's users with their profile (`u`, `p`), before any column is chosen. */
function usersWithProfile(db: AaDb) {
  return db.selectFrom('auth_user as u').leftJoin('authentication_userprofile as p', 'p.user_id', 'u.id');
}

function userQuery(db: AaDb, users: ReturnType<typeof usersWithProfile> = usersWithProfile(db)) {
  return users
    .leftJoin('authentication_state as s', 's.id', 'p.state_id')
    .leftJoin('eveonline_evecharacter as c', 'c.id', 'p.main_character_id')
    .select([
      'u.id',
      'u.username',
      'u.email',
      'u.is_active',
      'u.is_superuser',
      'u.last_login',
      'u.date_joined',
      'p.language',
      's.id as state_id',
      's.name as state_name',
      's.priority as state_priority',
      'c.character_id',
      'c.character_name',
      'c.corporation_id',
      'c.corporation_name',
      'c.corporation_ticker',
      'c.alliance_id',
      'c.alliance_name',
      'c.alliance_ticker',
      'c.faction_id',
      'c.faction_name',
      'u.password',
    ])
    .select([
      holdsAccess('user', 'u.id').as('perm_user'),
      holdsAccessThroughGroups('u.id').as('perm_group'),
      holdsAccess('state', 'p.state_id').as('perm_state'),
    ]);
}

type UserQueryRow = Awaited<ReturnType<ReturnType<typeof userQuery>['execute']>>[number];

export function toNumberOrNull(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value);
}

function textOrNull(value: string | null | undefined): string | null {
  return value === null || value === undefined || value.trim() === '' ? null : value;
}

/**
 * Django stores naive UTC datetimes: MariaDB hands back `YYYY-MM-DD HH:MM:SS.ffffff` strings,
 * PostgreSQL's driver a Date, or a number for `infinity` and `-infinity` (a value typed by hand). A
 * time no Date can hold (those, a year beyond 275760, MariaDB's zero date) is none: null.
 */
export function djangoTime(value: Date | string | number | null | undefined): number | null {
  if (value === null || value === undefined) return null;
  const time =
    typeof value === 'number'
      ? value
      : value instanceof Date
        ? value.getTime()
        : Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value.replace(' ', 'T')}Z`);
  return Number.isFinite(time) ? time : null;
}

function toUser(row: UserQueryRow, groups: AllianceAuthMembership[]): AllianceAuthUser {
  const permissionVia: AllianceAuthUser['permissionVia'] = [];
  if (truthy(row.perm_user as never)) permissionVia.push('user');
  if (truthy(row.perm_group as never)) permissionVia.push('group');
  if (truthy(row.perm_state as never)) permissionVia.push('state');
  return {
    id: Number(row.id),
    username: row.username,
    email: row.email,
    active: truthy(row.is_active),
    superuser: truthy(row.is_superuser),
    state:
      row.state_id === null || row.state_name === null
        ? null
        : {
            id: Number(row.state_id),
            name: row.state_name,
            priority: Number(row.state_priority),
            grantsAccess: permissionVia.includes('state'),
          },
    groups: [...groups].sort(byName),
    mainCharacter:
      row.character_id === null || row.character_id === undefined
        ? null
        : {
            characterId: Number(row.character_id),
            characterName: row.character_name ?? '',
            corporationId: Number(row.corporation_id),
            corporationName: row.corporation_name ?? '',
            corporationTicker: row.corporation_ticker ?? '',
            allianceId: toNumberOrNull(row.alliance_id),
            allianceName: textOrNull(row.alliance_name),
            allianceTicker: textOrNull(row.alliance_ticker),
            factionId: toNumberOrNull(row.faction_id),
            factionName: textOrNull(row.faction_name),
          },
    locale: textOrNull(row.language),
    permissionVia,
    lastLoginAt: djangoTime(row.last_login),
    joinedAt: djangoTime(row.date_joined),
    keptPassword: readDjangoPassword(row.password).kind,
  };
}

/** Code-unit order, the same on every database whatever its collation. */
export function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

async function groupsOf(
  db: AaDb,
  userIds: readonly number[],
): Promise<Map<number, AllianceAuthMembership[]>> {
  const byUser = new Map<number, AllianceAuthMembership[]>();
  for (let start = 0; start < userIds.length; start += 1000) {
    const rows = await db
      .selectFrom('auth_user_groups as ug')
      .innerJoin('auth_group as g', 'g.id', 'ug.group_id')
      .select(['ug.user_id', 'g.id', 'g.name'])
      .select(holdsAccess('group', 'g.id').as('grants'))
      .where('ug.user_id', 'in', userIds.slice(start, start + 1000))
      .execute();
    for (const row of rows) {
      const userId = Number(row.user_id);
      const list = byUser.get(userId) ?? [];
      list.push({ id: Number(row.id), name: row.name, grantsAccess: truthy(row.grants as never) });
      byUser.set(userId, list);
    }
  }
  return byUser;
}

/** One user with state, main character, groups and the permission: two queries issued at once. */
export async function selectUserById(db: AaDb, id: number): Promise<AllianceAuthUser | undefined> {
  // No user has an id beyond the 32-bit column, and PostgreSQL refuses to compare one with it.
  if (!isRowId(id)) return undefined;
  const [row, groups] = await Promise.all([
    userQuery(db).where('u.id', '=', id).executeTakeFirst(),
    groupsOf(db, [id]),
  ]);
  return row ? toUser(row, groups.get(id) ?? []) : undefined;
}

/**
 * By username, regardless of case: the exact spelling first, else the one user whose name differs
 * in case only. On PostgreSQL two users may differ in case only (`Alice` and `ALICE`): a spelling
 * that is neither of them could mean either and finds nobody, as a state or group name does. A user
 * whose id is beyond 32 bits finds nobody either.
 */
export async function selectUserByUsername(
  db: AaDb,
  username: string,
): Promise<AllianceAuthUser | undefined> {
  // No username holds a NUL byte, and PostgreSQL refuses one in a query parameter.
  if (username.includes('\0')) return undefined;
  const rows = await userQuery(db)
    .where(sql<boolean>`lower(u.username) = lower(${username})`)
    .limit(10)
    .execute();
  const row =
    rows.find((candidate) => candidate.username === username) ?? (rows.length === 1 ? rows[0] : undefined);
  // One whose id is beyond the 32-bit ids aa-oidc keeps (an `auth_user.id` widened by hand) is found
  // by name no more than by id (`selectUserById`): its id would be compared with aa-oidc's own
  // columns (the audit log's filter), which PostgreSQL refuses.
  if (!row || !isRowId(Number(row.id))) return undefined;
  const groups = await groupsOf(db, [Number(row.id)]);
  return toUser(row, groups.get(Number(row.id)) ?? []);
}

export interface AllianceAuthUserQuery {
  /** Only these users. */
  ids?: readonly number[];
  /** A state id. */
  stateId?: number;
  /**
   * Only the users without a state: no profile, or a profile whose state is gone (`aa-oidc check`,
   * W016), whom `toUser` gives a null state.
   */
  withoutState?: boolean;
  groupId?: number;
  active?: boolean;
  /** Substring of the username or email, regardless of case. */
  search?: string;
  limit?: number;
  offset?: number;
}

/** A LIKE pattern escaped with `!`: a backslash means different things to MySQL and PostgreSQL. */
function likePattern(text: string): string {
  return `%${text.replace(/[!%_]/g, (char) => `!${char}`)}%`;
}

/** The users `query` selects (its page aside), or undefined when it selects nobody. */
function matchingUsers(db: AaDb, query: Omit<AllianceAuthUserQuery, 'limit' | 'offset'>) {
  let select = usersWithProfile(db);
  if (query.ids !== undefined) {
    const ids = query.ids.filter(isRowId);
    if (ids.length === 0) return undefined;
    select = select.where('u.id', 'in', ids);
  }
  // As for a username: a NUL byte matches nobody, and PostgreSQL would refuse it.
  if (query.search?.includes('\0')) return undefined;
  if (query.stateId !== undefined) select = select.where('p.state_id', '=', query.stateId);
  if (query.withoutState === true) {
    // A user without a profile has no `p.state_id` either: no state exists for either.
    select = select.where((eb) =>
      eb.not(
        eb.exists(
          eb.selectFrom('authentication_state as ns').select('ns.id').whereRef('ns.id', '=', 'p.state_id'),
        ),
      ),
    );
  }
  if (query.groupId !== undefined) {
    const groupId = query.groupId;
    select = select.where((eb) =>
      eb.exists(
        eb
          .selectFrom('auth_user_groups as mg')
          .select('mg.id')
          .whereRef('mg.user_id', '=', 'u.id')
          .where('mg.group_id', '=', groupId),
      ),
    );
  }
  if (query.active !== undefined) {
    const active = query.active;
    select = select.where((eb) =>
      active ? eb('u.is_active', '=', sql<boolean>`true`) : eb('u.is_active', '=', sql<boolean>`false`),
    );
  }
  if (query.search !== undefined && query.search !== '') {
    const pattern = likePattern(query.search);
    select = select.where(
      sql<boolean>`(lower(u.username) like lower(${pattern}) escape '!' or lower(u.email) like lower(${pattern}) escape '!')`,
    );
  }
  return select;
}

/** How many users match the query, counted by AA's database (no user is read). */
export async function countUsers(
  db: AaDb,
  query: Omit<AllianceAuthUserQuery, 'limit' | 'offset'>,
): Promise<number> {
  const matching = matchingUsers(db, query);
  if (matching === undefined) return 0;
  const row = await matching.select((eb) => eb.fn.countAll().as('users')).executeTakeFirst();
  return Number(row?.users ?? 0);
}

/** Users matching the query, sorted by username: two queries (plus one per thousand users). */
export async function selectUsers(db: AaDb, query: AllianceAuthUserQuery): Promise<AllianceAuthUser[]> {
  const matching = matchingUsers(db, query);
  if (matching === undefined) return [];
  let select = userQuery(db, matching);
  select = select.orderBy('u.username');
  if (query.limit !== undefined) select = select.limit(query.limit);
  if (query.offset !== undefined) {
    // MySQL accepts OFFSET only after a LIMIT.
    if (query.limit === undefined) select = select.limit(Number.MAX_SAFE_INTEGER);
    select = select.offset(query.offset);
  }
  const rows = await select.execute();
  const groups = await groupsOf(
    db,
    rows.map((row) => Number(row.id)),
  );
  return rows.map((row) => toUser(row, groups.get(Number(row.id)) ?? []));
}
