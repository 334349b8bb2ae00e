import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { postForm, seedApp, startServer, type TestServer } from '../helpers/server.ts';
import { missingPageHeaders, type RawResponse, rawRequest } from './raw-request.ts';

const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
/** What the failing steps below put in their error: it must reach the log only, never the answer. */
const INTERNAL_DETAIL = 'internal detail: the widgets table is corrupt';
/** A request with this header fails in the provider's middleware once its route has answered. */
const FAIL_AFTER_ROUTE = 'x-test-fail-after-route';

/**
 * An error nothing handles (a route's bug; a step of the provider outside its own error handling)
 * is answered by the server, not by Koa: Koa would drop every header (`nosniff`, the pages' headers)
 * before its bare "Internal Server Error".
 */
describe(`an unexpected error (${testDatabaseKind})`, () => {
  let server: TestServer;
  let harness: LeakHarness;

  before(async () => {
    harness = createLeakHarness();
    server = await startServer(
      { branding: { name: 'Goon Fleet', supportUrl: 'https://help.example.org/auth' } },
      {
        harness,
        beforeListen: (app) => {
          // A route of the server's own that fails after setting headers of its answer.
          app.koa.use(async (ctx, next) => {
            if (ctx.path === '/test/boom') {
              ctx.set('Location', '/half-made');
              ctx.cookies.set('half_made', 'x');
              throw new Error(INTERNAL_DETAIL);
            }
            if (ctx.path === '/test/refused') ctx.throw(400, 'The test parameter is missing.');
            return next();
          });
          // A step in the provider's own middleware, outside its routes' error handling.
          app.oidc.current().use(async (ctx, next) => {
            if (ctx.path.endsWith('/test-boom')) throw new TypeError(INTERNAL_DETAIL);
            return next();
          });
          // A step of the provider's middleware that fails after a route (and its CORS) answered.
          app.oidc.current().use(async (ctx, next) => {
            await next();
            if (ctx.get(FAIL_AFTER_ROUTE) !== '') throw new Error(INTERNAL_DETAIL);
          });
        },
      },
    );
  });
  after(async () => server.close());

  const failures = () =>
    harness.logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.msg === 'request failed');

  for (const [where, path] of [
    ['a route of the server', '/test/boom'],
    ["the provider's middleware", '/o/test-boom'],
  ] as const) {
    it(`answers a browser the branded 500 page with the pages' headers (${where})`, async () => {
      const before = failures().length;
      const response = await rawRequest(`${server.origin}${path}`, {
        headers: { accept: BROWSER_ACCEPT, 'x-request-id': `html-${path.length}` },
      });
      assert.equal(response.status, 500, response.body.slice(0, 200));
      assertHeadersOfEveryAnswer(response, `html-${path.length}`);
      assert.deepEqual(missingPageHeaders(response), []);
      assert.match(String(response.headers['content-type']), /^text\/html/);
      assert.ok(response.body.includes('Goon Fleet'), 'the branding');
      // Not "Sign-in error": the failing request may be any page (the admin pages, the account page).
      assert.ok(
        response.body.includes('<title>Something went wrong · Goon Fleet</title>'),
        response.body.match(/<title>.*<\/title>/)?.[0],
      );
      assert.ok(response.body.includes(`<code id="request-id">html-${path.length}</code>`), 'the request id');
      assert.ok(response.body.includes('server_error'));
      assertWordedForAnyPath(response);
      assertNothingInternal(response);
      // Logged once, with the request id and the error's detail.
      const logged = failures().slice(before);
      assert.equal(logged.length, 1);
      assert.equal(logged[0]!.requestId, `html-${path.length}`);
      assert.match(JSON.stringify(logged[0]!.err), /the widgets table is corrupt/);
    });

    it(`answers a program server_error as JSON with nosniff (${where})`, async () => {
      const before = failures().length;
      const response = await rawRequest(`${server.origin}${path}`, {
        headers: { accept: 'application/json', 'x-request-id': `json-${path.length}` },
      });
      assert.equal(response.status, 500);
      assertHeadersOfEveryAnswer(response, `json-${path.length}`);
      assert.match(String(response.headers['content-type']), /^application\/json/);
      assert.equal((JSON.parse(response.body) as { error: string }).error, 'server_error');
      assertNothingInternal(response);
      assert.equal(failures().slice(before).length, 1);
    });
  }

  describe('on an endpoint a browser-based relying party calls across origins', () => {
    it("keeps the provider's Access-Control-Allow-Origin on the 500 (JWKS)", async () => {
      const response = await rawRequest(`${server.issuer}/.well-known/jwks.json`, {
        headers: { accept: 'application/json', origin: 'https://rp.example.org', [FAIL_AFTER_ROUTE]: '1' },
      });
      assert.equal(response.status, 500, response.body.slice(0, 200));
      // The provider's own CORS (its answer becomes `*` only once it completes, src/oidc/discovery.ts).
      assert.equal(response.headers['access-control-allow-origin'], 'https://rp.example.org');
      assert.match(String(response.headers.vary), /\bOrigin\b/i);
      assert.equal((JSON.parse(response.body) as { error: string }).error, 'server_error');
      assertNothingInternal(response);
    });

    it('keeps the origin the provider allowed for a public client on the 500 (token endpoint)', async () => {
      const spa = await seedApp(server, { name: 'SPA', clientType: 'public' });
      const form = {
        grant_type: 'authorization_code',
        code: 'no-such-code',
        redirect_uri: 'https://rp.example.org/callback',
        client_id: spa.clientId,
      };
      const allowed = await postForm(`${server.issuer}/token/`, form, {
        origin: 'https://rp.example.org',
        [FAIL_AFTER_ROUTE]: '1',
      });
      assert.equal(allowed.status, 500, JSON.stringify(allowed.body));
      assert.equal(allowed.body.error, 'server_error');
      assert.equal(allowed.headers.get('access-control-allow-origin'), 'https://rp.example.org');
      assert.match(String(allowed.headers.get('access-control-expose-headers')), /WWW-Authenticate/);
      // An origin the provider refused for the client stays refused.
      const refused = await postForm(`${server.issuer}/token/`, form, {
        origin: 'https://elsewhere.example',
        [FAIL_AFTER_ROUTE]: '1',
      });
      assert.equal(refused.status, 500, JSON.stringify(refused.body));
      assert.equal(refused.headers.get('access-control-allow-origin'), null);
    });

    it('adds no CORS header where the engine set none', async () => {
      const response = await rawRequest(`${server.origin}/test/boom`, {
        headers: { accept: 'application/json', origin: 'https://rp.example.org' },
      });
      assert.equal(response.status, 500);
      assert.equal(response.headers['access-control-allow-origin'], undefined);
    });
  });

  it('keeps the status and message of a client error thrown for the client (ctx.throw)', async () => {
    const response = await rawRequest(`${server.origin}/test/refused`, {
      headers: { accept: BROWSER_ACCEPT },
    });
    assert.equal(response.status, 400);
    assert.deepEqual(missingPageHeaders(response), []);
    assert.ok(response.body.includes('The test parameter is missing.'));
    assert.ok(
      response.body.includes('<title>Something went wrong · Goon Fleet</title>'),
      'a title for any path',
    );
    assertWordedForAnyPath(response);
  });

  it('leaves a sign-in error page its own wording: back to the application it came from', async () => {
    const response = await rawRequest(
      `${server.origin}/o/authorize/?client_id=no-such-client&response_type=code&scope=openid`,
      { headers: { accept: BROWSER_ACCEPT } },
    );
    assert.equal(response.status, 400, response.body.slice(0, 200));
    assert.ok(response.body.includes('<title>Sign-in error · Goon Fleet</title>'));
    assert.ok(
      oneLine(response.body).includes(
        '<p>Go back to the application and try again. If this keeps happening, tell its administrator.</p>',
      ),
    );
  });

  it('writes the access line with the status answered', async () => {
    await rawRequest(`${server.origin}/test/boom`, { headers: { 'x-request-id': 'access-500' } });
    const access = harness.logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((line) => line.requestId === 'access-500' && line.msg === 'request completed');
    assert.equal((access?.res as { status: number } | undefined)?.status, 500);
  });
});

