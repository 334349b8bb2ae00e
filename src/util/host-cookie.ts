/**
 * The name a host-wide cookie (Path=/, no Domain) is set and read under: with the `__Host-` prefix
 * when it is Secure (production), so that no other host of the domain can set or shadow it (RFC 6265bis
 * §4.1.3.2). A browser refuses a `__Host-` cookie that is not Secure, so over plain http (development)
 * the name stays as it is. A cookie scoped to a path below `/` cannot take the prefix.
 */
export function hostCookieName(name: string, secure: boolean): string {
  return secure ? `__Host-${name}` : name;
}
