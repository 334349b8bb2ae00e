import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import type { GrantType } from '../../src/applications/types.ts';
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

/** OIDC Core §3.1.3.6: the left half of the SHA-256 of the access token (RS256), base64url. */
function atHash(accessToken: string): string {
  return createHash('sha256').update(accessToken, 'ascii').digest().subarray(0, 16).toString('base64url');
}

/** openid-client and oauth4webapi errors carry an OAuth `error` or a library `code`. */
type ClientFailure = Error & { error?: string; code?: string; cause?: unknown };

/** A response body rewritten by `tamper` when the request goes to the token endpoint. */
type Tamper = (body: Record<string, unknown>) => Record<string, unknown>;

describe(`a relying party built on openid-client 6 (${testDatabaseKind})`, () => {
  let server: TestServer;
  let user: { id: number; username: string };

  before(async () => {
    server = await startServer();
    user = await seedUser(server, { characterId: 90000007, characterName: 'Client Pilot' });
  });
  after(async () => {
    await server.close();
  });

  /**
   * A discovered configuration for a fresh confidential application. `tamper`, when set, rewrites the
   * next token-endpoint response before openid-client sees it (for the negative cases).
   */
  async function relyingParty(
    options: {
      nonRepudiation?: boolean;
      grantTypes?: GrantType[];
      accessTokenFormat?: 'opaque' | 'jwt';
    } = {},
  ): Promise<{ config: oidc.Configuration; app: { clientId: string }; tamperNext(tamper: Tamper): void }> {
    const app = await seedApp(server, {
      grantTypes: options.grantTypes ?? ['authorization_code', 'refresh_token'],
      ...(options.accessTokenFormat ? { accessTokenFormat: options.accessTokenFormat } : {}),
    });
    // http://127.0.0.1 only: the test server speaks plain HTTP on loopback.
    const execute = [oidc.allowInsecureRequests];
    if (options.nonRepudiation) execute.push(oidc.enableNonRepudiationChecks);
    const config = await oidc.discovery(
      new URL(server.issuer),
      app.clientId,
      { redirect_uris: [REDIRECT_URI], response_types: ['code'] },
      oidc.ClientSecretBasic(app.clientSecret!),
      { execute },
    );
    let pending: Tamper | undefined;
    config[oidc.customFetch] = async (url, init) => {
      const response = await fetch(url, init as RequestInit);
      const tamper = pending;
      if (!tamper || new URL(url).pathname !== new URL(config.serverMetadata().token_endpoint!).pathname)
        return response;
      pending = undefined;
      const body = tamper((await response.json()) as Record<string, unknown>);
      return new Response(JSON.stringify(body), { status: response.status, headers: response.headers });
    };
    return { config, app, tamperNext: (tamper) => (pending = tamper) };
  }

  /** Authorization code + PKCE (S256) through the real login and consent pages; returns the callback. */
  async function authorize(
    config: oidc.Configuration,
    browser = new Browser(),
    scope = 'openid profile',
  ): Promise<{ callback: URL; verifier: string; state: string; nonce: string }> {
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
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    const response = await signIn(browser, server, url.href, { username: user.username });
    assert.equal(response.status, 303);
    return { callback: new URL(response.headers.get('location')!), verifier, state, nonce };
  }

  async function codeGrant(config: oidc.Configuration, browser?: Browser) {
    const { callback, verifier, state, nonce } = await authorize(config, browser);
    return oidc.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
  }

  it('discovers, signs in with code + PKCE, reads userinfo, refreshes, introspects and revokes', async () => {
    const { config } = await relyingParty({
      grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'],
    });
    assert.equal(config.serverMetadata().issuer, server.issuer);
    assert.ok(config.serverMetadata().supportsPKCE());

    const tokens = await codeGrant(config);
    const idClaims = tokens.claims()!;
    assert.equal(idClaims.sub, String(user.id));
    assert.equal(idClaims.name, undefined, 'scope claims come from userinfo, not the id_token');

    const info = await oidc.fetchUserInfo(config, tokens.access_token, idClaims.sub);
    assert.equal(info.name, 'Client Pilot');
    assert.equal(info.eve_character_id, 90000007);
    await assert.rejects(
      oidc.fetchUserInfo(config, tokens.access_token, `${idClaims.sub}0`),
      (error: ClientFailure) => error.code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED',
      'openid-client checks that userinfo is about the id_token subject',
    );

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
    await assert.rejects(oidc.refreshTokenGrant(config, refreshed.refresh_token!), (error: ClientFailure) => {
      assert.equal(error.error, 'invalid_grant');
      return true;
    });

    const machine = await oidc.clientCredentialsGrant(config);
    assert.ok(machine.access_token);

    const logout = oidc.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token!,
      post_logout_redirect_uri: 'https://rp.example.org/bye',
    });
    assert.equal(logout.pathname, '/o/logout/');
  });

  it('validates the id_token signature through the JWKS, its nonce and its at_hash', async () => {
    const { config, app } = await relyingParty({ nonRepudiation: true });
    const tokens = await codeGrant(config);
    const idToken = tokens.id_token!;
    const claims = tokens.claims()!;
    assert.equal(claims.iss, server.issuer);
    assert.equal(claims.aud, app.clientId);
    assert.equal(typeof claims.nonce, 'string');

    // openid-client fetched the JWKS to check the signature (non-repudiation checks on); jose checks
    // it again against the published set, so both agree on which key signed.
    const cache = oidc.getJwksCache(config);
    assert.ok(cache, 'openid-client fetched the JWKS to verify the id_token signature');
    const kid = decodeProtectedHeader(idToken).kid;
    assert.equal(kid, server.app.keyStore.activeKid());
    assert.ok(cache.jwks.keys.some((key) => key.kid === kid));
    const jwks = createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri!));
    await jwtVerify(idToken, jwks, { issuer: server.issuer, audience: app.clientId, algorithms: ['RS256'] });

    // oauth4webapi does not check at_hash on a code-flow id_token (OIDC Core makes it optional
    // there), so the relying party's check is done here: it must bind the id_token to this access
    // token and no other.
    assert.equal(typeof claims.at_hash, 'string', 'the id_token carries at_hash');
    assert.equal(claims.at_hash, atHash(tokens.access_token));
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    const refreshedClaims = refreshed.claims()!;
    assert.equal(refreshedClaims.at_hash, atHash(refreshed.access_token), 'a refreshed id_token too');
    assert.notEqual(refreshedClaims.at_hash, claims.at_hash);
  });

  it('binds the id_token to a JWT access token by at_hash as well', async () => {
    const { config, app } = await relyingParty({ accessTokenFormat: 'jwt' });
    const tokens = await codeGrant(config);
    const header = decodeProtectedHeader(tokens.access_token);
    assert.equal(header.typ, 'at+jwt', 'the application gets RFC 9068 access tokens');
    assert.equal(tokens.claims()!.at_hash, atHash(tokens.access_token));
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    assert.equal(refreshed.claims()!.at_hash, atHash(refreshed.access_token));
    assert.equal((await oidc.tokenIntrospection(config, refreshed.access_token)).client_id, app.clientId);
  });

  it('refuses an id_token whose signature does not verify, or whose nonce is not the one sent', async () => {
    const { config, tamperNext } = await relyingParty({ nonRepudiation: true });
    const browser = new Browser();

    const forged = await authorize(config, browser);
    tamperNext((body) => {
      const [header, payload, signature] = (body.id_token as string).split('.');
      const flipped = Buffer.from(signature!, 'base64url');
      flipped[0] = flipped[0]! ^ 0x01;
      return { ...body, id_token: `${header}.${payload}.${flipped.toString('base64url')}` };
    });
    await assert.rejects(
      oidc.authorizationCodeGrant(config, forged.callback, {
        pkceCodeVerifier: forged.verifier,
        expectedState: forged.state,
        expectedNonce: forged.nonce,
        idTokenExpected: true,
      }),
      (error: ClientFailure) => {
        assert.match((error.cause as Error | undefined)?.message ?? '', /JWT signature verification failed/);
        return true;
      },
    );

    const replayedNonce = await authorize(config, browser);
    await assert.rejects(
      oidc.authorizationCodeGrant(config, replayedNonce.callback, {
        pkceCodeVerifier: replayedNonce.verifier,
        expectedState: replayedNonce.state,
        expectedNonce: forged.nonce,
        idTokenExpected: true,
      }),
      (error: ClientFailure) => {
        assert.equal(error.code, 'OAUTH_JWT_CLAIM_COMPARISON_FAILED', error.message);
        assert.match((error.cause as Error | undefined)?.message ?? '', /"nonce" claim/);
        return true;
      },
    );

    // The untampered flow with the right nonce passes through the same client: the failures above
    // are the checks at work, not a broken setup.
    const tokens = await codeGrant(config, browser);
    assert.equal(tokens.claims()!.sub, String(user.id));
  });

  it('rotates the refresh token and revokes the whole grant when a rotated one is replayed', async () => {
    const { config } = await relyingParty();
    const first = await codeGrant(config);
    const second = await oidc.refreshTokenGrant(config, first.refresh_token!);
    assert.ok(second.refresh_token);
    assert.notEqual(second.refresh_token, first.refresh_token, 'the refresh token rotates');
    const third = await oidc.refreshTokenGrant(config, second.refresh_token!);
    assert.notEqual(third.refresh_token, second.refresh_token);
    for (const token of [third.access_token, third.refresh_token!])
      assert.equal((await oidc.tokenIntrospection(config, token)).active, true, 'before the replay');
    assert.equal(
      (await oidc.tokenIntrospection(config, first.refresh_token!)).active,
      false,
      'a rotated refresh token is spent',
    );

    await assert.rejects(oidc.refreshTokenGrant(config, first.refresh_token!), (error: ClientFailure) => {
      assert.ok(error instanceof oidc.ResponseBodyError);
      assert.equal(error.error, 'invalid_grant');
      return true;
    });
    for (const token of [third.access_token, third.refresh_token!, second.access_token])
      assert.equal(
        (await oidc.tokenIntrospection(config, token)).active,
        false,
        'the replay revoked every token of the grant',
      );
    await assert.rejects(
      oidc.refreshTokenGrant(config, third.refresh_token!),
      (error: ClientFailure) => error.error === 'invalid_grant',
    );
  });

  it('introspects access and refresh tokens, and revoking either makes it inactive', async () => {
    const { config, app } = await relyingParty();
    const browser = new Browser();

    const byAccess = await codeGrant(config, browser);
    const access = await oidc.tokenIntrospection(config, byAccess.access_token);
    assert.equal(access.active, true);
    assert.equal(access.sub, String(user.id));
    assert.equal(access.client_id, app.clientId);
    assert.equal(access.token_type, 'Bearer');
    assert.ok(access.scope?.split(' ').includes('openid'));
    assert.ok(typeof access.exp === 'number' && access.exp > Date.now() / 1000);
    const refresh = await oidc.tokenIntrospection(config, byAccess.refresh_token!);
    assert.equal(refresh.active, true);
    assert.equal(refresh.sub, String(user.id));
    assert.equal(refresh.client_id, app.clientId);
    await oidc.tokenRevocation(config, byAccess.access_token, { token_type_hint: 'access_token' });
    assert.equal((await oidc.tokenIntrospection(config, byAccess.access_token)).active, false);
    await assert.rejects(
      oidc.fetchUserInfo(config, byAccess.access_token, oidc.skipSubjectCheck),
      (error: ClientFailure) => error instanceof oidc.WWWAuthenticateChallengeError,
      'a revoked access token no longer reads userinfo',
    );

    const byRefresh = await codeGrant(config, browser);
    await oidc.tokenRevocation(config, byRefresh.refresh_token!, { token_type_hint: 'refresh_token' });
    assert.equal((await oidc.tokenIntrospection(config, byRefresh.refresh_token!)).active, false);
    await assert.rejects(
      oidc.refreshTokenGrant(config, byRefresh.refresh_token!),
      (error: ClientFailure) => error.error === 'invalid_grant',
    );

    // Revoking an unknown token is not an error (RFC 7009 §2.2); it changes nothing.
    const other = await codeGrant(config, browser);
    await oidc.tokenRevocation(config, `${other.access_token}x`);
    assert.equal((await oidc.tokenIntrospection(config, other.access_token)).active, true);
  });
});
