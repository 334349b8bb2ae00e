import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LogoutJobTransport } from '../../src/logout/job-transport.ts';
import { leaseMs } from '../../src/logout/jobs.ts';
import { createLogger } from '../../src/logging/logger.ts';
import { createLogoutService } from '../../src/logout/service.ts';
import { createLogoutTransport } from '../../src/logout/transport-for-database.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { type LogoutWorkerFixture, startLogoutWorkerFixture } from '../helpers/logout-worker.ts';
import { waitUntil } from '../helpers/wait.ts';

/**
 * Closing the back-channel logout service (a stop of `serve` or `aa-oidc worker`) while the database
 * does not answer (a dead route: each statement waits up to the query timeout, 60 s): the worker's
 * round is waited for at most the request timeout and the connect timeout, the job transport's stop
 * at most the connect timeout, and the log says what was left.
 */
describe(`stopping back-channel logout on a database that does not answer (${testDatabaseKind})`, () => {
  let fixture: LogoutWorkerFixture;

  before(async () => {
    fixture = await startLogoutWorkerFixture({ logout: { requestTimeoutMs: 200 } });
  });
  after(async () => fixture?.close());

  /**
   * What a test stops: a logout service over the fixture's database with a connect timeout of 300 ms,
   * logging into `lines` from `level` up, over the database's transport with `overrides`.
   */
  const stopSetup = (level: 'warn' | 'debug') => {
    const { services } = fixture;
    const config = { ...services.config, databaseConnectTimeoutMs: 300 };
    const lines: string[] = [];
    const logger = createLogger(config, {
      level,
      destination: { write: (line: string) => void lines.push(line) },
    });
    const transport = createLogoutTransport(services.database, {
      expireInSeconds: Math.ceil(leaseMs(config) / 1000),
      logger,
    });
    const logoutService = (overrides: Partial<LogoutJobTransport>) =>
      createLogoutService({
        config,
        database: services.database,
        logger,
        audit: services.audit,
        metrics: services.metrics,
        applications: services.applications,
        keyStore: services.keyStore,
        transport: { ...transport, ...overrides },
      });
    return { lines, logoutService };
  };

  it(
    "gives up on the worker's round and the transport's stop within their bounds, saying so",
    { timeout: 30_000 },
    async () => {
      const { lines, logoutService } = stopSetup('warn');
      // The database's answers never come: to the worker's claim, and to what the transport's stop waits for.
      const unanswered = new Promise<never>(() => undefined);
      let claims = 0;
      const logout = logoutService({
        startWorker: async () => undefined,
        claim() {
          claims += 1;
          return unanswered;
        },
        close: () => unanswered,
      });
      logout.startWorker({ pollIntervalMs: 10 });
      await waitUntil(() => claims > 0, 'the worker claims');

      // Resolves at all (the test's timeout bounds a failure): neither waits for the query timeout.
      await logout.close();

      const warnings = lines
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((line) => line.level === 40);
      const round = warnings.find((line) => /logout worker's round in flight/.test(String(line.msg)));
      assert.ok(round, lines.join(''));
      assert.equal(round.claimed, 0, 'nothing was claimed');
      assert.equal(round.wait_seconds, 0.5, 'the request timeout and the connect timeout');
      const stop = warnings.find((line) =>
        /without waiting longer for the logout job transport/.test(String(line.msg)),
      );
      assert.ok(stop, lines.join(''));
      assert.equal(stop.wait_seconds, 0.3);
    },
  );

  it('logs the work the stop cut (a round, the transport start in flight) at debug, not as a fault', async () => {
    const { lines, logoutService: over } = stopSetup('debug');
    const logged = () =>
      lines.map((line) => JSON.parse(line) as { level: number; msg: string; stopped?: boolean });
    // What the database's connections closing under a statement says (the stop's last step).
    const cut = new Error('Connection terminated unexpectedly');
    const answerLater = () => {
      let fail!: (error: Error) => void;
      const answer = new Promise<never>((_, reject) => (fail = reject));
      return { answer, fail };
    };
    // The transport's own stop ends at once: the stop's cut is the round's or the start's.
    const logoutService = (overrides: Partial<LogoutJobTransport>) =>
      over({ close: async () => undefined, ...overrides });

    // A round's claim in flight when the worker stops.
    const claim = answerLater();
    let claims = 0;
    const claiming = logoutService({
      startWorker: async () => undefined,
      claim() {
        claims += 1;
        return claim.answer;
      },
    });
    claiming.startWorker({ pollIntervalMs: 10 });
    await waitUntil(() => claims > 0, 'the worker claims');
    const roundStop = claiming.close();
    claim.fail(cut);
    await roundStop;
    await waitUntil(
      () => logged().some((line) => /^logout worker/.test(line.msg)),
      'the cut round is logged',
    );

    // The transport's start in flight when the worker stops.
    const start = answerLater();
    const starting = logoutService({ startWorker: () => start.answer });
    starting.startWorker({ pollIntervalMs: 10 });
    await starting.close();
    start.fail(cut);
    await waitUntil(
      () => logged().filter((line) => /^logout worker/.test(line.msg)).length === 2,
      'the cut start is logged',
    );

    assert.deepEqual(
      logged().filter((line) => line.level >= 50),
      [],
      'nothing the stop cut is logged as an error',
    );
    for (const line of logged().filter((entry) => /^logout worker/.test(entry.msg))) {
      assert.equal(line.level, 20, 'at debug');
      assert.equal(line.msg, 'logout worker: the database is unavailable');
      assert.equal(line.stopped, true);
    }
  });
});
