import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  authorizeUrl,
  basicAuth,
  Browser,
  formAction,
  formField,
  pkcePair,
  postForm,
  REDIRECT_URI,
  signIn,
  type SignInOptions,
  type Endpoint,
} from './server.ts';

/**
 * The authorization code flow with PKCE over real HTTP, as a relying party drives it: authorize
 * (signing in through the login and consent pages), the code, the token endpoint, introspection and
 * userinfo.
 */

/** A confidential client, as the code-flow helpers drive it like a relying party. */
export interface Client {
  clientId: string;
  clientSecret: string;
}

export function authorizeParams(client: Client, extra: Record<string, string> = {}) {
  const { verifier, challenge } = pkcePair();
  const state = randomBytes(6).toString('hex');
  return {
    verifier,
    state,
    params: {
      client_id: client.clientId,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      scope: 'openid profile groups',
      state,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      ...extra,
    },
  };
}

/** Signs in (or reuses the browser's session) and returns the response that leaves the server. */
export async function authorize(
  server: Endpoint,
  browser: Browser,
  client: Client,
  username: string | undefined,
  extra: Record<string, string> = {},
  options: Pick<SignInOptions, 'seen' | 'password'> = {},
): Promise<{ response: Response; verifier: string; state: string }> {
  const { params, verifier, state } = authorizeParams(client, extra);
  const response = await signIn(browser, server, authorizeUrl(server, params), {
    ...(username === undefined ? {} : { username }),
    ...options,
  });
  return { response, verifier, state };
}

export function codeFrom(response: Response): string {
  assert.equal(response.status, 303, `a redirect to the client, not ${response.status}`);
  const location = new URL(response.headers.get('location')!);
  const code = location.searchParams.get('code');
  assert.ok(code, `a code, not error=${location.searchParams.get('error')}`);
  return code;
}

/** A request to the token endpoint, authenticated with the client's secret (Basic). */
export function tokenRequest(server: Endpoint, client: Client, form: Record<string, string>) {
  return postForm(`${server.issuer}/token/`, form, {
    authorization: basicAuth(client.clientId, client.clientSecret),
  });
}

export function introspect(server: Endpoint, client: Client, value: string) {
  return postForm(
    `${server.issuer}/introspect/`,
    { token: value },
    { authorization: basicAuth(client.clientId, client.clientSecret) },
  );
}

export async function userinfo(server: Endpoint, accessToken: string) {
  const response = await fetch(`${server.issuer}/userinfo/`, {
    headers: { authorization: `Bearer ${accessToken}` },
  });
  return {
    status: response.status,
    wwwAuthenticate: response.headers.get('www-authenticate') ?? '',
    body: await response.text(),
  };
}

/**
 * Signs a user in (or reuses the browser's session) and exchanges the code: the tokens of a fresh
 * login, and the whole token response.
 */
export async function login(
  server: Endpoint,
  client: Client,
  username: string,
  options: { browser?: Browser; scope?: string; password?: string } = {},
): Promise<{
  accessToken: string;
  refreshToken: string;
  idToken: string | undefined;
  body: Record<string, unknown>;
  browser: Browser;
}> {
  const browser = options.browser ?? new Browser();
  const { response, verifier } = await authorize(
    server,
    browser,
    client,
    username,
    options.scope === undefined ? {} : { scope: options.scope },
    options.password === undefined ? {} : { password: options.password },
  );
  const body = await exchangeCode(server, client, response, verifier);
  const accessToken = body.access_token as string;
  const refreshToken = body.refresh_token as string;
  assert.ok(accessToken && refreshToken);
  const idToken = body.id_token as string | undefined;
  return { accessToken, refreshToken, idToken, body, browser };
}

/**
 * The code in `response` (the redirect `authorize` ended with) exchanged at the token endpoint with
 * its PKCE `verifier`; the exchange must succeed. Returns the token response.
 */
export async function exchangeCode(
  server: Endpoint,
  client: Client,
  response: Response,
  verifier: string,
): Promise<Record<string, unknown>> {
  const exchanged = await tokenRequest(server, client, {
    grant_type: 'authorization_code',
    code: codeFrom(response),
    redirect_uri: REDIRECT_URI,
    code_verifier: verifier,
  });
  assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
  return exchanged.body;
}

/** A login page reached through /authorize: the browser holding its cookies, the page, its form. */
export interface LoginPage {
  browser: Browser;
  status: number;
  body: string;
  /** Where the form posts. */
  action: string;
  csrf: string;
}

/** Opens a fresh login page for `clientId` (scope openid, PKCE), in `browser` or a new one. */
export async function openLoginPage(
  server: Endpoint,
  clientId: string,
  browser = new Browser(),
): Promise<LoginPage> {
  const response = await browser.follow(
    authorizeUrl(server, {
      client_id: clientId,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      scope: 'openid',
      code_challenge: pkcePair().challenge,
      code_challenge_method: 'S256',
    }),
    server.origin,
  );
  const body = await response.text();
  return {
    browser,
    status: response.status,
    body,
    action: formAction(body, server.origin),
    csrf: formField(body, 'csrf_token'),
  };
}

/** Posts the login form of `page` (to `action` when given: another instance serving the issuer). */
export async function submitLogin(
  page: LoginPage,
  username: string,
  password: string,
  options: { headers?: Record<string, string>; action?: string } = {},
): Promise<{ status: number; body: string }> {
  const response = await page.browser.fetch(options.action ?? page.action, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...options.headers },
    body: new URLSearchParams({ csrf_token: page.csrf, username, password }).toString(),
  });
  return { status: response.status, body: await response.text() };
}
