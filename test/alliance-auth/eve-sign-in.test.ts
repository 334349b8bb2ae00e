import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { decodeJwt } from 'jose';
import {
  createAllianceAuthDatabase,
  AA_LOGIN_URL,
  describeOnEachAllianceAuth,
  allianceAuthDirectory,
  expectedFixture,
  type AllianceAuthTestDatabase,
} from '../helpers/alliance-auth.ts';
import {
  type EveCharacterLogin,
  eveLogin,
  type EveSsoStandIn,
  followEveCallback,
  signInWithEve,
  startEveSignIn,
  startEveSsoStandIn,
} from '../helpers/eve-sso-stand-in.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { authorizeParams, exchangeCode, userinfo } from '../helpers/flows.ts';
import { authorizeUrl, Browser, seedApp, startServer, type TestServer } from '../helpers/server.ts';

const expected = expectedFixture();
function character(username: string, main = true): EveCharacterLogin {
  const user = expected.users.find((candidate) => candidate.username === username)!;
  return eveLogin(user.characters.find((candidate) => candidate.is_main === main)!);
}

await describeOnEachAllianceAuth(
  (database) => `Sign in with EVE Online, on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let eve: EveSsoStandIn;
    let server: TestServer;
    let client: { clientId: string; clientSecret: string };
    let harness: LeakHarness;

    before(async () => {
      harness = createLeakHarness();
      fixture = await createAllianceAuthDatabase(kind);
      eve = await startEveSsoStandIn();
      server = await startServer(
        {
          directory: allianceAuthDirectory(fixture.readerUrl),
          eveSso: eve.settings,
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

    /**
     * From the application to the login page, its EVE button, EVE SSO and back to the callback,
     * checking the page and the headers of each answer of ours on the way.
     */
    async function throughEveSso(login: EveCharacterLogin) {
      const signIn = await signInWithEve(server, eve, client, login, { scope: 'openid profile groups' });
      const button =
        /<form method="post" action="[^"]+" class="external-sign-in">[\s\S]*?<button[^>]*>([^<]*)</.exec(
          signIn.loginPage,
        );
      assert.ok(button, "the EVE form's button");
      assert.match(button[1]!, /EVE Online/);
      // Without a password login, the page has no password form.
      assert.doesNotMatch(signIn.loginPage, /name="password"/);
      assertPageHeaders(signIn.toEve, 'the redirect to EVE SSO');
      const authorize = new URL(signIn.toEve.headers.get('location')!);
      assert.equal(authorize.origin + authorize.pathname, eve.settings.authorizationUrl);
      assert.ok(authorize.searchParams.get('state'), 'a state goes with the request');
      assert.equal(authorize.searchParams.get('redirect_uri'), `${server.origin}/o/eve-sso/callback`);
      // The callback's own answer: a page (a refusal, a referral), or the redirect to the sign-in.
      assertPageHeaders(signIn.callback, `the callback's ${signIn.callback.status}`);
      return signIn;
    }

    it("signs alice in with her main character: the provider's own sign-in, sub is her AA user id", async () => {
      const { response, verifier } = await throughEveSso(character('alice'));
      const tokens = await exchangeCode(server, client, response, verifier);
      const idToken = decodeJwt(tokens.id_token as string);
      assert.equal(idToken.sub, '2');
      const info = await userinfo(server, tokens.access_token as string);
      assert.equal((JSON.parse(info.body) as { name: string }).name, 'Alice Alpha');
    });

    it('signs carol (Guest) in through Directors, and refuses bob, whose main AA accepts, at the global gate', async () => {
      const carol = await throughEveSso(character('carol'));
      const tokens = await exchangeCode(server, client, carol.response, carol.verifier);
      assert.equal(decodeJwt(tokens.id_token as string).sub, '4');
      const info = JSON.parse((await userinfo(server, tokens.access_token as string)).body) as {
        groups: string[];
      };
      assert.deepEqual(info.groups, ['Directors', 'Guest']);

      const bob = await throughEveSso(character('bob'));
      assert.equal(bob.response.status, 403, 'bob holds no access_oidc: the global gate refuses him');
      assert.doesNotMatch(await bob.response.text(), new RegExp(`href="${AA_LOGIN_URL}"`));
    });

    for (const [what, login, reason] of [
      ["alice's alt", character('alice', false), /not your main character/],
      [
        'an owner hash that changed (the character was sold)',
        { ...character('alice'), ownerHash: 'bm90LWFsaWNlLWFueW1vcmUtLS0=' },
        /changed hands/,
      ],
      ['dave, whom an administrator disabled', character('dave'), /not active/],
      [
        'a character Alliance Auth has never seen',
        { characterId: 2119999999, characterName: 'New Pilot', ownerHash: 'bmV3LXBpbG90LW93bmVyLWhhc2g=' },
        /not registered/,
      ],
      [
        'a character id beyond what Alliance Auth stores (32 bits)',
        { characterId: 2147483648, characterName: 'Far Pilot', ownerHash: 'ZmFyLXBpbG90LW93bmVyLWhhc2g=' },
        /not registered/,
      ],
    ] as const) {
      it(`sends ${what} to Alliance Auth's login, creating nothing`, async () => {
        const usersBefore = await fixture.owner.selectFrom('auth_user').select('id').execute();
        const { response } = await throughEveSso(login);
        assert.equal(response.status, 200);
        const page = await response.text();
        assert.match(page, reason);
        assert.match(page, new RegExp(`href="${AA_LOGIN_URL}"`));
        const usersAfter = await fixture.owner.selectFrom('auth_user').select('id').execute();
        assert.equal(usersAfter.length, usersBefore.length);
      });
    }

    it('isolates a right-to-left character name on the referral page, not the sentence around it, which keeps its order', async () => {
      const arabic = 'قائد الأسطول';
      const alt = character('alice', false);
      for (const [login, sentence] of [
        [
          { characterId: 2119999998, characterName: arabic, ownerHash: 'YXJhYmljLXBpbG90LW93bmVyLWhhc2g=' },
          `<bdi>${arabic}</bdi> is not registered with Alliance Auth yet.`,
        ],
        [
          { ...alt, characterName: arabic },
          `<bdi>${arabic}</bdi> is not your main character. Sign in with your main character, or choose <bdi>${arabic}</bdi> as your main on Alliance Auth.`,
        ],
      ] as const) {
        const { response } = await throughEveSso(login);
        assert.equal(response.status, 200);
        const page = await response.text();
        assert.ok(page.includes(sentence), `the name alone is isolated, in: ${page}`);
      }
    });

    it('counts EVE sign-ins that Alliance Auth would not accept under the login throttle, and asks AA nothing once it is spent', async () => {
      // Every question to Alliance Auth's database goes through judge(): counted here.
      const authenticator = server.app.authenticators.find((candidate) => candidate.kind === 'external')!;
      const judge = authenticator.judge;
      let judged = 0;
      authenticator.judge = (identity) => {
        judged += 1;
        return judge.call(authenticator, identity);
      };
      try {
        const alt = character('alice', false);
        let status = 200;
        let referred = 0;
        for (let attempt = 0; attempt < 8 && status === 200; attempt += 1) {
          const { response } = await throughEveSso(alt);
          status = response.status;
          if (status === 200) referred += 1;
          await response.body?.cancel();
        }
        assert.equal(status, 429, 'the character and address budget runs out');
        assert.equal(
          judged,
          referred,
          "the attempt the throttle refused never reached Alliance Auth's database",
        );
      } finally {
        authenticator.judge = judge;
      }
    });

    it('takes its flow and result cookies once: the browser back at the application holds neither', async () => {
      const { browser, response } = await throughEveSso(character('alice'));
      assert.equal(response.status, 303, 'the redirect back to the application');
      const set = (name: string) => browser.setCookieLines.filter((line) => line.startsWith(`${name}=`));
      assert.equal(set('_aa_oidc_external').length, 2, 'the flow cookie, set and cleared');
      assert.equal(set('_aa_oidc_external_result').length, 2, 'the result cookie, set and cleared');
      assert.deepEqual(
        [...browser.cookies.keys()].filter((key) => key.includes('|_aa_oidc_external')),
        [],
      );
    });

    it('refuses a callback whose state does not match, and a token that does not verify', async () => {
      const browser = new Browser();
      const forged = await browser.fetch(`${server.origin}/o/eve-sso/callback?code=abc&state=forged`);
      assert.equal(forged.status, 400);
      assertPageHeaders(forged, 'a forged state');
      const declined = await browser.fetch(`${server.origin}/o/eve-sso/callback?error=access_denied`);
      assert.equal(declined.status, 400);
      assertPageHeaders(declined, 'declined at EVE SSO');
      eve.tamperNextToken({ foreignKey: true });
      const { response } = await throughEveSso(character('alice'));
      assert.equal(response.status, 400);
      assert.match(await response.text(), /did not succeed/);
    });

    it('refuses callbacks with another state, or none, and leaves the sign-in under way to finish, once', async () => {
      const started = await startEveSignIn(server, eve, client, character('alice'));
      const genuine = new URL(started.callbackUrl);
      const redeemed = eve.redeemed();
      // What a link on another site can make the browser ask for, the flow cookie with it.
      for (const junk of [
        `?code=${genuine.searchParams.get('code')}&state=forged`,
        `?code=abc&state=${'x'.repeat(genuine.searchParams.get('state')!.length)}`,
        '?code=abc',
        '?error=access_denied',
        '?error=access_denied&state=forged',
        '?code=abc&state=',
        '?code=abc&state=a&state=b',
      ]) {
        const refused = await started.browser.fetch(`${server.origin}/o/eve-sso/callback${junk}`);
        assert.equal(refused.status, 400, junk);
        assertPageHeaders(refused, junk);
        assert.match(await refused.text(), /This sign-in has expired/, junk);
        assert.ok(
          !started.browser.setCookieLines.some((line) => /^_aa_oidc_external=;/.test(line)),
          `${junk}: the flow cookie is not cleared`,
        );
      }
      assert.equal(eve.redeemed(), redeemed, 'no code was redeemed at EVE SSO');

      const { callback, response } = await followEveCallback(server, started);
      assert.equal(callback.status, 303, 'the genuine callback still signs alice in');
      const tokens = await exchangeCode(server, client, response, started.verifier);
      assert.equal(decodeJwt(tokens.id_token as string).sub, '2');

      // The callback with the flow's state ended the flow: the same callback again is refused.
      const redeemedOnce = eve.redeemed();
      const replayed = await started.browser.fetch(started.callbackUrl);
      assert.equal(replayed.status, 400);
      assert.match(await replayed.text(), /This sign-in has expired/);
      assert.equal(eve.redeemed(), redeemedOnce, 'the replayed code never reached EVE SSO');
    });

    it("keeps the callback's state out of the access log, and the application's state in it", async () => {
      const linesBefore = harness.logLines.length;
      const started = await startEveSignIn(server, eve, client, character('alice'));
      const state = new URL(started.callbackUrl).searchParams.get('state')!;
      harness.registerSecret(state, "the EVE sign-in's state");
      const junk = await started.browser.fetch(
        `${server.origin}/o/eve-sso/callback?state=forged-state&error=access_denied`,
      );
      assert.equal(junk.status, 400);
      const { callback } = await followEveCallback(server, started);
      assert.equal(callback.status, 303);
      const urls = harness.logLines
        .slice(linesBefore)
        .map((line) => JSON.parse(line) as { msg?: string; req?: { url?: string } })
        .filter((line) => line.msg === 'request completed')
        .map((line) => line.req?.url ?? '');
      assert.deepEqual(
        urls.filter((url) => url.startsWith('/o/eve-sso/callback')),
        [
          '/o/eve-sso/callback?state=[redacted]&error=access_denied',
          '/o/eve-sso/callback?code=[redacted]&state=[redacted]',
        ],
        'the access lines of both callbacks',
      );
      // The authorization endpoint's state is the application's own: operators may follow it.
      assert.ok(
        urls.some((url) => url.startsWith('/o/authorize') && /[?&]state=[0-9a-f]{12}(?:&|$)/.test(url)),
        "the application's state in the authorization request's access line",
      );
      await harness.assertNoLeaks();
    });

    it('takes a callback that carries an error beside its code and state as declined, and never redeems the code', async () => {
      const started = await startEveSignIn(server, eve, client, character('alice'));
      const callback = new URL(started.callbackUrl);
      callback.searchParams.set('error', 'access_denied');
      const redeemed = eve.redeemed();
      const declined = await started.browser.fetch(callback.href);
      assert.equal(declined.status, 400);
      assertPageHeaders(declined, 'an error beside a code');
      const page = await declined.text();
      assert.match(page, /access_denied/);
      assert.match(page, /Sign-in with EVE Online did not finish/);
      assert.equal(eve.redeemed(), redeemed, 'the code was not redeemed at EVE SSO');
      // EVE SSO answered this sign-in, with its state: the sign-in is over.
      const after = await started.browser.fetch(started.callbackUrl);
      assert.equal(after.status, 400);
      assert.match(await after.text(), /This sign-in has expired/);
      assert.equal(eve.redeemed(), redeemed, 'nor was it afterwards');
    });

    it('answers 405 with Allow to a method the EVE routes do not take: a HEAD never ends a sign-in', async () => {
      const browser = new Browser();
      const page = await browser.follow(authorizeUrl(server, authorizeParams(client).params), server.origin);
      const button = /<form method="post" action="([^"]+)" class="external-sign-in">/.exec(await page.text());
      assert.ok(button, 'the login page offers EVE SSO');
      const eveRoute = new URL(button[1]!.replaceAll('&amp;', '&'), server.origin).href;
      for (const [method, url, allow] of [
        ['HEAD', eveRoute, 'GET, POST'],
        ['PUT', eveRoute, 'GET, POST'],
        ['HEAD', `${server.origin}/o/eve-sso/callback?code=abc&state=forged`, 'GET'],
        ['POST', `${server.origin}/o/eve-sso/callback`, 'GET'],
      ] as const) {
        const response = await browser.fetch(url, { method });
        assert.equal(response.status, 405, `${method} ${url}`);
        assert.equal(response.headers.get('allow'), allow, `${method} ${url}`);
        assertPageHeaders(response, `${method} ${url}`);
      }
    });
  },
);

/** The four headers of the server's pages (`setPageHeaders`), on a page or a redirect of the EVE sign-in. */
function assertPageHeaders(response: Response, what: string): void {
  assert.equal(response.headers.get('x-frame-options'), 'DENY', what);
  assert.match(response.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/, what);
  assert.equal(response.headers.get('x-content-type-options'), 'nosniff', what);
  assert.equal(response.headers.get('referrer-policy'), 'same-origin', what);
}
