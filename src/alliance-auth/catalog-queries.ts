import { countReferencing, holdsAccess } from './access-permission.ts';
import { type AaDb, truthy } from './schema.ts';
import { byName } from './user-queries.ts';

/** Alliance Auth's states and groups, and the users an application's whitelist of them covers. */
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
    .select([
      holdsAccess('state', 's.id').as('grants'),
      countReferencing('authentication_userprofile', 'state_id', 's.id').as('user_count'),
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
    .select([
      holdsAccess('group', 'g.id').as('grants'),
      countReferencing('auth_user_groups', 'group_id', 'g.id').as('user_count'),
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

/**
 * The ids of the users whose stored state is one of `states` or who belong to one of `groups`, names
 * matched exactly, as the policy matches an application's whitelist (on PostgreSQL `Directors` and
 * `directors` may be two groups; MariaDB's collation holds them for one name).
 */
export async function selectUserIdsCoveredBy(
  db: AaDb,
  states: readonly string[],
  groups: readonly string[],
): Promise<number[]> {
  const stateNames = [...states];
  const groupNames = [...groups];
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
                  .where('s.name', 'in', stateNames),
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
                  .where('g.name', 'in', groupNames),
              ),
            ]
          : []),
      ]),
    )
    .orderBy('u.id')
    .execute();
  return rows.map((row) => Number(row.id));
}

/**
 * The state or group an operator means by `name`: the one spelt so, else the only one spelt so but
 * for case. None when two differ only in case (Alliance Auth on PostgreSQL may hold `Directors` and
 * `directors`): the exact name must be given then.
 */
export function findByName<T extends { name: string }>(list: readonly T[], name: string): T | undefined {
  const exact = list.find((item) => item.name === name);
  if (exact) return exact;
  const folded = list.filter((item) => item.name.toLowerCase() === name.toLowerCase());
  return folded.length === 1 ? folded[0] : undefined;
}
