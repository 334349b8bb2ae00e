import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { sql } from 'kysely';
import pg from 'pg';
import { STALE_BOOTSTRAP_PASSWORD_AGE_MS } from '../../src/cli/bootstrap-password.ts';
import { openDatabase } from '../../src/db/connect.ts';
import { READINESS_REUSE_MS } from '../../src/http/health.ts';
import { createDirectory } from '../../src/directory/builtin/create.ts';
import { hasActiveSuperuser } from '../../src/directory/builtin/queries.ts';
import { readDirectoryBinding } from '../../src/directory/binding.ts';
import { createServices } from '../../src/services.ts';
import { cli, spawnCli, startCli, startCliProcess } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import {
  connect,
  createTestDatabase,
  reachablePostgres,
  type TestDatabase,
  testDatabaseKind,
} from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { asRoot } from '../helpers/unprivileged.ts';
import {
  Browser,
  formAction,
  formField,
  pkcePair,
  REDIRECT_URI,
  startOnFreePort,
} from '../helpers/server.ts';

/** Preloaded into a `serve` whose start fails: it says which signal listeners are left (signal-listeners.ts). */
const SIGNAL_LISTENERS = fileURLToPath(new URL('../helpers/signal-listeners.ts', import.meta.url));

/** The bootstrap password file `serve` wrote, read as an operator would. */
function readBootstrapFile(dataDir: string): { file: string; username: string; password: string } {
  const file = path.join(dataDir, 'bootstrap-password');
  const text = readFileSync(file, 'utf8');
  const username = /^username: (\S+)$/m.exec(text)?.[1];
  const password = /^password: (\S+)$/m.exec(text)?.[1];
  assert.ok(username && password, 'the file names the username and the password');
  return { file, username, password };
}

const mode = (file: string) => statSync(file).mode & 0o777;

/**
 * The first superuser's password never reaches standard output (also the log stream: journald,
 * `docker logs`): `serve` writes it to a 0600 file in the data directory and prints the path. Its
 * first sign-in asks for a new password before anything else.
 */
