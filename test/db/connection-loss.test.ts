import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, reachablePostgres, type TestDatabase } from '../helpers/database.ts';
import { missing } from '../helpers/e2e.ts';
import { seedUser, startServer, type TestServer } from '../helpers/server.ts';
import { waitUntil } from '../helpers/wait.ts';

const postgres = await reachablePostgres();

/**
 * PostgreSQL ends the server's connections (a restart, a failover, an administrator's
 * `pg_terminate_backend`): the process keeps running (an 'error' event without a listener would
 * crash it) and the next requests open new connections.
 */
describe(
  'the database server ends every connection of a running aa-oidc',
  { skip: 'missing' in postgres ? missing(postgres.missing) : false },
  () => {
    let database: TestDatabase;
    let server: TestServer;

    before(async () => {
      database = await createTestDatabase({ migrated: true, postgresUrl: (postgres as { url: string }).url });
      server = await startServer({}, { database });
    });
    after(async () => {
      await server?.close();
      await database?.drop();
    });

    /** Ends every connection to the test database but this one; the ended backends' process ids. */
    async function terminateAll(): Promise<Set<number>> {
      const admin = new pg.Client({ connectionString: (postgres as { url: string }).url });
      await admin.connect();
      try {
        const name = new URL(database.url).pathname.slice(1);
        // The function in the select list: it runs only for the rows the WHERE kept (in the WHERE
        // itself, PostgreSQL may call it before the other conditions, on every backend).
        const result = await admin.query<{ pid: number; ended: boolean }>(
          'select pid, pg_terminate_backend(pid) as ended from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
          [name],
        );
        return new Set(result.rows.filter((row) => row.ended).map((row) => row.pid));
      } finally {
        await admin.end();
      }
    }

    /**
     * Until the pool holds none of the ended connections: it drops each once its 'error' event
     * arrived (one in use, when it is released). Counting 'remove' events against the pool's size
     * beforehand is not enough: a connection the pool opened in between is ended too.
     */
    async function endedConnectionsDropped(pool: pg.Pool, ended: Set<number>): Promise<void> {
      const clients = () => (pool as unknown as { _clients: pg.Client[] })._clients;
      await waitUntil(
        () => !clients().some((client) => ended.has((client as unknown as { processID: number }).processID)),
        'the pool has dropped every ended connection',
        10_000,
        10,
      );
    }

    const ready = async () => (await fetch(`${server.origin}/readyz`)).status;

    it('idle connections terminated: the process survives and the next requests are served', async () => {
      // Several requests at once: the pool holds several connections, all idle afterwards.
      assert.deepEqual(await Promise.all([ready(), ready(), ready(), ready()]), [200, 200, 200, 200]);
      await seedUser(server);
      const pool = server.app.database.pgPool!;
      const open = pool.totalCount;
      assert.ok(open > 0);
      const ended = await terminateAll();
      assert.ok(ended.size >= open);
      await endedConnectionsDropped(pool, ended);
      assert.equal(await ready(), 200);
      const user = await seedUser(server);
      assert.ok(user.id > 0);
    });

    it('a connection terminated inside a transaction fails that work only', async () => {
      const pool = server.app.database.pgPool!;
      const client = await pool.connect();
      const errored = once(client, 'error');
      // The pool's idle connections are terminated too; the checks below start once the pool has
      // dropped every one of them (else one could be handed out before its 'error' event arrived).
      let ended: Set<number>;
      try {
        await client.query('begin');
        ended = await terminateAll();
        await errored;
        await assert.rejects(client.query('select 1'));
      } finally {
        client.release(true);
      }
      await endedConnectionsDropped(pool, ended);
      assert.equal(await ready(), 200);
      assert.ok((await seedUser(server)).id > 0);
    });
  },
);
