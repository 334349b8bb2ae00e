import type Koa from 'koa';
import { publishContext } from '../logging/request-context.ts';
import { sha256Hex } from '../logging/secrets.ts';
import { matchedRouteName } from './provider-internals.ts';
import { type ObservabilityDependencies, withMaskedToken } from './token-events.ts';

/**
 * `token_introspected` for every answered introspection request, run once the provider has answered
 * (`afterProviderResponse` in provider.ts).
 */
export function introspectionAudit(deps: ObservabilityDependencies): (ctx: Koa.Context) => void {
  const { secrets } = deps;
  return (ctx) => {
    const route = matchedRouteName(ctx);
    if (route !== 'introspection' || ctx.status !== 200) return;
    const oidc = (
      ctx as unknown as { oidc?: { client?: { clientId: string }; params?: { token?: unknown } } }
    ).oidc;
    const token = oidc?.params?.token;
    const body = ctx.body as { active?: boolean; client_id?: string; jti?: string } | undefined;
    if (!oidc?.client || typeof token !== 'string' || typeof body?.active !== 'boolean') return;
    // A JWT access token is known by its jti (as in token_issued); an opaque one by itself.
    const named = body.active && typeof body.jti === 'string' ? body.jti : token;
    deps.audit.publish(
      {
        kind: 'token_introspected',
        introspector: oidc.client.clientId,
        token_sha256: sha256Hex(named),
        active: body.active,
        client_id: body.client_id ?? null,
      },
      withMaskedToken(secrets, publishContext(ctx), named),
    );
  };
}
