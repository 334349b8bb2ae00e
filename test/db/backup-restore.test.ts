import assert from 'node:assert/strict';
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { createLocalJWKSet, type JSONWebKeySet, jwtVerify } from 'jose';
import { Migrator } from 'kysely/migration';
import { createApp } from '../../src/app.ts';
import { BackupError, backupSqlite } from '../../src/db/backup.ts';
import { MIGRATIONS } from '../../src/db/migrations/index.ts';
import { AA_OIDC_BIN, runToEnd } from '../helpers/child-process.ts';
import { cli, spawnCli } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import { connect, createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { commandUnavailable } from '../helpers/e2e.ts';
import { leftoversOf } from '../helpers/leftovers.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';
import { type TestServer, startServer } from '../helpers/server.ts';
import {
  type Client,
  codeFlow,
  introspect,
  type Pilot,
  seedClient,
  seedDirectory,
  seedPilot,
  type Tokens,
  userinfo,
} from '../tokens/helpers.ts';

/** What the original server held when the backup began, to be found again after the restore. */
interface Before {
  client: Client;
  pilot: Pilot;
  tokens: Tokens;
  kids: string[];
  users: number;
}

/**
 * A load of reads and writes against the server while the backup runs: new users (each a
 * transaction in the directory) and token introspections. Counts the writes that committed.
 */
function startLoad(server: TestServer, client: Client, accessToken: string) {
  let stopped = false;
  let writes = 0;
  const loop = (async () => {
    for (let index = 0; !stopped; index += 1) {
      await server.app.directoryAdmin.createUser({ username: `load${index}`, oidcAccess: false });
      writes += 1;
      await introspect(server, client, accessToken);
    }
  })();
  return {
    writes: () => writes,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

const jwksOf = async (origin: string) =>
  (await (await fetch(`${origin}/o/.well-known/jwks.json`)).json()) as JSONWebKeySet;

/**
 * Backups taken while a load runs, restored into a fresh location: the server started on the copy
 * finds the applications (the client secret still authenticates), the users (the pilot signs in),
 * the signing keys (same kids; an id_token from before verifies) and the unexpired tokens (active at
 * introspection, userinfo answers, the refresh token works).
 */
function backupAndRestore(
  kind: 'sqlite' | 'postgres',
  takeBackup: (server: TestServer, folder: string) => Promise<string>,
  restore: (file: string, folder: string) => Promise<TestDatabase>,
) {
  const harness = createLeakHarness();
  let server: TestServer;
  let folder: string;
  let restored: TestDatabase | undefined;
  let restoredServer: TestServer | undefined;
  const before_: Partial<Before> = {};

  before(async () => {
    folder = mkdtempSync(path.join(tmpdir(), 'aa-oidc-backup-'));
    server = await startServer({}, { harness });
    await seedDirectory(server);
    before_.pilot = await seedPilot(server, harness);
    before_.client = await seedClient(server, harness);
    before_.tokens = await codeFlow(
      server,
      harness,
      before_.client,
      before_.pilot,
      'openid email offline_access',
    );
    await server.app.keys.rotate({ force: true });
    before_.kids = (await server.app.keys.list())
      .filter((key) => key.status !== 'removed')
      .map((key) => key.kid)
      .sort();
    before_.users = (await server.app.directoryAdmin.listUsers({})).length;
  });
  let originalClosed = false;
  after(async () => {
    await restoredServer?.app.close();
    await restored?.drop();
    if (!originalClosed) await server?.app.close();
    await server?.database.drop();
    rmSync(folder, { recursive: true, force: true });
  });

  it(`backs up ${kind} while a load runs, restores into a fresh location, and starts with everything intact`, async () => {
    const { client, pilot, tokens, kids, users } = before_ as Before;
    const load = startLoad(server, client, tokens.accessToken);
    let writesDuringBackup: number;
    let file: string;
    try {
      const writesAtStart = load.writes();
      file = await takeBackup(server, folder);
      writesDuringBackup = load.writes() - writesAtStart;
    } finally {
      await load.stop();
    }
    assert.ok(writesDuringBackup > 0, 'the load kept writing while the backup ran');

    // The restored server replaces the original: same issuer, port and secret key.
    const { secretKey, issuer, port } = server.app.config;
    await server.app.close();
    originalClosed = true;
    restored = await restore(file, folder);
    const app = await createApp(testConfig(restored, { port, issuer, secretKey }), {
      migrate: false,
      logger: harness.loggerOptions,
    });
    await app.listen({ host: '127.0.0.1', port });
    restoredServer = { app, database: restored, origin: server.origin, issuer, close: () => app.close() };

    const ready = await fetch(`${server.origin}/readyz`);
    assert.equal(ready.status, 200, 'the copy is fully migrated');
    assert.deepEqual(
      (await jwksOf(server.origin)).keys.map((key) => key.kid!).sort(),
      kids,
      'the signing keys',
    );
    await jwtVerify(tokens.idToken!, createLocalJWKSet(await jwksOf(server.origin)), {
      issuer,
      audience: client.clientId,
    });

    assert.equal(
      (await introspect(restoredServer, client, tokens.accessToken)).active,
      true,
      'the access token',
    );
    const info = await userinfo(restoredServer, tokens.accessToken);
    assert.equal(info.status, 200);
    assert.equal(info.body.email, `${pilot.username}@example.org`);
    assert.ok((await app.directoryAdmin.listUsers({})).length >= users, 'the users');
    const refreshed = await fetch(`${issuer}/token/`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refreshToken! }),
    });
    assert.equal(refreshed.status, 200, 'the refresh token, and the client secret');
    const signedIn = await codeFlow(restoredServer, harness, client, pilot, 'openid email');
    assert.ok(signedIn.accessToken, 'the pilot signs in with the same password');
    await harness.assertNoLeaks();
  });
}

