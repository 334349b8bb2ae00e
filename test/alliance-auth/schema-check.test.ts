import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { openAllianceAuthDatabase, type AllianceAuthConnection } from '../../src/alliance-auth/database.ts';
import { checkAllianceAuthSchema } from '../../src/alliance-auth/schema-check.ts';
import {
  createAllianceAuthDatabase,
  allianceAuthUnavailable,
  describeOnEachAllianceAuth,
  expectedFixture,
  type AllianceAuthTestDatabase,
  allianceAuthEnv,
} from '../helpers/alliance-auth.ts';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase } from '../helpers/database.ts';
import { ALLIANCE_AUTH_MINIMUMS, compareVersions } from '../../src/db/server-version.ts';

const heads = expectedFixture().migration_heads;

await describeOnEachAllianceAuth(
  (database) => `The Alliance Auth schema check on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let aa: AllianceAuthConnection;
    beforeEach(async () => {
      fixture = await createAllianceAuthDatabase(kind);
      aa = openAllianceAuthDatabase(fixture.readerUrl);
    });
    afterEach(async () => {
      await aa?.close();
      await fixture?.drop();
    });

    it('accepts Alliance Auth 4.1 as it is, naming the migration heads', async () => {
      const report = await checkAllianceAuthSchema(aa.db, aa.kind);
      assert.deepEqual(report.errors, []);
      assert.deepEqual(report.warnings, []);
      assert.equal(report.heads.authentication, heads.authentication);
      assert.equal(report.heads.eveonline, heads.eveonline);
    });

    it('names the database server it runs on, one of a supported version', async () => {
      const report = await checkAllianceAuthSchema(aa.db, aa.kind);
      assert.deepEqual(report.errors, []);
      const server = report.server;
      assert.ok(server, 'no server version read');
      assert.equal(server.server, kind === 'mysql' ? 'MariaDB' : 'PostgreSQL');
      assert.ok(
        compareVersions(server.numbers, ALLIANCE_AUTH_MINIMUMS[server.server].numbers) >= 0,
        server.text,
      );
    });

    it("accepts AA 5's authentication 0024, and only warns about a migration newer than that", async () => {
      await fixture.run(
        "INSERT INTO django_migrations (app, name, applied) VALUES ('authentication', '0024_alter_userprofile_language', '2026-01-01 00:00:00')",
      );
      let report = await checkAllianceAuthSchema(aa.db, aa.kind);
      assert.deepEqual([report.errors, report.warnings], [[], []]);
      assert.equal(report.heads.authentication, '0024_alter_userprofile_language');
      await fixture.run(
        "INSERT INTO django_migrations (app, name, applied) VALUES ('authentication', '0025_something_new', '2026-02-01 00:00:00')",
      );
      report = await checkAllianceAuthSchema(aa.db, aa.kind);
      assert.deepEqual(report.errors, []);
      assert.match(
        report.warnings.join('\n'),
        /newer than this release knows: authentication migration 0025_something_new/,
      );
    });

    it('refuses a schema older than Alliance Auth 4, naming the migration found and the one needed', async () => {
      await fixture.run("DELETE FROM django_migrations WHERE app = 'authentication' AND name >= '0022'");
      const report = await checkAllianceAuthSchema(aa.db, aa.kind);
      assert.equal(report.errors.length, 1);
      assert.match(
        report.errors[0]!,
        /found authentication migration 0021_alter_userprofile_language, needed 0022_userprofile_theme or later/,
      );
    });

    it('names a column it reads that is missing', async () => {
      await fixture.run('ALTER TABLE eveonline_evecharacter DROP COLUMN faction_name');
      const report = await checkAllianceAuthSchema(aa.db, aa.kind);
      assert.match(report.errors.join('\n'), /lacks columns .*eveonline_evecharacter\.faction_name/);
    });

    it('warns when the access permission does not exist, so that only superusers pass', async () => {
      await fixture.run(
        "DELETE FROM authentication_state_permissions WHERE permission_id IN (SELECT id FROM auth_permission WHERE codename = 'access_oidc')",
      );
      await fixture.run(
        "DELETE FROM auth_group_permissions WHERE permission_id IN (SELECT id FROM auth_permission WHERE codename = 'access_oidc')",
      );
      await fixture.run(
        "DELETE FROM auth_user_user_permissions WHERE permission_id IN (SELECT id FROM auth_permission WHERE codename = 'access_oidc')",
      );
      await fixture.run("DELETE FROM auth_permission WHERE codename = 'access_oidc'");
      const report = await checkAllianceAuthSchema(aa.db, aa.kind);
      assert.deepEqual(report.errors, []);
      assert.match(
        report.warnings.join('\n'),
        /no permission allianceauth_oidc\.access_oidc: only superusers pass/,
      );
    });
  },
);

describe(
  'The Alliance Auth schema check on a database that is not Alliance Auth',
  { skip: await allianceAuthUnavailable('postgres') },
  () => {
    it('says so instead of failing obscurely', async () => {
      const fixture = await createAllianceAuthDatabase('postgres');
      const aa = openAllianceAuthDatabase(fixture.readerUrl);
      try {
        await fixture.run('DROP TABLE django_migrations');
        const report = await checkAllianceAuthSchema(aa.db, aa.kind);
        assert.match(
          report.errors.join('\n'),
          /not an Alliance Auth database, or the login may not read it: django_migrations/,
        );
      } finally {
        await aa.close();
        await fixture.drop();
      }
    });
  },
);

describe(
  'The Alliance Auth schema check on a PostgreSQL older than supported',
  { skip: await allianceAuthUnavailable('postgres') },
  () => {
    it('refuses it at check, naming the version the server answered and the minimum', async () => {
      const fixture = await createAllianceAuthDatabase('postgres');
      const database = await createTestDatabase({ migrated: true });
      try {
        // No PostgreSQL 11 to install here: the database answers version() as one does. With
        // pg_catalog last in the search path, public's version() is the one a bare call finds.
        await fixture.run(
          "CREATE FUNCTION public.version() RETURNS text LANGUAGE sql AS $$ SELECT 'PostgreSQL 11.22 (Debian 11.22-1.pgdg110+1) on x86_64-pc-linux-gnu'::text $$",
        );
        await fixture.run(`ALTER DATABASE ${fixture.name} SET search_path = public, pg_catalog`);
        const aa = openAllianceAuthDatabase(fixture.readerUrl);
        try {
          const report = await checkAllianceAuthSchema(aa.db, aa.kind);
          assert.deepEqual(report.errors, [
            'Alliance Auth\'s database server is PostgreSQL 11.22 (version() answered "PostgreSQL 11.22 (Debian 11.22-1.pgdg110+1) on x86_64-pc-linux-gnu"), older than aa-oidc supports: it needs PostgreSQL 12 or newer; upgrade the database server first',
          ]);
        } finally {
          await aa.close();
        }
        const run = await cli(['check'], testEnv(database, allianceAuthEnv(fixture.readerUrl)));
        assert.equal(run.code, 1);
        assert.match(run.stderr, /system check found 1 error\(s\): E009/);
        assert.match(
          run.stdout,
          /^E009 error: .*is not supported: Alliance Auth's database server is PostgreSQL 11\.22 .*it needs PostgreSQL 12 or newer/m,
        );
      } finally {
        await database.drop();
        await fixture.drop();
      }
    });
  },
);
