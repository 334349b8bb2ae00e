import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe } from 'node:test';
import { fileURLToPath } from 'node:url';
import argon2 from 'argon2';
import { Kysely, MysqlDialect, PostgresDialect, sql } from 'kysely';
import { createConnection, createPool } from 'mysql2';
import { createConnection as createPromiseConnection } from 'mysql2/promise';
import pg from 'pg';
import type { AllianceAuthDatabase } from '../../src/alliance-auth/schema.ts';

/**
 * Fresh copies of the Alliance Auth 4.1 fixture (`../shared/fixtures/alliance-auth/`, made by AA's
 * own migrations and models) in MariaDB and PostgreSQL, one database per test, with a SELECT-only
 * login for aa-oidc, as the operator would create it, and an owner login that plays Alliance Auth
 * itself (the SQL AA's own code runs when something changes).
 *
 * Servers: `AA_OIDC_TEST_MARIADB_URL` (default mysql://root@127.0.0.1:3306/) and
 * `AA_OIDC_TEST_AA_POSTGRES_URL` (default: AA_OIDC_TEST_DATABASE_URL, else
 * postgres://postgres@127.0.0.1:5432/postgres). A server that does not answer skips the tests with
 * the reason; under AA_OIDC_REQUIRE_E2E=1 (CI) it fails them.
 */
export type AllianceAuthKind = 'mysql' | 'postgres';
export const ALLIANCE_AUTH_KINDS: readonly AllianceAuthKind[] = ['mysql', 'postgres'];

const REPOSITORY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * The fixture folder: `AA_OIDC_TEST_AA_FIXTURES`, else `shared/fixtures/alliance-auth` beside the
 * repository or one level further up (a clone next to `shared/`, or a worktree under a folder there).
 */
export const FIXTURE_DIR =
  process.env.AA_OIDC_TEST_AA_FIXTURES ??
  [
    path.resolve(REPOSITORY, '../shared/fixtures/alliance-auth'),
    path.resolve(REPOSITORY, '../../shared/fixtures/alliance-auth'),
  ].find((candidate) => existsSync(path.join(candidate, 'expected.json'))) ??
  path.resolve(REPOSITORY, '../shared/fixtures/alliance-auth');

export const FIXTURE_PASSWORD = 'Correct-Horse-9-battery';

const MARIADB_URL = process.env.AA_OIDC_TEST_MARIADB_URL ?? 'mysql://root@127.0.0.1:3306/';
const POSTGRES_URL =
  process.env.AA_OIDC_TEST_AA_POSTGRES_URL ??
  process.env.AA_OIDC_TEST_DATABASE_URL ??
  'postgres://postgres@127.0.0.1:5432/postgres';

export function kindLabel(kind: AllianceAuthKind): string {
  return kind === 'mysql' ? 'MariaDB' : 'PostgreSQL';
}

/**
 * One suite per database kind, titled by `title(label)`; a kind whose server does not answer is
 * skipped with the reason (failed under AA_OIDC_REQUIRE_E2E=1).
 */
export async function describeOnEachAllianceAuth(
  title: (database: string) => string,
  suite: (kind: AllianceAuthKind) => void,
): Promise<void> {
  for (const kind of ALLIANCE_AUTH_KINDS) {
    const skip = await allianceAuthUnavailable(kind);
    describe(title(kindLabel(kind)), { skip }, () => suite(kind));
  }
}

/** Where the tests' Alliance Auth sends people to sign in (never contacted). */
export const AA_LOGIN_URL = 'https://auth.example.org/account/login/';

/** The `directory` configuration of a test server whose directory is Alliance Auth at `databaseUrl`. */
export function allianceAuthDirectory(
  databaseUrl: string,
  settings: { passwordLogin?: boolean; pollSeconds?: number; statementTimeoutSeconds?: number } = {},
) {
  return { source: 'alliance-auth', allianceAuth: { databaseUrl, loginUrl: AA_LOGIN_URL, ...settings } };
}

/** The environment of a CLI run whose directory is Alliance Auth at `databaseUrl`. */
export function allianceAuthEnv(databaseUrl: string, settings: { passwordLogin?: boolean } = {}) {
  return {
    AA_OIDC_DIRECTORY: 'alliance-auth',
    AA_OIDC_AA_DATABASE_URL: databaseUrl,
    AA_OIDC_AA_LOGIN_URL: AA_LOGIN_URL,
    ...(settings.passwordLogin && { AA_OIDC_AA_PASSWORD_LOGIN: 'true' }),
  };
}

