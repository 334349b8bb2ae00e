import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import { sql } from 'kysely';
import { type AllianceAuthConnection, openAllianceAuthDatabase } from '../../src/alliance-auth/database.ts';
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
 * connections still open then are closed at once, and the pool says how many it abandoned.
 */
await describeOnEachAllianceAuth(
  (database) => `Closing the connection to an Alliance Auth on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let proxy: TcpProxy;
    let aa: AllianceAuthConnection;
    let abandoned: number[];

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
      assert.deepEqual(abandoned, [2], 'both connections abandoned, said once');
      // Closed, not only half-closed: what is written to each is refused by a reset (once: see knock()).
      proxy.knock();
      await waitUntil(() => proxy.frozenConnections === 0, 'both connections were closed at the client');
    });

    it('on a live route, closes with the server and abandons nothing', async () => {
      await aa.close();
      assert.deepEqual(abandoned, []);
    });
  },
);
