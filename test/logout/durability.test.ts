import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Child } from '../helpers/child-process.ts';
import { type RunningCli, startCli, startCliProcess } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { Browser, seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';
import { startReceiver, type Receiver } from './helpers.ts';
import { holdTokensAt, verifyLogoutToken } from './rp-receiver.ts';
import { assertSameLogout, logoutJobs } from './jobs.ts';

/**
 * Back-channel logout durability: jobs committed with the change survive a worker killed with SIGKILL in the
 * middle of a delivery; the next worker delivers every job, and a delivery recorded as a success is
 * never sent again.
 */
describe(`back-channel logout durability across SIGKILL (${testDatabaseKind})`, () => {
  let server: TestServer;
  let hanging: Receiver;
  let healthy: Receiver;
  let worker: Child | undefined;
  let serve: RunningCli | undefined;
  let answerHanging = false;
  const held: Array<() => void> = [];

  before(async () => {
    // The in-process server runs no worker: it only signs the user in and commits the jobs. Its
    // request timeout is the workers' (on pg-boss a job's lease is fixed when it is queued).
    server = await startServer({ logout: { allowPrivateTargets: true, requestTimeoutMs: 1500 } });
    hanging = await startReceiver((_request, response) => {
      if (answerHanging) response.end();
      else held.push(() => response.destroy());
    });
    healthy = await startReceiver((_request, response) => response.end());
  });
  after(async () => {
    await worker?.stop('SIGKILL');
    await serve?.stop();
    for (const release of held) release();
    await hanging.close();
    await healthy.close();
    await server.close();
  });

  const env = () =>
    testEnv(server.database, {
      AA_OIDC_ISSUER: server.issuer,
      AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS: 'true',
      AA_OIDC_LOGOUT_REQUEST_TIMEOUT_MS: '1500',
      AA_OIDC_LOGOUT_RETRY_BACKOFF_SECONDS: '1,1',
      AA_OIDC_PORT: '0',
    });

  const jobs = async (userId: number) =>
    (await logoutJobs(server.app.database, { userId })).sort((a, b) =>
      a.client_id < b.client_id ? -1 : a.client_id > b.client_id ? 1 : 0,
    );

  it('delivers every job after a SIGKILL mid-delivery, none twice after success', async () => {
    const user = await seedUser(server);
    const slow = await seedApp(server, {
      name: 'Slow RP',
      skipAuthorization: true,
      backchannelLogoutUri: hanging.url(),
    });
    const fast = await seedApp(server, {
      name: 'Fast RP',
      skipAuthorization: true,
      backchannelLogoutUri: healthy.url(),
    });
    const browser = new Browser();
    await holdTokensAt(server, browser, slow, user.username);
    await holdTokensAt(server, browser, fast, user.username);
    await server.app.directoryAdmin.deactivate({ id: user.id });
    assert.equal((await jobs(user.id)).length, 2, 'both jobs committed with the deactivation');

    // A real process, so that SIGKILL cuts it off mid-delivery.
    worker = startCliProcess(['worker'], env());
    // Killed while the slow receiver holds its request open, once the fast one is recorded done.
    await eventually(() => hanging.requests.length === 1, 'the slow receiver got the first attempt', 20_000);
    const fastJob = async () => (await jobs(user.id)).find((job) => job.client_id === fast.clientId)!;
    for (let waited = 0; (await fastJob()).status !== 'done'; waited += 1) {
      assert.ok(waited < 200, 'the fast delivery is recorded');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await worker.stop('SIGKILL');
    const slowJob = (await jobs(user.id)).find((job) => job.client_id === slow.clientId)!;
    assert.equal(slowJob.status, 'pending', 'the interrupted job is still pending');
    assert.equal(healthy.requests.length, 1);

    answerHanging = true;
    for (const release of held.splice(0)) release();
    // The next worker is `serve`'s (it runs the same worker), started here in this process.
    serve = startCli(['serve'], env());
    try {
      await eventually(
        () => hanging.requests.length === 2,
        'the slow job is delivered by the next worker',
        20_000,
      );
      for (let waited = 0; (await jobs(user.id)).some((job) => job.status !== 'done'); waited += 1) {
        assert.ok(waited < 250, 'every job finishes');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // Give the second worker time to (wrongly) repeat anything.
      await new Promise((resolve) => setTimeout(resolve, 1500));
    } finally {
      await serve.stop();
    }
    assert.equal(healthy.requests.length, 1, 'a delivery recorded as a success is never sent again');
    assert.equal(hanging.requests.length, 2);
    const [before, again] = hanging.requests.map((request) =>
      new URLSearchParams(request.body).get('logout_token')!,
    );
    assertSameLogout(again!, before!, 'the retry after the crash');
    await verifyLogoutToken(server, again!, { clientId: slow.clientId, sub: String(user.id) });
    const final = await jobs(user.id);
    assert.deepEqual(
      final.map((job) => job.outcome),
      ['success', 'success'],
    );
  });
});
