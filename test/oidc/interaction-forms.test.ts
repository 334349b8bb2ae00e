import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { currentCode } from '../../src/two-factor/totp.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { openLoginPage, submitLogin } from '../helpers/flows.ts';
import {
  type Browser,
  formAction,
  formField,
  PASSWORD,
  seedApp,
  seedTwoFactorUser,
  seedUser,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

const MALFORMED = /This form is malformed: its fields must be UTF-8 text with well-formed %-escapes/;

/** Bodies a browser never sends: not UTF-8, or %-escapes that decode to no text. */
/** Signs in on `login`'s page with `fields`, and gives the consent page that follows. */
async function consentPageAfter(
  login: Awaited<ReturnType<typeof openLoginPage>>,
  origin: string,
  fields: ConstructorParameters<typeof URLSearchParams>[0],
): Promise<string> {
  const consent = await login.browser.follow(login.action, origin, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });
  const page = await consent.text();
  assert.match(page, /name="decision"/);
  return page;
}

function malformedBodies(fields: string): Array<string | Buffer> {
  return [
    `${fields}=%ff`,
    `${fields}=a%e2%82`,
    `${fields}=%ed%a0%80`,
    `${fields}=50%`,
    `${fields}=%zz`,
    Buffer.concat([Buffer.from(`${fields}=a`), Buffer.from([0xff])]),
  ];
}

