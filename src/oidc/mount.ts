import type Koa from 'koa';
import type { errors, KoaContextWithOIDC, Provider } from 'oidc-provider';
import type { Branding } from '../http/pages/branding.ts';
import { notFramedPolicy, setPageHeaders } from '../http/content-security-policy.ts';
import { answerMethodNotAllowed, answerNotFound, answerRefusal, answerTooLarge } from '../http/refusal.ts';
import {
  CONTENT_ENCODING_MESSAGE,
  declaresContentCoding,
  declaresMoreThan,
  FORM_CHARSET_MESSAGE,
  gatherBody,
  MALFORMED_FORM_MESSAGE,
  MALFORMED_QUERY_MESSAGE,
  nonUtf8Charset,
  parseFormBody,
  readBodyBytes,
  RequestBodyTooLarge,
  wellFormedQuery,
} from '../http/request-body.ts';
import { preparedAnswers } from './prepared-answers.ts';
import { providerRouteMethods } from './provider-internals.ts';

/**
 * The provider's routes, relative to the issuer path (`/o`): the Python plugin's paths, so that
 * relying parties configured for it keep working. Discovery advertises these exact forms.
 */
export const PROVIDER_ROUTES = {
  authorization: '/authorize/',
  token: '/token/',
  revocation: '/revoke_token/',
  introspection: '/introspect/',
  userinfo: '/userinfo/',
  end_session: '/logout/',
  jwks: '/.well-known/jwks.json',
} as const;

/** Routes registered with a trailing slash: the bare form is given one before routing. */
const SLASHED = new Set(
  Object.values(PROVIDER_ROUTES)
    .filter((route) => route.endsWith('/'))
    .map((route) => route.slice(0, -1)),
);

/**
 * Answer 404 whatever the provider would do: no dynamic client registration (a self-registered
 * client would have an empty, i.e. open, whitelist), no OAuth server metadata beside OIDC discovery.
 */
const BLOCKED_UNDER_ISSUER = new Set([
  '/register',
  '/applications',
  '/.well-known/oauth-authorization-server',
  '/.well-known/oauth-protected-resource',
]);
const BLOCKED_AT_ROOT = ['/.well-known/oauth-authorization-server', '/.well-known/oauth-protected-resource'];
/** What every path blocked at the root starts with, in lower case. */
const BLOCKED_AT_ROOT_PREFIX = '/.well-known/oauth-';

function blockedAtRoot(path: string): boolean {
  const lowered = path.toLowerCase();
  if (!lowered.startsWith(BLOCKED_AT_ROOT_PREFIX)) return false;
  return BLOCKED_AT_ROOT.some((blocked) => lowered === blocked || lowered.startsWith(`${blocked}/`));
}

/** The provider's routes that read a form body (the sign-in forms read theirs in src/http/). */
const FORM_ROUTES = new Set([
  '/authorize',
  '/token',
  '/introspect',
  '/revoke_token',
  '/userinfo',
  '/logout',
  '/logout/confirm',
]);

/** The provider's own body limit for form posts (lib/shared/selective_body.js). */
const FORM_BODY_LIMIT = 56 * 1024;

/** What the provider's body reader throws past its limit, as the cause of its `invalid_request` (lib/shared/selective_body.js). */
const BODY_TOO_LARGE = 'request entity too large';

/**
 * Tells `refused` of each request whose body the provider refused for its size: one it read past
 * the limit, its length undeclared (a chunked body), which it answers as any unreadable body. The
 * events are the errors of its routes that read a form body (lib/helpers/initialize_app.js).
 */
function noteBodiesTooLarge(provider: Provider, refused: (ctx: object) => void): void {
  const listener = (ctx: KoaContextWithOIDC, error: errors.OIDCProviderError) => {
    if ((error.cause as Error | undefined)?.message === BODY_TOO_LARGE) refused(ctx);
  };
  provider.on('grant.error', listener);
  provider.on('introspection.error', listener);
  provider.on('revocation.error', listener);
  provider.on('userinfo.error', listener);
  provider.on('end_session_confirm.error', listener);
}

/**
 * The provider's routes that read the Authorization header: those that authenticate the client
 * calling them (RFC 6749 §2.3), and userinfo, which reads the bearer token there (RFC 6750 §2.1).
 */
const AUTHORIZATION_ROUTES = new Set(['/token', '/introspect', '/revoke_token', '/userinfo']);

