import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { describeOnEachAllianceAuth, FIXTURE_PASSWORD } from '../helpers/alliance-auth.ts';
import { allianceAuthActions, type AllianceAuthActions } from '../helpers/alliance-auth-changes.ts';
import { serveAllianceAuth } from '../helpers/alliance-auth-server.ts';
import { authorizeParams, codeFrom, introspect, tokenRequest, userinfo } from '../helpers/flows.ts';
import { authorizeUrl, Browser, REDIRECT_URI, seedApp, signIn } from '../helpers/server.ts';

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
      const { params, verifier } = authorizeParams(client, { scope: 'openid' });
      const response = await signIn(new Browser(), suite.server, authorizeUrl(suite.server, params), {
        username: 'frank',
        password: FIXTURE_PASSWORD,
      });
      const exchanged = await tokenRequest(suite.server, client, {
        grant_type: 'authorization_code',
        code: codeFrom(response),
        redirect_uri: REDIRECT_URI,
        code_verifier: verifier,
      });
      assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
      const token = exchanged.body.access_token as string;
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
