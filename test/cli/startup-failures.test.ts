import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import Sqlite from 'better-sqlite3';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { listenFailure } from '../../src/cli/commands/serve.ts';
import { loadConfig } from '../../src/config/load.ts';
import pg from 'pg';
import { connectDatabase, QUERY_TIMEOUT_MS } from '../../src/db/connect.ts';
import { pgDumpCommand } from '../../src/db/backup.ts';
import { DatabaseUnavailableError, isDatabaseUnavailable, lockWaitFailure } from '../../src/db/errors.ts';
import { loopbackCertificate } from '../helpers/certificate.ts';
import { AA_OIDC_BIN, runToEnd, startChild } from '../helpers/child-process.ts';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase, reachablePostgres, type TestDatabase } from '../helpers/database.ts';
import { refusedPort } from '../helpers/refused-port.ts';
import {
  asRoot,
  DROP_TO_NOBODY,
  migratedSqliteEnv,
  unprivilegedCommand,
  whyNobodyCannotRun,
} from '../helpers/unprivileged.ts';

/** A loopback server giving each connection to `onSocket`; `close` ends it and every connection. */
async function loopbackServer(
  onSocket: (socket: net.Socket) => void,
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

/** A loopback server that accepts connections and never says a word (a hung database). */
function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  return loopbackServer((socket) => socket.resume());
}

/**
 * A loopback "PostgreSQL" that accepts TLS (it answers a client's SSLRequest with `S`) and presents
 * the certificate `certFile`, then says nothing: enough for a client to judge the certificate.
 */
function tlsOnlyServer(certFile: string, keyFile: string): Promise<{ port: number; close(): Promise<void> }> {
  const [cert, key] = [readFileSync(certFile), readFileSync(keyFile)];
  return loopbackServer((socket) => {
    socket.on('error', () => undefined);
    // The SSLRequest: 8 bytes (its length, then the code 80877103).
    socket.once('data', () => {
      socket.write('S');
      new tls.TLSSocket(socket, { isServer: true, cert, key }).on('error', () => undefined);
    });
  });
}

async function connectFailure(url: string, connectTimeoutMs?: number): Promise<string> {
  const target = loadConfig({ env: {}, overrides: { databaseUrl: url, secretKey: 'k'.repeat(32) } }).database;
  const error = await connectDatabase(
    target,
    connectTimeoutMs === undefined ? {} : { connectTimeoutMs },
  ).then(
    () => assert.fail('connected'),
    (failure: unknown) => failure,
  );
  assert.ok(error instanceof DatabaseUnavailableError, String(error));
  return error.message;
}

