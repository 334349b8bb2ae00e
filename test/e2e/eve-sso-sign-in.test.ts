import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import type { Browser } from 'playwright-core';
import {
  AA_LOGIN_URL,
  allianceAuthDirectory,
  allianceAuthUnavailable,
  type AllianceAuthTestDatabase,
  createAllianceAuthDatabase,
  expectedFixture,
} from '../helpers/alliance-auth.ts';
import { allianceAuthActions } from '../helpers/alliance-auth-changes.ts';
import { chromiumUnavailable, launchChromium } from '../helpers/e2e.ts';
import {
  type EveCharacterLogin,
  type EveSsoStandIn,
  startEveSsoStandIn,
} from '../helpers/eve-sso-stand-in.ts';
import { tokenRequest } from '../helpers/flows.ts';
import { pkcePair, seedApp, startServer, type TestServer } from '../helpers/server.ts';
import { startReceiver, type Receiver } from '../logout/helpers.ts';

// Skipped, with the reason shown by the runner, when Chromium or MariaDB is missing (a failure
// under AA_OIDC_REQUIRE_E2E=1).
const skip = chromiumUnavailable() || (await allianceAuthUnavailable('mysql'));

const expected = expectedFixture();
function mainOf(username: string): EveCharacterLogin {
  const user = expected.users.find((candidate) => candidate.username === username)!;
  const main = user.characters.find((candidate) => candidate.is_main)!;
  return { characterId: main.character_id, characterName: main.character_name, ownerHash: main.owner_hash };
}

/**
 * "Sign in with EVE Online" in a real browser, with Alliance Auth's MariaDB as the directory: the
 * button on the login page goes through the EVE SSO stand-in on loopback and back; alice, whose
 * main it is, lands signed in at the relying party's redirect URI (a listener on loopback), and
 * bob, signing in with an alt he has just added in AA, is sent to AA's own login.
 */
describe('Sign in with EVE Online in Chromium, Alliance Auth on MariaDB', { skip }, () => {
  let fixture: AllianceAuthTestDatabase;
  let eve: EveSsoStandIn;
  let server: TestServer;
  let rp: Receiver;
  let browser: Browser;
  let client: { clientId: string; clientSecret: string };

  before(async () => {
    fixture = await createAllianceAuthDatabase('mysql');
    eve = await startEveSsoStandIn();
    rp = await startReceiver((_request, response) => {
      response.setHeader('content-type', 'text/html');
      response.end('<!DOCTYPE html><title>RP</title><h1>Back at the application</h1>');
    });
    server = await startServer({ directory: allianceAuthDirectory(fixture.readerUrl), eveSso: eve.settings });
    const created = await seedApp(server, {
      name: 'Fleet tool',
      redirectUris: [rp.url('/callback')],
      skipAuthorization: true,
    });
    client = { clientId: created.clientId, clientSecret: created.clientSecret! };
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    await rp?.close();
    await eve?.close();
    await fixture?.drop();
  });

  /** The application's authorization request, as its "log in" link would send the browser. */
  function authorizationRequest() {
    const { verifier, challenge } = pkcePair();
    const url = new URL(`${server.issuer}/authorize/`);
    url.search = new URLSearchParams({
      client_id: client.clientId,
      redirect_uri: rp.url('/callback'),
      response_type: 'code',
      scope: 'openid profile',
      state: 'state-of-the-application',
      code_challenge: challenge,
      code_challenge_method: 'S256',
    }).toString();
    return { url: url.href, verifier };
  }

  it('signs alice in with her main character and lands her at the application signed in', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const request = authorizationRequest();
      const opened = await page.goto(request.url);
      assert.equal(opened?.status(), 200, `the login page at ${page.url()}`);
      // The login page, whatever it shows (a failure then names the page, not a timeout).
      await page.locator('h1').waitFor();
      assert.equal(await page.locator('h1').textContent(), 'Sign in');
      const button = page.getByRole('button', { name: /Sign in with EVE Online/ });
      await button.waitFor();
      eve.signInAs(mainOf('alice'));
      await button.click();
      await page.waitForURL((url) => url.href.startsWith(rp.url('/callback')));
      assert.equal(await page.locator('h1').textContent(), 'Back at the application');
      const landed = new URL(page.url());
      assert.equal(landed.searchParams.get('state'), 'state-of-the-application');
      const exchanged = await tokenRequest(server, client, {
        grant_type: 'authorization_code',
        code: landed.searchParams.get('code')!,
        redirect_uri: rp.url('/callback'),
        code_verifier: request.verifier,
      });
      assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
      const claims = decodeJwt(exchanged.body.id_token as string);
      assert.equal(claims.sub, '2', "alice's AA user id");
      assert.equal(eve.redeemed(), 1);
    } finally {
      await context.close();
    }
  });

  it("sends bob, signing in with an alt he added in AA, to Alliance Auth's login page", async () => {
    const alt = {
      characterId: 2119990003,
      characterName: 'Bob Alt',
      ownerHash: 'Ym9iLWFsdC1vd25lci1oYXNoLS0=',
    };
    await allianceAuthActions(fixture).addAlt(3, alt);
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(authorizationRequest().url);
      eve.signInAs(alt);
      await page.getByRole('button', { name: /Sign in with EVE Online/ }).click();
      const toAllianceAuth = page.getByRole('link', { name: /Alliance Auth/ });
      await toAllianceAuth.waitFor();
      assert.equal(await toAllianceAuth.getAttribute('href'), AA_LOGIN_URL);
      assert.match((await page.locator('main').textContent()) ?? '', /not your main character/);
      assert.ok(!page.url().startsWith(rp.url()), 'the application was not reached');
      assert.equal(
        rp.requests.filter((request) => request.url.startsWith('/callback')).length,
        1,
        'only alice',
      );
    } finally {
      await context.close();
    }
  });
});
