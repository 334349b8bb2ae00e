import type { Provider } from 'oidc-provider';

/** The client methods oidc-provider asks whether a request may name a (post-logout) redirect URI. */
interface RedirectChecks {
  redirectUriAllowed(this: RegisteredRedirects, value: string): boolean;
  postLogoutRedirectUriAllowed(this: RegisteredRedirects, value: string): boolean;
}

interface RegisteredRedirects {
  redirectUris?: string[];
  postLogoutRedirectUris?: string[];
}

/**
 * Redirect URIs match the registered strings exactly, with one exception RFC 8252 §7.3 requires: a
 * native application's loopback IP redirect URI (`http://127.0.0.1/…`, `http://[::1]/…`) matches at
 * any port, since the app listens on a port the system gives it at the time of the request. Path,
 * query and everything else still match exactly; a web application's URIs (clients.ts: one without a
 * private-use scheme redirect URI) match exactly, port included. Post-logout redirect URIs follow the
 * same rule.
 *
 * oidc-provider (`Client#redirectUriAllowed`) lets a native app's `localhost` URI match at any port
 * too. RFC 8252 does not ask for that, and §8.3 advises against `localhost` (the name may resolve to
 * something other than the loopback interface, or be answered by a firewall's rule for another
 * program): here a `localhost` URI matches only as registered, port included.
 */
export function allowAnyPortOnlyForLoopbackIps(provider: Provider): void {
  const prototype = provider.Client.prototype as unknown as RedirectChecks;
  const inherited = {
    redirect: prototype.redirectUriAllowed,
    postLogout: prototype.postLogoutRedirectUriAllowed,
  };
  prototype.redirectUriAllowed = function redirectUriAllowed(value) {
    if (this.redirectUris?.includes(value)) return true;
    return !namesLocalhost(value) && inherited.redirect.call(this, value);
  };
  prototype.postLogoutRedirectUriAllowed = function postLogoutRedirectUriAllowed(value) {
    if (this.postLogoutRedirectUris?.includes(value)) return true;
    return !namesLocalhost(value) && inherited.postLogout.call(this, value);
  };
}

/** True for a URI whose host is `localhost`, in any case (the URL parser lower-cases the host). */
function namesLocalhost(value: string): boolean {
  return URL.parse(value)?.hostname === 'localhost';
}
