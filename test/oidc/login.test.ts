import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LOGIN_FAILED_MESSAGE, LOGIN_THROTTLED_MESSAGE } from '../../src/oidc/interactions/routes.ts';
import { EXPIRED_ROWS_PURGE } from '../../src/tokens/payload-rows.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { type LoginPage, openLoginPage, submitLogin } from '../helpers/flows.ts';
import { Browser, PASSWORD, seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';

describe(`login page, CSRF and throttling (${testDatabaseKind})`, () => {
  let server: TestServer;
  let clientId: string;

  before(async () => {
    server = await startServer({
      login: { maxFailuresPerAccount: 3, maxFailuresPerAddress: 7, failureWindowSeconds: 900 },
    });
    clientId = (await seedApp(server)).clientId;
  });
  after(async () => server.close());

  /** Opens a fresh login page; returns what is needed to post to it. */
  async function openLogin(browser = new Browser()): Promise<LoginPage> {
    const page = await openLoginPage(server, clientId, browser);
    assert.equal(page.status, 200);
    return page;
  }

  async function attempt(username: string, password: string): Promise<{ status: number; body: string }> {
    return submitLogin(await openLogin(), username, password);
  }

  it('renders an accessible page: lang, heading, labelled fields, no script', async () => {
    const { body } = await openLogin();
    assert.match(body, /<html lang="en">/);
    assert.match(body, /<h1>Sign in<\/h1>/);
    assert.match(body, /<label for="username">Username<\/label>/);
    assert.match(body, /<input[^>]*type="text"[^>]*id="username"[^>]*autocomplete="username"/);
    assert.match(body, /<label for="password">Password<\/label>/);
    assert.match(body, /<input[^>]*type="password"[^>]*id="password"[^>]*autocomplete="current-password"/);
    assert.doesNotMatch(body, /<script/i);
    assert.match(body, /Test RP/);
  });

  it('refuses a form without its CSRF token, or with the token of another interaction', async () => {
    const user = await seedUser(server);
    const first = await openLogin();
    const missing = await first.browser.fetch(first.action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: user.username, password: PASSWORD }).toString(),
    });
    assert.equal(missing.status, 403);
    const second = await openLogin(first.browser);
    assert.notEqual(second.action, first.action);
    const crossed = await first.browser.fetch(second.action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        csrf_token: first.csrf,
        username: user.username,
        password: PASSWORD,
      }).toString(),
    });
    assert.equal(crossed.status, 403);
    const stranger = new Browser();
    const foreign = await stranger.fetch(second.action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        csrf_token: second.csrf,
        username: user.username,
        password: PASSWORD,
      }).toString(),
    });
    assert.equal(foreign.status, 400, 'without the interaction cookie the request is unknown');
    const right = await first.browser.fetch(second.action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        csrf_token: second.csrf,
        username: user.username,
        password: PASSWORD,
      }).toString(),
    });
    assert.equal(right.status, 303);
  });

  it('says the same thing for a wrong password, an unknown user and a deactivated user', async () => {
    const user = await seedUser(server);
    const inactive = await seedUser(server);
    await server.app.directoryAdmin.deactivate({ id: inactive.id });
    const wrongPassword = await attempt(user.username, 'not the password');
    const unknownUser = await attempt('nobody-by-this-name', PASSWORD);
    const deactivated = await attempt(inactive.username, PASSWORD);
    for (const outcome of [wrongPassword, unknownUser, deactivated]) {
      assert.equal(outcome.status, 401);
      assert.ok(outcome.body.includes(LOGIN_FAILED_MESSAGE));
      assert.doesNotMatch(outcome.body, /not found|unknown|inactive|deactivated/i);
    }
    await server.app.database.db.deleteFrom('login_failure').execute();
  });

  it('throttles an account after repeated failures, existing or not, with the same message', async () => {
    const user = await seedUser(server);
    for (let i = 0; i < 3; i += 1) assert.equal((await attempt(user.username, 'wrong')).status, 401);
    const blocked = await attempt(user.username, PASSWORD);
    assert.equal(blocked.status, 429, 'even the right password is refused while throttled');
    assert.ok(blocked.body.includes(LOGIN_THROTTLED_MESSAGE));
    const upper = await attempt(user.username.toUpperCase(), PASSWORD);
    assert.equal(upper.status, 429, 'the account key ignores case');

    for (let i = 0; i < 3; i += 1) assert.equal((await attempt('ghost-pilot', 'wrong')).status, 401);
    const ghost = await attempt('ghost-pilot', 'wrong');
    assert.equal(ghost.status, 429);
    assert.ok(ghost.body.includes(LOGIN_THROTTLED_MESSAGE));

    const rows = await server.app.database.db
      .selectFrom('login_failure')
      .select(['username', 'address'])
      .execute();
    assert.equal(rows.length, 6);
    assert.ok(rows.every((row) => row.address === '127.0.0.1'));
    assert.ok(!JSON.stringify(rows).includes('wrong'), 'passwords are never stored');
  });

  it('throttles an address across usernames', async () => {
    // 6 failures from 127.0.0.1 are on record; the 7th reaches the address limit.
    const fresh = await seedUser(server);
    assert.equal((await attempt('someone-else', 'wrong')).status, 401);
    const blocked = await attempt(fresh.username, PASSWORD);
    assert.equal(blocked.status, 429);
    await server.app.database.db.deleteFrom('login_failure').execute();
    assert.equal((await attempt(fresh.username, PASSWORD)).status, 303);
  });

  it('forgets failures older than the window when the purge runs', async () => {
    const db = server.app.database.db;
    await db.deleteFrom('login_failure').execute();
    const now = Date.now();
    await db
      .insertInto('login_failure')
      .values([
        { username: 'old', address: '192.0.2.1', failed_at: now - 901_000 },
        { username: 'recent', address: '192.0.2.1', failed_at: now - 10_000 },
      ])
      .execute();
    // More than one statement's worth of old failures (an attack's), within one round: every one goes.
    const old = Array.from({ length: EXPIRED_ROWS_PURGE.rows * 2 + 7 }, (_, index) => ({
      username: `spray-${index}`,
      address: `198.51.100.${index % 250}`,
      failed_at: now - 1_000_000 - index,
    }));
    for (let start = 0; start < old.length; start += 100)
      await db
        .insertInto('login_failure')
        .values(old.slice(start, start + 100))
        .execute();
    assert.deepEqual((await server.app.oidc.purge()).tables.loginFailures, {
      deleted: EXPIRED_ROWS_PURGE.rows * 2 + 8,
      more: false,
    });
    const left = await db.selectFrom('login_failure').select('username').execute();
    assert.deepEqual(
      left.map((row) => row.username),
      ['recent'],
    );
    await db.deleteFrom('login_failure').execute();
  });
});
