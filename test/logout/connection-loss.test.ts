import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, type JSONWebKeySet, jwtVerify } from 'jose';
import pg from 'pg';
import { testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';
import { insertLiveTokens } from '../helpers/logout-worker.ts';
import { basicAuth, postForm, seedApp, startServer, type TestServer } from '../helpers/server.ts';
import { type Receiver, startReceiver } from './helpers.ts';
import { assertSameLogout, logoutJobs, pgBossJobs } from './jobs.ts';

const skip =
  testDatabaseKind === 'postgres'
    ? false
    : 'runs in the PostgreSQL pass (set AA_OIDC_TEST_DATABASE_URL): it terminates the test database’s PostgreSQL connections';

const USERS = 100;
/** Users deactivated while the connections are being killed (the issuing side). */
const LATE_USERS = 12;
const RECEIVERS = 3;
/** How long each receiver takes to answer: deliveries are in flight when the connections die. */
const ANSWER_MS = 30;
const REQUEST_TIMEOUT_MS = 1500;

/**
 * Back-channel logout on pg-boss while aa-oidc's PostgreSQL connections are killed from outside
 * (`pg_terminate_backend`, as a restart or a failover does), once and then several times in a row,
 * mid-delivery: the worker recovers by itself, every logout arrives (a delivery whose record the
 * kill cut off may arrive twice, under the same `jti`: at least once), no job stays claimed, a
 * deactivation made meanwhile fails cleanly or commits with its logouts queued, the HTTP server
 * answers 503 rather than 500, and the worker logs that the database was unavailable, with no token.
 */
describe(`back-channel logout across killed PostgreSQL connections (${testDatabaseKind})`, { skip }, () => {
  const harness = createLeakHarness();
  let server: TestServer;
  const receivers: Receiver[] = [];
  let admin: pg.Client;

  before(async () => {
    server = await startServer(
      {
        logout: {
          allowPrivateTargets: true,
          requestTimeoutMs: REQUEST_TIMEOUT_MS,
          retryBackoffSeconds: [1, 1, 1],
        },
      },
      { harness },
    );
    for (let index = 0; index < RECEIVERS; index += 1)
      receivers.push(
        await startReceiver((_request, response) => {
          setTimeout(() => response.end(), ANSWER_MS);
        }),
      );
    // The killer's own connection, to the test's scratch database only.
    admin = new pg.Client({ connectionString: server.database.url });
    await admin.connect();
  });
  after(async () => {
    await admin?.end();
    for (const receiver of receivers) await receiver.close();
    await server?.close();
  });

  /** Terminates every connection to the test database but the killer's own; how many it ended. */
  const killConnections = async (): Promise<number> => {
    const result = await admin.query<{ ended: boolean }>(
      `select pg_terminate_backend(pid) as ended from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid()`,
    );
    return result.rows.filter((row) => row.ended).length;
  };

  /** A user holding a live access token at each application, as the provider's adapter stores it. */
  const userHoldingTokens = async (username: string, clientIds: readonly string[]): Promise<number> => {
    const { user } = await server.app.directoryAdmin.createUser({ username, oidcAccess: true });
    await insertLiveTokens(server.app.database, user.id, clientIds);
    return user.id;
  };

  it('delivers every logout, none lost, with no job left claimed and no 500', async (t) => {
    const clients: string[] = [];
    for (const [index, receiver] of receivers.entries()) {
      const app = await seedApp(server, { name: `RP ${index}`, backchannelLogoutUri: receiver.url() });
      clients.push(app.clientId);
    }
    const clientOf = new Map(receivers.map((receiver, index) => [receiver, clients[index]!]));
    const userIds: number[] = [];
    for (let index = 0; index < USERS + LATE_USERS; index += 1)
      userIds.push(await userHoldingTokens(`pilot-${index}`, clients));
    const early = userIds.slice(0, USERS);
    const late = userIds.slice(USERS);
    for (const id of early) await server.app.directoryAdmin.deactivate({ id });
    assert.equal((await logoutJobs(server.app.database)).length, USERS * RECEIVERS, 'the logouts are queued');

    // The HTTP server is asked all along: a page that reads the database, and the token endpoint.
    const statuses: number[] = [];
    let polling = true;
    const poll = (async () => {
      while (polling) {
        const answers = await Promise.all([
          fetch(`${server.origin}/readyz`).then((response) => response.status),
          postForm(
            `${server.issuer}/token/`,
            { grant_type: 'client_credentials' },
            { authorization: basicAuth(clients[0]!, 'not-the-secret') },
          ).then((response) => response.status),
        ]);
        statuses.push(...answers);
        await delay(20);
      }
    })();

    const delivered = () => receivers.reduce((sum, receiver) => sum + receiver.requests.length, 0);
    const worker = server.app.logout.startWorker({ pollIntervalMs: 100 });
    const killed: number[] = [];
    const issued: Array<PromiseSettledResult<unknown>> = [];
    let lastKillAt: number | undefined;
    try {
      // Once, mid-delivery.
      await eventually(() => delivered() >= 40, 'the first deliveries arrived', 30_000);
      killed.push(await killConnections());
      assert.ok(delivered() < USERS * RECEIVERS, 'the first kill came mid-delivery');
      // Then several times in a row, while users are being deactivated.
      await eventually(() => delivered() >= 120, 'deliveries went on after the kill', 60_000);
      const deactivating = Promise.allSettled(
        late.map(async (id, index) => {
          await delay(index * 15);
          return server.app.directoryAdmin.deactivate({ id });
        }),
      );
      for (let round = 0; round < 4; round += 1) {
        killed.push(await killConnections());
        await delay(60);
      }
      // A kill between the worker's queries ends only idle connections, which its pool replaces
      // unnoticed: kill on until one has met a query of the worker's (it logs the failure), as the
      // assertions below need.
      const workerFailed = () => harness.logLines.some((line) => line.includes('"msg":"logout worker'));
      for (let round = 0; round < 300 && !workerFailed(); round += 1) {
        killed.push(await killConnections());
        await delay(25);
      }
      lastKillAt = Date.now();
      issued.push(...(await deactivating));
      // A deactivation that failed with the connection is made again, as an operator would, and
      // again if it meets a connection of the pool that a kill ended but whose end the pool had not
      // yet heard of.
      for (const [index, outcome] of issued.entries()) {
        if (outcome.status === 'fulfilled') continue;
        for (let attempt = 1; ; attempt += 1) {
          try {
            await server.app.directoryAdmin.deactivate({ id: late[index]! });
            break;
          } catch (error) {
            if (attempt === 5 || !/terminat/i.test(String(error))) throw error;
            await delay(100);
          }
        }
      }

      const expected = (early.length + late.length) * RECEIVERS;
      await eventually(
        async () => {
          const jobs = await logoutJobs(server.app.database);
          return jobs.length === expected && jobs.every((job) => job.status === 'done');
        },
        'every logout is done (within the lease and a supervisor pass of the last kill, and slack)',
        30_000,
      );
    } finally {
      await worker.stop();
      polling = false;
      await poll;
    }
    const recoveredMs = Date.now() - lastKillAt!;

    // A kill in a row may find none left: the ones before it ended them all.
    assert.ok(
      killed[0]! > 0 && killed[1]! > 0,
      `the kills ended aa-oidc's connections (${killed.join(', ')})`,
    );
    // The issuing side: a deactivation committed with its logouts, or failed cleanly.
    for (const outcome of issued)
      if (outcome.status === 'rejected') assert.ok(outcome.reason instanceof Error, String(outcome.reason));

    // Every (application, user) got its logout, validly signed; again only under the same jti.
    const jwks = createLocalJWKSet(
      (await (await fetch(`${server.issuer}/.well-known/jwks.json`)).json()) as JSONWebKeySet,
    );
    const firstOf = new Map<string, string>();
    const sentByJti = new Map<string, number>();
    let twice = 0;
    for (const receiver of receivers) {
      const clientId = clientOf.get(receiver)!;
      for (const request of receiver.requests) {
        const token = new URLSearchParams(request.body).get('logout_token')!;
        harness.registerSecret(token, 'a logout token');
        const { payload } = await jwtVerify(token, jwks, {
          issuer: server.issuer,
          audience: clientId,
          typ: 'logout+jwt',
        });
        sentByJti.set(payload.jti!, (sentByJti.get(payload.jti!) ?? 0) + 1);
        const key = `${clientId} ${payload.sub}`;
        const first = firstOf.get(key);
        if (first === undefined) firstOf.set(key, token);
        else {
          twice += 1;
          assertSameLogout(token, first, `the logout sent again to ${key}`);
        }
      }
    }
    const wanted = userIds.flatMap((id) => clients.map((clientId) => `${clientId} ${id}`)).sort();
    assert.deepEqual([...firstOf.keys()].sort(), wanted, 'every logout arrived, and only those');
    // Only a delivery whose record a kill cut off is sent again: at most the attempts in flight then.
    assert.ok(twice <= killed.length * 64, `${twice} logouts sent twice`);

    const jobs = await logoutJobs(server.app.database);
    assert.deepEqual(
      [...new Set(jobs.map((job) => job.outcome))],
      ['success'],
      'every logout succeeded, none ran out of retries',
    );
    // A logout sent twice was two attempts of its job (the lapsed claim counted), never an untracked one.
    for (const job of jobs)
      assert.ok(
        (sentByJti.get(job.jti) ?? 0) <= job.attempts,
        `${job.jti}: sent ${sentByJti.get(job.jti)} times in ${job.attempts} attempts`,
      );
    const states = new Set((await pgBossJobs(server.app.database)).map((row) => row.state));
    assert.deepEqual([...states], ['completed'], 'no pg-boss job is left claimed or pending');

    // No 500 meanwhile: 503 while the database was away, the usual answers otherwise.
    const unexpected = statuses.filter((status) => status >= 500 && status !== 503);
    assert.deepEqual(unexpected, [], `answers: ${[...new Set(statuses)].join(', ')}`);

    // The worker's log says the database failed it (not a relying party), with the error, no token.
    const failures = harness.logLines.filter((line) => line.includes('"msg":"logout worker'));
    assert.ok(failures.length > 0, 'the worker logged its failures');
    for (const line of failures)
      assert.match(line, /"msg":"logout worker[^"]*: the database is unavailable"/);
    // What the server said when the kill met a query, or what the driver saw when it met the socket
    // first (the server's message then never arrives), or when a statement came to a checked-out
    // connection the kill had already broken between two statements (the server's message went to
    // the connection's 'error' event). A failed transaction's rollback never speaks here: its
    // statement's error is the one thrown (src/db/failed-rollback.ts).
    assert.ok(
      failures.some((line) =>
        /terminating connection due to administrator command|Connection terminated unexpectedly|encountered a connection error and is not queryable/.test(
          line,
        ),
      ),
      `with what the server or the driver said: ${failures.join('\n')}`,
    );
    await harness.assertNoLeaks();
    t.diagnostic(
      `killed ${killed.join('+')} connections; ${delivered()} deliveries for ${wanted.length} logouts (${twice} twice); ` +
        `done ${recoveredMs} ms after the last kill; ${failures.length} error lines; ` +
        `HTTP ${[...new Set(statuses)].join('/')} (${statuses.filter((status) => status === 503).length} × 503); ` +
        `${issued.filter((outcome) => outcome.status === 'rejected').length} of ${late.length} deactivations refused`,
    );
  });
});
