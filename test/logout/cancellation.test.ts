import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';
import { statementsDuring } from '../helpers/statements.ts';
import { type LogoutWorkerFixture, startLogoutWorkerFixture } from '../helpers/logout-worker.ts';
import { type Receiver, startReceiver } from './helpers.ts';
import { logoutJobs } from './jobs.ts';

/**
 * Logouts queued for an application that then stops receiving them (deactivated, its URI removed,
 * switched to revoke-only) are cancelled, not sent; the operator sees them: recorded in the
 * delivery-attempt table as `cancelled` with the reason (the admin deliveries page, `bcl list`),
 * counted in `aa_oidc_bcl_dispatches_total{outcome="cancelled"}`, and a WARN line per application
 * and reason for the cancellations settled together, naming the count and the users.
 */
describe(`cancelled back-channel logouts (${testDatabaseKind})`, () => {
  // Captures every log line of the services.
  const harness = createLeakHarness();
  let fixture: LogoutWorkerFixture;
  let services: LogoutWorkerFixture['services'];
  let receiver: Receiver;
  let users = 0;

  before(async () => {
    receiver = await startReceiver((_request, response) => response.end());
    fixture = await startLogoutWorkerFixture({
      logout: { allowPrivateTargets: true },
      services: { logger: harness.loggerOptions },
    });
    services = fixture.services;
  });
  after(async () => {
    await fixture.close();
    await receiver.close();
  });

  /** A new user holding a token at the application, deactivated: one queued logout there. */
  const deactivatedHolder = async (clientId: string): Promise<number> => {
    users += 1;
    const userId = await fixture.userHoldingToken(`cancel-holder${users}`, clientId);
    await services.directoryAdmin.deactivate({ id: userId });
    return userId;
  };

  const cancellationLines = (clientId: string) =>
    harness.logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.client_id === clientId && String(line.msg).includes('cancelled'));

  const cancelledCount = async (clientId: string) => {
    const text = await services.metrics.registry.getSingleMetricAsString('aa_oidc_bcl_dispatches_total');
    const found = new RegExp(`client_id="${clientId}",outcome="cancelled"\\} (\\d+)`).exec(text);
    return found ? Number(found[1]) : 0;
  };

  /** The attempt-table rows of the application, by user: what the operator's listings show. */
  const attemptRows = async (clientId: string) =>
    (
      await services.database.db
        .selectFrom('bcl_delivery_attempt')
        .select(['user_id', 'client_name', 'outcome', 'attempts', 'http_status', 'detail'])
        .where('client_id', '=', clientId)
        .execute()
    )
      .map((row) => ({ ...row, user_id: Number(row.user_id), attempts: Number(row.attempts) }))
      .sort((a, b) => a.user_id - b.user_id);

  const cancelledRow = (userId: number, clientName: string, detail: string) => ({
    user_id: userId,
    client_name: clientName,
    outcome: 'cancelled',
    // Its claim sent nothing: no attempt was made.
    attempts: 0,
    http_status: null,
    detail,
  });

  it('counts the logouts a deactivation dropped and names the app, the reason and the users in one warning', async () => {
    const clientId = await fixture.application('Deactivated by mistake', receiver.url());
    const userIds = [
      await deactivatedHolder(clientId),
      await deactivatedHolder(clientId),
      await deactivatedHolder(clientId),
    ];
    await services.applications.deactivate(clientId, 'test');

    const { texts } = await statementsDuring(async () => {
      const worker = services.logout.startWorker({ pollIntervalMs: 50 });
      try {
        await eventually(
          async () =>
            (await logoutJobs(services.database, { clientId })).every((job) => job.status === 'done'),
          'the queued logouts are finished',
        );
      } finally {
        await worker.stop();
      }
    });

    assert.deepEqual(
      (await logoutJobs(services.database, { clientId })).map((job) => job.outcome),
      ['cancelled', 'cancelled', 'cancelled'],
    );
    assert.equal(receiver.requests.length, 0, 'nothing sent to a deactivated application');
    assert.equal(await cancelledCount(clientId), 3);
    // One claimed batch, settled together: one line for the three.
    const lines = cancellationLines(clientId);
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(lines[0]!.level, 40, 'at WARN');
    assert.equal(lines[0]!.reason, 'application_deactivated');
    assert.equal(lines[0]!.count, 3);
    assert.deepEqual(
      lines[0]!.user_ids,
      [...userIds].sort((a, b) => a - b),
    );
    assert.deepEqual(
      await attemptRows(clientId),
      [...userIds]
        .sort((a, b) => a - b)
        .map((userId) =>
          cancelledRow(
            userId,
            'Deactivated by mistake',
            'application_deactivated: the application was deactivated after the logout was queued; nothing was sent',
          ),
        ),
      'each cancellation recorded with its reason, none as an attempt made',
    );
    assert.equal(
      texts.filter((text) => /insert into "bcl_delivery_attempt"/i.test(text)).length,
      1,
      'the cancellations settled together are recorded by one statement, not one per logout',
    );
  });

  it('tells a removed back-channel URI and a switch to revoke-only apart', async () => {
    const uriRemoved = await fixture.application('URI removed', receiver.url());
    const uriUser = await deactivatedHolder(uriRemoved);
    await services.applications.update(uriRemoved, { backchannelLogoutUri: null }, 'test');
    const revokeOnly = await fixture.application('Revoke only', receiver.url());
    const revokeOnlyUser = await deactivatedHolder(revokeOnly);
    await services.applications.update(revokeOnly, { backchannelLogoutOnRevokeOnly: true }, 'test');

    await services.logout.deliverDue();

    assert.equal(receiver.requests.length, 0);
    for (const [clientId, name, reason, userId, detail] of [
      [
        uriRemoved,
        'URI removed',
        'no_backchannel_uri',
        uriUser,
        'no_backchannel_uri: the application’s back-channel logout URI was removed after the logout was queued; nothing was sent',
      ],
      [
        revokeOnly,
        'Revoke only',
        'revoke_only',
        revokeOnlyUser,
        'revoke_only: the application was switched to receive only user_revoked after the logout was queued; nothing was sent',
      ],
    ] as const) {
      assert.equal(await cancelledCount(clientId), 1, clientId);
      assert.deepEqual(
        cancellationLines(clientId).map((line) => [line.level, line.reason, line.count, line.user_ids]),
        [[40, reason, 1, [userId]]],
      );
      assert.deepEqual(await attemptRows(clientId), [cancelledRow(userId, name, detail)]);
    }
  });
});
