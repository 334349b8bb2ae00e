import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import type { AuditRecord } from '../../src/audit/events.ts';
import { sha256Hex } from '../../src/logging/secrets.ts';
import { storageId } from '../../src/tokens/store.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import {
  authorizeUrl,
  basicAuth,
  Browser,
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

const PROTOCOL_CLAIMS = new Set([
  'sub',
  'iss',
  'aud',
  'exp',
  'iat',
  'auth_time',
  'nonce',
  'acr',
  'amr',
  'azp',
  'at_hash',
  'c_hash',
  'jti',
  'sid',
]);

describe(`authorization code flow with PKCE (${testDatabaseKind})`, () => {
  let server: TestServer;
  let client: { clientId: string; clientSecret: string };
  let user: { id: number; username: string };
  let jwks: ReturnType<typeof createLocalJWKSet>;

  before(async () => {
    server = await startServer();
    await server.app.directoryAdmin.createState('Member', 100, true);
    await server.app.directoryAdmin.createGroup('Fleet', false);
    user = await seedUser(server, {
      state: 'Member',
      groups: ['Fleet'],
      characterId: 90000001,
      characterName: 'Pilot One',
      corporationId: 98000001,
      corporationName: 'Corp',
      corporationTicker: 'CRP',
    });
    const seeded = await seedApp(server);
    client = { clientId: seeded.clientId, clientSecret: seeded.clientSecret! };
    const keys = (await (await fetch(`${server.issuer}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
    jwks = createLocalJWKSet(keys);
  });
  after(async () => server.close());

  async function codeFor(
    browser: Browser,
    extra: Record<string, string> = {},
    options: SignInOptions = {},
  ): Promise<{ code: string; verifier: string; nonce: string; location: URL }> {
    const { verifier, challenge } = pkcePair();
    const state = randomBytes(8).toString('hex');
    const nonce = randomBytes(8).toString('hex');
    const response = await signIn(
      browser,
      server,
      authorizeUrl(server, {
        client_id: client.clientId,
        redirect_uri: REDIRECT_URI,
        response_type: 'code',
        scope: 'openid profile email groups',
        state,
        nonce,
        code_challenge: challenge,
        code_challenge_method: 'S256',
        ...extra,
      }),
      { username: user.username, ...options },
    );
    assert.equal(response.status, 303);
    const location = new URL(response.headers.get('location')!);
    assert.equal(`${location.origin}${location.pathname}`, REDIRECT_URI);
    assert.equal(location.searchParams.get('state'), state);
    assert.equal(location.searchParams.get('iss'), server.issuer, 'RFC 9207 iss in the response');
    const code = location.searchParams.get('code');
    assert.ok(code, `a code, not ${location.searchParams.get('error')}`);
    return { code, verifier, nonce, location };
  }

  const token = (form: Record<string, string>) =>
    postForm(`${server.issuer}/token/`, form, {
      authorization: basicAuth(client.clientId, client.clientSecret),
    });
  const introspect = (value: string) =>
    postForm(
      `${server.issuer}/introspect/`,
      { token: value },
      { authorization: basicAuth(client.clientId, client.clientSecret) },
    );

  it('gives an RP set up for the Python plugin (openid profile email) groups and preferred_username at userinfo', async () => {
    const { code, verifier } = await codeFor(new Browser(), { scope: 'openid profile email' });
    const exchanged = await token({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
    });
    assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
    assert.equal(exchanged.body.scope, 'openid profile email');
    const userinfo = await fetch(`${server.issuer}/userinfo/`, {
      headers: { authorization: `Bearer ${exchanged.body.access_token as string}` },
    });
    assert.equal(userinfo.status, 200);
    const claims = (await userinfo.json()) as Record<string, unknown>;
    assert.deepEqual(claims.groups, ['Fleet', 'Member'], 'group names, then the state name');
    assert.equal(claims.preferred_username, user.username);
    assert.equal(claims.email, `${user.username}@example.org`);
  });

  it('signs in through the real login and consent pages, then exchanges, refreshes, introspects and revokes', async () => {
    const browser = new Browser();
    const seen: NonNullable<SignInOptions['seen']> = [];
    const { code, verifier, nonce } = await codeFor(browser, { acr_values: '0' }, { seen });
    assert.deepEqual(
      seen.map((page) => page.kind),
      ['login', 'consent'],
    );
    for (const page of seen) {
      assert.equal(page.status, 200);
      assert.equal(page.headers.get('x-frame-options'), 'DENY');
      assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
      assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(page.headers.get('referrer-policy'), 'same-origin');
      assert.match(page.body, /<html lang="en">/);
      assert.match(page.body, /name="csrf_token"/);
    }
    assert.match(seen[0]!.body, /<label for="username">/);
    assert.match(seen[1]!.body, /Test RP/);
    assert.match(
      seen[1]!.body,
      /Your username, groups and state, and your main character&#39;s name and portrait; your main character&#39;s corporation, alliance and faction <small>\(profile\)/,
    );
    const providerCookies = browser.setCookieLines.filter((line) => /^_(session|interaction)/.test(line));
    assert.ok(providerCookies.some((line) => line.startsWith('_session=')));
    assert.ok(
      providerCookies.some((line) => line.startsWith('_session.sig=')),
      'session cookie is signed',
    );
    for (const line of providerCookies) {
      assert.match(line, /; httponly/i, line);
      assert.match(line, /; samesite=lax/i, line);
      assert.doesNotMatch(line, /; secure/i, 'not Secure over http in development');
    }

    const exchanged = await token({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
    });
    assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
    assert.equal(exchanged.body.token_type, 'Bearer');
    assert.equal(exchanged.headers.get('cache-control'), 'no-store');
    const accessToken = exchanged.body.access_token as string;
    const refreshToken = exchanged.body.refresh_token as string;
    const idToken = exchanged.body.id_token as string;
    assert.ok(
      accessToken && refreshToken && idToken,
      'access, refresh (without offline_access) and id tokens',
    );

    const { payload, protectedHeader } = await jwtVerify(idToken, jwks, {
      issuer: server.issuer,
      audience: client.clientId,
    });
    assert.equal(protectedHeader.alg, 'RS256');
    assert.equal(payload.sub, String(user.id));
    assert.equal(payload.nonce, nonce);
    assert.equal(payload.acr, '0');
    for (const claim of Object.keys(payload))
      assert.ok(PROTOCOL_CLAIMS.has(claim), `id_token has no ${claim}`);

    const stored = await server.app.database.db
      .selectFrom('oidc_payload')
      .select(['id', 'payload'])
      .execute();
    for (const row of stored) {
      assert.ok(
        !row.payload.includes(accessToken) &&
          !row.payload.includes(refreshToken) &&
          !row.payload.includes(code),
      );
    }
    assert.ok(stored.some((row) => row.id === storageId(accessToken)));

    const userinfo = await fetch(`${server.issuer}/userinfo/`, {
      headers: { authorization: `Bearer ${accessToken}` },
    });
    assert.equal(userinfo.status, 200);
    assert.equal(userinfo.headers.get('cache-control'), 'no-store');
    assert.equal(userinfo.headers.get('pragma'), 'no-cache');
    const claims = (await userinfo.json()) as Record<string, unknown>;
    assert.equal(claims.sub, String(user.id));
    assert.equal(claims.email, `${user.username}@example.org`);
    assert.deepEqual(claims.groups, ['Fleet', 'Member']);
    assert.equal(claims.name, 'Pilot One');
    assert.equal(claims.eve_corporation_ticker, 'CRP');
    assert.equal(claims.picture, 'https://images.evetech.net/characters/90000001/portrait?size=128');
    const viaPost = await postForm(
      `${server.issuer}/userinfo`,
      {},
      { authorization: `Bearer ${accessToken}` },
    );
    assert.equal(viaPost.status, 200);
    assert.equal(viaPost.body.sub, String(user.id));
    assert.equal(viaPost.headers.get('cache-control'), 'no-store');
    assert.equal(viaPost.headers.get('pragma'), 'no-cache');

    const active = await introspect(accessToken);
    assert.equal(active.status, 200);
    assert.equal(active.body.active, true);
    assert.equal(active.body.sub, String(user.id));
    assert.equal(active.body.client_id, client.clientId);
    const refreshActive = await introspect(refreshToken);
    assert.equal(refreshActive.body.active, true);

    const refreshed = await token({ grant_type: 'refresh_token', refresh_token: refreshToken });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    const rotated = refreshed.body.refresh_token as string;
    assert.ok(rotated && rotated !== refreshToken, 'the refresh token rotates');
    const secondAccess = refreshed.body.access_token as string;
    assert.equal((await introspect(secondAccess)).body.active, true);

    const revoked = await postForm(
      `${server.issuer}/revoke_token/`,
      { token: secondAccess, token_type_hint: 'access_token' },
      { authorization: basicAuth(client.clientId, client.clientSecret) },
    );
    assert.equal(revoked.status, 200);
    assert.equal((await introspect(secondAccess)).body.active, false);

    const reuse = await token({ grant_type: 'refresh_token', refresh_token: refreshToken });
    assert.equal(reuse.status, 400);
    assert.equal(reuse.body.error, 'invalid_grant');
    const afterReuse = await token({ grant_type: 'refresh_token', refresh_token: rotated });
    assert.equal(
      afterReuse.body.error,
      'invalid_grant',
      'reuse of a rotated refresh token revoked the whole grant',
    );
    assert.equal((await introspect(accessToken)).body.active, false);
    assert.equal((await introspect(rotated)).body.active, false);
  });

  it('publishes token_issued, token_introspected and token_revoked audit events carrying digests only', async () => {
    const records: AuditRecord[] = [];
    const unsubscribe = server.app.audit.subscribe({
      name: 'test',
      receive: (record) => void records.push(record),
    });
    try {
      const before = (await server.app.metrics.tokensIssued.get()).values.reduce(
        (sum, value) => sum + value.value,
        0,
      );
      const browser = new Browser();
      const { code, verifier } = await codeFor(browser);
      const exchanged = await token({
        grant_type: 'authorization_code',
        code,
        redirect_uri: REDIRECT_URI,
        code_verifier: verifier,
      });
      const accessToken = exchanged.body.access_token as string;
      const refreshToken = exchanged.body.refresh_token as string;
      const { exp } = (await introspect(accessToken)).body as { exp: number };
      const { exp: refreshExp } = (await introspect(refreshToken)).body as { exp: number };
      await postForm(
        `${server.issuer}/revoke_token/`,
        { token: accessToken },
        { authorization: basicAuth(client.clientId, client.clientSecret) },
      );
      // Revoked now: inactive, and nothing says whose it was.
      assert.deepEqual((await introspect(accessToken)).body, { active: false });
      await server.app.audit.idle();
      const issued = records.filter((record) => record.kind === 'token_issued');
      assert.deepEqual(
        issued.map(
          (record) =>
            record.kind === 'token_issued' && [
              record.token_type,
              record.token_sha256,
              record.user_id,
              record.client_id,
            ],
        ),
        [
          ['access_token', sha256Hex(accessToken), user.id, client.clientId],
          ['refresh_token', sha256Hex(refreshToken), user.id, client.clientId],
        ],
      );
      // Its second, or the next one when the save was answered across a second's boundary.
      issued.forEach((record, index) => {
        const expected = [exp, refreshExp][index]! * 1000;
        assert.ok(
          record.kind === 'token_issued' &&
            record.expires_at >= expected &&
            record.expires_at <= expected + 1000,
          `token_issued names when its token expires (${String(record.kind === 'token_issued' && record.expires_at)}, ${expected})`,
        );
      });
      const introspections = records.flatMap((record) =>
        record.kind === 'token_introspected'
          ? [[record.introspector, record.token_sha256, record.active, record.client_id]]
          : [],
      );
      assert.deepEqual(introspections, [
        [client.clientId, sha256Hex(accessToken), true, client.clientId],
        [client.clientId, sha256Hex(refreshToken), true, client.clientId],
        [client.clientId, sha256Hex(accessToken), false, null],
      ]);
      const revoked = records.find((record) => record.kind === 'token_revoked');
      assert.ok(revoked && revoked.kind === 'token_revoked');
      assert.equal(revoked.reason, 'revocation_endpoint');
      assert.equal(revoked.token_sha256, sha256Hex(accessToken));
      const serialized = JSON.stringify(records);
      for (const secret of [accessToken, refreshToken, code, client.clientSecret])
        assert.ok(!serialized.includes(secret));
      const after = (await server.app.metrics.tokensIssued.get()).values.reduce(
        (sum, value) => sum + value.value,
        0,
      );
      assert.equal(after - before, 1, 'one access token issued');
      // The database keeps them too, but for the introspection (audit.databaseExclude's default).
      const digests = new Set([sha256Hex(accessToken), sha256Hex(refreshToken)]);
      const stored = (await server.app.auditStore.list({ clientId: client.clientId, limit: 1000 }))
        .filter((event) => digests.has(event.record.token_sha256 as string))
        .map((event) => event.kind)
        .sort();
      assert.deepEqual(stored, ['token_issued', 'token_issued', 'token_revoked']);
    } finally {
      unsubscribe();
    }
  });

  it('puts into the id_token what the claims parameter asks for, and nothing else', async () => {
    const browser = new Browser();
    const { code, verifier } = await codeFor(browser, {
      scope: 'openid email',
      claims: JSON.stringify({ id_token: { email: null, groups: { essential: true } } }),
    });
    const exchanged = await token({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
    });
    const { payload } = await jwtVerify(exchanged.body.id_token as string, jwks, { issuer: server.issuer });
    assert.equal(payload.email, `${user.username}@example.org`);
    assert.deepEqual(payload.groups, ['Fleet', 'Member']);
    assert.equal(payload.email_verified, undefined, 'only the claims asked for');
    assert.equal(payload.name, undefined);
  });

  it('refuses a replayed code and revokes what the code produced', async () => {
    const browser = new Browser();
    const { code, verifier } = await codeFor(browser);
    const form = {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
    };
    const first = await token(form);
    assert.equal(first.status, 200);
    const second = await token(form);
    assert.equal(second.status, 400);
    assert.equal(second.body.error, 'invalid_grant');
    assert.equal((await introspect(first.body.access_token as string)).body.active, false);
    assert.equal((await introspect(first.body.refresh_token as string)).body.active, false);
  });

  it('lets exactly one of concurrent redemptions of a code succeed', async () => {
    const browser = new Browser();
    const { code, verifier } = await codeFor(browser);
    const form = {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
    };
    const results = await Promise.all(Array.from({ length: 5 }, () => token(form)));
    assert.equal(results.filter((result) => result.status === 200).length, 1);
    for (const result of results.filter((r) => r.status !== 200)) {
      assert.equal(result.status, 400);
      assert.equal(result.body.error, 'invalid_grant');
    }
  });

  it('lets exactly one of concurrent refreshes with one refresh token succeed', async () => {
    const browser = new Browser();
    const { code, verifier } = await codeFor(browser);
    const exchanged = await token({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
    });
    assert.equal(exchanged.status, 200);
    const form = { grant_type: 'refresh_token', refresh_token: exchanged.body.refresh_token as string };
    const results = await Promise.all(Array.from({ length: 5 }, () => token(form)));
    assert.equal(results.filter((result) => result.status === 200).length, 1);
    for (const result of results.filter((r) => r.status !== 200)) {
      assert.equal(result.status, 400);
      assert.equal(result.body.error, 'invalid_grant');
    }
    // Only the rotation that consumed the token wrote rows: a refused one wrote none, not even revoked.
    const grantId = (
      await server.app.database.db
        .selectFrom('oidc_payload')
        .select('grant_id')
        .where('model', '=', 'RefreshToken')
        .where('id', '=', storageId(form.refresh_token))
        .executeTakeFirstOrThrow()
    ).grant_id!;
    const rows = await server.app.database.db
      .selectFrom('oidc_payload')
      .select('model')
      .where('grant_id', '=', grantId)
      .where('model', 'in', ['AccessToken', 'RefreshToken'])
      .execute();
    assert.deepEqual(
      rows.map((row) => row.model).sort(),
      ['AccessToken', 'AccessToken', 'RefreshToken', 'RefreshToken'],
      'the code exchange’s two tokens and the one rotation’s',
    );
  });

  it('refreshes with the scope the authorization asked, offline_access and unknown values left out; a scope not granted is refused', async () => {
    // As mod_auth_openidc and authlib do: the configured scope at authorization and again at every
    // refresh. Without prompt=consent the authorization passes offline_access over, and `phone` is
    // no scope of aa-oidc.
    const asked = 'openid email offline_access phone';
    const { code, verifier } = await codeFor(new Browser(), { scope: asked });
    const exchanged = await token({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
    });
    assert.equal(exchanged.status, 200);
    assert.equal(exchanged.body.scope, 'openid email');

    const refreshed = await token({
      grant_type: 'refresh_token',
      refresh_token: exchanged.body.refresh_token as string,
      scope: asked,
    });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    assert.equal(refreshed.body.scope, 'openid email');

    // Nothing left to ask for: the refresh token's whole scope, as without `scope`.
    const whole = await token({
      grant_type: 'refresh_token',
      refresh_token: refreshed.body.refresh_token as string,
      scope: 'offline_access',
    });
    assert.equal(whole.status, 200, JSON.stringify(whole.body));
    assert.equal(whole.body.scope, 'openid email');

    // A scope of aa-oidc's that was not granted is no more than before.
    const more = await token({
      grant_type: 'refresh_token',
      refresh_token: whole.body.refresh_token as string,
      scope: 'openid email profile offline_access',
    });
    assert.equal(more.status, 400);
    assert.equal(more.body.error, 'invalid_scope');
    assert.equal(more.body.scope, 'profile');
  });

  it('keeps offline_access granted with prompt=consent in the scope of every access token, refreshed or not', async () => {
    // OIDC Core §11: offline_access is granted with prompt=consent. The first access token carries
    // it, and so does each refreshed one, whether the RP sends its configured scope again (as
    // mod_auth_openidc and authlib do) or no scope at all (RFC 6749 §6: the original grant).
    const asked = 'openid email offline_access';
    const { code, verifier } = await codeFor(new Browser(), { scope: asked, prompt: 'consent' });
    const exchanged = await token({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
    });
    assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
    assert.equal(exchanged.body.scope, asked);
    assert.equal((await introspect(exchanged.body.access_token as string)).body.scope, asked);

    const again = await token({
      grant_type: 'refresh_token',
      refresh_token: exchanged.body.refresh_token as string,
      scope: asked,
    });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.scope, asked);
    assert.equal((await introspect(again.body.access_token as string)).body.scope, asked);

    const whole = await token({
      grant_type: 'refresh_token',
      refresh_token: again.body.refresh_token as string,
    });
    assert.equal(whole.status, 200, JSON.stringify(whole.body));
    assert.equal(whole.body.scope, asked);

    // Asking for less is still less (RFC 6749 §6), offline_access included.
    const narrower = await token({
      grant_type: 'refresh_token',
      refresh_token: whole.body.refresh_token as string,
      scope: 'openid offline_access',
    });
    assert.equal(narrower.status, 200, JSON.stringify(narrower.body));
    assert.equal(narrower.body.scope, 'openid offline_access');
  });

  it('skips the login page for a signed-in browser and the consent page once granted; prompt=consent forces it', async () => {
    const browser = new Browser();
    await codeFor(browser);
    const seen: NonNullable<SignInOptions['seen']> = [];
    await codeFor(browser, {}, { seen });
    assert.deepEqual(seen, []);
    const forced: NonNullable<SignInOptions['seen']> = [];
    await codeFor(browser, { prompt: 'consent' }, { seen: forced });
    assert.deepEqual(
      forced.map((page) => page.kind),
      ['consent'],
    );
    const again: NonNullable<SignInOptions['seen']> = [];
    await codeFor(browser, { prompt: 'login' }, { seen: again });
    assert.deepEqual(
      again.map((page) => page.kind),
      ['login'],
    );
  });

  it('answers access_denied when the user declines consent', async () => {
    const browser = new Browser();
    const response = await signIn(
      browser,
      server,
      authorizeUrl(server, {
        client_id: client.clientId,
        redirect_uri: REDIRECT_URI,
        response_type: 'code',
        scope: 'openid',
        state: 's1',
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
      }),
      { username: user.username, consent: 'deny' },
    );
    assert.equal(response.status, 303);
    const location = new URL(response.headers.get('location')!);
    assert.equal(location.searchParams.get('error'), 'access_denied');
    assert.equal(location.searchParams.get('state'), 's1');
  });

  it('issues no refresh token to an application without the refresh_token grant', async () => {
    const noRefresh = await seedApp(server, { grantTypes: ['authorization_code'], skipAuthorization: true });
    const browser = new Browser();
    const { verifier, challenge } = pkcePair();
    const response = await signIn(
      browser,
      server,
      authorizeUrl(server, {
        client_id: noRefresh.clientId,
        redirect_uri: REDIRECT_URI,
        response_type: 'code',
        scope: 'openid offline_access',
        prompt: 'login',
        code_challenge: challenge,
        code_challenge_method: 'S256',
      }),
      { username: user.username },
    );
    const code = new URL(response.headers.get('location')!).searchParams.get('code')!;
    const exchanged = await postForm(
      `${server.issuer}/token/`,
      { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier },
      { authorization: basicAuth(noRefresh.clientId, noRefresh.clientSecret!) },
    );
    assert.equal(exchanged.status, 200);
    assert.equal(exchanged.body.refresh_token, undefined);
    assert.ok(exchanged.body.access_token);
  });

  it('authenticates with client_secret_post too, and rejects a wrong secret', async () => {
    const browser = new Browser();
    const { code, verifier } = await codeFor(browser);
    const base = {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
    };
    const wrong = await postForm(`${server.issuer}/token/`, {
      ...base,
      client_id: client.clientId,
      client_secret: `${client.clientSecret}x`,
    });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error, 'invalid_client');
    const wrongBasic = await postForm(`${server.issuer}/token/`, base, {
      authorization: basicAuth(client.clientId, 'not-the-secret'),
    });
    assert.equal(wrongBasic.status, 401);
    assert.equal(wrongBasic.body.error, 'invalid_client');
    const digestAsSecret = await server.app.database.db
      .selectFrom('application')
      .select('client_secret_sha256')
      .where('client_id', '=', client.clientId)
      .executeTakeFirstOrThrow();
    const withDigest = await postForm(`${server.issuer}/token/`, base, {
      authorization: basicAuth(client.clientId, digestAsSecret.client_secret_sha256!),
    });
    assert.equal(withDigest.status, 401, 'the stored digest is not a secret');
    const right = await postForm(`${server.issuer}/token/`, {
      ...base,
      client_id: client.clientId,
      client_secret: client.clientSecret,
    });
    assert.equal(right.status, 200);
  });

  it('shows a 403 page to a signed-in user who may no longer use the application, and access_denied for prompt=none', async () => {
    const other = await seedUser(server);
    const browser = new Browser();
    const first = await signIn(
      browser,
      server,
      authorizeUrl(server, {
        client_id: client.clientId,
        redirect_uri: REDIRECT_URI,
        response_type: 'code',
        scope: 'openid',
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
      }),
      { username: other.username },
    );
    assert.equal(first.status, 303);
    // Losing the permission keeps the browser session (deactivation would end it).
    await server.app.directoryAdmin.updateUser({ id: other.id }, { oidcAccess: false });
    const seen: NonNullable<SignInOptions['seen']> = [];
    const denied = await signIn(
      browser,
      server,
      authorizeUrl(server, {
        client_id: client.clientId,
        redirect_uri: REDIRECT_URI,
        response_type: 'code',
        scope: 'openid',
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
      }),
      { seen },
    );
    assert.equal(denied.status, 403);
    assert.equal(denied.headers.get('x-frame-options'), 'DENY');
    assert.match(await denied.text(), /Access denied/);
    const silent = await browser.follow(
      authorizeUrl(server, {
        client_id: client.clientId,
        redirect_uri: REDIRECT_URI,
        response_type: 'code',
        scope: 'openid',
        prompt: 'none',
        state: 'quiet',
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
      }),
      server.origin,
    );
    assert.equal(silent.status, 303);
    const location = new URL(silent.headers.get('location')!);
    assert.equal(location.searchParams.get('error'), 'access_denied');
    assert.equal(location.searchParams.get('state'), 'quiet');
  });
});
