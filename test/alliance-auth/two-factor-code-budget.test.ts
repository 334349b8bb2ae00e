import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { currentCode } from '../../src/two-factor/totp.ts';
import {
  allianceAuthDirectory,
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
  expectedFixture,
  FIXTURE_PASSWORD,
  type AllianceAuthTestDatabase,
} from '../helpers/alliance-auth.ts';
import { pageText } from '../helpers/console.ts';
import {
  eveLogin,
  type EveSsoStandIn,
  signInWithEve,
  startEveSsoStandIn,
} from '../helpers/eve-sso-stand-in.ts';
import { openLoginPage, submitLogin } from '../helpers/flows.ts';
import {
  type Browser,
  formAction,
  formField,
  seedApp,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

const alice = expectedFixture().users.find((user) => user.username === 'alice')!;
const aliceMain = alice.characters.find((owned) => owned.is_main)!;

/** Four wrong codes from one address spend a user's codes; room enough otherwise. */
const LOGIN_BUDGETS = {
  maxFailuresPerAccountAndAddress: 4,
  maxFailuresPerAccount: 50,
  maxFailuresPerAddress: 100,
};

/**
 * A user's wrong second-factor codes spend one budget, whichever first factor led to the code page:
 * a password (in any spelling the directory finds as the user; on MySQL and MariaDB the throttle's
 * name for it is a hash of the collation's weight) or EVE SSO. Else each way in would be a fresh
 * budget of guesses at the same code.
 */
await describeOnEachAllianceAuth(
  (database) => `one budget of two-factor codes per user, after a password or EVE, on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let eve: EveSsoStandIn;
    let server: TestServer;
    let client: { clientId: string; clientSecret: string };
    let secret: string;

    before(async () => {
      fixture = await createAllianceAuthDatabase(kind);
      eve = await startEveSsoStandIn();
      server = await startServer({
        directory: allianceAuthDirectory(fixture.readerUrl, { passwordLogin: true }),
        eveSso: eve.settings,
        login: LOGIN_BUDGETS,
      });
      const created = await seedApp(server, { name: 'Wiki', skipAuthorization: true });
      client = { clientId: created.clientId, clientSecret: created.clientSecret! };
      const user = { id: alice.id, username: alice.username };
      const enrolment = await server.app.twoFactor.beginEnrolment(user);
      secret = enrolment.secret;
      const confirmed = await server.app.twoFactor.confirmEnrolment(user, currentCode(secret), enrolment.id);
      assert.ok(confirmed.ok, 'alice is enrolled');
    });
    after(async () => {
      await server?.close();
      await eve?.close();
      await fixture?.drop();
    });

    /** A code no step near now accepts. */
    const wrongCode = () =>
      ['000000', '111111', '222222', '333333'].find(
        (candidate) =>
          ![-1, 0, 1, 2].some((step) => currentCode(secret, Date.now() + step * 30_000) === candidate),
      )!;

    it("spends one budget with wrong codes after alice's password and after her EVE sign-in", async () => {
      const afterPassword = await passwordStep('alice');
      assert.equal((await afterPassword.send(wrongCode())).status, 401, 'wrong code 1, after the password');
      assert.equal((await afterPassword.send(wrongCode())).status, 401, 'wrong code 2, after the password');

      const afterEve = await eveStep();
      assert.equal((await afterEve.send(wrongCode())).status, 401, 'wrong code 3, after EVE');
      assert.equal((await afterEve.send(wrongCode())).status, 401, 'wrong code 4, after EVE');
      const spent = await afterEve.send(currentCode(secret, Date.now() + 60_000));
      assert.equal(spent.status, 429, 'after EVE, even the right code is refused: the four are spent');
      assert.match(pageText(spent.body), /Too many wrong attempts/);

      // A spelling MariaDB's collation holds for alice (PostgreSQL compares bytes: alice only).
      const again = await passwordStep(kind === 'mysql' ? 'ALÏCE' : 'alice');
      const refused = await again.send(currentCode(secret, Date.now() + 60_000));
      assert.equal(refused.status, 429, 'after the password given again, too');
    });

    /** The code page's form, sent again and again with the page each answer shows. */
    function codeForm(browser: Browser, first: string) {
      let page = first;
      return {
        async send(code: string): Promise<{ status: number; body: string }> {
          const response = await browser.fetch(formAction(page, server.origin), {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({
              csrf_token: formField(page, 'csrf_token'),
              pending: formField(page, 'pending'),
              code,
            }).toString(),
          });
          const body = await response.text();
          if (response.status === 401) page = body;
          return { status: response.status, body };
        },
      };
    }

    /** From the login page's password form, signed in as `typed` with alice's password, to the code page. */
    async function passwordStep(typed: string) {
      const page = await openLoginPage(server, client.clientId);
      // The page's first form is the EVE button's: the password form is the other one.
      const passwordForm = [...page.body.matchAll(/<form[^>]*action="([^"]+)"[^>]*>/g)].find(
        (form) => !form[0].includes('external-sign-in'),
      );
      assert.ok(passwordForm, 'the login page has a password form');
      const action = new URL(passwordForm[1]!.replaceAll('&amp;', '&'), server.origin).href;
      const answer = await submitLogin(page, typed, FIXTURE_PASSWORD, { action });
      assert.equal(answer.status, 200, `the code page after the password, as ${typed}`);
      assert.match(pageText(answer.body), /Enter your code/);
      return codeForm(page.browser, answer.body);
    }

    /** From the application to the login page, its EVE button, EVE SSO and back, as alice: the code page. */
    async function eveStep() {
      const {
        browser,
        callback,
        response: codePage,
      } = await signInWithEve(server, eve, client, eveLogin(aliceMain), { scope: 'openid profile' });
      assert.ok(callback.headers.get('location'), 'the callback goes back to the interaction');
      const codeBody = await codePage.text();
      assert.equal(codePage.status, 200, 'the code page after EVE');
      assert.match(pageText(codeBody), /Enter your code/);
      return codeForm(browser, codeBody);
    }
  },
);
