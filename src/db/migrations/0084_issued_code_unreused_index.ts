import type { Kysely } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * Issued codes by reuse count and expiry, for the periodic purge of those never reused once their time
 * is over (src/tokens/issued-codes.ts `purgeIssuedCodes`), oldest first: reused codes are kept as
 * evidence of the replay, and by expiry alone each of the purge's statements read every reused code
 * that expired before the first one to delete, row by row, to find it reused. It takes the place of
 * the index by expiry alone, which nothing else reads.
 */
export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createIndex('issued_code_unreused_expires_idx')
    .on('issued_code')
    .columns(['reuse_count', 'expires_at'])
    .execute();
  await db.schema.dropIndex('issued_code_expires_at_idx').execute();
}
