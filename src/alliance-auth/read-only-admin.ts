import type { GroupRow, StateRow, UserRow } from '../db/schema.ts';
import type {
  DirectoryAdmin,
  GroupSummary,
  StateSummary,
  UserRecord,
  UserRef,
} from '../directory/builtin/types.ts';
import { DirectoryError, notFound } from '../directory/errors.ts';
import { listedNameHint, usernamesListedAs } from '../util/listed-name.ts';
import { latinLookalikeOf, lookalikeHint } from '../util/lookalike-names.ts';
import { quotedInput } from '../util/visible-text.ts';
import { findByName, selectGroups, selectStates } from './catalog-queries.ts';
import type { AaDb } from './schema.ts';
import { type AllianceAuthUser, selectUserById, selectUserByUsername, selectUsers } from './user-queries.ts';

/**
 * The admin interface in Alliance Auth mode: every write refuses, saying that the directory is
 * Alliance Auth (aa-oidc never writes to AA's database), and the reads show AA's users, states and
 * groups in the records `user list/show`, `state list`, `group list` and the admin UI print.
 */
export const ALLIANCE_AUTH_READ_ONLY_MESSAGE =
  'The directory is Alliance Auth: users, states and groups are read from Alliance Auth and changed there, not in aa-oidc.';

export function readOnly(): DirectoryError {
  return new DirectoryError('read_only', ALLIANCE_AUTH_READ_ONLY_MESSAGE);
}

export interface ReadOnlyAdminOptions {
  emailVerified: boolean;
}

function userRow(user: AllianceAuthUser, options: ReadOnlyAdminOptions): UserRow {
  const main = user.mainCharacter;
  return {
    id: user.id,
    username: user.username,
    username_key: null,
    email: user.email,
    email_verified: options.emailVerified && user.email.trim() !== '' ? 1 : 0,
    // Alliance Auth's passwords stay in AA; none is held here (`keptElsewhere` says whether AA holds one).
    password_hash: null,
    active: user.active ? 1 : 0,
    superuser: user.superuser ? 1 : 0,
    oidc_access: user.permissionVia.includes('user') ? 1 : 0,
    state_id: user.state?.id ?? null,
    character_id: main?.characterId ?? null,
    character_name: main?.characterName ?? null,
    corporation_id: main?.corporationId ?? null,
    corporation_name: main?.corporationName ?? null,
    corporation_ticker: main?.corporationTicker ?? null,
    alliance_id: main?.allianceId ?? null,
    alliance_name: main?.allianceName ?? null,
    alliance_ticker: main?.allianceTicker ?? null,
    faction_id: main?.factionId ?? null,
    faction_name: main?.factionName ?? null,
    locale: user.locale,
    last_login_at: user.lastLoginAt,
    must_change_password: 0,
    created_at: user.joinedAt ?? 0,
    // AA keeps no such time: `keptElsewhere` tells readers not to show this one.
    updated_at: 0,
  };
}

function toRecord(user: AllianceAuthUser, options: ReadOnlyAdminOptions): UserRecord {
  return {
    user: userRow(user, options),
    keptElsewhere: { password: user.keptPassword },
    state: user.state
      ? {
          id: user.state.id,
          name: user.state.name,
          name_key: null,
          priority: user.state.priority,
          oidc_access: user.state.grantsAccess ? 1 : 0,
          created_at: 0,
        }
      : null,
    groups: user.groups.map((group) => ({
      id: group.id,
      name: group.name,
      name_key: null,
      oidc_access: group.grantsAccess ? 1 : 0,
      created_at: 0,
    })),
  };
}

/**
 * "no user, state or group named …": `named` as given, the escape typed for a character
 * (`listedNameHint`), and a name it differs from only in look-alike letters (`lookalikeHint`).
 */
function unknownName(
  entity: 'user' | 'state' | 'group',
  named: string,
  names: readonly string[],
): DirectoryError {
  return notFound(
    `no ${entity} named ${quotedInput(named)} in Alliance Auth${listedNameHint(entity, named, names)}${lookalikeHint(entity, named, names)}`,
  );
}

