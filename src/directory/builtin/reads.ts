import type { Kysely } from 'kysely';
import { isRowId } from '../../db/row-id.ts';
import { MAY_BE_UNFIT_NAME_CHARACTER } from '../../util/hidden-characters.ts';
import { nameKey } from '../../util/name-key.ts';
import type { Database } from '../../db/schema.ts';
import { DirectoryError, invalid } from '../errors.ts';
import type { Directory, KeepableProfiles, ProfileCountFilter, ProfileFilter } from '../port.ts';
import { toDirectoryGroup, toDirectoryState, toUserProfile } from './profile.ts';
import * as queries from './queries.ts';
import { resolveGroup, resolveState, unknownUser, validateUserRef } from './records.ts';
import type { DirectoryAdmin, StoredUserText, UserFilter } from './types.ts';
import { normalizeUsername, quote, validateFlag, validateName, validateSearch } from './validation.ts';

/** The built-in directory's reads: its records for the admin interface, and the port. */

type RecordReads = Pick<
  DirectoryAdmin,
  | 'findUserByUsername'
  | 'findUserById'
  | 'loadUserProfile'
  | 'getUserProfile'
  | 'listUsers'
  | 'listStates'
  | 'listGroups'
  | 'findStateByName'
  | 'findGroupByName'
>;

/** The listing query of a filter; unknown state or group names are `not_found` errors. */
async function userQuery(db: Kysely<Database>, filter: UserFilter): Promise<queries.UserQuery> {
  const query: queries.UserQuery = {};
  if (filter.state !== undefined) {
    query.stateId =
      filter.state === null ? null : (await resolveState(db, validateName('state', filter.state))).id;
  }
  if (filter.group !== undefined)
    query.groupId = (await resolveGroup(db, validateName('group', filter.group))).id;
  if (filter.active !== undefined) query.active = validateFlag('active', filter.active);
  if (filter.search !== undefined) query.search = validateSearch(filter.search);
  for (const key of ['limit', 'offset'] as const) {
    const value = filter[key];
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value < 0)
      throw invalid(`invalid ${key} ${quote(value)}: expected a whole number ≥ 0`);
    query[key] = value;
  }
  return query;
}

export function recordReads(db: Kysely<Database>): RecordReads {
  return {
    findUserByUsername(username) {
      return queries.selectUser(db, { username: normalizeUsername(username) });
    },

    findUserById(id) {
      return queries.selectUser(db, validateUserRef({ id }));
    },

    loadUserProfile(userId) {
      return queries.selectProfile(db, validateUserRef({ id: userId }));
    },

    async getUserProfile(ref) {
      const target = validateUserRef(ref);
      return (await queries.selectProfile(db, target)) ?? unknownUser(db, target);
    },

    async listUsers(filter = {}) {
      return queries.selectProfiles(db, await userQuery(db, filter));
    },

    listStates() {
      return queries.selectStateSummaries(db);
    },

    listGroups() {
      return queries.selectGroupSummaries(db);
    },

    findStateByName(name) {
      return queries.selectStateByName(db, validateName('state', name));
    },

    findGroupByName(name) {
      return queries.selectGroupByName(db, validateName('group', name));
    },
  };
}

/** A user id the directory could hold (its id column is 32-bit); anything else is simply unknown. */
function isUserId(id: unknown): id is number {
  return isRowId(id);
}

/**
 * The built-in directory behind the port. Malformed input (a username no user can have, a state
 * name with control characters) finds nobody rather than failing: the port answers "who is this",
 * and validation messages are the admin interface's business.
 */
export function builtinDirectoryReader(db: Kysely<Database>): Directory {
  const orNobody = async <T>(read: () => Promise<T>, nobody: T): Promise<T> => {
    try {
      return await read();
    } catch (error) {
      if (error instanceof DirectoryError) return nobody;
      throw error;
    }
  };
  return {
    async profileById(id) {
      if (!isUserId(id)) return undefined;
      const record = await queries.selectProfileById(db, id);
      return record && toUserProfile(record);
    },

    profileByUsername(username) {
      return orNobody(async () => {
        const record = await queries.selectProfile(db, { username: normalizeUsername(username) });
        return record && toUserProfile(record);
      }, undefined);
    },

    async profilesByIds(ids, within) {
      const valid = [...new Set(ids.filter(isUserId))];
      const records: Awaited<ReturnType<typeof queries.selectProfiles>> = [];
      // The directory's tables are in aa-oidc's database: a caller's unit of work reads them itself.
      const reader = within?.trx ?? db;
      // Bounded `in` lists: SQLite allows 32766 parameters, PostgreSQL 65535.
      for (let start = 0; start < valid.length; start += 1000) {
        records.push(...(await queries.selectProfiles(reader, { ids: valid.slice(start, start + 1000) })));
      }
      return records.map(toUserProfile);
    },

    listProfiles(filter: ProfileFilter = {}) {
      return orNobody(
        async () => (await queries.selectProfiles(db, await userQuery(db, filter))).map(toUserProfile),
        [],
      );
    },

    countProfiles(filter: ProfileCountFilter = {}) {
      return orNobody(async () => queries.countProfiles(db, await userQuery(db, filter)), 0);
    },

    async listStates() {
      return (await queries.selectStateSummaries(db)).map(toDirectoryState);
    },

    async listGroups() {
      return (await queries.selectGroupSummaries(db)).map(toDirectoryGroup);
    },

    // By `nameKey`, as `resolveState` and `resolveGroup` look a name up (unique among the names).
    nameAmong(names, given) {
      const key = nameKey(given);
      return names.find((name) => nameKey(name) === key);
    },

    usersCoveredBy(whitelist) {
      return queries.selectUsersCoveredBy(db, whitelist.states, whitelist.groups);
    },
  };
}

/**
 * The built-in directory's profiles may be kept in memory: the change log's triggers (migration
 * 0072) name every change to the rows a profile is built from, and `afterCommit` (the directory
 * admin's) tells of this process's own changes as soon as they commit.
 */
export function keepableProfiles(
  db: Kysely<Database>,
  afterCommit: DirectoryAdmin['afterCommit'],
): KeepableProfiles {
  return {
    async profileWithPositionById(id) {
      if (!isUserId(id)) return { profile: undefined, position: undefined };
      const { record, position } = await queries.selectProfileWithPositionById(db, id);
      return { profile: record && toUserProfile(record), position };
    },
    afterOwnChange(listener) {
      // A user's event changes that user's rows alone (its memberships included); a state's or a
      // group's changes what every member's profile embeds.
      return afterCommit((event) => listener('userId' in event ? event.userId : undefined));
    },
  };
}

/**
 * The users whose email address or main character's name may hold a character new ones refuse
 * (`MAY_BE_UNFIT_NAME_CHARACTER`), for `aa-oidc check` to judge (W015): one query, which reads only them.
 */
export async function usersWithTextToJudge(db: Kysely<Database>): Promise<StoredUserText[]> {
  const rows = await queries.selectUsersWithCharacters(db, MAY_BE_UNFIT_NAME_CHARACTER);
  return rows.map((row) => ({
    id: row.id,
    username: row.username,
    email: row.email,
    characterName: row.character_name,
  }));
}
