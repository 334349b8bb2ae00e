import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import type { PolicyDecision } from '../policy/decide.ts';
import type { PolicyEnforcer, PolicySubject } from './policy-enforcer.ts';
import { assertNever } from '../util/assert-never.ts';
import { currentRequest } from './provider-internals.ts';
import { RequestMemo } from './request-memo.ts';

/** The bearer tokens the provider stores: the ones the `save_bearer` stage guards. */
const BEARER_MODELS = new Set(['AccessToken', 'RefreshToken', 'ClientCredentials']);

/**
 * The `save_bearer` stage of the access policy: the storage adapter of the provider's access-token, refresh-
 * token and client-credentials models asks the policy once more, from the database, immediately
 * before a token is written. Every grant, whatever its handler, stores its tokens through here, so a
 * new grant type cannot issue a stored token without this check.
 *
 * A refusal writes nothing and throws an OAuth error (`invalid_grant` for a user's token,
 * `unauthorized_client` for a client-credentials one), which the token endpoint answers as such.
 * Within one request the decision is taken once per user and application, shared by the adapters of
 * all three models (one guard per provider configuration), so that the access and the refresh token
 * of one response are both written or neither is.
 */
export function createBearerSaveGuard(policy: PolicyEnforcer): (model: string, adapter: Adapter) => Adapter {
  const decisions = new RequestMemo<string, Promise<PolicyDecision>>();
  return (model, adapter) =>
    BEARER_MODELS.has(model) ? guardBearerSaves(model, adapter, policy, decisions) : adapter;
}

/**
 * The scopes that name a person (its identity, its groups, a session to keep): a client-credentials
 * token has no person behind it, so asking for one of them is `invalid_scope` rather than a token
 * that claims to carry them.
 */
export const IDENTITY_SCOPES: ReadonlySet<string> = new Set([
  'openid',
  'profile',
  'email',
  'groups',
  'offline_access',
]);

function refuseIdentityScopes(payload: AdapterPayload): void {
  const asked = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
  const identity = asked.filter((scope) => IDENTITY_SCOPES.has(scope));
  if (identity.length > 0)
    throw new errors.InvalidScope(
      'client_credentials tokens carry no user: identity scopes are not granted',
      identity.join(' '),
    );
}

function guardBearerSaves(
  model: string,
  adapter: Adapter,
  policy: PolicyEnforcer,
  decisions: RequestMemo<string, Promise<PolicyDecision>>,
): Adapter {
  const decideOnce = (subject: PolicySubject): Promise<PolicyDecision> => {
    const request = currentRequest();
    const key = `${subject.clientId} ${subject.kind === 'user' ? subject.accountId : ''}`;
    return decisions.get(request, key, () => policy.enforce('save_bearer', subject, request));
  };

  return {
    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const clientId = payload.clientId;
      const accountId = payload.accountId;
      if (typeof clientId !== 'string') throw new errors.InvalidGrant('token without a client');
      if (model === 'ClientCredentials') refuseIdentityScopes(payload);
      const subject: PolicySubject =
        typeof accountId === 'string' ? { kind: 'user', clientId, accountId } : { kind: 'client', clientId };
      const decision = await decideOnce(subject);
      switch (decision.outcome) {
        case 'allow':
          return adapter.upsert(id, payload, expiresIn);
        case 'deny':
          throw subject.kind === 'user'
            ? new errors.InvalidGrant('the user may not use this application')
            : new errors.UnauthorizedClient('this application may not obtain tokens');
        default:
          return assertNever(decision);
      }
    },
    find: (id) => adapter.find(id),
    findByUid: (uid) => adapter.findByUid(uid),
    findByUserCode: (userCode) => adapter.findByUserCode(userCode),
    consume: (id) => adapter.consume(id),
    destroy: (id) => adapter.destroy(id),
    revokeByGrantId: (grantId) => adapter.revokeByGrantId(grantId),
  };
}
