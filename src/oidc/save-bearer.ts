import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import type { PolicyDecision } from '../policy/decide.ts';
import type { PolicyEnforcer, PolicySubject } from './policy-enforcer.ts';
import { assertNever } from '../util/assert-never.ts';
import { ChangeEpochMoved, type EpochAwareAdapter } from './adapter.ts';
import type { ChangeEpochs } from './change-epoch-cache.ts';
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
 *
 * A client-credentials token (no user: only its application decides) is decided with the application
 * as of the change epoch this request saw (change-epoch-cache.ts: client authentication read it) and
 * written only while that epoch stands, the check made by the write itself (`EpochAwareAdapter`,
 * adapter.ts), rather than after a read of the epoch of its own: a deactivation committed while the
 * request ran, up to the token's write, still stops the token. When the epoch has moved, nothing was
 * written, and the stage decides again as a user's token does, reading the epoch afresh.
 */
export function createBearerSaveGuard(
  policy: PolicyEnforcer,
  epochs?: Pick<ChangeEpochs, 'ofRequest'>,
): (model: string, adapter: EpochAwareAdapter) => Adapter {
  const decisions = new RequestMemo<string, Promise<PolicyDecision>>();
  return (model, adapter) =>
    BEARER_MODELS.has(model) ? guardBearerSaves(model, adapter, policy, decisions, epochs) : adapter;
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

function refusal(subject: PolicySubject): Error {
  return subject.kind === 'user'
    ? new errors.InvalidGrant('the user may not use this application')
    : new errors.UnauthorizedClient('this application may not obtain tokens');
}

function guardBearerSaves(
  model: string,
  adapter: EpochAwareAdapter,
  policy: PolicyEnforcer,
  decisions: RequestMemo<string, Promise<PolicyDecision>>,
  epochs: Pick<ChangeEpochs, 'ofRequest'> | undefined,
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
      const request = currentRequest();
      if (model === 'ClientCredentials' && subject.kind === 'client' && epochs && request) {
        const epoch = await epochs.ofRequest(request);
        const decision = await policy.enforce('save_bearer', subject, request, {
          applicationAsOfRequest: true,
        });
        if (decision.outcome === 'deny') throw refusal(subject);
        try {
          return await adapter.upsert(id, payload, expiresIn, epoch);
        } catch (error) {
          // The application may have changed since: decided again below, from a fresh read.
          if (!(error instanceof ChangeEpochMoved)) throw error;
        }
      }
      const decision = await decideOnce(subject);
      switch (decision.outcome) {
        case 'allow':
          return adapter.upsert(id, payload, expiresIn);
        case 'deny':
          throw refusal(subject);
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
