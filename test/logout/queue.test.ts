import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { newJti } from '../../src/logout/job-transport.ts';
import {
  claimDueJob,
  FINISHED_JOB_RETENTION_MS,
  finishJob,
  insertJobs,
  purgeFinishedJobs,
  rescheduleJob,
} from '../../src/logout/table-transport.ts';
import { connect, createTestDatabase, testDatabaseKind, type TestDatabase } from '../helpers/database.ts';

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

  it('purges finished jobs past their retention only', async () => {
    const now = T + FINISHED_JOB_RETENTION_MS + 20_000;
    const before = await handle.db.selectFrom('bcl_job').select('id').execute();
    await handle.db.transaction().execute((trx) => insertJobs(trx, [job('pending')], now));
    assert.equal(await purgeFinishedJobs(handle.db, now), 2, 'the two jobs finished at T');
    const left = await handle.db.selectFrom('bcl_job').select(['client_id', 'status']).execute();
    assert.deepEqual(left, [{ client_id: 'pending', status: 'pending' }]);
    assert.equal(before.length, 2);
  });
});
