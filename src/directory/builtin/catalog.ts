import { conflict } from '../errors.ts';
import type { DirectoryChange } from '../port.ts';
import type { ChangeRunner } from './change.ts';
import { toUserProfile } from './profile.ts';
import * as queries from './queries.ts';
import { flag, lockGroup, lockState } from './records.ts';
import type { DirectoryAdmin, GroupChange, StateChange, UserRecord } from './types.ts';
import { quote, validateFlag, validateName, validateNewName, validatePriority } from './validation.ts';
import { nameKey } from '../../util/name-key.ts';

/**
 * The built-in directory's states and groups: creation, the `oidc_access` they grant, renames and
 * deletions.
 */

type CatalogWrites = Pick<
  DirectoryAdmin,
  | 'createState'
  | 'grantStateAccess'
  | 'setStatePriority'
  | 'renameState'
  | 'deleteState'
  | 'createGroup'
  | 'grantGroupAccess'
  | 'renameGroup'
  | 'deleteGroup'
>;

/** Refuses a new name that another state or group already has (regardless of case). */
async function requireFreeName(
  trx: queries.Db,
  entity: 'state' | 'group',
  id: number,
  name: string,
): Promise<void> {
  const same =
    entity === 'state'
      ? await queries.selectStateByName(trx, name)
      : await queries.selectGroupByName(trx, name);
  if (same && same.id !== id)
    throw conflict(
      `${entity} ${quote(same.name)} already exists (${entity} names are unique regardless of case and Unicode form)`,
    );
}

/**
 * One port change per user whose access a state's or group's permission change touched, with the
 * profile before (the permission as it was) and after (as it is now).
 */
function accessChanges(
  kind: 'user_state_changed' | 'user_groups_changed',
  users: readonly UserRecord[],
  before: (record: UserRecord) => UserRecord,
): DirectoryChange[] {
  return users.map((after) => ({
    kind,
    userId: after.user.id,
    before: toUserProfile(before(after)),
    after: toUserProfile(after),
  }));
}

