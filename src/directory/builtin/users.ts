import type { Transaction } from 'kysely';
import type { Database, UserRow, UserUpdate } from '../../db/schema.ts';
import { conflict } from '../errors.ts';
import type { DirectoryChange } from '../port.ts';
import type { ChangeRunner, ChangeScope } from './change.ts';
import { insertUser, validateNewUser } from './new-user.ts';
import { hashPassword, validateNewPassword } from './passwords.ts';
import { toUserProfile } from './profile.ts';
import * as queries from './queries.ts';
import { lockGroup, lockState, lockUser, requireRecord, resolveGroup, validateUserRef } from './records.ts';
import type { DirectoryAdmin, UserChange, UserField, UserRecord } from './types.ts';
import { COLUMN_OF, MAIN_CHARACTER_FIELD_NAMES, validateChanges } from './user-changes.ts';
import { quote, validateName } from './validation.ts';

/** The built-in directory's user writes: each one change, one event, and its port changes. */

/** The port's change of one user, with its profile on each side. */
function userChange(
  kind: Exclude<DirectoryChange['kind'], 'user_deleted' | 'catalog_renamed' | 'catalog_deleted'>,
  before: UserRecord,
  after: UserRecord,
): DirectoryChange {
  return { kind, userId: after.user.id, before: toUserProfile(before), after: toUserProfile(after) };
}

/** Refuses to take away the last active superuser: nobody could administer the directory. */
export async function keepOneSuperuser(
  trx: Transaction<Database>,
  user: UserRow,
  action: string,
): Promise<void> {
  if (user.superuser !== 1 || user.active !== 1) return;
  if ((await queries.lockOtherActiveSuperusers(trx, user.id)) > 0) return;
  throw conflict(
    `refusing to ${action} ${quote(user.username)}: it is the only active superuser; make another user a superuser first`,
  );
}

type UserWrites = Pick<
  DirectoryAdmin,
  | 'createUser'
  | 'updateUser'
  | 'setPassword'
  | 'deactivate'
  | 'activate'
  | 'setState'
  | 'addGroup'
  | 'removeGroup'
  | 'deleteUser'
>;

