import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import {
  authorizeUrl,
  basicAuth,
  Browser,
  pkcePair,
  postForm,
  REDIRECT_URI,
  seedApp,
  seedUser,
  signIn,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

describe(`protocol errors (${testDatabaseKind})`, () => {
  let server: TestServer;
  let client: { clientId: string; clientSecret: string };

  before(async () => {
    server = await startServer();
    const seeded = await seedApp(server);
    client = { clientId: seeded.clientId, clientSecret: seeded.clientSecret! };
  });
  after(async () => server.close());

  const validParams = (): Record<string, string> => ({
    client_id: client.clientId,
    redirect_uri: REDIRECT_URI,
    response_type: 'code',
    scope: 'openid',
    state: 'st',
    code_challenge: pkcePair().challenge,
    code_challenge_method: 'S256',
  });

  /** The error the client receives in its redirect, or the error shown on the page. */
  async function authorizeError(
    params: Record<string, string>,
  ): Promise<{ redirected: boolean; error: string | null; status: number }> {
    const response = await fetch(authorizeUrl(server, params), { redirect: 'manual' });
    assert.ok(response.status < 500, `no server error for ${JSON.stringify(params).slice(0, 200)}`);
    const location = response.headers.get('location');
    if (location && location.startsWith(REDIRECT_URI)) {
      const url = new URL(location);
      const params = url.hash ? new URLSearchParams(url.hash.slice(1)) : url.searchParams;
      assert.equal(params.get('iss'), server.issuer);
      return { redirected: true, error: params.get('error'), status: response.status };
    }
    const body = await response.text();
    const match = /could not be completed \(([a-z_]+)\)/.exec(body);
    return { redirected: false, error: match?.[1] ?? null, status: response.status };
  }

  it('shows an error page, never a redirect, for an unregistered redirect_uri or an unknown client', async () => {
    const unregistered = await authorizeError({
      ...validParams(),
      redirect_uri: 'https://attacker.example/cb',
    });
    assert.deepEqual(unregistered, { redirected: false, error: 'invalid_redirect_uri', status: 400 });
    const unknown = await authorizeError({ ...validParams(), client_id: 'no-such-client' });
    assert.deepEqual(unknown, { redirected: false, error: 'invalid_client', status: 400 });
    const missing = await authorizeError({ ...validParams(), redirect_uri: '' });
    assert.equal(missing.redirected, false);
    assert.equal(missing.status, 400);
  });

  it('requires S256 PKCE where the application requires it, and for every public client', async () => {
    const { code_challenge: _c, code_challenge_method: _m, ...withoutPkce } = validParams();
    assert.deepEqual(await authorizeError(withoutPkce), {
      redirected: true,
      error: 'invalid_request',
      status: 303,
    });
    assert.deepEqual(await authorizeError({ ...validParams(), code_challenge_method: 'plain' }), {
      redirected: true,
      error: 'invalid_request',
      status: 303,
    });
    assert.equal(
      (await authorizeError({ ...validParams(), code_challenge: 'short' })).error,
      'invalid_request',
    );

    const relaxed = await seedApp(server, { pkceRequired: false });
    const noPkce = await fetch(authorizeUrl(server, { ...withoutPkce, client_id: relaxed.clientId }), {
      redirect: 'manual',
    });
    assert.equal(noPkce.status, 303);
    assert.match(
      noPkce.headers.get('location')!,
      /\/o\/interaction\//,
      'an app that opted out may skip PKCE',
    );

    const publicApp = await seedApp(server, { clientType: 'public' });
    assert.equal(
      (await authorizeError({ ...withoutPkce, client_id: publicApp.clientId })).error,
      'invalid_request',
    );
  });

  it('rejects request objects: request_not_supported and request_uri_not_supported', async () => {
    assert.equal(
      (await authorizeError({ ...validParams(), request: 'eyJhbGciOiJub25lIn0.e30.' })).error,
      'request_not_supported',
    );
    assert.equal(
      (await authorizeError({ ...validParams(), request_uri: 'https://rp.example.org/request.jwt' })).error,
      'request_uri_not_supported',
    );
  });

  it('answers malformed and oversized parameters with OAuth errors, never 500', async () => {
    assert.equal(
      (await authorizeError({ ...validParams(), response_type: 'token' })).error,
      'unsupported_response_type',
    );
    assert.equal((await authorizeError({ ...validParams(), claims: '{not json' })).error, 'invalid_request');
    assert.equal(
      (await authorizeError({ ...validParams(), claims: '{"id_token":{"email":5}}' })).error,
      'invalid_request',
    );
    assert.equal((await authorizeError({ ...validParams(), prompt: 'none login' })).error, 'invalid_request');
    assert.equal((await authorizeError({ ...validParams(), prompt: 'create' })).error, 'invalid_request');
    assert.equal(
      (await authorizeError({ ...validParams(), prompt: 'none select_account' })).error,
      'invalid_request',
    );
    assert.equal((await authorizeError({ ...validParams(), prompt: 'none' })).error, 'login_required');

    const duplicated = await fetch(`${authorizeUrl(server, validParams())}&scope=email`, {
      redirect: 'manual',
    });
    assert.ok(duplicated.status < 500);
    assert.match(duplicated.headers.get('location') ?? '', /error=invalid_request/);

    const huge = await fetch(authorizeUrl(server, { ...validParams(), state: 'x'.repeat(6000) }), {
      redirect: 'manual',
    });
    assert.ok(huge.status < 500);

    for (const value of ['\u0000', '%', '\uFFFF', '😀'.repeat(100)]) {
      for (const name of [
        'client_id',
        'redirect_uri',
        'scope',
        'response_type',
        'nonce',
        'code_challenge',
        'max_age',
        'acr_values',
      ]) {
        const response = await fetch(authorizeUrl(server, { ...validParams(), [name]: value }), {
          redirect: 'manual',
        });
        assert.ok(response.status < 500, `${name}=${JSON.stringify(value)} answered ${response.status}`);
      }
    }
  });

  it('ignores a malformed max_age instead of refusing the request', async () => {
    for (const maxAge of ['abc', '-1', '1.5', '']) {
      const response = await fetch(authorizeUrl(server, { ...validParams(), max_age: maxAge }), {
        redirect: 'manual',
      });
      assert.equal(response.status, 303, `max_age=${maxAge}`);
      assert.match(
        response.headers.get('location')!,
        /\/o\/interaction\//,
        `max_age=${maxAge} leads to the login`,
      );
    }
    // The name percent-encoded is the same parameter to the provider.
    const encodedName = await fetch(`${authorizeUrl(server, validParams())}&max%5Fage=abc`, {
      redirect: 'manual',
    });
    assert.equal(encodedName.status, 303, 'max%5Fage=abc');
    assert.match(encodedName.headers.get('location')!, /\/o\/interaction\//);
    const post = await fetch(`${server.issuer}/authorize/`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...validParams(), max_age: 'soon' }).toString(),
    });
    assert.equal(post.status, 303, 'authorize accepts POST');
    assert.match(post.headers.get('location')!, /\/o\/interaction\//);
  });

  it('refuses a deactivated application everywhere', async () => {
    const user = await seedUser(server);
    const doomed = await seedApp(server);
    const browser = new Browser();
    const { verifier, challenge } = pkcePair();
    const signedIn = await signIn(
      browser,
      server,
      authorizeUrl(server, { ...validParams(), client_id: doomed.clientId, code_challenge: challenge }),
      { username: user.username },
    );
    const code = new URL(signedIn.headers.get('location')!).searchParams.get('code')!;
    const auth = { authorization: basicAuth(doomed.clientId, doomed.clientSecret!) };
    const first = await postForm(
      `${server.issuer}/token/`,
      { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier },
      auth,
    );
    assert.equal(first.status, 200);
    const accessToken = first.body.access_token as string;

    await server.app.applications.deactivate(doomed.clientId, 'test');

    assert.deepEqual(await authorizeError({ ...validParams(), client_id: doomed.clientId }), {
      redirected: false,
      error: 'invalid_client',
      status: 400,
    });
    const refresh = await postForm(
      `${server.issuer}/token/`,
      { grant_type: 'refresh_token', refresh_token: first.body.refresh_token as string },
      auth,
    );
    assert.equal(refresh.status, 401);
    assert.equal(refresh.body.error, 'invalid_client');
    const introspection = await postForm(`${server.issuer}/introspect/`, { token: accessToken }, auth);
    assert.equal(introspection.status, 401);
    assert.equal(introspection.body.error, 'invalid_client');
    const revocation = await postForm(`${server.issuer}/revoke_token/`, { token: accessToken }, auth);
    assert.equal(revocation.status, 401);
    const byOther = await postForm(
      `${server.issuer}/introspect/`,
      { token: accessToken },
      { authorization: basicAuth(client.clientId, client.clientSecret) },
    );
    assert.equal(byOther.status, 200);
    assert.deepEqual(byOther.body, { active: false }, "a deactivated application's tokens are inactive");
    const userinfo = await fetch(`${server.issuer}/userinfo/`, {
      headers: { authorization: `Bearer ${accessToken}` },
    });
    assert.equal(userinfo.status, 401);
  });

  it('answers bad token requests with the right OAuth error', async () => {
    const auth = { authorization: basicAuth(client.clientId, client.clientSecret) };
    const cases: Array<[Record<string, string>, Record<string, string>, number, string]> = [
      [{ grant_type: 'password', username: 'a', password: 'b' }, auth, 400, 'unsupported_grant_type'],
      [{ grant_type: 'implicit' }, auth, 400, 'unsupported_grant_type'],
      [{ grant_type: 'authorization_code', redirect_uri: REDIRECT_URI }, auth, 400, 'invalid_request'],
      [
        {
          grant_type: 'authorization_code',
          code: 'never-issued',
          redirect_uri: REDIRECT_URI,
          code_verifier: 'x'.repeat(43),
        },
        auth,
        400,
        'invalid_grant',
      ],
      [{ grant_type: 'refresh_token', refresh_token: 'never-issued' }, auth, 400, 'invalid_grant'],
      // oidc-provider's answer for a grant type the client is not registered for.
      [{ grant_type: 'client_credentials' }, auth, 400, 'invalid_request'],
      [
        { grant_type: 'authorization_code', code: 'x', client_id: 'no-such-client', client_secret: 'x' },
        {},
        401,
        'invalid_client',
      ],
      [
        { grant_type: 'authorization_code', code: 'x' },
        { authorization: 'Basic !!!' },
        400,
        'invalid_request',
      ],
      [
        { grant_type: 'authorization_code', code: 'x' },
        { authorization: 'Bearer abc' },
        400,
        'invalid_request',
      ],
      [{ grant_type: 'authorization_code', code: 'x' }, {}, 400, 'invalid_request'],
    ];
    for (const [form, headers, status, error] of cases) {
      const response = await postForm(`${server.issuer}/token/`, form, headers);
      assert.equal(response.status, status, JSON.stringify(form));
      assert.equal(response.body.error, error, JSON.stringify(form));
    }
    const oversized = await postForm(
      `${server.issuer}/token/`,
      { grant_type: 'refresh_token', refresh_token: 'x'.repeat(70_000) },
      auth,
    );
    assert.equal(oversized.status, 413, 'a body over the limit is too large, and said so');
    assert.equal(oversized.body.error, 'invalid_request');
    const json = await fetch(`${server.issuer}/token/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({ grant_type: 'client_credentials' }),
    });
    assert.equal(json.status, 400);
  });

  it('grants client_credentials only to applications that enable it', async () => {
    const machine = await seedApp(server, { grantTypes: ['client_credentials'], redirectUris: [] });
    const response = await postForm(
      `${server.issuer}/token/`,
      { grant_type: 'client_credentials' },
      { authorization: basicAuth(machine.clientId, machine.clientSecret!) },
    );
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.ok(response.body.access_token);
    assert.equal(response.body.refresh_token, undefined);
    assert.equal(response.body.id_token, undefined);
    const noCode = await authorizeError({ ...validParams(), client_id: machine.clientId });
    assert.equal(noCode.status < 500, true);
    assert.notEqual(noCode.error, null);
  });

  it('answers bad bearer tokens at userinfo and unknown tokens at introspection', async () => {
    for (const header of ['Bearer nope', 'Bearer ', 'Basic abc', `Bearer ${'x'.repeat(5000)}`]) {
      const response = await fetch(`${server.issuer}/userinfo/`, { headers: { authorization: header } });
      assert.ok([400, 401].includes(response.status), `${header.slice(0, 20)} → ${response.status}`);
      assert.ok(response.headers.get('www-authenticate'));
    }
    const unknown = await postForm(
      `${server.issuer}/introspect/`,
      { token: randomBytes(32).toString('base64url') },
      { authorization: basicAuth(client.clientId, client.clientSecret) },
    );
    assert.equal(unknown.status, 200);
    assert.deepEqual(unknown.body, { active: false });
    const anonymous = await postForm(`${server.issuer}/introspect/`, { token: 'x' });
    assert.equal(anonymous.status, 400);
  });

  it('answers a POST to authorize or logout that is not a form with invalid_request, not 404', async () => {
    for (const path of ['/authorize/', '/logout/']) {
      for (const type of ['application/json', 'text/plain', undefined]) {
        const response = await fetch(`${server.issuer}${path}`, {
          method: 'POST',
          redirect: 'manual',
          headers: type ? { 'content-type': type } : {},
          body: JSON.stringify({ client_id: 'wiki', response_type: 'code' }),
        });
        const what = `POST ${path} (${type ?? 'no content type'})`;
        assert.equal(response.status, 400, what);
        assert.equal(response.headers.get('connection'), 'close', what);
        assert.match(response.headers.get('content-type') ?? '', /^text\/html/, what);
        assert.match(await response.text(), /application\/x-www-form-urlencoded/, what);
      }
    }
  });

  it('never answers 500 to random garbage on any endpoint', async () => {
    const paths = [
      '/authorize/',
      '/token/',
      '/introspect/',
      '/revoke_token/',
      '/userinfo/',
      '/logout/',
      '/logout/confirm',
      '/interaction/abc',
      '/interaction/abc/login',
    ];
    const bodies = [
      '',
      '%%%',
      'a=1&a=2',
      '\u0000=\u0000',
      `token=${'%'.repeat(1000)}`,
      'grant_type[]=x',
      JSON.stringify({ a: 1 }),
    ];
    const types = [
      'application/x-www-form-urlencoded',
      'application/json',
      'text/plain',
      'multipart/form-data; boundary=x',
    ];
    for (const path of paths) {
      for (const body of bodies) {
        for (const type of types) {
          const response = await fetch(`${server.issuer}${path}`, {
            method: 'POST',
            redirect: 'manual',
            headers: { 'content-type': type },
            body,
          });
          assert.ok(
            response.status < 500,
            `POST ${path} (${type}) ${JSON.stringify(body)} → ${response.status}`,
          );
          await response.arrayBuffer();
        }
      }
      const get = await fetch(`${server.issuer}${path}?%zz=1&a[b]=c`, { redirect: 'manual' });
      assert.ok(get.status < 500, `GET ${path} → ${get.status}`);
    }
  });
});