describe(
  'SQLite: aa-oidc backup --to FILE while serving, restored by copying the file',
  {
    skip:
      testDatabaseKind === 'sqlite'
        ? false
        : 'runs in the SQLite pass (the test database here is PostgreSQL)',
  },
  () => {
    backupAndRestore(
      'sqlite',
      async (server, folder) => {
        const file = path.join(folder, 'backup.sqlite');
        const run = await spawnCli(['backup', '--to', file], testEnv(server.database));
        assert.equal(run.code, 0, run.stderr);
        assert.match(
          run.stdout,
          new RegExp(
            `^backed up \\S+ to ${file.replace(/[.]/g, '\\.')} \\(\\d+ bytes, integrity ok\\): 1 application\\(s\\), \\d+ user\\(s\\), 3 signing key\\(s\\), [1-9]\\d* unexpired token\\(s\\)\\n$`,
          ),
        );
        return file;
      },
      async (file, folder) => {
        const dataDir = mkdtempSync(path.join(folder, 'restored-'));
        copyFileSync(file, path.join(dataDir, 'aa-oidc.sqlite'));
        return {
          kind: 'sqlite',
          url: `sqlite:${path.join(dataDir, 'aa-oidc.sqlite')}`,
          dataDir,
          drop: async () => rmSync(dataDir, { recursive: true, force: true }),
        };
      },
    );

    it('refuses to overwrite an existing file, and names it', async () => {
      const database = await createTestDatabase();
      try {
        const env = testEnv(database);
        assert.equal((await cli(['migrate'], env)).code, 0);
        const file = path.join(database.dataDir, 'taken.sqlite');
        assert.equal((await cli(['backup', '--to', file], env)).code, 0);
        assert.equal(statSync(file).mode & 0o777, 0o600, 'as private as the database');
        assert.deepEqual(
          readdirSync(database.dataDir).filter((name) => name.startsWith('taken.sqlite')),
          ['taken.sqlite'],
          'one file, nothing beside it',
        );
        const again = await cli(['backup', '--to', file], env);
        assert.equal(again.code, 1);
        assert.equal(again.stderr, `aa-oidc: ${file} exists already; name a new file\n`);
      } finally {
        await database.drop();
      }
    });

    it('copies the live rows only: a private part erased before this release zeroed what it deletes is in the database file, not in the copy', async () => {
      const database = await createTestDatabase({ migrated: true });
      try {
        const env = testEnv(database);
        const file = path.join(database.dataDir, 'test.sqlite');
        assert.equal((await cli(['keys', 'rotate'], env)).code, 0);
        // The database as an older release left it after `keys withdraw`: secure_delete off, so the
        // private part's bytes stay in the freed space of its page.
        const older = new BetterSqlite3(file);
        let secret: string;
        try {
          older.pragma('secure_delete = OFF');
          const next = older
            .prepare(`select kid, private_jwk_encrypted from signing_key where status = 'next'`)
            .get() as { kid: string; private_jwk_encrypted: string };
          secret = next.private_jwk_encrypted;
          const now = Date.now();
          older
            .prepare(
              `update signing_key set status = 'removed', retired_at = ?, publish_until = ?, removed_at = ?,
                 withdrawn_at = ?, private_jwk_encrypted = null, revision = revision + 1 where kid = ?`,
            )
            .run(now, now, now, now, next.kid);
          older.pragma('wal_checkpoint(TRUNCATE)');
        } finally {
          older.close();
        }
        assert.notDeepEqual(leftoversOf(secret, file), [], 'the database file still holds the erased bytes');

        const copy = path.join(database.dataDir, 'clean.sqlite');
        const run = await cli(['backup', '--to', copy], env);
        assert.equal(run.code, 0, run.stderr);
        assert.deepEqual(leftoversOf(secret, copy), [], 'the copy holds nothing of them');
      } finally {
        await database.drop();
      }
    });

    it('writes a relative --to in the working folder of the command, not of the process', async () => {
      const database = await createTestDatabase({ migrated: true });
      const name = `relative-${process.pid}.sqlite`;
      const inCommandFolder = path.join(database.dataDir, name);
      try {
        const run = await cli(['backup', '--to', name], testEnv(database), { cwd: database.dataDir });
        assert.equal(run.code, 0, run.stderr);
        assert.ok(run.stdout.includes(` to ${inCommandFolder} (`), run.stdout);
        assert.equal(statSync(inCommandFolder).mode & 0o777, 0o600);
        assert.equal(existsSync(path.resolve(name)), false, 'nothing in the test process’s folder');
      } finally {
        rmSync(path.resolve(name), { force: true });
        await database.drop();
      }
    });

    it('refuses an empty or blank --to, naming the option, and writes nothing', async () => {
      const database = await createTestDatabase({ migrated: true });
      try {
        for (const name of ['', '   ']) {
          const refused = await cli(['backup', '--to', name], testEnv(database));
          assert.equal(refused.code, 1);
          assert.equal(
            refused.stderr,
            `aa-oidc: --to needs the name of a new file to write the copy to (got ${JSON.stringify(name)})\n`,
          );
          if (name !== '') assert.equal(existsSync(path.resolve(name)), false, 'no file of that name');
        }
      } finally {
        await database.drop();
      }
    });

    it('refuses a --to that looks like an option, writing nothing, and takes the same name as ./-name', async () => {
      const database = await createTestDatabase({ migrated: true });
      const env = testEnv(database);
      try {
        // commander takes whatever follows --to as its value: a forgotten name before --help, a typo.
        for (const args of [['--to', '-x'], ['--to', '--help'], ['--to=-x'], ['--to', '-']]) {
          const name = args.length === 1 ? '-x' : args[1]!;
          const refused = await cli(['backup', ...args], env, { cwd: database.dataDir });
          assert.equal(refused.code, 1, `backup ${args.join(' ')}: ${refused.stdout}`);
          assert.equal(refused.stdout, '');
          assert.equal(
            refused.stderr,
            `aa-oidc: --to ${JSON.stringify(name)} looks like an option, not a file; to name a file whose name starts with "-", write ${JSON.stringify(`./${name}`)}\n`,
          );
          assert.equal(existsSync(path.join(database.dataDir, name)), false, `no file named ${name}`);
        }
        const dashed = await cli(['backup', '--to', './-x'], env, { cwd: database.dataDir });
        assert.equal(dashed.code, 0, dashed.stderr);
        assert.equal(existsSync(path.join(database.dataDir, '-x')), true);
      } finally {
        await database.drop();
      }
    });

    it('refuses a name that appears while the copy is made (another backup to the same name), keeping what is there', async () => {
      const database = await createTestDatabase({ migrated: true });
      const handle = connect(database);
      try {
        const file = path.join(database.dataDir, 'nightly.sqlite');
        const noCounts = { applications: 0, users: 0, signingKeys: 0, liveTokens: 0 };
        // The other backup finishes first, while this one counts its copy's rows.
        const other = async () => {
          writeFileSync(file, 'the other backup');
          return noCounts;
        };
        await assert.rejects(
          backupSqlite(handle, file, other),
          (error) =>
            error instanceof BackupError && error.message === `${file} exists already; name a new file`,
        );
        assert.equal(readFileSync(file, 'utf8'), 'the other backup', 'the other backup is kept');
        assert.deepEqual(
          readdirSync(database.dataDir).filter((name) => name.startsWith('nightly.sqlite')),
          ['nightly.sqlite'],
          'no partial copy left beside it',
        );
      } finally {
        await handle.close();
        await database.drop();
      }
    });

    it('writes nothing through a symbolic link, at the name or at the partial copy’s name', async () => {
      const database = await createTestDatabase();
      try {
        const env = testEnv(database);
        assert.equal((await cli(['migrate'], env)).code, 0);
        const victim = path.join(database.dataDir, 'victim.txt');
        writeFileSync(victim, 'precious');
        // A dangling link at the name: refused like a file, the link left as it is.
        const dangling = path.join(database.dataDir, 'dangling.sqlite');
        symlinkSync(path.join(database.dataDir, 'nowhere'), dangling);
        const refused = await cli(['backup', '--to', dangling], env);
        assert.equal(refused.code, 1);
        assert.equal(refused.stderr, `aa-oidc: ${dangling} exists already; name a new file\n`);
        assert.ok(lstatSync(dangling).isSymbolicLink(), 'the link is not replaced');
        // A link planted where the partial copy is written (the name is predictable: this process's id).
        const file = path.join(database.dataDir, 'backup.sqlite');
        const partial = `${file}.partial-${process.pid}`;
        symlinkSync(victim, partial);
        const planted = await cli(['backup', '--to', file], env);
        assert.equal(planted.code, 1);
        assert.equal(
          planted.stderr,
          `aa-oidc: ${partial} exists already (left by another backup, or placed there); remove it and try again\n`,
        );
        assert.equal(readFileSync(victim, 'utf8'), 'precious', 'nothing written through the link');
        assert.equal(readlinkSync(partial), victim);
        assert.equal(existsSync(file), false);
      } finally {
        await database.drop();
      }
    });

    it('backs up a database with pending migrations (the copy an upgrade takes before migrate), saying so', async () => {
      // As a database of the previous release: every migration but the latest applied.
      const database = await createTestDatabase();
      const handle = connect(database);
      const names = Object.keys(MIGRATIONS).sort();
      const latest = names.at(-1)!;
      try {
        const migrations = Object.fromEntries(
          names.map((name) => [
            name,
            { up: (trx: never) => MIGRATIONS[name]!.up(trx, { kind: handle.kind }) },
          ]),
        );
        const migrator = new Migrator({
          db: handle.db,
          provider: { getMigrations: async () => migrations },
          migrationTableName: 'schema_migration',
          migrationLockTableName: 'schema_migration_lock',
        });
        const { error } = await migrator.migrateTo(names.at(-2)!);
        assert.equal(error, undefined);
      } finally {
        await handle.close();
      }
      try {
        const env = testEnv(database);
        const file = path.join(database.dataDir, 'before-upgrade.sqlite');
        const run = await cli(['backup', '--to', file], env);
        assert.equal(run.code, 0, run.stderr);
        assert.match(run.stdout, /^backed up .* \(\d+ bytes, integrity ok\): 0 application\(s\), /);
        assert.ok(
          run.stdout.endsWith(
            `the copy is as migrated as the database: 1 migration(s) of this release not applied yet (${latest}); \`aa-oidc migrate\` applies them\n`,
          ),
          run.stdout,
        );
        // The copy restores, and the upgrade goes on from it.
        const restored = { ...database, url: `sqlite:${file}` };
        const migrated = await cli(['migrate'], testEnv(restored));
        assert.equal(migrated.code, 0, migrated.stderr);
        assert.equal(migrated.stdout, `applied 1 migration(s): ${latest}\n`);
      } finally {
        await database.drop();
      }
    });

    it('refuses a file that holds no aa-oidc database, writing nothing', async () => {
      const database = await createTestDatabase();
      try {
        const empty = database.url.slice('sqlite:'.length);
        writeFileSync(empty, '');
        const file = path.join(database.dataDir, 'copy.sqlite');
        const run = await cli(['backup', '--to', file], testEnv(database));
        assert.equal(run.code, 1);
        assert.equal(
          run.stderr,
          `aa-oidc: ${empty} holds no aa-oidc database (no migration applied); nothing to back up\n`,
        );
        assert.equal(existsSync(file), false);
      } finally {
        await database.drop();
      }
    });

    it('names a folder, or a file where a folder should be, given as --to', async () => {
      const database = await createTestDatabase({ migrated: true });
      try {
        const env = testEnv(database);
        const folder = await cli(['backup', '--to', database.dataDir], env);
        assert.equal(folder.code, 1);
        assert.equal(folder.stderr, `aa-oidc: ${database.dataDir} is a folder; name a new file in it\n`);
        const aFile = path.join(database.dataDir, 'notes.txt');
        writeFileSync(aFile, 'notes');
        const under = path.join(aFile, 'copy.sqlite');
        const beneath = await cli(['backup', '--to', under], env);
        assert.equal(beneath.code, 1);
        assert.equal(
          beneath.stderr,
          `aa-oidc: cannot write ${under}: part of its folder ${aFile} is a file, not a folder\n`,
        );
        assert.equal(readFileSync(aFile, 'utf8'), 'notes');
      } finally {
        await database.drop();
      }
    });

    it(
      'names the copy it could not write when the space runs out, and keeps nothing of it',
      { skip: process.platform === 'win32' && 'uses the shell’s ulimit -f' },
      async () => {
        const database = await createTestDatabase({ migrated: true });
        try {
          const file = path.join(database.dataDir, 'too-big.sqlite');
          // A file size limit of 64 KiB (128 blocks of 512 bytes; the database's -shm file takes 32 KiB),
          // below a migrated database's size: the copy's write fails with EFBIG (SIGXFSZ ignored), as it
          // would on a quota or a file system that takes no larger file.
          const run = await runToEnd(
            'sh',
            [
              '-c',
              'trap "" XFSZ; ulimit -f 128; exec "$0" "$@"',
              process.execPath,
              AA_OIDC_BIN,
              'backup',
              '--to',
              file,
            ],
            { env: testEnv(database) },
          );
          assert.equal(run.code, 1);
          assert.match(
            run.stderr,
            new RegExp(
              `^aa-oidc: cannot make the copy ${file.replace(/[.]/g, '\\.')}: .+ \\(SQLITE_IOERR[A-Z_]*; a file size limit or quota, or a failing disk\\); nothing was kept\\n$`,
            ),
          );
          assert.deepEqual(
            readdirSync(database.dataDir).filter((name) => name.startsWith('too-big')),
            [],
            'no partial copy left',
          );
        } finally {
          await database.drop();
        }
      },
    );

    it(
      'names the file it cannot create and why, instead of a bare system error',
      { skip: process.platform !== 'linux' && 'uses /proc, a folder that takes no new files' },
      async () => {
        const database = await createTestDatabase();
        try {
          const env = testEnv(database);
          assert.equal((await cli(['migrate'], env)).code, 0);
          // A folder that exists but where no file can be created: a regular file's name as the folder
          // is refused by its existence check, so use /proc, which takes no new files.
          const file = '/proc/aa-oidc-backup.sqlite';
          const run = await cli(['backup', '--to', file], env);
          assert.equal(run.code, 1);
          assert.match(
            run.stderr,
            new RegExp(
              `^aa-oidc: cannot create ${file.replace(/[.]/g, '\\.')}\\.partial-\\d+ \\(E[A-Z]+\\); name a file in a folder this user may write\\n$`,
            ),
          );
        } finally {
          await database.drop();
        }
      },
    );
  },
);

