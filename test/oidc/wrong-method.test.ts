import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { storageId } from '../../src/tokens/store.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { openLoginPage, submitLogin } from '../helpers/flows.ts';
import {
  authorizeUrl,
  Browser,
  PASSWORD,
  pkcePair,
  REDIRECT_URI,
  seedApp,
  seedUser,
  signIn,
  startServer,
  type TestServer,
} from '../helpers/server.ts';
import { rawRequest } from '../http/raw-request.ts';

/**
 * A method a provider endpoint does not take, at a path where it takes others: 405 with `Allow`
 * naming those (the provider's own routes), where it used to be a 404 saying the endpoint does not
 * exist. Paths without an endpoint keep their 404.
 */
describe(`wrong methods on the provider's endpoints (${testDatabaseKind})`, () => {
  let server: TestServer;

  before(async () => {
    server = await startServer();
  });
  after(async () => server.close());

  it('answers 405 naming the methods an endpoint takes, as JSON on the endpoints a program calls', async () => {
    const cases: Array<[string, string, string]> = [
      // OPTIONS where the provider answers CORS preflights.
      ['PUT', '/o/token/', 'POST, OPTIONS'],
      ['GET', '/o/token', 'POST, OPTIONS'],
      ['HEAD', '/o/token/', 'POST, OPTIONS'],
      ['GET', '/o/introspect/', 'POST, OPTIONS'],
      ['DELETE', '/o/revoke_token/', 'POST, OPTIONS'],
      ['PATCH', '/o/userinfo/', 'GET, HEAD, POST, OPTIONS'],
      ['DELETE', '/o/.well-known/openid-configuration', 'GET, HEAD, OPTIONS'],
      ['POST', '/o/.well-known/jwks.json', 'GET, HEAD, OPTIONS'],
    ];
    for (const [method, path, allow] of cases) {
      const what = `${method} ${path}`;
      const response = await rawRequest(`${server.origin}${path}`, { method });
      assert.equal(response.status, 405, what);
      assert.equal(response.headers.allow, allow, what);
      assert.equal(response.headers['cache-control'], 'no-store', what);
      if (method === 'HEAD') continue;
      assert.match(String(response.headers['content-type']), /^application\/json/, what);
      assert.deepEqual(
        JSON.parse(response.body),
        { error: 'invalid_request', error_description: `This endpoint takes ${allow} requests only.` },
        what,
      );
    }
  });

  it('answers 405 with an HTML page on the endpoints a browser shows, naming the form POST too', async () => {
    for (const [method, path, allow] of [
      ['PUT', '/o/authorize/', 'GET, POST'],
      ['DELETE', '/o/logout/', 'GET, POST'],
      ['GET', '/o/logout/confirm', 'POST'],
    ] as const) {
      const what = `${method} ${path}`;
      const response = await rawRequest(`${server.origin}${path}`, { method });
      assert.equal(response.status, 405, what);
      assert.equal(response.headers.allow, allow, what);
      assert.match(String(response.headers['content-type']), /^text\/html/, what);
      assert.ok(response.body.includes(`This endpoint takes ${allow} requests only.`), what);
    }
  });

  it('keeps the 404 where there is no endpoint, and the answers of the methods an endpoint takes', async () => {
    for (const [method, path] of [
      ['PUT', '/o/no-such-endpoint'],
      ['GET', '/o/register'],
      ['POST', '/o/applications'],
    ] as const) {
      const response = await rawRequest(`${server.origin}${path}`, { method });
      assert.equal(response.status, 404, `${method} ${path}`);
      assert.equal(response.headers.allow, undefined, `${method} ${path}`);
    }
    const token = await rawRequest(`${server.origin}/o/token/`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    assert.equal(token.status, 400);
    const preflight = await rawRequest(`${server.origin}/o/token/`, {
      method: 'OPTIONS',
      headers: { origin: 'https://rp.example.org', 'access-control-request-method': 'POST' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.allow, undefined);
  });
  it('answers an OPTIONS that is no CORS preflight 204 with Allow, and leaves preflights to the provider', async () => {
    for (const [path, allow, headers] of [
      ['/o/token/', 'POST, OPTIONS', {}],
      ['/o/token', 'POST, OPTIONS', { origin: 'https://rp.example.org' }],
      ['/o/introspect/', 'POST, OPTIONS', {}],
      ['/o/revoke_token/', 'POST, OPTIONS', {}],
      ['/o/userinfo/', 'GET, HEAD, POST, OPTIONS', {}],
      ['/o/.well-known/openid-configuration', 'GET, HEAD, OPTIONS', {}],
      ['/o/.well-known/jwks.json', 'GET, HEAD, OPTIONS', {}],
    ] as const) {
      const response = await rawRequest(`${server.origin}${path}`, { method: 'OPTIONS', headers });
      assert.equal(response.status, 204, path);
      assert.equal(response.headers.allow, allow, path);
      assert.equal(response.headers['access-control-allow-methods'], undefined, path);
      assert.equal(response.body, '', path);
    }
    const preflight = await rawRequest(`${server.origin}/o/userinfo/`, {
      method: 'OPTIONS',
      headers: { origin: 'https://rp.example.org', 'access-control-request-method': 'GET' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-methods'], 'GET,POST');
    assert.equal(preflight.headers.allow, undefined);
    // Where the provider takes no OPTIONS, or has no endpoint, the answers are as for any other method.
    const authorize = await rawRequest(`${server.origin}/o/authorize/`, { method: 'OPTIONS' });
    assert.equal(authorize.status, 405);
    assert.equal(authorize.headers.allow, 'GET, POST');
    assert.equal(
      (await rawRequest(`${server.origin}/o/no-such-endpoint`, { method: 'OPTIONS' })).status,
      404,
    );
  });

  it('answers 405 with Allow to the methods the sign-in routes do not take, HEAD on the page included', async () => {
    const { clientId } = await seedApp(server);
    const user = await seedUser(server);
    const page = await openLoginPage(server, clientId);
    const pageUrl = page.action.replace(/\/login$/, '');
    const head = await rawRequest(pageUrl, { method: 'HEAD', browser: page.browser });
    assert.equal(head.status, 405);
    assert.equal(head.headers.allow, 'GET');
    assert.equal(head.headers['x-frame-options'], 'DENY');
    assert.equal(head.headers['cache-control'], 'no-store');
    assert.equal(head.body, '');

    for (const [method, url, allow] of [
      ['PUT', pageUrl, 'GET'],
      ['POST', pageUrl, 'GET'],
      ['OPTIONS', pageUrl, 'GET'],
      ['GET', page.action, 'POST'],
      ['HEAD', page.action, 'POST'],
      ['DELETE', `${pageUrl}/consent`, 'POST'],
      ['GET', `${pageUrl}/otp`, 'POST'],
    ] as const) {
      const what = `${method} ${url}`;
      const response = await rawRequest(url, { method, browser: page.browser });
      assert.equal(response.status, 405, what);
      assert.equal(response.headers.allow, allow, what);
      assert.equal(response.headers['x-frame-options'], 'DENY', what);
      if (method === 'HEAD') continue;
      assert.match(String(response.headers['content-type']), /^text\/html/, what);
      assert.ok(response.body.includes(`This endpoint takes ${allow} requests only.`), what);
    }
    // An action the sign-in has not keeps its 404; the page still signs in.
    assert.equal((await rawRequest(`${pageUrl}/no-such-step`, { browser: page.browser })).status, 404);
    assert.equal((await submitLogin(page, user.username, PASSWORD)).status, 303);
  });

  it('refuses HEAD wherever a GET may end a sign-in step: no consent is granted, no code issued', async () => {
    // A native application that skips consent: a signed-in browser's GET of its consent step grants
    // consent and ends the step (pages.ts), its authorization GET then issues a code.
    const nativeRedirectUri = 'org.example.app:/callback';
    const { clientId } = await seedApp(server, {
      clientType: 'public',
      skipAuthorization: true,
      redirectUris: [nativeRedirectUri],
    });
    // A web application that skips consent: a signed-in browser's authorization GET issues a code.
    const web = await seedApp(server, { skipAuthorization: true });
    const user = await seedUser(server);
    const browser = new Browser();
    const authorizeAt = (at = clientId, redirectUri = nativeRedirectUri) =>
      authorizeUrl(server, {
        client_id: at,
        redirect_uri: redirectUri,
        response_type: 'code',
        scope: 'openid',
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
      });
    const webAuthorization = () => authorizeAt(web.clientId, REDIRECT_URI);
    assert.equal(
      (await signIn(browser, server, webAuthorization(), { username: user.username })).status,
      303,
    );
    const stored = async (model: string, at = clientId) =>
      (
        await server.app.database.db
          .selectFrom('oidc_payload')
          .select('id')
          .where('model', '=', model)
          .where('client_id', '=', at)
          .execute()
      ).length;
    const refused = async (url: string, allow: string) => {
      const response = await rawRequest(url, { method: 'HEAD', browser, keepCookies: true });
      assert.equal(response.status, 405, `HEAD ${url}`);
      assert.equal(response.headers.allow, allow, `HEAD ${url}`);
      assert.equal(response.headers.location, undefined, `HEAD ${url}`);
      assert.equal(response.headers['x-frame-options'], 'DENY', `HEAD ${url}`);
      assert.equal(response.body, '', `HEAD ${url}`);
    };

    // The authorization request, which would issue a code to the signed-in browser.
    const codesBefore = await stored('AuthorizationCode', web.clientId);
    await refused(webAuthorization(), 'GET, POST');
    assert.equal(await stored('AuthorizationCode', web.clientId), codesBefore, 'a HEAD issues no code');
    assert.equal((await browser.fetch(webAuthorization())).status, 303);
    assert.equal(await stored('AuthorizationCode', web.clientId), codesBefore + 1, 'its GET does');

    // The consent step, which a GET would end with consent granted.
    const started = await browser.fetch(authorizeAt());
    assert.equal(started.status, 303);
    const pageUrl = new URL(started.headers.get('location')!, server.origin).href;
    assert.match(pageUrl, /\/o\/interaction\/[^/]+$/);
    const stepResult = async () => {
      const row = await server.app.database.db
        .selectFrom('oidc_payload')
        .select('payload')
        .where('model', '=', 'Interaction')
        .where('id', '=', storageId(pageUrl.slice(pageUrl.lastIndexOf('/') + 1)))
        .executeTakeFirstOrThrow();
      return (JSON.parse(row.payload) as { result?: unknown }).result;
    };
    await refused(pageUrl, 'GET');
    assert.equal(await stepResult(), undefined, 'a HEAD neither grants consent nor ends the step');
    // The step is still there: its GET ends it, and the return to authorization (refused to a
    // HEAD too, as it would issue the code) issues the code.
    const ended = await browser.fetch(pageUrl);
    assert.equal(ended.status, 303);
    assert.ok(await stepResult(), 'its GET ends it');
    const resume = new URL(ended.headers.get('location')!, server.origin).href;
    assert.match(resume, /\/o\/authorize\/[^/?]+$/);
    await refused(resume, 'GET');
    const answer = await browser.follow(resume, server.origin);
    assert.equal(answer.status, 303);
    const location = new URL(answer.headers.get('location')!);
    assert.ok(location.searchParams.get('code'), `a code, not ${location.searchParams.get('error')}`);

    // The logout request, whose GET writes the session's logout confirmation.
    await refused(`${server.origin}/o/logout/`, 'GET, POST');
  });
});
