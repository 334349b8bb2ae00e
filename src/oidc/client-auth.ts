import type { Provider } from 'oidc-provider';
import { verifyClientSecret } from '../applications/secret.ts';

/**
 * Client secrets are stored as SHA-256 digests (section C), and the client metadata handed to the
 * provider carries that digest as `client_secret` (see `clients.ts`). oidc-provider authenticates
 * `client_secret_basic` and `client_secret_post` through one method, `Client#compareClientSecret`
 * (lib/shared/client_auth.js). Replacing it on this provider's Client class is the one place where
 * a presented secret meets the stored digest; the comparison itself is the applications domain's
 * `verifyClientSecret` (digests compared in constant time).
 */
export function installDigestSecretComparison(provider: Provider): void {
  const prototype = provider.Client.prototype as unknown as {
    compareClientSecret(this: { clientSecret?: string }, presented: unknown): boolean;
  };
  prototype.compareClientSecret = function compareClientSecret(presented: unknown): boolean {
    const digest = this.clientSecret;
    if (typeof digest !== 'string' || !/^[0-9a-f]{64}$/.test(digest)) return false;
    return verifyClientSecret({ clientSecretSha256: digest }, presented);
  };
}
