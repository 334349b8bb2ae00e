import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.ts';
import { isDatabaseUnavailable } from '../../src/db/errors.ts';
import { type WriteDb, unbatchedWrites, writeBatch } from '../../src/db/write-batch.ts';
import { raiseChangeEpoch, readChangeEpoch } from '../../src/db/change-epoch.ts';
import {
  type AdapterRow,
  type PayloadRow,
  payloadConsumes,
  payloadRowWrites,
  payloadRowWritesAtEpoch,
  writePayloadRow,
  writePayloadRows,
} from '../../src/tokens/store.ts';
import { connect, createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { watchStatements } from '../helpers/statements.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';

function row(id: string): PayloadRow & AdapterRow {
  return {
    model: 'ClientCredentials',
    id,
    consumed_at: null,
    payload: '{}',
    grant_id: null,
    user_id: null,
    client_id: 'batch-client',
    uid: null,
    user_code: null,
    expires_at: Date.now() + 60_000,
    format: 'opaque',
    value_sha256: null,
  };
}

/**
 * Writes that concurrent requests reach in one turn are committed together on SQLite; a failing
 * write fails only its own request, a database that cannot be used fails them all with its error.
 */
describe(`the write batch (${testDatabaseKind})`, () => {
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

  /** A batch whose flush runs when the test says so; `flush()` resolves once it ran. */
  function manualBatch() {
    const flushes: Array<() => void> = [];
    const batch = writeBatch(handle.db, handle.kind, (flush) => void flushes.push(flush));
    return {
      batch,
      flush: async () => {
        for (const flush of flushes.splice(0)) flush();
        await new Promise((resolve) => setImmediate(resolve));
      },
    };
  }

  const stored = async (ids: string[]) =>
    (
      await handle.db
        .selectFrom('oidc_payload')
        .select('id')
        .where('model', '=', 'ClientCredentials')
        .where('id', 'in', ids)
        .orderBy('id')
        .execute()
    ).map((found) => found.id);

  /** A write that records on what it ran (a shared transaction or the connection) and how often. */
  function recorded(id: string, fail = false) {
    const runs: boolean[] = [];
    const write = async (db: WriteDb) => {
      runs.push(db.isTransaction);
      // A primary-key conflict: a fault of this write alone, not of the database.
      if (fail) await db.insertInto('change_epoch').values({ id: 1, value: 0 }).execute();
      await writePayloadRow(db, row(id));
      return id;
    };
    return { runs, write };
  }

  it('commits the writes of one turn in one transaction, each answered with its own result', async () => {
    const { batch, flush } = manualBatch();
    const writes = ['one-a', 'one-b', 'one-c'].map((id) => recorded(id));
    const results = writes.map((write) => batch.run(write.write));
    await flush();
    assert.deepEqual(await Promise.all(results), ['one-a', 'one-b', 'one-c']);
    assert.deepEqual(await stored(['one-a', 'one-b', 'one-c']), ['one-a', 'one-b', 'one-c']);
    const expected = handle.kind === 'sqlite' ? [true] : [false];
    for (const write of writes) assert.deepEqual(write.runs, expected);
  });

  it('runs a write alone on the connection', async () => {
    const { batch, flush } = manualBatch();
    const write = recorded('alone');
    const result = batch.run(write.write);
    await flush();
    assert.equal(await result, 'alone');
    assert.deepEqual(write.runs, [false]);
  });

  it('fails only the failing write of a batch: the others run again on their own and are stored', async () => {
    const { batch, flush } = manualBatch();
    const good = [recorded('fault-a'), recorded('fault-c')];
    const bad = recorded('fault-b', true);
    const results = [batch.run(good[0]!.write), batch.run(bad.write), batch.run(good[1]!.write)];
    const settled = Promise.allSettled(results);
    await flush();
    const [first, failed, third] = await settled;
    assert.deepEqual(first, { status: 'fulfilled', value: 'fault-a' });
    assert.deepEqual(third, { status: 'fulfilled', value: 'fault-c' });
    assert.equal(failed!.status, 'rejected');
    assert.equal(isDatabaseUnavailable((failed as PromiseRejectedResult).reason), false);
    assert.deepEqual(await stored(['fault-a', 'fault-b', 'fault-c']), ['fault-a', 'fault-c']);
    if (handle.kind === 'sqlite') {
      // The batch stopped at the failing write; each then ran alone.
      assert.deepEqual(good[0]!.runs, [true, false]);
      assert.deepEqual(bad.runs, [true, false]);
      assert.deepEqual(good[1]!.runs, [false]);
    }
  });

  // PostgreSQL runs every write on its own: held-writes.test.ts covers its 503.
  it(
    'fails every write of a batch with the error of a database that cannot be used',
    { skip: testDatabaseKind !== 'sqlite' && 'batches only on SQLite' },
    async () => {
      const { batch, flush } = manualBatch();
      const writes = [recorded('readonly-a'), recorded('readonly-b')];
      // A database that refuses writes for now (SQLITE_READONLY).
      handle.sqlite!.pragma('query_only = ON');
      try {
        const settled = Promise.allSettled(writes.map((write) => batch.run(write.write)));
        await flush();
        for (const outcome of await settled) {
          assert.equal(outcome.status, 'rejected');
          assert.ok(isDatabaseUnavailable((outcome as PromiseRejectedResult).reason));
        }
      } finally {
        handle.sqlite!.pragma('query_only = OFF');
      }
      // Not tried again one by one (the database said it cannot be used now): no write ran alone.
      for (const write of writes) assert.equal(write.runs.includes(false), false);
      assert.deepEqual(await stored(['readonly-a', 'readonly-b']), []);
    },
  );

  /** The `oidc_payload` writes the drivers are handed while `work` runs. */
  async function payloadWritesDuring(work: () => Promise<void>): Promise<string[]> {
    const texts: string[] = [];
    const restore = watchStatements((text) => {
      if (/^insert into "oidc_payload"/i.test(text)) texts.push(text);
    });
    try {
      await work();
    } finally {
      restore();
    }
    return texts;
  }

  const payloadOf = async (id: string) =>
    (
      await handle.db
        .selectFrom('oidc_payload')
        .select('payload')
        .where('model', '=', 'ClientCredentials')
        .where('id', '=', id)
        .executeTakeFirst()
    )?.payload;

  it('merges the rows requests write in one turn: one statement on PostgreSQL, one transaction on SQLite', async () => {
    const { batch, flush } = manualBatch();
    const write = payloadRowWrites(batch);
    // The same rows writer for every caller of one batch, so that all their rows merge.
    assert.equal(payloadRowWrites(batch), write);
    let results: Array<Promise<void>> = [];
    const texts = await payloadWritesDuring(async () => {
      results = [
        write([row('merge-a')]),
        write([row('merge-b'), row('merge-c')]),
        // The same row again in the turn: the later save is what stays.
        write([{ ...row('merge-a'), payload: '{"saved":2}' }]),
      ];
      await flush();
      await Promise.all(results);
    });
    assert.deepEqual(await stored(['merge-a', 'merge-b', 'merge-c']), ['merge-a', 'merge-b', 'merge-c']);
    assert.equal(await payloadOf('merge-a'), '{"saved":2}');
    // SQLite: each item is one write of the batch's transaction.
    assert.equal(texts.length, handle.kind === 'postgres' ? 1 : 3);

    // The merged statement replaces rows as the single-row one does: the columns it names.
    const again = write([{ ...row('merge-b'), payload: '{"saved":3}' }]);
    const other = write([row('merge-d')]);
    await flush();
    await Promise.all([again, other]);
    assert.equal(await payloadOf('merge-b'), '{"saved":3}');
    assert.deepEqual(await stored(['merge-b', 'merge-d']), ['merge-b', 'merge-d']);
  });

  it('stores merged rows with quotes, backslashes, braces, control characters and lone surrogates as given', async () => {
    const { batch, flush } = manualBatch();
    const write = payloadRowWrites(batch);
    const epoch = await readChangeEpoch(handle.db);
    const awkward = 'a "quoted" \\ back\\slash, {braces}, [1,2], NULL, tab\t, newline\n, é, 🛰';
    // A payload as the adapter writes it (JSON text), with a lone surrogate's escape in it.
    const payload = JSON.stringify({ note: `${awkward} and a lone \uD800` });
    const odd = (id: string): AdapterRow => ({
      ...row(id),
      payload,
      grant_id: awkward,
      user_id: 'NULL',
      client_id: `odd "client" \\ {x} \uDC00`,
      uid: '',
      user_code: '{"a":1}',
      consumed_at: 1_700_000_000_123,
      expires_at: 9_007_199_254_740_991,
      value_sha256: null,
    });
    const written = [write([odd('awkward-a')]), payloadRowWritesAtEpoch(batch)([odd('awkward-b')], epoch)];
    await flush();
    assert.deepEqual(await Promise.all(written), [undefined, true]);
    const rows = await handle.db
      .selectFrom('oidc_payload')
      .selectAll()
      .where('model', '=', 'ClientCredentials')
      .where('id', 'in', ['awkward-a', 'awkward-b'])
      .orderBy('id')
      .execute();
    assert.equal(rows.length, 2);
    for (const stored of rows) {
      assert.equal(stored.payload, payload);
      assert.equal(JSON.parse(stored.payload).note, `${awkward} and a lone \uD800`);
      assert.equal(stored.grant_id, awkward);
      assert.equal(stored.user_id, 'NULL');
      // UTF-8 has no form for a lone surrogate: a text column stores U+FFFD in its place.
      assert.equal(stored.client_id, `odd "client" \\ {x} \uFFFD`);
      assert.equal(stored.uid, '');
      assert.equal(stored.user_code, '{"a":1}');
      assert.equal(Number(stored.consumed_at), 1_700_000_000_123);
      assert.equal(String(stored.expires_at), '9007199254740991');
      assert.equal(stored.value_sha256, null);
      assert.equal(stored.format, 'opaque');
    }
  });

  it('writes rows at a change epoch only while it stands, merged with the other rows of the turn', async () => {
    const { batch, flush } = manualBatch();
    const atEpoch = payloadRowWritesAtEpoch(batch);
    const write = payloadRowWrites(batch);
    const epoch = await readChangeEpoch(handle.db);
    let results: Array<Promise<boolean | void>> = [];
    const texts = await payloadWritesDuring(async () => {
      results = [
        atEpoch([row('epoch-a')], epoch),
        // Decided with the applications of an epoch that has moved on since: not written.
        atEpoch([row('epoch-b')], epoch - 1),
        write([row('epoch-c')]),
      ];
      await flush();
    });
    assert.deepEqual(await Promise.all(results), [true, false, undefined]);
    assert.deepEqual(await stored(['epoch-a', 'epoch-b', 'epoch-c']), ['epoch-a', 'epoch-c']);
    // SQLite: each item is one write of the batch's transaction.
    assert.equal(texts.length, handle.kind === 'postgres' ? 1 : 3);

    // The epoch moves (an application changed, by any writer): a row at the old epoch is not written,
    // alone or merged, through the batch or on the connection.
    await handle.db.transaction().execute((trx) => raiseChangeEpoch(trx));
    const alone = atEpoch([row('epoch-d')], epoch);
    await flush();
    assert.equal(await alone, false);
    const merged = [atEpoch([row('epoch-e')], epoch), atEpoch([row('epoch-f')], epoch + 1)];
    await flush();
    assert.deepEqual(await Promise.all(merged), [false, true]);
    const direct = payloadRowWritesAtEpoch(unbatchedWrites(handle.db));
    assert.deepEqual(
      [await direct([row('epoch-g')], epoch), await direct([row('epoch-h')], epoch + 1)],
      [false, true],
    );
    assert.deepEqual(await stored(['epoch-d', 'epoch-e', 'epoch-f', 'epoch-g', 'epoch-h']), [
      'epoch-f',
      'epoch-h',
    ]);
  });

  it('fails only the request whose rows the database refuses; the others of its turn are stored', async () => {
    const { batch, flush } = manualBatch();
    const write = payloadRowWrites(batch);
    // A row without its payload (NOT NULL): a fault of this write alone, not of the database.
    const refused = { ...row('refused-b'), payload: null as unknown as string };
    const settled = Promise.allSettled([
      write([row('refused-a')]),
      write([refused]),
      write([row('refused-c'), row('refused-d')]),
    ]);
    await flush();
    const [first, failed, third] = await settled;
    assert.equal(first!.status, 'fulfilled');
    assert.equal(third!.status, 'fulfilled');
    assert.equal(failed!.status, 'rejected');
    assert.equal(isDatabaseUnavailable((failed as PromiseRejectedResult).reason), false);
    assert.deepEqual(await stored(['refused-a', 'refused-b', 'refused-c', 'refused-d']), [
      'refused-a',
      'refused-c',
      'refused-d',
    ]);
  });

  it('consumes the refresh tokens requests present in one turn in one statement on PostgreSQL, each row once', async () => {
    const { batch, flush } = manualBatch();
    const consume = payloadConsumes(batch);
    assert.equal(payloadConsumes(batch), consume);
    const refresh = (id: string, extra: Partial<PayloadRow> = {}): PayloadRow => ({
      ...row(id),
      model: 'RefreshToken',
      ...extra,
    });
    const at = Date.now();
    await writePayloadRows(handle.db, [
      refresh('consume-a'),
      refresh('consume-b'),
      refresh('consume-used', { consumed_at: at - 1000 }),
    ]);
    await writePayloadRow(handle.db, {
      ...refresh('consume-revoked'),
      revoked_at: at - 1000,
      revoked_reason: 'test',
    });
    const updates: string[] = [];
    const restore = watchStatements((text) => {
      if (/^(?:with .*)?update "oidc_payload"/i.test(text)) updates.push(text);
    });
    let results: boolean[];
    try {
      const consumed = [
        consume({ model: 'RefreshToken', id: 'consume-b', at }),
        consume({ model: 'RefreshToken', id: 'consume-a', at }),
        // The same token presented again in the turn: the first to present it wins, as one after the other.
        consume({ model: 'RefreshToken', id: 'consume-b', at }),
        consume({ model: 'RefreshToken', id: 'consume-used', at }),
        consume({ model: 'RefreshToken', id: 'consume-revoked', at }),
        consume({ model: 'RefreshToken', id: 'consume-missing', at }),
      ];
      await flush();
      results = await Promise.all(consumed);
    } finally {
      restore();
    }
    assert.deepEqual(results, [true, true, false, false, false, false]);
    assert.equal(updates.length, handle.kind === 'postgres' ? 1 : 6);
    const consumedAt = await handle.db
      .selectFrom('oidc_payload')
      .select(['id', 'consumed_at'])
      .where('model', '=', 'RefreshToken')
      .where('id', 'in', ['consume-a', 'consume-b', 'consume-used', 'consume-revoked'])
      .orderBy('id')
      .execute();
    assert.deepEqual(
      consumedAt.map((found) => [found.id, Number(found.consumed_at) || null]),
      [
        ['consume-a', at],
        ['consume-b', at],
        ['consume-revoked', null],
        ['consume-used', at - 1000],
      ],
    );

    // A later turn finds them consumed.
    const again = [
      consume({ model: 'RefreshToken', id: 'consume-a', at }),
      consume({ model: 'RefreshToken', id: 'consume-b', at }),
    ];
    await flush();
    assert.deepEqual(await Promise.all(again), [false, false]);
  });

  it(
    'fails every merged write with the error of a PostgreSQL server that cannot be reached, without trying them alone',
    { skip: testDatabaseKind !== 'postgres' && 'merges into one statement only on PostgreSQL' },
    async () => {
      const url = new URL(database.url);
      const proxy = await startTcpProxy(url.hostname, Number(url.port || 5432));
      const cut = openDatabase({ kind: 'postgres', url: proxy.wrap(database.url) });
      try {
        const flushes: Array<() => void> = [];
        const batch = writeBatch(cut.db, cut.kind, (flush) => void flushes.push(flush));
        const runs: string[] = [];
        const write = batch.merging<PayloadRow[]>({
          together: (db, items) => {
            runs.push('together');
            return writePayloadRows(db, items.flat());
          },
          alone: (db, item) => {
            runs.push('alone');
            return writePayloadRows(db, item);
          },
        });
        proxy.cut();
        const settled = Promise.allSettled([write([row('cut-a')]), write([row('cut-b')])]);
        for (const flush of flushes.splice(0)) flush();
        for (const outcome of await settled) {
          assert.equal(outcome.status, 'rejected');
          assert.ok(isDatabaseUnavailable((outcome as PromiseRejectedResult).reason));
        }
        assert.deepEqual(runs, ['together']);
      } finally {
        await cut.close();
        await proxy.close();
      }
      assert.deepEqual(await stored(['cut-a', 'cut-b']), []);
    },
  );
});
