import assert from 'node:assert/strict';
import type http from 'node:http';
import {
  createLocalJWKSet,
  decodeProtectedHeader,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
} from 'jose';
import { BACKCHANNEL_LOGOUT_EVENT } from '../../src/logout/logout-token.ts';
import { login } from '../helpers/flows.ts';
import { type Browser, seedApp, type TestServer } from '../helpers/server.ts';
import { type Receiver, startReceiver } from './helpers.ts';

/**
 * A relying party's back-channel logout endpoint on 127.0.0.1: answers from a script of statuses
 * (the last one repeats) and verifies every logout token it got against the provider's JWKS.
 */
export interface RpReceiver extends Receiver {
  /** The raw `logout_token` of each request, in order. */
  tokens(): string[];
}

export async function startRpReceiver(
  statuses: number[] = [200],
  location = 'http://127.0.0.1:9/elsewhere',
): Promise<RpReceiver> {
  let index = 0;
  const receiver = await startReceiver((_request: http.IncomingMessage, response: http.ServerResponse) => {
    const status = statuses[Math.min(index, statuses.length - 1)]!;
    index += 1;
    if (status >= 300 && status < 400) response.setHeader('location', location);
    response.statusCode = status;
    response.end(status === 200 ? '' : 'nope');
  });
  return Object.assign(receiver, {
    tokens: () => receiver.requests.map((request) => new URLSearchParams(request.body).get('logout_token')!),
  });
}

/**
 * An application (consent skipped) whose back-channel logouts a receiver of its own records, answering
 * from `statuses`; the receiver joins `receivers`, which the suite closes after its tests.
 */
export async function seedReceiverApp(
  server: TestServer,
  receivers: RpReceiver[],
  input: Parameters<typeof seedApp>[1] = {},
  statuses: number[] = [200],
): Promise<{ clientId: string; clientSecret: string | null; receiver: RpReceiver }> {
  const receiver = await startRpReceiver(statuses);
  receivers.push(receiver);
  const app = await seedApp(server, {
    skipAuthorization: true,
    backchannelLogoutUri: receiver.url(),
    ...input,
  });
  return { ...app, receiver };
}

/**
 * Verifies a logout token as a relying party must (Back-Channel Logout 1.0 §2.6): signature with
 * the provider's JWKS, `typ`, `iss`, `aud`, `iat`/`exp`, the `events` member, `sub`, a `jti`, no
 * `nonce`, and exactly the claims a logout token carries.
 */
export async function verifyLogoutToken(
  server: TestServer,
  token: string,
  expected: { clientId: string; sub?: string; sid?: 'present' | 'absent' },
): Promise<JWTPayload> {
  const jwks = (await (await fetch(`${server.issuer}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
  const header = decodeProtectedHeader(token);
  assert.equal(header.typ, 'logout+jwt');
  assert.equal(header.alg, 'RS256');
  const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), {
    issuer: server.issuer,
    audience: expected.clientId,
    typ: 'logout+jwt',
    algorithms: ['RS256'],
  });
  const keys = Object.keys(payload).sort();
  const base = ['aud', 'events', 'exp', 'iat', 'iss', 'jti', 'sub'];
  // Without an expectation about `sid`, it may be there (one token per session of the user).
  const withSid = expected.sid === 'present' || (expected.sid === undefined && 'sid' in payload);
  assert.deepEqual(keys, withSid ? [...base, 'sid'].sort() : base);
  assert.deepEqual(payload.events, { [BACKCHANNEL_LOGOUT_EVENT]: {} });
  assert.equal(typeof payload.jti, 'string');
  assert.ok((payload.jti as string).length >= 16);
  assert.ok(payload.exp! > payload.iat!);
  assert.ok(Math.abs(payload.iat! - Date.now() / 1000) < 300);
  if (expected.sub !== undefined) assert.equal(payload.sub, expected.sub);
  if (expected.sid === 'present') assert.equal(typeof payload.sid, 'string');
  return payload;
}

/** Signs `browser` in at `client` and exchanges the code: the user then holds tokens there. */
export async function holdTokensAt(
  server: TestServer,
  browser: Browser,
  client: { clientId: string; clientSecret: string | null },
  username: string,
): Promise<{ access_token: string; refresh_token: string; id_token: string }> {
  const { body } = await login(
    server,
    { clientId: client.clientId, clientSecret: client.clientSecret! },
    username,
    {
      browser,
      scope: 'openid',
    },
  );
  return body as { access_token: string; refresh_token: string; id_token: string };
}
