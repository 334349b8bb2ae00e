import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { builtinDirectoryReader } from '../../src/directory/builtin/reads.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { directoryFixture } from './fixture.ts';

describe(`the built-in directory behind the port (${testDatabaseKind})`, () => {
  it('answers plain profiles: booleans, camelCase, state and groups by name, no stored row', async (t) => {
    const { db, directory } = await directoryFixture(t);
    await directory.createState('Member', 100, true);
    await directory.createGroup('Pilots');
    await directory.createGroup('Haulers', true);
    const alice = await directory.createUser({
      username: 'alice',
      email: 'alice@example.org',
      password: 'correct horse battery',
      state: 'Member',
      groups: ['Pilots', 'Haulers'],
      characterId: 90000001,
      characterName: 'Alice Pilot',
      corporationTicker: 'CRP',
    });
    const port = builtinDirectoryReader(db);

    const profile = await port.profileById(alice.user.id);
    assert.deepEqual(profile, {
      id: alice.user.id,
      username: 'alice',
      email: 'alice@example.org',
      emailVerified: false,
      active: true,
      superuser: false,
      oidcAccess: false,
      locale: null,
      mainCharacter: {
        characterId: 90000001,
        characterName: 'Alice Pilot',
        corporationId: null,
        corporationName: null,
        corporationTicker: 'CRP',
        allianceId: null,
        allianceName: null,
        allianceTicker: null,
        factionId: null,
        factionName: null,
      },
      state: { name: 'Member', priority: 100, oidcAccess: true },
      groups: [
        { name: 'Haulers', oidcAccess: true },
        { name: 'Pilots', oidcAccess: false },
      ],
    });
    assert.ok(!JSON.stringify(profile).includes('argon2'), 'no password hash reaches the port');
    assert.deepEqual(await port.profileByUsername('ALICE'), profile);
    assert.equal(await port.profileById(999_999), undefined);
    assert.equal(await port.profileByUsername('nobody'), undefined);
    assert.equal(await port.profileByUsername('not a username'), undefined, 'malformed: nobody');
  });

  it('lists states, groups and profiles, and finds the users a whitelist covers, regardless of case', async (t) => {
    const { db, directory } = await directoryFixture(t);
    await directory.createState('Member', 100, true);
    await directory.createState('Blue', 50);
    await directory.createGroup('Fleet');
    await directory.createGroup('Miners', true);
    const member = await directory.createUser({ username: 'member', state: 'Member' });
    const blueFleet = await directory.createUser({
      username: 'blue-fleet',
      state: 'Blue',
      groups: ['Fleet'],
    });
    const miner = await directory.createUser({ username: 'miner', groups: ['Miners'] });
    const nobody = await directory.createUser({ username: 'nobody' });
    const port = builtinDirectoryReader(db);

    assert.deepEqual(await port.listStates(), [
      { name: 'Member', priority: 100, oidcAccess: true },
      { name: 'Blue', priority: 50, oidcAccess: false },
    ]);
    assert.deepEqual(await port.listGroups(), [
      { name: 'Fleet', oidcAccess: false },
      { name: 'Miners', oidcAccess: true },
    ]);
    assert.deepEqual(
      (await port.listProfiles({ group: 'fleet' })).map((profile) => profile.username),
      ['blue-fleet'],
    );
    assert.deepEqual(
      (await port.listProfiles({ state: null })).map((profile) => profile.username),
      ['miner', 'nobody'],
    );
    assert.deepEqual(
      await port.listProfiles({ state: 'No Such State' }),
      [],
      'an unknown name selects nobody',
    );

    // Counted as listed, without reading the profiles (the admin dashboard's "No state").
    for (const [filter, count] of [
      [{}, 4],
      [{ state: null }, 2],
      [{ state: 'member' }, 1],
      [{ group: 'FLEET' }, 1],
      [{ state: null, group: 'Miners' }, 1],
      [{ search: 'MIN' }, 1],
      [{ active: true }, 4],
      [{ active: false }, 0],
      [{ state: 'No Such State' }, 0],
    ] as const) {
      assert.equal(await port.countProfiles(filter), count, JSON.stringify(filter));
      assert.equal((await port.listProfiles(filter)).length, count, JSON.stringify(filter));
    }
    assert.equal(await port.countProfiles(), 4);

    assert.deepEqual(await port.usersCoveredBy({ states: ['member'], groups: ['FLEET'] }), [
      member.user.id,
      blueFleet.user.id,
    ]);
    assert.deepEqual(await port.usersCoveredBy({ states: [], groups: ['Miners', 'Gone'] }), [miner.user.id]);
    assert.deepEqual(await port.usersCoveredBy({ states: [], groups: [] }), []);

    const some = await port.profilesByIds([nobody.user.id, miner.user.id, 424242, nobody.user.id]);
    assert.deepEqual(some.map((profile) => profile.username).sort(), ['miner', 'nobody']);
    assert.deepEqual(await port.profilesByIds([]), []);
  });
});
