import { type ColumnDefinitionBuilder, type Kysely, sql } from 'kysely';
import type { DatabaseKind } from '../connect.ts';

export interface MigrationContext {
  kind: DatabaseKind;
}

export interface Migration {
  up(db: Kysely<unknown>, context: MigrationContext): Promise<void>;
  /**
   * What would stop `up` on the database as it is (data it cannot migrate), in the words `up` stops
   * with; undefined when nothing would. `aa-oidc migrate --dry-run` asks each pending migration that
   * has one, so that the operator learns it before migrating. It only reads, and runs before the
   * migrations pending before it: it finds nothing to refuse where their tables are not there yet
   * (a new database).
   */
  precheck?(db: Kysely<unknown>, context: MigrationContext): Promise<string | undefined>;
}

/** Whether table `name` exists, found as a query naming it finds it: on PostgreSQL through the search path. */
export async function tableExists<DB>(db: Kysely<DB>, kind: DatabaseKind, name: string): Promise<boolean> {
  const lookup =
    kind === 'postgres'
      ? sql<{ found: string | null }>`select to_regclass(${name})::text as found`
      : sql<{ found: string | null }>`select name as found from sqlite_master
          where type in ('table', 'view') and name = ${name}`;
  const { rows } = await lookup.execute(db);
  return Boolean(rows[0]?.found);
}

/** An auto-incrementing integer primary key, spelled the way each database wants it. */
export function idColumn(col: ColumnDefinitionBuilder, kind: DatabaseKind): ColumnDefinitionBuilder {
  return kind === 'sqlite'
    ? col.primaryKey().autoIncrement()
    : col.primaryKey().generatedByDefaultAsIdentity();
}
