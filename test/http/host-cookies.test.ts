import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { consoleCookieForgotten } from '../helpers/console.ts';
import {
  authorizeUrl,
  Browser,
  formAction,
  formField,
  PASSWORD,
  pkcePair,
  REDIRECT_URI,
  seedApp,
  seedUser,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

/** The cookie's name and its attributes (lower-cased names), from one Set-Cookie line. */
function parseSetCookie(line: string): { name: string; attributes: Map<string, string> } {
  const [pair, ...parts] = line.split(';').map((part) => part.trim());
  const attributes = new Map(
    parts.map((part) => {
      const index = part.indexOf('=');
      return index === -1
        ? [part.toLowerCase(), '']
        : [part.slice(0, index).toLowerCase(), part.slice(index + 1)];
    }),
  );
  return { name: pair!.slice(0, pair!.indexOf('=')), attributes };
}

/**
 * In production (Secure cookies) every cookie set for the whole host (Path=/) carries the `__Host-`
 * prefix, so no other host of the domain can set or shadow it: the provider's session cookie and the
 * console's. The issuer has a path of its own (`/sso`): the cookies scoped below it keep their names.
 */
describe(`a production server's host-wide cookies are __Host- cookies (${testDatabaseKind})`, () => {
  let server: TestServer;
  const issuer = 'https://auth.example.test/sso';
  const issuerOrigin = new URL(issuer).origin;
  const proxied = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'auth.example.test' };
  const sameOrigin = { origin: issuerOrigin, 'sec-fetch-site': 'same-origin' };

  before(async () => {
    server = await startServer({
      mode: 'production',
      issuer,
      secretKey: 'a production secret key of at least 32 chars',
      trustProxy: true,
    });
  });
  after(async () => server.close());

  /** Fetches an issuer URL as a TLS-terminating proxy forwards it, following redirects on the issuer. */
  async function visit(browser: Browser, url: string, init: RequestInit = {}): Promise<Response> {
    let response = await browser.fetch(url.replace(issuerOrigin, server.origin), {
      ...init,
      headers: { ...proxied, ...(init.headers as Record<string, string>) },
    });
    for (let hop = 0; hop < 10 && response.status >= 300 && response.status < 400; hop += 1) {
      const location = new URL(response.headers.get('location')!, url).href;
      if (!location.startsWith(issuerOrigin)) break;
      url = location;
      response = await browser.fetch(url.replace(issuerOrigin, server.origin), { headers: proxied });
    }
    return response;
  }

  const post = (fields: Record<string, string>): RequestInit => ({
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...sameOrigin },
    body: new URLSearchParams(fields).toString(),
  });

  /** A silent authorization at the application: its code, or its error. */
  async function silently(browser: Browser, clientId: string): Promise<URLSearchParams> {
    const response = await visit(
      browser,
      authorizeUrl(
        { issuer, origin: issuerOrigin },
        {
          client_id: clientId,
          redirect_uri: REDIRECT_URI,
          response_type: 'code',
          scope: 'openid',
          prompt: 'none',
          code_challenge: pkcePair().challenge,
          code_challenge_method: 'S256',
        },
      ),
    );
    assert.equal(response.status, 303);
    return new URL(response.headers.get('location')!).searchParams;
  }

  it('signs in to the console, uses it and signs out with __Host- cookies: Path=/, Secure, no Domain', async () => {
    const { clientId } = await seedApp(server, { skipAuthorization: true });
    const user = await seedUser(server);
    const browser = new Browser();

    const loginPage = await visit(browser, `${issuerOrigin}/account/sign-in?return=%2Faccount`);
    assert.equal(loginPage.status, 200);
    const login = await loginPage.text();
    const callback = await visit(
      browser,
      formAction(login, issuerOrigin),
      post({ csrf_token: formField(login, 'csrf_token'), username: user.username, password: PASSWORD }),
    );
    assert.equal(callback.status, 200);
    assert.match(await callback.text(), /http-equiv="refresh"/, 'the console callback page');

    const account = await visit(browser, `${issuerOrigin}/account`);
    assert.equal(account.status, 200, 'the console reads its cookie and the provider session');
    const accountPage = await account.text();
    assert.match(accountPage, new RegExp(user.username));
    assert.ok(
      (await silently(browser, clientId)).get('code'),
      'the provider session signs in the application',
    );

    const out = await visit(
      browser,
      `${issuerOrigin}/account/sign-out`,
      post({ csrf_token: formField(accountPage, 'csrf_token') }),
    );
    assert.ok(consoleCookieForgotten(browser), 'the sign-out forgets the console cookie');
    assert.equal(out.status, 200, 'the logout page');
    const logoutPage = await out.text();
    const done = await visit(
      browser,
      formAction(logoutPage, issuerOrigin),
      post({ xsrf: formField(logoutPage, 'xsrf'), logout: 'yes' }),
    );
    assert.equal(done.status, 200, 'the landing page');
    assert.equal((await silently(browser, clientId)).get('error'), 'login_required', 'the session is gone');
    const again = await visit(browser, `${issuerOrigin}/account`);
    assert.match(await again.text(), /name="password"/, 'the console asks for a sign-in again');

    const cookies = browser.setCookieLines.map(parseSetCookie);
    const names = new Set(cookies.map((cookie) => cookie.name));
    for (const name of [
      '__Host-_session',
      '__Host-_session.sig',
      '__Host-_aa_oidc_console',
      '__Host-_aa_oidc_console.sig',
      '__Host-_aa_oidc_console_flow',
    ]) {
      assert.ok(names.has(name), `${name} among ${[...names].join(', ')}`);
    }
    for (const { name, attributes } of cookies) {
      assert.ok(attributes.has('secure'), `${name} is Secure`);
      assert.ok(!attributes.has('domain'), `${name} has no Domain`);
      const hostWide = attributes.get('path') === '/';
      assert.equal(name.startsWith('__Host-'), hostWide, `${name}: __Host- exactly when Path=/`);
      if (!hostWide) assert.match(attributes.get('path')!, /^\/sso\//, `${name} is scoped below the issuer`);
    }
    assert.ok(names.has('_interaction'), 'the interaction cookie, scoped to its interaction, keeps its name');
    assert.ok(
      names.has('_aa_oidc_console_sign_out'),
      'the sign-out note, scoped to the logout, keeps its name',
    );
  });
});