export function userWrites(changes: ChangeRunner): UserWrites {
  const unchanged = async (trx: Transaction<Database>, user: UserRow): Promise<UserChange> => ({
    changed: false,
    profile: await requireRecord(trx, user.id),
  });

  /**
   * Sets columns of the user's row and emits `event` with the port's change of `kind`, the user's
   * record read on each side of the write.
   */
  const updateRow = async (
    scope: ChangeScope,
    user: UserRow,
    set: UserUpdate,
    kind: Parameters<typeof userChange>[0],
    event: (before: UserRecord) => Parameters<ChangeScope['emit']>[0],
  ): Promise<UserChange> => {
    const { trx } = scope;
    const before = await requireRecord(trx, user.id);
    await trx
      .updateTable('app_user')
      .set({ ...set, updated_at: Date.now() })
      .where('id', '=', user.id)
      .execute();
    const after = await requireRecord(trx, user.id);
    await scope.emit(event(before), userChange(kind, before, after));
    return { changed: true, profile: after };
  };

  return {
    async createUser(input, options) {
      const valid = validateNewUser(input);
      let passwordHash: string | null = null;
      if (input.password !== undefined) {
        validateNewPassword(input.password);
        passwordHash = await hashPassword(input.password);
      }
      return changes.run(options, (scope) => insertUser(scope, valid, passwordHash));
    },

    async updateUser(ref, userChanges, options) {
      const target = validateUserRef(ref);
      const valid = validateChanges(userChanges);
      return changes.run(options, async (scope) => {
        const { trx } = scope;
        const user = await lockUser(trx, target);
        const update: Record<string, unknown> = {};
        const fields: UserField[] = [];
        for (const [field, value] of valid) {
          const column = COLUMN_OF[field];
          if (user[column] === value) continue;
          update[column] = value;
          fields.push(field);
        }
        // A new address is unverified until someone says otherwise.
        if (fields.includes('email') && !valid.has('emailVerified') && user.email_verified === 1) {
          update.email_verified = 0;
          fields.push('emailVerified');
        }
        if (fields.length === 0) return unchanged(trx, user);
        if (update.superuser === 0) await keepOneSuperuser(trx, user, 'remove superuser from');
        const before = await requireRecord(trx, user.id);
        await trx
          .updateTable('app_user')
          .set({ ...(update as UserUpdate), updated_at: Date.now() })
          .where('id', '=', user.id)
          .execute();
        fields.sort();
        const after = await requireRecord(trx, user.id);
        const portChanges: DirectoryChange[] = [];
        // Superuser and the direct oidc_access permission: Alliance Auth grants permissions through
        // groups, so a change of either counts as a change of the groups.
        if (fields.includes('superuser') || fields.includes('oidcAccess'))
          portChanges.push(userChange('user_groups_changed', before, after));
        if (fields.some((field) => MAIN_CHARACTER_FIELD_NAMES.has(field)))
          portChanges.push(userChange('user_main_character_changed', before, after));
        await scope.emit(
          { kind: 'user_updated', userId: user.id, username: user.username, fields },
          ...portChanges,
        );
        return { changed: true, profile: after };
      });
    },

    async setPassword(ref, password, options) {
      const target = validateUserRef(ref);
      validateNewPassword(password);
      const passwordHash = await hashPassword(password);
      return changes.run(options, async (scope) => {
        const user = await lockUser(scope.trx, target);
        await scope.trx
          .updateTable('app_user')
          .set({ password_hash: passwordHash, must_change_password: 0, updated_at: Date.now() })
          .where('id', '=', user.id)
          .execute();
        await scope.emit(
          { kind: 'user_password_changed', userId: user.id, username: user.username },
          {
            kind: 'user_password_changed',
            userId: user.id,
            ...(options?.keepSession === undefined ? {} : { keepSession: options.keepSession }),
          },
        );
        return { changed: true, profile: await requireRecord(scope.trx, user.id) };
      });
    },

    async deactivate(ref, options) {
      const target = validateUserRef(ref);
      return changes.run(options, async (scope): Promise<UserChange> => {
        const { trx } = scope;
        const user = await lockUser(trx, target);
        if (user.active === 0) return unchanged(trx, user);
        await keepOneSuperuser(trx, user, 'deactivate');
        return updateRow(scope, user, { active: 0 }, 'user_deactivated', () => ({
          kind: 'user_deactivated',
          userId: user.id,
          username: user.username,
        }));
      });
    },

    async activate(ref, options) {
      const target = validateUserRef(ref);
      return changes.run(options, async (scope): Promise<UserChange> => {
        const { trx } = scope;
        const user = await lockUser(trx, target);
        if (user.active === 1) return unchanged(trx, user);
        return updateRow(scope, user, { active: 1 }, 'user_reactivated', () => ({
          kind: 'user_activated',
          userId: user.id,
          username: user.username,
        }));
      });
    },

    async setState(ref, stateName, options) {
      const target = validateUserRef(ref);
      const name = stateName === null ? null : validateName('state', stateName);
      return changes.run(options, async (scope): Promise<UserChange> => {
        const { trx } = scope;
        const user = await lockUser(trx, target);
        // The state's row locked as its deletion locks it: a move and a deletion sent at once serialise,
        // the deletion then finding the user in it (and refusing), or the move finding it gone.
        const state = name === null ? null : await lockState(trx, name);
        if ((state?.id ?? null) === user.state_id) return unchanged(trx, user);
        return updateRow(scope, user, { state_id: state?.id ?? null }, 'user_state_changed', (before) => ({
          kind: 'user_state_changed',
          userId: user.id,
          username: user.username,
          fromState: before.state?.name ?? null,
          toState: state?.name ?? null,
        }));
      });
    },

    async addGroup(ref, groupName, options) {
      const target = validateUserRef(ref);
      const name = validateName('group', groupName);
      return changes.run(options, async (scope): Promise<UserChange> => {
        const { trx } = scope;
        const user = await lockUser(trx, target);
        // Locked as a deletion of the group locks it: an addition and a deletion sent at once serialise,
        // the deletion then taking the new member with it (and telling), or the addition finding it gone.
        const group = await lockGroup(trx, name);
        const member = await trx
          .selectFrom('user_group')
          .select('user_id')
          .where('user_id', '=', user.id)
          .where('group_id', '=', group.id)
          .executeTakeFirst();
        if (member) return unchanged(trx, user);
        const before = await requireRecord(trx, user.id);
        await trx.insertInto('user_group').values({ user_id: user.id, group_id: group.id }).execute();
        const after = await requireRecord(trx, user.id);
        await scope.emit(
          { kind: 'user_group_added', userId: user.id, username: user.username, group: group.name },
          userChange('user_groups_changed', before, after),
        );
        return { changed: true, profile: after };
      });
    },

    async removeGroup(ref, groupName, options) {
      const target = validateUserRef(ref);
      const name = validateName('group', groupName);
      return changes.run(options, async (scope): Promise<UserChange> => {
        const { trx } = scope;
        const user = await lockUser(trx, target);
        const group = await resolveGroup(trx, name);
        const before = await requireRecord(trx, user.id);
        const result = await trx
          .deleteFrom('user_group')
          .where('user_id', '=', user.id)
          .where('group_id', '=', group.id)
          .executeTakeFirst();
        if (Number(result.numDeletedRows) === 0) return unchanged(trx, user);
        const after = await requireRecord(trx, user.id);
        await scope.emit(
          { kind: 'user_group_removed', userId: user.id, username: user.username, group: group.name },
          userChange('user_groups_changed', before, after),
        );
        return { changed: true, profile: after };
      });
    },

    async deleteUser(ref, options) {
      const target = validateUserRef(ref);
      return changes.run(options, async (scope): Promise<UserChange> => {
        const { trx } = scope;
        const user = await lockUser(trx, target);
        await keepOneSuperuser(trx, user, 'delete');
        const record = await requireRecord(trx, user.id);
        // Consumers run first: they may still need what the row owns.
        await scope.emit(
          { kind: 'user_deleted', userId: user.id, username: user.username },
          { kind: 'user_deleted', userId: user.id, before: toUserProfile(record) },
        );
        await trx.deleteFrom('app_user').where('id', '=', user.id).execute();
        return { changed: true, profile: record };
      });
    },
  };
}
