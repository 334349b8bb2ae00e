import type Koa from 'koa';
import type { Config } from '../config/load.ts';
import type { Branding } from './pages/branding.ts';
import { answerRefusal } from './refusal.ts';

/**
 * A requested host in the form the issuer's URL has (lower case, no default port); undefined when
 * it is no host at all (a path, credentials, spaces…).
 */
export function normalisedHost(raw: string, protocol: string): string | undefined {
  if (raw === '' || /[\s/\\@?#]/.test(raw)) return undefined;
  const parsed = URL.parse(`${protocol}//${raw}`);
  if (!parsed || parsed.username !== '' || parsed.password !== '' || parsed.pathname !== '/')
    return undefined;
  return parsed.host;
}

/**
 * The host the client asked for, as sent: X-Forwarded-Host when a trusted proxy set it (the
 * untrusted ones were dropped by `forwardedHeadersOnlyFromProxies`), else Host. Koa's `ctx.host`
 * is not used here: it quietly repairs some malformed values.
 */
function requestedHost(ctx: Koa.Context): string {
  const forwarded = ctx.app.proxy ? ctx.get('X-Forwarded-Host') : '';
  if (forwarded !== '') return forwarded.split(',')[0]!.trim();
  return ctx.get('Host');
}

/** Where a request pinned to the issuer holds the issuer's scheme (see `answerPinnedScheme`). */
const PINNED_SCHEME = Symbol('aa-oidc issuer scheme');

/**
 * `request.protocol` of `koa`'s requests answers the issuer's scheme for a request pinned to it, and
 * Koa's own reading for any other. Defined once on the application's request prototype: defining
 * the property on each request object was a slow property definition per request.
 */
function answerPinnedScheme(koa: Koa): void {
  let holder: object | null = koa.request;
  let koaProtocol: (() => string) | undefined;
  while (holder !== null && koaProtocol === undefined) {
    koaProtocol = Object.getOwnPropertyDescriptor(holder, 'protocol')?.get as (() => string) | undefined;
    holder = Object.getPrototypeOf(holder) as object | null;
  }
  if (koaProtocol === undefined) throw new Error("Koa's request has no protocol getter");
  const readByKoa = koaProtocol;
  Object.defineProperty(koa.request, 'protocol', {
    configurable: true,
    get(this: { [PINNED_SCHEME]?: string }): string {
      return this[PINNED_SCHEME] ?? readByKoa.call(this);
    },
  });
}

/**
 * Pins every request to the configured issuer, so that no URL the provider builds (forms,
 * redirects, the logout question) comes from the request: a malformed host is a 400 everywhere; in
 * production a request for another host, or not over the issuer's scheme (https through the reverse
 * proxy), is a 400 too. Under the issuer's path the request is then seen with the issuer's own
 * scheme and host. Installed after health and metrics, which load balancers probe by address.
 * `koa` is the application the middleware is for: its requests' `protocol` learns the pinned scheme.
 */
export function pinToIssuer(
  koa: Koa,
  config: Pick<Config, 'issuer' | 'mode'>,
  pages: { isBrowserPath: (path: string) => boolean; branding: Branding },
): Koa.Middleware {
  answerPinnedScheme(koa);
  const issuer = new URL(config.issuer);
  const scheme = issuer.protocol.slice(0, -1);
  const issuerPath = issuer.pathname.replace(/\/+$/, '');
  const underIssuer = `${issuerPath}/`;
  const refuse = (ctx: Koa.Context, description: string) =>
    answerRefusal(
      ctx,
      { status: 400, error: 'invalid_request', description },
      pages.isBrowserPath(ctx.path) ? { page: pages.branding } : 'json',
    );
  // Clients send the same Host on every request: the last one's reading is kept.
  let lastRaw: string | undefined;
  let lastHost: string | undefined;
  return (ctx, next) => {
    const raw = requestedHost(ctx);
    if (raw !== lastRaw) {
      lastHost = normalisedHost(raw, issuer.protocol);
      lastRaw = raw;
    }
    const host = lastHost;
    if (host === undefined) return refuse(ctx, 'The Host header of the request is malformed.');
    if (config.mode === 'production') {
      if (ctx.protocol !== scheme)
        return refuse(
          ctx,
          `This server answers only over ${scheme}, through its reverse proxy (which sets X-Forwarded-Proto).`,
        );
      if (host !== issuer.host) return refuse(ctx, `This server answers only for ${issuer.host}.`);
    }
    if (ctx.path === issuerPath || ctx.path.startsWith(underIssuer)) {
      ctx.req.headers.host = issuer.host;
      delete ctx.req.headers['x-forwarded-host'];
      (ctx.request as { [PINNED_SCHEME]?: string })[PINNED_SCHEME] = scheme;
    }
    return next();
  };
}
