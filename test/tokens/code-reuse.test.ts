import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import type { AuditRecord } from '../../src/audit/events.ts';
import { sha256Hex } from '../../src/logging/secrets.ts';
import { storageIdHex } from '../../src/tokens/revocation.ts';
import { storageId } from '../../src/tokens/store.ts';
import { purgeIssuedCodes } from '../../src/tokens/issued-codes.ts';
import * as flows from '../helpers/flows.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import {
  authorize,
  type Client,
  codeFlow,
  isActive,
  type Pilot,
  redeem,
  seedClient,
  seedDirectory,
  seedPilot,
  userinfo,
} from './helpers.ts';
import { removeGroupUnannounced } from '../policy/observe.ts';

describe(`authorization-code reuse (${testDatabaseKind})`, () => {
  let harness: LeakHarness;
  let server: TestServer;
  let jwtClient: Client;
  let opaqueClient: Client;
  let pilot: Pilot;

  const issuedCode = (code: string) =>
    server.app.database.db
      .selectFrom('issued_code')
      .selectAll()
      .where('code_hash', '=', sha256Hex(code))
      .executeTakeFirst();
  const reuseEvents = (code: string) =>
    harness.auditRecords.filter(
      (record): record is Extract<AuditRecord, { kind: 'code_reuse_detected' }> =>
        record.kind === 'code_reuse_detected' && record.code_hash === sha256Hex(code),
    );
  const misses = async (clientId: string) => {
    const metric = await server.app.metrics.codeReuseAuditMisses.get();
    return metric.values.find((value) => value.labels.client_id === clientId)?.value ?? 0;
  };
  /** The storage id of an access token: of the token itself (opaque) or of its jti (JWT). */
  const accessTokenId = (token: string) => {
    const parts = token.split('.');
    if (parts.length !== 3) return storageId(token);
    const { jti } = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { jti: string };
    return storageId(jti);
  };

  before(async () => {
    harness = createLeakHarness();
    server = await startServer({}, { harness });
    await seedDirectory(server);
    pilot = await seedPilot(server, harness);
    jwtClient = await seedClient(server, harness, { accessTokenFormat: 'jwt' });
    opaqueClient = await seedClient(server, harness, { accessTokenFormat: 'opaque' });
  });
  after(async () => {
    await harness.assertNoLeaks();
    await server.close();
  });

  it('records the redeemed code by digest with the ids of the tokens it produced', async () => {
    const tokens = await codeFlow(server, harness, jwtClient, pilot);
    const row = await issuedCode(tokens.code);
    assert.ok(row, 'an issued_code row keyed by sha256(code)');
    assert.equal(row.client_id, jwtClient.clientId);
    assert.equal(row.user_id, String(pilot.id));
    assert.equal(row.access_token_id, accessTokenId(tokens.accessToken));
    assert.equal(row.refresh_token_id, storageId(tokens.refreshToken!));
    assert.equal(row.reuse_count, 0);
    assert.equal(row.last_reuse_at, null);
    assert.equal(row.expires_at - row.created_at, server.app.config.tokens.refreshTokenTtl * 1000);
    const stored = JSON.stringify(
      await server.app.database.db.selectFrom('issued_code').selectAll().execute(),
    );
    assert.ok(!stored.includes(tokens.code) && !stored.includes(tokens.accessToken));
  });

  for (const format of ['opaque', 'jwt'] as const) {
    it(`answers a replay with invalid_grant and revokes what the code produced (${format})`, async () => {
      const client = format === 'jwt' ? jwtClient : opaqueClient;
      const tokens = await codeFlow(server, harness, client, pilot);
      assert.equal(await isActive(server, client, tokens.accessToken), true);
      const missesBefore = await misses(client.clientId);

      const replay = await redeem(server, client, tokens);
      assert.equal(replay.status, 400);
      assert.equal(replay.body.error, 'invalid_grant');
      assert.equal(await isActive(server, client, tokens.accessToken), false);
      assert.equal(await isActive(server, client, tokens.refreshToken!), false);
      assert.equal((await userinfo(server, tokens.accessToken)).status, 401);

      const row = await issuedCode(tokens.code);
      assert.equal(row?.reuse_count, 1);
      assert.ok(row?.last_reuse_at);
      await server.app.audit.idle();
      const [event] = reuseEvents(tokens.code);
      assert.ok(event, 'code_reuse_detected');
      const { time: _time, request_id: _request, ...body } = event;
      assert.deepEqual(body, {
        kind: 'code_reuse_detected',
        client_id: client.clientId,
        code_hash: sha256Hex(tokens.code),
        access_token_id: accessTokenId(tokens.accessToken),
        refresh_token_id: storageId(tokens.refreshToken!),
        reuse_count: 1,
        revoke_succeeded: true,
      });
      const revoked = harness.auditRecords.filter(
        (record) => record.kind === 'token_revoked' && record.reason === 'code_reuse',
      );
      assert.ok(
        revoked.some(
          (record) =>
            record.kind === 'token_revoked' &&
            record.token_sha256 ===
              sha256Hex(
                format === 'jwt'
                  ? JSON.parse(Buffer.from(tokens.accessToken.split('.')[1]!, 'base64url').toString()).jti
                  : tokens.accessToken,
              ),
        ),
      );

      const again = await redeem(server, client, tokens);
      assert.equal(again.body.error, 'invalid_grant');
      assert.equal((await issuedCode(tokens.code))?.reuse_count, 2, 'every replay is counted');
      await server.app.audit.idle();
      assert.deepEqual(
        reuseEvents(tokens.code).map((record) => record.reuse_count),
        [1, 2],
      );
      assert.equal(await misses(client.clientId), missesBefore, 'a replay is no audit miss');
    });
  }

  it('answers a replay whose revocation fails with a database fault 503 temporarily_unavailable, and counts it', async () => {
    const db = server.app.database.db;
    const tokens = await codeFlow(server, harness, opaqueClient, pilot);
    const other = await codeFlow(server, harness, opaqueClient, pilot);
    const logged = harness.logLines.length;
    // A real database fault, injected with a trigger: no row can be revoked for a code's reuse.
    if (server.app.database.kind === 'sqlite') {
      await sql`CREATE TRIGGER fail_reuse_revocation BEFORE UPDATE ON oidc_payload
        WHEN NEW.revoked_reason = 'code_reuse' BEGIN SELECT RAISE(ABORT, 'injected fault'); END`.execute(db);
    } else {
      await sql`CREATE FUNCTION fail_reuse_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'injected fault'; END $$`.execute(db);
      await sql`CREATE TRIGGER fail_reuse_revocation BEFORE UPDATE ON oidc_payload
        FOR EACH ROW WHEN (NEW.revoked_reason = 'code_reuse') EXECUTE FUNCTION fail_reuse_revocation()`.execute(
        db,
      );
    }
    let replay;
    let otherReplay;
    try {
      replay = await redeem(server, opaqueClient, tokens);
      otherReplay = await redeem(server, opaqueClient, other);
    } finally {
      await sql`DROP TRIGGER fail_reuse_revocation${sql.raw(server.app.database.kind === 'sqlite' ? '' : ' ON oidc_payload')}`.execute(
        db,
      );
      if (server.app.database.kind !== 'sqlite') await sql`DROP FUNCTION fail_reuse_revocation()`.execute(db);
    }
    assert.equal(replay.status, 503, JSON.stringify(replay.body));
    assert.equal(replay.body.error, 'temporarily_unavailable');
    // Told as what it is: the database answered, it could not do this.
    assert.equal(
      replay.body.error_description,
      'the service could not complete the request; try again in a few seconds',
    );
    assert.equal(replay.headers.get('retry-after'), '5');
    assert.equal(replay.body.access_token, undefined);
    assert.equal((await issuedCode(tokens.code))?.reuse_count, 1, 'the reuse is counted on its row');
    await server.app.audit.idle();
    assert.deepEqual(
      reuseEvents(tokens.code).map((record) => [record.reuse_count, record.revoke_succeeded]),
      [[1, false]],
    );
    assert.equal(otherReplay.status, 503);
    const lines = harness.logLines.slice(logged).join('\n');
    assert.match(lines, /injected fault/, 'the fault is logged');
    assert.ok(!lines.includes(tokens.code), 'without the code');
    // Told as what it is, a database error that is no outage, each time: not as an outage's repeats.
    assert.doesNotMatch(lines, /database is unavailable/);
    const faults = harness.logLines
      .slice(logged)
      .map((line) => JSON.parse(line) as { msg?: string; err?: { message?: string } })
      .filter(
        (line) =>
          line.msg ===
          'the grant of a replayed authorization code could not be revoked: a database error, not an outage; answering 503 so that the client tries again',
      );
    assert.equal(faults.length, 2, lines);
    assert.match(String(faults[0]!.err?.message), /injected fault/);

    // Presented again once the database works: the grant is revoked, as for any replay.
    const again = await redeem(server, opaqueClient, tokens);
    assert.equal(again.status, 400);
    assert.equal(again.body.error, 'invalid_grant');
    assert.equal(await isActive(server, opaqueClient, tokens.accessToken), false);
    assert.equal(await isActive(server, opaqueClient, tokens.refreshToken!), false);
    assert.equal((await issuedCode(tokens.code))?.reuse_count, 2);
  });

  for (const format of ['opaque', 'jwt'] as const) {
    it(`lets exactly one of 20 concurrent redemptions of one code succeed, then revokes its tokens (${format})`, async () => {
      const client = format === 'jwt' ? jwtClient : opaqueClient;
      const authorized = await authorize(server, harness, client, pilot, 'openid profile');
      const responses = await Promise.all(
        Array.from({ length: 20 }, () => redeem(server, client, authorized)),
      );
      const winners = responses.filter((response) => response.status === 200);
      assert.equal(winners.length, 1, `exactly one success: ${responses.map((r) => r.status).join(',')}`);
      for (const loser of responses.filter((response) => response.status !== 200)) {
        assert.equal(loser.status, 400);
        assert.equal(loser.body.error, 'invalid_grant');
      }
      const accessToken = String(winners[0]!.body.access_token);
      const refreshToken = String(winners[0]!.body.refresh_token);
      harness.registerSecret(accessToken, 'raced access token');
      harness.registerSecret(refreshToken, 'raced refresh token');
      assert.equal(accessToken.split('.').length === 3, format === 'jwt');
      assert.equal(await isActive(server, client, accessToken), false, 'the access token is revoked');
      assert.equal(await isActive(server, client, refreshToken), false, 'the refresh token is revoked');
      const row = await issuedCode(authorized.code);
      assert.equal(row?.reuse_count, 19);
      assert.equal(row?.access_token_id, accessTokenId(accessToken));
      const stored = await server.app.database.db
        .selectFrom('oidc_payload')
        .select(['revoked_at', 'revoked_reason'])
        .where('id', 'in', [accessTokenId(accessToken), storageId(refreshToken)])
        .execute();
      assert.equal(stored.length, 2, 'both tokens were stored');
      for (const token of stored) assert.ok(token.revoked_at !== null);
    });
  }

  for (const format of ['opaque', 'jwt'] as const) {
    it(`tells of each token of a code redeemed 10 times at once revoked exactly once (${format})`, async () => {
      const client = format === 'jwt' ? jwtClient : opaqueClient;
      const authorized = await authorize(server, harness, client, pilot, 'openid profile');
      await server.app.audit.idle();
      const from = harness.auditRecords.length;
      const responses = await Promise.all(
        Array.from({ length: 10 }, () => redeem(server, client, authorized)),
      );
      const winners = responses.filter((response) => response.status === 200);
      assert.equal(winners.length, 1, `exactly one success: ${responses.map((r) => r.status).join(',')}`);
      const accessToken = String(winners[0]!.body.access_token);
      const refreshToken = String(winners[0]!.body.refresh_token);
      harness.registerSecret(accessToken, 'raced access token');
      harness.registerSecret(refreshToken, 'raced refresh token');
      const tokenIds = [accessTokenId(accessToken), storageId(refreshToken)];
      const stored = await server.app.database.db
        .selectFrom('oidc_payload')
        .select(['id', 'revoked_reason'])
        .where('id', 'in', tokenIds)
        .where('model', 'in', ['AccessToken', 'RefreshToken'])
        .execute();
      assert.deepEqual(
        stored.map((token) => token.revoked_reason),
        ['code_reuse', 'code_reuse'],
        'both tokens are stored, revoked',
      );
      await server.app.audit.idle();
      const published = harness.auditRecords.slice(from);
      const revoked = published.filter(
        (record): record is Extract<AuditRecord, { kind: 'token_revoked' }> =>
          record.kind === 'token_revoked' && record.client_id === client.clientId,
      );
      assert.deepEqual(
        revoked.map((record) => `${record.token_type} ${record.token_sha256} ${record.reason}`).sort(),
        [
          `access_token ${storageIdHex(tokenIds[0]!)} code_reuse`,
          `refresh_token ${storageIdHex(tokenIds[1]!)} code_reuse`,
        ].sort(),
        'one token_revoked per revoked token',
      );
      // Each refused redemption is a replay of the code the winner redeemed, counted once.
      assert.deepEqual(
        reuseEvents(authorized.code)
          .map((record) => record.reuse_count)
          .sort((a, b) => a - b),
        [1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
      assert.equal((await issuedCode(authorized.code))?.reuse_count, 9);
    });
  }

  it('revokes on a replay the tokens the code’s grant got since, from a refresh', async () => {
    const tokens = await codeFlow(server, harness, opaqueClient, pilot);
    const refreshed = await flows.tokenRequest(server, opaqueClient, {
      grant_type: 'refresh_token',
      refresh_token: tokens.refreshToken!,
    });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    const accessToken = String(refreshed.body.access_token);
    const refreshToken = String(refreshed.body.refresh_token);
    harness.registerSecret(accessToken, 'access token');
    harness.registerSecret(refreshToken, 'refresh token');
    assert.equal(await isActive(server, opaqueClient, accessToken), true);

    const replay = await redeem(server, opaqueClient, tokens);
    assert.equal(replay.body.error, 'invalid_grant');
    assert.equal(await isActive(server, opaqueClient, accessToken), false, 'the refreshed access token');
    assert.equal(await isActive(server, opaqueClient, refreshToken), false, 'the rotated refresh token');
  });

  it('counts a never-issued code as an audit miss, and nothing else', async () => {
    const before = await misses(opaqueClient.clientId);
    const eventsBefore = harness.auditRecords.filter(
      (record) => record.kind === 'code_reuse_detected',
    ).length;
    const forged = randomBytes(32).toString('base64url');
    const response = await redeem(server, opaqueClient, {
      code: forged,
      verifier: randomBytes(32).toString('base64url'),
    });
    assert.equal(response.body.error, 'invalid_grant');
    assert.equal(await misses(opaqueClient.clientId), before + 1);
    assert.equal(await issuedCode(forged), undefined);

    // A real code refused for another reason (a wrong PKCE verifier) is neither a miss nor a reuse.
    const authorized = await authorize(server, harness, opaqueClient, pilot, 'openid');
    const wrong = await redeem(server, opaqueClient, {
      ...authorized,
      verifier: randomBytes(32).toString('base64url'),
    });
    assert.equal(wrong.body.error, 'invalid_grant');
    assert.equal(await misses(opaqueClient.clientId), before + 1);
    await server.app.audit.idle();
    assert.equal(
      harness.auditRecords.filter((record) => record.kind === 'code_reuse_detected').length,
      eventsBefore,
    );
    // …and the code still works once.
    assert.equal((await redeem(server, opaqueClient, authorized)).status, 200);
  });

  it('does not take a first redemption refused after consuming the code (a policy loss) for a replay', async () => {
    const fleetOnly = await seedClient(server, harness, { groups: ['Fleet'] });
    const member = await seedPilot(server, harness, ['Fleet']);
    const authorized = await authorize(server, harness, fleetOnly, member, 'openid');
    // Unannounced (as an Alliance Auth change before its poll): a published change would revoke the
    // code itself, and this is about the policy refusing it after the code was consumed.
    await removeGroupUnannounced(server, member.id, 'Fleet');
    const missesBefore = await misses(fleetOnly.clientId);
    const refused = await redeem(server, fleetOnly, authorized);
    assert.equal(refused.body.error, 'invalid_grant');
    await server.app.audit.idle();
    assert.deepEqual(reuseEvents(authorized.code), [], 'no code_reuse_detected');
    assert.equal((await issuedCode(authorized.code))?.reuse_count, 0);
    assert.equal(await misses(fleetOnly.clientId), missesBefore);
    const replay = await redeem(server, fleetOnly, authorized);
    assert.equal(replay.body.error, 'invalid_grant');
    await server.app.audit.idle();
    assert.equal(reuseEvents(authorized.code).length, 1, 'presenting it again is a replay');
  });

  it('writes the consume, the audit row and the tokens in one transaction: a failing token write leaves none, and the retry is no replay', async () => {
    const db = server.app.database.db;
    // A real database fault, injected with a trigger: refresh-token rows cannot be inserted.
    if (server.app.database.kind === 'sqlite') {
      await sql`CREATE TRIGGER fail_refresh_insert BEFORE INSERT ON oidc_payload
        WHEN NEW.model = 'RefreshToken' BEGIN SELECT RAISE(ABORT, 'injected fault'); END`.execute(db);
    } else {
      await sql`CREATE FUNCTION fail_refresh_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'injected fault'; END $$`.execute(db);
      await sql`CREATE TRIGGER fail_refresh_insert BEFORE INSERT ON oidc_payload
        FOR EACH ROW WHEN (NEW.model = 'RefreshToken') EXECUTE FUNCTION fail_refresh_insert()`.execute(db);
    }
    let response;
    let authorized;
    try {
      authorized = await authorize(server, harness, jwtClient, pilot, 'openid');
      response = await redeem(server, jwtClient, authorized);
    } finally {
      await sql`DROP TRIGGER fail_refresh_insert${sql.raw(server.app.database.kind === 'sqlite' ? '' : ' ON oidc_payload')}`.execute(
        db,
      );
      if (server.app.database.kind !== 'sqlite') await sql`DROP FUNCTION fail_refresh_insert()`.execute(db);
    }
    assert.equal(response.status, 500);
    assert.equal(response.body.error, 'server_error');
    assert.equal(response.body.access_token, undefined, 'no token is handed out that is not stored');
    assert.equal(await issuedCode(authorized.code), undefined, 'no audit row: the code was not redeemed');
    const code = await db
      .selectFrom('oidc_payload')
      .select(['grant_id', 'consumed_at'])
      .where('model', '=', 'AuthorizationCode')
      .where('id', '=', storageId(authorized.code))
      .executeTakeFirstOrThrow();
    assert.equal(code.consumed_at, null, 'the code stays unused');
    const tokens = await db
      .selectFrom('oidc_payload')
      .select('model')
      .where('model', 'in', ['AccessToken', 'RefreshToken'])
      .where('grant_id', '=', code.grant_id)
      .execute();
    assert.deepEqual(tokens, [], 'the access-token row written before the failure was rolled back');

    // The client's retry with the same code redeems it: no replay, no revoked grant.
    const retried = await redeem(server, jwtClient, authorized);
    assert.equal(retried.status, 200, JSON.stringify(retried.body));
    harness.registerSecret(String(retried.body.access_token), 'access token');
    if (retried.body.refresh_token)
      harness.registerSecret(String(retried.body.refresh_token), 'refresh token');
    await server.app.audit.idle();
    assert.deepEqual(reuseEvents(authorized.code), [], 'no code_reuse_detected');
    const row = await issuedCode(authorized.code);
    assert.ok(row, 'the redemption is audited');
    assert.equal(row.reuse_count, 0);
    assert.ok(row.access_token_id !== null, 'with its tokens');
    const replay = await redeem(server, jwtClient, authorized);
    assert.equal(replay.body.error, 'invalid_grant', 'the redeemed code is used up');
    await server.app.audit.idle();
    assert.equal(reuseEvents(authorized.code).length, 1, 'presenting it again is a replay');
  });

  it('purges unreused rows after the refresh-token lifetime and keeps reused ones', async () => {
    const db = server.app.database.db;
    const now = Date.now();
    const base = {
      client_id: opaqueClient.clientId,
      user_id: String(pilot.id),
      grant_id: 'purge-test',
      access_token_id: null,
      refresh_token_id: null,
      last_reuse_at: null,
      created_at: now - 10_000,
    };
    await db
      .insertInto('issued_code')
      .values([
        { ...base, code_hash: 'a'.repeat(64), reuse_count: 0, expires_at: now - 1 },
        { ...base, code_hash: 'b'.repeat(64), reuse_count: 2, expires_at: now - 1, last_reuse_at: now - 5 },
        { ...base, code_hash: 'c'.repeat(64), reuse_count: 0, expires_at: now + 60_000 },
      ])
      .execute();
    assert.ok((await purgeIssuedCodes(db, now)).deleted >= 1);
    const left = await db
      .selectFrom('issued_code')
      .select('code_hash')
      .where('grant_id', '=', 'purge-test')
      .orderBy('code_hash')
      .execute();
    assert.deepEqual(
      left.map((row) => row.code_hash[0]),
      ['b', 'c'],
    );
  });
});
