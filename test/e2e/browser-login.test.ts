import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { seedDemo, type DemoSeedResult } from '../../src/demo/seed.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { chromiumUnavailable, launchChromium } from '../helpers/e2e.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

// Skipped, with the reason shown by the runner, when Chromium is missing (a failure under AA_OIDC_REQUIRE_E2E=1).
const skip = chromiumUnavailable();

function passwordOf(seeded: DemoSeedResult, username: string): string {
  const password = seeded.users.find((user) => user.username === username)?.password;
  assert.ok(password, `a password for ${username}`);
  return password;
}

describe(`headless Chromium through the demo relying party (${testDatabaseKind})`, { skip }, () => {
  let server: TestServer;
  let seeded: DemoSeedResult;
  let browser: Browser;

  before(async () => {
    // A real server on 127.0.0.1 (an ephemeral port, which Chromium accepts), its issuer on that port.
    server = await startServer();
    seeded = await seedDemo(server.app);
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('logs in, consents and lands on the demo relying party showing the claims', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const member = seeded.users.find((user) => user.username === 'demo-member')!;
      assert.equal(seeded.loginUrl, `${server.origin}/demo/`);

      const loginResponse = await page.goto(seeded.loginUrl);
      assert.ok(loginResponse, 'a response for the login page');
      assert.equal(loginResponse.status(), 200);
      assert.match(page.url(), new RegExp(`^${server.issuer}/interaction/`), 'redirected to the provider');
      assert.equal(loginResponse.headers()['x-frame-options'], 'DENY');
      assert.match(loginResponse.headers()['content-security-policy'] ?? '', /frame-ancestors 'none'/);
      assert.equal(await page.locator('h1').textContent(), 'Sign in');

      await page.getByLabel('Username').fill('demo-member');
      await page.getByLabel('Password').fill(passwordOf(seeded, 'demo-member'));
      await page.getByRole('button', { name: 'Sign in' }).click();
      // The next page, whatever it is (a failure then shows its heading and text, not a timeout).
      await page.locator('h1', { hasNotText: /^Sign in$/ }).waitFor();
      const consent = (await page.locator('main').textContent()) ?? '';
      assert.equal(
        await page.locator('h1').textContent(),
        'Allow access?',
        `the consent page, not: ${consent}`,
      );
      assert.match(consent, /aa-oidc demo relying party/);
      await page.getByRole('button', { name: 'Allow' }).click();

      await page.waitForURL(`${server.origin}/demo/callback?**`);
      assert.equal(await page.locator('h1').textContent(), `Signed in as ${member.characterName}`);
      const idToken = (await page.locator('#id-token-claims').textContent()) ?? '';
      const userinfo = (await page.locator('#userinfo-claims').textContent()) ?? '';
      const user = await server.app.directoryAdmin.findUserByUsername('demo-member');
      assert.ok(user);
      for (const claims of [idToken, userinfo]) assert.match(claims, new RegExp(`sub\\s*${user.id}\\b`));
      assert.match(idToken, new RegExp(`iss\\s*${server.issuer}`));
      assert.match(idToken, /aud\s*aa-oidc-demo/);
      assert.match(userinfo, /name\s*Kaelen Voss/);
      assert.match(userinfo, /email\s*demo-member@example\.org/);
      assert.match(userinfo, /groups\s*\[\s*"Fleet Commanders",\s*"Member"\s*\]/);
      assert.match(userinfo, /eve_corporation_ticker\s*OBFL/);
      assert.match((await page.locator('#verified').textContent()) ?? '', /signature/);

      // The flow cookie is single-use: reloading the callback does not sign in twice.
      const again = await page.reload();
      assert.equal(again?.status(), 400);
      assert.match((await page.locator('h1').textContent()) ?? '', /No sign-in in progress/);
    } finally {
      await context.close();
    }
  });

  it('shows a guest (state without access) the 403 access-denied page, not the claims', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(seeded.loginUrl);
      await page.getByLabel('Username').fill('demo-guest');
      await page.getByLabel('Password').fill(passwordOf(seeded, 'demo-guest'));
      const [answer] = await Promise.all([
        page.waitForResponse(
          (response) =>
            response.request().isNavigationRequest() &&
            response.status() !== 302 &&
            response.status() !== 303,
        ),
        page.getByRole('button', { name: 'Sign in' }).click(),
      ]);
      await page.waitForLoadState();
      assert.equal(await page.locator('h1').textContent(), 'Access denied');
      assert.equal(answer.status(), 403);
      assert.equal(answer.headers()['x-frame-options'], 'DENY');
      assert.doesNotMatch(await page.content(), /Mira Solenne/);
    } finally {
      await context.close();
    }
  });
});
