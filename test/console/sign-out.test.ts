import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ACCOUNT_CONSOLE_CLIENT_ID } from '../../src/applications/account-console.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { consoleCookieForgotten, consoleGet, consolePost, consoleSignIn } from '../helpers/console.ts';
import {
  authorizeUrl,
  Browser,
  formAction,
  formField,
  pkcePair,
  REDIRECT_URI,
  seedUser,
  startServer,
  type TestServer,
} from '../helpers/server.ts';
import { logoutJobs } from '../logout/jobs.ts';
import { holdTokensAt, type RpReceiver, seedReceiverApp, verifyLogoutToken } from '../logout/rp-receiver.ts';

const NOTE = '_aa_oidc_console_sign_out';

/**
 * The console's "Sign out" ends the provider session in one click: the provider's logout page that
 * follows it confirms by itself (the provider's own form and xsrf check), for the account console
 * client and the note its sign-out left in this session only. Anything else meets the question.
 */
describe(`console sign-out ends the provider session (${testDatabaseKind})`, () => {
  let server: TestServer;
  const receivers: RpReceiver[] = [];

  before(async () => {
    // Private targets allowed for this test only: the back-channel receivers are loopback.
    server = await startServer({ logout: { allowPrivateTargets: true, retryBackoffSeconds: [1, 1] } });
  });
  after(async () => {
    for (const receiver of receivers) await receiver.close();
    await server.close();
  });

  /** A member signed in to an application (with a back-channel receiver) and to the console. */
  async function memberAtAppAndConsole() {
    const user = await seedUser(server);
    const { receiver, ...app } = await seedReceiverApp(server, receivers);
    const browser = new Browser();
    const tokens = await holdTokensAt(server, browser, app, user.username);
    await consoleSignIn(server, user.username, { browser });
    return { user, app, receiver, browser, tokens };
  }

  /** A silent authorization at the application: a code while signed in, `login_required` after. */
  async function silently(browser: Browser, clientId: string): Promise<URLSearchParams> {
    const response = await browser.fetch(
      authorizeUrl(server, {
        client_id: clientId,
        redirect_uri: REDIRECT_URI,
        response_type: 'code',
        scope: 'openid',
        prompt: 'none',
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
      }),
    );
    assert.equal(response.status, 303);
    return new URL(response.headers.get('location')!).searchParams;
  }

  /** The inline script of a page, if any, and whether the page's CSP allows it by its hash. */
  function scriptOf(page: { body: string; headers: Headers }) {
    const script = /<script>([\s\S]*?)<\/script>/.exec(page.body)?.[1];
    const csp = page.headers.get('content-security-policy') ?? '';
    const hash = script === undefined ? undefined : createHash('sha256').update(script).digest('base64');
    return { script, csp, allowed: hash !== undefined && csp.includes(`'sha256-${hash}'`) };
  }

  async function fetchPage(browser: Browser, url: string) {
    const response = await browser.fetch(url);
    return { status: response.status, headers: response.headers, body: await response.text() };
  }

  const noteLines = (browser: Browser) =>
    browser.setCookieLines.filter((line) => line.startsWith(`${NOTE}=`));

  it('signs out with one click: the logout page confirms by itself, the session ends and the application gets its logout token', async () => {
    const { user, app, receiver, browser, tokens } = await memberAtAppAndConsole();
    assert.ok((await silently(browser, app.clientId)).get('code'), 'signed in at the application');

    const account = await consoleGet(browser, `${server.origin}/account`);
    const out = await consolePost(browser, `${server.origin}/account/sign-out`, account.csrf!);
    assert.equal(out.status, 303);
    const logoutUrl = new URL(out.location!);
    assert.equal(logoutUrl.pathname, '/o/logout/');
    assert.equal(logoutUrl.searchParams.get('client_id'), ACCOUNT_CONSOLE_CLIENT_ID);
    assert.ok(consoleCookieForgotten(browser), 'the sign-out forgets the console cookie');
    const [note] = noteLines(browser);
    assert.ok(note, 'the sign-out leaves its note for the logout page');
    assert.match(note, /httponly/i);
    assert.match(note, /samesite=strict/i);
    assert.match(note, /path=\/o\/logout/i);
    assert.ok(!note.includes(account.csrf!), 'the note is not the CSRF token');

    const page = await fetchPage(browser, logoutUrl.href);
    assert.equal(page.status, 200);
    const { script, csp, allowed } = scriptOf(page);
    assert.ok(script, 'the page confirms by itself');
    assert.ok(allowed, `its script is allowed by hash (${csp})`);
    assert.match(csp, /frame-ancestors 'none'/);
    // What the script does: press "Yes, sign me out" (the provider's own form, its xsrf field).
    assert.match(script, /getElementById\('aa-logout-yes'\)\.click\(\)/);
    assert.match(
      page.body,
      /<button type="submit" form="op\.logoutForm" name="logout" value="yes" id="aa-logout-yes"/,
    );
    assert.match(page.body, /No, stay signed in/, 'the buttons stay for a browser without script');
    assert.ok(
      noteLines(browser).some((line) => /expires=thu, 01 jan 1970/i.test(line)),
      'the note is read once',
    );

    const done = await browser.fetch(formAction(page.body, server.origin), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ xsrf: formField(page.body, 'xsrf'), logout: 'yes' }).toString(),
    });
    assert.equal(done.status, 303);
    assert.equal(done.headers.get('location'), `${server.origin}/`);

    assert.equal(
      (await silently(browser, app.clientId)).get('error'),
      'login_required',
      'the provider session is gone',
    );
    assert.equal(
      (await browser.fetch(`${server.origin}/account`)).status,
      302,
      'the console asks for a sign-in',
    );
    const jobs = await logoutJobs(server.app.database, { userId: user.id, clientId: app.clientId });
    assert.equal(jobs.length, 1, 'one back-channel logout for the application of the session');
    await server.app.logout.deliverDue();
    assert.equal(receiver.tokens().length, 1);
    const claims = await verifyLogoutToken(server, receiver.tokens()[0]!, {
      clientId: app.clientId,
      sub: String(user.id),
      sid: 'present',
    });
    const idTokenSid = (
      JSON.parse(Buffer.from(tokens.id_token.split('.')[1]!, 'base64url').toString()) as { sid: string }
    ).sid;
    assert.equal(claims.sid, idTokenSid);
  });

  it('sends a member signed out already (in another tab) who presses Sign out to the landing page, not to a sign-in', async () => {
    const { user, browser } = await memberAtAppAndConsole();
    const account = await consoleGet(browser, `${server.origin}/account`);
    // The other tab: signed out everywhere there.
    await server.app.tokens.signOutUser(user.username, { note: 'the other tab', actor: 'test' });
    const out = await consolePost(browser, `${server.origin}/account/sign-out`, account.csrf!);
    assert.equal(out.status, 303);
    assert.equal(out.location, '/');
    const landing = await consoleGet(browser, `${server.origin}/`);
    assert.equal(landing.status, 200);
    assert.match(landing.body, /Sign in to your account/);
    // Still signed in, the form's token is checked as before.
    const again = await memberAtAppAndConsole();
    const refused = await consolePost(again.browser, `${server.origin}/account/sign-out`, 'x'.repeat(43));
    assert.equal(refused.status, 403);
    assert.deepEqual(noteLines(again.browser), []);
    assert.ok((await silently(again.browser, again.app.clientId)).get('code'), 'still signed in');
  });

  it('asks, and changes nothing, when the logout comes without the note: from another site, for another application, or with the note of another session', async () => {
    const { app, browser } = await memberAtAppAndConsole();

    // A link from another site to the console client's logout: no note (a Strict cookie set only by
    // the console's sign-out), so the question.
    const linked = await fetchPage(
      browser,
      `${server.issuer}/logout/?${new URLSearchParams({
        client_id: ACCOUNT_CONSOLE_CLIENT_ID,
        post_logout_redirect_uri: `${server.origin}/`,
      })}`,
    );
    assert.equal(linked.status, 200);
    assert.match(linked.body, /<h1>Sign out\?<\/h1>/);
    assert.equal(scriptOf(linked).script, undefined);
    assert.doesNotMatch(scriptOf(linked).csp, /script-src/);

    // A cross-site POST to the console's sign-out: refused (no CSRF token, foreign origin), no note.
    const forged = await browser.fetch(`${server.origin}/account/sign-out`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
      body: '',
    });
    assert.equal(forged.status, 403);
    assert.deepEqual(noteLines(browser), []);
    assert.ok((await silently(browser, app.clientId)).get('code'), 'still signed in');

    // Another application's logout right after the console's sign-out: asked, and the note is spent.
    const account = await consoleGet(browser, `${server.origin}/account`);
    assert.equal(
      (await consolePost(browser, `${server.origin}/account/sign-out`, account.csrf!)).status,
      303,
    );
    const other = await fetchPage(
      browser,
      `${server.issuer}/logout/?client_id=${encodeURIComponent(app.clientId)}`,
    );
    assert.equal(other.status, 200);
    assert.equal(scriptOf(other).script, undefined, 'another application still meets the question');
    const consoleLogout = await fetchPage(
      browser,
      `${server.issuer}/logout/?client_id=${encodeURIComponent(ACCOUNT_CONSOLE_CLIENT_ID)}`,
    );
    assert.equal(scriptOf(consoleLogout).script, undefined, 'the note answered one page only');
    assert.ok((await silently(browser, app.clientId)).get('code'), 'still signed in');

    // The note of one session, copied into a browser signed in with another one: asked.
    const first = await memberAtAppAndConsole();
    const firstAccount = await consoleGet(first.browser, `${server.origin}/account`);
    await consolePost(first.browser, `${server.origin}/account/sign-out`, firstAccount.csrf!);
    const second = await memberAtAppAndConsole();
    for (const [key, value] of first.browser.cookies)
      if (key.split('|')[1]!.startsWith(NOTE)) second.browser.cookies.set(key, value);
    const copied = await fetchPage(
      second.browser,
      `${server.issuer}/logout/?client_id=${encodeURIComponent(ACCOUNT_CONSOLE_CLIENT_ID)}`,
    );
    assert.equal(copied.status, 200);
    assert.equal(scriptOf(copied).script, undefined, 'a note binds the session it was made in');
    assert.ok((await silently(second.browser, second.app.clientId)).get('code'), 'still signed in');
  });
});
