import type { Kysely } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * Following Alliance Auth's renames: `aa_catalog_name` holds the name of each AA state and group
 * (by its id in AA) as of the last completed poll cycle, written in the same transaction as the
 * fingerprints. A name that changed under the same id is a rename, which application whitelists
 * (kept by name) follow, where without it every member of a renamed whitelisted group or state lost
 * the applications it admitted them to.
 */
export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createTable('aa_catalog_name')
    .addColumn('entity', 'varchar(8)', (col) => col.notNull())
    .addColumn('id', 'bigint', (col) => col.notNull())
    .addColumn('name', 'varchar(150)', (col) => col.notNull())
    .addPrimaryKeyConstraint('aa_catalog_name_pk', ['entity', 'id'])
    .execute();
}
