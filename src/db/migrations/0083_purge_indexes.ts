import type { Kysely } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * The periodic purges find the rows past their retention by time, oldest first, a batch a statement
 * (src/db/bounded-purge.ts); two had no index that serves it, and each batch read the table:
 *
 * - finished logout jobs (src/logout/table-transport.ts `purgeFinishedJobs`): the queue's index is by
 *   status and due time, so each batch read every finished job of the week they are kept;
 * - login failures (src/oidc/interactions/throttle.ts): indexed by account and by address, each with
 *   its time, but not by time alone, which a password spray from many addresses makes many.
 */
export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createIndex('bcl_job_finished_idx')
    .on('bcl_job')
    .columns(['status', 'finished_at'])
    .execute();
  await db.schema
    .createIndex('login_failure_failed_at_idx')
    .on('login_failure')
    .column('failed_at')
    .execute();
}
