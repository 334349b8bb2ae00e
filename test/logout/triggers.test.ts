import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import type { AuditRecord } from '../../src/audit/events.ts';
import { PGBOSS_SCHEMA } from '../../src/logout/pgboss-transport.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import {
  Browser,
  formAction,
  formField,
  type seedApp,
  seedUser,
  startServer,
  type TestServer,
} from '../helpers/server.ts';
import { holdTokensAt, type RpReceiver, seedReceiverApp, verifyLogoutToken } from './rp-receiver.ts';
import { logoutJobs } from './jobs.ts';

/**
 * Back-channel logout end to end: real sign-ins make a user hold tokens at applications whose back-channel
 * URIs point at relying-party receivers on 127.0.0.1; each trigger must queue exactly the expected
 * deliveries, and the worker's deliveries must verify with the provider's JWKS.
 */
describe(`back-channel logout triggers (${testDatabaseKind})`, () => {
  let server: TestServer;
  const receivers: RpReceiver[] = [];
  const events: AuditRecord[] = [];

  before(async () => {
    // Development mode with private targets allowed, for this test only: the receivers are loopback.
    server = await startServer({ logout: { allowPrivateTargets: true, retryBackoffSeconds: [1, 1] } });
    server.app.audit.subscribe({ name: 'test', receive: (record) => void events.push(record) });
  });
  after(async () => {
    for (const receiver of receivers) await receiver.close();
    await server.close();
  });
  afterEach(() => {
    events.length = 0;
  });

  const receiverApp = (input: Parameters<typeof seedApp>[1] = {}, statuses: number[] = [200]) =>
    seedReceiverApp(server, receivers, input, statuses);

  const jobsOf = (userId: number) => logoutJobs(server.app.database, { userId });
  const idTokenSid = (idToken: string) =>
    (JSON.parse(Buffer.from(idToken.split('.')[1]!, 'base64url').toString()) as { sid?: string }).sid;

  it('sends one logout token per session of the user at an app, each with that session’s sid, and each recorded', async () => {
    const user = await seedUser(server);
    // The app answers 400: a final outcome, recorded in the delivery-attempt table.
    const app = await receiverApp({ name: 'Two sessions' }, [400]);
    const laptop = await holdTokensAt(server, new Browser(), app, user.username);
    const phone = await holdTokensAt(server, new Browser(), app, user.username);
    const expected = [idTokenSid(laptop.id_token), idTokenSid(phone.id_token)].sort();
    assert.ok(expected[0] && expected[1] && expected[0] !== expected[1], 'two sessions, two sids');

    await server.app.directoryAdmin.deactivate({ id: user.id });
    const jobs = await jobsOf(user.id);
    assert.equal(jobs.length, 2, 'one job per session');
    assert.deepEqual(jobs.map((job) => job.sid).sort(), expected);

    await server.app.logout.deliverDue();
    const tokens = app.receiver.tokens();
    assert.equal(tokens.length, 2);
    const received = [];
    for (const token of tokens) {
      const claims = await verifyLogoutToken(server, token, {
        clientId: app.clientId,
        sub: String(user.id),
        sid: 'present',
      });
      received.push(claims.sid as string);
    }
    assert.deepEqual(received.sort(), expected);
    const attempts = await server.app.database.db
      .selectFrom('bcl_delivery_attempt')
      .selectAll()
      .where('client_id', '=', app.clientId)
      .execute();
    assert.deepEqual(
      attempts.map((row) => row.jti).sort(),
      jobs.map((job) => job.jti).sort(),
      'a row for each token',
    );
    const metrics = await server.app.metrics.registry.getSingleMetricAsString('aa_oidc_bcl_dispatches_total');
    assert.match(metrics, new RegExp(`client_id="${app.clientId}",outcome="rp_client_error"} 2`));
  });

  it('sends sub alone when the provider knows no session of the user at the app', async () => {
    const user = await seedUser(server);
    const app = await receiverApp({ name: 'Session gone' });
    await holdTokensAt(server, new Browser(), app, user.username);
    // The session expired and was purged; the tokens live on.
    await server.app.database.db
      .deleteFrom('oidc_payload')
      .where('model', '=', 'Session')
      .where('user_id', '=', String(user.id))
      .execute();

    await server.app.directoryAdmin.deactivate({ id: user.id });
    const jobs = await jobsOf(user.id);
    assert.equal(jobs.length, 1);
    assert.equal(jobs[0]!.sid, null);
    await server.app.logout.deliverDue();
    await verifyLogoutToken(server, app.receiver.tokens()[0]!, {
      clientId: app.clientId,
      sub: String(user.id),
      sid: 'absent',
    });
  });

  it('deactivating a user who holds tokens at two apps delivers one verified token to each, on the first attempt', async () => {
    const user = await seedUser(server);
    const first = await receiverApp({ name: 'First RP' });
    const second = await receiverApp({ name: 'Second RP' });
    const idle = await receiverApp({ name: 'No tokens here' });
    const revokeOnly = await receiverApp({ name: 'Revoke only', backchannelLogoutOnRevokeOnly: true });
    const browser = new Browser();
    const sids = new Map<string, string | undefined>();
    for (const app of [first, second, revokeOnly])
      sids.set(app.clientId, idTokenSid((await holdTokensAt(server, browser, app, user.username)).id_token));

    await server.app.directoryAdmin.deactivate({ id: user.id });
    const jobs = await jobsOf(user.id);
    assert.deepEqual(jobs.map((job) => job.client_id).sort(), [first.clientId, second.clientId].sort());
    assert.ok(jobs.every((job) => job.trigger === 'user_deactivated' && job.status === 'pending'));

    await server.app.logout.deliverDue();
    for (const app of [first, second]) {
      assert.equal(app.receiver.requests.length, 1, 'exactly one request');
      const request = app.receiver.requests[0]!;
      assert.equal(request.method, 'POST');
      assert.equal(request.headers['content-type'], 'application/x-www-form-urlencoded');
      assert.deepEqual([...new URLSearchParams(request.body).keys()], ['logout_token']);
      const claims = await verifyLogoutToken(server, app.receiver.tokens()[0]!, {
        clientId: app.clientId,
        sub: String(user.id),
        sid: 'present',
      });
      const job = (await jobsOf(user.id)).find((row) => row.client_id === app.clientId)!;
      assert.equal(job.status, 'done');
      assert.equal(job.outcome, 'success');
      assert.equal(job.attempts, 1, 'delivered within the first attempt');
      assert.equal(claims.jti, job.jti);
      assert.equal(claims.sid, sids.get(app.clientId), 'the sid of the session the app signed in with');
    }
    assert.equal(idle.receiver.requests.length, 0, 'an app where the user holds no token hears nothing');
    assert.equal(revokeOnly.receiver.requests.length, 0, 'a revoke-only app hears only user_revoked');

    await server.app.audit.idle();
    const required = events.filter((event) => event.kind === 'logout_required');
    const dispatched = events.filter((event) => event.kind === 'logout_dispatched');
    assert.equal(required.length, 2);
    assert.equal(dispatched.length, 2);
    assert.ok(dispatched.every((event) => event.kind === 'logout_dispatched' && event.outcome === 'success'));
    const serialized = JSON.stringify(events);
    for (const app of [first, second])
      assert.ok(!serialized.includes(app.receiver.tokens()[0]!), 'no logout token in any event');
    const metrics = await server.app.metrics.registry.getSingleMetricAsString('aa_oidc_bcl_dispatches_total');
    assert.match(metrics, new RegExp(`client_id="${first.clientId}",outcome="success"} 1`));
    const successRows = await server.app.database.db.selectFrom('bcl_delivery_attempt').selectAll().execute();
    assert.equal(
      successRows.filter((row) => row.outcome === 'success').length,
      0,
      'successes are not recorded by default',
    );
  });

  it('a deactivation or a lost state reaches only the apps where the user still holds an unexpired, unrevoked, unused token', async () => {
    await server.app.directoryAdmin.createState('amber', 30, true);
    await server.app.directoryAdmin.createState('grey', 2, false);
    const db = server.app.database.db;
    for (const change of ['state_changed', 'user_deactivated'] as const) {
      const user = await seedUser(server, { oidcAccess: false, state: 'amber' });
      const live = await receiverApp({ name: 'Live tokens' });
      const expired = await receiverApp({ name: 'Expired tokens' });
      const revoked = await receiverApp({ name: 'Revoked tokens' });
      const usedUp = await receiverApp({ name: 'Used-up tokens' });
      const browser = new Browser();
      for (const app of [live, expired, revoked, usedUp])
        await holdTokensAt(server, browser, app, user.username);
      const tokensAt = (clientId: string) =>
        db
          .updateTable('oidc_payload')
          .where('client_id', '=', clientId)
          .where('user_id', '=', String(user.id))
          .where('model', 'in', ['AccessToken', 'RefreshToken']);
      await tokensAt(expired.clientId)
        .set({ expires_at: Date.now() - 1000 })
        .execute();
      await tokensAt(revoked.clientId)
        .set({ revoked_at: Date.now() - 1000, revoked_reason: 'revocation_endpoint' })
        .execute();
      // What is left at an app whose tokens were revoked after a refresh: the refresh token that
      // refresh rotated, used up (revocation leaves it alone); it is held no more.
      await tokensAt(usedUp.clientId)
        .set({ revoked_at: Date.now() - 1000, revoked_reason: 'revocation_endpoint' })
        .execute();
      await tokensAt(usedUp.clientId)
        .where('model', '=', 'RefreshToken')
        .set({ revoked_at: null, revoked_reason: null, consumed_at: Date.now() - 1000 })
        .execute();

      if (change === 'state_changed') await server.app.directoryAdmin.setState({ id: user.id }, 'grey');
      else await server.app.directoryAdmin.deactivate({ id: user.id });
      const jobs = await jobsOf(user.id);
      assert.deepEqual(
        jobs.map((job) => [job.client_id, job.trigger]),
        [[live.clientId, change]],
        change,
      );
    }
  });

  it('a deactivated app is not told; tokens revoke-user reaches revoke-only apps too', async () => {
    const user = await seedUser(server);
    const normal = await receiverApp({ name: 'Normal' });
    const revokeOnly = await receiverApp({ name: 'Revoke only', backchannelLogoutOnRevokeOnly: true });
    const switchedOff = await receiverApp({ name: 'Switched off' });
    const browser = new Browser();
    for (const app of [normal, revokeOnly, switchedOff])
      await holdTokensAt(server, browser, app, user.username);
    await server.app.applications.deactivate(switchedOff.clientId, 'test');

    await server.app.tokens.revokeUser(user.username);
    const jobs = await jobsOf(user.id);
    assert.deepEqual(jobs.map((job) => job.client_id).sort(), [normal.clientId, revokeOnly.clientId].sort());
    assert.ok(jobs.every((job) => job.trigger === 'user_revoked'));
    await server.app.logout.deliverDue();
    await verifyLogoutToken(server, normal.receiver.tokens()[0]!, {
      clientId: normal.clientId,
      sub: String(user.id),
      sid: 'present',
    });
    await verifyLogoutToken(server, revokeOnly.receiver.tokens()[0]!, {
      clientId: revokeOnly.clientId,
      sub: String(user.id),
      sid: 'present',
    });
    assert.equal(switchedOff.receiver.requests.length, 0);
  });

  it('a logout queued before the app was deactivated is cancelled, not sent; bcl test sends nothing to it', async () => {
    const user = await seedUser(server);
    const doomed = await receiverApp({ name: 'Deactivated after the queue' });
    await holdTokensAt(server, new Browser(), doomed, user.username);
    await server.app.tokens.revokeUser(user.username);
    assert.deepEqual(
      (await jobsOf(user.id)).map((job) => [job.client_id, job.status]),
      [[doomed.clientId, 'pending']],
    );

    await server.app.applications.deactivate(doomed.clientId, 'test');
    await server.app.logout.deliverDue();
    assert.deepEqual(
      (await jobsOf(user.id)).map((job) => [job.status, job.outcome]),
      [['done', 'cancelled']],
    );
    const [tested] = await server.app.logout.testDelivery([doomed.clientId]);
    assert.equal(tested?.outcome, 'not_sent');
    assert.match(tested?.detail ?? '', /deactivated/);
    assert.equal(doomed.receiver.requests.length, 0, 'a deactivated application is told nothing');
  });

  it('a group or state change reaches only the apps it newly denies', async () => {
    await server.app.directoryAdmin.createGroup('fleet-command', false);
    await server.app.directoryAdmin.createState('blue', 10, true);
    await server.app.directoryAdmin.createState('neutral', 1, false);
    const user = await seedUser(server, { oidcAccess: false, state: 'blue', groups: ['fleet-command'] });
    const fcOnly = await receiverApp({ name: 'FC tools', groups: ['fleet-command'] });
    const blueOnly = await receiverApp({ name: 'Blue tools', states: ['blue'] });
    const open = await receiverApp({ name: 'Open' });
    const browser = new Browser();
    for (const app of [fcOnly, blueOnly, open]) await holdTokensAt(server, browser, app, user.username);

    await server.app.directoryAdmin.addGroup({ id: user.id }, 'fleet-command').catch(() => undefined);
    await server.app.directoryAdmin.createGroup('mining', false);
    await server.app.directoryAdmin.addGroup({ id: user.id }, 'mining');
    assert.equal((await jobsOf(user.id)).length, 0, 'gaining a group denies nothing');

    await server.app.directoryAdmin.removeGroup({ id: user.id }, 'fleet-command');
    let jobs = await jobsOf(user.id);
    assert.deepEqual(
      jobs.map((job) => [job.client_id, job.trigger]),
      [[fcOnly.clientId, 'groups_changed']],
    );

    // Losing the state loses the global gate too (the state gave oidc_access): every app still
    // allowed before is newly denied, the FC app (already denied) is not told twice.
    await server.app.directoryAdmin.setState({ id: user.id }, 'neutral');
    jobs = await jobsOf(user.id);
    assert.deepEqual(
      jobs
        .filter((job) => job.trigger === 'state_changed')
        .map((job) => job.client_id)
        .sort(),
      [blueOnly.clientId, open.clientId].sort(),
    );
    await server.app.logout.deliverDue();
    assert.equal(fcOnly.receiver.requests.length, 1);
    assert.equal(blueOnly.receiver.requests.length, 1);
    assert.equal(open.receiver.requests.length, 1);
  });

  it('revoking a state’s access flag reaches its members’ apps', async () => {
    await server.app.directoryAdmin.createState('red', 20, true);
    const user = await seedUser(server, { oidcAccess: false, state: 'red' });
    const app = await receiverApp({ name: 'Red app' });
    await holdTokensAt(server, new Browser(), app, user.username);
    await server.app.directoryAdmin.grantStateAccess('red', false);
    const jobs = await jobsOf(user.id);
    assert.deepEqual(
      jobs.map((job) => [job.client_id, job.trigger]),
      [[app.clientId, 'state_changed']],
    );
  });

  it('deleting a user delivers user_deleted', async () => {
    const user = await seedUser(server);
    const app = await receiverApp({ name: 'Deleted user app' });
    await holdTokensAt(server, new Browser(), app, user.username);
    await server.app.directoryAdmin.deleteUser({ id: user.id });
    const jobs = await jobsOf(user.id);
    assert.deepEqual(
      jobs.map((job) => job.trigger),
      ['user_deleted'],
    );
    await server.app.logout.deliverDue();
    await verifyLogoutToken(server, app.receiver.tokens()[0]!, {
      clientId: app.clientId,
      sub: String(user.id),
      sid: 'present',
    });
  });

  it('RP-initiated logout reaches every app of the session, each token with that app’s sid', async () => {
    const user = await seedUser(server);
    const first = await receiverApp({ name: 'Session app 1' });
    const second = await receiverApp({ name: 'Session app 2' });
    const browser = new Browser();
    const tokens = await holdTokensAt(server, browser, first, user.username);
    const secondTokens = await holdTokensAt(server, browser, second, user.username);

    const confirm = await browser.fetch(
      `${server.issuer}/logout/?${new URLSearchParams({ id_token_hint: tokens.id_token })}`,
    );
    assert.equal(confirm.status, 200);
    const page = await confirm.text();
    const done = await browser.fetch(formAction(page, server.origin), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ xsrf: formField(page, 'xsrf'), logout: 'yes' }).toString(),
    });
    assert.equal(done.status, 303);
    const jobs = await jobsOf(user.id);
    assert.deepEqual(jobs.map((job) => job.client_id).sort(), [first.clientId, second.clientId].sort());
    assert.ok(jobs.every((job) => job.trigger === 'rp_initiated' && job.sid !== null));
    await server.app.logout.deliverDue();
    const sids = [];
    for (const [app, issued] of [
      [first, tokens],
      [second, secondTokens],
    ] as const) {
      const claims = await verifyLogoutToken(server, app.receiver.tokens()[0]!, {
        clientId: app.clientId,
        sub: String(user.id),
        sid: 'present',
      });
      assert.equal(claims.sid, idTokenSid(issued.id_token), 'the sid the app got in its ID token');
      sids.push(claims.sid);
    }
    assert.notEqual(sids[0], sids[1], 'each app has its own sid');
  });

  /** Makes every insert into the logout queue fail (a real database error), until the returned undo. */
  async function refuseQueueInserts(): Promise<() => Promise<void>> {
    const db = server.app.database.db;
    if (server.app.database.kind === 'sqlite') {
      await sql`create trigger refuse_bcl_job before insert on bcl_job
        begin select raise(abort, 'the queue refuses jobs'); end`.execute(db);
      return async () => void (await sql`drop trigger refuse_bcl_job`.execute(db));
    }
    // pg-boss installs its schema on first use: queue (and finish) one job so that its table exists.
    const warmUp = await receiverApp({ name: 'Warm-up' });
    const someone = await seedUser(server);
    await holdTokensAt(server, new Browser(), warmUp, someone.username);
    await server.app.directoryAdmin.deactivate({ id: someone.id });
    await sql`create or replace function refuse_bcl_job() returns trigger language plpgsql as
      $$ begin raise exception 'the queue refuses jobs'; end $$`.execute(db);
    await sql`create trigger refuse_bcl_job before insert on ${sql.table(`${PGBOSS_SCHEMA}.job`)}
      for each row execute function refuse_bcl_job()`.execute(db);
    return async () =>
      void (await sql`drop trigger refuse_bcl_job on ${sql.table(`${PGBOSS_SCHEMA}.job`)}`.execute(db));
  }

  it('RP-initiated logout that cannot queue its back-channel logouts answers an error page and ends nothing', async () => {
    const user = await seedUser(server);
    const app = await receiverApp({ name: 'Queue down' });
    const browser = new Browser();
    const tokens = await holdTokensAt(server, browser, app, user.username);
    const sessions = () =>
      server.app.database.db
        .selectFrom('oidc_payload')
        .select('id')
        .where('model', '=', 'Session')
        .where('user_id', '=', String(user.id))
        .execute();
    const before = await sessions();
    assert.equal(before.length, 1);

    const confirm = await browser.fetch(
      `${server.issuer}/logout/?${new URLSearchParams({ id_token_hint: tokens.id_token })}`,
    );
    const page = await confirm.text();
    const signOut = () =>
      browser.fetch(formAction(page, server.origin), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ xsrf: formField(page, 'xsrf'), logout: 'yes' }).toString(),
      });
    const undo = await refuseQueueInserts();
    let refused: Response;
    try {
      refused = await signOut();
    } finally {
      await undo();
    }
    assert.equal(refused.status, 503);
    assert.match(await refused.text(), /You are still signed in/);
    assert.deepEqual(await sessions(), before, 'the session is not destroyed');
    assert.equal((await jobsOf(user.id)).length, 0);
    const introspected = await fetch(`${server.issuer}/introspect/`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${app.clientId}:${app.clientSecret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ token: tokens.refresh_token }).toString(),
    });
    assert.equal(((await introspected.json()) as { active: boolean }).active, true, 'the grant lives on');

    // Once the queue takes jobs again, the same confirmation signs out and queues the logout.
    const done = await signOut();
    assert.equal(done.status, 303);
    assert.deepEqual(await sessions(), []);
    const jobs = await jobsOf(user.id);
    assert.equal(jobs.length, 1);
    assert.equal(jobs[0]!.trigger, 'rp_initiated');
    assert.equal(jobs[0]!.sid, idTokenSid(tokens.id_token));
  });
});
