import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { decodeJwt } from 'jose';
import type { AuditRecord } from '../../src/audit/events.ts';
import { currentCode } from '../../src/two-factor/totp.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { consoleGet, consoleSignIn, pageText } from '../helpers/console.ts';
import { authorizeParams } from '../helpers/flows.ts';
import {
  authorizeUrl,
  basicAuth,
  Browser,
  formAction,
  formField,
  PASSWORD,
  postForm,
  REDIRECT_URI,
  seedApp,
  seedTwoFactorUser,
  seedUser,
  signIn,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

/**
 * Signs in with the password at `server` for `client`, in a new browser; returns the page that
 * follows (the code page), the browser and the PKCE verifier.
 */
async function passwordStepAt(
  server: TestServer,
  client: { clientId: string },
  username: string,
  password: string,
) {
  const browser = new Browser();
  const { verifier, params } = authorizeParams(
    { clientId: client.clientId, clientSecret: '' },
    { scope: 'openid' },
  );
  const response = await signIn(browser, server, authorizeUrl(server, params), { username, password });
  return { browser, verifier, response, body: await response.text() };
}

describe(`two-factor sign-in at the login page (${testDatabaseKind})`, () => {
  let server: TestServer;
  let client: { clientId: string; clientSecret: string | null };
  let user: { id: number; username: string };
  let secret: string;
  let recoveryCodes: string[];
  let clock = Date.now();

  before(async () => {
    server = await startServer({
      login: { maxFailuresPerAccountAndAddress: 4, maxFailuresPerAccount: 20, maxFailuresPerAddress: 50 },
    });
    client = await seedApp(server, { skipAuthorization: true });
    ({ user, secret, recoveryCodes } = await seedTwoFactorUser(server));
  });
  after(async () => server.close());

  /** Signs in with the password; returns the page that follows (the code page) and its browser. */
  const passwordStep = (username = user.username, password = PASSWORD) =>
    passwordStepAt(server, client, username, password);

  async function submitCode(
    browser: Browser,
    page: string,
    code: string,
    pending = formField(page, 'pending'),
  ) {
    return browser.follow(formAction(page, server.origin), server.origin, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf_token: formField(page, 'csrf_token'), pending, code }).toString(),
    });
  }

  async function nextStepCode(): Promise<string> {
    clock += 30_000;
    return currentCode(secret, clock);
  }

  it('asks an enrolled user for a code after the password, and signs in with amr pwd and otp', async () => {
    const { browser, verifier, response, body } = await passwordStep();
    assert.equal(response.status, 200);
    assert.match(pageText(body), /Enter your code/);
    assert.match(body, /autocomplete="one-time-code"/);

    const wrong = await submitCode(browser, body, '000000');
    assert.equal(wrong.status, 401);
    const wrongBody = await wrong.text();
    assert.match(wrongBody, /<p class="field-error" id="code-error" role="alert">/);

    // The code of the current step was spent by the enrolment: the app shows the next one soon.
    const code = currentCode(secret, Date.now() + 30_000);
    const done = await submitCode(browser, wrongBody, code);
    assert.equal(done.status, 303, await done.clone().text());
    const location = new URL(done.headers.get('location')!);
    assert.equal(`${location.origin}${location.pathname}`, REDIRECT_URI);
    const exchanged = await postForm(
      `${server.issuer}/token/`,
      {
        grant_type: 'authorization_code',
        code: location.searchParams.get('code')!,
        redirect_uri: REDIRECT_URI,
        code_verifier: verifier,
      },
      { authorization: basicAuth(client.clientId, client.clientSecret!) },
    );
    assert.equal(exchanged.status, 200);
    const sid = decodeJwt(String(exchanged.body.id_token)).sid;
    const sessions = await server.app.database.db
      .selectFrom('oidc_payload')
      .select('payload')
      .where('model', '=', 'Session')
      .where('user_id', '=', String(user.id))
      .execute();
    const amrs = sessions
      .map(
        (row) =>
          JSON.parse(row.payload) as { amr?: string[]; authorizations?: Record<string, { sid?: string }> },
      )
      .filter((payload) => payload.authorizations?.[client.clientId]?.sid === sid)
      .map((payload) => payload.amr);
    assert.deepEqual(amrs, [['pwd', 'otp']], 'the session records both methods');

    // The same code never counts twice, even in another sign-in.
    const again = await passwordStep();
    const replay = await submitCode(again.browser, again.body, code);
    assert.equal(replay.status, 401);
  });

  it('stamps the last login once the sign-in is complete, never at a right password whose code is wrong or not given yet', async () => {
    const lastLogin = async (id: number) => {
      const row = await server.app.database.db
        .selectFrom('app_user')
        .select('last_login_at')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      return row.last_login_at === null ? null : Number(row.last_login_at);
    };
    const enrolment = await seedTwoFactorUser(server);
    const person = enrolment.user;

    const { browser, body } = await passwordStep(person.username);
    assert.match(pageText(body), /Enter your code/);
    assert.equal(await lastLogin(person.id), null, 'a right password awaiting its code is no login');
    const wrong = await submitCode(browser, body, '000000');
    assert.equal(wrong.status, 401);
    assert.equal(await lastLogin(person.id), null, 'a wrong code is no login');

    const before = Date.now();
    const done = await submitCode(
      browser,
      await wrong.text(),
      currentCode(enrolment.secret, Date.now() + 30_000),
    );
    assert.equal(done.status, 303);
    assert.ok(((await lastLogin(person.id)) ?? 0) >= before, 'stamped when the code completes the sign-in');

    // Without two-factor sign-in, the password completes it.
    const plain = await seedUser(server);
    const signedIn = await passwordStep(plain.username);
    assert.equal(signedIn.response.status, 303);
    assert.ok(((await lastLogin(plain.id)) ?? 0) >= before, 'stamped at the password alone');
  });

  it('accepts a recovery code instead, once', async () => {
    const first = await passwordStep();
    const done = await submitCode(first.browser, first.body, recoveryCodes[0]!);
    assert.equal(done.status, 303);
    const second = await passwordStep();
    assert.equal((await submitCode(second.browser, second.body, recoveryCodes[0]!)).status, 401);
  });

  it('never cuts a code: a right recovery code with a character past the 64 a code may have fails, and stays unspent', async () => {
    const enrolment = await seedTwoFactorUser(server);
    const person = enrolment.user;
    const code = enrolment.recoveryCodes[0]!;
    // The first 64 characters are the code and spaces, which a code may hold: cut there, it would pass.
    const longer = `${code.padEnd(64, ' ')}x`;
    const first = await passwordStep(person.username);
    const refused = await submitCode(first.browser, first.body, longer);
    assert.equal(refused.status, 400);
    assert.match(
      pageText(await refused.text()),
      /Enter the six-digit code your app shows, or one of your recovery codes/,
    );
    const second = await passwordStep(person.username);
    assert.equal(
      (await submitCode(second.browser, second.body, code)).status,
      303,
      'the code itself, unspent',
    );
  });

  it('refuses a code that is none (nothing typed, five digits, a word) naming what is valid, counting no wrong code, and takes full-width digits', async () => {
    const enrolment = await seedTwoFactorUser(server);
    const failures = async () =>
      (await server.app.database.db.selectFrom('login_failure').select('id').execute()).length;
    const { browser, body } = await passwordStep(enrolment.user.username);
    const before = await failures();
    let page = body;
    for (const code of ['', '   ', '12345', '1234567', 'abcd-efgh', '١٢٣٤٥٦']) {
      const refused = await submitCode(browser, page, code);
      assert.equal(refused.status, 400, JSON.stringify(code));
      page = await refused.text();
      assert.match(
        pageText(page),
        /Enter the six-digit code your app shows, or one of your recovery codes \(10 letters and digits, like abcde-fghjk, with none of i, l, o, 0, 1\)\./,
      );
    }
    assert.equal(await failures(), before, 'no wrong code counted');
    // An East Asian keyboard's digits are the code the app shows.
    const code = currentCode(enrolment.secret, Date.now() + 30_000);
    const fullWidth = [...code].map((digit) => String.fromCodePoint(0xff10 + Number(digit))).join('');
    const done = await submitCode(browser, page, ` ${fullWidth.slice(0, 3)} ${fullWidth.slice(3)} `);
    assert.equal(done.status, 303);
  });

  it('refuses a changed or foreign sign-in state', async () => {
    const { browser, body } = await passwordStep();
    const pending = formField(body, 'pending');
    const [payload, mac] = pending.split('.');
    const forged = JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8')) as Record<string, unknown>;
    forged.userId = (forged.userId as number) + 1000;
    const tampered = `${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${mac}`;
    const response = await submitCode(browser, body, recoveryCodes[1]!, tampered);
    assert.equal(response.status, 400);
    assert.match(pageText(await response.text()), /took too long or was changed/);
  });

  it('does not complete a sign-in waiting for its code once the sessions were ended (a new password, signing out everywhere)', async () => {
    const enrolment = await seedTwoFactorUser(server);
    const person = enrolment.user;
    // The confirmation spent the current step's code; a stopped sign-in spends none.
    const code = () => currentCode(enrolment.secret, Date.now() + 30_000);

    const newPassword = 'a new password, 2026';
    for (const [password, reset] of [
      [PASSWORD, () => server.app.directoryAdmin.setPassword({ id: person.id }, newPassword)],
      [newPassword, () => server.app.tokens.signOutUser(person.username)],
    ] as const) {
      const waiting = await passwordStep(person.username, password);
      assert.match(pageText(waiting.body), /Enter your code/);
      await reset();
      const stopped = await submitCode(waiting.browser, waiting.body, code());
      assert.equal(stopped.status, 400);
      assert.match(
        pageText(await stopped.text()),
        /This sign-in was stopped: the account was signed out everywhere/,
      );
      assert.equal(
        (await server.app.twoFactor.status(person.id)).enrolled,
        true,
        'nothing else changed: the enrolment stays',
      );
    }
    // A sign-in begun after the change completes, with the new password.
    const fresh = await passwordStep(person.username, newPassword);
    const done = await submitCode(fresh.browser, fresh.body, code());
    assert.equal(done.status, 303, await done.clone().text());
  });

  it('counts wrong codes against the user, and a password given again buys no extra guesses', async () => {
    const victim = await seedTwoFactorUser(server);
    // The budget per account and address is four: two wrong codes after each of two password sign-ins
    // (one of them typed in capitals) spend it, whatever the password attempts held meanwhile.
    for (const typed of [victim.user.username, victim.user.username.toUpperCase()]) {
      const { browser, response, body: codePage } = await passwordStep(typed);
      assert.equal(response.status, 200, typed);
      let body = codePage;
      for (let n = 0; n < 2; n += 1) {
        const wrong = await submitCode(browser, body, '111111');
        assert.equal(wrong.status, 401, `${typed}, wrong code ${n + 1}`);
        body = await wrong.text();
      }
      if (typed !== victim.user.username) {
        const spent = await submitCode(browser, body, currentCode(victim.secret));
        assert.equal(spent.status, 429, 'even the right code is refused once the four are spent');
        assert.match(pageText(await spent.text()), /Too many wrong attempts/);
      }
    }
    void nextStepCode;
  });
});

