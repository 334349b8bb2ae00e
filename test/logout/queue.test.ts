import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { newJti } from '../../src/logout/job-transport.ts';
import {
  claimDueJob,
  FINISHED_JOB_RETENTION_MS,
  claimDueJobs,
  deferJobs,
  finishJob,
  finishJobs,
  insertJobs,
  purgeFinishedJobs,
  rescheduleJob,
} from '../../src/logout/table-transport.ts';
import { connect, createTestDatabase, testDatabaseKind, type TestDatabase } from '../helpers/database.ts';
import { assertIndexOnly, planOfOnlyStatement } from '../helpers/query-plan.ts';
import { deletesDuring } from '../helpers/statements.ts';
import { finishedJobRow } from './jobs.ts';

describe(`bcl_job queue: claims with a lease (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  const T = 1_900_000_000_000;

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    handle = connect(database);
  });
  after(async () => {
    await handle.close();
    await database.drop();
  });

  const job = (clientId: string) => ({
    trigger: 'user_deactivated' as const,
    userId: 7,
    sub: '7',
    clientId,
    jti: newJti(),
    iat: T / 1000,
    exp: T / 1000 + 300,
    kid: 'kid-1',
    sid: null,
  });

  it('gives a due job to one claimant until its lease runs out, and counts each attempt', async () => {
    await handle.db.transaction().execute((trx) => insertJobs(trx, [job('leased')], T));
    const claimed = await claimDueJob(handle.db, handle.kind, 'worker-a', T, T + 5000);
    assert.equal(claimed?.client_id, 'leased');
    assert.equal(claimed?.attempts, 1);
    assert.equal(claimed?.first_attempt_at, T);
    assert.equal(await claimDueJob(handle.db, handle.kind, 'worker-b', T + 1000, T + 6000), undefined);
    // worker-a died: after its lease, worker-b takes the job over; worker-a can no longer finish it.
    const taken = await claimDueJob(handle.db, handle.kind, 'worker-b', T + 5001, T + 10_000);
    assert.equal(taken?.id, claimed?.id);
    assert.equal(taken?.attempts, 2);
    assert.equal(taken?.first_attempt_at, T, 'the first attempt time is kept');
    assert.equal(await finishJob(handle.db, claimed!, 'worker-a', 'success', 200, T + 5002), false);
    assert.equal(await finishJob(handle.db, taken!, 'worker-b', 'success', 200, T + 5003), true);
    assert.equal(await claimDueJob(handle.db, handle.kind, 'worker-c', T + 99_999, T + 100_000), undefined);
  });

  it('does not hand out a rescheduled job before its time', async () => {
    await handle.db.transaction().execute((trx) => insertJobs(trx, [job('later')], T));
    const claimed = await claimDueJob(handle.db, handle.kind, 'worker-a', T, T + 5000);
    assert.equal(await rescheduleJob(handle.db, claimed!, 'worker-a', T + 10_000, 503), true);
    assert.equal(await claimDueJob(handle.db, handle.kind, 'worker-a', T + 9999, T + 20_000), undefined);
    const again = await claimDueJob(handle.db, handle.kind, 'worker-a', T + 10_000, T + 20_000);
    assert.equal(again?.attempts, 2);
    assert.equal(again?.last_http_status, 503);
    await finishJob(handle.db, again!, 'worker-a', 'retries_exhausted', 503, T + 10_001);
  });

  it('puts claimed jobs back without counting their claim as an attempt, fenced to the lease', async () => {
    await handle.db
      .transaction()
      .execute((trx) => insertJobs(trx, [job('deferred'), job('deferred-again')], T));
    const [first, second] = await claimDueJobs(handle.db, handle.kind, 'worker-a', T, T + 5000, 2);
    assert.equal(first?.attempts, 1);
    // The second one was attempted once before (HTTP 503): its count and first time stay.
    assert.equal(await rescheduleJob(handle.db, second!, 'worker-a', T + 1000, 503), true);
    const retried = await claimDueJob(handle.db, handle.kind, 'worker-a', T + 1000, T + 6000);
    assert.equal(retried?.attempts, 2);
    const asClaimed = (row: typeof first) => ({ id: Number(row!.id), attempts: row!.attempts });
    assert.deepEqual(
      await deferJobs(handle.db, [asClaimed(first), asClaimed(retried)], 'worker-b', T + 9000),
      [false, false],
    );
    assert.deepEqual(
      await deferJobs(handle.db, [asClaimed(first), asClaimed(retried)], 'worker-a', T + 9000),
      [true, true],
    );
    assert.equal(await claimDueJob(handle.db, handle.kind, 'worker-a', T + 8999, T + 20_000), undefined);
    const [again, retriedAgain] = await claimDueJobs(
      handle.db,
      handle.kind,
      'worker-a',
      T + 9000,
      T + 20_000,
      2,
    );
    assert.equal(again?.id, first?.id);
    assert.equal(again?.attempts, 1, 'the deferred claim was not counted');
    assert.equal(again?.first_attempt_at, T + 9000, 'its first attempt is the one made now');
    assert.equal(retriedAgain?.id, second?.id);
    assert.equal(retriedAgain?.attempts, 2);
    assert.equal(retriedAgain?.first_attempt_at, T, 'the first attempt made before is kept');
    assert.equal(retriedAgain?.last_http_status, 503);
    await handle.db
      .deleteFrom('bcl_job')
      .where('id', 'in', [Number(again!.id), Number(retriedAgain!.id)])
      .execute();
  });

  it('finishes a batch of claimed jobs by outcome, each fenced to its own lease', async () => {
    const U = T + 1_000_000;
    await handle.db
      .transaction()
      .execute((trx) => insertJobs(trx, ['batch-a', 'batch-b', 'batch-c', 'batch-d'].map(job), U));
    const claimed = await claimDueJobs(handle.db, handle.kind, 'worker-a', U, U + 5000, 4);
    assert.equal(claimed.length, 4);
    // worker-a's lease of the third job ran out and worker-b took it over.
    const lost = claimed[2]!;
    await handle.db
      .updateTable('bcl_job')
      .set({ lease_owner: 'worker-b' })
      .where('id', '=', lost.id)
      .execute();
    const settlement = (row: (typeof claimed)[number], outcome: string, httpStatus: number | null) => ({
      job: { ...job(row.client_id), id: row.id, attempts: 1, firstAttemptAt: U },
      outcome,
      httpStatus,
    });
    const finished = await handle.db
      .transaction()
      .execute((trx) =>
        finishJobs(
          trx,
          [
            settlement(claimed[0]!, 'success', 200),
            settlement(claimed[1]!, 'rp_client_error', 400),
            settlement(lost, 'success', 200),
            settlement(claimed[3]!, 'success', 204),
          ],
          'worker-a',
          U + 10,
        ),
      );
    assert.deepEqual(finished, [true, true, false, true]);
    const rows = await handle.db
      .selectFrom('bcl_job')
      .select(['client_id', 'status', 'outcome', 'last_http_status', 'lease_owner', 'finished_at'])
      .where('client_id', 'like', 'batch-%')
      .orderBy('client_id')
      .execute();
    assert.deepEqual(
      rows.map((row) => [row.client_id, row.status, row.outcome, row.last_http_status, row.lease_owner]),
      [
        ['batch-a', 'done', 'success', 200, null],
        ['batch-b', 'done', 'rp_client_error', 400, null],
        ['batch-c', 'pending', null, null, 'worker-b'],
        ['batch-d', 'done', 'success', 204, null],
      ],
    );
    // A second settlement of a finished job finishes nothing.
    const again = await handle.db
      .transaction()
      .execute((trx) => finishJobs(trx, [settlement(claimed[0]!, 'success', 200)], 'worker-a', U + 20));
    assert.deepEqual(again, [false]);
    await finishJob(handle.db, lost, 'worker-b', 'success', 200, U + 30);
    await handle.db.deleteFrom('bcl_job').where('client_id', 'like', 'batch-%').execute();
  });

  it('purges finished jobs past their retention only', async () => {
    const now = T + FINISHED_JOB_RETENTION_MS + 20_000;
    const before = await handle.db.selectFrom('bcl_job').select('id').execute();
    await handle.db.transaction().execute((trx) => insertJobs(trx, [job('pending')], now));
    assert.deepEqual(
      await purgeFinishedJobs(handle.db, now),
      { deleted: 2, more: false },
      'the two jobs finished at T',
    );
    const left = await handle.db.selectFrom('bcl_job').select(['client_id', 'status']).execute();
    assert.deepEqual(left, [{ client_id: 'pending', status: 'pending' }]);
    assert.equal(before.length, 2);
  });

  it('purges a backlog of finished jobs oldest first, a bounded share per call, until none is left', async () => {
    await handle.db.deleteFrom('bcl_job').execute();
    const now = T + FINISHED_JOB_RETENTION_MS + 10_000_000;
    // 2,500 jobs finished past the retention, a second apart; one finished within it; one pending.
    const backlog = Array.from({ length: 2500 }, (_, index) => finishedJobRow('old', T - index * 1000));
    for (let start = 0; start < backlog.length; start += 500)
      await handle.db
        .insertInto('bcl_job')
        .values(backlog.slice(start, start + 500))
        .execute();
    await handle.db
      .insertInto('bcl_job')
      .values(finishedJobRow('recent', now - FINISHED_JOB_RETENTION_MS + 1000))
      .execute();
    await handle.db.transaction().execute((trx) => insertJobs(trx, [job('pending')], now));
    const left = async () => {
      const rows = await handle.db
        .selectFrom('bcl_job')
        .select((eb) => ['client_id', eb.fn.countAll().as('n')])
        .groupBy('client_id')
        .orderBy('client_id')
        .execute();
      return rows.map((row) => [row.client_id, Number(row.n)]);
    };
    /** One purge: what it returned, and how many DELETE statements it made. */
    const purge = async () => {
      const { result, deletes } = await deletesDuring(() =>
        purgeFinishedJobs(handle.db, now, { rows: 100, statements: 10 }),
      );
      return { ...result, statements: deletes };
    };

    assert.deepEqual(await purge(), { deleted: 1000, more: true, statements: 10 });
    assert.deepEqual(await left(), [
      ['old', 1500],
      ['pending', 1],
      ['recent', 1],
    ]);
    const oldest = await handle.db
      .selectFrom('bcl_job')
      .select((eb) => eb.fn.min('finished_at').as('t'))
      .executeTakeFirstOrThrow();
    assert.equal(Number(oldest.t), T - 1499 * 1000, 'the oldest went first');
    assert.deepEqual(await purge(), { deleted: 1000, more: true, statements: 10 });
    assert.deepEqual(await left(), [
      ['old', 500],
      ['pending', 1],
      ['recent', 1],
    ]);
    assert.deepEqual(await purge(), { deleted: 500, more: false, statements: 6 });
    assert.deepEqual(await left(), [
      ['pending', 1],
      ['recent', 1],
    ]);
    await handle.db.deleteFrom('bcl_job').execute();
  });

  it('finds the finished jobs to delete by status and time, not by a scan of the queue', async (t) => {
    if (handle.kind !== 'sqlite') return t.skip('the query plan is read on SQLite');
    const plan = await planOfOnlyStatement(handle.db, (observed) => purgeFinishedJobs(observed, T));
    assertIndexOnly(plan, /bcl_job_finished_idx \(status=\? AND finished_at<\?\)/);
  });
});