describe(
  'PostgreSQL: pg_dump while serving, pg_restore into a new database, as docs/upgrading.md says',
  {
    skip:
      testDatabaseKind === 'postgres'
        ? commandUnavailable('pg_dump', ['--version'], 'postgresql-client') ||
          commandUnavailable('pg_restore', ['--version'], 'postgresql-client')
        : 'needs PostgreSQL (set AA_OIDC_TEST_DATABASE_URL): the procedure is pg_dump and pg_restore',
  },
  () => {
    backupAndRestore(
      'postgres',
      async (server, folder) => {
        const file = path.join(folder, 'aa-oidc.dump');
        const dump = await runToEnd('pg_dump', ['--format=custom', `--file=${file}`, server.database.url]);
        assert.equal(dump.code, 0, dump.stderr);
        assert.ok(existsSync(file));
        return file;
      },
      async (file) => {
        const target = await createTestDatabase();
        const restore = await runToEnd('pg_restore', ['--no-owner', `--dbname=${target.url}`, file]);
        assert.equal(restore.code, 0, restore.stderr);
        return target;
      },
    );

    it('aa-oidc backup on PostgreSQL names the pg_dump command instead', async () => {
      const database = await createTestDatabase();
      try {
        const run = await cli(['backup', '--to', '/tmp/unused.sqlite'], testEnv(database));
        assert.equal(run.code, 2);
        const { hostname, port, pathname, username } = new URL(database.url);
        assert.equal(
          run.stderr,
          `aa-oidc: on PostgreSQL, back up with pg_dump (the password from ~/.pgpass or PGPASSWORD): ` +
            `pg_dump --format=custom --host=${hostname} --port=${port} --username=${username} ` +
            `--file=aa-oidc-$(date +%F).dump ${pathname.slice(1)}\n`,
        );
      } finally {
        await database.drop();
      }
    });
  },
);
