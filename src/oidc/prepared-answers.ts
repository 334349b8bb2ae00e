import type Koa from 'koa';
import type { Provider } from 'oidc-provider';
import { matchedRouteName } from './provider-internals.ts';

/** The provider's routes whose answer to a GET is the same for every request (relative to the issuer path). */
const PREPARED_ROUTES = {
  discovery: '/.well-known/openid-configuration',
  jwks: '/.well-known/jwks.json',
} as const;
type PreparedRoute = keyof typeof PREPARED_ROUTES;

/** What the provider answered to a GET of the route: the body as sent, and the headers it set. */
interface PreparedAnswer {
  /**
   * The JSON text, kept as a string: Node sends a string body in one write with the response's head
   * (the same UTF-8 bytes), where a Buffer body goes as a second chunk of a `writev`.
   */
  body: string;
  headers: Array<[name: string, value: string | string[]]>;
}

/** Set by Koa from the body; never replayed. */
const LENGTH = 'content-length';

/**
 * Discovery and the JWKS: the provider answers them from its configuration and its signing keys
 * alone (the request's Host is pinned to the issuer and the document's endpoints rewritten to its
 * origin, the CORS answer is `*` whatever the Origin), so every GET gets the same bytes. The first
 * GET served by a provider instance runs the whole engine, post-processing included, and its answer
 * (body bytes and the headers the engine set) is kept; later GETs and HEADs are answered from it
 * without entering the engine. Everything in front of the provider (request id, access line, host
 * pinning) runs for them as for any request; any other method (a CORS preflight, a POST that
 * answers 404) still goes to the engine.
 *
 * The answers are kept per provider instance: a change of the signing keys, in this process or
 * noticed in the database after another instance or the CLI rotated them, builds a new instance
 * (provider.ts), whose first request prepares its answers afresh. Nothing else the two answers depend
 * on changes while the process runs.
 */
export function preparedAnswers(issuerPath: string) {
  const routeByPath = new Map<string, PreparedRoute>();
  for (const [route, path] of Object.entries(PREPARED_ROUTES) as Array<[PreparedRoute, string]>) {
    // Both answer with or without the trailing slash.
    routeByPath.set(`${issuerPath}${path}`, route);
    routeByPath.set(`${issuerPath}${path}/`, route);
  }
  const kept = new WeakMap<Provider, Partial<Record<PreparedRoute, PreparedAnswer>>>();

  return {
    /** Answers a GET or HEAD of discovery or the JWKS from the kept answer; false when there is none. */
    answer(ctx: Koa.Context, provider: Provider): boolean {
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return false;
      const route = routeByPath.get(ctx.path);
      const prepared = route && kept.get(provider)?.[route];
      if (!prepared) return false;
      // On Node's response: Koa's `set` builds four arrays per call for values Koa set once already.
      for (const [name, value] of prepared.headers) ctx.res.setHeader(name, value);
      // The Content-Type is set: Koa keeps it and takes the length from the text (a HEAD gets no body).
      ctx.body = prepared.body;
      return true;
    },

    /**
     * Before a request goes to the engine: for a GET of one of the routes, returns what keeps its
     * answer once the engine has answered (called with the response complete); else undefined.
     */
    watch(ctx: Koa.Context, provider: Provider): (() => void) | undefined {
      if (ctx.method !== 'GET') return undefined;
      const route = routeByPath.get(ctx.path);
      if (route === undefined) return undefined;
      const before = ctx.response.headers;
      return () => {
        const body: unknown = ctx.body;
        if (matchedRouteName(ctx) !== route || ctx.status !== 200) return;
        if (typeof body !== 'object' || body === null || Buffer.isBuffer(body)) return;
        const headers: PreparedAnswer['headers'] = [];
        for (const [name, value] of Object.entries(ctx.response.headers)) {
          if (name === LENGTH || value === undefined || String(before[name]) === String(value)) continue;
          headers.push([name, typeof value === 'number' ? String(value) : value]);
        }
        // As Koa sends a JSON body (application.js, respond).
        const answer = { body: JSON.stringify(body), headers };
        kept.set(provider, { ...kept.get(provider), [route]: answer });
      };
    },
  };
}
