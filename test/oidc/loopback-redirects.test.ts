import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { authorizeUrl, pkcePair, seedApp, startServer, type TestServer } from '../helpers/server.ts';

/**
 * Which redirect and post-logout redirect URIs an authorization or a logout request may name, beyond
 * the registered strings: RFC 8252 §7.3 (a native app's loopback IP redirect, at any port, since the
 * app listens on an ephemeral one) and nothing more. A native app is one with a private-use scheme
 * redirect URI (clients.ts); a `localhost` URI (RFC 8252 §8.3: NOT RECOMMENDED) and every URI of a
 * web app match exactly, port included.
 */
describe(`loopback redirect URIs (${testDatabaseKind})`, () => {
  let server: TestServer;
  let native: string;
  let web: string;

  before(async () => {
    server = await startServer();
    native = (
      await seedApp(server, {
        clientType: 'public',
        redirectUris: [
          'org.example.app:/callback',
          'http://127.0.0.1/callback',
          'http://[::1]:8000/callback',
          'http://localhost:8000/callback',
        ],
        postLogoutRedirectUris: [
          'http://127.0.0.1:8000/bye',
          'http://[::1]/bye',
          'http://localhost:8000/bye',
        ],
      })
    ).clientId;
    web = (
      await seedApp(server, {
        redirectUris: [
          'http://127.0.0.1:8765/callback',
          'http://[::1]:8765/callback',
          'http://localhost:8765/callback',
        ],
        postLogoutRedirectUris: ['http://127.0.0.1:8765/bye', 'http://localhost:8765/bye'],
      })
    ).clientId;
  });
  after(async () => server.close());

  /** True when the authorization request goes on to the sign-in (the redirect URI is accepted). */
  async function redirectAccepted(clientId: string, redirectUri: string): Promise<boolean> {
    const response = await fetch(
      authorizeUrl(server, {
        client_id: clientId,
        redirect_uri: redirectUri,
        response_type: 'code',
        scope: 'openid',
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
      }),
      { redirect: 'manual' },
    );
    const page = await response.text();
    if (response.status === 400) {
      assert.match(
        page,
        /redirect_uri did not match any of the client&#39;s registered redirect_uris|invalid_redirect_uri/,
      );
      assert.equal(response.headers.get('location'), null, 'a refused redirect URI is never redirected to');
      return false;
    }
    assert.equal(response.status, 303, page);
    assert.match(response.headers.get('location') ?? '', /\/interaction\//);
    return true;
  }

  /** True when the logout request asks for confirmation (the post-logout redirect URI is accepted). */
  async function postLogoutAccepted(clientId: string, uri: string): Promise<boolean> {
    const response = await fetch(
      `${server.issuer}/logout?${new URLSearchParams({ client_id: clientId, post_logout_redirect_uri: uri })}`,
      { redirect: 'manual' },
    );
    const page = await response.text();
    if (response.status === 400) {
      assert.match(page, /post_logout_redirect_uri not registered/);
      return false;
    }
    // Without a session there is nothing to confirm: the page submits the confirmation by itself.
    assert.equal(response.status, 200, page);
    assert.match(page, /\/logout\/confirm/);
    return true;
  }

  it('accepts a native application’s loopback IP redirect URI at any port, and only its registered path and query', async () => {
    const accepted = [
      'http://127.0.0.1/callback',
      'http://127.0.0.1:51234/callback',
      'http://127.0.0.1:8000/callback',
      'http://[::1]:8000/callback',
      'http://[::1]:51234/callback',
      'http://[::1]/callback',
      'org.example.app:/callback',
    ];
    for (const uri of accepted) assert.equal(await redirectAccepted(native, uri), true, uri);

    const refused = [
      'http://127.0.0.1:51234/other',
      'http://127.0.0.1:51234/callback/',
      'http://127.0.0.1:51234/callback?next=1',
      'http://127.0.0.1:51234/Callback',
      'http://user@127.0.0.1:51234/callback',
      'https://127.0.0.1:51234/callback',
      'http://127.0.0.2:51234/callback',
      'http://[::1]:51234/other',
      'org.example.app:/other',
    ];
    for (const uri of refused) assert.equal(await redirectAccepted(native, uri), false, uri);
  });

  it('matches a native application’s localhost redirect URI exactly, port included (RFC 8252 §8.3)', async () => {
    assert.equal(await redirectAccepted(native, 'http://localhost:8000/callback'), true);
    for (const uri of [
      'http://localhost:51234/callback',
      'http://localhost/callback',
      'http://LOCALHOST:51234/callback',
      'http://LocalHost:8000/callback',
    ])
      assert.equal(await redirectAccepted(native, uri), false, uri);
  });

  it('matches every redirect URI of a web application exactly, loopback ones included', async () => {
    for (const uri of [
      'http://127.0.0.1:8765/callback',
      'http://[::1]:8765/callback',
      'http://localhost:8765/callback',
    ])
      assert.equal(await redirectAccepted(web, uri), true, uri);
    for (const uri of [
      'http://127.0.0.1:8766/callback',
      'http://127.0.0.1/callback',
      'http://[::1]:8766/callback',
      'http://localhost:8766/callback',
    ])
      assert.equal(await redirectAccepted(web, uri), false, uri);
  });

  it('applies the same rule to post-logout redirect URIs', async () => {
    for (const uri of [
      'http://127.0.0.1:8000/bye',
      'http://127.0.0.1:51234/bye',
      'http://127.0.0.1/bye',
      'http://[::1]:51234/bye',
      'http://localhost:8000/bye',
    ])
      assert.equal(await postLogoutAccepted(native, uri), true, uri);
    for (const uri of [
      'http://127.0.0.1:51234/bye?next=1',
      'http://127.0.0.1:51234/other',
      'http://localhost:51234/bye',
      'http://localhost/bye',
    ])
      assert.equal(await postLogoutAccepted(native, uri), false, uri);

    for (const uri of ['http://127.0.0.1:8765/bye', 'http://localhost:8765/bye'])
      assert.equal(await postLogoutAccepted(web, uri), true, uri);
    for (const uri of ['http://127.0.0.1:8766/bye', 'http://127.0.0.1/bye', 'http://localhost:8766/bye'])
      assert.equal(await postLogoutAccepted(web, uri), false, uri);
  });
});
