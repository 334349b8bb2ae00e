import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import {
  consoleCookieForgotten,
  consoleGet,
  consolePost,
  consoleSignIn,
  pageText,
} from '../helpers/console.ts';
import { seedUser, startServer, type TestServer } from '../helpers/server.ts';

/**
 * With RP-initiated logout off there is no `/o/logout/`: the console's Sign out must not send the
 * member there (a 404), and must still end the browser's provider session.
 */
describe(`web console sign-out without RP-initiated logout (${testDatabaseKind})`, () => {
  let server: TestServer;
  let member: { id: number; username: string };

  before(async () => {
    server = await startServer({ logout: { rpInitiated: false } });
    member = await seedUser(server);
  });
  after(async () => server.close());

  const liveSessions = () =>
    server.app.database.db
      .selectFrom('oidc_payload')
      .select('id')
      .where('model', '=', 'Session')
      .where('user_id', '=', String(member.id))
      .where('revoked_at', 'is', null)
      .execute();

  it('ends the provider session here and lands on a page that says so; the next visit asks for the password', async () => {
    const browser = await consoleSignIn(server, member.username);
    assert.equal((await liveSessions()).length, 1);
    const page = await consoleGet(browser, `${server.origin}/account`);
    assert.equal(page.status, 200);

    const out = await consolePost(browser, `${server.origin}/account/sign-out`, page.csrf!);
    assert.equal(out.status, 303);
    assert.equal(out.location, '/?signed-out=browser', 'not to the logout endpoint, which does not exist');
    assert.equal((await liveSessions()).length, 0, 'the provider session ended');
    assert.ok(consoleCookieForgotten(browser), 'the sign-out forgets the console cookie');

    const landing = await consoleGet(browser, `${server.origin}${out.location}`);
    assert.equal(landing.status, 200);
    assert.match(pageText(landing.body), /You are signed out in this browser\./);
    assert.match(pageText(landing.body), /Sign in to your account/);

    const account = await browser.fetch(`${server.origin}/account`);
    assert.equal(account.status, 302, 'the console cookie is gone');
    const login = await browser.follow(account.headers.get('location')!, server.origin);
    assert.equal(login.status, 200);
    assert.match(await login.text(), /name="password"/, 'the provider asks for the password again');
  });

  it('does not say "signed out" to someone still signed in', async () => {
    const browser = await consoleSignIn(server, member.username);
    const landing = await consoleGet(browser, `${server.origin}/?signed-out=browser`);
    assert.doesNotMatch(pageText(landing.body), /signed out in this browser/);
    assert.match(pageText(landing.body), new RegExp(`You are signed in as ${member.username}`));
  });
});
