import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { openDatabase } from '../../src/db/connect.ts';
import { migrateToLatest, pendingMigrations } from '../../src/db/migrate.ts';
import { createServices, type Services } from '../../src/services.ts';
import { testConfig } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

/**
 * Usernames, state names and group names are unique by their normalised key (NFKC, then lower case
 * over all of Unicode), on SQLite as on PostgreSQL, and found by it.
 */
describe(`names unique regardless of case and Unicode form (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let services: Services;

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    services = await createServices(testConfig(database), { migrate: true });
  });
  after(async () => {
    await services.close();
    await database.drop();
  });

  it('refuses ärger beside Ärger (and a fullwidth twin), and finds Ärger by any of its spellings', async () => {
    const admin = services.directoryAdmin;
    await admin.createUser({ username: 'Ärger', email: 'a@example.org' });
    await assert.rejects(
      admin.createUser({ username: 'ärger', email: 'b@example.org' }),
      /username "ärger" is taken by "Ärger"/,
    );
    for (const spelling of ['ÄRGER', 'ärger', 'A\u0308rger']) {
      assert.equal((await services.directory.profileByUsername(spelling))?.username, 'Ärger', spelling);
    }
    await admin.createUser({ username: 'pilot', email: 'p@example.org' });
    await assert.rejects(
      admin.createUser({ username: 'ＰＩＬＯＴ', email: 'q@example.org' }),
      /is taken by "pilot"/,
    );
  });

  it('refuses states and groups whose names differ only in case or Unicode form, also by renaming', async () => {
    const admin = services.directoryAdmin;
    await admin.createState('Übermensch', 100, true);
    await assert.rejects(admin.createState('übermensch', 90, true), /state "Übermensch" already exists/);
    await admin.createGroup('Ｆｌｅｅｔ');
    await assert.rejects(admin.createGroup('fleet'), /group "Ｆｌｅｅｔ" already exists/);
    await admin.createGroup('Miners');
    await assert.rejects(admin.renameGroup('Miners', 'FLEET'), /group "Ｆｌｅｅｔ" already exists/);
    const user = await admin.createUser({
      username: 'member',
      email: 'm@example.org',
      state: 'ÜBERMENSCH',
      groups: ['fleet'],
    });
    assert.equal(user.state?.name, 'Übermensch');
    assert.deepEqual(
      user.groups.map((group) => group.name),
      ['Ｆｌｅｅｔ'],
    );
    assert.deepEqual(await services.directory.usersCoveredBy({ states: [], groups: ['FLEET'] }), [
      user.user.id,
    ]);
  });

  it('refuses a state or group whose name differs only by a space of fixed width, and any such space in a username', async () => {
    // They show as spaces (`Bob\u2003Smith` reads `Bob Smith`); NFKC folds each to U+0020.
    const fixedWidthSpaces = [
      ...Array.from({ length: 11 }, (_, offset) => String.fromCharCode(0x2000 + offset)),
      '\u202f',
      '\u205f',
    ];
    const admin = services.directoryAdmin;
    await admin.createState('Bob Smith', 50, true);
    await admin.createGroup('Home Guard');
    await admin.createGroup('Scouts');
    for (const space of fixedWidthSpaces) {
      const code = `U+${space.charCodeAt(0).toString(16).toUpperCase()}`;
      await assert.rejects(
        admin.createState(`Bob${space}Smith`, 40, true),
        /state "Bob Smith" already exists/,
        code,
      );
      await assert.rejects(admin.createGroup(`Home${space}Guard`), /group "Home Guard" already exists/, code);
      await assert.rejects(
        admin.renameGroup('Scouts', `home${space}guard`),
        /group "Home Guard" already exists/,
        code,
      );
      await assert.rejects(
        admin.createUser({ username: `bob${space}smith`, email: 'bob@example.org' }),
        /invalid username/,
        code,
      );
    }
  });

  it('refuses a new username holding a Hangul filler, which the letters of the pattern take but which draws nothing, and still finds a user by name', async () => {
    const admin = services.directoryAdmin;
    await admin.createUser({ username: 'warden', email: 'warden@example.org' });
    for (const filler of ['\u115f', '\u1160', '\u3164', '\uffa0']) {
      const code = `U+${filler.charCodeAt(0).toString(16).toUpperCase()}`;
      await assert.rejects(
        admin.createUser({ username: `warden${filler}`, email: 'other@example.org' }),
        // The character as typed, which the message quotes, though NFKC makes U+3164 and U+FFA0 U+1160.
        new RegExp(`invalid username .*: it contains ${code.replace('+', '\\+')}, an invisible character`),
        code,
      );
    }
    // Looking a user up is not refused for them: it finds nobody.
    assert.equal(await services.directory.profileByUsername('warden\u3164'), undefined);
  });
});

describe(`the name-key migration stops on a collision, naming both rows (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  it('refuses, changes nothing, and passes once one of them is renamed', async () => {
    const handle = openDatabase(testConfig(database).database);
    try {
      await migrateToLatest(handle.db, handle.kind);
      // As on a database from before the name keys: their columns, indexes and record absent.
      for (const [table, key] of [
        ['app_user', 'username_key'],
        ['state', 'name_key'],
        ['auth_group', 'name_key'],
      ] as const) {
        await sql`drop index ${sql.ref(`${table}_${key}_uq`)}`.execute(handle.db);
        await sql`alter table ${sql.table(table)} drop column ${sql.ref(key)}`.execute(handle.db);
      }
      await sql`delete from schema_migration where name = '0023_name_keys'`.execute(handle.db);
      // The old lower() index lets these two through on both databases: NFKC tells them apart.
      await sql`insert into auth_group (name, oidc_access, created_at) values ('Ｆｌｅｅｔ', 0, 0), ('fleet', 0, 0)`.execute(
        handle.db,
      );
      const ids = (
        await sql<{ id: number; name: string }>`select id, name from auth_group order by id`.execute(
          handle.db,
        )
      ).rows;
      await assert.rejects(migrateToLatest(handle.db, handle.kind), (error: Error) => {
        assert.match(error.message, /migration 0023_name_keys failed/);
        assert.ok(error.message.includes(`"Ｆｌｅｅｔ" (id ${ids[0]!.id})`), error.message);
        assert.ok(error.message.includes(`"fleet" (id ${ids[1]!.id})`), error.message);
        return true;
      });
      assert.deepEqual(await pendingMigrations(handle.db, handle.kind), ['0023_name_keys']);
      const columns = (await handle.db.introspection.getTables())
        .find((table) => table.name === 'auth_group')!
        .columns.map((column) => column.name);
      assert.ok(!columns.includes('name_key'), 'nothing was changed');

      await sql`update auth_group set name = 'Fleet Two' where id = ${ids[1]!.id}`.execute(handle.db);
      assert.deepEqual(await migrateToLatest(handle.db, handle.kind), ['0023_name_keys']);
      const keys = (
        await sql<{ name_key: string }>`select name_key from auth_group order by id`.execute(handle.db)
      ).rows.map((row) => row.name_key);
      assert.deepEqual(keys, ['fleet', 'fleet two']);
    } finally {
      await handle.close();
    }
  });
});
