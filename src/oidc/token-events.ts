import type Koa from 'koa';
import type { Provider } from 'oidc-provider';
import type { AuditBus, PublishContext } from '../audit/bus.ts';
import type { TokenIssuedEvent, TokenType } from '../audit/events.ts';
import { publishContext } from '../logging/request-context.ts';
import { type SecretFormatter, sha256Hex } from '../logging/secrets.ts';
import type { Metrics } from '../metrics/registry.ts';
import { currentRequest } from './provider-internals.ts';

export interface ObservabilityDependencies {
  audit: Pick<AuditBus, 'publish'>;
  metrics: Pick<
    Metrics,
    | 'tokensIssued'
    | 'authorizeDenied'
    | 'policyRejections'
    | 'codeReuseAuditMisses'
    | 'importedSecretChecks'
    | 'clientAuthFailures'
  >;
  /** Whether events name their token by head/tail fragments too, in the log (`withMaskedToken`). */
  secrets: Pick<SecretFormatter, 'masksEnabled' | 'maskSecret'>;
}

/** What the provider's token models carry that the events need. */
interface ProviderToken {
  jti: string;
  clientId?: string;
  accountId?: string;
  gty?: string;
  /**
   * Set only when the token's lifetime was fixed before it was saved (a rotated refresh token);
   * otherwise the stored token ends `expiration` seconds after the second it was saved in.
   */
  exp?: number;
  expiration: number;
  kind: string;
  /** `jwt` for a JWT access token (access-token-format.ts), else `opaque`. */
  format?: string;
}

/** The request being served. */
function currentContext(): Koa.Context | undefined {
  return currentRequest() as unknown as Koa.Context | undefined;
}

function context(): PublishContext {
  const ctx = currentContext();
  return ctx ? publishContext(ctx) : {};
}

/**
 * `context`, with the head/tail fragment of `value` (what `token_sha256` digests) for the log and the
 * JSON-lines sink when masks are enabled; with them off (the default, and always in production)
 * `context` itself: no fragment, no object, not even the digest `maskSecret` would give.
 */
export function withMaskedToken(
  secrets: Pick<SecretFormatter, 'masksEnabled' | 'maskSecret'>,
  context: PublishContext,
  value: string,
): PublishContext {
  return secrets.masksEnabled ? { ...context, masked: { token_masked: secrets.maskSecret(value) } } : context;
}

/** `authorization_code refresh_token` (a token issued by a refresh of a code grant) → `refresh_token`. */
function lastGrantType(gty: string | undefined, fallback: string): string {
  return gty?.split(' ').at(-1) ?? fallback;
}

function userId(token: ProviderToken): number | null {
  return token.accountId !== undefined && /^\d+$/.test(token.accountId) ? Number(token.accountId) : null;
}

/**
 * Audit and metrics from the provider's own events: every token issued (`token_issued`,
 * `aa_oidc_tokens_issued_total`), tokens revoked at the revocation endpoint and by refresh-token
 * rotation (`token_revoked`). Tokens appear only as `sha256Hex` digests (an opaque token's id is the
 * token itself).
 *
 * The provider tells of a token once its adapter returns, and the tokens of a code exchange or a
 * refresh are written only once the response is built (code-exchange.ts): their `token_issued` and
 * count wait for that write (`onceTokensStored`), so that a token whose write failed is never told
 * of as issued; a rotated refresh token's `token_revoked` waits for its consume's write
 * (`onceConsumed`), which a refresh refused after the consume makes alone.
 */
export function observeProvider(
  provider: Provider,
  deps: ObservabilityDependencies,
  onceTokensStored: () => Array<() => void> | undefined = () => undefined,
  onceConsumed: () => Array<() => void> | undefined = () => undefined,
): void {
  const { secrets } = deps;
  const tell = (record: TokenIssuedEvent, publishedIn: PublishContext) => {
    deps.audit.publish(record, publishedIn);
    if (record.token_type === 'access_token') {
      deps.metrics.tokensIssued.inc({
        client_id: record.client_id,
        grant_type: record.grant_type,
        format: record.format,
      });
    }
  };
  const issued = (tokenType: TokenType, fallbackGrant: string) => (token: ProviderToken) => {
    const record: TokenIssuedEvent = {
      kind: 'token_issued',
      client_id: token.clientId ?? '',
      user_id: userId(token),
      grant_type: lastGrantType(token.gty, fallbackGrant),
      token_type: tokenType,
      format: tokenType === 'access_token' && token.format === 'jwt' ? 'jwt' : 'opaque',
      token_sha256: sha256Hex(token.jti),
      expires_at: (token.exp ?? Math.floor(Date.now() / 1000) + token.expiration) * 1000,
    };
    // The request's context as of now: the write a held token waits for ends the request's own work.
    const publishedIn = withMaskedToken(secrets, context(), token.jti);
    const held = onceTokensStored();
    if (held) held.push(() => tell(record, publishedIn));
    else tell(record, publishedIn);
  };
  provider.on('access_token.saved', issued('access_token', 'authorization_code'));
  provider.on('client_credentials.saved', issued('access_token', 'client_credentials'));
  provider.on('refresh_token.saved', issued('refresh_token', 'authorization_code'));

  const revoked = (tokenType: TokenType) => (token: ProviderToken) => {
    const route = (currentContext() as unknown as { oidc?: { route?: string } } | undefined)?.oidc?.route;
    if (route !== 'revocation') return;
    deps.audit.publish(
      {
        kind: 'token_revoked',
        client_id: token.clientId ?? '',
        user_id: userId(token),
        token_type: tokenType,
        token_sha256: sha256Hex(token.jti),
        reason: 'revocation_endpoint',
      },
      withMaskedToken(secrets, context(), token.jti),
    );
  };
  provider.on('access_token.destroyed', revoked('access_token'));
  provider.on('client_credentials.destroyed', revoked('access_token'));
  provider.on('refresh_token.destroyed', revoked('refresh_token'));
  provider.on('refresh_token.consumed', (token: ProviderToken) => {
    const record = {
      kind: 'token_revoked' as const,
      client_id: token.clientId ?? '',
      user_id: userId(token),
      token_type: 'refresh_token' as const,
      token_sha256: sha256Hex(token.jti),
      reason: 'refresh_rotation' as const,
    };
    // A rotation's consume is written with its new tokens, or alone when the provider refused the
    // refresh after it (code-exchange.ts): told once it is, and never if a revocation came first.
    const publishedIn = withMaskedToken(secrets, context(), token.jti);
    const held = onceConsumed();
    if (held) held.push(() => deps.audit.publish(record, publishedIn));
    else deps.audit.publish(record, publishedIn);
  });
}
