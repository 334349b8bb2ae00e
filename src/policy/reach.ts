import type { UserProfile } from '../directory/port.ts';
import { decide, isAllowed, passesGlobalGate, type PolicyApplication } from './decide.ts';

/**
 * Whether the user's access (state, groups, the permission) admits them to none of `applications`,
 * the active ones: they do not pass the global gate, or there is at least one and `decide` refuses
 * each. With no application at all the answer is false: their access is then not why none admits
 * them. Says nothing about which application admits whom, for the account page to tell a member why
 * it lists none without naming any application or whitelist.
 */
export function admitsToNoApplication(
  profile: UserProfile,
  applications: readonly PolicyApplication[],
): boolean {
  if (!passesGlobalGate(profile)) return true;
  return applications.length > 0 && !applications.some((app) => isAllowed(decide(profile, app)));
}
