import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { leaseMs } from '../../src/logout/jobs.ts';
import { createLogoutService } from '../../src/logout/service.ts';
import { createLogoutTransport } from '../../src/logout/transport-for-database.ts';
import { createServices, type Services } from '../../src/services.ts';
import { testConfig } from '../helpers/config.ts';
import { createTestDatabase, testDatabaseKind, type TestDatabase } from '../helpers/database.ts';
import { type Receiver, startReceiver } from './helpers.ts';
import { logoutJobs } from './jobs.ts';

/**
 * A worker starts no attempt more than one request timeout after its claim: sent later, it could
 * still be in flight when the claim lapses and another worker sends the same logout again.
 */
describe(`a claim that waited too long is not sent (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let services: Services;
  let receiver: Receiver;

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    receiver = await startReceiver((_request, response) => response.end());
    services = await createServices(testConfig(database, { logout: { allowPrivateTargets: true } }), {
      migrate: true,
    });
  });
  after(async () => {
    await services.close();
    await receiver.close();
    await database.drop();
  });

  it('leaves the job claimed and unsent when its attempt would start after the start-by time', async () => {
    const app = await services.applications.create(
      {
        name: 'Stalled RP',
        redirectUris: ['https://rp.example.org/cb'],
        backchannelLogoutUri: receiver.url(),
      },
      'test',
    );
    const profile = await services.directoryAdmin.createUser({ username: 'stalled', oidcAccess: true });
    await services.database.db
      .insertInto('oidc_payload')
      .values({
        model: 'AccessToken',
        id: 'token-digest-stalled',
        payload: '{}',
        grant_id: 'grant-stalled',
        user_id: String(profile.user.id),
        client_id: app.application.clientId,
        uid: null,
        user_code: null,
        expires_at: Date.now() + 3_600_000,
        consumed_at: null,
      })
      .execute();
    await services.directoryAdmin.deactivate({ id: profile.user.id });
    assert.equal((await logoutJobs(services.database, { userId: profile.user.id })).length, 1);

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
    const [job] = await logoutJobs(services.database, { userId: profile.user.id });
    assert.equal(job?.status, 'pending', 'the claim lapses and the job is retried later');
    assert.equal(job?.outcome, null);
  });
});
