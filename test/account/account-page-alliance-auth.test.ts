import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, it } from 'node:test';
import {
  AA_LOGIN_URL,
  type AllianceAuthTestDatabase,
  allianceAuthDirectory,
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
  expectedFixture,
  FIXTURE_PASSWORD,
} from '../helpers/alliance-auth.ts';
import { consoleGet, pageText } from '../helpers/console.ts';
import {
  eveLogin,
  type EveSsoStandIn,
  pressEveButton,
  startEveSsoStandIn,
} from '../helpers/eve-sso-stand-in.ts';
import { Browser, formField, seedApp, startServer, type TestServer } from '../helpers/server.ts';
import { statementsDuring } from '../helpers/statements.ts';

const expected = expectedFixture();

/** The account page's section `id` (`apps`, `password`), as text. */
function section(body: string, id: string): string {
  const found = new RegExp(`<section aria-labelledby="${id}">[\\s\\S]*?</section>`).exec(body);
  assert.ok(found, `the ${id} section`);
  return pageText(found[0]);
}

await describeOnEachAllianceAuth(
  (database) => `the account page of an Alliance Auth member, on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let eve: EveSsoStandIn;
    /** Password and EVE Online sign-in. */
    let both: TestServer;
    /** EVE Online sign-in alone. */
    let eveOnly: TestServer;

    before(async () => {
      fixture = await createAllianceAuthDatabase(kind);
      // Carol's account has Django's unusable password, as the accounts EVE SSO makes have.
      await fixture.run('UPDATE auth_user SET password = ? WHERE username = ?', [
        `!${randomBytes(20).toString('hex')}`,
        'carol',
      ]);
      eve = await startEveSsoStandIn();
      both = await startServer({
        directory: allianceAuthDirectory(fixture.readerUrl, { passwordLogin: true }),
        eveSso: eve.settings,
      });
      eveOnly = await startServer({
        directory: allianceAuthDirectory(fixture.readerUrl),
        eveSso: eve.settings,
      });
      // Open to the Member state alone: alice's; carol and erin pass the global gate, but not this.
      for (const server of [both, eveOnly])
        await seedApp(server, { name: "Members' wiki", states: ['Member'] });
    });
    after(async () => {
      await both?.close();
      await eveOnly?.close();
      await eve?.close();
      await fixture?.drop();
    });

    /** `username` signed in to the console with their main character, through EVE SSO. */
    async function consoleSignInWithEve(server: TestServer, username: string): Promise<Browser> {
      const user = expected.users.find((candidate) => candidate.username === username)!;
      const browser = new Browser();
      const start = `${server.origin}/account/sign-in?return=/account`;
      const loginPage = await (await browser.follow(start, server.origin)).text();
      const main = user.characters.find((character) => character.is_main)!;
      const { callbackUrl } = await pressEveButton(browser, server, eve, loginPage, eveLogin(main));
      const signedIn = await browser.follow(callbackUrl, server.origin);
      const body = await signedIn.text();
      assert.equal(signedIn.status, 200, body.slice(0, 300));
      assert.match(body, /http-equiv="refresh"/, 'the console callback page');
      return browser;
    }

    /**
     * `username` signed in to the console with the fixture's password, at the login page's password
     * form (its first form is the EVE button's).
     */
    async function consoleSignInWithPassword(server: TestServer, username: string): Promise<Browser> {
      const browser = new Browser();
      const start = `${server.origin}/account/sign-in?return=/account`;
      const loginPage = await (await browser.follow(start, server.origin)).text();
      const form = [...loginPage.matchAll(/<form[^>]*action="([^"]+)"[^>]*>/g)].find(
        (candidate) => !candidate[0].includes('external-sign-in'),
      );
      assert.ok(form, 'the login page has a password form');
      const signedIn = await browser.follow(
        new URL(form[1]!.replaceAll('&amp;', '&'), server.origin).href,
        server.origin,
        {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            csrf_token: formField(loginPage, 'csrf_token'),
            username,
            password: FIXTURE_PASSWORD,
          }).toString(),
        },
      );
      const body = await signedIn.text();
      assert.equal(signedIn.status, 200, body.slice(0, 300));
      assert.match(body, /http-equiv="refresh"/, 'the console callback page');
      return browser;
    }

    const account = async (browser: Browser, server: TestServer) => {
      const page = await consoleGet(browser, `${server.origin}/account`);
      assert.equal(page.status, 200);
      return page.body;
    };

    it('tells bob, whose state and groups pass no global gate, that they give access to no application, naming his state alone', async () => {
      const body = await account(await consoleSignInWithPassword(both, 'bob'), both);
      assert.equal(
        section(body, 'apps'),
        'Applications you allowed Your state, Blue, and your groups give access to no application here. Access follows your state and groups on Alliance Auth.',
      );
      assert.match(body, new RegExp(`Access follows your state and groups on\\s+<a href="${AA_LOGIN_URL}">`));
      assert.doesNotMatch(pageText(body), /Member|Guest|wiki/, 'no other state, no application named');
    });

    it('tells carol and erin, past the global gate but whitelisted by no application, the same of their state', async () => {
      const carol = await account(await consoleSignInWithEve(both, 'carol'), both);
      assert.equal(
        section(carol, 'apps'),
        'Applications you allowed Your state, Guest, and your groups give access to no application here. Access follows your state and groups on Alliance Auth.',
      );
      const erin = await account(await consoleSignInWithPassword(both, 'erin'), both);
      assert.equal(
        section(erin, 'apps'),
        'Applications you allowed Your state, Guest, gives access to no application here. Access follows your state and groups on Alliance Auth.',
      );
      for (const body of [carol, erin]) assert.doesNotMatch(pageText(body), /Member|wiki/);
    });

    it('tells alice, whom an application admits, nothing of the kind', async () => {
      const alice = await account(await consoleSignInWithPassword(both, 'alice'), both);
      assert.equal(
        section(alice, 'apps'),
        'Applications you allowed None yet. An application appears here once you allow it to use your account.',
      );
    });

    it('tells carol, whose Alliance Auth account has no usable password, that she signs in with EVE Online, and alice of her password', async () => {
      const carol = await account(await consoleSignInWithEve(both, 'carol'), both);
      assert.equal(
        section(carol, 'password'),
        'Password You sign in here with EVE Online: your Alliance Auth account has no password, so there is none to change. Your account is managed in Alliance Auth.',
      );
      // Alice, signed in with EVE Online too, has a password at Alliance Auth: it signs her in here.
      const alice = await account(await consoleSignInWithEve(both, 'alice'), both);
      assert.equal(
        section(alice, 'password'),
        'Password Your password is your Alliance Auth one: change it in Alliance Auth, not here.',
      );
    });

    const landing = async (server: TestServer, browser: Browser) =>
      pageText((await consoleGet(browser, `${server.origin}/`)).body);

    it('offers the password among the account page contents on the landing page only where people sign in with one', async () => {
      assert.match(
        await landing(both, await consoleSignInWithEve(both, 'alice')),
        /Your account: your apps, sessions, password and two-factor sign-in/,
      );
      // Carol has no usable password at Alliance Auth: hers is no way in, even with password sign-in on.
      assert.match(
        await landing(both, await consoleSignInWithEve(both, 'carol')),
        /Your account: your apps, sessions and two-factor sign-in/,
      );
      const signedIn = await consoleSignInWithEve(eveOnly, 'alice');
      assert.match(
        await landing(eveOnly, signedIn),
        /Your account: your apps, sessions and two-factor sign-in/,
      );
      assert.equal(
        section(await account(signedIn, eveOnly), 'password'),
        'Password You sign in here with EVE Online, not a password. Your account is managed in Alliance Auth.',
      );
    });

    it("says nothing of a member's password on their admin page where sign-in is with EVE Online alone", async () => {
      // The admin page tells the password's worth with password sign-in on (test/admin/alliance-auth-read-only.test.ts).
      const alice = expected.users.find((user) => user.username === 'alice')!;
      const superuser = expected.users.find((user) => user.is_superuser && user.is_active)!;
      const page = await consoleGet(
        await consoleSignInWithEve(eveOnly, superuser.username),
        `${eveOnly.origin}/admin/users/${alice.id}`,
      );
      assert.equal(page.status, 200, page.body.slice(0, 300));
      assert.match(pageText(page.body), /Affiliation .* Two-factor sign-in/, "alice's facts");
      assert.doesNotMatch(pageText(page.body), /Password|signs in here/);
    });

    it('tells bob, whose Alliance Auth password is stored by a hasher aa-oidc does not verify, to sign in with EVE Online and change it in Alliance Auth', async () => {
      // Django's BCryptSHA256PasswordHasher: AA takes it, aa-oidc cannot check it.
      const bcrypt = 'bcrypt_sha256$$2b$12$NF7ZcEKXV8vIXmSEc4yWFOyhVjHJL3zMrUWC4fh4MhAaX2t5ZGpyi';
      const { password: kept } = await fixture.owner
        .selectFrom('auth_user')
        .select('password')
        .where('username', '=', 'bob')
        .executeTakeFirstOrThrow();
      await fixture.run('UPDATE auth_user SET password = ? WHERE username = ?', [bcrypt, 'bob']);
      try {
        const browser = await consoleSignInWithEve(both, 'bob');
        const page = await consoleGet(browser, `${both.origin}/account`);
        assert.equal(page.status, 200);
        assert.equal(
          section(page.body, 'password'),
          'Password You sign in here with EVE Online: your Alliance Auth password is stored in a form this service cannot check. Change it in Alliance Auth to sign in here with it too.',
        );
        assert.match(page.body, new RegExp(`Change it in\\s+<a href="${AA_LOGIN_URL}">Alliance Auth</a>`));
        const home = (await consoleGet(browser, `${both.origin}/`)).body;
        assert.match(pageText(home), /Your account: your apps, sessions and two-factor sign-in/);
        for (const body of [page.body, home])
          assert.ok(!body.includes('NF7ZcEKXV8vIXmSEc4yWFO'), 'no hash shown');
      } finally {
        await fixture.run('UPDATE auth_user SET password = ? WHERE username = ?', [kept, 'bob']);
      }
    });

    it("reads the member's Alliance Auth record once for the account page, the password's worth with it", async () => {
      const browser = await consoleSignInWithEve(both, 'alice');
      const { result: page, texts } = await statementsDuring(() =>
        consoleGet(browser, `${both.origin}/account`),
      );
      assert.equal(page.status, 200);
      assert.equal(
        section(page.body, 'password'),
        'Password Your password is your Alliance Auth one: change it in Alliance Auth, not here.',
      );
      // The profile's read of `auth_user` (the poller's fingerprints, running meanwhile, take no `date_joined`).
      const userReads = texts.filter(
        (text) => /\bfrom [`"]auth_user[`"]/i.test(text) && /[`"]date_joined[`"]/.test(text),
      );
      assert.equal(userReads.length, 1, "one read of alice's Alliance Auth record");
    });
  },
);
