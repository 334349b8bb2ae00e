import { createHash, createPublicKey, randomBytes } from 'node:crypto';
import { createLocalJWKSet, errors as joseErrors, type JSONWebKeySet, type JWK, jwtVerify } from 'jose';
import type { Dispatcher } from 'undici';
import type { Mode } from '../config/load.ts';
import { ConnectFailure } from '../logout/connection-pools.ts';
import {
  type Connector,
  describeRequestError,
  directConnector,
  MAX_ADDRESSES_TRIED,
  openPinned,
  pinnedTarget,
} from '../logout/http-delivery.ts';
import { type Resolver, systemResolver } from '../logout/ssrf/resolver.ts';
import { checkBackchannelTarget, type GateOptions } from '../logout/ssrf/target-gate.ts';
import { loadUndici } from '../util/undici.ts';

/**
 * EVE SSO v2 as Alliance Auth uses it (django-esi): the authorization code flow at CCP's
 * `/v2/oauth/authorize` and `/v2/oauth/token`, and the access token, a JWT, verified against CCP's
 * JWKS. Only the identity is taken from it: the character id (`sub` = `CHARACTER:EVE:<id>`), its
 * name and the owner hash (`owner`), which changes when the character is sold or transferred.
 *
 * Every request to CCP passes the SSRF gate of back-channel logout first (src/logout/ssrf/): the
 * endpoint's host must resolve only to public unicast addresses (https in production), and the
 * connection goes to an address the gate just checked, never to a name resolved again. The token
 * request carries the client secret: a name that resolves (or is rebound) to an internal address
 * must not receive it, nor make this server probe the inside of its network.
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
  /**
   * `eveSso.allowPrivateEndpoints`: the gate lets loopback and private addresses through (a local
   * stand-in for CCP in development; the configuration refuses it in production). Its own switch,
   * not `logout.allowPrivateTargets`: allowing internal relying parties must not also let the
   * client secret go wherever CCP's name points.
   */
  allowPrivateEndpoints: boolean;
  /**
   * `eveSso.requestTimeoutMs`: the most one request to EVE SSO may take, whole (the gate's lookup,
   * connecting, the answer to its last byte). Default `DEFAULT_REQUEST_TIMEOUT_MS`.
   */
  requestTimeoutMs?: number;
}

/** How the client reaches CCP: the mode (http only in development) and, in tests, the network. */
export interface EveSsoNetwork {
  mode: Mode;
  /** Default: the system resolver. */
  resolver?: Resolver;
  /** Default: TCP (and TLS) to the checked address. */
  connector?: Connector;
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

/**
 * The default deadline of one request to EVE SSO, from the gate's lookup to the last byte of the
 * answer: undici's own timeouts are per stage (and per chunk of the body), so an endpoint trickling a
 * byte at a time would hold the sign-in for as long as it likes without one overall deadline.
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const MAX_RESPONSE_BYTES = 64 * 1024;
/**
 * A JWKS is fetched again at most this often when a token names an unknown key, or names none and no
 * key of the JWKS loads.
 */
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

export function createEveSsoClient(
  settings: EveSsoSettings,
  network: EveSsoNetwork,
  now: () => number = Date.now,
): EveSsoClient {
  const outbound: Outbound = {
    gate: {
      mode: network.mode,
      allowPrivateTargets: settings.allowPrivateEndpoints,
      resolver: network.resolver ?? systemResolver,
    },
    connector: network.connector ?? directConnector,
    timeoutMs: settings.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
  };
  /**
   * The JWKS last fetched: `kids` are the key ids that load as RS256 keys, `unusable` says what is
   * wrong with the other ones; `noneUsable` says what is wrong with each key when none loads. A key
   * that does not load is not an answer to keep: a token naming it, or naming no key when none loads,
   * fetches the JWKS again, as for a key id the JWKS lacks (at most once every `JWKS_REFRESH_MIN_MS`).
   */
  let jwks:
    | {
        set: ReturnType<typeof createLocalJWKSet>;
        kids: Set<string>;
        unusable: Map<string, string>;
        anyUsable: boolean;
        noneUsable: string | undefined;
        fetchedAt: number;
      }
    | undefined;
  let jwksPending: Promise<void> | undefined;

  const loadJwks = async (): Promise<void> => {
    const body = (await fetchJson(outbound, { method: 'GET', url: settings.jwksUrl })) as JSONWebKeySet;
    if (!body || !Array.isArray(body.keys))
      throw new EveSsoError('unavailable', 'the EVE SSO JWKS is malformed');
    const usable: JWK[] = [];
    const unusable = new Map<string, string>();
    const problems: string[] = [];
    for (const key of body.keys as unknown[]) {
      const problem = rs256KeyProblem(key);
      const kid = typeof (key as JWK | null)?.kid === 'string' ? (key as JWK).kid! : undefined;
      if (problem === undefined) usable.push(key as JWK);
      else {
        if (kid !== undefined) unusable.set(kid, problem);
        problems.push(`${kid === undefined ? 'a key without "kid"' : `key ${quotedKid(kid)}`}: ${problem}`);
      }
    }
    const kids = new Set(
      usable.map((key) => key.kid).filter((kid): kid is string => typeof kid === 'string'),
    );
    // A key id published twice, once usable: the usable one verifies.
    for (const kid of kids) unusable.delete(kid);
    jwks = {
      set: createLocalJWKSet({ keys: usable }),
      kids,
      unusable,
      anyUsable: usable.length > 0,
      noneUsable: usable.length === 0 && problems.length > 0 ? firstProblems(problems) : undefined,
      fetchedAt: now(),
    };
  };
  const ensureJwks = async (kid: string | undefined): Promise<void> => {
    const stale = !jwks || now() - jwks.fetchedAt > JWKS_MAX_AGE_MS;
    // A key id the JWKS lacks, or no key id when no key loads: the JWKS may have changed since.
    const lacksKey = jwks && (kid === undefined ? !jwks.anyUsable : !jwks.kids.has(kid));
    const refetch = lacksKey && now() - jwks!.fetchedAt > JWKS_REFRESH_MIN_MS;
    if (!stale && !refetch) return;
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
      const token = (await fetchJson(outbound, {
        method: 'POST',
        url: settings.tokenUrl,
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          redirect_uri: redirectUri,
          code_verifier: codeVerifier,
        }).toString(),
        authorization: `Basic ${Buffer.from(`${settings.clientId}:${settings.clientSecret}`).toString('base64')}`,
      })) as { access_token?: unknown };
      if (typeof token?.access_token !== 'string') {
        throw new EveSsoError('rejected', 'EVE SSO answered the code exchange without an access token');
      }
      return verifyEveAccessToken(token.access_token, settings.clientId, async (kid) => {
        await ensureJwks(kid);
        // CCP's JWKS, not the person's token, is at fault: try again once it is fixed.
        if (kid === undefined) {
          if (jwks!.noneUsable !== undefined)
            throw new EveSsoError(
              'unavailable',
              "the EVE SSO access token names no key and none of the EVE SSO JWKS's keys can be used: " +
                jwks!.noneUsable,
            );
        } else {
          const problem = jwks!.unusable.get(kid);
          if (problem !== undefined)
            throw new EveSsoError(
              'unavailable',
              `the EVE SSO JWKS's key ${quotedKid(kid)} cannot be used: ${problem}`,
            );
        }
        return jwks!.set;
      });
    },
  };
}