/** What a request to them with more than one Authorization header is answered (400). */
export const REPEATED_AUTHORIZATION_MESSAGE =
  'The Authorization header is given more than once: send it once, with one credential.';

/**
 * True when the request gives the Authorization header more than once. Node keeps the first and
 * drops the others, so the client would be authenticated (or the bearer token read) by one of two
 * credentials, which a proxy in front may have read the other way round. The header takes one value
 * (RFC 9110 §11.6.2), as a parameter of these endpoints does (RFC 6749 §3.2, which the provider
 * refuses repeated), and a client uses one authentication method (RFC 6749 §2.3).
 */
function repeatsAuthorization(ctx: Koa.Context): boolean {
  if (ctx.req.headers.authorization === undefined) return false;
  const raw = ctx.req.rawHeaders;
  let seen = 0;
  for (let index = 0; index < raw.length; index += 2) {
    const name = raw[index]!;
    if (name.length === 13 && name.toLowerCase() === 'authorization') seen += 1;
  }
  return seen > 1;
}

/**
 * The 400 for `repeatsAuthorization`, before the body is read: the connection closes after the
 * answer. At userinfo with the challenge the provider gives its own refusals there (RFC 6750 §3).
 */
function refuseRepeatedAuthorization(ctx: Koa.Context, key: string, issuer: string): void {
  ctx.set('Connection', 'close');
  if (key === '/userinfo') {
    ctx.set(
      'WWW-Authenticate',
      `Bearer realm="${issuer}", error="invalid_request", error_description="${REPEATED_AUTHORIZATION_MESSAGE}"`,
    );
  }
  answerRefusal(
    ctx,
    { status: 400, error: 'invalid_request', description: REPEATED_AUTHORIZATION_MESSAGE },
    'json',
  );
}

/** True for the provider's routes a browser posts to: their refusals are HTML pages, the others' JSON. */
function browserRoute(key: string): boolean {
  return key === '/authorize' || key === '/logout' || key.startsWith('/logout/');
}

/** The 413 for a form body over the provider's limit; whatever is still coming is read and dropped. */
function refuseTooLarge(ctx: Koa.Context, key: string, branding: Branding): void {
  ctx.req.resume();
  answerTooLarge(ctx, FORM_BODY_LIMIT, browserRoute(key) ? { page: branding } : 'json');
}

/**
 * A body with a content coding (gzip, deflate, br…): the provider reads the bytes as they come, so a
 * compressed form would be refused as missing its `grant_type`. Answered 415, RFC 9110's status for
 * an unsupported content coding, with `Accept-Encoding: identity` to name the one accepted; the body
 * is the OAuth `invalid_request`, as every refusal of these endpoints. It is not read: the
 * connection closes after the answer.
 */
function refuseContentEncoding(ctx: Koa.Context, key: string, branding: Branding): void {
  ctx.set('Accept-Encoding', 'identity');
  refuseUnreadForm(ctx, key, branding, CONTENT_ENCODING_MESSAGE);
}

/**
 * A form declared in a charset other than UTF-8: the provider would decode its raw bytes in that
 * charset but its %-escapes as UTF-8, our authorization and logout forms all of it as UTF-8. Answered
 * as a content coding is (415, not read, the connection closed), as what cannot be read as sent.
 * Except on the endpoints a relying party's back end calls (token, introspection, revocation,
 * userinfo) for US-ASCII and ISO-8859-1 (`latinCharset`): what such a request holds is ASCII,
 * the same bytes in either, and Apache HttpClient 4.0–4.1 (Android's too) declares
 * `charset=ISO-8859-1` by default. Nothing of those bodies is kept, and the provider decodes them in
 * the charset declared.
 */
function refuseCharset(ctx: Koa.Context, key: string, branding: Branding): void {
  refuseUnreadForm(ctx, key, branding, FORM_CHARSET_MESSAGE);
}

/**
 * A request gone (its client, or its time) before its form body had all come: answered as the provider
 * answers a body it cannot read (400 `invalid_request`), for the access log, as no one is left to read it.
 */
function refuseUnreadBody(ctx: Koa.Context, key: string, branding: Branding): void {
  answerRefusal(
    ctx,
    { status: 400, error: 'invalid_request', description: 'failed to parse the request body' },
    browserRoute(key) ? { page: branding } : 'json',
  );
}

