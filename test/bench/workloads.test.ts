import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runFanout } from '../../bench/fanout.ts';
import { type BenchSetup, startBenchSetup } from '../../bench/setup.ts';
import { WORKLOADS } from '../../bench/workloads.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { temporaryFolders } from '../helpers/temporary-folders.ts';

/**
 * Not a measurement: each workload of `npm run bench` runs a few passes against both engines, started
 * and seeded as the bench does, and every pass must succeed. A workload whose check no longer fits
 * the server's answers (a moved redirect, a renamed field) fails here instead of reporting 0/s.
 */
const PASSES = 4;
const CONNECTIONS = 2;
const FANOUT_APPLICATIONS = 2;
const FANOUT_USERS = 3;
// Made here, not in the suite: its folders are removed after the suite's own `after` stopped the engines.
const folder = temporaryFolders('aa-oidc-bench-smoke-');

describe(`the bench's workloads (${testDatabaseKind})`, () => {
  let setup: BenchSetup;

  before(async () => {
    setup = await startBenchSetup({
      workDir: folder(),
      ...(process.env.AA_OIDC_TEST_DATABASE_URL
        ? { databaseUrl: process.env.AA_OIDC_TEST_DATABASE_URL }
        : {}),
      connections: CONNECTIONS,
      fanoutApplications: FANOUT_APPLICATIONS,
      fanoutUsers: FANOUT_USERS,
      progress: () => undefined,
    });
  });
  after(() => setup?.stop());

  for (const workload of WORKLOADS) {
    for (const engine of workload.engines) {
      it(`${workload.name} completes every pass on ${engine}`, async () => {
        const result = await workload.measure(setup.targets[engine], {
          seconds: 0,
          connections: CONNECTIONS,
          units: PASSES,
        });
        assert.equal(result.failed, 0, `${workload.name} on ${engine}: ${result.firstFailure ?? ''}`);
        assert.equal(result.completed, PASSES);
      });
    }
  }

  it('the fan-out delivers one valid logout token per user at each application, none twice', async () => {
    const { receivers, seeded, engines, env } = setup;
    const expected = FANOUT_USERS * FANOUT_APPLICATIONS;
    const result = await runFanout({
      receivers: receivers!,
      clientIds: seeded.fanout.clientIds,
      engine: engines['aa-oidc'],
      env,
      state: seeded.fanout.state,
      expected,
      idleTimeoutSeconds: 15,
      logFile: `${env.AA_OIDC_DATA_DIR}/state-change.log`,
    });
    assert.deepEqual(
      {
        delivered: result.delivered,
        distinct: result.distinct,
        duplicates: result.duplicates,
        invalid: result.invalid,
      },
      { delivered: expected, distinct: expected, duplicates: 0, invalid: 0 },
    );
  });
});
