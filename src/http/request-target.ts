import type Koa from 'koa';
import { answerRefusal } from './refusal.ts';

/**
 * A request target Koa cannot read is a 400, not a 500. The origin form (`/o/token/?…`), which is
 * every request a browser or a relying party sends, always reads; only the absolute form
 * (`GET http://host/path`, which proxies send and HTTP/1.1 servers must accept) can fail: Koa's
 * `ctx.path` throws on an unparseable authority (`http://[::1/`) and is null when there is no path
 * at all (`http://`), and every later middleware reads it.
 *
 * An http(s) absolute form that reads is served as its origin form, with the host it names as the
 * request's Host (RFC 9112 §3.2.2: the target's authority, not the Host header, is the host asked
 * for). Left as it was, Koa's `ctx.href` would be the target itself, and every URL the provider
 * builds from it (the logout form, redirects) would name that host, past the issuer pinning
 * (issuer-host.ts), which reads the Host header.
 */
export function refuseUnreadableTarget(): Koa.Middleware {
  return (ctx, next) => {
    if (ctx.req.url?.charCodeAt(0) === SLASH) return next();
    if (readableTarget(ctx)) {
      toOriginForm(ctx);
      return next();
    }
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
  const target = ctx.req.url ?? '';
  // The asterisk form (`OPTIONS *`) has no path to build on, and is answered 404 as any unknown path.
  if (target === '*') return true;
  // Only an http(s) URL is an absolute form to serve (another scheme, `ws://host/o/logout/`, reads
  // as a path to Koa, but the provider's URLs cannot be built on it: a 500). One the WHATWG parser
  // refuses is refused here: Koa's parser (Node's legacy `url.parse`) would print a deprecation
  // warning with the URL on stderr before it throws.
  if (!/^https?:/i.test(target) || !URL.canParse(target)) return false;
  try {
    return typeof ctx.path === 'string';
  } catch {
    return false;
  }
}

/** `http://host/path?query` → `/path?query`, Host `host`; the path and query as sent, not normalised. */
const HTTP_ABSOLUTE_FORM = /^https?:\/\/[^/?#]*([^#]*)/is;

function toOriginForm(ctx: Koa.Context): void {
  const url = ctx.req.url ?? '';
  const rest = HTTP_ABSOLUTE_FORM.exec(url)?.[1];
  if (rest === undefined) return;
  const origin = rest.charCodeAt(0) === SLASH ? rest : `/${rest}`;
  ctx.req.headers.host = new URL(url).host;
  ctx.req.url = origin;
  // `ctx.href` reads the request's copy of the target Koa took when the request came in; the
  // context's copy stays as sent, for the access line.
  ctx.request.originalUrl = origin;
}

const SLASH = '/'.charCodeAt(0);
