import { errors, type Provider } from 'oidc-provider';
import { IMPORTED_SECRET_MAX_ITERATIONS, verifyClientSecret } from '../applications/secret.ts';
import type { Logger } from '../logging/logger.ts';
import type { Metrics } from '../metrics/registry.ts';
import { isDjangoPbkdf2 } from '../util/django-pbkdf2.ts';
import type { ImportedSecretGate } from './imported-secret-gate.ts';
import { currentRequest } from './provider-internals.ts';

/** What checking secrets imported from the Python plugin needs; one per process, across provider rebuilds. */
export interface ImportedSecretAuthentication {
  gate: ImportedSecretGate;
  metrics: Pick<Metrics, 'importedSecretChecks'>;
  logger: Logger;
  /** Clients whose hash is too costly to check, already logged (once per process each). */
  loggedTooCostly: Set<string>;
}

/**
 * Client secrets are stored as SHA-256 digests, and the client metadata handed to the
 * provider carries that digest as `client_secret` (see `clients.ts`). oidc-provider authenticates
 * `client_secret_basic` and `client_secret_post` through one method, `Client#compareClientSecret`
 * (lib/shared/client_auth.js). Replacing it on this provider's Client class is the one place where
 * a presented secret meets the stored digest; the comparison itself is the applications domain's
 * `verifyClientSecret` (digests compared in constant time).
 *
 * A secret imported from the Python plugin as a Django PBKDF2 hash is verified by the applications
 * domain, which replaces the hash by the digest on the first success, through the gate that bounds
 * how many such checks run (imported-secret-gate.ts): a request it refuses unchecked is answered
 * `temporarily_unavailable` with `Retry-After` (503 when busy, 429 for an address that sent too
 * many wrong secrets), never `invalid_client`, so that a relying party with the right secret tries
 * again rather than taking its secret for wrong.
 */
export function installDigestSecretComparison(
  provider: Provider,
  imported: ImportedSecretAuthentication,
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
    if (isDjangoPbkdf2(stored)) return checkImportedSecret(imported, this.clientId, presented);
    return false;
  };
}

async function checkImportedSecret(
  imported: ImportedSecretAuthentication,
  clientId: string,
  presented: unknown,
): Promise<boolean> {
  const ctx = currentRequest();
  const answer = await imported.gate.check(clientId, ctx?.ip ?? '', presented);
  const count = (outcome: string) =>
    imported.metrics.importedSecretChecks.inc({ client_id: clientId, outcome });
  switch (answer.outcome) {
    case 'busy':
      count('busy');
      throw unavailable(
        503,
        1,
        'the imported client secret of this client is being checked for other requests; try again in a second',
      );
    case 'throttled':
      count('throttled');
      throw unavailable(
        429,
        answer.retryAfterSeconds,
        `too many wrong secrets for this client from this address; try again in ${answer.retryAfterSeconds} seconds`,
      );
    case 'checked': {
      const { check } = answer;
      if (check.against === 'hash') count(check.matches ? 'verified' : 'wrong');
      else count(check.against);
      if (answer.throttles) {
        imported.logger.warn(
          { clientId },
          'wrong secrets for an application whose secret was imported as a PBKDF2 hash: an address is refused unchecked for a while; rotate its secret (aa-oidc app rotate-secret) to end the hash',
        );
      }
      if (check.against === 'too_costly' && !imported.loggedTooCostly.has(clientId)) {
        imported.loggedTooCostly.add(clientId);
        imported.logger.warn(
          { clientId, iterations: check.iterations, maxIterations: IMPORTED_SECRET_MAX_ITERATIONS },
          'the client secret imported for this application is a PBKDF2 hash costlier than aa-oidc checks: it authenticates nobody; rotate it (aa-oidc app rotate-secret CLIENT_ID) and give the relying party the new secret',
        );
      }
      return check.matches;
    }
  }
}

function unavailable(status: 429 | 503, retryAfterSeconds: number, description: string): Error {
  currentRequest()?.set('Retry-After', String(retryAfterSeconds));
  const error = new errors.TemporarilyUnavailable(description);
  Object.assign(error, { status, statusCode: status });
  return error;
}
