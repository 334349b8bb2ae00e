import type Koa from 'koa';
import { REQUEST_ID_HEADER } from '../logging/request-context.ts';
import type { Branding } from './pages/branding.ts';
import { answerRefusal, type Refusal } from './refusal.ts';

/**
 * The answer to an error nothing else handled (a route's bug, a failure in the provider outside its
 * own error handling), in place of Koa's: Koa drops every header before its bare "Internal Server
 * Error", `X-Content-Type-Options: nosniff` and the pages' headers included. Here the headers every
 * answer got before the failing step (`X-Content-Type-Options`, `X-Request-Id`) stay, and so do the
 * CORS headers the provider had set for this request (`corsHeadersSet`), so that a browser-based
 * relying party reads the error instead of a CORS failure; those the failing step set otherwise (a
 * half-made `Location`, `Set-Cookie` or `Content-Length`) go, and the answer is
 * the branded error page with the request id to a browser (with the pages' headers; titled and worded
 * for any path, not as a sign-in error: there may be no application to go back to), `server_error` as JSON to a program: never the error's message or
 * stack. The error goes to the app's `error` event (`logKoaErrors`), which logs it once with the
 * request id. A database that is down is not one of these: `answerUnavailable`, further in, answers
 * it 503. Runs right after `requestContext`, so that the access line has the status of this answer.
 */
export function answerUnexpectedErrors(branding: Branding): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (thrown) {
      const error = thrown instanceof Error ? thrown : new Error(`non-error thrown: ${String(thrown)}`);
      // Part of the answer went out already (or the client is gone): Koa can only report it.
      if (ctx.headerSent || !ctx.writable) throw error;
      ctx.app.emit('error', error, ctx);
      keepOnlyEveryAnswersHeaders(ctx);
      answerRefusal(
        ctx,
        refusalOf(ctx, error),
        ctx.accepts('json', 'html') === 'html' ? { page: branding, scope: 'any-path' } : 'json',
      );
    }
  };
}

/**
 * The headers every answer gets before this middleware runs (app.ts: `declaredTypesOnly`,
 * `requestContext`); read back when an error comes instead of noted for every request.
 */
const EVERY_ANSWERS_HEADERS = ['X-Content-Type-Options', REQUEST_ID_HEADER] as const;

/**
 * The CORS headers the provider set for this request (on its discovery, JWKS, token, userinfo,
 * introspection and revocation routes, for an origin it allows; lib/shared/cors.js), with the
 * `Vary: Origin` that goes with an `Access-Control-Allow-Origin` echoing the request's origin.
 * Nothing is added: a request that had none gets none.
 */
function corsHeadersSet(ctx: Koa.Context): Array<readonly [string, string | number | string[]]> {
  const cors = ctx.res.getHeaderNames().flatMap((name) => {
    const value = ctx.res.getHeader(name);
    return name.startsWith('access-control-') && value !== undefined ? [[name, value] as const] : [];
  });
  if (cors.length === 0) return [];
  const varyOrigin = String(ctx.res.getHeader('vary') ?? '')
    .split(',')
    .some((field) => field.trim().toLowerCase() === 'origin');
  return varyOrigin ? [...cors, ['vary', 'Origin'] as const] : cors;
}

/**
 * The answer keeps the headers every answer gets and the CORS headers set for the request; whatever
 * else the failing step set is dropped.
 */
function keepOnlyEveryAnswersHeaders(ctx: Koa.Context): void {
  const kept = [
    ...EVERY_ANSWERS_HEADERS.map((name) => [name, ctx.res.getHeader(name)] as const),
    ...corsHeadersSet(ctx),
  ];
  for (const name of ctx.res.getHeaderNames()) ctx.res.removeHeader(name);
  for (const [name, value] of kept) {
    if (value !== undefined) ctx.res.setHeader(name, value);
  }
}

/**
 * A client error meant for the client (an `http-errors` one with `expose`, as Koa's `ctx.throw(400,
 * …)` makes) keeps its status, message and headers (`Allow`, `WWW-Authenticate`), as Koa would answer
 * it; anything else is a 500 that says nothing of its cause.
 */
function refusalOf(ctx: Koa.Context, error: Error): Refusal {
  const { status, expose, headers } = error as { status?: unknown; expose?: unknown; headers?: unknown };
  if (expose === true && typeof status === 'number' && status >= 400 && status < 500) {
    if (typeof headers === 'object' && headers !== null) ctx.set(headers as Record<string, string>);
    return { status, error: 'invalid_request', description: error.message };
  }
  return {
    status: 500,
    error: 'server_error',
    description:
      'The server could not complete the request. Try again; if it keeps failing, quote the request id.',
  };
}
