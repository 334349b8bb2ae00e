import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { leaseMs } from '../../src/logout/jobs.ts';
import { createLogoutService } from '../../src/logout/service.ts';
import { createLogoutTransport } from '../../src/logout/transport-for-database.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { type LogoutWorkerFixture, startLogoutWorkerFixture } from '../helpers/logout-worker.ts';
import { type Receiver, startReceiver } from './helpers.ts';
import { logoutJobs } from './jobs.ts';

/**
 * A worker starts no attempt more than one request timeout after its claim: sent later, it could
 * still be in flight when the claim lapses and another worker sends the same logout again.
 */
describe(`a claim that waited too long is not sent (${testDatabaseKind})`, () => {
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

  it('leaves the job claimed and unsent when its attempt would start after the start-by time', async () => {
    const { services } = fixture;
    const clientId = await fixture.application('Stalled RP', receiver.url());
    const userId = await fixture.userHoldingToken('stalled', clientId);
    await services.directoryAdmin.deactivate({ id: userId });
    assert.equal((await logoutJobs(services.database, { userId })).length, 1);

    // The process stalls right after its claim: its clock jumps past one request timeout.
    const { config } = services;
    let stalledMs = 0;
    const transport = createLogoutTransport(services.database, {
      expireInSeconds: Math.ceil(leaseMs(config) / 1000),
      logger: services.logger,
    });
    const stalling = {
      ...transport,
      async claim(...args: Parameters<typeof transport.claim>) {
        const claimed = await transport.claim(...args);
        stalledMs = config.logout.requestTimeoutMs + 1;
        return claimed;
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
      transport: stalling,
      now: () => Date.now() + stalledMs,
    });
    try {
      assert.equal(await logout.deliverDue(), 1, 'the job was claimed');
    } finally {
      await logout.close();
    }
    assert.equal(receiver.requests.length, 0, 'nothing was sent');
    const [job] = await logoutJobs(services.database, { userId });
    assert.equal(job?.status, 'pending', 'the claim lapses and the job is retried later');
    assert.equal(job?.outcome, null);
  });
});
