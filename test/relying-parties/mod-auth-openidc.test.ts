import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { testDatabaseKind } from '../helpers/database.ts';
import { apacheUnavailable, startApache, type RunningApache } from '../helpers/apache.ts';
import { chromiumUnavailable, launchChromium } from '../helpers/e2e.ts';
import {
  PASSWORD,
  seedApp,
  seedUser,
  startOnFreePort,
  startServer,
  type TestServer,
} from '../helpers/server.ts';
import { logoutJobs } from '../logout/jobs.ts';

/**
 * Apache's mod_auth_openidc (Debian's libapache2-mod-auth-openidc), set up the way the Python
 * plugin's documentation sets up a relying party (`openid profile email`, here with
 * `offline_access` too, as sites that refresh ask), protecting a path: Chromium signs in through
 * aa-oidc's login and consent pages, the protected page shows the claims the module received,
 * `Require claim groups:…` admits by group and by state name and refuses otherwise, the
 * module refreshes its access token (sending its scope again), the module's logout URL performs
 * RP-initiated logout, and deactivating the user delivers a back-channel logout that ends the
 * module's session.
 */
const skip = chromiumUnavailable() || apacheUnavailable(['auth_openidc']);

const PROTECTED_PAGE = `<!DOCTYPE html>
<html><head><title>Protected</title></head><body>
<h1>Protected</h1>
<p id="sub"><!--#echo var="OIDC_CLAIM_sub" --></p>
<p id="groups"><!--#echo var="OIDC_CLAIM_groups" --></p>
<p id="email"><!--#echo var="OIDC_CLAIM_email" --></p>
<p id="preferred_username"><!--#echo var="OIDC_CLAIM_preferred_username" --></p>
</body></html>
`;

