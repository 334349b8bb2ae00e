import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { type Client, introspect, login } from '../helpers/flows.ts';
import { seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';
import { waitUntil } from '../helpers/wait.ts';

const DAY_MS = 86_400_000;

/**
 * A running server deletes expired rows on its own, every `oidc.purgeIntervalSeconds`: nobody calls
 * the purge, the timer does. The shortest interval the configuration takes (10 s) keeps the wait short;
 * rows are made "old" by moving their times into the past, as the passing of time would.
 */
describe(`the purge timer of a running server (${testDatabaseKind})`, () => {
  let server: TestServer;
  let client: Client;

  before(async () => {
    server = await startServer({ oidc: { purgeIntervalSeconds: 10 } });
    const app = await seedApp(server, { skipAuthorization: true });
    client = { clientId: app.clientId, clientSecret: app.clientSecret! };
  });
  after(async () => server.close());

  it('deletes expired tokens, codes, sessions, unreused issued codes, old login failures and old audit events, and nothing live', async () => {
    const db = server.app.database.db;
    const gone = await seedUser(server);
    const kept = await seedUser(server);
    const expiring = await login(server, client, gone.username);
    const live = await login(server, client, kept.username);
    const now = Date.now();

    const payloadsOf = async (userId: number) =>
      (
        await db
          .selectFrom('oidc_payload')
          .select('model')
          .where('user_id', '=', String(userId))
          .orderBy('model')
          .orderBy('id')
          .execute()
      ).map((row) => row.model);
    const expiredModels = await payloadsOf(gone.id);
    for (const model of ['AccessToken', 'AuthorizationCode', 'RefreshToken', 'Session'])
      assert.ok(expiredModels.includes(model), `the sign-in stored a ${model}: ${expiredModels.join(', ')}`);
    const liveModels = await payloadsOf(kept.id);
    // Time passes for the first user's rows only.
    await db
      .updateTable('oidc_payload')
      .set({ expires_at: now - 1000 })
      .where('user_id', '=', String(gone.id))
      .execute();
    const issuedCodes = await db.selectFrom('issued_code').select(['code_hash', 'user_id']).execute();
    const codeOf = (userId: number) => issuedCodes.find((row) => row.user_id === String(userId))!.code_hash;
    await db
      .updateTable('issued_code')
      .set({ expires_at: now - 1000 })
      .where('code_hash', '=', codeOf(gone.id))
      .execute();
    // A code presented again is kept past its time, as evidence of the replay.
    await db
      .updateTable('issued_code')
      .set({ expires_at: now - 1000, reuse_count: 1, last_reuse_at: now - 2000 })
      .where('code_hash', '=', codeOf(kept.id))
      .execute();
    await db.deleteFrom('login_failure').execute();
    await db
      .insertInto('login_failure')
      .values([
        { username: 'old', address: '192.0.2.1', failed_at: now - 901_000 },
        { username: 'recent', address: '192.0.2.1', failed_at: now - 10_000 },
      ])
      .execute();
    await server.app.audit.idle();
    await db
      .insertInto('audit_event')
      .values([
        {
          recorded_at: now - 91 * DAY_MS,
          kind: 'admin_change',
          user_id: null,
          client_id: null,
          request_id: null,
          payload: '{"old":true}',
        },
        {
          recorded_at: now - 89 * DAY_MS,
          kind: 'admin_change',
          user_id: null,
          client_id: null,
          request_id: null,
          payload: '{"old":false}',
        },
      ])
      .execute();

    await waitUntil(
      async () =>
        (await payloadsOf(gone.id)).length === 0 &&
        (
          await db
            .selectFrom('issued_code')
            .select('code_hash')
            .where('code_hash', '=', codeOf(gone.id))
            .execute()
        ).length === 0 &&
        (await db.selectFrom('login_failure').select('id').where('username', '=', 'old').execute()).length ===
          0 &&
        (await db.selectFrom('audit_event').select('id').where('payload', '=', '{"old":true}').execute())
          .length === 0,
      'the timer has purged the expired rows',
    );

    assert.deepEqual(await payloadsOf(kept.id), liveModels, 'the live rows stay');
    assert.deepEqual(
      (await db.selectFrom('issued_code').select('code_hash').execute()).map((row) => row.code_hash),
      [codeOf(kept.id)],
      'the reused code stays',
    );
    assert.deepEqual(
      (await db.selectFrom('login_failure').select('username').execute()).map((row) => row.username),
      ['recent'],
    );
    assert.equal(
      (await db.selectFrom('audit_event').select('id').where('payload', '=', '{"old":false}').execute())
        .length,
      1,
      'an audit event within audit.retentionDays stays',
    );
    assert.equal((await introspect(server, client, live.accessToken)).body.active, true);
    assert.equal((await introspect(server, client, expiring.accessToken)).body.active, false);
  });
});
