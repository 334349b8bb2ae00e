import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { describeOnEachAllianceAuth, FIXTURE_PASSWORD } from '../helpers/alliance-auth.ts';
import { withColumnRenamed } from '../helpers/alliance-auth-changes.ts';
import {
  freshReadiness,
  NOT_READY_FOR_ALLIANCE_AUTH_SCHEMA,
  READY_WITH_ALLIANCE_AUTH,
  serveAllianceAuth,
} from '../helpers/alliance-auth-server.ts';
import { consoleGet, consoleSignIn } from '../helpers/console.ts';
import { authorize, login, tokenRequest, userinfo } from '../helpers/flows.ts';
import { Browser, seedApp } from '../helpers/server.ts';

/**
 * Alliance Auth's schema changing under a running aa-oidc (an upgrade or a migration applied halfway,
 * after the start-up schema check passed): every request that reads what is gone answers the
 * "try again" fault (503), never a 500, and the log names what is missing and what to check; once
 * the schema is whole again, so is every answer, with the tokens issued before.
 */
await describeOnEachAllianceAuth(
  (database) => `Alliance Auth's schema loses a column while serving, on ${database}`,
  (kind) => {
    const suite = serveAllianceAuth(kind, {
      directory: { passwordLogin: true, pollSeconds: 3600 },
      harness: true,
    });
    let client: { clientId: string; clientSecret: string };
    before(async () => {
      const created = await seedApp(suite.server, { name: 'Wiki', skipAuthorization: true });
      client = { clientId: created.clientId, clientSecret: created.clientSecret! };
    });
    const signIn = async () =>
      (await authorize(suite.server, new Browser(), client, 'alice', {}, { password: FIXTURE_PASSWORD }))
        .response;
    const whileIsActiveRenamed = (body: () => Promise<void>) =>
      withColumnRenamed(suite.fixture, 'auth_user', 'is_active', body);
    const readiness = () => freshReadiness(suite.server);

    it('answers the fault page, not a 500, naming the column and what to check, and serves again once it is back', async () => {
      const { server, harness } = suite;
      harness.registerSecret(FIXTURE_PASSWORD, 'the password');
      const tokens = await login(server, client, 'alice', { scope: 'openid', password: FIXTURE_PASSWORD });
      const admin = await consoleSignIn(server, 'frank', { password: FIXTURE_PASSWORD, returnTo: '/admin' });
      assert.deepEqual(await readiness(), READY_WITH_ALLIANCE_AUTH);
      await whileIsActiveRenamed(async () => {
        const signedIn = await signIn();
        assert.equal(signedIn.status, 503, 'a password sign-in');
        assert.match(await signedIn.text(), /could not complete the request/);
        // The load balancer takes the instance out: the sign-in's read made /readyz look at AA's
        // columns at once. Its answer names no column (public); the log does, once.
        assert.deepEqual(await readiness(), NOT_READY_FOR_ALLIANCE_AUTH_SCHEMA);
        const missing = harness.logLines.filter((line) => /lacks columns aa-oidc reads/.test(line));
        assert.equal(missing.length, 1, missing.join('\n'));
        assert.match(missing[0]!, /"level":50/);
        assert.match(missing[0]!, /"missing":\["auth_user\.is_active"\]/);
        assert.match(missing[0]!, /migrations are applied \(python manage\.py migrate\)/);
        const info = await userinfo(server, tokens.accessToken);
        assert.equal(info.status, 503, 'userinfo');
        assert.match(JSON.stringify(info.body), /temporarily_unavailable/);
        const refreshed = await tokenRequest(server, client, {
          grant_type: 'refresh_token',
          refresh_token: tokens.refreshToken,
        });
        assert.equal(refreshed.status, 503, 'a refresh');
        assert.equal(refreshed.body.error, 'temporarily_unavailable');
        assert.equal(
          (await consoleGet(admin, `${server.origin}/admin/users/2`)).status,
          503,
          'an admin page',
        );
      });
      assert.deepEqual(await readiness(), READY_WITH_ALLIANCE_AUTH, 'ready again once the column is back');
      const faults = harness.logLines.filter((line) => /lacks a table or column aa-oidc reads/.test(line));
      assert.equal(faults.length, 4, 'each request logged');
      for (const line of faults) {
        assert.match(line, /"level":50/);
        assert.match(line, /is_active/);
        assert.match(line, /migrations are applied \(python manage\.py migrate\)/);
      }
      assert.deepEqual(
        harness.logLines.filter((line) => /"status":500/.test(line)),
        [],
        'no request answered 500',
      );

      assert.equal((await signIn()).status, 303, 'signed in once the column is back');
      assert.equal((await userinfo(server, tokens.accessToken)).status, 200);
      const refreshed = await tokenRequest(server, client, {
        grant_type: 'refresh_token',
        refresh_token: tokens.refreshToken,
      });
      assert.equal(refreshed.status, 200, 'the refresh token refused meanwhile still works');
      await harness.assertNoLeaks();
    });

    it('takes the instance out at once when a poll cycle finds a column missing, with no request reading it', async () => {
      assert.deepEqual(await readiness(), READY_WITH_ALLIANCE_AUTH);
      await whileIsActiveRenamed(async () => {
        const cycle = await suite.poll();
        assert.equal(cycle.outcome, 'aa_schema_error');
        // Well within SCHEMA_RECHECK_MS of the last look that found every column: only the poll's
        // read can have made /readyz look again.
        assert.deepEqual(await readiness(), NOT_READY_FOR_ALLIANCE_AUTH_SCHEMA);
      });
      assert.deepEqual(await readiness(), READY_WITH_ALLIANCE_AUTH, 'ready again once the column is back');
      assert.equal((await suite.poll()).outcome, 'applied', 'the poll completes again');
    });
  },
);
