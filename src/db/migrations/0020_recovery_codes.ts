import type { Kysely } from 'kysely';
import { type MigrationContext, idColumn } from './helpers.ts';

/**
 * Recovery codes of two-factor sign-in: shown once when TOTP is enrolled, each usable once instead
 * of a code. Stored as SHA-256 digests (they are random, high-entropy values, like client secrets).
 */
export async function up(db: Kysely<unknown>, { kind }: MigrationContext): Promise<void> {
  await db.schema
    .createTable('recovery_code')
    .addColumn('id', 'integer', (col) => idColumn(col, kind))
    .addColumn('user_id', 'integer', (col) => col.notNull())
    .addColumn('code_sha256', 'char(64)', (col) => col.notNull())
    .addColumn('used_at', 'bigint')
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .execute();
  await db.schema.createIndex('recovery_code_user_idx').on('recovery_code').column('user_id').execute();
}
