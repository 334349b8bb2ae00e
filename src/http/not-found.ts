import type Koa from 'koa';
import type { Branding } from './pages/branding.ts';
import { answerNotFound } from './refusal.ts';

/**
 * The last word on a request nothing answered (no console page, no provider endpoint, no
 * interaction step): a 404 page with the community's branding to a browser (one whose `Accept`
 * prefers HTML to JSON), `{"error":"not_found"}` to everyone else, in place of Koa's bare
 * "Not Found". It looks only after every other step: an answer of theirs, a 404 with a body of its
 * own (the provider's OAuth errors, the admin pages' "no such application"), a 405 with `Allow`, is
 * left as it is. HEAD gets the status and headers, and no body (Koa leaves it out).
 */
export function answerUnknownPaths(branding: Branding): Koa.Middleware {
  return async (ctx, next) => {
    await next();
    if (ctx.status !== 404 || ctx.body != null || ctx.respond === false || ctx.headerSent) return;
    answerNotFound(ctx, ctx.accepts('json', 'html') === 'html' ? { page: branding } : 'json');
  };
}
