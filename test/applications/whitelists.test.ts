import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Migrator, type Migration as KyselyMigration } from 'kysely/migration';
import { sql } from 'kysely';
import { whitelistChecks } from '../../src/checks/checks.ts';
import { systemChecks } from '../../src/checks/run.ts';
import { openDatabase } from '../../src/db/connect.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { MIGRATIONS } from '../../src/db/migrations/index.ts';
import type { DirectoryChange } from '../../src/directory/port.ts';
import { createServices, type Services } from '../../src/services.ts';
import { cli } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

const REDIRECT = { redirectUris: ['https://wiki.example.org/cb'] };

describe(`application whitelists by name (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let services: Services;
  const changes: DirectoryChange[] = [];

  before(async () => {
    database = await createTestDatabase();
    services = await createServices(testConfig(database), { migrate: true });
    services.directoryChanges.subscribe(async (change) => void changes.push(change));
  });
  after(async () => {
    await services.close();
    await database.drop();
  });

  it('stores the names as the directory spells them, matched regardless of case', async () => {
    const { directoryAdmin, applications } = services;
    await directoryAdmin.createState('Member', 100, true);
    await directoryAdmin.createGroup('Fleet Command');
    const { application } = await applications.create(
      { name: 'Wiki', ...REDIRECT, states: ['member'], groups: ['FLEET COMMAND'] },
      'test',
    );
    assert.deepEqual(application.states, ['Member']);
    assert.deepEqual(application.groups, ['Fleet Command']);
  });

  it('renames a state or group into every whitelist, and refuses to delete a whitelisted one', async () => {
    const { directoryAdmin, applications } = services;
    await directoryAdmin.createState('Blue', 50, true);
    await directoryAdmin.createGroup('Scouts');
    const { application } = await applications.create(
      { name: 'Scout tools', ...REDIRECT, states: ['Blue'], groups: ['Scouts'] },
      'test',
    );
    const pilot = await directoryAdmin.createUser({ username: 'scout', state: 'Blue', groups: ['Scouts'] });

    assert.equal((await directoryAdmin.renameState('blue', 'Blue Standing')).changed, true);
    assert.equal((await directoryAdmin.renameGroup('Scouts', 'Scout Wing')).changed, true);
    const renamed = await applications.findByClientId(application.clientId);
    assert.deepEqual(renamed?.states, ['Blue Standing']);
    assert.deepEqual(renamed?.groups, ['Scout Wing']);
    assert.deepEqual(
      changes.filter((change) => change.kind === 'catalog_renamed'),
      [
        { kind: 'catalog_renamed', entity: 'state', from: 'Blue', to: 'Blue Standing' },
        { kind: 'catalog_renamed', entity: 'group', from: 'Scouts', to: 'Scout Wing' },
      ],
    );
    await assert.rejects(directoryAdmin.renameGroup('Scout Wing', 'fleet command'), {
      message:
        'group "Fleet Command" already exists (group names are unique regardless of case and Unicode form)',
    });

    await assert.rejects(directoryAdmin.deleteGroup('Scout Wing'), {
      message: `refusing to delete group "Scout Wing": application ${application.clientId} whitelists it; remove it first (aa-oidc app update CLIENT_ID --remove-group 'Scout Wing')`,
    });
    await assert.rejects(directoryAdmin.deleteState('Blue Standing'), {
      message:
        'refusing to delete state "Blue Standing": users are in it (scout); move them to another state first',
    });
    assert.equal((await directoryAdmin.getUserProfile({ id: pilot.user.id })).groups[0]?.name, 'Scout Wing');

    await applications.update(application.clientId, { groups: [] }, 'test');
    changes.length = 0;
    await directoryAdmin.deleteGroup('Scout Wing');
    assert.deepEqual(
      changes.map((change) => [change.kind, 'userId' in change ? change.userId : null]),
      [
        ['catalog_deleted', null],
        ['user_groups_changed', pilot.user.id],
      ],
    );
    assert.deepEqual((await directoryAdmin.getUserProfile({ id: pilot.user.id })).groups, []);
  });

  it('warns (W006) about a whitelisted name the directory does not have, or spells otherwise', async () => {
    assert.deepEqual(
      whitelistChecks(
        [
          { clientId: 'wiki', active: true, states: ['member', 'Gone'], groups: ['Fleet'] },
          { clientId: 'retired', active: false, states: ['Gone'], groups: [] },
        ],
        { states: ['Member'], groups: [] },
      ).map((finding) => [finding.id, finding.level, finding.message]),
      [
        // As a move to another directory leaves it: names match exactly, so "member" admits nobody.
        [
          'W006',
          'warning',
          'application wiki whitelists the state "member", which the directory does not have (it has "Member": names match exactly, and on Alliance Auth over PostgreSQL that may be another state)',
        ],
        [
          'W006',
          'warning',
          'application wiki whitelists the state "Gone", which the directory does not have',
        ],
        [
          'W006',
          'warning',
          'application wiki whitelists the group "Fleet", which the directory does not have',
        ],
      ],
    );
    // As another directory would leave it: a name whitelisted, then gone from the directory.
    const { application } = await services.applications.create({ name: 'Stale', ...REDIRECT }, 'test');
    await services.database.db
      .insertInto('application_whitelist')
      .values({ client_id: application.clientId, kind: 'group', name: 'Disbanded' })
      .execute();
    const findings = await systemChecks(
      services.config,
      services.applications,
      services.directory,
      services.keys,
    );
    assert.deepEqual(
      findings.filter((finding) => finding.id === 'W006').map((finding) => finding.hint),
      [
        `aa-oidc app update ${application.clientId} --remove-group 'Disbanded' (or restore the group in the directory; whitelist what should admit people instead first: an application whose whitelists are empty admits everyone past the global gate)`,
      ],
    );
    const check = await cli(['check'], testEnv(database));
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /W006 warning: application .* whitelists the group "Disbanded"/);
  });

  it('merges a rename into an entry the application already has for the new name', async () => {
    const { directoryAdmin, applications } = services;
    await directoryAdmin.createGroup('Recon');
    const { application } = await applications.create(
      { name: 'Scouting', groups: ['Recon'], ...REDIRECT },
      'test',
    );
    // Names the directory no longer has (another directory's rename, a restored backup): the new
    // name itself merges with the renamed entry; one spelt otherwise is another name, kept as it is.
    await services.database.db
      .insertInto('application_whitelist')
      .values([
        { client_id: application.clientId, kind: 'group', name: 'Recon Wing' },
        { client_id: application.clientId, kind: 'group', name: 'recon wing' },
      ])
      .execute();
    assert.equal((await directoryAdmin.renameGroup('Recon', 'Recon Wing')).changed, true);
    assert.deepEqual((await applications.findByClientId(application.clientId))?.groups, [
      'Recon Wing',
      'recon wing',
    ]);
  });

  it('renames and deletes from the command line', async () => {
    const env = testEnv(database);
    assert.equal((await cli(['group', 'create', 'Haulers'], env)).code, 0);
    const renamed = await cli(['group', 'rename', 'Haulers', 'Freight'], env);
    assert.deepEqual([renamed.code, renamed.stdout], [0, 'renamed group Haulers to Freight\n']);
    const dry = await cli(['group', 'delete', 'Freight', '--dry-run'], env);
    assert.deepEqual(
      [dry.code, dry.stdout],
      [
        0,
        'dry run: would delete group Freight; nothing changed\n  loses access to: (no application)\n  back-channel logout to: (no application)\n',
      ],
    );
    assert.equal((await cli(['group', 'delete', 'Freight'], env)).stdout, 'deleted group Freight\n');
    const gone = await cli(['group', 'delete', 'Freight'], env);
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /unknown group "Freight"/);
    assert.equal((await cli(['state', 'create', 'Alumni', '--priority', '1'], env)).code, 0);
    assert.equal(
      (await cli(['state', 'rename', 'Alumni', 'Veterans'], env)).stdout,
      'renamed state Alumni to Veterans\n',
    );
    assert.equal((await cli(['state', 'delete', 'Veterans'], env)).stdout, 'deleted state Veterans\n');
  });
});

describe(`migration 0008: whitelists from rows to names (${testDatabaseKind})`, () => {
  it('keeps every whitelist entry, by the name of the state or group it pointed at', async () => {
    const database = await createTestDatabase();
    const handle = openDatabase(testConfig(database).database);
    try {
      const before: Record<string, KyselyMigration> = {};
      for (const [name, migration] of Object.entries(MIGRATIONS)) {
        if (name < '0008') before[name] = { up: (trx) => migration.up(trx, { kind: handle.kind }) };
      }
      const migrator = new Migrator({
        db: handle.db,
        provider: { getMigrations: async () => before },
        migrationTableName: 'schema_migration',
        migrationLockTableName: 'schema_migration_lock',
      });
      assert.equal((await migrator.migrateToLatest()).error, undefined);
      const now = Date.now();
      await sql`insert into state (name, priority, oidc_access, created_at) values ('Member', 100, 1, ${now})`.execute(
        handle.db,
      );
      await sql`insert into auth_group (name, oidc_access, created_at) values ('Fleet', 0, ${now}), ('Miners', 0, ${now})`.execute(
        handle.db,
      );
      await sql`insert into application (client_id, client_secret_sha256, name, redirect_uris, post_logout_redirect_uris, client_type, grant_types, created_at, updated_at)
        values ('wiki', null, 'Wiki', '[]', '[]', 'public', '[]', ${now}, ${now})`.execute(handle.db);
      await sql`insert into application_state (client_id, state_id) select 'wiki', id from state`.execute(
        handle.db,
      );
      await sql`insert into application_group (client_id, group_id) select 'wiki', id from auth_group`.execute(
        handle.db,
      );

      const applied = await migrateToLatest(handle.db, handle.kind);
      assert.ok(applied.includes('0008_whitelists_by_name'));
      const rows = await handle.db
        .selectFrom('application_whitelist')
        .select(['client_id', 'kind', 'name'])
        .orderBy('kind')
        .orderBy('name')
        .execute();
      assert.deepEqual(rows, [
        { client_id: 'wiki', kind: 'group', name: 'Fleet' },
        { client_id: 'wiki', kind: 'group', name: 'Miners' },
        { client_id: 'wiki', kind: 'state', name: 'Member' },
      ]);
      const tables = (await handle.db.introspection.getTables()).map((table) => table.name);
      assert.ok(!tables.includes('application_state') && !tables.includes('application_group'));
    } finally {
      await handle.close();
      await database.drop();
    }
  });
});
