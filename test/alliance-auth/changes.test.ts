import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toDirectoryChanges } from '../../src/alliance-auth/changes.ts';
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
