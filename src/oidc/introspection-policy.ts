import type { KoaContextWithOIDC } from 'oidc-provider';
import { isAllowed } from '../policy/decide.ts';
import type { PolicyEnforcer } from './policy-enforcer.ts';

/** What the introspection hook reads of the calling client and of the token asked about. */
interface Caller {
  clientId: string;
  clientAuthMethod: string;
}
interface IntrospectedToken {
  clientId?: string;
  accountId?: string;
}

/**
 * `features.introspection.allowedPolicy`: oidc-provider asks it for every token it found valid,
 * before answering anything but `active: false`, so it is the `validate_bearer` stage of
 * introspection.
 *
 * First who may ask: a public client only about its own tokens, a confidential one about any token
 * (a resource server checking what it was handed). Then the policy, for the token's user and
 * application now (only the app-usability layer for a `client_credentials` token): a user who lost
 * access, or a deactivated application, makes the token `active: false`.
 */
export function introspectionAllowedPolicy(policy: PolicyEnforcer) {
  return async (ctx: KoaContextWithOIDC, caller: Caller, token: IntrospectedToken): Promise<boolean> => {
    if (typeof token.clientId !== 'string') return false;
    if (token.clientId !== caller.clientId && caller.clientAuthMethod === 'none') return false;
    const decision = await policy.enforce(
      'validate_bearer',
      token.accountId === undefined
        ? { kind: 'client', clientId: token.clientId }
        : { kind: 'user', clientId: token.clientId, accountId: token.accountId },
      ctx,
    );
    return isAllowed(decision);
  };
}
