import type { KoaContextWithOIDC, Provider } from 'oidc-provider';
import { aroundGrantHandler } from './provider-internals.ts';
import { RequestMemo } from './request-memo.ts';

/** The refresh requests that asked for `offline_access`, which the leniency took out of `scope`. */
const askedOfflineAccess = new RequestMemo<'offline_access', true>();

/**
 * Relying parties that send their configured scope again with every refresh (mod_auth_openidc,
 * Python authlib and oauthlib do) keep refreshing when that scope holds values the authorization
 * endpoint passed over without a word: `offline_access` (oidc-provider drops it from an
 * authorization request without `prompt=consent`, OIDC Core §11) and values that are no scope of
 * aa-oidc. The refresh token never carries them, so the provider would answer every such refresh
 * `invalid_scope` ("refresh token missing requested scope"), and the RP's session could not outlive
 * its first access token.
 *
 * Both grant nothing here: aa-oidc issues refresh tokens to every application with the
 * `refresh_token` grant, `offline_access` or not (the token presented is the offline access), and an
 * unknown value releases no claim. So the refresh grant leaves them out of the requested scope, as
 * the authorization endpoint did; a requested scope the refresh token lacks otherwise (`groups` when
 * only `openid email` was granted) is still refused. When nothing is left, the request asks for the
 * refresh token's whole scope, as a refresh without `scope` does (RFC 6749 §6). A refresh token that
 * does carry `offline_access` (granted with `prompt=consent`) gets it back once the provider has
 * found the token (`keepGrantedOfflineAccess`).
 */
export function installRefreshScopeLeniency(provider: Provider, scopes: readonly string[]): void {
  const offered = new Set(scopes);
  aroundGrantHandler(provider, 'refresh_token', (ctx, handler) => {
    const params = ctx.oidc.params as { scope?: unknown } | undefined;
    if (params && typeof params.scope === 'string') {
      if (params.scope.split(' ').includes('offline_access'))
        askedOfflineAccess.set(ctx, 'offline_access', true);
      params.scope = refreshScope(params.scope, offered);
    }
    return handler(ctx);
  });
}

/** The values of a refresh request's `scope` that can ask for anything, or undefined if none. */
export function refreshScope(requested: string, offered: ReadonlySet<string>): string | undefined {
  const kept = requested.split(' ').filter((scope) => scope !== 'offline_access' && offered.has(scope));
  return kept.length > 0 ? kept.join(' ') : undefined;
}

/**
 * Puts `offline_access` back into a refresh request's scope when the request asked for it and the
 * refresh token presented carries it, so that the refreshed access token has the scope the first one
 * had (an RP that compares the scope it asked with the one it got sees no change). The leniency above
 * took it out before the provider found the token; this runs once the provider has checked the
 * requested scope against the token and before it scopes the new access token: from
 * `rotateRefreshToken`, the provider's one hook in between (it sees the token presented as
 * `ctx.oidc.entities.RefreshToken`). Without `scope`, the provider already uses the token's whole
 * scope.
 */
export function keepGrantedOfflineAccess(ctx: KoaContextWithOIDC): void {
  const params = ctx.oidc.params as { scope?: unknown } | undefined;
  if (!params || typeof params.scope !== 'string') return;
  if (askedOfflineAccess.peek(ctx, 'offline_access') !== true) return;
  if (!ctx.oidc.entities.RefreshToken?.scopes.has('offline_access')) return;
  params.scope = `${params.scope} offline_access`;
}
