import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { judgeSignInsSinceLastCycle, toDirectoryChanges } from '../../src/alliance-auth/changes.ts';
import {
  diffFingerprints,
  type Fingerprints,
  parseFingerprint,
  serializeFingerprint,
  type UserFingerprint,
} from '../../src/alliance-auth/fingerprint.ts';

const alice: UserFingerprint = {
  username: 'alice',
  active: true,
  superuser: false,
  state: { id: 2, name: 'Member' },
  groups: [{ id: 1, name: 'Directors' }],
  main: { characterId: 2112000002, ownerHash: 'owner-hash-alice' },
  permission: true,
  passwordDigest: 'digest-of-the-old-hash',
};

const one = (fingerprint: UserFingerprint): Fingerprints => new Map([[2, fingerprint]]);

describe("Alliance Auth's password changes", () => {
  it('a new password hash is a password change; with AA password sign-in it ends the sessions', () => {
    const before = one(alice);
    const after = one({ ...alice, passwordDigest: 'digest-of-the-new-hash' });
    const changes = diffFingerprints(before, after);
    assert.deepEqual(changes, [{ kind: 'user_password_changed', userId: 2, username: 'alice' }]);
    assert.deepEqual(toDirectoryChanges(changes, before, after, { passwordLogin: true }), [
      { kind: 'user_password_changed', userId: 2 },
    ]);
  });

  it('without AA password sign-in, a new AA password has no bearing on a session here', () => {
    const before = one(alice);
    const after = one({ ...alice, passwordDigest: 'digest-of-the-new-hash' });
    const changes = diffFingerprints(before, after);
    assert.deepEqual(toDirectoryChanges(changes, before, after, { passwordLogin: false }), []);
  });

  it('a deactivation that comes with a new password stands alone: it already ends everything', () => {
    const before = one(alice);
    const after = one({ ...alice, active: false, passwordDigest: 'digest-of-the-new-hash' });
    const changes = diffFingerprints(before, after);
    assert.deepEqual(
      toDirectoryChanges(changes, before, after, { passwordLogin: true }).map((change) => change.kind),
      ['user_deactivated'],
    );
  });

  it('a fingerprint stored before digests were recorded reads no password change, and is rewritten', () => {
    const { passwordDigest: _, ...withoutDigest } = alice;
    const stored = serializeFingerprint(withoutDigest);
    assert.doesNotMatch(stored, /digest/);
    const before = one(parseFingerprint(stored));
    assert.deepEqual(diffFingerprints(before, one(alice)), []);
    assert.notEqual(serializeFingerprint(alice), stored, 'the next cycle stores the digest');
    assert.deepEqual(parseFingerprint(serializeFingerprint(alice)), alice);
  });
});

describe('users who signed in since the previous cycle', () => {
  const bob: UserFingerprint = {
    username: 'bob',
    active: true,
    superuser: false,
    state: { id: 3, name: 'Blue' },
    groups: [],
    main: null,
    permission: false,
  };
  const judge = (previous: Fingerprints, current: Fingerprints, signedIn: number[]) => {
    const changes = toDirectoryChanges(diffFingerprints(previous, current), previous, current, {
      passwordLogin: true,
    });
    return judgeSignInsSinceLastCycle(changes, previous, current, new Set(signedIn));
  };

  it('are judged from a profile every application admits, whatever the previous fingerprint said', () => {
    const same = new Map([[3, bob]]);
    const [change, ...rest] = judge(same, same, [3]);
    assert.deepEqual(rest, []);
    assert.equal(change?.kind, 'user_groups_changed');
    assert.ok(change && 'after' in change);
    assert.equal(change.before.superuser, true, 'admitted everywhere before');
    assert.equal(change.after.superuser, false);
    assert.deepEqual(change.after.groups, []);
    // A state change of theirs too; one who did not sign in keeps the previous fingerprint's profile.
    const moved = new Map([[3, { ...bob, state: { id: 1, name: 'Guest' } }]]);
    const [state] = judge(same, moved, [3]);
    assert.ok(state?.kind === 'user_state_changed' && state.before.superuser);
    const [untouched] = judge(same, moved, []);
    assert.ok(untouched?.kind === 'user_state_changed' && !untouched.before.superuser);
    assert.equal(untouched.before.state?.name, 'Blue');
  });

  it('gone from AA before any cycle saw them is a deletion; nothing is emitted twice', () => {
    assert.deepEqual(
      judge(new Map(), new Map(), [7]).map((change) => [change.kind, 'userId' in change && change.userId]),
      [['user_deleted', 7]],
    );
    // Known and deleted, or deactivated: the change the fingerprints show is the only one.
    assert.deepEqual(
      judge(new Map([[3, bob]]), new Map(), [3]).map((change) => change.kind),
      ['user_deleted'],
    );
    assert.deepEqual(
      judge(new Map([[3, bob]]), new Map([[3, { ...bob, active: false }]]), [3]).map((change) => change.kind),
      ['user_deactivated'],
    );
    // Inactive again after a reactivation no cycle saw.
    const inactive = new Map([[3, { ...bob, active: false }]]);
    assert.deepEqual(
      judge(inactive, inactive, [3]).map((change) => change.kind),
      ['user_deactivated'],
    );
  });
});
