import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type Kysely, sql } from 'kysely';
import type pg from 'pg';
import { readLog } from '../../src/db/change-log.ts';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.ts';
import { isDatabaseUnavailable } from '../../src/db/errors.ts';
import { precompiled } from '../../src/db/precompiled.ts';
import { selectProfileById } from '../../src/directory/builtin/queries.ts';
import { connect, reachablePostgres, type TestDatabase } from '../helpers/database.ts';
import { missing } from '../helpers/e2e.ts';
import { createPostgresProbe, type PostgresProbe } from '../helpers/postgres-probe.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';

const postgres = await reachablePostgres();

/** The test's own table, outside aa-oidc's schema. */
interface Probe {
  lean_probe: { id: number; v: unknown };
}

const probeById = precompiled((db, id: number) =>
  (db as unknown as Kysely<Probe>).selectFrom('lean_probe').select(['id', 'v']).where('id', '=', id),
);
/** `select *`: a text that runs unnamed, so the server describes whatever columns the table has now. */
const probeStarById = precompiled((db, id: number) =>
  (db as unknown as Kysely<Probe>).selectFrom('lean_probe').selectAll().where('id', '=', id),
);
/** Fails on the server for a value that is not an integer (invalid_text_representation). */
const probeByText = precompiled((db, id: string) =>
  (db as unknown as Kysely<Probe>)
    .selectFrom('lean_probe')
    .select(['id', 'v'])
    .where('id', '=', (eb) => eb.cast(eb.val(id), 'integer')),
);

