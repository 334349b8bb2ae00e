import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import {
  allianceAuthDirectory,
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
  FIXTURE_PASSWORD,
  grantReaderPerTable,
  withoutReaderSelect,
  type AllianceAuthTestDatabase,
} from '../helpers/alliance-auth.ts';
import { insertAllianceAuthUser } from '../helpers/alliance-auth-changes.ts';
import {
  freshReadiness,
  NOT_READY_FOR_ALLIANCE_AUTH_SCHEMA,
  READY_WITH_ALLIANCE_AUTH,
  serveAllianceAuth,
} from '../helpers/alliance-auth-server.ts';
import { authorize } from '../helpers/flows.ts';
import { Browser, seedApp, startServer, type TestServer } from '../helpers/server.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

/**
 * Alliance Auth password sign-in when AA cannot answer: its database unreachable, or refusing a read
 * for a privilege the login lost while serving. Either is a "try again" page (503), never a 500, and
 * spends nobody's sign-in budget; once AA answers again, so does sign-in, and a wrong password counts.
 */

/** Small budgets: a few outages counted as failures would spend them. */
const LOGIN_BUDGETS = {
  maxFailuresPerAccountAndAddress: 2,
  maxFailuresPerAccount: 3,
  maxFailuresPerAddress: 3,
};

const failuresCounted = async (server: TestServer) =>
  (await server.app.database.db.selectFrom('login_failure').select('id').execute()).length;

await describeOnEachAllianceAuth(
  (database) => `Alliance Auth password sign-in during an outage, on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let proxy: TcpProxy;
    let server: TestServer;
    let client: { clientId: string; clientSecret: string };

    before(async () => {
      fixture = await createAllianceAuthDatabase(kind);
      await insertAllianceAuthUser(fixture, 48, 'mira', FIXTURE_PASSWORD);
      const target = new URL(fixture.readerUrl);
      proxy = await startTcpProxy(target.hostname, Number(target.port || (kind === 'mysql' ? 3306 : 5432)));
      server = await startServer({
        directory: allianceAuthDirectory(proxy.wrap(fixture.readerUrl), {
          passwordLogin: true,
          pollSeconds: 3600,
        }),
        login: LOGIN_BUDGETS,
      });
      const created = await seedApp(server, { name: 'Wiki', skipAuthorization: true });
      client = { clientId: created.clientId, clientSecret: created.clientSecret! };
    });
    after(async () => {
      await server?.close();
      await proxy?.close();
      await fixture?.drop();
    });

    const signIn = async (username: string, password: string) =>
      (await authorize(server, new Browser(), client, username, {}, { password })).response;

    it("answers the try-again page and spends no one's budget, then signs in, and a wrong password still counts", async () => {
      assert.equal(await failuresCounted(server), 0);
      // More attempts than any budget holds, from one address, for one name: right and wrong passwords.
      for (let attempt = 0; attempt < 5; attempt += 1) {
        proxy.cut();
        try {
          const response = await signIn('mira', attempt % 2 === 0 ? FIXTURE_PASSWORD : 'wrong-password');
          assert.equal(response.status, 503, `attempt ${attempt + 1}: a try-again page, not a 429`);
          assert.equal(response.headers.get('retry-after'), '5');
          assert.match(await response.text(), /Try again/i);
        } finally {
          proxy.restore();
        }
      }
      assert.equal(await failuresCounted(server), 0, 'the outage counted no failure');

      assert.equal((await signIn('mira', FIXTURE_PASSWORD)).status, 303, 'signed in, not throttled');
      assert.equal((await signIn('mira', 'wrong-password')).status, 401);
      assert.equal(await failuresCounted(server), 1, 'a wrong password counts as it did');
    });
  },
);

await describeOnEachAllianceAuth(
  (database) => `Alliance Auth password sign-in when the login loses SELECT on auth_user, on ${database}`,
  (kind) => {
    const suite = serveAllianceAuth(kind, {
      directory: { passwordLogin: true, pollSeconds: 3600 },
      config: { login: LOGIN_BUDGETS },
      harness: true,
      async prepare(fixture) {
        await insertAllianceAuthUser(fixture, 48, 'mira', FIXTURE_PASSWORD);
        await grantReaderPerTable(fixture);
      },
    });
    let client: { clientId: string; clientSecret: string };
    before(async () => {
      const created = await seedApp(suite.server, { name: 'Wiki', skipAuthorization: true });
      client = { clientId: created.clientId, clientSecret: created.clientSecret! };
    });
    const signIn = async (username: string, password: string) =>
      (await authorize(suite.server, new Browser(), client, username, {}, { password })).response;
    const withoutSelectOnAuthUser = (body: () => Promise<void>) =>
      withoutReaderSelect(suite.fixture, 'auth_user', body);

    it('answers the try-again page (a fault, logged naming the privilege), not a 500, and signs in after GRANT', async () => {
      suite.harness.registerSecret(FIXTURE_PASSWORD, 'the password');
      await withoutSelectOnAuthUser(async () => {
        for (const attempt of [1, 2]) {
          const response = await signIn('mira', FIXTURE_PASSWORD);
          assert.equal(response.status, 503, `attempt ${attempt}`);
          assert.equal(response.headers.get('retry-after'), '5');
          assert.match(await response.text(), /could not complete the request/);
        }
      });
      const logged = suite.harness.logLines.filter((line) => /refused a read/.test(line));
      assert.equal(logged.length, 2, 'logged each time');
      for (const line of logged) {
        assert.match(line, /"level":50/);
        assert.match(
          line,
          kind === 'mysql' ? /SELECT command denied/ : /permission denied for table auth_user/,
        );
        assert.match(line, /GRANT SELECT ON/);
      }
      assert.equal(await failuresCounted(suite.server), 0, 'no budget spent');

      assert.equal((await signIn('mira', FIXTURE_PASSWORD)).status, 303, 'signed in once granted again');
      assert.equal((await signIn('mira', 'wrong-password')).status, 401);
      assert.equal(await failuresCounted(suite.server), 1);
      await suite.harness.assertNoLeaks();
    });

    const readiness = () => freshReadiness(suite.server);

    it('takes the instance out at once when a sign-in is refused the read, and back once granted', async () => {
      // No poll cycle in flight (the server's first, begun at start), whose read would look again too.
      assert.match((await suite.poll()).outcome, /^(baseline|applied)$/);
      // This look finds every column: without a read refused, the next would come after SCHEMA_RECHECK_MS.
      assert.deepEqual(await readiness(), READY_WITH_ALLIANCE_AUTH);
      await withoutSelectOnAuthUser(async () => {
        assert.equal((await signIn('mira', FIXTURE_PASSWORD)).status, 503);
        // Well within SCHEMA_RECHECK_MS of the look that found every column: only the sign-in's
        // refused read can have made /readyz look again. The answer names no table (public).
        assert.deepEqual(await readiness(), NOT_READY_FOR_ALLIANCE_AUTH_SCHEMA);
        const unreadable = suite.harness.logLines.filter((line) => /"missing":\[/.test(line));
        assert.equal(unreadable.length, 1, unreadable.join('\n'));
        assert.match(unreadable[0]!, /"missing":\["auth_user\.[a-z_]+"/);
        assert.match(unreadable[0]!, /the login's grants/);
      });
      assert.deepEqual(await readiness(), READY_WITH_ALLIANCE_AUTH, 'ready again once granted');
      assert.equal((await signIn('mira', FIXTURE_PASSWORD)).status, 303);
    });
  },
);
