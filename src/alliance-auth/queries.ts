import { type ExpressionBuilder, type Kysely, sql } from 'kysely';
import { type AllianceAuthDatabase, truthy } from './schema.ts';
import type { AllianceAuthDatabaseKind } from './database.ts';

/**
 * The SQL aa-oidc runs against Alliance Auth's database: SELECTs only, each one query (or two issued
 * at once), on MariaDB/MySQL and PostgreSQL alike. Domain rules (the gate, EVE SSO) are elsewhere.
 */
export type AaDb = Kysely<AllianceAuthDatabase>;

/** The plugin's permission, matched by app label and codename: ids differ between installations. */
export const ACCESS_PERMISSION = { appLabel: 'allianceauth_oidc', codename: 'access_oidc' } as const;

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

type UserEb = ExpressionBuilder<
  AllianceAuthDatabase & {
    u: AllianceAuthDatabase['auth_user'];
    p: AllianceAuthDatabase['authentication_userprofile'];
  },
  'u' | 'p'
>;

/** `auth_permission.id` of the access permission (a subquery: no id is assumed). */
function accessPermissionIds(eb: ExpressionBuilder<AllianceAuthDatabase, never>) {
  return eb
    .selectFrom('auth_permission as perm')
    .innerJoin('django_content_type as ct', 'ct.id', 'perm.content_type_id')
    .select('perm.id')
    .where('ct.app_label', '=', ACCESS_PERMISSION.appLabel)
    .where('perm.codename', '=', ACCESS_PERMISSION.codename);
}

function permissionFlags(eb: UserEb) {
  return [
    eb
      .exists(
        eb
          .selectFrom('auth_user_user_permissions as up')
          .select('up.id')
          .whereRef('up.user_id', '=', 'u.id')
          .where('up.permission_id', 'in', accessPermissionIds(eb as never)),
      )
      .as('perm_user'),
    eb
      .exists(
        eb
          .selectFrom('auth_user_groups as ug')
          .innerJoin('auth_group_permissions as gp', 'gp.group_id', 'ug.group_id')
          .select('ug.id')
          .whereRef('ug.user_id', '=', 'u.id')
          .where('gp.permission_id', 'in', accessPermissionIds(eb as never)),
      )
      .as('perm_group'),
    eb
      .exists(
        eb
          .selectFrom('authentication_state_permissions as sp')
          .select('sp.id')
          .whereRef('sp.state_id', '=', 'p.state_id')
          .where('sp.permission_id', 'in', accessPermissionIds(eb as never)),
      )
      .as('perm_state'),
  ];
}

function userQuery(db: AaDb) {
  return db
    .selectFrom('auth_user as u')
    .leftJoin('authentication_userprofile as p', 'p.user_id', 'u.id')
    .leftJoin('authentication_state as s', 's.id', 'p.state_id')
    .leftJoin('eveonline_evecharacter as c', 'c.id', 'p.main_character_id')
    .select([
      'u.id',
      'u.username',
      'u.email',
      'u.is_active',
      'u.is_superuser',
      'u.last_login',
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
    ])
    .select((eb) => permissionFlags(eb as unknown as UserEb));
}

type UserQueryRow = Awaited<ReturnType<ReturnType<typeof userQuery>['execute']>>[number];

function toNumberOrNull(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value);
}

function textOrNull(value: string | null | undefined): string | null {
  return value === null || value === undefined || value.trim() === '' ? null : value;
}

