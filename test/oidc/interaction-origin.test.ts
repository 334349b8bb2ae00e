import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FOREIGN_FORM_MESSAGE } from '../../src/oidc/interactions/routes.ts';
import { currentCode } from '../../src/two-factor/totp.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { openLoginPage, submitLogin } from '../helpers/flows.ts';
import {
  authorizeUrl,
  Browser,
  formAction,
  formField,
  PASSWORD,
  pkcePair,
  REDIRECT_URI,
  seedApp,
  seedTwoFactorUser,
  seedUser,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

/** What a browser sends with a form another site's page posted (or a sibling host's). */
const FOREIGN_HEADERS: Array<Record<string, string>> = [
  { origin: 'https://evil.example' },
  { origin: 'null' },
  { 'sec-fetch-site': 'cross-site' },
  { 'sec-fetch-site': 'same-site' },
  { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
];

const form = (fields: Record<string, string>) => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(fields).toString(),
});

/**
 * The sign-in forms (login, consent, two-factor…) refuse, beside their CSRF token, a form the
 * browser says another site sent, as the account and admin pages do; a request without those
 * headers (curl, older browsers, the bench) signs in as before.
 */
describe(`sign-in forms posted from another site (${testDatabaseKind})`, () => {
  let server: TestServer;
  let sameOrigin: Record<string, string>;

  before(async () => {
    server = await startServer();
    sameOrigin = { origin: server.origin, 'sec-fetch-site': 'same-origin' };
  });
  after(async () => server.close());

  it('refuses (403) a login form from another origin or site, counting nothing, and the page then signs in', async () => {
    const { clientId } = await seedApp(server, { skipAuthorization: true });
    const user = await seedUser(server);
    const page = await openLoginPage(server, clientId);
    const foreign = [...FOREIGN_HEADERS, { origin: `http://127.0.0.2:${new URL(server.origin).port}` }];
    for (const headers of foreign) {
      const refused = await submitLogin(page, user.username, PASSWORD, { headers });
      assert.equal(refused.status, 403, JSON.stringify(headers));
      assert.match(refused.body, new RegExp(FOREIGN_FORM_MESSAGE.replace(/[.,]/g, '\\$&')));
      const wrong = await submitLogin(page, user.username, 'not the password', { headers });
      assert.equal(wrong.status, 403, JSON.stringify(headers));
    }
    const failures = await server.app.database.db.selectFrom('login_failure').select('id').execute();
    assert.equal(failures.length, 0, 'a refused form is no failed sign-in');
    // The same interaction, CSRF token and cookie sign in from the issuer's own page.
    assert.equal((await submitLogin(page, user.username, PASSWORD, { headers: sameOrigin })).status, 303);
  });

  it('signs in with a form that carries neither Origin nor Sec-Fetch-Site (curl, older browsers)', async () => {
    const { clientId } = await seedApp(server, { skipAuthorization: true });
    const user = await seedUser(server);
    const page = await openLoginPage(server, clientId);
    assert.equal((await submitLogin(page, user.username, PASSWORD)).status, 303);
  });

  it('signs in with Origin: null when Sec-Fetch-Site says same-origin (a no-referrer privacy setting), refusing it without', async () => {
    const { clientId } = await seedApp(server, { skipAuthorization: true });
    const user = await seedUser(server);
    const page = await openLoginPage(server, clientId);
    // A sandboxed frame on an older browser sends Origin: null and no Sec-Fetch-Site: still foreign.
    const bare = await submitLogin(page, user.username, PASSWORD, { headers: { origin: 'null' } });
    assert.equal(bare.status, 403);
    const headers = { origin: 'null', 'sec-fetch-site': 'same-origin' };
    assert.equal((await submitLogin(page, user.username, PASSWORD, { headers })).status, 303);
  });

  it('refuses a consent form from another site, and the consent page then answers', async () => {
    const { clientId } = await seedApp(server);
    const user = await seedUser(server);
    const page = await openLoginPage(server, clientId);
    const signedIn = await page.browser.follow(page.action, server.origin, {
      ...form({ csrf_token: page.csrf, username: user.username, password: PASSWORD }),
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...sameOrigin },
    });
    const consent = await signedIn.text();
    assert.match(consent, /name="decision"/);
    const fields = { csrf_token: formField(consent, 'csrf_token'), decision: 'allow' };
    const action = formAction(consent, server.origin);
    for (const headers of FOREIGN_HEADERS) {
      const refused = await page.browser.fetch(action, {
        ...form(fields),
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      });
      assert.equal(refused.status, 403, JSON.stringify(headers));
    }
    const allowed = await page.browser.follow(action, server.origin, {
      ...form(fields),
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...sameOrigin },
    });
    assert.equal(allowed.status, 303);
    assert.ok(allowed.headers.get('location')!.startsWith(`${REDIRECT_URI}?code=`));
  });

  it('refuses a two-factor code from another site without using it up', async () => {
    const { clientId } = await seedApp(server, { skipAuthorization: true });
    const enrolment = await seedTwoFactorUser(server);
    const user = enrolment.user;
    const page = await openLoginPage(server, clientId);
    const asked = await page.browser.follow(page.action, server.origin, {
      ...form({ csrf_token: page.csrf, username: user.username, password: PASSWORD }),
    });
    const codePage = await asked.text();
    assert.match(codePage, /name="code"/);
    const code = currentCode(enrolment.secret, Date.now() + 30_000);
    const fields = {
      csrf_token: formField(codePage, 'csrf_token'),
      pending: formField(codePage, 'pending'),
      code,
    };
    const action = formAction(codePage, server.origin);
    const refused = await page.browser.fetch(action, {
      ...form(fields),
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'cross-site' },
    });
    assert.equal(refused.status, 403);
    const accepted = await page.browser.follow(action, server.origin, form(fields));
    assert.equal(accepted.status, 303);
    assert.ok(accepted.headers.get('location')!.startsWith(`${REDIRECT_URI}?code=`));
  });
});