/** The data set the fixture was made with (`expected.json`). */
export interface ExpectedFixture {
  password_for_all_users: string;
  migration_heads: Record<string, string>;
  states: Array<{ id: number; name: string; priority: number; grants_oidc: boolean }>;
  groups: Array<{ id: number; name: string; grants_oidc: boolean; members: string[] }>;
  users: Array<{
    id: number;
    username: string;
    email: string;
    is_active: boolean;
    is_superuser: boolean;
    state: { id: number; name: string };
    groups: string[];
    group_ids: number[];
    main_character: null | {
      evecharacter_pk: number;
      character_id: number;
      character_name: string;
      corporation_id: number;
      corporation_name: string;
      corporation_ticker: string;
      alliance_id: number | null;
      alliance_name: string | null;
      alliance_ticker: string | null;
      faction_id: number | null;
      faction_name: string | null;
    };
    characters: Array<{ character_id: number; character_name: string; owner_hash: string; is_main: boolean }>;
    oidc_access: boolean;
    oidc_permission_sources: string[];
  }>;
}

export function expectedFixture(): ExpectedFixture {
  return JSON.parse(readFileSync(path.join(FIXTURE_DIR, 'expected.json'), 'utf8')) as ExpectedFixture;
}

const unavailable = new Map<AllianceAuthKind, Promise<string | false>>();

/**
 * `false` when the server answers and the fixture is readable, otherwise the reason to skip (a string
 * the runner shows). Under AA_OIDC_REQUIRE_E2E=1 a missing server is an error instead.
 */
export function allianceAuthUnavailable(kind: AllianceAuthKind): Promise<string | false> {
  let pending = unavailable.get(kind);
  if (!pending) {
    pending = probe(kind).then((reason) => {
      if (reason && process.env.AA_OIDC_REQUIRE_E2E === '1') {
        throw new Error(`${reason}, and AA_OIDC_REQUIRE_E2E=1 makes that a failure`);
      }
      return reason;
    });
    unavailable.set(kind, pending);
  }
  return pending;
}

/**
 * How long the probe waits for a connection. A server that is down refuses at once; a loaded one (a
 * 2-core machine running the suite, its grants being changed) may take seconds to answer, which is
 * no reason to fail every test of the file.
 */
const PROBE_CONNECT_TIMEOUT_MS = 20_000;

async function probe(kind: AllianceAuthKind): Promise<string | false> {
  try {
    readFileSync(path.join(FIXTURE_DIR, 'expected.json'));
  } catch {
    return `the Alliance Auth fixture is not at ${FIXTURE_DIR} (set AA_OIDC_TEST_AA_FIXTURES)`;
  }
  try {
    if (kind === 'mysql') {
      const connection = await createPromiseConnection({
        uri: MARIADB_URL,
        connectTimeout: PROBE_CONNECT_TIMEOUT_MS,
      });
      await connection.end();
    } else {
      const client = new pg.Client({
        connectionString: POSTGRES_URL,
        connectionTimeoutMillis: PROBE_CONNECT_TIMEOUT_MS,
      });
      await client.connect();
      await client.end();
    }
    return false;
  } catch (error) {
    return `${kindLabel(kind)} for the Alliance Auth tests is unreachable at ${kind === 'mysql' ? MARIADB_URL : POSTGRES_URL} (${(error as Error).message}; .ci/run starts it)`;
  }
}

export interface AllianceAuthTestDatabase {
  kind: AllianceAuthKind;
  /** The database's name. */
  name: string;
  /** The value for AA_OIDC_AA_DATABASE_URL: a login with SELECT only. */
  readerUrl: string;
  /** Alliance Auth's own login: full rights (as a URL for AA_OIDC_AA_DATABASE_URL). */
  ownerUrl: string;
  /** Alliance Auth's own side: full rights, to make the changes AA makes. */
  owner: Kysely<AllianceAuthDatabase>;
  /** Runs one statement as Alliance Auth would (`?` placeholders on both databases). */
  run(statement: string, parameters?: readonly unknown[]): Promise<void>;
  /** A boolean literal for this database (`1`/`0` on MariaDB, `true`/`false` on PostgreSQL). */
  bool(value: boolean): boolean | number;
  drop(): Promise<void>;
}

