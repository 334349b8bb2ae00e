import type { KoaContextWithOIDC } from 'oidc-provider';
import type { ApplicationDecision } from '../policy/decide.ts';
import type { PolicyEnforcer } from './policy-enforcer.ts';
import type { PolicyStage } from '../policy/stages.ts';
import { assertNever } from '../util/assert-never.ts';
import { currentRequest } from './provider-internals.ts';

export type ClientRefusal = Extract<ApplicationDecision, { outcome: 'deny' }>;

/**
 * The stage a client lookup belongs to, from the provider's route (and, at the token endpoint, the
 * grant type): the app-usability layer refuses a deactivated or unknown application there, before
 * anything else runs. Undefined for routes that are no policy stage (revocation, logout, discovery):
 * they refuse the application all the same, uncounted.
 */
export function stageForClientLookup(ctx: KoaContextWithOIDC | undefined): PolicyStage | undefined {
  switch (ctx?.oidc?.route) {
    case 'authorization':
    case 'resume':
      return 'authorize';
    case 'userinfo':
    case 'introspection':
      return 'validate_bearer';
    case 'token':
      switch (ctx.oidc.params?.grant_type) {
        case 'authorization_code':
          return 'validate_code';
        case 'refresh_token':
          return 'validate_refresh';
        // No user to validate: the only access-policy stage of this grant is the one before saving.
        case 'client_credentials':
          return 'save_bearer';
        default:
          return undefined;
      }
    default:
      return undefined;
  }
}

/**
 * The routes whose caller authenticates as the client (RFC 6749 §2.3): there the client is looked up
 * before its credential is checked, and a refusal is recorded only once the credential proves to be
 * the application's (client-auth-failures.ts).
 */
export function authenticatesClient(ctx: KoaContextWithOIDC | undefined): boolean {
  const route = ctx?.oidc?.route;
  return route === 'token' || route === 'introspection' || route === 'revocation';
}

/**
 * What the client lookup (`clients.ts`) calls when the app-usability layer refuses an application:
 * a deactivated application is counted and audited at the stage of the request being served
 * (oidc-provider keeps it in AsyncLocalStorage). Not at the endpoints that authenticate their
 * caller: anyone knowing a deactivated application's client id could otherwise write an audit row
 * per request without any secret; the failed client authentication reports it instead, and records
 * the refusal only for the application's own credential (client-auth-failures.ts). At authorization
 * (unauthenticated by nature) the refusal is recorded here, coalesced (denial-coalescing.ts).
 */
export function recordClientRefusal(policy: PolicyEnforcer) {
  return (clientId: string, refusal: ClientRefusal): void => {
    switch (refusal.reason) {
      case 'app_unusable': {
        const ctx = currentRequest();
        if (authenticatesClient(ctx)) return;
        const stage = stageForClientLookup(ctx);
        if (stage) policy.recordDenial(stage, refusal, { clientId, userId: null }, ctx);
        return;
      }
      // A client_id that names no application is a failed client authentication (invalid_client),
      // not a decision about anyone: counting it would let any caller flood the audit log.
      case 'no_client':
        return;
      default:
        assertNever(refusal);
    }
  };
}