describe('a database that cannot be used stops a command with a message saying what to fix', () => {
  let folder: string;
  before(() => {
    folder = mkdtempSync(path.join(tmpdir(), 'aa-oidc-failures-'));
  });
  after(() => rmSync(folder, { recursive: true, force: true }));

  it('waits 5 s by default for PostgreSQL to answer a new connection (AA_OIDC_DATABASE_CONNECT_TIMEOUT_MS)', () => {
    const config = loadConfig({ env: { AA_OIDC_SECRET_KEY: 'k'.repeat(32) } });
    assert.equal(config.databaseConnectTimeoutMs, 5000);
    const configured = loadConfig({
      env: { AA_OIDC_SECRET_KEY: 'k'.repeat(32), AA_OIDC_DATABASE_CONNECT_TIMEOUT_MS: '1500' },
    });
    assert.equal(configured.databaseConnectTimeoutMs, 1500);
  });

  it('names the host and port of a PostgreSQL that accepts connections but never answers, never the password', async () => {
    const silent = await silentServer();
    try {
      const message = await connectFailure(
        `postgres://aa_oidc:hunter2-secret@127.0.0.1:${silent.port}/aa_oidc`,
        300,
      );
      assert.equal(
        message,
        `cannot connect to PostgreSQL at 127.0.0.1:${silent.port} (database aa_oidc) (AA_OIDC_DATABASE_URL): ` +
          'no answer within 0.3 s; check that the server runs and that the host and port are right ' +
          '(the limit is AA_OIDC_DATABASE_CONNECT_TIMEOUT_MS)',
      );
    } finally {
      await silent.close();
    }
  });

  it('says a refused connection is refused', async () => {
    const refused = await refusedPort();
    try {
      const { port } = refused;
      const message = await connectFailure(`postgres://aa_oidc@127.0.0.1:${port}/aa_oidc`);
      assert.equal(
        message,
        `cannot connect to PostgreSQL at 127.0.0.1:${port} (database aa_oidc) (AA_OIDC_DATABASE_URL): ` +
          'connection refused; is PostgreSQL running and listening on that address?',
      );
    } finally {
      refused.close();
    }
  });

  it('names the Unix socket it tried, for a socket folder given either way, and says none is there', async () => {
    // A fresh folder: no server's socket in it, so the connection fails at once.
    const sockets = mkdtempSync(path.join(folder, 'sockets-'));
    for (const url of [
      `postgres://aa_oidc@/aa_oidc?host=${sockets}`,
      `postgres:///aa_oidc?host=${encodeURIComponent(sockets)}&port=6432`,
    ]) {
      const port = url.includes('port=6432') ? 6432 : 5432;
      const error = await connectDatabase(
        loadConfig({ env: {}, overrides: { databaseUrl: url, secretKey: 'k'.repeat(32) } }).database,
      ).then(
        () => assert.fail('connected'),
        (failure: unknown) => failure,
      );
      assert.ok(error instanceof DatabaseUnavailableError, String(error));
      assert.equal(
        error.message,
        `cannot connect to PostgreSQL at the Unix socket ${sockets}/.s.PGSQL.${port} (database aa_oidc) (AA_OIDC_DATABASE_URL): ` +
          `no such socket; is PostgreSQL running, and is ${sockets} one of its unix_socket_directories (and ${port} its port)? ` +
          'Otherwise fix the host in AA_OIDC_DATABASE_URL',
      );
      // Met later, while serving (the server stopped, removing its socket): a 503, not a 500.
      assert.ok(isDatabaseUnavailable(error.cause), String(error.cause));
    }
    assert.equal(
      pgDumpCommand(`postgres://aa_oidc@/aa_oidc?host=${sockets}`),
      `pg_dump --format=custom --host=${sockets} --port=5432 --username=aa_oidc --file=aa-oidc-$(date +%F).dump aa_oidc`,
    );
  });

  it('names the certificate file a PostgreSQL URL names and the driver cannot read when connecting', async () => {
    // Refused at configuration load too: here the file went missing after it (or the URL came
    // from elsewhere).
    const missing = path.join(folder, 'gone', 'ca.pem');
    const error = await connectDatabase({
      kind: 'postgres',
      url: `postgres://aa_oidc@127.0.0.1/aa_oidc?sslmode=verify-full&sslrootcert=${missing}`,
    }).then(
      () => assert.fail('connected'),
      (failure: unknown) => failure,
    );
    assert.ok(error instanceof DatabaseUnavailableError, String(error));
    assert.equal(
      error.message,
      'cannot connect to PostgreSQL at 127.0.0.1:5432 (database aa_oidc) (AA_OIDC_DATABASE_URL): ' +
        `cannot read ${missing} (sslrootcert): no such file; name a PEM file holding the certificate of the ` +
        "authority that issued the server's certificate (a relative path starts from the working directory)",
    );
  });

  it('says which sslmode checks a refused certificate as the driver reads the URL, with and without uselibpqcompat=true', async () => {
    const served = loopbackCertificate(folder, 'served-');
    // An authority that did not issue the served certificate.
    const other = loopbackCertificate(folder, 'other-');
    const server = await tlsOnlyServer(served.certFile, served.keyFile);
    try {
      const untrusted = (url: string) =>
        connectFailure(`postgres://aa_oidc@127.0.0.1:${server.port}/aa_oidc?${url}`);
      const start =
        `cannot connect to PostgreSQL at 127.0.0.1:${server.port} (database aa_oidc) (AA_OIDC_DATABASE_URL): ` +
        "the server's TLS certificate is not trusted (";
      const where =
        '); give the certificate of its authority in AA_OIDC_DATABASE_URL (sslmode=verify-full&sslrootcert=/path/to/ca.pem). ';
      const libpq =
        'With uselibpqcompat=true, node-postgres checks the authority that issued the certificate for ' +
        'sslmode=verify-ca, and for sslmode=require with sslrootcert (verify-full checks the host name too)';
      const cases: Array<[string, string]> = [
        ['sslmode=require', 'node-postgres checks the certificate for sslmode=require as for verify-full'],
        ['uselibpqcompat=true&sslmode=verify-full', libpq],
        [`uselibpqcompat=true&sslmode=require&sslrootcert=${other.certFile}`, libpq],
        [`uselibpqcompat=true&sslmode=verify-ca&sslrootcert=${other.certFile}`, libpq],
        // The driver acts on the last value.
        [
          'uselibpqcompat=true&uselibpqcompat=false&sslmode=verify-full',
          'node-postgres checks the certificate for sslmode=require as for verify-full',
        ],
      ];
      for (const [parameters, note] of cases) {
        const message = await untrusted(parameters);
        assert.ok(message.startsWith(start), `${parameters}: ${message}`);
        assert.ok(message.endsWith(`${where}${note}`), `${parameters}: ${message}`);
      }
    } finally {
      await server.close();
    }
  });

  it('names the SQLite file that is not a database', async () => {
    const file = path.join(folder, 'notes.txt');
    writeFileSync(file, 'these are not the pages you are looking for '.repeat(100));
    const message = await connectFailure(`sqlite:${file}`);
    assert.equal(
      message,
      `cannot open the SQLite file ${file}: file is not a database; the file is not an SQLite database`,
    );
  });

  it('says what may hold the write lock of an SQLite file another process keeps locked', async () => {
    const file = path.join(folder, 'locked.sqlite');
    const env = await migratedSqliteEnv(file, path.join(folder, 'locked-data'));
    const holder = new Sqlite(file);
    holder.exec('begin immediate');
    try {
      const serve = await runToEnd(process.execPath, [AA_OIDC_BIN, 'serve'], { env });
      assert.equal(serve.code, 1, serve.stdout);
      assert.equal(
        serve.stderr,
        `aa-oidc: cannot open the SQLite file ${file} (AA_OIDC_DATABASE_URL): database is locked: another ` +
          'process held its write lock longer than 5 s (another aa-oidc serve, worker or migrate on this ' +
          'file, a backup, an sqlite3 shell inside a transaction); let it finish or stop it, then start again\n',
      );
    } finally {
      holder.close();
    }
  });

  it('names the SQLite file and what may hold its write lock when a command waits too long for it', async () => {
    const file = path.join(folder, 'busy.sqlite');
    const env = await migratedSqliteEnv(file, path.join(folder, 'busy-data'));
    const holder = new Sqlite(file);
    holder.exec('begin immediate');
    try {
      const run = await cli(['state', 'create', 'Blue', '--priority', '50'], env);
      assert.equal(run.code, 1, run.stdout);
      assert.equal(
        run.stderr,
        `aa-oidc: cannot write the SQLite file ${file}: another process held its write lock longer than 5 s ` +
          '(aa-oidc serve, worker or migrate on this file, a backup, an sqlite3 shell inside a transaction); ' +
          'let it finish, then run the command again\n',
      );
    } finally {
      holder.close();
    }
  });

  it('says what a PostgreSQL statement that ran out of time was probably waiting for', async (t) => {
    const postgres = await reachablePostgres();
    if ('missing' in postgres) {
      t.skip(postgres.missing);
      return;
    }
    const database = await createTestDatabase({ migrated: true, postgresUrl: postgres.url });
    const holder = new pg.Client({ connectionString: database.url });
    // The client's own time limit, as every command's (QUERY_TIMEOUT_MS), only shorter.
    const waiter = new pg.Client({ connectionString: database.url, query_timeout: 300 });
    try {
      await holder.connect();
      await waiter.connect();
      await holder.query('begin');
      await holder.query('lock table state in access exclusive mode');
      const error = await waiter.query('select count(*) from state').then(
        () => assert.fail('the lock did not hold'),
        (failure: unknown) => failure,
      );
      // Only the client's time limit should end the wait; any other end (the server ending the
      // session, a lock_timeout set on the server) is named here instead of surfacing below as
      // `undefined`, which would hide what happened.
      assert.equal((error as Error).message, 'Query read timeout', String(error));
      const { hostname, port, pathname } = new URL(database.url);
      const described = `PostgreSQL at ${hostname}:${port} (database ${pathname.slice(1)})`;
      assert.equal(
        lockWaitFailure(described, error, QUERY_TIMEOUT_MS)?.message,
        `${described} did not answer within 60 s: another session probably holds a lock this command needs ` +
          '(a long transaction, a migration, an open psql session: pg_stat_activity shows it), or the ' +
          'connection went silent; let it finish, then run the command again',
      );
      assert.equal(lockWaitFailure(described, new Error('syntax error'), QUERY_TIMEOUT_MS), undefined);
    } finally {
      await holder.end().catch(() => undefined);
      await waiter.end().catch(() => undefined);
      await database.drop();
    }
  });

  it('refuses a PostgreSQL older than 13, naming its version and the minimum, at check as at every command', async (t) => {
    const postgres = await reachablePostgres();
    if ('missing' in postgres) {
      t.skip(postgres.missing);
      return;
    }
    const database = await createTestDatabase({ migrated: true, postgresUrl: postgres.url });
    try {
      // No PostgreSQL 12 to install here: the database answers version() as one does. With
      // pg_catalog last in the search path, public's version() is the one a bare call finds.
      const owner = new pg.Client({ connectionString: database.url });
      await owner.connect();
      try {
        await owner.query(
          "create function public.version() returns text language sql as $$ select 'PostgreSQL 12.22 (Debian 12.22-1.pgdg120+1) on x86_64-pc-linux-gnu, compiled by gcc, 64-bit'::text $$",
        );
        await owner.query(
          `alter database ${new URL(database.url).pathname.slice(1)} set search_path = public, pg_catalog`,
        );
      } finally {
        await owner.end();
      }
      const { hostname, port, pathname } = new URL(database.url);
      const refusal =
        `cannot use PostgreSQL at ${hostname}:${port} (database ${pathname.slice(1)}) (AA_OIDC_DATABASE_URL): ` +
        'the server is PostgreSQL 12.22, older than aa-oidc supports: it needs PostgreSQL 13 or newer ' +
        "(its change log and pg-boss's job queue use PostgreSQL 13's functions); upgrade the server first";
      assert.equal(await connectFailure(database.url), refusal);
      // check tells it as a finding (E009 of aa-oidc's database), as JSON with --format json too.
      const run = await cli(['check', '--format', 'json'], testEnv(database));
      assert.deepEqual([run.code, run.stderr], [1, 'aa-oidc: system check found 1 error(s): E009\n']);
      const [unread, ...rest] = JSON.parse(run.stdout) as Array<{ id: string; message: string }>;
      assert.deepEqual(rest, []);
      assert.equal(unread!.id, 'E009');
      assert.ok(unread!.message.endsWith(`: ${refusal}`), unread!.message);
    } finally {
      await database.drop();
    }
  });

  it('never creates a missing SQLite file (nor its folder) for a command other than migrate, naming it', async () => {
    const file = path.join(folder, 'mistyped', 'aa-oidc.sqlite');
    const missing: TestDatabase = {
      kind: 'sqlite',
      url: `sqlite:${file}`,
      dataDir: folder,
      drop: async () => {},
    };
    const env = testEnv(missing);
    for (const args of [
      ['user', 'list'],
      ['app', 'list', '--format', 'json'],
      ['keys', 'list'],
      ['worker'],
      ['backup', '--to', path.join(folder, 'copy.sqlite')],
    ]) {
      const result = await cli(args, env);
      assert.equal(result.code, 1, `aa-oidc ${args.join(' ')}: ${result.stderr}`);
      assert.equal(result.stdout, '');
      assert.equal(
        result.stderr,
        `aa-oidc: the SQLite file ${file} (AA_OIDC_DATABASE_URL) does not exist; check AA_OIDC_DATABASE_URL, or create the database with \`aa-oidc migrate\`\n`,
      );
      assert.equal(existsSync(path.dirname(file)), false, `aa-oidc ${args.join(' ')} made the folder`);
      assert.equal(existsSync(path.join(folder, 'copy.sqlite')), false);
    }
  });

  it('names the SQLite file whose folder cannot be made', async () => {
    const blocker = path.join(folder, 'a-file');
    writeFileSync(blocker, '');
    const file = path.join(blocker, 'aa-oidc.sqlite');
    const message = await connectFailure(`sqlite:${file}`);
    assert.ok(message.startsWith(`cannot open the SQLite file ${file}: `), message);
    assert.match(message, /EEXIST|ENOTDIR/);
  });

  it('names the SQLite file the process may not write', async (t) => {
    // A folder of root's (or of this user's) that the command may read but not write; as root the
    // command runs as nobody.
    const unreachable = asRoot ? whyNobodyCannotRun() : undefined;
    if (unreachable) {
      t.skip(unreachable);
      return;
    }
    const locked = path.join(folder, 'locked');
    mkdirSync(locked);
    chmodSync(folder, 0o755);
    chmodSync(locked, asRoot ? 0o755 : 0o555);
    const file = path.join(locked, 'aa-oidc.sqlite');
    const run = await runToEnd(
      process.execPath,
      [...(asRoot ? [DROP_TO_NOBODY] : []), AA_OIDC_BIN, 'migrate'],
      {
        env: {
          PATH: process.env.PATH,
          AA_OIDC_DATABASE_URL: `sqlite:${file}`,
          AA_OIDC_SECRET_KEY: 'k'.repeat(32),
        },
      },
    );
    assert.equal(run.code, 1);
    assert.equal(
      run.stderr,
      `aa-oidc: cannot open the SQLite file ${file}: unable to open database file; ` +
        'check that its folder exists and that this user may write there (SQLite also writes -wal and -shm files beside it)\n',
    );
  });
});

