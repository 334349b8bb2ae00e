import { type Kysely, sql } from 'kysely';
import { type MigrationResultSet, Migrator, type Migration as KyselyMigration } from 'kysely/migration';
import type { DatabaseKind } from './connect.ts';
import { explainSqliteOpenError } from './errors.ts';
import { tableExists } from './migrations/helpers.ts';
import { MIGRATIONS } from './migrations/index.ts';
import type { Database } from './schema.ts';
import { BUSY_TIMEOUT_MS } from './sqlite-settings.ts';

/** The tables Kysely's migrator keeps (the applied migrations, its lock). */
const MIGRATOR_TABLES: ReadonlySet<string> = new Set(['schema_migration', 'schema_migration_lock']);

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

/**
 * Applies every pending migration; returns the names applied. A database that a newer release
 * migrated (it records migrations this one does not ship) is refused, saying so. Processes that
 * migrate one database at once (`serve` and `worker` in development mode started together, a
 * container's restart beside `aa-oidc migrate`) apply the migrations once: the others wait for the
 * first, then find nothing pending. Either every pending migration is applied or none is.
 */
export async function migrateToLatest(db: Kysely<Database>, kind: DatabaseKind): Promise<string[]> {
  // PostgreSQL: Kysely's migrator takes an advisory lock and runs them all in one transaction.
  if (kind === 'postgres') return applyPending(db, kind);
  return holdingSqliteWriteLock(db, (connection) => applyPending(connection, kind));
}

