import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { LANES_PER_APPLICATION } from '../../src/logout/worker.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { startLogoutWorkerFixture } from '../helpers/logout-worker.ts';
import { type Receiver, startReceiver } from './helpers.ts';
import { logoutJobs } from './jobs.ts';

/**
 * A receiver that answers every logout `delayMs` after it arrived, and counts how many it held at
 * once at most (`mostAtOnce`).
 */
async function slowReceiver(delayMs: number): Promise<Receiver & { mostAtOnce: () => number }> {
  let held = 0;
  let most = 0;
  const receiver = await startReceiver((_request, response) => {
    held += 1;
    most = Math.max(most, held);
    setTimeout(() => {
      held -= 1;
      response.end();
    }, delayMs);
  });
  return Object.assign(receiver, { mostAtOnce: () => most });
}

/**
 * An application that answers, but slowly (hundreds of milliseconds to a few seconds per logout: a
 * relying party that ends its sessions in a slow database, say), is neither treated as one that does
 * not answer nor allowed to fill the worker with its jobs: it gets its logouts at its own pace, and
 * the other applications get theirs meanwhile.
 */
describe(`the logout worker with an application that answers slowly (${testDatabaseKind})`, () => {
  const closing: Array<() => Promise<void>> = [];
  after(async () => {
    for (const close of closing.reverse()) await close();
  });

  it('tells a quick application every logout long before the slow one has had its own', async () => {
    const users = 80;
    const slow = await slowReceiver(800);
    const quick = await startReceiver((_request, response) => response.end());
    const fixture = await startLogoutWorkerFixture({ logout: { allowPrivateTargets: true } });
    closing.push(
      () => slow.close(),
      () => quick.close(),
      () => fixture.close(),
      () => fixture.services.logout.close(),
    );
    const slowApp = await fixture.application('Answers slowly', slow.url());
    const quickApp = await fixture.application('Answers at once', quick.url());
    for (let index = 0; index < users; index += 1) {
      const userId = await fixture.userHoldingToken(`slow-${index}`, slowApp);
      await fixture.tokenAt(userId, quickApp);
      await fixture.services.directoryAdmin.deactivate({ id: userId });
    }

    fixture.services.logout.startWorker({ concurrency: 32, pollIntervalMs: 50 });
    await eventually(
      () => quick.requests.length === users,
      'every logout reached the quick application',
      60_000,
    );
    // Before, the slow application's jobs filled the worker's lanes and queue (32 at once): the quick
    // one got its logouts at the slow one's pace. Counted, not timed: a loaded machine slows both.
    assert.ok(
      slow.mostAtOnce() <= LANES_PER_APPLICATION,
      `the slow application was sent ${slow.mostAtOnce()} logouts at once`,
    );
    await eventually(
      async () => {
        const jobs = await logoutJobs(fixture.services.database, { clientId: slowApp });
        return jobs.filter((job) => job.status === 'done' && job.outcome === 'success').length === users;
      },
      'every logout to the slow application is delivered',
      60_000,
    );
    const jobs = await logoutJobs(fixture.services.database, { clientId: slowApp });
    assert.deepEqual(
      jobs.filter((job) => job.attempts !== 1).map((job) => job.attempts),
      [],
      'each delivered at its first attempt (putting a job back counts none)',
    );
    assert.equal(slow.requests.length, users, 'none sent twice');
  });

  it('does not take an application answering in more than a second for one that stalled', async () => {
    // A stalled application's jobs are put back for a request timeout: thirty seconds here, which
    // the logouts below would wait were this application taken for one that does not answer.
    const slow = await slowReceiver(1200);
    const fixture = await startLogoutWorkerFixture({
      logout: { allowPrivateTargets: true, requestTimeoutMs: 30_000 },
    });
    closing.push(
      () => slow.close(),
      () => fixture.close(),
      () => fixture.services.logout.close(),
    );
    const slowApp = await fixture.application('Answers in 1.2 s', slow.url());
    fixture.services.logout.startWorker({ concurrency: 32, pollIntervalMs: 50 });
    // One logout first, which the worker sees answered, and how long it took.
    const first = await fixture.userHoldingToken('first', slowApp);
    await fixture.services.directoryAdmin.deactivate({ id: first });
    await eventually(() => slow.requests.length === 1, 'the first logout arrives', 10_000);
    await eventually(
      async () =>
        (await logoutJobs(fixture.services.database, { clientId: slowApp })).some(
          (job) => job.status === 'done',
        ),
      'the first logout is answered',
      10_000,
    );

    const users = 3 * LANES_PER_APPLICATION;
    for (let index = 0; index < users; index += 1) {
      const userId = await fixture.userHoldingToken(`slow-${index}`, slowApp);
      await fixture.services.directoryAdmin.deactivate({ id: userId });
    }
    // Three rounds of its lanes, 1.2 s each, and the put-back jobs' whole seconds: well under the
    // thirty seconds a stalled application's jobs wait.
    await eventually(
      () => slow.requests.length === users + 1,
      'every logout reaches the slow application before a request timeout has passed',
      15_000,
    );
  });
});
