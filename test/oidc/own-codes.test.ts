import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { OwnCodes } from '../../src/oidc/own-codes.ts';
import type { PayloadRow } from '../../src/tokens/store.ts';
import { storageId } from '../../src/tokens/store.ts';
import * as flows from '../helpers/flows.ts';
import type { LeakHarness } from '../helpers/leak-harness.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import type { TestServer } from '../helpers/server.ts';
import {
  authorize,
  type Client,
  codeFlow,
  isActive,
  type Pilot,
  redeem,
  startPilotServer,
} from '../tokens/helpers.ts';

const NOW = 1_000_000;

function row(model: string, id: string, overrides: Partial<PayloadRow> = {}): PayloadRow {
  return {
    model,
    id,
    consumed_at: null,
    payload: JSON.stringify({ kind: model, grantId: 'grant-1' }),
    grant_id: 'grant-1',
    user_id: '1',
    client_id: 'client',
    uid: null,
    user_code: null,
    expires_at: NOW + 60_000,
    format: null,
    value_sha256: null,
    ...overrides,
  };
}

/** A request as the provider's token endpoint has it, for one grant type (or another route). */
const request = (route: string, grantType?: string) => ({
  oidc: { route, params: { grant_type: grantType } },
});
const exchange = () => request('token', 'authorization_code');
const refresh = () => request('token', 'refresh_token');

describe('codes and refresh tokens this process wrote', () => {
  it('gives a kept code to one find of a code exchange, and remembers when; the next find gets nothing', () => {
    const own = new OwnCodes();
    own.wrote([row('AuthorizationCode', 'c1'), row('Session', 's1'), row('AccessToken', 'a1')], NOW);
    assert.equal(own.size('AuthorizationCode'), 1);
    const ctx = exchange();
    assert.equal(
      own.take(ctx, 'AuthorizationCode', 'c1', NOW + 5)?.payload,
      row('AuthorizationCode', 'c1').payload,
    );
    assert.equal(own.takenAt(ctx, 'AuthorizationCode', 'c1'), NOW + 5);
    assert.equal(own.take(exchange(), 'AuthorizationCode', 'c1', NOW + 6), undefined, 'taken once');
    assert.equal(own.takenAt(exchange(), 'AuthorizationCode', 'c1'), undefined);
  });

  it('gives a kept refresh token to a refresh only: introspection and revocation read the database', () => {
    const own = new OwnCodes();
    own.wrote([row('RefreshToken', 'r1')], NOW);
    assert.equal(own.take(request('introspection'), 'RefreshToken', 'r1', NOW), undefined);
    assert.equal(own.take(request('revocation'), 'RefreshToken', 'r1', NOW), undefined);
    assert.equal(own.take(exchange(), 'RefreshToken', 'r1', NOW), undefined);
    assert.equal(own.take(undefined, 'RefreshToken', 'r1', NOW), undefined, 'outside a request');
    assert.ok(own.take(refresh(), 'RefreshToken', 'r1', NOW));
  });

  it('keeps no row written consumed, revoked, expired or without an expiry', () => {
    const own = new OwnCodes();
    own.wrote(
      [
        row('RefreshToken', 'consumed', { consumed_at: NOW }),
        row('RefreshToken', 'revoked', { revoked_at: NOW, revoked_reason: 'code_reuse' }),
        row('RefreshToken', 'expired', { expires_at: NOW }),
        row('RefreshToken', 'endless', { expires_at: null }),
      ],
      NOW,
    );
    assert.equal(own.size('RefreshToken'), 0);
  });

  it('keeps at most its bound of each model, the oldest out first, and drops rows past their expiry', () => {
    const own = new OwnCodes(2, 3);
    for (const id of ['c1', 'c2', 'c3']) own.wrote([row('AuthorizationCode', id)], NOW);
    assert.equal(own.size('AuthorizationCode'), 2);
    assert.equal(own.take(exchange(), 'AuthorizationCode', 'c1', NOW), undefined, 'the oldest went');
    assert.ok(own.take(exchange(), 'AuthorizationCode', 'c3', NOW));

    own.wrote([row('RefreshToken', 'r1', { expires_at: NOW + 10 }), row('RefreshToken', 'r2')], NOW);
    own.wrote([row('RefreshToken', 'r3')], NOW + 10);
    assert.equal(own.size('RefreshToken'), 2, 'r1 expired when r3 came');
    assert.equal(own.take(refresh(), 'RefreshToken', 'r1', NOW), undefined);
  });
});

