import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.ts';
import { testConfig } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { waitUntil } from '../helpers/wait.ts';

/**
 * A transaction whose work fails in a way that leaves no transaction to roll back: the ROLLBACK that
 * Kysely sends next fails too, and the caller (and the log) must hear of the work's failure, not of
 * the rollback's.
 */
describe(`a transaction whose rollback fails after its statement did (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  const rollbackFailures: unknown[] = [];

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    handle = openDatabase(testConfig(database).database, {
      onRollbackFailure: (error) => rollbackFailures.push(error),
    });
  });
  after(async () => {
    await handle?.close();
    await database?.drop();
  });

  /** A transaction after the failed one commits: its connection is usable, or was replaced. */
  const nextTransactionCommits = async () => {
    await handle.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('lifecycle_event')
        .values({ kind: 'after', user_id: null, actor: null, payload: '{}', created_at: 1 })
        .execute();
    });
    const kept = await handle.db
      .selectFrom('lifecycle_event')
      .select('kind')
      .where('kind', 'in', ['test', 'after'])
      .execute();
    assert.deepEqual(
      kept.map((row) => row.kind),
      ['after'],
      'nothing of the failed transaction was kept',
    );
  };

  it(
    'PostgreSQL: a connection terminated mid-statement fails with the termination',
    { skip: testDatabaseKind === 'postgres' ? false : 'runs in the PostgreSQL pass' },
    async () => {
      const admin = new pg.Client({ connectionString: database.url });
      await admin.connect();
      try {
        await assert.rejects(
          handle.db.transaction().execute(async (trx) => {
            await trx
              .insertInto('lifecycle_event')
              .values({ kind: 'test', user_id: null, actor: null, payload: '{}', created_at: 0 })
              .execute();
            const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
            const pid = rows[0]!.pid;
            // A statement in flight when the server ends the session (a restart, a failover).
            const sleeping = sql`select pg_sleep(60)`.execute(trx);
            sleeping.catch(() => undefined);
            await waitUntil(async () => {
              const activity = await admin.query<{ state: string }>(
                `select state from pg_stat_activity where pid = $1 and query like '%pg_sleep%'`,
                [pid],
              );
              return activity.rows[0]?.state === 'active';
            }, 'the statement runs');
            await admin.query('select pg_terminate_backend($1)', [pid]);
            await sleeping;
          }),
          (error: Error & { code?: string }) => {
            // The server's own word (it tells the session before it ends it), not the driver's
            // about a rollback sent on the connection afterwards.
            assert.equal(error.code, '57P01');
            assert.match(error.message, /terminating connection due to administrator command/);
            return true;
          },
        );
      } finally {
        await admin.end();
      }
      assert.equal(rollbackFailures.length, 1, 'the rollback failed too, and was told');
      assert.match((rollbackFailures[0] as Error).message, /not queryable|Connection terminated/);
      await nextTransactionCommits();
    },
  );

  it(
    'SQLite: a statement SQLite rolled back itself (a full disk) fails with the full disk',
    {
      skip:
        testDatabaseKind === 'sqlite' ? false : 'runs in the SQLite pass (PRAGMA max_page_count is SQLite’s)',
    },
    async () => {
      const sqlite = handle.sqlite!;
      const pages = Number(sqlite.pragma('page_count', { simple: true }));
      sqlite.pragma(`max_page_count = ${pages + 2}`);
      const payload = 'x'.repeat(64 * 1024);
      try {
        await assert.rejects(
          handle.db.transaction().execute(async (trx) => {
            for (let index = 0; index < 20; index += 1)
              await trx
                .insertInto('lifecycle_event')
                .values({ kind: 'test', user_id: null, actor: null, payload, created_at: index })
                .execute();
          }),
          (error: Error & { code?: string }) => {
            assert.equal(error.code, 'SQLITE_FULL');
            assert.doesNotMatch(error.message, /rollback|no transaction/i);
            return true;
          },
        );
      } finally {
        sqlite.pragma('max_page_count = 1073741823');
      }
      assert.equal(rollbackFailures.length, 1, 'the rollback failed too, and was told');
      assert.match((rollbackFailures[0] as Error).message, /no transaction is active/);
      assert.equal(sqlite.inTransaction, false);
      await nextTransactionCommits();
    },
  );
});
