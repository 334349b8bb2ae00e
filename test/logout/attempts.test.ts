import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { newJti } from '../../src/logout/job-transport.ts';
import {
  type DeliveryAttemptRecord,
  listDeliveryAttempts,
  purgeDeliveryAttempts,
  recordDeliveryAttempts,
} from '../../src/logout/attempts.ts';
import {
  FINISHED_JOB_PURGE,
  FINISHED_JOB_RETENTION_MS,
  insertJobs,
} from '../../src/logout/table-transport.ts';
import { connect, createTestDatabase, testDatabaseKind, type TestDatabase } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { assertIndexOnly, planOfOnlyStatement } from '../helpers/query-plan.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';
import { type LogoutWorkerFixture, startLogoutWorkerFixture } from '../helpers/logout-worker.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { finishedJobRow } from './jobs.ts';

const DAY_MS = 86_400_000;

/** `count` recorded outcomes at `clientId`, the first recorded at `recordedAt`, a millisecond apart. */
function records(
  clientId: string,
  count: number,
  recordedAt: number,
  outcome: DeliveryAttemptRecord['outcome'] = 'retries_exhausted',
): DeliveryAttemptRecord[] {
  return Array.from({ length: count }, (_, index) => ({
    clientId,
    clientName: clientId,
    userId: 7,
    trigger: 'user_deactivated',
    jti: newJti(),
    attempts: outcome === 'cancelled' ? 0 : 5,
    outcome,
    httpStatus: outcome === 'cancelled' ? null : 503,
    detail: outcome === 'cancelled' ? 'application_deactivated' : 'HTTP 503',
    recordedAt: recordedAt + index,
  }));
}

/** An audit event recorded at `recordedAt` (a logout dispatched): no purge of delivery outcomes touches it. */
async function auditEvent(db: DatabaseHandle['db'], recordedAt: number): Promise<void> {
  await db
    .insertInto('audit_event')
    .values({
      recorded_at: recordedAt,
      kind: 'logout_dispatched',
      user_id: 7,
      client_id: 'kept-audit',
      request_id: null,
      payload: '{}',
    })
    .execute();
}

async function clientsLeft(db: DatabaseHandle['db']): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom('bcl_delivery_attempt')
    .select((eb) => ['client_id', eb.fn.countAll().as('n')])
    .groupBy('client_id')
    .execute();
  return new Map(rows.map((row) => [row.client_id, Number(row.n)]));
}

describe(`delivery outcomes past their retention (${testDatabaseKind})`, () => {
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

  it('deletes the outcomes recorded before the cutoff, oldest first, a bounded batch at a time, and nothing else', async () => {
    const cutoff = T - 30 * DAY_MS;
    await recordDeliveryAttempts(handle.db, [
      ...records('old', 20, cutoff - 20),
      ...records('old-cancelled', 5, cutoff - 40, 'cancelled'),
      ...records('at-cutoff', 1, cutoff),
      ...records('recent', 3, T - DAY_MS),
    ]);
    await handle.db.transaction().execute((trx) =>
      insertJobs(
        trx,
        [
          {
            trigger: 'user_deactivated',
            userId: 7,
            sub: '7',
            clientId: 'queued',
            jti: newJti(),
            iat: (cutoff - DAY_MS) / 1000,
            exp: (cutoff - DAY_MS) / 1000 + 300,
            kid: 'kid-1',
            sid: null,
          },
        ],
        cutoff - DAY_MS,
      ),
    );
    await auditEvent(handle.db, cutoff - DAY_MS);

    // Two statements of ten: the five cancellations, recorded first, and the fifteen oldest failures.
    assert.deepEqual(await purgeDeliveryAttempts(handle.db, cutoff, { rows: 10, statements: 2 }), {
      deleted: 20,
      more: true,
    });
    assert.deepEqual(
      await clientsLeft(handle.db),
      new Map([
        ['old', 5],
        ['at-cutoff', 1],
        ['recent', 3],
      ]),
    );
    assert.deepEqual(await purgeDeliveryAttempts(handle.db, cutoff, { rows: 10, statements: 2 }), {
      deleted: 5,
      more: false,
    });
    assert.deepEqual(await purgeDeliveryAttempts(handle.db, cutoff), { deleted: 0, more: false });

    const listed = await listDeliveryAttempts(handle.db);
    assert.deepEqual(
      listed.map((row) => row.clientId),
      ['recent', 'recent', 'recent', 'at-cutoff'],
      'the listing (admin deliveries page, bcl list) shows what is kept',
    );
    assert.equal((await handle.db.selectFrom('bcl_job').select('client_id').execute()).length, 1);
    assert.equal((await handle.db.selectFrom('audit_event').select('id').execute()).length, 1);
  });

  it('finds the outcomes to delete by their time, not by a scan of the table', async (t) => {
    if (handle.kind !== 'sqlite') return t.skip('the query plan is read on SQLite');
    const plan = await planOfOnlyStatement(handle.db, (observed) => purgeDeliveryAttempts(observed, T));
    assertIndexOnly(plan, /bcl_delivery_attempt_recorded_idx/);
  });
});

