import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { consoleSignIn } from '../helpers/console.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { openLoginPage } from '../helpers/flows.ts';
import {
  authorizeUrl,
  type Browser,
  pkcePair,
  REDIRECT_URI,
  seedApp,
  seedUser,
  startServer,
  type TestServer,
} from '../helpers/server.ts';
import { missingPageHeaders, type RawResponse, rawRequest } from './raw-request.ts';

/** What a browser sends when it opens an address. */
const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
const FORM = 'application/x-www-form-urlencoded';

/**
 * Every answer a browser renders or follows carries the four headers of the server's pages
 * (`setPageHeaders`): never framed, a Content-Security-Policy that keeps it out of frames, never
 * sniffed as another type, no referrer sent off the site. Walked here over each kind of answer: the
 * pages, their refusals (400, 403, 405, 413, 415), the provider's error pages, redirects.
 */
describe(`the headers of every answer a browser sees (${testDatabaseKind})`, () => {
  let server: TestServer;
  let clientId: string;
  let username: string;

  before(async () => {
    server = await startServer();
    ({ clientId } = await seedApp(server));
    ({ username } = await seedUser(server));
  });
  after(async () => server.close());

  const authorization = () =>
    authorizeUrl(server, {
      client_id: clientId,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      scope: 'openid',
      code_challenge: pkcePair().challenge,
      code_challenge_method: 'S256',
    });

  it('sets them on the sign-in pages, their refusals and redirects', async () => {
    const page = await openLoginPage(server, clientId);
    const stepUrl = page.action.replace(/\/login$/, '');
    const answers: Array<[string, RawResponse, number]> = [
      ['GET authorize (to the sign-in page)', await browserRequest(authorization()), 303],
      ['GET the login page', await browserRequest(stepUrl, { browser: page.browser }), 200],
      ['PUT the login page', await browserRequest(stepUrl, { method: 'PUT', browser: page.browser }), 405],
      [
        'POST login from another site',
        await browserRequest(page.action, {
          method: 'POST',
          browser: page.browser,
          headers: { 'content-type': FORM, 'sec-fetch-site': 'cross-site' },
          body: `csrf_token=${page.csrf}&username=x&password=y`,
        }),
        403,
      ],
      [
        'POST login as JSON',
        await browserRequest(page.action, {
          method: 'POST',
          browser: page.browser,
          headers: { 'content-type': 'application/json' },
          body: '{}',
        }),
        415,
      ],
      [
        'POST login over the size limit',
        await browserRequest(page.action, {
          method: 'POST',
          browser: page.browser,
          headers: { 'content-type': FORM },
          body: `username=${'x'.repeat(200_000)}`,
        }),
        413,
      ],
      [
        'GET a sign-in step with a malformed query',
        await browserRequest(`${stepUrl}?q=%ff`, { browser: page.browser }),
        400,
      ],
    ];
    assertPageHeaders(answers);
  });

  it("sets them on the provider's pages and its error pages, wherever it renders one", async () => {
    const answers: Array<[string, RawResponse, number]> = [
      [
        'GET authorize, unknown client',
        await browserRequest(`${server.issuer}/authorize/?client_id=nobody`),
        400,
      ],
      [
        'POST authorize as JSON',
        await browserRequest(`${server.issuer}/authorize/`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{}',
        }),
        400,
      ],
      [
        'POST authorize gzipped',
        await browserRequest(`${server.issuer}/authorize/`, {
          method: 'POST',
          headers: { 'content-type': FORM, 'content-encoding': 'gzip' },
          body: 'x',
        }),
        415,
      ],
      ['GET logout', await browserRequest(`${server.issuer}/logout/`), 200],
      ['GET logout, success', await browserRequest(`${server.issuer}/logout/success`), 200],
      // The provider renders its errors as a page to a browser on every endpoint, not only on the
      // front-channel ones: userinfo opened in a browser tab.
      ['GET userinfo in a browser', await browserRequest(`${server.issuer}/userinfo/`), 401],
      [
        'POST token from a browser',
        await browserRequest(`${server.issuer}/token/`, {
          method: 'POST',
          headers: { 'content-type': FORM },
          body: 'grant_type=authorization_code&code=x',
        }),
        400,
      ],
      [
        'GET authorize with a malformed Host',
        await browserRequest(`${server.issuer}/authorize/`, { headers: { host: 'bad host' } }),
        400,
      ],
      [
        'GET authorize with a malformed query',
        await browserRequest(`${server.issuer}/authorize/?q=%ff`),
        400,
      ],
      ['GET the 404 page', await browserRequest(`${server.origin}/no-such-page`), 404],
    ];
    assertPageHeaders(answers);
  });

  it('sets them on the account and admin pages, their refusals and redirects', async () => {
    const browser = await consoleSignIn(server, username);
    const answers: Array<[string, RawResponse, number]> = [
      ['GET / (the start page)', await browserRequest(`${server.origin}/`), 200],
      ['GET /account, signed out (to the sign-in)', await browserRequest(`${server.origin}/account`), 302],
      ['GET /admin, signed out (to the sign-in)', await browserRequest(`${server.origin}/admin`), 302],
      ['GET /account', await browserRequest(`${server.origin}/account`, { browser }), 200],
      ['GET /admin, not a superuser', await browserRequest(`${server.origin}/admin`, { browser }), 403],
      ['PUT /account', await browserRequest(`${server.origin}/account`, { method: 'PUT', browser }), 405],
      [
        'POST the password form from another site',
        await browserRequest(`${server.origin}/account/password`, {
          method: 'POST',
          browser,
          headers: { 'content-type': FORM, 'sec-fetch-site': 'cross-site' },
          body: 'csrf_token=x',
        }),
        403,
      ],
      [
        'POST the password form as JSON',
        await browserRequest(`${server.origin}/account/password`, {
          method: 'POST',
          browser,
          headers: { 'content-type': 'application/json' },
          body: '{}',
        }),
        415,
      ],
    ];
    assertPageHeaders(answers);
  });

  it('sends nosniff with the answers meant for programs too', async () => {
    const lacking: string[] = [];
    for (const [what, response] of [
      ['discovery', await rawRequest(`${server.issuer}/.well-known/openid-configuration`)],
      ['the JWKS', await rawRequest(`${server.issuer}/.well-known/jwks.json`)],
      ['userinfo without a token', await rawRequest(`${server.issuer}/userinfo/`)],
      ['token, wrong method', await rawRequest(`${server.issuer}/token/`)],
      ['a JSON 404', await rawRequest(`${server.origin}/no-such-endpoint`)],
      ['/healthz', await rawRequest(`${server.origin}/healthz`)],
      ['a malformed Host', await rawRequest(`${server.issuer}/token/`, { headers: { host: 'bad host' } })],
    ] as const) {
      if (response.headers['x-content-type-options'] !== 'nosniff') lacking.push(what);
    }
    assert.deepEqual(lacking, []);
  });

  /** A request as a browser sends it (`Accept` preferring HTML), with the cookies of `browser` if given. */
  function browserRequest(
    url: string,
    options: { method?: string; headers?: Record<string, string>; body?: string; browser?: Browser } = {},
  ): Promise<RawResponse> {
    return rawRequest(url, {
      ...options,
      headers: { accept: BROWSER_ACCEPT, ...options.headers },
      keepCookies: options.browser !== undefined,
    });
  }
});

/**
 * Each answer has its status, and the four headers of `setPageHeaders` with a policy that at least
 * keeps it out of frames; the failure lists every answer that lacks one, and which.
 */
function assertPageHeaders(answers: ReadonlyArray<[string, RawResponse, number]>): void {
  const lacking: string[] = [];
  for (const [what, response, status] of answers) {
    assert.equal(response.status, status, `${what}: ${response.body.slice(0, 200)}`);
    const missing = missingPageHeaders(response);
    if (missing.length > 0) lacking.push(`${what}: ${missing.join(', ')}`);
  }
  assert.deepEqual(lacking, []);
}