/** The fixture's SELECT-only login (`readerUrl`'s), as GRANT and REVOKE name it. */
export function readerGrantee(fixture: AllianceAuthTestDatabase): string {
  const name = decodeURIComponent(new URL(fixture.readerUrl).username);
  return fixture.kind === 'mysql' ? `'${name}'@'%'` : name;
}

/** A table of the fixture, as GRANT and REVOKE name it. */
export function grantedTable(fixture: AllianceAuthTestDatabase, table: string): string {
  return fixture.kind === 'mysql' ? `\`${fixture.name}\`.\`${table}\`` : table;
}

/**
 * Makes the reader's SELECT one grant per table (on MariaDB; PostgreSQL's already are), so that a
 * table's grant revoked while a test serves takes effect at once: MariaDB applies a database-wide
 * grant's change to an open connection only at its next USE, a table's at its next statement. Call
 * it before the server connects.
 */
export async function grantReaderPerTable(fixture: AllianceAuthTestDatabase): Promise<void> {
  if (fixture.kind !== 'mysql') return;
  const reader = readerGrantee(fixture);
  const tables = await sql<{ name: string }>`
    select table_name as name from information_schema.tables where table_schema = ${fixture.name}`.execute(
    fixture.owner,
  );
  await fixture.run(`REVOKE SELECT, SHOW VIEW ON \`${fixture.name}\`.* FROM ${reader}`);
  for (const { name } of tables.rows)
    await fixture.run(`GRANT SELECT ON ${grantedTable(fixture, name)} TO ${reader}`);
}

/**
 * Runs `body` while the reader may not SELECT from `table` (a privilege the login lost while
 * serving), and grants it back afterwards, whatever `body` did. On MariaDB, call
 * `grantReaderPerTable` before the server connects, or the revoke does not reach its connections.
 */
export async function withoutReaderSelect<T>(
  fixture: AllianceAuthTestDatabase,
  table: string,
  body: () => Promise<T>,
): Promise<T> {
  const granted = grantedTable(fixture, table);
  const reader = readerGrantee(fixture);
  await fixture.run(`REVOKE SELECT ON ${granted} FROM ${reader}`);
  try {
    return await body();
  } finally {
    await fixture.run(`GRANT SELECT ON ${granted} TO ${reader}`);
  }
}

/**
 * Takes the reader's SELECT on `table` away, as a grant revoked after start-up, keeping its
 * REFERENCES so that the table's columns stay in the information schema and start-up's schema check
 * still passes. Call `grantReaderPerTable` first.
 */
export async function revokeReaderSelectKeepingSchema(
  fixture: AllianceAuthTestDatabase,
  table: string,
): Promise<void> {
  const granted = grantedTable(fixture, table);
  await fixture.run(`REVOKE SELECT ON ${granted} FROM ${readerGrantee(fixture)}`);
  await fixture.run(`GRANT REFERENCES ON ${granted} TO ${readerGrantee(fixture)}`);
}

export interface AllianceAuthFixtureOptions {
  /** Also create the plugin's application tables (`plugin-apps/schema.*.sql`). */
  pluginApps?: boolean;
  /** Another MariaDB server than AA_OIDC_TEST_MARIADB_URL's (one a test started), as its root URL. */
  mariadbUrl?: string;
}

function fixtureText(file: string): string {
  return readFileSync(path.join(FIXTURE_DIR, file), 'utf8');
}

/** A fresh database loaded with the fixture dump, and a SELECT-only login for aa-oidc. */
export async function createAllianceAuthDatabase(
  kind: AllianceAuthKind,
  options: AllianceAuthFixtureOptions = {},
): Promise<AllianceAuthTestDatabase> {
  const suffix = randomBytes(5).toString('hex');
  const name = `aa_fixture_${suffix}`;
  const reader = `aa_reader_${suffix}`;
  const readerPassword = randomBytes(12).toString('hex');
  return kind === 'mysql'
    ? createMariaDb(name, reader, readerPassword, options)
    : createPostgres(name, reader, readerPassword, options);
}

