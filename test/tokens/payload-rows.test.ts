import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { revokePayloadsOfGrant } from '../../src/tokens/payload-rows.ts';
import { revokeLiveTokenRowsOfUsers, USERS_PER_STATEMENT } from '../../src/tokens/store-users.ts';
import { revokeLiveTokenRows } from '../../src/tokens/token-rows.ts';
import { connect, createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';

describe(`revocations of several rows and the merged consumes (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;

  before(async () => {
    if (testDatabaseKind !== 'postgres') return;
    database = await createTestDatabase({ migrated: true });
    handle = connect(database);
  });
  after(async () => {
    await handle?.close();
    await database?.drop();
  });

  /**
   * Two live codes of user `owner` in grant `grantId` (or the lower id of `owner.lower`'s, the higher
   * of `owner.higher`'s), the higher id stored first (the table, and an index, hold rows of one key
   * in the order they were stored); a consume holds the lower id and is about to lock the higher one,
   * as a merged consume does, while `revoke` revokes both. The higher id must still be free while
   * `revoke` waits for the lower one.
   */
  async function revokeWhileConsuming(
    owner: string | { lower: string; higher: string },
    grantId: string,
    revoke: () => Promise<Array<{ id: string }>>,
  ): Promise<void> {
    const other = new pg.Client({ connectionString: database.url });
    const watcher = new pg.Client({ connectionString: database.url });
    await other.connect();
    await watcher.connect();
    const [lower, higher] = [`${grantId}-code-1`, `${grantId}-code-2`];
    try {
      const owners = typeof owner === 'string' ? { lower: owner, higher: owner } : owner;
      for (const [id, userId] of [
        [higher, owners.higher],
        [lower, owners.lower],
      ]) {
        await other.query(
          `insert into oidc_payload (model, id, payload, grant_id, user_id, client_id, expires_at)
           values ('AuthorizationCode', $1, '{}', $2, $3, 'c', 4102444800000)`,
          [id, grantId, userId],
        );
      }
      const stored = await other.query<{ id: string }>(
        'select id from oidc_payload where grant_id = $1 order by ctid',
        [grantId],
      );
      assert.deepEqual(
        stored.rows.map((row) => row.id),
        [higher, lower],
      );

      await other.query('begin');
      await other.query(
        `select 1 from oidc_payload where model = 'AuthorizationCode' and id = $1 for update`,
        [lower],
      );
      const revocation = revoke();
      await eventually(async () => {
        const waiting = await watcher.query(
          `select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`,
        );
        return waiting.rowCount === 1;
      }, 'the revocation waits for the consume');
      let higherLocked: string = 'locked';
      try {
        await other.query(
          `select 1 from oidc_payload where model = 'AuthorizationCode' and id = $1 for update nowait`,
          [higher],
        );
      } catch (error) {
        higherLocked = `refused: ${(error as { code?: string }).code}`;
      }
      await other.query(higherLocked === 'locked' ? 'commit' : 'rollback');
      const revoked = await revocation;

      assert.equal(higherLocked, 'locked', 'the higher id is still free while the revocation waits');
      assert.deepEqual(revoked.map((row) => row.id).sort(), [lower, higher]);
    } finally {
      await other.end();
      await watcher.end();
    }
  }

  const skip = testDatabaseKind !== 'postgres' && 'SQLite has one writer: its statements take no row locks';

  it(
    "locks a grant's codes in id order, as the merged consumes do, whatever order the table holds them in",
    { skip },
    () =>
      revokeWhileConsuming('7', 'g-provider', () =>
        revokePayloadsOfGrant(handle.db, 'AuthorizationCode', 'g-provider', 1, 'test'),
      ),
  );

  it("locks a user's live codes in id order when an operator revokes them", { skip }, () =>
    revokeWhileConsuming('8', 'g-user', () => revokeLiveTokenRows(handle.db, { userId: 8 }, 'test', 1)),
  );

  it("locks a grant's live codes in id order when an operator revokes them", { skip }, () =>
    revokeWhileConsuming('9', 'g-operator', () =>
      revokeLiveTokenRows(handle.db, { grantId: 'g-operator' }, 'test', 1),
    ),
  );

  it('locks the live codes of several users in id order when their access goes', { skip }, () =>
    revokeWhileConsuming('10', 'g-users', () =>
      revokeLiveTokenRowsOfUsers(handle.db, [10, 11], ['c'], 'test', 1),
    ),
  );

  it(
    'locks the live codes of users far apart in the list in id order when their access goes',
    { skip },
    () => {
      // The first and the last of more users than SQLite's statements take at once, the last holding
      // the lower id; in a transaction, as a change's unit of work revokes them: all of their rows are
      // locked in key order, not the first users' before the last's.
      const between = Array.from({ length: USERS_PER_STATEMENT - 1 }, (_, index) => 1000 + index);
      return revokeWhileConsuming({ lower: '13', higher: '12' }, 'g-many-users', () =>
        handle.db
          .transaction()
          .execute((trx) => revokeLiveTokenRowsOfUsers(trx, [12, ...between, 13], ['c'], 'test', 1)),
      );
    },
  );
});
