import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { decodeJwt } from 'jose';
import {
  allianceAuthDirectory,
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
  expectedFixture,
  type AllianceAuthTestDatabase,
} from '../helpers/alliance-auth.ts';
import {
  eveLogin,
  type EveSsoStandIn,
  signInWithEve,
  startEveSsoStandIn,
} from '../helpers/eve-sso-stand-in.ts';
import { exchangeCode, openLoginPage, submitLogin } from '../helpers/flows.ts';
import { seedApp, startServer, type TestServer } from '../helpers/server.ts';

const alice = expectedFixture().users.find((user) => user.username === 'alice')!;
const aliceMain = alice.characters.find((owned) => owned.is_main)!;

/**
 * The password form and EVE SSO count against budgets of their own: the character 95465499's EVE
 * budget is not the typed username `eve:95465499`'s, so wrong passwords for that name cannot lock
 * the pilot out of signing in with EVE.
 */
await describeOnEachAllianceAuth(
  (database) => `The login throttle keeps EVE sign-in apart from the password form, on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let eve: EveSsoStandIn;
    let server: TestServer;
    let client: { clientId: string; clientSecret: string };

    before(async () => {
      fixture = await createAllianceAuthDatabase(kind);
      eve = await startEveSsoStandIn();
      server = await startServer({
        directory: allianceAuthDirectory(fixture.readerUrl, { passwordLogin: true }),
        eveSso: eve.settings,
        // Client addresses come from X-Forwarded-For; small budgets, so that a few guesses spend one.
        trustProxy: true,
        login: { maxFailuresPerAccountAndAddress: 2, maxFailuresPerAccount: 3 },
      });
      const created = await seedApp(server, { name: 'Wiki', skipAuthorization: true });
      client = { clientId: created.clientId, clientSecret: created.clientSecret! };
    });
    after(async () => {
      await server?.close();
      await eve?.close();
      await fixture?.drop();
    });

    it("lets alice sign in with EVE after wrong passwords for the username eve:<her main's id> spent that name's budget", async () => {
      const attacker = await openLoginPage(server, client.clientId);
      // The page's first form is the EVE button's: the password form is the other one.
      const passwordForm = [...attacker.body.matchAll(/<form[^>]*action="([^"]+)"[^>]*>/g)].find(
        (form) => !form[0].includes('external-sign-in'),
      );
      assert.ok(passwordForm, 'the login page has a password form');
      const action = new URL(passwordForm[1]!.replaceAll('&amp;', '&'), server.origin).href;
      const typed = `eve:${aliceMain.character_id}`;
      // Spellings of one name share its budget: three failures from three addresses spend it.
      const spellings = [typed, typed.toUpperCase(), typed.replace('eve', 'ｅｖｅ')];
      for (const [i, spelling] of spellings.entries()) {
        const guess = await submitLogin(attacker, spelling, 'not her password', {
          action,
          headers: { 'x-forwarded-for': `198.51.100.${i + 1}` },
        });
        assert.equal(guess.status, 401, spelling);
      }
      const spent = await submitLogin(attacker, typed, 'not her password', {
        action,
        headers: { 'x-forwarded-for': '198.51.100.9' },
      });
      assert.equal(spent.status, 429, 'the typed name has spent its budget, from any address');

      const { response, verifier } = await signInWithEve(server, eve, client, eveLogin(aliceMain), {
        scope: 'openid profile',
      });
      assert.notEqual(response.status, 429, 'her EVE sign-in is not throttled');
      const tokens = await exchangeCode(server, client, response, verifier);
      assert.equal(decodeJwt(tokens.id_token as string).sub, String(alice.id));
    });
  },
);
