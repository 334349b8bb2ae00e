import type { Kysely } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * `login_failure.method`: how the attempt signed in, `password` (a name typed into a password form)
 * or `external` (what an identity provider such as EVE SSO proved, `eve:<character id>`). An
 * account's budgets count only failures of its own method, so no name typed into the password form
 * can spend a character's EVE budget. Every existing row becomes `password`: the password failures
 * keep their meaning; an EVE failure counted before the upgrade now counts for the typed name
 * `eve:<id>` instead, until it leaves the failure window (`login.failureWindowSeconds`, 15 minutes by
 * default).
 */
export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .alterTable('login_failure')
    .addColumn('method', 'varchar(16)', (col) => col.notNull().defaultTo('password'))
    .execute();
}
