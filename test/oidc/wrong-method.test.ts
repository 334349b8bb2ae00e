import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { openLoginPage, submitLogin } from '../helpers/flows.ts';
import { PASSWORD, seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';
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
      ['PUT', '/o/authorize/', 'GET, HEAD, POST'],
      ['DELETE', '/o/logout/', 'GET, HEAD, POST'],
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
    assert.equal(authorize.headers.allow, 'GET, HEAD, POST');
    assert.equal(
      (await rawRequest(`${server.origin}/o/no-such-endpoint`, { method: 'OPTIONS' })).status,
      404,
    );
  });

  it('answers HEAD on the sign-in page as GET, and 405 with Allow to other methods on the sign-in routes', async () => {
    const { clientId } = await seedApp(server);
    const user = await seedUser(server);
    const page = await openLoginPage(server, clientId);
    const pageUrl = page.action.replace(/\/login$/, '');
    const head = await rawRequest(pageUrl, { method: 'HEAD', browser: page.browser });
    assert.equal(head.status, 200);
    assert.match(String(head.headers['content-type']), /^text\/html/);
    assert.equal(head.headers['x-frame-options'], 'DENY');
    assert.equal(head.headers['cache-control'], 'no-store');
    assert.equal(head.body, '');

    for (const [method, url, allow] of [
      ['PUT', pageUrl, 'GET, HEAD'],
      ['POST', pageUrl, 'GET, HEAD'],
      ['OPTIONS', pageUrl, 'GET, HEAD'],
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
});
