import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GroupRow, StateRow, UserRow } from '../../src/db/schema.ts';
import { toUserProfile } from '../../src/directory/builtin/profile.ts';
import type { UserRecord } from '../../src/directory/builtin/types.ts';
import type { UserProfile } from '../../src/directory/port.ts';
import { claimsFor, MAX_GROUP_CLAIMS, scopeClaims, type ClaimsConfig } from '../../src/oidc/claims.ts';

const CONFIG: ClaimsConfig = {
  claimPrefix: 'eve_',
  eveClaimsScope: 'profile',
  portraitUrlTemplate: 'https://images.evetech.net/characters/{character_id}/portrait?size={size}',
  portraitSize: 128,
};

function user(overrides: Partial<UserRow> = {}): UserRow {
  return {
    id: 42,
    username: 'pilot',
    username_key: 'pilot',
    email: '  pilot@example.org ',
    email_verified: 1,
    password_hash: 'never-used',
    active: 1,
    superuser: 0,
    oidc_access: 0,
    state_id: 1,
    character_id: 90000001,
    character_name: 'Pilot One',
    corporation_id: 98000001,
    corporation_name: 'Corp',
    corporation_ticker: 'CRP',
    alliance_id: 99000001,
    alliance_name: 'Alliance',
    alliance_ticker: 'ALL',
    faction_id: null,
    faction_name: null,
    locale: 'en-GB',
    last_login_at: null,
    must_change_password: 0,
    created_at: 0,
    updated_at: 0,
    ...overrides,
  };
}
const state = (name: string): StateRow => ({
  id: 1,
  name,
  name_key: name.toLowerCase(),
  priority: 100,
  oidc_access: 1,
  created_at: 0,
});
const group = (id: number, name: string): GroupRow => ({
  id,
  name,
  name_key: name.toLowerCase(),
  oidc_access: 0,
  created_at: 0,
});
const profile = (overrides: Partial<UserRecord> = {}): UserProfile =>
  toUserProfile({
    user: user(),
    state: state('Member'),
    groups: [group(1, 'Fleet'), group(2, 'Alpha')],
    ...overrides,
  });

interface Row {
  name: string;
  profile: UserProfile;
  scopes: string[];
  config?: Partial<ClaimsConfig>;
  expected: Record<string, unknown>;
}

