import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type AuditReceiver, createAuditBus } from '../../src/audit/bus.ts';
import type { AuditEvent, AuditRecord } from '../../src/audit/events.ts';
import { createLogger } from '../../src/logging/logger.ts';
import { createMetrics } from '../../src/metrics/registry.ts';

const introspected: AuditEvent = {
  kind: 'token_introspected',
  introspector: 'resource-server',
  token_sha256: 'a'.repeat(64),
  active: true,
  client_id: 'wiki',
};

function setup(receivers: AuditReceiver[], receiverTimeoutMs = 50, maxPendingPerReceiver?: number) {
  const lines: string[] = [];
  const logger = createLogger(
    { logging: { level: 'info', maskedSecrets: false } },
    { level: 'trace', destination: { write: (chunk: string) => void lines.push(chunk) } },
  );
  const metrics = createMetrics({ defaultMetrics: false });
  const bus = createAuditBus({ logger, metrics, receiverTimeoutMs, receivers, maxPendingPerReceiver });
  const failures = async (signal: string, receiver: string) => {
    const metric = await metrics.auditReceiverFailures.get();
    return (
      metric.values.find((value) => value.labels.signal === signal && value.labels.receiver === receiver)
        ?.value ?? 0
    );
  };
  return { bus, lines, failures };
}

/**
 * A receiver timeout for the tests of a loop held past it: the receiver's few turns after the hold
 * must fit in it even when the test process is not scheduled for a while (a CI machine running other
 * suites on its two cores took 50 ms from one of them).
 */
const LOADED_MACHINE_TIMEOUT_MS = 400;
/** Longer than `LOADED_MACHINE_TIMEOUT_MS` and the lateness the bus reads as a held loop (50 ms). */
const HELD_PAST_THE_TIMEOUT_MS = 600;

/** Holds the event loop with synchronous work for `ms`, starting on the next turn. */
function holdTheLoop(ms: number): Promise<void> {
  return new Promise((resolve) =>
    setImmediate(() => {
      const until = Date.now() + ms;
      while (Date.now() < until);
      resolve();
    }),
  );
}

function collector(name = 'collector') {
  const records: AuditRecord[] = [];
  return {
    records,
    receiver: { name, receive: (record: AuditRecord) => void records.push(record) } satisfies AuditReceiver,
  };
}