describe(`aa-oidc serve on a first run (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  it('writes the password to a 0600 file in a new 0700 data directory and prints only its path', async () => {
    const dataDir = path.join(database.dataDir, 'fresh-data');
    const serve = startCliProcess(
      ['serve'],
      testEnv(database, {
        AA_OIDC_DATA_DIR: dataDir,
        AA_OIDC_PORT: '0',
        AA_OIDC_HOST: '127.0.0.1',
        AA_OIDC_METRICS_ENABLED: 'false',
        AA_OIDC_LOG_LEVEL: 'info',
      }),
    );
    try {
      await serve.waitFor(/"aa-oidc listening"/);
      await serve.waitFor(/aa-oidc user set-password \S+\n/);
    } finally {
      await serve.stop('SIGTERM');
    }
    assert.equal(await serve.exited, 0, serve.stderr());
    const stdout = serve.stdout();
    const stderr = serve.stderr();

    const { file, username, password } = readBootstrapFile(dataDir);
    assert.equal(username, 'admin');
    assert.ok(password.length >= 20);
    assert.equal(mode(dataDir), 0o700, 'the data directory is private');
    assert.equal(mode(file), 0o600, 'the password file is private');
    assert.ok(stdout.includes(`No superuser existed, so one was created: username admin\n`));
    assert.ok(stdout.includes(`its one-time password is in ${file}`), 'stdout names the file');
    assert.ok(!stdout.includes(password), 'the password is not on stdout');
    assert.ok(!stderr.includes(password), 'the password is not on stderr');
    assert.ok(
      stdout.split('\n').some((line) => line.startsWith('{') && line.includes('bootstrap superuser')),
      'the creation itself is logged',
    );

    const handle = openDatabase(testConfig(database).database);
    try {
      const check = await createDirectory(handle.db).verifyPassword('admin', password);
      assert.equal(check.outcome, 'valid');
      assert.equal(check.outcome === 'valid' && check.user.superuser, 1);
      assert.equal(check.outcome === 'valid' && check.user.must_change_password, 1);
    } finally {
      await handle.close();
    }
  });
});

describe(`aa-oidc serve on a first run that cannot listen (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let blocker: net.Server;
  before(async () => {
    database = await createTestDatabase();
    blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    await database.drop();
  });

  it('creates no superuser then, so that the next start that listens shows a usable one-time password', async () => {
    const { port } = blocker.address() as net.AddressInfo;
    const env = (listenOn: number) =>
      testEnv(database, {
        AA_OIDC_PORT: String(listenOn),
        AA_OIDC_HOST: '127.0.0.1',
        AA_OIDC_METRICS_ENABLED: 'false',
        AA_OIDC_LOG_LEVEL: 'info',
      });
    const failed = await spawnCli(['serve'], env(port));
    assert.equal(failed.code, 1, failed.stderr);
    assert.match(
      failed.stderr,
      new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use`),
    );
    assert.doesNotMatch(failed.stdout, /No superuser existed/);
    assert.ok(!existsSync(path.join(database.dataDir, 'bootstrap-password')), 'no password file either');
    const handle = openDatabase(testConfig(database).database);
    try {
      assert.equal(await hasActiveSuperuser(handle.db), false, 'the failed start created no superuser');
    } finally {
      await handle.close();
    }

    const serve = startCliProcess(['serve'], env(0));
    try {
      await serve.waitFor(/"aa-oidc listening"/);
      await serve.waitFor(
        /No superuser existed, so one was created: username admin\n/,
        'the bootstrap notice',
        10_000,
      );
    } finally {
      await serve.stop('SIGTERM');
    }
    assert.equal(await serve.exited, 0, serve.stderr());
    const { username, password } = readBootstrapFile(database.dataDir);
    assert.equal(username, 'admin');
    const again = openDatabase(testConfig(database).database);
    try {
      const check = await createDirectory(again.db).verifyPassword(username, password);
      assert.equal(check.outcome, 'valid', 'the one-time password in the file signs in');
      assert.equal(check.outcome === 'valid' && check.user.superuser, 1);
      assert.equal(check.outcome === 'valid' && check.user.must_change_password, 1);
    } finally {
      await again.close();
    }
  });
});

describe(`aa-oidc serve on a first run that cannot write the password file (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  it('stops, naming the file and what to do, and creates no superuser; the next start after the fix does', async () => {
    // The data directory alone, the SQLite file elsewhere: only the password file cannot be written.
    const dataDir = path.join(database.dataDir, 'locked-data');
    const file = path.join(dataDir, 'bootstrap-password');
    mkdirSync(dataDir, { mode: 0o700 });
    // A read-only directory; root writes into one anyway, so then a directory stands in the file's way.
    if (asRoot) mkdirSync(file);
    else chmodSync(dataDir, 0o500);
    const env = testEnv(database, {
      AA_OIDC_DATA_DIR: dataDir,
      AA_OIDC_SECRET_KEY: 'k'.repeat(32),
      AA_OIDC_PORT: '0',
      AA_OIDC_HOST: '127.0.0.1',
      AA_OIDC_METRICS_ENABLED: 'false',
      AA_OIDC_LOG_LEVEL: 'info',
    });
    // The failed start says, as it exits, whether it still listens for signals (it should not).
    const first = startCliProcess(['serve'], {
      ...env,
      NODE_OPTIONS: [env.NODE_OPTIONS, `--import=${SIGNAL_LISTENERS}`].filter(Boolean).join(' '),
    });
    const code = await Promise.race([first.exited, delay(30_000).then(() => 'still running')]);
    if (code === 'still running') await first.stop('SIGKILL');
    const failed = { code, stdout: first.stdout(), stderr: first.stderr() };
    assert.equal(failed.code, 1, failed.stderr);
    assert.ok(
      failed.stderr.includes(`cannot write the bootstrap superuser's one-time password to ${file} (`),
      failed.stderr,
    );
    const fix = asRoot
      ? `remove the directory at ${file}`
      : `make the data directory ${dataDir} (AA_OIDC_DATA_DIR) writable by this user`;
    assert.ok(failed.stderr.includes(`so no superuser was created; ${fix}, then start again`), failed.stderr);
    assert.doesNotMatch(failed.stdout, /No superuser existed|created the bootstrap superuser/);
    assert.match(
      failed.stderr,
      /^signal listeners at exit: SIGINT 0, SIGTERM 0$/m,
      'the failed start stopped listening for SIGINT and SIGTERM',
    );
    assert.deepEqual(readdirSync(dataDir), asRoot ? ['bootstrap-password'] : [], 'no file is left behind');
    const handle = openDatabase(testConfig(database).database);
    try {
      assert.equal(await hasActiveSuperuser(handle.db), false, 'the failed start created no superuser');
    } finally {
      await handle.close();
    }

    if (asRoot) rmdirSync(file);
    else chmodSync(dataDir, 0o700);
    const serve = startCliProcess(['serve'], env);
    try {
      await serve.waitFor(/"aa-oidc listening"/);
      await serve.waitFor(/aa-oidc user set-password \S+\n/, 'the bootstrap notice', 10_000);
    } finally {
      await serve.stop('SIGTERM');
    }
    assert.equal(await serve.exited, 0, serve.stderr());
    const { username, password } = readBootstrapFile(dataDir);
    assert.equal(username, 'admin');
    assert.equal(mode(file), 0o600);
    const again = openDatabase(testConfig(database).database);
    try {
      const check = await createDirectory(again.db).verifyPassword(username, password);
      assert.equal(check.outcome, 'valid', 'the one-time password in the file signs in');
      assert.equal(check.outcome === 'valid' && check.user.superuser, 1);
    } finally {
      await again.close();
    }
  });
});

describe(`aa-oidc serve on a first run whose superuser cannot be committed (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  after(async () => database.drop());

  /**
   * A real commit failure: a trigger files each new account in a table whose deferred foreign key
   * points nowhere, so the insert passes and the COMMIT fails (a constraint checked at commit).
   */
  const blocker = {
    sqlite: [
      'create table bootstrap_blocker_target (id integer primary key)',
      'create table bootstrap_blocker (user_id integer references bootstrap_blocker_target (id) deferrable initially deferred)',
      'create trigger bootstrap_blocker after insert on app_user begin insert into bootstrap_blocker values (new.id); end',
    ],
    postgres: [
      'create table bootstrap_blocker_target (id bigint primary key)',
      'create table bootstrap_blocker (user_id bigint references bootstrap_blocker_target (id) deferrable initially deferred)',
      'create function bootstrap_blocker() returns trigger language plpgsql as $$ begin insert into bootstrap_blocker values (new.id); return new; end $$',
      'create trigger bootstrap_blocker after insert on app_user for each row execute function bootstrap_blocker()',
    ],
  };
  const unblock = [
    'drop trigger bootstrap_blocker' + (testDatabaseKind === 'postgres' ? ' on app_user' : ''),
    'drop table bootstrap_blocker',
    'drop table bootstrap_blocker_target',
  ];
  async function run(statements: readonly string[]) {
    const handle = connect(database);
    try {
      for (const statement of statements) await sql.raw(statement).execute(handle.db);
    } finally {
      await handle.close();
    }
  }

  it('leaves no password file naming an account that does not exist, and the next start creates one', async () => {
    const dataDir = path.join(database.dataDir, 'commit-data');
    await run(blocker[testDatabaseKind]);
    const env = testEnv(database, {
      AA_OIDC_DATA_DIR: dataDir,
      AA_OIDC_SECRET_KEY: 'k'.repeat(32),
      AA_OIDC_PORT: '0',
      AA_OIDC_HOST: '127.0.0.1',
      AA_OIDC_METRICS_ENABLED: 'false',
      AA_OIDC_LOG_LEVEL: 'info',
    });
    const failed = await spawnCli(['serve'], env);
    assert.equal(failed.code, 1, failed.stderr);
    assert.deepEqual(readdirSync(dataDir), [], 'no password file (nor a temporary one) is left behind');
    assert.match(
      failed.stderr,
      /^aa-oidc: could not commit the bootstrap superuser \(.*\), so none was created and no password file was left; /,
    );
    assert.ok(failed.stderr.includes('if `aa-oidc user list` shows a superuser anyway'), failed.stderr);
    assert.doesNotMatch(failed.stdout, /No superuser existed|created the bootstrap superuser/);
    const handle = connect(database);
    try {
      assert.equal(await hasActiveSuperuser(handle.db), false, 'the failed start created no superuser');
    } finally {
      await handle.close();
    }

    await run(unblock);
    const serve = startCliProcess(['serve'], env);
    try {
      await serve.waitFor(/"aa-oidc listening"/);
      await serve.waitFor(/aa-oidc user set-password \S+\n/, 'the bootstrap notice', 10_000);
    } finally {
      await serve.stop('SIGTERM');
    }
    assert.equal(await serve.exited, 0, serve.stderr());
    assert.deepEqual(readdirSync(dataDir), ['bootstrap-password']);
    const { username, password } = readBootstrapFile(dataDir);
    const again = connect(database);
    try {
      const check = await createDirectory(again.db).verifyPassword(username, password);
      assert.equal(check.outcome, 'valid', 'the one-time password in the file signs in');
      assert.equal(check.outcome === 'valid' && check.user.superuser, 1);
    } finally {
      await again.close();
    }
  });
});

describe(`aa-oidc serve after a start killed while bootstrapping (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  after(async () => database.drop());

  it('removes the one-time passwords such a start left beside the file, and logs it without their content', async () => {
    const dataDir = path.join(database.dataDir, 'killed-data');
    mkdirSync(dataDir, { mode: 0o700 });
    // A process that is gone (it ran and ended), and ones that run (this test's, and the first).
    const gone = spawnSync(process.execPath, ['-e', '']).pid;
    const secret = 'password: left-by-a-killed-start';
    // Written long ago, whatever the process id says: a killed start's, here or in a container
    // sharing the volume (whose first process is 1 too, and whose ids mean nothing here).
    const stale = [gone, process.pid, 1].map((pid) => `bootstrap-password.${pid}.0123456789ab.tmp`);
    // Written just now: a start running beside this one, in this PID namespace or another one (where
    // its id may be gone here), about to put its file in place.
    const fresh = [gone, process.pid].map((pid) => `bootstrap-password.${pid}.ba9876543210.tmp`);
    const notOurs = [
      'bootstrap-password.tmp',
      `bootstrap-password.${gone}.tmp`,
      `bootstrap-password.${gone}.0123456789ab.tmp.bak`,
      `bootstrap-password.${gone}.0123456789AB.tmp`,
      'bootstrap-password.0123456789ab.tmp',
    ];
    const longAgo = new Date(Date.now() - STALE_BOOTSTRAP_PASSWORD_AGE_MS - 60_000);
    for (const name of [...stale, ...fresh, ...notOurs]) {
      writeFileSync(path.join(dataDir, name), `${secret}\n`);
      if (!fresh.includes(name)) utimesSync(path.join(dataDir, name), longAgo, longAgo);
    }

    const serve = startCliProcess(
      ['serve'],
      testEnv(database, {
        AA_OIDC_DATA_DIR: dataDir,
        AA_OIDC_PORT: '0',
        AA_OIDC_HOST: '127.0.0.1',
        AA_OIDC_METRICS_ENABLED: 'false',
        AA_OIDC_LOG_LEVEL: 'info',
      }),
    );
    try {
      await serve.waitFor(/"aa-oidc listening"/);
      await serve.waitFor(/aa-oidc user set-password \S+\n/, 'the bootstrap notice', 10_000);
    } finally {
      await serve.stop('SIGTERM');
    }
    assert.equal(await serve.exited, 0, serve.stderr());
    assert.deepEqual(
      readdirSync(dataDir)
        .filter((name) => name.startsWith('bootstrap-password'))
        .sort(),
      ['bootstrap-password', ...fresh, ...notOurs].sort(),
      'only the temporary files written long ago are removed',
    );
    const removals = serve
      .stdout()
      .split('\n')
      .filter((line) => line.includes('removed a bootstrap password file'))
      .map((line) => JSON.parse(line) as { level: number; file: string; msg: string });
    assert.deepEqual(
      removals.map((line) => line.file).sort(),
      stale.map((name) => path.join(dataDir, name)).sort(),
    );
    assert.ok(!serve.stdout().includes('left-by-a-killed-start'), 'the content reaches no output');
    assert.ok(!serve.stderr().includes('left-by-a-killed-start'));
    readBootstrapFile(dataDir);
  });
});

const postgres = await reachablePostgres();

describe(
  'two aa-oidc serve starting at once on one new PostgreSQL database',
  { skip: 'missing' in postgres ? postgres.missing : false },
  () => {
    it('create one superuser and one password file between them, and both start', async () => {
      const database = await createTestDatabase({
        migrated: true,
        postgresUrl: (postgres as { url: string }).url,
      });
      // The test's lock on app_user holds both starts at their insert of the superuser, each having
      // found none, then lets them go together: the race, every time.
      const holder = new pg.Client({ connectionString: database.url });
      const servers: Array<ReturnType<typeof startCliProcess>> = [];
      const dataDirs = ['one', 'two'].map((name) => path.join(database.dataDir, name));
      try {
        await holder.connect();
        await holder.query('begin');
        await holder.query('lock table app_user in share mode');
        for (const dataDir of dataDirs) {
          servers.push(
            startCliProcess(
              ['serve'],
              testEnv(database, {
                AA_OIDC_DATA_DIR: dataDir,
                AA_OIDC_SECRET_KEY: 'k'.repeat(32),
                AA_OIDC_PORT: '0',
                AA_OIDC_HOST: '127.0.0.1',
                AA_OIDC_METRICS_ENABLED: 'false',
                AA_OIDC_LOG_LEVEL: 'info',
              }),
            ),
          );
        }
        const waiting = async () => {
          const { rows } = await holder.query<{ count: string }>(
            "select count(*) from pg_locks where relation = 'app_user'::regclass and not granted",
          );
          return Number(rows[0]!.count) >= 2;
        };
        await eventually(waiting, 'both starts wait to insert their superuser', 60_000);
        await holder.query('rollback');
        // A start says where it serves once its bootstrap is done, whichever way it went.
        for (const serve of servers) {
          const [, port] = await serve.waitFor(/ server on http:\/\/127\.0\.0\.1:(\d+) /);
          // An answer: the process went on past that line (it takes SIGTERM from then on).
          assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
        }
        const superusers = async () =>
          (await holder.query<{ username: string }>('select username from app_user where superuser = 1'))
            .rows;
        await servers[0]!.stop('SIGTERM');
        await servers[1]!.stop('SIGTERM');
        for (const serve of servers) assert.equal(await serve.exited, 0, serve.stderr());
        assert.deepEqual(await superusers(), [{ username: 'admin' }], 'one superuser');
        const notices = servers.filter((serve) => /No superuser existed/.test(serve.stdout()));
        assert.equal(notices.length, 1, 'one start shows the notice');
        const withFile = dataDirs.filter((dataDir) => existsSync(dataDir) && readdirSync(dataDir).length > 0);
        assert.equal(withFile.length, 1, 'one password file, and no temporary one');
        assert.deepEqual(readdirSync(withFile[0]!), ['bootstrap-password']);
        const { username, password } = readBootstrapFile(withFile[0]!);
        assert.equal(username, 'admin');
        const handle = connect(database);
        try {
          const check = await createDirectory(handle.db).verifyPassword(username, password);
          assert.equal(check.outcome, 'valid', 'the one-time password in the file signs in');
        } finally {
          await handle.close();
        }
        for (const serve of servers) assert.doesNotMatch(serve.stderr(), /error|conflict/i);
      } finally {
        for (const serve of servers) await serve.stop('SIGKILL');
        await holder.end().catch(() => undefined);
        await database.drop();
      }
    });
  },
);

describe(
  'aa-oidc serve stopped (SIGTERM) while it commits the bootstrap superuser, on PostgreSQL',
  { skip: 'missing' in postgres ? postgres.missing : false },
  () => {
    it('finishes the bootstrap, puts the password file in place, leaves no temporary one and stops', async () => {
      const database = await createTestDatabase({
        migrated: true,
        postgresUrl: (postgres as { url: string }).url,
      });
      const dataDir = path.join(database.dataDir, 'stopped-data');
      // The commit of a new account waits on the test's advisory lock (a deferred trigger takes it):
      // the start is held between writing the password beside its file and the commit.
      const holder = new pg.Client({ connectionString: database.url });
      let serve: ReturnType<typeof startCliProcess> | undefined;
      try {
        await holder.connect();
        await holder.query(
          'create function bootstrap_commit_wait() returns trigger language plpgsql as $$ begin perform pg_advisory_xact_lock(74001); return null; end $$',
        );
        await holder.query(
          'create constraint trigger bootstrap_commit_wait after insert on app_user deferrable initially deferred for each row execute function bootstrap_commit_wait()',
        );
        await holder.query('select pg_advisory_lock(74001)');
        serve = startCliProcess(
          ['serve'],
          testEnv(database, {
            AA_OIDC_DATA_DIR: dataDir,
            AA_OIDC_SECRET_KEY: 'k'.repeat(32),
            AA_OIDC_PORT: '0',
            AA_OIDC_HOST: '127.0.0.1',
            AA_OIDC_METRICS_ENABLED: 'false',
            AA_OIDC_LOG_LEVEL: 'info',
          }),
        );
        await eventually(
          async () => {
            const { rows } = await holder.query<{ count: string }>(
              // This database's lock 74001 only: other tests on the server take advisory locks of their own.
              "select count(*) from pg_locks where locktype = 'advisory' and classid = 0 and objid = 74001 and objsubid = 1 and not granted and database = (select oid from pg_database where datname = current_database())",
            );
            return Number(rows[0]!.count) >= 1;
          },
          'the start waits to commit its superuser',
          60_000,
        );
        assert.equal(readdirSync(dataDir).filter((name) => name.endsWith('.tmp')).length, 1);
        const stopped = serve.stop('SIGTERM');
        await holder.query('select pg_advisory_unlock(74001)');
        assert.equal(await stopped, 0, serve.stderr());
        assert.deepEqual(readdirSync(dataDir), ['bootstrap-password'], 'the file in place, no temporary one');
        assert.match(serve.stdout(), /No superuser existed, so one was created: username admin/);
        const { username, password } = readBootstrapFile(dataDir);
        const handle = connect(database);
        try {
          const check = await createDirectory(handle.db).verifyPassword(username, password);
          assert.equal(check.outcome, 'valid', 'the one-time password in the file signs in');
        } finally {
          await handle.close();
        }
      } finally {
        await serve?.stop('SIGKILL');
        await holder.end().catch(() => undefined);
        await database.drop();
      }
    });
  },
);

describe(`the bootstrap superuser's first sign-in (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let origin: string;
  let issuer: string;
  let clientId: string;
  let serve: ReturnType<typeof startCli>;

  before(async () => {
    serve = await startOnFreePort(async (port) => {
      // A database of each try's own: serve creates the superuser before it listens, so a second
      // try on the same database would find one and show no password.
      database = await createTestDatabase();
      origin = `http://127.0.0.1:${port}`;
      issuer = `${origin}/o`;
      const started = startCli(
        ['serve'],
        testEnv(database, {
          AA_OIDC_PORT: String(port),
          AA_OIDC_HOST: '127.0.0.1',
          AA_OIDC_ISSUER: issuer,
          AA_OIDC_METRICS_ENABLED: 'false',
          AA_OIDC_LOG_LEVEL: 'info',
        }),
      );
      try {
        await started.waitFor(/aa-oidc user set-password \S+\n/);
      } catch (error) {
        await database.drop();
        throw error;
      }
      return started;
    });
    const services = await createServices(testConfig(database, { issuer }), { migrate: false });
    try {
      const created = await services.applications.create(
        { name: 'Wiki', redirectUris: [REDIRECT_URI] },
        'test',
      );
      clientId = created.application.clientId;
    } finally {
      await services.close();
    }
  });
  after(async () => {
    await serve.stop();
    await database.drop();
  });

  /** authorize → the login page → posts the login; returns the page that follows. */
  async function signInAs(browser: Browser, username: string, password: string) {
    const { challenge } = pkcePair();
    const authorize = `${issuer}/authorize/?${new URLSearchParams({
      client_id: clientId,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      scope: 'openid',
      code_challenge: challenge,
      code_challenge_method: 'S256',
    })}`;
    const login = await (await browser.follow(authorize, origin)).text();
    return browser.follow(formAction(login, origin), origin, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        csrf_token: formField(login, 'csrf_token'),
        username,
        password,
      }).toString(),
    });
  }

  async function choose(browser: Browser, page: string, password: string, confirmation = password) {
    return browser.follow(formAction(page, origin), origin, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        csrf_token: formField(page, 'csrf_token'),
        change_token: formField(page, 'change_token'),
        new_password: password,
        confirm_password: confirmation,
      }).toString(),
    });
  }

  it('asks for a new password before anything else, then continues to consent', async () => {
    const { username, password } = readBootstrapFile(database.dataDir);
    const browser = new Browser();
    const first = await signInAs(browser, username, password);
    assert.equal(first.status, 200);
    let page = await first.text();
    assert.match(page, /<h1>Choose a new password<\/h1>/);
    assert.doesNotMatch(page, /name="decision"/, 'no consent before the new password');

    for (const [chosen, confirmation, message] of [
      ['a brand new secret', 'a different one', /The two passwords differ/],
      ['short', 'short', /too short/],
      [password, password, /other than the one you were given/],
    ] as const) {
      const refused = await choose(browser, page, chosen, confirmation);
      assert.equal(refused.status, 400);
      page = await refused.text();
      assert.match(page, message);
    }

    const forged = await browser.follow(formAction(page, origin), origin, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        csrf_token: formField(page, 'csrf_token'),
        change_token: `${formField(page, 'change_token')}x`,
        new_password: 'a brand new secret',
        confirm_password: 'a brand new secret',
      }).toString(),
    });
    assert.equal(forged.status, 400, 'without the proof of this sign-in, no password is set');

    const accepted = await choose(browser, page, 'a brand new secret');
    assert.equal(accepted.status, 200);
    assert.match(await accepted.text(), /name="decision"/, 'the sign-in goes on to consent');

    assert.equal((await signInAs(new Browser(), username, password)).status, 401, 'the old password is gone');
    const again = await signInAs(new Browser(), username, 'a brand new secret');
    assert.equal(again.status, 200);
    assert.match(await again.text(), /name="decision"/, 'no second request for a new password');

    for (const output of [serve.stdout(), serve.stderr()]) {
      assert.ok(!output.includes(password), 'the bootstrap password reaches no output');
      assert.ok(!output.includes('a brand new secret'), 'nor does the new one');
    }
  });
});