const TABLE: Row[] = [
  {
    name: 'openid alone yields only sub, as a string',
    profile: profile(),
    scopes: ['openid'],
    expected: { sub: '42' },
  },
  {
    name: 'email is trimmed and comes with email_verified',
    profile: profile(),
    scopes: ['openid', 'email'],
    expected: { sub: '42', email: 'pilot@example.org', email_verified: true },
  },
  {
    name: 'an empty email is omitted, and so is email_verified',
    profile: profile({ user: user({ email: '   ', email_verified: 0 }) }),
    scopes: ['openid', 'email'],
    expected: { sub: '42' },
  },
  {
    name: 'groups are sorted, then the state name is appended',
    profile: profile(),
    scopes: ['openid', 'groups'],
    expected: { sub: '42', groups: ['Alpha', 'Fleet', 'Member'] },
  },
  {
    name: 'an RP set up for the Python plugin (openid profile email) gets groups and the username',
    profile: profile(),
    scopes: ['openid', 'profile', 'email'],
    config: { eveClaimsScope: 'eve' },
    expected: {
      sub: '42',
      email: 'pilot@example.org',
      email_verified: true,
      name: 'Pilot One',
      preferred_username: 'pilot',
      picture: 'https://images.evetech.net/characters/90000001/portrait?size=128',
      locale: 'en-GB',
      groups: ['Alpha', 'Fleet', 'Member'],
    },
  },
  {
    name: 'no groups and no state: no groups claim at all',
    profile: profile({ state: null, groups: [] }),
    scopes: ['openid', 'groups'],
    expected: { sub: '42' },
  },
  {
    name: 'profile carries name, username, picture, locale, groups and the EVE claims',
    profile: profile(),
    scopes: ['openid', 'profile'],
    expected: {
      sub: '42',
      name: 'Pilot One',
      preferred_username: 'pilot',
      groups: ['Alpha', 'Fleet', 'Member'],
      picture: 'https://images.evetech.net/characters/90000001/portrait?size=128',
      locale: 'en-GB',
      eve_character_id: 90000001,
      eve_main_character_id: 90000001,
      eve_corporation_id: 98000001,
      eve_corporation_name: 'Corp',
      eve_corporation_ticker: 'CRP',
      eve_alliance_id: 99000001,
      eve_alliance_name: 'Alliance',
      eve_alliance_ticker: 'ALL',
      eve_affiliation: {
        corp: { id: 98000001, name: 'Corp', ticker: 'CRP' },
        alliance: { id: 99000001, name: 'Alliance', ticker: 'ALL' },
        state: 'Member',
      },
    },
  },
  {
    name: 'without a character: no picture, no name, no EVE ids, never null',
    profile: profile({
      user: user({
        character_id: null,
        character_name: null,
        corporation_id: null,
        corporation_name: null,
        corporation_ticker: null,
        alliance_id: null,
        alliance_name: '',
        alliance_ticker: null,
        locale: null,
      }),
      state: null,
    }),
    scopes: ['openid', 'profile'],
    expected: { sub: '42', preferred_username: 'pilot', groups: ['Alpha', 'Fleet'] },
  },
  {
    name: 'faction members get the faction claims',
    profile: profile({ user: user({ faction_id: 500001, faction_name: 'Caldari State' }), state: null }),
    scopes: ['profile'],
    config: { portraitSize: 64 },
    expected: {
      sub: '42',
      name: 'Pilot One',
      preferred_username: 'pilot',
      groups: ['Alpha', 'Fleet'],
      picture: 'https://images.evetech.net/characters/90000001/portrait?size=64',
      locale: 'en-GB',
      eve_character_id: 90000001,
      eve_main_character_id: 90000001,
      eve_corporation_id: 98000001,
      eve_corporation_name: 'Corp',
      eve_corporation_ticker: 'CRP',
      eve_alliance_id: 99000001,
      eve_alliance_name: 'Alliance',
      eve_alliance_ticker: 'ALL',
      eve_faction_id: 500001,
      eve_faction_name: 'Caldari State',
      eve_affiliation: {
        corp: { id: 98000001, name: 'Corp', ticker: 'CRP' },
        alliance: { id: 99000001, name: 'Alliance', ticker: 'ALL' },
        faction: { id: 500001, name: 'Caldari State' },
      },
    },
  },
  {
    name: 'a configured prefix and carrying scope move the EVE claims',
    profile: profile({ user: user({ alliance_id: null, alliance_name: null, alliance_ticker: null }) }),
    scopes: ['openid', 'eve'],
    config: { claimPrefix: 'aa_', eveClaimsScope: 'eve' },
    expected: {
      sub: '42',
      aa_character_id: 90000001,
      aa_main_character_id: 90000001,
      aa_corporation_id: 98000001,
      aa_corporation_name: 'Corp',
      aa_corporation_ticker: 'CRP',
      aa_affiliation: { corp: { id: 98000001, name: 'Corp', ticker: 'CRP' }, state: 'Member' },
    },
  },
];

describe('claimsFor', () => {
  for (const row of TABLE) {
    it(row.name, () => {
      const claims = claimsFor(row.profile, row.scopes, { ...CONFIG, ...row.config });
      assert.deepEqual(claims, row.expected);
      for (const value of Object.values(claims)) assert.notEqual(value, null);
    });
  }

  it(`keeps at most ${MAX_GROUP_CLAIMS} groups, then the state`, () => {
    const groups = Array.from({ length: 300 }, (_, index) =>
      group(index + 1, `g${String(index).padStart(3, '0')}`),
    );
    const claims = claimsFor(profile({ groups: [...groups].reverse() }), ['groups'], CONFIG);
    const names = claims.groups as string[];
    assert.equal(names.length, MAX_GROUP_CLAIMS + 1);
    assert.equal(names[0], 'g000');
    assert.equal(names[MAX_GROUP_CLAIMS - 1], 'g255');
    assert.equal(names[MAX_GROUP_CLAIMS], 'Member');
  });

  it('maps each configured scope to the claims it releases', () => {
    const mapping = scopeClaims(CONFIG, ['openid', 'email', 'profile', 'groups', 'offline_access']);
    assert.deepEqual(mapping.openid, ['sub']);
    assert.deepEqual(mapping.email, ['email', 'email_verified']);
    assert.deepEqual(mapping.groups, ['groups']);
    assert.ok(mapping.profile!.includes('groups'));
    assert.ok(mapping.profile!.includes('preferred_username'));
    assert.ok(mapping.profile!.includes('eve_affiliation'));
    assert.ok(mapping.profile!.includes('picture'));
    assert.equal(mapping.offline_access, undefined);
  });
});
