import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { testDatabaseKind } from '../helpers/database.ts';
import {
  authorizeUrl,
  basicAuth,
  Browser,
  formAction,
  formField,
  PASSWORD,
  pkcePair,
  postForm,
  REDIRECT_URI,
  seedApp,
  seedUser,
  signIn,
  startServer,
  type SignInOptions,
  type TestServer,
} from '../helpers/server.ts';

describe(`prompt=select_account (${testDatabaseKind})`, () => {
  let server: TestServer;
  let client: { clientId: string; clientSecret: string };
  let first: { id: number; username: string };
  let second: { id: number; username: string };

  before(async () => {
    server = await startServer();
    first = await seedUser(server);
    second = await seedUser(server);
    const seeded = await seedApp(server);
    client = { clientId: seeded.clientId, clientSecret: seeded.clientSecret! };
  });
  after(async () => server.close());

  const request = (prompt: string | undefined, challenge: string) =>
    authorizeUrl(server, {
      client_id: client.clientId,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      scope: 'openid',
      state: 'st',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      ...(prompt === undefined ? {} : { prompt }),
    });

  /** The subject of the ID token that the redirect's code is exchanged for. */
  async function subjectOf(response: Response, verifier: string): Promise<string> {
    return (await exchange(response, verifier)).sub;
  }

  async function exchange(
    response: Response,
    verifier: string,
  ): Promise<{ sub: string; refreshToken: string }> {
    assert.equal(response.status, 303);
    const location = new URL(response.headers.get('location')!);
    const code = location.searchParams.get('code');
    assert.ok(code, `a code, not ${location.searchParams.get('error')}`);
    const exchanged = await postForm(
      `${server.issuer}/token/`,
      { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier },
      { authorization: basicAuth(client.clientId, client.clientSecret) },
    );
    assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
    return {
      sub: String(decodeJwt(exchanged.body.id_token as string).sub),
      refreshToken: exchanged.body.refresh_token as string,
    };
  }

  const refresh = (refreshToken: string) =>
    postForm(
      `${server.issuer}/token/`,
      { grant_type: 'refresh_token', refresh_token: refreshToken },
      { authorization: basicAuth(client.clientId, client.clientSecret) },
    );

  /** A browser signed in as `user` (its first authorization, through the login page). */
  async function signedIn(user: { username: string }): Promise<Browser> {
    return (await signedInWithToken(user)).browser;
  }

  async function signedInWithToken(user: {
    username: string;
  }): Promise<{ browser: Browser; refreshToken: string }> {
    const browser = new Browser();
    const { verifier, challenge } = pkcePair();
    const { refreshToken } = await exchange(
      await signIn(browser, server, request(undefined, challenge), user),
      verifier,
    );
    assert.ok(refreshToken);
    return { browser, refreshToken };
  }

  /** Opens the authorization and answers the account-choice page it shows. */
  async function chooseAccount(browser: Browser, url: string, account: string): Promise<Response> {
    const page = await browser.follow(url, server.origin);
    const body = await page.text();
    assert.equal(page.status, 200);
    assert.match(body, /Choose an account/);
    return browser.follow(formAction(body, server.origin), server.origin, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf_token: formField(body, 'csrf_token'), account }).toString(),
    });
  }

  function answerConsent(browser: Browser, body: string): Promise<Response> {
    return browser.follow(formAction(body, server.origin), server.origin, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf_token: formField(body, 'csrf_token'), decision: 'allow' }).toString(),
    });
  }

  it('offers a signed-in browser to continue as its user, who then needs no password', async () => {
    const browser = await signedIn(first);
    const { verifier, challenge } = pkcePair();
    const page = await browser.follow(request('select_account', challenge), server.origin);
    const body = await page.text();
    assert.equal(page.status, 200);
    assert.match(body, new RegExp(`Continue as ${first.username}`));
    assert.match(body, /Sign in as another user/);
    assert.doesNotMatch(body, /name="password"/);

    const continued = await chooseAccount(browser, request('select_account', challenge), 'current');
    assert.equal(await subjectOf(continued, verifier), String(first.id));
  });

  it('shows the login page, where the account is chosen, to a browser that is not signed in', async () => {
    const seen: NonNullable<SignInOptions['seen']> = [];
    const { verifier, challenge } = pkcePair();
    const response = await signIn(new Browser(), server, request('select_account', challenge), {
      username: second.username,
      seen,
    });
    assert.equal(seen[0]?.kind, 'login');
    assert.ok(
      seen.every((page) => !page.body.includes('Choose an account')),
      'no account choice before anyone signed in',
    );
    assert.equal(await subjectOf(response, verifier), String(second.id));
  });

  it('signs in another user, ending the first one’s session, after "Sign in as another user"', async () => {
    const { browser, refreshToken } = await signedInWithToken(first);
    const { verifier, challenge } = pkcePair();
    const login = await chooseAccount(browser, request('select_account', challenge), 'another');
    const loginBody = await login.text();
    assert.equal(login.status, 200);
    assert.match(loginBody, /name="password"/, 'the login page follows');

    // The provider ends the first user's session before the second one's sign-in goes on: a form the
    // page posts by itself (here, by hand), and the authorization resumes.
    const form = new URLSearchParams({
      csrf_token: formField(loginBody, 'csrf_token'),
      username: second.username,
      password: PASSWORD,
    });
    const signOut = await browser.follow(formAction(loginBody, server.origin), server.origin, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
    });
    const signOutBody = await signOut.text();
    assert.equal(signOut.status, 200, signOutBody);
    const confirm = new URLSearchParams({
      xsrf: formField(signOutBody, 'xsrf'),
      logout: formField(signOutBody, 'logout'),
    });
    const consent = await browser.follow(formAction(signOutBody, server.origin), server.origin, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: confirm.toString(),
    });
    const consentBody = await consent.text();
    assert.match(consentBody, new RegExp(`your account <strong>${second.username}</strong>`));
    const response = await answerConsent(browser, consentBody);
    assert.equal(await subjectOf(response, verifier), String(second.id));

    // The first user's session ended, and the tokens it authorized with it.
    const stale = await refresh(refreshToken);
    assert.equal(stale.status, 400);
    assert.equal(stale.body.error, 'invalid_grant');

    // The browser is now the second user's.
    const silent = pkcePair();
    const again = await browser.follow(request('none', silent.challenge), server.origin);
    assert.equal(await subjectOf(again, silent.verifier), String(second.id));
  });

  it('asks for the choice, then consent, with prompt=consent select_account', async () => {
    const browser = await signedIn(first);
    const { verifier, challenge } = pkcePair();
    const consent = await chooseAccount(browser, request('consent select_account', challenge), 'current');
    const body = await consent.text();
    assert.match(body, /name="decision"/, 'the consent page follows');
    const response = await answerConsent(browser, body);
    assert.equal(await subjectOf(response, verifier), String(first.id));
  });

  it('shows only the login page with prompt=login select_account', async () => {
    const browser = await signedIn(first);
    const seen: NonNullable<SignInOptions['seen']> = [];
    const { verifier, challenge } = pkcePair();
    const response = await signIn(browser, server, request('login select_account', challenge), {
      username: first.username,
      seen,
    });
    assert.deepEqual(
      seen.map((page) => page.kind),
      ['login'],
    );
    assert.equal(await subjectOf(response, verifier), String(first.id));
  });

  it('refuses prompt=none with select_account (none goes alone), without a page', async () => {
    const browser = await signedIn(first);
    const response = await browser.follow(
      request('none select_account', pkcePair().challenge),
      server.origin,
    );
    assert.equal(response.status, 303);
    const location = new URL(response.headers.get('location')!);
    assert.equal(`${location.origin}${location.pathname}`, REDIRECT_URI);
    assert.equal(location.searchParams.get('error'), 'invalid_request');
    assert.equal(location.searchParams.get('state'), 'st');
  });

  it('answers an account choice that is neither current nor another with a 400 page naming both', async () => {
    const browser = await signedIn(first);
    const refused = await chooseAccount(browser, request('select_account', pkcePair().challenge), 'someone');
    assert.equal(refused.status, 400);
    assert.match(await refused.text(), /current or another/);
  });
});