describe(
  'precompiled reads outside a transaction on PostgreSQL (one pipelined connection)',
  { skip: 'missing' in postgres ? missing(postgres.missing) : false },
  () => {
    let database: TestDatabase;
    let handle: DatabaseHandle;
    let admin: pg.Client;
    let userId: number;

    let probe: PostgresProbe | undefined;

    before(async () => {
      probe = await createPostgresProbe((postgres as { url: string }).url, 'lean_probe', [
        [1, 7],
        [2, 8],
      ]);
      ({ database, handle, admin, userId } = probe);
    });
    after(async () => {
      await probe?.drop();
    });

    it('concurrent reads share one connection: the pool opens none for them', async () => {
      const fresh = connect(database);
      try {
        const profiles = await Promise.all(
          Array.from({ length: 20 }, () => selectProfileById(fresh.db, userId)),
        );
        for (const profile of profiles) assert.equal(profile?.user.username, 'pilot');
        assert.equal(fresh.pgPool!.totalCount, 0);
      } finally {
        await fresh.close();
      }
    });

    it("the change log's read of each turn takes the same connection, and finds what another writer logged", async () => {
      const fresh = connect(database);
      try {
        const first = await readLog(fresh.db, undefined);
        await admin.query(`update app_user set locale = 'de' where id = $1`, [userId]);
        const next = await readLog(fresh.db, first.position);
        assert.ok(next.keys.includes(`User ${userId}`), `keys ${JSON.stringify(next.keys)}`);
        assert.equal(next.lost, false);
        assert.equal(fresh.pgPool!.totalCount, 0);
      } finally {
        await fresh.close();
      }
    });

    it('the reads of one turn leave in one socket write', async () => {
      const fresh = connect(database);
      const port = Number(new URL(database.url).port || 5432);
      type Write = (this: net.Socket, ...args: unknown[]) => unknown;
      const { _write: write, _writev: writev } = net.Socket.prototype as unknown as Record<string, Write>;
      let writes = 0;
      try {
        await probeById.takeFirst(fresh.db, 1);
        await new Promise((resolve) => setImmediate(resolve));
        const counting = (original: Write): Write =>
          function (this: net.Socket, ...args: unknown[]) {
            if (this.remotePort === port) writes += 1;
            return original.apply(this, args);
          };
        Object.assign(net.Socket.prototype, { _write: counting(write!), _writev: counting(writev!) });
        const rows = await Promise.all([1, 2, 1, 2, 1].map((id) => probeById.takeFirst(fresh.db, id)));
        assert.deepEqual(
          rows.map((row) => row?.v),
          [7, 8, 7, 8, 7],
        );
        assert.equal(writes, 1);
      } finally {
        Object.assign(net.Socket.prototype, { _write: write, _writev: writev });
        await fresh.close();
      }
    });

    it('a read that fails in the middle of a turn fails alone; the others of its turn are answered', async () => {
      const settled = await Promise.allSettled([
        probeByText.takeFirst(handle.db, '1'),
        probeByText.takeFirst(handle.db, 'not a number'),
        probeByText.takeFirst(handle.db, '2'),
      ]);
      assert.equal(settled[0]!.status, 'fulfilled');
      assert.deepEqual((settled[0] as PromiseFulfilledResult<unknown>).value, { id: 1, v: 7 });
      assert.equal(settled[1]!.status, 'rejected');
      const error = (settled[1] as PromiseRejectedResult).reason as { code?: string };
      assert.equal(error.code, '22P02');
      assert.equal(isDatabaseUnavailable(error), false);
      assert.deepEqual((settled[2] as PromiseFulfilledResult<unknown>).value, { id: 2, v: 8 });
      assert.deepEqual(await probeById.takeFirst(handle.db, 1), { id: 1, v: 7 });
    });

    it('a lost connection fails every read in flight as unavailable, and the next read opens a new one', async () => {
      const url = new URL(database.url);
      const proxy = await startTcpProxy(url.hostname, Number(url.port || 5432));
      const cut = openDatabase({ kind: 'postgres', url: proxy.wrap(database.url) });
      try {
        assert.deepEqual(await probeById.takeFirst(cut.db, 1), { id: 1, v: 7 });
        proxy.hold();
        const inFlight = Promise.allSettled([1, 2, 1].map((id) => probeById.takeFirst(cut.db, id)));
        await new Promise((resolve) => setImmediate(resolve));
        proxy.cut();
        for (const outcome of await inFlight) {
          assert.equal(outcome.status, 'rejected');
          assert.ok(isDatabaseUnavailable((outcome as PromiseRejectedResult).reason));
        }
        proxy.restore();
        assert.deepEqual(await probeById.takeFirst(cut.db, 2), { id: 2, v: 8 });
      } finally {
        await cut.close();
        await proxy.close();
      }
    });

    it('a pooled connection whose answer never came is ended, not handed out again with the query still pending', async () => {
      const url = new URL(database.url);
      const proxy = await startTcpProxy(url.hostname, Number(url.port || 5432));
      // Statements of no precompiled read run on the pool (named, with a parameter).
      const one = (value: number) => sql<{ n: number }>`select ${value}::int as n`.execute(silent.db);
      const silent = openDatabase(
        { kind: 'postgres', url: proxy.wrap(database.url) },
        { queryTimeoutMs: 500 },
      );
      try {
        assert.deepEqual((await one(1)).rows, [{ n: 1 }]);
        proxy.hold();
        await assert.rejects(one(2), /Query read timeout/);
        // The route comes back, the held answer never does (a connection gone silent).
        proxy.restore();
        assert.deepEqual((await one(3)).rows, [{ n: 3 }]);
      } finally {
        await silent.close();
        await proxy.close();
      }
    });

    it('a transaction never shares the connection: its reads see its own writes, reads outside it do not', async () => {
      await handle.db
        .transaction()
        .execute(async (trx) => {
          await trx
            .updateTable('app_user')
            .set({ email: 'changed@example.test' })
            .where('id', '=', userId)
            .execute();
          assert.equal((await selectProfileById(trx, userId))?.user.email, 'changed@example.test');
          // Outside, while the transaction holds the row: the committed value, without waiting for it.
          assert.equal((await selectProfileById(handle.db, userId))?.user.email, 'pilot@example.test');
          throw Object.assign(new Error('roll back'), { rollBack: true });
        })
        .catch((error: { rollBack?: boolean }) => {
          if (!error.rollBack) throw error;
        });
      assert.equal((await selectProfileById(handle.db, userId))?.user.email, 'pilot@example.test');
    });

    it('a read whose prepared statement PostgreSQL refuses (a column changed type) runs again unnamed', async () => {
      await admin.query('create table lean_probe_typed as select id, v from lean_probe');
      const typed = precompiled((db, id: number) =>
        (db as unknown as Kysely<{ lean_probe_typed: { id: number; v: unknown } }>)
          .selectFrom('lean_probe_typed')
          .select(['id', 'v'])
          .where('id', '=', id),
      );
      assert.deepEqual(await typed.takeFirst(handle.db, 1), { id: 1, v: 7 });
      await admin.query('alter table lean_probe_typed alter column v type text');
      assert.deepEqual(await typed.takeFirst(handle.db, 1), { id: 1, v: '7' });
      assert.deepEqual(await typed.takeFirst(handle.db, 2), { id: 2, v: '8' });
    });

    it('rows follow the columns the server describes when a migration changes them', async () => {
      assert.deepEqual(await probeStarById.takeFirst(handle.db, 1), { id: 1, v: 7 });
      await admin.query("alter table lean_probe add column w text not null default 'w'");
      assert.deepEqual(await probeStarById.takeFirst(handle.db, 1), { id: 1, v: 7, w: 'w' });
    });
  },
);
