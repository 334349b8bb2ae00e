import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { LANES_PER_APPLICATION } from '../../src/logout/worker.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { type LogoutWorkerFixture, startLogoutWorkerFixture } from '../helpers/logout-worker.ts';
import { type Receiver, startReceiver } from './helpers.ts';
import { logoutJobs } from './jobs.ts';

const USERS = 40;

/** A receiver that never answers the requests `hangs` picks (every one by default) until `release()`. */
interface HangingReceiver extends Receiver {
  /** The answers held open, in the order their requests came. */
  open: ServerResponse[];
  /** Answers the requests held open, and every one from now on. */
  release(): void;
}

async function startHangingReceiver(
  hangs: (request: IncomingMessage) => boolean = () => true,
): Promise<HangingReceiver> {
  const open: ServerResponse[] = [];
  let releasing = false;
  const receiver = await startReceiver((request, response) => {
    if (!releasing && hangs(request)) open.push(response);
    else response.end();
  });
  return {
    ...receiver,
    open,
    release() {
      releasing = true;
      for (const response of open) response.end();
    },
  };
}

/**
 * A worker whose attempts at an application that never answers would wait a minute: the test ends
 * long before.
 */
function startPatientWorker(logout: Record<string, unknown> = {}): Promise<LogoutWorkerFixture> {
  return startLogoutWorkerFixture({
    logout: { allowPrivateTargets: true, requestTimeoutMs: 60_000, ...logout },
  });
}

/**
 * The hung application answers at last, so that the worker's attempts end and it can stop; then the
 * worker, its fixture and the receivers stop.
 */
async function stopAll(
  fixture: LogoutWorkerFixture,
  hung: HangingReceiver,
  others: Receiver[],
): Promise<void> {
  hung.release();
  await fixture.services.logout.close();
  await fixture.close();
  for (const receiver of [hung, ...others]) await receiver.close();
}

/** USERS users, each holding a token at both applications, deactivated: a logout due at each. */
async function deactivateUsersOfBoth(
  fixture: LogoutWorkerFixture,
  prefix: string,
  hungApp: string,
  healthyApp: string,
): Promise<void> {
  for (let index = 0; index < USERS; index += 1) {
    const userId = await fixture.userHoldingToken(`${prefix}-${index}`, hungApp);
    await fixture.tokenAt(userId, healthyApp);
    await fixture.services.directoryAdmin.deactivate({ id: userId });
  }
}

/**
 * An application that never answers takes at most its share of the worker's lanes, and only until it
 * is found stalled: the logouts to the other applications go out meanwhile, long before its
 * attempts time out, and its jobs beyond its lanes go back to the queue without counting an attempt.
 */
describe(`the logout worker with an application that never answers (${testDatabaseKind})`, () => {
  let fixture: LogoutWorkerFixture;
  let hung: HangingReceiver;
  let healthy: Receiver;

  before(async () => {
    hung = await startHangingReceiver();
    healthy = await startReceiver((_request, response) => response.end());
    fixture = await startPatientWorker();
  });
  after(() => stopAll(fixture, hung, [healthy]));

  it("tells the healthy application every logout while the hung one's attempts still wait", async () => {
    const { services } = fixture;
    const hungApp = await fixture.application('Never answers', hung.url());
    const healthyApp = await fixture.application('Answers', healthy.url());
    await deactivateUsersOfBoth(fixture, 'stalled', hungApp, healthyApp);

    services.logout.startWorker({ concurrency: 32, pollIntervalMs: 50 });
    await eventually(
      () => healthy.requests.length === USERS,
      'every logout reached the application that answers',
      // Well under the hung attempts' minute (none of them has had to end first), with room for a
      // loaded machine: 20 s ran out once under a load average of 30.
      45_000,
    );
    // No attempt at the hung application has ended (each waits a minute): it has its lanes' worth.
    assert.equal(hung.open.length, hung.requests.length);
    assert.ok(
      hung.requests.length <= LANES_PER_APPLICATION,
      `at most ${LANES_PER_APPLICATION} attempts at once at one application, not ${hung.requests.length}`,
    );
    // Its other jobs went back to the queue, pending, without an attempt counted for them.
    await eventually(async () => {
      const jobs = await logoutJobs(services.database, { clientId: hungApp });
      const pending = jobs.filter((job) => job.status === 'pending');
      return (
        pending.length === USERS && pending.filter((job) => job.attempts > 0).length <= hung.requests.length
      );
    }, 'the hung application’s jobs are pending, attempted only as often as it was sent one');
    // An attempt's record commits after its answer arrived (with the records of the others that
    // came meanwhile): the last ones may still be on their way.
    await eventually(async () => {
      const done = await logoutJobs(services.database, { clientId: healthyApp });
      return done.filter((job) => job.status === 'done' && job.outcome === 'success').length === USERS;
    }, 'every healthy logout is recorded as delivered');
  });
});