/** A form body refused unread (415 `invalid_request`, `description`): the connection closes after the answer. */
function refuseUnreadForm(ctx: Koa.Context, key: string, branding: Branding, description: string): void {
  ctx.set('Connection', 'close');
  answerRefusal(
    ctx,
    { status: 415, error: 'invalid_request', description },
    browserRoute(key) ? { page: branding } : 'json',
  );
}

/** Whether the form's declared charset is refused on the route `key` (`refuseCharset`). */
function refusedCharset(ctx: Koa.Context, key: string): boolean {
  const charset = nonUtf8Charset(ctx);
  if (charset === undefined) return false;
  return browserRoute(key) || !latinCharset(charset);
}

/** US-ASCII or ISO-8859-1 under any of their names: those a decoder reads as windows-1252 (WHATWG Encoding). */
function latinCharset(charset: string): boolean {
  try {
    return new TextDecoder(charset).encoding === 'windows-1252';
  } catch {
    return false;
  }
}

/**
 * The paths under the issuer that a browser shows (authorization, logout, the sign-in pages, the EVE
 * SSO callback): a refusal there is an HTML page, elsewhere JSON.
 */
export function browserPaths(issuerPath: string): (path: string) => boolean {
  return (path) => {
    if (!path.startsWith(`${issuerPath}/`)) return false;
    const key = path.slice(issuerPath.length).toLowerCase();
    return ['/authorize', '/logout', '/interaction', '/eve-sso'].some(
      (route) => key === route || key.startsWith(`${route}/`),
    );
  };
}

/**
 * Pages a browser renders: never inside a frame (RFC 9700 §4.16, clickjacking), never read as another
 * type than the one they declare, and no referrer (their address carries the authorization request)
 * sent off the site, as their `<meta name="referrer">` says too (the header covers what the browser
 * fetches before it reads the page, and pages that have no such tag).
 */
export function denyFraming(ctx: Koa.Context): void {
  setPageHeaders(ctx, notFramedPolicy());
}

/**
 * Refuses (400 `invalid_request`) a request under the issuer whose query is not UTF-8 text with
 * well-formed %-escapes, before the interaction pages and the provider read it: read loosely, U+FFFD
 * (or a stray `%`) would stand in its `state`, `nonce` or `login_hint`, be kept with the request and
 * handed back to the relying party, in a redirect to it, as if it had sent it. Answered here, the
 * refusal is never such a redirect. True when the request was answered.
 */
export function refuseMalformedQuery(issuerPath: string, branding: Branding): (ctx: Koa.Context) => boolean {
  const underIssuer = `${issuerPath}/`;
  const browserPath = browserPaths(issuerPath);
  return (ctx) => {
    if (wellFormedQuery(ctx)) return false;
    if (ctx.path !== issuerPath && !ctx.path.startsWith(underIssuer)) return false;
    answerRefusal(
      ctx,
      { status: 400, error: 'invalid_request', description: MALFORMED_QUERY_MESSAGE },
      browserPath(ctx.path) ? { page: branding } : 'json',
    );
    return true;
  };
}

/** A blocked path: the JSON 404 whoever asks, as an endpoint that does not exist. */
function notFound(ctx: Koa.Context): void {
  answerNotFound(ctx, 'json');
}

/**
 * Serves the provider under the issuer's path. In front of it, one small normalisation step:
 * - each route answers with or without its trailing slash;
 * - the blocked paths answer 404; a method the provider has no route for, where it has routes for
 *   others, 405 with `Allow`; an OPTIONS that is no CORS preflight, 204 with `Allow`; a HEAD where
 *   a GET changes state (authorization, its return from the sign-in pages, logout), 405;
 * - the authorization endpoint drops a malformed `max_age` (ignored, where the provider
 *   would refuse the request);
 * - a form POST to authorize or logout is handed on as the equivalent GET, refused (400) when it is
 *   not UTF-8 with well-formed %-escapes;
 * - a form body with a content coding, or declared in a charset other than UTF-8, is refused (415)
 *   on the provider's routes (US-ASCII and ISO-8859-1 taken on token, introspection, revocation
 *   and userinfo);
 * - a request to token, introspection, revocation or userinfo with more than one Authorization
 *   header is refused (400), where Node would keep the first;
 * - a form body the provider reads itself is gathered into one buffer first (`gatherBody`): the
 *   provider keeps a Buffer per chunk, a body trickled a byte a packet megabytes;
 * - browser-facing endpoints refuse framing; userinfo is never cached;
 * - discovery and the JWKS are answered from the provider's own first answer (prepared-answers.ts).
 * `current()` is read per request: the provider instance is replaced when the signing keys change.
 */
