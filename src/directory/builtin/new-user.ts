import type { GroupRow, NewUserRow } from '../../db/schema.ts';
import { nameKey } from '../../util/name-key.ts';
import { conflict, invalid } from '../errors.ts';
import type { ChangeScope } from './change.ts';
import * as queries from './queries.ts';
import { flag, lockGroup, lockState, requireRecord } from './records.ts';
import type { NewUser, UserRecord } from './types.ts';
import {
  MAIN_CHARACTER_FIELDS,
  normalizeNewUsername,
  quote,
  validateEmail,
  validateFlag,
  validateLocale,
  validateName,
} from './validation.ts';

/**
 * A new user of the built-in directory: the input validated, then inserted with its state and
 * memberships (the admin's `createUser` and the first-run superuser both come through here).
 */

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

export function validateNewUser(input: NewUser): ValidUser {
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
    username: normalizeNewUsername(input.username),
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
  // Locked as a deletion of the state locks it (`setState`): never a user created into a state going away.
  const state = input.state === null ? null : await lockState(trx, input.state);
  const groups = new Map<number, GroupRow>();
  for (const name of input.groups) {
    const group = await lockGroup(trx, name);
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
