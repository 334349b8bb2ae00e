import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Directory } from '../directory/port.ts';
import { isAllowed } from '../policy/decide.ts';
import { type PolicyEnforcer, userIdOf } from './policy-enforcer.ts';

/** What the introspection hook reads of the calling client and of the token asked about. */
interface Caller {
  clientId: string;
  clientAuthMethod: string;
}
interface IntrospectedToken {
  kind?: string;
  clientId?: string;
  accountId?: string;
  scope?: string | undefined;
  sid?: string | undefined;
  extra?: Record<string, unknown> | undefined;
}

/** The scope under which `preferred_username` is released (claims.ts). */
const PROFILE_SCOPE = /(?:^| )profile(?: |$)/;

/**
 * `features.introspection.allowedPolicy`: oidc-provider asks it for every token it found valid,
 * before answering anything but `active: false`, so it is the `validate_bearer` stage of
 * introspection.
 *
 * First who may ask: a public client only about its own tokens, a confidential one about any access
 * token (a resource server checking what it was handed). A refresh token is introspectable only by
 * the client it was issued to: nobody else has a reason to hold one. Then the policy, for the token's
 * user and application now (only the app-usability layer for a `client_credentials` token): a user
 * who lost access, or a deactivated application, makes the token `active: false`.
 *
 * Another client's answer leaves out `sid`: the session id of someone else's sign-in is no business
 * of a resource server (it would let it correlate the person's sessions across applications). The
 * provider builds the answer from this very token object after this hook, so it is dropped here.
 *
 * A user's token granted the `profile` scope is answered with RFC 7662's `username` too (the
 * user's username, as `preferred_username`): django-oauth-toolkit, under the Python plugin, answered
 * with it, and resource servers built against the plugin read it. The profile the policy decides on
 * is the one it comes from (one load).
 */
export function introspectionAllowedPolicy(
  policy: PolicyEnforcer,
  directory: Pick<Directory, 'profileById'>,
) {
  return async (ctx: KoaContextWithOIDC, caller: Caller, token: IntrospectedToken): Promise<boolean> => {
    if (typeof token.clientId !== 'string') return false;
    const own = token.clientId === caller.clientId;
    if (!own && caller.clientAuthMethod === 'none') return false;
    if (!own && token.kind === 'RefreshToken') return false;
    const { accountId } = token;
    if (accountId === undefined) {
      return isAllowed(
        await policy.enforce('validate_bearer', { kind: 'client', clientId: token.clientId }, ctx),
      );
    }
    const userId = userIdOf(accountId);
    const profile = userId === null ? undefined : await directory.profileById(userId);
    const decision = await policy.enforce(
      'validate_bearer',
      { kind: 'user', clientId: token.clientId, accountId, profile },
      ctx,
    );
    if (!isAllowed(decision)) return false;
    if (!own) token.sid = undefined;
    if (profile && token.scope !== undefined && PROFILE_SCOPE.test(token.scope)) {
      token.extra = { ...token.extra, username: profile.username };
    }
    return true;
  };
}