/**
 * A wrong code after a right password means the password has leaked: each is told to the operator (a
 * warning, and a `two_factor_failed` audit event with the client's address, never the code), and a
 * user's wrong codes from every address together have a budget of their own, much smaller than a
 * password's (`login.maxCodeFailuresPerUser`, 10 by default).
 */
describe(`wrong two-factor codes: traced, and bounded per user (${testDatabaseKind})`, () => {
  let server: TestServer;
  let harness: LeakHarness;
  let client: { clientId: string; clientSecret: string | null };
  let admin: { id: number; username: string };

  before(async () => {
    harness = createLeakHarness();
    // Default budgets; client addresses come from X-Forwarded-For, sent here by a loopback "proxy".
    server = await startServer({ trustProxy: true }, { harness });
    client = await seedApp(server, { skipAuthorization: true });
    admin = await seedUser(server, { superuser: true });
  });
  after(async () => server.close());

  /** The password step of `username`, from this host; then the code form, sent from any address. */
  async function codeForm(username: string) {
    const { browser, response, body } = await passwordStepAt(server, client, username, PASSWORD);
    assert.equal(response.status, 200);
    let page = body;
    assert.match(pageText(page), /Enter your code/);
    return async (code: string, address: string) => {
      const answer = await browser.fetch(formAction(page, server.origin), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': address },
        body: new URLSearchParams({
          csrf_token: formField(page, 'csrf_token'),
          pending: formField(page, 'pending'),
          code,
        }).toString(),
      });
      const body = await answer.text();
      if (answer.status === 401) page = body;
      return { status: answer.status, body };
    };
  }

  /** A six-digit code no step near now accepts. */
  const wrongCode = (secret: string) =>
    ['914273', '000000', '111111', '222222', '333333'].find(
      (candidate) =>
        ![-2, -1, 0, 1, 2].some((step) => currentCode(secret, Date.now() + step * 30_000) === candidate),
    )!;

  const failedEvents = async (userId: number) => {
    await server.app.audit.idle();
    return harness.auditRecords.filter(
      (record): record is Extract<AuditRecord, { kind: 'two_factor_failed' }> =>
        record.kind === 'two_factor_failed' && record.user_id === userId,
    );
  };
  const warnings = (userId: number) =>
    harness.logLines
      .map((line) => JSON.parse(line) as { level?: number; msg?: string; userId?: number })
      .filter(
        (line) => line.msg === 'two-factor code wrong after a right first factor' && line.userId === userId,
      );

  it("tells of a wrong code (the app's or a recovery code) in a warning and an audit event, with the address and never the code", async () => {
    const { user, secret } = await seedTwoFactorUser(server);
    const wrong = wrongCode(secret);
    // Shaped as a recovery code, and none of this user's.
    const wrongRecovery = 'zzzzz-yyyyy';
    harness.registerSecret(wrongRecovery, 'a wrong recovery code');
    const send = await codeForm(user.username);
    assert.equal((await send(wrong, '198.51.100.7')).status, 401);
    assert.equal((await send(wrongRecovery, '2001:db8:7::1')).status, 401);

    const events = await failedEvents(user.id);
    assert.deepEqual(
      events.map(({ time: _time, request_id: requestId, ...event }) => ({
        ...event,
        request: typeof requestId,
      })),
      [
        {
          kind: 'two_factor_failed',
          user_id: user.id,
          client_id: client.clientId,
          code_kind: 'totp',
          first_factor: ['pwd'],
          reason: 'wrong',
          at: 'sign_in',
          address: '198.51.100.7',
          request: 'string',
        },
        {
          kind: 'two_factor_failed',
          user_id: user.id,
          client_id: client.clientId,
          code_kind: 'recovery_code',
          first_factor: ['pwd'],
          reason: 'wrong',
          at: 'sign_in',
          address: '2001:db8:7::1',
          request: 'string',
        },
      ],
    );
    const lines = warnings(user.id);
    assert.equal(lines.length, 2);
    assert.ok(
      lines.every((line) => line.level === 40),
      'at warn',
    );
    for (const text of [...harness.logLines, ...harness.auditRecords.map((record) => JSON.stringify(record))])
      assert.ok(!text.includes(wrong), `the code is nowhere: ${text}`);
    await harness.assertNoLeaks();

    // Listed where operators look: the audit log of the database (`aa-oidc audit list`, the admin UI).
    const stored = await server.app.auditStore.list({ kinds: ['two_factor_failed'], userId: user.id });
    assert.equal(stored.length, 2);
    const adminBrowser = await consoleSignIn(server, admin.username);
    const page = await consoleGet(
      adminBrowser,
      `${server.origin}/admin/audit?${new URLSearchParams({ user: user.username, kind: 'two_factor_failed' })}`,
    );
    assert.equal(page.status, 200);
    assert.match(pageText(page.body), /wrong two-factor code after pwd from 198\.51\.100\.7/);
    assert.match(pageText(page.body), /wrong recovery code after pwd from 2001:db8:7::1/);
  });

  it('tells a right code used already (a form sent twice, a code seen as it was typed) as replayed, and counts it as a wrong one', async () => {
    const { user, secret, recoveryCodes } = await seedTwoFactorUser(server);
    const code = currentCode(secret, Date.now() + 30_000);
    const recovery = recoveryCodes[0]!;
    harness.registerSecret(recovery, 'a used recovery code');
    assert.equal((await (await codeForm(user.username))(code, '198.51.100.20')).status, 303);
    assert.equal((await (await codeForm(user.username))(recovery, '198.51.100.20')).status, 303);
    // Another sign-in with the password, from elsewhere: the same codes again, then a wrong one.
    const send = await codeForm(user.username);
    assert.equal((await send(code, '203.0.113.21')).status, 401);
    assert.equal((await send(recovery, '203.0.113.22')).status, 401);
    assert.equal((await send(wrongCode(secret), '203.0.113.23')).status, 401);

    const told = (await failedEvents(user.id)).map(({ code_kind, reason, address }) => ({
      code_kind,
      reason,
      address,
    }));
    assert.deepEqual(told, [
      { code_kind: 'totp', reason: 'replayed', address: '203.0.113.21' },
      { code_kind: 'recovery_code', reason: 'replayed', address: '203.0.113.22' },
      { code_kind: 'totp', reason: 'wrong', address: '203.0.113.23' },
    ]);
    const lines = harness.logLines
      .map((line) => JSON.parse(line) as { level?: number; msg?: string; userId?: number; reason?: string })
      .filter((line) => line.userId === user.id && line.level === 40)
      .map((line) => [line.msg, line.reason]);
    assert.deepEqual(lines, [
      ['two-factor code used already, sent again after a right first factor', 'replayed'],
      ['two-factor code used already, sent again after a right first factor', 'replayed'],
      ['two-factor code wrong after a right first factor', 'wrong'],
    ]);
    for (const text of [...harness.logLines, ...harness.auditRecords.map((record) => JSON.stringify(record))])
      assert.ok(!text.includes(code), `the code is nowhere: ${text}`);
    await harness.assertNoLeaks();
    const adminBrowser = await consoleSignIn(server, admin.username);
    const page = await consoleGet(
      adminBrowser,
      `${server.origin}/admin/audit?${new URLSearchParams({ user: user.username, kind: 'two_factor_failed' })}`,
    );
    assert.match(
      pageText(page.body),
      /two-factor code used already, sent again after pwd from 203\.0\.113\.21/,
    );
    assert.match(
      pageText(page.body),
      /recovery code used already, sent again after pwd from 203\.0\.113\.22/,
    );

    // In the budget as wrong codes are: seven more wrong ones make ten, and a right code is refused.
    for (let n = 1; n <= 7; n += 1)
      assert.equal((await send(wrongCode(secret), `198.51.100.${100 + n}`)).status, 401, `wrong code ${n}`);
    assert.equal((await send(recoveryCodes[1]!, '203.0.113.50')).status, 429);
  });

  it("refuses a user's codes from any address once ten were wrong, the right one too, and tells of no code it did not check", async () => {
    const { user, secret } = await seedTwoFactorUser(server);
    const send = await codeForm(user.username);
    // Ten addresses, one wrong code each: every per-address budget has room.
    for (let n = 1; n <= 10; n += 1)
      assert.equal((await send(wrongCode(secret), `198.51.100.${n}`)).status, 401, `wrong code ${n}`);
    const right = () => currentCode(secret, Date.now() + 30_000);
    const refused = await send(right(), '203.0.113.50');
    assert.equal(refused.status, 429, 'the right code, from a fresh address, after ten wrong ones');
    assert.match(pageText(refused.body), /Too many wrong attempts/);
    // A sign-in begun again (the password is right) gains nothing.
    const again = await codeForm(user.username);
    assert.equal((await again(right(), '203.0.113.51')).status, 429);
    assert.equal((await failedEvents(user.id)).length, 10, 'one event per code checked and wrong');
    assert.equal(warnings(user.id).length, 10);
    // Another user is untouched.
    const other = await seedTwoFactorUser(server);
    const otherForm = await codeForm(other.user.username);
    assert.equal(
      (await otherForm(currentCode(other.secret, Date.now() + 30_000), '198.51.100.1')).status,
      303,
    );
  });
});

