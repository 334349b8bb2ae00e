import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { describeOnEachAllianceAuth, FIXTURE_PASSWORD } from '../helpers/alliance-auth.ts';
import { allianceAuthActions, type AllianceAuthActions } from '../helpers/alliance-auth-changes.ts';
import { serveAllianceAuth } from '../helpers/alliance-auth-server.ts';
import { introspect, login, userinfo } from '../helpers/flows.ts';
import { seedApp } from '../helpers/server.ts';

/**
 * The built-in directory's profiles are kept in memory until aa-oidc's change log names a change
 * (src/oidc/kept-profiles.ts); Alliance Auth's database is not aa-oidc's and nothing logs a change
 * there, so its profiles are read at every request: a change made in AA counts on the very next
 * request, before the poller has seen it.
 */
await describeOnEachAllianceAuth(
  (database) => `Alliance Auth's profiles are read at every request, on ${database}`,
  (kind) => {
    // No poll during the test: what refuses the token is the profile read at the request.
    const suite = serveAllianceAuth(kind, { directory: { passwordLogin: true, pollSeconds: 3600 } });
    let aa: AllianceAuthActions;

    before(async () => {
      aa = allianceAuthActions(suite.fixture);
      await suite.poll();
    });

    it('refuses at the next userinfo and introspection a user deactivated in AA, before any poll', async () => {
      assert.equal(
        suite.server.app.directory.keepable,
        undefined,
        'the directory does not offer its profiles to keep',
      );
      const created = await seedApp(suite.server, { name: 'Wiki', skipAuthorization: true });
      const client = { clientId: created.clientId, clientSecret: created.clientSecret! };
      const { accessToken: token } = await login(suite.server, client, 'frank', {
        scope: 'openid',
        password: FIXTURE_PASSWORD,
      });
      assert.equal((await userinfo(suite.server, token)).status, 200);
      assert.equal((await userinfo(suite.server, token)).status, 200);
      assert.equal((await introspect(suite.server, client, token)).body.active, true);
      await aa.deactivate(1);
      assert.equal((await userinfo(suite.server, token)).status, 401, 'userinfo refuses the token');
      assert.equal(
        (await introspect(suite.server, client, token)).body.active,
        false,
        'introspection says inactive',
      );
    });
  },
);
