import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import assert from 'node:assert/strict';
import type { EveSsoSettings } from '../../src/alliance-auth/eve-sso.ts';
import { authorizeParams, type Client } from './flows.ts';
import { authorizeUrl, Browser, type Endpoint, formField } from './server.ts';

/**
 * A stand-in for CCP's EVE SSO v2 on loopback: the authorize endpoint signs in whichever character
 * the test chose (CCP would show its login page), the token endpoint redeems the code for an
 * EVE-shaped access token (RS256 with a `kid`, CCP's claim set) signed with the stand-in's own key,
 * and the JWKS publishes that key. The real endpoints are never contacted.
 */
export interface EveCharacterLogin {
  characterId: number;
  characterName: string;
  ownerHash: string;
}

/** A character of the Alliance Auth fixture (`expectedFixture()`), as EVE SSO signs it in. */
export function eveLogin(owned: {
  character_id: number;
  character_name: string;
  owner_hash: string;
}): EveCharacterLogin {
  return {
    characterId: owned.character_id,
    characterName: owned.character_name,
    ownerHash: owned.owner_hash,
  };
}

export interface EveSsoStandIn {
  settings: EveSsoSettings;
  /** The character the next authorization request signs in. */
  signInAs(login: EveCharacterLogin): void;
  /** Bends the next token issued (a test of the verifier's refusals). */
  tamperNextToken(change: TokenTamper): void;
  /** Answers the token endpoint with this HTTP status from now on (undefined: normal service). */
  failTokenEndpoint(status: number | undefined): void;
  /**
   * From now on (until called with false), answers the token or JWKS endpoint 200 and then one byte
   * of JSON whitespace every `TRICKLE_INTERVAL_MS`, never ending: an endpoint that is slow, not down.
   */
  trickle(endpoint: 'token' | 'jwks', on: boolean): void;
  /**
   * From now on (undefined: normal service), the JWKS publishes the signing key's id over a key that
   * cannot verify: of another type, for another algorithm, with a modulus that is no RSA modulus, or
   * without its modulus.
   */
  breakJwksKey(how: BrokenJwksKey | undefined): void;
  /** How many times the JWKS was served. */
  jwksServed(): number;
  /** How many codes were redeemed. */
  redeemed(): number;
  close(): Promise<void>;
}

export type TokenTamper =
  | { issuer: string }
  | { audience: string[] }
  | { subject: string }
  | { expiresInSeconds: number }
  | { foreignKey: true }
  /** No `kid` in the header (CCP always sends one): the verifier must pick the key itself. */
  | { withoutKid: true };

export type BrokenJwksKey = 'kty' | 'alg' | 'modulus' | 'missing_n';

export const STAND_IN_CLIENT = {
  clientId: 'eve-client-0123456789abcdef',
  clientSecret: 'eve-secret-fedcba9876543210',
};