describe(`two-factor sign-in required for superusers (${testDatabaseKind})`, () => {
  let server: TestServer;
  let admin: { id: number; username: string };

  before(async () => {
    server = await startServer({ twoFactor: { requiredForSuperusers: true } });
    admin = await seedUser(server, { superuser: true });
  });
  after(async () => server.close());

  /**
   * A superuser's sign-in at the console up to the enrolment page: the page, the key it shows, and a
   * way to post the step's forms (with their CSRF token and signed state).
   */
  async function enrolmentOf(username: string) {
    const browser = new Browser();
    const start = await signIn(browser, server, `${server.origin}/account/sign-in?return=/admin`, {
      username,
      password: PASSWORD,
    });
    const page = await start.text();
    const secret = /<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(page)?.[1]?.replaceAll(' ', '') ?? '';
    const post = (form: string, fields: Record<string, string>) =>
      browser.follow(formAction(form, server.origin), server.origin, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          csrf_token: formField(form, 'csrf_token'),
          pending: formField(form, 'pending'),
          ...fields,
        }).toString(),
      });
    return { browser, status: start.status, page, secret, post };
  }

  it('makes a superuser without two-factor set it up during the login, then shows the recovery codes once', async () => {
    const { browser, status, page: enrolPage, secret, post } = await enrolmentOf(admin.username);
    assert.equal(status, 200);
    assert.match(pageText(enrolPage), /Set up two-factor sign-in/);
    assert.match(enrolPage, /<svg[^>]*role="img"/);
    const codes = await post(enrolPage, { code: currentCode(secret) });
    assert.equal(codes.status, 200);
    const codesPage = await codes.text();
    assert.equal([...codesPage.matchAll(/<li><code>[a-z0-9]{5}-[a-z0-9]{5}<\/code><\/li>/g)].length, 10);
    assert.equal((await server.app.twoFactor.status(admin.id)).enrolled, true);
    const done = await post(codesPage, {});
    assert.equal(done.status, 200, 'the console callback page');
    assert.match(await done.text(), /http-equiv="refresh"/);
    const adminPage = await consoleGet(browser, `${server.origin}/admin`);
    assert.equal(adminPage.status, 200);
  });

  it('shows each sign-in a secret of its own: one left pending by another sign-in is never shown again, nor confirmed', async () => {
    const superuser = await seedUser(server, { superuser: true });
    // Someone who knows the password starts the enrolment and leaves it pending, its secret noted.
    const planted = await enrolmentOf(superuser.username);
    const owner = await enrolmentOf(superuser.username);
    assert.notEqual(owner.secret, '');
    assert.notEqual(owner.secret, planted.secret, 'the owner is shown a new secret');
    // The first sign-in may not confirm now, not even with the secret the owner was shown.
    for (const code of [currentCode(planted.secret), currentCode(owner.secret)]) {
      const refused = await planted.post(planted.page, { code });
      assert.equal(refused.status, 400);
      assert.match(pageText(await refused.text()), /started again in another sign-in/);
    }
    assert.equal((await server.app.twoFactor.status(superuser.id)).enrolled, false);
    const codes = await owner.post(owner.page, { code: currentCode(owner.secret) });
    assert.equal(codes.status, 200);
    assert.equal((await server.app.twoFactor.status(superuser.id)).enrolled, true);
  });

  it('asks for a code when another sign-in finished the enrolment after this one looked, never a server error', async () => {
    const superuser = await seedUser(server, { superuser: true });
    const service = server.app.twoFactor;
    const status = service.status;
    let raced = false;
    // Another sign-in's enrolment completes between this sign-in's look at the status and its own.
    service.status = async (userId) => {
      const seen = await status.call(service, userId);
      if (userId === superuser.id && !raced) {
        raced = true;
        const other = await service.beginEnrolment(superuser);
        assert.ok((await service.confirmEnrolment(superuser, currentCode(other.secret), other.id)).ok);
      }
      return seen;
    };
    let start: Response;
    try {
      start = await signIn(new Browser(), server, `${server.origin}/account/sign-in?return=/admin`, {
        username: superuser.username,
        password: PASSWORD,
      });
    } finally {
      service.status = status;
    }
    assert.ok(raced);
    assert.equal(start.status, 200);
    assert.match(pageText(await start.text()), /Enter your code/);
  });

  it('does not complete an enrolment under way once an operator reset two-factor sign-in (Continue after the recovery codes is stopped)', async () => {
    const superuser = await seedUser(server, { superuser: true });
    const { browser, page: enrolPage, secret, post } = await enrolmentOf(superuser.username);
    const codes = await post(enrolPage, { code: currentCode(secret) });
    assert.equal(codes.status, 200);
    const codesPage = await codes.text();
    // Someone else enrolled with this password; the operator resets it before they continue.
    assert.equal(await server.app.twoFactor.reset(superuser, { actor: 'cli:test' }), true);
    const stopped = await post(codesPage, {});
    assert.equal(stopped.status, 400);
    assert.match(pageText(await stopped.text()), /two-factor sign-in was reset/);
    assert.equal((await consoleGet(browser, `${server.origin}/admin`)).status, 302, 'not signed in');
  });

  it('answers the enrolment form sent twice (no script: a resend, a double click) with the same recovery codes, to that sign-in alone, and signs in once', async () => {
    const recoveryCodes = (body: string) =>
      [...body.matchAll(/<li><code>([a-z0-9]{5}-[a-z0-9]{5})<\/code><\/li>/g)].map((m) => m[1]!);
    const records: AuditRecord[] = [];
    const unsubscribe = server.app.audit.subscribe({ name: 'test', receive: (r) => void records.push(r) });
    /** The enrolments confirmed for `id` (audit), and its sign-ins (sessions, grants). */
    const signedIn = async (id: number) => {
      await server.app.audit.idle();
      const rows = async (model: string) =>
        (
          await server.app.database.db
            .selectFrom('oidc_payload')
            .select('id')
            .where('model', '=', model)
            .where('user_id', '=', String(id))
            .execute()
        ).length;
      return {
        enabled: records.filter(
          (r) => r.kind === 'admin_change' && r.action === 'two_factor_enabled' && r.entity_id === id,
        ).length,
        sessions: await rows('Session'),
        grants: await rows('Grant'),
      };
    };
    /** The codes stored for `id` are these: each signs in once (one is spent to check). */
    const stored = async (id: number, codes: string[]) => {
      assert.equal((await server.app.twoFactor.status(id)).recoveryCodesLeft, 10);
      assert.deepEqual(await server.app.twoFactor.verify(id, codes[9]!), {
        ok: true,
        method: 'recovery_code',
      });
    };
    try {
      // One after the other: the browser sends again after a slow answer.
      const one = await seedUser(server, { superuser: true });
      const here = await enrolmentOf(one.username);
      const code = currentCode(here.secret);
      const first = await here.post(here.page, { code });
      const second = await here.post(here.page, { code });
      assert.equal(first.status, 200);
      const firstPage = await first.text();
      const secondPage = await second.text();
      assert.equal(second.status, 200, `the second answer shows the codes too, not: ${pageText(secondPage)}`);
      const codes = recoveryCodes(firstPage);
      assert.equal(codes.length, 10);
      assert.deepEqual(recoveryCodes(secondPage), codes, 'the same codes');
      // Another browser with this form (and every cookie but the interaction's): nothing shown.
      const elsewhere = new Browser();
      for (const [key, value] of here.browser.cookies)
        if (!key.split('|')[1]!.startsWith('_interaction')) elsewhere.cookies.set(key, value);
      const foreign = await elsewhere.follow(formAction(here.page, server.origin), server.origin, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          csrf_token: formField(here.page, 'csrf_token'),
          pending: formField(here.page, 'pending'),
          code,
        }).toString(),
      });
      assert.equal(foreign.status, 400);
      const foreignPage = await foreign.text();
      assert.match(pageText(foreignPage), /does not match your browser session|has expired/);
      assert.equal(recoveryCodes(foreignPage).length, 0);
      // This sign-in, the form with another code: nothing shown, as before.
      const other = await here.post(here.page, { code: code === '000000' ? '111111' : '000000' });
      assert.equal(other.status, 400);
      const otherPage = await other.text();
      assert.match(pageText(otherPage), /no longer pending/);
      assert.equal(recoveryCodes(otherPage).length, 0);
      // Nothing signed in yet; Continue signs in, once.
      assert.deepEqual(await signedIn(one.id), { enabled: 1, sessions: 0, grants: 0 });
      const done = await here.post(secondPage, {});
      assert.equal(done.status, 200, 'the console callback page');
      assert.equal((await consoleGet(here.browser, `${server.origin}/admin`)).status, 200);
      assert.deepEqual(await signedIn(one.id), { enabled: 1, sessions: 1, grants: 1 });
      // The form once more after Continue: the sign-in is over, nothing shown.
      const late = await here.post(here.page, { code });
      assert.equal(late.status, 400);
      assert.equal(recoveryCodes(await late.text()).length, 0);
      await stored(one.id, codes);

      // At once: a double click.
      const two = await seedUser(server, { superuser: true });
      const there = await enrolmentOf(two.username);
      // Both find the enrolment pending, then both confirm it: one stores the codes, the other finds
      // them stored.
      const service = server.app.twoFactor;
      const pendingEnrolment = service.pendingEnrolment;
      let arrived = 0;
      let bothRead!: () => void;
      const barrier = new Promise<void>((resolve) => (bothRead = resolve));
      service.pendingEnrolment = async (user) => {
        const seen = await pendingEnrolment.call(service, user);
        if (user.id === two.id && (arrived += 1) === 2) bothRead();
        if (user.id === two.id) await Promise.race([barrier, setTimeout(5_000)]);
        return seen;
      };
      let both: Response[];
      try {
        both = await Promise.all(
          [1, 2].map(() => there.post(there.page, { code: currentCode(there.secret) })),
        );
      } finally {
        service.pendingEnrolment = pendingEnrolment;
      }
      assert.equal(arrived, 2);
      const pages = await Promise.all(both.map((answer) => answer.text()));
      assert.deepEqual(
        both.map((answer) => answer.status),
        [200, 200],
        pages.map(pageText).join('\n'),
      );
      const shown = pages.map(recoveryCodes);
      assert.equal(shown[0]!.length, 10);
      assert.deepEqual(shown[1], shown[0], 'the same codes');
      assert.deepEqual(await signedIn(two.id), { enabled: 1, sessions: 0, grants: 0 });
      assert.equal((await there.post(pages[0]!, {})).status, 200);
      assert.equal((await consoleGet(there.browser, `${server.origin}/admin`)).status, 200);
      assert.deepEqual(await signedIn(two.id), { enabled: 1, sessions: 1, grants: 1 });
      await stored(two.id, shown[0]!);
    } finally {
      unsubscribe();
    }
  });

  it('counts the enrolment form sent again in the login throttle: once it is spent, no codes (429)', async () => {
    const superuser = await seedUser(server, { superuser: true });
    const { page, secret, post } = await enrolmentOf(superuser.username);
    const code = currentCode(secret);
    assert.equal((await post(page, { code })).status, 200);
    // The default budget per account and address: five failures (wrong codes sent again).
    for (let attempt = 0; attempt < 5; attempt += 1)
      assert.equal((await post(page, { code: code === '000000' ? '111111' : '000000' })).status, 400);
    const throttled = await post(page, { code });
    assert.equal(throttled.status, 429);
    const body = await throttled.text();
    assert.match(pageText(body), /Too many wrong attempts/);
    assert.doesNotMatch(body, /<li><code>/);
  });

  it('sends a superuser session signed in without a code through the sign-in again for the admin UI', async () => {
    const other = await seedUser(server, { superuser: false });
    // Promoted after signing in with a password alone (no code was asked: not a superuser then).
    const browser = await consoleSignIn(server, other.username);
    await server.app.directoryAdmin.updateUser({ id: other.id }, { superuser: true });
    const response = await browser.fetch(`${server.origin}/admin`);
    assert.equal(response.status, 302);
    const location = new URL(response.headers.get('location')!);
    assert.equal(location.searchParams.get('prompt'), 'login');
    const account = await consoleGet(browser, `${server.origin}/account`);
    assert.equal(account.status, 200, 'the account page needs no code');
  });
});
