import { type Kysely, sql } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * Application whitelists name states and groups instead of pointing at the built-in directory's
 * rows, so that a directory whose states and groups live elsewhere (Alliance Auth) can satisfy them.
 * Names are matched regardless of case; a whitelisted name that the directory no longer has is
 * reported by the system checks (W006). The built-in directory keeps whitelists coherent itself:
 * a rename follows into every whitelist, and a whitelisted state or group cannot be deleted.
 */
export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema
    .createTable('application_whitelist')
    .addColumn('client_id', 'varchar(100)', (col) =>
      col.notNull().references('application.client_id').onDelete('cascade'),
    )
    .addColumn('kind', 'varchar(8)', (col) => col.notNull())
    .addColumn('name', 'varchar(150)', (col) => col.notNull())
    .addPrimaryKeyConstraint('application_whitelist_pk', ['client_id', 'kind', 'name'])
    .addCheckConstraint('application_whitelist_kind_ck', sql`kind in ('state', 'group')`)
    .execute();
  // One entry per name regardless of case, and a quick way from a name to the applications naming it.
  await db.schema
    .createIndex('application_whitelist_name_uq')
    .on('application_whitelist')
    .unique()
    .expression(sql`client_id, kind, lower(name)`)
    .execute();
  await db.schema
    .createIndex('application_whitelist_lookup_idx')
    .on('application_whitelist')
    .expression(sql`kind, lower(name)`)
    .execute();

  await sql`
    insert into application_whitelist (client_id, kind, name)
    select w.client_id, 'state', s.name from application_state w join state s on s.id = w.state_id`.execute(
    db,
  );
  await sql`
    insert into application_whitelist (client_id, kind, name)
    select w.client_id, 'group', g.name from application_group w join auth_group g on g.id = w.group_id`.execute(
    db,
  );
  await db.schema.dropTable('application_state').execute();
  await db.schema.dropTable('application_group').execute();
}
