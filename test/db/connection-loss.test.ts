import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, reachablePostgres, type TestDatabase } from '../helpers/database.ts';
import { missing } from '../helpers/e2e.ts';
import { seedUser, startServer, type TestServer } from '../helpers/server.ts';

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

    async function terminateAll(): Promise<number> {
      const admin = new pg.Client({ connectionString: (postgres as { url: string }).url });
      await admin.connect();
      try {
        const name = new URL(database.url).pathname.slice(1);
        const result = await admin.query(
          'select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
          [name],
        );
        return result.rowCount ?? 0;
      } finally {
        await admin.end();
      }
    }

    const ready = async () => (await fetch(`${server.origin}/readyz`)).status;

    it('idle connections terminated: the process survives and the next requests are served', async () => {
      // Several requests at once: the pool holds several connections, all idle afterwards.
      assert.deepEqual(await Promise.all([ready(), ready(), ready(), ready()]), [200, 200, 200, 200]);
      await seedUser(server);
      const pool = server.app.database.pgPool!;
      const open = pool.totalCount;
      assert.ok(open > 0);
      // The pool drops each terminated connection (a 'remove' event once it is closed; one in use
      // at that moment, when it is released).
      let removed = 0;
      const allRemoved = new Promise<void>((resolve) =>
        pool.on('remove', () => {
          removed += 1;
          if (removed === open) resolve();
        }),
      );
      assert.ok((await terminateAll()) >= open);
      await allRemoved;
      assert.equal(await ready(), 200);
      const user = await seedUser(server);
      assert.ok(user.id > 0);
    });

    it('a connection terminated inside a transaction fails that work only', async () => {
      const pool = server.app.database.pgPool!;
      const client = await pool.connect();
      const ended = once(client, 'error');
      // The pool's idle connections are terminated too; the checks below start once the pool has
      // dropped every one of them (else one could be handed out before its 'error' event arrived).
      const open = pool.totalCount;
      let removed = 0;
      const allRemoved = new Promise<void>((resolve) =>
        pool.on('remove', () => {
          removed += 1;
          if (removed === open) resolve();
        }),
      );
      try {
        await client.query('begin');
        await terminateAll();
        await ended;
        await assert.rejects(client.query('select 1'));
      } finally {
        client.release(true);
      }
      await allRemoved;
      assert.equal(await ready(), 200);
      assert.ok((await seedUser(server)).id > 0);
    });
  },
);
