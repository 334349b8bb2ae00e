import type { Kysely } from 'kysely';
import { type MigrationContext, idColumn } from './helpers.ts';

/**
 * Back-channel logout.
 *
 * - `bcl_job`: the durable delivery queue, one row per (logout, application). It is written in the
 *   transaction of the change that causes the logout and carries only scalars: the pinned `jti`,
 *   `iat`, `exp` and signing `kid` (each attempt now signs afresh with the active key, keeping the
 *   `jti`: src/logout/delivery.ts). A
 *   worker claims a due row with a lease (`lease_owner`, `lease_until`), so two processes never
 *   deliver the same attempt and a crashed worker's claim expires.
 * - `bcl_delivery_attempt`: the final outcome of a delivery (failures always, successes when
 *   `logout.recordSuccessfulDeliveries`), with snapshots of the client id and name.
 */
export async function up(db: Kysely<unknown>, { kind }: MigrationContext): Promise<void> {
  await db.schema
    .createTable('bcl_job')
    .addColumn('id', 'integer', (col) => idColumn(col, kind))
    .addColumn('trigger', 'varchar(32)', (col) => col.notNull())
    .addColumn('user_id', 'integer')
    .addColumn('sub', 'varchar(128)', (col) => col.notNull())
    .addColumn('client_id', 'varchar(100)', (col) => col.notNull())
    .addColumn('jti', 'varchar(64)', (col) => col.notNull().unique())
    .addColumn('iat', 'bigint', (col) => col.notNull())
    .addColumn('exp', 'bigint', (col) => col.notNull())
    .addColumn('kid', 'varchar(128)', (col) => col.notNull())
    .addColumn('sid', 'varchar(128)')
    .addColumn('status', 'varchar(16)', (col) => col.notNull())
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'bigint', (col) => col.notNull())
    .addColumn('lease_owner', 'varchar(64)')
    .addColumn('lease_until', 'bigint')
    .addColumn('first_attempt_at', 'bigint')
    .addColumn('last_http_status', 'integer')
    .addColumn('outcome', 'varchar(32)')
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('finished_at', 'bigint')
    .execute();
  await db.schema
    .createIndex('bcl_job_due_idx')
    .on('bcl_job')
    .columns(['status', 'next_attempt_at'])
    .execute();

  await db.schema
    .createTable('bcl_delivery_attempt')
    .addColumn('id', 'integer', (col) => idColumn(col, kind))
    .addColumn('client_id', 'varchar(100)', (col) => col.notNull())
    .addColumn('client_name', 'varchar(200)', (col) => col.notNull())
    .addColumn('user_id', 'integer')
    .addColumn('trigger', 'varchar(32)', (col) => col.notNull())
    .addColumn('jti', 'varchar(64)', (col) => col.notNull())
    .addColumn('attempts', 'integer', (col) => col.notNull())
    .addColumn('outcome', 'varchar(32)', (col) => col.notNull())
    .addColumn('http_status', 'integer')
    .addColumn('detail', 'varchar(300)')
    .addColumn('recorded_at', 'bigint', (col) => col.notNull())
    .execute();
  await db.schema
    .createIndex('bcl_delivery_attempt_client_idx')
    .on('bcl_delivery_attempt')
    .columns(['client_id', 'recorded_at'])
    .execute();
}
