import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { currentCode } from '../../src/two-factor/totp.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { consoleGet, consoleSignIn, pageText } from '../helpers/console.ts';
import { introspect } from '../helpers/flows.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';
import { holdTokensAt } from '../logout/rp-receiver.ts';
import { Browser, PASSWORD, seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';
import { type RawResponse, rawRequest } from '../http/raw-request.ts';

/**
 * The member pages (`/account…`) as an attacker sends to them, with a real server and real sessions:
 * forms without their CSRF token or with someone else's, another member's ids, other methods,
 * bodies that are no form or too big, garbage ids and codes, passwords no one can type, requests
 * after the session ended or the member was deactivated, another host. Each is answered with a 4xx
 * page that says why (or the redirect into the sign-in), never a 500; nothing is changed; no secret
 * is echoed or logged; an audit event tells only what happened.
 */
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const STACK_OR_DRIVER_TEXT =
  /\bat [^\n<]*\.[cm]?[jt]s:\d+|TypeError|ReferenceError|invalid byte sequence|SQLITE_|syntax error at/;
const NEW_PASSWORD = 'a hostile new passphrase';

describe(`hostile requests to the account pages (${testDatabaseKind})`, () => {
  const harness = createLeakHarness();
  let server: TestServer;
  let wiki: { clientId: string; clientSecret: string | null };
  const url = (path: string) => `${server.origin}${path}`;

  before(async () => {
    server = await startServer({}, { harness });
    wiki = await seedApp(server, { name: 'Wiki', skipAuthorization: true });
    harness.registerSecret(PASSWORD, 'the members’ password');
    harness.registerSecret(NEW_PASSWORD, 'a new password sent in a refused form');
  });
  after(async () => server.close());

  /** A member signed in to the console, with the CSRF token of their account page. */
  async function member(): Promise<{ id: number; username: string; browser: Browser; csrf: string }> {
    const user = await seedUser(server);
    const browser = await consoleSignIn(server, user.username);
    const page = await consoleGet(browser, url('/account'));
    assert.equal(page.status, 200);
    // Not the interaction's cookie: its uid is in the addresses of the sign-in, which are logged.
    for (const [key, value] of browser.cookies)
      if (/\|(?:_aa_oidc_console|_session)(?:\.sig)?$/.test(key)) harness.registerSecret(value, key);
    // The page's own forms carry it, the answers to refused ones too: no log line may.
    harness.registerSecret(page.csrf!, `the CSRF token of ${user.username}`);
    return { ...user, browser, csrf: page.csrf! };
  }

  /** The POST routes of the member pages, with a body each would act on were it let through. */
  function accountForms(target: { csrf: string }): Array<{ path: string; fields: Record<string, string> }> {
    const fields: Record<string, Record<string, string>> = {
      '/account/password': {
        current_password: PASSWORD,
        new_password: NEW_PASSWORD,
        new_password_again: NEW_PASSWORD,
      },
      '/account/two-factor/confirm': { code: '123456', enrolment: 'x' },
      '/account/two-factor/disable': { code: '123456' },
    };
    const forms = server.app.consoleRoutes
      .filter((route) => route.method === 'POST' && route.path.startsWith('/account/'))
      .map((route) => ({
        path: route.path.replace(':clientId', encodeURIComponent(wiki.clientId)),
        fields: { csrf_token: target.csrf, ...fields[route.path] },
      }));
    assert.deepEqual(
      forms.map((form) => form.path).sort(),
      [
        `/account/apps/${wiki.clientId}/revoke`,
        '/account/password',
        '/account/sign-out',
        '/account/sign-out-everywhere',
        '/account/two-factor/confirm',
        '/account/two-factor/disable',
        '/account/two-factor/enrol',
      ].sort(),
      'every form of the member pages is swept (a new one is added here)',
    );
    return forms;
  }

  const post = (
    browser: Browser | undefined,
    path: string,
    body: string | Buffer,
    headers: Record<string, string> = FORM,
  ) =>
    rawRequest(url(path), {
      method: 'POST',
      ...(browser && { browser }),
      headers: { origin: server.origin, ...headers },
      body,
    });

  /** What no answer to a hostile request may be or hold. */
  function assertHeld(label: string, response: RawResponse, sent: readonly string[] = []): void {
    assert.ok(
      response.status >= 300 && response.status < 500,
      `${label}: ${response.status} ${pageText(response.body).slice(0, 300)}`,
    );
    assert.doesNotMatch(response.body, STACK_OR_DRIVER_TEXT, `${label}: no stack trace or driver text`);
    for (const secret of [PASSWORD, NEW_PASSWORD, ...sent])
      assert.ok(!response.body.includes(secret), `${label}: nothing sent echoed`);
  }

  /**
   * Everything a form of the member pages could change: the users (password, activity), the
   * two-factor enrolments and codes, the sessions, grants and tokens, the delivery jobs, the wrong
   * attempts counted, and the audit events published.
   */
  async function stored(): Promise<string> {
    // The events of the requests answered so far, all delivered to the harness.
    await server.app.audit.idle();
    const db = server.app.database.db;
    const users = await db
      .selectFrom('app_user')
      .select(['id', 'password_hash', 'active'])
      .orderBy('id')
      .execute();
    const payloads = await db
      .selectFrom('oidc_payload')
      .select(['model', sql<number>`count(*)`.as('n')])
      .groupBy('model')
      .orderBy('model')
      .execute();
    const count = async (table: 'totp_enrolment' | 'recovery_code' | 'login_failure' | 'bcl_job') =>
      `${table}=${
        (
          await db
            .selectFrom(table)
            .select(sql<number>`count(*)`.as('n'))
            .executeTakeFirstOrThrow()
        ).n
      }`;
    return JSON.stringify({
      users: users.map((user) => `${user.id}:${user.active}:${user.password_hash}`),
      payloads: payloads.map((row) => `${row.model}=${row.n}`),
      counts: await Promise.all(
        (['totp_enrolment', 'recovery_code', 'login_failure', 'bcl_job'] as const).map(count),
      ),
      audit: harness.auditRecords.length,
    });
  }

  it('refuses a form without its CSRF token, with a garbage one, with another member’s, or with another session’s of the same member (403), changing nothing', async () => {
    const alice = await member();
    const bob = await member();
    const aliceElsewhere = await consoleSignIn(server, alice.username);
    const elsewhereToken = (await consoleGet(aliceElsewhere, url('/account'))).csrf!;
    // One from before a sign-in again in the same browser: the session is the same, its console cookie new.
    const before = alice.csrf;
    await consoleSignIn(server, alice.username, { browser: alice.browser });
    const renewed = (await consoleGet(alice.browser, url('/account'))).csrf!;
    assert.notEqual(renewed, before, 'a sign-in again gives the forms a new token');
    const unchanged = await stored();
    for (const { path, fields } of accountForms(alice)) {
      const without = Object.fromEntries(Object.entries(fields).filter(([name]) => name !== 'csrf_token'));
      const tokens: Array<[string, string | undefined]> = [
        ['no CSRF token', undefined],
        ['an empty CSRF token', ''],
        ['a garbage CSRF token', 'x'.repeat(43)],
        ['another member’s CSRF token', bob.csrf],
        ['the CSRF token of another session of the member', elsewhereToken],
        ['the CSRF token from before a sign-in again', before],
      ];
      for (const [how, token] of tokens) {
        const body = new URLSearchParams(token === undefined ? without : { csrf_token: token, ...without });
        const response = await post(alice.browser, path, body.toString());
        assertHeld(`${path} with ${how}`, response);
        assert.equal(response.status, 403, `${path} with ${how}`);
        assert.match(pageText(response.body), /This form has expired or did not come from this site/);
      }
      // The token in the query rather than the form is no token.
      const inQuery = await post(
        alice.browser,
        `${path}?csrf_token=${encodeURIComponent(renewed)}`,
        new URLSearchParams(without).toString(),
      );
      assertHeld(`${path} with the token in the query`, inQuery);
      assert.equal(inQuery.status, 403, `${path} with the token in the query`);
    }
    assert.equal(await stored(), unchanged, 'nothing changed by a refused form');
    // The member's own token of now is taken: the refusals were about the token alone.
    const taken = await post(
      alice.browser,
      '/account/two-factor/enrol',
      new URLSearchParams({ csrf_token: renewed }).toString(),
    );
    assert.equal(taken.status, 200);
    assert.match(pageText(taken.body), /Set up two-factor sign-in/);
  });

  it('refuses a form from another site, or sent for another host, whatever its token (403)', async () => {
    const carol = await member();
    const unchanged = await stored();
    for (const { path, fields } of accountForms(carol)) {
      const body = new URLSearchParams(fields).toString();
      for (const [how, headers] of [
        ['from another origin', { ...FORM, origin: 'https://evil.example' }],
        ['from a sandboxed page (Origin: null)', { ...FORM, origin: 'null' }],
        ['marked cross-site', { ...FORM, 'sec-fetch-site': 'cross-site' }],
        ['marked same-site (another host of the domain)', { ...FORM, 'sec-fetch-site': 'same-site' }],
        [
          'from another origin, for its host',
          { ...FORM, origin: 'http://evil.example', host: 'evil.example' },
        ],
      ] as const) {
        const response = await post(carol.browser, path, body, headers);
        assertHeld(`${path} ${how}`, response);
        assert.equal(response.status, 403, `${path} ${how}`);
        assert.doesNotMatch(response.body, /evil\.example/, `${path} ${how}: the host is not echoed`);
      }
    }
    assert.equal(await stored(), unchanged, 'nothing changed by a refused form');
  });

  it('sends a page asked for under another Host to the issuer’s sign-in, never to that host', async () => {
    for (const host of ['evil.example', 'evil.example:8443', 'localhost:1']) {
      for (const path of ['/account', '/account/sign-out-everywhere']) {
        const response = await rawRequest(url(path), { headers: { host } });
        assert.equal(response.status, 302, `${path} for ${host}`);
        assert.ok(
          response.headers.location?.startsWith(`${server.issuer}/authorize/`),
          `${path} for ${host}: ${response.headers.location}`,
        );
      }
    }
    const malformed = await rawRequest(url('/account'), { headers: { host: 'a b' } });
    assert.equal(malformed.status, 400);
  });

  it('answers other methods than a member page takes with 405 naming the one it does', async () => {
    const dave = await member();
    const unchanged = await stored();
    const routes = server.app.consoleRoutes.filter((route) => route.path.startsWith('/account'));
    for (const route of routes) {
      const path = route.path.replace(':clientId', encodeURIComponent(wiki.clientId));
      const taken: string[] = server.app.consoleRoutes
        .filter((other) => other.path === route.path)
        .map((other) => other.method);
      for (const method of ['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'GET'].filter(
        (method) => !taken.includes(method),
      )) {
        const response = await rawRequest(url(path), { method, browser: dave.browser });
        assertHeld(`${method} ${path}`, response);
        assert.equal(response.status, 405, `${method} ${path}`);
        assert.equal(response.headers.allow, taken.join(', '), `${method} ${path}: Allow`);
      }
    }
    assert.equal(await stored(), unchanged, 'nothing changed by another method');
  });

  it('answers a body that is no form, or too big, with a 4xx naming why, changing nothing, the token still good', async () => {
    const erin = await member();
    const unchanged = await stored();
    for (const { path, fields } of accountForms(erin)) {
      const form = new URLSearchParams(fields).toString();
      const [last] = Object.keys(fields).slice(-1);
      const cases: Array<[string, Record<string, string>, string | Buffer, number, RegExp]> = [
        [
          'JSON',
          { 'content-type': 'application/json' },
          JSON.stringify(fields),
          415,
          /not application\/json/,
        ],
        ['text', { 'content-type': 'text/plain' }, form, 415, /not text\/plain/],
        [
          'multipart',
          { 'content-type': 'multipart/form-data; boundary=b' },
          `--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n${erin.csrf}\r\n--b--\r\n`,
          415,
          /not multipart\/form-data/,
        ],
        ['no type', {}, form, 415, /not a body without a type/],
        [
          'Latin-1',
          { 'content-type': 'application/x-www-form-urlencoded; charset=iso-8859-1' },
          form,
          415,
          /declares a charset other than UTF-8/,
        ],
        [
          'bytes that are no UTF-8',
          FORM,
          Buffer.concat([Buffer.from(`${form}&x=`), Buffer.from([0xc3, 0x28])]),
          400,
          /must be UTF-8 text/,
        ],
        ['a broken %-escape', FORM, `${form}&x=%E2%82`, 400, /must be UTF-8 text/],
        [
          'the CSRF token twice',
          FORM,
          `${form}&csrf_token=${encodeURIComponent(erin.csrf)}`,
          400,
          /the field csrf_token more than once/,
        ],
        [
          `${last} twice`,
          FORM,
          `${form}&${last}=${encodeURIComponent(fields[last!]!)}`,
          400,
          new RegExp(`the field ${last} more than once`),
        ],
        ['a field of 70 KB', FORM, `${form}&x=${'x'.repeat(70_000)}`, 413, /larger than 64 KiB/],
        ['a field of a megabyte', FORM, `${form}&x=${'x'.repeat(1 << 20)}`, 413, /larger than 64 KiB/],
      ];
      for (const [how, headers, body, status, says] of cases) {
        const response = await post(erin.browser, path, body, headers);
        assertHeld(`${path} with ${how}`, response);
        assert.equal(
          response.status,
          status,
          `${path} with ${how}: ${pageText(response.body).slice(0, 200)}`,
        );
        assert.match(pageText(response.body), says, `${path} with ${how}`);
      }
    }
    assert.equal(await stored(), unchanged, 'nothing changed by a form refused');
    // The same token in a form as a browser sends it is still taken.
    const page = await consoleGet(erin.browser, url('/account/sign-out-everywhere'));
    assert.equal(page.status, 200);
    assert.equal(page.csrf, erin.csrf);
  });

  it('revokes nothing of another member, and answers a garbage or unknown client id as nothing held', async () => {
    const frank = await member();
    const owner = await seedUser(server);
    const tokens = await holdTokensAt(server, new Browser(), wiki, owner.username);
    harness.registerSecret(tokens.refresh_token, 'the refresh token of the owner of a grant');
    const audited = harness.auditRecords.length;
    const unchanged = await stored();
    const body = new URLSearchParams({ csrf_token: frank.csrf }).toString();
    for (const id of [
      encodeURIComponent(wiki.clientId),
      'aa-oidc-account',
      'unknown',
      'x'.repeat(5000),
      '%20',
      '%3Cscript%3E',
      '__proto__',
      'constructor',
      'a%2Fb',
      '%E2%80%AE',
    ]) {
      const response = await post(frank.browser, `/account/apps/${id}/revoke`, body);
      assertHeld(`revoke ${id.slice(0, 20)}`, response);
      assert.equal(response.status, 303, `revoke ${id.slice(0, 20)}`);
      assert.equal(response.headers.location, '/account?done=nothing-held#apps', `revoke ${id.slice(0, 20)}`);
    }
    for (const id of ['%00', 'a%00b', '%FF', '%C3%28']) {
      const response = await post(frank.browser, `/account/apps/${id}/revoke`, body);
      assertHeld(`revoke ${id}`, response);
      assert.equal(response.status, 400, `revoke ${id}`);
      assert.match(pageText(response.body), /This address is malformed/);
    }
    assert.equal(await stored(), unchanged, 'nothing changed');
    assert.deepEqual(harness.auditRecords.slice(audited), [], 'no event: nothing happened');
    const introspected = await introspect(
      server,
      { clientId: wiki.clientId, clientSecret: wiki.clientSecret! },
      tokens.refresh_token,
    );
    assert.equal(introspected.body.active, true, 'the owner’s token lives');
  });

  it('refuses a code of the wrong length or characters without counting it, and a replayed one as what it is', async () => {
    const grace = await member();
    const form = (fields: Record<string, string>) =>
      new URLSearchParams({ csrf_token: grace.csrf, ...fields }).toString();
    const enrol = await post(grace.browser, '/account/two-factor/enrol', form({}));
    assert.equal(enrol.status, 200);
    const enrolment = /name="enrolment" value="([^"]*)"/.exec(enrol.body)![1]!;
    const secret = /id="totp-secret">([^<]*)</.exec(enrol.body)![1]!.replace(/ /g, '');
    harness.registerSecret(secret, 'the TOTP secret');
    const shapeless = [
      '',
      '12345',
      '1234567',
      'abcdef',
      '12 34 5',
      '123456\0',
      '\u202e123456',
      '１２３４５',
      'x'.repeat(5000),
    ];

    // Another member's enrolment, or none: refused before any code is looked at.
    const other = await member();
    const otherEnrol = await post(
      other.browser,
      '/account/two-factor/enrol',
      new URLSearchParams({ csrf_token: other.csrf }).toString(),
    );
    const otherEnrolment = /name="enrolment" value="([^"]*)"/.exec(otherEnrol.body)![1]!;
    let unchanged = await stored();
    for (const shown of [otherEnrolment, '', 'e'.repeat(60_000)]) {
      const response = await post(
        grace.browser,
        '/account/two-factor/confirm',
        form({ code: currentCode(secret), enrolment: shown }),
      );
      assertHeld(`confirm with enrolment ${shown.slice(0, 10)}`, response, [secret]);
      assert.equal(response.status, 409);
      assert.match(pageText(response.body), /Two-factor enrolment was started again elsewhere/);
    }
    for (const code of shapeless) {
      const response = await post(grace.browser, '/account/two-factor/confirm', form({ code, enrolment }));
      assertHeld(`confirm ${JSON.stringify(code.slice(0, 10))}`, response);
      assert.equal(response.status, 400, `confirm ${JSON.stringify(code.slice(0, 10))}`);
      assert.match(pageText(response.body), /Enter the six-digit code your app shows\./);
    }
    assert.equal(await stored(), unchanged, 'no code counted, nothing turned on');

    const code = currentCode(secret);
    const confirmed = await post(grace.browser, '/account/two-factor/confirm', form({ code, enrolment }));
    assert.equal(confirmed.status, 200);
    const recoveryCodes = [...confirmed.body.matchAll(/<li><code>([^<]*)<\/code><\/li>/g)].map(
      (match) => match[1]!,
    );
    assert.equal(recoveryCodes.length > 0, true);
    for (const recovery of recoveryCodes) harness.registerSecret(recovery, 'a recovery code');

    unchanged = await stored();
    for (const wrong of [...shapeless, 'ABCD-EFGH', '0'.repeat(64), '0'.repeat(65)]) {
      const response = await post(grace.browser, '/account/two-factor/disable', form({ code: wrong }));
      assertHeld(`disable ${JSON.stringify(wrong.slice(0, 10))}`, response, recoveryCodes);
      assert.equal(response.status, 400, `disable ${JSON.stringify(wrong.slice(0, 10))}`);
      assert.match(
        pageText(response.body),
        /Enter the six-digit code your app shows, or one of your recovery codes/,
      );
    }
    assert.equal(await stored(), unchanged, 'no code counted, two-factor sign-in still on');

    // The code that turned it on, sent again to turn it off: refused as used already, and told so once.
    const audited = harness.auditRecords.length;
    const replayed = await post(grace.browser, '/account/two-factor/disable', form({ code }));
    assertHeld('disable with the code used already', replayed, recoveryCodes);
    assert.equal(replayed.status, 401);
    assert.match(pageText(replayed.body), /That code is not valid\. Two-factor sign-in is still on\./);
    assert.equal((await server.app.twoFactor.status(grace.id)).enrolled, true);
    await server.app.audit.idle();
    assert.deepEqual(
      harness.auditRecords
        .slice(audited)
        .map((record) => [record.kind, (record as { reason?: string }).reason]),
      [['two_factor_failed', 'replayed']],
    );
    assert.ok(
      !harness.logLines.some((line) => line.includes(`"${code}"`)),
      'the code itself is in no log line',
    );
  });

  it('refuses a new password no sign-in page can type (a control character) or none types on purpose (a hidden character) naming the character, or one too long, changing nothing', async () => {
    const heidi = await member();
    const audited = harness.auditRecords.length;
    const unchanged = await stored();
    const change = (fields: Record<string, string>) =>
      post(
        heidi.browser,
        '/account/password',
        new URLSearchParams({ csrf_token: heidi.csrf, ...fields }).toString(),
      );
    const typed = (next: string) => ({
      current_password: PASSWORD,
      new_password: next,
      new_password_again: next,
    });
    for (const [next, named] of [
      ['a line\r\nbreak in it', 'U+000D'],
      ['a line\nbreak in it', 'U+000A'],
      ['a\ttab in the password', 'U+0009'],
      ['colour \u001b[31mred\u001b[0m', 'U+001B'],
      ['a bell \u0007 rings here', 'U+0007'],
      ['a delete \u007f in it', 'U+007F'],
      ['a C1 \u009b control in it', 'U+009B'],
    ] as const) {
      const response = await change(typed(next));
      assertHeld(`a new password with ${named}`, response, [next]);
      assert.equal(
        response.status,
        400,
        `a new password with ${named}: ${pageText(response.body).slice(0, 200)}`,
      );
      assert.ok(
        pageText(response.body).includes(
          `the password holds a control character (${named}), which no sign-in page can type`,
        ),
        `a new password with ${named}: ${pageText(response.body).slice(0, 300)}`,
      );
    }
    // A bidirectional control or an invisible character: no one types one on purpose, and it makes a
    // password that looks like another.
    for (const [next, named] of [
      ['admin\u202eword passphrase', 'U+202E, a bidirectional control character'],
      ['\u2066isolated\u2069 passphrase', 'U+2066, a bidirectional control character'],
      ['zero\u200bwidth passphrase', 'U+200B, an invisible character'],
      ['soft\u00adhyphen passphrase', 'U+00AD, an invisible character'],
      ['\ufeffbyte order mark', 'U+FEFF, an invisible character'],
    ] as const) {
      const response = await change(typed(next));
      assertHeld(`a new password with ${named}`, response, [next]);
      assert.equal(response.status, 400, `a new password with ${named}`);
      assert.ok(
        pageText(response.body).includes(
          `the password holds a hidden character (${named}), which no one types at a sign-in page on purpose`,
        ),
        `a new password with ${named}: ${pageText(response.body).slice(0, 300)}`,
      );
    }
    const long = 'x'.repeat(2000);
    const tooLong = await change(typed(long));
    assertHeld('a new password of 2000 characters', tooLong, [long]);
    assert.equal(tooLong.status, 400);
    assert.match(pageText(tooLong.body), /the password is too long: at most 1024 characters/);
    const mega = 'y'.repeat(1 << 20);
    const megabyte = await change(typed(mega));
    assertHeld('a new password of a megabyte', megabyte, [mega.slice(0, 100)]);
    assert.equal(megabyte.status, 413);
    assert.equal(await stored(), unchanged, 'no password changed, no attempt counted');
    assert.deepEqual(harness.auditRecords.slice(audited), [], 'no event: nothing happened');
    assert.equal((await server.app.directoryAdmin.verifyPassword(heidi.username, PASSWORD)).outcome, 'valid');
    // Right beside them, a password a sign-in page can type, spaces and an emoji sequence's joiner
    // (U+200D) and all, is taken.
    const taken = await change(typed(' spaced  out \u{1f469}\u200d\u{1f4bb} passphrase '));
    assert.equal(taken.status, 303);
  });

  it('sends a form after the session ended to the sign-in, and refuses one after the member was deactivated, changing nothing', async () => {
    const ivan = await member();
    const ended = await member();
    const signedOut = await post(
      ended.browser,
      '/account/sign-out-everywhere',
      new URLSearchParams({ csrf_token: ended.csrf }).toString(),
    );
    assert.equal(signedOut.status, 303);
    let unchanged = await stored();
    for (const { path, fields } of accountForms(ended).filter((form) => form.path !== '/account/sign-out')) {
      const response = await post(ended.browser, path, new URLSearchParams(fields).toString());
      assertHeld(`${path} after the session ended`, response);
      assert.equal(response.status, 302, `${path} after the session ended`);
      assert.ok(response.headers.location?.startsWith(`${server.issuer}/authorize/`));
    }
    assert.equal(await stored(), unchanged, 'nothing changed after the session ended');

    // Deactivated in a directory that ends no session itself (as Alliance Auth's): the console refuses.
    await server.app.database.db
      .updateTable('app_user')
      .set({ active: 0 })
      .where('id', '=', ivan.id)
      .execute();
    unchanged = await stored();
    for (const { path, fields } of accountForms(ivan).filter((form) => form.path !== '/account/sign-out')) {
      // The answers keep no cookie (rawRequest): each form meets the session as it was.
      const response = await post(ivan.browser, path, new URLSearchParams(fields).toString());
      assertHeld(`${path} after a deactivation`, response);
      assert.equal(response.status, 403, `${path} after a deactivation`);
      assert.match(pageText(response.body), /This account is deactivated/);
      assert.ok(
        response.headers['set-cookie']?.some((line) =>
          /^_aa_oidc_console=;.*expires=Thu, 01 Jan 1970/i.test(line),
        ),
        `${path} after a deactivation: the console cookie is forgotten`,
      );
    }
    assert.equal(await stored(), unchanged, 'nothing changed for a deactivated member');
  });

  it('logs no error, and no password, token, code or secret, for any of it', async () => {
    const failures = harness.logLines.filter((line) => /"level":(50|60)|console request failed/.test(line));
    assert.deepEqual(failures, []);
    await harness.assertNoLeaks();
  });
});
