import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createAuditBus } from '../../src/audit/bus.ts';
import { describeAuditEvent } from '../../src/audit/describe.ts';
import type { AuditEvent } from '../../src/audit/events.ts';
import {
  AUDIT_PURGE,
  batchDelayFor,
  createAuditStore,
  MAX_BATCH_DELAY_MS,
  type UnwrittenAuditEvents,
} from '../../src/audit/store.ts';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { createLogger } from '../../src/logging/logger.ts';
import { createMetrics } from '../../src/metrics/registry.ts';
import { testConfig } from '../helpers/config.ts';
import {
  createTestDatabase,
  type TestDatabase,
  testDatabaseKind,
  whileWritesRefused,
} from '../helpers/database.ts';
import { assertIndexOnly, planOfOnlyStatement } from '../helpers/query-plan.ts';
import { deletesDuring, watchStatements } from '../helpers/statements.ts';

const DAY = 86_400_000;

describe("the audit store's batch delay", () => {
  it('waits at most 100 ms, and a quarter of a shorter receiver timeout, within which the bus expects the batch', () => {
    assert.equal(MAX_BATCH_DELAY_MS, 100);
    assert.equal(batchDelayFor(2000), 100, 'the default timeout');
    assert.equal(batchDelayFor(400), 100);
    assert.equal(batchDelayFor(200), 50);
    assert.equal(batchDelayFor(10), 2);
    assert.equal(batchDelayFor(1), 0);
  });
});

