import type { Kysely } from 'kysely';
import { type MigrationContext, idColumn } from './helpers.ts';

/**
 * The audit log in the database (a receiver beside the structured log and the JSON-lines file), for
 * the admin UI and `aa-oidc audit list`. One row per audit event: the whole record as JSON, and the
 * fields filters use (kind, time, user, client) as columns. Rows older than `audit.retentionDays`
 * are deleted.
 */
export async function up(db: Kysely<unknown>, { kind }: MigrationContext): Promise<void> {
  await db.schema
    .createTable('audit_event')
    .addColumn('id', 'integer', (col) => idColumn(col, kind))
    .addColumn('recorded_at', 'bigint', (col) => col.notNull())
    .addColumn('kind', 'varchar(32)', (col) => col.notNull())
    .addColumn('user_id', 'integer')
    .addColumn('client_id', 'varchar(100)')
    .addColumn('request_id', 'varchar(128)')
    .addColumn('payload', 'text', (col) => col.notNull())
    .execute();
  await db.schema.createIndex('audit_event_time_idx').on('audit_event').column('recorded_at').execute();
  await db.schema
    .createIndex('audit_event_kind_idx')
    .on('audit_event')
    .columns(['kind', 'recorded_at'])
    .execute();
  await db.schema
    .createIndex('audit_event_user_idx')
    .on('audit_event')
    .columns(['user_id', 'recorded_at'])
    .execute();
  await db.schema
    .createIndex('audit_event_client_idx')
    .on('audit_event')
    .columns(['client_id', 'recorded_at'])
    .execute();
}
