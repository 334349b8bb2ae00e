import { NO_CHARACTER } from '../../src/alliance-auth/directory.ts';
import type { UserProfile } from '../../src/directory/port.ts';

/**
 * A profile of user `id` as a directory's load returns it, with `overrides`: named `u<id>`, active,
 * without access of its own, a main character, a state or groups. A new object each call, its parts
 * too (keeping a profile freezes them).
 */
export function userProfile(id: number, overrides: Partial<UserProfile> = {}): UserProfile {
  return {
    id,
    username: `u${id}`,
    email: '',
    emailVerified: false,
    active: true,
    superuser: false,
    oidcAccess: false,
    locale: null,
    mainCharacter: { ...NO_CHARACTER },
    state: null,
    groups: [],
    ...overrides,
  };
}
