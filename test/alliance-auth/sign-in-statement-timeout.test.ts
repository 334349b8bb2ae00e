import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { sql } from 'kysely';
import {
  allianceAuthDirectory,
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
  expectedFixture,
  FIXTURE_PASSWORD,
  type AllianceAuthTestDatabase,
} from '../helpers/alliance-auth.ts';
import { insertAllianceAuthUser } from '../helpers/alliance-auth-changes.ts';
import {
  eveLogin,
  type EveSsoStandIn,
  startEveSignIn,
  startEveSsoStandIn,
} from '../helpers/eve-sso-stand-in.ts';
import { authorizeParams } from '../helpers/flows.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import {
  authorizeUrl,
  Browser,
  formField,
  seedApp,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

/**
 * A sign-in whose read of Alliance Auth's database the server gave up on at its statement timeout
 * (AA's table held by another session: a migration, a long transaction, a backup's lock) is a fault
 * the person did not cause: the "try again" page (503), the attempt's place in the budgets given back,
 * and a log line naming the read, the seconds and what to look at; never a 500, a refusal, or the
 * password.
 */

const alice = expectedFixture().users.find((user) => user.username === 'alice')!;
const alicesMain = eveLogin(alice.characters.find((character) => character.is_main)!);

/** Small budgets: a few timeouts counted as failures would spend them. */
const LOGIN_BUDGETS = {
  maxFailuresPerAccountAndAddress: 2,
  maxFailuresPerAccount: 3,
  maxFailuresPerAddress: 3,
};

