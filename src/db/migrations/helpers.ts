import type { ColumnDefinitionBuilder, Kysely } from 'kysely';
import type { DatabaseKind } from '../connect.ts';

export interface MigrationContext {
  kind: DatabaseKind;
}

export interface Migration {
  up(db: Kysely<unknown>, context: MigrationContext): Promise<void>;
}

/** An auto-incrementing integer primary key, spelled the way each database wants it. */
export function idColumn(col: ColumnDefinitionBuilder, kind: DatabaseKind): ColumnDefinitionBuilder {
  return kind === 'sqlite'
    ? col.primaryKey().autoIncrement()
    : col.primaryKey().generatedByDefaultAsIdentity();
}