describe(`the bootstrap notice on a terminal (${testDatabaseKind})`, () => {
  it('shows the password on a development terminal too, and never in production', async () => {
    for (const production of [false, true]) {
      const database = await createTestDatabase();
      try {
        const env = testEnv(database, {
          AA_OIDC_PORT: '0',
          AA_OIDC_HOST: '127.0.0.1',
          AA_OIDC_METRICS_ENABLED: 'false',
          ...(production && {
            NODE_ENV: 'production',
            AA_OIDC_ISSUER: 'https://auth.example.org/o',
            AA_OIDC_SECRET_KEY: 'a production secret key of at least 32 chars',
            AA_OIDC_TRUST_PROXY: 'true',
          }),
        });
        if (production) assert.equal((await cli(['migrate'], env)).code, 0);
        const serve = startCli(['serve'], env, { terminalStdout: true });
        try {
          await serve.waitFor(/aa-oidc user set-password \S+\n/);
        } finally {
          await serve.stop();
        }
        const { password } = readBootstrapFile(database.dataDir);
        const shown = serve.stdout().includes(`  one-time password: ${password}\n`);
        assert.equal(shown, !production, production ? 'never in production' : 'shown on the terminal');
        assert.ok(serve.stdout().includes(path.join(database.dataDir, 'bootstrap-password')));
      } finally {
        await database.drop();
      }
    }
  });
});

