import type { Kysely } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * Access-token formats and authorization-code reuse.
 *
 * - `oidc_payload` gains what the token tooling reads without parsing payloads: the access-token
 *   `format` (`opaque` | `jwt`), for a JWT the SHA-256 of the whole token (`value_sha256`, so that
 *   only the token itself, never its `jti` alone, finds the row), and soft revocation
 *   (`revoked_at`, `revoked_reason`): a revoked token stays listed by `tokens audit` until it expires.
 * - `issued_code`: one row per redeemed authorization code, keyed by the hex SHA-256 of the code
 *   (never the code), naming the storage ids of the tokens it produced.
 */
export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema.alterTable('oidc_payload').addColumn('format', 'varchar(8)').execute();
  await db.schema.alterTable('oidc_payload').addColumn('value_sha256', 'varchar(64)').execute();
  await db.schema.alterTable('oidc_payload').addColumn('revoked_at', 'bigint').execute();
  await db.schema.alterTable('oidc_payload').addColumn('revoked_reason', 'varchar(32)').execute();

  await db.schema
    .createTable('issued_code')
    .addColumn('code_hash', 'varchar(64)', (col) => col.primaryKey())
    .addColumn('client_id', 'varchar(100)', (col) => col.notNull())
    .addColumn('user_id', 'varchar(128)')
    .addColumn('grant_id', 'varchar(128)')
    .addColumn('access_token_id', 'varchar(128)')
    .addColumn('refresh_token_id', 'varchar(128)')
    .addColumn('reuse_count', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('last_reuse_at', 'bigint')
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('expires_at', 'bigint', (col) => col.notNull())
    .execute();
  await db.schema.createIndex('issued_code_expires_at_idx').on('issued_code').column('expires_at').execute();
  await db.schema.createIndex('issued_code_grant_id_idx').on('issued_code').column('grant_id').execute();
}
