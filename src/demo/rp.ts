import { createHash, randomBytes } from 'node:crypto';
import type Koa from 'koa';
import type { JSONWebKeySet } from 'jose';
import type { ApplicationService } from '../applications/types.ts';
import type { Config } from '../config/load.ts';
import type { Logger } from '../logging/logger.ts';
import { claimsTable, demoPage, html, type Html } from './page.ts';
import {
  DemoFailure,
  discover,
  fetchJson,
  oauthError,
  ownOrigin,
  validateIdToken,
  viaOwnOrigin,
} from './provider-client.ts';
import { demoSetup } from './setup.ts';
import { demoUrls } from './urls.ts';
import { sameText } from '../util/same-text.ts';

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
const WANTED_SCOPES = ['openid', 'profile', 'email', 'groups'];

interface FlowCookie {
  state: string;
  nonce: string;
  verifier: string;
  startedAt: number;
}

const random = () => randomBytes(32).toString('base64url');
const s256 = (value: string) => createHash('sha256').update(value, 'ascii').digest('base64url');

export function demoRelyingParty(deps: DemoRelyingPartyDependencies): Koa.Middleware {
  const { config } = deps;
  const log = deps.logger.child({ component: 'demo-rp' });
  const issuer = config.issuer;
  const urls = demoUrls(issuer);
  const prefix = urls.pathPrefix;
  const requireSetup = demoSetup(deps);

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
    const discovery = await discover(issuer, ownOrigin(ctx));
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
    if (typeof state !== 'string' || !sameText(state, flow.state))
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
    const discovery = await discover(issuer, origin);
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
      issuer,
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

  const underPrefix = `${prefix}/`;
  // No HEAD where the GET changes something, as a HEAD must not (RFC 9110 §9.2.1): the start asks
  // the provider's discovery and sets the flow cookie (replacing one in progress), the callback
  // takes that cookie and redeems the code.
  const changesState = new Set([`${prefix}/`, `${prefix}/callback`]);
  const answer: Koa.Middleware = async (ctx) => {
    const allowed = changesState.has(ctx.path) ? ['GET'] : ['GET', 'HEAD'];
    if (!allowed.includes(ctx.method)) {
      ctx.set('Allow', allowed.join(', '));
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
  return (ctx, next) =>
    ctx.path === prefix || ctx.path.startsWith(underPrefix) ? answer(ctx, next) : next();
}
