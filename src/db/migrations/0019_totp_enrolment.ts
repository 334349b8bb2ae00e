import type { Kysely } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * Two-factor sign-in with TOTP: one enrolment per user (keyed by the directory's user id, whichever
 * directory holds the user). The shared secret is encrypted with a key derived from the secret key;
 * `confirmed_at` is null while the user has not yet proven their app has it; `last_used_step` is the
 * time step of the last code accepted, so that no code is accepted twice.
 */
export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createTable('totp_enrolment')
    .addColumn('user_id', 'integer', (col) => col.primaryKey())
    .addColumn('secret_encrypted', 'text', (col) => col.notNull())
    .addColumn('confirmed_at', 'bigint')
    .addColumn('last_used_step', 'bigint')
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .execute();
}
