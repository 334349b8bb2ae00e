import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { type LogoutWorkerFixture, startLogoutWorkerFixture } from '../helpers/logout-worker.ts';
import { statementsDuring } from '../helpers/statements.ts';
import { type Receiver, startReceiver } from './helpers.ts';
import { logoutJobs } from './jobs.ts';

/** A read of one application row (applications/store.ts), as the worker makes it for a batch. */
const APPLICATION_READ = /^\s*select "application"\.\*/i;

/**
 * The worker reads the applications of its claimed batches once while the change epoch stands:
 * later batches reuse them, and a change to an application (which raises the epoch) is seen by the
 * next batch.
 */
describe(`the logout worker's applications across batches (${testDatabaseKind})`, () => {
  let fixture: LogoutWorkerFixture;
  let services: LogoutWorkerFixture['services'];
  let receiver: Receiver;
  let clientId: string;
  let users = 0;

  before(async () => {
    receiver = await startReceiver((_request, response) => response.end());
    fixture = await startLogoutWorkerFixture({ logout: { allowPrivateTargets: true } });
    services = fixture.services;
    clientId = await fixture.application('Kept RP', receiver.url());
  });
  after(async () => {
    await fixture.close();
    await receiver.close();
  });

  /** Deactivates a new user who holds a live access token at the app: one job. */
  const deactivatedHolder = async () => {
    users += 1;
    await services.directoryAdmin.deactivate({
      id: await fixture.userHoldingToken(`holder${users}`, clientId),
    });
  };

  const applicationReads = (texts: readonly string[]) => texts.filter((text) => APPLICATION_READ.test(text));

  it('reads an application once for several batches, and again once it changed', async () => {
    await deactivatedHolder();
    await deactivatedHolder();
    await deactivatedHolder();
    // `deliverDue` claims one job a batch: three batches.
    const first = await statementsDuring(() => services.logout.deliverDue());
    assert.equal(first.result, 3);
    assert.equal(applicationReads(first.texts).length, 1, first.texts.join('\n'));
    assert.equal(receiver.requests.length, 3);

    await deactivatedHolder();
    const unchanged = await statementsDuring(() => services.logout.deliverDue());
    assert.equal(unchanged.result, 1);
    assert.equal(applicationReads(unchanged.texts).length, 0, 'still kept: nothing changed');
    assert.equal(receiver.requests.length, 4);

    // Queued, then the application stops receiving back-channel logouts: the next batch reads it
    // again, and cancels the delivery.
    await deactivatedHolder();
    await services.applications.update(clientId, { backchannelLogoutUri: null }, 'test');
    const changed = await statementsDuring(() => services.logout.deliverDue());
    assert.equal(changed.result, 1);
    assert.equal(applicationReads(changed.texts).length, 1, 'read again after the change');
    assert.equal(receiver.requests.length, 4, 'nothing sent to an application that no longer receives it');
    const jobs = await logoutJobs(services.database);
    assert.equal(jobs.filter((job) => job.status === 'done').length, 5);
    assert.equal(jobs.filter((job) => job.outcome === 'cancelled').length, 1);
  });
});
