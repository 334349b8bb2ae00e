import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { openDatabase } from '../../src/db/connect.ts';
import { latestMigrationName, migrateToLatest, pendingMigrations } from '../../src/db/migrate.ts';
import { MIGRATIONS } from '../../src/db/migrations/index.ts';
import { testConfig } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

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
});
