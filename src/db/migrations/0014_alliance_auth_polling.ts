import type { Kysely } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * Following Alliance Auth by polling (the Alliance Auth directory).
 *
 * - `aa_user_fingerprint`: each AA user's fingerprint as of the last completed cycle, written in the
 *   same transaction as the lifecycle events its difference caused, so that a restart neither misses
 *   a change nor emits one twice.
 * - `aa_poll_lease`: one row per poller; only the instance holding the lease polls. `generation`
 *   grows with every completed cycle, so a holder knows whether its cached fingerprints are current.
 */
export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createTable('aa_user_fingerprint')
    .addColumn('user_id', 'integer', (col) => col.primaryKey())
    .addColumn('fingerprint', 'text', (col) => col.notNull())
    .addColumn('updated_at', 'bigint', (col) => col.notNull())
    .execute();
  await db.schema
    .createTable('aa_poll_lease')
    .addColumn('name', 'varchar(64)', (col) => col.primaryKey())
    .addColumn('owner', 'varchar(128)')
    .addColumn('lease_until', 'bigint', (col) => col.notNull())
    .addColumn('generation', 'bigint', (col) => col.notNull().defaultTo(0))
    .addColumn('last_success_at', 'bigint')
    .execute();
}