describe('a config file the command cannot read', () => {
  let folder: string;
  before(() => {
    folder = mkdtempSync(path.join(tmpdir(), 'aa-oidc-config-file-'));
    chmodSync(folder, 0o755);
  });
  after(() => rmSync(folder, { recursive: true, force: true }));

  it('says what is wrong with it and what to do, naming AA_OIDC_CONFIG, without a stack trace', async (t) => {
    const env = { PATH: process.env.PATH, AA_OIDC_SECRET_KEY: 'k'.repeat(32) };
    const missing = await runToEnd(process.execPath, [AA_OIDC_BIN, 'check'], {
      env: { ...env, AA_OIDC_CONFIG: path.join(folder, 'missing.yaml') },
    });
    assert.deepEqual(
      [missing.code, missing.stderr],
      [
        2,
        `aa-oidc: configuration error: AA_OIDC_CONFIG: cannot read ${path.join(folder, 'missing.yaml')}: no such file; name a YAML or JSON file (a relative path starts from the working directory), or unset AA_OIDC_CONFIG\n`,
      ],
    );
    // Set but empty (a unit's variable that expanded to nothing): not read as unset.
    const empty = await runToEnd(process.execPath, [AA_OIDC_BIN, 'check'], {
      env: { ...env, AA_OIDC_CONFIG: '' },
    });
    assert.deepEqual(
      [empty.code, empty.stderr],
      [
        2,
        'aa-oidc: configuration error: AA_OIDC_CONFIG: set but empty; name the config file (a YAML or JSON file, like /etc/aa-oidc/config.yaml; a relative path starts from the working directory), or unset AA_OIDC_CONFIG to use none\n',
      ],
    );
    const directory = await runToEnd(process.execPath, [AA_OIDC_BIN, 'check'], {
      env: { ...env, AA_OIDC_CONFIG: folder },
    });
    assert.deepEqual(
      [directory.code, directory.stderr],
      [
        2,
        `aa-oidc: configuration error: AA_OIDC_CONFIG: cannot read ${folder}: it is a directory; name a YAML or JSON file\n`,
      ],
    );
    // A file of root's (or of this user's) kept from the command: as root the command runs as nobody.
    const unreachable = asRoot ? whyNobodyCannotRun() : undefined;
    if (unreachable) {
      t.skip(unreachable);
      return;
    }
    const file = path.join(folder, 'config.yaml');
    writeFileSync(file, 'port: 8100\n');
    chmodSync(file, asRoot ? 0o600 : 0o000);
    const locked = await runToEnd(process.execPath, unprivilegedCommand(['check']), {
      env: { ...env, AA_OIDC_CONFIG: file },
    });
    assert.deepEqual(
      [locked.code, locked.stderr],
      [
        2,
        `aa-oidc: configuration error: AA_OIDC_CONFIG: cannot read ${file}: permission denied; let the user aa-oidc runs as read it (like mode 0640, owner root, group aa-oidc)\n`,
      ],
    );
  });
});