async function createMariaDb(
  name: string,
  reader: string,
  readerPassword: string,
  options: AllianceAuthFixtureOptions,
): Promise<AllianceAuthTestDatabase> {
  const serverUrl = options.mariadbUrl ?? MARIADB_URL;
  const admin = await createPromiseConnection({ uri: serverUrl, multipleStatements: true });
  try {
    await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4`);
    await admin.query(`USE \`${name}\``);
    await admin.query(fixtureText('aa-mariadb.sql'));
    if (options.pluginApps) await admin.query(fixtureText('plugin-apps/schema.mariadb.sql'));
    await admin.query(`CREATE USER '${reader}'@'%' IDENTIFIED BY '${readerPassword}'`);
    await admin.query(`GRANT SELECT, SHOW VIEW ON \`${name}\`.* TO '${reader}'@'%'`);
  } finally {
    await admin.end();
  }
  const server = new URL(serverUrl);
  const ownerUrl = new URL(serverUrl);
  ownerUrl.pathname = `/${name}`;
  const readerUrl = `mysql://${reader}:${readerPassword}@${server.host}/${name}`;
  const owner = new Kysely<AllianceAuthDatabase>({
    dialect: new MysqlDialect({
      pool: createPool({ uri: ownerUrl.toString(), connectionLimit: 2, dateStrings: true }),
    }),
  });
  return {
    kind: 'mysql',
    name,
    readerUrl,
    ownerUrl: ownerUrl.toString(),
    owner,
    async run(statement, parameters = []) {
      await sql.raw(bind(statement, parameters, 'mysql')).execute(owner);
    },
    bool: (value) => (value ? 1 : 0),
    async drop() {
      await owner.destroy();
      const dropper = createConnection({ uri: serverUrl });
      await dropper.promise().query(`DROP DATABASE IF EXISTS \`${name}\``);
      await dropper.promise().query(`DROP USER IF EXISTS '${reader}'@'%'`);
      await dropper.promise().end();
    },
  };
}

/**
 * The fixture loaded once into a template database named after the dump's digest (kept between runs,
 * rebuilt when the dump changes): copying a template takes a fraction of a second, loading the dump
 * several.
 */
let postgresTemplate: Promise<string> | undefined;

function ensurePostgresTemplate(): Promise<string> {
  postgresTemplate ??= (async () => {
    const digest = createHash('sha256').update(fixtureText('aa-postgres.sql')).digest('hex').slice(0, 12);
    const template = `aa_fixture_template_${digest}`;
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    try {
      // Test files run in parallel: one process builds the template, the others wait for it.
      await admin.query('select pg_advisory_lock(724301)');
      const exists = await admin.query('select 1 from pg_database where datname = $1 and datistemplate', [
        template,
      ]);
      if (exists.rowCount === 0) {
        await admin.query(`drop database if exists ${template}`);
        await admin.query(`create database ${template}`);
        const url = new URL(POSTGRES_URL);
        url.pathname = `/${template}`;
        const loader = new pg.Client({ connectionString: url.toString() });
        await loader.connect();
        try {
          await loader.query(fixtureText('aa-postgres.sql'));
        } finally {
          await loader.end();
        }
        await admin.query(`alter database ${template} is_template true allow_connections false`);
      }
    } finally {
      await admin.query('select pg_advisory_unlock(724301)').catch(() => undefined);
      await admin.end();
    }
    return template;
  })();
  return postgresTemplate;
}

