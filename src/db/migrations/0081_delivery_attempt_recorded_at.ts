import type { Kysely } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * Recorded back-channel delivery outcomes by the time they were recorded: the logout worker deletes
 * those older than `logout.recordRetentionDays` a batch at a time, oldest first
 * (src/logout/attempts.ts `purgeDeliveryAttempts`), which the index by application and time cannot
 * serve; without this, each batch would scan the table.
 */
export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createIndex('bcl_delivery_attempt_recorded_idx')
    .on('bcl_delivery_attempt')
    .column('recorded_at')
    .execute();
}
