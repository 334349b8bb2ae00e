import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { spawnCli, startCliProcess } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

/**
 * What only a real `aa-oidc` process shows; every other CLI test runs the commands in-process.
 * (`serve` from a cold start and SIGTERM: test/cli/serve-bootstrap.test.ts; SIGKILL mid-delivery:
 * test/logout/durability.test.ts; two worker processes on one queue:
 * test/logout/concurrent-workers.test.ts.)
 */
describe(`aa-oidc as a process (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  it('exits with code 2 and a one-line reason on a configuration error', async () => {
    const result = await spawnCli(['keys', 'list'], testEnv(database, { AA_OIDC_NO_SUCH_SETTING: '1' }));
    assert.equal(result.code, 2);
    assert.equal(result.stdout, '');
    assert.match(
      result.stderr,
      /^aa-oidc: configuration error: unknown environment variable AA_OIDC_NO_SUCH_SETTING; valid names: .*\n$/,
    );
  });

  it('ends quietly with code 0 when its output pipe closes early (`aa-oidc … | head`)', async () => {
    const running = startCliProcess(['--help'], testEnv(database));
    // The reader goes away before the process has written anything.
    running.process.stdout!.destroy();
    assert.equal(await running.exited, 0, running.stderr());
    assert.equal(running.stderr(), '');
  });
});
