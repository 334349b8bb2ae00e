import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { MIGRATIONS } from '../../src/db/migrations/index.ts';
import type { Child } from '../helpers/child-process.ts';
import { startCliProcessesAtOnce } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { connect, createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

/** More processes than the test machines have cores (two), all migrating at once. */
const PROCESSES = 4;

/**
 * Several `aa-oidc migrate` processes on one new database, begun at the same moment (`serve` and
 * `worker` in development mode apply the migrations the same way, through `migrateToLatest`).
 */
describe(`aa-oidc migrate in several processes at once (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let children: Child[] = [];
  before(async () => {
    // Empty: on SQLite a file that does not exist yet.
    database = await createTestDatabase();
  });
  after(async () => {
    await Promise.all(children.map((child) => child.stop()));
    await database.drop();
  });

  it('applies every migration once: one process applies them, the others wait and find nothing to do', async () => {
    const names = Object.keys(MIGRATIONS).sort();
    children = await startCliProcessesAtOnce(
      PROCESSES,
      ['migrate'],
      testEnv(database),
      path.join(database.dataDir, 'go'),
    );
    const runs = await Promise.all(
      children.map(async (child) => ({
        code: await child.exited,
        stdout: child.stdout(),
        stderr: child.stderr().replace(/^start-line: ready\n/, ''),
      })),
    );
    const pgBoss =
      testDatabaseKind === 'postgres'
        ? `pg-boss schema "pgboss" and queue "aa_oidc_bcl" are up to date\n`
        : '';
    const applied = `applied ${names.length} migration(s): ${names.join(', ')}\n${pgBoss}`;
    const upToDate = `database is up to date\n${pgBoss}`;
    assert.deepEqual(
      runs.map((run) => run.stdout).sort(),
      [applied, ...Array<string>(PROCESSES - 1).fill(upToDate)],
      JSON.stringify(runs, null, 1),
    );
    assert.deepEqual(
      runs.map((run) => ({ code: run.code, stderr: run.stderr })),
      Array.from({ length: PROCESSES }, () => ({ code: 0, stderr: '' })),
    );
    const handle = connect(database);
    try {
      const { rows } = await sql<{ name: string }>`select name from schema_migration order by name`.execute(
        handle.db,
      );
      assert.deepEqual(
        rows.map((row) => row.name),
        names,
        'each migration recorded once',
      );
    } finally {
      await handle.close();
    }
  });
});
