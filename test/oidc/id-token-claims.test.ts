import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, type JWTPayload, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { testDatabaseKind } from '../helpers/database.ts';
import {
  Browser,
  REDIRECT_URI,
  seedApp,
  seedUser,
  signIn,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

/** What only the granted scopes release: never in a minimal id_token. */
const SCOPE_CLAIMS = ['email', 'email_verified', 'groups', 'preferred_username', 'name', 'picture'];

describe(`id_token claims per application (${testDatabaseKind})`, () => {
  let server: TestServer;
  let user: { id: number; username: string };
  let jwks: ReturnType<typeof createRemoteJWKSet>;

  before(async () => {
    server = await startServer();
    await server.app.directoryAdmin.createState('Member', 100, true);
    await server.app.directoryAdmin.createGroup('Fleet', false);
    await server.app.directoryAdmin.createGroup('Directors', false);
    user = await seedUser(server, {
      state: 'Member',
      groups: ['Fleet', 'Directors'],
      characterId: 90000011,
      characterName: 'Claims Pilot',
    });
    jwks = createRemoteJWKSet(new URL(`${server.issuer}/.well-known/jwks.json`));
  });
  after(async () => server.close());

  /** A relying party on openid-client for a fresh application with or without the option. */
  async function relyingParty(idTokenClaims: boolean) {
    const app = await seedApp(server, { idTokenClaims });
    const config = await oidc.discovery(
      new URL(server.issuer),
      app.clientId,
      { redirect_uris: [REDIRECT_URI], response_types: ['code'] },
      oidc.ClientSecretBasic(app.clientSecret!),
      { execute: [oidc.allowInsecureRequests] },
    );
    return { app, config };
  }

  /** Code + PKCE through the real login and consent pages; the token response. */
  async function signInWith(config: oidc.Configuration, scope: string) {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI,
      scope,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    const response = await signIn(new Browser(), server, url.href, { username: user.username });
    assert.equal(response.status, 303);
    return oidc.authorizationCodeGrant(config, new URL(response.headers.get('location')!), {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
  }

  /** The id_token's payload once its RS256 signature checks out against the published JWKS. */
  async function verified(idToken: string | undefined, clientId: string): Promise<JWTPayload> {
    assert.ok(idToken, 'an id_token');
    const { payload } = await jwtVerify(idToken, jwks, {
      issuer: server.issuer,
      audience: clientId,
      algorithms: ['RS256'],
    });
    return payload;
  }

  it("puts the granted scopes' claims into the id_tokens of an application with the option", async () => {
    const { app, config } = await relyingParty(true);
    const tokens = await signInWith(config, 'openid profile email');
    const claims = await verified(tokens.id_token, app.clientId);
    assert.equal(claims.sub, String(user.id));
    assert.equal(claims.email, `${user.username}@example.org`);
    assert.equal(typeof claims.email_verified, 'boolean');
    assert.deepEqual(claims.groups, ['Directors', 'Fleet', 'Member'], 'groups sorted, the state last');
    assert.equal(claims.preferred_username, user.username);
    assert.equal(claims.name, 'Claims Pilot');
    assert.equal(typeof claims.sid, 'string', 'the protocol claims stay');

    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    const again = await verified(refreshed.id_token, app.clientId);
    assert.deepEqual(again.groups, ['Directors', 'Fleet', 'Member'], 'a refreshed id_token too');
    assert.equal(again.email, claims.email);

    const info = await oidc.fetchUserInfo(config, tokens.access_token, String(user.id));
    assert.deepEqual(info.groups, claims.groups, 'the same values as userinfo');
  });

  it('releases only the scopes granted, even to an application with the option', async () => {
    const { app, config } = await relyingParty(true);
    const claims = await verified((await signInWith(config, 'openid email')).id_token, app.clientId);
    assert.equal(claims.email, `${user.username}@example.org`);
    for (const name of ['groups', 'preferred_username', 'name'])
      assert.equal(claims[name], undefined, `${name} is not released by openid email`);
  });

  it('keeps the id_token minimal for an application without the option; userinfo has the claims', async () => {
    const { app, config } = await relyingParty(false);
    const tokens = await signInWith(config, 'openid profile email');
    const claims = await verified(tokens.id_token, app.clientId);
    assert.equal(claims.sub, String(user.id));
    for (const name of SCOPE_CLAIMS) assert.equal(claims[name], undefined, `no ${name} in the id_token`);
    const refreshed = await verified(
      (await oidc.refreshTokenGrant(config, tokens.refresh_token!)).id_token,
      app.clientId,
    );
    for (const name of SCOPE_CLAIMS) assert.equal(refreshed[name], undefined, `no ${name} after a refresh`);

    const info = await oidc.fetchUserInfo(config, tokens.access_token, String(user.id));
    assert.equal(info.email, `${user.username}@example.org`);
    assert.deepEqual(info.groups, ['Directors', 'Fleet', 'Member']);
    assert.equal(info.preferred_username, user.username);
  });

  it('follows the application when the option is switched on and off again', async () => {
    const { app, config } = await relyingParty(false);
    await server.app.applications.update(app.clientId, { idTokenClaims: true }, 'test');
    const on = await verified((await signInWith(config, 'openid profile')).id_token, app.clientId);
    assert.equal(on.preferred_username, user.username);
    await server.app.applications.update(app.clientId, { idTokenClaims: false }, 'test');
    const off = await verified((await signInWith(config, 'openid profile')).id_token, app.clientId);
    assert.equal(off.preferred_username, undefined);
  });
});
