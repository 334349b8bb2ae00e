import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import type { Socket } from 'node:net';
import { createPool, type Pool } from 'mysql2';
import { mysqlPoolWithAnswerLimit } from '../../src/alliance-auth/answer-limit.ts';
import {
  type AllianceAuthTestDatabase,
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
} from '../helpers/alliance-auth.ts';
import { waitUntil } from '../helpers/wait.ts';

/**
 * The connections to AA's MariaDB that a pool close waits for as work in flight: each one lent is
 * given back once, by its release or by its socket's close. Kysely never releases a connection whose
 * onCreateConnection failed (its session settings cut by the answer limit, or by a restart of the
 * server); counted as lent for ever, it made every later close wait out the statement timeout and
 * warn of work cut that was not there.
 */
await describeOnEachAllianceAuth(
  (database) => `Connections lent from the pool to an Alliance Auth on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let pool: Pool;
    let counts: { lent: number; returned: number };

    beforeEach(async () => {
      // mysql2 pools only: node-postgres's are counted through its own acquire and release events.
      if (kind !== 'mysql') return;
      fixture = await createAllianceAuthDatabase(kind);
      pool = createPool({ uri: fixture.readerUrl, connectionLimit: 2 });
      counts = { lent: 0, returned: 0 };
    });
    afterEach(async () => {
      await new Promise<void>((resolve) => (pool ? pool.end(() => resolve()) : resolve()));
      await fixture?.drop();
    });

    const lendOne = (limited: ReturnType<typeof mysqlPoolWithAnswerLimit>) =>
      new Promise<{ release: () => void }>((resolve, reject) => {
        limited.getConnection((error, view) => {
          if (error) reject(error);
          else resolve({ release: () => view.release() });
        });
      });

    it('counts a lent connection given back when its socket closes, never released', async (t) => {
      if (kind !== 'mysql')
        return t.skip(
          "mysql2 pools only: node-postgres's are counted through its own acquire and release events",
        );
      let socket: Socket | undefined;
      pool.on('connection', (connection) => {
        socket = (connection as unknown as { stream: Socket }).stream;
      });
      const limited = mysqlPoolWithAnswerLimit(pool, 5000, {
        lent: () => (counts.lent += 1),
        returned: () => (counts.returned += 1),
      });
      const lent = await lendOne(limited);
      assert.deepEqual(counts, { lent: 1, returned: 0 });
      // As when the server goes away during onCreateConnection: Kysely never calls release.
      socket!.destroy();
      await waitUntil(() => counts.returned === 1, 'the lent connection given back by its close');
      // A release after all (the usual path) does not give it back twice.
      lent.release();
      assert.deepEqual(counts, { lent: 1, returned: 1 });
    });

    it('counts a connection released and lent again once each time', async (t) => {
      if (kind !== 'mysql')
        return t.skip(
          "mysql2 pools only: node-postgres's are counted through its own acquire and release events",
        );
      const limited = mysqlPoolWithAnswerLimit(pool, 5000, {
        lent: () => (counts.lent += 1),
        returned: () => (counts.returned += 1),
      });
      for (let round = 1; round <= 3; round += 1) {
        const lent = await lendOne(limited);
        assert.equal(counts.lent, round);
        lent.release();
        assert.equal(counts.returned, round);
      }
    });
  },
);