/** How many unusable keys an error names when none of the JWKS's keys can be used. */
const MAX_KEY_PROBLEMS_TOLD = 3;

/** The problems of a JWKS's keys for an error message: the first few, and how many more. */
function firstProblems(problems: readonly string[]): string {
  const told = problems.slice(0, MAX_KEY_PROBLEMS_TOLD).join('; ');
  const more = problems.length - MAX_KEY_PROBLEMS_TOLD;
  return more > 0 ? `${told}; and ${more} more` : told;
}

/** A key id for an error message: quoted, at most 100 characters. */
function quotedKid(kid: string): string {
  return JSON.stringify(kid.slice(0, 100));
}

/** RSA moduli shorter than this are refused for RS256 (jose refuses them when verifying). */
const MIN_RSA_MODULUS_BITS = 2048;

/**
 * What keeps one JWKS entry from verifying an RS256 token, in fixed words (never the library's
 * text), or undefined when it loads as an RS256 public key.
 */
function rs256KeyProblem(key: unknown): string | undefined {
  if (typeof key !== 'object' || key === null || Array.isArray(key)) return 'it is not a JSON object';
  const { kty, alg, use, key_ops: keyOps, n, e } = key as Record<string, unknown>;
  if (kty !== 'RSA') return `its "kty" is ${describeMember(kty)}, not "RSA"`;
  if (alg !== undefined && alg !== 'RS256') return `its "alg" is ${describeMember(alg)}, not "RS256"`;
  if (use !== undefined && use !== 'sig') return `its "use" is ${describeMember(use)}, not "sig"`;
  if (keyOps !== undefined && !(Array.isArray(keyOps) && keyOps.includes('verify')))
    return 'its "key_ops" do not include "verify"';
  for (const [member, value] of [
    ['n', n],
    ['e', e],
  ] as const) {
    if (value === undefined) return `it lacks the "${member}" member`;
    if (typeof value !== 'string' || !/^[A-Za-z0-9_-]+$/.test(value))
      return `its "${member}" is not a base64url string`;
  }
  // Node's own reading of the key: whether it loads, and its modulus's length (leading zeros aside).
  let bits: number;
  try {
    const loaded = createPublicKey({ key: { kty: 'RSA', n: n as string, e: e as string }, format: 'jwk' });
    bits = loaded.asymmetricKeyDetails?.modulusLength ?? 0;
  } catch {
    return 'its "n" and "e" do not load as an RSA public key';
  }
  if (bits < MIN_RSA_MODULUS_BITS)
    return `its modulus "n" has ${bits} bits, fewer than the ${MIN_RSA_MODULUS_BITS} RS256 requires`;
  return undefined;
}

