import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openDatabase } from '../../src/db/connect.ts';
import { createDirectory } from '../../src/directory/builtin/create.ts';
import { startCliProcess } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

/** `serve` from a cold start as a real process: bootstrap, then SIGTERM ends it with exit code 0. */
describe(`aa-oidc serve on a first run (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  it('creates a superuser and prints its password once on stdout, never in a log line', async () => {
    const serve = startCliProcess(
      ['serve'],
      testEnv(database, {
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

    const match = /^ {2}one-time password: (\S+)$/m.exec(stdout);
    assert.ok(match, stdout);
    const password = match[1]!;
    assert.ok(password.length >= 20);
    assert.match(stdout, /^No superuser existed, so one was created: username admin$/m);
    assert.equal(stdout.split(password).length - 1, 1, 'the password is printed exactly once');
    const logLines = stdout.split('\n').filter((line) => line.startsWith('{'));
    assert.ok(
      logLines.some((line) => line.includes('bootstrap superuser')),
      'the creation itself is logged',
    );
    assert.ok(logLines.every((line) => !line.includes(password)));
    assert.ok(!stderr.includes(password));

    const handle = openDatabase(testConfig(database).database);
    try {
      const check = await createDirectory(handle.db).verifyPassword('admin', password);
      assert.equal(check.outcome, 'valid');
      assert.equal(check.outcome === 'valid' && check.user.superuser, 1);
    } finally {
      await handle.close();
    }
  });
});