describe(`redeeming what this process wrote (${testDatabaseKind})`, () => {
  let harness: LeakHarness;
  let server: TestServer;
  let client: Client;
  let pilot: Pilot;

  const db = () => server.app.database.db;
  const storePayload = (model: string, value: string, payload: string) =>
    db()
      .updateTable('oidc_payload')
      .set({ payload })
      .where('model', '=', model)
      .where('id', '=', storageId(value))
      .execute();
  /**
   * Gives the stored row of a code or token to another client (what no writer does: payloads do not
   * change once written), so that a redemption that read it would be refused (`client mismatch`).
   * Returns what puts it back.
   */
  const strayStoredPayload = async (model: string, value: string) => {
    const stored = await db()
      .selectFrom('oidc_payload')
      .select('payload')
      .where('model', '=', model)
      .where('id', '=', storageId(value))
      .executeTakeFirstOrThrow();
    const payload = JSON.parse(stored.payload) as Record<string, unknown>;
    await storePayload(model, value, JSON.stringify({ ...payload, clientId: 'another-client' }));
    return () => storePayload(model, value, stored.payload);
  };
  const refreshWith = (value: string) =>
    flows.tokenRequest(server, client, { grant_type: 'refresh_token', refresh_token: value });

  before(async () => {
    ({ harness, server, pilot, client } = await startPilotServer());
  });
  after(async () => {
    await harness.assertNoLeaks();
    await server.close();
  });

  it('redeems the code and the refresh token it wrote from memory, and refuses their replay as before', async () => {
    const authorized = await authorize(server, harness, client, pilot, 'openid offline_access');
    // The exchange does not read the code back: a stored payload changed behind its back is not seen.
    const restoreCode = await strayStoredPayload('AuthorizationCode', authorized.code);
    const exchanged = await redeem(server, client, authorized);
    assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
    await restoreCode();
    const accessToken = String(exchanged.body.access_token);
    const refreshToken = String(exchanged.body.refresh_token);
    harness.registerSecret(accessToken, 'access token');
    harness.registerSecret(refreshToken, 'refresh token');

    // A replay in this process reads the database: the code is consumed, the grant revoked.
    const replay = await redeem(server, client, authorized);
    assert.equal(replay.status, 400);
    assert.equal(replay.body.error, 'invalid_grant');
    assert.equal(await isActive(server, client, accessToken), false);
    assert.equal(await isActive(server, client, refreshToken), false);

    // The refresh token a code exchange wrote, and the one a refresh wrote, are not read back either.
    const tokens = await codeFlow(server, harness, client, pilot, 'openid offline_access');
    const restoreFirst = await strayStoredPayload('RefreshToken', tokens.refreshToken!);
    const rotated = await refreshWith(tokens.refreshToken!);
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    await restoreFirst();
    const second = String(rotated.body.refresh_token);
    harness.registerSecret(second, 'refresh token');
    harness.registerSecret(String(rotated.body.access_token), 'access token');
    const restoreSecond = await strayStoredPayload('RefreshToken', second);
    const again = await refreshWith(second);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    await restoreSecond();
    harness.registerSecret(String(again.body.refresh_token), 'refresh token');
    harness.registerSecret(String(again.body.access_token), 'access token');

    const reuse = await refreshWith(second);
    assert.equal(reuse.status, 400);
    assert.equal(reuse.body.error, 'invalid_grant');
    assert.equal(
      await isActive(server, client, String(again.body.access_token)),
      false,
      'the grant was revoked',
    );
    assert.equal(await isActive(server, client, String(again.body.refresh_token)), false);
  });

  it('refuses a code and a refresh token it wrote once the user’s tokens were revoked before their redemption', async () => {
    const tokens = await codeFlow(server, harness, client, pilot, 'openid offline_access');
    const authorized = await authorize(server, harness, client, pilot, 'openid offline_access');
    await server.app.tokens.revokeUser(pilot.username);

    const exchanged = await redeem(server, client, authorized);
    assert.equal(exchanged.status, 400, JSON.stringify(exchanged.body));
    assert.equal(exchanged.body.error, 'invalid_grant');
    assert.equal(exchanged.body.access_token, undefined);

    const refreshed = await refreshWith(tokens.refreshToken!);
    assert.equal(refreshed.status, 400, JSON.stringify(refreshed.body));
    assert.equal(refreshed.body.error, 'invalid_grant');
    assert.equal(refreshed.body.access_token, undefined);

    const issued = await db()
      .selectFrom('oidc_payload')
      .select('id')
      .where('model', 'in', ['AccessToken', 'RefreshToken'])
      .where('user_id', '=', String(pilot.id))
      .where('revoked_at', 'is', null)
      .execute();
    assert.deepEqual(issued, [], 'nothing was issued after the revocation');
  });
});