/** How often a trickling endpoint sends its next byte: well within any per-chunk timeout. */
export const TRICKLE_INTERVAL_MS = 200;

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startEveSsoStandIn(): Promise<EveSsoStandIn> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const foreign = await generateKeyPair('RS256', { extractable: true });
  const publicJwk: JWK = await exportJWK(publicKey);
  const kid = `JWT-Signature-Key-${(await calculateJwkThumbprint(publicJwk)).slice(0, 8)}`;
  let next: EveCharacterLogin | undefined;
  let tamper: TokenTamper | undefined;
  let tokenStatus: number | undefined;
  let redeemedCount = 0;
  let brokenKey: BrokenJwksKey | undefined;
  let jwksCount = 0;
  const publishedKey = (): JWK => {
    const key: JWK = { ...publicJwk, kid, alg: 'RS256', use: 'sig' };
    switch (brokenKey) {
      case undefined:
        return key;
      case 'kty':
        return {
          kty: 'EC',
          crv: 'P-256',
          kid,
          use: 'sig',
          x: publicJwk.n!.slice(0, 43),
          y: publicJwk.n!.slice(43, 86),
        };
      case 'alg':
        return { ...key, alg: 'RS512' };
      case 'modulus':
        return { ...key, n: 'AQAB' };
      case 'missing_n': {
        const { n: _n, ...rest } = key;
        return rest;
      }
    }
  };
  const trickling = new Set<'token' | 'jwks'>();
  const trickles = new Set<ReturnType<typeof setInterval>>();
  const trickleAnswer = (response: ServerResponse) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.write(' ');
    const timer = setInterval(() => response.write(' '), TRICKLE_INTERVAL_MS);
    trickles.add(timer);
    response.on('close', () => {
      clearInterval(timer);
      trickles.delete(timer);
    });
  };
  const codes = new Map<
    string,
    { login: EveCharacterLogin; redirectUri: string; challenge: string | null }
  >();

  const server: Server = createServer((request, response) => {
    void (async () => {
      const url = new URL(request.url ?? '/', 'http://stand-in');
      const json = (status: number, body: unknown) => {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(body));
      };
      if (request.method === 'GET' && url.pathname === '/v2/oauth/authorize') {
        const redirectUri = url.searchParams.get('redirect_uri');
        if (
          url.searchParams.get('client_id') !== STAND_IN_CLIENT.clientId ||
          url.searchParams.get('response_type') !== 'code' ||
          !redirectUri ||
          !url.searchParams.get('state') ||
          !next
        ) {
          return json(400, { error: 'invalid_request' });
        }
        const code = randomBytes(16).toString('base64url');
        codes.set(code, { login: next, redirectUri, challenge: url.searchParams.get('code_challenge') });
        const back = new URL(redirectUri);
        back.searchParams.set('code', code);
        back.searchParams.set('state', url.searchParams.get('state')!);
        response.writeHead(302, { location: back.toString() });
        return response.end();
      }
      if (request.method === 'POST' && url.pathname === '/v2/oauth/token') {
        if (tokenStatus !== undefined) return json(tokenStatus, { error: 'server_error' });
        if (trickling.has('token')) return trickleAnswer(response);
        const expected = `Basic ${Buffer.from(`${STAND_IN_CLIENT.clientId}:${STAND_IN_CLIENT.clientSecret}`).toString('base64')}`;
        if (request.headers.authorization !== expected) return json(401, { error: 'invalid_client' });
        const form = new URLSearchParams(await readBody(request));
        const entry = codes.get(form.get('code') ?? '');
        codes.delete(form.get('code') ?? '');
        if (
          form.get('grant_type') !== 'authorization_code' ||
          !entry ||
          entry.redirectUri !== form.get('redirect_uri')
        ) {
          return json(400, { error: 'invalid_grant' });
        }
        if (entry.challenge !== null) {
          const verifier = form.get('code_verifier') ?? '';
          if (createHash('sha256').update(verifier).digest('base64url') !== entry.challenge) {
            return json(400, { error: 'invalid_grant' });
          }
        }
        redeemedCount += 1;
        const change = tamper;
        tamper = undefined;
        const now = Math.floor(Date.now() / 1000);
        const token = await new SignJWT({
          scp: ['publicData'],
          jti: randomUUID(),
          kid,
          azp: STAND_IN_CLIENT.clientId,
          tenant: 'tranquility',
          tier: 'live',
          region: 'world',
          name: entry.login.characterName,
          owner: entry.login.ownerHash,
        })
          .setProtectedHeader(
            change && 'withoutKid' in change
              ? { alg: 'RS256', typ: 'JWT' }
              : { alg: 'RS256', kid, typ: 'JWT' },
          )
          .setSubject(
            change && 'subject' in change ? change.subject : `CHARACTER:EVE:${entry.login.characterId}`,
          )
          .setAudience(
            change && 'audience' in change ? change.audience : [STAND_IN_CLIENT.clientId, 'EVE Online'],
          )
          .setIssuer(change && 'issuer' in change ? change.issuer : 'https://login.eveonline.com')
          .setIssuedAt(now)
          .setExpirationTime(now + (change && 'expiresInSeconds' in change ? change.expiresInSeconds : 1199))
          .sign(change && 'foreignKey' in change ? foreign.privateKey : privateKey);
        return json(200, {
          access_token: token,
          expires_in: 1199,
          token_type: 'Bearer',
          refresh_token: randomBytes(16).toString('base64url'),
        });
      }
      if (request.method === 'GET' && url.pathname === '/oauth/jwks') {
        if (trickling.has('jwks')) return trickleAnswer(response);
        jwksCount += 1;
        return json(200, { keys: [publishedKey()] });
      }
      return json(404, { error: 'not_found' });
    })().catch((error: Error) => {
      response.writeHead(500);
      response.end(error.message);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    settings: {
      ...STAND_IN_CLIENT,
      authorizationUrl: `${base}/v2/oauth/authorize`,
      tokenUrl: `${base}/v2/oauth/token`,
      jwksUrl: `${base}/oauth/jwks`,
      // The stand-in listens on loopback, which the SSRF gate refuses without the escape hatch.
      allowPrivateEndpoints: true,
    },
    signInAs(login) {
      next = login;
    },
    tamperNextToken(change) {
      tamper = change;
    },
    failTokenEndpoint(status) {
      tokenStatus = status;
    },
    trickle(endpoint, on) {
      if (on) trickling.add(endpoint);
      else trickling.delete(endpoint);
    },
    breakJwksKey(how) {
      brokenKey = how;
    },
    jwksServed: () => jwksCount,
    redeemed: () => redeemedCount,
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of trickles) clearInterval(timer);
        trickles.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** An EVE sign-in brought back from EVE SSO, up to (not into) aa-oidc's callback. */
export interface StartedEveSignIn {
  browser: Browser;
  /** The PKCE verifier of the application's authorization request. */
  verifier: string;
  /** The login page that offered the EVE button. */
  loginPage: string;
  /** aa-oidc's answer to the EVE button: the redirect to EVE SSO's authorize endpoint. */
  toEve: Response;
  /** Where EVE SSO sends the browser back to, with its code and state. */
  callbackUrl: string;
}

/**
 * From the application's authorize URL to the login page, its EVE button, and EVE SSO (the stand-in
 * signing in as `login`) back to the redirect to aa-oidc's callback, which is not yet followed.
 * `scope` defaults to `authorizeParams`'s.
 */
export async function startEveSignIn(
  server: Endpoint,
  eve: EveSsoStandIn,
  client: Client,
  login: EveCharacterLogin,
  options: { scope?: string } = {},
): Promise<StartedEveSignIn> {
  const browser = new Browser();
  const { params, verifier } = authorizeParams(
    client,
    options.scope === undefined ? {} : { scope: options.scope },
  );
  const page = await browser.follow(authorizeUrl(server, params), server.origin);
  assert.equal(page.status, 200);
  const loginPage = await page.text();
  return { browser, verifier, loginPage, ...(await pressEveButton(browser, server, eve, loginPage, login)) };
}

/**
 * On a login page (`loginPage`, open in `browser`): presses its EVE button, and EVE SSO (the stand-in
 * signing in as `login`) answers; returns the button's answer and the redirect back to aa-oidc's
 * callback, not yet followed.
 */
export async function pressEveButton(
  browser: Browser,
  server: Endpoint,
  eve: EveSsoStandIn,
  loginPage: string,
  login: EveCharacterLogin,
): Promise<Pick<StartedEveSignIn, 'toEve' | 'callbackUrl'>> {
  const button = /<form method="post" action="([^"]+)" class="external-sign-in">/.exec(loginPage);
  assert.ok(button, 'the login page offers EVE SSO');
  eve.signInAs(login);
  const toEve = await browser.fetch(new URL(button[1]!.replaceAll('&amp;', '&'), server.origin).href, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf_token: formField(loginPage, 'csrf_token') }).toString(),
  });
  assert.equal(toEve.status, 303);
  const back = await browser.fetch(toEve.headers.get('location')!);
  assert.equal(back.status, 302, 'EVE SSO sends the browser back');
  return { toEve, callbackUrl: back.headers.get('location')! };
}

/**
 * The callback's own answer (a page: a refusal, a referral, a try-again; or a redirect), and where it
 * leads: its redirect followed on aa-oidc's origin to the response that leaves the server, or the
 * callback's answer itself when it is a page.
 */
export async function followEveCallback(
  server: Endpoint,
  started: StartedEveSignIn,
): Promise<{ callback: Response; response: Response }> {
  const callback = await started.browser.fetch(started.callbackUrl);
  const next = callback.headers.get('location');
  const response = next
    ? await started.browser.follow(new URL(next, server.origin).href, server.origin)
    : callback;
  return { callback, response };
}

/** `startEveSignIn` and `followEveCallback` in one: a whole EVE sign-in, as far as it goes. */
export async function signInWithEve(
  server: Endpoint,
  eve: EveSsoStandIn,
  client: Client,
  login: EveCharacterLogin,
  options: { scope?: string } = {},
): Promise<StartedEveSignIn & { callback: Response; response: Response }> {
  const started = await startEveSignIn(server, eve, client, login, options);
  return { ...started, ...(await followEveCallback(server, started)) };
}
