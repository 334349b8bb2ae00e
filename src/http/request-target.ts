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
    const target = ctx.req.url ?? '';
    // The asterisk form (`OPTIONS *`) has no path to build on, and is answered 404 as any unknown path.
    if (target.charCodeAt(0) === SLASH || target === '*') return next();
    const originForm = httpAbsoluteForm(target);
    if (originForm) {
      toOriginForm(ctx, originForm);
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

/**
 * `http://host/path?query` → `/path?query`: the path and query as sent, not normalised. The
 * authority may not be empty: the WHATWG parser reads `http:///o/token/` as host `o`, path
 * `/token/`, while the path as sent would be `/o/token/`.
 */
const HTTP_ABSOLUTE_FORM = /^https?:\/\/[^/?#]+([^#]*)/is;

/**
 * The target's host and origin form when it is an http(s) URL written `scheme://authority…` that the
 * WHATWG parser reads. Any other scheme (`ws://host/o/logout/` reads as a path to Koa, but the
 * provider's URLs cannot be built on it: a 500) is not served, nor a target without its authority
 * (`http:/o/token/`, which Node's HTTP parser refuses before us; `http:///o/token/`), nor one the WHATWG parser refuses
 * (Koa's parser, Node's legacy `url.parse`, would print a deprecation warning with the URL on stderr
 * before it throws). The WHATWG parse decides and names the host; the path is taken as sent.
 */
function httpAbsoluteForm(target: string): OriginForm | undefined {
  const asSent = HTTP_ABSOLUTE_FORM.exec(target)?.[1];
  if (asSent === undefined) return undefined;
  const url = URL.parse(target);
  if (!url) return undefined;
  return { host: url.host, path: asSent.charCodeAt(0) === SLASH ? asSent : `/${asSent}` };
}

/** What an absolute form is served as: its path and query, for the host it names. */
interface OriginForm {
  host: string;
  path: string;
}

function toOriginForm(ctx: Koa.Context, { host, path }: OriginForm): void {
  ctx.req.headers.host = host;
  ctx.req.url = path;
  // `ctx.href` reads the request's copy of the target Koa took when the request came in; the
  // context's copy stays as sent, for the access line.
  ctx.request.originalUrl = path;
}

const SLASH = '/'.charCodeAt(0);
