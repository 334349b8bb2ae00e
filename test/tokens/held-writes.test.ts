import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Kysely, sql } from 'kysely';
import type { AuditRecord } from '../../src/audit/events.ts';
import { raiseChangeEpoch } from '../../src/db/change-epoch.ts';
import type { Database } from '../../src/db/schema.ts';
import { sha256Hex } from '../../src/logging/secrets.ts';
import { storageId } from '../../src/tokens/store.ts';
import * as flows from '../helpers/flows.ts';
import type { LeakHarness } from '../helpers/leak-harness.ts';
import { testDatabaseKind, whileWritesRefused } from '../helpers/database.ts';
import { Browser, REDIRECT_URI, type TestServer } from '../helpers/server.ts';
import {
  authorize,
  type Client,
  codeFlow,
  type Pilot,
  redeem,
  seedClient,
  seedPilot,
  startPilotServer,
} from './helpers.ts';

/**
 * The rows a request holds back until its response is built (a refresh's two tokens, an
 * authorization's code and session) are written in one statement: if it fails, nothing of it is
 * stored and nothing unstored is handed out.
 */
describe(`rows written once the response is built (${testDatabaseKind})`, () => {
  let harness: LeakHarness;
  let server: TestServer;
  let client: Client;
  let pilot: Pilot;

  before(async () => {
    ({ harness, server, pilot, client } = await startPilotServer());
  });
  after(async () => {
    await harness.assertNoLeaks();
    await server.close();
  });

  /** Runs `work` while rows of `model` cannot be inserted (a real database fault, from a trigger). */
  async function failingInserts<T>(model: string, work: () => Promise<T>): Promise<T> {
    const db = server.app.database.db as Kysely<Database>;
    if (server.app.database.kind === 'sqlite') {
      await sql`CREATE TRIGGER fail_held_insert BEFORE INSERT ON oidc_payload
        WHEN NEW.model = ${sql.lit(model)} BEGIN SELECT RAISE(ABORT, 'injected fault'); END`.execute(db);
    } else {
      await sql`CREATE FUNCTION fail_held_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'injected fault'; END $$`.execute(db);
      await sql`CREATE TRIGGER fail_held_insert BEFORE INSERT ON oidc_payload
        FOR EACH ROW WHEN (NEW.model = ${sql.lit(model)}) EXECUTE FUNCTION fail_held_insert()`.execute(db);
    }
    try {
      return await work();
    } finally {
      await sql`DROP TRIGGER fail_held_insert${sql.raw(server.app.database.kind === 'sqlite' ? '' : ' ON oidc_payload')}`.execute(
        db,
      );
      if (server.app.database.kind !== 'sqlite') await sql`DROP FUNCTION fail_held_insert()`.execute(db);
    }
  }

  /**
   * The `token_issued` and `token_revoked` events published and the tokens counted as issued while `work`
   * runs.
   */
  async function toldOfIssues<T>(work: () => Promise<T>): Promise<{
    result: T;
    issued: AuditRecord[];
    rotated: AuditRecord[];
    revoked: AuditRecord[];
    counted: number;
  }> {
    const counted = async () =>
      (await server.app.metrics.tokensIssued.get()).values.reduce((sum, value) => sum + value.value, 0);
    const records: AuditRecord[] = [];
    const before = await counted();
    const unsubscribe = server.app.audit.subscribe({
      name: 'held-writes test',
      receive: (record) => void records.push(record),
    });
    try {
      const result = await work();
      await server.app.audit.idle();
      return {
        result,
        issued: records.filter((record) => record.kind === 'token_issued'),
        rotated: records.filter(
          (record) => record.kind === 'token_revoked' && record.reason === 'refresh_rotation',
        ),
        revoked: records.filter((record) => record.kind === 'token_revoked'),
        counted: (await counted()) - before,
      };
    } finally {
      unsubscribe();
    }
  }

  it('tells of no token issued by a code exchange whose write failed, and of each one once it is stored', async () => {
    const authorized = await authorize(server, harness, client, pilot, 'openid offline_access');
    const failed = await toldOfIssues(() =>
      failingInserts('AccessToken', () => redeem(server, client, authorized)),
    );
    assert.equal(failed.result.status, 500, JSON.stringify(failed.result.body));
    assert.equal(failed.result.body.error, 'server_error');
    assert.equal(failed.result.body.access_token, undefined);
    assert.deepEqual(failed.issued, [], 'no token_issued for tokens that were not stored');
    assert.equal(failed.counted, 0, 'aa_oidc_tokens_issued_total did not count them');

    const next = await authorize(server, harness, client, pilot, 'openid offline_access');
    const stored = await toldOfIssues(() => redeem(server, client, next));
    assert.equal(stored.result.status, 200, JSON.stringify(stored.result.body));
    harness.registerSecret(String(stored.result.body.access_token), 'access token');
    harness.registerSecret(String(stored.result.body.refresh_token), 'refresh token');
    assert.deepEqual(
      stored.issued
        .map((record) => record.kind === 'token_issued' && [record.token_type, record.grant_type])
        .sort(),
      [
        ['access_token', 'authorization_code'],
        ['refresh_token', 'authorization_code'],
      ],
    );
    assert.equal(stored.counted, 1, 'the access token counted once');
  });

  it('rotates a refresh token in one write: a failing write hands out no token, stores neither and leaves the presented token usable', async () => {
    const tokens = await codeFlow(server, harness, client, pilot, 'openid offline_access');
    assert.ok(tokens.refreshToken);
    const refresh = () =>
      flows.tokenRequest(server, client, {
        grant_type: 'refresh_token',
        refresh_token: tokens.refreshToken!,
      });
    const countTokens = async () =>
      (
        await server.app.database.db
          .selectFrom('oidc_payload')
          .select('id')
          .where('model', 'in', ['AccessToken', 'RefreshToken'])
          .where('user_id', '=', String(pilot.id))
          .execute()
      ).length;
    const before = await countTokens();
    const told = await toldOfIssues(() => failingInserts('RefreshToken', refresh));
    const failed = told.result;
    assert.deepEqual(told.issued, [], 'no token_issued for tokens that were not stored');
    assert.deepEqual(told.rotated, [], 'no rotation told of for a rotation that was not stored');
    assert.equal(told.counted, 0);
    assert.equal(failed.status, 500);
    assert.equal(failed.body.error, 'server_error');
    assert.equal(failed.body.access_token, undefined, 'no token is handed out that is not stored');
    assert.equal(await countTokens(), before, 'the access token was not stored without its refresh token');
    const stored = await server.app.database.db
      .selectFrom('oidc_payload')
      .select(['consumed_at', 'revoked_at'])
      .where('model', '=', 'RefreshToken')
      .where('id', '=', storageId(tokens.refreshToken))
      .executeTakeFirstOrThrow();
    assert.deepEqual(
      stored,
      { consumed_at: null, revoked_at: null },
      'the presented refresh token stays unused',
    );

    // The client's retry with the only refresh token it holds is no replay: it rotates, once.
    const retried = await toldOfIssues(refresh);
    assert.equal(retried.result.status, 200, JSON.stringify(retried.result.body));
    harness.registerSecret(String(retried.result.body.access_token), 'access token');
    harness.registerSecret(String(retried.result.body.refresh_token), 'refresh token');
    assert.deepEqual(
      retried.issued.map((record) => record.kind === 'token_issued' && record.token_type).sort(),
      ['access_token', 'refresh_token'],
      'the retry told of its two tokens',
    );
    assert.equal(retried.rotated.length, 1, 'and of the rotation');
    const replayed = await refresh();
    assert.equal(replayed.status, 400);
    assert.equal(replayed.body.error, 'invalid_grant');

    // Without the fault, a rotation stores both tokens in one go.
    const next = await codeFlow(server, harness, client, pilot, 'openid offline_access');
    const rotated = await flows.tokenRequest(server, client, {
      grant_type: 'refresh_token',
      refresh_token: next.refreshToken!,
    });
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    harness.registerSecret(String(rotated.body.access_token), 'access token');
    harness.registerSecret(String(rotated.body.refresh_token), 'refresh token');
    for (const [model, value] of [
      ['AccessToken', rotated.body.access_token],
      ['RefreshToken', rotated.body.refresh_token],
    ] as const) {
      const row = await server.app.database.db
        .selectFrom('oidc_payload')
        .select('id')
        .where('model', '=', model)
        .where('id', '=', storageId(String(value)))
        .executeTakeFirst();
      assert.ok(row, `${model} stored`);
    }
  });

  it('tells of the refresh token a rotation refused after its consume used up, once: as rotated, or as policy_lost when the lost access revoked it first', async () => {
    /**
     * Refreshes with `refreshToken`, refused right before the tokens are saved (save_bearer, for
     * `reason`): what is stored of the token, and the reasons `token_revoked` told it with.
     */
    const refusedAtSave = async (to: Client, refreshToken: string, reason: string) => {
      const rejections = async () =>
        (await server.app.metrics.policyRejections.get()).values.find(
          (value) => value.labels.stage === 'save_bearer' && value.labels.reason === reason,
        )?.value ?? 0;
      const before = await rejections();
      const told = await toldOfIssues(() =>
        flows.tokenRequest(server, to, { grant_type: 'refresh_token', refresh_token: refreshToken }),
      );
      assert.equal(told.result.status, 400, JSON.stringify(told.result.body));
      assert.equal(told.result.body.error, 'invalid_grant');
      assert.equal((await rejections()) - before, 1, 'refused at save_bearer, after the consume');
      assert.deepEqual(told.issued, [], 'no token issued');
      const stored = await server.app.database.db
        .selectFrom('oidc_payload')
        .select(['consumed_at', 'revoked_reason'])
        .where('model', '=', 'RefreshToken')
        .where('id', '=', storageId(refreshToken))
        .executeTakeFirstOrThrow();
      return {
        consumed: stored.consumed_at !== null,
        revokedReason: stored.revoked_reason,
        told: told.revoked.flatMap((record) =>
          record.kind === 'token_revoked' && record.token_sha256 === sha256Hex(refreshToken)
            ? [record.reason]
            : [],
        ),
      };
    };

    // The application deactivated while the refresh runs, after its client was authenticated: the
    // refusal right before the tokens are saved (save_bearer) comes after the consume, and nothing
    // revokes the token (a deactivated application keeps its tokens for its return).
    const deactivated = await seedClient(server, harness, { accessTokenFormat: 'opaque' });
    const first = await codeFlow(server, harness, deactivated, pilot, 'openid offline_access');
    const { applications } = server.app;
    const findByClientId = applications.findByClientId;
    // Applications are kept in memory while the change epoch stands: moved, the refresh loads it.
    await server.app.database.db.transaction().execute((trx) => raiseChangeEpoch(trx));
    applications.findByClientId = async (clientId: string) => {
      const found = await findByClientId.call(applications, clientId);
      if (clientId === deactivated.clientId) {
        applications.findByClientId = findByClientId;
        await applications.deactivate(clientId, 'test');
      }
      return found;
    };
    try {
      assert.deepEqual(
        await refusedAtSave(deactivated, first.refreshToken!, 'app_unusable'),
        { consumed: true, revokedReason: null, told: ['refresh_rotation'] },
        'used up by the refused rotation, and told once, as rotated',
      );
    } finally {
      applications.findByClientId = findByClientId;
    }

    // The user loses the application's group while the refresh runs, right after the refresh_token
    // stage loaded the user: the change revokes the token (policy_lost) before save_bearer refuses.
    const fleetOnly = await seedClient(server, harness, { accessTokenFormat: 'opaque', groups: ['Fleet'] });
    const leaver = await seedPilot(server, harness);
    const second = await codeFlow(server, harness, fleetOnly, leaver, 'openid offline_access');
    const { directory, directoryAdmin } = server.app;
    const profileById = directory.profileById;
    const keepable = directory.keepable!;
    const profileWithPositionById = keepable.profileWithPositionById;
    let armed = true;
    const afterLoad = async (id: number) => {
      if (armed && id === leaver.id) {
        armed = false;
        await directoryAdmin.removeGroup({ id }, 'Fleet');
      }
    };
    directory.profileById = async (id: number) => {
      const profile = await profileById.call(directory, id);
      await afterLoad(id);
      return profile;
    };
    keepable.profileWithPositionById = async (id: number) => {
      const found = await profileWithPositionById.call(keepable, id);
      await afterLoad(id);
      return found;
    };
    // The process's own directory change drops the kept profiles: the refresh loads the user.
    await directoryAdmin.createGroup('Unrelated to the refresh', false);
    try {
      assert.deepEqual(
        await refusedAtSave(fleetOnly, second.refreshToken!, 'app'),
        { consumed: false, revokedReason: 'policy_lost', told: ['policy_lost'] },
        'revoked by the loss, and told once, as such',
      );
      assert.equal(armed, false);
    } finally {
      directory.profileById = profileById;
      keepable.profileWithPositionById = profileWithPositionById;
    }
  });

  it('stores an authorization code with its session: a failing write answers an error without the code', async () => {
    const browser = new Browser();
    const first = await flows.authorize(server, browser, client, pilot.username, { scope: 'openid' });
    harness.registerSecret(flows.codeFrom(first.response), 'authorization code');
    // Signed in: the next authorization is answered at once, from the session.
    const failed = await failingInserts('AuthorizationCode', () =>
      flows.authorize(server, browser, client, undefined, { scope: 'openid' }),
    );
    assert.equal(failed.response.status, 500);
    assert.equal(failed.response.headers.get('location'), null, 'no code goes to the client');
    const again = await flows.authorize(server, browser, client, undefined, { scope: 'openid' });
    const code = flows.codeFrom(again.response);
    harness.registerSecret(code, 'authorization code');
    const redeemed = await flows.tokenRequest(server, client, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: again.verifier,
    });
    assert.equal(redeemed.status, 200, JSON.stringify(redeemed.body));
    harness.registerSecret(String(redeemed.body.access_token), 'access token');
    if (redeemed.body.refresh_token)
      harness.registerSecret(String(redeemed.body.refresh_token), 'refresh token');
  });

  it('answers "try again" (503) without the code when the database is unavailable at the write', async () => {
    const browser = new Browser();
    const first = await flows.authorize(server, browser, client, pilot.username, { scope: 'openid' });
    harness.registerSecret(flows.codeFrom(first.response), 'authorization code');
    // A database that refuses writes for now: SQLite locked by another writer until the busy timeout
    // (SQLITE_BUSY; the held rows are written on the write worker's connection,
    // src/db/write-worker.ts), PostgreSQL out of disk space (SQLSTATE 53100), each only for the
    // statement that writes the held rows.
    const failed = await whileWritesRefused(
      server.app.database,
      { table: 'oidc_payload', event: 'INSERT', when: "NEW.model = 'AuthorizationCode'" },
      () => flows.authorize(server, browser, client, undefined, { scope: 'openid' }),
    );
    assert.equal(failed.response.status, 503);
    assert.equal(failed.response.headers.get('retry-after'), '5');
    assert.equal(failed.response.headers.get('location'), null, 'no code goes to the client');
    const again = await flows.authorize(server, browser, client, undefined, { scope: 'openid' });
    assert.equal(again.response.status, 303);
    harness.registerSecret(flows.codeFrom(again.response), 'authorization code');
  });
});