/**
 * A migrated SQLite file the command may read but not write, in a folder it may write (SQLite creates
 * its -wal and -shm files there): the file is root's, 0644, and the command runs as nobody when the
 * tests run as root (file modes do not stop root); else the file is this user's, 0444.
 */
async function readOnlySqlite(folder: string): Promise<{ file: string; env: NodeJS.ProcessEnv }> {
  chmodSync(folder, 0o755);
  const dataDir = path.join(folder, 'data');
  mkdirSync(dataDir);
  chmodSync(dataDir, 0o777);
  const file = path.join(dataDir, 'aa-oidc.sqlite');
  const env = await migratedSqliteEnv(file, dataDir);
  chmodSync(file, asRoot ? 0o644 : 0o444);
  return { file, env };
}

describe('an SQLite file the process may not write stops serve and every writing command, naming the file', () => {
  let folder: string;
  let file: string;
  let env: NodeJS.ProcessEnv;
  const unreachable = asRoot ? whyNobodyCannotRun() : undefined;
  before(async () => {
    folder = mkdtempSync(path.join(tmpdir(), 'aa-oidc-read-only-'));
    ({ file, env } = await readOnlySqlite(folder));
  });
  after(() => rmSync(folder, { recursive: true, force: true }));

  const refusal = () =>
    `aa-oidc: cannot write the SQLite file ${file}: this user (${asRoot ? 'nobody' : userInfo().username}) may not write it; ` +
    'give this user write access to the file and to its folder (SQLite also writes -wal and -shm files beside it)\n';

  it(
    'serve refuses to start instead of reporting ready and answering 503 to every sign-in',
    { skip: unreachable },
    async () => {
      const serve = startChild(process.execPath, unprivilegedCommand(['serve']), { env });
      const started = await serve.waitFor(/ server on http:\/\//).then(
        () => true,
        () => false,
      );
      if (started) await serve.stop('SIGTERM');
      assert.equal(started, false, `serve started on a read-only database:\n${serve.stdout()}`);
      assert.equal(await serve.exited, 1);
      assert.equal(serve.stderr(), refusal());
    },
  );

  it(
    'migrate and writing commands say so; a dry run and reading commands still work',
    { skip: unreachable },
    async () => {
      for (const args of [['migrate'], ['keys', 'rotate'], ['worker']]) {
        const run = await runToEnd(process.execPath, unprivilegedCommand(args), { env });
        assert.deepEqual([run.code, run.stderr], [1, refusal()], args.join(' '));
      }
      for (const args of [
        ['migrate', '--dry-run'],
        ['user', 'list'],
      ]) {
        const run = await runToEnd(process.execPath, unprivilegedCommand(args), { env });
        assert.equal(run.code, 0, `${args.join(' ')}: ${run.stderr}`);
      }
    },
  );
});

