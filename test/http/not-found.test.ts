import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { type RawResponse, rawRequest } from './raw-request.ts';

/** What a browser sends when it opens an address. */
const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

/**
 * Addresses nothing answers: no console page, no provider endpoint, no sign-in step, not
 * `/healthz`, `/readyz` or `/metrics`. Long, odd, `..` and doubled-slash paths among them: each is
 * a 404, never a 500.
 */
const UNKNOWN_PATHS = [
  '/no-such-page',
  '/favicon.ico',
  '/o',
  '/o/',
  '/o/no-such-endpoint',
  '/o//token/',
  '/o/interaction/abc123/no-such-step',
  '/admin/no-such-page',
  '/account/no-such-page/deeper',
  '/healthz/more',
  '/metrics',
  '//',
  '/../../etc/passwd',
  '/account/../admin',
  '/%00',
  '/%c0%af',
  '/a%zz',
  `/${'x'.repeat(4000)}`,
  `/o/${'%2e%2e/'.repeat(300)}`,
];

describe(`addresses nothing answers (${testDatabaseKind})`, () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ branding: { name: 'Goon <Fleet> & Co' } });
  });
  after(async () => server.close());

  const request = (method: string, target: string, headers: Record<string, string> = {}) =>
    rawRequest(`${server.origin}/`, { method, target, headers });

  it('shows a browser the branded 404 page, with the headers of the server’s own pages and a way back', async () => {
    for (const path of UNKNOWN_PATHS) {
      const what = `GET ${path.slice(0, 40)}`;
      const response = await request('GET', path, { accept: BROWSER_ACCEPT });
      assert.equal(response.status, 404, what);
      assertPageHeaders(response, what);
      assert.ok(response.body.includes('<h1>Page not found</h1>'), what);
      assert.ok(response.body.includes('<title>Page not found · Goon &lt;Fleet&gt; &amp; Co</title>'), what);
      assert.ok(
        response.body.includes('<a href="/">Go to the start page of Goon &lt;Fleet&gt; &amp; Co</a>'),
        what,
      );
      // The request id, for support; the address asked for is not repeated.
      assert.ok(
        response.body.includes(`<code id="request-id">${response.headers['x-request-id']}</code>`),
        what,
      );
      if (path.length > 2) assert.ok(!response.body.includes(path.slice(1)), what);
    }
  });

  it('answers a program a JSON 404, whatever the method', async () => {
    for (const [method, path, accept] of [
      ['GET', '/no-such-page', undefined],
      ['GET', '/no-such-page', '*/*'],
      ['GET', '/o/no-such-endpoint', 'application/json'],
      ['POST', '/no-such-page', undefined],
      ['PUT', '/o/no-such-endpoint', undefined],
      ['DELETE', '/admin/no-such-page', undefined],
      ['OPTIONS', '/o/no-such-endpoint', undefined],
      ['OPTIONS', '*', undefined],
      // An Accept header that cannot be read prefers nothing: JSON.
      ['GET', '/no-such-page', 'text/html;q=abc, application/json;q='],
      ...UNKNOWN_PATHS.map((path) => ['GET', path, undefined] as const),
    ] as const) {
      const what = `${method} ${path.slice(0, 40)} (${accept ?? 'no Accept'})`;
      const response = await request(method, path, accept === undefined ? {} : { accept });
      assert.equal(response.status, 404, what);
      assert.match(String(response.headers['content-type']), /^application\/json/, what);
      assert.equal(response.headers['cache-control'], 'no-store', what);
      assert.equal(response.headers.allow, undefined, what);
      assert.deepEqual(
        JSON.parse(response.body),
        { error: 'not_found', error_description: 'no such endpoint' },
        what,
      );
    }
  });

  it('answers HEAD with the status and headers of the 404, without a body', async () => {
    const page = await request('HEAD', '/no-such-page', { accept: BROWSER_ACCEPT });
    assert.equal(page.status, 404);
    assertPageHeaders(page, 'HEAD, browser');
    assert.equal(page.body, '');
    const json = await request('HEAD', '/o/no-such-endpoint');
    assert.equal(json.status, 404);
    assert.match(String(json.headers['content-type']), /^application\/json/);
    assert.equal(json.body, '');
  });

  it('leaves the answers of the routes that exist as they were', async () => {
    // A method an endpoint does not take: 405 with Allow, JSON on the endpoints a program calls.
    const wrongMethod = await request('GET', '/o/token/', { accept: BROWSER_ACCEPT });
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.allow, 'POST, OPTIONS');
    assert.match(String(wrongMethod.headers['content-type']), /^application\/json/);
    // A 404 with its own answer (the blocked registration endpoint) keeps it.
    const blocked = await request('GET', '/o/register', { accept: BROWSER_ACCEPT });
    assert.equal(blocked.status, 404);
    assert.match(String(blocked.headers['content-type']), /^application\/json/);
    // The provider's own OAuth errors.
    const userinfo = await request('GET', '/o/userinfo/');
    assert.equal(userinfo.status, 401);
    assert.equal(JSON.parse(userinfo.body).error, 'invalid_token');
    // A malformed query under the issuer is a 400, not a 404.
    const malformed = await request('GET', '/o/no-such-endpoint?q=%ff');
    assert.equal(malformed.status, 400);
    assert.equal(JSON.parse(malformed.body).error, 'invalid_request');
    assert.equal((await request('GET', '/healthz')).status, 200);
    const landing = await request('GET', '/', { accept: BROWSER_ACCEPT });
    assert.equal(landing.status, 200);
  });
});

function assertPageHeaders(response: RawResponse, what: string): void {
  assert.match(String(response.headers['content-type']), /^text\/html/, what);
  assert.equal(response.headers['cache-control'], 'no-store', what);
  assert.equal(response.headers['x-frame-options'], 'DENY', what);
  assert.equal(response.headers['x-content-type-options'], 'nosniff', what);
  assert.equal(response.headers['referrer-policy'], 'same-origin', what);
  const policy = String(response.headers['content-security-policy']);
  assert.match(policy, /default-src 'none'/, what);
  assert.match(policy, /frame-ancestors 'none'/, what);
  assert.doesNotMatch(policy, /script-src/, what);
}
