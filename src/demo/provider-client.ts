import { createHash } from 'node:crypto';
import type Koa from 'koa';
import { createLocalJWKSet, type JSONWebKeySet, type JWTPayload, jwtVerify } from 'jose';
import type { Html } from './page.ts';
import { sameText } from '../util/same-text.ts';

/**
 * The demo relying party's side of the protocol, as an external relying party would do it: the
 * provider's discovery document, JSON over real HTTP to the server's own address, and the id_token's
 * validation. Every failure is a `DemoFailure`, shown to the person as a page.
 */

const FETCH_TIMEOUT_MS = 10_000;

export interface Discovery {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  userinfo_endpoint: string;
  jwks_uri: string;
  scopes_supported?: string[];
}

/** A failure shown to the person as a page: a status, a title and what to do. */
export class DemoFailure extends Error {
  override name = 'DemoFailure';
  readonly status: number;
  readonly title: string;
  readonly detail: Html | string;
  constructor(status: number, title: string, detail: Html | string) {
    super(title);
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

/** `http://ADDRESS:PORT` of the socket the request arrived on: the server's own listening address. */
export function ownOrigin(ctx: Koa.Context): string {
  const socket = ctx.req.socket;
  let address = socket.localAddress ?? '127.0.0.1';
  if (address.startsWith('::ffff:') && address.includes('.')) address = address.slice(7);
  const host = address.includes(':') ? `[${address}]` : address;
  return `http://${host}:${socket.localPort}`;
}

/** The same endpoint, reached through the server's own address instead of the public issuer host. */
export function viaOwnOrigin(endpoint: string, issuer: string, origin: string): string {
  const url = new URL(endpoint);
  if (url.origin !== new URL(issuer).origin) {
    throw new DemoFailure(
      502,
      'Unexpected discovery document',
      `endpoint ${endpoint} is not on the issuer's host`,
    );
  }
  return `${origin}${url.pathname}${url.search}`;
}

export async function fetchJson(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  let response: Response;
  try {
    response = await fetch(url, {
      ...init,
      redirect: 'manual',
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
  } catch (error) {
    throw new DemoFailure(
      502,
      'The provider did not answer',
      `${new URL(url).pathname}: ${(error as Error).message}`,
    );
  }
  const text = await response.text();
  try {
    const body = JSON.parse(text) as unknown;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('not an object');
    return { status: response.status, body: body as Record<string, unknown> };
  } catch {
    throw new DemoFailure(
      502,
      'The provider answered something unexpected',
      `${new URL(url).pathname} answered HTTP ${response.status} without a JSON object`,
    );
  }
}

export function oauthError(what: string, status: number, body: Record<string, unknown>): DemoFailure {
  const error = typeof body.error === 'string' ? body.error : `HTTP ${status}`;
  const description = typeof body.error_description === 'string' ? body.error_description : '';
  return new DemoFailure(502, `${what} failed`, `${error}${description ? `: ${description}` : ''}`);
}

/** The provider's discovery document, fetched from the server's own address. */
export async function discover(issuer: string, origin: string): Promise<Discovery> {
  const { status, body } = await fetchJson(
    `${origin}${new URL(issuer).pathname.replace(/\/+$/, '')}/.well-known/openid-configuration`,
  );
  if (status !== 200) throw oauthError('Discovery', status, body);
  if (body.issuer !== issuer)
    throw new DemoFailure(
      502,
      'Discovery failed',
      `the document names issuer ${String(body.issuer)}, not ${issuer}`,
    );
  for (const field of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri'])
    if (typeof body[field] !== 'string') throw new DemoFailure(502, 'Discovery failed', `no ${field}`);
  return body as unknown as Discovery;
}

/** The id_token's signature, issuer, audience, expiry, nonce and at_hash, checked. */
export async function validateIdToken(
  issuer: string,
  idToken: string,
  accessToken: string,
  keySet: JSONWebKeySet,
  nonce: string,
  clientId: string,
): Promise<{ payload: JWTPayload; kid: string }> {
  let verified;
  try {
    verified = await jwtVerify(idToken, createLocalJWKSet(keySet), {
      issuer,
      audience: clientId,
      algorithms: ['RS256'],
      requiredClaims: ['sub', 'iat', 'exp', 'nonce'],
    });
  } catch (error) {
    throw new DemoFailure(502, 'The id_token is not valid', (error as Error).message);
  }
  const { payload, protectedHeader } = verified;
  if (typeof payload.nonce !== 'string' || !sameText(payload.nonce, nonce))
    throw new DemoFailure(502, 'The id_token is not valid', 'its nonce is not the one this sign-in sent');
  if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload.azp !== clientId)
    throw new DemoFailure(502, 'The id_token is not valid', 'several audiences and azp is not this client');
  if (payload.at_hash !== undefined) {
    const digest = createHash('sha256').update(accessToken, 'ascii').digest();
    const expected = digest.subarray(0, digest.length / 2).toString('base64url');
    if (typeof payload.at_hash !== 'string' || !sameText(payload.at_hash, expected))
      throw new DemoFailure(502, 'The id_token is not valid', 'its at_hash does not match the access token');
  }
  return { payload, kid: protectedHeader.kid ?? '(none)' };
}
