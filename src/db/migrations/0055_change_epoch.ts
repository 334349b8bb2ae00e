import { type Kysely, sql } from 'kysely';

/**
 * One counter that every write to applications and their whitelists raises in its own transaction
 * (`src/db/change-epoch.ts`). A process keeps applications in memory for as long as the counter,
 * read by each request, has not moved, so a change made by another process or instance is seen on
 * the next request.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('change_epoch')
    .addColumn('id', 'integer', (col) => col.primaryKey())
    .addColumn('value', 'bigint', (col) => col.notNull())
    .execute();
  await sql`insert into change_epoch (id, value) values (1, 0)`.execute(db);
}
