import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { inUnitOfWork } from '../../src/db/unit-of-work.ts';
import type { DirectoryChange, UserProfile } from '../../src/directory/port.ts';
import { endAccessOnUserChange } from '../../src/tokens/access-loss.ts';
import { revokePayloadsOfGrant } from '../../src/tokens/payload-rows.ts';
import { revokeLiveTokenRowsOfUsers, USERS_PER_STATEMENT } from '../../src/tokens/store-users.ts';
import { revokeLiveTokenRows } from '../../src/tokens/token-rows.ts';
import { connect, createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { userProfile } from '../helpers/profiles.ts';

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
   * of `owner.higher`'s; at application `c`, or `clients.lower` and `clients.higher`; or two rows of
   * `model`), the higher id stored first (the table, and an index, hold rows of one key in the order
   * they were stored); a consume holds the lower id and is about to lock the higher one, as a merged
   * consume does, while `revoke` revokes (or deletes) both and returns them. The higher id must still
   * be free while `revoke` waits for the lower one. Each user of `moreOwners` holds one more row (at
   * `clients.higher`), higher than both and inserted before them, which must be free too: a statement
   * that locks out of key order, in an order of its plan's (a hash of the users), then rarely locks
   * the lowest row first.
   */
  async function revokeWhileConsuming(
    owner: string | { lower: string; higher: string },
    grantId: string,
    revoke: () => Promise<Array<{ id: string }>>,
    {
      model = 'AuthorizationCode',
      clients = { lower: 'c', higher: 'c' },
      moreOwners = [],
    }: { model?: string; clients?: { lower: string; higher: string }; moreOwners?: readonly string[] } = {},
  ): Promise<void> {
    const other = new pg.Client({ connectionString: database.url });
    const watcher = new pg.Client({ connectionString: database.url });
    await other.connect();
    await watcher.connect();
    const [lower, higher] = [`${grantId}-code-1`, `${grantId}-code-2`];
    const more = moreOwners.map((userId, index) => [`${grantId}-code-3-${index}`, userId, clients.higher]);
    try {
      const owners = typeof owner === 'string' ? { lower: owner, higher: owner } : owner;
      for (const [id, userId, clientId] of [
        ...more,
        [higher, owners.higher, clients.higher],
        [lower, owners.lower, clients.lower],
      ]) {
        await other.query(
          `insert into oidc_payload (model, id, payload, grant_id, user_id, client_id, expires_at)
           values ($1, $2, '{}', $3, $4, $5, 4102444800000)`,
          [model, id, grantId, userId, clientId],
        );
      }
      // (`moreOwners`' rows may take room that earlier tests' rows left: the two are what count.)
      const stored = await other.query<{ id: string }>(
        'select id from oidc_payload where id in ($1, $2) order by ctid',
        [higher, lower],
      );
      assert.deepEqual(
        stored.rows.map((row) => row.id),
        [higher, lower],
      );

      await other.query('begin');
      await other.query(`select 1 from oidc_payload where model = $1 and id = $2 for update`, [model, lower]);
      const revocation = revoke();
      await eventually(async () => {
        const waiting = await watcher.query(
          `select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`,
        );
        return waiting.rowCount === 1;
      }, 'the revocation waits for the consume');
      // Every row but the lower one, unless the revocation locked it already.
      const free = await other.query<{ id: string }>(
        'select id from oidc_payload where model = $1 and grant_id = $2 and id <> $3 for update skip locked',
        [model, grantId, lower],
      );
      await other.query('commit');
      const revoked = await revocation;

      assert.deepEqual(
        free.rows.map((row) => row.id).sort(),
        [higher, ...more.map(([id]) => id!)].sort(),
        'the higher ids are still free while the revocation waits',
      );
      assert.deepEqual(
        revoked.map((row) => row.id).sort(),
        [lower, higher, ...more.map(([id]) => id!)].sort(),
      );
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
      revokeLiveTokenRowsOfUsers(handle.db, [{ userIds: [10, 11], clientIds: ['c'] }], 'test', 1),
    ),
  );

  it(
    'locks the live codes of users far apart in the list in id order when their access goes',
    { skip },
    () => {
      // The first and the last of more users than SQLite's statements take at once, the last holding
      // the lowest id, each user between a higher one; in a transaction, as a change's unit of work
      // revokes them: all of their rows are locked in key order, not the first users' before the
      // last's, nor in the order the statement meets the users.
      const between = Array.from({ length: USERS_PER_STATEMENT - 1 }, (_, index) => 1000 + index);
      return revokeWhileConsuming(
        { lower: '13', higher: '12' },
        'g-many-users',
        () =>
          handle.db
            .transaction()
            .execute((trx) =>
              revokeLiveTokenRowsOfUsers(
                trx,
                [{ userIds: [12, ...between, 13], clientIds: ['c'] }],
                'test',
                1,
              ),
            ),
        { moreOwners: between.map(String) },
      );
    },
  );

  /** Users who lose `lost-1` with the first user of `loseApplicationsInOneUnit`. */
  const MORE_IN_FIRST_GROUP = Array.from({ length: 50 }, (_, index) => 2000 + index);

  /**
   * One state change of users in one unit, losing another application in each of two loss groups:
   * `first` loses `lost-1` (its state `S1` is no longer theirs), `second` loses `lost-2`. Returns the
   * ids of grant `grantId`'s rows the unit revoked or deleted.
   */
  async function loseApplicationsInOneUnit(
    first: readonly number[],
    second: readonly number[],
    grantId: string,
  ) {
    await handle.db
      .insertInto('application')
      .values(
        ['lost-1', 'lost-2'].map((clientId) => ({
          client_id: clientId,
          client_secret_sha256: null,
          name: clientId,
          logo_url: null,
          redirect_uris: '[]',
          post_logout_redirect_uris: '[]',
          client_type: 'public' as const,
          grant_types: '["authorization_code"]',
          skip_authorization: 0 as const,
          active: 1 as const,
          debug_mode: 0 as const,
          pkce_required: 1 as const,
          access_token_format: 'inherit' as const,
          backchannel_logout_uri: null,
          backchannel_logout_on_revoke_only: 0 as const,
          created_by: null,
          created_at: 1,
          updated_at: 1,
        })),
      )
      .onConflict((conflict) => conflict.doNothing())
      .execute();
    await handle.db
      .insertInto('application_whitelist')
      .values([
        { client_id: 'lost-1', kind: 'state', name: 'S1' },
        { client_id: 'lost-2', kind: 'state', name: 'S2' },
      ])
      .onConflict((conflict) => conflict.doNothing())
      .execute();
    const changes: DirectoryChange[] = [
      ...first.map((userId) => ({ userId, before: 'S1' })),
      ...second.map((userId) => ({ userId, before: 'S2' })),
    ].map(({ userId, before }) => ({
      kind: 'user_state_changed',
      userId,
      before: profile(userId, before),
      after: profile(userId, 'S0'),
    }));
    const rows = await handle.db
      .selectFrom('oidc_payload')
      .select('id')
      .where('grant_id', '=', grantId)
      .execute();
    const consumer = endAccessOnUserChange({ kind: 'postgres', audit: { publish: () => undefined } });
    await inUnitOfWork(handle.db, (unit) => consumer.batch!(changes, unit));
    const kept = await handle.db
      .selectFrom('oidc_payload')
      .select('id')
      .where('grant_id', '=', grantId)
      .where('revoked_reason', 'is', null)
      .execute();
    const keptIds = new Set(kept.map((row) => row.id));
    return rows.filter((row) => !keptIds.has(row.id));
  }

  it(
    'locks the live codes of users who lose different applications in one change in id order, across the groups',
    { skip },
    () =>
      // The first change's user (the first group) holds the higher id, the second's the lower, and
      // more users of the first group higher ones.
      revokeWhileConsuming(
        { lower: '21', higher: '20' },
        'g-groups',
        () => loseApplicationsInOneUnit([20, ...MORE_IN_FIRST_GROUP], [21], 'g-groups'),
        { clients: { lower: 'lost-2', higher: 'lost-1' }, moreOwners: MORE_IN_FIRST_GROUP.map(String) },
      ),
  );

  it(
    'deletes the grants of users who lose different applications in one change in id order, across the groups',
    { skip },
    () =>
      revokeWhileConsuming(
        { lower: '23', higher: '22' },
        'g-grants',
        () => loseApplicationsInOneUnit([22, ...MORE_IN_FIRST_GROUP], [23], 'g-grants'),
        {
          model: 'Grant',
          clients: { lower: 'lost-2', higher: 'lost-1' },
          moreOwners: MORE_IN_FIRST_GROUP.map(String),
        },
      ),
  );
});

/** User `id` holding state `state`, which grants `oidc_access`. */
function profile(id: number, state: string): UserProfile {
  return userProfile(id, { state: { name: state, priority: 1, oidcAccess: true } });
}