describe(`the logout worker purges delivery outcomes past logout.recordRetentionDays (${testDatabaseKind})`, () => {
  let fixture: LogoutWorkerFixture;

  before(async () => {
    fixture = await startLogoutWorkerFixture({ logout: { recordRetentionDays: 30 } });
  });
  after(async () => fixture.close());

  it('deletes the outcomes older than the retention, over several rounds when many, and keeps the recent ones and the audit log', async () => {
    const db = fixture.services.database.db;
    const now = Date.now();
    // More than one round deletes (ten thousand): the rounds after the first go on with the rest.
    await recordDeliveryAttempts(db, [
      ...records('expired', 10_050, now - 31 * DAY_MS),
      ...records('expired-cancelled', 10, now - 40 * DAY_MS, 'cancelled'),
      ...records('kept', 4, now - 29 * DAY_MS),
      ...records('kept-cancelled', 2, now - DAY_MS, 'cancelled'),
    ]);
    // Older than the delivery outcomes' retention, within the audit log's (90 days).
    await auditEvent(db, now - 60 * DAY_MS);

    const worker = fixture.services.logout.startWorker({ pollIntervalMs: 20 });
    try {
      await eventually(
        async () => !(await clientsLeft(db)).has('expired'),
        'the outcomes past their retention are gone',
      );
    } finally {
      await worker.stop();
    }
    assert.deepEqual(
      await clientsLeft(db),
      new Map([
        ['kept', 4],
        ['kept-cancelled', 2],
      ]),
    );
    assert.equal(
      (await db.selectFrom('audit_event').select('id').where('client_id', '=', 'kept-audit').execute())
        .length,
      1,
    );
  });
});

describe(`the logout worker purges finished jobs past their retention (${testDatabaseKind})`, () => {
  let fixture: LogoutWorkerFixture;

  before(async () => {
    fixture = await startLogoutWorkerFixture();
  });
  after(async () => fixture.close());

  it('deletes a backlog larger than one round over the rounds that follow, and keeps the recent ones', async (t) => {
    if (fixture.services.database.kind !== 'sqlite')
      return t.skip('bcl_job is the queue on SQLite; pg-boss deletes its own finished jobs');
    const db = fixture.services.database.db;
    const now = Date.now();
    // More than one round deletes (FINISHED_JOB_PURGE, ten thousand): the rounds after the first go on.
    const backlog = Array.from(
      { length: FINISHED_JOB_PURGE.rows * FINISHED_JOB_PURGE.statements + 50 },
      (_, index) => finishedJobRow('expired', now - FINISHED_JOB_RETENTION_MS - DAY_MS - index),
    );
    for (let start = 0; start < backlog.length; start += 500)
      await db
        .insertInto('bcl_job')
        .values(backlog.slice(start, start + 500))
        .execute();
    await db
      .insertInto('bcl_job')
      .values(finishedJobRow('kept', now - DAY_MS))
      .execute();
    const jobsLeft = async () =>
      (
        await db
          .selectFrom('bcl_job')
          .select((eb) => ['client_id', eb.fn.countAll().as('n')])
          .groupBy('client_id')
          .execute()
      ).map((row) => [row.client_id, Number(row.n)]);

    const worker = fixture.services.logout.startWorker({ pollIntervalMs: 20 });
    try {
      await eventually(
        async () => !(await jobsLeft()).some(([clientId]) => clientId === 'expired'),
        'the finished jobs past their retention are gone',
      );
    } finally {
      await worker.stop();
    }
    assert.deepEqual(await jobsLeft(), [['kept', 1]]);
  });
});

describe(`a purge of delivery outcomes that fails (${testDatabaseKind})`, () => {
  let server: TestServer;
  const harness = createLeakHarness();

  before(async () => {
    server = await startServer({ logout: { recordRetentionDays: 30 } }, { harness });
  });
  after(async () => server.close());

  it("is told at warn, once, and leaves the worker's rounds as they were (no failure, no backoff)", async () => {
    const { db, kind } = server.app.database;
    // The database's own refusal of the purge's DELETE, as a lock or a deadlock with another worker would fail it.
    if (kind === 'sqlite')
      await sql`create trigger refuse_purge before delete on bcl_delivery_attempt begin select raise(abort, 'purge refused by the test'); end`.execute(
        db,
      );
    else {
      await sql`create function refuse_purge() returns trigger language plpgsql as $$ begin raise exception 'purge refused by the test'; end $$`.execute(
        db,
      );
      await sql`create trigger refuse_purge before delete on bcl_delivery_attempt for each row execute function refuse_purge()`.execute(
        db,
      );
    }
    await recordDeliveryAttempts(db, records('expired', 3, Date.now() - 31 * DAY_MS));
    const lines = (pattern: RegExp) => harness.logLines.filter((line) => pattern.test(line));
    const worker = server.app.logout.startWorker({ pollIntervalMs: 20 });
    try {
      await eventually(
        async () => lines(/deleting recorded logout outcomes past their retention failed/).length > 0,
        'the failed purge is told',
      );
    } finally {
      await worker.stop();
    }
    const told = lines(/deleting recorded logout outcomes past their retention failed/);
    assert.equal(told.length, 1, 'tried again at the next purge (ten minutes on), not every round');
    assert.match(told[0]!, /"level":40/);
    assert.match(told[0]!, /purge refused by the test/);
    assert.deepEqual(lines(/"msg":"logout worker/), [], 'no round of the worker failed');
    assert.equal((await clientsLeft(db)).get('expired'), 3);
  });
});