await describeOnEachAllianceAuth(
  (database) => `Sign-in when Alliance Auth's database runs out of statement time, on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let eve: EveSsoStandIn;
    let harness: LeakHarness;
    let server: TestServer;
    let client: { clientId: string; clientSecret: string };

    before(async () => {
      fixture = await createAllianceAuthDatabase(kind);
      await insertAllianceAuthUser(fixture, 48, 'mira', FIXTURE_PASSWORD);
      eve = await startEveSsoStandIn();
      harness = createLeakHarness();
      harness.registerSecret(FIXTURE_PASSWORD, 'the password');
      const { allianceAuth } = allianceAuthDirectory(fixture.readerUrl, {
        passwordLogin: true,
        pollSeconds: 3600,
      });
      server = await startServer(
        {
          directory: {
            source: 'alliance-auth',
            allianceAuth: { ...allianceAuth, statementTimeoutSeconds: 1 },
          },
          eveSso: eve.settings,
          login: LOGIN_BUDGETS,
        },
        { harness },
      );
      const created = await seedApp(server, { name: 'Wiki', skipAuthorization: true });
      client = { clientId: created.clientId, clientSecret: created.clientSecret! };
    });
    after(async () => {
      await server?.close();
      await eve?.close();
      await fixture?.drop();
    });

    const failuresCounted = async () =>
      (await server.app.database.db.selectFrom('login_failure').select('id').execute()).length;

    /**
     * The login form's answer to `username` and `password` (its own form: the EVE button's comes first
     * on the page), or where it leads once signed in: the redirect to the application.
     */
    const signIn = async (username: string, password: string) => {
      const browser = new Browser();
      const page = await browser.follow(authorizeUrl(server, authorizeParams(client).params), server.origin);
      const body = await page.text();
      const action = /<form method="post" action="([^"]+\/login)" novalidate>/.exec(body);
      assert.ok(action, 'the login page has the password form');
      const form = new URLSearchParams({ csrf_token: formField(body, 'csrf_token'), username, password });
      const response = await browser.follow(
        new URL(action[1]!.replaceAll('&amp;', '&'), server.origin).href,
        server.origin,
        {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: form.toString(),
        },
      );
      return response;
    };

    /**
     * Runs `during` while Alliance Auth's side holds auth_user, which every sign-in read joins, as a
     * migration altering it would: the read waits for the lock until the server gives up on it.
     */
    const whileAuthUserIsHeld = (during: () => Promise<void>) =>
      fixture.owner.connection().execute(async (holder) => {
        if (kind === 'mysql') await sql`LOCK TABLES auth_user WRITE`.execute(holder);
        else {
          await sql`BEGIN`.execute(holder);
          await sql`LOCK TABLE auth_user IN ACCESS EXCLUSIVE MODE`.execute(holder);
        }
        try {
          await during();
        } finally {
          await sql.raw(kind === 'mysql' ? 'UNLOCK TABLES' : 'ROLLBACK').execute(holder);
        }
      });

    /**
     * The log lines of sign-in reads that ran out of time since `from` (an index into the harness's
     * lines); not the poller's, whose first cycle may meet the lock too.
     */
    const timeoutLines = (from: number) =>
      harness.logLines
        .slice(from)
        .filter((line) => /the Alliance Auth read for .* ran out of time/.test(line));

    const assertTimeoutLogged = (line: string, read: RegExp) => {
      assert.match(line, /"level":50/);
      assert.match(line, read);
      assert.match(line, /gave up on a read at its statement timeout of 1 s/);
      assert.match(
        line,
        kind === 'mysql' ? /max_statement_time exceeded/ : /canceling statement due to statement timeout/,
      );
      assert.match(line, /a long transaction/);
      assert.match(line, kind === 'mysql' ? /SHOW PROCESSLIST/ : /pg_stat_activity/);
      assert.match(line, /AA_OIDC_AA_STATEMENT_TIMEOUT_SECONDS/);
    };

    it("answers an AA password sign-in with the try-again page, logs the read that ran out of time, and spends no one's budget", async () => {
      const from = harness.logLines.length;
      await whileAuthUserIsHeld(async () => {
        // More attempts than any budget holds, from one address, for one name: right and wrong passwords.
        for (let attempt = 0; attempt < 4; attempt += 1) {
          const response = await signIn('mira', attempt % 2 === 0 ? FIXTURE_PASSWORD : 'wrong-password');
          assert.equal(response.status, 503, `attempt ${attempt + 1}: a try-again page, not a 500 or a 401`);
          assert.equal(response.headers.get('retry-after'), '5');
          assert.match(await response.text(), /could not complete the request/);
        }
      });
      const logged = timeoutLines(from);
      assert.equal(logged.length, 4, 'logged each time');
      for (const line of logged)
        assertTimeoutLogged(
          line,
          /the Alliance Auth read for a password sign-in \(prepare\) ran out of time after 1 s/,
        );
      assert.equal(await failuresCounted(), 0, 'no budget spent');

      assert.equal((await signIn('mira', FIXTURE_PASSWORD)).status, 303, 'signed in once AA answers');
      assert.equal((await signIn('mira', 'wrong-password')).status, 401);
      assert.equal(await failuresCounted(), 1, 'a wrong password counts as it did');
      await harness.assertNoLeaks();
    });

    it("answers an EVE callback with the try-again page, logs the read that ran out of time, and gives the attempt's place back", async () => {
      const before = await failuresCounted();
      const from = harness.logLines.length;
      await whileAuthUserIsHeld(async () => {
        for (let attempt = 0; attempt < 4; attempt += 1) {
          const { browser, callbackUrl } = await startEveSignIn(server, eve, client, alicesMain, {
            scope: 'openid',
          });
          const callback = await browser.fetch(callbackUrl);
          assert.equal(
            callback.status,
            503,
            `attempt ${attempt + 1}: the try-again page, not a 500 or a 429`,
          );
          assert.match(await callback.text(), /could not complete the request/);
        }
      });
      const logged = timeoutLines(from);
      assert.equal(logged.length, 4, 'logged each time');
      for (const line of logged)
        assertTimeoutLogged(
          line,
          /the Alliance Auth read for an EVE sign-in \(judge\) ran out of time after 1 s/,
        );
      assert.equal(await failuresCounted(), before, 'the timed-out reads counted no failure');

      const { browser, callbackUrl } = await startEveSignIn(server, eve, client, alicesMain, {
        scope: 'openid',
      });
      assert.equal((await browser.fetch(callbackUrl)).status, 303, 'signed in once AA answers');
      await harness.assertNoLeaks();
    });
  },
);
