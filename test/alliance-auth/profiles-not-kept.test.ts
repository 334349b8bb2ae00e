import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import {
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
  allianceAuthDirectory,
  FIXTURE_PASSWORD,
  type AllianceAuthTestDatabase,
} from '../helpers/alliance-auth.ts';
import { allianceAuthActions, type AllianceAuthActions } from '../helpers/alliance-auth-changes.ts';
import { authorizeParams, codeFrom, introspect, tokenRequest, userinfo } from '../helpers/flows.ts';
import {
  authorizeUrl,
  Browser,
  REDIRECT_URI,
  seedApp,
  signIn,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

/**
 * The built-in directory's profiles are kept in memory until aa-oidc's change log names a change
 * (src/oidc/kept-profiles.ts); Alliance Auth's database is not aa-oidc's and nothing logs a change
 * there, so its profiles are read at every request: a change made in AA counts on the very next
 * request, before the poller has seen it.
 */
await describeOnEachAllianceAuth(
  (database) => `Alliance Auth's profiles are read at every request, on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let server: TestServer;
    let aa: AllianceAuthActions;

    before(async () => {
      fixture = await createAllianceAuthDatabase(kind);
      aa = allianceAuthActions(fixture);
      // No poll during the test: what refuses the token is the profile read at the request.
      server = await startServer({
        directory: allianceAuthDirectory(fixture.readerUrl, { passwordLogin: true, pollSeconds: 3600 }),
      });
      await server.app.allianceAuth!.poller.pollOnce();
    });
    after(async () => {
      await server?.close();
      await fixture?.drop();
    });

    it('refuses at the next userinfo and introspection a user deactivated in AA, before any poll', async () => {
      assert.equal(
        server.app.directory.keepable,
        undefined,
        'the directory does not offer its profiles to keep',
      );
      const created = await seedApp(server, { name: 'Wiki', skipAuthorization: true });
      const client = { clientId: created.clientId, clientSecret: created.clientSecret! };
      const { params, verifier } = authorizeParams(client, { scope: 'openid' });
      const response = await signIn(new Browser(), server, authorizeUrl(server, params), {
        username: 'frank',
        password: FIXTURE_PASSWORD,
      });
      const exchanged = await tokenRequest(server, client, {
        grant_type: 'authorization_code',
        code: codeFrom(response),
        redirect_uri: REDIRECT_URI,
        code_verifier: verifier,
      });
      assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
      const token = exchanged.body.access_token as string;
      assert.equal((await userinfo(server, token)).status, 200);
      assert.equal((await userinfo(server, token)).status, 200);
      assert.equal((await introspect(server, client, token)).body.active, true);
      await aa.deactivate(1);
      assert.equal((await userinfo(server, token)).status, 401, 'userinfo refuses the token');
      assert.equal(
        (await introspect(server, client, token)).body.active,
        false,
        'introspection says inactive',
      );
    });
  },
);
