import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ACCOUNT_CONSOLE_CLIENT_ID } from '../../src/applications/account-console.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { consoleGet, consolePost, consoleSignIn, pageText } from '../helpers/console.ts';
import { Browser, PASSWORD, seedUser, signIn, startServer, type TestServer } from '../helpers/server.ts';
import { rawRequest } from '../http/raw-request.ts';

describe(`web console sign-in through the provider (${testDatabaseKind})`, () => {
  let server: TestServer;
  let admin: { id: number; username: string };
  let member: { id: number; username: string };
  let guest: { id: number; username: string };

  before(async () => {
    server = await startServer();
    admin = await seedUser(server, { superuser: true });
    member = await seedUser(server);
    guest = await seedUser(server, { oidcAccess: false });
  });
  after(async () => server.close());

  it('sends a visitor without a session into the provider sign-in (302), remembering where to return', async () => {
    const browser = new Browser();
    const response = await browser.fetch(`${server.origin}/admin`);
    assert.equal(response.status, 302);
    const location = new URL(response.headers.get('location')!);
    assert.equal(`${location.origin}${location.pathname}`, `${server.issuer}/authorize/`);
    assert.equal(location.searchParams.get('client_id'), ACCOUNT_CONSOLE_CLIENT_ID);
    assert.equal(location.searchParams.get('code_challenge_method'), 'S256');
    const flowCookie = browser.setCookieLines.find((line) => line.startsWith('_aa_oidc_console_flow='));
    assert.ok(flowCookie, 'the flow cookie');
    assert.match(flowCookie, /httponly/i);
    assert.match(flowCookie, /samesite=lax/i);
  });

  it('signs a superuser in on the provider login page and sets a Strict, HttpOnly console cookie', async () => {
    const browser = await consoleSignIn(server, admin.username, { returnTo: '/admin' });
    const cookie = browser.setCookieLines.find((line) => line.startsWith('_aa_oidc_console='));
    assert.ok(cookie, 'the console cookie');
    assert.match(cookie, /httponly/i);
    assert.match(cookie, /samesite=strict/i);
    assert.doesNotMatch(cookie, /secure/i, 'not Secure in development (plain http)');
    const page = await consoleGet(browser, `${server.origin}/admin`);
    assert.equal(page.status, 200);
    assert.match(page.body, /<h1>Administration<\/h1>/);
    assert.equal(
      page.body.includes(`<a href="/admin">Administration</a>`),
      true,
      'the admin link in the header',
    );
  });

  it('continues after the sign-in on a hop page in the console layout, by a meta refresh and without script', async () => {
    const browser = new Browser();
    const returnTo = '/admin/apps?q=a&page=2';
    const response = await signIn(
      browser,
      server,
      `${server.origin}/account/sign-in?return=${encodeURIComponent(returnTo)}`,
      { username: admin.username, password: PASSWORD },
    );
    const body = await response.text();
    assert.equal(response.status, 200, body.slice(0, 300));
    // The next request starts on this site (the SameSite=Strict console cookie goes with it).
    const head = body.slice(0, body.indexOf('</head>'));
    assert.ok(head.includes('<meta http-equiv="refresh" content="0; url=/admin/apps?q=a&amp;page=2">'), head);
    assert.ok(body.includes('<a href="/admin/apps?q=a&amp;page=2">Continue</a>'));
    // The console's branded layout: the community's name in the title and the header.
    assert.match(body, /<title>Signed in · aa-oidc<\/title>/);
    assert.match(body, /<header class="site">[\s\S]*>aa-oidc<\/span[\s\S]*<\/header>/);
    assert.match(body, /<h1>Signed in<\/h1>/);
    // The console's headers: not cached, never framed, no script but the site's own file.
    assert.equal(response.headers.get('cache-control'), 'no-store');
    assert.equal(response.headers.get('x-frame-options'), 'DENY');
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(response.headers.get('referrer-policy'), 'same-origin');
    const policy = response.headers.get('content-security-policy') ?? '';
    assert.match(policy, /frame-ancestors 'none'/);
    assert.doesNotMatch(policy, /script-src[^;]*'unsafe-inline'/);
    assert.doesNotMatch(body, /<script>/, 'no inline script');
  });

  it('continues after the sign-in to the account page, not outside the console, when the address to return to has a dot segment', async () => {
    const browser = await consoleSignIn(server, member.username);
    // Each resolves, in the browser, to a path outside /account and /admin: the provider's logout, the
    // site's root, `//evil.example` on this host.
    for (const returnTo of [
      '/account/../o/logout/',
      '/account/%2e%2E/o/.well-known/openid-configuration',
      '/admin/.%2e//evil.example',
      '/account/x/../..',
      '/account/..#two-factor',
    ]) {
      const response = await signIn(
        browser,
        server,
        `${server.origin}/account/sign-in?return=${encodeURIComponent(returnTo)}`,
      );
      const body = await response.text();
      assert.equal(response.status, 200, `${returnTo}: ${body.slice(0, 300)}`);
      assert.ok(
        body.includes('<meta http-equiv="refresh" content="0; url=/account">'),
        `${returnTo}: ${body}`,
      );
      assert.ok(body.includes('<a href="/account">Continue</a>'), returnTo);
    }
  });

  it('shows the hop page with the header of the member who has just signed in: their links and a working Sign out', async () => {
    for (const [who, superuser] of [
      [admin, true],
      [member, false],
    ] as const) {
      const browser = new Browser();
      const response = await signIn(browser, server, `${server.origin}/account/sign-in?return=/account`, {
        username: who.username,
        password: PASSWORD,
      });
      const body = await response.text();
      assert.equal(response.status, 200, body.slice(0, 300));
      assert.match(body, /<h1>Signed in<\/h1>/);
      const nav = /<nav aria-label="Console">[\s\S]*?<\/nav>/.exec(body)?.[0];
      assert.ok(nav, `the signed-in header for ${who.username}`);
      assert.ok(nav.includes('<a href="/account">Your account</a>'));
      assert.equal(
        nav.includes('<a href="/admin">Administration</a>'),
        superuser,
        'Administration for superusers only',
      );
      // The Sign out button carries the CSRF token of the console session just begun: it signs out.
      const csrf = /name="csrf_token" value="([^"]+)"/.exec(nav)?.[1];
      assert.ok(csrf, 'the sign-out form with its CSRF token');
      const signOut = await consolePost(browser, `${server.origin}/account/sign-out`, csrf);
      assert.equal(signOut.status, 303, signOut.body.slice(0, 300));
      assert.ok(signOut.location?.startsWith(`${server.issuer}/logout/`), String(signOut.location));
    }
  });

  it('admits a user without access to any application to the account page, not to the admin UI', async () => {
    const browser = await consoleSignIn(server, guest.username);
    const account = await consoleGet(browser, `${server.origin}/account`);
    assert.equal(account.status, 200);
    assert.match(pageText(account.body), new RegExp(`Username ${guest.username}`));
    const admin = await consoleGet(browser, `${server.origin}/admin`);
    assert.equal(admin.status, 403);
    assert.match(admin.body, /Administrators only/);
  });

  /** A browser whose console sign-in is under way: its flow cookie set, the callback URL not yet visited. */
  async function signInUnderWay(username: string): Promise<{ browser: Browser; callback: string }> {
    // A browser with a provider session: the sign-in comes straight back with a code.
    const browser = await consoleSignIn(server, username);
    let url = `${server.origin}/account/sign-in?return=/account`;
    for (let hop = 0; hop < 6 && !url.startsWith(`${server.origin}/account/callback`); hop += 1) {
      const response = await browser.fetch(url);
      assert.ok(response.status >= 300 && response.status < 400, `a redirect from ${url}`);
      url = new URL(response.headers.get('location')!, url).href;
    }
    assert.ok(url.startsWith(`${server.origin}/account/callback?`), url);
    return { browser, callback: url };
  }

  it('refuses HEAD on the callback, whose GET redeems the code: the GET then signs in', async () => {
    const { browser, callback: url } = await signInUnderWay(member.username);
    const head = await rawRequest(url, { method: 'HEAD', browser, keepCookies: true });
    assert.equal(head.status, 405);
    assert.equal(head.headers.allow, 'GET');
    assert.equal(head.body, '');
    const callback = await browser.fetch(url);
    assert.equal(callback.status, 200, 'the code is still there to redeem');
    assert.match(await callback.text(), /<h1>Signed in<\/h1>/);
  });

  it('refuses HEAD on /account/sign-in, whose GET starts a sign-in: no flow cookie, the one under way completes', async () => {
    const fresh = await rawRequest(`${server.origin}/account/sign-in?return=/admin`, { method: 'HEAD' });
    assert.equal(fresh.status, 405);
    assert.equal(fresh.headers.allow, 'GET');
    assert.equal(fresh.headers['set-cookie'], undefined, 'no sign-in started');
    assert.equal(fresh.headers.location, undefined);
    assert.equal(fresh.body, '');

    const { browser, callback } = await signInUnderWay(member.username);
    const cookies = new Map(browser.cookies);
    const head = await rawRequest(`${server.origin}/account/sign-in?return=/admin`, {
      method: 'HEAD',
      browser,
      keepCookies: true,
    });
    assert.equal(head.status, 405);
    assert.equal(head.headers['set-cookie'], undefined, 'the flow under way is not replaced');
    assert.deepEqual(browser.cookies, cookies);
    const done = await browser.fetch(callback);
    assert.equal(done.status, 200, 'the sign-in under way completes');
    assert.match(await done.text(), /<h1>Signed in<\/h1>/);
  });

  it('sends a HEAD without a session to /account/sign-in instead of starting a sign-in: no flow cookie', async () => {
    for (const [path, returnTo] of [
      ['/account', '/account'],
      ['/admin/apps?q=x', '/admin/apps?q=x'],
      ['/account/sign-out-everywhere', '/account/sign-out-everywhere'],
    ] as const) {
      const head = await rawRequest(`${server.origin}${path}`, { method: 'HEAD' });
      assert.equal(head.status, 302, `HEAD ${path}`);
      assert.equal(
        head.headers.location,
        `/account/sign-in?${new URLSearchParams({ return: returnTo }).toString()}`,
        `HEAD ${path}`,
      );
      assert.equal(head.headers['set-cookie'], undefined, `HEAD ${path} starts no sign-in`);
      assert.equal(head.headers['cache-control'], 'no-store');
    }
    // A sign-in under way in this browser (its console cookie gone) is left as it is.
    const { browser, callback } = await signInUnderWay(member.username);
    browser.cookies.delete('/|_aa_oidc_console');
    browser.cookies.delete('/|_aa_oidc_console.sig');
    const cookies = new Map(browser.cookies);
    const head = await rawRequest(`${server.origin}/account`, { method: 'HEAD', browser, keepCookies: true });
    assert.equal(head.status, 302);
    assert.equal(head.headers['set-cookie'], undefined);
    assert.deepEqual(browser.cookies, cookies);
    const done = await browser.fetch(callback);
    assert.equal(done.status, 200, 'the sign-in under way completes');
  });

  it('answers HEAD as GET on the pages that only show something', async () => {
    const browser = await consoleSignIn(server, admin.username, { returnTo: '/admin' });
    for (const path of ['/', '/account', '/account/sign-out-everywhere', '/admin', '/assets/console.js']) {
      const get = await browser.fetch(`${server.origin}${path}`);
      const head = await rawRequest(`${server.origin}${path}`, { method: 'HEAD', browser });
      assert.equal(head.status, get.status, `HEAD ${path}`);
      assert.equal(head.status, 200, `HEAD ${path}`);
      assert.equal(head.headers['content-type'], get.headers.get('content-type'), `HEAD ${path}`);
      assert.equal(head.headers['set-cookie'], undefined, `HEAD ${path}`);
      assert.equal(head.body, '');
    }
  });

  it('refuses a callback that does not belong to a sign-in of this browser', async () => {
    const response = await new Browser().fetch(`${server.origin}/account/callback?code=abc&state=def`);
    assert.equal(response.status, 400);
    assert.match(await response.text(), /No sign-in is in progress/);
  });

  it('refuses a POST without the CSRF token, and one from another origin', async () => {
    const browser = await consoleSignIn(server, member.username);
    const page = await consoleGet(browser, `${server.origin}/account`);
    assert.ok(page.csrf, 'a CSRF token in the page');
    const without = await consolePost(browser, `${server.origin}/account/sign-out`, null);
    assert.equal(without.status, 403);
    const wrong = await consolePost(browser, `${server.origin}/account/sign-out`, 'x'.repeat(43));
    assert.equal(wrong.status, 403);
    const foreign = await browser.fetch(`${server.origin}/account/sign-out`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
      body: new URLSearchParams({ csrf_token: page.csrf }).toString(),
    });
    assert.equal(foreign.status, 403);
    // Still signed in: none of those did anything.
    assert.equal((await consoleGet(browser, `${server.origin}/account`)).status, 200);
    // The page's own post where a privacy setting makes the referrer policy no-referrer: the
    // browser sends Origin: null, and Sec-Fetch-Site says it is the page's own.
    const own = await browser.fetch(`${server.origin}/account/sign-out`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin: 'null',
        'sec-fetch-site': 'same-origin',
      },
      body: new URLSearchParams({ csrf_token: page.csrf }).toString(),
    });
    assert.equal(own.status, 303);
  });

  it('refuses a NUL byte in an address, and names the type of a form that is not one, never a server error', async () => {
    const browser = await consoleSignIn(server, member.username);
    const page = await consoleGet(browser, `${server.origin}/account`);
    const nul = await consolePost(browser, `${server.origin}/account/apps/a%00b/revoke`, page.csrf!);
    assert.equal(nul.status, 400);
    assert.match(pageText(nul.body), /This address is malformed/);
    const json = await browser.fetch(`${server.origin}/account/two-factor/enrol`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: server.origin },
      body: JSON.stringify({ csrf_token: page.csrf }),
    });
    assert.equal(json.status, 415);
    assert.match(
      pageText(await json.text()),
      /takes a form sent as application\/x-www-form-urlencoded, not application\/json/,
    );
    // From another site, the answer stays the refusal that says nothing about the form.
    const foreign = await browser.fetch(`${server.origin}/account/two-factor/enrol`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', origin: 'https://evil.example' },
      body: `csrf_token=${page.csrf}`,
    });
    assert.equal(foreign.status, 403);
    assert.match(await foreign.text(), /Form refused/);
    assert.equal((await consoleGet(browser, `${server.origin}/account`)).status, 200);
  });

  it('refuses a query with a malformed or non-UTF-8 %-escape on every console page with a 400 page, as under the issuer', async () => {
    const adminBrowser = await consoleSignIn(server, admin.username, { returnTo: '/admin' });
    const memberBrowser = await consoleSignIn(server, member.username);
    for (const [browser, path] of [
      [adminBrowser, '/admin/audit?user=%ff'],
      [adminBrowser, '/admin/users?q=%zz'],
      [adminBrowser, '/admin/apps?q=caf%e9'],
      [memberBrowser, '/account?tab=%'],
      [memberBrowser, '/account?done=%e2%82'],
      // Signed out: refused, not carried into a sign-in as the address to return to.
      [new Browser(), '/admin?q=%ff'],
      [new Browser(), '/account/sign-in?return=%2Fadmin%ff'],
      [new Browser(), '/?signed-out=%'],
    ] as const) {
      const page = await consoleGet(browser, `${server.origin}${path}`);
      assert.equal(page.status, 400, path);
      assert.match(page.body, /^<!doctype html>/i, path);
      assert.match(
        pageText(page.body),
        /This address is malformed: its query must be UTF-8 text with well-formed %-escapes/,
        path,
      );
    }
    // Well-formed escapes, UTF-8 included, are read as before.
    assert.equal((await consoleGet(adminBrowser, `${server.origin}/admin/users?q=caf%C3%A9%25`)).status, 200);
    assert.equal((await consoleGet(memberBrowser, `${server.origin}/account?tab=%41`)).status, 200);
  });

  it('refuses a form that is not UTF-8 or has a malformed %-escape (400) and changes nothing, never storing U+FFFD', async () => {
    const browser = await consoleSignIn(server, admin.username, { returnTo: '/admin' });
    const csrf = (await consoleGet(browser, `${server.origin}/admin/groups`)).csrf!;
    const post = (body: string | Buffer) =>
      browser.fetch(`${server.origin}/admin/groups`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: server.origin },
        body,
      });
    const token = `csrf_token=${encodeURIComponent(csrf)}`;
    const bodies: Array<string | Buffer> = [
      `${token}&name=%ff`,
      `${token}&name=a%e2%82`,
      `${token}&name=%e2%82&x=%ac`,
      `${token}&name=%ed%a0%80`,
      `${token}&name=50%`,
      `${token}&name=%zz`,
      Buffer.concat([Buffer.from(`${token}&name=a`), Buffer.from([0xff])]),
    ];
    for (const body of bodies) {
      const response = await post(body);
      assert.equal(response.status, 400, String(body));
      assert.match(
        pageText(await response.text()),
        /This form is malformed: its fields must be UTF-8 text with well-formed %-escapes/,
      );
    }
    assert.deepEqual(
      (await server.app.directory.listGroups()).map((group) => group.name),
      [],
      'no group was created',
    );
    // Well-formed escapes of any character, U+FFFD itself included, are a form like any other.
    const created = await post(`${token}&name=${encodeURIComponent('Wing \u{1F6F0} \uFFFD 100%')}`);
    assert.equal(created.status, 303);
    assert.deepEqual(
      (await server.app.directory.listGroups()).map((group) => group.name),
      ['Wing \u{1F6F0} \uFFFD 100%'],
    );
    // From another site, the answer stays the refusal that says nothing about the form.
    const foreign = await browser.fetch(`${server.origin}/admin/groups`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
      body: `${token}&name=%ff`,
    });
    assert.equal(foreign.status, 403);
    assert.match(await foreign.text(), /Form refused/);
  });

  it('answers 415 to a form declared in a charset other than UTF-8 and changes nothing; charset=utf-8 is read as UTF-8', async () => {
    const browser = await consoleSignIn(server, admin.username, { returnTo: '/admin' });
    const csrf = (await consoleGet(browser, `${server.origin}/admin/groups`)).csrf!;
    const post = (charset: string, name: Buffer) =>
      browser.fetch(`${server.origin}/admin/groups`, {
        method: 'POST',
        headers: {
          'content-type': `application/x-www-form-urlencoded; charset=${charset}`,
          origin: server.origin,
        },
        body: Buffer.concat([Buffer.from(`csrf_token=${encodeURIComponent(csrf)}&name=`), name]),
      });
    const groupsBefore = (await server.app.directory.listGroups()).map((group) => group.name);
    // "Café" as ISO-8859-1 sends it: 0xE9, or %E9 escaped.
    for (const [charset, name] of [
      ['ISO-8859-1', Buffer.from([0x43, 0x61, 0x66, 0xe9])],
      ['iso-8859-1', Buffer.from('Caf%E9')],
      ['"windows-1252"', Buffer.from('Plain')],
    ] as const) {
      const response = await post(charset, name);
      assert.equal(response.status, 415, charset);
      assert.match(
        pageText(await response.text()),
        /This form declares a charset other than UTF-8: send it as UTF-8/,
        charset,
      );
    }
    assert.deepEqual(
      (await server.app.directory.listGroups()).map((group) => group.name),
      groupsBefore,
      'no group was created',
    );
    for (const [charset, name] of [
      ['utf-8', 'Caf\u00e9 One'],
      ['"UTF-8"', 'Caf\u00e9 Two'],
    ] as const) {
      const response = await post(charset, Buffer.from(encodeURIComponent(name)));
      assert.equal(response.status, 303, charset);
    }
    const names = (await server.app.directory.listGroups()).map((group) => group.name);
    assert.ok(names.includes('Caf\u00e9 One') && names.includes('Caf\u00e9 Two'), String(names));
  });

  it('signs out through the provider logout, after which the console asks for a sign-in again', async () => {
    const browser = await consoleSignIn(server, member.username);
    const page = await consoleGet(browser, `${server.origin}/account`);
    const out = await consolePost(browser, `${server.origin}/account/sign-out`, page.csrf!);
    assert.equal(out.status, 303);
    assert.match(
      out.location ?? '',
      new RegExp(`^${server.issuer}/logout/\\?client_id=${ACCOUNT_CONSOLE_CLIENT_ID}`),
    );
    const after = await browser.fetch(`${server.origin}/account`);
    assert.equal(after.status, 302, 'the console cookie is gone');
  });

  it('ends the console session when the provider session ends', async () => {
    const browser = await consoleSignIn(server, member.username);
    assert.equal((await consoleGet(browser, `${server.origin}/account`)).status, 200);
    await server.app.database.db
      .deleteFrom('oidc_payload')
      .where('model', '=', 'Session')
      .where('user_id', '=', String(member.id))
      .execute();
    const after = await browser.fetch(`${server.origin}/account`);
    assert.equal(after.status, 302);
  });

  it('shows a landing page at / with the community name and links for the signed-in user', async () => {
    const anonymous = await consoleGet(new Browser(), `${server.origin}/`);
    assert.equal(anonymous.status, 200);
    assert.match(anonymous.body, /<h1>aa-oidc<\/h1>/);
    assert.match(anonymous.body, /href="\/account"/);
    assert.doesNotMatch(anonymous.body, /href="\/admin"/);
    const browser = await consoleSignIn(server, admin.username);
    const signedIn = await consoleGet(browser, `${server.origin}/`);
    assert.match(signedIn.body, /<a href="\/admin">Administration<\/a>/);
  });
});
