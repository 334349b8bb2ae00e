import type { Kysely } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * Codes by the time they were redeemed: Alliance Auth's poller asks every cycle who signed in since
 * about the previous one (`usersHoldingTokensRedeemedSince`), and `issued_code` keeps a row per
 * sign-in for the refresh-token lifetime (up to a year), too many to scan every 30 seconds.
 */
export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema.createIndex('issued_code_created_at_idx').on('issued_code').column('created_at').execute();
}
