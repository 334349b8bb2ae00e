import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GroupRow, StateRow, UserRow } from '../../src/db/schema.ts';
import { toUserProfile } from '../../src/directory/builtin/profile.ts';
import type { UserProfile } from '../../src/directory/port.ts';
import {
  decide,
  decideApplication,
  decideForMany,
  type PolicyApplication,
  type PolicyDecision,
} from '../../src/policy/decide.ts';
import { explainDecision } from '../../src/policy/explain.ts';
import { assertNever } from '../../src/util/assert-never.ts';

const state = (name: string, oidcAccess: boolean): StateRow => ({
  id: name.length,
  name,
  name_key: name.toLowerCase(),
  priority: name.length * 10,
  oidc_access: oidcAccess ? 1 : 0,
  created_at: 0,
});
const group = (name: string, oidcAccess: boolean): GroupRow => ({
  id: name.length,
  name,
  name_key: name.toLowerCase(),
  oidc_access: oidcAccess ? 1 : 0,
  created_at: 0,
});
const baseUser: UserRow = {
  id: 7,
  username: 'alice',
  username_key: 'alice',
  email: '',
  email_verified: 0,
  password_hash: null,
  active: 1,
  superuser: 0,
  oidc_access: 0,
  state_id: null,
  character_id: null,
  character_name: null,
  corporation_id: null,
  corporation_name: null,
  corporation_ticker: null,
  alliance_id: null,
  alliance_name: null,
  alliance_ticker: null,
  faction_id: null,
  faction_name: null,
  locale: null,
  last_login_at: null,
  must_change_password: 0,
  created_at: 0,
  updated_at: 0,
};

type Access = 'superuser' | 'via_state' | 'via_group' | 'via_user' | 'none';
type Whitelist = 'empty' | 'state_match' | 'group_match' | 'neither';

/** A user in state Member and group Fleet, with `oidc_access` coming from exactly one place (or none). */
function profileWith(access: Access, active = true): UserProfile {
  return toUserProfile({
    user: {
      ...baseUser,
      active: active ? 1 : 0,
      superuser: access === 'superuser' ? 1 : 0,
      oidc_access: access === 'via_user' ? 1 : 0,
    },
    state: state('Member', access === 'via_state'),
    groups: [group('Fleet', access === 'via_group'), group('Miners', false)],
  });
}

function appWith(whitelist: Whitelist, active: boolean): PolicyApplication {
  const lists: Record<Whitelist, Pick<PolicyApplication, 'states' | 'groups'>> = {
    empty: { states: [], groups: [] },
    state_match: { states: ['Blue', 'Member'], groups: ['Directors'] },
    group_match: { states: ['Blue'], groups: ['Fleet'] },
    neither: { states: ['Blue'], groups: ['Directors'] },
  };
  return { clientId: 'wiki', active, ...lists[whitelist] };
}

/** The expected decision, written from the policy's rules independently of the implementation's order of checks. */
function expected(access: Access, whitelist: Whitelist, active: boolean): PolicyDecision['outcome'] | string {
  if (access === 'none') return 'deny:global';
  if (!active) return 'deny:app_unusable';
  if (access === 'superuser') return 'allow';
  return whitelist === 'neither' ? 'deny:app' : 'allow';
}

const label = (decision: PolicyDecision): string => {
  switch (decision.outcome) {
    case 'allow':
      return 'allow';
    case 'deny':
      return `deny:${decision.reason}`;
    default:
      return assertNever(decision);
  }
};

/**
 * How many times `Array.prototype.includes` is called while `run` runs, and how many array elements
 * those calls search.
 */
function includesCallsDuring<T>(run: () => T): { result: T; calls: number; searched: number } {
  const includes = Object.getOwnPropertyDescriptor(Array.prototype, 'includes')!;
  const original = includes.value as (this: unknown[], item: unknown) => boolean;
  let calls = 0;
  let searched = 0;
  Object.defineProperty(Array.prototype, 'includes', {
    ...includes,
    value(this: unknown[], item: unknown) {
      calls += 1;
      searched += this.length;
      return original.call(this, item);
    },
  });
  try {
    return { result: run(), calls, searched };
  } finally {
    Object.defineProperty(Array.prototype, 'includes', includes);
  }
}

/** A user with access in `count` groups named `prefix n`. */
function memberOf(prefix: string, count: number): UserProfile {
  return {
    ...profileWith('via_user'),
    groups: Array.from({ length: count }, (_, index) => ({ name: `${prefix} ${index}`, oidcAccess: false })),
  };
}