async function createPostgres(
  name: string,
  reader: string,
  readerPassword: string,
  options: AllianceAuthFixtureOptions,
): Promise<AllianceAuthTestDatabase> {
  const template = await ensurePostgresTemplate();
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    for (let attempt = 0; ; attempt += 1) {
      try {
        await admin.query(`create database ${name} template ${template}`);
        break;
      } catch (error) {
        // Another process is copying the same template at this instant.
        if ((error as { code?: string }).code !== '55006' || attempt >= 20) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 200));
      }
    }
    await admin.query(`create role ${reader} login password '${readerPassword}'`);
  } finally {
    await admin.end();
  }
  const ownerUrl = new URL(POSTGRES_URL);
  ownerUrl.pathname = `/${name}`;
  const loader = new pg.Client({ connectionString: ownerUrl.toString() });
  await loader.connect();
  try {
    if (options.pluginApps) await loader.query(fixtureText('plugin-apps/schema.postgres.sql'));
    await loader.query(`grant connect on database ${name} to ${reader}`);
    await loader.query(`grant usage on schema public to ${reader}`);
    await loader.query(`grant select on all tables in schema public to ${reader}`);
  } finally {
    await loader.end();
  }
  const readerUrl = new URL(ownerUrl.toString());
  readerUrl.username = reader;
  readerUrl.password = readerPassword;
  const ownerPool = new pg.Pool({ connectionString: ownerUrl.toString(), max: 2 });
  // The pool's end resolves before its connections have closed: the forced drop below can still
  // terminate one, whose 'error' event would crash the test process without a listener. Only that
  // termination is expected; any other error stays uncaught.
  let dropping = false;
  ownerPool.on('error', (error) => {
    if (!(dropping && (error as { code?: string }).code === ADMIN_SHUTDOWN)) throw error;
  });
  const owner = new Kysely<AllianceAuthDatabase>({ dialect: new PostgresDialect({ pool: ownerPool }) });
  return {
    kind: 'postgres',
    name,
    readerUrl: readerUrl.toString(),
    ownerUrl: ownerUrl.toString(),
    owner,
    async run(statement, parameters = []) {
      await sql.raw(bind(statement, parameters, 'postgres')).execute(owner);
    },
    bool: (value) => value,
    async drop() {
      dropping = true;
      await owner.destroy();
      const dropper = new pg.Client({ connectionString: POSTGRES_URL });
      await dropper.connect();
      try {
        await dropper.query(`drop database if exists ${name} with (force)`);
        await dropper.query(`drop role if exists ${reader}`);
      } finally {
        await dropper.end();
      }
    },
  };
}

/** PostgreSQL's code for a connection it terminates (`drop database … with (force)`, `pg_terminate_backend`). */
const ADMIN_SHUTDOWN = '57P01';

/** Inlines test-chosen parameters as SQL literals (tests only: the values are ours). */
function bind(statement: string, parameters: readonly unknown[], kind: AllianceAuthKind): string {
  let index = 0;
  return statement.replace(/\?/g, () => {
    if (index >= parameters.length) throw new Error(`too few parameters for: ${statement}`);
    const value = parameters[index++];
    if (value === null || value === undefined) return 'NULL';
    if (typeof value === 'number') return String(value);
    if (typeof value === 'boolean') return kind === 'mysql' ? (value ? '1' : '0') : String(value);
    return `'${String(value)
      .replace(/'/g, "''")
      .replace(/\\/g, kind === 'mysql' ? '\\\\' : '\\')}'`;
  });
}

/**
 * A password as Django's Argon2PasswordHasher stores it: "argon2" and argon2-cffi's encoding, whose
 * parameters read `m=…,t=…,p=…` (node's argon2 writes them `m=…,p=…,t=…`).
 */
export async function djangoArgon2(
  password: string,
  options: { type?: 0 | 1 | 2; memoryCost?: number; timeCost?: number; parallelism?: number } = {},
): Promise<string> {
  const { type = argon2.argon2id, memoryCost = 1024, timeCost = 1, parallelism = 1 } = options;
  const encoded = await argon2.hash(password, { type, memoryCost, timeCost, parallelism });
  return `argon2${encoded.replace(/\$m=\d+,p=\d+,t=\d+\$/, `$m=${memoryCost},t=${timeCost},p=${parallelism}$`)}`;
}

/**
 * A password as Django's ScryptPasswordHasher stores it (`scrypt$N$SALT$r$p$HASH`), computed by
 * Python's hashlib (OpenSSL's scrypt, as Django computes it), not by the code under test. Django's
 * defaults: N = 2^14, r = 8, p = 1 (Django 4.0 to 4.2; 5 from Django 5.0).
 */
export async function djangoScrypt(
  password: string,
  options: { n?: number; r?: number; p?: number } = {},
): Promise<string> {
  const { n = 16_384, r = 8, p = 1 } = options;
  const program = [
    'import base64, hashlib, secrets, string, sys',
    "password = sys.stdin.read().encode('utf-8')",
    "salt = ''.join(secrets.choice(string.ascii_letters + string.digits) for _ in range(22))",
    `n, r, p = ${n}, ${r}, ${p}`,
    'digest = hashlib.scrypt(password, salt=salt.encode(), n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=64)',
    "print('scrypt$%d$%s$%d$%d$%s' % (n, salt, r, p, base64.b64encode(digest).decode('ascii')))",
  ].join('\n');
  const child = spawn('/usr/bin/python3', ['-c', program], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdin.end(password);
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`python3's hashlib.scrypt failed (exit ${code})`);
  return output.trim();
}
