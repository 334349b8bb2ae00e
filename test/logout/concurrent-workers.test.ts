import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createServices, type Services } from '../../src/services.ts';
import type { Child } from '../helpers/child-process.ts';
import { startCliProcess } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import { createTestDatabase, testDatabaseKind, type TestDatabase } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { type Receiver, startReceiver } from './helpers.ts';
import { logoutJobs } from './jobs.ts';

const JOBS = 40;

/** Two worker processes on one queue: each job is claimed by one of them, and delivered once. */
describe(`two back-channel logout workers at once (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let services: Services;
  let receiver: Receiver;
  const workers: Child[] = [];

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    receiver = await startReceiver((_request, response) => setTimeout(() => response.end(), 20));
    services = await createServices(testConfig(database, { logout: { allowPrivateTargets: true } }), {
      migrate: true,
    });
  });
  after(async () => {
    for (const worker of workers) await worker.stop('SIGKILL');
    await services.close();
    await receiver.close();
    await database.drop();
  });

  it('delivers every job exactly once', async () => {
    const app = await services.applications.create(
      {
        name: 'Shared RP',
        redirectUris: ['https://rp.example.org/cb'],
        backchannelLogoutUri: receiver.url(),
      },
      'test',
    );
    for (let index = 0; index < JOBS; index += 1) {
      const profile = await services.directoryAdmin.createUser({
        username: `racer${index}`,
        oidcAccess: true,
      });
      // A live access token at the app, as the provider's adapter stores it.
      await services.database.db
        .insertInto('oidc_payload')
        .values({
          model: 'AccessToken',
          id: `token-digest-${index}`,
          payload: '{}',
          grant_id: `grant-${index}`,
          user_id: String(profile.user.id),
          client_id: app.application.clientId,
          uid: null,
          user_code: null,
          expires_at: Date.now() + 3_600_000,
          consumed_at: null,
        })
        .execute();
      await services.directoryAdmin.deactivate({ id: profile.user.id });
    }
    const env = testEnv(database, { AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS: 'true' });
    for (let index = 0; index < 2; index += 1) workers.push(startCliProcess(['worker'], env));
    const done = async () =>
      (await logoutJobs(services.database)).filter((job) => job.status === 'done').length;
    for (let waited = 0; (await done()) < JOBS; waited += 1) {
      assert.ok(waited < 1000, 'every job finishes');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await new Promise((resolve) => setTimeout(resolve, 1200));
    await eventually(() => receiver.requests.length >= JOBS, 'every delivery arrived');
    const jtis = receiver.requests.map((request) => {
      const token = new URLSearchParams(request.body).get('logout_token')!;
      return (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { jti: string }).jti;
    });
    assert.equal(jtis.length, JOBS, 'no job delivered twice');
    assert.equal(new Set(jtis).size, JOBS);
    const jobs = await logoutJobs(services.database);
    assert.ok(jobs.every((job) => job.outcome === 'success' && job.attempts === 1));
  });
});
