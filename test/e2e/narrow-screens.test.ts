import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { testDatabaseKind } from '../helpers/database.ts';
import { chromiumUnavailable, launchChromium } from '../helpers/e2e.ts';
import {
  PASSWORD,
  pkcePair,
  REDIRECT_URI,
  seedApp,
  seedUser,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

// Skipped, with the reason shown by the runner, when Chromium is missing (a failure under AA_OIDC_REQUIRE_E2E=1).
const skip = chromiumUnavailable();

/**
 * The main pages on a 375 px wide phone: nothing wider than the screen but the tables, which scroll
 * inside their own box. With AA_OIDC_SCREENSHOTS=DIR the same pages are also photographed at 1024 px
 * (how docs/screenshots/ is made: `AA_OIDC_SCREENSHOTS=docs/screenshots node --test …`).
 */
const screenshots = process.env.AA_OIDC_SCREENSHOTS;

describe(`pages at 375 px (${testDatabaseKind})`, { skip }, () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let memberId: number;
  let wikiId: string;
  let forumId: string;
  let longNameId: string;
  let longUsernameId: number;
  let directorId: number;

  before(async () => {
    server = await startServer({ branding: { name: 'Northern Coalition', accentColor: '#0b6e4f' } });
    await server.app.directoryAdmin.createState('Member', 100, true);
    await server.app.directoryAdmin.createGroup('Fleet Commanders');
    wikiId = (await seedApp(server, { name: 'Alliance Wiki', groups: ['Fleet Commanders'] })).clientId;
    forumId = (await seedApp(server, { name: 'Forum', states: ['Member'] })).clientId;
    // Names with no space to break at: they wrap rather than widen the page.
    longNameId = (await seedApp(server, { name: 'X'.repeat(100) })).clientId;
    longUsernameId = (await seedUser(server, { username: 'u'.repeat(150) })).id;
    directorId = (await seedUser(server, { username: 'director', superuser: true, state: 'Member' })).id;
    const grant = new (server.app.oidc.current().Grant)({
      accountId: String(directorId),
      clientId: longNameId,
    });
    grant.addOIDCScope('openid profile');
    await grant.save();
    memberId = (
      await seedUser(server, {
        username: 'kaelen.voss',
        state: 'Member',
        groups: ['Fleet Commanders'],
        characterId: 90000001,
        characterName: 'Kaelen Voss',
        corporationName: 'Obsidian Frontier',
        corporationTicker: 'OBFL',
      })
    ).id;
    browser = await launchChromium();
    page = await (await browser.newContext({ viewport: { width: 375, height: 812 } })).newPage();
    // The portrait comes from EVE's image server: not fetched here (loopback only).
    await page.route(/^https:\/\//, (route) => route.abort());
    if (screenshots) mkdirSync(screenshots, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  async function check(path: string, name: string): Promise<void> {
    await page.setViewportSize({ width: 375, height: 812 });
    const response = await page.goto(`${server.origin}${path}`);
    assert.equal(response?.status(), 200, path);
    const overflow = await page.evaluate(
      '[...document.querySelectorAll("body *")].filter((e) => !e.closest(".table-wrap") && e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).map((e) => e.tagName + "." + e.className).slice(0, 5)',
    );
    assert.deepEqual(overflow, [], `${path}: nothing but a table is wider than 375 px`);
    const scroll = (await page.evaluate('document.documentElement.scrollWidth')) as number;
    assert.ok(scroll <= 376, `${path}: the page scrolls sideways (${scroll} px)`);
    if (screenshots) {
      await page.setViewportSize({ width: 1024, height: 700 });
      await page.screenshot({ path: join(screenshots, `${name}.png`) });
    }
  }

  it('fits the login page, the account page, the admin pages and the consent and logout questions on a phone', async () => {
    const login = await page.goto(`${server.origin}/account`);
    assert.equal(login?.status(), 200);
    if (screenshots) {
      await page.setViewportSize({ width: 1024, height: 700 });
      await page.screenshot({ path: join(screenshots, 'login.png') });
      await page.setViewportSize({ width: 375, height: 812 });
    }
    await page.getByLabel('Username').fill('director');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${server.origin}/account`);
    await check('/account', 'account');
    await check('/account/sign-out-everywhere', 'account-sign-out-everywhere');
    await check('/admin', 'admin-dashboard');
    await check('/admin/apps', 'admin-applications');
    await check(`/admin/apps/${wikiId}`, 'admin-application');
    await check('/admin/users', 'admin-users');
    await check(`/admin/users/${memberId}`, 'admin-user');
    await check(`/admin/apps/${longNameId}`, 'admin-application-long-name');
    await check(`/admin/users/${longUsernameId}`, 'admin-user-long-name');
    await check(`/admin/users/${memberId}/remove-group?group=Fleet+Commanders`, 'admin-user-impact');
    await check('/admin/states', 'admin-states');
    await check('/admin/groups', 'admin-groups');
    await check('/admin/keys', 'admin-keys');
    await check('/admin/audit', 'admin-audit');
    await check('/admin/deliveries', 'admin-deliveries');
    await check('/admin/code-reuse', 'admin-code-reuse');
    await check('/admin/apps/new', 'admin-application-new');
    await check(`/admin/apps/${wikiId}/edit`, 'admin-application-edit');
    await check('/admin/keys/rotate', 'admin-keys-rotate');

    // The provider's own pages: the consent question and the logout question.
    const issuerPath = new URL(server.issuer).pathname;
    const params = new URLSearchParams({
      client_id: forumId,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      scope: 'openid profile email',
      state: 'xyz',
      code_challenge: pkcePair().challenge,
      code_challenge_method: 'S256',
    });
    await check(`${issuerPath}/authorize/?${params.toString()}`, 'consent');
    await check(`${issuerPath}/logout/`, 'logout');
  });

  it('lays the filters of a listing out in rows of two whose controls line up, on a phone', async () => {
    // Signed in by the first test.
    await page.setViewportSize({ width: 375, height: 812 });
    for (const path of [
      '/admin/users',
      '/admin/apps',
      '/admin/deliveries',
      '/admin/code-reuse',
      '/admin/audit',
    ]) {
      const response = await page.goto(`${server.origin}${path}`);
      assert.equal(response?.status(), 200, path);
      // The top of each filter control (input, select), and each row's: a row of two shares one top.
      const tops = (await page.evaluate(
        '[...document.querySelectorAll("form.filters input, form.filters select")].map((e) => Math.round(e.getBoundingClientRect().top))',
      )) as number[];
      assert.ok(tops.length >= 4, `${path}: the filters are found`);
      assert.equal(
        new Set(tops).size,
        Math.ceil(tops.length / 2),
        `${path}: filter rows of two (tops ${tops.join(' ')})`,
      );
      const button = await page.locator('form.filters button[type=submit]').boundingBox();
      assert.ok(
        button && button.x >= 0 && button.x + button.width <= 375,
        `${path}: its button is on the screen`,
      );
    }
  });

  it('keeps a key id legible on a phone: at most four lines, not a column of letters', async () => {
    await page.setViewportSize({ width: 375, height: 812 });
    const response = await page.goto(`${server.origin}/admin/keys`);
    assert.equal(response?.status(), 200);
    const lines = (await page.evaluate(
      '[...document.querySelectorAll("td code")].map((e) => Math.round(e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight)))',
    )) as number[];
    assert.ok(lines.length >= 1, 'the key list shows a kid');
    // A kid is 43 characters: 16 a line make three lines.
    assert.deepEqual(
      lines.filter((count) => count > 4),
      [],
      `no kid takes more than four lines (${lines.join(' ')})`,
    );
  });

  it('shows every column of the lists on a 1280 px screen, however long a name without spaces', async () => {
    // Signed in by the test above.
    await page.setViewportSize({ width: 1280, height: 800 });
    for (const path of [
      '/admin/apps',
      '/admin/users',
      `/admin/users/${directorId}`,
      '/admin/keys',
      '/admin/audit',
    ]) {
      const response = await page.goto(`${server.origin}${path}`);
      assert.equal(response?.status(), 200, path);
      const wide = await page.evaluate(
        '[...document.querySelectorAll(".table-wrap")].filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => e.scrollWidth)',
      );
      assert.deepEqual(wide, [], `${path}: no table scrolls sideways at 1280 px`);
    }
  });
});
