import type { Kysely } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * `user_sessions_ended`: when a user's sessions were last ended (a new password, signing out
 * everywhere, revoked tokens, deactivation). A sign-in waiting at the two-factor step since before
 * then does not complete: the password it passed with may be the one just replaced.
 */
export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createTable('user_sessions_ended')
    .addColumn('user_id', 'bigint', (col) => col.primaryKey())
    .addColumn('ended_at', 'bigint', (col) => col.notNull())
    .execute();
}
