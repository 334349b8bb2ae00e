import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createServices, type Services } from '../../src/services.ts';
import { testConfig } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

/**
 * Once the services close, the back-channel logout worker has no transport (pg-boss stopped on
 * PostgreSQL), no delivery connections and no database: starting it then fails at once, naming the
 * closed service, instead of handing back a worker whose every round fails, logged, as long as the
 * process runs. Delivering the due jobs once (`deliverDue`) then fails the same way, instead of with
 * whatever the closed pool or pg-boss throws; so does a test delivery (`aa-oidc bcl test`, the admin
 * UI's "send test back-channel logout"), instead of with what the closed database throws.
 */
describe(`the back-channel logout service after the services closed (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  after(async () => database?.drop());

  const closedServices = async (prepare: (services: Services) => Promise<void>): Promise<Services> => {
    const services = await createServices(testConfig(database), { migrate: true });
    try {
      await prepare(services);
    } finally {
      await services.close();
    }
    return services;
  };
  const closedService =
    /^LogoutServiceClosedError: the back-channel logout service is closed, so its worker cannot start/;

  it('refuses to start a worker after close, when none ran before', async () => {
    const services = await closedServices(async () => undefined);
    assert.throws(() => services.logout.startWorker(), closedService);
  });

  it('refuses to start a worker after close, when one ran and was stopped by it', async () => {
    const services = await closedServices(async (open) => {
      const worker = open.logout.startWorker({ pollIntervalMs: 50 });
      // On PostgreSQL the worker's start starts pg-boss and its supervisor, which close stops.
      await open.logout.deliverDue();
      assert.equal(open.logout.startWorker(), worker, 'the running worker is handed back while open');
    });
    assert.throws(() => services.logout.startWorker({ pollIntervalMs: 50 }), closedService);
  });

  const closedDelivery =
    /^LogoutServiceClosedError: the back-channel logout service is closed, so it cannot deliver due logouts/;

  it('refuses to deliver due logouts after close, naming the closed service', async () => {
    const services = await closedServices(async (open) => {
      assert.equal(await open.logout.deliverDue(), 0, 'nothing is due while open');
    });
    await assert.rejects(services.logout.deliverDue(), (error: Error) => {
      assert.match(String(error), closedDelivery);
      return true;
    });
  });

  it('refuses to deliver due logouts after close, when a worker ran and was stopped by it', async () => {
    const services = await closedServices(async (open) => {
      open.logout.startWorker({ pollIntervalMs: 50 });
      await open.logout.deliverDue();
    });
    await assert.rejects(services.logout.deliverDue(), (error: Error) => {
      assert.match(String(error), closedDelivery);
      return true;
    });
  });

  it('refuses a test delivery after close, naming the closed service', async () => {
    const services = await closedServices(async () => undefined);
    await assert.rejects(services.logout.testDelivery(['any-client']), (error: Error) => {
      assert.match(
        String(error),
        /^LogoutServiceClosedError: the back-channel logout service is closed, so it cannot send test logouts/,
      );
      return true;
    });
  });
});