export function mountProvider(
  issuerPath: string,
  current: () => Provider,
  branding: Branding,
): Koa.Middleware {
  const composed = new WeakMap<Provider, (ctx: Koa.Context, next: () => Promise<void>) => Promise<void>>();
  /** Requests whose body the provider found over its limit only while reading it. */
  const tooLarge = new WeakSet<object>();
  const runnerFor = (provider: Provider) => {
    let runner = composed.get(provider);
    if (!runner) {
      runner = compose(provider.middleware as Koa.Middleware[]);
      composed.set(provider, runner);
      noteBodiesTooLarge(provider, (ctx) => tooLarge.add(ctx));
    }
    return runner;
  };

  const underIssuer = `${issuerPath}/`;
  const prepared = preparedAnswers(issuerPath);
  const serve: Koa.Middleware = async (ctx, next) => {
    let inner = ctx.path.slice(issuerPath.length) || '/';
    const key = withoutTrailingSlashes(inner.toLowerCase());
    if (BLOCKED_UNDER_ISSUER.has(key)) return notFound(ctx);
    if (SLASHED.has(key) && !inner.endsWith('/')) inner = `${inner}/`;

    if (
      key === '/authorize' ||
      key === '/logout' ||
      key.startsWith('/logout/') ||
      key.startsWith('/authorize/')
    ) {
      denyFraming(ctx);
    }
    // A body announced over the provider's own limit is refused before anything reads it.
    if (ctx.method === 'POST' && declaresMoreThan(ctx.req, FORM_BODY_LIMIT))
      return refuseTooLarge(ctx, key, branding);
    if (ctx.method === 'POST' && FORM_ROUTES.has(key) && declaresContentCoding(ctx))
      return refuseContentEncoding(ctx, key, branding);
    if (ctx.method === 'POST' && FORM_ROUTES.has(key) && refusedCharset(ctx, key))
      return refuseCharset(ctx, key, branding);
    if (AUTHORIZATION_ROUTES.has(key) && repeatsAuthorization(ctx))
      return refuseRepeatedAuthorization(ctx, key, current().issuer);
    if (key === '/userinfo') {
      // On Node's response: Koa's `set` builds four arrays per call for one plain string.
      ctx.res.setHeader('Cache-Control', 'no-store');
      ctx.res.setHeader('Pragma', 'no-cache');
    }
    const provider = current();
    if (ctx.method === 'HEAD' && refusesHead(key) && refuseHead(ctx, provider, inner, key, branding)) return;
    if (key === '/authorize' || key === '/logout') {
      const handled = await normaliseFrontChannelRequest(ctx, key === '/authorize', branding);
      if (!handled) return;
    }
    // The provider keeps a Buffer per chunk of the forms it reads (lib/shared/selective_body.js):
    // one trickled a byte a packet is gathered first, and handed on as one.
    if (
      ctx.method === 'POST' &&
      FORM_ROUTES.has(key) &&
      ctx.is('application/x-www-form-urlencoded') &&
      !(await gatherBody(ctx.req, FORM_BODY_LIMIT))
    )
      return refuseUnreadBody(ctx, key, branding);

    const keepAnswer = prepared.watch(ctx, provider);
    const outerPath = ctx.path;
    const state = ctx as unknown as { mountPath?: string };
    setPath(ctx, inner);
    state.mountPath = issuerPath;
    try {
      await runnerFor(provider)(ctx, async () => {
        setPath(ctx, outerPath);
        state.mountPath = undefined;
        await next();
        // No route of the provider took the request: only then are its routes for other methods looked up.
        if (ctx.body == null && ctx.status === 404) refuseMethod(ctx, provider, inner, key, branding);
      });
      // One undeclared (chunked) is found too large only by reading it: the same answer.
      if (tooLarge.has(ctx)) refuseTooLarge(ctx, key, branding);
      if (ctx.method === 'OPTIONS' && ctx.body == null && ctx.status === 404)
        describeOptions(ctx, provider, inner);
      keepAnswer?.();
    } finally {
      setPath(ctx, outerPath);
      state.mountPath = undefined;
    }
  };
  // Requests for other paths pass on without waiting here.
  return (ctx, next) => {
    if (blockedAtRoot(ctx.path)) return notFound(ctx);
    if (ctx.path !== issuerPath && !ctx.path.startsWith(underIssuer)) return next();
    if (prepared.answer(ctx, current())) return;
    return serve(ctx, next);
  };
}

