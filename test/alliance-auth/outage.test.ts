import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import {
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
  allianceAuthEnv,
  allianceAuthDirectory,
  expectedFixture,
  FIXTURE_PASSWORD,
  type AllianceAuthTestDatabase,
} from '../helpers/alliance-auth.ts';
import { DEPENDENCY_DEADLINE_MS, READINESS_REUSE_MS } from '../../src/http/health.ts';
import { allianceAuthActions } from '../helpers/alliance-auth-changes.ts';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase } from '../helpers/database.ts';
import { consoleGet, consolePost, consoleSignIn } from '../helpers/console.ts';
import { eveLogin, startEveSignIn, startEveSsoStandIn } from '../helpers/eve-sso-stand-in.ts';
import { login, openLoginPage, submitLogin } from '../helpers/flows.ts';
import { seedApp, startServer, type TestServer } from '../helpers/server.ts';
import { refusedPort } from '../helpers/refused-port.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('an Alliance Auth database that cannot be reached at start stops the command, naming the setting', () => {
  // The password as the user's, or as a query parameter (both drivers read `?password=`), which
  // may hold an '@' too.
  const forms = {
    user: (scheme: string, port: number) =>
      `${scheme}://aa_reader:hunter2-secret@127.0.0.1:${port}/alliance_auth`,
    query: (scheme: string, port: number) =>
      `${scheme}://aa_reader@127.0.0.1:${port}/alliance_auth?password=hunter2-secret`,
    'query, with an @': (scheme: string, port: number) =>
      `${scheme}://aa_reader@127.0.0.1:${port}/alliance_auth?password=hunter2-p@ss`,
  };
  for (const scheme of ['mysql', 'postgres'] as const) {
    for (const [form, urlOf] of Object.entries(forms)) {
      it(`says so for ${scheme}:// with the password in the ${form}, without the password`, async () => {
        const database = await createTestDatabase({ migrated: true });
        const refused = await refusedPort();
        try {
          const { port } = refused;
          const env = testEnv(database, allianceAuthEnv(urlOf(scheme, port)));
          const result = await cli(['user', 'list'], env);
          assert.notEqual(result.code, 0);
          assert.match(result.stderr, /AA_OIDC_AA_DATABASE_URL/);
          assert.match(result.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`));
          assert.match(result.stderr, /cannot connect to Alliance Auth's database/);
          assert.doesNotMatch(result.stderr, /hunter2|@ss/);
        } finally {
          refused.close();
          await database.drop();
        }
      });
    }
  }
});

await describeOnEachAllianceAuth(
  (database) => `Alliance Auth's database lost while serving, on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let proxy: TcpProxy;
    let server: TestServer;
    let clientId: string;

    before(async () => {
      fixture = await createAllianceAuthDatabase(kind);
      const target = new URL(fixture.readerUrl);
      proxy = await startTcpProxy(target.hostname, Number(target.port || (kind === 'mysql' ? 3306 : 5432)));
      server = await startServer({
        directory: allianceAuthDirectory(proxy.wrap(fixture.readerUrl), {
          passwordLogin: true,
          pollSeconds: 3600,
        }),
      });
      clientId = (await seedApp(server, { name: 'Wiki' })).clientId;
      await server.app.allianceAuth!.poller.pollOnce();
    });
    after(async () => {
      await server?.close();
      await proxy?.close();
      await fixture?.drop();
    });

    const readiness = async () => {
      const response = await fetch(`${server.origin}/readyz`);
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };

    it('fails /readyz, answers sign-ins with a try-again page, and resumes polling without spurious changes', async () => {
      assert.equal((await readiness()).status, 200);
      const page = await openLoginPage(server, clientId);
      proxy.cut();
      try {
        // An answer of /readyz is reused for READINESS_REUSE_MS: the outage shows once that has passed.
        await delay(READINESS_REUSE_MS + 50);
        const ready = await readiness();
        assert.equal(ready.status, 503);
        assert.equal(ready.body.allianceAuth, 'unreachable');
        const attempt = await submitLogin(page, 'alice', FIXTURE_PASSWORD);
        assert.equal(attempt.status, 503, 'a try-again page, not a server error');
        assert.match(attempt.body, /Try again/i);
        const poller = server.app.allianceAuth!.poller;
        assert.equal((await poller.pollOnce()).outcome, 'aa_unreachable');
        // AA goes on meanwhile.
        await allianceAuthActions(fixture).removeGroup(3, 'Fleet Commanders');
      } finally {
        proxy.restore();
      }
      await delay(READINESS_REUSE_MS + 50);
      assert.equal((await readiness()).status, 200);
      const resumed = await server.app.allianceAuth!.poller.pollOnce();
      assert.equal(resumed.outcome, 'applied');
      assert.deepEqual(
        resumed.outcome === 'applied' ? resumed.changes.map((change) => [change.kind, change.userId]) : [],
        [['user_group_removed', 3]],
        'exactly the change made during the outage',
      );
      const again = await openLoginPage(server, clientId);
      const signedIn = await submitLogin(again, 'alice', FIXTURE_PASSWORD);
      assert.equal(signedIn.status, 303, 'sign-in works again');
    });

    it('answers a password sign-in with the try-again page after at most one connection to a silent Alliance Auth, not two', async () => {
      const page = await openLoginPage(server, clientId);
      proxy.silence();
      try {
        const attempt = await submitLogin(page, 'alice', FIXTURE_PASSWORD);
        assert.equal(attempt.status, 503, 'a try-again page, not a server error');
        // Each new connection to a silent AA waits out the connect timeout: a look-up that failed is
        // not asked again in the same request, so the sign-in waits once at most. (A pooled
        // connection that the silence dropped fails at once and opens none.)
        assert.ok(
          proxy.silencedConnections <= 1,
          `${proxy.silencedConnections} connections opened to the silent AA`,
        );
      } finally {
        proxy.restore();
      }
    });

    it('answers an EVE SSO callback with a try-again page while Alliance Auth is unreachable', async () => {
      // A server of its own: with EVE SSO its login page opens with the EVE button's form.
      const eve = await startEveSsoStandIn();
      const withEve = await startServer({
        directory: allianceAuthDirectory(proxy.wrap(fixture.readerUrl), { pollSeconds: 3600 }),
        eveSso: eve.settings,
      });
      try {
        const app = await seedApp(withEve, { name: 'Wiki' });
        const alice = expectedFixture().users.find((user) => user.username === 'alice')!;
        const { browser, callbackUrl } = await startEveSignIn(
          withEve,
          eve,
          { clientId: app.clientId, clientSecret: app.clientSecret! },
          eveLogin(alice.characters.find((character) => character.is_main)!),
        );
        proxy.cut();
        try {
          const callback = await browser.fetch(callbackUrl);
          assert.equal(callback.status, 503, 'a try-again page, not a server error');
          assert.match(await callback.text(), /Try again/i);
        } finally {
          proxy.restore();
        }
      } finally {
        await withEve.close();
        await eve.close();
      }
    });

    it('answers /readyz 503 within seconds, however many ask, when a connection to Alliance Auth goes silent', async () => {
      await delay(READINESS_REUSE_MS + 50);
      assert.equal((await readiness()).status, 200, 'a pooled connection to Alliance Auth, warm');
      await delay(READINESS_REUSE_MS + 50);
      // Its answers stop coming (a dead route): the read's own limit (the statement timeout and 5 s)
      // ends the wait on it only after the probe's deadline.
      proxy.hold();
      try {
        const started = performance.now();
        const probe = async () => {
          const response = await fetch(`${server.origin}/readyz`, {
            signal: AbortSignal.timeout(DEPENDENCY_DEADLINE_MS + 5000),
          });
          return { status: response.status, body: (await response.json()) as Record<string, unknown> };
        };
        const first = probe();
        // Another probe while the first one's check waits: it shares that check.
        await delay(1000);
        for (const answer of await Promise.all([first, probe()])) {
          assert.equal(answer.status, 503);
          assert.equal(answer.body.allianceAuth, 'unreachable');
          assert.equal(answer.body.database, 'reachable');
        }
        assert.ok(performance.now() - started < DEPENDENCY_DEADLINE_MS + 3000, 'within the deadline');
      } finally {
        proxy.release();
        proxy.restore();
      }
      await waitUntil(async () => (await readiness()).status === 200, '/readyz answers 200 again');
    });

    it('answers an admin’s activation a try-again page while Alliance Auth is unreachable, and leaves the application off', async () => {
      const created = await seedApp(server, { name: 'Off during the outage', skipAuthorization: true });
      const app = { clientId: created.clientId, clientSecret: created.clientSecret! };
      await login(server, app, 'alice', { scope: 'openid', password: FIXTURE_PASSWORD });
      await server.app.applications.deactivate(app.clientId, 'test');
      const admin = await consoleSignIn(server, 'frank', { password: FIXTURE_PASSWORD, returnTo: '/admin' });
      const detail = await consoleGet(admin, `${server.origin}/admin/apps/${app.clientId}`);
      assert.equal(detail.status, 200);
      proxy.cut();
      try {
        // Activation judges who signed in there by Alliance Auth's profiles: it cannot now.
        const refused = await consolePost(
          admin,
          `${server.origin}/admin/apps/${app.clientId}/activate`,
          detail.csrf!,
        );
        assert.equal(refused.status, 503, 'a try-again page, not a server error');
        assert.match(refused.body, /Try again/i);
      } finally {
        proxy.restore();
      }
      assert.equal((await server.app.applications.findByClientId(app.clientId))!.active, false);
      const activated = await consolePost(
        admin,
        `${server.origin}/admin/apps/${app.clientId}/activate`,
        detail.csrf!,
      );
      assert.equal(activated.status, 303);
      assert.equal((await server.app.applications.findByClientId(app.clientId))!.active, true);
    });
  },
);
