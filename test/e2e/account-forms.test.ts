import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { currentCode } from '../../src/two-factor/totp.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { chromiumUnavailable, launchChromium } from '../helpers/e2e.ts';
import { PASSWORD, seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';

// Skipped, with the reason shown by the runner, when Chromium is missing (a failure under AA_OIDC_REQUIRE_E2E=1).
const skip = chromiumUnavailable();

/** How long the server takes to answer a form here: a slow connection, where a second click is easy. */
const SLOW_ANSWER_MS = 1500;

/**
 * The account page's forms in Chromium as a member meets them: a refused form brings its error into
 * view and the focus to it, wherever on the page the form is; a form clicked twice while its answer
 * is on its way is sent once, so the page shown is the answer to what was done.
 */
describe(`the account page's forms in Chromium (${testDatabaseKind})`, { skip }, () => {
  let server: TestServer;
  let browser: Browser;

  before(async () => {
    server = await startServer(
      {},
      {
        beforeListen: (app) =>
          app.koa.middleware.unshift(async (ctx, next) => {
            await next();
            if (ctx.method === 'POST' && (ctx.path.startsWith('/account/') || ctx.path.endsWith('/otp')))
              await new Promise((resolve) => setTimeout(resolve, SLOW_ANSWER_MS));
          }),
      },
    );
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  async function signedIn(username: string): Promise<Page> {
    const page = await (await browser.newContext({ viewport: { width: 800, height: 600 } })).newPage();
    await page.goto(`${server.origin}/account`);
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${server.origin}/account`);
    return page;
  }

  /** Two clicks on a button, the second while the first one's answer is still on its way. */
  async function clickTwice(page: Page, name: string): Promise<void> {
    const button = page.getByRole('button', { name });
    await button.scrollIntoViewIfNeeded();
    const box = (await button.boundingBox())!;
    await page.mouse.click(box.x + 5, box.y + 5);
    await page.waitForTimeout(SLOW_ANSWER_MS / 2);
    await page.mouse.click(box.x + 5, box.y + 5);
    await page.waitForLoadState('load');
    await page.waitForTimeout(SLOW_ANSWER_MS * 2);
  }

  it('focuses the field a refused password change is about, in view below the applications and sessions', async () => {
    const member = await seedUser(server);
    // Enough applications for the password section to start below the first screen.
    for (let index = 0; index < 6; index += 1) {
      const app = await seedApp(server, { name: `Application ${index}`, skipAuthorization: true });
      const grant = new (server.app.oidc.current().Grant)({
        accountId: String(member.id),
        clientId: app.clientId,
      });
      grant.addOIDCScope('openid profile');
      await grant.save();
    }
    const page = await signedIn(member.username);
    await page.getByLabel('Current password').fill('not my password');
    await page.getByLabel('New password', { exact: true }).fill('a brand new passphrase');
    await page.getByLabel('New password again').fill('a brand new passphrase');
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.locator('#current_password-error').waitFor();
    const error = (await page.locator('#current_password-error').boundingBox())!;
    const seen = {
      focused: await page.evaluate('document.activeElement && document.activeElement.id'),
      describedBy: await page.locator(':focus').getAttribute('aria-describedby'),
      errorInView: error.y >= 0 && error.y + error.height <= page.viewportSize()!.height,
    };
    assert.deepEqual(seen, {
      focused: 'current_password',
      describedBy: 'current_password-error',
      errorInView: true,
    });
  });

  it('shows the recovery codes when "Turn on" is clicked twice', async () => {
    const member = await seedUser(server);
    const page = await signedIn(member.username);
    await page.getByRole('button', { name: 'Set up two-factor sign-in' }).click();
    const secret = (await page.locator('#totp-secret').textContent())!.replaceAll(' ', '');
    await page.getByLabel('Code from your app').fill(currentCode(secret));
    await clickTwice(page, 'Turn on');
    assert.equal(await page.locator('h1').textContent(), 'Two-factor sign-in is on');
    const shown = await page.locator('#recovery-codes code').allTextContents();
    assert.equal(shown.length, 10, 'the recovery codes are on the page');
    // They are the ones that work: the page shows the answer to the one form sent.
    const status = await server.app.twoFactor.status(member.id);
    assert.equal(status.recoveryCodesLeft, 10);
    assert.equal((await server.app.twoFactor.verify(member.id, shown[0]!)).ok, true);
  });

  it('signs in when "Continue" of the two-factor step is clicked twice', async () => {
    const member = await seedUser(server);
    await server.app.twoFactor.beginEnrolment(member);
    const { secret, id } = (await server.app.twoFactor.pendingEnrolment(member))!;
    await server.app.twoFactor.confirmEnrolment(member, currentCode(secret, Date.now() - 30_000), id);
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${server.origin}/account`);
    await page.getByLabel('Username').fill(member.username);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByLabel('Six-digit code from your authenticator app').fill(currentCode(secret));
    await clickTwice(page, 'Continue');
    await page.waitForURL(`${server.origin}/account`);
    assert.equal(await page.locator('h1').textContent(), 'Your account');
  });

  it('says "Password changed" when "Change password" is clicked twice', async () => {
    const member = await seedUser(server);
    const page = await signedIn(member.username);
    await page.getByLabel('Current password').fill(PASSWORD);
    await page.getByLabel('New password', { exact: true }).fill('a brand new passphrase');
    await page.getByLabel('New password again').fill('a brand new passphrase');
    await clickTwice(page, 'Change password');
    assert.equal(await page.locator('h1').textContent(), 'Your account');
    assert.deepEqual(await page.locator('[role=alert]').allTextContents(), [], 'no error');
    assert.match(
      await page
        .locator('[role=status]')
        .allTextContents()
        .then((all) => all.join(' ')),
      /Password changed/,
    );
  });
});
