import type Koa from 'koa';
import { pagePolicy, setPageHeaders } from './content-security-policy.ts';
import type { Branding } from './pages/branding.ts';
import { errorPage, type ErrorPageScope } from './pages/error.ts';
import { pageContext } from './pages/layout.ts';
import { notFoundPage } from './pages/not-found.ts';

/** A request refused before any route handled it. */
export interface Refusal {
  status: number;
  /** An OAuth error code (`invalid_request`). */
  error: string;
  /** One sentence for the person or program that sent it; never echoes the request. */
  description: string;
}

/**
 * How a refusal is answered: an HTML page (with the community's branding and the headers of the
 * server's own pages, `setPageHeaders`) on the routes a browser shows (authorization, logout, the
 * sign-in pages), JSON everywhere else. The page is worded as a sign-in error unless `scope` says
 * otherwise (`any-path`: a refusal that may come on any path, the admin pages, the account page).
 */
export type RefusalFormat = { page: Branding; scope?: ErrorPageScope } | 'json';

export function answerRefusal(ctx: Koa.Context, refusal: Refusal, format: RefusalFormat): void {
  ctx.status = refusal.status;
  ctx.set('Cache-Control', 'no-store');
  if (format === 'json') {
    ctx.body = { error: refusal.error, error_description: refusal.description };
    return;
  }
  // Whatever policy the route set for its own pages: this one runs no script.
  setPageHeaders(ctx, pagePolicy());
  ctx.type = 'html';
  ctx.body = errorPage(refusal, pageContext(format.page, ctx), format.scope);
}

/** A 413: the connection is closed after the answer (the rest of the body is not wanted). */
export function answerTooLarge(ctx: Koa.Context, limit: number, format: RefusalFormat): void {
  ctx.set('Connection', 'close');
  answerRefusal(
    ctx,
    {
      status: 413,
      error: 'invalid_request',
      description: `The request is too large (at most ${limit} bytes of form data).`,
    },
    format,
  );
}

/**
 * A 405 for a method the path does not take (RFC 9110 §15.5.6): `allowed` are those it does, named
 * in `Allow` and in the description.
 */
export function answerMethodNotAllowed(
  ctx: Koa.Context,
  allowed: readonly string[],
  format: RefusalFormat,
): void {
  ctx.set('Allow', allowed.join(', '));
  answerRefusal(
    ctx,
    {
      status: 405,
      error: 'invalid_request',
      description: `This endpoint takes ${allowed.join(', ')} requests only.`,
    },
    format,
  );
}

/**
 * A 404 for an address nothing answers: `{"error":"not_found"}` as JSON, or with `page`, the branded
 * page, with the headers of the server's own pages (no script, no frame, no sniffing, no referrer
 * off the site).
 */
export function answerNotFound(ctx: Koa.Context, format: RefusalFormat): void {
  ctx.status = 404;
  ctx.set('Cache-Control', 'no-store');
  if (format === 'json') {
    ctx.body = { error: 'not_found', error_description: 'no such endpoint' };
    return;
  }
  setPageHeaders(ctx, pagePolicy());
  ctx.type = 'html';
  ctx.body = notFoundPage(pageContext(format.page, ctx));
}
