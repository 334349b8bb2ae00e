import type { ApplicationService } from '../applications/types.ts';
import type { Config } from '../config/load.ts';
import type { Directory } from '../directory/port.ts';
import type { KeyService } from '../keys/types.ts';
import { type Finding, runChecks, whitelistChecks } from './checks.ts';

/**
 * The system checks over the running configuration, every registered application, the signing keys
 * and the directory.
 */
export async function systemChecks(
  config: Config,
  applications: Pick<ApplicationService, 'list'>,
  directory: Pick<Directory, 'listStates' | 'listGroups'>,
  keys: Pick<KeyService, 'list'>,
): Promise<Finding[]> {
  const [apps, signingKeys, states, groups] = await Promise.all([
    applications.list(),
    keys.list(),
    directory.listStates(),
    directory.listGroups(),
  ]);
  return [
    ...runChecks(config, apps, signingKeys),
    ...whitelistChecks(apps, {
      states: states.map((state) => state.name),
      groups: groups.map((group) => group.name),
    }),
  ];
}
