import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { readLog } from '../../src/db/change-log.ts';
import type { Directory, UserProfile } from '../../src/directory/port.ts';
import { createChangeEpochs } from '../../src/oidc/change-epoch-cache.ts';
import { KeptProfiles, keptProfileLookup } from '../../src/oidc/kept-profiles.ts';
import { KeptRows } from '../../src/oidc/kept-rows.ts';
import { pruneChangeLog } from '../../src/tokens/store.ts';
import { connect, testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { userProfile } from '../helpers/profiles.ts';
import { type TestServer, startServer } from '../helpers/server.ts';
import { statementsDuring } from '../helpers/statements.ts';
import {
  type Client,
  codeFlow,
  introspect,
  type Pilot,
  seedClient,
  seedDirectory,
  seedPilot,
  userinfo,
} from '../tokens/helpers.ts';

const READS_USER = /\bfrom\s+"app_user"/i;

describe(`users' profiles kept in memory while the change log names no change (${testDatabaseKind})`, () => {
  let harness: LeakHarness;
  let server: TestServer;
  let client: Client;
  /** Another writer: a connection of the test's own, as another instance, a CLI command or psql has. */
  let other: ReturnType<typeof connect>;

  before(async () => {
    harness = createLeakHarness();
    server = await startServer({}, { harness });
    await seedDirectory(server);
    const admin = server.app.directoryAdmin;
    await admin.createState('Guest', 10, false);
    await admin.createState('Reserve', 50, true);
    await admin.createGroup('Wing', false);
    await admin.createGroup('Escort', true);
    client = await seedClient(server, harness, { accessTokenFormat: 'opaque' });
    other = connect(server.database);
  });
  after(async () => {
    await other?.close();
    await harness.assertNoLeaks();
    await server.close();
  });

  /** A pilot with a token whose profile this process keeps (the second userinfo reads no user row). */
  async function keptPilot(
    setup: { groups?: string[]; state?: string | null; client?: Client } = {},
  ): Promise<{ pilot: Pilot; accessToken: string; client: Client }> {
    const pilot = await seedPilot(server, harness, setup.groups);
    if (setup.state !== undefined) await server.app.directoryAdmin.setState({ id: pilot.id }, setup.state);
    const to = setup.client ?? client;
    const { accessToken } = await codeFlow(server, harness, to, pilot);
    assert.equal((await userinfo(server, accessToken)).status, 200);
    const again = await statementsDuring(() => userinfo(server, accessToken));
    assert.equal(again.result.status, 200);
    assert.deepEqual(
      again.texts.filter((text) => READS_USER.test(text)),
      [],
      'the profile is kept: userinfo reads no user row',
    );
    return { pilot, accessToken, client: to };
  }

  async function assertRefused(to: Client, accessToken: string): Promise<void> {
    assert.equal((await userinfo(server, accessToken)).status, 401, 'userinfo refuses the token');
    assert.equal((await introspect(server, to, accessToken)).active, false, 'introspection says inactive');
  }

  it("answers a repeated userinfo and introspection without reading the user's profile", async () => {
    const { accessToken } = await keptPilot();
    assert.equal((await introspect(server, client, accessToken)).active, true);
    const introspected = await statementsDuring(() => introspect(server, client, accessToken));
    assert.equal(introspected.result.active, true);
    assert.deepEqual(
      introspected.texts.filter((text) => READS_USER.test(text)),
      [],
    );
  });

  it('refuses at the next request a user another writer deactivated', async () => {
    const { pilot, accessToken } = await keptPilot();
    await other.db.updateTable('app_user').set({ active: 0 }).where('id', '=', pilot.id).execute();
    await assertRefused(client, accessToken);
  });

  it('refuses at the next request a user another writer moved to a state without access', async () => {
    const { pilot, accessToken } = await keptPilot();
    await sql`update app_user set state_id = (select id from state where name = 'Guest') where id = ${pilot.id}`.execute(
      other.db,
    );
    await assertRefused(client, accessToken);
  });

  it('refuses at the next request a user another writer removed from the group the application whitelists', async () => {
    const wingOnly = await seedClient(server, harness, { accessTokenFormat: 'opaque', groups: ['Wing'] });
    const { pilot, accessToken } = await keptPilot({ groups: ['Fleet', 'Wing'], client: wingOnly });
    assert.equal((await introspect(server, wingOnly, accessToken)).active, true);
    await sql`delete from user_group where user_id = ${pilot.id}
      and group_id = (select id from auth_group where name = 'Wing')`.execute(other.db);
    await assertRefused(wingOnly, accessToken);
  });

  it("refuses at the next request a user whose group's access another writer turned off", async () => {
    // No state: the group alone lets the pilot through the global gate.
    const { accessToken } = await keptPilot({ groups: ['Escort'], state: null });
    await other.db.updateTable('auth_group').set({ oidc_access: 0 }).where('name', '=', 'Escort').execute();
    try {
      await assertRefused(client, accessToken);
    } finally {
      await other.db.updateTable('auth_group').set({ oidc_access: 1 }).where('name', '=', 'Escort').execute();
    }
  });

  it("refuses at the next request a user whose state's access another writer turned off", async () => {
    const { accessToken } = await keptPilot({ state: 'Reserve' });
    await other.db.updateTable('state').set({ oidc_access: 0 }).where('name', '=', 'Reserve').execute();
    try {
      await assertRefused(client, accessToken);
    } finally {
      await other.db.updateTable('state').set({ oidc_access: 1 }).where('name', '=', 'Reserve').execute();
    }
  });

  it("answers with the profile another writer changed, and at once with this process's own change", async () => {
    const { pilot, accessToken } = await keptPilot();
    await other.db
      .updateTable('app_user')
      .set({ email: 'changed-by-hand@example.org' })
      .where('id', '=', pilot.id)
      .execute();
    assert.equal((await userinfo(server, accessToken)).body.email, 'changed-by-hand@example.org');
    await server.app.directoryAdmin.updateUser({ id: pilot.id }, { email: 'changed-here@example.org' });
    assert.equal((await userinfo(server, accessToken)).body.email, 'changed-here@example.org');
  });

  it('answers the claims of a kept profile as it built them the first time, and the groups another writer changed', async () => {
    const pilot = await seedPilot(server, harness, ['Fleet']);
    const { accessToken } = await codeFlow(server, harness, client, pilot);
    const first = await userinfo(server, accessToken);
    const kept = await statementsDuring(() => userinfo(server, accessToken));
    assert.deepEqual(
      kept.texts.filter((text) => READS_USER.test(text)),
      [],
    );
    assert.deepEqual(kept.result.body, first.body, 'the same claims from the kept profile');
    assert.deepEqual((await userinfo(server, accessToken)).body, first.body, 'and again');
    assert.ok((first.body.groups as string[]).includes('Fleet'), JSON.stringify(first.body));
    await sql`insert into user_group (user_id, group_id)
      select ${pilot.id}, id from auth_group where name = 'Wing'`.execute(other.db);
    const changed = await userinfo(server, accessToken);
    assert.deepEqual(
      (changed.body.groups as string[]).filter((name) => name === 'Fleet' || name === 'Wing'),
      ['Fleet', 'Wing'],
    );
    assert.deepEqual({ ...changed.body, groups: first.body.groups }, first.body, 'only the groups changed');
  });
});

/** The columns of `app_user` that are no part of a profile: their changes are not logged. */
const USER_COLUMNS_OUTSIDE_PROFILE = new Set([
  'password_hash',
  'must_change_password',
  'last_login_at',
  'created_at',
  'updated_at',
  // Changes with `username`, which is logged.
  'username_key',
]);

/** A new value for each logged column of a user (ids of a state that exists: `stateId`). */
function changedValue(column: string, stateId: number): unknown {
  const values: Record<string, unknown> = {
    id: 987_654,
    username: 'renamed-by-hand',
    email: 'by-hand@example.org',
    email_verified: 1,
    active: 0,
    superuser: 1,
    oidc_access: 1,
    state_id: stateId,
    character_id: 1,
    character_name: 'x',
    corporation_id: 1,
    corporation_name: 'x',
    corporation_ticker: 'x',
    alliance_id: 1,
    alliance_name: 'x',
    alliance_ticker: 'x',
    faction_id: 1,
    faction_name: 'x',
    locale: 'de',
  };
  if (!(column in values))
    assert.fail(
      `app_user.${column} is new: log its changes (a migration's trigger, as 0072_change_log_profiles) if the ` +
        'profile shows it, or add it to the columns outside the profile here',
    );
  return values[column];
}

describe(`the change log names every change to a user's profile (${testDatabaseKind})`, () => {
  let server: TestServer;
  let other: ReturnType<typeof connect>;

  before(async () => {
    server = await startServer({});
    other = connect(server.database);
    await server.app.directoryAdmin.createState('Logged', 20, true);
    await server.app.directoryAdmin.createGroup('Logged group', false);
  });
  after(async () => {
    await other?.close();
    await server.close();
  });

  // Without groups: a membership would keep the user's id from changing.
  const newUser = async (username: string, groups: string[] = []) =>
    (await server.app.directoryAdmin.createUser({ username, state: 'Logged', groups })).user.id;

  it('logs a change of each column the profile is built from, and a deletion', async () => {
    const { id: stateId } = await other.db
      .selectFrom('state')
      .select('id')
      .where('name', '=', 'Logged')
      .executeTakeFirstOrThrow();
    const { id: otherStateId } = await other.db
      .insertInto('state')
      .values({ name: 'Logged too', name_key: 'logged too', priority: 21, oidc_access: 0, created_at: 0 })
      .returning('id')
      .executeTakeFirstOrThrow();
    const probe = await newUser('column-probe');
    const columns = Object.keys(
      await other.db.selectFrom('app_user').selectAll().where('id', '=', probe).executeTakeFirstOrThrow(),
    );
    for (const column of columns) {
      if (USER_COLUMNS_OUTSIDE_PROFILE.has(column)) continue;
      const id = await newUser(`probe-${column}`);
      const from = await readLog(other.db, undefined);
      const value = changedValue(column, column === 'state_id' ? otherStateId : stateId);
      await sql`update app_user set ${sql.ref(column)} = ${value} where id = ${id}`.execute(other.db);
      assert.deepEqual((await readLog(other.db, from.position)).keys, [`User ${id}`], `app_user.${column}`);
    }
    const from = await readLog(other.db, undefined);
    await other.db.deleteFrom('app_user').where('id', '=', probe).execute();
    assert.ok((await readLog(other.db, from.position)).keys.includes(`User ${probe}`), 'a deletion');
  });

  it('logs nothing for a sign-in, a password change, or a change that changes nothing', async () => {
    const id = await newUser('quiet');
    const from = await readLog(other.db, undefined);
    await server.app.directoryAdmin.recordLogin(id);
    await server.app.directoryAdmin.setPassword({ id }, 'a-new-password-9');
    await other.db.updateTable('app_user').set({ email: '' }).where('id', '=', id).execute();
    assert.deepEqual((await readLog(other.db, from.position)).keys, []);
  });

  it('logs memberships added and removed under their user, and states and groups changed', async () => {
    const id = await newUser('member', ['Logged group']);
    const { id: groupId } = await other.db
      .selectFrom('auth_group')
      .select('id')
      .where('name', '=', 'Logged group')
      .executeTakeFirstOrThrow();
    let from = await readLog(other.db, undefined);
    await other.db.deleteFrom('user_group').where('user_id', '=', id).execute();
    await other.db.insertInto('user_group').values({ user_id: id, group_id: groupId }).execute();
    assert.deepEqual((await readLog(other.db, from.position)).keys, [`User ${id}`, `User ${id}`]);
    const { id: stateId } = await other.db
      .selectFrom('state')
      .select('id')
      .where('name', '=', 'Logged')
      .executeTakeFirstOrThrow();
    from = await readLog(other.db, undefined);
    await other.db.updateTable('auth_group').set({ oidc_access: 1 }).where('id', '=', groupId).execute();
    await other.db.updateTable('state').set({ priority: 22 }).where('id', '=', stateId).execute();
    const { keys } = await readLog(other.db, from.position);
    assert.deepEqual(keys.toSorted(), [`Group ${groupId}`, `State ${stateId}`]);
  });
});

/** A profile of user `id` in a group that grants access, as a load finds it. */
const profile = (id: number): UserProfile => userProfile(id, { groups: [{ name: 'g', oidcAccess: true }] });

describe(`KeptProfiles and the change log (${testDatabaseKind})`, () => {
  // Profiles loaded and kept directly, through the built-in directory of a server's database.
  let server: TestServer;
  let other: ReturnType<typeof connect>;
  let keepable: NonNullable<Directory['keepable']>;

  before(async () => {
    server = await startServer({});
    other = connect(server.database);
    keepable = server.app.directory.keepable!;
    await server.app.directoryAdmin.createState('Kept', 30, true);
    await server.app.directoryAdmin.createGroup('Kept group', true);
  });
  after(async () => {
    await other?.close();
    await server.close();
  });

  const newUser = async (username: string) =>
    (await server.app.directoryAdmin.createUser({ username, state: 'Kept', groups: ['Kept group'] })).user.id;
  const db = () => server.app.database.db;

  /** Loads user `id` and offers it to `kept`, as a request does. */
  async function load(kept: KeptRows, id: number): Promise<void> {
    const ticket = kept.profiles.ticket();
    const { profile, position } = await keepable.profileWithPositionById(id);
    if (profile) kept.profiles.keep(profile, position, ticket);
  }

  it('drops a profile the log names at the next read, and every profile when a state or group changes', async () => {
    // Created first: a new user's memberships are logged under the user.
    const [a, b] = [await newUser('kept-a'), await newUser('kept-b')];
    const kept = new KeptRows();
    await kept.sync(db());
    await load(kept, a);
    await load(kept, b);
    await kept.sync(db());
    assert.equal(kept.profiles.peek(a)?.username, 'kept-a', 'kept while nothing changed');
    await other.db.updateTable('app_user').set({ locale: 'fr' }).where('id', '=', a).execute();
    assert.ok(kept.profiles.peek(a), 'still kept until the next read');
    await kept.sync(db());
    assert.equal(kept.profiles.peek(a), undefined);
    assert.ok(kept.profiles.peek(b), "another user's profile stays");
    await load(kept, a);
    await other.db
      .updateTable('auth_group')
      .set({ name: 'Kept group 2' })
      .where('name', '=', 'Kept group')
      .execute();
    await kept.sync(db());
    assert.equal(kept.profiles.size, 0, 'a group renamed: every profile goes');
    await load(kept, a);
    await other.db.updateTable('state').set({ oidc_access: 0 }).where('name', '=', 'Kept').execute();
    await kept.sync(db());
    assert.equal(kept.profiles.size, 0, "a state's access changed: every profile goes");
  });

  it('does not keep a profile loaded before a change the reader has already processed', async () => {
    const id = await newUser('race-a');
    const kept = new KeptRows();
    await kept.sync(db());
    // Loaded, then changed by another writer, then the change is read from the log: the profile
    // loaded first arrives last and must not be kept.
    const ticket = kept.profiles.ticket();
    const stale = await keepable.profileWithPositionById(id);
    await other.db.updateTable('app_user').set({ active: 0 }).where('id', '=', id).execute();
    await kept.sync(db());
    kept.profiles.keep(stale.profile!, stale.position, ticket);
    assert.equal(kept.profiles.peek(id), undefined, 'the stale profile is not kept');
    // Loaded after the read: kept.
    await load(kept, id);
    assert.equal(kept.profiles.peek(id)?.active, false);
  });

  it("does not keep a profile whose load began before one of this process's own directory changes", async () => {
    const id = await newUser('own-a');
    const kept = new KeptRows();
    await kept.sync(db());
    const stop = keepable.afterOwnChange((userId) => kept.profiles.wrote(userId));
    try {
      await load(kept, id);
      const ticket = kept.profiles.ticket();
      const loaded = await keepable.profileWithPositionById(id);
      await server.app.directoryAdmin.updateUser({ id }, { locale: 'de' });
      assert.equal(kept.profiles.size, 0, 'the change dropped what was kept');
      kept.profiles.keep(loaded.profile!, loaded.position, ticket);
      assert.equal(kept.profiles.peek(id), undefined, 'the load that began before it is not kept');
    } finally {
      stop();
    }
  });

  it("keeps the profiles of other users, and their loads in flight, across this process's change of one user", async () => {
    const [a, b, c] = [await newUser('own-one-a'), await newUser('own-one-b'), await newUser('own-one-c')];
    const kept = new KeptRows();
    await kept.sync(db());
    // Follows this process's own changes as a provider does.
    const lookup = keptProfileLookup(
      server.app.directory,
      createChangeEpochs(db(), undefined, kept),
      () => ({}),
    );
    try {
      await load(kept, a);
      await load(kept, b);
      const ticket = kept.profiles.ticket();
      const [loadingA, loadingC] = [
        await keepable.profileWithPositionById(a),
        await keepable.profileWithPositionById(c),
      ];
      await server.app.directoryAdmin.updateUser({ id: a }, { locale: 'de' });
      assert.equal(kept.profiles.peek(a), undefined, "the changed user's profile goes at once");
      assert.equal(kept.profiles.peek(b)?.username, 'own-one-b', "another user's profile stays");
      kept.profiles.keep(loadingC.profile!, loadingC.position, ticket);
      assert.ok(kept.profiles.peek(c), 'a load of another user that began before the change is kept');
      kept.profiles.keep(loadingA.profile!, loadingA.position, ticket);
      assert.equal(
        kept.profiles.peek(a),
        undefined,
        'a load of the changed user that began before it is not',
      );
      await load(kept, a);
      assert.equal(kept.profiles.peek(a)?.locale, 'de', 'a load that began after it is kept');

      const beforeGroup = kept.profiles.ticket();
      const loadingB = await keepable.profileWithPositionById(b);
      await server.app.directoryAdmin.createGroup('Own change group', false);
      assert.equal(kept.profiles.size, 0, 'a group changed: every profile goes');
      kept.profiles.keep(loadingB.profile!, loadingB.position, beforeGroup);
      assert.equal(kept.profiles.peek(b), undefined, 'and no load that began before it is kept');
    } finally {
      lookup.close();
    }
  });

  it('remembers the users of its last changes only, and does not keep a load that outlasts them', () => {
    const profiles = new KeptProfiles(() => undefined, 10, 2);
    const ticket = profiles.ticket();
    profiles.wrote(1);
    profiles.wrote(2);
    profiles.keep(profile(3), 1, ticket);
    assert.ok(profiles.peek(3), 'two other users changed: remembered, the load kept');
    const later = profiles.ticket();
    profiles.wrote(4);
    profiles.wrote(5);
    profiles.wrote(6);
    profiles.keep(profile(7), 1, later);
    assert.equal(profiles.peek(7), undefined, 'user 4 forgotten: it may have been this user');
    profiles.keep(profile(6), 1, profiles.ticket());
    assert.ok(profiles.peek(6), 'a load that began after the changes is kept');
  });

  it('drops every profile when the log was pruned past its position', async () => {
    const id = await newUser('pruned-a');
    const kept = new KeptRows();
    await kept.sync(db());
    await load(kept, id);
    assert.ok(kept.profiles.peek(id));
    await pruneChangeLog(other.db);
    await pruneChangeLog(other.db);
    // A horizon past any position: the reader drops even profiles the log never named.
    await sql`update change_epoch set value = value + 1000000000 where id = 2`.execute(other.db);
    try {
      await kept.sync(db());
      assert.equal(kept.profiles.peek(id), undefined);
    } finally {
      await sql`update change_epoch set value = value - 1000000000 where id = 2`.execute(other.db);
    }
  });

  it('keeps at most its bound, the oldest going first, frozen', () => {
    const profiles = new KeptProfiles(() => undefined, 3);
    for (const id of [1, 2, 3, 4]) profiles.keep(profile(id), 1, profiles.ticket());
    assert.equal(profiles.size, 3);
    assert.equal(profiles.peek(1), undefined);
    const kept = profiles.peek(4)!;
    assert.ok(Object.isFrozen(kept) && Object.isFrozen(kept.groups) && Object.isFrozen(kept.groups[0]));
  });

  it('reads the directory outside a provider request, and never keeps an unknown user', async () => {
    const id = await newUser('lookup-a');
    const kept = new KeptRows();
    await kept.sync(db());
    let ctx: object | undefined;
    const lookup = keptProfileLookup(
      server.app.directory,
      createChangeEpochs(db(), undefined, kept),
      () => ctx,
    );
    try {
      assert.equal((await lookup.directory.profileById(id))?.username, 'lookup-a');
      assert.equal(kept.profiles.size, 0, 'outside a request: nothing kept');
      ctx = {};
      assert.equal(await lookup.directory.profileById(987_654_321), undefined);
      assert.equal(kept.profiles.size, 0, 'an unknown user is not kept');
      await lookup.directory.profileById(id);
      assert.ok(kept.profiles.peek(id), 'inside a request: kept');
      await server.app.directoryAdmin.updateUser({ id }, { locale: 'pt-BR' });
      assert.equal(
        (await lookup.directory.profileById(id))?.locale,
        'pt-BR',
        'an own change is seen at once',
      );
    } finally {
      lookup.close();
    }
  });

  it('reads the log afresh for the save_bearer stage: a change committed while the request ran is seen there', async () => {
    const id = await newUser('at-save-a');
    const kept = new KeptRows();
    await kept.sync(db());
    const epochs = createChangeEpochs(db(), undefined, kept);
    let ctx: object = {};
    const lookup = keptProfileLookup(server.app.directory, epochs, () => ctx);
    try {
      await lookup.directory.profileById(id);
      assert.ok(kept.profiles.peek(id));
      // A new request uses the kept profile once its read of the log found no change.
      ctx = {};
      assert.equal((await lookup.directory.profileById(id))?.active, true);
      await other.db.updateTable('app_user').set({ active: 0 }).where('id', '=', id).execute();
      // Later in the same request: as the database was when the request arrived (its one read)…
      assert.equal((await lookup.directory.profileById(id))?.active, true);
      // …but right before tokens are saved, as it is now.
      assert.equal((await lookup.directoryAtSave.profileById(id))?.active, false);
    } finally {
      lookup.close();
    }
  });

  it('keeps no profile of a directory that does not say its profiles may be kept', async () => {
    const kept = new KeptRows();
    const { keepable: _keepable, ...unlogged } = server.app.directory;
    const lookup = keptProfileLookup(unlogged, createChangeEpochs(db(), undefined, kept), () => ({}));
    assert.equal(lookup.directory, unlogged, 'the directory itself answers');
    const id = await newUser('unlogged-a');
    await lookup.directory.profileById(id);
    assert.equal(kept.profiles.size, 0);
  });
});