describe('aa-oidc serve, when it cannot start, says why in one line', () => {
  let database: TestDatabase;
  const blockers: net.Server[] = [];
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => {
    for (const blocker of blockers) blocker.close();
    await database.drop();
  });

  const env = (extra: Record<string, string>) =>
    testEnv(database, { AA_OIDC_HOST: '127.0.0.1', AA_OIDC_METRICS_ENABLED: 'false', ...extra });

  it('names AA_OIDC_PORT when the port is in use', async () => {
    const blocker = net.createServer();
    blockers.push(blocker);
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as net.AddressInfo;
    const run = await cli(['serve'], env({ AA_OIDC_PORT: String(port) }));
    assert.equal(run.code, 1);
    assert.equal(
      run.stderr,
      `aa-oidc: cannot listen on 127.0.0.1:${port}: the port is already in use (by another aa-oidc or another program); ` +
        'stop that or choose another port with AA_OIDC_PORT\n',
    );
  });

  it('names AA_OIDC_PORT when the port needs privileges', async (t) => {
    const unprivilegedFrom = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8'));
    if (unprivilegedFrom <= 1) {
      t.skip('this kernel lets any user bind low ports (net.ipv4.ip_unprivileged_port_start)');
      return;
    }
    // As root, the server runs as nobody, on an SQLite file of its own.
    const unreachable = asRoot ? whyNobodyCannotRun() : undefined;
    if (unreachable) {
      t.skip(unreachable);
      return;
    }
    const dataDir = path.join(database.dataDir, 'nobody');
    chmodSync(database.dataDir, 0o711);
    mkdirSync(dataDir);
    chmodSync(dataDir, 0o777);
    const run = await runToEnd(
      process.execPath,
      [...(asRoot ? [DROP_TO_NOBODY] : []), AA_OIDC_BIN, 'serve'],
      {
        env: env({
          AA_OIDC_PORT: '1',
          AA_OIDC_DATA_DIR: dataDir,
          AA_OIDC_DATABASE_URL: `sqlite:${dataDir}/aa-oidc.sqlite`,
        }),
      },
    );
    assert.equal(run.code, 1, run.stderr);
    assert.equal(
      run.stderr,
      'aa-oidc: cannot listen on 127.0.0.1:1: permission denied, ports below 1024 need privileges; ' +
        'choose a port from 1024 up with AA_OIDC_PORT and let the reverse proxy listen on 80 and 443\n',
    );
  });

  it('names AA_OIDC_HOST when the address is not one of this machine, or may not be used', () => {
    // Binding an address this machine lacks needs a lookup the network guard refuses, so the
    // translation of the bind error is checked directly, with the configuration serve would have.
    const config = loadConfig({
      env: { AA_OIDC_HOST: '192.0.2.1', AA_OIDC_PORT: '8000', AA_OIDC_SECRET_KEY: 'k'.repeat(32) },
    });
    const failure = (code: string) =>
      listenFailure(Object.assign(new Error(`listen ${code}`), { code }), config).message;
    assert.equal(
      failure('EADDRNOTAVAIL'),
      'cannot listen on 192.0.2.1:8000: 192.0.2.1 is not an address of this machine; fix AA_OIDC_HOST',
    );
    assert.equal(
      failure('EACCES'),
      'cannot listen on 192.0.2.1:8000: permission denied; choose another port with AA_OIDC_PORT or another address with AA_OIDC_HOST',
    );
  });

  it('stops with the database address when PostgreSQL never answers, instead of hanging', async () => {
    const silent = await silentServer();
    try {
      const run = await cli(
        ['serve'],
        env({
          AA_OIDC_PORT: '0',
          AA_OIDC_DATABASE_URL: `postgres://aa_oidc:hunter2-secret@127.0.0.1:${silent.port}/aa_oidc`,
          AA_OIDC_DATABASE_CONNECT_TIMEOUT_MS: '500',
        }),
      );
      assert.equal(run.code, 1);
      assert.equal(
        run.stderr,
        `aa-oidc: cannot connect to PostgreSQL at 127.0.0.1:${silent.port} (database aa_oidc) (AA_OIDC_DATABASE_URL): ` +
          'no answer within 0.5 s; check that the server runs and that the host and port are right ' +
          '(the limit is AA_OIDC_DATABASE_CONNECT_TIMEOUT_MS)\n',
      );
      assert.ok(!`${run.stdout}${run.stderr}`.includes('hunter2'));
    } finally {
      await silent.close();
    }
  });
});