describe('decide(user, app)', () => {
  const accesses: Access[] = ['superuser', 'via_state', 'via_group', 'via_user', 'none'];
  const whitelists: Whitelist[] = ['empty', 'state_match', 'group_match', 'neither'];
  for (const access of accesses) {
    for (const whitelist of whitelists) {
      for (const active of [true, false]) {
        const want = expected(access, whitelist, active);
        it(`${access} × whitelist ${whitelist} × app ${active ? 'active' : 'inactive'} → ${want}`, () => {
          assert.equal(label(decide(profileWith(access), appWith(whitelist, active))), want);
        });
      }
    }
  }

  it('decides for many users (decideForMany) exactly as decide does, on every cell of the matrix', () => {
    const judge = decideForMany();
    for (const access of accesses) {
      for (const whitelist of whitelists) {
        for (const active of [true, false]) {
          for (const userActive of [true, false]) {
            const profile = profileWith(access, userActive);
            const app = appWith(whitelist, active);
            assert.deepEqual(judge(profile, app), decide(profile, app));
            assert.deepEqual(judge(profile, app), decide(profile, app), 'judged again');
          }
        }
      }
    }
    assert.deepEqual(judge(profileWith('via_user'), null), decide(profileWith('via_user'), null));
  });

  it("judges many users against an application without comparing each user's groups with each whitelisted name", () => {
    const app: PolicyApplication = {
      clientId: 'fleets',
      active: true,
      states: [],
      groups: Array.from({ length: 200 }, (_, index) => `Fleet ${index}`),
    };
    const members = Array.from({ length: 200 }, () => memberOf('Wing', 100));
    members.push(memberOf('Fleet', 200));
    const judge = decideForMany();
    const { result, searched } = includesCallsDuring(() =>
      members.map((member) => judge(member, app).outcome),
    );
    assert.deepEqual(result, [...Array.from({ length: 200 }, () => 'deny'), 'allow']);
    // Compared in place: 200 users × 100 groups, each searched for among 200 names (4 million).
    assert.equal(searched, 0);
  });

  it('refuses an inactive user at the global gate, superuser or not, without naming the app', () => {
    for (const access of accesses) {
      const decision = decide(profileWith(access, false), appWith('empty', true));
      assert.deepEqual(decision, { outcome: 'deny', reason: 'global' });
      assert.equal(JSON.stringify(decision).includes('wiki'), false);
    }
  });

  it('answers no_client for a missing application, after the global gate', () => {
    assert.deepEqual(decide(profileWith('via_state'), undefined), { outcome: 'deny', reason: 'no_client' });
    assert.deepEqual(decide(profileWith('none'), undefined), { outcome: 'deny', reason: 'global' });
  });

  it('says how access was granted', () => {
    assert.deepEqual(decide(profileWith('via_user'), appWith('state_match', true)), {
      outcome: 'allow',
      via: 'state',
    });
    assert.deepEqual(decide(profileWith('via_user'), appWith('group_match', true)), {
      outcome: 'allow',
      via: 'group',
    });
    assert.deepEqual(decide(profileWith('via_user'), appWith('empty', true)), {
      outcome: 'allow',
      via: 'open_app',
    });
    assert.deepEqual(decide(profileWith('superuser'), appWith('neither', true)), {
      outcome: 'allow',
      via: 'superuser',
    });
  });

  it('treats a user with no state as matching no state whitelist', () => {
    const profile = { ...profileWith('via_user'), state: null };
    assert.deepEqual(decide(profile, appWith('state_match', true)), {
      outcome: 'deny',
      reason: 'app',
      clientId: 'wiki',
    });
  });

  it('admits every active user to the built-in account console, and no inactive one', () => {
    const console: PolicyApplication = { ...appWith('neither', true), admitsEveryActiveUser: true };
    for (const access of accesses) {
      assert.deepEqual(decide(profileWith(access), console), { outcome: 'allow', via: 'account_console' });
      assert.deepEqual(decide(profileWith(access, false), console), { outcome: 'deny', reason: 'global' });
    }
  });

  it('judges an application alone (client_credentials) by its usability only, whitelists aside', () => {
    assert.deepEqual(decideApplication(appWith('neither', true)), { outcome: 'allow', via: 'usable_app' });
    assert.deepEqual(decideApplication(appWith('empty', false)), {
      outcome: 'deny',
      reason: 'app_unusable',
      clientId: 'wiki',
    });
    assert.deepEqual(decideApplication(undefined), { outcome: 'deny', reason: 'no_client' });
  });
});

describe('explainDecision (policy show)', () => {
  const granting = { states: ['Member'], groups: ['Fleet'] };

  it('agrees with decide() on every cell of the matrix', () => {
    for (const access of ['superuser', 'via_state', 'via_group', 'via_user', 'none'] as const) {
      for (const whitelist of ['empty', 'state_match', 'group_match', 'neither'] as const) {
        for (const active of [true, false]) {
          const profile = profileWith(access);
          const app = appWith(whitelist, active);
          const decision = decide(profile, app);
          const explained = explainDecision(profile, app, granting);
          assert.equal(explained.decision, decision.outcome);
          assert.equal(
            explained.reason,
            decision.outcome === 'deny' ? decision.reason : `via_${decision.via}`,
          );
          assert.equal(explained.appActive, active);
          assert.equal(explained.globalGate, access === 'none' ? 'fail' : 'pass');
        }
      }
    }
  });

  it('names what a refused user would need', () => {
    const whitelisted = explainDecision(profileWith('via_user'), appWith('neither', true), granting);
    assert.deepEqual(whitelisted.neededStates, ['Blue']);
    assert.deepEqual(whitelisted.neededGroups, ['Directors']);
    assert.deepEqual(whitelisted.accessVia, ['user']);
    const global = explainDecision(profileWith('none'), appWith('empty', true), granting);
    assert.deepEqual(global.neededStates, ['Member']);
    assert.deepEqual(global.neededGroups, ['Fleet']);
    assert.deepEqual(global.accessVia, []);
    const allowed = explainDecision(profileWith('via_group'), appWith('group_match', true), granting);
    assert.deepEqual([allowed.neededStates, allowed.neededGroups], [[], []]);
  });

  it("names the groups a refused user would need without comparing each with each of the user's groups", () => {
    const names = Array.from({ length: 200 }, (_, index) => `Fleet ${index}`);
    const app: PolicyApplication = { clientId: 'fleets', active: true, states: [], groups: names };
    const profile = memberOf('Wing', 300);
    const { result, calls } = includesCallsDuring(() => explainDecision(profile, app, granting));
    assert.deepEqual(result.neededGroups, names);
    // The decision searches once for the state and once for each of the user's groups; the needed
    // groups add no search (they added 60,000, one for each pair).
    assert.ok(calls <= profile.groups.length + 1, `${calls} searches`);
  });
});
