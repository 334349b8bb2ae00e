import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify, type JWTPayload, type JWTVerifyResult } from 'jose';
import type { ApplicationInput } from '../../src/applications/types.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import * as flows from '../helpers/flows.ts';
import type { Client } from '../helpers/flows.ts';
import { Browser, PASSWORD, REDIRECT_URI, startServer, type TestServer } from '../helpers/server.ts';

export type { Client };

export interface Pilot {
  id: number;
  username: string;
}

/** The Member state (oidc_access) and a Fleet group, once per server. */
export async function seedDirectory(server: TestServer): Promise<void> {
  await server.app.directoryAdmin.createState('Member', 100, true);
  await server.app.directoryAdmin.createGroup('Fleet', false);
  await server.app.directoryAdmin.createGroup('Capitals', false);
}

export async function seedPilot(
  server: TestServer,
  harness: LeakHarness,
  groups = ['Fleet'],
): Promise<Pilot> {
  const username = `pilot${randomBytes(3).toString('hex')}`;
  const profile = await server.app.directoryAdmin.createUser({
    username,
    password: PASSWORD,
    email: `${username}@example.org`,
    emailVerified: true,
    state: 'Member',
    groups,
    characterId: 90000001,
    characterName: 'Jita Trader',
    corporationId: 98000001,
    corporationName: 'Test Corp',
    corporationTicker: 'TCRP',
    allianceId: 99000001,
    allianceName: 'Test Alliance',
    allianceTicker: 'TALL',
    locale: 'en',
  });
  harness.registerSecret(PASSWORD, 'user password');
  return { id: profile.user.id, username };
}

export async function seedClient(
  server: TestServer,
  harness: LeakHarness,
  input: Partial<ApplicationInput> = {},
): Promise<Client> {
  const created = await server.app.applications.create(
    { name: 'Token RP', redirectUris: [REDIRECT_URI], ...input },
    'test',
  );
  harness.registerSecret(created.clientSecret!, `client secret of ${created.application.clientId}`);
  return { clientId: created.application.clientId, clientSecret: created.clientSecret! };
}

/** A server watched by a leak harness, with the directory, a pilot and an opaque-token client seeded. */
export interface PilotServer {
  harness: LeakHarness;
  server: TestServer;
  pilot: Pilot;
  client: Client;
}

export async function startPilotServer(): Promise<PilotServer> {
  const harness = createLeakHarness();
  const server = await startServer({}, { harness });
  await seedDirectory(server);
  const pilot = await seedPilot(server, harness);
  const client = await seedClient(server, harness, { accessTokenFormat: 'opaque' });
  return { harness, server, pilot, client };
}

export interface Authorized {
  code: string;
  verifier: string;
}

/** Signs the pilot in (a fresh browser) and returns the authorization code and its PKCE verifier. */
export async function authorize(
  server: TestServer,
  harness: LeakHarness,
  client: Client,
  pilot: Pilot,
  scope: string,
): Promise<Authorized> {
  const { response, verifier } = await flows.authorize(server, new Browser(), client, pilot.username, {
    scope,
  });
  const code = flows.codeFrom(response);
  harness.registerSecret(code, 'authorization code');
  harness.registerSecret(verifier, 'PKCE verifier');
  return { code, verifier };
}

export function redeem(server: TestServer, client: Client, authorized: Authorized) {
  return flows.tokenRequest(server, client, {
    grant_type: 'authorization_code',
    code: authorized.code,
    redirect_uri: REDIRECT_URI,
    code_verifier: authorized.verifier,
  });
}

export interface Tokens {
  accessToken: string;
  refreshToken: string | undefined;
  idToken: string | undefined;
  scope: string;
}

/** authorize + redeem, registering every token with the harness. */
export async function codeFlow(
  server: TestServer,
  harness: LeakHarness,
  client: Client,
  pilot: Pilot,
  scope = 'openid profile email groups',
): Promise<Tokens & Authorized> {
  const authorized = await authorize(server, harness, client, pilot, scope);
  const response = await redeem(server, client, authorized);
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const tokens = {
    accessToken: String(response.body.access_token),
    refreshToken: response.body.refresh_token === undefined ? undefined : String(response.body.refresh_token),
    idToken: response.body.id_token === undefined ? undefined : String(response.body.id_token),
    scope: String(response.body.scope),
  };
  harness.registerSecret(tokens.accessToken, 'access token');
  if (tokens.refreshToken) harness.registerSecret(tokens.refreshToken, 'refresh token');
  return { ...authorized, ...tokens };
}

/** The introspection answer (asserting that the endpoint answered 200). */
export async function introspect(server: TestServer, client: Client, token: string) {
  const response = await flows.introspect(server, client, token);
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body;
}

export async function isActive(server: TestServer, client: Client, token: string): Promise<boolean> {
  return (await introspect(server, client, token)).active === true;
}

/** The userinfo answer, its body parsed. */
export async function userinfo(server: TestServer, token: string) {
  const { status, body } = await flows.userinfo(server, token);
  return { status, body: body ? (JSON.parse(body) as Record<string, unknown>) : {} };
}

/** Verifies an RFC 9068 access token against the provider's published JWKS. */
export async function verifyAccessToken(
  server: TestServer,
  client: Client,
  token: string,
): Promise<JWTVerifyResult<JWTPayload>> {
  const jwks = createRemoteJWKSet(new URL(`${server.issuer}/.well-known/jwks.json`));
  return jwtVerify(token, jwks, {
    issuer: server.issuer,
    audience: client.clientId,
    typ: 'at+jwt',
    algorithms: ['RS256'],
  });
}

export function isJwt(token: string): boolean {
  return token.split('.').length === 3;
}