async function applyPending(db: Kysely<Database>, kind: DatabaseKind): Promise<string[]> {
  await refuseNewerDatabase(db);
  await refuseForeignDatabase(db, kind);
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

/**
 * SQLite: runs `work` on one connection inside one transaction that holds the file's write lock from
 * its first statement (BEGIN IMMEDIATE) to its commit. Kysely's migrator takes no lock on SQLite (its
 * adapter counts on one connection per database, not on other processes) and runs each statement on
 * its own: processes migrating a new file at once each found no table and created them, and all but
 * one failed (`table "state" already exists`), leaving a migration half applied. Under the lock, the
 * next process waits (up to the busy timeout) and reads the migration table only once the first has
 * committed. In WAL mode readers are not held up meanwhile, and see the old schema until the commit.
 */
async function holdingSqliteWriteLock<T>(
  db: Kysely<Database>,
  work: (connection: Kysely<Database>) => Promise<T>,
): Promise<T> {
  return db.connection().execute(async (connection) => {
    try {
      await sql`begin immediate`.execute(connection);
    } catch (error) {
      throw migrationLockFailure(error);
    }
    try {
      const result = await work(connection);
      await sql`commit`.execute(connection);
      return result;
    } catch (error) {
      await sql`rollback`.execute(connection).catch(() => undefined);
      throw error;
    }
  });
}

/**
 * Why the SQLite write lock could not be had, as a `MigrationError` saying what to do: another
 * process held it past the busy timeout, or the file takes no writes (read-only, not a database).
 */
function migrationLockFailure(error: unknown): MigrationError {
  if ((error as { code?: unknown } | null)?.code === 'SQLITE_BUSY') {
    return new MigrationError(
      `cannot apply the migrations: another process held the SQLite database's write lock longer than ` +
        `${BUSY_TIMEOUT_MS / 1000} s (most likely applying these migrations: aa-oidc migrate, or serve or worker ` +
        'in development mode, on this file; else a backup, an sqlite3 shell inside a transaction); ' +
        'let it finish, then run the command again: nothing was applied',
      { cause: error },
    );
  }
  return new MigrationError(`cannot apply the migrations: ${explainSqliteOpenError(error)}`, {
    cause: error,
  });
}

/**
 * Names of migrations not yet applied, in name order (empty when the database is at the latest
 * version; all of them without a migration table). Read from the migration table itself: Kysely's
 * migrator learns whether the table exists by reading every column of every table (on PostgreSQL a
 * join over pg_catalog calling a function for each column), and `/readyz` asks this every second.
 */
export async function pendingMigrations(db: Kysely<Database>, kind: DatabaseKind): Promise<string[]> {
  const applied = new Set(await appliedMigrations(db, kind));
  return Object.keys(MIGRATIONS)
    .sort()
    .filter((name) => !applied.has(name));
}

/**
 * The names the migration table records, or none when there is no such table (a new database). The
 * table is looked up as the query that reads it finds it: on PostgreSQL through the search path.
 */
async function appliedMigrations(db: Kysely<Database>, kind: DatabaseKind): Promise<string[]> {
  if (!(await hasMigrationTable(db, kind))) return [];
  const applied = await sql<{ name: string }>`select name from schema_migration`.execute(db);
  return applied.rows.map((row) => row.name);
}

/** Whether the migration table exists, found as the query that reads it finds it. */
async function hasMigrationTable(db: Kysely<Database>, kind: DatabaseKind): Promise<boolean> {
  return tableExists(db, kind, 'schema_migration');
}

/** A pending migration that would stop on the database as it is, with what it would stop with. */
export interface MigrationThatWouldStop {
  name: string;
  /** What the migration would stop with, in its own words (its `precheck`'s). */
  reason: string;
}

/**
 * Each of the `pending` migrations that would stop on the database as it is (its `precheck`), in
 * their order, with what it would stop with: what `aa-oidc migrate` would stop at, foreseen by its dry
 * run and by `aa-oidc check` (E014). Reads only.
 */
export async function migrationsThatWouldStop(
  db: Kysely<Database>,
  kind: DatabaseKind,
  pending: readonly string[],
): Promise<MigrationThatWouldStop[]> {
  const stopping: MigrationThatWouldStop[] = [];
  for (const name of pending) {
    const reason = await MIGRATIONS[name]?.precheck?.(db as Kysely<unknown>, { kind });
    if (reason !== undefined) stopping.push({ name, reason });
  }
  return stopping;
}

/**
 * Throws a `MigrationError` naming each of the `pending` migrations that would stop on the database
 * as it is (`migrationsThatWouldStop`), with what it would stop with: for `aa-oidc migrate --dry-run`,
 * so that it foresees what `aa-oidc migrate` would stop at. Reads only.
 */
export async function refuseMigrationsThatWouldStop(
  db: Kysely<Database>,
  kind: DatabaseKind,
  pending: readonly string[],
): Promise<void> {
  const stopping = await migrationsThatWouldStop(db, kind, pending);
  if (stopping.length > 0)
    throw new MigrationError(
      stopping.map(({ name, reason }) => `migration ${name} would fail: ${reason}`).join('\n'),
    );
}

/**
 * Throws a `MigrationError` when the database has no migration table but holds tables of its own:
 * another application's database (Alliance Auth's, named by mistake in `AA_OIDC_DATABASE_URL`), into
 * which the migrations would write about fifty tables of aa-oidc's. On PostgreSQL, the tables of the
 * schema the migrations would write into (the first of the search path) count.
 */
export async function refuseForeignDatabase(db: Kysely<Database>, kind: DatabaseKind): Promise<void> {
  if (await hasMigrationTable(db, kind)) return;
  const shown = 5;
  const { rows } = await (
    kind === 'postgres'
      ? sql<{ name: string }>`select tablename as name from pg_tables
          where schemaname = current_schema() order by tablename limit ${shown + 1 + MIGRATOR_TABLES.size}`
      : sql<{ name: string }>`select name from sqlite_master
          where type = 'table' and substr(name, 1, 7) <> 'sqlite_' order by name limit ${shown + 1 + MIGRATOR_TABLES.size}`
  ).execute(db);
  // Kysely's migrator creates its tables before it takes its lock: those of a process migrating
  // this database at the same moment are aa-oidc's own.
  const tables = rows.filter((row) => !MIGRATOR_TABLES.has(row.name));
  if (tables.length === 0) return;
  const names = tables.slice(0, shown).map((row) => row.name);
  throw new MigrationError(
    `the database holds tables that are not aa-oidc's (${names.join(', ')}${tables.length > shown ? ', …' : ''}) ` +
      "and no record of aa-oidc's migrations: it looks like another application's database (Alliance Auth's?). " +
      'aa-oidc needs a database of its own: create an empty one (PostgreSQL: createdb aa_oidc; SQLite: a new file) ' +
      'and name it in AA_OIDC_DATABASE_URL; no table was created',
  );
}

/**
 * Migrations recorded as applied that this release does not ship: a newer release migrated the
 * database. In name order; empty without a readable migration table (a new database; a table the
 * migrator itself reports as unreadable). `aa-oidc migrate` refuses such a database
 * (`refuseNewerDatabase`); this release still runs on it (old instances may keep running during an
 * upgrade whose migrations are additive, docs/upgrading.md): `aa-oidc check` warns (W021), `serve`
 * and `worker` log a warning at their start.
 */
export async function migrationsUnknownToThisRelease(db: Kysely<Database>): Promise<string[]> {
  const applied = await sql<{ name: string }>`select name from schema_migration order by name`
    .execute(db)
    .catch(() => ({ rows: [] }));
  return applied.rows.map((row) => row.name).filter((name) => !Object.hasOwn(MIGRATIONS, name));
}

/**
 * Throws a `MigrationError` naming the migrations a newer release applied: this release cannot
 * migrate that database (migrations are forward-only), and its migrator would call it corrupted.
 */
export async function refuseNewerDatabase(db: Kysely<Database>): Promise<void> {
  const unknown = await migrationsUnknownToThisRelease(db);
  if (unknown.length === 0) return;
  throw new MigrationError(
    `the database was migrated by a newer release of aa-oidc: it records ${unknown.length} migration(s) ` +
      `this release does not have (${unknown.join(', ')}); run the newer release, or restore the backup ` +
      'taken before that upgrade to go back to this one (migrations are forward-only, docs/upgrading.md)',
  );
}

export function latestMigrationName(): string {
  const names = Object.keys(MIGRATIONS).sort();
  return names[names.length - 1]!;
}
