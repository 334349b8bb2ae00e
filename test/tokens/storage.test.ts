import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { FORMAT_MARKER, KyselyAdapter, VALUE_DIGEST_MARKER } from '../../src/oidc/adapter.ts';
import { selectUserSessions, storageId } from '../../src/tokens/store.ts';
import { usersHoldingTokensRedeemedSince } from '../../src/tokens/store-users.ts';
import { listTokens } from '../../src/tokens/listing.ts';
import { createTokenRevocation, revokeTokens } from '../../src/tokens/revocation.ts';
import { connect, createTestDatabase, testDatabaseKind, type TestDatabase } from '../helpers/database.ts';
import { assertIndexOnly, queriesDuring, sqlitePlan } from '../helpers/query-plan.ts';

/** A compact JWS-shaped value naming `jti` (the adapter compares digests; it does not verify). */
function jwtShaped(jti: string, extra: Record<string, unknown> = {}): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'RS256', typ: 'at+jwt' })}.${part({ jti, ...extra })}.c2lnbmF0dXJl`;
}

describe(`token storage: JWT lookup, soft revocation, listing (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  const now = 1_700_000_000_000;
  const clock = () => now;

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    handle = connect(database);
  });
  after(async () => {
    await handle.close();
    await database.drop();
  });

  it("finds a user's sessions, each application with its sid, in one query on an index", async () => {
    const sessions = new KyselyAdapter('Session', handle.db, clock);
    const session = (accountId: string, authorizations: Record<string, { sid: string }>) => ({
      accountId,
      authorizations,
      loginTs: now / 1000,
      kind: 'Session',
    });
    await sessions.upsert(
      'session-a',
      session('7001', { app1: { sid: 'sid-a1' }, app2: { sid: 'sid-a2' } }),
      600,
    );
    await sessions.upsert('session-b', session('7001', { app1: { sid: 'sid-b1' } }), 600);
    await sessions.upsert('session-c', session('7002', { app1: { sid: 'sid-c1' } }), 600);
    const { result: found, queries } = await queriesDuring(handle.db, (observed) =>
      selectUserSessions(observed, 7001, now),
    );
    assert.equal(queries.length, 1, 'one query');
    assert.deepEqual(
      found.flatMap((entry) => entry.clients.map((client) => `${client.clientId}:${client.sid}`)).sort(),
      ['app1:sid-a1', 'app1:sid-b1', 'app2:sid-a2'],
    );
    if (testDatabaseKind === 'sqlite') {
      assertIndexOnly(await sqlitePlan(handle.db, queries[0]!), /USING INDEX/);
    }
  });

  it('names who redeemed a code since a time and still holds its tokens, reading the codes on an index', async () => {
    const code = (hash: string, userId: string, createdAt: number) => ({
      code_hash: hash.padEnd(64, '0'),
      client_id: 'app1',
      user_id: userId,
      grant_id: null,
      access_token_id: null,
      refresh_token_id: null,
      reuse_count: 0,
      last_reuse_at: null,
      created_at: createdAt,
      expires_at: createdAt + 86_400_000,
    });
    await handle.db
      .insertInto('issued_code')
      .values([
        code('a1', '8001', now - 60_000), // recent, holds a token
        code('a2', '8002', now - 60_000), // recent, its token expired
        code('a3', '8003', now - 3_600_000), // before the time asked
        code('a4', '8004', now), // at the end of the time asked: not in it
        code('a5', '8005', now - 60_000), // recent, holds only the refresh token a refresh rotated
      ])
      .execute();
    const tokens = new KyselyAdapter('AccessToken', handle.db, clock);
    const token = (jti: string, accountId: string) => ({
      jti,
      kind: 'AccessToken',
      accountId,
      clientId: 'app1',
      grantId: `g-${jti}`,
      scope: 'openid',
    });
    await tokens.upsert('at-8001', token('at-8001', '8001'), 600);
    await tokens.upsert('at-8003', token('at-8003', '8003'), 600);
    await tokens.upsert('at-8004', token('at-8004', '8004'), 600);
    await new KyselyAdapter('AccessToken', handle.db, () => now - 7_200_000).upsert(
      'at-8002',
      token('at-8002', '8002'),
      60,
    );

    const refreshTokens = new KyselyAdapter('RefreshToken', handle.db, clock);
    await refreshTokens.upsert('rt-8005', { ...token('rt-8005', '8005'), kind: 'RefreshToken' }, 600);
    await refreshTokens.consume('rt-8005');

    const { result: found, queries } = await queriesDuring(handle.db, (observed) =>
      usersHoldingTokensRedeemedSince(observed, now - 300_000, now, now),
    );
    assert.deepEqual([...found], [8001]);
    if (testDatabaseKind === 'sqlite') {
      const details = await sqlitePlan(handle.db, queries[0]!);
      assert.match(details, /issued_code_created_at_idx/, details);
    }
  });

  it('finds a JWT access token by the whole token only, never by its jti or a look-alike', async () => {
    const tokens = new KyselyAdapter('AccessToken', handle.db, clock);
    const jti = 'jti-of-a-jwt-0123456789';
    const value = jwtShaped(jti);
    await tokens.upsert(
      jti,
      {
        jti,
        kind: 'AccessToken',
        accountId: '7',
        clientId: 'app',
        grantId: 'g-jwt',
        scope: 'openid',
        [FORMAT_MARKER]: 'jwt',
        [VALUE_DIGEST_MARKER]: createHash('sha256').update(value).digest('hex'),
      },
      60,
    );
    const row = await handle.db
      .selectFrom('oidc_payload')
      .selectAll()
      .where('id', '=', storageId(jti))
      .executeTakeFirstOrThrow();
    assert.equal(row.format, 'jwt');
    assert.ok(!row.payload.includes(FORMAT_MARKER) && !row.payload.includes(jti), 'markers and jti stay out');

    const found = await tokens.find(value);
    assert.equal(found?.jti, jti, 'found by the token, with its jti as the id');
    assert.equal(await tokens.find(jti), undefined, 'the jti alone is no credential');
    assert.equal(
      await tokens.find(jwtShaped(jti, { scope: 'openid email' })),
      undefined,
      'a look-alike is not it',
    );

    await tokens.destroy(jti);
    assert.equal(await tokens.find(value), undefined, 'revoked');
    const revoked = await handle.db
      .selectFrom('oidc_payload')
      .select(['revoked_at', 'revoked_reason'])
      .where('id', '=', storageId(jti))
      .executeTakeFirstOrThrow();
    assert.equal(revoked.revoked_at, now, 'revoked in place, kept for the audit listing');
    assert.equal(revoked.revoked_reason, 'provider');
  });

  it('does not take a JWT-shaped value for an opaque token, and revokes by grant in place', async () => {
    const tokens = new KyselyAdapter('AccessToken', handle.db, clock);
    const refresh = new KyselyAdapter('RefreshToken', handle.db, clock);
    await tokens.upsert(
      'opaque-value-1',
      { jti: 'opaque-value-1', grantId: 'g-7', accountId: '8', clientId: 'a' },
      60,
    );
    await refresh.upsert(
      'refresh-value-1',
      { jti: 'refresh-value-1', grantId: 'g-7', accountId: '8', clientId: 'a' },
      60,
    );
    assert.ok(await tokens.find('opaque-value-1'));
    assert.equal(await tokens.find(jwtShaped('opaque-value-1')), undefined);
    await tokens.revokeByGrantId('g-7');
    assert.equal(await tokens.find('opaque-value-1'), undefined);
    assert.ok(await refresh.find('refresh-value-1'), 'only within its model');
  });

  it('revokes every live token of a user in one statement set and lists them with their state', async () => {
    const tokens = new KyselyAdapter('AccessToken', handle.db, clock);
    await tokens.upsert(
      'u9-a',
      { jti: 'u9-a', grantId: 'g-9', accountId: '9', clientId: 'c9', scope: 'openid email' },
      60,
    );
    await tokens.upsert(
      'u9-b',
      { jti: 'u9-b', grantId: 'g-9b', accountId: '9', clientId: 'c9', scope: 'openid' },
      60,
    );
    await tokens.upsert(
      'u10',
      { jti: 'u10', grantId: 'g-10', accountId: '10', clientId: 'c9', scope: 'openid' },
      60,
    );
    const revoked = await revokeTokens(handle.db, { userId: 9 }, 'user_revoked', now + 1);
    assert.deepEqual(revoked.map((token) => token.id).sort(), [storageId('u9-a'), storageId('u9-b')].sort());
    const listed = await listTokens(handle.db, { userId: 9 }, now + 2);
    assert.equal(listed.length, 2);
    for (const token of listed) {
      assert.equal(token.status, 'revoked');
      assert.equal(token.revokedReason, 'user_revoked');
      assert.equal(token.format, 'opaque');
    }
    const digest = (value: string) => createHash('sha256').update(value).digest('hex');
    assert.deepEqual(
      listed.map((token) => token.tokenSha256).sort(),
      [digest('u9-a'), digest('u9-b')].sort(),
      'listed by the SHA-256 the audit events use',
    );
    assert.equal((await listTokens(handle.db, { userId: 10 }, now + 2))[0]?.status, 'active');
    assert.equal(
      (await listTokens(handle.db, { userId: 10 }, now + 120_000)).length,
      0,
      'expired ones hidden',
    );
    assert.equal(
      (await listTokens(handle.db, { userId: 10, includeExpired: true }, now + 120_000))[0]?.status,
      'expired',
    );
  });

  it('tells a revoke-user hook after commit only: never for a dry run or a rolled-back revocation', async () => {
    const tokens = new KyselyAdapter('AccessToken', handle.db, Date.now);
    const username = 'hook-pilot';
    const user = await handle.db
      .insertInto('app_user')
      .values({
        username,
        username_key: username,
        email: '',
        email_verified: 0,
        active: 1,
        superuser: 0,
        oidc_access: 0,
        created_at: now,
        updated_at: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const issue = (jti: string) =>
      tokens.upsert(jti, { jti, grantId: `g-${jti}`, accountId: String(user.id), clientId: 'c-hook' }, 60);
    const revocation = createTokenRevocation({
      db: handle.db,
      directory: {
        profileByUsername: async (name) =>
          name === username ? ({ id: user.id, username } as never) : undefined,
      },
      audit: { publish: () => undefined },
    });
    const told: string[] = [];
    let failInside = false;
    revocation.onUserRevoked(
      async (_trx, { clientIds, dryRun }) =>
        () =>
          told.push(`${clientIds.join(',')}:${dryRun}`),
    );
    revocation.onUserRevoked(async () => {
      if (failInside) throw new Error('queue unavailable');
    });

    await issue('hook-1');
    await revocation.revokeUser(username, { dryRun: true });
    assert.deepEqual(told, [], 'a dry run tells nobody');
    failInside = true;
    await assert.rejects(revocation.revokeUser(username), /queue unavailable/);
    assert.deepEqual(told, [], 'a rolled-back revocation tells nobody');
    assert.equal((await listTokens(handle.db, { userId: user.id }, Date.now()))[0]?.status, 'active');
    failInside = false;
    await revocation.revokeUser(username);
    assert.deepEqual(told, ['c-hook:false'], 'told once, after the commit');
    assert.equal((await listTokens(handle.db, { userId: user.id }, Date.now()))[0]?.status, 'revoked');
  });
});
