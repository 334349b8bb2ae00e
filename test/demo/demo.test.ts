import assert from 'node:assert/strict';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { createApplicationService } from '../../src/applications/service.ts';
import { builtinDirectoryReader } from '../../src/directory/builtin/reads.ts';
import { clientSecretDigest } from '../../src/applications/secret.ts';
import { openDatabase } from '../../src/db/connect.ts';
import { pendingMigrations } from '../../src/db/migrate.ts';
import { demoClientFilePath } from '../../src/demo/client-file.ts';
import { createDirectory } from '../../src/directory/builtin/create.ts';
import { cli as runCli, type CliResult } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

interface DemoJson {
  login_url: string;
  issuer: string;
  states: Array<{ name: string; priority: number; oidc_access: boolean; status: string }>;
  groups: Array<{ name: string; status: string }>;
  users: Array<{
    username: string;
    status: string;
    password: string | null;
    state: string;
    groups: string[];
  }>;
  application: {
    client_id: string;
    redirect_uri: string;
    active: boolean;
    changes: string[];
    secret_file: string;
  };
}

function cli(database: TestDatabase, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, testEnv(database, { AA_OIDC_LOG_LEVEL: 'info', ...env }));
}

function demoJson(result: CliResult): DemoJson {
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as DemoJson;
}

function oneLineFailure(result: CliResult): string {
  assert.notEqual(result.code, 0);
  assert.equal(result.stdout, '');
  const lines = result.stderr.split('\n').filter((line) => line.length > 0 && !line.startsWith('{'));
  assert.equal(lines.length, 1, result.stderr);
  return lines[0]!;
}

