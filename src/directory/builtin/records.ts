import type { Transaction } from 'kysely';
import type { Database, GroupRow, StateRow, UserRow } from '../../db/schema.ts';
import { listedNameHint } from '../../util/listed-name.ts';
import { lookalikeHint, lookalikeLookupHint } from '../../util/lookalike-names.ts';
import { invalid, notFound } from '../errors.ts';
import * as queries from './queries.ts';
import type { UserRecord, UserRef } from './types.ts';
import { normalizeUsername, quote } from './validation.ts';

/** Lookups shared by the built-in directory's writes and reads, with their "not found" messages. */

export function flag(value: boolean): 0 | 1 {
  return value ? 1 : 0;
}

/** "existing states: A, B" or "no states exist yet", capped so a message stays one line. */
export function describeExisting(kind: 'states' | 'groups', names: readonly string[]): string {
  if (names.length === 0) return `no ${kind} exist yet`;
  const shown = names.slice(0, 30).join(', ');
  return `existing ${kind}: ${shown}${names.length > 30 ? ` … and ${names.length - 30} more` : ''}`;
}

export function validateUserRef(ref: unknown): UserRef {
  if (typeof ref === 'object' && ref !== null) {
    if ('id' in ref) {
      const id = (ref as { id: unknown }).id;
      if (typeof id === 'number' && Number.isSafeInteger(id) && id > 0) return { id };
      throw invalid(`invalid user id ${quote(id)}: expected a positive whole number`);
    }
    if ('username' in ref) return { username: normalizeUsername((ref as { username: unknown }).username) };
  }
  throw invalid('a user is named by { username } or { id }');
}

export function describeUser(ref: UserRef): string {
  return 'id' in ref
    ? `unknown user id ${ref.id}`
    : `unknown user ${quote(ref.username)}: no user has this username`;
}

/** `not_found` for a user no row has: `describeUser`, and a username it differs from only in look-alike letters (`lookalikeLookupHint`). */
export async function unknownUser(db: queries.Db, ref: UserRef): Promise<never> {
  const hint =
    'username' in ref
      ? await lookalikeLookupHint(
          'user',
          ref.username,
          async (latin) => (await queries.selectUser(db, { username: latin }))?.username,
        )
      : '';
  throw notFound(`${describeUser(ref)}${hint}`);
}

/** The record of a user the transaction just read or wrote. */
export async function requireRecord(trx: Transaction<Database>, userId: number): Promise<UserRecord> {
  const record = await queries.selectProfileById(trx, userId);
  if (!record) throw new Error(`user ${userId} vanished inside its own transaction`);
  return record;
}

/** Locks the user's row for the rest of the transaction; `not_found` for an unknown user. */
export async function lockUser(trx: Transaction<Database>, ref: UserRef): Promise<UserRow> {
  return (await queries.lockUser(trx, ref)) ?? unknownUser(trx, ref);
}

export async function resolveState(db: queries.Db, name: string): Promise<StateRow> {
  return (await queries.selectStateByName(db, name)) ?? unknownState(db, name);
}

export async function resolveGroup(db: queries.Db, name: string): Promise<GroupRow> {
  return (await queries.selectGroupByName(db, name)) ?? unknownGroup(db, name);
}

/** `resolveState`, the state's row locked for the rest of the transaction: for a change of the state itself, or a user put into it (which a deletion must see). */
export async function lockState(trx: Transaction<Database>, name: string): Promise<StateRow> {
  return (await queries.lockStateByName(trx, name)) ?? unknownState(trx, name);
}

/** `resolveGroup`, the group's row locked for the rest of the transaction: for a change of the group itself, or a user added to it (which a deletion must see). */
export async function lockGroup(trx: Transaction<Database>, name: string): Promise<GroupRow> {
  return (await queries.lockGroupByName(trx, name)) ?? unknownGroup(trx, name);
}

async function unknownState(db: queries.Db, name: string): Promise<never> {
  return unknownName('state', name, await queries.selectStateNames(db));
}

async function unknownGroup(db: queries.Db, name: string): Promise<never> {
  return unknownName('group', name, await queries.selectGroupNames(db));
}

/**
 * The one "unknown state" or "unknown group" message: what exists, the escape typed for a character,
 * and a name it differs from only in look-alike letters.
 */
function unknownName(kind: 'state' | 'group', name: string, names: readonly string[]): never {
  throw notFound(
    `unknown ${kind} ${quote(name)}; ${describeExisting(`${kind}s`, names)}${listedNameHint(kind, name, names)}${lookalikeHint(kind, name, names)}`,
  );
}