/** The sign-in forms (login, first-sign-in password, consent) refuse what the console forms refuse. */
describe(`interaction forms that are not UTF-8 text (${testDatabaseKind})`, () => {
  let server: TestServer;
  let clientId: string;

  before(async () => {
    server = await startServer();
    clientId = (await seedApp(server)).clientId;
  });
  after(async () => server.close());

  const post = (page: { browser: Browser }, action: string, body: string | Buffer) =>
    page.browser.fetch(action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });

  it('answers 400 naming the problem to a malformed login form, and counts no failed sign-in', async () => {
    const user = await seedUser(server);
    const page = await openLoginPage(server, clientId);
    const fields = `csrf_token=${encodeURIComponent(page.csrf)}&username=${user.username}&password`;
    for (const body of malformedBodies(fields)) {
      const response = await post(page, page.action, body);
      assert.equal(response.status, 400, String(body));
      assert.match(await response.text(), MALFORMED);
    }
    const failures = await server.app.database.db.selectFrom('login_failure').select('id').execute();
    assert.equal(failures.length, 0, 'a form that was not read is no failed sign-in');
    // The same page still signs in with a well-formed form.
    assert.equal((await submitLogin(page, user.username, PASSWORD)).status, 303);
  });

  it('stores no password from a malformed first-sign-in password form, never U+FFFD', async () => {
    const user = await seedUser(server);
    const db = server.app.database.db;
    await db.updateTable('app_user').set({ must_change_password: 1 }).where('id', '=', user.id).execute();
    const hashBefore = (
      await db
        .selectFrom('app_user')
        .select('password_hash')
        .where('id', '=', user.id)
        .executeTakeFirstOrThrow()
    ).password_hash;

    const login = await openLoginPage(server, clientId);
    const asked = await login.browser.follow(login.action, server.origin, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        csrf_token: login.csrf,
        username: user.username,
        password: PASSWORD,
      }).toString(),
    });
    const page = await asked.text();
    assert.match(page, /<h1>Choose a new password<\/h1>/);
    const tokens = new URLSearchParams({
      csrf_token: formField(page, 'csrf_token'),
      change_token: formField(page, 'change_token'),
      confirm_password: '\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD',
    }).toString();
    const action = formAction(page, server.origin);
    for (const body of [
      `${tokens}&new_password=%ff%ff%ff%ff%ff%ff%ff%ff`,
      Buffer.concat([Buffer.from(`${tokens}&new_password=`), Buffer.alloc(8, 0xff)]),
      `${tokens}&new_password=${'%zz'.repeat(8)}`,
    ]) {
      const response = await post(login, action, body);
      assert.equal(response.status, 400, String(body));
      assert.match(await response.text(), MALFORMED);
    }
    const row = await db
      .selectFrom('app_user')
      .select(['password_hash', 'must_change_password'])
      .where('id', '=', user.id)
      .executeTakeFirstOrThrow();
    assert.equal(row.password_hash, hashBefore, 'the password is unchanged');
    assert.equal(row.must_change_password, 1, 'a new password is still to be chosen');
  });

  it('refuses a first-sign-in password holding a bidirectional control or an invisible character, naming it, storing nothing', async () => {
    const user = await seedUser(server);
    const db = server.app.database.db;
    await db.updateTable('app_user').set({ must_change_password: 1 }).where('id', '=', user.id).execute();
    const stored = () =>
      db
        .selectFrom('app_user')
        .select(['password_hash', 'must_change_password'])
        .where('id', '=', user.id)
        .executeTakeFirstOrThrow();
    const before = await stored();

    const login = await openLoginPage(server, clientId);
    const asked = await login.browser.follow(login.action, server.origin, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        csrf_token: login.csrf,
        username: user.username,
        password: PASSWORD,
      }).toString(),
    });
    let page = await asked.text();
    assert.match(page, /<h1>Choose a new password<\/h1>/);
    for (const [next, named] of [
      ['a fresh \u2067drowssap\u2069 here', 'U+2067, a bidirectional control character'],
      ['a fresh\u200b password here', 'U+200B, an invisible character'],
    ] as const) {
      const response = await post(
        login,
        formAction(page, server.origin),
        new URLSearchParams({
          csrf_token: formField(page, 'csrf_token'),
          change_token: formField(page, 'change_token'),
          new_password: next,
          confirm_password: next,
        }).toString(),
      );
      page = await response.text();
      assert.equal(response.status, 400, named);
      assert.ok(
        page.includes(`The password holds a hidden character (${named})`),
        `${named}: ${page
          .replace(/<[^>]+>/g, ' ')
          .replace(/\s+/g, ' ')
          .slice(0, 600)}`,
      );
      assert.ok(!page.includes('drowssap') && !page.includes('password here'), 'the password is not echoed');
    }
    assert.deepEqual(await stored(), before, 'the password is unchanged, a new one still to be chosen');
  });

  it('answers 400 naming the problem to a malformed consent form', async () => {
    const user = await seedUser(server);
    const login = await openLoginPage(server, clientId);
    const page = await consentPageAfter(login, server.origin, {
      csrf_token: login.csrf,
      username: user.username,
      password: PASSWORD,
    });
    const fields = `csrf_token=${encodeURIComponent(formField(page, 'csrf_token'))}&decision`;
    for (const body of malformedBodies(fields)) {
      const response = await post(login, formAction(page, server.origin), body);
      assert.equal(response.status, 400, String(body));
      assert.match(await response.text(), MALFORMED);
    }
  });

  it('answers 415 to a login form declared in a charset other than UTF-8, and signs in with charset=utf-8', async () => {
    const user = await seedUser(server);
    const page = await openLoginPage(server, clientId);
    const failuresBefore = (await server.app.database.db.selectFrom('login_failure').select('id').execute())
      .length;
    for (const charset of ['ISO-8859-1', 'windows-1252', '"latin1"']) {
      const refused = await submitLogin(page, user.username, PASSWORD, {
        headers: { 'content-type': `application/x-www-form-urlencoded; charset=${charset}` },
      });
      assert.equal(refused.status, 415, charset);
      assert.match(refused.body, /This form declares a charset other than UTF-8: send it as UTF-8/, charset);
    }
    const failures = await server.app.database.db.selectFrom('login_failure').select('id').execute();
    assert.equal(failures.length, failuresBefore, 'a form that was not read is no failed sign-in');
    for (const charset of ['utf-8', '"UTF-8"']) {
      const again = await openLoginPage(server, clientId);
      const signedIn = await submitLogin(again, user.username, PASSWORD, {
        headers: { 'content-type': `application/x-www-form-urlencoded; charset=${charset}` },
      });
      assert.equal(signedIn.status, 303, charset);
    }
  });
  it('answers 415 naming the header to a login form whose Content-Type cannot be read, and signs in on the same page after', async () => {
    const user = await seedUser(server);
    const page = await openLoginPage(server, clientId);
    const failuresBefore = (await server.app.database.db.selectFrom('login_failure').select('id').execute())
      .length;
    for (const type of ['; charset', '; charset="utf-8', '; charset=ISO-8859-1; x y', '; charset=utf 8']) {
      const refused = await submitLogin(page, user.username, PASSWORD, {
        headers: { 'content-type': `application/x-www-form-urlencoded${type}` },
      });
      assert.equal(refused.status, 415, type);
      assert.match(refused.body, /This form&#39;s Content-Type header cannot be read/, type);
    }
    // Beside an empty parameter (`;` at the end), which Koa's reading took for no charset at all.
    const latin = await submitLogin(page, user.username, PASSWORD, {
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=ISO-8859-1;' },
    });
    assert.equal(latin.status, 415);
    assert.match(latin.body, /This form declares a charset other than UTF-8/);
    const failures = await server.app.database.db.selectFrom('login_failure').select('id').execute();
    assert.equal(failures.length, failuresBefore, 'a form that was not read is no failed sign-in');
    const signedIn = await submitLogin(page, user.username, PASSWORD, {
      headers: { 'content-type': 'application/x-www-form-urlencoded; ; charset=utf-8;' },
    });
    assert.equal(signedIn.status, 303);
  });
  it('answers 415 to a compressed login, consent or two-factor form, as the provider routes do', async () => {
    const compressed = async (page: { browser: Browser }, action: string, fields: Record<string, string>) => {
      const response = await page.browser.fetch(action, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'gzip' },
        body: gzipSync(new URLSearchParams(fields).toString()),
      });
      assert.equal(response.status, 415, action);
      assert.equal(response.headers.get('accept-encoding'), 'identity', action);
      assert.match(String(response.headers.get('content-type')), /^text\/html/, action);
      assert.match(await response.text(), /Content encodings \(gzip, deflate, br\) are not accepted/, action);
    };
    const signInFields = (csrf: string, username: string) => ({
      csrf_token: csrf,
      username,
      password: PASSWORD,
    });

    const failures = async () =>
      (await server.app.database.db.selectFrom('login_failure').select('id').execute()).length;
    const failuresBefore = await failures();
    const user = await seedUser(server);
    const login = await openLoginPage(server, clientId);
    await compressed(login, login.action, signInFields(login.csrf, user.username));
    assert.equal(await failures(), failuresBefore, 'a form that was not read is no failed sign-in');
    const consentPage = await consentPageAfter(login, server.origin, signInFields(login.csrf, user.username));
    await compressed(login, formAction(consentPage, server.origin), {
      csrf_token: formField(consentPage, 'csrf_token'),
      decision: 'allow',
    });

    const enrolment = await seedTwoFactorUser(server);
    const enrolled = enrolment.user;
    const second = await openLoginPage(server, clientId);
    const codeStep = await second.browser.follow(second.action, server.origin, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(signInFields(second.csrf, enrolled.username)).toString(),
    });
    const codePage = await codeStep.text();
    assert.match(codePage, /name="code"/);
    await compressed(second, formAction(codePage, server.origin), {
      csrf_token: formField(codePage, 'csrf_token'),
      pending: formField(codePage, 'pending'),
      code: currentCode(enrolment.secret),
    });
  });
  it('answers 415 naming the type to a login, consent or two-factor form sent as JSON, text or multipart, as the account pages do, losing nothing', async () => {
    // The pages' forms declare no enctype: a browser posts them urlencoded, never multipart.
    const otherTypes = (fields: Record<string, string>) => [
      { type: 'application/json', body: JSON.stringify(fields) as string | FormData },
      { type: 'text/plain', body: new URLSearchParams(fields).toString() },
      { type: 'multipart/form-data', body: formData(fields) },
    ];
    const formData = (fields: Record<string, string>) => {
      const data = new FormData();
      for (const [name, value] of Object.entries(fields)) data.set(name, value);
      return data;
    };
    const refused = async (page: { browser: Browser }, action: string, fields: Record<string, string>) => {
      for (const { type, body } of otherTypes(fields)) {
        const response = await page.browser.fetch(action, {
          method: 'POST',
          // A FormData body brings its own type, with its boundary.
          headers: body instanceof FormData ? {} : { 'content-type': type },
          body,
        });
        assert.equal(response.status, 415, `${type} to ${action}`);
        assert.equal(response.headers.get('connection'), 'close', type);
        const text = await response.text();
        assert.match(
          text,
          new RegExp(`This address takes a form sent as application/x-www-form-urlencoded, not ${type}\\.`),
          type,
        );
        assert.doesNotMatch(text, /expired/, type);
      }
    };
    const failures = async () =>
      (await server.app.database.db.selectFrom('login_failure').select('id').execute()).length;
    const failuresBefore = await failures();
    const urlencoded = (fields: Record<string, string>) => ({
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });

    const user = await seedUser(server);
    const login = await openLoginPage(server, clientId);
    const signIn = { csrf_token: login.csrf, username: user.username, password: PASSWORD };
    await refused(login, login.action, signIn);
    assert.equal(await failures(), failuresBefore, 'a form that was not read is no failed sign-in');
    // From another site the answer stays the refusal that says nothing of the form.
    const foreign = await login.browser.fetch(login.action, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', origin: 'https://evil.example' },
      body: new URLSearchParams(signIn).toString(),
    });
    assert.equal(foreign.status, 403);
    // The same page, its CSRF cookie and token, signs in with the form sent as it should be.
    const consent = await login.browser.follow(login.action, server.origin, urlencoded(signIn));
    const consentPage = await consent.text();
    assert.match(consentPage, /name="decision"/);
    const decision = { csrf_token: formField(consentPage, 'csrf_token'), decision: 'allow' };
    await refused(login, formAction(consentPage, server.origin), decision);
    const allowed = await login.browser.fetch(formAction(consentPage, server.origin), urlencoded(decision));
    assert.equal(allowed.status, 303);

    const enrolment = await seedTwoFactorUser(server);
    const enrolled = enrolment.user;
    const second = await openLoginPage(server, clientId);
    const codeStep = await second.browser.follow(
      second.action,
      server.origin,
      urlencoded({ csrf_token: second.csrf, username: enrolled.username, password: PASSWORD }),
    );
    const codePage = await codeStep.text();
    assert.match(codePage, /name="code"/);
    const failuresAtCode = await failures();
    const code = {
      csrf_token: formField(codePage, 'csrf_token'),
      pending: formField(codePage, 'pending'),
      // A recovery code, good once (the current TOTP code was used up by the enrolment).
      code: enrolment.recoveryCodes[0]!,
    };
    await refused(second, formAction(codePage, server.origin), code);
    assert.equal(await failures(), failuresAtCode, 'no code tried');
    // The code, not used up by the refused forms, signs in on the same page.
    const signedIn = await second.browser.fetch(formAction(codePage, server.origin), urlencoded(code));
    assert.equal(signedIn.status, 303);
  });

  it('answers 400 naming the field to a login, consent or two-factor form that gives a field twice, using none of it', async () => {
    const failures = async () =>
      (await server.app.database.db.selectFrom('login_failure').select('id').execute()).length;
    const failuresBefore = await failures();
    const send = (page: { browser: Browser }, action: string, fields: Array<[string, string]>) =>
      post(page, action, new URLSearchParams(fields).toString());
    const refused = async (
      page: { browser: Browser },
      action: string,
      field: string,
      fields: Array<[string, string]>,
    ) => {
      const response = await send(page, action, fields);
      const text = await response.text();
      assert.equal(response.status, 400, `${field} twice to ${action}`);
      assert.match(text, new RegExp(`This form gives the field ${field} more than once`), field);
      assert.doesNotMatch(text, /expired/, field);
    };

    const user = await seedUser(server);
    const login = await openLoginPage(server, clientId);
    const csrf: [string, string] = ['csrf_token', login.csrf];
    const username: [string, string] = ['username', user.username];
    const password: [string, string] = ['password', PASSWORD];
    await refused(login, login.action, 'username', [csrf, ['username', 'nobody'], username, password]);
    await refused(login, login.action, 'password', [csrf, username, ['password', 'wrong'], password]);
    // The CSRF token too, whichever of the two comes first: neither is checked.
    await refused(login, login.action, 'csrf_token', [csrf, ['csrf_token', 'forged'], username, password]);
    await refused(login, login.action, 'csrf_token', [['csrf_token', 'forged'], csrf, username, password]);
    assert.equal(await failures(), failuresBefore, 'no failed sign-in counted');

    // The same page signs in, and the consent page refuses a decision given twice, either way round.
    const consentPage = await consentPageAfter(login, server.origin, [csrf, username, password]);
    const consentAction = formAction(consentPage, server.origin);
    const consentCsrf: [string, string] = ['csrf_token', formField(consentPage, 'csrf_token')];
    await refused(login, consentAction, 'decision', [
      consentCsrf,
      ['decision', 'allow'],
      ['decision', 'deny'],
    ]);
    await refused(login, consentAction, 'decision', [
      consentCsrf,
      ['decision', 'deny'],
      ['decision', 'allow'],
    ]);
    await refused(login, consentAction, 'csrf_token', [consentCsrf, consentCsrf, ['decision', 'allow']]);
    // Nothing was decided: the consent is still to be given, and is.
    const allowed = await send(login, consentAction, [consentCsrf, ['decision', 'allow']]);
    assert.equal(allowed.status, 303);

    const enrolment = await seedTwoFactorUser(server);
    const second = await openLoginPage(server, clientId);
    const codeStep = await second.browser.follow(second.action, server.origin, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        csrf_token: second.csrf,
        username: enrolment.user.username,
        password: PASSWORD,
      }).toString(),
    });
    const codePage = await codeStep.text();
    assert.match(codePage, /name="code"/);
    const failuresAtCode = await failures();
    const codeAction = formAction(codePage, server.origin);
    const codeFields: Array<[string, string]> = [
      ['csrf_token', formField(codePage, 'csrf_token')],
      ['pending', formField(codePage, 'pending')],
    ];
    const recovery: [string, string] = ['code', enrolment.recoveryCodes[0]!];
    await refused(second, codeAction, 'code', [...codeFields, ['code', '000000'], recovery]);
    assert.equal(await failures(), failuresAtCode, 'no code tried');
    assert.equal((await send(second, codeAction, [...codeFields, recovery])).status, 303);
  });
  it('answers 400 naming allow and deny to a consent form without either, never telling the application of a denial, and takes the choice after', async () => {
    const user = await seedUser(server);
    const login = await openLoginPage(server, clientId);
    const consentPage = await consentPageAfter(login, server.origin, {
      csrf_token: login.csrf,
      username: user.username,
      password: PASSWORD,
    });
    const action = formAction(consentPage, server.origin);
    const csrf = formField(consentPage, 'csrf_token');
    for (const fields of [
      { csrf_token: csrf } as Record<string, string>,
      { csrf_token: csrf, decision: 'Allow' },
      { csrf_token: csrf, decision: '' },
    ]) {
      const response = await post(login, action, new URLSearchParams(fields).toString());
      assert.equal(response.status, 400, JSON.stringify(fields));
      assert.equal(response.headers.get('location'), null, 'nothing is sent to the application');
      assert.match(
        await response.text(),
        /Choose to allow or to deny the application \(decision is allow or deny\)/,
      );
    }
    // Nothing was decided: the same page allows, and the application gets its code.
    const allowed = await post(
      login,
      action,
      new URLSearchParams({ csrf_token: csrf, decision: 'allow' }).toString(),
    );
    assert.equal(allowed.status, 303);
    const done = await login.browser.follow(
      new URL(allowed.headers.get('location')!, server.origin).href,
      server.origin,
    );
    const location = new URL(done.headers.get('location')!);
    assert.ok(location.searchParams.get('code'), `a code, not: ${location.search}`);
    assert.equal(location.searchParams.get('error'), null);
  });
});
