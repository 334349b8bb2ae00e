import type { ApplicationLookup } from './clients.ts';
import { currentRequest as providerRequest } from './provider-internals.ts';
import { loadOncePerRequest } from './request-memo.ts';

/**
 * One application load per provider request. Within a request the same application is asked for by
 * the client lookup (`Client.find`), the policy stages (validate_code, save_bearer, validate_bearer)
 * and the access-token format; each ask is the same row, read in the same request. This lookup
 * answers them all from the first load of that request (request-memo.ts): the next request reads
 * the database again and sees any deactivation or whitelist change made since. Outside a provider
 * request nothing is memoised; a failed load is not kept.
 *
 * Not given to the `save_bearer` stage: the policy is asked once more immediately before tokens are
 * saved, so that stage reads the application from the database again (the policy enforcer's
 * `applicationsAtSave`), as it reloads the user.
 */
export function perRequestApplicationLookup(
  applications: ApplicationLookup,
  currentRequest: () => object | undefined = providerRequest,
): ApplicationLookup {
  const load = loadOncePerRequest((clientId: string) => applications.findByClientId(clientId));
  return {
    findByClientId(clientId) {
      if (typeof clientId !== 'string') return applications.findByClientId(clientId);
      return load(currentRequest(), clientId);
    },
  };
}
