import type { ApplicationLookup } from './clients.ts';
import { currentRequest as providerRequest } from './provider-internals.ts';
import { loadOncePerRequest } from './request-memo.ts';

/**
 * One application lookup per provider request. Within a request the same application is asked for
 * by the client lookup (`Client.find`), the policy stages (validate_code, validate_bearer) and the
 * access-token format; each ask is the same row, in the same request. This lookup answers them all
 * from the first lookup of that request (request-memo.ts), itself answered from memory while the
 * change epoch stands (change-epoch-cache.ts): the next request checks the epoch again and sees any
 * deactivation or whitelist change made since. Outside a provider request nothing is memoised; a
 * failed load is not kept.
 *
 * Not given to the `save_bearer` stage: the policy is asked once more immediately before tokens are
 * saved, so that stage reads the change epoch afresh (the policy enforcer's `applicationsAtSave`),
 * and reloads the user.
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
