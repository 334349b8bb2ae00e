/**
 * Every ID token carries `sid` (the session id this client knows the session by), so that a
 * relying party can match the `sid` of a logout token to its own session. oidc-provider includes
 * it only for clients it sees with a back-channel URI, and ours never do (delivery is ours).
 */
export function includeSessionIdInIdTokens(provider: { Client: { prototype: object } }): void {
  Object.defineProperty(provider.Client.prototype, 'includeSid', {
    configurable: true,
    writable: true,
    value: () => true,
  });
}
