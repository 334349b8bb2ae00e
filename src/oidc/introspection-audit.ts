import type Koa from 'koa';
import { publishContext } from '../logging/request-context.ts';
import { sha256Hex } from '../logging/secrets.ts';
import { inactiveStoredJwtId } from './adapter.ts';
import { matchedRouteName } from './provider-internals.ts';
import { type ObservabilityDependencies, withMaskedToken } from './token-events.ts';

/** What the audit reads of the provider's request (`ctx.oidc`). */
interface IntrospectionContext {
  client?: { clientId: string };
  params?: { token?: unknown };
  entities?: { AccessToken?: { jti?: string }; ClientCredentials?: { jti?: string } };
}

/**
 * The `jti` of a token answered `active: false` that was nevertheless found stored, as the lookup
 * verified it: the provider's entity when the access policy refused it (a user or an application
 * that lost access), or the adapter's note of a JWT found revoked or expired (adapter.ts). Undefined
 * for a token not found: a JWT's own `jti` claim is not trusted (a forged JWT could claim another's).
 */
function storedIdOfInactive(ctx: object, oidc: IntrospectionContext): string | undefined {
  const entities = oidc.entities;
  return entities?.AccessToken?.jti ?? entities?.ClientCredentials?.jti ?? inactiveStoredJwtId(ctx);
}

/**
 * `token_introspected` for every answered introspection request, run once the provider has answered
 * (`afterProviderResponse` in provider.ts).
 */
export function introspectionAudit(deps: ObservabilityDependencies): (ctx: Koa.Context) => void {
  const { secrets } = deps;
  return (ctx) => {
    const route = matchedRouteName(ctx);
    if (route !== 'introspection' || ctx.status !== 200) return;
    const oidc = (ctx as unknown as { oidc?: IntrospectionContext }).oidc;
    const token = oidc?.params?.token;
    const body = ctx.body as { active?: boolean; client_id?: string; jti?: string } | undefined;
    if (!oidc?.client || typeof token !== 'string' || typeof body?.active !== 'boolean') return;
    // A JWT access token is known by its jti (as in token_issued and token_revoked); an opaque one by
    // itself.
    const named = body.active
      ? typeof body.jti === 'string'
        ? body.jti
        : token
      : (storedIdOfInactive(ctx, oidc) ?? token);
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
