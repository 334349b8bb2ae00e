import { createHash, randomBytes } from 'node:crypto';
import { BENCH_SCOPE, type BenchClient } from './common.ts';

/** The endpoints of an engine, read from its discovery document. */
export interface Endpoints {
  discovery: string;
  authorization: string;
  token: string;
  userinfo: string;
  introspection: string;
  jwks: string;
}

export async function discover(issuer: string): Promise<Endpoints> {
  const discovery = `${issuer}/.well-known/openid-configuration`;
  const response = await fetch(discovery);
  if (!response.ok) throw new Error(`discovery at ${discovery} answered HTTP ${response.status}`);
  const metadata = (await response.json()) as Record<string, string>;
  return {
    discovery,
    authorization: metadata.authorization_endpoint!,
    token: metadata.token_endpoint!,
    userinfo: metadata.userinfo_endpoint!,
    introspection: metadata.introspection_endpoint!,
    jwks: metadata.jwks_uri!,
  };
}

/** Path and query of an absolute URL: what a load generator on the engine's origin requests. */
export function pathOf(url: string): string {
  const parsed = new URL(url);
  return `${parsed.pathname}${parsed.search}`;
}

/** One PKCE pair for the whole run: every authorization request carries its challenge. */
export const PKCE = (() => {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
})();

export function authorizationUrl(endpoints: Endpoints, client: BenchClient): string {
  const url = new URL(endpoints.authorization);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: client.clientId,
    redirect_uri: client.redirectUri,
    scope: BENCH_SCOPE,
    state: 'bench-state',
    code_challenge: PKCE.challenge,
    code_challenge_method: 'S256',
  }).toString();
  return url.toString();
}

export function basicAuthorization(client: BenchClient): string {
  const encode = (value: string) => encodeURIComponent(value);
  return `Basic ${Buffer.from(`${encode(client.clientId)}:${encode(client.clientSecret)}`).toString('base64')}`;
}

export function codeExchangeBody(client: BenchClient, code: string): string {
  return new URLSearchParams({
    grant_type: 'authorization_code',
    code,
    redirect_uri: client.redirectUri,
    code_verifier: PKCE.verifier,
  }).toString();
}

/** The code in a redirect to the client's callback, or undefined. */
export function codeFromLocation(location: unknown, client: BenchClient): string | undefined {
  if (typeof location !== 'string' || !location.startsWith(client.redirectUri)) return undefined;
  return new URL(location).searchParams.get('code') ?? undefined;
}

/** `name=value` pairs of Set-Cookie headers into `jar` (an expired or emptied cookie is removed). */
export function storeCookies(jar: Map<string, string>, setCookie: string | string[] | undefined): void {
  for (const line of typeof setCookie === 'string' ? [setCookie] : (setCookie ?? [])) {
    const [pair = '', ...attributes] = line.split(';');
    const at = pair.indexOf('=');
    if (at <= 0) continue;
    const name = pair.slice(0, at).trim();
    const value = pair.slice(at + 1).trim();
    const expired = attributes.some((attribute) => /^\s*expires=.*1970/i.test(attribute));
    if (value === '' || expired) jar.delete(name);
    else jar.set(name, value);
  }
}

export function cookieHeader(jar: ReadonlyMap<string, string>, only?: (name: string) => boolean): string {
  return [...jar]
    .filter(([name]) => !only || only(name))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ');
}

/** The session cookies (and their signatures): what a signed-in browser sends to authorize. */
export const isSessionCookie = (name: string) => name === '_session' || name.startsWith('_session.');

export interface Credentials {
  username: string;
  password: string;
}

/**
 * Signs in as a browser would and returns the cookie jar with the provider session. On aa-oidc the
 * login form is filled in with `credentials`; the bare engine's interaction signs in by itself.
 */
export async function signIn(
  endpoints: Endpoints,
  client: BenchClient,
  credentials?: Credentials,
): Promise<Map<string, string>> {
  const jar = new Map<string, string>();
  let request: { url: string; method: 'GET' | 'POST'; body?: string } = {
    url: authorizationUrl(endpoints, client),
    method: 'GET',
  };
  for (let hop = 0; hop < 12; hop += 1) {
    const response = await fetch(request.url, {
      method: request.method,
      redirect: 'manual',
      headers: {
        cookie: cookieHeader(jar),
        ...(request.body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
      ...(request.body ? { body: request.body } : {}),
    });
    storeCookies(jar, response.headers.getSetCookie());
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      const next = new URL(location, request.url).toString();
      if (codeFromLocation(next, client)) return jar;
      request = { url: next, method: 'GET' };
      continue;
    }
    const html = await response.text();
    const form = loginForm(html, request.url);
    if (response.status === 200 && form && credentials) {
      request = {
        url: form.action,
        method: 'POST',
        body: new URLSearchParams({ csrf_token: form.csrfToken, ...credentials }).toString(),
      };
      continue;
    }
    throw new Error(`sign-in stopped at ${request.method} ${pathOf(request.url)}: HTTP ${response.status}`);
  }
  throw new Error('sign-in did not reach the client after 12 requests');
}

/** The login form of an interaction page: where it posts and its CSRF token. */
export function loginForm(html: string, base: string): { action: string; csrfToken: string } | undefined {
  const action = /<form[^>]*action="([^"]+)"/i.exec(html)?.[1];
  const csrfToken = /name="csrf_token"\s+value="([^"]+)"/i.exec(html)?.[1];
  if (!action || !csrfToken || !/name="password"/.test(html)) return undefined;
  return { action: new URL(action.replace(/&amp;/g, '&'), base).toString(), csrfToken };
}

/** A fresh authorization code from a signed-in session. */
export async function issueCode(endpoints: Endpoints, client: BenchClient, session: string): Promise<string> {
  const response = await fetch(authorizationUrl(endpoints, client), {
    redirect: 'manual',
    headers: { cookie: session },
  });
  const code = codeFromLocation(response.headers.get('location'), client);
  if (!code) throw new Error(`authorize with the session answered HTTP ${response.status} without a code`);
  return code;
}

export interface TokenSet {
  access_token: string;
  refresh_token?: string;
  id_token?: string;
}

export async function redeemCode(endpoints: Endpoints, client: BenchClient, code: string): Promise<TokenSet> {
  const response = await fetch(endpoints.token, {
    method: 'POST',
    headers: {
      authorization: basicAuthorization(client),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: codeExchangeBody(client, code),
  });
  const body = (await response.json()) as TokenSet & { error?: string };
  if (!response.ok || !body.access_token) {
    throw new Error(`code exchange answered HTTP ${response.status} ${body.error ?? ''}`);
  }
  return body;
}

/** Runs `task` for each of `count` items with at most `parallel` at once. */
export async function inParallel<T>(
  count: number,
  parallel: number,
  task: (index: number) => Promise<T>,
): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const index = next;
      next += 1;
      results[index] = await task(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, lane));
  return results;
}