/** The order an `Allow` header names methods in. */
const ALLOW_ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS'];

/**
 * A request no route answered, at a path where the provider has routes for other methods (`PUT
 * /o/token/`, `POST /o/.well-known/jwks.json`): 405 with `Allow` naming them (RFC 9110 §15.5.6),
 * not a 404 that says the endpoint does not exist. The methods are the provider's own router's
 * (OPTIONS where it answers CORS preflights), plus POST on authorization and logout, whose form
 * POST this mount hands on as the equivalent GET. Elsewhere, the 404 stands.
 */
function refuseMethod(
  ctx: Koa.Context,
  provider: Provider,
  inner: string,
  key: string,
  branding: Branding,
): void {
  const routed = providerRouteMethods(provider, inner);
  if (routed.length === 0 || routed.includes(ctx.method)) return;
  answerMethodNotAllowed(ctx, allowedMethods(routed, key), browserRoute(key) ? { page: branding } : 'json');
}

/**
 * The methods an endpoint takes, for its `Allow`: the provider's router's (`routed`), plus POST on
 * authorization and logout, whose form POST this mount hands on as the equivalent GET, less HEAD
 * where a GET changes state (`refusesHead`).
 */
function allowedMethods(routed: readonly string[], key: string): string[] {
  const formPost = (key === '/authorize' || key === '/logout') && routed.includes('GET');
  return ALLOW_ORDER.filter(
    (method) =>
      (routed.includes(method) || (formPost && method === 'POST')) &&
      !(method === 'HEAD' && refusesHead(key)),
  );
}

/**
 * The provider's routes whose GET changes state: authorization (with a session, it issues a code;
 * without, it starts an interaction), its return from the sign-in pages (`/authorize/:uid`, which
 * takes the interaction's result and issues the code) and logout (it writes the confirmation's secret
 * into the session, so a confirmation page already shown no longer works). oidc-provider's router
 * answers HEAD as GET on every GET route, running all of it; a HEAD must change nothing (RFC 9110
 * §9.2.1), so there it is refused, as on the sign-in pages (interactions/routes.ts).
 */
function refusesHead(key: string): boolean {
  return key === '/authorize' || key === '/logout' || key.startsWith('/authorize/');
}

/**
 * A HEAD where `refusesHead`: 405 with `Allow` when the provider has a GET route there (`/authorize/`
 * and its `/authorize/:uid`); false, answering nothing, elsewhere (`/authorize/a/b` keeps its 404).
 */
function refuseHead(
  ctx: Koa.Context,
  provider: Provider,
  inner: string,
  key: string,
  branding: Branding,
): boolean {
  const routed = providerRouteMethods(provider, inner);
  if (!routed.includes('GET')) return false;
  answerMethodNotAllowed(ctx, allowedMethods(routed, key), { page: branding });
  return true;
}

/**
 * An OPTIONS request that is no CORS preflight (no `Access-Control-Request-Method`), at an endpoint
 * whose preflights the provider answers: its CORS step hands it to a last step that does nothing,
 * which would leave a 404. Answered 204 with `Allow` naming the endpoint's methods (RFC 9110
 * §9.3.7), the provider's CORS handling left as it is.
 */
function describeOptions(ctx: Koa.Context, provider: Provider, inner: string): void {
  const routed = providerRouteMethods(provider, inner);
  if (!routed.includes('OPTIONS')) return;
  ctx.status = 204;
  ctx.set('Allow', ALLOW_ORDER.filter((method) => routed.includes(method)).join(', '));
}

/** `path.replace(/\/+$/, '')` without the regular expression, which tries every position of the path. */
function withoutTrailingSlashes(path: string): string {
  let end = path.length;
  while (end > 0 && path.charCodeAt(end - 1) === SLASH) end -= 1;
  return end === path.length ? path : path.slice(0, end);
}

/**
 * `ctx.path = path`, keeping the query, without Koa's round trip through `url.format` (which
 * formats the whole parsed URL again, then parses it on the next read): for a request target in
 * origin form (`/o/token/?…`), which is every request but a proxy's absolute form, the new URL is
 * the path and the query as they stand. Koa's setter does the rest, and paths it would escape.
 */
