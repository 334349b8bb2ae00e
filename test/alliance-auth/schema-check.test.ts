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
} from '../helpers/alliance-auth.ts';

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
