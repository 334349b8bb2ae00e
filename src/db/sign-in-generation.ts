import { type Kysely, sql } from 'kysely';
import type { Database } from './schema.ts';

/**
 * A user's sign-in generation (`sign_in_generation`, migration 0075): raised, in the transaction of
 * the change, whenever the user's sessions are ended or their two-factor sign-in is reset. A sign-in
 * that passed its password step under one generation completes only under the same one.
 */

/** Raises the user's generation by one (from 0, the generation of a user never raised). */
export async function raiseSignInGeneration(db: Kysely<Database>, userId: number): Promise<void> {
  await db
    .insertInto('sign_in_generation')
    .values({ user_id: userId, generation: 1 })
    .onConflict((conflict) =>
      conflict.column('user_id').doUpdateSet({ generation: sql`sign_in_generation.generation + 1` }),
    )
    .execute();
}

/**
 * Takes the user's generation row for the rest of the transaction, its value unchanged (a missing
 * row is written as 0, the generation of a user never raised). What ends a user's sessions and tells
 * the applications takes it first: two of them at once for one user (a "sign out everywhere" posted
 * twice, each post on another instance) then run one after the other, and the second reads what the
 * first left (no session to end, no application to tell) instead of what both found at the start.
 */
export async function lockSignInGeneration(db: Kysely<Database>, userId: number): Promise<void> {
  await db
    .insertInto('sign_in_generation')
    .values({ user_id: userId, generation: 0 })
    .onConflict((conflict) =>
      conflict.column('user_id').doUpdateSet({ generation: sql`sign_in_generation.generation` }),
    )
    .execute();
}

/** The user's generation now: 0 when it was never raised. */
export async function signInGeneration(db: Kysely<Database>, userId: number): Promise<number> {
  const row = await db
    .selectFrom('sign_in_generation')
    .select('generation')
    .where('user_id', '=', userId)
    .executeTakeFirst();
  return Number(row?.generation ?? 0);
}
