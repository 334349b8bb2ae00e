import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type Koa from 'koa';
import { createLocalJWKSet, type JSONWebKeySet, type JWTPayload, jwtVerify } from 'jose';
import { verifyClientSecret } from '../applications/secret.ts';
import type { Application, ApplicationService } from '../applications/types.ts';
import type { Config } from '../config/load.ts';
import type { Logger } from '../logging/logger.ts';
import { assertNever } from '../util/assert-never.ts';
import { type DemoClientCredentials, readDemoClient } from './client-file.ts';
import { claimsTable, demoPage, html, type Html } from './page.ts';
import { DEMO_CLIENT_ID, demoUrls } from './urls.ts';

/**
 * The demo relying party: a confidential client that signs a person in through this
 * provider with the authorization code flow + PKCE S256, validates the id_token, calls userinfo and
 * shows both sets of claims. It is served by the same process in development mode only, and talks
 * to the provider over real HTTP to the address the request came in on (loopback for a local
 * server), exactly as an external relying party would. It never shows or logs a token.
 */

export interface DemoRelyingPartyDependencies {
  config: Pick<Config, 'issuer' | 'dataDir'>;
  applications: Pick<ApplicationService, 'findByClientId'>;
  logger: Logger;
}

/** Name of the cookie holding state, nonce and PKCE verifier of the sign-in in progress (signed). */
export const DEMO_FLOW_COOKIE = 'aa_oidc_demo_flow';
const FLOW_LIFETIME_MS = 10 * 60 * 1000;
const FETCH_TIMEOUT_MS = 10_000;
const WANTED_SCOPES = ['openid', 'profile', 'email', 'groups'];

interface FlowCookie {
  state: string;
  nonce: string;
  verifier: string;
  startedAt: number;
}

type Setup =
  | { kind: 'ready'; credentials: DemoClientCredentials; application: Application }
  | { kind: 'not_seeded' }
  | { kind: 'inactive' }
  | { kind: 'secret_mismatch' }
  | { kind: 'redirect_uri_mismatch'; registered: string[] };

interface Discovery {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  userinfo_endpoint: string;
  jwks_uri: string;
  scopes_supported?: string[];
}

