import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, type JWK } from 'jose';
import * as oidc from 'openid-client';
import type { AuditRecord } from '../../src/audit/events.ts';
import { sha256Hex } from '../../src/logging/secrets.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { basicAuth, postForm, REDIRECT_URI, type TestServer, startServer } from '../helpers/server.ts';
import {
  type Client,
  codeFlow,
  introspect,
  isActive,
  isJwt,
  type Pilot,
  seedClient,
  seedDirectory,
  seedPilot,
  userinfo,
  verifyAccessToken,
} from './helpers.ts';

/** The claims every JWT access token carries besides the identity claims. */
const REGISTERED = ['iss', 'aud', 'client_id', 'exp', 'iat', 'jti', 'scope', 'auth_time', 'sub'];

describe(`JWT access tokens, RFC 9068 (${testDatabaseKind})`, () => {
  let harness: LeakHarness;
  let server: TestServer;
  let jwtClient: Client;
  let opaqueClient: Client;
  let inheritClient: Client;
  let pilot: Pilot;

  before(async () => {
    harness = createLeakHarness();
    server = await startServer({ tokens: { jwtSizeWarnBytes: 1500 } }, { harness });
    await seedDirectory(server);
    pilot = await seedPilot(server, harness);
    jwtClient = await seedClient(server, harness, { accessTokenFormat: 'jwt' });
    opaqueClient = await seedClient(server, harness, { accessTokenFormat: 'opaque' });
    inheritClient = await seedClient(server, harness, { accessTokenFormat: 'inherit' });
  });
  after(async () => {
    await harness.assertNoLeaks();
    await server.close();
  });

  for (const scope of [
    'openid',
    'openid email',
    'openid profile',
    'openid groups',
    'openid profile email groups offline_access',
  ]) {
    it(`signs "${scope}" as at+jwt with RS256, the thumbprint kid, the JWT access-token claims and userinfo's identity claims`, async () => {
      const tokens = await codeFlow(server, harness, jwtClient, pilot, scope);
      assert.ok(isJwt(tokens.accessToken));
      const { payload, protectedHeader } = await verifyAccessToken(server, jwtClient, tokens.accessToken);
      assert.equal(protectedHeader.typ, 'at+jwt');
      assert.equal(protectedHeader.alg, 'RS256');
      const jwks = (await (await fetch(`${server.issuer}/.well-known/jwks.json`)).json()) as { keys: JWK[] };
      const key = jwks.keys.find((candidate) => candidate.kid === protectedHeader.kid);
      assert.ok(key, 'the kid names a published key');
      assert.equal(protectedHeader.kid, await calculateJwkThumbprint(key), 'kid is the RFC 7638 thumbprint');

      assert.equal(payload.iss, server.issuer);
      assert.equal(payload.aud, jwtClient.clientId);
      assert.equal(payload.client_id, jwtClient.clientId);
      assert.equal(payload.sub, String(pilot.id));
      assert.equal(payload.scope, tokens.scope);
      assert.equal(payload.exp! - payload.iat!, server.app.config.tokens.accessTokenTtl);
      assert.equal(typeof payload.jti, 'string');
      assert.equal(typeof payload.auth_time, 'number');
      assert.ok((payload.auth_time as number) <= payload.iat!);

      const info = await userinfo(server, tokens.accessToken);
      assert.equal(info.status, 200, 'userinfo accepts our JWT access token');
      const identity = Object.fromEntries(
        Object.entries(payload).filter(([name]) => !REGISTERED.includes(name)),
      );
      const { sub, ...userinfoIdentity } = info.body;
      assert.equal(sub, payload.sub);
      assert.deepEqual(identity, userinfoIdentity, 'the identity claims equal userinfo for the same scopes');
      assert.deepEqual(
        Object.keys(payload).sort(),
        [...REGISTERED, ...Object.keys(userinfoIdentity)].sort(),
        'exactly the JWT access-token claims',
      );
      if (scope.includes('profile')) assert.equal(payload.name, 'Jita Trader');
      if (scope.includes('groups')) assert.deepEqual(payload.groups, ['Fleet', 'Member']);
      if (scope === 'openid') assert.deepEqual(identity, {});

      const idClaims = decodeJwt(tokens.idToken!);
      assert.equal(idClaims.name, undefined, 'the id_token still carries no scope claims');
      assert.equal(idClaims.email, undefined);
    });
  }

  it('keeps opaque tokens for opaque and inheriting applications (default opaque) and advertises RS256', async () => {
    for (const client of [opaqueClient, inheritClient]) {
      const tokens = await codeFlow(server, harness, client, pilot, 'openid profile');
      assert.ok(!isJwt(tokens.accessToken), 'opaque');
      assert.equal((await userinfo(server, tokens.accessToken)).status, 200);
    }
    const discovery = (await (
      await fetch(`${server.issuer}/.well-known/openid-configuration`)
    ).json()) as Record<string, unknown>;
    assert.deepEqual(discovery.access_token_signing_alg_values_supported, ['RS256']);
  });

  it('tells of each access token in its format: token_issued carries it, aa_oidc_tokens_issued_total counts it', async () => {
    const records: AuditRecord[] = [];
    const unsubscribe = server.app.audit.subscribe({
      name: 'test',
      receive: (record) => void records.push(record),
    });
    try {
      await codeFlow(server, harness, jwtClient, pilot, 'openid');
      await codeFlow(server, harness, opaqueClient, pilot, 'openid');
      await server.app.audit.idle();
    } finally {
      unsubscribe();
    }
    const formats = (client: Client) =>
      records.flatMap((record) =>
        record.kind === 'token_issued' &&
        record.token_type === 'access_token' &&
        record.client_id === client.clientId
          ? [record.format]
          : [],
      );
    assert.deepEqual(formats(jwtClient), ['jwt']);
    assert.deepEqual(formats(opaqueClient), ['opaque']);
    const counted = (await server.app.metrics.tokensIssued.get()).values;
    const count = (client: Client, format: string) =>
      counted.find((sample) => sample.labels.client_id === client.clientId && sample.labels.format === format)
        ?.value ?? 0;
    assert.ok(count(jwtClient, 'jwt') >= 1 && count(jwtClient, 'opaque') === 0, JSON.stringify(counted));
    assert.ok(
      count(opaqueClient, 'opaque') >= 1 && count(opaqueClient, 'jwt') === 0,
      JSON.stringify(counted),
    );
  });

  it('introspects a JWT as active, revokes it at the revocation endpoint, and then refuses it everywhere', async () => {
    const config = await oidc.discovery(
      new URL(server.issuer),
      jwtClient.clientId,
      { redirect_uris: [REDIRECT_URI], response_types: ['code'] },
      oidc.ClientSecretBasic(jwtClient.clientSecret),
      { execute: [oidc.allowInsecureRequests] },
    );
    const tokens = await codeFlow(server, harness, jwtClient, pilot);
    const { payload } = await verifyAccessToken(server, jwtClient, tokens.accessToken);
    const active = await oidc.tokenIntrospection(config, tokens.accessToken);
    assert.equal(active.active, true);
    assert.equal(active.sub, String(pilot.id));
    assert.equal(active.client_id, jwtClient.clientId);
    assert.equal(active.jti, payload.jti);
    assert.equal(active.scope, tokens.scope);
    const issued = harness.auditRecords.find(
      (record) =>
        record.kind === 'token_issued' && record.token_type === 'access_token' && record.format === 'jwt',
    );
    assert.ok(issued, 'token_issued carries format jwt');
    const ownIssued = harness.auditRecords.find(
      (record) => record.kind === 'token_issued' && record.token_sha256 === sha256Hex(String(payload.jti)),
    );
    assert.ok(ownIssued && ownIssued.kind === 'token_issued' && ownIssued.format === 'jwt');
    await server.app.audit.idle();
    assert.ok(
      harness.auditRecords.some(
        (record) =>
          record.kind === 'token_introspected' &&
          record.token_sha256 === sha256Hex(String(payload.jti)) &&
          record.active,
      ),
      'token_introspected names the JWT as token_issued did',
    );

    await oidc.tokenRevocation(config, tokens.accessToken, { token_type_hint: 'access_token' });
    assert.equal((await oidc.tokenIntrospection(config, tokens.accessToken)).active, false);
    assert.equal((await userinfo(server, tokens.accessToken)).status, 401);
    // The signature still verifies: statefulness, not the signature, makes it inactive.
    await verifyAccessToken(server, jwtClient, tokens.accessToken);
  });

  /** The `token_sha256` of the last `token_introspected` of `introspector`, once the bus is idle. */
  const lastIntrospected = async (introspector: Client) => {
    await server.app.audit.idle();
    const events = harness.auditRecords.filter(
      (record) => record.kind === 'token_introspected' && record.introspector === introspector.clientId,
    );
    const last = events.at(-1);
    assert.ok(last && last.kind === 'token_introspected', 'a token_introspected event');
    return { tokenSha256: last.token_sha256, active: last.active };
  };

  it('names a revoked JWT at introspection by its jti, as token_issued and token_revoked did; a forged JWT claiming that jti by itself', async () => {
    const tokens = await codeFlow(server, harness, jwtClient, pilot);
    const jti = String(decodeJwt(tokens.accessToken).jti);
    const digest = sha256Hex(jti);
    const revoked = await postForm(
      `${server.issuer}/revoke_token/`,
      { token: tokens.accessToken, token_type_hint: 'access_token' },
      { authorization: basicAuth(jwtClient.clientId, jwtClient.clientSecret) },
    );
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    await server.app.audit.idle();
    assert.ok(
      harness.auditRecords.some((record) => record.kind === 'token_issued' && record.token_sha256 === digest),
      'token_issued names the JWT by the digest of its jti',
    );
    assert.ok(
      harness.auditRecords.some(
        (record) =>
          record.kind === 'token_revoked' &&
          record.token_sha256 === digest &&
          record.reason === 'revocation_endpoint',
      ),
      'token_revoked names it by the same digest',
    );

    assert.equal(await isActive(server, jwtClient, tokens.accessToken), false);
    assert.deepEqual(await lastIntrospected(jwtClient), { tokenSha256: digest, active: false });

    // The same header and claims (the real token's jti), another signature: not the token.
    const [header, body] = tokens.accessToken.split('.');
    const forged = `${header}.${body}.${'A'.repeat(342)}`;
    assert.equal(await isActive(server, jwtClient, forged), false);
    assert.deepEqual(await lastIntrospected(jwtClient), { tokenSha256: sha256Hex(forged), active: false });
  });

  it('names a JWT by its jti when the access policy answers it inactive (its application deactivated)', async () => {
    const deactivated = await seedClient(server, harness, { accessTokenFormat: 'jwt' });
    const resourceServer = await seedClient(server, harness, { accessTokenFormat: 'jwt' });
    const tokens = await codeFlow(server, harness, deactivated, pilot);
    const jti = String(decodeJwt(tokens.accessToken).jti);
    assert.equal(await isActive(server, resourceServer, tokens.accessToken), true);
    assert.deepEqual(await lastIntrospected(resourceServer), { tokenSha256: sha256Hex(jti), active: true });
    await server.app.applications.deactivate(deactivated.clientId, 'test');
    assert.equal(await isActive(server, resourceServer, tokens.accessToken), false);
    assert.deepEqual(await lastIntrospected(resourceServer), { tokenSha256: sha256Hex(jti), active: false });
  });

  it('finds a JWT only by the whole token: its jti alone, a tampered token or a foreign JWT is nothing', async () => {
    const tokens = await codeFlow(server, harness, jwtClient, pilot);
    const { payload } = await verifyAccessToken(server, jwtClient, tokens.accessToken);
    const jti = String(payload.jti);
    assert.equal((await userinfo(server, jti)).status, 401, 'the jti is no bearer token');
    assert.equal(await isActive(server, jwtClient, jti), false);
    const [header, body] = tokens.accessToken.split('.');
    const tampered = `${header}.${body}.${'A'.repeat(342)}`;
    assert.equal((await userinfo(server, tampered)).status, 401);
    assert.equal(await isActive(server, jwtClient, tampered), false);
    const foreign = `${header}.${Buffer.from(JSON.stringify({ ...payload, scope: 'openid email' })).toString('base64url')}.sig`;
    assert.equal(await isActive(server, jwtClient, foreign), false);
    assert.equal(await isActive(server, jwtClient, tokens.accessToken), true, 'the real one still is');
  });

  it('stays revocable through the refresh grant: a refreshed JWT is stored too', async () => {
    const tokens = await codeFlow(server, harness, jwtClient, pilot);
    const refreshed = await postForm(
      `${server.issuer}/token/`,
      { grant_type: 'refresh_token', refresh_token: tokens.refreshToken! },
      { authorization: basicAuth(jwtClient.clientId, jwtClient.clientSecret) },
    );
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    const second = String(refreshed.body.access_token);
    harness.registerSecret(second, 'refreshed access token');
    harness.registerSecret(String(refreshed.body.refresh_token), 'rotated refresh token');
    const { payload } = await verifyAccessToken(server, jwtClient, second);
    assert.equal(typeof payload.auth_time, 'number');
    assert.equal(payload.name, 'Jita Trader');
    assert.equal(await isActive(server, jwtClient, second), true);
  });

  it('turns a JWT inactive when its user is deactivated, and when the user loses the group that admitted them', async () => {
    const doomed = await seedPilot(server, harness);
    const tokens = await codeFlow(server, harness, jwtClient, doomed);
    assert.equal(await isActive(server, jwtClient, tokens.accessToken), true);
    await server.app.directoryAdmin.deactivate({ id: doomed.id });
    assert.equal(await isActive(server, jwtClient, tokens.accessToken), false);
    assert.equal(await isActive(server, jwtClient, tokens.refreshToken!), false);
    assert.equal((await userinfo(server, tokens.accessToken)).status, 401);
    const revoked = harness.auditRecords.filter(
      (record) => record.kind === 'token_revoked' && record.reason === 'user_deactivated',
    );
    assert.ok(revoked.length >= 2, 'token_revoked (user_deactivated) for the access and refresh token');

    // The access policy, enforced per request: an application whitelisting Fleet only.
    const fleetOnly = await seedClient(server, harness, { accessTokenFormat: 'jwt', groups: ['Fleet'] });
    const member = await seedPilot(server, harness, ['Fleet']);
    const fleetTokens = await codeFlow(server, harness, fleetOnly, member);
    assert.equal(await isActive(server, fleetOnly, fleetTokens.accessToken), true);
    await server.app.directoryAdmin.removeGroup({ id: member.id }, 'Fleet');
    assert.equal(await isActive(server, fleetOnly, fleetTokens.accessToken), false, 'no longer admitted');
    assert.equal((await userinfo(server, fleetTokens.accessToken)).status, 401);
  });

  it('issues client_credentials tokens as stored JWTs too (sub and aud are the client)', async () => {
    const machine = await seedClient(server, harness, {
      accessTokenFormat: 'jwt',
      grantTypes: ['client_credentials'],
      redirectUris: [],
    });
    const response = await postForm(
      `${server.issuer}/token/`,
      { grant_type: 'client_credentials' },
      { authorization: basicAuth(machine.clientId, machine.clientSecret) },
    );
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const token = String(response.body.access_token);
    harness.registerSecret(token, 'client credentials token');
    const { payload } = await verifyAccessToken(server, machine, token);
    assert.equal(payload.sub, machine.clientId);
    assert.equal(payload.client_id, machine.clientId);
    assert.equal(payload.auth_time, undefined);
    assert.equal(await isActive(server, machine, token), true);
    const revoked = await postForm(
      `${server.issuer}/revoke_token/`,
      { token },
      { authorization: basicAuth(machine.clientId, machine.clientSecret) },
    );
    assert.equal(revoked.status, 200);
    assert.equal(await isActive(server, machine, token), false);
  });

  it('logs a warning naming the client and the size, never the token, when a JWT exceeds tokens.jwtSizeWarnBytes', async () => {
    const many = Array.from({ length: 60 }, (_, index) => `Wing ${String(index).padStart(2, '0')}`);
    for (const name of many) await server.app.directoryAdmin.createGroup(name, false);
    const big = await seedPilot(server, harness, many);
    const tokens = await codeFlow(server, harness, jwtClient, big, 'openid groups');
    const size = Buffer.byteLength(tokens.accessToken);
    assert.ok(size > 1500, `the token is large (${size} bytes)`);
    await verifyAccessToken(server, jwtClient, tokens.accessToken);
    assert.equal((decodeJwt(tokens.accessToken).groups as string[]).length, 61, 'issued unchanged');
    const warning = harness.logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((line) => line.size_bytes === size);
    assert.ok(warning, 'a warning line with the size');
    assert.equal(warning.client_id, jwtClient.clientId);
    assert.equal(warning.level, 40);
    const small = await codeFlow(server, harness, jwtClient, pilot, 'openid');
    assert.ok(
      !harness.logLines.some((line) => line.includes(`"size_bytes":${Buffer.byteLength(small.accessToken)}`)),
      'no warning under the limit',
    );
    assert.equal(decodeProtectedHeader(small.accessToken).typ, 'at+jwt');
    assert.ok((await introspect(server, jwtClient, small.accessToken)).active);
  });
});

describe(`the global default access-token format (${testDatabaseKind})`, () => {
  let harness: LeakHarness;
  let server: TestServer;

  before(async () => {
    harness = createLeakHarness();
    server = await startServer({ tokens: { defaultAccessTokenFormat: 'jwt' } }, { harness });
    await seedDirectory(server);
  });
  after(async () => {
    await harness.assertNoLeaks();
    await server.close();
  });

  it('issues JWTs to inheriting applications and opaque tokens to those that override it', async () => {
    const pilot = await seedPilot(server, harness);
    const inheriting = await seedClient(server, harness);
    const opaque = await seedClient(server, harness, { accessTokenFormat: 'opaque' });
    const jwt = await codeFlow(server, harness, inheriting, pilot, 'openid email');
    await verifyAccessToken(server, inheriting, jwt.accessToken);
    const plain = await codeFlow(server, harness, opaque, pilot, 'openid email');
    assert.ok(!isJwt(plain.accessToken));
    assert.equal(await isActive(server, opaque, plain.accessToken), true);
  });
});
