import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { type Client, introspect, login, tokenRequest, userinfo } from '../helpers/flows.ts';
import { basicAuth, postForm, seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';

/**
 * Revocation (RFC 7009) at /o/revoke_token/ over HTTP against a real server: what a client may
 * revoke, and what a revoked token takes with it. Access tokens are revoked in flow.test.ts and
 * jwt-access-tokens.test.ts; refresh tokens and other clients' tokens here.
 */
describe(`token revocation (${testDatabaseKind})`, () => {
  let server: TestServer;
  let opaqueApp: Client;
  let jwtApp: Client;

  const app = async (input: Parameters<typeof seedApp>[1] = {}): Promise<Client> => {
    const created = await seedApp(server, input);
    return { clientId: created.clientId, clientSecret: created.clientSecret! };
  };
  const revoke = (client: Client, form: Record<string, string>) =>
    postForm(`${server.issuer}/revoke_token/`, form, {
      authorization: basicAuth(client.clientId, client.clientSecret),
    });
  const isActive = async (client: Client, token: string) =>
    (await introspect(server, client, token)).body.active === true;

  before(async () => {
    server = await startServer();
    opaqueApp = await app({ name: 'Wiki', accessTokenFormat: 'opaque' });
    jwtApp = await app({ name: 'Grafana', accessTokenFormat: 'jwt' });
  });
  after(async () => server.close());

  for (const format of ['opaque', 'jwt'] as const) {
    it(`revokes a refresh token and the grant it belongs to, whatever the hint says (${format} access tokens)`, async () => {
      const client = format === 'opaque' ? opaqueApp : jwtApp;
      const user = await seedUser(server);
      const tokens = await login(server, client, user.username);
      assert.equal(await isActive(client, tokens.refreshToken), true);

      // The hint is only a hint (RFC 7009 §2.1): a wrong one still finds the refresh token.
      const revoked = await revoke(client, { token: tokens.refreshToken, token_type_hint: 'access_token' });
      assert.equal(revoked.status, 200);

      assert.equal(await isActive(client, tokens.refreshToken), false, 'the refresh token');
      assert.equal(await isActive(client, tokens.accessToken), false, 'the access token of its grant');
      assert.equal((await userinfo(server, tokens.accessToken)).status, 401);
      const refreshed = await tokenRequest(server, client, {
        grant_type: 'refresh_token',
        refresh_token: tokens.refreshToken,
      });
      assert.equal(refreshed.status, 400);
      assert.equal(refreshed.body.error, 'invalid_grant');
    });
  }

  it("leaves another client's access and refresh tokens alone, answering 200 as for any token it may not revoke", async () => {
    const user = await seedUser(server);
    for (const [owner, other] of [
      [opaqueApp, jwtApp],
      [jwtApp, opaqueApp],
    ] as const) {
      const tokens = await login(server, owner, user.username);
      for (const token of [tokens.accessToken, tokens.refreshToken]) {
        const answer = await revoke(other, { token });
        assert.equal(answer.status, 200);
        assert.equal(await isActive(owner, token), true, `${owner.clientId}'s token stays active`);
      }
      assert.equal((await userinfo(server, tokens.accessToken)).status, 200);
      const refreshed = await tokenRequest(server, owner, {
        grant_type: 'refresh_token',
        refresh_token: tokens.refreshToken,
      });
      assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    }
  });

  it('refuses a revocation without client authentication', async () => {
    const user = await seedUser(server);
    const tokens = await login(server, opaqueApp, user.username);
    const anonymous = await postForm(`${server.issuer}/revoke_token/`, {
      token: tokens.refreshToken,
      client_id: opaqueApp.clientId,
    });
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.body.error, 'invalid_client');
    const wrongSecret = await postForm(
      `${server.issuer}/revoke_token/`,
      { token: tokens.refreshToken },
      { authorization: basicAuth(opaqueApp.clientId, `${opaqueApp.clientSecret}x`) },
    );
    assert.equal(wrongSecret.status, 401);
    assert.equal(await isActive(opaqueApp, tokens.refreshToken), true);
  });
});
