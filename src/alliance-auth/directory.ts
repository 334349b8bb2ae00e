import type { Directory, MainCharacter, ProfileCountFilter, UserProfile } from '../directory/port.ts';
import { findByName, selectGroups, selectStates, selectUserIdsCoveredBy } from './catalog-queries.ts';
import type { AaDb } from './schema.ts';
import {
  type AllianceAuthUser,
  type AllianceAuthUserQuery,
  countUsers,
  selectUserById,
  selectUserByUsername,
  selectUsers,
} from './user-queries.ts';
import { isRowId } from '../db/row-id.ts';

/**
 * Alliance Auth's database as the directory port: users are `auth_user` rows (their id is `sub`, as
 * with the Python plugin), the state is the stored one, groups come from `auth_user_groups`, and
 * `oidc_access` is the plugin's permission `allianceauth_oidc.access_oidc`, held directly, through a
 * group or through the state. Every read goes to AA's database: nothing is cached, so a change made
 * in AA counts on the very next request, whether or not the poller has seen it yet.
 */
export interface AllianceAuthDirectoryOptions {
  /** The `email_verified` claim of a user with an address (`AA_OIDC_AA_EMAIL_VERIFIED`). */
  emailVerified: boolean;
}

/** A user without a main character: every field null. */
export const NO_CHARACTER: MainCharacter = {
  characterId: null,
  characterName: null,
  corporationId: null,
  corporationName: null,
  corporationTicker: null,
  allianceId: null,
  allianceName: null,
  allianceTicker: null,
  factionId: null,
  factionName: null,
};

/** The port's plain profile of an Alliance Auth user. */
export function toUserProfile(user: AllianceAuthUser, options: AllianceAuthDirectoryOptions): UserProfile {
  return {
    id: user.id,
    username: user.username,
    email: user.email,
    emailVerified: options.emailVerified && user.email.trim() !== '',
    active: user.active,
    superuser: user.superuser,
    oidcAccess: user.permissionVia.includes('user'),
    locale: user.locale,
    mainCharacter: user.mainCharacter ? { ...user.mainCharacter } : { ...NO_CHARACTER },
    state: user.state
      ? { name: user.state.name, priority: user.state.priority, oidcAccess: user.state.grantsAccess }
      : null,
    groups: user.groups.map((group) => ({ name: group.name, oidcAccess: group.grantsAccess })),
    keptPassword: user.keptPassword,
  };
}

const IDS_PER_QUERY = 1000;

export function allianceAuthDirectory(aa: AaDb, options: AllianceAuthDirectoryOptions): Directory {
  const profile = (user: AllianceAuthUser) => toUserProfile(user, options);
  const stateId = async (name: string): Promise<number | undefined> =>
    findByName(await selectStates(aa), name)?.id;
  const groupId = async (name: string): Promise<number | undefined> =>
    findByName(await selectGroups(aa), name)?.id;
  /** AA's query for a directory filter (its page aside), or undefined when it selects nobody. */
  const userQueryFor = async (filter: ProfileCountFilter): Promise<AllianceAuthUserQuery | undefined> => {
    const state = typeof filter.state === 'string' ? await stateId(filter.state) : undefined;
    const group = filter.group === undefined ? undefined : await groupId(filter.group);
    if (typeof filter.state === 'string' && state === undefined) return undefined;
    if (filter.group !== undefined && group === undefined) return undefined;
    return {
      ...(state !== undefined && { stateId: state }),
      // Alliance Auth gives every user a profile in a state, but SQL typed by hand or a failed task
      // leaves some without (`aa-oidc check`, W016): "no state" lists them.
      ...(filter.state === null && { withoutState: true }),
      ...(group !== undefined && { groupId: group }),
      ...(filter.active !== undefined && { active: filter.active }),
      ...(filter.search !== undefined && { search: filter.search }),
    };
  };
  return {
    // No `keepable`: AA's database is not aa-oidc's and aa-oidc's change log cannot name a change
    // made there, so no profile of it is kept in memory (src/oidc/kept-profiles.ts).
    async profileById(id) {
      if (!Number.isSafeInteger(id) || id <= 0) return undefined;
      const user = await selectUserById(aa, id);
      return user ? profile(user) : undefined;
    },
    async profileByUsername(username) {
      const user = await selectUserByUsername(aa, username);
      return user ? profile(user) : undefined;
    },
    // A caller's unit of work (`within`) is of aa-oidc's database, not AA's: read AA's as always.
    async profilesByIds(ids) {
      const unique = [...new Set(ids)].filter(isRowId);
      const profiles: UserProfile[] = [];
      for (let start = 0; start < unique.length; start += IDS_PER_QUERY) {
        const users = await selectUsers(aa, { ids: unique.slice(start, start + IDS_PER_QUERY) });
        profiles.push(...users.map(profile));
      }
      return profiles;
    },
    async listProfiles(filter = {}) {
      const query = await userQueryFor(filter);
      if (query === undefined) return [];
      const users = await selectUsers(aa, {
        ...query,
        ...(filter.limit !== undefined && { limit: filter.limit }),
        ...(filter.offset !== undefined && { offset: filter.offset }),
      });
      return users.map(profile);
    },
    async countProfiles(filter = {}) {
      const query = await userQueryFor(filter);
      return query === undefined ? 0 : countUsers(aa, query);
    },
    async listStates() {
      return (await selectStates(aa)).map((state) => ({
        name: state.name,
        priority: state.priority,
        oidcAccess: state.grantsAccess,
      }));
    },
    async listGroups() {
      return (await selectGroups(aa)).map((group) => ({ name: group.name, oidcAccess: group.grantsAccess }));
    },
    // As `stateId` and `groupId` find a filter's name: exactly, else the one equal regardless of case.
    nameAmong(names, given) {
      return findByName(
        names.map((name) => ({ name })),
        given,
      )?.name;
    },
    usersCoveredBy(whitelist) {
      return selectUserIdsCoveredBy(aa, whitelist.states, whitelist.groups);
    },
  };
}
