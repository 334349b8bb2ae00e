import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { openDatabase } from '../../src/db/connect.ts';
import { pendingMigrations } from '../../src/db/migrate.ts';
import { MIGRATIONS } from '../../src/db/migrations/index.ts';
import { pgBossSchemaVersion } from '../../src/logout/pgboss-transport.ts';
import { cli, startCli } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import { connect, createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { temporaryFolders } from '../helpers/temporary-folders.ts';

const temporaryFolder = temporaryFolders('aa-oidc-dry-run-');

describe(`aa-oidc migrate --dry-run (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  const pending = async (of: TestDatabase = database) => {
    const handle = openDatabase(testConfig(of).database);
    try {
      return await pendingMigrations(handle.db, handle.kind);
    } finally {
      await handle.close();
    }
  };

  it('lists every pending migration and changes nothing', async () => {
    const names = Object.keys(MIGRATIONS).sort();
    // An empty database (on SQLite, opening it creates the file; a missing one is the next test's).
    assert.deepEqual(await pending(), names);
    const run = await cli(['migrate', '--dry-run'], testEnv(database));
    assert.equal(run.code, 0, run.stderr);
    const lines = [`${names.length} pending migration(s) would be applied: ${names.join(', ')}`];
    if (testDatabaseKind === 'postgres')
      lines.push(`pg-boss schema "pgboss" is not installed; it would be (version ${pgBossSchemaVersion()})`);
    assert.equal(run.stdout, `${lines.join('\n')}\n`);
    assert.deepEqual(await pending(), names, 'nothing was applied');
  });

  it('creates nothing for a SQLite file that does not exist yet, and says what migrate would do', async () => {
    const folder = temporaryFolder();
    const file = path.join(folder, 'new', 'aa-oidc.sqlite');
    const dataDir = path.join(folder, 'data');
    const names = Object.keys(MIGRATIONS).sort();
    const run = await cli(
      ['migrate', '--dry-run'],
      testEnv(database, { AA_OIDC_DATABASE_URL: `sqlite:${file}`, AA_OIDC_DATA_DIR: dataDir }),
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(
      run.stdout,
      `SQLite database ${file} does not exist yet; migrate would create it and apply ${names.length} migration(s): ${names.join(', ')}\n`,
    );
    assert.deepEqual(readdirSync(folder), [], 'no database file, folder or development secret key');
  });

  it('says the database is up to date once migrated', async () => {
    assert.equal((await cli(['migrate'], testEnv(database))).code, 0);
    const run = await cli(['migrate', '--dry-run'], testEnv(database));
    assert.equal(run.code, 0, run.stderr);
    const lines = ['database is up to date; nothing would be applied'];
    if (testDatabaseKind === 'postgres')
      lines.push(`pg-boss schema "pgboss" is up to date (version ${pgBossSchemaVersion()})`);
    assert.equal(run.stdout, `${lines.join('\n')}\n`);
  });

  it('refuses, as migrate does, a database a newer release migrated, naming what this release lacks', async () => {
    const newer = await createTestDatabase({ migrated: true });
    try {
      const handle = connect(newer);
      try {
        await sql`insert into schema_migration (name, timestamp) values ('9999_from_a_newer_release', '2099-01-01T00:00:00.000Z')`.execute(
          handle.db,
        );
      } finally {
        await handle.close();
      }
      const message =
        'aa-oidc: the database was migrated by a newer release of aa-oidc: it records 1 migration(s) this ' +
        'release does not have (9999_from_a_newer_release); run the newer release, or restore the backup ' +
        'taken before that upgrade to go back to this one (migrations are forward-only, docs/upgrading.md)\n';
      const dryRun = await cli(['migrate', '--dry-run'], testEnv(newer));
      assert.deepEqual(
        { code: dryRun.code, stdout: dryRun.stdout, stderr: dryRun.stderr },
        {
          code: 1,
          stdout: '',
          stderr: message,
        },
      );
      const run = await cli(['migrate'], testEnv(newer));
      assert.deepEqual(
        { code: run.code, stdout: run.stdout, stderr: run.stderr },
        {
          code: 1,
          stdout: '',
          stderr: message,
        },
      );
    } finally {
      await newer.drop();
    }
  });

  it('foresees, naming them, the client ids that differ only in case at which migrate would stop at 0082, and changes nothing', async () => {
    const at0081 = await createTestDatabase({ migrated: true });
    try {
      const env = testEnv(at0081);
      const handle = connect(at0081);
      try {
        // A database at 0081 (the index 0082 makes is gone, and its record), holding `Wiki` and `wiki`.
        await sql`drop index application_client_id_folded_uq`.execute(handle.db);
        await sql`delete from schema_migration where name = '0082_client_id_case_unique'`.execute(handle.db);
        for (const clientId of ['wiki', 'Wiki', 'forum'])
          await sql`insert into application (client_id, name, redirect_uris, post_logout_redirect_uris, client_type, grant_types, created_at, updated_at)
            values (${clientId}, ${clientId}, '[]', '[]', 'public', '[]', 1, 1)`.execute(handle.db);
      } finally {
        await handle.close();
      }
      const reason =
        'cannot make client ids unique regardless of case: applications have client ids that differ only in case ("Wiki" and "wiki"). ' +
        "Keep one application of each set and remove the others' rows (DELETE FROM application_whitelist WHERE " +
        "client_id = '…'; DELETE FROM application WHERE client_id = '…'), then migrate again; give each relying party " +
        'whose application was removed a new one, under a client id of its own (aa-oidc app create). Nothing was ' +
        'changed (docs/upgrading.md)';
      const dryRun = await cli(['migrate', '--dry-run'], env);
      assert.deepEqual(
        { code: dryRun.code, stdout: dryRun.stdout, stderr: dryRun.stderr },
        {
          code: 1,
          stdout: '',
          stderr: `aa-oidc: migration 0082_client_id_case_unique would fail: ${reason}\n`,
        },
      );
      assert.deepEqual(await pending(at0081), ['0082_client_id_case_unique'], 'nothing was applied');
      // Migrate stops there, in the same words.
      const run = await cli(['migrate'], env);
      assert.deepEqual(
        { code: run.code, stdout: run.stdout, stderr: run.stderr },
        { code: 1, stdout: '', stderr: `aa-oidc: migration 0082_client_id_case_unique failed: ${reason}\n` },
      );
      // Once one of the twins is removed, as docs/upgrading.md says, the dry run lists 0082 again.
      const fix = connect(at0081);
      try {
        await sql`delete from application where client_id = 'Wiki'`.execute(fix.db);
      } finally {
        await fix.close();
      }
      const after = await cli(['migrate', '--dry-run'], env);
      assert.equal(after.code, 0, after.stderr);
      assert.match(after.stdout, /^1 pending migration\(s\) would be applied: 0082_client_id_case_unique\n/);
    } finally {
      await at0081.drop();
    }
  });

  describe(
    'pg-boss schema',
    { skip: testDatabaseKind !== 'postgres' && 'pg-boss runs on PostgreSQL only' },
    () => {
      /** A migrated database (pg-boss installed) that `change` then alters, dropped afterwards. */
      const withPgBoss = async (change: string, check: (env: NodeJS.ProcessEnv) => Promise<void>) => {
        const probe = await createTestDatabase();
        try {
          const env = testEnv(probe);
          assert.equal((await cli(['migrate'], env)).code, 0);
          const handle = connect(probe);
          try {
            await sql.raw(change).execute(handle.db);
          } finally {
            await handle.close();
          }
          await check(env);
        } finally {
          await probe.drop();
        }
      };

      it('names the version an older pg-boss left and the one migrate would upgrade it to', async () => {
        const needed = pgBossSchemaVersion();
        await withPgBoss(`update pgboss.version set version = ${needed - 1}`, async (env) => {
          const run = await cli(['migrate', '--dry-run'], env);
          assert.equal(run.code, 0, run.stderr);
          assert.equal(
            run.stdout,
            'database is up to date; nothing would be applied\n' +
              `pg-boss schema "pgboss" is at version ${needed - 1}; it would be upgraded to ${needed}\n`,
          );
        });
      });

      it('says an empty pgboss schema exists and that pg-boss would be installed in it', async () => {
        await withPgBoss('drop schema pgboss cascade; create schema pgboss', async (env) => {
          const run = await cli(['migrate', '--dry-run'], env);
          assert.equal(run.code, 0, run.stderr);
          assert.equal(
            run.stdout,
            'database is up to date; nothing would be applied\n' +
              `pg-boss schema "pgboss" exists but is empty; pg-boss would be installed in it (version ${pgBossSchemaVersion()})\n`,
          );
          assert.equal((await cli(['migrate'], env)).code, 0);
          const after = await cli(['migrate', '--dry-run'], env);
          assert.match(after.stdout, /pg-boss schema "pgboss" is up to date/);
        });
      });

      it('refuses, as migrate does, a pgboss schema without its version table (pg-boss would leave it as it is)', async () => {
        await withPgBoss('drop table pgboss.version', async (env) => {
          const dryRun = await cli(['migrate', '--dry-run'], env);
          assert.equal(dryRun.code, 1, dryRun.stdout);
          assert.equal(dryRun.stdout, '');
          assert.match(
            dryRun.stderr,
            /^aa-oidc: pg-boss schema "pgboss" holds \d+ object\(s\) \(bam, create_queue, delete_queue, instance, job, and \d+ more\) but not pg-boss's version table pgboss\.version, so pg-boss can neither install nor upgrade it; restore the database from its backup, or, if nothing in it is needed \(queued back-channel logouts are lost\), drop it \(DROP SCHEMA pgboss CASCADE\) and run aa-oidc migrate again\n$/,
          );
          const run = await cli(['migrate'], env);
          assert.deepEqual(
            { code: run.code, stdout: run.stdout, stderr: run.stderr },
            { code: 1, stdout: '', stderr: dryRun.stderr },
          );
        });
      });

      /**
       * How `aa-oidc ARGS` ends its start: refused (its exit code and output), or `started` once it
       * says it runs (then stopped).
       */
      const start = async (args: readonly string[], env: NodeJS.ProcessEnv) => {
        const running = startCli(args, env);
        const started = await Promise.race([
          running.exited.then(() => false),
          running.waitFor(/^aa-oidc .*(server on|back-channel logout worker \()/m).then(
            () => true,
            () => false,
          ),
        ]);
        if (started) await running.stop();
        return {
          code: started ? 'started' : await running.exited,
          stdout: running.stdout(),
          stderr: running.stderr(),
        };
      };

      it('serve and worker refuse, in production and development, a pgboss schema without its version table with migrate’s message; check reports E008', async () => {
        // Started on it, pg-boss said nothing at its start: each supervisor pass then failed on the
        // missing version table, so a job whose claim lapsed stayed claimed and its logout was lost.
        await withPgBoss('drop table pgboss.version', async (migrated) => {
          const development = {
            ...migrated,
            AA_OIDC_SECRET_KEY: 'a-test-secret-key-long-enough-0123456789',
            AA_OIDC_HOST: '127.0.0.1',
            AA_OIDC_PORT: '0',
          };
          const production = {
            ...development,
            NODE_ENV: 'production',
            AA_OIDC_ISSUER: 'https://auth.example.org/o',
            AA_OIDC_TRUST_PROXY: 'true',
          };
          const migrate = await cli(['migrate'], development);
          assert.equal(migrate.code, 1);
          assert.match(
            migrate.stderr,
            /^aa-oidc: pg-boss schema "pgboss" holds \d+ object\(s\) .* but not pg-boss's version table pgboss\.version/,
          );
          for (const [mode, env] of [
            ['development', development],
            ['production', production],
          ] as const) {
            for (const command of ['serve', 'worker']) {
              const run = await start([command], env);
              assert.deepEqual(
                { code: run.code, stderr: run.stderr },
                { code: 1, stderr: migrate.stderr },
                `${mode} ${command}: ${run.stdout}`,
              );
            }
            const check = await cli(['check', '--format', 'json'], env);
            assert.equal(check.code, 1, check.stderr);
            assert.match(check.stderr, /system check found 1 error\(s\): E008/);
            const [problem, remedy] = migrate.stderr
              .replace(/^aa-oidc: /, '')
              .trimEnd()
              .split('; restore ');
            assert.deepEqual(
              (JSON.parse(check.stdout) as Array<{ id: string }>).filter((finding) => finding.id === 'E008'),
              [
                {
                  id: 'E008',
                  level: 'error',
                  message: `${problem}; aa-oidc migrate, serve and worker refuse it`,
                  hint: `restore ${remedy}`,
                },
              ],
              mode,
            );
          }
        });
      });

      it('check reports E008 for a pg-boss version table without a row, which serve refuses too', async () => {
        await withPgBoss('delete from pgboss.version', async (env) => {
          const check = await cli(['check'], env);
          assert.equal(check.code, 1, check.stderr);
          assert.match(
            check.stdout,
            /^E008 error: pg-boss's version table pgboss\.version is empty, .*; aa-oidc migrate, serve and worker refuse it\n {2}hint: restore the database from its backup, /m,
          );
          const serve = await start(['serve'], { ...env, AA_OIDC_PORT: '0' });
          assert.equal(serve.code, 1, serve.stdout);
          assert.match(serve.stderr, /^aa-oidc: pg-boss's version table pgboss\.version is empty/);
        });
      });

      it('refuses, before applying anything, a pgboss schema its role may not read, as the dry run does', async () => {
        // pg-boss's schema installed by another role, one this role may not use: migrate cannot judge
        // it nor let pg-boss install or upgrade it, so nothing of aa-oidc's is applied either.
        const probe = await createTestDatabase();
        const role = `aa_oidc_t_role_${randomBytes(6).toString('hex')}`;
        const password = randomBytes(12).toString('hex');
        const owner = new pg.Client({ connectionString: probe.url });
        await owner.connect();
        try {
          await owner.query(`create role ${role} login password '${password}'`);
          await owner.query(`grant create on schema public to ${role}`);
          await owner.query('create schema pgboss; create table pgboss.version (version int)');
          await owner.query(`insert into pgboss.version values (${pgBossSchemaVersion()})`);
          const url = new URL(probe.url);
          url.username = role;
          url.password = password;
          const env = { ...testEnv(probe), AA_OIDC_DATABASE_URL: url.toString() };
          const dryRun = await cli(['migrate', '--dry-run'], env);
          assert.equal(dryRun.code, 1, dryRun.stdout);
          assert.match(dryRun.stderr, /permission denied for schema pgboss/);
          const run = await cli(['migrate'], env);
          assert.deepEqual(
            { code: run.code, stdout: run.stdout, stderr: run.stderr },
            { code: 1, stdout: '', stderr: dryRun.stderr },
          );
          const applied = await owner.query<{ name: string | null }>(
            "select to_regclass('public.schema_migration')::text as name",
          );
          assert.equal(applied.rows[0]?.name, null, 'no migration of aa-oidc applied');
        } finally {
          await owner.end();
          await probe.drop();
          const admin = new pg.Client({ connectionString: process.env.AA_OIDC_TEST_DATABASE_URL });
          await admin.connect();
          try {
            await admin.query(`drop role if exists ${role}`);
          } finally {
            await admin.end();
          }
        }
      });

      it('refuses, as migrate does, a pg-boss version table without a row', async () => {
        await withPgBoss('delete from pgboss.version', async (env) => {
          const message =
            "aa-oidc: pg-boss's version table pgboss.version is empty, so pg-boss cannot tell which version its " +
            'schema "pgboss" is at and would not upgrade it; restore the database from its backup, or, if nothing ' +
            'in it is needed (queued back-channel logouts are lost), drop it (DROP SCHEMA pgboss CASCADE) and run ' +
            'aa-oidc migrate again\n';
          for (const args of [['migrate', '--dry-run'], ['migrate']]) {
            const run = await cli(args, env);
            assert.deepEqual(
              { code: run.code, stdout: run.stdout, stderr: run.stderr },
              { code: 1, stdout: '', stderr: message },
            );
          }
        });
      });
    },
  );
});
