import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import { openDatabase } from '../../src/db/connect.ts';
import {
  latestMigrationName,
  migrateToLatest,
  pendingMigrations,
  refuseForeignDatabase,
} from '../../src/db/migrate.ts';
import { MIGRATIONS } from '../../src/db/migrations/index.ts';
import { testConfig } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

describe(`migrations (${process.env.AA_OIDC_TEST_DATABASE_URL ? 'postgres' : 'sqlite'})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  it('take an empty database to the latest version, and a second run applies nothing', async () => {
    const config = testConfig(database);
    const handle = openDatabase(config.database);
    try {
      assert.deepEqual(await pendingMigrations(handle.db, handle.kind), Object.keys(MIGRATIONS).sort());
      const applied = await migrateToLatest(handle.db, handle.kind);
      assert.deepEqual(applied, Object.keys(MIGRATIONS).sort());
      assert.equal(applied.at(-1), latestMigrationName());
      assert.deepEqual(await pendingMigrations(handle.db, handle.kind), []);
      assert.deepEqual(await migrateToLatest(handle.db, handle.kind), []);
      const tables = await handle.db.introspection.getTables();
      const names = tables.map((table) => table.name);
      for (const table of ['state', 'auth_group', 'app_user', 'user_group', 'lifecycle_event']) {
        assert.ok(names.includes(table), `table ${table} exists`);
      }
      const result = await sql<{ one: number }>`select 1 as one`.execute(handle.db);
      assert.equal(Number(result.rows[0]!.one), 1);
    } finally {
      await handle.close();
    }
  });

  it('applies a migration that landed after a later-numbered one (numbers are reserved per feature)', async () => {
    const handle = openDatabase(testConfig(database).database);
    try {
      await migrateToLatest(handle.db, handle.kind);
      // As on a database migrated before 0010 existed: 0010's column and record are absent.
      await sql`alter table app_user drop column must_change_password`.execute(handle.db);
      await sql`delete from schema_migration where name = '0010_must_change_password'`.execute(handle.db);
      assert.deepEqual(await pendingMigrations(handle.db, handle.kind), ['0010_must_change_password']);
      assert.deepEqual(await migrateToLatest(handle.db, handle.kind), ['0010_must_change_password']);
      const user = await handle.db
        .insertInto('app_user')
        .values({ username: 'late', email: '', created_at: 0, updated_at: 0 } as never)
        .returning('must_change_password')
        .executeTakeFirstOrThrow();
      assert.equal(Number(user.must_change_password), 0);
    } finally {
      await handle.close();
    }
  });

  it('0079 counts every login failure kept before it as a password failure', async () => {
    const fresh = await createTestDatabase();
    const handle = openDatabase(testConfig(fresh).database);
    try {
      await migrateToLatest(handle.db, handle.kind);
      // As before 0079: no method column, and a password failure and an EVE failure kept.
      await sql`alter table login_failure drop column method`.execute(handle.db);
      await sql`delete from schema_migration where name = '0079_login_failure_method'`.execute(handle.db);
      await sql`insert into login_failure (username, address, failed_at)
        values ('bob', '192.0.2.1', 1), ('eve:95465499', '192.0.2.1', 2)`.execute(handle.db);
      assert.deepEqual(await migrateToLatest(handle.db, handle.kind), ['0079_login_failure_method']);
      const rows = await handle.db
        .selectFrom('login_failure')
        .select(['username', 'method'])
        .orderBy('failed_at')
        .execute();
      // The EVE failure now counts for the typed name `eve:95465499` until it leaves the window.
      assert.deepEqual(rows, [
        { username: 'bob', method: 'password' },
        { username: 'eve:95465499', method: 'password' },
      ]);
    } finally {
      await handle.close();
      await fresh.drop();
    }
  });

  it('0082 refuses client ids that differ only in case, naming them and changing nothing; applied once they are gone', async () => {
    const fresh = await createTestDatabase();
    const handle = openDatabase(testConfig(fresh).database);
    const insertApplication = (clientId: string) =>
      sql`insert into application (client_id, name, redirect_uris, post_logout_redirect_uris, client_type, grant_types, created_at, updated_at)
        values (${clientId}, ${clientId}, '[]', '[]', 'public', '[]', 1, 1)`.execute(handle.db);
    try {
      await migrateToLatest(handle.db, handle.kind);
      // As before 0082, when a create read that no twin existed, and so did one racing it.
      await sql`drop index application_client_id_folded_uq`.execute(handle.db);
      await sql`delete from schema_migration where name = '0082_client_id_case_unique'`.execute(handle.db);
      // Only letters fold: `wiki-1` and `wiki_1`, `wiki.1` and `wiki~1` are other client ids.
      for (const clientId of [
        'wiki',
        'Wiki',
        'WIKI',
        'forum',
        'Forum',
        'wiki-1',
        'wiki_1',
        'wiki.1',
        'wiki~1',
      ])
        await insertApplication(clientId);
      await assert.rejects(migrateToLatest(handle.db, handle.kind), {
        name: 'MigrationError',
        message:
          /^migration 0082_client_id_case_unique failed: cannot make client ids unique regardless of case: applications have client ids that differ only in case \("Forum" and "forum"; "WIKI" and "Wiki" and "wiki"\)\. Keep one application of each set and remove the others' rows \(DELETE FROM application_whitelist WHERE client_id = '…'; DELETE FROM application WHERE client_id = '…'\), then migrate again; .* Nothing was changed \(docs\/upgrading\.md\)$/,
      });
      assert.deepEqual(await pendingMigrations(handle.db, handle.kind), ['0082_client_id_case_unique']);
      await sql`delete from application where client_id in ('Forum', 'WIKI', 'Wiki')`.execute(handle.db);
      assert.deepEqual(await migrateToLatest(handle.db, handle.kind), ['0082_client_id_case_unique']);
      // The database itself now refuses a twin, whatever wrote it.
      await assert.rejects(insertApplication('FORUM'), /unique|duplicate/i);
      await insertApplication('forum-2');
    } finally {
      await handle.close();
      await fresh.drop();
    }
  });

  it('names the migration that failed, and says so when none could be tried', async () => {
    const handle = openDatabase(testConfig(database).database);
    try {
      await migrateToLatest(handle.db, handle.kind);
      // 0010's column is there, its record is not: running it again fails on the column.
      await sql`delete from schema_migration where name = '0010_must_change_password'`.execute(handle.db);
      await assert.rejects(migrateToLatest(handle.db, handle.kind), {
        name: 'MigrationError',
        message: /^migration 0010_must_change_password failed: /,
      });
      // The table of applied migrations cannot be read: nothing was tried.
      await sql`drop table schema_migration`.execute(handle.db);
      await sql`create table schema_migration (other text)`.execute(handle.db);
      await assert.rejects(migrateToLatest(handle.db, handle.kind), {
        name: 'MigrationError',
        message: /^cannot apply the migrations: /,
      });
    } finally {
      await handle.close();
    }
  });

  it('applies every pending migration or none: a failure leaves the database as it was', async () => {
    const fresh = await createTestDatabase();
    const handle = openDatabase(testConfig(fresh).database);
    try {
      await migrateToLatest(handle.db, handle.kind);
      // 0077 can be applied again once its index is gone; 0078's column is still there, so it fails.
      await sql`drop index issued_code_created_at_idx`.execute(handle.db);
      await sql`delete from schema_migration
        where name in ('0077_issued_code_created_at', '0078_signing_key_withdrawn')`.execute(handle.db);
      await assert.rejects(migrateToLatest(handle.db, handle.kind), {
        name: 'MigrationError',
        message: /^migration 0078_signing_key_withdrawn failed: /,
      });
      assert.deepEqual(await pendingMigrations(handle.db, handle.kind), [
        '0077_issued_code_created_at',
        '0078_signing_key_withdrawn',
      ]);
      const index = await (
        handle.kind === 'postgres'
          ? sql<{ found: string | null }>`select to_regclass('issued_code_created_at_idx')::text as found`
          : sql<{ found: string | null }>`select name as found from sqlite_master
              where type = 'index' and name = 'issued_code_created_at_idx'`
      ).execute(handle.db);
      assert.equal(index.rows[0]?.found ?? null, null, "0077's index was rolled back with the rest");
      await sql`alter table signing_key drop column withdrawn_at`.execute(handle.db);
      assert.deepEqual(await migrateToLatest(handle.db, handle.kind), [
        '0077_issued_code_created_at',
        '0078_signing_key_withdrawn',
      ]);
    } finally {
      await handle.close();
      await fresh.drop();
    }
  });

  it(
    "SQLite: waits for another process's write lock, and says so when it waited too long",
    { skip: testDatabaseKind !== 'sqlite' && "SQLite only (PostgreSQL: the migrator's advisory lock)" },
    async () => {
      const fresh = await createTestDatabase();
      const handle = openDatabase(testConfig(fresh).database);
      // Another process in the middle of its migrations: it holds the file's write lock.
      const other = new BetterSqlite3(handle.sqlite!.name);
      try {
        // The wait is the busy timeout (5 s); a shorter one keeps the test short.
        handle.sqlite!.pragma('busy_timeout = 100');
        other.prepare('begin immediate').run();
        await assert.rejects(migrateToLatest(handle.db, handle.kind), {
          name: 'MigrationError',
          message:
            /^cannot apply the migrations: another process held the SQLite database's write lock longer than 5 s \(most likely applying these migrations: aa-oidc migrate, or serve or worker in development mode, on this file; .*\); let it finish, then run the command again: nothing was applied$/,
        });
        other.prepare('rollback').run();
        assert.deepEqual(await pendingMigrations(handle.db, handle.kind), Object.keys(MIGRATIONS).sort());
        assert.deepEqual(await migrateToLatest(handle.db, handle.kind), Object.keys(MIGRATIONS).sort());
      } finally {
        other.close();
        await handle.close();
        await fresh.drop();
      }
    },
  );

  it("refuses another application's database (tables, no migration record), changing nothing", async () => {
    const foreign = await createTestDatabase();
    const handle = openDatabase(testConfig(foreign).database);
    try {
      // As Alliance Auth's database named by mistake.
      for (const table of ['auth_user', 'auth_group', 'authentication_state', 'django_migrations'])
        await sql`create table ${sql.table(table)} (id integer primary key)`.execute(handle.db);
      const refusal = {
        name: 'MigrationError',
        message:
          /^the database holds tables that are not aa-oidc's \(auth_group, auth_user, authentication_state, django_migrations\) and no record of aa-oidc's migrations: .*a database of its own.*no table was created$/,
      };
      await assert.rejects(migrateToLatest(handle.db, handle.kind), refusal);
      await assert.rejects(refuseForeignDatabase(handle.db, handle.kind), refusal);
      const names = (await handle.db.introspection.getTables()).map((table) => table.name).sort();
      assert.deepEqual(names, ['auth_group', 'auth_user', 'authentication_state', 'django_migrations']);
      // Five names at most, then an ellipsis.
      for (const table of ['eveonline_evecharacter', 'groupmanagement_groupmembership'])
        await sql`create table ${sql.table(table)} (id integer primary key)`.execute(handle.db);
      await assert.rejects(migrateToLatest(handle.db, handle.kind), {
        message:
          /\(auth_group, auth_user, authentication_state, django_migrations, eveonline_evecharacter, …\)/,
      });
    } finally {
      await handle.close();
      await foreign.drop();
    }
  });

  it("does not take the migrator's lock table, made by a process migrating at the same moment, for another application's", async () => {
    const fresh = await createTestDatabase();
    const handle = openDatabase(testConfig(fresh).database);
    try {
      // Kysely's migrator creates its lock table before it takes its lock (outside it on PostgreSQL).
      await sql`create table schema_migration_lock (id varchar(255) primary key, is_locked integer not null default 0)`.execute(
        handle.db,
      );
      await refuseForeignDatabase(handle.db, handle.kind);
      assert.deepEqual(await migrateToLatest(handle.db, handle.kind), Object.keys(MIGRATIONS).sort());
    } finally {
      await handle.close();
      await fresh.drop();
    }
  });

  it("lists the pending migrations as Kysely's migrator does: no table, an empty one, some applied", async () => {
    const fresh = await createTestDatabase();
    const handle = openDatabase(testConfig(fresh).database);
    try {
      const migrator = new Migrator({
        db: handle.db,
        provider: { getMigrations: async () => MIGRATIONS as never },
        migrationTableName: 'schema_migration',
        migrationLockTableName: 'schema_migration_lock',
      });
      const asKysely = async () =>
        (await migrator.getMigrations()).filter((m) => m.executedAt === undefined).map((m) => m.name);
      const same = async (state: string) =>
        assert.deepEqual(await pendingMigrations(handle.db, handle.kind), await asKysely(), state);
      await same('no migration table');
      await sql`create table schema_migration (name varchar(255) primary key, timestamp varchar(255) not null)`.execute(
        handle.db,
      );
      await same('an empty migration table');
      assert.equal((await pendingMigrations(handle.db, handle.kind)).length, Object.keys(MIGRATIONS).length);
      await sql`drop table schema_migration`.execute(handle.db);
      await migrateToLatest(handle.db, handle.kind);
      await sql`delete from schema_migration where name in ('0010_must_change_password', ${latestMigrationName()})`.execute(
        handle.db,
      );
      await same('some applied');
    } finally {
      await handle.close();
      await fresh.drop();
    }
  });
});
