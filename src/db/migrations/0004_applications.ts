import { type Kysely, sql } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * Applications (OIDC clients) and their state/group whitelists.
 *
 * The whitelist rows follow their application (cascade), but a state or group that an application
 * whitelists cannot be deleted (restrict): silently dropping the last whitelist entry would turn
 * the application from "members only" into "open to everyone past the global gate".
 */
export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createTable('application')
    .addColumn('client_id', 'varchar(100)', (col) => col.primaryKey())
    .addColumn('client_secret_sha256', 'char(64)')
    .addColumn('name', 'varchar(100)', (col) => col.notNull())
    .addColumn('logo_url', 'text')
    .addColumn('redirect_uris', 'text', (col) => col.notNull())
    .addColumn('post_logout_redirect_uris', 'text', (col) => col.notNull())
    .addColumn('client_type', 'varchar(16)', (col) => col.notNull())
    .addColumn('grant_types', 'text', (col) => col.notNull())
    .addColumn('skip_authorization', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('active', 'integer', (col) => col.notNull().defaultTo(1))
    .addColumn('debug_mode', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('pkce_required', 'integer', (col) => col.notNull().defaultTo(1))
    .addColumn('access_token_format', 'varchar(16)', (col) => col.notNull().defaultTo('inherit'))
    .addColumn('backchannel_logout_uri', 'text')
    .addColumn('backchannel_logout_on_revoke_only', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('created_by', 'varchar(150)')
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('updated_at', 'bigint', (col) => col.notNull())
    .addCheckConstraint('application_client_type_ck', sql`client_type in ('confidential', 'public')`)
    // A confidential client always has a secret digest, a public one never does.
    .addCheckConstraint(
      'application_secret_ck',
      sql`(client_type = 'confidential' and client_secret_sha256 is not null) or (client_type = 'public' and client_secret_sha256 is null)`,
    )
    // Public clients cannot keep a code safe without PKCE.
    .addCheckConstraint('application_public_pkce_ck', sql`client_type = 'confidential' or pkce_required = 1`)
    .addCheckConstraint(
      'application_token_format_ck',
      sql`access_token_format in ('inherit', 'opaque', 'jwt')`,
    )
    .execute();
  await db.schema.createIndex('application_active_idx').on('application').column('active').execute();

  await db.schema
    .createTable('application_state')
    .addColumn('client_id', 'varchar(100)', (col) =>
      col.notNull().references('application.client_id').onDelete('cascade'),
    )
    .addColumn('state_id', 'integer', (col) => col.notNull().references('state.id').onDelete('restrict'))
    .addPrimaryKeyConstraint('application_state_pk', ['client_id', 'state_id'])
    .execute();
  await db.schema
    .createIndex('application_state_state_idx')
    .on('application_state')
    .column('state_id')
    .execute();

  await db.schema
    .createTable('application_group')
    .addColumn('client_id', 'varchar(100)', (col) =>
      col.notNull().references('application.client_id').onDelete('cascade'),
    )
    .addColumn('group_id', 'integer', (col) => col.notNull().references('auth_group.id').onDelete('restrict'))
    .addPrimaryKeyConstraint('application_group_pk', ['client_id', 'group_id'])
    .execute();
  await db.schema
    .createIndex('application_group_group_idx')
    .on('application_group')
    .column('group_id')
    .execute();
}
