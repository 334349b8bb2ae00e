import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { createLoginThrottle } from '../../src/oidc/interactions/throttle.ts';
import { connect, createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { assertIndexOnly, planOfOnlyStatement } from '../helpers/query-plan.ts';

/**
 * The purge of login failures past the failure window finds them by time: a password spray from many
 * addresses leaves many rows, which neither the account's nor the address's index orders by time alone.
 */
describe(`login throttle: the purge of old failures (${testDatabaseKind})`, () => {
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

  it('finds the failures to delete by their time, not by a scan of the table', async (t) => {
    if (handle.kind !== 'sqlite') return t.skip('the query plan is read on SQLite');
    const plan = await planOfOnlyStatement(handle.db, async (observed) => {
      const throttle = createLoginThrottle(observed, handle.kind, {
        maxFailuresPerAccountAndAddress: 5,
        maxFailuresPerAccount: 10,
        maxCodeFailuresPerUser: 10,
        maxFailuresPerAddress: 100,
        failureWindowSeconds: 900,
      });
      assert.deepEqual(await throttle.purge(), { deleted: 0, more: false });
    });
    assertIndexOnly(plan, /login_failure_failed_at_idx/);
  });
});
