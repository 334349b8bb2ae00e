import type Koa from 'koa';
import { answerRefusal } from './refusal.ts';

/**
 * A request target Koa cannot read is a 400, not a 500. The origin form (`/o/token/?…`), which is
 * every request a browser or a relying party sends, always reads; only the absolute form
 * (`GET http://host/path`, which proxies send and HTTP/1.1 servers must accept) can fail: Koa's
 * `ctx.path` throws on an unparseable authority (`http://[::1/`) and is null when there is no path
 * at all (`http://`), and every later middleware reads it.
 */
export function refuseUnreadableTarget(): Koa.Middleware {
  return (ctx, next) => {
    if (ctx.req.url?.charCodeAt(0) === SLASH || readableTarget(ctx)) return next();
    answerRefusal(
      ctx,
      {
        status: 400,
        error: 'invalid_request',
        description:
          'The request target is malformed: send a path such as /o/token/, or an absolute http(s) URL.',
      },
      'json',
    );
  };
}

function readableTarget(ctx: Koa.Context): boolean {
  // An http(s) URL the WHATWG parser refuses is refused here: Koa's parser (Node's legacy
  // `url.parse`) would print a deprecation warning with the URL on stderr before it throws.
  if (/^https?:/i.test(ctx.req.url ?? '') && !URL.canParse(ctx.req.url!)) return false;
  try {
    return typeof ctx.path === 'string';
  } catch {
    return false;
  }
}

const SLASH = '/'.charCodeAt(0);