describe(`aa-oidc demo (${testDatabaseKind})`, () => {
  let database: TestDatabase;

  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  /** The directory and applications as the server sees them, opened fresh for each look. */
  async function inspect<T>(
    work: (services: {
      directory: ReturnType<typeof createDirectory>;
      applications: ReturnType<typeof createApplicationService>;
    }) => Promise<T>,
  ): Promise<T> {
    const config = testConfig(database);
    const handle = openDatabase(config.database);
    const logger = pino({ level: 'silent' });
    try {
      return await work({
        directory: createDirectory(handle.db, logger),
        applications: createApplicationService(handle.db, config, logger, {
          directory: builtinDirectoryReader(handle.db),
        }),
      });
    } finally {
      await handle.close();
    }
  }

  function storedSecret(): { clientId: string; secret: string; mode: number } {
    const file = demoClientFilePath(database.dataDir);
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as { client_id: string; client_secret: string };
    return { clientId: parsed.client_id, secret: parsed.client_secret, mode: statSync(file).mode & 0o777 };
  }

  async function counts() {
    return inspect(async ({ directory, applications }) => ({
      states: (await directory.listStates()).map((state) => state.name),
      groups: (await directory.listGroups()).map((group) => group.name),
      users: (await directory.listUsers()).map((profile) => profile.user.username),
      apps: (await applications.list()).map((app) => app.clientId),
    }));
  }

  it('seeds states, groups, users and the demo application, printing each password once', async () => {
    const first = demoJson(await cli(database, ['demo', '--format', 'json']));
    assert.equal(first.issuer, 'http://localhost:8000/o');
    assert.equal(first.login_url, 'http://localhost:8000/demo/');
    assert.deepEqual(
      first.states.map((state) => [state.name, state.priority, state.oidc_access, state.status]),
      [
        ['Member', 100, true, 'created'],
        ['Blue', 50, true, 'created'],
        ['Guest', 10, false, 'created'],
      ],
    );
    assert.deepEqual(
      first.groups.map((group) => group.status),
      ['created', 'created'],
    );
    assert.equal(first.users.length, 4);
    const passwords = first.users.map((user) => user.password);
    assert.ok(passwords.every((password) => typeof password === 'string' && password.length >= 16));
    assert.equal(new Set(passwords).size, 4, 'a different random password for each user');
    assert.deepEqual(first.application.changes, ['created']);
    assert.equal(first.application.redirect_uri, 'http://localhost:8000/demo/callback');

    const stored = storedSecret();
    assert.equal(stored.mode, 0o600, 'the secret file is readable by its owner only');
    assert.equal(stored.clientId, 'aa-oidc-demo');
    const app = await inspect(({ applications }) => applications.findByClientId('aa-oidc-demo'));
    assert.ok(app);
    assert.equal(
      app.clientSecretSha256,
      clientSecretDigest(stored.secret),
      'the file holds the current secret',
    );
    assert.equal(app.clientType, 'confidential');
    assert.deepEqual(app.redirectUris, ['http://localhost:8000/demo/callback']);
    assert.deepEqual(app.states, ['Blue', 'Member']);
    assert.deepEqual(app.grantTypes, ['authorization_code', 'refresh_token']);
    assert.equal(app.pkceRequired, true);

    await inspect(async ({ directory }) => {
      for (const user of first.users) {
        const check = await directory.verifyPassword(user.username, user.password!);
        assert.equal(check.outcome, 'valid', `${user.username} signs in with the printed password`);
      }
      const member = await directory.getUserProfile({ username: 'demo-member' });
      assert.equal(member.state?.name, 'Member');
      assert.deepEqual(
        member.groups.map((group) => group.name),
        ['Fleet Commanders'],
      );
      assert.equal(member.user.character_name, 'Kaelen Voss');
      assert.equal(member.user.corporation_ticker, 'OBFL');
      assert.equal(member.user.alliance_ticker, 'SMRC');
      assert.equal(member.user.email, 'demo-member@example.org');
      assert.equal((await directory.getUserProfile({ username: 'demo-guest' })).state?.name, 'Guest');
    });
  });

  it('is idempotent: a second run creates nothing twice, keeps passwords and the secret, and prints the URL', async () => {
    const before = await counts();
    const secretBefore = storedSecret().secret;
    const second = await cli(database, ['demo']);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /^ {2}http:\/\/localhost:8000\/demo\/$/m);
    assert.match(second.stdout, /Member +priority 100 +oidc_access +exists/);
    assert.equal(second.stdout.match(/password unchanged/g)?.length, 4);
    assert.match(second.stdout, /Application aa-oidc-demo .*: secret kept/);
    assert.deepEqual(await counts(), before);
    assert.deepEqual(before.states.length, 3);
    assert.deepEqual(before.users.length, 4);
    assert.deepEqual(before.apps, ['aa-oidc-demo']);
    assert.equal(storedSecret().secret, secretBefore);
  });

  it('--reset-passwords gives existing demo users new passwords; a lost secret file gets a new secret', async () => {
    const reset = demoJson(await cli(database, ['demo', '--reset-passwords', '--format', 'json']));
    assert.ok(reset.users.every((user) => user.status === 'password_reset' && user.password));
    await inspect(async ({ directory }) => {
      for (const user of reset.users)
        assert.equal((await directory.verifyPassword(user.username, user.password!)).outcome, 'valid');
    });

    const oldSecret = storedSecret().secret;
    rmSync(demoClientFilePath(database.dataDir));
    const healed = demoJson(await cli(database, ['demo', '--format', 'json']));
    assert.deepEqual(healed.application.changes, ['secret_rotated']);
    const stored = storedSecret();
    assert.notEqual(stored.secret, oldSecret);
    assert.equal(stored.mode, 0o600);
    const app = await inspect(({ applications }) => applications.findByClientId('aa-oidc-demo'));
    assert.equal(app?.clientSecretSha256, clientSecretDigest(stored.secret));
    // Users that exist keep their passwords: none is printed.
    assert.ok(healed.users.every((user) => user.status === 'exists' && user.password === null));
  });

  it('--issuer-url registers the redirect URI of that issuer; a bad one is a one-line error', async () => {
    const moved = demoJson(
      await cli(database, ['demo', '--issuer-url', 'http://127.0.0.1:18080/o/', '--format', 'json']),
    );
    assert.equal(moved.login_url, 'http://127.0.0.1:18080/demo/');
    assert.deepEqual(moved.application.changes, ['redirect_uri_updated', 'secret_kept']);
    const app = await inspect(({ applications }) => applications.findByClientId('aa-oidc-demo'));
    assert.deepEqual(app?.redirectUris, ['http://127.0.0.1:18080/demo/callback']);

    const bad = await cli(database, ['demo', '--issuer-url', 'ftp://example.org/o']);
    assert.match(
      oneLineFailure(bad),
      /^aa-oidc: --issuer-url: "ftp:\/\/example\.org\/o" must be an http or https URL$/,
    );
    // A password given in it is not repeated: the URL is quoted with its user information masked.
    const withPassword = await cli(database, [
      'demo',
      '--issuer-url',
      'http://demo:hunter2@127.0.0.1:18080/o',
    ]);
    assert.equal(
      oneLineFailure(withPassword),
      'aa-oidc: --issuer-url: "http://***@127.0.0.1:18080/o" must not carry a query, fragment or credentials',
    );
  });

  it('writes no password or client secret to the log lines on stderr', async () => {
    const result = await cli(database, ['demo', '--reset-passwords', '--format', 'json']);
    const seeded = demoJson(result);
    const secrets = [...seeded.users.map((user) => user.password!), storedSecret().secret];
    for (const secret of secrets) assert.ok(!result.stderr.includes(secret), 'stderr holds no secret');
  });

  it('refuses production mode with a one-line reason and touches nothing', async () => {
    const fresh = await createTestDatabase();
    try {
      const result = await cli(fresh, ['demo'], {
        AA_OIDC_MODE: 'production',
        AA_OIDC_ISSUER: 'https://auth.example.org/o',
        AA_OIDC_SECRET_KEY: 'p'.repeat(48),
        NODE_ENV: 'production',
      });
      assert.match(oneLineFailure(result), /^aa-oidc: demo refuses production mode: /);
      const handle = openDatabase(testConfig(fresh).database);
      try {
        assert.ok((await pendingMigrations(handle.db, handle.kind)).length > 0, 'not even migrated');
      } finally {
        await handle.close();
      }
      assert.throws(() => statSync(demoClientFilePath(fresh.dataDir)), /ENOENT/);
    } finally {
      await fresh.drop();
    }
  });
});
