/**
 * Whether an absolute URL's authority holds credentials (`user:password@` or `user@` before the
 * host): what a logo or an issuer must not carry, written once for the settings and the applications.
 * The authority ends at the first `/`, `?` or `#`, so an `@` in the path or query does not count.
 */
export function urlHasCredentials(url: string): boolean {
  return /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*@/.test(url);
}
