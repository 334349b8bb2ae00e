import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { decodeJwt } from 'jose';
import {
  allianceAuthDirectory,
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
  expectedFixture,
  grantReaderPerTable,
  type AllianceAuthTestDatabase,
  withoutReaderSelect,
} from '../helpers/alliance-auth.ts';
import {
  type EveCharacterLogin,
  eveLogin,
  type EveSsoStandIn,
  followEveCallback,
  startEveSignIn,
  startEveSsoStandIn,
  TRICKLE_INTERVAL_MS,
} from '../helpers/eve-sso-stand-in.ts';
import { exchangeCode } from '../helpers/flows.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { seedApp, startServer, type TestServer } from '../helpers/server.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { ALLIANCE_AUTH_PRIVILEGE_DENIED } from '../../src/alliance-auth/create.ts';

const alice = expectedFixture().users.find((user) => user.username === 'alice')!;
function character(main: boolean): EveCharacterLogin {
  return eveLogin(alice.characters.find((candidate) => candidate.is_main === main)!);
}

/** A small deadline for each request to EVE SSO, well above the stand-in's byte interval. */
const REQUEST_TIMEOUT_MS = 1000;

/**
 * What a failure that is nobody's fault costs: an Alliance Auth outage during the EVE callback is a
 * "try again" page that spends no sign-in budget, and an EVE SSO that answers a byte at a time ends
 * the sign-in at its deadline, not whenever it stops.
 */
