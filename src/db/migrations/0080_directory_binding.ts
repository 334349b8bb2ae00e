import type { Kysely } from 'kysely';

/**
 * `directory_binding`: one row (`id` 1) naming the directory whose user ids this database keeps
 * (sessions, grants, tokens, two-factor enrolments, throttles are all keyed by the numeric id). No
 * row is written here: the first start records the directory it runs with (src/directory/binding.ts),
 * so an existing installation binds to what it runs now.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('directory_binding')
    .addColumn('id', 'integer', (col) => col.primaryKey())
    .addColumn('directory', 'varchar(32)', (col) => col.notNull())
    .addColumn('identity', 'varchar(600)', (col) => col.notNull())
    .addColumn('bound_at', 'bigint', (col) => col.notNull())
    .execute();
}
