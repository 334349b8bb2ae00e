import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LOGIN_FAILED_MESSAGE, LOGIN_THROTTLED_MESSAGE } from '../../src/oidc/interactions/routes.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { openLoginPage, submitLogin } from '../helpers/flows.ts';
import { PASSWORD, seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';

/** Attacks on the login throttle: look-alike usernames, forged X-Forwarded-For, hostile bytes. */
describe(`login throttle hardening (${testDatabaseKind})`, () => {
  let server: TestServer;
  let clientId: string;

  before(async () => {
    server = await startServer({
      trustProxy: true,
      login: { maxFailuresPerAccount: 3, maxFailuresPerAddress: 4, failureWindowSeconds: 900 },
    });
    clientId = (await seedApp(server)).clientId;
  });
  after(async () => server.close());

  async function attempt(
    username: string,
    password: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: string }> {
    return submitLogin(await openLoginPage(server, clientId), username, password, { headers });
  }

  const forgetFailures = () => server.app.database.db.deleteFrom('login_failure').execute();

  it('counts look-alike spellings of a username against one account', async () => {
    await forgetFailures();
    const user = await seedUser(server);
    const fullwidth = [...user.username]
      .map((char) => (/[a-z0-9]/i.test(char) ? String.fromCodePoint(char.codePointAt(0)! + 0xfee0) : char))
      .join('');
    assert.notEqual(fullwidth, user.username);
    assert.equal(fullwidth.normalize('NFKC'), user.username, 'the fullwidth form normalises to the username');
    for (const spelling of [user.username, fullwidth, user.username.toUpperCase()]) {
      assert.equal((await attempt(spelling, 'wrong')).status, 401);
    }
    const blocked = await attempt(user.username, PASSWORD);
    assert.equal(blocked.status, 429, 'three failures under three spellings exhaust the one account');
    assert.ok(blocked.body.includes(LOGIN_THROTTLED_MESSAGE));
  });

  it('reads the client address from the right of X-Forwarded-For, so a forged left entry changes nothing', async () => {
    await forgetFailures();
    for (let i = 0; i < 4; i += 1) {
      const forged = { 'x-forwarded-for': `198.51.100.${i + 1}, 203.0.113.9` };
      assert.equal((await attempt(`someone-${i}`, 'wrong', forged)).status, 401);
    }
    const rows = await server.app.database.db.selectFrom('login_failure').select('address').execute();
    assert.deepEqual(new Set(rows.map((row) => row.address)), new Set(['203.0.113.9']));
    const user = await seedUser(server);
    const blocked = await attempt(user.username, PASSWORD, { 'x-forwarded-for': '192.0.2.77, 203.0.113.9' });
    assert.equal(blocked.status, 429, 'the address the proxy saw is throttled whatever the client claims');
  });

  it('answers 400 to control characters in the username, never 500, and stores nothing', async () => {
    await forgetFailures();
    for (const username of ['ad\u0000min', 'admin\u0007', '\u001badmin']) {
      const outcome = await attempt(username, 'whatever');
      assert.equal(outcome.status, 400);
      assert.ok(outcome.body.includes(LOGIN_FAILED_MESSAGE));
    }
    assert.equal((await server.app.database.db.selectFrom('login_failure').select('id').execute()).length, 0);
  });
});
