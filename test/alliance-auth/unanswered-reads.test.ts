import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { type AllianceAuthConnection, openAllianceAuthDatabase } from '../../src/alliance-auth/database.ts';
import type { AllianceAuthChange } from '../../src/alliance-auth/fingerprint.ts';
import { createAllianceAuthPoller, type PollerDependencies } from '../../src/alliance-auth/poller.ts';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { createMetrics } from '../../src/metrics/registry.ts';
import {
  allianceAuthDirectory,
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
  expectedFixture,
  FIXTURE_PASSWORD,
  type AllianceAuthTestDatabase,
} from '../helpers/alliance-auth.ts';
import { allianceAuthActions } from '../helpers/alliance-auth-changes.ts';
import { consoleGet, consoleSignIn } from '../helpers/console.ts';
import { connect, createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import {
  eveLogin,
  type EveSsoStandIn,
  followEveCallback,
  STAND_IN_CLIENT,
  startEveSignIn,
  startEveSsoStandIn,
} from '../helpers/eve-sso-stand-in.ts';
import {
  codeFrom,
  exchangeCode,
  login,
  openLoginPage,
  submitLogin,
  tokenRequest,
  userinfo,
} from '../helpers/flows.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { seedApp, startServer, type TestServer } from '../helpers/server.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { waitUntil } from '../helpers/wait.ts';

/**
 * A connection to Alliance Auth's database that stays open but never answers (a hung server or
 * proxy, a dead route; here a relay that stops passing the answers on): neither the server's
 * statement timeout nor TCP keepalive ends that wait. Every read gives up a little past the statement
 * timeout as an outage (the poller's `aa_unreachable`, a request's 503 "try again"), and the
 * connection it waited on is closed, never handed out again.
 */

type Logged = { level: string; fields: Record<string, unknown>; message: string };

function recordingLogger(logged: Logged[]): PollerDependencies['logger'] {
  const record = (level: string) => (fields: object, message?: string) =>
    logged.push({ level, fields: fields as Record<string, unknown>, message: message ?? '' });
  return { info: record('info'), warn: record('warn'), error: record('error'), debug() {} };
}

await describeOnEachAllianceAuth(
  (database) => `Polling an Alliance Auth whose answers stop coming, on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let proxy: TcpProxy;
    let aa: AllianceAuthConnection;
    let ours: TestDatabase;
    let database: DatabaseHandle;
    let applied: AllianceAuthChange[][];
    let logged: Logged[];

    const poller = (over: Partial<PollerDependencies> = {}) =>
      createAllianceAuthPoller({
        aa,
        db: database.db,
        intervalMs: 1000,
        logger: recordingLogger(logged),
        async apply(_unit, changes) {
          applied.push([...changes]);
        },
        ...over,
      });

    beforeEach(async () => {
      fixture = await createAllianceAuthDatabase(kind);
      const server = new URL(fixture.readerUrl);
      proxy = await startTcpProxy(server.hostname, Number(server.port || (kind === 'mysql' ? 3306 : 5432)));
      // A short limit, set by the test: the server's statement timeout, and the wait for an answer.
      aa = openAllianceAuthDatabase(proxy.wrap(fixture.readerUrl), {
        statementTimeoutMs: 500,
        answerLimitMs: 2000,
        onIdleConnectionError: () => undefined,
      });
      ours = await createTestDatabase({ migrated: true });
      database = connect(ours);
      applied = [];
      logged = [];
    });
    afterEach(async () => {
      proxy?.release();
      await aa?.close();
      await proxy?.close();
      await database?.close();
      await ours?.drop();
      await fixture?.drop();
    });

    it('ends a cycle whose answer never comes as an outage, logged once, and catches up once on a new connection', async () => {
      const metrics = createMetrics({ defaultMetrics: false });
      const p = poller({ metrics });
      assert.equal((await p.pollOnce()).outcome, 'baseline');
      proxy.hold();
      const held = await p.pollOnce();
      assert.equal(held.outcome, 'aa_unreachable');
      assert.match(
        held.outcome === 'aa_unreachable' ? held.error : '',
        /^no answer from Alliance Auth's database within 2 s .*; the connection was closed$/,
      );
      // A new connection meets the same silence: its opening gives up at the connect timeout.
      assert.equal((await p.pollOnce()).outcome, 'aa_unreachable');
      await allianceAuthActions(fixture).removeGroup(2, 'Wiki Editors');
      // The held answers are never delivered (a dead route): a connection that waited on one and
      // were handed out again would wait behind it.
      proxy.restore();
      const resumed = await p.pollOnce();
      assert.equal(resumed.outcome, 'applied', JSON.stringify(resumed));
      assert.deepEqual(
        applied,
        [[{ kind: 'user_group_removed', userId: 2, username: 'alice', group: 'Wiki Editors' }]],
        'the change made meanwhile, once',
      );
      const text = await metrics.registry.metrics();
      assert.match(text, /^aa_oidc_aa_poll_cycles_total\{outcome="aa_unreachable"\} 2$/m);
      const warnings = logged.filter((entry) => entry.level === 'warn');
      assert.equal(warnings.length, 1, 'once while it lasts');
      assert.match(warnings[0]!.message, /^Alliance Auth's database is unreachable; polling goes on/);
      assert.match(JSON.stringify(warnings[0]!.fields), /no answer from Alliance Auth's database within 2 s/);
      assert.equal(logged.filter((entry) => /answers again/.test(entry.message)).length, 1);
      await p.stop();
    });

    it('stops without waiting past its bound for a cycle whose answer has not come, naming what it left', async () => {
      const p = poller({ stopWaitMs: 100 });
      assert.equal((await p.pollOnce()).outcome, 'baseline');
      proxy.hold();
      const settled: string[] = [];
      const cycle = p.pollOnce().finally(() => settled.push('cycle'));
      await waitUntil(() => proxy.heldAnswers > 0, "Alliance Auth's answer is held");
      await p.stop();
      settled.push('stop');
      assert.equal((await cycle).outcome, 'aa_unreachable');
      assert.deepEqual(settled, ['stop', 'cycle'], 'stop() did not wait for the cycle to end');
      const left = logged.filter((entry) => /^stopping without waiting longer/.test(entry.message));
      assert.equal(left.length, 1);
      assert.equal(left[0]!.level, 'warn');
      assert.equal(left[0]!.fields.step, "reading Alliance Auth's database");
      assert.match(left[0]!.message, /left to the next cycle/);
    });
  },
);

await describeOnEachAllianceAuth(
  (database) => `Serving while Alliance Auth's answers stop coming, on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let proxy: TcpProxy;
    let server: TestServer;
    const harness = createLeakHarness();

    before(async () => {
      fixture = await createAllianceAuthDatabase(kind);
      const target = new URL(fixture.readerUrl);
      proxy = await startTcpProxy(target.hostname, Number(target.port || (kind === 'mysql' ? 3306 : 5432)));
      harness.registerSecret(FIXTURE_PASSWORD, 'the password');
      server = await startServer(
        {
          directory: allianceAuthDirectory(proxy.wrap(fixture.readerUrl), {
            passwordLogin: true,
            pollSeconds: 3600,
            // The shortest setting: each read is given up 6 s after it was asked.
            statementTimeoutSeconds: 1,
          }),
        },
        { harness },
      );
      assert.equal((await server.app.allianceAuth!.poller.pollOnce()).outcome, 'baseline');
    });
    after(async () => {
      proxy?.release();
      await server?.close();
      await proxy?.close();
      await fixture?.drop();
    });

    describe('each request that reads it', () => {
      it('answers 503 "try again", never hangs nor 500s, and serves again once the answers come', async () => {
        const created = await seedApp(server, { name: 'Wiki', skipAuthorization: true });
        const client = { clientId: created.clientId, clientSecret: created.clientSecret! };
        const tokens = await login(server, client, 'alice', { scope: 'openid', password: FIXTURE_PASSWORD });
        const admin = await consoleSignIn(server, 'frank', {
          password: FIXTURE_PASSWORD,
          returnTo: '/admin',
        });
        const page = await openLoginPage(server, client.clientId);
        const refresh = () =>
          tokenRequest(server, client, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken });
        // A connection idle in the pool when the answers stop (node-postgres closes one idle for 10 s,
        // which the sign-ins above can take on a loaded machine): the read that takes it waits for an
        // answer past the limit. The others open connections, whose opening the hold stops at the
        // connect timeout, another 503 whose log line names that instead.
        assert.notEqual((await server.app.allianceAuth!.poller.pollOnce()).outcome, 'aa_unreachable');
        proxy.hold();
        try {
          const [signedIn, info, refreshed, adminPage, cycle] = await Promise.all([
            submitLogin(page, 'alice', FIXTURE_PASSWORD),
            userinfo(server, tokens.accessToken),
            refresh(),
            consoleGet(admin, `${server.origin}/admin/users/2`),
            server.app.allianceAuth!.poller.pollOnce(),
          ]);
          assert.equal(signedIn.status, 503, 'a password sign-in');
          assert.match(signedIn.body, /Try again/i);
          assert.equal(info.status, 503, 'userinfo');
          assert.match(info.body, /temporarily_unavailable/);
          assert.equal(refreshed.status, 503, 'a refresh');
          assert.equal(refreshed.body.error, 'temporarily_unavailable');
          assert.equal(adminPage.status, 503, 'an admin page');
          assert.equal(cycle.outcome, 'aa_unreachable', 'a poll cycle');
        } finally {
          // The held answers are dropped, never delivered: only new connections answer.
          proxy.restore();
        }
        // The answer limit's line when a read took the idle connection; on a loaded machine the pool may
        // have closed that one (idle for 10 s), and every read opened a connection the hold stopped at
        // the connect timeout: that line instead.
        assert.ok(
          harness.logLines.some((line) =>
            /no answer from Alliance Auth's database within 6 s|no answer within [\d.]+ s; check that the server runs/.test(
              line,
            ),
          ),
          'the log says why',
        );
        assert.deepEqual(
          harness.logLines.filter((line) => /"status":500/.test(line)),
          [],
          'no request answered 500',
        );

        assert.equal(
          (await submitLogin(await openLoginPage(server, client.clientId), 'alice', FIXTURE_PASSWORD)).status,
          303,
        );
        assert.equal((await userinfo(server, tokens.accessToken)).status, 200);
        assert.equal((await refresh()).status, 200, 'the refresh token refused meanwhile still works');
        assert.equal((await consoleGet(admin, `${server.origin}/admin/users/2`)).status, 200);
        assert.equal((await server.app.allianceAuth!.poller.pollOnce()).outcome, 'applied');
        await harness.assertNoLeaks();
      });
    });

    describe('an EVE SSO sign-in, whose callback looks the character up in it', () => {
      // A server of its own: its log's first outage line is this test's (one a database each 10 s).
      let eve: EveSsoStandIn;
      let eveServer: TestServer;
      let eveHarness: LeakHarness;

      before(async () => {
        eve = await startEveSsoStandIn();
        eveHarness = createLeakHarness();
        eveHarness.registerSecret(decodeURIComponent(new URL(fixture.readerUrl).password), "AA's password");
        eveHarness.registerSecret(STAND_IN_CLIENT.clientSecret, 'the EVE SSO client secret');
        eveServer = await startServer(
          {
            directory: allianceAuthDirectory(proxy.wrap(fixture.readerUrl), {
              pollSeconds: 3600,
              // Each read is given up 6 s after it was asked.
              statementTimeoutSeconds: 1,
            }),
            eveSso: eve.settings,
          },
          { harness: eveHarness },
        );
      });
      after(async () => {
        proxy?.release();
        await eveServer?.close();
        await eve?.close();
      });

      it('answers the callback 503 "try again", never hangs nor 500s, spends no budget, leaks nothing, and signs in once the answers come', async () => {
        const created = await seedApp(eveServer, { name: 'Forum', skipAuthorization: true });
        const client = { clientId: created.clientId, clientSecret: created.clientSecret! };
        const alice = expectedFixture().users.find((user) => user.username === 'alice')!;
        const main = eveLogin(alice.characters.find((character) => character.is_main)!);
        const failuresCounted = async () =>
          (await eveServer.app.database.db.selectFrom('login_failure').select('id').execute()).length;
        const started = await startEveSignIn(eveServer, eve, client, main, { scope: 'openid' });
        const sentBack = new URL(started.callbackUrl).searchParams;
        eveHarness.registerSecret(sentBack.get('code')!, "EVE SSO's code");
        eveHarness.registerSecret(sentBack.get('state')!, "the EVE sign-in's state");
        const redeemed = eve.redeemed();
        proxy.hold();
        let callback: Response;
        try {
          // Bounded here too, so that a callback held forever fails the test rather than hanging it.
          callback = await started.browser.fetch(started.callbackUrl, {
            signal: AbortSignal.timeout(30_000),
          });
        } finally {
          // The held answers are dropped, never delivered: only new connections answer.
          proxy.restore();
        }
        assert.equal(eve.redeemed(), redeemed + 1, 'EVE SSO proved the character first');
        assert.equal(callback.status, 503, 'a try-again page, not a 500 nor a referral');
        assert.equal(callback.headers.get('retry-after'), '5');
        assert.match(await callback.text(), /Try again/i);
        assert.equal(await failuresCounted(), 0, 'the outage spent no budget');
        assert.ok(
          eveHarness.logLines.some((line) =>
            /"database":"Alliance Auth's database at [^"]*".*no answer from Alliance Auth's database within 6 s/.test(
              line,
            ),
          ),
          "the log says why, and names Alliance Auth's database",
        );
        assert.deepEqual(
          eveHarness.logLines.filter((line) => /"status":500/.test(line)),
          [],
          'no request answered 500',
        );

        // Once the answers come, the same character signs in, starting again at the application.
        const again = await startEveSignIn(eveServer, eve, client, main, { scope: 'openid' });
        const { callback: signedIn, response } = await followEveCallback(eveServer, again);
        assert.equal(signedIn.status, 303, 'signed in');
        eveHarness.registerSecret(codeFrom(response), 'the authorization code');
        const tokens = await exchangeCode(eveServer, client, response, again.verifier);
        assert.equal(decodeJwt(tokens.id_token as string).sub, String(alice.id));
        eveHarness.registerSecret(tokens.access_token as string, 'the access token');
        eveHarness.registerSecret(tokens.id_token as string, 'the ID token');
        await eveHarness.assertNoLeaks();
      });
    });
  },
);
