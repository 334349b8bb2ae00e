import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { type Kysely, sql } from 'kysely';
import pg from 'pg';
import { type DatabaseTarget, parseDatabaseUrl } from '../../src/config/load.ts';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import type { Database } from '../../src/db/schema.ts';

/**
 * A fresh database for one test: a temporary SQLite file by default, or a new PostgreSQL database
 * created next to `AA_OIDC_TEST_DATABASE_URL` when that is set (and dropped afterwards). Empty, or
 * with `{ migrated: true }` at the latest migration: a copy of the template that `npm test` migrates
 * once for the whole run (test/helpers/global-setup.ts), else migrated here.
 */
export interface TestDatabase {
  kind: 'sqlite' | 'postgres';
  /** The value for `AA_OIDC_DATABASE_URL`. */
  url: string;
  /** Folder for the app's data (secret key, SQLite file). */
  dataDir: string;
  drop(): Promise<void>;
}

export interface TestDatabaseOptions {
  /** At the latest migration (default: empty). */
  migrated?: boolean;
  /** A PostgreSQL database next to this URL, whatever the run's database (see `reachablePostgres`). */
  postgresUrl?: string;
}

export const testDatabaseKind: 'sqlite' | 'postgres' = process.env.AA_OIDC_TEST_DATABASE_URL
  ? 'postgres'
  : 'sqlite';

/** Set by the global setup: a migrated SQLite file, or the name of a migrated PostgreSQL database. */
const SQLITE_TEMPLATE = 'AA_OIDC_TEST_SQLITE_TEMPLATE';
const POSTGRES_TEMPLATE = 'AA_OIDC_TEST_POSTGRES_TEMPLATE';

export async function createTestDatabase(options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'aa-oidc-test-'));
  const baseUrl = options.postgresUrl ?? process.env.AA_OIDC_TEST_DATABASE_URL;
  const database = baseUrl
    ? await createPostgresDatabase(baseUrl, dataDir, options.migrated === true)
    : createSqliteDatabase(dataDir, options.migrated === true);
  const template = process.env[baseUrl ? POSTGRES_TEMPLATE : SQLITE_TEMPLATE];
  if (options.migrated && !template) await migrate(database);
  return database;
}

/** The PostgreSQL server of a local install (.ci/run starts it), tried when the run is on SQLite. */
const LOCAL_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * PostgreSQL for a test that needs it even on a SQLite run (several instances on one database):
 * `AA_OIDC_TEST_DATABASE_URL` when set, else the local server if it answers within 2 s; otherwise
 * the reason it is missing.
 */
