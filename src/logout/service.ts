import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Transaction } from 'kysely';
import type { AuditBus } from '../audit/bus.ts';
import type { LogoutDeliveryOutcome, LogoutReason } from '../audit/events.ts';
import { listApplications } from '../applications/store.ts';
import type { Application, ApplicationService } from '../applications/types.ts';
import type { Config } from '../config/load.ts';
import type { DatabaseHandle } from '../db/connect.ts';
import type { Database } from '../db/schema.ts';
import type { ChangeConsumer, DirectoryChange } from '../directory/port.ts';
import type { KeyStore } from '../keys/types.ts';
import type { Logger } from '../logging/logger.ts';
import type { Metrics } from '../metrics/registry.ts';
import { decide } from '../policy/decide.ts';
import { assertNever } from '../util/assert-never.ts';
import { clientsWithLiveTokens } from '../tokens/store.ts';
import { accessTrigger, logoutTargets, newlyDenied, receivesLogout } from './fanout.ts';
import { type Connector, type DeliveryOutcome, deliverLogoutToken } from './http-delivery.ts';
import { buildLogoutToken } from './logout-token.ts';
import { type ClaimedJob, type LogoutJob, type LogoutJobTransport, newJti } from './job-transport.ts';
import { createLogoutTransport } from './transport-for-database.ts';
import { gateOptionsFor } from './ssrf/application-check.ts';
import type { Resolver } from './ssrf/resolver.ts';

/**
 * Back-channel logout: the triggers queue jobs in the transaction of the change that
 * causes them; a worker (in `serve`, or alone as `aa-oidc worker`) delivers them with retries;
 * `aa-oidc bcl test` delivers a test token at once. Every delivery goes through the SSRF gate and
 * the pinned client of http-delivery.ts.
 */

export interface LogoutDependencies {
  config: Config;
  database: DatabaseHandle;
  logger: Logger;
  audit: Pick<AuditBus, 'publish'>;
  metrics: Pick<Metrics, 'bclDispatches' | 'bclDeliverySeconds'>;
  applications: Pick<ApplicationService, 'findByClientId'>;
  keyStore: Pick<KeyStore, 'activeKid' | 'loadedKeys' | 'reload'>;
  /** The SSRF gate's resolver (default the system resolver). */
  resolver?: Resolver;
  /** The delivery connection layer (default: TCP/TLS to the checked address). */
  connector?: Connector;
  /** Epoch milliseconds; tests inject one. */
  now?: () => number;
  /** The job transport (default: pg-boss on PostgreSQL, the `bcl_job` table on SQLite). */
  transport?: LogoutJobTransport;
}

/** One queued logout, as `logout_required` reports it. */
export interface QueuedLogout {
  userId: number | null;
  clientId: string;
  reason: LogoutReason;
  jti: string;
  withSid: boolean;
}

export interface UserLogoutRequest {
  userId: number;
  reason: LogoutReason;
  /** Restrict the fan-out to these applications (e.g. those whose tokens were just revoked). */
  clientIds?: readonly string[];
  /** Tokens revoked by the same change (same time and reason) still count as held. */
  revokedByThisChange?: { at: number; reason: string };
}

/** A session's end (RP-initiated logout): the session's applications, each with its `sid`. */
export interface SessionLogoutRequest {
  userId: number;
  clients: ReadonlyArray<{ clientId: string; sid: string | null }>;
}

export interface BclTestResult {
  clientId: string;
  name: string | null;
  /** The delivery outcome, or `not_sent` when the application cannot receive one. */
  outcome: LogoutDeliveryOutcome | 'not_sent';
  httpStatus: number | null;
  /** One line for the operator (never a token). */
  detail: string;
}

export interface WorkerOptions {
  /** How often to look for due jobs when idle (default 1000 ms). */
  pollIntervalMs?: number;
  /** Deliveries in flight at once (default 4). */
  concurrency?: number;
}

export interface LogoutWorker {
  /** Looks for due jobs now (after this process queued some). */
  wake(): void;
  /** Stops claiming; resolves when the attempts in flight have finished. */
  stop(): Promise<void>;
}

