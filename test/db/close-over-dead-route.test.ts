import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { sql } from 'kysely';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.ts';
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
 * and it says how many it abandoned.
 */
describe(
  "closing aa-oidc's PostgreSQL database",
  { skip: 'missing' in postgres ? missing(postgres.missing) : false },
  () => {
    let database: TestDatabase;
    let proxy: TcpProxy;
    let handle: DatabaseHandle;
    let abandoned: number[];

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
      assert.deepEqual(abandoned, [3], 'every connection abandoned, said once');
      // Closed, not only half-closed: what is written to each is refused by a reset (once: see knock()).
      proxy.knock();
      await waitUntil(() => proxy.frozenConnections === 0, 'every connection was closed at the client');
    });

    it('on a live route, closes with the server and abandons nothing', async () => {
      await handle.close();
      assert.deepEqual(abandoned, []);
    });
  },
);
