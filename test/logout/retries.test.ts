import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateKeyPairSync } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { buildLogoutToken } from '../../src/logout/logout-token.ts';
import { consoleGet, consoleSignIn, pageText } from '../helpers/console.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { type LogoutWorkerFixture, startLogoutWorkerFixture } from '../helpers/logout-worker.ts';
import { Browser, seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';
import { type Receiver, startReceiver } from './helpers.ts';
import { holdTokensAt, type RpReceiver, startRpReceiver, verifyLogoutToken } from './rp-receiver.ts';
import { agePendingJob, assertSameLogout, logoutJobs, setPendingJobKid } from './jobs.ts';

describe('logout token', () => {
  it('is rebuilt byte for byte from the same pinned values (RS256 is deterministic)', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const claims = {
      issuer: 'https://auth.example.org/o',
      clientId: 'rp1',
      sub: '42',
      jti: 'c29tZS1yYW5kb20tanRp',
      iat: 1_800_000_000,
      exp: 1_800_000_300,
      kid: 'kid-1',
      sid: 'session-1',
    };
    const first = await buildLogoutToken(claims, privateKey);
    assert.equal(await buildLogoutToken({ ...claims }, privateKey), first);
    assert.notEqual(await buildLogoutToken({ ...claims, jti: 'another-jti-value' }, privateKey), first);
    const [header, payload] = first
      .split('.')
      .slice(0, 2)
      .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString()));
    assert.deepEqual(header, { alg: 'RS256', typ: 'logout+jwt', kid: 'kid-1' });
    assert.deepEqual(Object.keys(payload), ['iss', 'aud', 'iat', 'exp', 'jti', 'sub', 'events', 'sid']);
    const withoutSid = await buildLogoutToken({ ...claims, sid: null }, privateKey);
    const plain = JSON.parse(Buffer.from(withoutSid.split('.')[1]!, 'base64url').toString()) as object;
    assert.ok(!('sid' in plain));
  });
});