/**
 * The headers every answer has (nosniff, the request id, not cached) are there; those the failing
 * step set (a half-made redirect, a cookie) are not.
 */
function assertHeadersOfEveryAnswer(response: RawResponse, requestId: string): void {
  assert.equal(response.headers['x-content-type-options'], 'nosniff');
  assert.equal(response.headers['x-request-id'], requestId);
  assert.equal(response.headers['cache-control'], 'no-store');
  assert.equal(response.headers.location, undefined);
  assert.equal(response.headers['set-cookie'], undefined);
}

/**
 * The page tells what to do next on any path (the account page, the admin pages): not "go back to the
 * application", which there may not be; with the community's help link.
 */
function assertWordedForAnyPath(response: RawResponse): void {
  assert.ok(!response.body.includes('Go back to the application'), 'no application to go back to');
  assert.ok(
    oneLine(response.body).includes(
      `<p>Try again in a moment. If it keeps happening, tell your community's administrators (<a href="https://help.example.org/auth">Help and support</a>).</p>`,
    ),
  );
}

/** The page with each run of white space as one space, as a browser shows it. */
function oneLine(body: string): string {
  return body.replace(/\s+/g, ' ');
}

function assertNothingInternal(response: RawResponse): void {
  assert.ok(!response.body.includes('widgets'), 'the error message');
  assert.doesNotMatch(response.body, /\bat .+\.ts:\d+/, 'a stack trace');
}
