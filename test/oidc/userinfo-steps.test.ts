import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import userinfoStack from 'oidc-provider/lib/actions/userinfo.js';
import { buildUserinfoErrorsOnlyWhenThrown } from '../../src/oidc/provider-internals.ts';
import { login, userinfo } from '../helpers/flows.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';

describe(`userinfo's token, client and account steps (${testDatabaseKind})`, () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => server.close());

  it("replaces oidc-provider's three steps in place, once", () => {
    buildUserinfoErrorsOnlyWhenThrown();
    const names = (userinfoStack as Array<{ name?: string }>).map((step) => step.name);
    for (const replaced of ['validateAccessToken', 'loadAccessTokenClient', 'loadAccessTokenAccount'])
      assert.ok(!names.includes(replaced), `${replaced} is still in the userinfo stack`);
    const length = names.length;
    buildUserinfoErrorsOnlyWhenThrown();
    assert.equal(userinfoStack.length, length);
    assert.ok(
      names.indexOf('validateUserinfoAccessToken') < names.indexOf('loadUserinfoClient') &&
        names.indexOf('loadUserinfoClient') < names.indexOf('loadUserinfoAccount'),
    );
  });

  it('answers a known token with claims, and an unknown one, a deactivated user, a deactivated application with invalid_token', async () => {
    const user = await seedUser(server);
    const app = await seedApp(server);
    const client = { clientId: app.clientId, clientSecret: app.clientSecret! };
    const { accessToken } = await login(server, client, user.username);
    const known = await userinfo(server, accessToken);
    assert.equal(known.status, 200);
    assert.equal((JSON.parse(known.body) as { sub?: string }).sub, String(user.id));

    const unknown = await userinfo(server, `${accessToken}x`);
    assert.equal(unknown.status, 401);
    assert.match(unknown.wwwAuthenticate, /error="invalid_token"/);
    assert.match(unknown.wwwAuthenticate, /error_description="invalid token provided"/);

    await server.app.directoryAdmin.deactivate({ id: user.id });
    const deactivatedUser = await userinfo(server, accessToken);
    assert.equal(deactivatedUser.status, 401);
    assert.match(deactivatedUser.wwwAuthenticate, /error="invalid_token"/);

    const other = await seedUser(server);
    const { accessToken: otherToken } = await login(server, client, other.username);
    assert.equal((await userinfo(server, otherToken)).status, 200);
    await server.app.applications.deactivate(app.clientId, 'test');
    const deactivatedApp = await userinfo(server, otherToken);
    assert.equal(deactivatedApp.status, 401);
    assert.match(deactivatedApp.wwwAuthenticate, /error="invalid_token"/);
  });
});
