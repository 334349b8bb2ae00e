import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { basicAuth, postForm, seedApp, startServer, type TestServer } from '../helpers/server.ts';

describe(`discovery and routes (${testDatabaseKind})`, () => {
  let server: TestServer;
  let document: Record<string, unknown>;
  let discoveryHeaders: Headers;

  before(async () => {
    server = await startServer({
      oidc: { opPolicyUri: 'https://example.org/policy', opTosUri: 'https://example.org/tos' },
    });
    const response = await fetch(`${server.issuer}/.well-known/openid-configuration`, {
      headers: { origin: 'https://elsewhere.example' },
    });
    assert.equal(response.status, 200);
    discoveryHeaders = response.headers;
    document = (await response.json()) as Record<string, unknown>;
  });
  after(async () => server.close());

  it('names the issuer and the Python plugin endpoint paths', () => {
    const { issuer } = server;
    assert.equal(document.issuer, issuer);
    assert.equal(document.authorization_endpoint, `${issuer}/authorize/`);
    assert.equal(document.token_endpoint, `${issuer}/token/`);
    assert.equal(document.revocation_endpoint, `${issuer}/revoke_token/`);
    assert.equal(document.introspection_endpoint, `${issuer}/introspect/`);
    assert.equal(document.userinfo_endpoint, `${issuer}/userinfo/`);
    assert.equal(document.end_session_endpoint, `${issuer}/logout/`);
    assert.equal(document.jwks_uri, `${issuer}/.well-known/jwks.json`);
    assert.equal(document.registration_endpoint, undefined);
    assert.equal(document.pushed_authorization_request_endpoint, undefined);
  });

  it('advertises exactly the capabilities aa-oidc supports', () => {
    assert.deepEqual(document.response_types_supported, ['code']);
    assert.deepEqual(document.code_challenge_methods_supported, ['S256']);
    assert.deepEqual(document.acr_values_supported, ['0']);
    assert.equal(document.claims_parameter_supported, true);
    assert.equal(document.request_parameter_supported, false);
    assert.equal(document.request_uri_parameter_supported, false);
    assert.equal(document.backchannel_logout_supported, true);
    assert.equal(document.backchannel_logout_session_supported, true);
    assert.deepEqual(document.access_token_signing_alg_values_supported, ['RS256']);
    assert.deepEqual(document.prompt_values_supported, ['none', 'login', 'consent', 'select_account']);
    assert.ok(Array.isArray(document.response_modes_supported));
    assert.ok((document.response_modes_supported as string[]).includes('query'));
    assert.equal(document.op_policy_uri, 'https://example.org/policy');
    assert.equal(document.op_tos_uri, 'https://example.org/tos');
    assert.equal(document.authorization_response_iss_parameter_supported, true);
    assert.deepEqual(document.id_token_signing_alg_values_supported, ['RS256']);
    assert.deepEqual(document.token_endpoint_auth_methods_supported, [
      'client_secret_basic',
      'client_secret_post',
      'none',
    ]);
    assert.deepEqual([...(document.grant_types_supported as string[])].sort(), [
      'authorization_code',
      'client_credentials',
      'refresh_token',
    ]);
    assert.equal(document.dpop_signing_alg_values_supported, undefined);
    for (const scope of ['openid', 'profile', 'email', 'groups', 'offline_access']) {
      assert.ok((document.scopes_supported as string[]).includes(scope), scope);
    }
    for (const claim of [
      'sub',
      'email',
      'groups',
      'preferred_username',
      'eve_character_id',
      'eve_affiliation',
      'picture',
    ]) {
      assert.ok((document.claims_supported as string[]).includes(claim), claim);
    }
  });

  it('names endpoints on the issuer origin whatever the Host header says', async () => {
    // fetch() will not send a foreign Host header; node:http will.
    const forged = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const url = new URL(`${server.issuer}/.well-known/openid-configuration`);
      const request = httpRequest(
        { host: url.hostname, port: url.port, path: url.pathname, headers: { host: 'evil.example' } },
        (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (text += chunk));
          response.on('end', () => resolve(JSON.parse(text) as Record<string, unknown>));
        },
      );
      request.on('error', reject);
      request.end();
    });
    assert.equal(forged.issuer, server.issuer);
    assert.equal(forged.token_endpoint, `${server.issuer}/token/`);
    assert.equal(forged.authorization_endpoint, `${server.issuer}/authorize/`);
    assert.equal(forged.jwks_uri, `${server.issuer}/.well-known/jwks.json`);
    assert.equal(forged.end_session_endpoint, `${server.issuer}/logout/`);
  });

  it('answers discovery and JWKS with Access-Control-Allow-Origin: *', async () => {
    assert.equal(discoveryHeaders.get('access-control-allow-origin'), '*');
    const jwks = await fetch(`${server.issuer}/.well-known/jwks.json`, {
      headers: { origin: 'https://elsewhere.example' },
    });
    assert.equal(jwks.status, 200);
    assert.equal(jwks.headers.get('access-control-allow-origin'), '*');
    const keys = ((await jwks.json()) as { keys: Array<Record<string, unknown>> }).keys;
    assert.ok(keys.length >= 1);
    for (const key of keys) {
      assert.equal(key.kty, 'RSA');
      assert.equal(key.d, undefined, 'no private part is published');
    }
  });

  it('answers a browser (an Origin) at the token endpoint for a public client from its redirect origin only, never for a confidential one', async () => {
    const spa = await seedApp(server, { name: 'SPA', clientType: 'public' });
    const backend = await seedApp(server, { name: 'Backend' });
    const token = server.issuer + '/token/';
    const form = {
      grant_type: 'authorization_code',
      code: 'no-such-code',
      redirect_uri: 'https://rp.example.org/callback',
    };
    const fromRedirectOrigin = await postForm(
      token,
      { ...form, client_id: spa.clientId },
      { origin: 'https://rp.example.org' },
    );
    assert.equal(fromRedirectOrigin.status, 400);
    assert.equal(fromRedirectOrigin.body.error, 'invalid_grant', JSON.stringify(fromRedirectOrigin.body));
    assert.equal(fromRedirectOrigin.headers.get('access-control-allow-origin'), 'https://rp.example.org');
    const fromElsewhere = await postForm(
      token,
      { ...form, client_id: spa.clientId },
      { origin: 'https://elsewhere.example' },
    );
    assert.equal(fromElsewhere.status, 400);
    assert.equal(fromElsewhere.body.error, 'invalid_request', JSON.stringify(fromElsewhere.body));
    assert.equal(fromElsewhere.headers.get('access-control-allow-origin'), null);
    const confidential = await postForm(token, form, {
      origin: 'https://rp.example.org',
      authorization: basicAuth(backend.clientId, backend.clientSecret!),
    });
    assert.equal(confidential.status, 400);
    assert.equal(confidential.body.error, 'invalid_request', JSON.stringify(confidential.body));
    assert.match(String(confidential.body.error_description), /origin .* not allowed/);
    const server2server = await postForm(token, form, {
      authorization: basicAuth(backend.clientId, backend.clientSecret!),
    });
    assert.equal(
      server2server.body.error,
      'invalid_grant',
      'without an Origin, the request is judged on its merits',
    );
  });

  it('answers every endpoint with and without the trailing slash', async () => {
    for (const path of ['/.well-known/openid-configuration', '/.well-known/jwks.json']) {
      for (const variant of [path, `${path}/`]) {
        const response = await fetch(`${server.issuer}${variant}`);
        assert.equal(response.status, 200, variant);
      }
    }
    for (const path of ['/token', '/revoke_token', '/introspect']) {
      for (const variant of [path, `${path}/`]) {
        const response = await fetch(`${server.issuer}${variant}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: 'client_id=nobody&token=x&grant_type=authorization_code',
        });
        assert.equal(response.status, 401, variant);
        assert.equal(((await response.json()) as { error: string }).error, 'invalid_client', variant);
      }
    }
    for (const variant of ['/userinfo', '/userinfo/']) {
      const response = await fetch(`${server.issuer}${variant}`);
      assert.equal(response.status, 401, variant);
      assert.equal(response.headers.get('cache-control'), 'no-store');
      assert.equal(response.headers.get('pragma'), 'no-cache');
    }
    for (const variant of ['/authorize', '/authorize/']) {
      const response = await fetch(`${server.issuer}${variant}?client_id=nobody`, { redirect: 'manual' });
      assert.equal(response.status, 400, variant);
      assert.equal(response.headers.get('x-frame-options'), 'DENY');
      assert.match(response.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(response.headers.get('referrer-policy'), 'same-origin');
    }
    for (const variant of ['/logout', '/logout/']) {
      const response = await fetch(`${server.issuer}${variant}`, { redirect: 'manual' });
      assert.equal(response.status, 200, variant);
      assert.equal(response.headers.get('x-frame-options'), 'DENY');
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(response.headers.get('referrer-policy'), 'same-origin');
    }
  });

  it('answers 404 for registration, application listing and OAuth server metadata', async () => {
    for (const path of [
      '/o/register/',
      '/o/register',
      '/o/applications/',
      '/.well-known/oauth-authorization-server',
      '/.well-known/oauth-authorization-server/o',
      '/.well-known/oauth-protected-resource',
      '/o/.well-known/oauth-authorization-server',
    ]) {
      const get = await fetch(`${server.origin}${path}`);
      assert.equal(get.status, 404, `GET ${path}`);
      const post = await fetch(`${server.origin}${path}`, {
        method: 'POST',
        body: '{}',
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(post.status, 404, `POST ${path}`);
    }
  });
});

describe(`discovery without RP-initiated logout (${testDatabaseKind})`, () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ logout: { rpInitiated: false } });
  });
  after(async () => server.close());

  it('has no end_session_endpoint and no logout route', async () => {
    const document = (await (
      await fetch(`${server.issuer}/.well-known/openid-configuration`)
    ).json()) as Record<string, unknown>;
    assert.equal(document.end_session_endpoint, undefined);
    assert.equal(document.op_policy_uri, undefined);
    const logout = await fetch(`${server.issuer}/logout/`);
    assert.equal(logout.status, 404);
  });
});
