import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { brandingFrom, contrastRatio } from '../../src/http/pages/branding.ts';
import { escapeHtml } from '../../src/http/pages/layout.ts';
import { consoleGet, consoleSignIn } from '../helpers/console.ts';
import { testDatabaseKind } from '../helpers/database.ts';
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
  signIn,
  type SignInOptions,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

const BRANDING = {
  name: 'Goon <Fleet> & Co',
  logoUrl: 'https://static.example.org/goon-logo.png',
  accentColor: '#ffcc00',
  supportUrl: 'https://help.example.org/auth',
};

describe('branding colours', () => {
  it('puts black text on a light accent and white text on a dark one, and keeps links readable', () => {
    const light = brandingFrom({ branding: { name: 'x', accentColor: '#fc0' } });
    assert.equal(light.accentColor, '#ffcc00');
    assert.equal(light.accentTextColor, '#000000');
    assert.ok(contrastRatio(light.linkColor, '#ffffff') >= 4.5, 'a yellow accent is not used for link text');
    const dark = brandingFrom({ branding: { name: 'x', accentColor: '#1a237e' } });
    assert.equal(dark.accentTextColor, '#ffffff');
    assert.equal(dark.linkColor, '#1a237e');
  });

  it('edges a button filled with a light accent in the text colour, so that it stands out from the page', () => {
    for (const accentColor of ['#fc0', '#ffffff', '#e0e0e0']) {
      const light = brandingFrom({ branding: { name: 'x', accentColor } });
      assert.equal(light.accentEdgeColor, '#000000', accentColor);
      assert.ok(contrastRatio(light.accentEdgeColor, '#ffffff') >= 3, accentColor);
    }
    const dark = brandingFrom({ branding: { name: 'x', accentColor: '#1a237e' } });
    assert.equal(dark.accentEdgeColor, '#1a237e');
  });

  it('refuses a colour that is not #rgb or #rrggbb, naming the key', () => {
    assert.throws(
      () =>
        loadConfig({
          env: { AA_OIDC_BRANDING_ACCENT_COLOR: 'red;}body{display:none' },
          createDevSecretKey: false,
        }),
      /AA_OIDC_BRANDING_ACCENT_COLOR: expected a colour like #2459d4/,
    );
  });

  it('refuses an http logo in production', () => {
    assert.throws(
      () =>
        loadConfig({
          env: {
            AA_OIDC_MODE: 'production',
            AA_OIDC_ISSUER: 'https://auth.example.org/o',
            AA_OIDC_SECRET_KEY: 'x'.repeat(40),
            AA_OIDC_BRANDING_LOGO_URL: 'http://static.example.org/logo.png',
          },
        }),
      /AA_OIDC_BRANDING_LOGO_URL: production mode requires an https:\/\/ logo/,
    );
  });
});

describe(`the community's look on every provider page (${testDatabaseKind})`, () => {
  let server: TestServer;
  let app: { clientId: string };
  let user: { id: number; username: string };

  before(async () => {
    server = await startServer({ branding: BRANDING });
    app = await seedApp(server, { name: 'Wiki', logoUrl: 'https://wiki.example.org/logo.svg' });
    user = await seedUser(server);
  });
  after(async () => server.close());

  const authorize = (extra: Record<string, string> = {}) =>
    authorizeUrl(server, {
      client_id: app.clientId,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      scope: 'openid profile',
      code_challenge: pkcePair().challenge,
      code_challenge_method: 'S256',
      ...extra,
    });

  function assertBranded(body: string, title: string): void {
    const fullTitle = title === BRANDING.name ? escapeHtml(title) : `${title} · Goon &lt;Fleet&gt; &amp; Co`;
    assert.ok(body.includes(`<title>${fullTitle}</title>`), `title ${title}`);
    assert.match(body, /<header class="site">[\s\S]*<span\s*>Goon &lt;Fleet&gt; &amp; Co<\/span/);
    assert.match(body, /<img src="https:\/\/static\.example\.org\/goon-logo\.png" alt="" \/>/);
    assert.match(body, /--accent:#ffcc00;--accent-text:#000000/);
    assert.match(body, /<a href="https:\/\/help\.example\.org\/auth">Help and support<\/a>/);
  }

  it('brands the login page', async () => {
    const response = await new Browser().follow(authorize(), server.origin);
    assert.equal(response.status, 200);
    assertBranded(await response.text(), 'Sign in');
  });

  it("shows the application's logo on the consent page", async () => {
    const seen: NonNullable<SignInOptions['seen']> = [];
    await signIn(new Browser(), server, authorize(), { username: user.username, password: PASSWORD, seen });
    const consent = seen.find((step) => step.kind === 'consent');
    assert.ok(consent, 'a consent page');
    assertBranded(consent.body, 'Allow access');
    assert.match(
      consent.body,
      /<img class="logo" src="https:\/\/wiki\.example\.org\/logo\.svg" alt="Wiki logo" \/>/,
    );
  });

  it('shows the request id on an error page, the one in X-Request-Id', async () => {
    const response = await new Browser().follow(
      authorizeUrl(server, { client_id: 'no-such-client', response_type: 'code', scope: 'openid' }),
      server.origin,
    );
    assert.equal(response.status, 400);
    const body = await response.text();
    assertBranded(body, 'Sign-in error');
    const requestId = response.headers.get('x-request-id');
    assert.ok(requestId);
    assert.ok(body.includes(`<code id="request-id">${requestId}</code>`), 'the request id on the page');
  });

  it('brands the landing page, the account page and the admin pages: name, logo, colour and help link', async () => {
    const operator = await seedUser(server, { superuser: true });
    const browser = await consoleSignIn(server, operator.username, { returnTo: '/admin' });
    const landing = await consoleGet(browser, `${server.origin}/`);
    assert.equal(landing.status, 200);
    assertBranded(landing.body, 'Goon <Fleet> & Co');
    for (const [path, title] of [
      ['/account', 'Your account'],
      ['/admin', 'Administration'],
      ['/admin/apps', 'Applications'],
      ['/admin/users', 'Users'],
      ['/admin/keys', 'Signing keys'],
    ] as const) {
      const response = await consoleGet(browser, `${server.origin}${path}`);
      assert.equal(response.status, 200, path);
      assertBranded(response.body, title);
    }
  });

  it("titles the landing page with the community's name once", async () => {
    const response = await fetch(`${server.origin}/`);
    assert.equal(response.status, 200);
    assert.match(await response.text(), /<title>Goon &lt;Fleet&gt; &amp; Co<\/title>/);
  });

  it('asks about the community by name in the logout question', async () => {
    const browser = new Browser();
    await signIn(browser, server, authorize(), { username: user.username, password: PASSWORD });
    const response = await browser.follow(`${server.issuer}/logout/`, server.origin);
    assert.equal(response.status, 200);
    const body = await response.text();
    assertBranded(body, 'Sign out');
    assert.match(body, /Do you want to sign out of\s*<strong>Goon &lt;Fleet&gt; &amp; Co<\/strong/);
    const question = /<p>\s*Do you want to sign out of[\s\S]*?<\/p>/.exec(body)?.[0] ?? '';
    assert.doesNotMatch(question, /127\.0\.0\.1/, 'the host name is not the question');
    // The form still works: the provider's own action and xsrf field.
    const form = new URLSearchParams({ xsrf: formField(body, 'xsrf'), logout: 'yes' });
    const done = await browser.follow(formAction(body, server.origin), server.origin, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
    });
    assert.equal(done.status, 200);
    assertBranded(await done.text(), 'Signed out');
  });
});
