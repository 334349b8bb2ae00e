import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import argon2 from 'argon2';
import { PASSWORD_HASH_PARAMETERS } from '../../src/directory/builtin/passwords.ts';
import { DirectoryError } from '../../src/directory/errors.ts';
import { nameKey } from '../../src/util/name-key.ts';
import type { LifecycleEvent, LifecycleEventMeta } from '../../src/directory/builtin/types.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { directoryFixture } from './fixture.ts';

const PASSWORD = 'correct horse battery';

async function rejectsWith(
  promise: Promise<unknown>,
  code: DirectoryError['code'],
  message: string | RegExp,
) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof DirectoryError, `expected a DirectoryError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (typeof message === 'string') assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  });
}

describe(`directory service (${testDatabaseKind})`, () => {
  it('creates a user with a state and groups, and records one user_created event with the actor', async (t) => {
    const { directory, events } = await directoryFixture(t);
    await directory.createState('Member', 100, true);
    await directory.createGroup('Pilots');
    await directory.createGroup('Haulers', true);
    const profile = await directory.createUser(
      {
        username: 'alice',
        email: 'alice@example.org',
        password: PASSWORD,
        state: 'member',
        groups: ['pilots', 'Haulers'],
      },
      { actor: 'cli:root' },
    );
    assert.equal(profile.user.username, 'alice');
    assert.equal(profile.user.email, 'alice@example.org');
    assert.equal(profile.user.active, 1);
    assert.equal(profile.user.superuser, 0);
    assert.match(profile.user.password_hash ?? '', /^\$argon2id\$/);
    assert.equal(profile.state?.name, 'Member');
    assert.deepEqual(
      profile.groups.map((group) => group.name),
      ['Haulers', 'Pilots'],
    );
    const rows = await events();
    assert.deepEqual(
      rows.map((row) => row.kind),
      ['state_created', 'group_created', 'group_created', 'user_created'],
    );
    const created = rows.at(-1)!;
    assert.equal(created.user_id, profile.user.id);
    assert.equal(created.actor, 'cli:root');
    assert.deepEqual(JSON.parse(created.payload), {
      kind: 'user_created',
      userId: profile.user.id,
      username: 'alice',
    });
    assert.ok(!created.payload.includes(PASSWORD));
  });

  it('refuses invalid input with a message naming the input and what is valid', async (t) => {
    const { directory, events } = await directoryFixture(t);
    await directory.createState('Member', 100);
    await directory.createState('Blue', 50);
    await directory.createState('Guest', 0);
    await directory.createGroup('Pilots');
    await directory.createUser({ username: 'alice' });
    const before = (await events()).length;

    const badUsername = /^invalid username .*: use 1–150 letters, digits and the characters @ \. \+ - _$/;
    await rejectsWith(directory.createUser({ username: '' }), 'invalid', badUsername);
    await rejectsWith(directory.createUser({ username: 'al ice' }), 'invalid', badUsername);
    await rejectsWith(directory.createUser({ username: 'a'.repeat(151) }), 'invalid', badUsername);
    await rejectsWith(directory.createUser({ username: 'bob/x' }), 'invalid', badUsername);
    await rejectsWith(directory.createUser({ username: 'bob\0' }), 'invalid', /must not contain NUL bytes/);
    await directory.createUser({ username: 'a'.repeat(150) });
    await directory.createUser({ username: 'o.k+name-1_@x' });
    await rejectsWith(
      directory.createUser({ username: 'carol', email: 'not-an-email' }),
      'invalid',
      'invalid email "not-an-email": expected an address like name@example.org (at most 254 characters), or an empty string for none',
    );
    await rejectsWith(
      directory.createUser({ username: 'carol', email: 'carol@example.org\0' }),
      'invalid',
      /NUL/,
    );
    await rejectsWith(
      directory.createUser({ username: 'carol', state: 'Membr' }),
      'not_found',
      'unknown state "Membr"; existing states: Blue, Guest, Member',
    );
    await rejectsWith(
      directory.createUser({ username: 'carol', groups: ['Pilots', 'Pilotz'] }),
      'not_found',
      'unknown group "Pilotz"; existing groups: Pilots',
    );
    await rejectsWith(directory.createUser({ username: 'carol', groups: ['Pil\0ts'] }), 'invalid', /NUL/);
    await rejectsWith(
      directory.createUser({ username: 'ALICE' }),
      'conflict',
      /is taken by "alice" \(usernames are unique regardless of case and Unicode form\)/,
    );
    await rejectsWith(directory.createState('member', 10), 'conflict', /state "Member" already exists/);
    await rejectsWith(
      directory.createState('Red', 100),
      'conflict',
      'priority 100 is already used by state "Member"; priorities are unique, used: 100 (Member), 50 (Blue), 0 (Guest)',
    );
    await rejectsWith(directory.createState('Red', 1.5), 'invalid', /expected a whole number/);
    await rejectsWith(directory.createState(' Red', 1), 'invalid', /invalid state name " Red"/);
    // A browser resolves /admin/groups/.. away: such a group could never be opened there.
    await rejectsWith(
      directory.createGroup('..'),
      'invalid',
      /invalid group name "\.\.": .*other than \. and \.\./,
    );
    await rejectsWith(directory.createState('.', 1), 'invalid', /invalid state name "\."/);
    await rejectsWith(directory.renameGroup('Pilots', '..'), 'invalid', /invalid group name "\.\."/);
    await rejectsWith(directory.createGroup('PILOTS'), 'conflict', /group "Pilots" already exists/);
    await rejectsWith(
      directory.setState({ username: 'nobody' }, 'Member'),
      'not_found',
      'unknown user "nobody": no user has this username',
    );
    await rejectsWith(
      directory.setState({ username: 'alice' }, 'Membr'),
      'not_found',
      'unknown state "Membr"; existing states: Blue, Guest, Member',
    );
    await rejectsWith(
      directory.addGroup({ username: 'alice' }, 'Nope'),
      'not_found',
      'unknown group "Nope"; existing groups: Pilots',
    );
    await rejectsWith(
      directory.updateUser({ username: 'alice' }, { nickname: 'x' } as never),
      'invalid',
      /^unknown user field "nickname"; valid fields: email, emailVerified, superuser, oidcAccess, locale, characterId/,
    );
    await rejectsWith(
      directory.updateUser({ username: 'alice' }, { characterId: -4 }),
      'invalid',
      /invalid character id -4/,
    );
    await rejectsWith(
      directory.updateUser({ username: 'alice' }, { locale: 'english please' }),
      'invalid',
      /invalid locale/,
    );
    await rejectsWith(
      directory.updateUser({ username: 'alice' }, { allianceTicker: 'TOOLONGTICKER' }),
      'invalid',
      /alliance ticker/,
    );
    await rejectsWith(
      directory.listUsers({ state: 'Membr' }),
      'not_found',
      /existing states: Blue, Guest, Member/,
    );
    // Only the two valid users were created: no refused change left an event.
    assert.deepEqual(
      (await events()).slice(before).map((row) => row.kind),
      ['user_created', 'user_created'],
    );
  });

  it('refuses a new state or group name with spaces in a row, and still finds, renames and deletes one stored before', async (t) => {
    const { db, directory } = await directoryFixture(t);
    await directory.createState('Bob Smith', 10);
    await directory.createGroup('Home Guard');
    const inARow = (kind: string, shown: string) =>
      new RegExp(
        `^invalid ${kind} name "${shown}": it has spaces in a row, which show as one; separate its words with a single space$`,
      );
    // Beside `Bob Smith` a web page would show `Bob  Smith` alike: another state a lookup with one space misses.
    await rejectsWith(directory.createState('Bob  Smith', 20), 'invalid', inARow('state', 'Bob  Smith'));
    await rejectsWith(
      directory.createGroup('Home \u3000Guard'),
      'invalid',
      inARow('group', 'Home \u3000Guard'),
    );
    await rejectsWith(
      directory.createGroup('Home\u00a0 Guard'),
      'invalid',
      inARow('group', 'Home\u00a0 Guard'),
    );
    await rejectsWith(
      directory.renameGroup('Home Guard', 'Home   Guard'),
      'invalid',
      inARow('group', 'Home   Guard'),
    );
    await rejectsWith(
      directory.renameState('Bob Smith', 'Bob  Smith'),
      'invalid',
      inARow('state', 'Bob  Smith'),
    );
    // Ends and control characters were refused before; they still are.
    await rejectsWith(
      directory.createGroup('Home Guard '),
      'invalid',
      /^invalid group name "Home Guard ": use 1–150/,
    );
    await rejectsWith(directory.createGroup('Home\tGuard'), 'invalid', /U\+0009, a control character/);
    // One stored before the check (or by an older aa-oidc) is still found, renamed and deleted.
    await db
      .insertInto('state')
      .values({
        name: 'Old  State',
        name_key: nameKey('Old  State'),
        priority: 30,
        oidc_access: 0,
        created_at: Date.now(),
      })
      .execute();
    assert.equal((await directory.findStateByName('Old  State'))?.name, 'Old  State');
    assert.equal((await directory.renameState('Old  State', 'Old State')).state.name, 'Old State');
    await db
      .insertInto('auth_group')
      .values({ name: 'Old  Group', name_key: nameKey('Old  Group'), oidc_access: 0, created_at: Date.now() })
      .execute();
    await directory.deleteGroup('Old  Group');
    assert.equal(await directory.findGroupByName('Old  Group'), undefined);
  });

  it('never repeats a refused password in an error message', async (t) => {
    const { directory } = await directoryFixture(t);
    await rejectsWith(
      directory.createUser({ username: 'alice', password: 'short1' }),
      'invalid',
      'the password is too short; at least 8 characters are required',
    );
    await directory.createUser({ username: 'alice', password: PASSWORD });
    for (const password of ['sh0rt', 'x'.repeat(1025), 'nul\0byte-password']) {
      await assert.rejects(directory.setPassword({ username: 'alice' }, password), (error: Error) => {
        assert.ok(error instanceof DirectoryError && error.code === 'invalid');
        assert.ok(!error.message.includes(password), error.message);
        return true;
      });
    }
  });

  it('refuses to set a password holding a control character, which no sign-in page can type, naming the character', async (t) => {
    const { directory } = await directoryFixture(t);
    for (const [password, named] of [
      ['line\r\nbreak password', 'U+000D'],
      ['tab\tin the password', 'U+0009'],
      ['escape \u001b[A password', 'U+001B'],
      ['a C1 \u0085 password', 'U+0085'],
    ] as const) {
      await rejectsWith(
        directory.createUser({ username: 'alice', password }),
        'invalid',
        `the password holds a control character (${named}), which no sign-in page can type: choose one without it`,
      );
    }
    await directory.createUser({ username: 'alice', password: PASSWORD });
    await rejectsWith(
      directory.setPassword({ username: 'alice' }, 'new\npassword'),
      'invalid',
      /control character \(U\+000A\)/,
    );
    assert.equal((await directory.verifyPassword('alice', PASSWORD)).outcome, 'valid', 'unchanged');
  });

  it('refuses to set a password holding a bidirectional control or an invisible character, naming it, while a stored one still signs in', async (t) => {
    const { db, directory } = await directoryFixture(t);
    const hidden = [
      ['\u202e', 'U+202E, a bidirectional control character'],
      ['\u202a', 'U+202A, a bidirectional control character'],
      ['\u2066', 'U+2066, a bidirectional control character'],
      ['\u2069', 'U+2069, a bidirectional control character'],
      ['\u200e', 'U+200E, a bidirectional control character'],
      ['\u200f', 'U+200F, a bidirectional control character'],
      ['\u061c', 'U+061C, a bidirectional control character'],
      ['\u200b', 'U+200B, an invisible character'],
      ['\ufeff', 'U+FEFF, an invisible character'],
      ['\u00ad', 'U+00AD, an invisible character'],
    ] as const;
    for (const [char, named] of hidden) {
      await rejectsWith(
        directory.createUser({ username: 'alice', password: `pass${char}word-long` }),
        'invalid',
        `the password holds a hidden character (${named}), which no one types at a sign-in page on purpose and which makes it look like another password: choose one without it`,
      );
    }
    await directory.createUser({ username: 'alice', password: PASSWORD });
    for (const [char, named] of hidden) {
      await rejectsWith(
        directory.setPassword({ username: 'alice' }, `${char}password-long`),
        'invalid',
        new RegExp(`^the password holds a hidden character \\(${named.replace('+', '\\+')}\\)`),
      );
    }
    assert.equal((await directory.verifyPassword('alice', PASSWORD)).outcome, 'valid', 'unchanged');

    // The joiners of emoji sequences and of Persian and Indic writing, and an emoji's variation
    // selector, are typed on purpose: taken.
    for (const password of [
      'team \u{1f469}\u200d\u{1f4bb} rocks',
      '\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 password',
      'love \u2764\ufe0f always',
    ]) {
      await directory.setPassword({ username: 'alice' }, password);
      assert.equal((await directory.verifyPassword('alice', password)).outcome, 'valid');
    }

    // A password set before holds one: it still signs in (only new passwords are judged).
    const old = 'admin\u202eword-old';
    await db
      .updateTable('app_user')
      .set({ password_hash: await argon2.hash(old, PASSWORD_HASH_PARAMETERS) })
      .where('username', '=', 'alice')
      .execute();
    assert.equal((await directory.verifyPassword('alice', old)).outcome, 'valid');
  });

  it('emits one event per change, with what changed, and nothing for a change that changes nothing', async (t) => {
    const { directory, events } = await directoryFixture(t);
    const seen: LifecycleEvent[] = [];
    directory.afterCommit((event) => void seen.push(event));
    const member = await directory.createState('Member', 100, true);
    await directory.createState('Blue', 50);
    const pilots = await directory.createGroup('Pilots');
    const alice = await directory.createUser({ username: 'alice', state: 'Member' });
    const id = alice.user.id;
    const u = { username: 'alice' };
    const start = (await events()).length;

    assert.equal((await directory.setState(u, 'Member')).changed, false);
    const moved = await directory.setState(u, 'Blue');
    assert.equal(moved.changed, true);
    assert.equal(moved.profile.state?.name, 'Blue');
    assert.equal((await directory.setState(u, 'blue')).changed, false);
    assert.equal((await directory.setState(u, null)).profile.state, null);
    assert.equal((await directory.setState(u, null)).changed, false);
    assert.equal((await directory.addGroup(u, 'Pilots')).changed, true);
    assert.equal((await directory.addGroup(u, 'pilots')).changed, false);
    assert.equal((await directory.removeGroup(u, 'Pilots')).changed, true);
    assert.equal((await directory.removeGroup(u, 'Pilots')).changed, false);
    assert.equal((await directory.deactivate(u)).profile.user.active, 0);
    assert.equal((await directory.deactivate(u)).changed, false);
    assert.equal((await directory.activate(u)).profile.user.active, 1);
    assert.equal((await directory.activate(u)).changed, false);
    assert.equal((await directory.grantStateAccess('Member', true)).changed, false);
    assert.equal((await directory.grantStateAccess('Member', false)).state.oidc_access, 0);
    assert.equal((await directory.grantGroupAccess('Pilots', false)).changed, false);
    assert.equal((await directory.grantGroupAccess('Pilots', true)).group.oidc_access, 1);
    const updated = await directory.updateUser(
      { id },
      { email: 'a@example.org', emailVerified: true, superuser: true },
    );
    assert.equal(updated.changed, true);
    assert.equal(
      (await directory.updateUser({ id }, { email: 'a@example.org', superuser: true })).changed,
      false,
    );
    // A new address is no longer verified.
    const reset = await directory.updateUser(
      { id },
      { email: 'new@example.org', characterId: 90000001, characterName: 'Alice Alt' },
    );
    assert.equal(reset.profile.user.email_verified, 0);
    assert.equal(reset.profile.user.character_name, 'Alice Alt');
    assert.equal((await directory.setPassword(u, PASSWORD)).changed, true);

    const payloads = (await events()).slice(start).map((row) => JSON.parse(row.payload) as LifecycleEvent);
    const expected: LifecycleEvent[] = [
      { kind: 'user_state_changed', userId: id, username: 'alice', fromState: 'Member', toState: 'Blue' },
      { kind: 'user_state_changed', userId: id, username: 'alice', fromState: 'Blue', toState: null },
      { kind: 'user_group_added', userId: id, username: 'alice', group: 'Pilots' },
      { kind: 'user_group_removed', userId: id, username: 'alice', group: 'Pilots' },
      { kind: 'user_deactivated', userId: id, username: 'alice' },
      { kind: 'user_activated', userId: id, username: 'alice' },
      { kind: 'state_access_changed', stateId: member.id, name: 'Member', oidcAccess: false },
      { kind: 'group_access_changed', groupId: pilots.id, name: 'Pilots', oidcAccess: true },
      {
        kind: 'user_updated',
        userId: id,
        username: 'alice',
        fields: ['email', 'emailVerified', 'superuser'],
      },
      {
        kind: 'user_updated',
        userId: id,
        username: 'alice',
        fields: ['characterId', 'characterName', 'email', 'emailVerified'],
      },
      { kind: 'user_password_changed', userId: id, username: 'alice' },
    ];
    assert.deepEqual(payloads, expected);
    // Committed listeners saw exactly the committed events, in order.
    assert.deepEqual(seen.slice(-expected.length), expected);
    assert.equal(seen.length, 4 + expected.length);
  });

  it('runs subscribers inside the change’s transaction, after the event row is written', async (t) => {
    const { directory } = await directoryFixture(t);
    await directory.createGroup('Pilots');
    await directory.createUser({ username: 'alice' });
    const observed: Array<{
      kind: string;
      active: number | undefined;
      eventKind: string | undefined;
      groups: number;
    }> = [];
    directory.subscribe(async (event, trx, meta) => {
      if (!('userId' in event)) return;
      const user = await trx
        .selectFrom('app_user')
        .select('active')
        .where('id', '=', event.userId)
        .executeTakeFirst();
      const row = await trx
        .selectFrom('lifecycle_event')
        .select('kind')
        .where('id', '=', meta.eventId)
        .executeTakeFirst();
      const groups = await trx
        .selectFrom('user_group')
        .select('group_id')
        .where('user_id', '=', event.userId)
        .execute();
      observed.push({ kind: event.kind, active: user?.active, eventKind: row?.kind, groups: groups.length });
    });
    await directory.addGroup({ username: 'alice' }, 'Pilots');
    await directory.deactivate({ username: 'alice' });
    await directory.deleteUser({ username: 'alice' });
    assert.deepEqual(observed, [
      { kind: 'user_group_added', active: 1, eventKind: 'user_group_added', groups: 1 },
      { kind: 'user_deactivated', active: 0, eventKind: 'user_deactivated', groups: 1 },
      // Deletion subscribers run while the user and what it owns still exist.
      { kind: 'user_deleted', active: 0, eventKind: 'user_deleted', groups: 1 },
    ]);
    assert.equal(await directory.findUserByUsername('alice'), undefined);
  });

  it('rolls back the change and its event when a subscriber throws, and tells no committed listener', async (t) => {
    const { db, directory, events } = await directoryFixture(t);
    await directory.createState('Member', 100);
    await directory.createUser({ username: 'alice', state: 'Member' });
    const committed: string[] = [];
    directory.afterCommit((event) => void committed.push(event.kind));
    const before = await events();
    let subscriberCalls = 0;
    const unsubscribe = directory.subscribe(async (event, trx) => {
      subscriberCalls += 1;
      // A write of the subscriber's own, which must vanish with the change.
      await trx
        .insertInto('auth_group')
        .values({
          name: `written by ${event.kind}`,
          name_key: `written by ${event.kind}`,
          oidc_access: 0,
          created_at: 1,
        })
        .execute();
      throw new Error('delivery queue unavailable');
    });
    await assert.rejects(directory.deactivate({ username: 'alice' }), /delivery queue unavailable/);
    await assert.rejects(directory.setState({ username: 'alice' }, null), /delivery queue unavailable/);
    await assert.rejects(
      directory.createUser({ username: 'bob', password: PASSWORD }),
      /delivery queue unavailable/,
    );
    await assert.rejects(directory.deleteUser({ username: 'alice' }), /delivery queue unavailable/);
    assert.equal(subscriberCalls, 4);
    const alice = await directory.getUserProfile({ username: 'alice' });
    assert.equal(alice.user.active, 1);
    assert.equal(alice.state?.name, 'Member');
    assert.equal(await directory.findUserByUsername('bob'), undefined);
    assert.deepEqual(await events(), before);
    assert.deepEqual(await db.selectFrom('auth_group').select('name').execute(), []);
    assert.deepEqual(committed, []);

    unsubscribe();
    await directory.deactivate({ username: 'alice' });
    assert.deepEqual(committed, ['user_deactivated']);
  });

  it('keeps a change when a committed listener throws or rejects, and logs only the event kind', async (t) => {
    const { directory, logLines } = await directoryFixture(t);
    const calls: string[] = [];
    directory.afterCommit(() => {
      calls.push('throws');
      throw new Error('cache down');
    });
    directory.afterCommit(async () => {
      calls.push('rejects');
      throw new Error('audit sink down');
    });
    directory.afterCommit((event) => void calls.push(`after ${event.kind}`));
    const profile = await directory.createUser({ username: 'alice', password: PASSWORD });
    assert.equal(profile.user.username, 'alice');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(calls, ['throws', 'rejects', 'after user_created']);
    const failures = logLines.filter((line) => line.includes('a lifecycle listener failed'));
    assert.equal(failures.length, 2);
    assert.ok(failures.every((line) => line.includes('"kind":"user_created"')));
    assert.ok(logLines.every((line) => !line.includes(PASSWORD)));
  });

  it('runs a dry run in full, subscribers included, and commits nothing', async (t) => {
    const { directory, events } = await directoryFixture(t);
    await directory.createUser({ username: 'root', superuser: true });
    await directory.createUser({ username: 'alice' });
    const committed: string[] = [];
    const subscribed: Array<[string, boolean]> = [];
    directory.afterCommit((event) => void committed.push(event.kind));
    directory.subscribe(
      async (event, _trx, meta: LifecycleEventMeta) => void subscribed.push([event.kind, meta.dryRun]),
    );
    const before = await events();

    const deactivation = await directory.deactivate({ username: 'alice' }, { dryRun: true });
    assert.equal(deactivation.changed, true);
    assert.equal(deactivation.profile.user.active, 0);
    const deletion = await directory.deleteUser({ username: 'alice' }, { dryRun: true });
    assert.equal(deletion.profile.user.username, 'alice');
    // The guards run too.
    await rejectsWith(
      directory.deleteUser({ username: 'root' }, { dryRun: true }),
      'conflict',
      /only active superuser/,
    );

    assert.equal((await directory.getUserProfile({ username: 'alice' })).user.active, 1);
    assert.deepEqual(await events(), before);
    assert.deepEqual(committed, []);
    assert.deepEqual(subscribed, [
      ['user_deactivated', true],
      ['user_deleted', true],
    ]);
  });

  it('refuses to deactivate, delete or demote the only active superuser', async (t) => {
    const { directory } = await directoryFixture(t);
    await directory.createUser({ username: 'root', superuser: true });
    const message =
      'refusing to deactivate "root": it is the only active superuser; make another user a superuser first';
    await rejectsWith(directory.deactivate({ username: 'root' }), 'conflict', message);
    await rejectsWith(directory.deleteUser({ username: 'root' }), 'conflict', /refusing to delete "root"/);
    await rejectsWith(
      directory.updateUser({ username: 'root' }, { superuser: false }),
      'conflict',
      /remove superuser from "root"/,
    );
    await directory.createUser({ username: 'second', superuser: true });
    assert.equal((await directory.deactivate({ username: 'root' })).changed, true);
    await rejectsWith(directory.deleteUser({ username: 'second' }), 'conflict', /only active superuser/);
  });

  it('deletes a user and their memberships, keeping the event', async (t) => {
    const { db, directory, events } = await directoryFixture(t);
    await directory.createGroup('Pilots');
    const alice = await directory.createUser({ username: 'alice', groups: ['Pilots'] });
    const deleted = await directory.deleteUser({ username: 'Alice' });
    assert.deepEqual(
      deleted.profile.groups.map((group) => group.name),
      ['Pilots'],
    );
    assert.equal(await directory.loadUserProfile(alice.user.id), undefined);
    assert.deepEqual(await db.selectFrom('user_group').selectAll().execute(), []);
    const last = (await events()).at(-1)!;
    assert.equal(last.kind, 'user_deleted');
    assert.equal(last.user_id, alice.user.id);
    assert.deepEqual(
      (await directory.listGroups()).map((group) => [group.name, group.userCount]),
      [['Pilots', 0]],
    );
  });

  it('loads a profile (user, state, groups sorted by name) in one query', async (t) => {
    const { directory, takeQueryCount } = await directoryFixture(t);
    await directory.createState('Member', 100, true);
    for (const name of ['b-team', 'Alpha', 'alpha2', 'Zulu']) await directory.createGroup(name);
    const created = await directory.createUser({
      username: 'alice',
      state: 'Member',
      groups: ['Zulu', 'b-team', 'alpha2', 'Alpha'],
    });
    const bare = await directory.createUser({ username: 'bob' });
    takeQueryCount();
    const profile = await directory.loadUserProfile(created.user.id);
    assert.equal(takeQueryCount(), 1);
    assert.ok(profile);
    assert.equal(profile.user.username, 'alice');
    assert.deepEqual(profile.state, {
      id: profile.user.state_id,
      name: 'Member',
      name_key: 'member',
      priority: 100,
      oidc_access: 1,
      created_at: profile.state!.created_at,
    });
    assert.equal(typeof profile.state!.created_at, 'number');
    assert.deepEqual(
      profile.groups.map((group) => group.name),
      ['Alpha', 'Zulu', 'alpha2', 'b-team'],
    );
    const bobProfile = await directory.loadUserProfile(bare.user.id);
    assert.equal(bobProfile?.state, null);
    assert.deepEqual(bobProfile?.groups, []);
    assert.equal(await directory.loadUserProfile(999_999), undefined);
    assert.equal((await directory.findUserByUsername('ALICE'))?.id, created.user.id);
    assert.equal((await directory.findUserById(bare.user.id))?.username, 'bob');
  });

  it('lists users by state, group, activity and search text, and states and groups with counts', async (t) => {
    const { directory, takeQueryCount } = await directoryFixture(t);
    await directory.createState('Member', 100, true);
    await directory.createState('Guest', 0);
    await directory.createGroup('Pilots');
    await directory.createGroup('Admins', true);
    await directory.createUser({ username: 'carol', state: 'Guest', email: 'carol@corp.example' });
    await directory.createUser({ username: 'alice', state: 'Member', groups: ['Pilots', 'Admins'] });
    await directory.createUser({
      username: 'bob_50',
      email: 'bob_50%off@example.org',
      state: 'Member',
      groups: ['Pilots'],
    });
    await directory.createUser({ username: 'dave', active: false });
    const names = (profiles: Array<{ user: { username: string } }>) => profiles.map((p) => p.user.username);

    takeQueryCount();
    const all = await directory.listUsers();
    assert.equal(takeQueryCount(), 2);
    assert.deepEqual(names(all), ['alice', 'bob_50', 'carol', 'dave']);
    assert.deepEqual(
      all[0]!.groups.map((group) => group.name),
      ['Admins', 'Pilots'],
    );
    assert.deepEqual(names(await directory.listUsers({ state: 'member' })), ['alice', 'bob_50']);
    assert.deepEqual(names(await directory.listUsers({ state: null })), ['dave']);
    assert.deepEqual(names(await directory.listUsers({ group: 'Pilots', state: 'Member' })), [
      'alice',
      'bob_50',
    ]);
    assert.deepEqual(names(await directory.listUsers({ group: 'Admins' })), ['alice']);
    assert.deepEqual(names(await directory.listUsers({ active: false })), ['dave']);
    assert.deepEqual(names(await directory.listUsers({ search: 'CORP' })), ['carol']);
    // LIKE wildcards in the search text match themselves only.
    assert.deepEqual(names(await directory.listUsers({ search: '_50%' })), ['bob_50']);
    assert.deepEqual(names(await directory.listUsers({ search: 'a%' })), []);
    assert.deepEqual(names(await directory.listUsers({ limit: 2, offset: 1 })), ['bob_50', 'carol']);
    // A username is found as a lookup finds it, regardless of case over all of Unicode and of Unicode
    // form, on SQLite too (whose lower() folds ASCII only): `ärger`, `A` + U+0308 `RGER`, `ＲＧＥＲ`.
    await directory.createUser({ username: 'Ärger' });
    for (const search of ['ärger', 'A\u0308RGER', 'ＲＧＥＲ'])
      assert.deepEqual(names(await directory.listUsers({ search })), ['Ärger'], search);
    await rejectsWith(
      directory.listUsers({ group: 'Nobody' }),
      'not_found',
      'unknown group "Nobody"; existing groups: Admins, Pilots',
    );

    assert.deepEqual(
      (await directory.listStates()).map((state) => [
        state.name,
        state.priority,
        state.oidc_access,
        state.userCount,
      ]),
      [
        ['Member', 100, 1, 2],
        ['Guest', 0, 0, 1],
      ],
    );
    assert.deepEqual(
      (await directory.listGroups()).map((group) => [group.name, group.oidc_access, group.userCount]),
      [
        ['Admins', 1, 1],
        ['Pilots', 0, 2],
      ],
    );
    assert.equal((await directory.findStateByName('GUEST'))?.name, 'Guest');
    assert.equal(await directory.findGroupByName('Nobody'), undefined);
  });

  it('verifies passwords: valid, wrong, unknown user, no password, inactive only once the password is right', async (t) => {
    const { db, directory } = await directoryFixture(t);
    await directory.createUser({ username: 'alice', password: PASSWORD });
    await directory.createUser({ username: 'nopass' });
    await directory.createUser({ username: 'gone', password: PASSWORD, active: false });
    const valid = await directory.verifyPassword('Alice', PASSWORD);
    assert.equal(valid.outcome, 'valid');
    assert.equal(valid.outcome === 'valid' && valid.user.username, 'alice');
    assert.deepEqual(await directory.verifyPassword('alice', `${PASSWORD}!`), { outcome: 'invalid' });
    assert.deepEqual(await directory.verifyPassword('nobody', PASSWORD), { outcome: 'invalid' });
    assert.deepEqual(await directory.verifyPassword('not a username', PASSWORD), { outcome: 'invalid' });
    assert.deepEqual(await directory.verifyPassword('nopass', ''), { outcome: 'invalid' });
    assert.deepEqual(await directory.verifyPassword('alice', `${PASSWORD}\0`), { outcome: 'invalid' });
    assert.deepEqual(await directory.verifyPassword('gone', 'wrong password'), { outcome: 'invalid' });
    assert.equal((await directory.verifyPassword('gone', PASSWORD)).outcome, 'inactive');

    // A hash made with weaker parameters is replaced at the next successful login.
    const weak = await argon2.hash(PASSWORD, {
      type: argon2.argon2id,
      memoryCost: 4096,
      timeCost: 1,
      parallelism: 1,
    });
    await db.updateTable('app_user').set({ password_hash: weak }).where('username', '=', 'alice').execute();
    assert.equal((await directory.verifyPassword('alice', PASSWORD)).outcome, 'valid');
    const rehashed = (await directory.findUserByUsername('alice'))!.password_hash!;
    assert.notEqual(rehashed, weak);
    assert.match(rehashed, /^\$argon2id\$v=19\$m=19456,p=1,t=2\$/);
  });

  it('spends one argon2 verification of the same cost on unknown usernames too, so timing does not tell which exist', async (t) => {
    const { directory } = await directoryFixture(t);
    await directory.createUser({ username: 'alice', password: PASSWORD });
    // Counts the library's verifications (argon2 is not ours): each check must run exactly one, and
    // against a hash of today's parameters, whether the username exists or not.
    const verify = t.mock.method(argon2, 'verify');
    const parametersOf = (hash: unknown) => String(hash).split('$').slice(1, 4).join('$');
    const expected = parametersOf(await argon2.hash('any password', PASSWORD_HASH_PARAMETERS));
    for (const username of ['alice', 'nobody', 'not a username', '', 'x'.repeat(300)]) {
      verify.mock.resetCalls();
      const check = await directory.verifyPassword(username, 'wrong password');
      assert.equal(check.outcome, 'invalid', username);
      assert.equal(verify.mock.callCount(), 1, `one verification for ${JSON.stringify(username)}`);
      assert.equal(parametersOf(verify.mock.calls[0]!.arguments[0]), expected, username);
    }
  });

  it('sets and checks a password in its NFC form, so its accents composed or combining are one password', async (t) => {
    const { directory } = await directoryFixture(t);
    const nfc = 'crème brûlée'.normalize('NFC');
    const nfd = 'crème brûlée'.normalize('NFD');
    assert.notEqual(nfc, nfd);
    const created = await directory.createUser({ username: 'alice', password: nfd });
    assert.equal(await argon2.verify(created.user.password_hash!, nfc), true, 'the hash is of the NFC form');
    for (const typed of [nfc, nfd])
      assert.equal((await directory.verifyPassword('alice', typed)).outcome, 'valid');
    await directory.setPassword({ username: 'alice' }, 'naïve passphrase'.normalize('NFC'));
    const typedNfd = 'naïve passphrase'.normalize('NFD');
    assert.equal((await directory.verifyPassword('alice', typedNfd)).outcome, 'valid');
    // The rules count the NFC form: seven accented letters are seven characters, however typed.
    await rejectsWith(
      directory.setPassword({ username: 'alice' }, 'é'.repeat(7).normalize('NFD')),
      'invalid',
      /too short; at least 8/,
    );
  });

  it('still takes a password hashed as typed before passwords were normalised, then keeps its NFC form; a second argon2 check only for a text not in NFC', async (t) => {
    const { db, directory } = await directoryFixture(t);
    await directory.createUser({ username: 'alice', password: PASSWORD });
    const nfd = 'crème brûlée'.normalize('NFD');
    const nfc = 'crème brûlée'.normalize('NFC');
    const legacy = await argon2.hash(nfd, PASSWORD_HASH_PARAMETERS);
    await db.updateTable('app_user').set({ password_hash: legacy }).where('username', '=', 'alice').execute();
    const verify = t.mock.method(argon2, 'verify');
    const check = async (username: string, typed: string) => {
      verify.mock.resetCalls();
      const { outcome } = await directory.verifyPassword(username, typed);
      return [outcome, verify.mock.callCount()];
    };
    // Only as it was typed then: its NFC form is another text, and an NFC text is tried once.
    assert.deepEqual(await check('alice', nfc), ['invalid', 1]);
    assert.deepEqual(await check('alice', nfd), ['valid', 2]);
    const replaced = (await directory.findUserByUsername('alice'))!.password_hash!;
    assert.notEqual(replaced, legacy);
    assert.equal(await argon2.verify(replaced, nfc), true, 'replaced by a hash of the NFC form');
    assert.deepEqual(await check('alice', nfc), ['valid', 1]);
    assert.deepEqual(await check('alice', nfd), ['valid', 1]);
    // A wrong text not in NFC costs its two checks whether the user exists or not.
    for (const username of ['alice', 'nobody']) {
      assert.deepEqual(await check(username, 'wrông'.normalize('NFD')), ['invalid', 2], username);
      assert.deepEqual(await check(username, 'wrông'.normalize('NFC')), ['invalid', 1], username);
    }
  });

  it('creates the bootstrap superuser once, as admin or admin-N, and never logs its password', async (t) => {
    const { directory, events, logLines } = await directoryFixture(t);
    await directory.createUser({ username: 'admin', password: PASSWORD });
    await directory.createUser({ username: 'Admin-1' });
    const login = await directory.ensureBootstrapSuperuser();
    assert.ok(login);
    assert.equal(login.username, 'admin-2');
    assert.ok(login.password.length >= 20, `password of ${login.password.length} characters`);
    const check = await directory.verifyPassword('admin-2', login.password);
    assert.equal(check.outcome, 'valid');
    assert.equal(check.outcome === 'valid' && check.user.superuser, 1);
    const event = (await events()).at(-1)!;
    assert.equal(event.kind, 'user_created');
    assert.equal(event.actor, 'bootstrap');
    assert.equal(await directory.ensureBootstrapSuperuser(), null);
    assert.ok(logLines.some((line) => line.includes('bootstrap superuser') && line.includes('admin-2')));
    assert.ok(logLines.every((line) => !line.includes(login.password)));
    assert.ok(event.payload.indexOf(login.password) === -1);
  });

  it('renames, re-prioritises and deletes a state or group once when the same change is sent twice at once (a form double-submitted)', async (t) => {
    const { directory, events } = await directoryFixture(t);
    await directory.createState('Racer', 700);
    await directory.createGroup('Haulers');
    await directory.createUser({ username: 'alice', password: PASSWORD, groups: ['Haulers'] });
    const before = (await events()).length;
    const twice = <T>(change: () => Promise<T>) =>
      Promise.allSettled([change(), change(), change(), change()]);
    // Each sent change either made the change or found it made: never both made it.
    const outcomes = [
      ...(await twice(() => directory.renameState('Racer', 'Racer2'))),
      ...(await twice(() => directory.setStatePriority('Racer2', 701))),
      ...(await twice(() => directory.renameGroup('Haulers', 'Freighters'))),
      ...(await twice(() => directory.deleteGroup('Freighters'))),
      ...(await twice(() => directory.deleteState('Racer2'))),
    ];
    for (const outcome of outcomes) {
      if (outcome.status === 'rejected')
        assert.equal((outcome.reason as DirectoryError).code, 'not_found', String(outcome.reason));
    }
    assert.deepEqual(
      (await events()).slice(before).map((row) => row.kind),
      ['state_renamed', 'state_priority_changed', 'group_renamed', 'group_deleted', 'state_deleted'],
    );
  });

  it('moves a user into a state or deletes the state, never both nor a 500, when both are sent at once', async (t) => {
    const { directory } = await directoryFixture(t);
    await directory.createState('Base', 1);
    const settled = (outcome: PromiseSettledResult<unknown>, allowed: DirectoryError['code']) => {
      if (outcome.status === 'fulfilled') return true;
      assert.ok(outcome.reason instanceof DirectoryError, String(outcome.reason));
      assert.equal(outcome.reason.code, allowed, outcome.reason.message);
      return false;
    };
    for (let round = 0; round < 8; round++) {
      const state = `Racer${round}`;
      await directory.createState(state, 100 + round);
      await directory.createUser({ username: `mover${round}`, state: 'Base' });
      const [moved, deleted, created] = await Promise.allSettled([
        directory.setState({ username: `mover${round}` }, state),
        directory.deleteState(state),
        directory.createUser({ username: `newcomer${round}`, state }),
      ]);
      // Moved (or created) first: the deletion finds the user in it and refuses. Deleted first: the
      // move (or creation) finds no such state.
      const wasMoved = settled(moved!, 'not_found');
      const wasCreated = settled(created!, 'not_found');
      const wasDeleted = settled(deleted!, 'conflict');
      assert.equal(wasDeleted, !wasMoved && !wasCreated, `round ${round}`);
      const stateNow = (await directory.listStates()).find((row) => row.name === state);
      assert.equal(stateNow === undefined, wasDeleted, `round ${round}`);
      const mover = await directory.getUserProfile({ username: `mover${round}` });
      assert.equal(mover.state?.name, wasMoved ? state : 'Base', `round ${round}`);
      assert.equal((await directory.findUserByUsername(`newcomer${round}`)) !== undefined, wasCreated);
    }
  });

  it('adds a user to a group or deletes the group, never a database error, when both are sent at once', async (t) => {
    const { directory } = await directoryFixture(t);
    for (let round = 0; round < 8; round++) {
      const group = `Racers${round}`;
      await directory.createGroup(group);
      await directory.createUser({ username: `joiner${round}` });
      const [added, deleted, created] = await Promise.allSettled([
        directory.addGroup({ username: `joiner${round}` }, group),
        directory.deleteGroup(group),
        directory.createUser({ username: `founder${round}`, groups: [group] }),
      ]);
      // Added (or created) first: the deletion takes the membership with it. Deleted first: the
      // addition (or creation) finds no such group. Never the foreign key's error.
      assert.equal(
        deleted.status,
        'fulfilled',
        `round ${round}: ${String((deleted as PromiseRejectedResult).reason)}`,
      );
      for (const outcome of [added, created]) {
        if (outcome.status === 'fulfilled') continue;
        assert.ok(outcome.reason instanceof DirectoryError, String(outcome.reason));
        assert.equal(outcome.reason.code, 'not_found', outcome.reason.message);
      }
      const joiner = await directory.getUserProfile({ username: `joiner${round}` });
      assert.deepEqual(joiner.groups, [], `round ${round}`);
      const founder = await directory.findUserByUsername(`founder${round}`);
      assert.equal(founder !== undefined, created.status === 'fulfilled', `round ${round}`);
    }
  });

  it('creates exactly one bootstrap superuser when two starts race', async (t) => {
    const { directory } = await directoryFixture(t);
    const results = await Promise.all([
      directory.ensureBootstrapSuperuser(),
      directory.ensureBootstrapSuperuser(),
    ]);
    assert.equal(results.filter((result) => result !== null).length, 1);
    const superusers = (await directory.listUsers()).filter((profile) => profile.user.superuser === 1);
    assert.deepEqual(
      superusers.map((profile) => profile.user.username),
      ['admin'],
    );
  });
});
