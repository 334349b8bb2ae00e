import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  catalogRenames,
  namesSeenIn,
  renameChanges,
  underCurrentNames,
} from '../../src/alliance-auth/catalog-names.ts';
import type { Fingerprints, UserFingerprint } from '../../src/alliance-auth/fingerprint.ts';

const names = (state: Array<[number, string]>, group: Array<[number, string]>) => ({
  state: new Map(state),
  group: new Map(group),
});

const member = (state: [number, string] | null, groups: Array<[number, string]>): UserFingerprint => ({
  username: 'pilot',
  active: true,
  superuser: false,
  state: state && { id: state[0], name: state[1] },
  groups: groups.map(([id, name]) => ({ id, name })),
  main: null,
  permission: true,
});

describe("Alliance Auth's states and groups by id", () => {
  it('reads a rename as a name changed under the same id; a new or deleted id is none', () => {
    const before = names(
      [[2, 'Member']],
      [
        [1, 'Directors'],
        [2, 'Fleet'],
        [3, 'Gone'],
      ],
    );
    const after = names(
      [[2, 'Alliance Member']],
      [
        [1, 'directors'],
        [2, 'Fleet'],
        [4, 'New'],
      ],
    );
    assert.deepEqual(catalogRenames(before, after), [
      { entity: 'state', id: 2, from: 'Member', to: 'Alliance Member' },
      { entity: 'group', id: 1, from: 'Directors', to: 'directors' },
    ]);
  });

  it('renames whitelists directly, or through names of their own when one lands on another’s old name', () => {
    assert.deepEqual(
      renameChanges([
        { entity: 'group', id: 1, from: 'Directors', to: 'directors' },
        { entity: 'group', id: 5, from: 'Scouts', to: 'Recon' },
      ]),
      [
        { kind: 'catalog_renamed', entity: 'group', from: 'Directors', to: 'directors' },
        { kind: 'catalog_renamed', entity: 'group', from: 'Scouts', to: 'Recon' },
      ],
      'a change of case and a plain rename go straight',
    );
    assert.deepEqual(
      renameChanges([
        { entity: 'group', id: 2, from: 'Fleet', to: 'Wiki' },
        { entity: 'group', id: 3, from: 'Wiki', to: 'Fleet' },
        { entity: 'state', id: 2, from: 'Blue', to: 'Member' },
      ]),
      [
        { kind: 'catalog_renamed', entity: 'state', from: 'Blue', to: 'Member' },
        { kind: 'catalog_renamed', entity: 'group', from: 'Fleet', to: 'aa-oidc: renaming group 2' },
        { kind: 'catalog_renamed', entity: 'group', from: 'Wiki', to: 'aa-oidc: renaming group 3' },
        { kind: 'catalog_renamed', entity: 'group', from: 'aa-oidc: renaming group 2', to: 'Wiki' },
        { kind: 'catalog_renamed', entity: 'group', from: 'aa-oidc: renaming group 3', to: 'Fleet' },
      ],
      'a swap of group names goes through names of its own; the state (another kind) goes straight',
    );
    // Alliance Auth on PostgreSQL: Directors (1) becomes directors, the name the open group (7) had
    // until it became Social. Matched exactly, in either order, neither lands on the other's entries.
    assert.deepEqual(
      renameChanges([
        { entity: 'group', id: 1, from: 'Directors', to: 'directors' },
        { entity: 'group', id: 7, from: 'directors', to: 'Social' },
      ]).map((change) => (change.kind === 'catalog_renamed' ? [change.from, change.to] : [])),
      [
        ['Directors', 'aa-oidc: renaming group 1'],
        ['directors', 'aa-oidc: renaming group 7'],
        ['aa-oidc: renaming group 1', 'directors'],
        ['aa-oidc: renaming group 7', 'Social'],
      ],
      "a new name that is another's old one in another case goes through names of its own",
    );
  });

  it('reads fingerprints under the current names, keeping what needs no change as it is', () => {
    const unchanged = member([2, 'Member'], [[2, 'Fleet']]);
    const renamed = member(
      [2, 'Member'],
      [
        [1, 'Directors'],
        [2, 'Fleet'],
        [9, 'Deleted since'],
      ],
    );
    const fingerprints: Fingerprints = new Map([
      [1, unchanged],
      [2, renamed],
    ]);
    const current = names(
      [[2, 'Member']],
      [
        [1, 'Leadership'],
        [2, 'Fleet'],
      ],
    );
    const read = underCurrentNames(fingerprints, current);
    assert.equal(read.get(1), unchanged, 'the same object');
    assert.deepEqual(read.get(2)?.groups, [
      { id: 1, name: 'Leadership' },
      { id: 2, name: 'Fleet' },
      { id: 9, name: 'Deleted since' },
    ]);
    assert.equal(fingerprints.get(2), renamed, 'the fingerprints given are not changed');
    assert.equal(renamed.groups[0]!.name, 'Directors');
    const quiet = new Map([[1, unchanged]]);
    assert.equal(underCurrentNames(quiet, current), quiet, 'a quiet cycle allocates no new map');
  });

  it('takes the names stored fingerprints hold where no names were kept yet', () => {
    const seen = namesSeenIn(
      new Map([
        [1, member([2, 'Member'], [[1, 'Directors']])],
        [2, member(null, [[3, 'Wiki']])],
      ]),
    );
    assert.deepEqual(
      { state: [...seen.state], group: [...seen.group] },
      {
        state: [[2, 'Member']],
        group: [
          [1, 'Directors'],
          [3, 'Wiki'],
        ],
      },
    );
  });
});