export async function reachablePostgres(): Promise<{ url: string } | { missing: string }> {
  const url = process.env.AA_OIDC_TEST_DATABASE_URL ?? LOCAL_POSTGRES_URL;
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    return { url };
  } catch (error) {
    return {
      missing: `PostgreSQL does not answer at ${new URL(url).host} (${(error as Error).message}); set AA_OIDC_TEST_DATABASE_URL`,
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

function createSqliteDatabase(dataDir: string, migrated: boolean): TestDatabase {
  const file = path.join(dataDir, 'test.sqlite');
  const template = process.env[SQLITE_TEMPLATE];
  if (migrated && template) copyFileSync(template, file);
  return {
    kind: 'sqlite',
    url: `sqlite:${file}`,
    dataDir,
    drop: async () => rmSync(dataDir, { recursive: true, force: true }),
  };
}

async function createPostgresDatabase(
  baseUrl: string,
  dataDir: string,
  migrated: boolean,
): Promise<TestDatabase> {
  const name = `aa_oidc_t_${randomBytes(6).toString('hex')}`;
  const template = process.env[POSTGRES_TEMPLATE];
  await adminQuery(baseUrl, `create database ${name}${migrated && template ? ` template ${template}` : ''}`);
  return {
    kind: 'postgres',
    url: databaseUrl(baseUrl, name),
    dataDir,
    drop: async () => {
      await adminQuery(baseUrl, `drop database if exists ${name} with (force)`);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function databaseUrl(baseUrl: string, name: string): string {
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function adminQuery(baseUrl: string, text: string): Promise<void> {
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  try {
    await admin.query(text);
  } finally {
    await admin.end();
  }
}

function target(database: Pick<TestDatabase, 'url'>): DatabaseTarget {
  return parseDatabaseUrl(database.url, tmpdir());
}

/** A connection of the test's own to the database, opened as the app opens it. */
export function connect(database: TestDatabase): DatabaseHandle {
  return openDatabase(target(database));
}

async function migrate(database: Pick<TestDatabase, 'url'>): Promise<void> {
  const handle = openDatabase(target(database));
  try {
    await migrateToLatest(handle.db, handle.kind);
  } finally {
    // Closing checkpoints SQLite's write-ahead log into the file, and ends every PostgreSQL session
    // (a template database must have none).
    await handle.close();
  }
}

const TEMPLATE_PREFIX = 'aa_oidc_tpl_';

/**
 * Migrates the template once for a whole test run and names it in the environment every test
 * process inherits; returns what removes it. PostgreSQL templates of runs that died (their process
 * is gone) are dropped on the way.
 */
export async function createTemplate(): Promise<() => Promise<void>> {
  const baseUrl = process.env.AA_OIDC_TEST_DATABASE_URL;
  if (!baseUrl) {
    const dir = mkdtempSync(path.join(tmpdir(), 'aa-oidc-template-'));
    const file = path.join(dir, 'template.sqlite');
    await migrate({ url: `sqlite:${file}` });
    process.env[SQLITE_TEMPLATE] = file;
    return async () => rmSync(dir, { recursive: true, force: true });
  }
  await dropAbandonedTemplates(baseUrl);
  const name = `${TEMPLATE_PREFIX}${process.pid}_${randomBytes(4).toString('hex')}`;
  await adminQuery(baseUrl, `create database ${name}`);
  await migrate({ url: databaseUrl(baseUrl, name) });
  process.env[POSTGRES_TEMPLATE] = name;
  return () => adminQuery(baseUrl, `drop database if exists ${name} with (force)`);
}

async function dropAbandonedTemplates(baseUrl: string): Promise<void> {
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ datname: string }>(
      'select datname from pg_database where datname like $1',
      [`${TEMPLATE_PREFIX}%`],
    );
    for (const { datname } of rows) {
      const pid = Number(/^aa_oidc_tpl_(\d+)_/.exec(datname)?.[1]);
      if (Number.isInteger(pid) && !processExists(pid))
        await admin.query(`drop database if exists ${datname} with (force)`);
    }
  } finally {
    await admin.end();
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs `work` while the database refuses writes for the database's sake, then lets it write again:
 * SQLite locked by another writer past the busy timeout (SQLITE_BUSY; every write), PostgreSQL out of
 * disk space (SQLSTATE 53100) for `event` on `table` (and the rows matching `when`, SQL of `NEW`).
 */
export async function whileWritesRefused<T>(
  database: DatabaseHandle,
  refused: { table: string; event: 'INSERT' | 'UPDATE'; when?: string },
  work: () => Promise<T>,
): Promise<T> {
  const locker = database.kind === 'sqlite' ? new BetterSqlite3(database.sqlite!.name) : undefined;
  const db = database.db as Kysely<Database>;
  if (locker) locker.prepare('begin immediate').run();
  else {
    await sql`CREATE FUNCTION refuse_test_write() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'injected fault' USING ERRCODE = '53100'; END $$`.execute(db);
    await sql`CREATE TRIGGER refuse_test_write BEFORE ${sql.raw(refused.event)} ON ${sql.table(refused.table)}
      FOR EACH ROW ${sql.raw(refused.when ? `WHEN (${refused.when})` : '')} EXECUTE FUNCTION refuse_test_write()`.execute(
      db,
    );
  }
  try {
    return await work();
  } finally {
    if (locker) {
      locker.prepare('rollback').run();
      locker.close();
    } else {
      await sql`DROP TRIGGER refuse_test_write ON ${sql.table(refused.table)}`.execute(db);
      await sql`DROP FUNCTION refuse_test_write()`.execute(db);
    }
  }
}