export interface LogoutService {
  /**
   * Queues a back-channel logout for each application that must hear of this user's logout, inside
   * `trx` (the transaction of the change). Returns the queued logouts; publish them with
   * `published()` once the transaction committed.
   */
  enqueueLogoutForUser(trx: Transaction<Database>, request: UserLogoutRequest): Promise<QueuedLogout[]>;
  /** RP-initiated logout: queues the session's applications (with their `sid`) in one transaction. */
  enqueueSessionLogout(request: SessionLogoutRequest): Promise<QueuedLogout[]>;
  /** `logout_required` for committed jobs, and a wake-up for this process's worker. */
  published(queued: readonly QueuedLogout[]): void;
  /**
   * The directory triggers (deactivation, deletion, access lost), for the change feed: queues the
   * jobs in the change's unit of work and publishes them once it committed.
   */
  onDirectoryChange: ChangeConsumer;
  /** Delivers every due job now, one attempt each; returns how many attempts were made (tests, CLI). */
  deliverDue(): Promise<number>;
  /** Starts the polling worker of this process. */
  startWorker(options?: WorkerOptions): LogoutWorker;
  /** `aa-oidc bcl test`: one test token for a no-op subject to each application, now. */
  testDelivery(clientIds: readonly string[]): Promise<BclTestResult[]>;
  /** Stops the worker, if started. */
  close(): Promise<void>;
}

/** The subject of `admin_test` tokens: never numeric, so it can never be a user's `sub`. */
export function testSubject(): string {
  return `aa-oidc-bcl-test-${randomBytes(8).toString('hex')}`;
}

/** How often a worker deletes finished jobs past their retention. */
const PURGE_INTERVAL_MS = 10 * 60 * 1000;

/**
 * How long a claimed attempt may take before another worker may take the job over (its worker died
 * mid-attempt). An attempt, gate included, is bounded by the request timeout; twice that and a
 * second covers signing and the database.
 */
export function leaseMs(config: Config): number {
  return 2 * config.logout.requestTimeoutMs + 1000;
}

/**
 * The logout token's lifetime: long enough for the last retry (a job re-sends the same token, whose
 * `exp` is pinned), and at least two minutes.
 */
export function logoutTokenLifetimeSeconds(config: Config): number {
  const backoff = config.logout.retryBackoffSeconds.reduce((sum, seconds) => sum + seconds, 0);
  const attempts = config.logout.retryBackoffSeconds.length + 1;
  return Math.max(120, backoff + attempts * Math.ceil(config.logout.requestTimeoutMs / 1000) + 60);
}