/**
 * Behind a TLS-terminating proxy the request reaches aa-oidc over http on its own address: the
 * browser's Origin is compared with the configured issuer's, never with one built from the request.
 */
describe(`sign-in forms behind a TLS-terminating proxy (${testDatabaseKind})`, () => {
  let server: TestServer;
  const issuer = 'https://auth.example.test/o';
  const issuerOrigin = new URL(issuer).origin;
  const proxied = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'auth.example.test' };

  before(async () => {
    server = await startServer({
      mode: 'production',
      issuer,
      secretKey: 'a production secret key of at least 32 chars',
      trustProxy: true,
    });
  });
  after(async () => server.close());

  /** Every Set-Cookie line of the responses `throughProxy` saw. */
  const setCookies: string[] = [];

  /** Fetches an issuer URL as the proxy forwards it, following redirects that stay on the issuer. */
  async function throughProxy(browser: Browser, url: string, init: RequestInit = {}): Promise<Response> {
    let response = await browser.fetch(url.replace(issuerOrigin, server.origin), {
      ...init,
      headers: { ...proxied, ...(init.headers as Record<string, string>) },
    });
    setCookies.push(...response.headers.getSetCookie());
    for (let hop = 0; hop < 10 && response.status >= 300 && response.status < 400; hop += 1) {
      const location = new URL(response.headers.get('location')!, url).href;
      if (!location.startsWith(issuerOrigin)) break;
      url = location;
      response = await browser.fetch(url.replace(issuerOrigin, server.origin), { headers: proxied });
      setCookies.push(...response.headers.getSetCookie());
    }
    return response;
  }

  it('sets every cookie of a sign-in Secure and HttpOnly in production', async () => {
    const { clientId } = await seedApp(server, { skipAuthorization: true });
    const user = await seedUser(server);
    const browser = new Browser();
    setCookies.length = 0;
    const loginPage = await throughProxy(
      browser,
      authorizeUrl(
        { issuer, origin: issuerOrigin },
        {
          client_id: clientId,
          redirect_uri: REDIRECT_URI,
          response_type: 'code',
          scope: 'openid',
          code_challenge: pkcePair().challenge,
          code_challenge_method: 'S256',
        },
      ),
    );
    const body = await loginPage.text();
    const signedIn = await throughProxy(browser, formAction(body, issuerOrigin), {
      ...form({ csrf_token: formField(body, 'csrf_token'), username: user.username, password: PASSWORD }),
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin: issuerOrigin,
        'sec-fetch-site': 'same-origin',
      },
    });
    assert.ok(signedIn.headers.get('location')!.startsWith(`${REDIRECT_URI}?code=`));
    const names = new Set(setCookies.map((line) => line.split('=')[0]));
    for (const name of ['_interaction', '__Host-_session', '_aa_oidc_csrf']) assert.ok(names.has(name), name);
    for (const line of setCookies) {
      assert.match(line, /;\s*secure/i, line.split('=')[0]);
      assert.match(line, /;\s*httponly/i, line.split('=')[0]);
    }
  });

  it("accepts a login form from the issuer's origin and refuses one naming the request's own", async () => {
    const { clientId } = await seedApp(server, { skipAuthorization: true });
    const user = await seedUser(server);
    const browser = new Browser();
    const loginPage = await throughProxy(
      browser,
      authorizeUrl(
        { issuer, origin: issuerOrigin },
        {
          client_id: clientId,
          redirect_uri: REDIRECT_URI,
          response_type: 'code',
          scope: 'openid',
          code_challenge: pkcePair().challenge,
          code_challenge_method: 'S256',
        },
      ),
    );
    assert.equal(loginPage.status, 200);
    const body = await loginPage.text();
    const action = formAction(body, issuerOrigin);
    assert.ok(action.startsWith(`${issuerOrigin}/o/interaction/`), action);
    const fields = { csrf_token: formField(body, 'csrf_token'), username: user.username, password: PASSWORD };
    // What the request itself would say (plain http on the listening address), and the issuer's host over http.
    for (const origin of [server.origin, 'http://auth.example.test']) {
      const refused = await throughProxy(browser, action, {
        ...form(fields),
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          origin,
          'sec-fetch-site': 'same-origin',
        },
      });
      assert.equal(refused.status, 403, origin);
    }
    const signedIn = await throughProxy(browser, action, {
      ...form(fields),
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin: issuerOrigin,
        'sec-fetch-site': 'same-origin',
      },
    });
    assert.equal(signedIn.status, 303);
    assert.ok(signedIn.headers.get('location')!.startsWith(`${REDIRECT_URI}?code=`));
  });
});