describe(`back-channel logout delivery outcomes (${testDatabaseKind})`, () => {
  let server: TestServer;
  const receivers: RpReceiver[] = [];

  before(async () => {
    server = await startServer({ logout: { allowPrivateTargets: true, retryBackoffSeconds: [1, 1] } });
  });
  after(async () => {
    for (const receiver of receivers) await receiver.close();
    await server.close();
  });

  async function deactivatedHolderOf(statuses: number[], location?: string) {
    const receiver = await startRpReceiver(statuses, location);
    receivers.push(receiver);
    const app = await seedApp(server, { skipAuthorization: true, backchannelLogoutUri: receiver.url() });
    const user = await seedUser(server);
    await holdTokensAt(server, new Browser(), app, user.username);
    await server.app.directoryAdmin.deactivate({ id: user.id });
    const job = async () => {
      const [row] = await logoutJobs(server.app.database, { userId: user.id });
      assert.ok(row, 'the job is queued');
      return row;
    };
    return { app, user, receiver, job };
  }

  const attemptRows = (clientId: string) =>
    server.app.database.db
      .selectFrom('bcl_delivery_attempt')
      .selectAll()
      .where('client_id', '=', clientId)
      .execute();

  it('retries a receiver that fails twice, each attempt the same logout signed afresh, and succeeds on the third', async () => {
    const { app, user, receiver, job } = await deactivatedHolderOf([500, 500, 200]);
    const worker = server.app.logout.startWorker({ pollIntervalMs: 50 });
    try {
      await eventually(() => receiver.requests.length >= 3, 'three attempts', 10_000);
    } finally {
      await worker.stop();
    }
    const tokens = receiver.tokens();
    assert.equal(tokens.length, 3);
    assertSameLogout(tokens[1]!, tokens[0]!, 'the second attempt');
    assertSameLogout(tokens[2]!, tokens[1]!, 'the third attempt');
    await verifyLogoutToken(server, tokens[0]!, { clientId: app.clientId, sub: String(user.id) });
    const row = await job();
    assert.equal(row.outcome, 'success');
    assert.equal(row.attempts, 3);
    const histogram = await server.app.metrics.registry.getSingleMetricAsString(
      'aa_oidc_bcl_delivery_seconds',
    );
    const count = /aa_oidc_bcl_delivery_seconds_count\{outcome="success"\} (\d+)/.exec(histogram);
    assert.ok(count && Number(count[1]) >= 1, 'the delivery time is observed');
    const sum = /aa_oidc_bcl_delivery_seconds_sum\{outcome="success"\} ([\d.]+)/.exec(histogram);
    assert.ok(sum && Number(sum[1]) >= 2, 'from the first attempt to the outcome: two 1 s backoffs');
    assert.deepEqual(await attemptRows(app.clientId), [], 'a success is not recorded by default');
  });

  it('gives up after the configured retries: retries_exhausted, recorded', async () => {
    const { app, receiver, job } = await deactivatedHolderOf([503]);
    for (let round = 0; round < 3; round += 1) {
      const due = await server.app.logout.deliverDue();
      assert.equal(due, 1, `attempt ${round + 1} is due`);
      if (round < 2) await new Promise((resolve) => setTimeout(resolve, 1050));
    }
    assert.equal(receiver.requests.length, 3, 'one attempt and two retries ([1, 1])');
    assert.equal((await job()).outcome, 'retries_exhausted');
    const [recorded] = await attemptRows(app.clientId);
    assert.equal(recorded?.outcome, 'retries_exhausted');
    assert.equal(recorded?.attempts, 3);
    assert.equal(recorded?.http_status, 503);
    assert.equal(recorded?.client_name, 'Test RP');
  });

  it('does not retry a 4xx: rp_client_error after one attempt, recorded', async () => {
    const { app, receiver, job } = await deactivatedHolderOf([400, 200]);
    await server.app.logout.deliverDue();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await server.app.logout.deliverDue();
    assert.equal(receiver.requests.length, 1);
    assert.equal((await job()).outcome, 'rp_client_error');
    assert.equal((await attemptRows(app.clientId))[0]?.outcome, 'rp_client_error');
  });

  it('never follows a redirect: redirect_blocked, the target not contacted', async () => {
    const target = await startRpReceiver([200]);
    receivers.push(target);
    const { receiver, job } = await deactivatedHolderOf([302], target.url('/stolen'));
    await server.app.logout.deliverDue();
    assert.equal(receiver.requests.length, 1);
    assert.equal(target.requests.length, 0, 'the redirect target is never contacted');
    assert.equal((await job()).outcome, 'redirect_blocked');
  });

  it('signs with the active key a job queued under a key no longer loaded', async () => {
    const { app, user, receiver, job } = await deactivatedHolderOf([200]);
    await setPendingJobKid(server.app.database, (await job()).jti, 'a-key-that-was-removed');
    await server.app.logout.deliverDue();
    assert.equal(receiver.requests.length, 1);
    assert.equal((await job()).outcome, 'success');
    await verifyLogoutToken(server, receiver.tokens()[0]!, { clientId: app.clientId, sub: String(user.id) });
  });

  /**
   * Runs `work` with the active key retired and none in its place (a restored backup): the key
   * still verifies, in JWKS, and the next key stays next. Returns the retired key's kid.
   */
  async function withoutActiveKey(work: () => Promise<void>): Promise<string> {
    const activeKid = server.app.keyStore.activeKid();
    const setStatus = async (status: 'active' | 'retired') => {
      await server.app.database.db
        .updateTable('signing_key')
        .set((eb) => ({
          status,
          publish_until: status === 'retired' ? Date.now() + 3_600_000 : null,
          revision: eb('revision', '+', 1),
        }))
        .where('kid', '=', activeKid)
        .execute();
      await server.app.keyStore.reload();
    };
    await setStatus('retired');
    try {
      assert.ok(!server.app.keyStore.loadedKeys().some((key) => key.status === 'active'));
      await work();
    } finally {
      await setStatus('active');
    }
    return activeKid;
  }

  /** The `kid` in a token's header. */
  const kidOf = (token: string) =>
    (JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;

  /**
   * Runs `work` with every published key out of the store and JWKS (a restored backup without keys;
   * their private parts kept so that they come back), then puts them back as they were.
   */
  async function withoutAnyKey(work: () => Promise<void>): Promise<void> {
    const rows = await server.app.database.db
      .selectFrom('signing_key')
      .select(['kid', 'status'])
      .where('status', '!=', 'removed')
      .execute();
    const setStatus = async (kid: string, status: (typeof rows)[number]['status']) => {
      await server.app.database.db
        .updateTable('signing_key')
        .set((eb) => ({ status, revision: eb('revision', '+', 1) }))
        .where('kid', '=', kid)
        .execute();
    };
    for (const row of rows) await setStatus(row.kid, 'removed');
    await server.app.keyStore.reload();
    try {
      assert.deepEqual(server.app.keyStore.loadedKeys(), []);
      await work();
    } finally {
      for (const row of rows) await setStatus(row.kid, row.status);
      await server.app.keyStore.reload();
    }
  }

  it('without an active key, signs with the job’s own key while it is loaded, else with the next key, both published', async () => {
    const kept = await deactivatedHolderOf([200]);
    const gone = await deactivatedHolderOf([200]);
    const none = await deactivatedHolderOf([200]);
    await setPendingJobKid(server.app.database, (await gone.job()).jti, 'a-key-that-was-removed');
    // Queued while no key at all was loaded (jobs.ts): it names none.
    await setPendingJobKid(server.app.database, (await none.job()).jti, '');
    const nextKid = server.app.keyStore.loadedKeys().find((key) => key.status === 'next')?.kid;
    assert.ok(nextKid, 'the server prepared a next key');
    const retiredKid = await withoutActiveKey(async () => {
      assert.equal(await server.app.logout.deliverDue(), 3);
    });
    for (const [holder, kid, what] of [
      [kept, retiredKid, 'the job’s own key, retired since and still published'],
      [gone, nextKid, 'the next key: the job’s own is no longer loaded'],
      [none, nextKid, 'the next key: the job names none'],
    ] as const) {
      assert.equal((await holder.job()).outcome, 'success', what);
      assert.equal(holder.receiver.requests.length, 1, what);
      const [token] = holder.receiver.tokens();
      assert.equal(kidOf(token!), kid, what);
      // Verified with the JWKS the server publishes: whatever key signed, a relying party can check it.
      await verifyLogoutToken(server, token!, { clientId: holder.app.clientId, sub: String(holder.user.id) });
    }
    assert.deepEqual(await attemptRows(gone.app.clientId), [], 'a success is not recorded by default');
  });

  it('with no signing key loaded at all, ends with signing_kid_retired, recorded, and sends nothing', async () => {
    const named = await deactivatedHolderOf([200]);
    const none = await deactivatedHolderOf([200]);
    const namedKid = (await named.job()).kid;
    assert.notEqual(namedKid, '', 'queued under the active key');
    await setPendingJobKid(server.app.database, (await none.job()).jti, '');
    await withoutAnyKey(async () => {
      assert.equal(await server.app.logout.deliverDue(), 2);
    });
    for (const holder of [named, none]) {
      const row = await holder.job();
      assert.equal(row.outcome, 'signing_kid_retired');
      assert.equal(row.attempts, 1, 'no retry: nothing could sign it');
      assert.equal(holder.receiver.requests.length, 0, 'nothing sent');
    }
    const [recorded] = await attemptRows(named.app.clientId);
    assert.equal(recorded?.outcome, 'signing_kid_retired');
    assert.equal(
      recorded?.detail,
      `no signing key is loaded, not even ${namedKid}, the one the logout was queued under (serve and worker create one at their start; \`aa-oidc check\` tells)`,
    );
    const [unnamed] = await attemptRows(none.app.clientId);
    assert.match(
      unnamed?.detail ?? '',
      /^no signing key is loaded, nor was any when the logout was queued \(serve and worker create one/,
    );
  });

  it('queues the logouts of a deactivation made while no active key is loaded, under a loaded key, and delivers them', async () => {
    const receiver = await startRpReceiver([200]);
    receivers.push(receiver);
    const app = await seedApp(server, { skipAuthorization: true, backchannelLogoutUri: receiver.url() });
    const user = await seedUser(server);
    await holdTokensAt(server, new Browser(), app, user.username);
    const nextKid = server.app.keyStore.loadedKeys().find((key) => key.status === 'next')?.kid;
    assert.ok(nextKid, 'the server prepared a next key');
    await withoutActiveKey(async () => {
      // Before, the job factory threw inside the deactivation's transaction: no deactivation, no logout.
      await server.app.directoryAdmin.deactivate({ id: user.id });
      const [row] = await logoutJobs(server.app.database, { userId: user.id });
      assert.ok(row, 'the logout is queued');
      assert.equal(row.kid, nextKid, 'under the key loaded longest: the next key');
      assert.equal(await server.app.logout.deliverDue(), 1);
    });
    const [row] = await logoutJobs(server.app.database, { userId: user.id });
    assert.equal(row?.outcome, 'success');
    assert.equal(receiver.requests.length, 1);
    await verifyLogoutToken(server, receiver.tokens()[0]!, { clientId: app.clientId, sub: String(user.id) });
    const [header] = receiver.tokens()[0]!.split('.');
    assert.equal(
      (JSON.parse(Buffer.from(header!, 'base64url').toString()) as { kid: string }).kid,
      nextKid,
      'signed with the job’s key, no key being active',
    );
  });

  it('sends a job that waited in the queue past its first lifetime (a crash, a stopped worker) unexpired', async () => {
    const { app, user, receiver, job } = await deactivatedHolderOf([200]);
    // Queued an hour ago: the token then signed would have expired 55 minutes ago.
    await agePendingJob(server.app.database, (await job()).jti, 3600);
    await server.app.logout.deliverDue();
    assert.equal((await job()).outcome, 'success');
    const claims = await verifyLogoutToken(server, receiver.tokens()[0]!, {
      clientId: app.clientId,
      sub: String(user.id),
    });
    const now = Math.floor(Date.now() / 1000);
    assert.ok(Number(claims.iat) >= now - 60 && Number(claims.exp) > now, JSON.stringify(claims));
  });

  it('bcl test delivers a token for a no-op subject and reports the outcome per app', async () => {
    const good = await startRpReceiver([200]);
    const bad = await startRpReceiver([404]);
    receivers.push(good, bad);
    const first = await seedApp(server, { name: 'Good', backchannelLogoutUri: good.url() });
    const second = await seedApp(server, { name: 'Bad', backchannelLogoutUri: bad.url() });
    const none = await seedApp(server, { name: 'No URI' });
    const results = await server.app.logout.testDelivery([
      first.clientId,
      second.clientId,
      none.clientId,
      'nope',
    ]);
    assert.deepEqual(
      results.map((result) => [result.clientId, result.outcome, result.httpStatus]),
      [
        [first.clientId, 'success', 200],
        [second.clientId, 'rp_client_error', 404],
        [none.clientId, 'not_sent', null],
        ['nope', 'not_sent', null],
      ],
    );
    const claims = await verifyLogoutToken(server, good.tokens()[0]!, { clientId: first.clientId });
    assert.match(String(claims.sub), /^aa-oidc-bcl-test-[0-9a-f]{16}$/);
    const users = await server.app.directoryAdmin.listUsers();
    assert.ok(users.every((profile) => String(profile.user.id) !== claims.sub));
    assert.equal((await attemptRows(second.clientId))[0]?.trigger, 'admin_test');
  });
});

describe(`the time of a delivery whose first attempt timed out (${testDatabaseKind})`, () => {
  let fixture: LogoutWorkerFixture;
  let receiver: Receiver;
  const unanswered: ServerResponse[] = [];

  before(async () => {
    // Keeps the first request unanswered (its attempt times out), answers the next.
    receiver = await startReceiver((_request, response) => {
      if (receiver.requests.length === 1) unanswered.push(response);
      else response.end();
    });
    fixture = await startLogoutWorkerFixture({
      logout: { allowPrivateTargets: true, requestTimeoutMs: 1000, retryBackoffSeconds: [1] },
    });
  });
  after(async () => {
    for (const response of unanswered) response.end();
    await fixture.close();
    await receiver.close();
  });

  it('is measured from the start of the first attempt, its timeout included', async () => {
    const { services } = fixture;
    const clientId = await fixture.application('Times out once', receiver.url());
    const userId = await fixture.userHoldingToken('times-out-once', clientId);
    await services.directoryAdmin.deactivate({ id: userId });
    assert.equal(await services.logout.deliverDue(), 1, 'the first attempt');
    await eventually(async () => (await services.logout.deliverDue()) === 1, 'the retry is made');
    const [job] = await logoutJobs(services.database, { userId });
    assert.equal(job?.outcome, 'success');
    assert.equal(job?.attempts, 2);
    const histogram = await services.metrics.registry.getSingleMetricAsString('aa_oidc_bcl_delivery_seconds');
    const sum = /aa_oidc_bcl_delivery_seconds_sum\{outcome="success"\} ([\d.]+)/.exec(histogram);
    assert.ok(
      sum && Number(sum[1]) >= 2,
      `from the first attempt to the outcome: its 1 s request timeout and the 1 s backoff (${sum?.[1]} s)`,
    );
  });
});

describe(`back-channel logout deliveries with recordSuccessfulDeliveries on (${testDatabaseKind})`, () => {
  let server: TestServer;
  let admin: Browser;
  const receivers: RpReceiver[] = [];

  before(async () => {
    server = await startServer({
      logout: { allowPrivateTargets: true, retryBackoffSeconds: [1, 1], recordSuccessfulDeliveries: true },
    });
    admin = await consoleSignIn(server, (await seedUser(server, { superuser: true })).username, {
      returnTo: '/admin',
    });
  });
  after(async () => {
    for (const receiver of receivers) await receiver.close();
    await server.close();
  });

  async function receiverApp(name: string, statuses: number[]) {
    const receiver = await startRpReceiver(statuses);
    receivers.push(receiver);
    const app = await seedApp(server, {
      name,
      skipAuthorization: true,
      backchannelLogoutUri: receiver.url(),
    });
    return { ...app, receiver };
  }

  it('records each successful delivery of a fan-out, with its attempts, and lists it on the deliveries page', async () => {
    const user = await seedUser(server);
    const retried = await receiverApp('Retried RP', [500, 200]);
    const prompt = await receiverApp('Prompt RP', [200]);
    const browser = new Browser();
    for (const app of [retried, prompt]) await holdTokensAt(server, browser, app, user.username);
    await server.app.directoryAdmin.deactivate({ id: user.id });
    const jobs = await logoutJobs(server.app.database, { userId: user.id });
    assert.equal(jobs.length, 2);

    const worker = server.app.logout.startWorker({ pollIntervalMs: 50 });
    try {
      await eventually(
        async () =>
          (await logoutJobs(server.app.database, { userId: user.id })).every(
            (job) => job.outcome === 'success',
          ),
        'both deliveries succeed',
      );
    } finally {
      await worker.stop();
    }
    assert.equal(retried.receiver.requests.length, 2, 'one failure, then the success');
    assert.equal(prompt.receiver.requests.length, 1);

    const rows = await server.app.database.db
      .selectFrom('bcl_delivery_attempt')
      .select(['client_id', 'client_name', 'user_id', 'trigger', 'jti', 'attempts', 'outcome', 'http_status'])
      .where('user_id', '=', user.id)
      .orderBy('client_name')
      .execute();
    const jti = (clientId: string) => jobs.find((job) => job.client_id === clientId)!.jti;
    assert.deepEqual(rows, [
      {
        client_id: prompt.clientId,
        client_name: 'Prompt RP',
        user_id: user.id,
        trigger: 'user_deactivated',
        jti: jti(prompt.clientId),
        attempts: 1,
        outcome: 'success',
        http_status: 200,
      },
      {
        client_id: retried.clientId,
        client_name: 'Retried RP',
        user_id: user.id,
        trigger: 'user_deactivated',
        jti: jti(retried.clientId),
        attempts: 2,
        outcome: 'success',
        http_status: 200,
      },
    ]);

    const page = await consoleGet(
      admin,
      `${server.origin}/admin/deliveries?client_id=${retried.clientId}&outcome=success`,
    );
    assert.equal(page.status, 200);
    assert.match(pageText(page.body), /1 delivery outcome\(s\)/);
    assert.match(pageText(page.body), /Retried RP/);
    assert.match(pageText(page.body), /success/);
    const failures = await consoleGet(
      admin,
      `${server.origin}/admin/deliveries?client_id=${retried.clientId}&outcome=failures`,
    );
    assert.match(failures.body, /No delivery matches/, 'the retried failure is not an outcome of its own');
  });

  it('records a successful bcl test delivery too', async () => {
    const app = await receiverApp('Tested RP', [200]);
    const [result] = await server.app.logout.testDelivery([app.clientId]);
    assert.equal(result?.outcome, 'success');
    const rows = await server.app.database.db
      .selectFrom('bcl_delivery_attempt')
      .select(['trigger', 'outcome', 'http_status', 'attempts', 'user_id'])
      .where('client_id', '=', app.clientId)
      .execute();
    assert.deepEqual(rows, [
      { trigger: 'admin_test', outcome: 'success', http_status: 200, attempts: 1, user_id: null },
    ]);
  });
});

describe(`stopping the back-channel logout worker (${testDatabaseKind})`, () => {
  let server: TestServer;
  let slow: Receiver;
  /** The receiver's answers, held until the test releases them. */
  const answers: Array<() => void> = [];

  before(async () => {
    server = await startServer({ logout: { allowPrivateTargets: true } });
    slow = await startReceiver((_request, response) => answers.push(() => response.end()));
  });
  after(async () => {
    for (const answer of answers) answer();
    await slow.close();
    await server.close();
  });

  it('finishes and records the delivery in flight before it stops (SIGTERM)', async () => {
    const app = await seedApp(server, { skipAuthorization: true, backchannelLogoutUri: slow.url() });
    const user = await seedUser(server);
    await holdTokensAt(server, new Browser(), app, user.username);
    await server.app.directoryAdmin.deactivate({ id: user.id });
    const worker = server.app.logout.startWorker({ pollIntervalMs: 50 });
    try {
      await eventually(() => answers.length === 1, 'the logout reaches the receiver', 10_000);
      let stopped = false;
      const stopping = worker.stop().then(() => (stopped = true));
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(stopped, false, 'the worker waits for the receiver to answer');
      answers[0]!();
      await stopping;
    } finally {
      for (const answer of answers) answer();
      await worker.stop();
    }
    const [row] = await logoutJobs(server.app.database, { userId: user.id });
    assert.equal(row?.status, 'done', 'recorded before the worker stopped');
    assert.equal(row?.outcome, 'success');
    assert.equal(row?.attempts, 1);
    assert.equal(slow.requests.length, 1);
  });

  it('starts a new worker after a stop instead of handing back the stopped one, and it delivers', async () => {
    const receiver = await startRpReceiver([200]);
    try {
      const first = server.app.logout.startWorker({ pollIntervalMs: 50 });
      assert.equal(server.app.logout.startWorker(), first, 'a running worker is the one returned');
      await first.stop();
      const second = server.app.logout.startWorker({ pollIntervalMs: 50 });
      try {
        assert.notEqual(second, first, 'the stopped worker is not handed back');
        const app = await seedApp(server, { skipAuthorization: true, backchannelLogoutUri: receiver.url() });
        const user = await seedUser(server);
        await holdTokensAt(server, new Browser(), app, user.username);
        await server.app.directoryAdmin.deactivate({ id: user.id });
        await eventually(() => receiver.requests.length === 1, 'the new worker delivers the logout', 10_000);
      } finally {
        await second.stop();
      }
    } finally {
      await receiver.close();
    }
  });

  it('a worker started while the stopped one finishes an attempt claims only once that attempt ended', async () => {
    const receiver = await startRpReceiver([200]);
    const held = answers.length;
    try {
      const slowApp = await seedApp(server, { skipAuthorization: true, backchannelLogoutUri: slow.url() });
      const slowUser = await seedUser(server);
      await holdTokensAt(server, new Browser(), slowApp, slowUser.username);
      await server.app.directoryAdmin.deactivate({ id: slowUser.id });
      const first = server.app.logout.startWorker({ pollIntervalMs: 50 });
      await eventually(() => answers.length === held + 1, 'the logout reaches the slow receiver', 10_000);
      const stopping = first.stop();
      const second = server.app.logout.startWorker({ pollIntervalMs: 50 });
      try {
        const app = await seedApp(server, { skipAuthorization: true, backchannelLogoutUri: receiver.url() });
        const user = await seedUser(server);
        await holdTokensAt(server, new Browser(), app, user.username);
        await server.app.directoryAdmin.deactivate({ id: user.id });
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.equal(receiver.requests.length, 0, 'one worker at a time: the new one waits');
        answers[held]!();
        await stopping;
        await eventually(() => receiver.requests.length === 1, 'the new worker delivers the logout', 10_000);
      } finally {
        await second.stop();
      }
    } finally {
      for (const answer of answers) answer();
      await receiver.close();
    }
  });
});

describe(`closing the back-channel logout service after its worker's stop (${testDatabaseKind})`, () => {
  let server: TestServer;
  let slow: Receiver;
  const answers: Array<() => void> = [];

  before(async () => {
    server = await startServer({ logout: { allowPrivateTargets: true } });
    slow = await startReceiver((_request, response) => answers.push(() => response.end()));
  });
  after(async () => {
    for (const answer of answers) answer();
    await slow.close();
    await server.close();
  });

  it('waits for the delivery in flight when the worker was told to stop and the stop not awaited', async () => {
    const app = await seedApp(server, { skipAuthorization: true, backchannelLogoutUri: slow.url() });
    const user = await seedUser(server);
    await holdTokensAt(server, new Browser(), app, user.username);
    await server.app.directoryAdmin.deactivate({ id: user.id });
    const worker = server.app.logout.startWorker({ pollIntervalMs: 50 });
    await eventually(() => answers.length === 1, 'the logout reaches the receiver', 10_000);
    void worker.stop();
    let closed = false;
    const closing = server.app.logout.close().then(() => (closed = true));
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(closed, false, 'the service closes only once the receiver answered');
    } finally {
      answers[0]!();
      await closing;
    }
    const [row] = await logoutJobs(server.app.database, { userId: user.id });
    assert.equal(row?.status, 'done', 'recorded before the service closed');
    assert.equal(row?.outcome, 'success');
  });
});