describe(`Apache mod_auth_openidc as a relying party (${testDatabaseKind})`, { skip }, () => {
  let server: TestServer;
  let apache: RunningApache;
  let browser: Browser;
  let user: { id: number; username: string };
  let app: { clientId: string; clientSecret: string | null };
  let origin: string;

  before(async () => {
    // Back-channel deliveries go to Apache on 127.0.0.1: private targets allowed, for this test only.
    server = await startServer({ logout: { allowPrivateTargets: true } });
    await server.app.directoryAdmin.createState('Member', 100, true);
    await server.app.directoryAdmin.createGroup('Fleet', false);
    user = await seedUser(server, { state: 'Member', groups: ['Fleet'], oidcAccess: false });
    // The application names Apache's port: registered again for each port tried.
    apache = await startOnFreePort(async (port) => {
      origin = `http://127.0.0.1:${port}`;
      app = await seedApp(server, {
        name: 'Apache wiki',
        redirectUris: [`${origin}/protected/redirect_uri`],
        postLogoutRedirectUris: [`${origin}/signed-out.html`],
        backchannelLogoutUri: `${origin}/protected/redirect_uri?logout=backchannel`,
      });
      return startApache(
        port,
        ['auth_openidc'],
        `LogLevel warn auth_openidc:info
OIDCProviderMetadataURL ${server.issuer}/.well-known/openid-configuration
OIDCClientID ${app.clientId}
OIDCClientSecret ${app.clientSecret}
OIDCRedirectURI ${origin}/protected/redirect_uri
OIDCCryptoPassphrase ${randomBytes(16).toString('hex')}
OIDCScope "openid profile email offline_access"
OIDCPKCEMethod S256
OIDCProviderTokenEndpointAuth client_secret_basic
OIDCRefreshAccessTokenBeforeExpiry 30 logout_on_error
OIDCInfoHook access_token refresh_token
OIDCDefaultLoggedOutURL ${origin}/signed-out.html
AddOutputFilter INCLUDES .shtml
AddType text/html .shtml
<Location /protected>
  AuthType openid-connect
  Require valid-user
  Options +Includes
</Location>
<Location /protected/fleet>
  Require claim groups:Fleet
</Location>
<Location /protected/members>
  Require claim groups:Member
</Location>
<Location /protected/directors>
  Require claim groups:Directors
</Location>`,
        {
          'htdocs/protected/claims.shtml': PROTECTED_PAGE,
          'htdocs/protected/fleet/claims.shtml': PROTECTED_PAGE,
          'htdocs/protected/members/claims.shtml': PROTECTED_PAGE,
          'htdocs/protected/directors/claims.shtml': PROTECTED_PAGE,
          'htdocs/signed-out.html':
            '<!DOCTYPE html><html><body><h1>Signed out of the wiki</h1></body></html>\n',
        },
      );
    });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    if (apache) {
      const log = await apache.errorLog();
      if (/\[error\]|\[crit\]|\[emerg\]/.test(log)) console.log(`Apache error log:\n${log}`);
      await apache.stop();
    }
    await server?.close();
  });

  async function signIn(page: Page, consent: boolean, who = user): Promise<void> {
    await page.goto(`${origin}/protected/claims.shtml`);
    assert.match(page.url(), new RegExp(`^${server.issuer}/interaction/`), 'sent to aa-oidc');
    assert.equal(await page.locator('h1').textContent(), 'Sign in');
    await page.getByLabel('Username').fill(who.username);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    if (consent) {
      await page.locator('h1', { hasText: 'Allow access?' }).waitFor();
      assert.match((await page.locator('main').textContent()) ?? '', /Apache wiki/);
      await page.getByRole('button', { name: 'Allow' }).click();
    }
    await page.waitForURL(`${origin}/protected/claims.shtml`);
  }

  const text = async (page: Page, id: string) => ((await page.locator(`#${id}`).textContent()) ?? '').trim();

  it('signs in through the login and consent pages and shows the claims the module received', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await signIn(page, true);
      assert.equal(await page.locator('h1').textContent(), 'Protected');
      assert.equal(await text(page, 'sub'), String(user.id));
      assert.equal(await text(page, 'groups'), 'Fleet,Member', 'groups under profile, the state name last');
      assert.equal(await text(page, 'email'), `${user.username}@example.org`);
      assert.equal(await text(page, 'preferred_username'), user.username);

      // docs/apps/mod_auth_openidc.md's role rule, `Require claim groups:<name>`: a group the user
      // is in and the state name admit, a group the user is not in refuses.
      for (const admitted of ['fleet', 'members']) {
        const response = await context.request.get(`${origin}/protected/${admitted}/claims.shtml`, {
          maxRedirects: 0,
        });
        assert.equal(response.status(), 200, `Require claim groups at /protected/${admitted}`);
        assert.match(await response.text(), /<h1>Protected<\/h1>/);
      }
      const refused = await context.request.get(`${origin}/protected/directors/claims.shtml`, {
        maxRedirects: 0,
      });
      assert.ok(
        [401, 403].includes(refused.status()),
        `refused at /protected/directors: ${refused.status()}`,
      );
      assert.doesNotMatch(await refused.text(), /<h1>Protected<\/h1>/);

      // The module's own logout URL: RP-initiated logout at aa-oidc, confirmed, back to the wiki.
      await page.goto(
        `${origin}/protected/redirect_uri?${new URLSearchParams({ logout: `${origin}/signed-out.html` })}`,
      );
      assert.match(page.url(), new RegExp(`^${server.issuer}/logout`), 'the confirmation page of aa-oidc');
      await page.getByRole('button', { name: 'Yes, sign me out' }).click();
      await page.waitForURL(`${origin}/signed-out.html`);
      const jobs = await logoutJobs(server.app.database, { userId: user.id });
      assert.equal(jobs.length, 1);
      assert.equal(jobs[0]!.trigger, 'rp_initiated');
      assert.ok(jobs[0]!.sid, 'the logout carries the sid of the session');
      await server.app.logout.deliverDue();
      assert.equal((await logoutJobs(server.app.database, { userId: user.id }))[0]!.outcome, 'success');

      await page.goto(`${origin}/protected/claims.shtml`);
      assert.match(page.url(), new RegExp(`^${server.issuer}/interaction/`), 'signed out everywhere');
      assert.equal(await page.locator('h1').textContent(), 'Sign in');
    } finally {
      await context.close();
    }
  });

  it('refreshes its access token with the scope it was configured with, offline_access included', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      // A user of its own: the session it leaves would be one more for the back-channel test.
      const refresher = await seedUser(server, { state: 'Member' });
      await signIn(page, true, refresher);
      // The module's info hook; access_token_refresh_interval=0 makes it refresh at once, as
      // OIDCRefreshAccessTokenBeforeExpiry does once the access token is about to expire. It
      // sends `scope=openid profile email offline_access` with the refresh token, though the
      // authorization passed offline_access over (no prompt=consent).
      const info = async (query = '') => {
        const response = await context.request.get(`${origin}/protected/redirect_uri?info=json${query}`);
        assert.equal(response.status(), 200);
        return (await response.json()) as { access_token: string; refresh_token: string };
      };
      const before = await info();
      const after = await info('&access_token_refresh_interval=0');
      assert.ok(after.access_token !== before.access_token, `refreshed: ${await apache.errorLog()}`);
      assert.ok(after.refresh_token !== before.refresh_token, 'the refresh token rotated');
      const userinfo = await fetch(`${server.issuer}/userinfo/`, {
        headers: { authorization: `Bearer ${after.access_token}` },
      });
      assert.equal(userinfo.status, 200, 'the new access token is good');
      await page.goto(`${origin}/protected/claims.shtml`);
      assert.equal(await text(page, 'preferred_username'), refresher.username, 'the session goes on');
    } finally {
      await context.close();
    }
  });

  it('ends the module’s session by back-channel logout when the user is deactivated', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await signIn(page, true);
      assert.equal(await text(page, 'preferred_username'), user.username);
      const before = (await logoutJobs(server.app.database, { userId: user.id })).length;

      await server.app.directoryAdmin.deactivate({ id: user.id });
      const jobs = (await logoutJobs(server.app.database, { userId: user.id })).slice(before);
      assert.equal(jobs.length, 1);
      assert.equal(jobs[0]!.trigger, 'user_deactivated');
      assert.ok(jobs[0]!.sid, 'the logout token names the session the module keys by');
      await server.app.logout.deliverDue();
      const delivered = (await logoutJobs(server.app.database, { userId: user.id })).slice(before);
      assert.equal(delivered[0]!.outcome, 'success', await apache.errorLog());

      const response = await page.goto(`${origin}/protected/claims.shtml`);
      assert.match(
        page.url(),
        new RegExp(`^${server.issuer}/`),
        `the module sends the browser to aa-oidc again, not: ${await response?.text()}`,
      );
      assert.notEqual(await page.locator('h1').textContent(), 'Protected');
    } finally {
      await context.close();
    }
  });
});
