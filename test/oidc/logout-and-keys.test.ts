import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { testDatabaseKind } from '../helpers/database.ts';
import {
  authorizeUrl,
  basicAuth,
  Browser,
  formAction,
  formField,
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

describe(`RP-initiated logout, consent skipping and key rotation (${testDatabaseKind})`, () => {
  let server: TestServer;
  let client: { clientId: string; clientSecret: string };
  let user: { id: number; username: string };

  before(async () => {
    server = await startServer();
    user = await seedUser(server);
    const seeded = await seedApp(server, { skipAuthorization: true });
    client = { clientId: seeded.clientId, clientSecret: seeded.clientSecret! };
  });
  after(async () => server.close());

  async function tokensFor(
    browser: Browser,
    extra: Record<string, string> = {},
    seen?: SignInOptions['seen'],
  ) {
    const { verifier, challenge } = pkcePair();
    const response = await signIn(
      browser,
      server,
      authorizeUrl(server, {
        client_id: client.clientId,
        redirect_uri: REDIRECT_URI,
        response_type: 'code',
        scope: 'openid email',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        ...extra,
      }),
      { username: user.username, seen },
    );
    assert.equal(response.status, 303);
    const code = new URL(response.headers.get('location')!).searchParams.get('code')!;
    const exchanged = await postForm(
      `${server.issuer}/token/`,
      { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier },
      { authorization: basicAuth(client.clientId, client.clientSecret) },
    );
    assert.equal(exchanged.status, 200);
    return exchanged.body as { access_token: string; refresh_token: string; id_token: string };
  }

  const introspect = (token: string) =>
    postForm(
      `${server.issuer}/introspect/`,
      { token },
      { authorization: basicAuth(client.clientId, client.clientSecret) },
    );

  it('skips the consent page for an application with skip_authorization, unless prompt=consent', async () => {
    const browser = new Browser();
    const seen: NonNullable<SignInOptions['seen']> = [];
    await tokensFor(browser, {}, seen);
    assert.deepEqual(
      seen.map((page) => page.kind),
      ['login'],
    );
    const forced: NonNullable<SignInOptions['seen']> = [];
    await tokensFor(browser, { prompt: 'consent' }, forced);
    assert.deepEqual(
      forced.map((page) => page.kind),
      ['consent'],
    );
  });

  it('answers prompt=none with a code for a skip_authorization application the session has no grant at yet, or for a scope more', async () => {
    const browser = new Browser();
    await tokensFor(browser);
    const silently = async (clientId: string, scope: string) => {
      const { verifier, challenge } = pkcePair();
      const response = await browser.fetch(
        authorizeUrl(server, {
          client_id: clientId,
          redirect_uri: REDIRECT_URI,
          response_type: 'code',
          scope,
          prompt: 'none',
          code_challenge: challenge,
          code_challenge_method: 'S256',
        }),
      );
      assert.equal(response.status, 303);
      return { answer: new URL(response.headers.get('location')!).searchParams, verifier };
    };
    const grantsAt = async (clientId: string) =>
      (
        await server.app.database.db
          .selectFrom('oidc_payload')
          .select('id')
          .where('model', '=', 'Grant')
          .where('client_id', '=', clientId)
          .execute()
      ).length;

    // The session signed in at `client` only: another application that skips authorization.
    const other = await seedApp(server, { skipAuthorization: true });
    const first = await silently(other.clientId, 'openid');
    assert.equal(first.answer.get('error'), null, first.answer.get('error_description') ?? '');
    const exchanged = await postForm(
      `${server.issuer}/token/`,
      {
        grant_type: 'authorization_code',
        code: first.answer.get('code')!,
        redirect_uri: REDIRECT_URI,
        code_verifier: first.verifier,
      },
      { authorization: basicAuth(other.clientId, other.clientSecret!) },
    );
    assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
    assert.equal(exchanged.body.scope, 'openid');
    const more = await silently(other.clientId, 'openid profile');
    assert.ok(more.answer.get('code'), `a code for a scope more, not ${more.answer.get('error')}`);
    const again = await silently(client.clientId, 'openid email profile');
    assert.ok(again.answer.get('code'), `a code for a scope more, not ${again.answer.get('error')}`);

    // Consent is still asked where the application does not skip it.
    const asking = await seedApp(server);
    assert.equal((await silently(asking.clientId, 'openid')).answer.get('error'), 'consent_required');
    // A user the policy refuses is refused, and is given no grant at the application.
    await server.app.directoryAdmin.createGroup('Nobody here', false);
    const closed = await seedApp(server, { skipAuthorization: true, groups: ['Nobody here'] });
    assert.equal((await silently(closed.clientId, 'openid')).answer.get('error'), 'access_denied');
    assert.equal(await grantsAt(closed.clientId), 0);
  });

  it('answers prompt=none with interaction_required at a native skip_authorization application, which signs in without a consent page', async () => {
    // RFC 8252 §8.6: another app can claim a native app's custom URI scheme, so the user interacts
    // at every authorization (oidc-provider's `native_client_prompt` check); skip_authorization
    // spares the native app the consent page, not that interaction.
    const browser = new Browser();
    await tokensFor(browser);
    const nativeRedirectUri = 'org.example.app:/callback';
    const app = await seedApp(server, {
      clientType: 'public',
      skipAuthorization: true,
      redirectUris: [nativeRedirectUri],
    });
    const authorizeAt = async (
      extra: Record<string, string>,
      seen?: SignInOptions['seen'],
      clientId = app.clientId,
      redirectUri = nativeRedirectUri,
    ) => {
      const response = await signIn(
        browser,
        server,
        authorizeUrl(server, {
          client_id: clientId,
          redirect_uri: redirectUri,
          response_type: 'code',
          scope: 'openid',
          code_challenge: pkcePair().challenge,
          code_challenge_method: 'S256',
          ...extra,
        }),
        { username: user.username, ...(seen && { seen }) },
      );
      assert.equal(response.status, 303);
      const location = new URL(response.headers.get('location')!);
      assert.equal(location.href.split('?')[0], redirectUri);
      return location.searchParams;
    };

    const silent = await authorizeAt({ prompt: 'none' });
    assert.equal(silent.get('error'), 'interaction_required');
    assert.equal(silent.get('error_description'), 'native clients require End-User interaction');

    const seen: NonNullable<SignInOptions['seen']> = [];
    const interactive = await authorizeAt({}, seen);
    assert.ok(interactive.get('code'), `a code, not ${interactive.get('error')}`);
    assert.deepEqual(seen, [], 'neither a login nor a consent page for the signed-in browser');

    // Granted now, and still no silent sign-in.
    assert.equal((await authorizeAt({ prompt: 'none' })).get('error'), 'interaction_required');

    // A native app that does not skip consent asks for it at every sign-in.
    const asking = await seedApp(server, { clientType: 'public', redirectUris: [nativeRedirectUri] });
    for (let round = 0; round < 2; round += 1) {
      const pages: NonNullable<SignInOptions['seen']> = [];
      const answer = await authorizeAt({}, pages, asking.clientId);
      assert.ok(answer.get('code'), `a code, not ${answer.get('error')}`);
      assert.deepEqual(
        pages.map((page) => page.kind),
        ['consent'],
      );
    }

    // A loopback redirect URI does not make an application native.
    const loopback = 'http://127.0.0.1:8765/callback';
    const cli = await seedApp(server, {
      clientType: 'public',
      skipAuthorization: true,
      redirectUris: [loopback],
    });
    const quiet = await authorizeAt({ prompt: 'none' }, undefined, cli.clientId, loopback);
    assert.ok(quiet.get('code'), `a code, not ${quiet.get('error')}`);
  });

  it('confirms logout on a page, redirects to the registered post_logout_redirect_uri and ends the grant', async () => {
    const browser = new Browser();
    const tokens = await tokensFor(browser);
    assert.equal((await introspect(tokens.access_token)).body.active, true);

    const unregistered = await browser.fetch(
      `${server.issuer}/logout/?${new URLSearchParams({
        id_token_hint: tokens.id_token,
        post_logout_redirect_uri: 'https://attacker.example/bye',
      })}`,
    );
    assert.equal(unregistered.status, 400);

    const confirm = await browser.fetch(
      `${server.issuer}/logout?${new URLSearchParams({
        id_token_hint: tokens.id_token,
        post_logout_redirect_uri: 'https://rp.example.org/bye',
        state: 'after-logout',
      })}`,
    );
    assert.equal(confirm.status, 200);
    assert.equal(confirm.headers.get('x-frame-options'), 'DENY');
    assert.match(confirm.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    const page = await confirm.text();
    assert.match(page, /<h1>Sign out\?<\/h1>/);
    assert.match(page, /<html lang="en">/);
    const xsrf = formField(page, 'xsrf');
    const action = formAction(page, server.origin);
    assert.equal(new URL(action).pathname, '/o/logout/confirm');

    const forged = await browser.fetch(action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ xsrf: 'forged', logout: 'yes' }).toString(),
    });
    assert.equal(forged.status, 400, 'the logout form carries an xsrf token bound to the session');
    // A field given twice is refused by the provider's own step (its xsrf token too), ending nothing.
    const token = encodeURIComponent(xsrf);
    for (const body of [
      `xsrf=${token}&xsrf=forged&logout=yes`,
      `xsrf=forged&xsrf=${token}&logout=yes`,
      `xsrf=${token}&logout=yes&logout=yes`,
    ]) {
      const repeated = await browser.fetch(action, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
      });
      assert.equal(repeated.status, 400, body);
      assert.match(await repeated.text(), /must not be provided twice/);
    }
    assert.equal((await introspect(tokens.access_token)).body.active, true, 'still signed in');

    const done = await browser.fetch(action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ xsrf, logout: 'yes' }).toString(),
    });
    assert.equal(done.status, 303);
    const location = new URL(done.headers.get('location')!);
    assert.equal(`${location.origin}${location.pathname}`, 'https://rp.example.org/bye');
    assert.equal(location.searchParams.get('state'), 'after-logout');
    assert.equal((await introspect(tokens.access_token)).body.active, false);
    assert.equal((await introspect(tokens.refresh_token)).body.active, false);

    const seen: NonNullable<SignInOptions['seen']> = [];
    await tokensFor(browser, {}, seen);
    assert.equal(seen[0]?.kind, 'login', 'signed out: the next authorization asks for the password again');
  });

  it('accepts logout by POST and shows its own success page without a redirect URI', async () => {
    const browser = new Browser();
    await tokensFor(browser);
    const confirm = await browser.fetch(`${server.issuer}/logout/`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: client.clientId }).toString(),
    });
    assert.equal(confirm.status, 200);
    const page = await confirm.text();
    const done = await browser.follow(formAction(page, server.origin), server.origin, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ xsrf: formField(page, 'xsrf'), logout: 'yes' }).toString(),
    });
    assert.equal(done.status, 200);
    assert.match(await done.text(), /Signed out/);
  });

  it('answers a logout with nobody signed in on a page of the community, which goes on to its post_logout_redirect_uri', async () => {
    const name = server.app.config.branding.name;
    for (const query of [
      '',
      `?${new URLSearchParams({ client_id: client.clientId, post_logout_redirect_uri: 'https://rp.example.org/bye', state: 'gone' })}`,
    ]) {
      const browser = new Browser();
      const answer = await browser.fetch(`${server.issuer}/logout/${query}`);
      assert.equal(answer.status, 200, query);
      const page = await answer.text();
      assert.doesNotMatch(page, /Submitting Callback|does not support JavaScript/, query);
      assert.match(page, new RegExp(`<title>Signing out · ${name}</title>`), query);
      assert.match(page, /<header class="site">/, 'the community’s header');
      assert.match(
        page,
        /<button type="submit" name="logout" value="yes" id="aa-logout-yes"[^>]*>\s*Continue/,
      );
      // The one inline script (pressing Continue) runs by its hash; the page stays out of frames.
      const policy = answer.headers.get('content-security-policy') ?? '';
      assert.match(policy, /frame-ancestors 'none'/);
      assert.match(policy, /script-src 'sha256-[A-Za-z0-9+/]+=*'$/);
      assert.equal(answer.headers.get('x-frame-options'), 'DENY');

      const action = formAction(page, server.origin);
      assert.equal(new URL(action).pathname, '/o/logout/confirm');
      const done = await browser.follow(action, server.origin, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ xsrf: formField(page, 'xsrf'), logout: 'yes' }).toString(),
      });
      if (query === '') {
        assert.equal(done.status, 200);
        assert.match(await done.text(), /Signed out/);
      } else {
        assert.equal(done.status, 303);
        const location = new URL(done.headers.get('location')!);
        assert.equal(`${location.origin}${location.pathname}`, 'https://rp.example.org/bye');
        assert.equal(location.searchParams.get('state'), 'gone');
      }
    }
  });

  it('changes nothing when the user declines the logout confirmation: session, grants and tokens stay', async () => {
    const browser = new Browser();
    const tokens = await tokensFor(browser);
    const rowsOfUser = async () => {
      const rows = await server.app.database.db
        .selectFrom('oidc_payload')
        .select(['model', 'id', 'payload', 'expires_at', 'consumed_at', 'revoked_at'])
        .where('user_id', '=', String(user.id))
        .where('model', 'in', ['Session', 'Grant', 'AccessToken', 'RefreshToken'])
        .orderBy('model')
        .orderBy('id')
        .execute();
      return rows.map((row) => {
        if (row.model !== 'Session') return row;
        // A session's expiry and timestamps move with every save; who and what it holds must not.
        const { accountId, authorizations, jti } = JSON.parse(row.payload) as Record<string, unknown>;
        return { model: row.model, id: row.id, accountId, authorizations, jti, revoked_at: row.revoked_at };
      });
    };
    const before = await rowsOfUser();
    assert.ok(before.some((row) => row.model === 'Session'));
    assert.ok(before.some((row) => row.model === 'Grant'));

    const confirm = await browser.fetch(
      `${server.issuer}/logout?${new URLSearchParams({
        id_token_hint: tokens.id_token,
        post_logout_redirect_uri: 'https://rp.example.org/bye',
        state: 'declined',
      })}`,
    );
    assert.equal(confirm.status, 200);
    const page = await confirm.text();
    assert.match(page, /No, stay signed in/);
    const declined = await browser.fetch(formAction(page, server.origin), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ xsrf: formField(page, 'xsrf') }).toString(),
    });
    assert.equal(declined.status, 303);
    const location = new URL(declined.headers.get('location')!);
    assert.equal(`${location.origin}${location.pathname}`, 'https://rp.example.org/bye');
    assert.equal(location.searchParams.get('state'), 'declined');

    assert.deepEqual(await rowsOfUser(), before, 'the session, the grant and the tokens are as they were');
    assert.equal((await introspect(tokens.access_token)).body.active, true);
    assert.equal((await introspect(tokens.refresh_token)).body.active, true);
    const seen: NonNullable<SignInOptions['seen']> = [];
    await tokensFor(browser, {}, seen);
    assert.deepEqual(seen, [], 'still signed in: the next authorization asks nothing');
  });

  it('serves a key rotation without a restart: new tokens use the new key, old ones still verify', async () => {
    const browser = new Browser();
    const before = await tokensFor(browser);
    const oldKid = decodeProtectedHeader(before.id_token).kid;
    assert.equal(oldKid, server.app.keyStore.activeKid());

    await server.app.keys.rotate({ force: true });
    await server.app.keyStore.reload();
    const newKid = server.app.keyStore.activeKid();
    assert.notEqual(newKid, oldKid);

    const after = await tokensFor(browser);
    assert.equal(decodeProtectedHeader(after.id_token).kid, newKid);
    const published = (await (await fetch(`${server.issuer}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
    const kids = published.keys.map((key) => key.kid);
    assert.ok(kids.includes(oldKid!) && kids.includes(newKid));
    const jwks = createLocalJWKSet(published);
    await jwtVerify(before.id_token, jwks, { issuer: server.issuer, audience: client.clientId });
    await jwtVerify(after.id_token, jwks, { issuer: server.issuer, audience: client.clientId });
    assert.equal(
      (await introspect(before.access_token)).body.active,
      true,
      'state survives the provider swap',
    );
  });
  it('withdraws a key at once: JWKS no longer lists it, and aa-oidc refuses an id_token_hint it signed', async () => {
    const browser = new Browser();
    const before = await tokensFor(browser);
    const kid = decodeProtectedHeader(before.id_token).kid!;
    assert.equal(kid, server.app.keyStore.activeKid());
    const logoutWith = (idToken: string) =>
      browser.fetch(
        `${server.issuer}/logout/?${new URLSearchParams({
          id_token_hint: idToken,
          post_logout_redirect_uri: 'https://rp.example.org/bye',
        })}`,
      );
    const silentlyWith = async (idToken: string) => {
      const { challenge } = pkcePair();
      const response = await browser.fetch(
        authorizeUrl(server, {
          client_id: client.clientId,
          redirect_uri: REDIRECT_URI,
          response_type: 'code',
          scope: 'openid',
          prompt: 'none',
          id_token_hint: idToken,
          code_challenge: challenge,
          code_challenge_method: 'S256',
        }),
      );
      assert.equal(response.status, 303);
      return new URL(response.headers.get('location')!).searchParams;
    };
    assert.equal((await logoutWith(before.id_token)).status, 200, 'accepted while the key is published');
    assert.ok((await silentlyWith(before.id_token)).get('code'), 'accepted while the key is published');

    // Forced: the next key was created when the server started, a moment ago.
    const withdrawal = await server.app.keys.withdraw(kid, { force: true });
    await server.app.keyStore.reload();
    assert.equal(server.app.keyStore.activeKid(), withdrawal.activatedKid);

    const published = (await (await fetch(`${server.issuer}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
    const kids = published.keys.map((key) => key.kid);
    assert.ok(!kids.includes(kid), 'JWKS no longer lists the withdrawn key');
    assert.ok(kids.includes(withdrawal.activatedKid!) && kids.includes(withdrawal.nextKid!));
    await assert.rejects(
      jwtVerify(before.id_token, createLocalJWKSet(published), {
        issuer: server.issuer,
        audience: client.clientId,
      }),
      /no applicable key found/,
    );

    const refused = await logoutWith(before.id_token);
    assert.equal(refused.status, 400);
    assert.match(await refused.text(), /could not validate id_token_hint/);
    const silent = await silentlyWith(before.id_token);
    assert.deepEqual(
      [silent.get('error'), silent.get('error_description'), silent.get('code')],
      ['invalid_request', 'could not validate id_token_hint', null],
    );

    // New tokens are signed with the key activated in its place, and verify with the JWKS.
    const after = await tokensFor(browser);
    assert.equal(decodeProtectedHeader(after.id_token).kid, withdrawal.activatedKid);
    await jwtVerify(after.id_token, createLocalJWKSet(published), {
      issuer: server.issuer,
      audience: client.clientId,
    });
    assert.equal((await logoutWith(after.id_token)).status, 200);
  });
});
