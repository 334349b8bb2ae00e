import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { sql } from 'kysely';
import { isStatementTimeout } from '../../src/alliance-auth/database.ts';
import { createServices } from '../../src/services.ts';
import {
  allianceAuthDirectory,
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
  type AllianceAuthTestDatabase,
} from '../helpers/alliance-auth.ts';
import { testConfig } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

await describeOnEachAllianceAuth(
  (database) => `The statement timeout on Alliance Auth's database (${database})`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let database: TestDatabase;
    before(async () => {
      fixture = await createAllianceAuthDatabase(kind);
      database = await createTestDatabase({ migrated: true });
    });
    after(async () => {
      await database?.drop();
      await fixture?.drop();
    });

    /** A query on AA's connection as the configured server opens it, taking `seconds` to answer. */
    const sleepWith = async (statementTimeoutSeconds: number, seconds: number) => {
      const services = await createServices(
        testConfig(database, {
          directory: {
            source: 'alliance-auth',
            allianceAuth: {
              ...allianceAuthDirectory(fixture.readerUrl).allianceAuth,
              statementTimeoutSeconds,
            },
          },
        }),
      );
      try {
        const aa = services.allianceAuth!.connection;
        assert.equal(aa.statementTimeoutMs, statementTimeoutSeconds * 1000);
        const query =
          kind === 'mysql'
            ? sql`select sleep(${seconds}) as slept`
            : sql`select pg_sleep(${seconds}) as slept`;
        return await query.execute(aa.db).then(
          () => 'finished' as const,
          (error: unknown) => (isStatementTimeout(error) ? ('cancelled' as const) : Promise.reject(error)),
        );
      } finally {
        await services.close();
      }
    };

    it('cancels a query slower than AA_OIDC_AA_STATEMENT_TIMEOUT_SECONDS, and lets a longer setting finish it', async () => {
      assert.equal(await sleepWith(1, 2), 'cancelled');
      assert.equal(await sleepWith(3, 2), 'finished');
    });
  },
);
