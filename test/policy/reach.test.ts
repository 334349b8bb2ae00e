import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NO_CHARACTER } from '../../src/alliance-auth/directory.ts';
import type { UserProfile } from '../../src/directory/port.ts';
import type { PolicyApplication } from '../../src/policy/decide.ts';
import { admitsToNoApplication } from '../../src/policy/reach.ts';

/** A member of state `state` and group Fleet, with `oidc_access` through the state or not at all. */
function member(state: string, access: 'state' | 'none' | 'superuser'): UserProfile {
  return {
    id: 7,
    username: 'alice',
    email: '',
    emailVerified: false,
    active: true,
    superuser: access === 'superuser',
    oidcAccess: false,
    locale: null,
    mainCharacter: NO_CHARACTER,
    state: { name: state, priority: 10, oidcAccess: access === 'state' },
    groups: [{ name: 'Fleet', oidcAccess: false }],
  };
}

const app = (states: string[], groups: string[] = []): PolicyApplication => ({
  clientId: `app-${states.join('-')}-${groups.join('-')}`,
  active: true,
  states,
  groups,
});

describe('admitsToNoApplication', () => {
  const table: Array<[string, UserProfile, PolicyApplication[], boolean]> = [
    ['refused at the global gate, with no application', member('Blue', 'none'), [], true],
    ['refused at the global gate, even by an open application', member('Blue', 'none'), [app([])], true],
    [
      'past the gate, whitelisted by none',
      member('Guest', 'state'),
      [app(['Member']), app([], ['Directors'])],
      true,
    ],
    [
      'past the gate, whitelisted by one through a group',
      member('Guest', 'state'),
      [app(['Member']), app([], ['Fleet'])],
      false,
    ],
    ['past the gate, an open application', member('Guest', 'state'), [app(['Member']), app([])], false],
    ['past the gate, with no application at all: not their access', member('Guest', 'state'), [], false],
    [
      'who is a superuser, admitted by every application',
      member('Guest', 'superuser'),
      [app(['Member'])],
      false,
    ],
  ];
  for (const [what, profile, applications, none] of table) {
    it(`${none ? 'is' : 'is not'} true of a member ${what}`, () => {
      assert.equal(admitsToNoApplication(profile, applications), none);
    });
  }
});
