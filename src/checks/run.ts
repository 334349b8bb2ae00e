import type { ApplicationService } from '../applications/types.ts';
import type { Config } from '../config/load.ts';
import { type Finding, runChecks } from './checks.ts';

/** Section J over the running configuration and every registered application. */
export async function systemChecks(
  config: Config,
  applications: Pick<ApplicationService, 'list'>,
): Promise<Finding[]> {
  return runChecks(config, await applications.list());
}
