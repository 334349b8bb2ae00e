// oidc-provider's endpoint middleware lists (see provider-internals.ts); the package has no
// `exports` map, so these modules resolve, but it ships no types for them.
declare module 'oidc-provider/lib/actions/introspection.js' {
  const stack: unknown[];
  export default stack;
}
declare module 'oidc-provider/lib/actions/revocation.js' {
  const stack: unknown[];
  export default stack;
}
declare module 'oidc-provider/lib/actions/end_session.js' {
  export const confirm: unknown[];
}
