import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { authorize, type Client, codeFrom, introspect, login, tokenRequest } from '../helpers/flows.ts';
import {
  Browser,
  postForm,
  REDIRECT_URI,
  seedApp,
  seedUser,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

/**
 * Who learns what about a token: introspection and the client-credentials grant over HTTP against a
 * real server.
 */
describe(`introspection and client credentials decisions (${testDatabaseKind})`, () => {
  let server: TestServer;
  let issuedTo: Client;
  let resourceServer: Client;
  let machine: Client;

  const app = async (input: Parameters<typeof seedApp>[1] = {}): Promise<Client> => {
    const created = await seedApp(server, input);
    return { clientId: created.clientId, clientSecret: created.clientSecret! };
  };

  before(async () => {
    server = await startServer();
    issuedTo = await app({ name: 'Wiki' });
    resourceServer = await app({ name: 'API' });
    machine = await app({ name: 'Cron', grantTypes: ['client_credentials'], redirectUris: [] });
  });
  after(async () => server.close());

  it('answers a refresh token only to the client it was issued to; another client gets active:false', async () => {
    const user = await seedUser(server);
    const tokens = await login(server, issuedTo, user.username, { scope: 'openid offline_access' });
    const own = await introspect(server, issuedTo, tokens.refreshToken);
    assert.equal(own.body.active, true);
    assert.equal(own.body.client_id, issuedTo.clientId);
    const other = await introspect(server, resourceServer, tokens.refreshToken);
    assert.deepEqual(other.body, { active: false });
  });

  it('tells another client that an access token is active, without its sid', async () => {
    const user = await seedUser(server);
    const tokens = await login(server, issuedTo, user.username);
    const own = await introspect(server, issuedTo, tokens.accessToken);
    assert.equal(own.body.active, true);
    assert.equal(typeof own.body.sid, 'string', 'the client it was issued to sees its sid');
    const other = await introspect(server, resourceServer, tokens.accessToken);
    assert.equal(other.body.active, true);
    assert.equal(other.body.sub, String(user.id));
    assert.equal('sid' in other.body, false, 'no sid for another client');
  });

  it('answers a public client, which has no secret to authenticate with, about its own tokens only', async () => {
    const user = await seedUser(server);
    const spa = await seedApp(server, { name: 'SPA', clientType: 'public' });
    const { response, verifier } = await authorize(
      server,
      new Browser(),
      { clientId: spa.clientId, clientSecret: '' },
      user.username,
    );
    const exchanged = await postForm(`${server.issuer}/token/`, {
      grant_type: 'authorization_code',
      code: codeFrom(response),
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
      client_id: spa.clientId,
    });
    assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
    const askedBySpa = (token: string) =>
      postForm(`${server.issuer}/introspect/`, { token, client_id: spa.clientId });
    const own = await askedBySpa(exchanged.body.access_token as string);
    assert.equal(own.body.active, true);
    assert.equal(own.body.client_id, spa.clientId);
    const someoneElses = await login(server, issuedTo, user.username);
    assert.equal((await introspect(server, resourceServer, someoneElses.accessToken)).body.active, true);
    assert.deepEqual((await askedBySpa(someoneElses.accessToken)).body, { active: false });
  });

  it("names the user (RFC 7662 username) of a token granted the profile scope, as the plugin's introspection did", async () => {
    for (const format of ['opaque', 'jwt'] as const) {
      const client = await app({ name: `Forum (${format})`, accessTokenFormat: format });
      const user = await seedUser(server);
      const withProfile = await login(server, client, user.username, {
        scope: 'openid profile offline_access',
      });
      for (const token of [withProfile.accessToken, withProfile.refreshToken]) {
        const own = await introspect(server, client, token);
        assert.equal(own.body.active, true, format);
        assert.equal(own.body.username, user.username, `${format}: the username`);
        assert.equal(own.body.sub, String(user.id), format);
      }
      const byResourceServer = await introspect(server, resourceServer, withProfile.accessToken);
      assert.equal(byResourceServer.body.username, user.username, `${format}: a resource server is told too`);
      // Without profile, the person's username was not granted: sub alone names them.
      const bare = await login(server, client, user.username, { scope: 'openid' });
      const answer = await introspect(server, resourceServer, bare.accessToken);
      assert.equal(answer.body.active, true, format);
      assert.equal('username' in answer.body, false, `${format}: no username without profile`);
    }
    // client_credentials tokens have no user: no username.
    const machineToken = await tokenRequest(server, machine, { grant_type: 'client_credentials' });
    const machineAnswer = await introspect(server, machine, machineToken.body.access_token as string);
    assert.equal(machineAnswer.body.active, true);
    assert.equal('username' in machineAnswer.body, false);
  });

  it("answers a JWT access token's jti, and no jti for an opaque token, whose jti is the token itself", async () => {
    // oidc-provider keys an opaque token by its value: its jti is the secret bearer token, which an
    // introspection answer must not repeat (it leaves jti out when it equals the token presented).
    // A JWT access token's jti is an id of its own, the JWT's claim.
    const user = await seedUser(server);
    for (const format of ['opaque', 'jwt'] as const) {
      const cron = await app({
        name: `Cron (${format})`,
        grantTypes: ['client_credentials'],
        redirectUris: [],
        accessTokenFormat: format,
      });
      const forum = await app({ name: `Board (${format})`, accessTokenFormat: format });
      const issued = await tokenRequest(server, cron, { grant_type: 'client_credentials' });
      const signedIn = await login(server, forum, user.username, { scope: 'openid offline_access' });
      const presented: [Client, string, string][] = [
        [cron, issued.body.access_token as string, 'client_credentials access token'],
        [forum, signedIn.accessToken, 'access token'],
        [resourceServer, signedIn.accessToken, "another client's access token"],
        [forum, signedIn.refreshToken, 'refresh token'],
      ];
      for (const [introspector, token, kind] of presented) {
        const answer = await introspect(server, introspector, token);
        const label = `${format} ${kind}`;
        assert.equal(answer.body.active, true, label);
        assert.equal(
          JSON.stringify(answer.body).includes(token),
          false,
          `${label}: the answer never carries the token presented`,
        );
        const jwtAccessToken = format === 'jwt' && kind !== 'refresh token';
        if (jwtAccessToken) {
          const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as {
            jti: string;
          };
          assert.equal(answer.body.jti, claims.jti, `${label}: the JWT's jti`);
        } else {
          assert.equal('jti' in answer.body, false, `${label}: no jti`);
        }
      }
    }
  });

  it('refuses identity scopes to client_credentials with invalid_scope, and still issues a token without them', async () => {
    for (const scope of ['openid', 'profile', 'email', 'groups', 'offline_access', 'openid profile email']) {
      const asked = await tokenRequest(server, machine, { grant_type: 'client_credentials', scope });
      assert.equal(asked.status, 400, scope);
      assert.equal(asked.body.error, 'invalid_scope', scope);
      assert.equal(asked.body.access_token, undefined);
    }
    const plain = await tokenRequest(server, machine, { grant_type: 'client_credentials' });
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    assert.equal(typeof plain.body.access_token, 'string');
  });
});
