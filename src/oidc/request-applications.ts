import Provider from 'oidc-provider';
import type { Application } from '../applications/types.ts';
import type { ApplicationLookup } from './clients.ts';

/**
 * Section Q: one application load per request. Within a provider request the same application is
 * asked for by the client lookup (`Client.find`), the policy stages (validate_code, save_bearer,
 * validate_bearer) and the access-token format; each ask is the same row, read in the same request.
 * This lookup answers them all from the first load of that request.
 *
 * The memo lives only as long as the request: it is keyed (weakly) on the request's context, the
 * one oidc-provider runs its handlers in (`Provider.ctx`, our Koa context), so the next request
 * reads the database again and sees any deactivation or whitelist change made since. Outside a
 * provider request (interaction pages, the CLI, tests calling it directly) nothing is memoised.
 * A failed load is not kept: a later ask in the same request tries the database again.
 *
 * Not given to the `save_bearer` stage: section D asks the policy once more immediately before
 * tokens are saved, so that stage reads the application from the database again (the policy
 * enforcer's `applicationsAtSave`), as it reloads the user.
 */
export function perRequestApplicationLookup(
  applications: ApplicationLookup,
  currentRequest: () => object | undefined = () => Provider.ctx as object | undefined,
): ApplicationLookup {
  const loads = new WeakMap<object, Map<string, Promise<Application | undefined>>>();
  return {
    findByClientId(clientId) {
      const request = currentRequest();
      if (!request || typeof clientId !== 'string') return applications.findByClientId(clientId);
      let perRequest = loads.get(request);
      if (!perRequest) {
        perRequest = new Map();
        loads.set(request, perRequest);
      }
      let pending = perRequest.get(clientId);
      if (!pending) {
        pending = applications.findByClientId(clientId);
        perRequest.set(clientId, pending);
        pending.catch(() => {
          if (perRequest.get(clientId) === pending) perRequest.delete(clientId);
        });
      }
      return pending;
    },
  };
}
