import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { testDatabaseKind } from '../helpers/database.ts';
import { chromiumUnavailable, launchChromium } from '../helpers/e2e.ts';
import {
  PASSWORD,
  seedApp,
  seedUser,
  startServer,
  storeNamesAsIs,
  type TestServer,
} from '../helpers/server.ts';

// Skipped, with the reason shown by the runner, when Chromium is missing (a failure under AA_OIDC_REQUIRE_E2E=1).
const skip = chromiumUnavailable();

/**
 * Whitelisted names a page cannot carry back as they are (from Alliance Auth, or stored before such
 * names were refused), sent by a real browser: it sends a control character as U+FFFD and a line
 * break as CR LF, whatever the page's value says.
 */
describe(
  `whitelisted names with a control character or a line break, in Chromium (${testDatabaseKind})`,
  { skip },
  () => {
    let server: TestServer;
    let browser: Browser;
    let operator: Page;
    const BELL = 'Fleet\u0007';
    const TWO_LINES = 'Two\nlines';
    const NEXT_LINE = 'Alpha\u0085';

    before(async () => {
      server = await startServer();
      // Spelt as the browser would send BELL: the page must not turn one into the other.
      await storeNamesAsIs(server, { groups: [BELL, 'Fleet\ufffd', TWO_LINES], states: [NEXT_LINE] });
      await seedUser(server, { username: 'operator', superuser: true });
      browser = await launchChromium();
      operator = await (await browser.newContext()).newPage();
      await operator.goto(`${server.origin}/admin`);
      await operator.getByLabel('Username').fill('operator');
      await operator.getByLabel('Password').fill(PASSWORD);
      await operator.getByRole('button', { name: 'Sign in' }).click();
      await operator.waitForURL(`${server.origin}/admin`);
    });
    after(async () => {
      await browser?.close();
      await server?.close();
    });

    it('saves an application whose whitelists hold such names with them unaltered', async () => {
      const whitelist = { states: [NEXT_LINE], groups: [BELL, TWO_LINES] };
      const { clientId } = await seedApp(server, { name: 'Board', ...whitelist });
      await operator.goto(`${server.origin}/admin/apps/${clientId}/edit`);
      await operator.getByLabel('Name', { exact: true }).fill('Board (renamed)');
      const [saved] = await Promise.all([
        operator.waitForResponse((response) => response.request().method() === 'POST'),
        operator.getByRole('button', { name: 'Save changes' }).click(),
      ]);
      assert.equal(saved.status(), 303, (await operator.locator('.field-error').allTextContents()).join(' '));
      const app = (await server.app.applications.findByClientId(clientId))!;
      assert.equal(app.name, 'Board (renamed)');
      assert.deepEqual(app.states, whitelist.states);
      assert.deepEqual(app.groups, whitelist.groups);
    });
  },
);