describe('audit bus', () => {
  it('isolates a throwing and a never-resolving receiver from the caller and from the others', async () => {
    const before = collector('before');
    const afterwards = collector('after');
    let hungCalls = 0;
    const { bus, failures, lines } = setup([
      before.receiver,
      {
        name: 'throws',
        receive: () => {
          throw new Error('receiver bug');
        },
      },
      {
        name: 'rejects',
        receive: async () => {
          throw new Error('async receiver bug');
        },
      },
      {
        name: 'hangs',
        receive: () => {
          hungCalls += 1;
          return new Promise<void>(() => {});
        },
      },
      afterwards.receiver,
    ]);

    let returned: unknown = 'not called';
    assert.doesNotThrow(() => {
      returned = bus.publish(introspected, { requestId: 'req-1' });
    });
    assert.doesNotThrow(() => bus.publish({ ...introspected, active: false }));
    // publish() hands back nothing to await: the caller cannot be made to wait on the hung receiver.
    assert.equal(returned, undefined);
    assert.equal(before.records.length, 0, 'receivers run off the publisher path');

    await bus.idle();
    assert.equal(hungCalls, 2);
    for (const { records } of [before, afterwards]) {
      assert.deepEqual(
        records.map((record) => [record.kind, (record as { active: boolean }).active, record.request_id]),
        [
          ['token_introspected', true, 'req-1'],
          ['token_introspected', false, undefined],
        ],
      );
      assert.match(records[0]!.time, /^\d{4}-\d{2}-\d{2}T/);
    }
    assert.equal(await failures('token_introspected', 'throws'), 2);
    assert.equal(await failures('token_introspected', 'rejects'), 2);
    assert.equal(await failures('token_introspected', 'hangs'), 2);
    assert.equal(await failures('token_introspected', 'before'), 0);
    const warnings = lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.msg === 'audit receiver failed');
    assert.deepEqual(
      new Set(warnings.map((line) => `${line.receiver}:${line.failure}`)),
      new Set(['throws:error', 'rejects:error', 'hangs:timeout']),
    );
  });

  it('gives every receiver the same frozen record, so one cannot change what another sees', async () => {
    const seen = collector();
    const { bus, failures } = setup([
      {
        name: 'mutator',
        receive: (record) => {
          (record as { active: boolean }).active = false;
        },
      },
      seen.receiver,
    ]);
    const event = { ...introspected };
    bus.publish(event);
    event.active = false; // the publisher changing its object afterwards changes nothing either
    await bus.idle();
    assert.equal((seen.records[0] as { active: boolean }).active, true);
    assert.equal(await failures('token_introspected', 'mutator'), 1);
  });

  it('never gives a receiver the kinds it skips, and still gives them to the others', async () => {
    const everything = collector('everything');
    const picky = collector('picky');
    const { bus } = setup([
      everything.receiver,
      { ...picky.receiver, skips: new Set(['token_introspected', 'policy_denied'] as const) },
    ]);
    const revoked: AuditEvent = {
      kind: 'token_revoked',
      reason: 'revocation_endpoint',
      token_type: 'access_token',
      token_sha256: 'b'.repeat(64),
      client_id: 'wiki',
      user_id: 7,
    };
    bus.publish(introspected);
    bus.publish(revoked);
    bus.publish({ kind: 'policy_denied', client_id: 'wiki', user_id: 7, stage: 'authorize', reason: 'app' });
    await bus.idle();
    assert.deepEqual(
      everything.records.map((record) => record.kind),
      ['token_introspected', 'token_revoked', 'policy_denied'],
    );
    assert.deepEqual(
      picky.records.map((record) => record.kind),
      ['token_revoked'],
    );
  });

  it('counts events beyond the pending limit of a hung receiver as failures instead of queueing them', async () => {
    const { bus, failures } = setup([{ name: 'hangs', receive: () => new Promise<void>(() => {}) }], 50, 2);
    for (let index = 0; index < 5; index += 1) bus.publish(introspected);
    await bus.idle();
    assert.equal(await failures('token_introspected', 'hangs'), 5);
  });

  it('times the events a receiver answers with one promise (a batch) with one timer, and settles each', async () => {
    let commit!: () => void;
    const batch = new Promise<void>((resolve) => (commit = resolve));
    const seen: AuditRecord[] = [];
    const { bus, failures } = setup([
      {
        name: 'batched',
        receive: (record) => {
          seen.push(record);
          return batch;
        },
      },
    ]);
    const realSetTimeout = globalThis.setTimeout;
    let timers = 0;
    globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
      timers += 1;
      return realSetTimeout(...args);
    }) as typeof setTimeout;
    try {
      for (let index = 0; index < 3; index += 1) bus.publish(introspected);
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      globalThis.setTimeout = realSetTimeout;
    }
    assert.equal(seen.length, 3);
    assert.equal(timers, 1, 'one timeout for the three events of the batch');
    commit();
    await bus.idle();
    assert.equal(await failures('token_introspected', 'batched'), 0);
  });

  it('does not count a receiver as timed out when its timeout fell while other work held the event loop', async () => {
    // The receiver's work finishes through a timer of its own and a later turn of the loop (the
    // database receiver's batch delay, then its statement): shorter than its timeout, but something
    // else holds the event loop past both. Its timeout and its own timer then fire in one turn.
    const { bus, failures, lines } = setup(
      [
        {
          name: 'batched',
          receive: () => new Promise<void>((resolve) => setTimeout(() => setImmediate(resolve), 5)),
        },
      ],
      LOADED_MACHINE_TIMEOUT_MS,
    );
    bus.publish(introspected);
    await holdTheLoop(HELD_PAST_THE_TIMEOUT_MS); // other synchronous work, past the timeout
    await bus.idle();
    assert.equal(await failures('token_introspected', 'batched'), 0);
    assert.ok(!lines.some((line) => line.includes('audit receiver failed')));
  });

  it('gives a receiver whose work needs several turns of the loop a full timeout once the loop is free', async () => {
    // The database receiver's batch on SQLite's write worker: its delay (a timer), then the flush and
    // the worker's answer, each a later turn. Other work holds the loop past the timeout right after
    // the event is published; the receiver then needs three more turns, which a timeout fired in the
    // same turn would not wait for.
    const { bus, failures, lines } = setup(
      [
        {
          name: 'worker',
          receive: () =>
            new Promise<void>((resolve) =>
              setTimeout(() => setImmediate(() => setImmediate(() => setImmediate(resolve))), 5),
            ),
        },
      ],
      LOADED_MACHINE_TIMEOUT_MS,
    );
    bus.publish(introspected);
    await holdTheLoop(HELD_PAST_THE_TIMEOUT_MS); // other synchronous work, past the timeout
    await bus.idle();
    assert.equal(await failures('token_introspected', 'worker'), 0);
    assert.ok(!lines.some((line) => line.includes('audit receiver failed')));
  });

  it('never throws, even for an event that cannot be cloned, and keeps delivering afterwards', async () => {
    const seen = collector();
    const { bus, lines } = setup([seen.receiver]);
    assert.doesNotThrow(() => bus.publish({ ...introspected, client_id: (() => 'x') as unknown as string }));
    bus.publish(introspected);
    await bus.idle();
    assert.equal(seen.records.length, 1);
    assert.ok(lines.some((line) => line.includes('audit event could not be published')));
  });

  it('stops receiving after close and closes its receivers once', async () => {
    let closed = 0;
    const seen = collector();
    const { bus } = setup([{ ...seen.receiver, close: () => void (closed += 1) }]);
    bus.publish(introspected);
    await bus.close();
    await bus.close();
    bus.publish(introspected);
    await bus.idle();
    assert.equal(seen.records.length, 1);
    assert.equal(closed, 1);
  });

  it('once the stop began, leaves the failures of a receiver that counts them at its close to that count', async () => {
    let told = 0;
    const hung = () => new Promise<void>(() => {});
    const { bus, failures, lines } = setup([
      // The database store's way: told of the stop, it counts at its close what it did not write.
      { name: 'counts-at-close', receive: hung, stopping: () => void (told += 1) },
      { name: 'hangs', receive: hung },
    ]);
    const logged = () =>
      lines
        .map((line) => JSON.parse(line) as { level: number; msg: string; receiver?: string })
        .filter((line) => line.msg === 'audit receiver failed')
        .map(
          (line) =>
            `${line.receiver} ${line.level === 40 ? 'warn' : line.level === 20 ? 'debug' : line.level}`,
        );

    bus.publish(introspected);
    await bus.idle();
    assert.deepEqual(
      logged(),
      ['counts-at-close warn', 'hangs warn'],
      'before the stop, every failure at warn',
    );

    lines.length = 0;
    bus.stopping();
    bus.stopping();
    assert.equal(told, 1, 'told once');
    bus.publish(introspected);
    bus.publish(introspected);
    await bus.idle();
    assert.deepEqual(
      logged().sort(),
      ['counts-at-close debug', 'counts-at-close debug', 'hangs warn', 'hangs warn'],
      'the receiver that counts them says so at its close, once; the others are logged as ever',
    );
    assert.equal(await failures('token_introspected', 'counts-at-close'), 3, 'still counted in the metric');
    assert.equal(await failures('token_introspected', 'hangs'), 3);
  });

  it('tells its receivers of the stop as it closes, when no one did before', async () => {
    let told = 0;
    const seen = collector();
    const { bus } = setup([{ ...seen.receiver, stopping: () => void (told += 1) }]);
    await bus.close();
    assert.equal(told, 1);
  });

  it('lets a receiver unsubscribe', async () => {
    const seen = collector();
    const { bus } = setup([]);
    const unsubscribe = bus.subscribe(seen.receiver);
    bus.publish(introspected);
    unsubscribe();
    bus.publish(introspected);
    await bus.idle();
    assert.equal(seen.records.length, 1);
  });
});
