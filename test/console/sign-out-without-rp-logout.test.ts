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
import { type Browser, formField, seedUser, startServer, type TestServer } from '../helpers/server.ts';

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

  /** The browser keeps the provider session alone: the console cookie lost (or the console tab's gone). */
  const forgetConsoleCookie = (browser: Browser) => {
    for (const key of [...browser.cookies.keys()])
      if (key.split('|')[1]!.startsWith('_aa_oidc_console')) browser.cookies.delete(key);
  };

  it('ends no provider session on a POST without the console session and without its token: it asks, with a token of that session', async () => {
    const browser = await consoleSignIn(server, member.username);
    const page = await consoleGet(browser, `${server.origin}/account`);
    const live = (await liveSessions()).length;
    forgetConsoleCookie(browser);

    // A same-origin POST (the cross-site one is refused 403 before the route): no token at all, or
    // the token of the console session that is gone (the "Sign out" of a stale tab).
    for (const csrf of [null, page.csrf!]) {
      const asked = await consolePost(browser, `${server.origin}/account/sign-out`, csrf);
      assert.equal(asked.status, 200, 'a page, not an error');
      assert.match(pageText(asked.body), /Sign out\? This browser is still signed in as/);
      assert.match(pageText(asked.body), new RegExp(`signed in as ${member.username}[.]`));
      assert.equal((await liveSessions()).length, live, 'the provider session is still there');
    }
    // "Sign out everywhere" needs the console session: a sign-in first, nothing ended.
    const everywhere = await consolePost(browser, `${server.origin}/account/sign-out-everywhere`, null);
    assert.equal(everywhere.status, 302);
    assert.equal((await liveSessions()).length, live);

    // The question's token is bound to the provider session it was shown to: not another's.
    const other = await consoleSignIn(server, member.username);
    forgetConsoleCookie(other);
    const otherToken = formField(
      (await consolePost(other, `${server.origin}/account/sign-out`, null)).body,
      'csrf_token',
    );
    const crossed = await consolePost(browser, `${server.origin}/account/sign-out`, otherToken);
    assert.equal(crossed.status, 200);
    assert.equal((await liveSessions()).length, live + 1, 'both sessions still there');

    // The question answered: this browser's session ends, the other's does not.
    const question = await consolePost(browser, `${server.origin}/account/sign-out`, null);
    const out = await consolePost(
      browser,
      `${server.origin}/account/sign-out`,
      formField(question.body, 'csrf_token'),
    );
    assert.equal(out.status, 303);
    assert.equal(out.location, '/?signed-out=browser');
    assert.equal((await liveSessions()).length, live);
    const landing = await consoleGet(browser, `${server.origin}${out.location}`);
    assert.match(pageText(landing.body), /You are signed out in this browser\./);

    // Pressed again (nothing left to end): the landing page, not an error.
    const again = await consolePost(browser, `${server.origin}/account/sign-out`, null);
    assert.equal(again.status, 303);
    assert.equal(again.location, '/?signed-out=browser');
  });

  it('does not say "signed out" to someone still signed in', async () => {
    const browser = await consoleSignIn(server, member.username);
    const landing = await consoleGet(browser, `${server.origin}/?signed-out=browser`);
    assert.doesNotMatch(pageText(landing.body), /signed out in this browser/);
    assert.match(pageText(landing.body), new RegExp(`You are signed in as ${member.username}`));
  });
});
