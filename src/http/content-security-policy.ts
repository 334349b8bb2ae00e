import type Koa from 'koa';

/**
 * The Content-Security-Policy of the pages this server renders, in one place: pages of our own
 * (sign-in, external sign-in, console) load nothing from elsewhere but images, and run only the
 * scripts they list; the provider's pages (authorization, logout) are only kept out of frames.
 */

/** Never inside a frame (RFC 9700 §4.16, clickjacking). */
const NOT_FRAMED = "frame-ancestors 'none'";

export interface PagePolicyOptions {
  /** The `script-src` sources (`'self'`, the hash of an inline script); none: no script runs. */
  scripts?: readonly string[];
  /** `form-action 'self'`: the page's forms post to this site only. */
  formsToSelf?: boolean;
}

/** A page of our own: inline styles, images from here or over https, script only as listed. */
export function pagePolicy({ scripts = [], formsToSelf = false }: PagePolicyOptions = {}): string {
  return policy([
    "default-src 'none'",
    "style-src 'unsafe-inline'",
    "img-src 'self' https: data:",
    scriptSource(scripts),
    formsToSelf ? "form-action 'self'" : undefined,
    "base-uri 'none'",
    NOT_FRAMED,
  ]);
}

/** A page the provider renders (authorization, logout): never framed, and script only as listed, if listed. */
export function notFramedPolicy(scripts: readonly string[] = []): string {
  return policy([NOT_FRAMED, scriptSource(scripts)]);
}

function scriptSource(scripts: readonly string[]): string | undefined {
  return scripts.length === 0 ? undefined : `script-src ${scripts.join(' ')}`;
}

function policy(directives: ReadonlyArray<string | undefined>): string {
  return directives.filter((directive) => directive !== undefined).join('; ');
}

/**
 * `X-Content-Type-Options: nosniff` on every answer, those meant for programs included (discovery,
 * the JWKS, token, userinfo, health, metrics): a browser that opens one reads it only as the type it
 * declares. The pages' other headers are `setPageHeaders`'. Set on Node's response: Koa's `set`
 * builds four arrays per call for one plain string.
 */
export function declaredTypesOnly(): Koa.Middleware {
  return (ctx, next) => {
    ctx.res.setHeader('X-Content-Type-Options', 'nosniff');
    return next();
  };
}

/**
 * The headers of a page a browser renders: `contentSecurityPolicy`, never inside a frame (RFC 9700
 * §4.16, clickjacking), never read as another type than the one it declares (`declaredTypesOnly`,
 * which the app runs first, sets that on every answer), and no referrer sent off
 * the site (a same-origin one stays: with `no-referrer` Chromium sends `Origin: null` with the site's
 * own forms, which the origin check of forms then has to judge by `Sec-Fetch-Site` alone).
 */
export function setPageHeaders(ctx: Koa.Context, contentSecurityPolicy: string): void {
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('Content-Security-Policy', contentSecurityPolicy);
  ctx.set('Referrer-Policy', 'same-origin');
}