/** A JWK member's value for a log line: a short string quoted, anything else by its type. */
function describeMember(value: unknown): string {
  if (value === undefined) return 'missing';
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 40));
  return `a ${Array.isArray(value) ? 'list' : value === null ? 'null' : typeof value}`;
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

/** The gate's options for EVE SSO's endpoints, and how a checked address is connected to. */
interface Outbound {
  gate: GateOptions;
  connector: Connector;
  /** The whole request's deadline. */
  timeoutMs: number;
}

/** What `fetchJson` sends: a GET, or the token endpoint's POST with a form `body` and `authorization`. */
interface EveSsoRequest {
  method: 'GET' | 'POST';
  url: string;
  body?: string;
  authorization?: string;
}

/**
 * One request to an EVE SSO endpoint through the SSRF gate: of the checked addresses, at most
 * `MAX_ADDRESSES_TRIED` are tried, each only when no connection to the one before could be opened
 * (as a back-channel delivery does), so that a request is never sent twice. All of it, the lookup,
 * every address tried and the answer read to its end, within `outbound.timeoutMs`: past it the
 * request is abandoned and EVE SSO is "unavailable" (try again later).
 */
async function fetchJson(outbound: Outbound, request: EveSsoRequest): Promise<unknown> {
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), outbound.timeoutMs);
  try {
    return await fetchJsonBefore(deadline.signal, outbound, request);
  } finally {
    clearTimeout(timer);
  }
}

/** `fetchJson` within `deadline`, which aborts once `outbound.timeoutMs` is past. */
async function fetchJsonBefore(
  deadline: AbortSignal,
  outbound: Outbound,
  { method, url, body, authorization }: EveSsoRequest,
): Promise<unknown> {
  const timeoutMs = outbound.timeoutMs;
  const timedOut = (where: string) =>
    new EveSsoError('unavailable', `EVE SSO did not answer within ${timeoutMs} ms (${where})`);
  const gate = await checkBackchannelTarget(url, outbound.gate, deadline);
  if (deadline.aborted) throw timedOut('resolving its host');
  if (!gate.ok) {
    // The log names the host, the refused address and its class; the request (and its secret) was never sent.
    const what = gate.addressClass === undefined ? gate.reason : `${gate.reason}, ${gate.addressClass}`;
    throw new EveSsoError(
      'unavailable',
      `the SSRF gate refused the EVE SSO endpoint (${what}): ${gate.detail}`,
    );
  }
  const { Client } = await loadUndici();
  const candidates = gate.addresses.slice(0, MAX_ADDRESSES_TRIED);
  const unreachable: string[] = [];
  for (const [index, checked] of candidates.entries()) {
    // Pinned: the connection goes to the address the gate just checked; the URL's host only names
    // the Host header and the TLS server name.
    const target = pinnedTarget(gate, checked);
    const client = new Client(gate.url.origin, {
      connect: (_options, callback) => {
        openPinned(outbound.connector, target, timeoutMs, deadline).then(
          (socket) => callback(null, socket),
          (error: Error) => callback(error, null),
        );
      },
      pipelining: 1,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    try {
      const response = await client.request({
        origin: gate.url.origin,
        method,
        path: `${gate.url.pathname}${gate.url.search}`,
        headers: {
          accept: 'application/json',
          'user-agent': 'aa-oidc (EVE SSO sign-in)',
          ...(body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
          ...(authorization ? { authorization } : {}),
        },
        ...(body !== undefined ? { body } : {}),
        signal: deadline,
      });
      return await readJson(response);
    } catch (error) {
      if (deadline.aborted) throw timedOut(`${gate.url.host}, ${checked.address}`);
      if (error instanceof EveSsoError) throw error;
      // The next address only when nothing was sent to this one: a request is never made twice.
      const connectFailed =
        error instanceof ConnectFailure &&
        (error.failure === 'connection_failed' || error.failure === 'connect_timeout');
      // Fixed words for each kind of failure, as a delivery's detail has them, never the error's
      // text for the log: library text that may carry what the peer sent.
      const why =
        error instanceof ConnectFailure
          ? error.detail
          : describeRequestError(error, deadline, timeoutMs, { peer: 'EVE SSO', method }).detail;
      const detail = `${checked.address}: ${why}`;
      if (connectFailed && index < candidates.length - 1) {
        unreachable.push(detail);
        continue;
      }
      throw new EveSsoError(
        'unavailable',
        `EVE SSO is unreachable (${gate.url.host}: ${[...unreachable, detail].join('; ')})`,
      );
    } finally {
      await client.destroy().catch(() => undefined);
    }
  }
  throw new Error('unreachable: the gate returns at least one address');
}

/** The response as JSON, read up to `MAX_RESPONSE_BYTES`; its status decides what a failure is. */
async function readJson(response: Dispatcher.ResponseData): Promise<unknown> {
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
