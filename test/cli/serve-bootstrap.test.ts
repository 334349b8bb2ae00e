import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { openDatabase } from '../../src/db/connect.ts';
import { createDirectory } from '../../src/directory/service.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

describe(`aa-oidc serve on a first run (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  it('creates a superuser and prints its password once on stdout, never in a log line', async () => {
    const child = spawn(process.execPath, ['src/cli/run.ts', 'serve'], {
      env: testEnv(database, {
        AA_OIDC_PORT: '0',
        AA_OIDC_HOST: '127.0.0.1',
        AA_OIDC_METRICS_ENABLED: 'false',
        AA_OIDC_LOG_LEVEL: 'info',
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`serve printed no bootstrap login:\n${stdout}\n${stderr}`)),
          30_000,
        );
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          stdout += chunk;
          if (/aa-oidc user set-password \S+\n/.test(stdout) && stdout.includes('"aa-oidc listening"')) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.on('close', () => reject(new Error(`serve exited early:\n${stdout}\n${stderr}`)));
      });
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, stderr);

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