describe(`a production server started before \`aa-oidc migrate\` (${testDatabaseKind})`, () => {
  it('answers 503 until the migrations are in, then restart_required, and stops (exit 75) to be started again', async () => {
    const database = await createTestDatabase();
    try {
      let env: NodeJS.ProcessEnv = {};
      let port: number | undefined;
      const readiness = async () => {
        const response = await fetch(`http://127.0.0.1:${port}/readyz`);
        return { status: response.status, body: (await response.json()) as { status: string } };
      };
      const early = await startOnFreePort(async (free) => {
        port = free;
        env = testEnv(database, {
          AA_OIDC_PORT: String(port),
          AA_OIDC_HOST: '127.0.0.1',
          AA_OIDC_METRICS_ENABLED: 'false',
          AA_OIDC_LOG_LEVEL: 'info',
          NODE_ENV: 'production',
          AA_OIDC_ISSUER: 'https://auth.example.org/o',
          AA_OIDC_SECRET_KEY: 'a production secret key of at least 32 chars',
          AA_OIDC_TRUST_PROXY: 'true',
        });
        const started = startCli(['serve'], env);
        await started.waitFor(/"aa-oidc listening"/);
        return started;
      });
      try {
        // Public: whether migrations are pending, not which (they tell the release); the log names them.
        assert.deepEqual(await readiness(), {
          status: 503,
          body: { status: 'not_ready', database: 'reachable', migrations: 'pending' },
        });
        await early.waitFor(
          /"pendingMigrations":\["0001_[^"]+",.*"the database has \d+ pending migration\(s\): \/readyz answers 503 until aa-oidc migrate applies them/,
        );
        const migrating = performance.now();
        assert.equal((await cli(['migrate'], env)).code, 0);
        // An answer of /readyz is reused for READINESS_REUSE_MS; wait no longer than that (the server
        // stops itself within 5 s of the migrations).
        await delay(Math.max(0, READINESS_REUSE_MS + 50 - (performance.now() - migrating)));
        // Migrated under it: never "ready" without its signing key, superuser and logout delivery.
        assert.equal((await readiness()).body.status, 'restart_required');
        assert.equal(await early.exited, 75, early.stderr());
      } finally {
        await early.stop();
      }
      assert.match(early.stdout(), /"the database was migrated after this server started: stopping/);
      assert.match(early.stderr(), /aa-oidc: the database was migrated after this server started/);
      assert.doesNotMatch(early.stdout(), /No superuser existed/, 'nothing was bootstrapped then');

      const again = startCli(['serve'], env);
      try {
        await again.waitFor(/aa-oidc user set-password \S+\n/);
        assert.deepEqual(await readiness(), {
          status: 200,
          body: { status: 'ready', database: 'reachable', migrations: 'applied' },
        });
        const keys = JSON.parse((await cli(['keys', 'list', '--format', 'json'], env)).stdout) as Array<{
          status: string;
        }>;
        assert.ok(
          keys.some((key) => key.status === 'active'),
          'an active signing key',
        );
      } finally {
        await again.stop();
      }
    } finally {
      await database.drop();
    }
  });
});

/**
 * A start the system checks refuse writes nothing: the operator fixing the environment may change
 * AA_OIDC_SECRET_KEY at the same time, and a signing key the refused start had written with the old
 * one could not be decrypted by the next.
 */
describe(`a start the system checks refuse (${testDatabaseKind})`, () => {
  const production = (database: TestDatabase, extra: Record<string, string>) =>
    testEnv(database, {
      AA_OIDC_HOST: '127.0.0.1',
      AA_OIDC_METRICS_ENABLED: 'false',
      AA_OIDC_LOG_LEVEL: 'info',
      NODE_ENV: 'production',
      AA_OIDC_ISSUER: 'https://auth.example.org/o',
      AA_OIDC_SECRET_KEY: 'the first secret key, of at least 32 chars',
      ...extra,
    });

  /** What a refused start must not have left: signing keys, a directory binding, a superuser. */
  const leftBehind = async (database: TestDatabase) => {
    const handle = connect(database);
    try {
      const keys = await handle.db.selectFrom('signing_key').select('kid').execute();
      const binding = await handle.db.selectFrom('directory_binding').select('id').execute();
      return {
        signingKeys: keys.length,
        directoryBinding: binding.length,
        superuser: await hasActiveSuperuser(handle.db),
      };
    } finally {
      await handle.close();
    }
  };
  const nothing = { signingKeys: 0, directoryBinding: 0, superuser: false };

  it('serve refused by E007 leaves nothing, and the fixed start with another secret key starts', async () => {
    const database = await createTestDatabase({ migrated: true });
    try {
      const refused = await cli(['serve'], production(database, { AA_OIDC_PORT: '0' }));
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, /E007 error: /);
      assert.match(refused.stderr, /refusing to start/);
      assert.deepEqual(await leftBehind(database), nothing);
      assert.ok(!existsSync(path.join(database.dataDir, 'bootstrap-password')), 'no password file');

      const serve = await startOnFreePort(async (port) => {
        const started = startCli(
          ['serve'],
          production(database, {
            AA_OIDC_PORT: String(port),
            AA_OIDC_TRUST_PROXY: 'true',
            AA_OIDC_SECRET_KEY: 'another secret key, chosen with the fix',
          }),
        );
        await started.waitFor(/"aa-oidc listening"/);
        return started;
      });
      try {
        await serve.waitFor(/aa-oidc user set-password \S+\n/);
      } finally {
        assert.equal(await serve.stop(), 0, serve.stderr());
      }
      assert.doesNotMatch(serve.stderr(), /W011/, 'the start made its active key before the findings');
      const started = await leftBehind(database);
      assert.equal(started.signingKeys, 2, 'the active key and the next key');
      assert.equal(started.directoryBinding, 1);
      assert.equal(started.superuser, true);
    } finally {
      await database.drop();
    }
  });

  it('worker refused by E006 leaves nothing, and the fixed start with another secret key starts', async () => {
    const database = await createTestDatabase({ migrated: true });
    try {
      const internal = production(database, { AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS: 'true' });
      const created = await cli(
        [
          'app',
          'create',
          '--name',
          'Internal RP',
          '--client-id',
          'internal-rp',
          '--redirect-uri',
          'https://rp.example.org/cb',
          '--backchannel-logout-uri',
          'https://10.1.2.3/bcl',
        ],
        { ...internal, AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS_IN_PRODUCTION: 'true' },
      );
      assert.equal(created.code, 0, created.stderr);
      const refused = await cli(['worker'], internal);
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, /E006 error: /);
      assert.deepEqual(await leftBehind(database), nothing);

      const worker = startCli(['worker'], {
        ...internal,
        AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS_IN_PRODUCTION: 'true',
        AA_OIDC_SECRET_KEY: 'another secret key, chosen with the fix',
      });
      try {
        await worker.waitFor(/back-channel logout worker \(/);
      } finally {
        assert.equal(await worker.stop(), 0, worker.stderr());
      }
      const started = await leftBehind(database);
      assert.equal(started.signingKeys, 2, 'the active key and the next key');
      assert.equal(started.directoryBinding, 1);
    } finally {
      await database.drop();
    }
  });

  it('a development serve refused by E004 opens no database: no SQLite file, no migration applied', async () => {
    const database = await createTestDatabase();
    try {
      const refused = await cli(
        ['serve'],
        testEnv(database, { AA_OIDC_PORT: '0', AA_OIDC_OIDC_SCOPES: 'profile,email' }),
      );
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(
        refused.stderr,
        /^E004 error: the configured scopes \(profile, email\) lack openid\n {2}hint: add openid to AA_OIDC_OIDC_SCOPES$/m,
      );
      assert.match(refused.stderr, /refusing to start/);
      if (testDatabaseKind === 'sqlite')
        assert.ok(!existsSync(new URL(database.url).pathname), 'no SQLite file');
      else {
        const handle = connect(database);
        try {
          assert.deepEqual(await handle.db.introspection.getTables(), [], 'no table');
        } finally {
          await handle.close();
        }
      }
    } finally {
      await database.drop();
    }
  });

  /**
   * Two first starts at once, each with its own directory: both read no binding and pass their
   * checks; the binding recorded first is the database's, and the other start must not serve under
   * its own directory. Here the other start's record lands as this one writes its own: a trigger
   * records an Alliance Auth database's as this start inserts the built-in directory's.
   */
  it('serve and worker whose binding another start recorded meanwhile for another directory refuse (E010), and write no signing key', async () => {
    const database = await createTestDatabase({ migrated: true });
    const identity = 'contenttypes.0001_initial applied 2027-01-02 03:04:05.000006 UTC';
    const otherStart = `insert into directory_binding (id, directory, identity, bound_at) values (1, 'alliance-auth', '${identity}', 1798000000000)`;
    const env = production(database, { AA_OIDC_PORT: '0', AA_OIDC_TRUST_PROXY: 'true' });
    const handle = connect(database);
    /** Starts `command` on a database with no binding recorded; it must end, refused, not run. */
    const refusedStart = async (command: 'serve' | 'worker') => {
      await handle.db.deleteFrom('directory_binding').execute();
      const started = startCli([command], env);
      try {
        const outcome = await Promise.race([
          started.exited,
          started.waitFor(/server on|logout worker \(/).then(() => 'started'),
        ]);
        assert.equal(outcome, 1, `${command} is refused: ${started.stdout()}${started.stderr()}`);
      } finally {
        await started.stop();
      }
      assert.match(
        started.stderr(),
        /^E010 error: this database's user ids belong to the Alliance Auth database whose first migration is contenttypes\.0001_initial applied 2027-01-02 03:04:05\.000006 UTC \(bound 2026-12-23T04:26:40\.000Z\), but the configured directory is the built-in directory:/m,
        command,
      );
      assert.match(started.stderr(), /refusing to start/, command);
    };
    try {
      if (testDatabaseKind === 'sqlite')
        await sql
          .raw(
            `create trigger other_start_binds before insert on directory_binding when new.directory = 'builtin' begin ${otherStart}; end`,
          )
          .execute(handle.db);
      else {
        await sql
          .raw(
            `create function other_start_binds() returns trigger language plpgsql as $$ begin if new.directory = 'builtin' then ${otherStart}; end if; return new; end $$`,
          )
          .execute(handle.db);
        await sql
          .raw(
            'create trigger other_start_binds before insert on directory_binding for each row execute function other_start_binds()',
          )
          .execute(handle.db);
      }
      // On a first start, refused before the signing key: the next start (with its own secret key
      // too) is a first start again.
      await refusedStart('serve');
      assert.deepEqual(await leftBehind(database), { signingKeys: 0, directoryBinding: 1, superuser: false });
      // On a database that has its signing keys already.
      await handle.db.deleteFrom('directory_binding').execute();
      const rotated = await cli(['keys', 'rotate'], env);
      assert.equal(rotated.code, 0, rotated.stderr);
      await refusedStart('serve');
      await refusedStart('worker');
      assert.equal((await readDirectoryBinding(handle.db))?.directory, 'alliance-auth');
    } finally {
      await handle.close();
      await database.drop();
    }
  });
});
