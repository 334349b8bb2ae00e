import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openDatabase, type DatabaseHandle } from '../../src/db/connect.ts';
import { inUnitOfWork } from '../../src/db/unit-of-work.ts';
import { testConfig } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

/**
 * A unit of work that fails because the disk is full: SQLite rolls the transaction back itself, so
 * the ROLLBACK that follows fails too ("no transaction is active"). The caller must hear of the full
 * disk, not of the ROLLBACK. The full disk is SQLite's own (`PRAGMA max_page_count`), so this runs in
 * the SQLite pass.
 */
describe(
  `a unit of work on a full disk (${testDatabaseKind})`,
  {
    skip:
      testDatabaseKind === 'sqlite' ? false : 'runs in the SQLite pass (PRAGMA max_page_count is SQLite’s)',
  },
  () => {
    let database: TestDatabase;
    let handle: DatabaseHandle;
    before(async () => {
      database = await createTestDatabase({ migrated: true });
      handle = openDatabase(testConfig(database).database);
    });
    after(async () => {
      await handle.close();
      await database.drop();
    });

    it('fails with the cause, and nothing of it is kept', async () => {
      const sqlite = handle.sqlite!;
      const pages = Number(sqlite.pragma('page_count', { simple: true }));
      sqlite.pragma(`max_page_count = ${pages + 2}`);
      const payload = 'x'.repeat(64 * 1024);
      await assert.rejects(
        inUnitOfWork(handle.db, async ({ trx }) => {
          for (let index = 0; index < 20; index += 1)
            await trx
              .insertInto('lifecycle_event')
              .values({ kind: 'test', user_id: null, actor: null, payload, created_at: index })
              .execute();
        }),
        (error: Error) => {
          assert.match(error.message, /full/i);
          assert.doesNotMatch(error.message, /rollback/i);
          return true;
        },
      );
      sqlite.pragma('max_page_count = 1073741823');
      const kept = await handle.db
        .selectFrom('lifecycle_event')
        .select('id')
        .where('kind', '=', 'test')
        .execute();
      assert.equal(kept.length, 0);
    });
  },
);