export function catalogWrites(changes: ChangeRunner): CatalogWrites {
  return {
    async createState(stateName, priority, oidcAccess = false, options) {
      const name = validateNewName('state', stateName);
      const validPriority = validatePriority(priority);
      const access = validateFlag('oidcAccess', oidcAccess);
      return changes.run(options, async (scope) => {
        const { trx } = scope;
        const sameName = await queries.selectStateByName(trx, name);
        if (sameName)
          throw conflict(
            `state ${quote(sameName.name)} already exists (state names are unique regardless of case and Unicode form)`,
          );
        const samePriority = await queries.selectStateByPriority(trx, validPriority);
        if (samePriority) {
          const used = (await queries.selectStateSummaries(trx)).map(
            (state) => `${state.priority} (${state.name})`,
          );
          throw conflict(
            `priority ${validPriority} is already used by state ${quote(samePriority.name)}; priorities are unique, used: ${used.join(', ')}`,
          );
        }
        const state = await trx
          .insertInto('state')
          .values({
            name,
            name_key: nameKey(name),
            priority: validPriority,
            oidc_access: flag(access),
            created_at: Date.now(),
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        await scope.emit({
          kind: 'state_created',
          stateId: state.id,
          name,
          priority: validPriority,
          oidcAccess: access,
        });
        return state;
      });
    },

    async grantStateAccess(stateName, oidcAccess, options) {
      const name = validateName('state', stateName);
      const access = validateFlag('oidcAccess', oidcAccess);
      return changes.run(options, async (scope): Promise<StateChange> => {
        const { trx } = scope;
        const state = await lockState(trx, name);
        const updated = await trx
          .updateTable('state')
          .set({ oidc_access: flag(access) })
          .where('id', '=', state.id)
          .where('oidc_access', '<>', flag(access))
          .returningAll()
          .executeTakeFirst();
        if (!updated) return { changed: false, state };
        const holders = await queries.selectProfiles(trx, { stateId: state.id });
        await scope.emit(
          { kind: 'state_access_changed', stateId: state.id, name: state.name, oidcAccess: access },
          ...accessChanges('user_state_changed', holders, (after) => ({
            ...after,
            state: after.state ? { ...after.state, oidc_access: state.oidc_access } : null,
          })),
        );
        return { changed: true, state: updated };
      });
    },

    async setStatePriority(stateName, priority, options) {
      const name = validateName('state', stateName);
      const validPriority = validatePriority(priority);
      return changes.run(options, async (scope): Promise<StateChange> => {
        const { trx } = scope;
        const state = await lockState(trx, name);
        if (state.priority === validPriority) return { changed: false, state };
        const samePriority = await queries.selectStateByPriority(trx, validPriority);
        if (samePriority)
          throw conflict(
            `priority ${validPriority} is already used by state ${quote(samePriority.name)}; priorities are unique`,
          );
        const updated = await trx
          .updateTable('state')
          .set({ priority: validPriority })
          .where('id', '=', state.id)
          .returningAll()
          .executeTakeFirstOrThrow();
        await scope.emit({
          kind: 'state_priority_changed',
          stateId: state.id,
          name: state.name,
          from: state.priority,
          to: validPriority,
        });
        return { changed: true, state: updated };
      });
    },

    async renameState(stateName, newStateName, options) {
      const name = validateName('state', stateName);
      const newName = validateNewName('state', newStateName);
      return changes.run(options, async (scope): Promise<StateChange> => {
        const { trx } = scope;
        const state = await lockState(trx, name);
        if (state.name === newName) return { changed: false, state };
        await requireFreeName(trx, 'state', state.id, newName);
        const renamed = await trx
          .updateTable('state')
          .set({ name: newName, name_key: nameKey(newName) })
          .where('id', '=', state.id)
          .returningAll()
          .executeTakeFirstOrThrow();
        await scope.emit(
          { kind: 'state_renamed', stateId: state.id, from: state.name, to: newName },
          { kind: 'catalog_renamed', entity: 'state', from: state.name, to: newName },
        );
        return { changed: true, state: renamed };
      });
    },

    async deleteState(stateName, options) {
      const name = validateName('state', stateName);
      return changes.run(options, async (scope) => {
        const { trx } = scope;
        const state = await lockState(trx, name);
        const holders = await queries.selectProfiles(trx, { stateId: state.id, limit: 4 });
        if (holders.length > 0) {
          const shown = holders.slice(0, 3).map((holder) => holder.user.username);
          throw conflict(
            `refusing to delete state ${quote(state.name)}: users are in it (${shown.join(', ')}${holders.length > 3 ? ', …' : ''}); move them to another state first`,
          );
        }
        // Consumers first: an application that whitelists the state refuses its deletion.
        await scope.emit(
          { kind: 'state_deleted', stateId: state.id, name: state.name },
          { kind: 'catalog_deleted', entity: 'state', name: state.name },
        );
        await trx.deleteFrom('state').where('id', '=', state.id).execute();
        return state;
      });
    },

    async createGroup(groupName, oidcAccess = false, options) {
      const name = validateNewName('group', groupName);
      const access = validateFlag('oidcAccess', oidcAccess);
      return changes.run(options, async (scope) => {
        const { trx } = scope;
        const sameName = await queries.selectGroupByName(trx, name);
        if (sameName)
          throw conflict(
            `group ${quote(sameName.name)} already exists (group names are unique regardless of case and Unicode form)`,
          );
        const group = await trx
          .insertInto('auth_group')
          .values({ name, name_key: nameKey(name), oidc_access: flag(access), created_at: Date.now() })
          .returningAll()
          .executeTakeFirstOrThrow();
        await scope.emit({ kind: 'group_created', groupId: group.id, name, oidcAccess: access });
        return group;
      });
    },

    async grantGroupAccess(groupName, oidcAccess, options) {
      const name = validateName('group', groupName);
      const access = validateFlag('oidcAccess', oidcAccess);
      return changes.run(options, async (scope): Promise<GroupChange> => {
        const { trx } = scope;
        const group = await lockGroup(trx, name);
        const updated = await trx
          .updateTable('auth_group')
          .set({ oidc_access: flag(access) })
          .where('id', '=', group.id)
          .where('oidc_access', '<>', flag(access))
          .returningAll()
          .executeTakeFirst();
        if (!updated) return { changed: false, group };
        const members = await queries.selectProfiles(trx, { groupId: group.id });
        await scope.emit(
          { kind: 'group_access_changed', groupId: group.id, name: group.name, oidcAccess: access },
          ...accessChanges('user_groups_changed', members, (after) => ({
            ...after,
            groups: after.groups.map((member) =>
              member.id === group.id ? { ...member, oidc_access: group.oidc_access } : member,
            ),
          })),
        );
        return { changed: true, group: updated };
      });
    },

    async renameGroup(groupName, newGroupName, options) {
      const name = validateName('group', groupName);
      const newName = validateNewName('group', newGroupName);
      return changes.run(options, async (scope): Promise<GroupChange> => {
        const { trx } = scope;
        const group = await lockGroup(trx, name);
        if (group.name === newName) return { changed: false, group };
        await requireFreeName(trx, 'group', group.id, newName);
        const renamed = await trx
          .updateTable('auth_group')
          .set({ name: newName, name_key: nameKey(newName) })
          .where('id', '=', group.id)
          .returningAll()
          .executeTakeFirstOrThrow();
        await scope.emit(
          { kind: 'group_renamed', groupId: group.id, from: group.name, to: newName },
          { kind: 'catalog_renamed', entity: 'group', from: group.name, to: newName },
        );
        return { changed: true, group: renamed };
      });
    },

    async deleteGroup(groupName, options) {
      const name = validateName('group', groupName);
      return changes.run(options, async (scope) => {
        const { trx } = scope;
        const group = await lockGroup(trx, name);
        const before = await queries.selectProfiles(trx, { groupId: group.id });
        await trx.deleteFrom('auth_group').where('id', '=', group.id).execute();
        const after = new Map(
          (await queries.selectProfiles(trx, { ids: before.map((member) => member.user.id) })).map(
            (member) => [member.user.id, member],
          ),
        );
        // Consumers of the catalog change first (an application that whitelists the group refuses),
        // then each member's loss of the group.
        await scope.emit(
          { kind: 'group_deleted', groupId: group.id, name: group.name, members: before.length },
          { kind: 'catalog_deleted', entity: 'group', name: group.name },
          ...before.map((member): DirectoryChange => ({
            kind: 'user_groups_changed',
            userId: member.user.id,
            before: toUserProfile(member),
            after: toUserProfile(after.get(member.user.id) ?? member),
          })),
        );
        return group;
      });
    },
  };
}