describe(`audit events in the database (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;

  before(async () => {
    database = await createTestDatabase();
    handle = openDatabase(testConfig(database).database);
    await migrateToLatest(handle.db, handle.kind);
  });
  after(async () => {
    await handle.close();
    await database.drop();
  });

  /** An audit store with retention 90 days, the one receiver of a bus with a silent log. */
  const storeOnBus = () => {
    const store = createAuditStore(handle.db, { retentionDays: 90 });
    const bus = createAuditBus({
      logger: createLogger({ logging: { level: 'silent', maskedSecrets: false } }),
      metrics: createMetrics(),
      receiverTimeoutMs: 2000,
      receivers: [store.receiver],
    });
    return { store, bus };
  };

  const denied = (userId: number, stage: 'authorize' | 'validate_code'): AuditEvent => ({
    kind: 'policy_denied',
    client_id: 'wiki',
    user_id: userId,
    stage,
    reason: 'app',
  });

  it('stores what the bus publishes, newest first, filterable by kind, user, application and time', async () => {
    const { store, bus } = storeOnBus();
    const started = Date.now();
    bus.publish(denied(41, 'authorize'), { requestId: 'req-1' });
    bus.publish({
      kind: 'admin_change',
      entity: 'user',
      action: 'group_removed',
      entity_id: 41,
      name: '<script>alert(1)</script>',
      actor: 'admin:root',
      changed_fields: ['groups'],
      details: { group: 'Fleet' },
    });
    bus.publish({
      kind: 'admin_change',
      entity: 'application',
      action: 'deactivated',
      entity_id: 'wiki',
      name: 'Wiki',
      actor: 'cli:root',
      changed_fields: ['active'],
      details: {},
    });
    bus.publish(denied(42, 'validate_code'));
    await bus.close();

    const all = await store.list({ since: started - 1000 });
    assert.deepEqual(
      all.map((event) => event.kind),
      ['policy_denied', 'admin_change', 'admin_change', 'policy_denied'],
      'newest first',
    );
    assert.equal(all.at(-1)!.requestId, 'req-1');
    assert.equal(all.at(-1)!.record.request_id, 'req-1');
    assert.equal(all.at(-1)!.record.stage, 'authorize');

    const aboutUser = await store.list({ userId: 41 });
    assert.deepEqual(
      aboutUser.map((event) => event.kind),
      ['admin_change', 'policy_denied'],
      'the user of an admin change is filterable like any user_id',
    );
    const aboutApp = await store.list({ clientId: 'wiki', kinds: ['admin_change'] });
    assert.equal(aboutApp.length, 1);
    assert.equal(
      describeAuditEvent(aboutApp[0]!.record),
      'application Wiki deactivated (active) by cli:root',
    );
    assert.equal((await store.list({ until: started - 1000 })).length, 0);
    assert.equal((await store.list({ limit: 2 })).length, 2);
    const [newest] = await store.list({ limit: 1 });
    assert.equal((await store.list({ beforeId: newest!.id })).length, 3, 'the next page');
    assert.deepEqual([...(await store.countByKind({ since: started - 1000 })).entries()].sort(), [
      ['admin_change', 2],
      ['policy_denied', 2],
    ]);
  });

  it('counts in one line at its close the events whose write failed once the stop began, and only those', async () => {
    const lines: string[] = [];
    const logger = createLogger(
      { logging: { level: 'info', maskedSecrets: false } },
      { level: 'warn', destination: { write: (line: string) => void lines.push(line) } },
    );
    const told: UnwrittenAuditEvents[] = [];
    const store = createAuditStore(handle.db, {
      retentionDays: 90,
      onUnwritten: (unwritten) => void told.push(unwritten),
    });
    // Long enough for the refused write to fail (SQLite's busy timeout) rather than time out.
    const bus = createAuditBus({
      logger,
      metrics: createMetrics(),
      receiverTimeoutMs: 30_000,
      receivers: [store.receiver],
    });
    const failed = () => lines.filter((line) => line.includes('"msg":"audit receiver failed"')).length;

    await whileWritesRefused(handle, { table: 'audit_event', event: 'INSERT' }, async () => {
      bus.publish(denied(901, 'authorize'));
      await bus.idle();
      assert.equal(failed(), 1, 'before the stop, the bus logs the event whose write failed');
      bus.stopping();
      bus.publish(denied(902, 'authorize'));
      bus.publish(denied(903, 'validate_code'));
      bus.publish({
        kind: 'token_introspected',
        introspector: 'rs',
        token_sha256: 'c'.repeat(64),
        active: false,
        client_id: null,
      });
      await bus.idle();
    });
    assert.equal(failed(), 1, 'the events of the stop are not logged one by one');
    await bus.close();
    assert.deepEqual(told, [{ events: 3, kinds: { policy_denied: 2, token_introspected: 1 } }]);
  });

  it('stores the events whose types carry no free text as published, and scrubs the others again', async () => {
    const { store, bus } = storeOnBus();
    const started = Date.now();
    const introspected: AuditEvent = {
      kind: 'token_introspected',
      introspector: 'scrub-check-rs',
      token_sha256: 'a'.repeat(64),
      active: true,
      client_id: 'scrub-check',
    };
    bus.publish(introspected, { requestId: 'req-closed' });
    bus.publish({
      kind: 'token_revoked',
      client_id: 'scrub-check',
      user_id: 77,
      token_type: 'access_token',
      token_sha256: 'b'.repeat(64),
      reason: 'user_revoked',
      note: 'pasted Bearer abcdefghijklmnopqrstuvwxyz0123456789 by mistake',
    });
    await bus.close();

    const stored = await store.list({ since: started - 1000, clientId: 'scrub-check' });
    const closed = stored.find((event) => event.kind === 'token_introspected')!;
    const { time, ...rest } = closed.record;
    assert.equal(typeof time, 'string');
    assert.deepEqual(rest, { ...introspected, request_id: 'req-closed' });
    const revoked = stored.find((event) => event.kind === 'token_revoked')!;
    assert.doesNotMatch(String(revoked.record.note), /abcdefghijklmnopqrstuvwxyz0123456789/);
    assert.equal(revoked.record.token_sha256, 'b'.repeat(64));
  });

  it('stores text with quotes, backslashes, braces, control characters and lone surrogates in every column', async () => {
    const store = createAuditStore(handle.db, { retentionDays: 90 });
    const awkward =
      'a "quoted" \\ back\\slash, {braces}, [1,2], NULL, tab\t, newline\n, é, 🛰 and a lone \uD800';
    const clientId = 'odd "client" \\ {x} \uDC00';
    const requestId = 'req-"odd"-\\-{}';
    await store.receiver.receive({
      kind: 'admin_change',
      entity: 'application',
      action: 'updated',
      entity_id: clientId,
      name: awkward,
      actor: 'cli:root',
      changed_fields: ['name'],
      details: { previous: awkward },
      time: new Date().toISOString(),
      request_id: requestId,
    });
    // A lone surrogate is stored as U+FFFD in a text column (UTF-8 has no form for it); the payload
    // keeps its JSON escape, so the record reads back as published.
    const stored = await store.list({ clientId: 'odd "client" \\ {x} \uFFFD' });
    assert.equal(stored.length, 1);
    assert.equal(stored[0]!.requestId, requestId);
    assert.equal(stored[0]!.record.name, awkward);
    assert.deepEqual(stored[0]!.record.details, { previous: awkward });
    assert.equal(stored[0]!.record.entity_id, clientId);
  });

  it('deletes events older than the retention and keeps the rest', async () => {
    const now = Date.now();
    const store = createAuditStore(handle.db, { retentionDays: 30, now: () => now });
    const publishAt = async (at: number, userId: number) =>
      store.receiver.receive({ ...denied(userId, 'authorize'), time: new Date(at).toISOString() });
    await Promise.all([publishAt(now - 31 * DAY, 900), publishAt(now - 29 * DAY, 901)]);
    await store.purge();
    assert.equal((await store.list({ userId: 900 })).length, 0, 'older than 30 days: gone');
    assert.equal((await store.list({ userId: 901 })).length, 1, 'younger: kept');
  });

  it('deletes a backlog past the retention oldest first, a bounded share per purge, until none is left', async () => {
    const now = Date.now();
    await handle.db.deleteFrom('audit_event').execute();
    // A backlog of 2,500 events past the retention, a second apart, and three within it.
    const expired = Array.from({ length: 2500 }, (_, index) => ({
      recorded_at: now - 100 * DAY - index * 1000,
      kind: 'policy_denied',
      user_id: 7000,
      client_id: 'wiki',
      request_id: null,
      payload: '{}',
    }));
    for (let start = 0; start < expired.length; start += 500)
      await handle.db
        .insertInto('audit_event')
        .values(expired.slice(start, start + 500))
        .execute();
    await handle.db
      .insertInto('audit_event')
      .values(
        [1, 2, 89].map((days) => ({
          recorded_at: now - days * DAY,
          kind: 'policy_denied',
          user_id: 7001,
          client_id: 'wiki',
          request_id: null,
          payload: '{}',
        })),
      )
      .execute();
    const store = createAuditStore(handle.db, {
      retentionDays: 90,
      now: () => now,
      purgeBounds: { rows: 100, statements: 10 },
    });
    const left = async () => {
      const rows = await handle.db
        .selectFrom('audit_event')
        .select((eb) => ['user_id', eb.fn.countAll().as('n')])
        .groupBy('user_id')
        .orderBy('user_id')
        .execute();
      return rows.map((row) => [Number(row.user_id), Number(row.n)]);
    };
    /** One purge: what it returned, and how many DELETE statements it made. */
    const purge = async () => {
      const { result, deletes } = await deletesDuring(() => store.purge());
      return { ...result, statements: deletes };
    };

    assert.deepEqual(
      await purge(),
      { deleted: 1000, more: true, statements: 10 },
      'ten statements of a hundred',
    );
    assert.deepEqual(await left(), [
      [7000, 1500],
      [7001, 3],
    ]);
    // The oldest went first: what is left of the backlog is its newest 1,500.
    const oldest = await handle.db
      .selectFrom('audit_event')
      .select((eb) => eb.fn.min('recorded_at').as('t'))
      .executeTakeFirstOrThrow();
    assert.equal(Number(oldest.t), now - 100 * DAY - 1499 * 1000);

    assert.deepEqual(await purge(), { deleted: 1000, more: true, statements: 10 });
    assert.deepEqual(await left(), [
      [7000, 500],
      [7001, 3],
    ]);
    assert.deepEqual(
      await purge(),
      { deleted: 500, more: false, statements: 6 },
      'five full statements, then one that finds none: the round ends there',
    );
    assert.deepEqual(await left(), [[7001, 3]]);
    assert.deepEqual(await purge(), { deleted: 0, more: false, statements: 1 });

    // By default, a round is ten statements of a thousand.
    assert.deepEqual(AUDIT_PURGE, { rows: 1000, statements: 10 });
    await handle.db.deleteFrom('audit_event').execute();
  });

  it('finds the events to delete by their time, not by a scan of the table', async (t) => {
    if (handle.kind !== 'sqlite') return t.skip('the query plan is read on SQLite');
    const plan = await planOfOnlyStatement(handle.db, (observed) =>
      createAuditStore(observed, { retentionDays: 90 }).purge(),
    );
    assertIndexOnly(plan, /audit_event_time_idx/);
  });

  it('writes a burst of events in batches, every one of them', async () => {
    const store = createAuditStore(handle.db, { retentionDays: 90 });
    await Promise.all(
      Array.from({ length: 450 }, (_, index) =>
        store.receiver.receive({
          ...denied(5000 + (index % 3), 'authorize'),
          time: new Date().toISOString(),
        }),
      ),
    );
    const counts = await Promise.all([5000, 5001, 5002].map((userId) => store.list({ userId, limit: 1000 })));
    assert.deepEqual(
      counts.map((events) => events.length),
      [150, 150, 150],
    );
  });

  it('writes a large batch in one transaction of inserts of at most 64 events each on SQLite', async () => {
    const store = createAuditStore(handle.db, { retentionDays: 90 });
    const sizes: number[] = [];
    const restore = watchStatements((text) => {
      if (/^insert into "audit_event"/i.test(text)) sizes.push(text.split('(?, ?, ?, ?, ?, ?)').length - 1);
    });
    try {
      await Promise.all(
        Array.from({ length: 150 }, () =>
          store.receiver.receive({ ...denied(7000, 'validate_code'), time: new Date().toISOString() }),
        ),
      );
    } finally {
      restore();
    }
    if (testDatabaseKind === 'sqlite') assert.deepEqual(sizes, [64, 64, 22]);
    assert.equal((await store.list({ userId: 7000, limit: 1000 })).length, 150);
  });

  it('writes batches of any size with one statement text on PostgreSQL, prepared once', async () => {
    const store = createAuditStore(handle.db, { retentionDays: 90 });
    const texts = new Set<string>();
    const restore = watchStatements((text) => {
      if (/^insert into "audit_event"/i.test(text)) texts.add(text);
    });
    try {
      for (const size of [1, 3, 7]) {
        await Promise.all(
          Array.from({ length: size }, (_, index) =>
            store.receiver.receive({
              // Events without a user or an application (null columns) beside events with both.
              ...(index % 2 === 0
                ? denied(6000 + size, 'authorize')
                : {
                    kind: 'admin_change' as const,
                    entity: 'group' as const,
                    action: 'created',
                    entity_id: 7,
                    name: 'Fleet',
                    actor: 'cli:root',
                    changed_fields: [],
                    details: {},
                  }),
              time: new Date().toISOString(),
            }),
          ),
        );
      }
    } finally {
      restore();
    }
    assert.equal(texts.size, testDatabaseKind === 'postgres' ? 1 : 3);
    for (const size of [1, 3, 7]) {
      const events = await store.list({ userId: 6000 + size, limit: 1000 });
      assert.equal(events.length, Math.ceil(size / 2));
      assert.equal(events[0]!.clientId, 'wiki');
      assert.equal(events[0]!.record.stage, 'authorize');
    }
  });
});
