import type { Kysely } from 'kysely';
import { type MigrationContext, idColumn } from './helpers.ts';

/**
 * Storage for oidc-provider's models and for login throttling.
 *
 * `oidc_payload` holds every model the provider persists except clients (those come from the
 * `application` table): sessions, interactions, grants, codes, access and refresh tokens. `id` is a
 * digest of the provider's id (a bearer value for codes and tokens), never the value itself.
 * The side columns copy what the adapter and the operator tooling look rows up by.
 */
export async function up(db: Kysely<unknown>, { kind }: MigrationContext): Promise<void> {
  await db.schema
    .createTable('oidc_payload')
    .addColumn('model', 'varchar(64)', (col) => col.notNull())
    .addColumn('id', 'varchar(128)', (col) => col.notNull())
    .addColumn('payload', 'text', (col) => col.notNull())
    .addColumn('grant_id', 'varchar(128)')
    .addColumn('user_id', 'varchar(128)')
    .addColumn('client_id', 'varchar(100)')
    .addColumn('uid', 'varchar(128)')
    .addColumn('user_code', 'varchar(128)')
    .addColumn('expires_at', 'bigint')
    .addColumn('consumed_at', 'bigint')
    .addPrimaryKeyConstraint('oidc_payload_pk', ['model', 'id'])
    .execute();
  for (const column of ['grant_id', 'user_id', 'client_id', 'uid', 'expires_at'] as const) {
    await db.schema.createIndex(`oidc_payload_${column}_idx`).on('oidc_payload').column(column).execute();
  }

  await db.schema
    .createTable('login_failure')
    .addColumn('id', 'integer', (col) => idColumn(col, kind))
    /** The username as typed, lower-cased (whether or not such a user exists). */
    .addColumn('username', 'varchar(150)', (col) => col.notNull())
    .addColumn('address', 'varchar(64)', (col) => col.notNull())
    .addColumn('failed_at', 'bigint', (col) => col.notNull())
    .execute();
  await db.schema
    .createIndex('login_failure_username_idx')
    .on('login_failure')
    .columns(['username', 'failed_at'])
    .execute();
  await db.schema
    .createIndex('login_failure_address_idx')
    .on('login_failure')
    .columns(['address', 'failed_at'])
    .execute();
}
