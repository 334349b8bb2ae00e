import type { Kysely } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * `sign_in_generation`: a counter per user, raised whenever their sessions are ended (a new
 * password, signing out everywhere, revoked tokens, deactivation) or their two-factor sign-in is
 * reset. A sign-in waiting at the two-factor step since an earlier generation does not complete:
 * the password it passed with may be the one just replaced. A counter, not a time: no clock of any
 * instance takes part.
 */
export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createTable('sign_in_generation')
    .addColumn('user_id', 'bigint', (col) => col.primaryKey())
    .addColumn('generation', 'bigint', (col) => col.notNull())
    .execute();
}
