import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { createLogger } from '../../src/logging/logger.ts';
import { newJti } from '../../src/logout/job-transport.ts';
import {
  BCL_QUEUE,
  claimExecutor,
  createPgBossTransport,
  PGBOSS_SCHEMA,
} from '../../src/logout/pgboss-transport.ts';
import { createServices } from '../../src/services.ts';
import { cli } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import { connect, createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { type LogoutWorkerFixture, startLogoutWorkerFixture } from '../helpers/logout-worker.ts';
import { assertSameLogout, logoutJobs, pgBossJobs } from './jobs.ts';
import { type RpReceiver, startRpReceiver } from './rp-receiver.ts';
import { waitUntil } from '../helpers/wait.ts';

/**
 * On PostgreSQL the back-channel logout jobs travel through pg-boss: sent in the
 * transaction of the change (rolled back with it), kept out of `bcl_job`, retried as new pg-boss
 * jobs after exactly the configured delay, and completed with their outcome.
 */
describe(
  `back-channel logout jobs on pg-boss (${testDatabaseKind})`,
  {
    skip:
      testDatabaseKind === 'postgres'
        ? false
        : 'runs in the PostgreSQL pass (set AA_OIDC_TEST_DATABASE_URL): pg-boss runs on PostgreSQL only',
  },
  () => {
    let fixture: LogoutWorkerFixture;
    let services: LogoutWorkerFixture['services'];
    let receiver: RpReceiver;
    let clientId: string;

    before(async () => {
      receiver = await startRpReceiver([500, 200]);
      fixture = await startLogoutWorkerFixture({
        logout: { allowPrivateTargets: true, retryBackoffSeconds: [7, 3] },
      });
      services = fixture.services;
      clientId = await fixture.application('Boss RP', receiver.url());
    });
    after(async () => {
      await fixture?.close();
      await receiver?.close();
    });

    const userWithToken = (username: string): Promise<number> => fixture.userHoldingToken(username, clientId);

    /** A transport of its own for claiming by hand, with a 30 s lease. */
    const claimingTransport = () =>
      createPgBossTransport(services.database, { expireInSeconds: 30, logger: services.logger });

    /** A job for `clientId`, issued at `now`. */
    const jobFor = (clientId: string, now: number) => ({
      trigger: 'user_deactivated' as const,
      userId: 7,
      sub: '7',
      clientId,
      jti: newJti(),
      iat: Math.floor(now / 1000),
      exp: Math.floor(now / 1000) + 300,
      kid: 'kid-1',
      sid: null,
    });

    const bclJobRows = async () =>
      (await services.database.db.selectFrom('bcl_job').select('id').execute()).length;

    it('a job sent in a change that rolls back is gone with it; a committed one is in pg-boss', async () => {
      const userId = await userWithToken('rolled-back');
      const before = (await pgBossJobs(services.database)).length;
      await assert.rejects(
        services.database.db.transaction().execute(async (trx) => {
          const queued = await services.logout.enqueueLogoutForUser(trx, { userId, reason: 'user_revoked' });
          assert.equal(queued.length, 1, 'the job was sent inside the transaction');
          const inside = await sql<{ count: string }>`
          select count(*) as count from ${sql.table(`${PGBOSS_SCHEMA}.job`)} where name = ${BCL_QUEUE}`.execute(
            trx,
          );
          assert.equal(Number(inside.rows[0]!.count), before + 1, 'visible inside the transaction');
          throw new Error('the change fails');
        }),
        /the change fails/,
      );
      assert.equal((await pgBossJobs(services.database)).length, before, 'no pg-boss job after the rollback');

      const queued = await services.database.db
        .transaction()
        .execute((trx) => services.logout.enqueueLogoutForUser(trx, { userId, reason: 'user_revoked' }));
      const jobs = await pgBossJobs(services.database);
      assert.equal(jobs.length, before + 1, 'the committed change left its job');
      const job = jobs.at(-1)!;
      assert.equal(job.state, 'created');
      assert.equal(job.data.jti, queued[0]!.jti);
      assert.equal(job.data.clientId, clientId);
      assert.equal(await bclJobRows(), 0, 'bcl_job stays empty on PostgreSQL');
      // Delivered (500 then 200 from the receiver) by the next test.
    });

    it('retries as a new pg-boss job after exactly the configured delay, then completes it', async () => {
      const [pending] = await logoutJobs(services.database, { clientId });
      assert.equal(pending?.status, 'pending');
      assert.equal(await services.logout.deliverDue(), 1, 'the first attempt (HTTP 500)');
      const chain = (await pgBossJobs(services.database)).filter((row) => row.data.jti === pending!.jti);
      assert.equal(chain.length, 2);
      assert.equal(chain[0]!.state, 'completed');
      assert.equal(chain[0]!.output?.rescheduled, true);
      assert.equal(chain[1]!.state, 'created');
      assert.equal(chain[1]!.data.priorAttempts, 1);
      assert.equal(chain[1]!.data.lastHttpStatus, 500);
      const timing = await sql<{ delay: number; retry_backoff: boolean; retry_limit: number }>`
      select extract(epoch from start_after - created_on)::float8 as delay, retry_backoff, retry_limit
        from ${sql.table(`${PGBOSS_SCHEMA}.job`)}
       where name = ${BCL_QUEUE} and state = 'created' and data->>'jti' = ${pending!.jti}`.execute(
        services.database.db,
      );
      assert.deepEqual(timing.rows[0]?.delay, 7, 'the first configured backoff, not pg-boss’s');
      assert.equal(timing.rows[0]?.retry_backoff, false);
      assert.equal(await services.logout.deliverDue(), 0, 'not due before its delay');
      // A worker sleeps until then (measured on the database clock).
      const transport = createPgBossTransport(services.database, {
        expireInSeconds: 5,
        logger: services.logger,
      });
      try {
        await transport.startWorker();
        const dueIn = (await transport.nextDueAt())! - Date.now();
        assert.ok(dueIn > 5000 && dueIn <= 7000, `the retry is due in about 7 s (${dueIn} ms)`);
      } finally {
        await transport.close();
      }
      assert.equal(receiver.requests.length, 1);

      // Bring the retry due (as if 7 s passed), then deliver it.
      await sql`
      update ${sql.table(`${PGBOSS_SCHEMA}.job`)} set start_after = now() - interval '1 second'
       where name = ${BCL_QUEUE} and state = 'created' and data->>'jti' = ${pending!.jti}`.execute(
        services.database.db,
      );
      assert.equal(await services.logout.deliverDue(), 1, 'the retry (HTTP 200)');
      const tokens = receiver.tokens();
      assert.equal(tokens.length, 2);
      assertSameLogout(tokens[1]!, tokens[0]!, 'the retry sends the same logout, signed afresh');
      const [done] = await logoutJobs(services.database, { clientId });
      assert.equal(done?.status, 'done');
      assert.equal(done?.outcome, 'success');
      assert.equal(done?.attempts, 2);
      const last = (await pgBossJobs(services.database))
        .filter((row) => row.data.jti === pending!.jti)
        .at(-1)!;
      assert.equal(last.state, 'completed');
      assert.deepEqual(last.output, { outcome: 'success', attempts: 2, httpStatus: 200 });
      assert.equal(await services.logout.deliverDue(), 0, 'a completed job is never fetched again');
      assert.equal(await bclJobRows(), 0);
    });

    it('completes a batch of claimed jobs by outcome, each fenced to the attempt it claimed', async () => {
      const transport = claimingTransport();
      try {
        const now = Date.now();
        const job = (client: string) => jobFor(client, now);
        const clients = ['batch-a', 'batch-b', 'batch-c', 'batch-d'];
        await services.database.db
          .transaction()
          .execute((trx) => transport.enqueue(trx, clients.map(job), now));
        const claimed = (await transport.claim('worker-a', now, now + 30_000, 10)).filter((row) =>
          row.clientId.startsWith('batch-'),
        );
        assert.equal(claimed.length, 4);
        const byClient = new Map(claimed.map((row) => [row.clientId, row]));
        // The claim of batch-c lapsed and another worker claimed the job again (its next attempt).
        const lapsed = byClient.get('batch-c')!;
        await sql`
        update ${sql.table(`${PGBOSS_SCHEMA}.job`)} set retry_count = retry_count + 1
         where name = ${BCL_QUEUE} and data->>'jti' = ${lapsed.jti}`.execute(services.database.db);
        const finished = await services.database.db.transaction().execute((trx) =>
          transport.finishMany(
            trx,
            [
              { job: byClient.get('batch-a')!, outcome: 'success', httpStatus: 200 },
              { job: byClient.get('batch-b')!, outcome: 'rp_client_error', httpStatus: 400 },
              { job: lapsed, outcome: 'success', httpStatus: 200 },
              { job: byClient.get('batch-d')!, outcome: 'success', httpStatus: 200 },
            ],
            'worker-a',
            Date.now(),
          ),
        );
        assert.deepEqual(finished, [true, true, false, true]);
        const rows = (await pgBossJobs(services.database)).filter((row) =>
          row.data.clientId.startsWith('batch-'),
        );
        assert.deepEqual(rows.map((row) => [row.data.clientId, row.state, row.output]).sort(), [
          ['batch-a', 'completed', { outcome: 'success', attempts: 1, httpStatus: 200 }],
          ['batch-b', 'completed', { outcome: 'rp_client_error', attempts: 1, httpStatus: 400 }],
          ['batch-c', 'active', null],
          ['batch-d', 'completed', { outcome: 'success', attempts: 1, httpStatus: 200 }],
        ]);
        // A completed job is never completed again.
        const again = await services.database.db
          .transaction()
          .execute((trx) =>
            transport.finishMany(
              trx,
              [{ job: byClient.get('batch-a')!, outcome: 'success', httpStatus: 200 }],
              'worker-a',
              Date.now(),
            ),
          );
        assert.deepEqual(again, [false]);
        await sql`
        delete from ${sql.table(`${PGBOSS_SCHEMA}.job`)}
         where name = ${BCL_QUEUE} and data->>'clientId' like 'batch-%'`.execute(services.database.db);
      } finally {
        await transport.close();
      }
    });

    it('puts claimed jobs back as new pg-boss jobs after the delay, their claim not counted', async () => {
      const transport = claimingTransport();
      try {
        const now = Date.now();
        const job = (client: string) => jobFor(client, now);
        await services.database.db
          .transaction()
          .execute((trx) => transport.enqueue(trx, [job('defer-a'), job('defer-b')], now));
        const claimed = (await transport.claim('worker-a', now, now + 30_000, 10)).filter((row) =>
          row.clientId.startsWith('defer-'),
        );
        assert.equal(claimed.length, 2);
        const [first, second] = claimed.sort((a, b) => (a.clientId < b.clientId ? -1 : 1));
        // The claim of defer-b lapsed and another worker claimed the job again: its claim is lost.
        await sql`
        update ${sql.table(`${PGBOSS_SCHEMA}.job`)} set retry_count = retry_count + 1
         where name = ${BCL_QUEUE} and data->>'jti' = ${second!.jti}`.execute(services.database.db);
        assert.deepEqual(await transport.defer([first!, second!], 'worker-a', Date.now(), 9), [true, false]);
        const chain = (await pgBossJobs(services.database)).filter((row) => row.data.jti === first!.jti);
        assert.equal(chain.length, 2);
        assert.equal(chain[0]!.state, 'completed');
        assert.equal(chain[0]!.output?.rescheduled, true);
        assert.equal(chain[1]!.state, 'created');
        assert.equal(chain[1]!.data.priorAttempts, 0, 'the deferred claim is not an attempt');
        assert.equal(chain[1]!.data.firstAttemptAt, null);
        const [view] = await logoutJobs(services.database, { clientId: 'defer-a' });
        assert.equal(view?.status, 'pending');
        assert.equal(view?.attempts, 0);
        const timing = await sql<{ delay: number }>`
        select extract(epoch from start_after - created_on)::float8 as delay
          from ${sql.table(`${PGBOSS_SCHEMA}.job`)}
         where name = ${BCL_QUEUE} and state = 'created' and data->>'jti' = ${first!.jti}`.execute(
          services.database.db,
        );
        assert.equal(timing.rows[0]?.delay, 9);
        const due = (await transport.claim('worker-a', Date.now(), Date.now() + 30_000, 10)).filter((row) =>
          row.clientId.startsWith('defer-'),
        );
        assert.deepEqual(due, [], 'not due before its delay');
        await sql`
        delete from ${sql.table(`${PGBOSS_SCHEMA}.job`)}
         where name = ${BCL_QUEUE} and data->>'clientId' like 'defer-%'`.execute(services.database.db);
      } finally {
        await transport.close();
      }
    });

    it('plans a claim without bitmap scans, and leaves the connection as it was', async () => {
      const pool = services.database.pgPool!;
      const client = await pool.connect();
      try {
        // On one connection: the claim's setting, then the same session's after it.
        const claims = claimExecutor({ query: client.query.bind(client) as typeof pool.query });
        const during = await claims.executeSql('show enable_bitmapscan', []);
        assert.deepEqual(during.rows, [{ enable_bitmapscan: 'off' }]);
        const after = await client.query<{ enable_bitmapscan: string }>('show enable_bitmapscan');
        assert.equal(after.rows[0]?.enable_bitmapscan, 'on', 'set local ends with the claim');
      } finally {
        client.release();
      }
    });

    it('aa-oidc migrate installs pg-boss’s schema and queue on a fresh database', async () => {
      const fresh = await createTestDatabase();
      try {
        const result = await cli(['migrate'], testEnv(fresh));
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stdout, /pg-boss/);
        const check = await createServices(testConfig(fresh), { migrate: false });
        try {
          const queue = await sql<{ name: string }>`
          select name from ${sql.table(`${PGBOSS_SCHEMA}.queue`)} where name = ${BCL_QUEUE}`.execute(
            check.database.db,
          );
          assert.equal(queue.rows.length, 1);
        } finally {
          await check.close();
        }
      } finally {
        await fresh.drop();
      }
    });
  },
);

