import type { Kysely } from 'kysely';
import { type MigrationResultSet, Migrator, type Migration as KyselyMigration } from 'kysely/migration';
import type { DatabaseKind } from './connect.ts';
import { MIGRATIONS } from './migrations/index.ts';
import type { Database } from './schema.ts';

function migratorFor(db: Kysely<Database>, kind: DatabaseKind): Migrator {
  const migrations: Record<string, KyselyMigration> = {};
  for (const [name, migration] of Object.entries(MIGRATIONS)) {
    migrations[name] = { up: (trx) => migration.up(trx, { kind }) };
  }
  return new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableName: 'schema_migration',
    migrationLockTableName: 'schema_migration_lock',
    // Numbers are reserved per change in flight, so a lower number can land after a higher one has
    // been applied somewhere; each migration depends only on those numbered before it, never after.
    allowUnorderedMigrations: true,
  });
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

/** Applies every pending migration; returns the names applied. */
export async function migrateToLatest(db: Kysely<Database>, kind: DatabaseKind): Promise<string[]> {
  const { error, results }: MigrationResultSet = await migratorFor(db, kind).migrateToLatest();
  if (error) {
    const failed = results?.find((result) => result.status === 'Error');
    const reason = error instanceof Error ? error.message : String(error);
    throw new MigrationError(
      failed
        ? `migration ${failed.migrationName} failed: ${reason}`
        : `cannot apply the migrations: ${reason}`,
      { cause: error },
    );
  }
  return (results ?? [])
    .filter((result) => result.status === 'Success')
    .map((result) => result.migrationName);
}

/** Names of migrations not yet applied (empty when the database is at the latest version). */
export async function pendingMigrations(db: Kysely<Database>, kind: DatabaseKind): Promise<string[]> {
  const all = await migratorFor(db, kind).getMigrations();
  return all.filter((migration) => migration.executedAt === undefined).map((migration) => migration.name);
}

export function latestMigrationName(): string {
  const names = Object.keys(MIGRATIONS).sort();
  return names[names.length - 1]!;
}
