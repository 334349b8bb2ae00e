import assert from 'node:assert/strict';
import { decodeJwt } from 'jose';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { accountKey } from '../../src/oidc/interactions/throttle.ts';
import { currentCode } from '../../src/two-factor/totp.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { consoleGet, consolePost, consoleSignIn, pageText, signedInAgo } from '../helpers/console.ts';
import { eventually } from '../helpers/eventually.ts';
import { authorize } from '../helpers/flows.ts';
import { holdTokensAt, type RpReceiver, startRpReceiver, verifyLogoutToken } from '../logout/rp-receiver.ts';
import {
  basicAuth,
  Browser,
  PASSWORD,
  postForm,
  seedApp,
  seedUser,
  signIn,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

const HOSTILE = '<script>alert(1)</script>';

describe(`the account page (${testDatabaseKind})`, () => {
  let server: TestServer;
  let receiver: RpReceiver;
  let app: { clientId: string; clientSecret: string | null };
  let user: { id: number; username: string };
  let browser: Browser;
  const url = (path: string) => `${server.origin}${path}`;

  before(async () => {
    server = await startServer({ logout: { allowPrivateTargets: true } });
    receiver = await startRpReceiver([200]);
    app = await seedApp(server, {
      name: `Wiki ${HOSTILE}`,
      skipAuthorization: true,
      backchannelLogoutUri: receiver.url(),
      logoUrl: 'https://wiki.example.org/logo.png',
    });
    await server.app.directoryAdmin.createState('Member', 100, true);
    await server.app.directoryAdmin.createGroup(`Fleet ${HOSTILE}`);
    user = await seedUser(server, {
      state: 'Member',
      groups: [`Fleet ${HOSTILE}`],
      characterId: 90000001,
      characterName: `Kaelen ${HOSTILE}`,
      corporationName: 'Obsidian Fleet',
      corporationTicker: 'OBFL',
    });
    browser = await consoleSignIn(server, user.username);
  });
  after(async () => {
    await receiver.close();
    await server.close();
  });

  it('shows who the user is: main character, portrait, corporation, state and groups, all escaped', async () => {
    const page = await consoleGet(browser, url('/account'));
    assert.equal(page.status, 200);
    assert.equal(page.body.includes(HOSTILE), false, 'no raw <script>');
    const text = pageText(page.body);
    assert.match(text, new RegExp(`Username ${user.username}`));
    assert.ok(text.includes(`Kaelen ${HOSTILE}`));
    assert.match(text, /Corporation Obsidian Fleet \[OBFL\]/);
    assert.match(text, /State Member/);
    assert.ok(text.includes(`Groups Fleet ${HOSTILE}`));
    assert.match(page.body, /src="https:\/\/images\.evetech\.net\/characters\/90000001\/portrait\?size=128"/);
  });

  it('tells a member whose state admits them to no application why none is listed, naming their own state alone', async () => {
    await server.app.directoryAdmin.createState('Visitor', 10, false);
    const visitor = await seedUser(server, { state: 'Visitor', oidcAccess: false });
    const page = await consoleGet(await consoleSignIn(server, visitor.username), url('/account'));
    assert.equal(page.status, 200);
    const allowed = pageText(/<section aria-labelledby="apps">[\s\S]*?<\/section>/.exec(page.body)![0]);
    assert.equal(
      allowed,
      'Applications you allowed Your state, Visitor, gives access to no application here. Access follows your state and groups, which the administrators here set.',
    );
    assert.doesNotMatch(pageText(page.body), /Member|Wiki/, 'no other state, no application named');
    // The member whose state opens the applications is told nothing of the kind.
    const member = await consoleGet(browser, url('/account'));
    assert.doesNotMatch(pageText(member.body), /gives? access to no application/);
  });

  it('lists an application the user signed in to, and revoking it ends its tokens and tells it by back-channel logout', async () => {
    const tokens = await holdTokensAt(server, new Browser(), app, user.username);
    const page = await consoleGet(browser, url('/account'));
    assert.ok(pageText(page.body).includes(`Wiki ${HOSTILE}`), 'the application is listed');
    assert.ok(pageText(page.body).includes('Can see your account identifier'));
    const revoked = await consolePost(browser, url(`/account/apps/${app.clientId}/revoke`), page.csrf!);
    assert.equal(revoked.status, 303);
    const introspected = await postForm(
      `${server.issuer}/introspect/`,
      { token: tokens.refresh_token },
      { authorization: basicAuth(app.clientId, app.clientSecret!) },
    );
    assert.equal(introspected.body.active, false, 'the refresh token is dead');
    await server.app.logout.deliverDue();
    assert.equal(receiver.requests.length, 1, 'the application got a logout token');
    await verifyLogoutToken(server, receiver.tokens()[0]!, { clientId: app.clientId, sub: String(user.id) });
    const after = await consoleGet(browser, url('/account?done=revoked'));
    const allowed = /<section aria-labelledby="apps">[\s\S]*?<\/section>/.exec(after.body)![0];
    assert.equal(pageText(allowed).includes(`Wiki ${HOSTILE}`), false, 'no longer listed');
    assert.match(pageText(after.body), /Access revoked/);
  });

  it("says what an application allowed the profile scope sees, its main character's corporation, alliance and faction too, as the consent page did", async () => {
    const forum = await seedApp(server, { name: 'Forum', skipAuthorization: true });
    const { response } = await authorize(
      server,
      new Browser(),
      { clientId: forum.clientId, clientSecret: forum.clientSecret! },
      user.username,
      { scope: 'openid profile' },
    );
    assert.equal(response.status, 303);
    const page = await consoleGet(browser, url('/account'));
    const listed = [...page.body.matchAll(/<li>[\s\S]*?<\/li>/g)].find((item) => item[0].includes('Forum'));
    assert.ok(listed, 'the application is listed');
    assert.ok(
      pageText(listed[0]).includes(
        "Can see your account identifier, your username, groups and state, and your main character's name and portrait; your main character's corporation, alliance and faction ·",
      ),
      pageText(listed[0]),
    );
  });

  it('tells no application of a revoke when the user had nothing there: never allowed, or revoked already', async () => {
    const never = await seedApp(server, { name: 'Never allowed', backchannelLogoutUri: receiver.url() });
    const page = await consoleGet(browser, url('/account'));
    const sent = receiver.requests.length;
    for (const clientId of [never.clientId, never.clientId, app.clientId]) {
      const revoked = await consolePost(browser, url(`/account/apps/${clientId}/revoke`), page.csrf!);
      assert.equal(revoked.status, 303);
    }
    await server.app.logout.deliverDue();
    assert.equal(receiver.requests.length, sent, 'no logout token for a user the application never had');
    const revoked = await consolePost(browser, url(`/account/apps/${never.clientId}/revoke`), page.csrf!);
    const after = await consoleGet(browser, url(revoked.location!));
    assert.doesNotMatch(pageText(after.body), /Access revoked|was told/);
    assert.match(
      pageText(after.body),
      /Nothing to revoke: that application held no access to your account\./,
    );
  });

  it('refuses a password change that gives the new password twice (400 naming the field), changing nothing', async () => {
    const page = await consoleGet(browser, url('/account'));
    const refused = await consolePost(browser, url('/account/password'), page.csrf!, {
      current_password: PASSWORD,
      new_password: ['a brand new passphrase', 'another new passphrase'],
      new_password_again: 'a brand new passphrase',
    });
    assert.equal(refused.status, 400);
    assert.match(pageText(refused.body), /This form gives the field new_password more than once/);
    assert.equal((await server.app.directoryAdmin.verifyPassword(user.username, PASSWORD)).outcome, 'valid');
  });

  it('changes the password only with the current one, and the new one works', async () => {
    const page = await consoleGet(browser, url('/account'));
    const wrong = await consolePost(browser, url('/account/password'), page.csrf!, {
      current_password: 'not it',
      new_password: 'a brand new passphrase',
      new_password_again: 'a brand new passphrase',
    });
    assert.equal(wrong.status, 401);
    assert.match(pageText(wrong.body), /The current password is wrong/);
    const mismatch = await consolePost(browser, url('/account/password'), page.csrf!, {
      current_password: PASSWORD,
      new_password: 'a brand new passphrase',
      new_password_again: 'something else',
    });
    assert.equal(mismatch.status, 400);
    const changed = await consolePost(browser, url('/account/password'), page.csrf!, {
      current_password: PASSWORD,
      new_password: 'a brand new passphrase',
      new_password_again: 'a brand new passphrase',
    });
    assert.equal(changed.status, 303);
    assert.equal(
      (await server.app.directoryAdmin.verifyPassword(user.username, 'a brand new passphrase')).outcome,
      'valid',
    );
    assert.equal(
      (await server.app.directoryAdmin.verifyPassword(user.username, PASSWORD)).outcome,
      'invalid',
    );
  });

  it('ends the other sessions on a new password and tells their applications, per session, while this one stays', async () => {
    const rp = await startRpReceiver([200]);
    try {
      const forum = await seedApp(server, {
        name: 'Forum',
        skipAuthorization: true,
        backchannelLogoutUri: rp.url(),
      });
      const person = await seedUser(server);
      const here = await consoleSignIn(server, person.username);
      const kept = await holdTokensAt(server, here, forum, person.username);
      const elsewhere = await consoleSignIn(server, person.username);
      const ended = await holdTokensAt(server, elsewhere, forum, person.username);
      const page = await consoleGet(here, url('/account'));
      const changed = await consolePost(here, url('/account/password'), page.csrf!, {
        current_password: PASSWORD,
        new_password: 'a passphrase of its own',
        new_password_again: 'a passphrase of its own',
      });
      assert.equal(changed.status, 303);
      assert.equal((await consoleGet(here, url('/account'))).status, 200, 'this session stays');
      assert.equal((await consoleGet(elsewhere, url('/account'))).status, 302, 'the other one ended');
      await server.app.logout.deliverDue();
      assert.equal(rp.requests.length, 1, 'one logout: the ended session’s, not the kept one’s');
      const logout = await verifyLogoutToken(server, rp.tokens()[0]!, {
        clientId: forum.clientId,
        sub: String(person.id),
        sid: 'present',
      });
      assert.equal(logout.sid, decodeJwt(ended.id_token).sid, 'the sid of the session that ended');
      assert.notEqual(logout.sid, decodeJwt(kept.id_token).sid);
    } finally {
      await rp.close();
    }
  });

  it('refuses a current password longer than any, whose first 1024 UTF-16 units are right, as a wrong one', async () => {
    const current = 'k'.repeat(1024);
    const person = await seedUser(server, { password: current });
    const own = await consoleSignIn(server, person.username, { password: current });
    const failures = async () =>
      (await server.app.database.db.selectFrom('login_failure').select('id').execute()).length;
    const before = await failures();
    const page = await consoleGet(own, url('/account'));
    const refused = await consolePost(own, url('/account/password'), page.csrf!, {
      current_password: `${current}x`,
      new_password: 'a passphrase of its own',
      new_password_again: 'a passphrase of its own',
    });
    assert.equal(refused.status, 401, 'never cut to the right 1024 units');
    assert.match(pageText(refused.body), /The current password is wrong/);
    assert.equal(await failures(), before + 1, 'the attempt counts against the throttle');
    assert.equal((await server.app.directoryAdmin.verifyPassword(person.username, current)).outcome, 'valid');
  });

  it('refuses an empty field, a new password against the rules, or the current one again, before any attempt or hash check', async (t) => {
    const person = await seedUser(server);
    const here = await consoleSignIn(server, person.username);
    const elsewhere = await consoleSignIn(server, person.username);
    const page = await consoleGet(here, url('/account'));
    const failures = async () =>
      (
        await server.app.database.db
          .selectFrom('login_failure')
          .select('id')
          .where('username', '=', accountKey(person.username))
          .execute()
      ).length;
    const before = await failures();
    // Counts the checks of a password (the same directory the page uses), passing each on.
    const checks = t.mock.method(server.app.directoryAdmin, 'verifyPassword');
    const cases = [
      [
        { current_password: '', new_password: 'a passphrase of its own' },
        'current_password',
        /^Type your current password\.$/,
      ],
      [{ current_password: 'not it', new_password: '' }, 'new_password', /^Type the new password\.$/],
      [{ current_password: 'not it', new_password: 'short' }, 'new_password', /too short; at least 8/],
      [{ current_password: PASSWORD, new_password: PASSWORD }, 'new_password', /the current one typed again/],
      // The same password, its accent composed in one field and combining in the other.
      [
        { current_password: 'crème brûlée'.normalize('NFC'), new_password: 'crème brûlée'.normalize('NFD') },
        'new_password',
        /the current one typed again/,
      ],
    ] as const;
    for (const [fields, field, message] of cases) {
      const refused = await consolePost(here, url('/account/password'), page.csrf!, {
        ...fields,
        new_password_again: fields.new_password,
      });
      assert.equal(refused.status, 400, JSON.stringify(fields));
      const error = new RegExp(`<p class="field-error" id="${field}-error">([^<]*)</p>`).exec(
        refused.body,
      )?.[1];
      assert.match(error ?? '', message, JSON.stringify(fields));
    }
    assert.equal(checks.mock.callCount(), 0, 'no password was checked');
    assert.equal(await failures(), before, 'no attempt counted');
    assert.equal((await consoleGet(elsewhere, url('/account'))).status, 200, 'the other session goes on');
    assert.equal(
      (await server.app.directoryAdmin.verifyPassword(person.username, PASSWORD)).outcome,
      'valid',
    );
  });

  it('takes a password typed with its accents composed (NFC) or combining (NFD) as one, to sign in and to change it', async () => {
    const nfc = 'crème brûlée'.normalize('NFC');
    const nfd = 'crème brûlée'.normalize('NFD');
    assert.notEqual(nfc, nfd);
    const person = await seedUser(server, { password: nfd });
    // The login form, in the other form than it was set.
    const own = await consoleSignIn(server, person.username, { password: nfc });
    const page = await consoleGet(own, url('/account'));
    const changed = await consolePost(own, url('/account/password'), page.csrf!, {
      current_password: nfd,
      new_password: 'naïve passphrase'.normalize('NFD'),
      new_password_again: 'naïve passphrase'.normalize('NFC'),
    });
    assert.equal(changed.status, 303, pageText(changed.body));
    for (const typed of ['naïve passphrase'.normalize('NFC'), 'naïve passphrase'.normalize('NFD')])
      assert.equal((await server.app.directoryAdmin.verifyPassword(person.username, typed)).outcome, 'valid');
  });

  it('refuses a new password longer than sign-in takes, naming the limit, never cutting it short', async () => {
    const page = await consoleGet(browser, url('/account'));
    // 513 emoji are 513 characters but 1026 UTF-16 units, and sign-in takes at most 1024.
    for (const long of ['😀'.repeat(513), 'x'.repeat(1025)]) {
      const refused = await consolePost(browser, url('/account/password'), page.csrf!, {
        current_password: 'a brand new passphrase',
        new_password: long,
        new_password_again: long,
      });
      assert.equal(refused.status, 400);
      assert.match(
        pageText(refused.body),
        /the password is too long: at most 1024 characters are accepted, an emoji counting as two/,
      );
      assert.equal((await server.app.directoryAdmin.verifyPassword(user.username, long)).outcome, 'invalid');
      assert.equal(
        (await server.app.directoryAdmin.verifyPassword(user.username, long.slice(0, 1024))).outcome,
        'invalid',
      );
    }
    assert.equal(
      (await server.app.directoryAdmin.verifyPassword(user.username, 'a brand new passphrase')).outcome,
      'valid',
    );
  });

  it('enrols TOTP with a QR code and a confirmation code, shows the recovery codes once, and turns off with a code', async () => {
    const page = await consoleGet(browser, url('/account'));
    const enrol = await consolePost(browser, url('/account/two-factor/enrol'), page.csrf!);
    assert.equal(enrol.status, 200);
    assert.match(enrol.body, /<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]*role="img"/);
    const shown = (body: string) => ({
      secret: /<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(body)![1]!.replaceAll(' ', ''),
      enrolment: /name="enrolment" value="([^"]+)"/.exec(body)![1]!,
    });
    const first = shown(enrol.body);
    // Started again (another page, or someone else who knows the password): the first page's
    // confirmation is refused, and the new secret is not shown to it.
    const again = await consolePost(browser, url('/account/two-factor/enrol'), page.csrf!);
    const { secret, enrolment } = shown(again.body);
    assert.notEqual(secret, first.secret);
    const stale = await consolePost(browser, url('/account/two-factor/confirm'), page.csrf!, {
      code: currentCode(secret),
      enrolment: first.enrolment,
    });
    assert.equal(stale.status, 409);
    assert.match(stale.body, /started again elsewhere/);
    assert.doesNotMatch(stale.body, /totp-secret/, 'no secret is shown, the other enrolment’s least of all');
    const wrong = await consolePost(browser, url('/account/two-factor/confirm'), page.csrf!, {
      code: '000000',
      enrolment,
    });
    assert.equal(wrong.status, 400);
    assert.match(wrong.body, /<p class="field-error" id="code-error">/);
    const confirmed = await consolePost(browser, url('/account/two-factor/confirm'), page.csrf!, {
      code: currentCode(secret),
      enrolment,
    });
    assert.equal(confirmed.status, 200);
    const codes = [...confirmed.body.matchAll(/<li><code>([a-z0-9]{5}-[a-z0-9]{5})<\/code><\/li>/g)].map(
      (m) => m[1]!,
    );
    assert.equal(codes.length, 10);
    const status = await server.app.twoFactor.status(user.id);
    assert.deepEqual(status, { enrolled: true, pending: false, recoveryCodesLeft: 10 });
    const after = await consoleGet(browser, url('/account'));
    assert.match(pageText(after.body), /On\. Signing in asks for a code/);
    // Not only after a password: after EVE Online too, where there is none (Alliance Auth mode).
    assert.match(pageText(after.body), /whichever way you sign in/);
    assert.doesNotMatch(pageText(after.body), /after your password/);
    assert.equal(
      codes.some((code) => after.body.includes(code)),
      false,
      'the recovery codes are not shown again',
    );

    const refused = await consolePost(browser, url('/account/two-factor/disable'), after.csrf!, {
      code: '123456',
    });
    assert.equal(refused.status, 401);
    const off = await consolePost(browser, url('/account/two-factor/disable'), after.csrf!, {
      code: codes[0]!,
    });
    assert.equal(off.status, 303);
    assert.equal((await server.app.twoFactor.status(user.id)).enrolled, false);

    // Off already (another tab turned it off): said so, and no sign-in attempt is used up.
    const failures = () =>
      server.app.database.db
        .selectFrom('login_failure')
        .select('id')
        .where('username', '=', accountKey(user.username))
        .execute();
    const before = (await failures()).length;
    const offAlready = await consolePost(browser, url(`/account/two-factor/disable`), after.csrf!, {
      code: '123456',
    });
    assert.equal(offAlready.status, 409);
    assert.match(
      pageText(offAlready.body),
      /Two-factor sign-in is not on, so there is nothing to turn off\./,
    );
    assert.doesNotMatch(pageText(offAlready.body), /not valid|still on/);
    assert.equal((await failures()).length, before, 'no throttle attempt counted');
  });

  it('tells a refused code to turn two-factor sign-in off as a sign-in tells one: wrong, or right and used already (replayed), never the code', async () => {
    const person = await seedUser(server);
    const here = await consoleSignIn(server, person.username);
    const enrolment = await server.app.twoFactor.beginEnrolment(person);
    const confirmed = await server.app.twoFactor.confirmEnrolment(
      person,
      currentCode(enrolment.secret),
      enrolment.id,
    );
    assert.ok(confirmed.ok);
    const page = await consoleGet(here, url('/account'));
    // Codes just used to sign in elsewhere, typed again here; and a code of no step near now.
    const code = currentCode(enrolment.secret, Date.now() + 30_000);
    assert.ok((await server.app.twoFactor.verify(person.id, code)).ok);
    const recovery = confirmed.recoveryCodes[0]!;
    assert.ok((await server.app.twoFactor.verify(person.id, recovery)).ok);
    const wrong = ['914273', '000000', '111111'].find(
      (candidate) =>
        ![-2, -1, 0, 1, 2].some(
          (step) => currentCode(enrolment.secret, Date.now() + step * 30_000) === candidate,
        ),
    )!;
    for (const typed of [code, recovery, wrong]) {
      const refused = await consolePost(here, url('/account/two-factor/disable'), page.csrf!, {
        code: typed,
      });
      assert.equal(refused.status, 401);
    }
    assert.equal((await server.app.twoFactor.status(person.id)).enrolled, true);

    await server.app.audit.idle();
    const stored = await server.app.auditStore.list({ kinds: ['two_factor_failed'], userId: person.id });
    assert.deepEqual(
      stored.reverse().map(({ record: { time: _time, request_id: requestId, ...event } }) => ({
        ...event,
        request: typeof requestId,
      })),
      [
        ['totp', 'replayed'],
        ['recovery_code', 'replayed'],
        ['totp', 'wrong'],
      ].map(([kind, reason]) => ({
        kind: 'two_factor_failed',
        user_id: person.id,
        client_id: 'aa-oidc-account',
        code_kind: kind,
        first_factor: ['pwd'],
        reason,
        at: 'account_page',
        address: '127.0.0.1',
        request: 'string',
      })),
    );
    for (const { record } of stored)
      for (const typed of [code, recovery, wrong])
        assert.ok(!JSON.stringify(record).includes(typed), 'the code is not kept');
    const admin = await seedUser(server, { superuser: true });
    const audit = await consoleGet(
      await consoleSignIn(server, admin.username),
      url(`/admin/audit?${new URLSearchParams({ user: person.username, kind: 'two_factor_failed' })}`),
    );
    assert.match(
      pageText(audit.body),
      /two-factor code used already, sent again on the account page, to turn two-factor sign-in off, from 127\.0\.0\.1/,
    );
    assert.match(
      pageText(audit.body),
      /wrong two-factor code on the account page, to turn two-factor sign-in off, from 127\.0\.0\.1/,
    );
  });

  it('answers a "Turn on" sent twice (no script: a double click, a resend) with the same recovery codes, the stored ones, to that browser alone', async () => {
    const recoveryCodes = (body: string) =>
      [...body.matchAll(/<li><code>([a-z0-9]{5}-[a-z0-9]{5})<\/code><\/li>/g)].map((m) => m[1]!);
    const enrolled = async () => {
      const person = await seedUser(server);
      const here = await consoleSignIn(server, person.username);
      // Another browser of the same member, signed in before two-factor sign-in is on.
      const elsewhere = await consoleSignIn(server, person.username);
      const page = await consoleGet(here, url('/account'));
      const enrol = await consolePost(here, url('/account/two-factor/enrol'), page.csrf!);
      const secret = /<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(enrol.body)![1]!.replaceAll(' ', '');
      const enrolment = /name="enrolment" value="([^"]+)"/.exec(enrol.body)![1]!;
      const form = { code: currentCode(secret), enrolment };
      return { person, here, elsewhere, csrf: page.csrf!, form };
    };
    /** The codes stored for `person` are these: each signs in once (one is spent to check). */
    const stored = async (person: { id: number }, codes: string[]) => {
      assert.equal((await server.app.twoFactor.status(person.id)).recoveryCodesLeft, 10);
      assert.deepEqual(await server.app.twoFactor.verify(person.id, codes[9]!), {
        ok: true,
        method: 'recovery_code',
      });
    };

    // One after the other: the browser sends again after a slow answer.
    const one = await enrolled();
    const first = await consolePost(one.here, url('/account/two-factor/confirm'), one.csrf, one.form);
    const second = await consolePost(one.here, url('/account/two-factor/confirm'), one.csrf, one.form);
    assert.equal(first.status, 200);
    assert.equal(
      second.status,
      200,
      `the second answer shows the codes too, not: ${second.status} ${second.location}`,
    );
    const codes = recoveryCodes(first.body);
    assert.equal(codes.length, 10);
    assert.deepEqual(recoveryCodes(second.body), codes, 'the same codes');
    // Another browser of the same member, the same form and code: nothing shown, as before.
    const otherPage = await consoleGet(one.elsewhere, url('/account'));
    const other = await consolePost(
      one.elsewhere,
      url('/account/two-factor/confirm'),
      otherPage.csrf!,
      one.form,
    );
    assert.equal(other.status, 303);
    assert.equal(recoveryCodes(other.body).length, 0);
    // This browser, the form with another code (or another enrolment): nothing shown.
    for (const form of [
      { ...one.form, code: one.form.code === '000000' ? '111111' : '000000' },
      { ...one.form, enrolment: 'x'.repeat(43) },
    ]) {
      const refused = await consolePost(one.here, url('/account/two-factor/confirm'), one.csrf, form);
      assert.equal(refused.status, 303);
      assert.equal(recoveryCodes(refused.body).length, 0);
    }
    await stored(one.person, codes);

    // At once: a double click.
    const two = await enrolled();
    const both = await Promise.all(
      [1, 2].map(() => consolePost(two.here, url('/account/two-factor/confirm'), two.csrf, two.form)),
    );
    assert.deepEqual(
      both.map((answer) => answer.status),
      [200, 200],
    );
    const shown = both.map((answer) => recoveryCodes(answer.body));
    assert.equal(shown[0]!.length, 10);
    assert.deepEqual(shown[1], shown[0], 'the same codes');
    await stored(two.person, shown[0]!);
    // Once a recovery code is used, the codes are not shown again.
    const later = await consolePost(two.here, url('/account/two-factor/confirm'), two.csrf, two.form);
    assert.equal(later.status, 303);
  });

  it('refuses a code that is none (nothing typed, five digits) naming what is valid, counting no wrong code, and takes full-width digits', async () => {
    const person = await seedUser(server);
    const here = await consoleSignIn(server, person.username);
    const page = await consoleGet(here, url('/account'));
    const failures = async () =>
      (
        await server.app.database.db
          .selectFrom('login_failure')
          .select('id')
          .where('method', '=', 'code')
          .execute()
      ).length;
    const before = await failures();
    const enrol = await consolePost(here, url('/account/two-factor/enrol'), page.csrf!);
    const secret = /<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(enrol.body)![1]!.replaceAll(' ', '');
    const enrolment = /name="enrolment" value="([^"]+)"/.exec(enrol.body)![1]!;
    for (const code of ['', '12345', 'abcde-fghij', '１２３４５']) {
      const refused = await consolePost(here, url('/account/two-factor/confirm'), page.csrf!, {
        code,
        enrolment,
      });
      assert.equal(refused.status, 400, JSON.stringify(code));
      assert.match(pageText(refused.body), /Enter the six-digit code your app shows\./);
      assert.match(refused.body, /id="totp-secret"/, 'the same enrolment, to try again');
    }
    assert.equal(await failures(), before, 'no wrong code counted');
    const fullWidth = [...currentCode(secret)]
      .map((digit) => String.fromCodePoint(0xff10 + Number(digit)))
      .join('');
    const confirmed = await consolePost(here, url('/account/two-factor/confirm'), page.csrf!, {
      code: fullWidth,
      enrolment,
    });
    assert.equal(confirmed.status, 200);
    assert.match(confirmed.body, /id="recovery-codes"/);

    const on = await consoleGet(here, url('/account'));
    for (const code of ['', '12345', 'abcd']) {
      const refused = await consolePost(here, url('/account/two-factor/disable'), on.csrf!, { code });
      assert.equal(refused.status, 400, JSON.stringify(code));
      assert.match(
        pageText(refused.body),
        /Enter the six-digit code your app shows, or one of your recovery codes \(10 letters and digits, like abcde-fghjk, with none of i, l, o, 0, 1\)\./,
      );
    }
    assert.equal(await failures(), before, 'no wrong code counted');
    assert.equal((await server.app.twoFactor.status(person.id)).enrolled, true);
  });

  it('answers 429 to a confirmation code once the sign-in throttle is spent, even the right code', async () => {
    const person = await seedUser(server);
    const here = await consoleSignIn(server, person.username);
    const page = await consoleGet(here, url('/account'));
    const enrol = await consolePost(here, url('/account/two-factor/enrol'), page.csrf!);
    const secret = /<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(enrol.body)![1]!.replaceAll(' ', '');
    const enrolment = /name="enrolment" value="([^"]+)"/.exec(enrol.body)![1]!;
    // The default budget per account and address: five failures.
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const wrong = await consolePost(here, url('/account/two-factor/confirm'), page.csrf!, {
        code: '000000',
        enrolment,
      });
      assert.equal(wrong.status, 400);
    }
    const throttled = await consolePost(here, url('/account/two-factor/confirm'), page.csrf!, {
      code: currentCode(secret),
      enrolment,
    });
    assert.equal(throttled.status, 429);
    assert.match(pageText(throttled.body), /Too many wrong attempts/);
    assert.equal((await server.app.twoFactor.status(person.id)).enrolled, false);
  });

  it('answers 429 to a "Turn on" sent again once the sign-in throttle is spent, rather than a quiet redirect', async () => {
    const person = await seedUser(server);
    const here = await consoleSignIn(server, person.username);
    const page = await consoleGet(here, url('/account'));
    const enrol = await consolePost(here, url('/account/two-factor/enrol'), page.csrf!);
    const secret = /<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(enrol.body)![1]!.replaceAll(' ', '');
    const enrolment = /name="enrolment" value="([^"]+)"/.exec(enrol.body)![1]!;
    const form = { code: currentCode(secret), enrolment };
    const first = await consolePost(here, url('/account/two-factor/confirm'), page.csrf!, form);
    assert.equal(first.status, 200);
    // Resends of this form with a wrong code: each a failure of the throttle's (five by default).
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const wrong = await consolePost(here, url('/account/two-factor/confirm'), page.csrf!, {
        code: form.code === '000000' ? '111111' : '000000',
        enrolment,
      });
      assert.equal(wrong.status, 303);
    }
    const throttled = await consolePost(here, url('/account/two-factor/confirm'), page.csrf!, form);
    assert.equal(throttled.status, 429, `not ${throttled.status} ${throttled.location}`);
    assert.match(pageText(throttled.body), /Too many wrong attempts/);
    assert.doesNotMatch(throttled.body, /<li><code>[a-z0-9]{5}-[a-z0-9]{5}<\/code><\/li>/);
  });

  it('asks a session signed in over ten minutes ago to sign in again before two-factor sign-in is set up, then sets it up', async () => {
    const person = await seedUser(server);
    const here = await consoleSignIn(server, person.username);
    const page = await consoleGet(here, url('/account'));
    const hint =
      /<p class="hint" id="two-factor-sign-in-again">\s*You signed in more than 10 minutes ago, so you will be\s+asked to sign in again before you set it up\.\s*<\/p>/;
    assert.doesNotMatch(page.body, hint, 'no hint for a fresh sign-in');
    assert.doesNotMatch(page.body, /aria-describedby="two-factor-sign-in-again"/);
    await signedInAgo(server.app.database.db, person.id, 11);
    // Said before the button is pressed, and tied to it.
    const older = await consoleGet(here, url('/account'));
    assert.match(older.body, hint);
    assert.match(
      older.body,
      /<button type="submit" aria-describedby="two-factor-sign-in-again">Set up two-factor sign-in<\/button>/,
    );

    const refused = await consolePost(here, url('/account/two-factor/enrol'), page.csrf!);
    assert.equal(refused.status, 403);
    assert.match(
      pageText(refused.body),
      /You signed in more than 10 minutes ago\. Turning on two-factor sign-in changes how you sign in from now on, so it asks for a recent sign-in/,
    );
    assert.doesNotMatch(refused.body, /totp-secret|otpauth/, 'no secret shown');
    assert.deepEqual(await server.app.twoFactor.status(person.id), {
      enrolled: false,
      pending: false,
      recoveryCodesLeft: 0,
    });
    // The way on: the console's sign-in, asking again although the session lives, back to the section.
    const again = /<a class="button" href="([^"]+)">Sign in again<\/a>/.exec(refused.body)?.[1];
    assert.ok(again, 'a "Sign in again" link');
    const seen: NonNullable<Parameters<typeof signIn>[3]>['seen'] = [];
    const signedIn = await signIn(here, server, url(again.replaceAll('&amp;', '&')), {
      username: person.username,
      password: PASSWORD,
      seen,
    });
    assert.deepEqual(
      seen.map((step) => step.kind),
      ['login', 'other'],
      'the password is asked for, then the console is signed in',
    );
    assert.equal(signedIn.status, 200);
    const hop = await signedIn.text();
    assert.match(hop, /<h1>Signed in<\/h1>/);
    assert.ok(
      hop.includes('<meta http-equiv="refresh" content="0; url=/account#two-factor">'),
      'back to the two-factor section',
    );

    const fresh = await consoleGet(here, url('/account'));
    const enrol = await consolePost(here, url('/account/two-factor/enrol'), fresh.csrf!);
    assert.equal(enrol.status, 200);
    const secret = /<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(enrol.body)![1]!.replaceAll(' ', '');
    const enrolment = /name="enrolment" value="([^"]+)"/.exec(enrol.body)![1]!;
    const confirmed = await consolePost(here, url('/account/two-factor/confirm'), fresh.csrf!, {
      code: currentCode(secret),
      enrolment,
    });
    assert.equal(confirmed.status, 200);
    assert.match(confirmed.body, /id="recovery-codes"/);
    assert.equal((await server.app.twoFactor.status(person.id)).enrolled, true);
  });

  it('sets two-factor sign-in up from a sign-in under ten minutes old, and does not turn it on once the sign-in is older', async () => {
    const person = await seedUser(server);
    const here = await consoleSignIn(server, person.username);
    const page = await consoleGet(here, url('/account'));
    await signedInAgo(server.app.database.db, person.id, 5);
    const enrol = await consolePost(here, url('/account/two-factor/enrol'), page.csrf!);
    assert.equal(enrol.status, 200);
    const secret = /<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(enrol.body)![1]!.replaceAll(' ', '');
    const enrolment = /name="enrolment" value="([^"]+)"/.exec(enrol.body)![1]!;
    await signedInAgo(server.app.database.db, person.id, 6);
    const refused = await consolePost(here, url('/account/two-factor/confirm'), page.csrf!, {
      code: currentCode(secret),
      enrolment,
    });
    assert.equal(refused.status, 403);
    assert.match(pageText(refused.body), /Nothing was turned on\. After signing in, set it up again/);
    assert.doesNotMatch(refused.body, /recovery-codes/);
    assert.equal((await server.app.twoFactor.status(person.id)).enrolled, false);
  });

  it('shows a refused password change or turn-off at the field to blame, which takes the focus', async () => {
    const person = await seedUser(server);
    const here = await consoleSignIn(server, person.username);
    const page = await consoleGet(here, url('/account'));
    /** The input named `name`, and whether it is focused, invalid and described by its error. */
    const field = (body: string, name: string) => {
      const input = new RegExp(`<input[^>]*name="${name}"[^>]*>`).exec(body)![0];
      return {
        autofocus: /\sautofocus[\s>]/.test(input),
        invalid: input.includes('aria-invalid="true"'),
        describedBy: /aria-describedby="([^"]*)"/.exec(input)?.[1] ?? '',
        error: new RegExp(`<p class="field-error" id="${name}-error">([^<]*)</p>`).exec(body)?.[1],
      };
    };
    const passwords = {
      new_password: 'a brand new passphrase',
      new_password_again: 'a brand new passphrase',
    };

    const differ = await consolePost(here, url('/account/password'), page.csrf!, {
      current_password: PASSWORD,
      ...passwords,
      new_password_again: 'something else',
    });
    assert.equal(differ.status, 400);
    assert.deepEqual(field(differ.body, 'new_password_again'), {
      autofocus: true,
      invalid: true,
      describedBy: 'new_password_again-error',
      error: 'The two new passwords differ.',
    });
    assert.equal(field(differ.body, 'current_password').autofocus, false, 'one field takes the focus');

    const wrong = await consolePost(here, url('/account/password'), page.csrf!, {
      current_password: 'not it',
      ...passwords,
    });
    assert.equal(wrong.status, 401);
    assert.deepEqual(field(wrong.body, 'current_password'), {
      autofocus: true,
      invalid: true,
      describedBy: 'current_password-error',
      error: 'The current password is wrong.',
    });

    const short = await consolePost(here, url('/account/password'), page.csrf!, {
      current_password: PASSWORD,
      new_password: 'short',
      new_password_again: 'short',
    });
    assert.equal(short.status, 400);
    assert.equal(field(short.body, 'new_password').autofocus, true);
    assert.match(field(short.body, 'new_password').error ?? '', /8/);

    await server.app.twoFactor.beginEnrolment(person);
    const { secret, id } = (await server.app.twoFactor.pendingEnrolment(person))!;
    await server.app.twoFactor.confirmEnrolment(person, currentCode(secret), id);
    const on = await consoleGet(here, url('/account'));
    const refused = await consolePost(here, url('/account/two-factor/disable'), on.csrf!, { code: '123456' });
    assert.equal(refused.status, 401);
    assert.deepEqual(field(refused.body, 'code'), {
      autofocus: true,
      invalid: true,
      describedBy: 'code-error',
      error: 'That code is not valid. Two-factor sign-in is still on.',
    });
  });

  it('signs out everywhere only with the CSRF token, after a confirmation page', async () => {
    const other = await consoleSignIn(server, user.username, { password: 'a brand new passphrase' });
    const page = await consoleGet(browser, url('/account'));
    assert.match(pageText(page.body), /Where you are signed in/);
    assert.ok(page.body.includes('href="/account/sign-out-everywhere"'));
    const forged = await consolePost(browser, url('/account/sign-out-everywhere'), null);
    assert.equal(forged.status, 403);
    assert.equal((await consoleGet(other, url('/account'))).status, 200, 'nothing ended');
    const confirm = await consoleGet(browser, url('/account/sign-out-everywhere'));
    assert.equal(confirm.status, 200);
    assert.match(pageText(confirm.body), /Sign out everywhere\? .*session\(s\), this one included/);
    const done = await consolePost(browser, url('/account/sign-out-everywhere'), confirm.csrf!);
    assert.equal(done.status, 303);
    assert.equal(done.location, '/?signed-out=everywhere');
    for (const each of [browser, other]) {
      const account = await consoleGet(each, url('/account'));
      assert.equal(account.status, 302, 'back to the sign-in');
    }
    // The audit trail names the user as the one who ended them (audit events are stored in batches).
    const signedOut = async () =>
      (await server.app.auditStore.list({ userId: user.id, kinds: ['sessions_ended'] })).filter(
        (event) => event.record.reason === 'signed_out',
      );
    await eventually(async () => (await signedOut()).length > 0, 'a sessions_ended event');
    assert.deepEqual(
      (await signedOut()).map((event) => [event.record.actor, event.record.count]),
      [[`self:${user.username}`, 2]],
    );
  });

  it('answers 415 to a compressed form or an unreadable Content-Type, as the sign-in pages do, the session and its CSRF token still good', async () => {
    const member = await seedUser(server);
    const visitor = await consoleSignIn(server, member.username);
    const csrf = (await consoleGet(visitor, url('/account'))).csrf!;
    const fields = new URLSearchParams({
      csrf_token: csrf,
      current_password: PASSWORD,
      new_password: 'a compressed passphrase',
      new_password_again: 'a compressed passphrase',
    }).toString();
    const post = (headers: Record<string, string>, body: string | Buffer) =>
      visitor.fetch(url('/account/password'), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: server.origin, ...headers },
        body,
      });
    for (const coding of ['gzip', 'deflate', 'br']) {
      const body =
        coding === 'gzip'
          ? gzipSync(fields)
          : coding === 'deflate'
            ? deflateSync(fields)
            : brotliCompressSync(fields);
      const refused = await post({ 'content-encoding': coding }, body);
      assert.equal(refused.status, 415, coding);
      assert.equal(refused.headers.get('accept-encoding'), 'identity', coding);
      assert.match(
        pageText(await refused.text()),
        /Content encodings \(gzip, deflate, br\) are not accepted: send the form body uncompressed/,
        coding,
      );
    }
    for (const type of ['; charset', '; charset="utf-8', '; charset=utf 8', '; charset=ISO-8859-1; x']) {
      const refused = await post({ 'content-type': `application/x-www-form-urlencoded${type}` }, fields);
      assert.equal(refused.status, 415, type);
      assert.match(pageText(await refused.text()), /This form's Content-Type header cannot be read/, type);
    }
    // A charset beside an empty parameter, which Koa's reading took for none, is still refused.
    const latin = await post(
      { 'content-type': 'application/x-www-form-urlencoded; charset=ISO-8859-1;' },
      fields,
    );
    assert.equal(latin.status, 415);
    assert.match(pageText(await latin.text()), /This form declares a charset other than UTF-8/);
    assert.equal(
      (await server.app.directoryAdmin.verifyPassword(member.username, PASSWORD)).outcome,
      'valid',
    );
    // The same token, sent again uncompressed, is taken.
    const changed = await post({}, fields);
    assert.equal(changed.status, 303);
    assert.equal(
      (await server.app.directoryAdmin.verifyPassword(member.username, 'a compressed passphrase')).outcome,
      'valid',
    );
  });
});
