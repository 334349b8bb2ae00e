import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuditEvent } from '../../src/audit/events.ts';
import { createDirectory } from '../../src/directory/builtin/create.ts';
import { createChangeFeed } from '../../src/directory/change-feed.ts';
import type { DirectoryChange, UserProfile } from '../../src/directory/port.ts';
import { KyselyAdapter } from '../../src/oidc/adapter.ts';
import { listTokens } from '../../src/tokens/listing.ts';
import { revokeTokensOnUserChange } from '../../src/tokens/revocation.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { directoryFixture } from './fixture.ts';

const summary = (change: DirectoryChange) =>
  'before' in change
    ? [
        change.kind,
        change.before.active,
        change.before.state?.name ?? null,
        change.before.groups.map((group) => group.name).join(','),
        'after' in change ? change.after.active : null,
        'after' in change ? (change.after.state?.name ?? null) : null,
        'after' in change ? change.after.groups.map((group) => group.name).join(',') : null,
      ]
    : [change.kind];

describe(`the directory change feed (${testDatabaseKind})`, () => {
  it('hands each built-in change to its consumers with the profile before and after, inside the change', async (t) => {
    const { db } = await directoryFixture(t);
    const feed = createChangeFeed();
    const directory = createDirectory(db, undefined, feed);
    const seen: DirectoryChange[] = [];
    const committed: string[] = [];
    feed.subscribe(async (change, unit) => {
      seen.push(change);
      unit.afterCommit(() => void committed.push(change.kind));
    });
    await directory.createState('Member', 100, true);
    await directory.createState('Guest', 10);
    await directory.createGroup('Fleet');
    const alice = await directory.createUser({ username: 'alice', state: 'Member' });
    assert.equal(seen.length, 0, 'creating a user, a state or a group changes nobody');

    await directory.setState({ username: 'alice' }, 'Guest');
    await directory.addGroup({ username: 'alice' }, 'Fleet');
    await directory.updateUser({ username: 'alice' }, { oidcAccess: true, characterName: 'Alice' });
    await directory.grantGroupAccess('Fleet', true);
    await directory.deactivate({ username: 'alice' });
    await directory.activate({ username: 'alice' });
    await directory.deactivate({ username: 'alice' }, { dryRun: true });
    await directory.deleteUser({ username: 'alice' });

    assert.deepEqual(seen.map(summary), [
      ['user_state_changed', true, 'Member', '', true, 'Guest', ''],
      ['user_groups_changed', true, 'Guest', '', true, 'Guest', 'Fleet'],
      ['user_groups_changed', true, 'Guest', 'Fleet', true, 'Guest', 'Fleet'],
      ['user_main_character_changed', true, 'Guest', 'Fleet', true, 'Guest', 'Fleet'],
      ['user_groups_changed', true, 'Guest', 'Fleet', true, 'Guest', 'Fleet'],
      ['user_deactivated', true, 'Guest', 'Fleet', false, 'Guest', 'Fleet'],
      ['user_reactivated', false, 'Guest', 'Fleet', true, 'Guest', 'Fleet'],
      ['user_deactivated', true, 'Guest', 'Fleet', false, 'Guest', 'Fleet'],
      ['user_deleted', true, 'Guest', 'Fleet', null, null, null],
    ]);
    assert.ok(seen.every((change) => !('userId' in change) || change.userId === alice.user.id));
    const permissions = seen[2] as Extract<DirectoryChange, { after: UserProfile }>;
    assert.deepEqual([permissions.before.oidcAccess, permissions.after.oidcAccess], [false, true]);
    const groupAccess = seen[4] as Extract<DirectoryChange, { after: UserProfile }>;
    assert.deepEqual(
      [groupAccess.before.groups[0]!.oidcAccess, groupAccess.after.groups[0]!.oidcAccess],
      [false, true],
    );
    assert.deepEqual(
      committed,
      seen.map((change) => change.kind).filter((_kind, index) => index !== 7),
      'the dry run told nobody after commit',
    );
  });

  it('refuses a built-in change whose consumer throws, and keeps none of the consumers’ writes', async (t) => {
    const { db } = await directoryFixture(t);
    const feed = createChangeFeed();
    const directory = createDirectory(db, undefined, feed);
    const audit: AuditEvent[] = [];
    feed.subscribe(revokeTokensOnUserChange({ publish: (event) => void audit.push(event) }));
    const user = await directory.createUser({ username: 'alice' });
    await new KyselyAdapter('AccessToken', db).upsert(
      'token-1',
      { jti: 'token-1', accountId: String(user.user.id), clientId: 'wiki', grantId: 'g1' },
      600,
    );
    const unsubscribe = feed.subscribe(async () => {
      throw new Error('logout queue unavailable');
    });
    await assert.rejects(directory.deactivate({ username: 'alice' }), /logout queue unavailable/);
    assert.equal((await directory.getUserProfile({ username: 'alice' })).user.active, 1);
    assert.equal((await listTokens(db, { userId: user.user.id }))[0]?.status, 'active');
    assert.equal(audit.length, 0);

    unsubscribe();
    await directory.deactivate({ username: 'alice' });
    assert.equal((await listTokens(db, { userId: user.user.id }))[0]?.status, 'revoked');
    assert.deepEqual(
      audit.map((event) => [event.kind, (event as { reason?: string }).reason]),
      [['token_revoked', 'user_deactivated']],
    );
  });
});
