import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import { sql } from 'kysely';
import {
  type AllianceAuthConnection,
  CLOSE_TIMEOUT_MS,
  openAllianceAuthDatabase,
} from '../../src/alliance-auth/database.ts';
import type { AbandonedConnections } from '../../src/db/pool-sockets.ts';
import {
  type AllianceAuthTestDatabase,
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
} from '../helpers/alliance-auth.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { waitUntil } from '../helpers/wait.ts';

/**
 * Closing the pool to Alliance Auth's database (a shutdown) when the route to it died without a reset:
 * a relay that passes nothing either way any more and never closes a connection. The pool's goodbye
 * on each idle connection is never answered, so its close waits at most CLOSE_TIMEOUT_MS; the
 * connections still open then are closed at once, and the pool says how many it abandoned. On a live
 * route, a statement still in flight runs to its end first, however longer than CLOSE_TIMEOUT_MS.
 */
await describeOnEachAllianceAuth(
  (database) => `Closing the connection to an Alliance Auth on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let proxy: TcpProxy;
    let aa: AllianceAuthConnection;
    let abandoned: AbandonedConnections[];

    beforeEach(async () => {
      fixture = await createAllianceAuthDatabase(kind);
      const server = new URL(fixture.readerUrl);
      proxy = await startTcpProxy(server.hostname, Number(server.port || (kind === 'mysql' ? 3306 : 5432)));
      abandoned = [];
      aa = openAllianceAuthDatabase(proxy.wrap(fixture.readerUrl), {
        onIdleConnectionError: () => undefined,
        onConnectionsAbandoned: (count) => abandoned.push(count),
      });
      // Two idle connections in the pool: a read inside a transaction holds the first.
      await aa.db.transaction().execute(async (trx) => {
        await sql`select 1`.execute(trx);
        await sql`select 1`.execute(aa.db);
      });
    });
    afterEach(async () => {
      await proxy?.close();
      await fixture?.drop();
    });

    it('over a dead route, gives up waiting for the goodbyes, closes both idle connections and names them', async () => {
      proxy.freeze();
      assert.equal(proxy.frozenConnections, 2, 'two pooled connections on the dead route');
      // Resolves at all (the test's own timeout bounds a failure): the goodbyes never get through.
      await aa.close();
      assert.deepEqual(
        abandoned,
        [{ kind: 'goodbye', connections: 2, waitedMs: CLOSE_TIMEOUT_MS }],
        'both connections abandoned, said once',
      );
      // Closed, not only half-closed: what is written to each is refused by a reset (once: see knock()).
      proxy.knock();
      await waitUntil(() => proxy.frozenConnections === 0, 'both connections were closed at the client');
    });

    it('on a live route, closes with the server and abandons nothing', async () => {
      await aa.close();
      assert.deepEqual(abandoned, []);
    });

    /** Starts `seconds` of sleep on the server through the pool; returns once it is seen running there. */
    const sleepInFlight = async (seconds: number) => {
      const slow =
        kind === 'mysql'
          ? sql<{ slept: number }>`select sleep(${sql.lit(seconds)}) as slept`.execute(aa.db)
          : sql<{ slept: number }>`select pg_sleep(${sql.lit(seconds)}), 0 as slept`.execute(aa.db);
      // Seen from a connection of its own, on the server's side of the relay.
      const observer = openAllianceAuthDatabase(fixture.readerUrl);
      try {
        await waitUntil(async () => {
          const { rows } = await (
            kind === 'mysql'
              ? sql<{
                  running: number;
                }>`select count(*) as running from information_schema.processlist where info like 'select sleep%'`
              : sql<{
                  running: number;
                }>`select count(*) as running from pg_stat_activity where query like 'select pg_sleep%' and state = 'active'`
          ).execute(observer.db);
          return Number(rows[0]?.running) === 1;
        }, 'the statement runs on the server');
      } finally {
        await observer.close();
      }
      return { slow };
    };

    it('on a live route, lets a statement in flight end though it outlasts CLOSE_TIMEOUT_MS', async () => {
      const { slow } = await sleepInFlight(CLOSE_TIMEOUT_MS / 1000 + 3);
      await aa.close();
      const { rows } = await slow;
      assert.equal(Number(rows[0]?.slept), 0, 'the statement ended with its answer');
      assert.deepEqual(abandoned, [], 'nothing abandoned, nothing said');
    });

    it("over a dead route, cuts a statement in flight once the idle connection's goodbye goes unanswered", async () => {
      const { slow } = await sleepInFlight(12);
      const failed = slow.then(
        () => false,
        () => true,
      );
      proxy.freeze();
      await aa.close();
      assert.ok(await failed, 'the statement in flight failed');
      assert.deepEqual(abandoned, [
        { kind: 'dead_route', connections: 2, inUse: 1, waitedMs: CLOSE_TIMEOUT_MS },
      ]);
      proxy.knock();
      await waitUntil(() => proxy.frozenConnections === 0, 'both connections were closed at the client');
    });
  },
);
