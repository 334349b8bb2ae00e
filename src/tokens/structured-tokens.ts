import introspection from 'oidc-provider/lib/actions/introspection.js';
import revocation from 'oidc-provider/lib/actions/revocation.js';

/**
 * oidc-provider 9 answers `unsupported_token_type` when a JWT is presented at the introspection or
 * revocation endpoint (`shared/reject_structured_tokens.js`): it assumes JWT access tokens are
 * stateless. Ours are stored (section E, see formats.ts), and the adapter finds a JWT by the whole
 * token, so both endpoints must look them up like any other token: a JWT we did not issue is simply
 * not found (`active: false`, or a no-op revocation), as RFC 7662 and RFC 7009 want.
 *
 * The step is removed from the two endpoints' middleware lists, which oidc-provider reads when a
 * Provider is constructed: call this before `new Provider(...)`. Idempotent. The tests of
 * test/tokens/jwt-access-tokens.test.ts fail if a provider upgrade moves the step.
 */
export function acceptStoredJwtsAtIntrospectionAndRevocation(): void {
  for (const stack of [introspection, revocation] as unknown as Array<Array<{ name?: string }>>) {
    const index = stack.findIndex((step) => step.name === 'rejectStructuredTokens');
    if (index !== -1) stack.splice(index, 1);
  }
}
