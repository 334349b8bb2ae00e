import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { within } from '../../src/util/within.ts';
import { type Child, startChild } from '../helpers/child-process.ts';
import { createTestDatabase, reachablePostgres, type TestDatabase } from '../helpers/database.ts';
import { missing } from '../helpers/e2e.ts';

const postgres = await reachablePostgres();

/** Only bounds a failure: the process ends within a second or two once the transport is closed. */
const EXIT_DEADLINE_MS = 30_000;

/**
 * A logout transport whose start failed once pg-boss had started (our queue could not be made sure
 * of: the database failing, or its route dying, at that moment) left that pg-boss instance running,
 * its timers armed, unknown to the transport's close: the process never ended by itself. `aa-oidc
 * serve` stopped over a dead route during its start ran on after its stop. A failed start's instance
 * is now stopped: the process ends.
 */
describe(
  'the pg-boss logout transport whose start failed part-way',
  { skip: 'missing' in postgres ? missing(postgres.missing) : false },
  () => {
    let database: TestDatabase;
    let child: Child | undefined;

    before(async () => {
      database = await createTestDatabase({ migrated: true, postgresUrl: (postgres as { url: string }).url });
    });
    after(async () => {
      await child?.stop('SIGKILL');
      await database?.drop();
    });

    it('leaves nothing running: the process ends by itself once the transport and database are closed', async () => {
      child = startChild(process.execPath, [
        '--import',
        fileURLToPath(new URL('../helpers/network-guard.ts', import.meta.url)),
        fileURLToPath(new URL('./pgboss-failed-start.child.ts', import.meta.url)),
        database.url,
      ]);
      const exited = await within(child.exited, EXIT_DEADLINE_MS, 'still running');
      const output = child.stdout() + child.stderr();
      assert.equal(exited, 0, output);
      assert.match(
        child.stdout(),
        /^start failed: injected: the queue table cannot be read\nclosed\n$/,
        output,
      );
    });
  },
);
