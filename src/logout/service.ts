import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { readChangeEpoch } from '../db/change-epoch.ts';
import { purgeDeliveryAttempts } from './attempts.ts';
import { createDelivery } from './delivery.ts';
import { privateTargetsAllowed } from './ssrf/application-check.ts';
import { jobFactory, leaseMs } from './jobs.ts';
import { createTestDelivery } from './test-delivery.ts';
import { createLogoutTransport } from './transport-for-database.ts';
import { createLogoutTriggers } from './triggers.ts';
import type { LogoutDependencies, LogoutService } from './types.ts';
import { createWorkerLoop } from './worker.ts';
import { within } from '../util/within.ts';

export type { PendingLogout, PendingLogoutFilter } from './job-transport.ts';
export type {
  BclTestResult,
  LogoutDependencies,
  LogoutService,
  LogoutWorker,
  QueuedLogout,
  SessionLogoutRequest,
  UserLogoutRequest,
  WorkerOptions,
} from './types.ts';
export { leaseMs, logoutTokenLifetimeSeconds } from './jobs.ts';
export { testSubject } from './test-delivery.ts';
export { userRevokedHook } from './triggers.ts';

/**
 * The service was asked to deliver after its `close()` began: `what` says what it cannot do. Raised
 * before anything is attempted, so nothing was sent; a request that meets it is answered 503 (the
 * process is shutting down).
 */
export class LogoutServiceClosedError extends Error {
  override name = 'LogoutServiceClosedError';
  constructor(what: string) {
    super(
      `the back-channel logout service is closed, so ${what}: ` +
        'call it before close(), or on services created again',
    );
  }
}

/**
 * Back-channel logout: the triggers (triggers.ts) queue jobs in the transaction of the change that
 * causes them; a worker (worker.ts; in `serve`, or alone as `aa-oidc worker`) delivers them with
 * retries (delivery.ts); `aa-oidc bcl test` delivers a test token at once (test-delivery.ts). Every
 * delivery goes through the SSRF gate and the pinned client of http-delivery.ts. This file only
 * puts the pieces together over one job transport. Once `close()` has begun, `deliverDue`,
 * `startWorker` and `testDelivery` refuse with a `LogoutServiceClosedError` naming the closed service.
 */
export function createLogoutService(deps: LogoutDependencies): LogoutService {
  const { config, database, logger } = deps;
  const log = logger.child({ component: 'logout' });
  const now = deps.now ?? Date.now;
  const owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  const transport =
    deps.transport ?? createLogoutTransport(database, { expireInSeconds: leaseMs(config) / 1000, logger });
  const newJobs = jobFactory({ config, keyStore: deps.keyStore, now });

  const delivery = createDelivery({ ...deps, log, now, transport, owner });
  const worker = createWorkerLoop({
    config,
    log,
    now,
    transport,
    owner,
    changeEpoch: () => readChangeEpoch(database.db),
    purgeRecordedOutcomes: async (before) => (await purgeDeliveryAttempts(database.db, before)).more,
    processJob: delivery.processJob,
  });
  const triggers = createLogoutTriggers({
    database,
    audit: deps.audit,
    transport,
    newJobs,
    now,
    wake: () => worker.wake(),
  });
  const testDelivery = createTestDelivery({
    database,
    applications: deps.applications,
    now,
    newJobs,
    delivery,
    published: triggers.published,
  });

  // Set as `close` begins: its transport, connection pools and database go, and a worker started on
  // them would fail every round, logging each failure, for as long as the process runs; a delivery
  // run on them would fail with whatever the closed pool, pg-boss or database says, naming neither.
  let closed = false;
  // The SSRF gate's escape hatch is never silent: the first worker of the service says, at WARN, that
  // its deliveries may reach this network (in production only with the acknowledgement of E006).
  let privateTargetsTold = false;
  return {
    ...triggers,
    async deliverDue() {
      if (closed) throw new LogoutServiceClosedError('it cannot deliver due logouts');
      return worker.deliverDue();
    },
    startWorker(options) {
      if (closed) throw new LogoutServiceClosedError('its worker cannot start');
      if (privateTargetsAllowed(config) && !privateTargetsTold) {
        privateTargetsTold = true;
        log.warn(
          { allowPrivateTargets: true, mode: config.mode },
          'back-channel logouts may be delivered to loopback, private, CGNAT, link-local and unique-local ' +
            'addresses: logout.allowPrivateTargets (AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS), the SSRF ' +
            "gate's development escape hatch, is on (cloud metadata addresses stay refused)",
        );
      }
      return worker.startWorker(options);
    },
    transportStarted: () => transport.hasStarted(),
    pendingLogouts: (filter) => transport.listPending(filter, now()),
    async testDelivery(clientIds) {
      if (closed) throw new LogoutServiceClosedError('it cannot send test logouts');
      // An application named twice is tested once: its receiver would see two logouts for one ask.
      return testDelivery([...new Set(clientIds)]);
    },
    stopping: () => transport.stopping?.(),
    async close() {
      closed = true;
      transport.stopping?.();
      await worker.stopWorker();
      await delivery.close();
      // pg-boss's stop waits for its statements in flight (its supervisor's, its maintenance's): on a
      // database that does not answer, up to the query timeout each. Past the connect timeout it is
      // left; the database's close then ends what it still waits on.
      const waitMs = config.databaseConnectTimeoutMs;
      const stopped = transport.close().then(
        () => true,
        (error: unknown) => {
          log.warn(
            { err: { message: String((error as Error)?.message ?? error) } },
            'closing the logout job transport failed',
          );
          return true;
        },
      );
      if (!(await within(stopped, waitMs, false)))
        log.warn(
          { transport: transport.name, wait_seconds: waitMs / 1000 },
          `stopping without waiting longer for the logout job transport (${transport.name}): its statements in flight did not end within the connect timeout (the database unreachable?)`,
        );
    },
  };
}
