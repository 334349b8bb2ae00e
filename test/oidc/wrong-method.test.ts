import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
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
});