export function allianceAuthReadOnlyAdmin(aa: AaDb, options: ReadOnlyAdminOptions): DirectoryAdmin {
  const refuse = async (): Promise<never> => {
    throw readOnly();
  };
  const record = (user: AllianceAuthUser) => toRecord(user, options);
  const find = async (ref: UserRef): Promise<AllianceAuthUser | undefined> =>
    'id' in ref ? selectUserById(aa, ref.id) : selectUserByUsername(aa, ref.username);
  const states = async (): Promise<StateSummary[]> =>
    (await selectStates(aa)).map((state) => ({
      id: state.id,
      name: state.name,
      name_key: null,
      priority: state.priority,
      oidc_access: state.grantsAccess ? 1 : 0,
      created_at: 0,
      userCount: state.userCount,
    }));
  const groups = async (): Promise<GroupSummary[]> =>
    (await selectGroups(aa)).map((group) => ({
      id: group.id,
      name: group.name,
      name_key: null,
      oidc_access: group.grantsAccess ? 1 : 0,
      created_at: 0,
      userCount: group.userCount,
    }));
  return {
    subscribe: () => () => undefined,
    afterCommit: () => () => undefined,
    createUser: refuse,
    updateUser: refuse,
    setPassword: refuse,
    deactivate: refuse,
    activate: refuse,
    setState: refuse,
    addGroup: refuse,
    removeGroup: refuse,
    deleteUser: refuse,
    // Sign-ins are Alliance Auth's record to keep; nothing is written to it.
    recordLogin: async () => undefined,
    createState: refuse,
    grantStateAccess: refuse,
    setStatePriority: refuse,
    renameState: refuse,
    deleteState: refuse,
    createGroup: refuse,
    grantGroupAccess: refuse,
    renameGroup: refuse,
    deleteGroup: refuse,

    async findUserByUsername(username) {
      const user = await selectUserByUsername(aa, username);
      return user ? userRow(user, options) : undefined;
    },
    async findUserById(id) {
      const user = await selectUserById(aa, id);
      return user ? userRow(user, options) : undefined;
    },
    async loadUserProfile(userId) {
      const user = await selectUserById(aa, userId);
      return user ? record(user) : undefined;
    },
    async getUserProfile(ref) {
      const user = await find(ref);
      if (user) return record(user);
      if ('id' in ref) throw notFound(`no user with id ${ref.id} in Alliance Auth`);
      // A username `user list` shows with an escape (`Esc\x1b`), typed as shown: the one it stands for.
      const listed = await usernamesListedAs(ref.username, (stored) => selectUserByUsername(aa, stored));
      // Or one whose username it differs from only in look-alike letters (a Cyrillic `а` for `a`).
      const latin = latinLookalikeOf(ref.username);
      const lookalike = latin === undefined ? undefined : await selectUserByUsername(aa, latin);
      throw unknownName('user', ref.username, lookalike ? [...listed, lookalike.username] : listed);
    },
    async listUsers(filter = {}) {
      let stateId: number | undefined;
      let groupId: number | undefined;
      if (typeof filter.state === 'string') {
        const all = await states();
        const state = findByName(all, filter.state);
        if (!state) {
          const names = all.map((found) => found.name);
          throw unknownName('state', filter.state, names);
        }
        stateId = state.id;
      }
      if (filter.group !== undefined) {
        const all = await groups();
        const group = findByName(all, filter.group);
        if (!group) {
          const names = all.map((found) => found.name);
          throw unknownName('group', filter.group, names);
        }
        groupId = group.id;
      }
      const users = await selectUsers(aa, {
        ...(stateId !== undefined && { stateId }),
        // As the directory's "No state" (directory.ts): no profile, or a state gone from AA.
        ...(filter.state === null && { withoutState: true }),
        ...(groupId !== undefined && { groupId }),
        ...(filter.active !== undefined && { active: filter.active }),
        ...(filter.search !== undefined && { search: filter.search }),
        ...(filter.limit !== undefined && { limit: filter.limit }),
        ...(filter.offset !== undefined && { offset: filter.offset }),
      });
      return users.map(record);
    },
    listStates: states,
    listGroups: groups,
    async findStateByName(name): Promise<StateRow | undefined> {
      const state = findByName(await states(), name);
      if (!state) return undefined;
      const { userCount: _count, ...row } = state;
      return row;
    },
    async findGroupByName(name): Promise<GroupRow | undefined> {
      const group = findByName(await groups(), name);
      if (!group) return undefined;
      const { userCount: _count, ...row } = group;
      return row;
    },
    async verifyPassword() {
      return { outcome: 'invalid' };
    },
    async ensureBootstrapSuperuser() {
      // Superusers are Alliance Auth's; no first-run login is made here.
      return null;
    },
  };
}