/** A failure shown to the person as a page: a status, a title and what to do. */
class DemoFailure extends Error {
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

const random = () => randomBytes(32).toString('base64url');
const s256 = (value: string) => createHash('sha256').update(value, 'ascii').digest('base64url');

function sameString(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  return left.length === right.length && timingSafeEqual(left, right);
}

/** `http://ADDRESS:PORT` of the socket the request arrived on: the server's own listening address. */
function ownOrigin(ctx: Koa.Context): string {
  const socket = ctx.req.socket;
  let address = socket.localAddress ?? '127.0.0.1';
  if (address.startsWith('::ffff:') && address.includes('.')) address = address.slice(7);
  const host = address.includes(':') ? `[${address}]` : address;
  return `http://${host}:${socket.localPort}`;
}

/** The same endpoint, reached through the server's own address instead of the public issuer host. */
function viaOwnOrigin(endpoint: string, issuer: string, origin: string): string {
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

async function fetchJson(
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

function oauthError(what: string, status: number, body: Record<string, unknown>): DemoFailure {
  const error = typeof body.error === 'string' ? body.error : `HTTP ${status}`;
  const description = typeof body.error_description === 'string' ? body.error_description : '';
  return new DemoFailure(502, `${what} failed`, `${error}${description ? `: ${description}` : ''}`);
}

export function demoRelyingParty(deps: DemoRelyingPartyDependencies): Koa.Middleware {
  const { config, applications } = deps;
  const log = deps.logger.child({ component: 'demo-rp' });
  const issuer = config.issuer;
  const urls = demoUrls(issuer);
  const prefix = urls.pathPrefix;

  async function loadSetup(): Promise<Setup> {
    const credentials = readDemoClient(config.dataDir);
    const application = await applications.findByClientId(DEMO_CLIENT_ID);
    if (credentials === undefined || application === undefined) return { kind: 'not_seeded' };
    if (!application.active) return { kind: 'inactive' };
    if (credentials.clientId !== DEMO_CLIENT_ID || !verifyClientSecret(application, credentials.clientSecret))
      return { kind: 'secret_mismatch' };
    if (!application.redirectUris.includes(urls.callback))
      return { kind: 'redirect_uri_mismatch', registered: application.redirectUris };
    return { kind: 'ready', credentials, application };
  }

  async function requireSetup(): Promise<{ credentials: DemoClientCredentials; application: Application }> {
    const setup = await loadSetup();
    switch (setup.kind) {
      case 'ready':
        return setup;
      case 'not_seeded':
        throw new DemoFailure(
          404,
          'The demo is not set up',
          html`Run <code>npx aa-oidc demo</code> (with the same configuration as this server), then reload
            this page.`,
        );
      case 'inactive':
        throw new DemoFailure(
          409,
          'The demo application is deactivated',
          html`Someone switched it off. <code>npx aa-oidc app activate ${DEMO_CLIENT_ID}</code> switches it on
            again.`,
        );
      case 'secret_mismatch':
        throw new DemoFailure(
          409,
          'The demo application’s secret has changed',
          html`The stored secret no longer matches the application (was it rotated, or is this another
            database?). Run <code>npx aa-oidc demo</code> again.`,
        );
      case 'redirect_uri_mismatch':
        throw new DemoFailure(
          409,
          'The demo application is registered for another address',
          html`It expects <code>${setup.registered.join(' ')}</code> but this server’s issuer is
            <code>${issuer}</code>. Run <code>npx aa-oidc demo</code> with the server’s configuration (or
            <code>--issuer-url ${issuer}</code>).`,
        );
      default:
        return assertNever(setup);
    }
  }

  async function discover(origin: string): Promise<Discovery> {
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

  async function start(ctx: Koa.Context): Promise<void> {
    // The answer comes back to the issuer's host, and the browser keeps the flow cookie per host:
    // opened as http://127.0.0.1:8000/demo/ while the issuer says localhost, move there first (once:
    // `moved` stops a loop behind a proxy that rewrites the Host header).
    if (ctx.host !== new URL(urls.start).host && ctx.query.moved === undefined) {
      ctx.set('Cache-Control', 'no-store');
      ctx.redirect(`${urls.start}?moved=1`);
      return;
    }
    const { credentials } = await requireSetup();
    const discovery = await discover(ownOrigin(ctx));
    const flow: FlowCookie = { state: random(), nonce: random(), verifier: random(), startedAt: Date.now() };
    const supported = discovery.scopes_supported ?? WANTED_SCOPES;
    const scope = WANTED_SCOPES.filter((name) => supported.includes(name)).join(' ');
    const target = new URL(discovery.authorization_endpoint);
    target.search = new URLSearchParams({
      client_id: credentials.clientId,
      response_type: 'code',
      redirect_uri: urls.callback,
      scope,
      state: flow.state,
      nonce: flow.nonce,
      code_challenge: s256(flow.verifier),
      code_challenge_method: 'S256',
    }).toString();
    ctx.cookies.set(DEMO_FLOW_COOKIE, Buffer.from(JSON.stringify(flow)).toString('base64url'), {
      signed: true,
      httpOnly: true,
      sameSite: 'lax',
      secure: ctx.secure,
      path: `${prefix}/`,
      maxAge: FLOW_LIFETIME_MS,
    });
    ctx.set('Cache-Control', 'no-store');
    ctx.redirect(target.toString());
  }

  function takeFlow(ctx: Koa.Context): FlowCookie {
    const raw = ctx.cookies.get(DEMO_FLOW_COOKIE, { signed: true });
    // One use only: cleared whatever happens next.
    ctx.cookies.set(DEMO_FLOW_COOKIE, null, { path: `${prefix}/`, signed: true });
    const restart = html`<a href="${urls.start}">Start again</a>.`;
    if (raw === undefined)
      throw new DemoFailure(
        400,
        'No sign-in in progress',
        html`The sign-in cookie is missing or was tampered with. ${restart}`,
      );
    let flow: FlowCookie;
    try {
      flow = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as FlowCookie;
    } catch {
      throw new DemoFailure(400, 'No sign-in in progress', html`The sign-in cookie is malformed. ${restart}`);
    }
    if (
      typeof flow.state !== 'string' ||
      typeof flow.nonce !== 'string' ||
      typeof flow.verifier !== 'string' ||
      typeof flow.startedAt !== 'number' ||
      Date.now() - flow.startedAt > FLOW_LIFETIME_MS
    )
      throw new DemoFailure(400, 'The sign-in expired', html`It has to finish within 10 minutes. ${restart}`);
    const state = ctx.query.state;
    if (typeof state !== 'string' || !sameString(state, flow.state))
      throw new DemoFailure(
        400,
        'State mismatch',
        html`This answer does not belong to the sign-in this browser started. ${restart}`,
      );
    return flow;
  }

  async function callback(ctx: Koa.Context): Promise<void> {
    const flow = takeFlow(ctx);
    const query = ctx.query;
    // RFC 9207: the answer names the issuer that sent it.
    if (query.iss !== issuer)
      throw new DemoFailure(
        400,
        'Wrong issuer in the answer',
        `expected iss=${issuer}, got ${String(query.iss)}`,
      );
    if (typeof query.error === 'string') {
      const description = typeof query.error_description === 'string' ? query.error_description : '';
      throw new DemoFailure(
        query.error === 'access_denied' ? 403 : 400,
        'The provider did not sign you in',
        html`<code>${query.error}</code>${description ? html`: ${description}` : ''}.
          <a href="${urls.start}">Try again</a>.`,
      );
    }
    if (typeof query.code !== 'string' || query.code === '')
      throw new DemoFailure(400, 'No authorization code', 'the answer carries neither a code nor an error');

    const { credentials } = await requireSetup();
    const origin = ownOrigin(ctx);
    const discovery = await discover(origin);
    const basic = Buffer.from(
      `${encodeURIComponent(credentials.clientId)}:${encodeURIComponent(credentials.clientSecret)}`,
    ).toString('base64');
    const token = await fetchJson(viaOwnOrigin(discovery.token_endpoint, issuer, origin), {
      method: 'POST',
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: query.code,
        redirect_uri: urls.callback,
        code_verifier: flow.verifier,
      }).toString(),
    });
    if (token.status !== 200) throw oauthError('The code exchange', token.status, token.body);
    const { access_token: accessToken, id_token: idToken } = token.body;
    if (typeof accessToken !== 'string' || typeof idToken !== 'string')
      throw new DemoFailure(
        502,
        'The code exchange failed',
        'the token response lacks access_token or id_token',
      );

    const jwks = await fetchJson(viaOwnOrigin(discovery.jwks_uri, issuer, origin));
    if (jwks.status !== 200) throw oauthError('Fetching the JWKS', jwks.status, jwks.body);
    const idClaims = await validateIdToken(
      idToken,
      accessToken,
      jwks.body as unknown as JSONWebKeySet,
      flow.nonce,
      credentials.clientId,
    );

    const userinfo = await fetchJson(viaOwnOrigin(discovery.userinfo_endpoint, issuer, origin), {
      headers: { authorization: `Bearer ${accessToken}` },
    });
    if (userinfo.status !== 200) throw oauthError('The userinfo request', userinfo.status, userinfo.body);
    // OIDC Core 5.3.2: userinfo must be about the same user as the id_token.
    if (userinfo.body.sub !== idClaims.payload.sub)
      throw new DemoFailure(
        502,
        'Userinfo is about someone else',
        'the userinfo sub differs from the id_token sub',
      );

    log.info({ sub: idClaims.payload.sub }, 'demo relying party signed a user in');
    const scopes = typeof token.body.scope === 'string' ? token.body.scope : '';
    const name = typeof userinfo.body.name === 'string' ? userinfo.body.name : String(idClaims.payload.sub);
    render(
      ctx,
      200,
      `Signed in as ${name}`,
      html`<h1>Signed in as ${name}</h1>
        <p class="ok" id="verified">
          The id_token checked out: RS256 signature (key <code>${idClaims.kid}</code>) from the JWKS,
          <code>iss</code>, <code>aud</code>, <code>exp</code>,
          <code>nonce</code>${idClaims.payload.at_hash ? html`, <code>at_hash</code>` : ''}; the answer’s
          <code>state</code> and <code>iss</code> matched; the code was exchanged with PKCE S256.
        </p>
        <p>
          Scopes granted: <code>${scopes}</code>. Refresh token issued:
          ${typeof token.body.refresh_token === 'string' ? 'yes' : 'no'}. (Tokens are never shown.)
        </p>
        <h2>id_token claims</h2>
        <div id="id-token-claims">${claimsTable(idClaims.payload)}</div>
        <h2>userinfo claims</h2>
        <div id="userinfo-claims">${claimsTable(userinfo.body)}</div>
        <p><a href="${urls.start}">Sign in again</a></p>`,
    );
  }

  async function validateIdToken(
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
    if (typeof payload.nonce !== 'string' || !sameString(payload.nonce, nonce))
      throw new DemoFailure(502, 'The id_token is not valid', 'its nonce is not the one this sign-in sent');
    if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload.azp !== clientId)
      throw new DemoFailure(502, 'The id_token is not valid', 'several audiences and azp is not this client');
    if (payload.at_hash !== undefined) {
      const digest = createHash('sha256').update(accessToken, 'ascii').digest();
      const expected = digest.subarray(0, digest.length / 2).toString('base64url');
      if (typeof payload.at_hash !== 'string' || !sameString(payload.at_hash, expected))
        throw new DemoFailure(
          502,
          'The id_token is not valid',
          'its at_hash does not match the access token',
        );
    }
    return { payload, kid: protectedHeader.kid ?? '(none)' };
  }

  function render(ctx: Koa.Context, status: number, title: string, body: Html): void {
    ctx.status = status;
    ctx.type = 'text/html; charset=utf-8';
    // Personal data: never cached, never framed, nothing loaded from elsewhere.
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Pragma', 'no-cache');
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set(
      'Content-Security-Policy',
      "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.body = demoPage(title, body);
  }

  return async (ctx, next) => {
    if (ctx.path !== prefix && !ctx.path.startsWith(`${prefix}/`)) return next();
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.set('Allow', 'GET, HEAD');
      return render(ctx, 405, 'Method not allowed', html`<h1>Method not allowed</h1>`);
    }
    try {
      if (ctx.path === prefix) {
        ctx.status = 301;
        ctx.redirect(`${prefix}/`);
      } else if (ctx.path === `${prefix}/`) await start(ctx);
      else if (ctx.path === `${prefix}/callback`) await callback(ctx);
      else
        render(
          ctx,
          404,
          'Not found',
          html`<h1>Not found</h1>
            <p><a href="${urls.start}">The demo starts here</a>.</p>`,
        );
    } catch (error) {
      if (!(error instanceof DemoFailure)) throw error;
      if (error.status >= 500)
        log.warn(
          { failure: error.title, detail: typeof error.detail === 'string' ? error.detail : undefined },
          'demo relying party failed',
        );
      render(
        ctx,
        error.status,
        error.title,
        html`<h1>${error.title}</h1>
          <p class="alert" role="alert">${error.detail}</p>`,
      );
    }
  };
}