/** Django stores naive UTC datetimes: MariaDB hands back `YYYY-MM-DD HH:MM:SS.ffffff` strings. */
export function djangoTime(value: Date | string | null | undefined): number | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.getTime();
  const parsed = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value.replace(' ', 'T')}Z`);
  return Number.isNaN(parsed) ? null : parsed;
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
      .select((eb) =>
        eb
          .exists(
            eb
              .selectFrom('auth_group_permissions as gp')
              .select('gp.id')
              .whereRef('gp.group_id', '=', 'g.id')
              .where('gp.permission_id', 'in', accessPermissionIds(eb as never)),
          )
          .as('grants'),
      )
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
  const [row, groups] = await Promise.all([
    userQuery(db).where('u.id', '=', id).executeTakeFirst(),
    groupsOf(db, [id]),
  ]);
  return row ? toUser(row, groups.get(id) ?? []) : undefined;
}

/**
 * By username, regardless of case (the exact spelling first: on PostgreSQL two users may differ in
 * case only).
 */
export async function selectUserByUsername(
  db: AaDb,
  username: string,
): Promise<AllianceAuthUser | undefined> {
  const rows = await userQuery(db)
    .where(sql<boolean>`lower(u.username) = lower(${username})`)
    .limit(10)
    .execute();
  const row = rows.find((candidate) => candidate.username === username) ?? rows[0];
  if (!row) return undefined;
  const groups = await groupsOf(db, [Number(row.id)]);
  return toUser(row, groups.get(Number(row.id)) ?? []);
}

export interface AllianceAuthUserQuery {
  /** Only these users. */
  ids?: readonly number[];
  /** A state id. */
  stateId?: number;
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

/** Users matching the query, sorted by username: two queries (plus one per thousand users). */
export async function selectUsers(db: AaDb, query: AllianceAuthUserQuery): Promise<AllianceAuthUser[]> {
  let select = userQuery(db);
  if (query.ids !== undefined) {
    if (query.ids.length === 0) return [];
    select = select.where('u.id', 'in', [...query.ids]);
  }
  if (query.stateId !== undefined) select = select.where('p.state_id', '=', query.stateId);
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

export interface AllianceAuthState {
  id: number;
  name: string;
  priority: number;
  /** The state holds the access permission. */
  grantsAccess: boolean;
  userCount: number;
}

export interface AllianceAuthGroup {
  id: number;
  name: string;
  grantsAccess: boolean;
  userCount: number;
}

/** Highest priority first. */
export async function selectStates(db: AaDb): Promise<AllianceAuthState[]> {
  const rows = await db
    .selectFrom('authentication_state as s')
    .select(['s.id', 's.name', 's.priority'])
    .select((eb) => [
      eb
        .exists(
          eb
            .selectFrom('authentication_state_permissions as sp')
            .select('sp.id')
            .whereRef('sp.state_id', '=', 's.id')
            .where('sp.permission_id', 'in', accessPermissionIds(eb as never)),
        )
        .as('grants'),
      eb
        .selectFrom('authentication_userprofile as p')
        .whereRef('p.state_id', '=', 's.id')
        .select(eb.fn.countAll<number>().as('n'))
        .as('user_count'),
    ])
    .orderBy('s.priority', 'desc')
    .execute();
  return rows.map((row) => ({
    id: Number(row.id),
    name: row.name,
    priority: Number(row.priority),
    grantsAccess: truthy(row.grants as never),
    userCount: Number(row.user_count ?? 0),
  }));
}

/** Sorted by name. */
export async function selectGroups(db: AaDb): Promise<AllianceAuthGroup[]> {
  const rows = await db
    .selectFrom('auth_group as g')
    .select(['g.id', 'g.name'])
    .select((eb) => [
      eb
        .exists(
          eb
            .selectFrom('auth_group_permissions as gp')
            .select('gp.id')
            .whereRef('gp.group_id', '=', 'g.id')
            .where('gp.permission_id', 'in', accessPermissionIds(eb as never)),
        )
        .as('grants'),
      eb
        .selectFrom('auth_user_groups as ug')
        .whereRef('ug.group_id', '=', 'g.id')
        .select(eb.fn.countAll<number>().as('n'))
        .as('user_count'),
    ])
    .execute();
  return rows
    .map((row) => ({
      id: Number(row.id),
      name: row.name,
      grantsAccess: truthy(row.grants as never),
      userCount: Number(row.user_count ?? 0),
    }))
    .sort(byName);
}

/** What AA knows about one EVE character's ownership, for the EVE SSO decision. */
export interface CharacterOwnership {
  /** The character has an `eveonline_evecharacter` row. */
  characterKnown: boolean;
  ownership: {
    userId: number;
    ownerHash: string;
    userActive: boolean;
    /** The EVE id of the owner's main character, or null without one. */
    mainCharacterId: number | null;
  } | null;
}

export async function selectCharacterOwnership(db: AaDb, characterId: number): Promise<CharacterOwnership> {
  const rows = await db
    .selectFrom('eveonline_evecharacter as c')
    .leftJoin('authentication_characterownership as co', 'co.character_id', 'c.id')
    .leftJoin('auth_user as u', 'u.id', 'co.user_id')
    .leftJoin('authentication_userprofile as p', 'p.user_id', 'u.id')
    .leftJoin('eveonline_evecharacter as mc', 'mc.id', 'p.main_character_id')
    .select(['c.id', 'co.user_id', 'co.owner_hash', 'u.is_active', 'mc.character_id as main_character_id'])
    .where('c.character_id', '=', characterId)
    .execute();
  const row = rows[0];
  if (!row) return { characterKnown: false, ownership: null };
  if (row.user_id === null || row.owner_hash === null) return { characterKnown: true, ownership: null };
  return {
    characterKnown: true,
    ownership: {
      userId: Number(row.user_id),
      ownerHash: row.owner_hash,
      userActive: truthy(row.is_active),
      mainCharacterId: toNumberOrNull(row.main_character_id),
    },
  };
}

/** The stored Django password hash of a user, with what the login decision needs. */
export async function selectPasswordRecord(
  db: AaDb,
  username: string,
): Promise<{ id: number; username: string; password: string; active: boolean } | undefined> {
  const row = await db
    .selectFrom('auth_user')
    .select(['id', 'username', 'password', 'is_active'])
    .where('username', '=', username)
    .executeTakeFirst();
  return row
    ? { id: Number(row.id), username: row.username, password: row.password, active: truthy(row.is_active) }
    : undefined;
}

/** True when AA's database holds the plugin's access permission at all. */
export async function accessPermissionExists(db: AaDb): Promise<boolean> {
  const row = await db
    .selectFrom('auth_permission as perm')
    .innerJoin('django_content_type as ct', 'ct.id', 'perm.content_type_id')
    .select('perm.id')
    .where('ct.app_label', '=', ACCESS_PERMISSION.appLabel)
    .where('perm.codename', '=', ACCESS_PERMISSION.codename)
    .executeTakeFirst();
  return row !== undefined;
}

export type { AllianceAuthDatabaseKind };

/**
 * The ids of the users whose stored state is one of `states` or who belong to one of `groups`, names
 * matched regardless of case (an application's whitelist).
 */
export async function selectUserIdsCoveredBy(
  db: AaDb,
  states: readonly string[],
  groups: readonly string[],
): Promise<number[]> {
  const stateNames = states.map((name) => name.toLowerCase());
  const groupNames = groups.map((name) => name.toLowerCase());
  if (stateNames.length === 0 && groupNames.length === 0) return [];
  const rows = await db
    .selectFrom('auth_user as u')
    .leftJoin('authentication_userprofile as p', 'p.user_id', 'u.id')
    .select('u.id')
    .where((eb) =>
      eb.or([
        ...(stateNames.length > 0
          ? [
              eb.exists(
                eb
                  .selectFrom('authentication_state as s')
                  .select('s.id')
                  .whereRef('s.id', '=', 'p.state_id')
                  .where(sql<boolean>`lower(s.name) in (${sql.join(stateNames)})`),
              ),
            ]
          : []),
        ...(groupNames.length > 0
          ? [
              eb.exists(
                eb
                  .selectFrom('auth_user_groups as ug')
                  .innerJoin('auth_group as g', 'g.id', 'ug.group_id')
                  .select('ug.id')
                  .whereRef('ug.user_id', '=', 'u.id')
                  .where(sql<boolean>`lower(g.name) in (${sql.join(groupNames)})`),
              ),
            ]
          : []),
      ]),
    )
    .orderBy('u.id')
    .execute();
  return rows.map((row) => Number(row.id));
}
