import type { Kysely } from 'kysely';

/**
 * `app_user.must_change_password`: set on an account whose password someone else chose (the
 * bootstrap superuser); its next sign-in asks for a new password before anything else, and any
 * new password clears it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('app_user')
    .addColumn('must_change_password', 'integer', (col) => col.notNull().defaultTo(0))
    .execute();
}
