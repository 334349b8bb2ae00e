import type { Application, ApplicationService } from '../applications/types.ts';
import type { Config } from '../config/load.ts';
import type { Directory } from '../directory/port.ts';
import type { KeyService } from '../keys/types.ts';
import {
  type CheckedSigningKey,
  type DirectoryNames,
  type Finding,
  runChecks,
  spacedNameChecks,
  unfitCharacterNameChecks,
  whitelistChecks,
} from './checks.ts';

/**
 * The system checks over the running configuration, every registered application, the signing keys
 * and the directory (whitelisted names it lacks, W006; built-in names with spaces in a row, W014;
 * names with a character new names refuse, W015).
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
  const names = { states: states.map((state) => state.name), groups: groups.map((group) => group.name) };
  return findingsOver(config, apps, signingKeys, names);
}

/**
 * Every check's findings over what `systemChecks` reads, for a caller that has read it already (the
 * admin dashboard): one list of checks, wherever they are shown.
 */
export function findingsOver(
  config: Config,
  apps: readonly Application[],
  signingKeys: readonly CheckedSigningKey[],
  names: DirectoryNames,
): Finding[] {
  return [
    ...runChecks(config, apps, signingKeys),
    ...whitelistChecks(apps, names),
    ...spacedNameChecks(config.directory.source, names),
    ...unfitCharacterNameChecks(config.directory.source, names, apps),
  ];
}
