import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import type { AuditRecord } from '../../src/audit/events.ts';
import { sha256Hex } from '../../src/logging/secrets.ts';
import { storageId } from '../../src/tokens/store.ts';
import { spawnCli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase, testDatabaseKind, type TestDatabase } from '../helpers/database.ts';
import { login } from '../helpers/flows.ts';
import { waitUntil } from '../helpers/wait.ts';
import { logoutJobs } from '../logout/jobs.ts';
import {
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
  startServer,
  type TestServer,
} from '../helpers/server.ts';

interface Tokens {
  access_token: string;
  refresh_token: string;
  id_token: string;
}

/**
 * Scaling out: several stateless instances behind a load balancer, one database. Two app instances
 * here, in one process, on one database (on SQLite the same file, in WAL mode) with the same
 * configuration except the port; both serve one issuer, as behind a load balancer, and requests go
 * to either instance directly.
 */
describe(`two instances on one database (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  let client: { clientId: string; clientSecret: string };
  let user: { id: number; username: string };

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    // keys.reloadIntervalMs: how often an instance looks for a rotation made elsewhere (default 2 s).
    // Back-channel logouts to loopback may be queued (nothing delivers them: no worker runs here).
    const settings = { keys: { reloadIntervalMs: 200 }, logout: { allowPrivateTargets: true } };
    // B serves A's issuer, as instances behind one load balancer do.
    a = await startServer(settings, { database });
    b = await startServer({ ...settings, issuer: a.issuer }, { database });
    for (const instance of [a, b]) {
      instance.app.audit.subscribe({ name: 'test', receive: (record) => void published.push(record) });
    }
    user = await seedUser(a);
    const seeded = await seedApp(a);
    client = { clientId: seeded.clientId, clientSecret: seeded.clientSecret! };
  });
  after(async () => {
    await Promise.allSettled([a?.close(), b?.close()]);
    await database?.drop();
  });

  /** The same path on another instance (what a load balancer without sticky sessions does). */
  const on = (instance: TestServer, url: string): string => {
    const target = new URL(url);
    const base = new URL(instance.origin);
    target.protocol = base.protocol;
    target.host = base.host;
    return target.href;
  };
  const isOnEither = (url: string) => [a.origin, b.origin].some((origin) => url.startsWith(`${origin}/`));

  /**
   * Authorize → login → consent with every request sent to the next instance in `route` (cycling),
   * so that an interaction begun on one instance continues on the other. Returns the code.
   */
  async function codeAcross(
    route: TestServer[],
    browser = new Browser(),
  ): Promise<{ code: string; verifier: string; nonce: string; pages: string[] }> {
    const { verifier, challenge } = pkcePair();
    const nonce = randomBytes(8).toString('hex');
    const state = randomBytes(8).toString('hex');
    let hop = 0;
    const next = () => route[hop++ % route.length]!;
    const params = new URLSearchParams({
      client_id: client.clientId,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      scope: 'openid email',
      state,
      nonce,
      code_challenge: challenge,
      code_challenge_method: 'S256',
    });
    let url = on(next(), `${a.issuer}/authorize/?${params}`);
    let response = await browser.fetch(url);
    const pages: string[] = [];
    for (let step = 0; step < 20; step += 1) {
      if (response.status >= 300 && response.status < 400) {
        const location = new URL(response.headers.get('location')!, url).href;
        if (!isOnEither(location)) {
          const callback = new URL(location);
          assert.equal(`${callback.origin}${callback.pathname}`, REDIRECT_URI);
          assert.equal(callback.searchParams.get('state'), state);
          const code = callback.searchParams.get('code');
          assert.ok(code, `a code, not ${callback.searchParams.get('error')}`);
          return { code, verifier, nonce, pages };
        }
        url = on(next(), location);
        response = await browser.fetch(url);
        continue;
      }
      const body = await response.text();
      assert.equal(response.status, 200, `page at ${new URL(url).pathname}`);
      const form = new URLSearchParams({ csrf_token: formField(body, 'csrf_token') });
      if (body.includes('name="password"')) {
        pages.push('login');
        form.set('username', user.username);
        form.set('password', PASSWORD);
      } else {
        assert.match(body, /name="decision"/);
        pages.push('consent');
        form.set('decision', 'allow');
      }
      url = on(next(), formAction(body, a.origin));
      response = await browser.fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
      });
    }
    throw new Error('the authorization did not finish');
  }

  const token = (instance: TestServer, form: Record<string, string>) =>
    postForm(`${instance.origin}/o/token/`, form, {
      authorization: basicAuth(client.clientId, client.clientSecret),
    });
  const redeem = async (instance: TestServer, code: string, verifier: string): Promise<Tokens> => {
    const exchanged = await token(instance, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
    });
    assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
    return exchanged.body as unknown as Tokens;
  };
  const introspect = async (instance: TestServer, value: string) =>
    (
      await postForm(
        `${instance.origin}/o/introspect/`,
        { token: value },
        { authorization: basicAuth(client.clientId, client.clientSecret) },
      )
    ).body;
  const jwksOf = async (instance: TestServer): Promise<JSONWebKeySet> => {
    const response = await fetch(`${instance.origin}/o/.well-known/jwks.json`);
    assert.equal(response.status, 200);
    return (await response.json()) as JSONWebKeySet;
  };
  const kidsOf = async (instance: TestServer) => (await jwksOf(instance)).keys.map((key) => key.kid!);

  it('continues an interaction begun on one instance on the other, and redeems a code issued by A at B', async () => {
    const { code, verifier, nonce, pages } = await codeAcross([a, b]);
    assert.deepEqual(pages, ['login', 'consent'], 'the login page came from A, the consent page from B');

    const tokens = await redeem(b, code, verifier);
    const { payload } = await jwtVerify(tokens.id_token, createLocalJWKSet(await jwksOf(a)), {
      issuer: a.issuer,
      audience: client.clientId,
    });
    assert.equal(payload.sub, String(user.id));
    assert.equal(payload.nonce, nonce);

    const userinfo = await fetch(`${a.origin}/o/userinfo/`, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    assert.equal(userinfo.status, 200, 'a token issued by B reads userinfo at A');
    assert.equal(((await userinfo.json()) as { email?: string }).email, `${user.username}@example.org`);
    assert.equal((await introspect(a, tokens.access_token)).active, true);

    const replay = await token(a, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
    });
    assert.equal(replay.status, 400, 'the code, spent at B, is spent at A too');
    assert.equal(replay.body.error, 'invalid_grant');
    assert.equal(
      (await introspect(b, tokens.access_token)).active,
      false,
      'and the replay revoked the grant',
    );
  });

  it('refreshes at one instance what the other issued, and a replay of the rotated token at the other revokes the grant', async () => {
    const { code, verifier } = await codeAcross([b]);
    const first = await redeem(a, code, verifier);
    const rotated = await token(b, { grant_type: 'refresh_token', refresh_token: first.refresh_token });
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    const second = rotated.body as unknown as Tokens;
    assert.notEqual(second.refresh_token, first.refresh_token);
    assert.equal((await introspect(a, second.access_token)).active, true);

    const reuse = await token(a, { grant_type: 'refresh_token', refresh_token: first.refresh_token });
    assert.equal(reuse.body.error, 'invalid_grant');
    assert.equal((await introspect(b, second.access_token)).active, false);
    assert.equal((await introspect(b, second.refresh_token)).active, false);
  });

  /** The audit records of both instances, in the order published. */
  const published: AuditRecord[] = [];
  /**
   * What a replay left behind: its answer, whether its grant is still stored, the state of the
   * grant's codes and tokens, and the audit records published since `from`, without ids and times.
   */
  async function replayAftermath(
    answer: { status: number; body: Record<string, unknown> },
    grantId: string,
    from: number,
  ) {
    await Promise.all([a.app.audit.idle(), b.app.audit.idle()]);
    const db = a.app.database.db;
    const grant = await db
      .selectFrom('oidc_payload')
      .select('id')
      .where('model', '=', 'Grant')
      .where('id', '=', storageId(grantId))
      .executeTakeFirst();
    const rows = await db
      .selectFrom('oidc_payload')
      .select(['model', 'consumed_at', 'revoked_reason'])
      .where('grant_id', '=', grantId)
      .execute();
    return {
      answer: { status: answer.status, error: answer.body.error },
      grantStored: grant !== undefined,
      rows: rows
        .map(
          (row) =>
            `${row.model} ${row.consumed_at === null ? 'unused' : 'used'} ${row.revoked_reason ?? 'live'}`,
        )
        .sort(),
      audit: published
        .slice(from)
        .map((record) =>
          [
            record.kind,
            'reason' in record ? record.reason : '',
            'token_type' in record ? record.token_type : '',
          ]
            .filter(Boolean)
            .join(' '),
        )
        .sort(),
    };
  }
  const grantOf = async (model: 'RefreshToken' | 'AuthorizationCode', value: string) =>
    (
      await a.app.database.db
        .selectFrom('oidc_payload')
        .select('grant_id')
        .where('model', '=', model)
        .where('id', '=', storageId(value))
        .executeTakeFirstOrThrow()
    ).grant_id!;

  it('answers a replay of a refresh token at the instance that wrote it, after the other rotated it, as the other would', async () => {
    const refresh = (instance: TestServer, value: string) =>
      token(instance, { grant_type: 'refresh_token', refresh_token: value });
    /** A refreshes `first` (written by A), then `replayAt` presents it again; returns the aftermath. */
    const scenario = async (rotateAt: TestServer, replayAt: TestServer) => {
      const { code, verifier } = await codeAcross([a]);
      const first = await redeem(a, code, verifier);
      const grantId = await grantOf('RefreshToken', first.refresh_token);
      const rotated = await refresh(rotateAt, first.refresh_token);
      assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
      await Promise.all([a.app.audit.idle(), b.app.audit.idle()]);
      const from = published.length;
      const replay = await refresh(replayAt, first.refresh_token);
      const second = rotated.body as unknown as Tokens;
      assert.equal((await introspect(a, second.access_token)).active, false);
      assert.equal((await introspect(b, second.refresh_token)).active, false);
      return replayAftermath(replay, grantId, from);
    };
    // Rotated at B and replayed at A, which wrote it and still holds it as unused in memory.
    const fromMemory = await scenario(b, a);
    // Rotated at A (which took it from memory) and replayed at B, which reads it from the database.
    const fromDatabase = await scenario(a, b);
    assert.deepEqual(fromMemory, fromDatabase);
    assert.deepEqual(fromMemory.answer, { status: 400, error: 'invalid_grant' });
    assert.equal(fromMemory.grantStored, false, 'the grant is gone, as the provider does on a reuse');
    assert.ok(
      fromMemory.rows.every((row) => !row.endsWith(' live')),
      `every code and token of the grant revoked: ${fromMemory.rows.join(', ')}`,
    );
  });

  it('answers a replay of a code at the instance that wrote it, after the other redeemed it, as the other would', async () => {
    const exchange = (instance: TestServer, code: string, verifier: string) =>
      token(instance, {
        grant_type: 'authorization_code',
        code,
        redirect_uri: REDIRECT_URI,
        code_verifier: verifier,
      });
    const scenario = async (redeemAt: TestServer, replayAt: TestServer) => {
      const { code, verifier } = await codeAcross([a]);
      const grantId = await grantOf('AuthorizationCode', code);
      const tokens = await redeem(redeemAt, code, verifier);
      await Promise.all([a.app.audit.idle(), b.app.audit.idle()]);
      const from = published.length;
      const replay = await exchange(replayAt, code, verifier);
      assert.equal((await introspect(a, tokens.access_token)).active, false);
      assert.equal((await introspect(b, tokens.refresh_token)).active, false);
      const reuse = await a.app.database.db
        .selectFrom('issued_code')
        .select('reuse_count')
        .where('code_hash', '=', sha256Hex(code))
        .executeTakeFirstOrThrow();
      return { ...(await replayAftermath(replay, grantId, from)), reuseCount: reuse.reuse_count };
    };
    // Redeemed at B and replayed at A, which wrote the code and still holds it as unused in memory.
    const fromMemory = await scenario(b, a);
    // Redeemed at A (which took it from memory) and replayed at B, which reads it from the database.
    const fromDatabase = await scenario(a, b);
    assert.deepEqual(fromMemory, fromDatabase);
    assert.deepEqual(fromMemory.answer, { status: 400, error: 'invalid_grant' });
    assert.equal(fromMemory.reuseCount, 1);
    assert.equal(fromMemory.grantStored, false, 'the grant is gone, as the provider does on a reuse');
    assert.ok(fromMemory.audit.includes('code_reuse_detected'), fromMemory.audit.join(', '));
    assert.ok(
      fromMemory.rows.every((row) => !row.endsWith(' live')),
      `every code and token of the grant revoked: ${fromMemory.rows.join(', ')}`,
    );
  });

  it('tells of each token of a code redeemed at both instances at once revoked exactly once', async () => {
    const { code, verifier } = await codeAcross([a]);
    await Promise.all([a.app.audit.idle(), b.app.audit.idle()]);
    const from = published.length;
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, index) =>
        token(index % 2 === 0 ? a : b, {
          grant_type: 'authorization_code',
          code,
          redirect_uri: REDIRECT_URI,
          code_verifier: verifier,
        }),
      ),
    );
    const winners = answers.filter((answer) => answer.status === 200);
    assert.equal(
      winners.length,
      1,
      `exactly one success: ${answers.map((answer) => answer.status).join(',')}`,
    );
    const tokens = winners[0]!.body as unknown as Tokens;
    assert.equal((await introspect(a, tokens.access_token)).active, false);
    assert.equal((await introspect(b, tokens.refresh_token)).active, false);
    await Promise.all([a.app.audit.idle(), b.app.audit.idle()]);
    const told = published
      .slice(from)
      .flatMap((record) => (record.kind === 'token_revoked' ? [`${record.token_type} ${record.reason}`] : []))
      .sort();
    assert.deepEqual(told, ['access_token code_reuse', 'refresh_token code_reuse'], 'once per token');
    assert.equal(
      published.slice(from).filter((record) => record.kind === 'code_reuse_detected').length,
      9,
      'one code_reuse_detected per refused redemption',
    );
  });

  it('serves a key rotation made through A from B within seconds: new kid in B’s JWKS and id_tokens, old id_tokens still verify', async () => {
    const browser = new Browser();
    const before = await codeAcross([a], browser).then(({ code, verifier }) => redeem(b, code, verifier));
    const oldKid = decodeProtectedHeader(before.id_token).kid!;
    const kidsBefore = await kidsOf(b);
    assert.ok(kidsBefore.includes(oldKid));

    const rotation = await a.app.keys.rotate({ force: true });
    assert.equal(rotation.retiredKid, oldKid);
    const newKid = rotation.activatedKid!;
    const nextKid = rotation.nextKid!;
    assert.ok(!kidsBefore.includes(nextKid), 'the new next key is not yet published anywhere');

    // B learns of the rotation only through the database. The newly active key was already published
    // (as the next key) before the rotation, so B's reload shows by the next key the rotation created;
    // polled, not timed (the reload interval here is 200 ms).
    const deadline = Date.now() + 15_000;
    let kids = await kidsOf(b);
    while (!kids.includes(nextKid) && Date.now() < deadline) {
      await sleep(100);
      kids = await kidsOf(b);
    }
    assert.ok(kids.includes(nextKid), 'B reloaded the signing keys within 15 s');
    assert.ok(kids.includes(newKid), 'B publishes the new active key');
    assert.ok(kids.includes(oldKid), 'B still publishes the retired key');

    const jwksB = createLocalJWKSet(await jwksOf(b));
    const { protectedHeader } = await jwtVerify(before.id_token, jwksB, {
      issuer: a.issuer,
      audience: client.clientId,
    });
    assert.equal(
      protectedHeader.kid,
      oldKid,
      'an id_token signed before the rotation verifies against B’s JWKS',
    );

    const fresh = await codeAcross([a], browser).then(({ code, verifier }) => redeem(b, code, verifier));
    assert.equal(decodeProtectedHeader(fresh.id_token).kid, newKid, 'B signs new id_tokens with the new key');
    await jwtVerify(fresh.id_token, jwksB, { issuer: a.issuer, audience: client.clientId });

    const refreshed = await token(b, { grant_type: 'refresh_token', refresh_token: before.refresh_token });
    assert.equal(refreshed.status, 200, 'a refresh token from before the rotation still works');
    const refreshedIdToken = refreshed.body.id_token as string;
    assert.equal(decodeProtectedHeader(refreshedIdToken).kid, newKid);
    await jwtVerify(refreshedIdToken, jwksB, { issuer: a.issuer, audience: client.clientId });
  });

  it('refuses at B, on the very next request, an application deactivated through A or by a CLI command in another process, and follows its secret and whitelists', async () => {
    // A machine client of its own, so that the other tests keep theirs.
    const machine = await seedApp(a, { grantTypes: ['client_credentials'], redirectUris: [] });
    const secret = { current: machine.clientSecret! };
    const machineToken = (instance: TestServer) =>
      postForm(
        `${instance.origin}/o/token/`,
        { grant_type: 'client_credentials' },
        {
          authorization: basicAuth(machine.clientId, secret.current),
        },
      );
    const machineIntrospect = (instance: TestServer, value: string) =>
      postForm(
        `${instance.origin}/o/introspect/`,
        { token: value },
        {
          authorization: basicAuth(machine.clientId, secret.current),
        },
      );
    const userinfoAt = (instance: TestServer, accessToken: string) =>
      fetch(`${instance.origin}/o/userinfo/`, { headers: { authorization: `Bearer ${accessToken}` } });

    // Both instances hold the applications in memory now.
    const issued = await machineToken(b);
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const machineAccess = issued.body.access_token as string;
    assert.equal((await machineIntrospect(a, machineAccess)).body.active, true);
    const { code, verifier } = await codeAcross([a]);
    const tokens = await redeem(b, code, verifier);
    assert.equal((await userinfoAt(b, tokens.access_token)).status, 200);
    assert.equal((await introspect(b, tokens.access_token)).active, true);

    // Deactivated through A: B refuses the next token request and introspection.
    await a.app.applications.deactivate(machine.clientId, 'test');
    const refused = await machineToken(b);
    assert.equal(refused.status, 401, JSON.stringify(refused.body));
    assert.equal(refused.body.error, 'invalid_client');
    assert.equal((await machineIntrospect(b, machineAccess)).status, 401);
    await a.app.applications.activate(machine.clientId, 'test');
    assert.equal((await machineIntrospect(b, machineAccess)).body.active, true);

    // A new secret through A: B refuses the old one at once and takes the new one.
    const rotated = await a.app.applications.rotateSecret(machine.clientId, 'test');
    const old = secret.current;
    secret.current = rotated.clientSecret!;
    assert.equal((await machineToken(b)).status, 200);
    secret.current = old;
    assert.equal((await machineToken(b)).status, 401);
    secret.current = rotated.clientSecret!;

    // A whitelist the user is not in, through A: B refuses the user's token at once (the user lost
    // the application, and with it the tokens there). Open again through A: B admits the user's
    // next sign-in at once.
    await a.app.directoryAdmin.createGroup('Capitals', false, { actor: 'test' });
    await a.app.applications.update(client.clientId, { groups: ['Capitals'] }, 'test');
    assert.equal((await userinfoAt(b, tokens.access_token)).status, 401);
    assert.equal((await introspect(b, tokens.access_token)).active, false);
    await a.app.applications.update(client.clientId, { groups: [] }, 'test');
    const again = await codeAcross([a]);
    Object.assign(tokens, await redeem(b, again.code, again.verifier));
    assert.equal((await userinfoAt(b, tokens.access_token)).status, 200);

    // `aa-oidc app deactivate` in a process of its own, on the same database (the same SQLite file).
    const deactivated = await spawnCli(['app', 'deactivate', client.clientId], testEnv(database));
    assert.equal(deactivated.code, 0, deactivated.stderr);
    assert.equal((await userinfoAt(a, tokens.access_token)).status, 401);
    assert.equal((await userinfoAt(b, tokens.access_token)).status, 401);
    const introspected = await postForm(
      `${b.origin}/o/introspect/`,
      { token: tokens.access_token },
      { authorization: basicAuth(client.clientId, client.clientSecret) },
    );
    assert.equal(introspected.status, 401, JSON.stringify(introspected.body));
    const reactivated = await spawnCli(['app', 'activate', client.clientId], testEnv(database));
    assert.equal(reactivated.code, 0, reactivated.stderr);
    assert.equal((await userinfoAt(b, tokens.access_token)).status, 200);
    assert.equal((await introspect(a, tokens.access_token)).active, true);
  });

  it("refuses at B, on the very next request, a user whose state's access was turned off through A: userinfo, introspection and refresh", async () => {
    // A user with no access of their own: the state alone lets them in.
    await a.app.directoryAdmin.createState('Reservists', 40, true, { actor: 'test' });
    const reservist = await seedUser(a, { oidcAccess: false });
    await a.app.directoryAdmin.setState({ id: reservist.id }, 'Reservists', { actor: 'test' });
    const tokens = await login(a, client, reservist.username, { scope: 'openid' });
    const userinfoAt = async (instance: TestServer) =>
      (
        await fetch(`${instance.origin}/o/userinfo/`, {
          headers: { authorization: `Bearer ${tokens.accessToken}` },
        })
      ).status;
    // Twice at B: the second answer comes from the profile B keeps in memory.
    for (let round = 0; round < 2; round += 1) {
      assert.equal(await userinfoAt(b), 200);
      assert.equal((await introspect(b, tokens.accessToken)).active, true);
    }

    await a.app.directoryAdmin.grantStateAccess('Reservists', false, { actor: 'test' });
    assert.equal(await userinfoAt(b), 401, 'userinfo at B refuses the access token');
    assert.equal((await introspect(b, tokens.accessToken)).active, false);
    const refreshed = await token(b, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken });
    assert.equal(refreshed.body.error, 'invalid_grant', 'and B refuses the refresh token');
  });

  /**
   * A user signed in at an application that hears of logouts, at the sign-out question ("Sign out?")
   * its logout request led to: `confirm` posts "Yes, sign me out" to an instance.
   */
  async function atSignOutQuestion(name: string) {
    const rp = await seedApp(a, {
      name,
      skipAuthorization: true,
      backchannelLogoutUri: 'http://127.0.0.1:9/backchannel',
    });
    const signedIn = await login(
      a,
      { clientId: rp.clientId, clientSecret: rp.clientSecret! },
      user.username,
      {
        scope: 'openid',
      },
    );
    const question = await signedIn.browser.fetch(
      `${a.issuer}/logout?${new URLSearchParams({
        id_token_hint: signedIn.idToken!,
        post_logout_redirect_uri: 'https://rp.example.org/bye',
      })}`,
    );
    assert.equal(question.status, 200);
    const page = await question.text();
    const action = formAction(page, a.origin);
    const confirm = async (instance: TestServer) => {
      const answer = await signedIn.browser.fetch(on(instance, action), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ xsrf: formField(page, 'xsrf'), logout: 'yes' }).toString(),
      });
      await answer.arrayBuffer();
      return answer.status;
    };
    const { sid } = JSON.parse(Buffer.from(signedIn.idToken!.split('.')[1]!, 'base64url').toString()) as {
      sid: string;
    };
    /** The back-channel logouts queued for the application, the session's sid named as such. */
    const queued = async () =>
      (await logoutJobs(a.app.database, { clientId: rp.clientId })).map(
        (job) => `${job.trigger} ${job.sid === sid ? 'the session' : job.sid}`,
      );
    return { confirm, queued };
  }

  /**
   * Runs `confirmations` while a connection of the test's own holds the user's live sessions' rows
   * locked, until `waiting` of them wait to end the session (each has loaded it by then); `then`
   * runs in the locking transaction before it commits.
   */
  async function holdingSessions<T>(
    confirmations: () => Promise<T>,
    waiting: number,
    then: (locker: pg.Client) => Promise<void> = async () => undefined,
    userId = user.id,
  ): Promise<T> {
    const locker = new pg.Client({ connectionString: database.url });
    await locker.connect();
    try {
      await locker.query('begin');
      const locked = await locker.query(
        `select id from oidc_payload where model = 'Session' and user_id = $1 and revoked_at is null for update`,
        [String(userId)],
      );
      assert.ok(locked.rowCount! >= 1, 'the session rows are locked');
      const answers = confirmations();
      await waitUntil(async () => {
        const { rows } = await locker.query<{ waiting: number }>(
          "select count(*)::int as waiting from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
        );
        return rows[0]!.waiting >= waiting;
      }, `${waiting} request(s) wait to end the session`);
      await then(locker);
      await locker.query('commit');
      return await answers;
    } finally {
      await locker.end();
    }
  }

  const heldAtTheRowLock = {
    skip:
      testDatabaseKind !== 'postgres' &&
      "holds the sign-outs at the session's row lock, taken from a connection of the test's own (PostgreSQL's row locks)",
  };

  it(
    'tells the applications of a session once when its sign-out is confirmed twice at once, at A and at B',
    heldAtTheRowLock,
    async () => {
      // A double click on "Yes, sign me out" behind a load balancer without stickiness: both posts
      // load the session before either ends it.
      const { confirm, queued } = await atSignOutQuestion('Signed out twice');
      await holdingSessions(() => Promise.all([confirm(a), confirm(b)]), 2);
      assert.deepEqual(
        await queued(),
        ['rp_initiated the session'],
        'one back-channel logout for the session, not one per confirmation',
      );
    },
  );

  it(
    'queues no logout of its own for a sign-out confirmed after another sign-out ended the session',
    heldAtTheRowLock,
    async () => {
      const { confirm, queued } = await atSignOutQuestion('Signed out everywhere meanwhile');
      // The confirmation at B has loaded the session when "sign out everywhere" ends it (as
      // `endUserSessions` does; that sign-out tells the applications itself).
      const status = await holdingSessions(
        () => confirm(b),
        1,
        async (locker) => {
          await locker.query(
            `update oidc_payload set revoked_at = $1, revoked_reason = 'user_revoked'
            where model = 'Session' and user_id = $2 and revoked_at is null`,
            [Date.now(), String(user.id)],
          );
        },
      );
      assert.equal(status, 303, 'the browser still goes where the sign-out leads');
      assert.deepEqual(await queued(), [], 'the sign-out that ended the session told the applications');
    },
  );

  it(
    'tells the applications once when a user is signed out everywhere twice at once, through A and through B',
    heldAtTheRowLock,
    async () => {
      // "Sign out everywhere" posted twice (a double click, balanced onto both instances) for a user
      // signed in whose tokens there are no longer live: nothing else holds the two apart.
      const rp = await seedApp(a, {
        name: 'Signed out everywhere twice',
        skipAuthorization: true,
        backchannelLogoutUri: 'http://127.0.0.1:9/backchannel',
      });
      const pilot = await seedUser(a);
      await login(a, { clientId: rp.clientId, clientSecret: rp.clientSecret! }, pilot.username, {
        scope: 'openid',
      });
      await a.app.tokens.revokeApplication(pilot.id, rp.clientId);
      const before = (await logoutJobs(a.app.database, { clientId: rp.clientId })).length;
      await holdingSessions(
        () =>
          Promise.all([
            a.app.tokens.signOutUser(pilot.username, { actor: 'test' }),
            b.app.tokens.signOutUser(pilot.username, { actor: 'test' }),
          ]),
        2,
        async () => undefined,
        pilot.id,
      );
      const jobs = (await logoutJobs(a.app.database, { clientId: rp.clientId })).slice(before);
      assert.deepEqual(
        jobs.map((job) => `${job.trigger} ${job.user_id === pilot.id ? 'the user' : job.user_id}`),
        ['user_revoked the user'],
        'one back-channel logout, not one per sign-out',
      );
    },
  );
  it(
    'tells the applications once when a new password is set while the user is signed out everywhere',
    heldAtTheRowLock,
    async () => {
      // The sign-out (at A) has read the user's sessions and waits to end them when the password
      // changes (at B): the change reads them once the sign-out committed, and finds none left.
      const rp = await seedApp(a, {
        name: 'Signed out while the password changes',
        skipAuthorization: true,
        backchannelLogoutUri: 'http://127.0.0.1:9/backchannel',
      });
      const pilot = await seedUser(a);
      await login(a, { clientId: rp.clientId, clientSecret: rp.clientSecret! }, pilot.username, {
        scope: 'openid',
      });
      const before = (await logoutJobs(a.app.database, { clientId: rp.clientId })).length;
      const waitingForLocks = async (count: number, what: string, locker: pg.Client) =>
        waitUntil(async () => {
          const { rows } = await locker.query<{ waiting: number }>(
            "select count(*)::int as waiting from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
          );
          return rows[0]!.waiting >= count;
        }, what);
      await holdingSessions(
        async () => {
          const signOut = a.app.tokens.signOutUser(pilot.username, { actor: 'test' });
          const locker = new pg.Client({ connectionString: database.url });
          await locker.connect();
          try {
            await waitingForLocks(1, 'the sign-out waits to end the sessions', locker);
          } finally {
            await locker.end();
          }
          const change = b.app.directoryAdmin.setPassword({ id: pilot.id }, `${PASSWORD} again`, {
            actor: 'test',
          });
          return Promise.all([signOut, change]);
        },
        2,
        async () => undefined,
        pilot.id,
      );
      const jobs = (await logoutJobs(a.app.database, { clientId: rp.clientId })).slice(before);
      assert.deepEqual(
        jobs.map((job) => `${job.trigger} ${job.user_id === pilot.id ? 'the user' : job.user_id}`),
        ['user_revoked the user'],
        'one back-channel logout: the sessions the sign-out ended are not announced again',
      );
    },
  );
});