/**
 * Applications that share a host by path share its delivery pool: the hung one's attempts hold its
 * lanes' connections and no more, and the pool opens others for the healthy one's logouts instead
 * of queueing them behind the hung ones until those time out.
 */
describe(`the logout worker with a hung application beside a healthy one on the same host (${testDatabaseKind})`, () => {
  let fixture: LogoutWorkerFixture;
  let shared: HangingReceiver;

  before(async () => {
    // One host serving two applications by path, as a reverse proxy does: /wiki never answers.
    shared = await startHangingReceiver((request) => request.url === '/wiki/bcl');
    fixture = await startPatientWorker();
  });
  after(() => stopAll(fixture, shared, []));

  it("tells the healthy application every logout: the hung one's attempts hold only their own connections", async () => {
    const { services } = fixture;
    const hungApp = await fixture.application('Wiki (never answers)', shared.url('/wiki/bcl'));
    const healthyApp = await fixture.application('Grafana (answers)', shared.url('/grafana/bcl'));
    await deactivateUsersOfBoth(fixture, 'shared', hungApp, healthyApp);
    services.logout.startWorker({ concurrency: 32, pollIntervalMs: 50 });
    await eventually(
      () => shared.requests.filter((request) => request.url === '/grafana/bcl').length === USERS,
      'every logout reached the application that answers',
      45_000,
    );
    assert.ok(
      shared.open.length <= LANES_PER_APPLICATION,
      `${shared.open.length} attempts wait at the hung application`,
    );
  });
});

/**
 * While an attempt at an application that never answers is in flight, the worker still claims: a
 * logout queued meanwhile and a retry that came due go out then, not once that attempt timed out.
 */
describe(`the logout worker claims while a hung application's attempt is in flight (${testDatabaseKind})`, () => {
  let fixture: LogoutWorkerFixture;
  let hung: HangingReceiver;
  let healthy: Receiver;
  let flaky: Receiver;

  before(async () => {
    hung = await startHangingReceiver();
    healthy = await startReceiver((_request, response) => response.end());
    // Fails its first attempt, then answers: its retry comes due while the hung attempt waits.
    flaky = await startReceiver((_request, response) => {
      response.statusCode = flaky.requests.length === 1 ? 503 : 200;
      response.end();
    });
    fixture = await startPatientWorker({ retryBackoffSeconds: [1] });
  });
  after(() => stopAll(fixture, hung, [healthy, flaky]));

  it('delivers a logout queued meanwhile, and a retry that came due, while the hung attempt still waits', async () => {
    const { services } = fixture;
    const hungApp = await fixture.application('Never answers', hung.url());
    const healthyApp = await fixture.application('Answers', healthy.url());
    const flakyApp = await fixture.application('Fails once', flaky.url());
    const first = await fixture.userHoldingToken('in-flight-1', hungApp);
    services.logout.startWorker({ concurrency: 32, pollIntervalMs: 50 });
    await services.directoryAdmin.deactivate({ id: first });
    await eventually(() => hung.open.length === 1, 'the hung application has the first logout');

    const second = await fixture.userHoldingToken('in-flight-2', healthyApp);
    await fixture.tokenAt(second, flakyApp);
    await services.directoryAdmin.deactivate({ id: second });
    await eventually(() => healthy.requests.length === 1, 'the logout queued meanwhile went out');
    await eventually(() => flaky.requests.length === 2, 'the retry that came due went out');
    assert.equal(hung.requests.length, 1);
    assert.equal(hung.open.length, 1, 'the hung attempt still waits');
    await eventually(async () => {
      const jobs = await logoutJobs(services.database, { userId: second });
      return jobs.length === 2 && jobs.every((job) => job.status === 'done' && job.outcome === 'success');
    }, 'both are recorded as delivered');
  });
});
