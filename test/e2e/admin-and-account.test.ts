import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { currentCode } from '../../src/two-factor/totp.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { chromiumUnavailable, launchChromium } from '../helpers/e2e.ts';
import { tokenRequest } from '../helpers/flows.ts';
import { PASSWORD, pkcePair, seedUser, startServer, type TestServer } from '../helpers/server.ts';
import { startReceiver, type Receiver } from '../logout/helpers.ts';
import { startRpReceiver, type RpReceiver, verifyLogoutToken } from '../logout/rp-receiver.ts';

// Skipped, with the reason shown by the runner, when Chromium is missing (a failure under AA_OIDC_REQUIRE_E2E=1).
const skip = chromiumUnavailable();

const HOSTILE = '<script>window.__hostile = true</script>';

/**
 * The operator and a member in a real browser: the operator signs in to the admin UI, creates a
 * group and an application whitelisting it, and puts the member in the group; the member signs in
 * to the application through the login page; the operator takes the member out of the group after
 * seeing the impact, and the application is told (back-channel logout) and refuses the member; the
 * member enrols TOTP on the account page, signs out, signs in with a code and revokes the application.
 */
describe(`the admin UI and the account page in Chromium (${testDatabaseKind})`, { skip }, () => {
  let server: TestServer;
  let browser: Browser;
  let operatorContext: BrowserContext;
  let memberContext: BrowserContext;
  let operator: Page;
  let member: Page;
  let bcl: RpReceiver;
  let rp: Receiver;
  let memberUser: { id: number; username: string };
  let client: { clientId: string; clientSecret: string };
  let refreshToken: string;
  const groupName = `Directors ${HOSTILE}`;
  const appName = `Wiki ${HOSTILE}`;

  before(async () => {
    server = await startServer({ logout: { allowPrivateTargets: true } });
    bcl = await startRpReceiver([200]);
    rp = await startReceiver((_request, response) => {
      response.setHeader('content-type', 'text/html');
      response.end('<!DOCTYPE html><title>RP</title><h1>Back at the application</h1>');
    });
    await seedUser(server, { username: 'operator', superuser: true });
    memberUser = await seedUser(server, { username: `member-${randomBytes(2).toString('hex')}` });
    browser = await launchChromium();
    operatorContext = await browser.newContext();
    memberContext = await browser.newContext();
    operator = await operatorContext.newPage();
    member = await memberContext.newPage();
    for (const page of [operator, member]) {
      // No page may run a script it was given as a name.
      page.on('dialog', (dialog) => assert.fail(`a dialog opened: ${dialog.message()}`));
    }
  });
  after(async () => {
    await browser?.close();
    await bcl?.close();
    await rp?.close();
    await server?.close();
  });

  /** Fills the provider's login page (where the page is now) and submits it. */
  async function logIn(page: Page, username: string, password = PASSWORD): Promise<void> {
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('h1', { hasNotText: /^Sign in$/ }).waitFor();
  }

  async function noHostileScript(page: Page): Promise<void> {
    assert.equal(await page.evaluate('window.__hostile === true'), false, 'a name ran as a script');
  }

  it('lets the operator sign in, create a group and an application, and put the member in the group', async () => {
    await operator.goto(`${server.origin}/admin`);
    await logIn(operator, 'operator');
    await operator.waitForURL(`${server.origin}/admin`);
    assert.equal(await operator.locator('h1').textContent(), 'Administration');

    await operator.goto(`${server.origin}/admin/groups`);
    await operator.getByLabel('Name').fill(groupName);
    await operator.getByRole('button', { name: 'Create group' }).click();
    await operator.waitForURL(/\/admin\/groups\/.+\?done=created/);
    assert.equal(await operator.locator('h1').textContent(), `Group ${groupName}`);
    await noHostileScript(operator);

    await operator.goto(`${server.origin}/admin/apps/new`);
    await operator.getByLabel('Name', { exact: true }).fill(appName);
    await operator.getByLabel('Redirect URIs', { exact: true }).fill(rp.url('/callback'));
    await operator.getByLabel(groupName, { exact: true }).check();
    await operator.getByLabel('Back-channel logout URI', { exact: true }).fill(bcl.url());
    await operator.getByRole('button', { name: 'Create application' }).click();
    await operator.locator('#client-secret').waitFor();
    client = {
      clientId: (await operator.locator('dl.facts dd code').first().textContent())!,
      clientSecret: await operator.locator('#client-secret').inputValue(),
    };
    assert.ok(client.clientId.length > 10);
    await noHostileScript(operator);

    await operator.goto(`${server.origin}/admin/users?q=${memberUser.username}`);
    await operator.getByRole('link', { name: memberUser.username }).click();
    await operator.getByLabel('Add to group').selectOption(groupName);
    await operator.getByRole('button', { name: 'Add to the group…' }).click();
    await operator.getByRole('button', { name: 'Add to the group', exact: true }).click();
    await operator.waitForURL(/done=add-group/);
    assert.match((await operator.locator('main').textContent()) ?? '', /Added to the group/);
    await noHostileScript(operator);
  });

  /** The member's browser through /authorize to the application's callback; returns the code. */
  async function authorizeAtApplication(): Promise<{ code: string; verifier: string }> {
    const { verifier, challenge } = pkcePair();
    const params = new URLSearchParams({
      client_id: client.clientId,
      redirect_uri: rp.url('/callback'),
      response_type: 'code',
      scope: 'openid profile offline_access',
      prompt: 'consent',
      state: 'xyz',
      code_challenge: challenge,
      code_challenge_method: 'S256',
    });
    await member.goto(`${server.issuer}/authorize/?${params.toString()}`);
    await member.locator('h1').waitFor();
    if ((await member.locator('h1').textContent()) === 'Sign in') await logIn(member, memberUser.username);
    assert.equal(await member.locator('h1').textContent(), 'Allow access?');
    await noHostileScript(member);
    await member.getByRole('button', { name: 'Allow' }).click();
    await member.waitForURL(`${rp.url('/callback')}?**`);
    const code = new URL(member.url()).searchParams.get('code');
    assert.ok(code, 'a code at the application');
    return { code, verifier };
  }

  it('lets the member sign in to the application through the login page', async () => {
    const { code, verifier } = await authorizeAtApplication();
    const exchanged = await tokenRequest(server, client, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: rp.url('/callback'),
      code_verifier: verifier,
    });
    assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
    refreshToken = exchanged.body.refresh_token as string;
    assert.ok(refreshToken);
  });

  it('shows the operator the impact of removing the member from the group, then the application refuses the member and hears of it', async () => {
    await operator.goto(`${server.origin}/admin/users/${memberUser.id}`);
    await operator.getByRole('link', { name: 'Remove from the group…' }).click();
    const impact = (await operator.locator('.warn').textContent()) ?? '';
    assert.match(impact, new RegExp(`can no longer use ${appName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(impact, /Back-channel logout is sent to/);
    assert.equal(bcl.requests.length, 0, 'nothing happens before the confirmation');
    await operator.getByRole('button', { name: 'Remove from the group', exact: true }).click();
    await operator.waitForURL(/done=remove-group/);
    await noHostileScript(operator);

    const refused = await tokenRequest(server, client, {
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
    });
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    await server.app.logout.deliverDue();
    for (let attempt = 0; bcl.requests.length === 0 && attempt < 200; attempt += 1)
      await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(bcl.requests.length >= 1, 'the back-channel receiver got a logout token');
    await verifyLogoutToken(server, bcl.tokens()[0]!, {
      clientId: client.clientId,
      sub: String(memberUser.id),
    });
  });

  it('lets the member enrol TOTP, sign out, sign in with a code and revoke the application', async () => {
    await member.goto(`${server.origin}/account`);
    await member.locator('h1').waitFor();
    if ((await member.locator('h1').textContent()) === 'Sign in') await logIn(member, memberUser.username);
    await member.waitForURL(`${server.origin}/account`);
    await noHostileScript(member);

    await member.getByRole('button', { name: 'Set up two-factor sign-in' }).click();
    const secret = ((await member.locator('#totp-secret').textContent()) ?? '').replaceAll(' ', '');
    const enrolledAt = Date.now();
    await member.getByLabel('Code from your app').fill(currentCode(secret, enrolledAt));
    await member.getByRole('button', { name: 'Turn on' }).click();
    assert.equal(await member.locator('h1').textContent(), 'Two-factor sign-in is on');
    await member.getByRole('link', { name: 'I have saved them' }).click();

    // One click: the provider's logout page that follows confirms by itself.
    await member.getByRole('button', { name: 'Sign out' }).click();
    await member.waitForURL(`${server.origin}/`);
    await member.goto(`${server.origin}/account`);
    await logIn(member, memberUser.username);
    assert.equal(await member.locator('h1').textContent(), 'Enter your code');
    // The next time step: the code of the enrolment counts once.
    await member
      .getByLabel(/code from your authenticator app/)
      .fill(currentCode(secret, enrolledAt + 30_000));
    await member.getByRole('button', { name: 'Continue' }).click();
    await member.waitForURL(`${server.origin}/account`);

    // Back in the group, the member allows the application again; then takes that back.
    await server.app.directoryAdmin.addGroup({ id: memberUser.id }, groupName);
    await authorizeAtApplication();
    await member.goto(`${server.origin}/account`);
    const revoke = member.getByRole('button', { name: `Revoke access of ${appName}` });
    await revoke.click();
    await member.waitForURL(/done=revoked/);
    assert.match((await member.locator('main').textContent()) ?? '', /Access revoked/);
    assert.equal(await member.getByRole('button', { name: /^Revoke access of / }).count(), 0);
    await noHostileScript(member);
  });
});