/**
 * The stop tells the pg-boss transport first (`stopping`, before the worker's round and the
 * transport's close are waited for): pg-boss's own statements that fail from then on (its supervisor
 * meeting a dead route, its connections closed under it) are the stop's doing, at `debug` with
 * `stopped: true`, not errors.
 */
describe(
  `pg-boss's own failures once the stop began (${testDatabaseKind})`,
  {
    skip:
      testDatabaseKind === 'postgres'
        ? false
        : 'runs in the PostgreSQL pass (set AA_OIDC_TEST_DATABASE_URL): pg-boss runs on PostgreSQL only',
  },
  () => {
    let database: TestDatabase;
    before(async () => {
      database = await createTestDatabase({ migrated: true });
    });
    after(async () => database?.drop());

    it('logs a supervisor pass cut after `stopping()` at debug, with stopped: true', async () => {
      const handle = connect(database);
      const lines: Array<{ level: number; msg: string; stopped?: boolean }> = [];
      const logger = createLogger(testConfig(database), {
        level: 'debug',
        destination: { write: (line: string) => void lines.push(JSON.parse(line)) },
      });
      // A pass every second (half a 2 s claim).
      const transport = createPgBossTransport(handle, { expireInSeconds: 2, logger });
      const holder = new pg.Client({ connectionString: database.url });
      await holder.connect();
      try {
        await transport.startWorker();
        // The supervisor's next pass waits for pg-boss's queue table (taken by this test's transaction).
        await holder.query('begin');
        await holder.query(`lock table ${PGBOSS_SCHEMA}.queue in access exclusive mode`);
        const waiting = async () => {
          const { rows } = await holder.query<{ pid: number }>(
            `select pid from pg_locks where not granted and relation = '${PGBOSS_SCHEMA}.queue'::regclass`,
          );
          return rows.map((row) => row.pid);
        };
        await waitUntil(
          async () => (await waiting()).length > 0,
          "a supervisor pass waits for pg-boss's queue",
        );
        transport.stopping?.();
        // What the stop's closing of the connections does to the statement.
        for (const pid of await waiting()) await holder.query('select pg_terminate_backend($1)', [pid]);
        const ownLines = () => lines.filter((line) => /^pg-boss/.test(line.msg));
        await waitUntil(() => ownLines().length > 0, 'the cut pass is logged');
        await holder.query('rollback');
        for (const line of ownLines()) {
          assert.equal(line.level, 20, `at debug: ${JSON.stringify(line)}`);
          assert.equal(line.stopped, true);
        }
      } finally {
        await holder.end().catch(() => undefined);
        await transport.close();
        await handle.close();
      }
    });
  },
);
