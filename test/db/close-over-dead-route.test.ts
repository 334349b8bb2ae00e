import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { sql } from 'kysely';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.ts';
import type { AbandonedConnections } from '../../src/db/pool-sockets.ts';
import { selectProfileById } from '../../src/directory/builtin/queries.ts';
import { createTestDatabase, reachablePostgres, type TestDatabase } from '../helpers/database.ts';
import { missing } from '../helpers/e2e.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { waitUntil } from '../helpers/wait.ts';

const postgres = await reachablePostgres();

/**
 * Closing aa-oidc's own PostgreSQL connections (a shutdown) when the route to the server died without
 * a reset: a relay that passes nothing either way any more and never closes a connection. The goodbye
 * on each connection (the pool's, and the pipelined one of the precompiled reads) is never answered,
 * so the close waits at most the connect timeout; the connections still open then are closed at once,
 * and it says how many it abandoned. On a live route, work still in flight (a statement, a
 * transaction's COMMIT) runs to its end first, however longer than the connect timeout it takes.
 */
describe(
  "closing aa-oidc's PostgreSQL database",
  { skip: 'missing' in postgres ? missing(postgres.missing) : false },
  () => {
    let database: TestDatabase;
    let proxy: TcpProxy;
    let handle: DatabaseHandle;
    let abandoned: AbandonedConnections[];

    beforeEach(async () => {
      database = await createTestDatabase({ migrated: true, postgresUrl: (postgres as { url: string }).url });
      const url = new URL(database.url);
      proxy = await startTcpProxy(url.hostname, Number(url.port || 5432));
      abandoned = [];
      handle = openDatabase(
        { kind: 'postgres', url: proxy.wrap(database.url) },
        { onConnectionsAbandoned: (count) => abandoned.push(count) },
      );
      // Three idle connections: the precompiled reads' own, and two in the pool (a read inside a
      // transaction holds the first).
      assert.equal(await selectProfileById(handle.db, 1), undefined);
      await handle.db.transaction().execute(async (trx) => {
        await sql`select 1`.execute(trx);
        await sql`select 1`.execute(handle.db);
      });
    });
    afterEach(async () => {
      await proxy?.close();
      await database?.drop();
    });

    it('over a dead route, gives up waiting for the goodbyes, closes every connection and names them', async () => {
      proxy.freeze();
      assert.equal(proxy.frozenConnections, 3, 'three connections on the dead route');
      // Resolves at all (the test's own timeout bounds a failure): the goodbyes never get through.
      await handle.close();
      assert.deepEqual(
        abandoned,
        [{ kind: 'goodbye', connections: 3, waitedMs: 5000 }],
        'every connection abandoned, said once',
      );
      // Closed, not only half-closed: what is written to each is refused by a reset (once: see knock()).
      proxy.knock();
      await waitUntil(() => proxy.frozenConnections === 0, 'every connection was closed at the client');
    });

    it('on a live route, closes with the server and abandons nothing', async () => {
      await handle.close();
      assert.deepEqual(abandoned, []);
    });

    it('on a live route, lets a transaction in flight commit though it outlasts the connect timeout', async () => {
      await sql`create table close_probe (n integer)`.execute(handle.db);
      const pool = handle.pgPool!;
      // Sleeps past the connect timeout (5 s, the goodbye's deadline) between its writes.
      const work = handle.db.transaction().execute(async (trx) => {
        await sql`insert into close_probe values (1)`.execute(trx);
        await sql`select pg_sleep(8)`.execute(trx);
        await sql`insert into close_probe values (2)`.execute(trx);
      });
      await waitUntil(() => pool.totalCount - pool.idleCount === 1, 'the transaction holds a connection');
      await handle.close();
      await work;
      assert.deepEqual(abandoned, [], 'nothing abandoned, nothing said');
      const after = openDatabase({ kind: 'postgres', url: database.url });
      try {
        const { rows } = await sql<{ n: number }>`select n from close_probe order by n`.execute(after.db);
        assert.deepEqual(
          rows.map((row) => row.n),
          [1, 2],
          'the transaction committed',
        );
      } finally {
        await after.close();
      }
    });

    it("over a dead route, cuts a statement in flight once the idle connections' goodbyes go unanswered", async () => {
      const pool = handle.pgPool!;
      const slow = sql`select pg_sleep(30)`.execute(handle.db);
      const failed = slow.then(
        () => false,
        () => true,
      );
      await waitUntil(() => pool.totalCount - pool.idleCount === 1, 'the statement holds a connection');
      proxy.freeze();
      await handle.close();
      assert.ok(await failed, 'the statement in flight failed');
      assert.deepEqual(abandoned, [{ kind: 'dead_route', connections: 3, inUse: 1, waitedMs: 5000 }]);
      proxy.knock();
      await waitUntil(() => proxy.frozenConnections === 0, 'every connection was closed at the client');
    });

    describe('with every connection at work', () => {
      let busyHandle: DatabaseHandle;
      let busyAbandoned: AbandonedConnections[];
      beforeEach(async () => {
        // Only this handle's connections on the route.
        await handle.close();
        busyAbandoned = [];
        busyHandle = openDatabase(
          { kind: 'postgres', url: proxy.wrap(database.url) },
          { onConnectionsAbandoned: (count) => busyAbandoned.push(count) },
        );
      });
      afterEach(async () => {
        await busyHandle.close();
      });

      it('over a dead route, cuts the work once a new connection to the server goes unanswered', async () => {
        const pool = busyHandle.pgPool!;
        const failed = sql`select pg_sleep(30)`.execute(busyHandle.db).then(
          () => false,
          () => true,
        );
        await waitUntil(
          () => pool.totalCount === 1 && pool.idleCount === 0,
          'the statement holds the one connection',
        );
        proxy.freeze();
        await busyHandle.close();
        assert.ok(await failed, 'the statement in flight failed');
        assert.deepEqual(busyAbandoned, [{ kind: 'dead_route', connections: 1, inUse: 1, waitedMs: 5000 }]);
        proxy.knock();
        await waitUntil(() => proxy.frozenConnections === 0, 'every connection was closed at the client');
      });

      it('on a live route, lets a statement in flight end though it outlasts the connect timeout', async () => {
        const pool = busyHandle.pgPool!;
        const work = sql<{ n: number }>`select 1 as n from pg_sleep(7)`.execute(busyHandle.db);
        await waitUntil(
          () => pool.totalCount === 1 && pool.idleCount === 0,
          'the statement holds the one connection',
        );
        await busyHandle.close();
        assert.deepEqual((await work).rows, [{ n: 1 }], 'the statement ended with its answer');
        assert.deepEqual(busyAbandoned, [], 'nothing abandoned, nothing said');
      });
    });
  },
);
