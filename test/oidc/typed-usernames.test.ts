import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { LOGIN_FAILED_MESSAGE } from '../../src/oidc/interactions/routes.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { login, openLoginPage, submitLogin } from '../helpers/flows.ts';
import {
  formAction,
  formField,
  PASSWORD,
  seedApp,
  seedUser,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

/**
 * The username typed at password sign-in with the built-in directory, read as Django reads it:
 * NFKC, so a compatibility form finds the user, and whole: a name longer than any user's is nobody's,
 * never cut to the 150 characters another user may have. The password is never cut either.
 */
describe(`usernames and passwords typed at password sign-in (${testDatabaseKind})`, () => {
  let server: TestServer;
  let client: { clientId: string; clientSecret: string };

  before(async () => {
    server = await startServer();
    const created = await seedApp(server, { skipAuthorization: true });
    client = { clientId: created.clientId, clientSecret: created.clientSecret! };
  });
  after(async () => server.close());

  const subOf = async (username: string) => {
    const { idToken } = await login(server, client, username);
    return decodeJwt(idToken!).sub;
  };

  it('stores a name made in a compatibility form as NFKC, and finds its user by any such form', async () => {
    const made = await server.app.directoryAdmin.createUser({
      username: 'ｆｉｏｎａ',
      email: 'fiona@example.org',
      password: PASSWORD,
      oidcAccess: true,
    });
    assert.equal(made.user.username, 'fiona', 'created as Django creates it');
    for (const spelling of ['fiona', 'ｆｉｏｎａ', '𝐟𝐢𝐨𝐧𝐚', 'ﬁona']) {
      assert.equal(await subOf(spelling), String(made.user.id), spelling);
    }
  });

  it('never cuts a long username: 151 characters fail as an unknown user would, and are throttled', async () => {
    const user = await seedUser(server, { username: 'q'.repeat(150) });
    const failures = async () =>
      (await server.app.database.db.selectFrom('login_failure').select('id').execute()).length;
    const before = await failures();
    const refused = await submitLogin(
      await openLoginPage(server, client.clientId),
      'q'.repeat(151),
      PASSWORD,
    );
    assert.equal(refused.status, 401, 'the same refusal as a wrong password');
    assert.ok(refused.body.includes(LOGIN_FAILED_MESSAGE));
    assert.equal(await failures(), before + 1, 'the attempt counts against the throttle');
    assert.equal(await subOf(user.username), String(user.id), 'the 150-character name itself signs in');
  });

  it('signs in a name of up to 150 characters that is longer in UTF-16 units', async () => {
    // 105 characters, 205 UTF-16 units.
    const user = await seedUser(server, { username: `pilot${'𠀀'.repeat(100)}` });
    assert.equal(await subOf(user.username), String(user.id));
  });

  it('lets the form take a 150-character name outside the BMP, and a password as long as may be set', async () => {
    const page = await openLoginPage(server, client.clientId);
    const maxlength = (name: string) =>
      Number(new RegExp(`name="${name}"[^>]*maxlength="(\\d+)"`).exec(page.body)?.[1]);
    // A browser counts UTF-16 units: 150 such characters are 300.
    assert.ok(
      maxlength('username') >= '𠀀'.repeat(150).length,
      `username maxlength ${maxlength('username')}`,
    );
    assert.equal(maxlength('password'), 1024, 'the most a password may have, in UTF-16 units');
  });

  it('never cuts a long password: the right 1024 UTF-16 units and one more fail as a wrong password would, and are throttled', async () => {
    for (const password of ['w'.repeat(1024), '😀'.repeat(512)]) {
      const user = await seedUser(server, { password });
      const failures = async () =>
        (await server.app.database.db.selectFrom('login_failure').select('id').execute()).length;
      const before = await failures();
      for (const longer of [`${password}x`, `${password}😀`, `${password}${'x'.repeat(4000)}`]) {
        const refused = await submitLogin(
          await openLoginPage(server, client.clientId),
          user.username,
          longer,
        );
        assert.equal(refused.status, 401, 'the same refusal as a wrong password');
        assert.ok(refused.body.includes(LOGIN_FAILED_MESSAGE));
      }
      assert.equal(await failures(), before + 3, 'each attempt counts against the throttle');
      const { idToken } = await login(server, client, user.username, { password });
      assert.equal(decodeJwt(idToken!).sub, String(user.id), 'the password itself signs in');
    }
  });

  /** A user who must choose a new password, signed in up to the page that asks for it. */
  async function atNewPasswordPage() {
    const user = await seedUser(server);
    await server.app.database.db
      .updateTable('app_user')
      .set({ must_change_password: 1 })
      .where('id', '=', user.id)
      .execute();
    const opened = await openLoginPage(server, client.clientId);
    const page = (await submitLogin(opened, user.username, PASSWORD)).body;
    assert.match(page, /<h1>Choose a new password<\/h1>/);
    return { user, opened, page };
  }

  /** Posts the new-password form of `page` with `newPassword`, confirmed as `confirmation`. */
  async function chooseNewPassword(
    opened: Awaited<ReturnType<typeof atNewPasswordPage>>['opened'],
    page: string,
    newPassword: string,
    confirmation = newPassword,
  ): Promise<{ status: number; body: string }> {
    const response = await opened.browser.fetch(formAction(page, server.origin), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        csrf_token: formField(page, 'csrf_token'),
        change_token: formField(page, 'change_token'),
        new_password: newPassword,
        confirm_password: confirmation,
      }).toString(),
    });
    return { status: response.status, body: await response.text() };
  }

  it('takes at the first sign-in a new password confirmed in the other Unicode form (NFD, then NFC) as the same', async () => {
    const { user, opened, page } = await atNewPasswordPage();
    const chosen = await chooseNewPassword(
      opened,
      page,
      'crème brûlée'.normalize('NFD'),
      'crème brûlée'.normalize('NFC'),
    );
    assert.equal(chosen.status, 303, chosen.body);
    const { idToken } = await login(server, client, user.username, {
      password: 'crème brûlée'.normalize('NFC'),
    });
    assert.equal(decodeJwt(idToken!).sub, String(user.id), 'either form signs in');
  });

  it('refuses at the first sign-in a new password longer than sign-in takes, naming the limit, and takes the longest', async () => {
    const { user, opened, page: first } = await atNewPasswordPage();
    let page = first;
    assert.match(page, /name="new_password"[^>]*maxlength="1024"/);
    const choose = (password: string) => chooseNewPassword(opened, page, password);
    const refused = await choose('😀'.repeat(513));
    assert.equal(refused.status, 400);
    assert.match(
      refused.body,
      /The password is too long: at most 1024 characters are accepted, an emoji counting as two/,
    );
    page = refused.body;
    assert.equal((await choose('😀'.repeat(512))).status, 303, 'the longest password is taken');
    const { idToken } = await login(server, client, user.username, { password: '😀'.repeat(512) });
    assert.equal(decodeJwt(idToken!).sub, String(user.id), 'and signs in');
  });
});
