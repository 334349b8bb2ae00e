import { type Kysely, sql } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * Signing keys. The kid is the RFC 7638 thumbprint, so it is the primary key. The private
 * JWK is stored encrypted (see src/keys/crypto.ts) and dropped when the key is removed. `revision`
 * grows with every change of a row, so `count(*)` and `sum(revision)` tell every running instance,
 * with one cheap query, that the set changed.
 */
export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createTable('signing_key')
    .addColumn('kid', 'varchar(64)', (col) => col.primaryKey())
    .addColumn('alg', 'varchar(16)', (col) => col.notNull())
    .addColumn('status', 'varchar(16)', (col) =>
      col.notNull().check(sql`status in ('next', 'active', 'retired', 'removed')`),
    )
    .addColumn('public_jwk', 'text', (col) => col.notNull())
    .addColumn('private_jwk_encrypted', 'text')
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('activated_at', 'bigint')
    .addColumn('retired_at', 'bigint')
    .addColumn('removed_at', 'bigint')
    .addColumn('publish_until', 'bigint')
    .addColumn('revision', 'integer', (col) => col.notNull().defaultTo(1))
    .execute();
  await db.schema.createIndex('signing_key_status_idx').on('signing_key').column('status').execute();
  // At most one active key and at most one next key; both dialects support partial unique indexes.
  await db.schema
    .createIndex('signing_key_one_active_idx')
    .unique()
    .on('signing_key')
    .column('status')
    .where(sql.ref('status'), '=', sql.lit('active'))
    .execute();
  await db.schema
    .createIndex('signing_key_one_next_idx')
    .unique()
    .on('signing_key')
    .column('status')
    .where(sql.ref('status'), '=', sql.lit('next'))
    .execute();
}
