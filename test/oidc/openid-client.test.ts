import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import { testDatabaseKind } from '../helpers/database.ts';
import { Browser, REDIRECT_URI, seedApp, seedUser, signIn, startServer, type TestServer } from './server.ts';

describe(`a relying party built on openid-client 6 (${testDatabaseKind})`, () => {
  let server: TestServer;

  before(async () => {
    server = await startServer();
  });
  after(async () => server.close());

  it('discovers, signs in with code + PKCE, reads userinfo, refreshes, introspects and revokes', async () => {
    const user = await seedUser(server, { characterId: 90000007, characterName: 'Client Pilot' });
    const app = await seedApp(server, {
      grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'],
    });
    // http://127.0.0.1 only: the test server speaks plain HTTP on loopback.
    const config = await oidc.discovery(
      new URL(server.issuer),
      app.clientId,
      { redirect_uris: [REDIRECT_URI], response_types: ['code'] },
      oidc.ClientSecretBasic(app.clientSecret!),
      { execute: [oidc.allowInsecureRequests] },
    );
    assert.equal(config.serverMetadata().issuer, server.issuer);
    assert.ok(config.serverMetadata().supportsPKCE());

    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI,
      scope: 'openid profile offline_access',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    const response = await signIn(new Browser(), server, url.href, { username: user.username });
    assert.equal(response.status, 303);
    const callback = new URL(response.headers.get('location')!);

    const tokens = await oidc.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
    const idClaims = tokens.claims()!;
    assert.equal(idClaims.sub, String(user.id));
    assert.equal(idClaims.name, undefined, 'scope claims come from userinfo, not the id_token');

    const info = await oidc.fetchUserInfo(config, tokens.access_token, idClaims.sub);
    assert.equal(info.name, 'Client Pilot');
    assert.equal(info.eve_character_id, 90000007);

    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
    const introspected = await oidc.tokenIntrospection(config, refreshed.access_token);
    assert.equal(introspected.active, true);
    assert.equal(introspected.sub, String(user.id));
    await oidc.tokenRevocation(config, refreshed.refresh_token!);
    assert.equal(
      (await oidc.tokenIntrospection(config, refreshed.access_token)).active,
      false,
      'revoking a refresh token ends its whole grant',
    );
    await assert.rejects(
      oidc.refreshTokenGrant(config, refreshed.refresh_token!),
      (error: Error & { error?: string }) => {
        assert.equal(error.error, 'invalid_grant');
        return true;
      },
    );

    const machine = await oidc.clientCredentialsGrant(config);
    assert.ok(machine.access_token);

    const logout = oidc.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token!,
      post_logout_redirect_uri: 'https://rp.example.org/bye',
    });
    assert.equal(logout.pathname, '/o/logout/');
  });
});
