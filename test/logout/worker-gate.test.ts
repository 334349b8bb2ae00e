import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { type LogoutWorkerFixture, startLogoutWorkerFixture } from '../helpers/logout-worker.ts';
import {
  type Answer,
  guardedConnector,
  PUBLIC_V4,
  type Receiver,
  startReceiver,
  tableResolver,
  v4,
} from './helpers.ts';
import { logoutJobs } from './jobs.ts';

/**
 * The SSRF gate runs again at every delivery of the worker and of `bcl test`, and the connection
 * is pinned to the address it just checked. Names resolve only through a table; connections go only
 * through a connector that maps the public test address to a loopback receiver and refuses (and
 * records) anything else, so nothing leaves the machine.
 */
describe(`back-channel delivery re-checks the target (${testDatabaseKind})`, () => {
  let fixture: LogoutWorkerFixture;
  let services: LogoutWorkerFixture['services'];
  let receiver: Receiver;
  let guarded: ReturnType<typeof guardedConnector>;
  const table: Record<string, Answer> = {};

  before(async () => {
    receiver = await startReceiver((_request, response) => response.end());
    guarded = guardedConnector({ [PUBLIC_V4]: receiver.port });
    // Development mode (http allowed), private targets NOT allowed: the gate judges every address.
    fixture = await startLogoutWorkerFixture({
      logout: { retryBackoffSeconds: [1, 1] },
      services: { resolver: tableResolver(table), bclConnector: guarded.connector },
    });
    services = fixture.services;
  });
  after(async () => {
    await fixture.close();
    await receiver.close();
  });

  async function appAt(host: string) {
    table[host] = [v4(PUBLIC_V4)];
    return fixture.application(`RP ${host}`, `http://${host}/bcl`);
  }

  it('delivers to a public address through the pinned connection', async () => {
    const clientId = await appAt('public.example.test');
    const [result] = await services.logout.testDelivery([clientId]);
    assert.equal(result?.outcome, 'success');
    assert.equal(receiver.requests.length, 1);
    assert.equal(receiver.requests[0]?.headers.host, 'public.example.test');
    assert.deepEqual(guarded.refused, []);
  });

  it('refuses a name that resolves to a metadata address at delivery time (DNS rebinding), connecting nowhere', async () => {
    const clientId = await appAt('rebind.example.test');
    table['rebind.example.test'] = [v4('169.254.169.254')];
    const attempts = guarded.attempts.length;
    const [result] = await services.logout.testDelivery([clientId]);
    assert.equal(result?.outcome, 'unsafe_target_ip');
    assert.equal(guarded.attempts.length, attempts, 'no connection was even attempted');
    const [recorded] = await services.database.db
      .selectFrom('bcl_delivery_attempt')
      .selectAll()
      .where('client_id', '=', clientId)
      .execute();
    assert.equal(recorded?.outcome, 'unsafe_target_ip');
  });

  it('reports dns_resolve_failed when the name stops resolving', async () => {
    const clientId = await appAt('gone.example.test');
    table['gone.example.test'] = { throws: 'ENOTFOUND' };
    const [result] = await services.logout.testDelivery([clientId]);
    assert.equal(result?.outcome, 'dns_resolve_failed');
  });

  it('retries a queued job whose name failed to resolve once (a resolver outage), and delivers it', async () => {
    const clientId = await appAt('flaky-dns.example.test');
    const userId = await fixture.userHoldingToken('dns-pilot', clientId);
    table['flaky-dns.example.test'] = { sequence: [[], [v4(PUBLIC_V4)]] };
    const before = receiver.requests.length;
    await services.directoryAdmin.deactivate({ id: userId });
    assert.equal(await services.logout.deliverDue(), 1);
    const [waiting] = await logoutJobs(services.database, { clientId });
    assert.equal(waiting?.status, 'pending', 'a failed lookup is retried, not final');
    assert.equal(receiver.requests.length, before, 'nothing was sent while the name did not resolve');
    await eventually(async () => (await services.logout.deliverDue()) > 0, 'the retry is due');
    const [job] = await logoutJobs(services.database, { clientId });
    assert.equal(job?.outcome, 'success');
    assert.equal(job?.attempts, 2);
    assert.equal(receiver.requests.length, before + 1);
    assert.deepEqual(guarded.refused, []);
  });

  it('the worker refuses a queued job whose target turned private, and records it', async () => {
    const clientId = await appAt('turned.example.test');
    const userId = await fixture.userHoldingToken('gate-pilot', clientId);
    await services.directoryAdmin.deactivate({ id: userId });
    table['turned.example.test'] = [v4('10.0.0.7')];
    const attempts = guarded.attempts.length;
    assert.equal(await services.logout.deliverDue(), 1);
    const [job] = await logoutJobs(services.database, { clientId });
    assert.ok(job, 'the job is queued');
    assert.equal(job.outcome, 'unsafe_target_ip');
    assert.equal(job.attempts, 1, 'an unsafe target is final, never retried');
    assert.equal(guarded.attempts.length, attempts);
    assert.deepEqual(guarded.refused, []);
  });
});
