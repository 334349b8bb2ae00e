import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Kysely, sql } from 'kysely';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import type { Database } from '../../src/db/schema.ts';
import { expiredRowsPurge } from '../../src/oidc/expired-rows-purge.ts';
import { createLoginThrottle } from '../../src/oidc/interactions/throttle.ts';
import { purgeIssuedCodes } from '../../src/tokens/issued-codes.ts';
import { pruneChangeLog, purgeExpiredPayloads } from '../../src/tokens/store.ts';
import { connect, createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { assertIndexOnly, planOfOnlyStatement, postgresPlan, queriesDuring } from '../helpers/query-plan.ts';
import { waitUntil } from '../helpers/wait.ts';

const BUDGETS = {
  maxFailuresPerAccountAndAddress: 5,
  maxFailuresPerAccount: 10,
  maxCodeFailuresPerUser: 10,
  maxFailuresPerAddress: 100,
  failureWindowSeconds: 900,
};

const none = { deleted: 0, more: false };

/**
 * The periodic purge of expired provider rows works off a backlog (an outage's worth of expired
 * tokens, a password spray's failures) a bounded share a round, each table by an index, so that no
 * purge holds the writer for long and a stop waits for one statement at most.
 */
describe(`the purge of expired provider rows (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    handle = connect(database);
  });
  after(async () => {
    await handle?.close();
    await database?.drop();
  });

  it('purges every table again once the interval has passed, whatever table is still behind', async () => {
    const db = handle.db;
    let now = Date.now();
    const throttle = createLoginThrottle(db, handle.kind, BUDGETS, () => now);
    const purge = expiredRowsPurge(db, throttle, {
      bounds: { rows: 5, statements: 1 },
      now: () => now,
      everyTableMs: 60_000,
    });
    await db
      .insertInto('oidc_payload')
      .values(
        Array.from({ length: 12 }, (_, index) => ({
          model: 'AccessToken',
          id: `outage-${index}`,
          payload: '{}',
          grant_id: null,
          user_id: null,
          client_id: null,
          uid: null,
          expires_at: now - 120_000 - index,
        })),
      )
      .execute();
    const first = await purge();
    assert.deepEqual(first.behind, ['payloads']);
    // A login failure that leaves the throttle's window after that round.
    await db
      .insertInto('login_failure')
      .values({ username: 'late', address: '192.0.2.7', failed_at: now - 901_000 })
      .execute();
    const failures = async () => (await db.selectFrom('login_failure').select('username').execute()).length;

    now += 1000;
    const catchingUp = await purge();
    assert.deepEqual(
      catchingUp.tables.loginFailures,
      none,
      'a catch-up round purges the tables behind alone',
    );
    assert.equal(await failures(), 1);

    now += 60_000;
    const again = await purge();
    assert.deepEqual(again.tables.payloads, { deleted: 2, more: false });
    assert.deepEqual(
      again.tables.loginFailures,
      { deleted: 1, more: false },
      'the interval passed: every table',
    );
    assert.equal(await failures(), 0);
  });

  it('works off a backlog larger than a round over several rounds, only the tables behind, and nothing unexpired', async () => {
    const db = handle.db;
    const now = Date.now();
    const throttle = createLoginThrottle(db, handle.kind, BUDGETS, () => now);
    const purge = expiredRowsPurge(db, throttle, { bounds: { rows: 5, statements: 2 }, now: () => now });
    const payload = (id: string, expiresAt: number | null) => ({
      model: 'AccessToken',
      id,
      payload: '{}',
      grant_id: null,
      user_id: null,
      client_id: null,
      uid: null,
      // Expired over a minute ago: their deletion is not logged (migration 0071).
      expires_at: expiresAt,
    });
    await db
      .insertInto('oidc_payload')
      .values([
        ...Array.from({ length: 23 }, (_, index) => payload(`expired-${index}`, now - 120_000 - index)),
        payload('live', now + 60_000),
        payload('forever', null),
      ])
      .execute();
    await db
      .insertInto('login_failure')
      .values([
        ...Array.from({ length: 23 }, (_, index) => ({
          username: `spray-${index}`,
          address: `198.51.100.${index}`,
          failed_at: now - 901_000 - index,
        })),
        { username: 'recent', address: '192.0.2.1', failed_at: now - 10_000 },
      ])
      .execute();
    const code = (hash: string, reuseCount: number, expiresAt: number) => ({
      code_hash: `${hash}-`.padEnd(64, '0'),
      client_id: 'app',
      user_id: null,
      grant_id: null,
      access_token_id: null,
      refresh_token_id: null,
      reuse_count: reuseCount,
      last_reuse_at: reuseCount > 0 ? now - 5 : null,
      created_at: now - 100_000,
      expires_at: expiresAt,
    });
    await db
      .insertInto('issued_code')
      .values([
        ...Array.from({ length: 23 }, (_, index) => code(`e${index}`, 0, now - 1 - index)),
        code('reused', 2, now - 50),
        code('live', 0, now + 60_000),
      ])
      .execute();
    // Rows of the change log before the first round: deleted by the prune after the next.
    const logged = (prefix: string, count: number) =>
      sql`insert into change_log (key) values ${sql.join(
        Array.from({ length: count }, (_, index) => sql`(${`${prefix} ${index}`})`),
      )}`.execute(db);
    await logged('before', 23);
    await everyLoggedRowCommittedForPostgres(db);
    const horizon = async () =>
      Number(
        (await db.selectFrom('change_epoch').select('value').where('id', '=', 2).executeTakeFirstOrThrow())
          .value,
      );

    const full = { deleted: 10, more: true };
    const first = await purge();
    assert.deepEqual(first.tables, {
      payloads: full,
      changeLog: none,
      loginFailures: full,
      issuedCodes: full,
    });
    assert.deepEqual(first.behind.sort(), ['issuedCodes', 'loginFailures', 'payloads']);
    assert.deepEqual([first.deleted, first.more], [30, true]);
    // Logged after the first round raised the horizon: past what the prune after it deletes.
    await logged('after', 5);
    const horizonAfterFirst = await horizon();

    assert.deepEqual((await purge()).tables, {
      payloads: full,
      changeLog: none,
      loginFailures: full,
      issuedCodes: full,
    });
    const last = { deleted: 3, more: false };
    const third = await purge();
    assert.deepEqual(third.tables, {
      payloads: last,
      changeLog: none,
      loginFailures: last,
      issuedCodes: last,
    });
    assert.equal(third.more, false);
    assert.equal(await horizon(), horizonAfterFirst, 'a round catching up a backlog raised no horizon');

    // The next round at the interval: every table, the change log's prune begun again.
    assert.deepEqual((await purge()).tables, {
      payloads: none,
      changeLog: full,
      loginFailures: none,
      issuedCodes: none,
    });
    const raised = await horizon();
    assert.ok(raised !== horizonAfterFirst, 'a prune begins by raising the horizon');
    assert.deepEqual((await purge()).tables, {
      payloads: none,
      changeLog: full,
      loginFailures: none,
      issuedCodes: none,
    });
    assert.deepEqual((await purge()).tables, {
      payloads: none,
      changeLog: last,
      loginFailures: none,
      issuedCodes: none,
    });
    assert.equal(await horizon(), raised, 'nor did the change log catching up');

    assert.deepEqual(
      (await db.selectFrom('oidc_payload').select('id').orderBy('id').execute()).map((row) => row.id),
      ['forever', 'live'],
    );
    assert.deepEqual(
      (await db.selectFrom('login_failure').select('username').execute()).map((row) => row.username),
      ['recent'],
    );
    assert.deepEqual(
      (await db.selectFrom('issued_code').select('code_hash').orderBy('code_hash').execute()).map((row) =>
        row.code_hash.replace(/-0*$/, ''),
      ),
      ['live', 'reused'],
    );
    assert.deepEqual(
      (await db.selectFrom('change_log').select('key').orderBy('seq').execute()).map((row) => row.key),
      Array.from({ length: 5 }, (_, index) => `after ${index}`),
      'rows logged after the horizon stay',
    );
  });

  it('finds the rows to delete by an index on SQLite, not by a scan of the table', async (t) => {
    if (handle.kind !== 'sqlite') return t.skip('the query plan is read on SQLite here');
    const db = handle.db;
    assertIndexOnly(
      await planOfOnlyStatement(db, (observed) => purgeExpiredPayloads(observed)),
      /oidc_payload_expires_at_idx/,
    );
    assertIndexOnly(
      await planOfOnlyStatement(db, (observed) => purgeIssuedCodes(observed)),
      /issued_code_unreused_expires_idx/,
    );
    assertIndexOnly(
      await planOfOnlyStatement(db, (observed) => pruneChangeLog(observed, { continues: true })),
      /change_log USING INTEGER PRIMARY KEY \(rowid<\?\)/,
    );
  });

  it('finds the rows to delete by an index on PostgreSQL, even when nearly every row has expired', async (t) => {
    if (handle.kind !== 'postgres') return t.skip('the query plan is read on PostgreSQL here');
    const db = handle.db;
    const rows = 20_000;
    const longAgo = Date.now() - 86_400_000;
    await sql`insert into oidc_payload (model, id, payload, expires_at)
      select 'AccessToken', 'plan-' || n, '{}', ${longAgo}::bigint + n from generate_series(1, ${rows}) n`.execute(
      db,
    );
    await sql`insert into issued_code (code_hash, client_id, created_at, expires_at, reuse_count)
      select 'plan-' || n, 'app', ${longAgo}::bigint, ${longAgo}::bigint + n, case when n % 100 = 0 then 1 else 0 end
      from generate_series(1, ${rows}) n`.execute(db);
    await sql`insert into login_failure (username, address, failed_at)
      select 'plan-' || n, '192.0.2.1', ${longAgo}::bigint + n from generate_series(1, ${rows}) n`.execute(
      db,
    );
    await sql`insert into change_log (key) select 'plan ' || n from generate_series(1, ${rows}) n`.execute(
      db,
    );
    await sql`update change_epoch set value = pg_current_xact_id()::text::bigint + 1 where id = 2`.execute(
      db,
    );
    await sql`analyze oidc_payload, issued_code, login_failure, change_log`.execute(db);
    const oneStatement = { rows: 1, statements: 1 };
    const purges: [string, (observed: Kysely<Database>) => Promise<unknown>, RegExp][] = [
      [
        'oidc_payload',
        (observed) => purgeExpiredPayloads(observed, Date.now(), undefined, oneStatement),
        /oidc_payload_expires_at_idx/,
      ],
      [
        'issued_code',
        (observed) => purgeIssuedCodes(observed, Date.now(), undefined, oneStatement),
        /issued_code_unreused_expires_idx/,
      ],
      [
        'login_failure',
        (observed) => createLoginThrottle(observed, handle.kind, BUDGETS).purge(undefined, oneStatement),
        /login_failure_failed_at_idx/,
      ],
      [
        'change_log',
        (observed) => pruneChangeLog(observed, { continues: true, bounds: oneStatement }),
        /change_log_xid_idx/,
      ],
    ];
    for (const [table, work, index] of purges) {
      const { queries } = await queriesDuring(db, work);
      assert.equal(queries.length, 1, `${table}: one statement`);
      const plan = await postgresPlan(db, queries[0]!);
      assert.match(plan, new RegExp(`Index (Only )?Scan using ${index.source} on ${table}`), plan);
      assert.doesNotMatch(plan, new RegExp(`Seq Scan on ${table}`), plan);
    }
  });
});

/**
 * On PostgreSQL, a prune deletes the rows of transactions that had ended when the horizon was taken
 * (the oldest transaction then running, in any database of the server): waits until those that
 * logged the rows so far are past it, as they are within moments.
 */
async function everyLoggedRowCommittedForPostgres(db: Kysely<Database>): Promise<void> {
  if (testDatabaseKind !== 'postgres') return;
  await waitUntil(async () => {
    const { rows } = await sql<{ past: boolean }>`select (select max(xid::text::bigint) from change_log)
      < pg_snapshot_xmin(pg_current_snapshot())::text::bigint as past`.execute(db);
    return rows[0]?.past === true;
  }, 'no transaction older than the logged rows runs');
}
