import type { Kysely } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * Whitelists are matched exactly (Alliance Auth on PostgreSQL may hold `Directors` and `directors` as
 * two groups, and an application may whitelist both): the unique index on `lower(name)` that held one
 * entry per name regardless of case goes (the primary key keeps names unique as spelt), and so does
 * the lookup by `lower(name)`, replaced by one by the name as spelt.
 */
export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema.dropIndex('application_whitelist_name_uq').execute();
  await db.schema.dropIndex('application_whitelist_lookup_idx').execute();
  await db.schema
    .createIndex('application_whitelist_name_idx')
    .on('application_whitelist')
    .columns(['kind', 'name'])
    .execute();
}
