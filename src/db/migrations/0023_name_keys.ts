import { type Kysely, sql } from 'kysely';
import { nameKey } from '../../util/name-key.ts';

/**
 * Usernames, state names and group names are unique by their normalised key (`nameKey`: NFKC, then
 * lower case over all of Unicode), no longer by SQL's `lower()`, which on SQLite folds ASCII only
 * (`Ärger` and `ärger` were two users). Each table gets the key column, filled from the existing
 * names, and a unique index on it; lookups go by the key.
 *
 * Two existing rows with the same key stop the migration before it changes anything, naming both:
 * rename (or delete) one of them with the previous version, then migrate again.
 */
const TABLES = [
  { table: 'app_user', column: 'username', key: 'username_key', what: 'users' },
  { table: 'state', column: 'name', key: 'name_key', what: 'states' },
  { table: 'auth_group', column: 'name', key: 'name_key', what: 'groups' },
] as const;

export async function up(db: Kysely<unknown>): Promise<void> {
  const keyed = [];
  for (const spec of TABLES) {
    const { rows } = await sql<{ id: number; name: string }>`
      select id, ${sql.ref(spec.column)} as name from ${sql.table(spec.table)} order by id`.execute(db);
    const seen = new Map<string, { id: number; name: string }>();
    for (const row of rows) {
      const key = nameKey(row.name);
      const other = seen.get(key);
      if (other)
        throw new Error(
          `cannot make ${spec.what} unique by their normalised names: ${JSON.stringify(other.name)} (id ${other.id}) and ` +
            `${JSON.stringify(row.name)} (id ${row.id}) are the same name once Unicode forms and case are folded; ` +
            'rename or delete one of them, then migrate again (nothing was changed)',
        );
      seen.set(key, row);
    }
    keyed.push({ spec, rows: rows.map((row) => ({ id: row.id, key: nameKey(row.name) })) });
  }
  for (const { spec, rows } of keyed) {
    // Long enough for any name the directory accepts (150 characters), however NFKC expands it.
    await db.schema.alterTable(spec.table).addColumn(spec.key, 'varchar(1000)').execute();
    for (const row of rows)
      await sql`update ${sql.table(spec.table)} set ${sql.ref(spec.key)} = ${row.key} where id = ${row.id}`.execute(
        db,
      );
    await db.schema
      .createIndex(`${spec.table}_${spec.key}_uq`)
      .on(spec.table)
      .column(spec.key)
      .unique()
      .execute();
  }
}
