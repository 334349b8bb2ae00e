import type { Provider } from 'oidc-provider';
import { verifyClientSecret } from '../applications/secret.ts';
import type { ApplicationService } from '../applications/types.ts';
import { isDjangoPbkdf2 } from '../util/django-pbkdf2.ts';

/**
 * Client secrets are stored as SHA-256 digests, and the client metadata handed to the
 * provider carries that digest as `client_secret` (see `clients.ts`). oidc-provider authenticates
 * `client_secret_basic` and `client_secret_post` through one method, `Client#compareClientSecret`
 * (lib/shared/client_auth.js). Replacing it on this provider's Client class is the one place where
 * a presented secret meets the stored digest; the comparison itself is the applications domain's
 * `verifyClientSecret` (digests compared in constant time).
 *
 * A secret imported from the Python plugin as a Django PBKDF2 hash is verified by the applications
 * domain, which replaces the hash by the digest on the first success.
 */
export function installDigestSecretComparison(
  provider: Provider,
  applications: Pick<ApplicationService, 'verifyImportedSecret'>,
): void {
  const prototype = provider.Client.prototype as unknown as {
    compareClientSecret(
      this: { clientSecret?: string; clientId: string },
      presented: unknown,
    ): boolean | Promise<boolean>;
  };
  prototype.compareClientSecret = function compareClientSecret(
    presented: unknown,
  ): boolean | Promise<boolean> {
    const stored = this.clientSecret;
    if (typeof stored !== 'string') return false;
    if (/^[0-9a-f]{64}$/.test(stored)) return verifyClientSecret({ clientSecretSha256: stored }, presented);
    if (isDjangoPbkdf2(stored)) return applications.verifyImportedSecret(this.clientId, presented);
    return false;
  };
}
