import type { Transaction } from 'kysely';
import type { Database, GroupRow, NewUserRow, UserRow, UserUpdate } from '../../db/schema.ts';
import { conflict, invalid } from '../errors.ts';
import type { DirectoryChange } from '../port.ts';
import type { ChangeRunner, ChangeScope } from './change.ts';
import { hashPassword, validateNewPassword } from './passwords.ts';
import { toUserProfile } from './profile.ts';
import * as queries from './queries.ts';
import { flag, lockUser, requireRecord, resolveGroup, resolveState, validateUserRef } from './records.ts';
import type { DirectoryAdmin, NewUser, UserChange, UserChanges, UserField, UserRecord } from './types.ts';
import {
  MAIN_CHARACTER_FIELDS,
  normalizeUsername,
  quote,
  validateEmail,
  validateFlag,
  validateLocale,
  validateName,
} from './validation.ts';
import { nameKey } from '../../util/name-key.ts';

/** The built-in directory's user writes: each one change, one event, and its port changes. */

const USER_FIELDS: readonly UserField[] = [
  'email',
  'emailVerified',
  'superuser',
  'oidcAccess',
  'locale',
  ...MAIN_CHARACTER_FIELDS.map((entry) => entry.field),
];

const MAIN_CHARACTER_FIELD_NAMES: ReadonlySet<UserField> = new Set(
  MAIN_CHARACTER_FIELDS.map((entry) => entry.field),
);

const COLUMN_OF: Record<UserField, keyof UserRow> = {
  email: 'email',
  emailVerified: 'email_verified',
  superuser: 'superuser',
  oidcAccess: 'oidc_access',
  locale: 'locale',
  ...Object.fromEntries(MAIN_CHARACTER_FIELDS.map((entry) => [entry.field, entry.column])),
} as Record<UserField, keyof UserRow>;

/** A validated new user, ready to insert. */
export interface ValidUser {
  username: string;
  values: Omit<
    NewUserRow,
    'id' | 'username' | 'username_key' | 'password_hash' | 'state_id' | 'created_at' | 'updated_at'
  >;
  state: string | null;
  groups: string[];
}

/** The port's change of one user, with its profile on each side. */
function userChange(
  kind: Exclude<DirectoryChange['kind'], 'user_deleted' | 'catalog_renamed' | 'catalog_deleted'>,
  before: UserRecord,
  after: UserRecord,
): DirectoryChange {
  return { kind, userId: after.user.id, before: toUserProfile(before), after: toUserProfile(after) };
}

function validateNewUser(input: NewUser): ValidUser {
  if (typeof input !== 'object' || input === null) throw invalid('a new user must be an object');
  const values: ValidUser['values'] = {
    email: validateEmail(input.email ?? ''),
    email_verified: flag(
      input.emailVerified === undefined ? false : validateFlag('emailVerified', input.emailVerified),
    ),
    superuser: flag(input.superuser === undefined ? false : validateFlag('superuser', input.superuser)),
    oidc_access: flag(input.oidcAccess === undefined ? false : validateFlag('oidcAccess', input.oidcAccess)),
    active: flag(input.active === undefined ? true : validateFlag('active', input.active)),
    locale: input.locale === undefined ? null : validateLocale(input.locale),
  };
  for (const { field, column, validate } of MAIN_CHARACTER_FIELDS) {
    const value = input[field];
    if (value !== undefined) Object.assign(values, { [column]: validate(value) });
  }
  if (input.groups !== undefined && !Array.isArray(input.groups))
    throw invalid('groups must be a list of group names');
  return {
    username: normalizeUsername(input.username),
    values,
    state: input.state === undefined || input.state === null ? null : validateName('state', input.state),
    groups: (input.groups ?? []).map((group) => validateName('group', group)),
  };
}

