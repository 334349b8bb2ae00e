import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import {
  allianceAuthEnv,
  describeOnEachAllianceAuth,
  expectedFixture,
  FIXTURE_PASSWORD,
} from '../helpers/alliance-auth.ts';
import { serveAllianceAuth } from '../helpers/alliance-auth-server.ts';
import { introspect, login } from '../helpers/flows.ts';
import { seedApp } from '../helpers/server.ts';
import { logoutJobs } from '../logout/jobs.ts';
import { type RpReceiver, startRpReceiver, verifyLogoutToken } from '../logout/rp-receiver.ts';

/**
 * With Alliance Auth as the directory, narrowing an application's whitelists reads the profiles of
 * the users who signed in there from AA's database: those no longer admitted are logged out of the
 * application and lose their tokens there; the others keep theirs.
 */
await describeOnEachAllianceAuth(
  (database) => `narrowed whitelists with Alliance Auth's users, on ${database}`,
  (kind) => {
    const suite = serveAllianceAuth(kind, {
      directory: { passwordLogin: true, pollSeconds: 3600 },
      config: { logout: { allowPrivateTargets: true, retryBackoffSeconds: [1, 1] } },
    });
    let receiver: RpReceiver;

    before(async () => {
      receiver = await startRpReceiver();
    });
    after(async () => {
      await receiver?.close();
    });

    it('app update --remove-group Directors logs carol (Guest, Directors) out, alice (Member) keeps access', async () => {
      const users = new Map(expectedFixture().users.map((user) => [user.username, user.id]));
      const created = await seedApp(suite.server, {
        name: 'Board',
        skipAuthorization: true,
        states: ['Member'],
        groups: ['Directors'],
        backchannelLogoutUri: receiver.url(),
      });
      const app = { clientId: created.clientId, clientSecret: created.clientSecret! };
      const signedIn = (username: string) =>
        login(suite.server, app, username, { scope: 'openid', password: FIXTURE_PASSWORD });
      const alice = await signedIn('alice');
      const carol = await signedIn('carol');
      const env = testEnv(suite.server.database, {
        ...allianceAuthEnv(suite.fixture.readerUrl, { passwordLogin: true }),
        AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS: 'true',
      });

      const dry = await cli(['app', 'update', app.clientId, '--remove-group', 'Directors', '--dry-run'], env);
      assert.equal(dry.code, 0, dry.stderr);
      assert.deepEqual(await logoutJobs(suite.server.app.database, { clientId: app.clientId }), []);
      assert.equal((await introspect(suite.server, app, carol.accessToken)).body.active, true);

      const done = await cli(['app', 'update', app.clientId, '--remove-group', 'Directors'], env);
      assert.equal(done.code, 0, done.stderr);
      const jobs = await logoutJobs(suite.server.app.database, { clientId: app.clientId });
      assert.deepEqual(
        jobs.map((job) => [job.user_id, job.trigger]),
        [[users.get('carol'), 'whitelist_changed']],
      );
      await suite.server.app.logout.deliverDue();
      assert.equal(receiver.tokens().length, 1);
      const claims = await verifyLogoutToken(suite.server, receiver.tokens()[0]!, {
        clientId: app.clientId,
        sub: String(users.get('carol')),
        sid: 'present',
      });
      assert.equal(claims.sid, jobs[0]!.sid);
      assert.equal((await introspect(suite.server, app, carol.accessToken)).body.active, false);
      assert.equal((await introspect(suite.server, app, alice.accessToken)).body.active, true);
      assert.match(dry.stdout, /users who signed in here and would lose access: 1\n/);
    });

    it('narrowing judges by the state Alliance Auth has now: alice, made Guest there and not yet read, is logged out', async () => {
      const aliceId = expectedFixture().users.find((user) => user.username === 'alice')!.id;
      const created = await seedApp(suite.server, {
        name: 'Members only',
        skipAuthorization: true,
        states: ['Member'],
        backchannelLogoutUri: receiver.url(),
      });
      const app = { clientId: created.clientId, clientSecret: created.clientSecret! };
      const alice = await login(suite.server, app, 'alice', { scope: 'openid', password: FIXTURE_PASSWORD });
      // AA makes alice a Guest; aa-oidc polls hourly here, so it has not read that yet. When it does,
      // it judges by the whitelists then (Blue only), which deny Member as well: no state change
      // would tell the application.
      await suite.fixture.run('UPDATE authentication_userprofile SET state_id = ? WHERE user_id = ?', [
        1,
        aliceId,
      ]);
      try {
        await suite.server.app.applications.update(app.clientId, { states: ['Blue'] }, 'test');
        assert.deepEqual(
          (await logoutJobs(suite.server.app.database, { clientId: app.clientId })).map((job) => [
            job.user_id,
            job.trigger,
          ]),
          [[aliceId, 'whitelist_changed']],
        );
        assert.equal((await introspect(suite.server, app, alice.accessToken)).body.active, false);
      } finally {
        await suite.fixture.run('UPDATE authentication_userprofile SET state_id = ? WHERE user_id = ?', [
          2,
          aliceId,
        ]);
      }
    });
  },
);