function setPath(ctx: Koa.Context, path: string): void {
  const url = ctx.url;
  if (url.charCodeAt(0) !== SLASH || path.includes('#') || path.includes('?')) {
    ctx.path = path;
    return;
  }
  const query = url.indexOf('?');
  ctx.url = query === -1 ? path : `${path}${url.slice(query)}`;
}
const SLASH = '/'.charCodeAt(0);

/**
 * Authorization and logout requests arrive by GET or by form POST (both required by the specs).
 * A POST is read here and handed on as the equivalent GET: the provider's own POST support needs
 * SameSite=None session cookies; ours are SameSite=Lax. False when the request was answered here
 * (an unreadable body).
 */
async function normaliseFrontChannelRequest(
  ctx: Koa.Context,
  authorization: boolean,
  branding: Branding,
): Promise<boolean> {
  if (ctx.method === 'GET' || ctx.method === 'HEAD') {
    // Koa's `ctx.query` (URLSearchParams, kept per query string) is the parse the provider reads
    // the request's parameters from: looking at `max_age` there parses nothing twice. Only a
    // malformed one costs a parse of its own, to hand on the query without it.
    if (authorization && malformedMaxAge(ctx.query.max_age)) {
      const params = new URLSearchParams(ctx.querystring);
      params.delete('max_age');
      ctx.querystring = params.toString();
    }
    return true;
  }
  if (ctx.method !== 'POST') return true;
  if (!ctx.is('application/x-www-form-urlencoded')) {
    // OpenID Connect's POST is form serialisation; any other body is malformed, not a missing route.
    // It is not read: the connection closes after the answer.
    ctx.set('Connection', 'close');
    answerRefusal(
      ctx,
      {
        status: 400,
        error: 'invalid_request',
        description: `${authorization ? 'An authorization' : 'A logout'} request is sent as a query, or as a form (application/x-www-form-urlencoded).`,
      },
      { page: branding },
    );
    return false;
  }
  let body: Buffer;
  try {
    body = await readBodyBytes(ctx.req, FORM_BODY_LIMIT);
  } catch (error) {
    if (error instanceof RequestBodyTooLarge) answerTooLarge(ctx, error.limit, { page: branding });
    else
      answerRefusal(
        ctx,
        { status: 400, error: 'invalid_request', description: 'The request body could not be read.' },
        { page: branding },
      );
    return false;
  }
  // Read loosely, U+FFFD in place of what was sent would be kept with the request (its nonce, its
  // state) and handed back to the relying party as if it had sent it.
  const params = parseFormBody(body);
  if (!params) {
    answerRefusal(
      ctx,
      { status: 400, error: 'invalid_request', description: MALFORMED_FORM_MESSAGE },
      { page: branding },
    );
    return false;
  }
  if (authorization) dropMalformedMaxAge(params);
  ctx.method = 'GET';
  ctx.querystring = params.toString();
  return true;
}

/** The provider accepts a non-negative safe integer; anything else is dropped, as if absent. */
function dropMalformedMaxAge(params: URLSearchParams): void {
  const values = params.getAll('max_age');
  if (values.length === 1 && malformedMaxAge(values[0])) params.delete('max_age');
}

/**
 * True for one `max_age` value the provider would refuse. Repeated (an array), the provider refuses
 * the request for the repetition itself: left as it is.
 */
function malformedMaxAge(value: string | string[] | undefined): boolean {
  if (typeof value !== 'string') return false;
  const parsed = +value;
  return !(value.trim() !== '' && Number.isSafeInteger(parsed) && parsed >= 0);
}

function compose(
  middleware: Koa.Middleware[],
): (ctx: Koa.Context, next: () => Promise<void>) => Promise<void> {
  // As koa-compose: each layer's promise is handed on, not awaited in a function of its own.
  return (ctx, next) => {
    let index = -1;
    const dispatch = (i: number): Promise<void> => {
      if (i <= index) return Promise.reject(new Error('next() called multiple times'));
      index = i;
      const fn = i === middleware.length ? next : middleware[i];
      if (!fn) return Promise.resolve();
      try {
        return Promise.resolve(fn(ctx as Koa.ParameterizedContext, () => dispatch(i + 1)));
      } catch (error) {
        return Promise.reject(error as Error);
      }
    };
    return dispatch(0);
  };
}
