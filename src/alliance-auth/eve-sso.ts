import { createHash, randomBytes } from 'node:crypto';
import { createLocalJWKSet, errors as joseErrors, type JSONWebKeySet, jwtVerify } from 'jose';
import type { Dispatcher } from 'undici';
import { loadUndici } from '../util/undici.ts';

/**
 * EVE SSO v2 as Alliance Auth uses it (django-esi): the authorization code flow at CCP's
 * `/v2/oauth/authorize` and `/v2/oauth/token`, and the access token, a JWT, verified against CCP's
 * JWKS. Only the identity is taken from it: the character id (`sub` = `CHARACTER:EVE:<id>`), its
 * name and the owner hash (`owner`), which changes when the character is sold or transferred.
 */

/** CCP's issuers, before and after the 2023 change; they stay the same whatever the endpoints. */
export const EVE_SSO_ISSUERS: readonly string[] = ['login.eveonline.com', 'https://login.eveonline.com'];
export const EVE_SSO_AUDIENCE = 'EVE Online';
/** What AA asks for at login (`LOGIN_TOKEN_SCOPES`): nothing beyond the identity. */
export const EVE_SSO_SCOPE = 'publicData';

export interface EveSsoSettings {
  clientId: string;
  clientSecret: string;
  authorizationUrl: string;
  tokenUrl: string;
  jwksUrl: string;
}

/** The character that signed in, as the verified token says. */
export interface EveIdentity {
  characterId: number;
  characterName: string;
  ownerHash: string;
}

/** Why EVE SSO did not yield an identity. `unavailable`: CCP (or the network) failed; try again later. */
export class EveSsoError extends Error {
  override name = 'EveSsoError';
  readonly kind: 'rejected' | 'unavailable';
  constructor(kind: 'rejected' | 'unavailable', message: string) {
    super(message);
    this.kind = kind;
  }
}

const TIMEOUT_MS = 10_000;
const MAX_RESPONSE_BYTES = 64 * 1024;
/** A JWKS is fetched again at most this often when a token names an unknown key. */
const JWKS_REFRESH_MIN_MS = 60_000;
const JWKS_MAX_AGE_MS = 6 * 60 * 60 * 1000;

/** The state and PKCE verifier of one authorization request (kept by the caller, in a cookie). */
export interface EveAuthorizationRequest {
  url: string;
  state: string;
  codeVerifier: string;
}

export interface EveSsoClient {
  /** The URL to send the browser to; `redirectUri` must be registered at CCP exactly. */
  authorizationRequest(redirectUri: string): EveAuthorizationRequest;
  /** Redeems the code and verifies the access token; throws `EveSsoError`. */
  identify(code: string, redirectUri: string, codeVerifier: string): Promise<EveIdentity>;
}

export function createEveSsoClient(settings: EveSsoSettings, now: () => number = Date.now): EveSsoClient {
  let jwks: { set: ReturnType<typeof createLocalJWKSet>; kids: Set<string>; fetchedAt: number } | undefined;
  let jwksPending: Promise<void> | undefined;

  const loadJwks = async (): Promise<void> => {
    const body = (await fetchJson('GET', settings.jwksUrl)) as JSONWebKeySet;
    if (!body || !Array.isArray(body.keys))
      throw new EveSsoError('unavailable', 'the EVE SSO JWKS is malformed');
    jwks = {
      set: createLocalJWKSet(body),
      kids: new Set(body.keys.map((key) => key.kid).filter((kid): kid is string => typeof kid === 'string')),
      fetchedAt: now(),
    };
  };
  const ensureJwks = async (kid: string | undefined): Promise<void> => {
    const stale = !jwks || now() - jwks.fetchedAt > JWKS_MAX_AGE_MS;
    const unknownKid =
      jwks && kid !== undefined && !jwks.kids.has(kid) && now() - jwks.fetchedAt > JWKS_REFRESH_MIN_MS;
    if (!stale && !unknownKid) return;
    jwksPending ??= loadJwks().finally(() => {
      jwksPending = undefined;
    });
    await jwksPending;
  };

  return {
    authorizationRequest(redirectUri) {
      const state = randomBytes(32).toString('base64url');
      const codeVerifier = randomBytes(32).toString('base64url');
      const url = new URL(settings.authorizationUrl);
      url.searchParams.set('response_type', 'code');
      url.searchParams.set('redirect_uri', redirectUri);
      url.searchParams.set('client_id', settings.clientId);
      url.searchParams.set('scope', EVE_SSO_SCOPE);
      url.searchParams.set('state', state);
      url.searchParams.set('code_challenge', createHash('sha256').update(codeVerifier).digest('base64url'));
      url.searchParams.set('code_challenge_method', 'S256');
      return { url: url.toString(), state, codeVerifier };
    },

    async identify(code, redirectUri, codeVerifier) {
      const token = (await fetchJson(
        'POST',
        settings.tokenUrl,
        new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          redirect_uri: redirectUri,
          code_verifier: codeVerifier,
        }).toString(),
        `Basic ${Buffer.from(`${settings.clientId}:${settings.clientSecret}`).toString('base64')}`,
      )) as { access_token?: unknown };
      if (typeof token?.access_token !== 'string') {
        throw new EveSsoError('rejected', 'EVE SSO answered the code exchange without an access token');
      }
      return verifyEveAccessToken(token.access_token, settings.clientId, async (kid) => {
        await ensureJwks(kid);
        return jwks!.set;
      });
    },
  };
}

