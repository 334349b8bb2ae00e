import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { leaseMs } from '../../src/logout/jobs.ts';
import { createLogoutService } from '../../src/logout/service.ts';
import { createLogoutTransport } from '../../src/logout/transport-for-database.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { type LogoutWorkerFixture, startLogoutWorkerFixture } from '../helpers/logout-worker.ts';
import { type Receiver, startReceiver } from './helpers.ts';
import { logoutJobs } from './jobs.ts';

/**
 * A lane of the worker makes its next attempt once its last one was made, while that one's record
 * commits: a fan-out's deliveries do not wait on each other's commits.
 */
describe(`the logout worker's lanes (${testDatabaseKind})`, () => {
  let fixture: LogoutWorkerFixture;
  let receiver: Receiver;

  before(async () => {
    receiver = await startReceiver((_request, response) => response.end());
    fixture = await startLogoutWorkerFixture({ logout: { allowPrivateTargets: true } });
  });
  after(async () => {
    await fixture.close();
    await receiver.close();
  });

  it('makes the next attempt of a single lane while the last one is still being recorded', async () => {
    const { services } = fixture;
    const clientId = await fixture.application('Lane RP', receiver.url());
    const userIds: number[] = [];
    for (const username of ['lane-1', 'lane-2']) {
      const userId = await fixture.userHoldingToken(username, clientId);
      await services.directoryAdmin.deactivate({ id: userId });
      userIds.push(userId);
    }

    // The first record waits until the second delivery arrived (it never would, were the lane held
    // until the record committed), then commits.
    const { config } = services;
    const transport = createLogoutTransport(services.database, {
      expireInSeconds: Math.ceil(leaseMs(config) / 1000),
      logger: services.logger,
    });
    let records = 0;
    let overlapped: boolean | undefined;
    const holding = {
      ...transport,
      async finishMany(...args: Parameters<typeof transport.finishMany>) {
        records += 1;
        if (records === 1)
          overlapped = await eventually(
            () => receiver.requests.length === 2,
            'the second delivery arrived while the first one was being recorded',
          ).then(
            () => true,
            () => false,
          );
        return transport.finishMany(...args);
      },
    };
    const logout = createLogoutService({
      config,
      database: services.database,
      logger: services.logger,
      audit: services.audit,
      metrics: services.metrics,
      applications: services.applications,
      keyStore: services.keyStore,
      transport: holding,
    });
    try {
      // `deliverDue` runs one lane.
      assert.equal(await logout.deliverDue(), 2);
    } finally {
      await logout.close();
    }
    assert.equal(overlapped, true, 'the second attempt did not wait for the first record');
    assert.equal(receiver.requests.length, 2);
    for (const userId of userIds) {
      const [job] = await logoutJobs(services.database, { userId });
      assert.equal(job?.status, 'done');
      assert.equal(job?.outcome, 'success');
    }
  });
});