export function createLogoutService(deps: LogoutDependencies): LogoutService {
  const { config, database, logger } = deps;
  const db = database.db;
  const log = logger.child({ component: 'logout' });
  const now = deps.now ?? Date.now;
  const gate = gateOptionsFor(config, deps.resolver);
  const owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  let worker: LogoutWorker | undefined;
  const transport =
    deps.transport ?? createLogoutTransport(database, { expireInSeconds: leaseMs(config) / 1000, logger });

  const newJobs = (
    userId: number | null,
    sub: string,
    reason: LogoutReason,
    clients: ReadonlyArray<{ clientId: string; sid: string | null }>,
  ): LogoutJob[] => {
    if (clients.length === 0) return [];
    const iat = Math.floor(now() / 1000);
    const exp = iat + logoutTokenLifetimeSeconds(config);
    const kid = deps.keyStore.activeKid();
    return clients.map(({ clientId, sid }) => ({
      trigger: reason,
      userId,
      sub,
      clientId,
      jti: newJti(),
      iat,
      exp,
      kid,
      sid,
    }));
  };

  const queued = (jobs: readonly LogoutJob[]): QueuedLogout[] =>
    jobs.map((job) => ({
      userId: job.userId,
      clientId: job.clientId,
      reason: job.trigger,
      jti: job.jti,
      withSid: job.sid !== null,
    }));

  const enqueueLogoutForUser: LogoutService['enqueueLogoutForUser'] = async (trx, request) => {
    const at = now();
    // Given client ids come from a revocation that just revoked the user's live tokens there.
    const candidates = request.clientIds
      ? new Set(request.clientIds)
      : await clientsWithLiveTokens(trx, request.userId, at, request.revokedByThisChange);
    const targets = await logoutTargets(trx, database.kind, candidates, request.reason);
    const jobs = newJobs(
      request.userId,
      String(request.userId),
      request.reason,
      targets.map((app) => ({ clientId: app.clientId, sid: null })),
    );
    await transport.enqueue(trx, jobs, at);
    return queued(jobs);
  };

  const published: LogoutService['published'] = (list) => {
    for (const job of list) {
      deps.audit.publish({
        kind: 'logout_required',
        user_id: job.userId,
        client_id: job.clientId,
        reason: job.reason,
        jti: job.jti,
        with_sid: job.withSid,
      });
    }
    if (list.length > 0) worker?.wake();
  };

  // ---- delivery ------------------------------------------------------------------------------

  interface Final {
    outcome: LogoutDeliveryOutcome;
    httpStatus: number | null;
    detail: string;
  }

  const finalOf = (result: DeliveryOutcome, exhausted: boolean): Final | 'retry' => {
    switch (result.outcome) {
      case 'success':
        return { outcome: 'success', httpStatus: result.status, detail: `HTTP ${result.status}` };
      case 'redirect_blocked':
        return {
          outcome: 'redirect_blocked',
          httpStatus: result.status,
          detail: `HTTP ${result.status}: redirect not followed`,
        };
      case 'rp_client_error':
        return { outcome: 'rp_client_error', httpStatus: result.status, detail: `HTTP ${result.status}` };
      case 'server_error':
        return exhausted
          ? { outcome: 'retries_exhausted', httpStatus: result.status, detail: `HTTP ${result.status}` }
          : 'retry';
      case 'network_error':
        return exhausted
          ? { outcome: 'retries_exhausted', httpStatus: null, detail: result.detail }
          : 'retry';
      case 'dns_resolve_failed':
        return { outcome: 'dns_resolve_failed', httpStatus: null, detail: result.detail };
      case 'unsafe_target_ip':
        return { outcome: 'unsafe_target_ip', httpStatus: null, detail: result.detail };
      default:
        return assertNever(result);
    }
  };

  /** The signing key a job pinned; reloads once in case it was created after our last reload. */
  const pinnedKey = async (kid: string) => {
    const find = () => deps.keyStore.loadedKeys().find((key) => key.kid === kid);
    const found = find();
    if (found) return found;
    await deps.keyStore.reload().catch(() => false);
    return find();
  };

  /** Signs and sends one attempt; `final` is undefined when a retry is due. */
  const attemptOnce = async (
    job: Pick<ClaimedJob, 'sub' | 'clientId' | 'jti' | 'iat' | 'exp' | 'kid' | 'sid'>,
    app: Application,
    exhausted: boolean,
  ): Promise<Final | { retry: true; httpStatus: number | null; detail: string }> => {
    const key = await pinnedKey(job.kid);
    if (!key)
      return {
        outcome: 'signing_kid_retired',
        httpStatus: null,
        detail: `signing key ${job.kid} is no longer loaded`,
      };
    const logoutToken = await buildLogoutToken(
      {
        issuer: config.issuer,
        clientId: job.clientId,
        sub: job.sub,
        jti: job.jti,
        iat: Number(job.iat),
        exp: Number(job.exp),
        kid: job.kid,
        sid: job.sid,
      },
      key.privateKey,
    );
    const result = await deliverLogoutToken({
      url: app.backchannelLogoutUri!,
      logoutToken,
      gate,
      ...(deps.connector ? { connector: deps.connector } : {}),
      connectTimeoutMs: config.logout.connectTimeoutMs,
      requestTimeoutMs: config.logout.requestTimeoutMs,
    });
    const final = finalOf(result, exhausted);
    if (final === 'retry')
      return result.outcome === 'server_error'
        ? { retry: true, httpStatus: result.status, detail: `HTTP ${result.status}` }
        : { retry: true, httpStatus: null, detail: result.outcome === 'network_error' ? result.detail : '' };
    return final;
  };

  /** Records a final outcome: the attempt table (failures always), metrics and `logout_dispatched`. */
  const recordFinal = async (
    trx: Transaction<Database> | typeof db,
    entry: {
      clientId: string;
      clientName: string;
      userId: number | null;
      trigger: string;
      jti: string;
      attempts: number;
      startedAt: number;
    },
    final: Final,
    at: number,
  ) => {
    if (final.outcome !== 'success' || config.logout.recordSuccessfulDeliveries) {
      await trx
        .insertInto('bcl_delivery_attempt')
        .values({
          client_id: entry.clientId,
          client_name: entry.clientName.slice(0, 200),
          user_id: entry.userId,
          trigger: entry.trigger,
          jti: entry.jti,
          attempts: entry.attempts,
          outcome: final.outcome,
          http_status: final.httpStatus,
          detail: final.detail.slice(0, 300),
          recorded_at: at,
        })
        .execute();
    }
  };

  const observed = (
    entry: { clientId: string; userId: number | null; jti: string; attempts: number; startedAt: number },
    final: Final,
    at: number,
  ) => {
    const durationMs = Math.max(0, at - entry.startedAt);
    deps.metrics.bclDispatches.inc({ client_id: entry.clientId, outcome: final.outcome });
    deps.metrics.bclDeliverySeconds.observe({ outcome: final.outcome }, durationMs / 1000);
    deps.audit.publish({
      kind: 'logout_dispatched',
      user_id: entry.userId,
      client_id: entry.clientId,
      jti: entry.jti,
      outcome: final.outcome,
      attempts: entry.attempts,
      http_status: final.httpStatus,
      duration_ms: durationMs,
    });
    const line = { client_id: entry.clientId, outcome: final.outcome, attempts: entry.attempts };
    if (final.outcome === 'success') log.info(line, 'back-channel logout delivered');
    else log.warn({ ...line, detail: final.detail }, 'back-channel logout failed');
  };

  /** One attempt of one claimed job, to its next state. */
  const processJob = async (job: ClaimedJob): Promise<void> => {
    const app = await deps.applications.findByClientId(job.clientId);
    const startedAt = job.firstAttemptAt ?? now();
    const trigger = job.trigger as LogoutReason;
    // Deactivated since, or its URI removed, or switched to revoke-only: it no longer receives this.
    if (!app || !(receivesLogout(app, trigger) || (trigger === 'admin_test' && app.backchannelLogoutUri))) {
      await db.transaction().execute((trx) => transport.finish(trx, job, owner, 'cancelled', null, now()));
      log.info(
        { client_id: job.clientId },
        'back-channel logout cancelled: the application no longer receives it',
      );
      return;
    }
    const retries = config.logout.retryBackoffSeconds;
    const exhausted = job.attempts > retries.length;
    let result: Awaited<ReturnType<typeof attemptOnce>>;
    try {
      result = await attemptOnce(job, app, exhausted);
    } catch (error) {
      // Signing failed (a corrupt key): count it as a network-level failure of this attempt.
      log.error({ err: { name: (error as Error).name } }, 'back-channel logout attempt failed');
      result = exhausted
        ? { outcome: 'retries_exhausted', httpStatus: null, detail: 'the attempt failed' }
        : { retry: true, httpStatus: null, detail: 'the attempt failed' };
    }
    if ('retry' in result) {
      const delaySeconds = retries[job.attempts - 1] ?? retries[retries.length - 1]!;
      await transport.reschedule(job, owner, now(), delaySeconds, result.httpStatus);
      return;
    }
    const at = now();
    const entry = {
      clientId: job.clientId,
      clientName: app.name,
      userId: job.userId,
      trigger: job.trigger,
      jti: job.jti,
      attempts: job.attempts,
      startedAt,
    };
    const finished = await db.transaction().execute(async (trx) => {
      if (!(await transport.finish(trx, job, owner, result.outcome, result.httpStatus, at))) return false;
      await recordFinal(trx, entry, result, at);
      return true;
    });
    if (finished) observed(entry, result, at);
  };

  const claimNext = () => transport.claim(owner, now(), now() + leaseMs(config));

  const deliverDue: LogoutService['deliverDue'] = async () => {
    let count = 0;
    for (;;) {
      const job = await claimNext();
      if (!job) return count;
      count += 1;
      await processJob(job);
    }
  };

  const startWorker: LogoutService['startWorker'] = (options = {}) => {
    if (worker) return worker;
    const pollIntervalMs = options.pollIntervalMs ?? 1000;
    const concurrency = options.concurrency ?? 4;
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    let running: Promise<void> | undefined;
    let again = false;
    let purgedAt = 0;

    const lane = async () => {
      while (!stopped) {
        const job = await claimNext();
        if (!job) return;
        await processJob(job);
      }
    };
    const schedule = (delayMs: number) => {
      if (stopped) return;
      clearTimeout(timer);
      timer = setTimeout(tick, Math.max(0, delayMs));
      timer.unref();
    };
    const tick = () => {
      if (running) {
        again = true;
        return;
      }
      running = (async () => {
        try {
          await Promise.all(Array.from({ length: concurrency }, lane));
          if (now() - purgedAt > PURGE_INTERVAL_MS) {
            purgedAt = now();
            await transport.purge(purgedAt);
          }
        } catch (error) {
          log.error(
            { err: { name: (error as Error).name, message: (error as Error).message } },
            'logout worker',
          );
        }
        let delay = pollIntervalMs;
        const due = await transport.nextDueAt().catch(() => undefined);
        if (due !== undefined) delay = Math.min(delay, due - now());
        return delay;
      })().then((delay) => {
        running = undefined;
        schedule(again ? 0 : delay);
        again = false;
      });
    };
    // pg-boss: this process's supervisor puts back the jobs of workers that died mid-attempt.
    transport.startWorker().then(
      () => schedule(0),
      (error: Error) => {
        log.error({ err: { name: error.name, message: error.message } }, 'logout worker');
        schedule(pollIntervalMs);
      },
    );
    worker = {
      wake: () => schedule(0),
      async stop() {
        stopped = true;
        clearTimeout(timer);
        await running;
      },
    };
    return worker;
  };

  const onDirectoryChange: ChangeConsumer = async (change, unit) => {
    let list: QueuedLogout[];
    switch (change.kind) {
      case 'user_deactivated':
      case 'user_deleted':
        list = await enqueueLogoutForUser(unit.trx, {
          userId: change.userId,
          reason: change.kind,
          // The token revocation of the same change stamps its tokens with the unit's time.
          revokedByThisChange: { at: unit.at, reason: change.kind },
        });
        break;
      default: {
        const reason = accessTrigger(change);
        if (!reason || !('after' in change)) return;
        list = await enqueueNewlyDenied(unit.trx, change, reason);
      }
    }
    if (unit.reporting && 'userId' in change) {
      // Every active application the change takes from the user, whether or not it holds a token.
      const apps = await activeApplicationsIn(unit.trx);
      const lost =
        'after' in change
          ? newlyDenied(change.before, change.after, apps)
          : apps.filter((app) => decide(change.before, app).outcome === 'allow');
      for (const app of lost)
        unit.report({ kind: 'access_lost', userId: change.userId, clientId: app.clientId });
      for (const job of list)
        unit.report({
          kind: 'logout_queued',
          userId: job.userId,
          clientId: job.clientId,
          reason: job.reason,
        });
    }
    if (list.length > 0) unit.afterCommit(() => published(list));
  };

  /**
   * The active applications, read once per unit of work: one state or group change affects every
   * user of the state or group (thousands), each a change of the same unit.
   */
  const activeApplicationsByUnit = new WeakMap<Transaction<Database>, Promise<Application[]>>();
  const activeApplicationsIn = (trx: Transaction<Database>): Promise<Application[]> => {
    let applications = activeApplicationsByUnit.get(trx);
    if (!applications) {
      applications = listApplications(trx, database.kind, { active: true });
      activeApplicationsByUnit.set(trx, applications);
    }
    return applications;
  };

  /** State and group changes: only the applications the change newly denies the user. */
  const enqueueNewlyDenied = async (
    trx: Transaction<Database>,
    change: Extract<DirectoryChange, { after: unknown }>,
    reason: LogoutReason,
  ): Promise<QueuedLogout[]> => {
    const at = now();
    const held = await clientsWithLiveTokens(trx, change.userId, at);
    const targets = newlyDenied(
      change.before,
      change.after,
      await logoutTargets(trx, database.kind, held, reason, () => activeApplicationsIn(trx)),
    );
    const jobs = newJobs(
      change.userId,
      String(change.userId),
      reason,
      targets.map((app) => ({ clientId: app.clientId, sid: null })),
    );
    await transport.enqueue(trx, jobs, at);
    return queued(jobs);
  };

  const enqueueSessionLogout: LogoutService['enqueueSessionLogout'] = async (request) => {
    const list = await db.transaction().execute(async (trx) => {
      const targets = await logoutTargets(
        trx,
        database.kind,
        new Set(request.clients.map((client) => client.clientId)),
        'rp_initiated',
      );
      const sids = new Map(request.clients.map((client) => [client.clientId, client.sid]));
      const jobs = newJobs(
        request.userId,
        String(request.userId),
        'rp_initiated',
        targets.map((app) => ({ clientId: app.clientId, sid: sids.get(app.clientId) ?? null })),
      );
      await transport.enqueue(trx, jobs, now());
      return queued(jobs);
    });
    published(list);
    return list;
  };

  const testDelivery: LogoutService['testDelivery'] = async (clientIds) => {
    const results: BclTestResult[] = [];
    for (const clientId of clientIds) {
      const app = await deps.applications.findByClientId(clientId);
      if (!app) {
        results.push(notSent(clientId, null, 'no such application (see `aa-oidc app list`)'));
        continue;
      }
      if (!app.active) {
        results.push(notSent(clientId, app.name, 'the application is deactivated'));
        continue;
      }
      if (app.backchannelLogoutUri === null) {
        results.push(notSent(clientId, app.name, 'the application has no back-channel logout URI'));
        continue;
      }
      const [job] = newJobs(null, testSubject(), 'admin_test', [{ clientId, sid: null }]);
      published(queued([job!]));
      const startedAt = now();
      const result = await attemptOnce(
        {
          sub: job!.sub,
          clientId,
          jti: job!.jti,
          iat: job!.iat,
          exp: job!.exp,
          kid: job!.kid,
          sid: null,
        },
        app,
        true,
      );
      // `exhausted` is true: a test is one attempt, so a 5xx or network failure is final.
      const final: Final =
        'retry' in result
          ? { outcome: 'retries_exhausted', httpStatus: result.httpStatus, detail: result.detail }
          : result;
      const at = now();
      const entry = {
        clientId,
        clientName: app.name,
        userId: null,
        trigger: 'admin_test',
        jti: job!.jti,
        attempts: 1,
        startedAt,
      };
      await recordFinal(db, entry, final, at);
      observed(entry, final, at);
      results.push({
        clientId,
        name: app.name,
        outcome: final.outcome,
        httpStatus: final.httpStatus,
        detail: final.detail,
      });
    }
    return results;
  };

  return {
    enqueueLogoutForUser,
    enqueueSessionLogout,
    published,
    onDirectoryChange,
    deliverDue,
    startWorker,
    testDelivery,
    async close() {
      await worker?.stop();
      worker = undefined;
      await transport.close();
    },
  };
}

function notSent(clientId: string, name: string | null, detail: string): BclTestResult {
  return { clientId, name, outcome: 'not_sent', httpStatus: null, detail };
}

/**
 * The `user_revoked` trigger, for the hook of `tokens revoke-user` (src/tokens/revocation.ts): runs
 * inside the revocation's transaction, for the applications whose tokens it just revoked.
 */
export function userRevokedHook(logout: Pick<LogoutService, 'enqueueLogoutForUser' | 'published'>) {
  return async (
    trx: Transaction<Database>,
    revocation: { userId: number; clientIds: string[]; dryRun: boolean },
  ): Promise<(() => void) | undefined> => {
    if (revocation.clientIds.length === 0) return undefined;
    const list = await logout.enqueueLogoutForUser(trx, {
      userId: revocation.userId,
      reason: 'user_revoked',
      clientIds: revocation.clientIds,
    });
    // `logout_required` (and waking the worker) only once the revocation and its jobs committed.
    return () => logout.published(list);
  };
}