await describeOnEachAllianceAuth(
  (database) => `EVE sign-in while Alliance Auth or EVE SSO fails, on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let proxy: TcpProxy;
    let eve: EveSsoStandIn;
    let server: TestServer;
    let client: { clientId: string; clientSecret: string };
    let harness: LeakHarness;

    before(async () => {
      harness = createLeakHarness();
      fixture = await createAllianceAuthDatabase(kind);
      // So that a table's SELECT revoked while serving takes effect at once (MariaDB).
      await grantReaderPerTable(fixture);
      const target = new URL(fixture.readerUrl);
      proxy = await startTcpProxy(target.hostname, Number(target.port || (kind === 'mysql' ? 3306 : 5432)));
      eve = await startEveSsoStandIn();
      server = await startServer(
        {
          directory: allianceAuthDirectory(proxy.wrap(fixture.readerUrl), { pollSeconds: 3600 }),
          eveSso: { ...eve.settings, requestTimeoutMs: REQUEST_TIMEOUT_MS },
          // Small budgets: a few outages counted as failures would spend them.
          login: { maxFailuresPerAccountAndAddress: 2, maxFailuresPerAccount: 3, maxFailuresPerAddress: 3 },
        },
        { harness },
      );
      const created = await seedApp(server, { name: 'Wiki', skipAuthorization: true });
      client = { clientId: created.clientId, clientSecret: created.clientSecret! };
    });
    after(async () => {
      await server?.close();
      await eve?.close();
      await proxy?.close();
      await fixture?.drop();
    });

    /**
     * The `database` of the 503 log lines whose message starts with `message`: the one that failed,
     * Alliance Auth's (at the proxy, no password), never aa-oidc's own.
     */
    const assertLoggedAsAllianceAuths = (message: string) => {
      const lines = harness.logLines
        .map((line) => JSON.parse(line) as { msg?: string; database?: unknown })
        .filter((line) => line.msg?.startsWith(message));
      assert.ok(lines.length > 0, `a log line "${message}…"`);
      const atProxy = new URL(proxy.wrap(fixture.readerUrl));
      for (const line of lines) {
        assert.equal(typeof line.database, 'string');
        const database = line.database as string;
        assert.match(database, /^Alliance Auth's database at /);
        assert.ok(database.includes(`@${atProxy.host}/`), database);
        assert.ok(!database.includes(decodeURIComponent(atProxy.password)), 'never the password');
      }
    };

    const failuresCounted = async () =>
      (await server.app.database.db.selectFrom('login_failure').select('id').execute()).length;

    /** From the application to EVE SSO and back: the browser, the verifier and the callback's URL. */
    const toCallback = (login: EveCharacterLogin) =>
      startEveSignIn(server, eve, client, login, { scope: 'openid' });

    it("answers EVE callbacks during an Alliance Auth outage with a try-again page and spends no one's budget", async () => {
      assert.equal(await failuresCounted(), 0);
      // More attempts than any budget holds, from one address, for one character.
      for (let attempt = 0; attempt < 5; attempt += 1) {
        const { browser, callbackUrl } = await toCallback(character(true));
        proxy.cut();
        try {
          const callback = await browser.fetch(callbackUrl);
          assert.equal(callback.status, 503, `attempt ${attempt + 1}: a try-again page, not a 429`);
          assert.match(await callback.text(), /Try again/i);
        } finally {
          proxy.restore();
        }
      }
      assert.equal(await failuresCounted(), 0, 'the outage counted no failure');
      assertLoggedAsAllianceAuths('the database is unavailable; answering 503');

      // Once AA is back, alice signs in from the same address: her budgets are whole.
      const signIn = await toCallback(character(true));
      const { callback, response } = await followEveCallback(server, signIn);
      assert.equal(callback.status, 303, 'signed in, not throttled');
      const tokens = await exchangeCode(server, client, response, signIn.verifier);
      assert.equal(decodeJwt(tokens.id_token as string).sub, String(alice.id));

      // An answer AA did give still counts: her alt is referred to AA, one failure.
      const alt = await toCallback(character(false));
      const referred = await alt.browser.fetch(alt.callbackUrl);
      assert.equal(referred.status, 200);
      assert.match(await referred.text(), /not your main character/);
      assert.equal(await failuresCounted(), 1, 'a referral counts as it did');
    });

    it("answers the fault page when Alliance Auth refuses a read for a privilege its login lost, and spends no one's budget", async () => {
      const before = await failuresCounted();
      await withoutReaderSelect(fixture, 'auth_user', async () => {
        for (let attempt = 0; attempt < 4; attempt += 1) {
          const { browser, callbackUrl } = await toCallback(character(true));
          const callback = await browser.fetch(callbackUrl);
          assert.equal(
            callback.status,
            503,
            `attempt ${attempt + 1}: the try-again page, not a 500 or a 429`,
          );
          assert.match(await callback.text(), /could not complete the request/);
        }
      });
      assert.equal(await failuresCounted(), before, 'the refused reads counted no failure');
      assertLoggedAsAllianceAuths(ALLIANCE_AUTH_PRIVILEGE_DENIED);
      const { browser, callbackUrl } = await toCallback(character(true));
      assert.equal((await browser.fetch(callbackUrl)).status, 303, 'signed in once granted again');
    });

    it('ends the sign-in at the request deadline when EVE SSO answers a byte at a time, with the try-again page', async () => {
      const { browser, callbackUrl } = await toCallback(character(true));
      eve.trickle('token', true);
      try {
        const started = performance.now();
        // Bounded here too, so that a sign-in held forever fails the test rather than hanging it.
        const callback = await browser.fetch(callbackUrl, { signal: AbortSignal.timeout(15_000) });
        const elapsed = performance.now() - started;
        assert.equal(callback.status, 503);
        assert.match(await callback.text(), /EVE Online cannot be reached right now/);
        assert.ok(
          elapsed >= REQUEST_TIMEOUT_MS - 100,
          `the answer trickled (every ${TRICKLE_INTERVAL_MS} ms) until the deadline (${Math.round(elapsed)} ms)`,
        );
        // Generous: a loaded machine is slow; without the deadline the answer never ends.
        assert.ok(
          elapsed < REQUEST_TIMEOUT_MS + 5000,
          `ended within the deadline (${Math.round(elapsed)} ms)`,
        );
      } finally {
        eve.trickle('token', false);
      }
    });
  },
);