/** Inserts a validated user with its memberships and emits `user_created`. */
export async function insertUser(
  scope: ChangeScope,
  input: ValidUser,
  passwordHash: string | null,
): Promise<UserRecord> {
  const { trx } = scope;
  const existing = await queries.selectUser(trx, { username: input.username });
  if (existing) {
    throw conflict(
      existing.username === input.username
        ? `username ${quote(input.username)} is taken`
        : `username ${quote(input.username)} is taken by ${quote(existing.username)} (usernames are unique regardless of case and Unicode form)`,
    );
  }
  const state = input.state === null ? null : await resolveState(trx, input.state);
  const groups = new Map<number, GroupRow>();
  for (const name of input.groups) {
    const group = await resolveGroup(trx, name);
    groups.set(group.id, group);
  }
  const now = Date.now();
  const { id } = await trx
    .insertInto('app_user')
    .values({
      ...input.values,
      username: input.username,
      username_key: nameKey(input.username),
      password_hash: passwordHash,
      state_id: state?.id ?? null,
      created_at: now,
      updated_at: now,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  if (groups.size > 0) {
    await trx
      .insertInto('user_group')
      .values([...groups.keys()].map((groupId) => ({ user_id: id, group_id: groupId })))
      .execute();
  }
  // A new user holds nothing yet: no port change.
  await scope.emit({ kind: 'user_created', userId: id, username: input.username });
  return requireRecord(trx, id);
}

/** Validates `changes` into column values; unknown keys are refused, naming the valid ones. */
function validateChanges(changes: UserChanges): Map<UserField, unknown> {
  if (typeof changes !== 'object' || changes === null) throw invalid('user changes must be an object');
  const valid = new Map<UserField, unknown>();
  for (const [key, value] of Object.entries(changes)) {
    if (value === undefined) continue;
    if (!(USER_FIELDS as readonly string[]).includes(key)) {
      throw invalid(`unknown user field ${quote(key)}; valid fields: ${USER_FIELDS.join(', ')}`);
    }
    const field = key as UserField;
    switch (field) {
      case 'email':
        valid.set(field, validateEmail(value));
        break;
      case 'emailVerified':
      case 'superuser':
      case 'oidcAccess':
        valid.set(field, flag(validateFlag(field, value)));
        break;
      case 'locale':
        valid.set(field, validateLocale(value));
        break;
      default: {
        const entry = MAIN_CHARACTER_FIELDS.find((candidate) => candidate.field === field)!;
        valid.set(field, entry.validate(value));
      }
    }
  }
  return valid;
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
        const before = await requireRecord(trx, user.id);
        await trx
          .updateTable('app_user')
          .set({ active: 0, updated_at: Date.now() })
          .where('id', '=', user.id)
          .execute();
        const after = await requireRecord(trx, user.id);
        await scope.emit(
          { kind: 'user_deactivated', userId: user.id, username: user.username },
          userChange('user_deactivated', before, after),
        );
        return { changed: true, profile: after };
      });
    },

    async activate(ref, options) {
      const target = validateUserRef(ref);
      return changes.run(options, async (scope): Promise<UserChange> => {
        const { trx } = scope;
        const user = await lockUser(trx, target);
        if (user.active === 1) return unchanged(trx, user);
        const before = await requireRecord(trx, user.id);
        await trx
          .updateTable('app_user')
          .set({ active: 1, updated_at: Date.now() })
          .where('id', '=', user.id)
          .execute();
        const after = await requireRecord(trx, user.id);
        await scope.emit(
          { kind: 'user_activated', userId: user.id, username: user.username },
          userChange('user_reactivated', before, after),
        );
        return { changed: true, profile: after };
      });
    },

    async setState(ref, stateName, options) {
      const target = validateUserRef(ref);
      const name = stateName === null ? null : validateName('state', stateName);
      return changes.run(options, async (scope): Promise<UserChange> => {
        const { trx } = scope;
        const user = await lockUser(trx, target);
        const state = name === null ? null : await resolveState(trx, name);
        if ((state?.id ?? null) === user.state_id) return unchanged(trx, user);
        const before = await requireRecord(trx, user.id);
        await trx
          .updateTable('app_user')
          .set({ state_id: state?.id ?? null, updated_at: Date.now() })
          .where('id', '=', user.id)
          .execute();
        const after = await requireRecord(trx, user.id);
        await scope.emit(
          {
            kind: 'user_state_changed',
            userId: user.id,
            username: user.username,
            fromState: before.state?.name ?? null,
            toState: state?.name ?? null,
          },
          userChange('user_state_changed', before, after),
        );
        return { changed: true, profile: after };
      });
    },

    async addGroup(ref, groupName, options) {
      const target = validateUserRef(ref);
      const name = validateName('group', groupName);
      return changes.run(options, async (scope): Promise<UserChange> => {
        const { trx } = scope;
        const user = await lockUser(trx, target);
        const group = await resolveGroup(trx, name);
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
