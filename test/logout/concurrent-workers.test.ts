import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Child } from '../helpers/child-process.ts';
import { startCliProcess } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { type LogoutWorkerFixture, startLogoutWorkerFixture } from '../helpers/logout-worker.ts';
import { type Receiver, startReceiver } from './helpers.ts';
import { logoutJobs } from './jobs.ts';

const JOBS = 40;

/** Two worker processes on one queue: each job is claimed by one of them, and delivered once. */
describe(`two back-channel logout workers at once (${testDatabaseKind})`, () => {
  let fixture: LogoutWorkerFixture;
  let receiver: Receiver;
  const workers: Child[] = [];

  before(async () => {
    receiver = await startReceiver((_request, response) => setTimeout(() => response.end(), 20));
    fixture = await startLogoutWorkerFixture({ logout: { allowPrivateTargets: true } });
  });
  after(async () => {
    for (const worker of workers) await worker.stop('SIGKILL');
    await fixture.close();
    await receiver.close();
  });

  it('delivers every job exactly once', async () => {
    const { services } = fixture;
    const clientId = await fixture.application('Shared RP', receiver.url());
    for (let index = 0; index < JOBS; index += 1) {
      const userId = await fixture.userHoldingToken(`racer${index}`, clientId);
      await services.directoryAdmin.deactivate({ id: userId });
    }
    const env = testEnv(fixture.database, { AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS: 'true' });
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