/**
 * Verifies an EVE SSO access token as django-esi does: RS256 against the JWKS, one of CCP's issuers,
 * an audience holding both the client id and "EVE Online", not expired, and a character subject.
 */
export async function verifyEveAccessToken(
  token: string,
  clientId: string,
  keys: (kid: string | undefined) => Promise<ReturnType<typeof createLocalJWKSet>>,
): Promise<EveIdentity> {
  let kid: string | undefined;
  try {
    const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')) as {
      kid?: unknown;
    };
    kid = typeof header.kid === 'string' ? header.kid : undefined;
  } catch {
    throw new EveSsoError('rejected', 'the EVE SSO access token is not a JWT');
  }
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, await keys(kid), {
      algorithms: ['RS256'],
      issuer: [...EVE_SSO_ISSUERS],
      audience: EVE_SSO_AUDIENCE,
      requiredClaims: ['sub', 'exp'],
      clockTolerance: 30,
    }));
  } catch (error) {
    if (error instanceof EveSsoError) throw error;
    const reason = error instanceof joseErrors.JOSEError ? error.code : 'invalid';
    throw new EveSsoError('rejected', `the EVE SSO access token does not verify (${reason})`);
  }
  const audience = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
  if (!audience.includes(clientId)) {
    throw new EveSsoError('rejected', 'the EVE SSO access token was issued to another application');
  }
  const subject =
    typeof payload.sub === 'string' ? /^CHARACTER:EVE:([1-9][0-9]{0,15})$/.exec(payload.sub) : null;
  if (!subject) throw new EveSsoError('rejected', 'the EVE SSO access token does not name a character');
  const characterId = Number(subject[1]);
  const { name, owner } = payload;
  if (typeof name !== 'string' || name === '' || typeof owner !== 'string' || owner === '') {
    throw new EveSsoError('rejected', 'the EVE SSO access token lacks the character name or owner hash');
  }
  return { characterId, characterName: name, ownerHash: owner };
}

async function fetchJson(
  method: 'GET' | 'POST',
  url: string,
  body?: string,
  authorization?: string,
): Promise<unknown> {
  let response: Dispatcher.ResponseData;
  try {
    const { request } = await loadUndici();
    response = await request(url, {
      method,
      headers: {
        accept: 'application/json',
        'user-agent': 'aa-oidc (EVE SSO sign-in)',
        ...(body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        ...(authorization ? { authorization } : {}),
      },
      ...(body !== undefined ? { body } : {}),
      headersTimeout: TIMEOUT_MS,
      bodyTimeout: TIMEOUT_MS,
    });
  } catch (error) {
    throw new EveSsoError(
      'unavailable',
      `EVE SSO is unreachable (${new URL(url).host}: ${(error as Error).message})`,
    );
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    size += (chunk as Buffer).length;
    if (size > MAX_RESPONSE_BYTES) {
      response.body.destroy();
      throw new EveSsoError('unavailable', 'EVE SSO answered with an oversized response');
    }
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (response.statusCode >= 500)
    throw new EveSsoError('unavailable', `EVE SSO answered ${response.statusCode}`);
  if (response.statusCode !== 200) {
    throw new EveSsoError('rejected', `EVE SSO refused the request (${response.statusCode})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new EveSsoError('unavailable', 'EVE SSO answered with something other than JSON');
  }
}
