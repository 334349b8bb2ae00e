import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { LOGIN_FAILED_MESSAGE } from '../../src/oidc/interactions/routes.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { login, openLoginPage, submitLogin } from '../helpers/flows.ts';
import { PASSWORD, seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';

/**
 * The username typed at password sign-in with the built-in directory, read as Django reads it:
 * NFKC, so a compatibility form finds the user, and whole: a name longer than any user's is nobody's,
 * never cut to the 150 characters another user may have.
 */
describe(`usernames typed at password sign-in (${testDatabaseKind})`, () => {
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
});
