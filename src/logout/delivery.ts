import type { Kysely, Transaction } from 'kysely';
import type { LogoutDeliveryOutcome, LogoutReason } from '../audit/events.ts';
import type { Application } from '../applications/types.ts';
import type { Database } from '../db/schema.ts';
import type { Logger } from '../logging/logger.ts';
import { assertNever } from '../util/assert-never.ts';
import { type DeliveryAttemptRecord, recordDeliveryAttempts } from './attempts.ts';
import { type CancellationReason, cancellationReason, describeCancellation } from './fanout.ts';
import {
  createDeliveryPools,
  type DeliveryOutcome,
  deliverLogoutToken,
  isRetryable,
} from './http-delivery.ts';
import type { ClaimedJob, LogoutJobTransport, Settlement } from './job-transport.ts';
import { buildLogoutToken } from './logout-token.ts';
import { logoutSigningKey, logoutTokenLifetimeSeconds } from './jobs.ts';
import { gateOptionsFor } from './ssrf/application-check.ts';
import type { LogoutDependencies } from './types.ts';

/**
 * Delivery of back-channel logouts: one attempt signs the job's token afresh and sends it through
 * the SSRF gate and a kept-alive connection to a checked address (http-delivery.ts); its outcome
 * is final or a retry. A final
 * outcome is recorded (the attempt table, metrics, `logout_dispatched`).
 *
 * A queued logout whose application no longer receives it (deactivated, its URI removed, switched to
 * revoke-only) is cancelled, not delivered. It is recorded in the attempt table as `cancelled`, the
 * reason first in its detail, so that the operator finds it where the other logouts that never
 * reached their application are (the admin deliveries page, `aa-oidc bcl list`): the table holds
 * the final outcome of each queued logout, some of which sent nothing either (`signing_kid_retired`,
 * `dns_resolve_failed`, `unsafe_target_ip`). Its row counts the attempts made before it, not the
 * claim that cancelled it, so it never says a request was made; it is no delivery failure (the
 * `failures` filter leaves it out), and no `logout_dispatched`, which says a delivery was made.
 * It is also counted in `aa_oidc_bcl_dispatches_total{outcome="cancelled"}` and logged at WARN once
 * for the cancellations a commit settles together, by application and reason, with their count and
 * users: an operator who deactivated an application, or changed its URI, by mistake learns whom it
 * was never told about. Rows are written a group at a time, as the other outcomes' are.
 */

/** The applications read for the jobs of claimed batches (while the change epoch stands), by client id. */
export type ApplicationLookups = Map<string, Promise<Application | undefined>>;

/** A final outcome of a delivery. */
export interface Final {
  outcome: LogoutDeliveryOutcome;
  httpStatus: number | null;
  detail: string;
}

/** A delivery whose outcome is recorded. */
export interface DeliveryEntry {
  clientId: string;
  clientName: string;
  userId: number | null;
  trigger: string;
  jti: string;
  attempts: number;
  startedAt: number;
}

export interface Delivery {
  /** Signs and sends one attempt; a retry is due when the result says so. */
  attemptOnce(
    job: Pick<ClaimedJob, 'sub' | 'clientId' | 'jti' | 'iat' | 'exp' | 'kid' | 'sid'>,
    app: Application,
    exhausted: boolean,
  ): Promise<Final | { retry: true; httpStatus: number | null; detail: string }>;
  /** Records a final outcome in the attempt table (failures always, successes when configured). */
  recordFinal(db: Kysely<Database>, entry: DeliveryEntry, final: Final, at: number): Promise<void>;
  /** Metrics, `logout_dispatched` and the log line of a recorded final outcome. */
  observed(entry: DeliveryEntry, final: Final, at: number): void;
  /**
   * One attempt of one claimed job, to its next state. The jobs of claimed batches share
   * `applications` while the change epoch stands, so that each application is read once for all of them.
   * `attempted` is called once the attempt needs nothing more than its record (its request answered,
   * failed or not made), before that record commits, with `answered` true when the application
   * answered over HTTP (whatever the status); the returned promise settles once it committed.
   */
  processJob(
    job: ClaimedJob,
    applications?: ApplicationLookups,
    attempted?: (answered: boolean) => void,
  ): Promise<void>;
  /** Closes the kept-alive connections (the service closes). */
  close(): Promise<void>;
}

export function createDelivery(
  deps: Pick<
    LogoutDependencies,
    'config' | 'database' | 'audit' | 'metrics' | 'applications' | 'keyStore' | 'resolver' | 'connector'
  > & { log: Logger; now: () => number; transport: LogoutJobTransport; owner: string },
): Delivery {
  const { config, log, now, transport, owner } = deps;
  const db = deps.database.db;
  const gate = gateOptionsFor(config, deps.resolver);
  // Kept-alive connections, one pool per application origin and checked address, shared by the
  // applications on that origin (a connection for each attempt in flight: connection-pools.ts).
  const pools = createDeliveryPools({
    ...(deps.connector ? { connector: deps.connector } : {}),
    connectTimeoutMs: config.logout.connectTimeoutMs,
    requestTimeoutMs: config.logout.requestTimeoutMs,
  });

  const finalOf = (result: DeliveryOutcome, exhausted: boolean): Final | 'retry' => {
    // The retry policy is `isRetryable`'s: what it retries is final here only at the last attempt.
    if (!exhausted && isRetryable(result)) return 'retry';
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
        return { outcome: 'retries_exhausted', httpStatus: result.status, detail: `HTTP ${result.status}` };
      case 'network_error':
        return { outcome: 'retries_exhausted', httpStatus: null, detail: result.detail };
      case 'dns_resolve_failed':
        return { outcome: 'dns_resolve_failed', httpStatus: null, detail: result.detail };
      case 'unsafe_target_ip':
        return { outcome: 'unsafe_target_ip', httpStatus: null, detail: result.detail };
      default:
        return assertNever(result);
    }
  };

  /** The key an attempt signs with (jobs.ts `logoutSigningKey`); reloads once before giving up. */
  const signingKey = async (kid: string) => {
    const found = logoutSigningKey(deps.keyStore.loadedKeys(), kid);
    if (found) return found;
    await deps.keyStore.reload().catch(() => false);
    return logoutSigningKey(deps.keyStore.loadedKeys(), kid);
  };

  const attemptOnce: Delivery['attemptOnce'] = async (job, app, exhausted) => {
    // Signed afresh by each attempt, with the active key while one is loaded: a job that waited in the queue (a crash, a
    // slow application ahead of it, a stopped worker) must not arrive expired, or with an `iat` a
    // receiver finds too old (mod_auth_openidc's slack is ten minutes), or under a key retired
    // meanwhile. The `jti` stays the job's, so that a receiver recognises a second attempt.
    const key = await signingKey(job.kid);
    if (!key)
      return {
        outcome: 'signing_kid_retired',
        httpStatus: null,
        detail:
          job.kid === ''
            ? 'no signing key is loaded, nor was any when the logout was queued (serve and worker create one at their start; `aa-oidc check` tells)'
            : `no signing key is loaded, not even ${job.kid}, the one the logout was queued under (serve and worker create one at their start; \`aa-oidc check\` tells)`,
      };
    const iat = Math.floor(now() / 1000);
    const logoutToken = await buildLogoutToken(
      {
        issuer: config.issuer,
        clientId: job.clientId,
        sub: job.sub,
        jti: job.jti,
        iat,
        exp: iat + logoutTokenLifetimeSeconds(config),
        kid: key.kid,
        sid: job.sid,
      },
      key.privateKey,
    );
    const result = await deliverLogoutToken({
      url: app.backchannelLogoutUri!,
      logoutToken,
      gate,
      pools,
      connectTimeoutMs: config.logout.connectTimeoutMs,
      requestTimeoutMs: config.logout.requestTimeoutMs,
    });
    const final = finalOf(result, exhausted);
    if (final === 'retry')
      return result.outcome === 'server_error'
        ? { retry: true, httpStatus: result.status, detail: `HTTP ${result.status}` }
        : { retry: true, httpStatus: null, detail: 'detail' in result ? result.detail : '' };
    return final;
  };

  /** Whether a final outcome has a row in the attempt table (failures always, successes when configured). */
  const recorded = (final: Final) => final.outcome !== 'success' || config.logout.recordSuccessfulDeliveries;

  /** The attempt-table row of a final outcome, when it has one. */
  const attemptRecord = (
    entry: DeliveryEntry,
    final: Final,
    at: number,
  ): DeliveryAttemptRecord | undefined =>
    recorded(final)
      ? {
          clientId: entry.clientId,
          clientName: entry.clientName,
          userId: entry.userId,
          trigger: entry.trigger,
          jti: entry.jti,
          attempts: entry.attempts,
          outcome: final.outcome,
          httpStatus: final.httpStatus,
          detail: final.detail,
          recordedAt: at,
        }
      : undefined;

  const recordFinal: Delivery['recordFinal'] = async (trx, entry, final, at) => {
    const record = attemptRecord(entry, final, at);
    if (record) await recordDeliveryAttempts(trx, [record]);
  };

  const observed: Delivery['observed'] = (entry, final, at) => {
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
    // A success says nothing the audit log's `logout_dispatched` line does not (at INFO, with the same
    // client, outcome and attempts): a fan-out wrote every delivery twice. A failure adds its detail.
    if (final.outcome === 'success') log.debug(line, 'back-channel logout delivered');
    else log.warn({ ...line, detail: final.detail }, 'back-channel logout failed');
  };

  /** Counts and logs the cancellations that finished their job, by application and reason. */
  const reportCancelled = (group: readonly PendingSettlement[], finished: readonly boolean[]) => {
    if (!group.some((pending) => pending.cancellation)) return;
    const byApplication = new Map<
      string,
      { clientId: string; reason: CancellationReason; count: number; userIds: Set<number> }
    >();
    for (const [index, { settlement, cancellation }] of group.entries()) {
      if (!cancellation || !finished[index]) continue;
      const { clientId, userId } = settlement.job;
      const key = `${clientId}\n${cancellation}`;
      let cancelled = byApplication.get(key);
      if (!cancelled)
        byApplication.set(
          key,
          (cancelled = { clientId, reason: cancellation, count: 0, userIds: new Set() }),
        );
      cancelled.count += 1;
      if (userId !== null) cancelled.userIds.add(userId);
    }
    for (const { clientId, reason, count, userIds } of byApplication.values()) {
      deps.metrics.bclDispatches.inc({ client_id: clientId, outcome: 'cancelled' }, count);
      log.warn(
        { client_id: clientId, reason, count, user_ids: [...userIds].sort((a, b) => a - b) },
        'back-channel logouts cancelled: the application no longer receives them',
      );
    }
  };

  const settle = settlementBatches({
    db,
    finish: (trx, settlements) => transport.finishMany(trx, settlements, owner, now()),
    alone: (group) =>
      group.every((pending) => !pending.record) &&
      transport.finishesInOneStatement(group.map((pending) => pending.settlement)),
    record: recordDeliveryAttempts,
    settled: reportCancelled,
    onSettledError: (error) => log.error({ err: error }, 'back-channel logout: cancellations not reported'),
  });

  const processJob: Delivery['processJob'] = async (job, applications = new Map(), attempted) => {
    let lookup = applications.get(job.clientId);
    if (!lookup) {
      const loading = deps.applications.findByClientId(job.clientId);
      applications.set(job.clientId, loading);
      // A failed read is not kept for the next batches (the worker keeps the map while the epoch stands).
      loading.catch(() => {
        if (applications.get(job.clientId) === loading) applications.delete(job.clientId);
      });
      lookup = loading;
    }
    const app = await lookup;
    const startedAt = job.firstAttemptAt ?? now();
    const trigger = job.trigger as LogoutReason;
    // Deactivated since, or its URI removed, or switched to revoke-only: it no longer receives this.
    const cancellation = app ? cancellationReason(app, trigger) : 'unknown_application';
    if (!app || cancellation) {
      attempted?.(false);
      const reason = cancellation ?? 'unknown_application';
      await settle({
        settlement: { job, outcome: 'cancelled', httpStatus: null },
        record: {
          clientId: job.clientId,
          clientName: app?.name ?? '',
          userId: job.userId,
          trigger: job.trigger,
          jti: job.jti,
          // The attempts made before; this claim sent nothing.
          attempts: job.attempts - 1,
          outcome: 'cancelled',
          httpStatus: null,
          detail: describeCancellation(reason),
          recordedAt: now(),
        },
        cancellation: reason,
      });
      return;
    }
    // Waited too long since its claim (a stalled process): sent now, it could still be in flight when
    // the claim lapses and another worker sends it again. The claim lapses instead, then it is retried.
    if (job.startBy !== undefined && now() > job.startBy) {
      log.warn(
        { client_id: job.clientId },
        'back-channel logout attempt not started: its claim lapses first',
      );
      return;
    }
    const retries = config.logout.retryBackoffSeconds;
    const exhausted = job.attempts > retries.length;
    let result: Awaited<ReturnType<Delivery['attemptOnce']>>;
    try {
      result = await attemptOnce(job, app, exhausted);
    } catch (error) {
      // Signing failed (a corrupt key): count it as a network-level failure of this attempt.
      log.error({ err: { name: (error as Error).name } }, 'back-channel logout attempt failed');
      result = exhausted
        ? { outcome: 'retries_exhausted', httpStatus: null, detail: 'the attempt failed' }
        : { retry: true, httpStatus: null, detail: 'the attempt failed' };
    }
    attempted?.(result.httpStatus !== null);
    if ('retry' in result) {
      const delaySeconds = retries[job.attempts - 1] ?? retries[retries.length - 1]!;
      // The first attempt's start goes with the job (pg-boss keeps it there): the delivery's time is
      // measured from it, not from the end of an attempt that waited for its request timeout.
      await transport.reschedule(
        { ...job, firstAttemptAt: startedAt },
        owner,
        now(),
        delaySeconds,
        result.httpStatus,
      );
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
    const record = attemptRecord(entry, result, at);
    const finished = await settle({
      settlement: { job, outcome: result.outcome, httpStatus: result.httpStatus },
      ...(record ? { record } : {}),
    });
    if (finished) observed(entry, result, at);
  };

  return { attemptOnce, recordFinal, observed, processJob, close: () => pools.close() };
}

/** A final outcome to record, and its attempt-table row (written when it finished the job). */
interface PendingSettlement {
  settlement: Settlement;
  record?: DeliveryAttemptRecord;
  /** Why the job was cancelled, not delivered (see the top of this file). */
  cancellation?: CancellationReason;
}

/**
 * Records the final outcomes of deliveries in shared transactions, one at a time: the outcomes
 * that arrive while one commits wait and go together into the next (a commit is what a delivery's
 * record costs most, an fsync on PostgreSQL), and the transport finishes each group's jobs with a
 * statement per distinct outcome, one INSERT writing their attempt-table rows; a group that is one
 * such statement with no attempt-table row to write (a fan-out's successes, by default) commits
 * that statement alone, without BEGIN and COMMIT around it. Resolves each with whether it finished
 * its job (false when the claim was lost). When a shared transaction fails, each outcome is
 * recorded again alone, so that only the one at fault fails.
 */
function settlementBatches(deps: {
  db: Kysely<Database>;
  finish: (trx: Kysely<Database>, settlements: readonly Settlement[]) => Promise<boolean[]>;
  /** Whether the group is one statement of `finish` and nothing to record: it commits alone. */
  alone: (group: readonly PendingSettlement[]) => boolean;
  record: (trx: Transaction<Database>, records: readonly DeliveryAttemptRecord[]) => Promise<void>;
  /** Called once a group is settled, with whether each of its outcomes finished its job. */
  settled: (group: readonly PendingSettlement[], finished: readonly boolean[]) => void;
  /** What `settled` threw: the settlements stand, only their report failed. */
  onSettledError: (error: unknown) => void;
}) {
  interface Pending extends PendingSettlement {
    resolve: (finished: boolean) => void;
    reject: (error: unknown) => void;
  }
  let queue: Pending[] = [];
  let active = false;
  const commit = (group: readonly Pending[]) =>
    // A fan-out's successes, unrecorded by default, are one statement: no BEGIN and COMMIT around it.
    deps.alone(group)
      ? deps.finish(
          deps.db,
          group.map((pending) => pending.settlement),
        )
      : deps.db.transaction().execute(async (trx) => {
          const finished = await deps.finish(
            trx,
            group.map((pending) => pending.settlement),
          );
          // Only the rows of the jobs this group finished: a job whose claim was lost is another's.
          const records = group.flatMap((pending, index) =>
            finished[index] && pending.record ? [pending.record] : [],
          );
          if (records.length > 0) await deps.record(trx, records);
          return finished;
        });
  const run = async () => {
    while (queue.length > 0) {
      const group = queue;
      queue = [];
      let finished: boolean[];
      try {
        finished = (await commit(group)).map((one) => one === true);
      } catch {
        finished = await Promise.all(
          group.map((pending) =>
            commit([pending]).then(
              ([one]) => one === true,
              (error: unknown) => {
                pending.reject(error);
                return false;
              },
            ),
          ),
        );
      }
      group.forEach((pending, index) => pending.resolve(finished[index] === true));
      // Told after the commit, and never in the way of the next group: a throw here (a logger's, a
      // metric's) would leave `active` set, and every later settlement waiting for good.
      try {
        deps.settled(group, finished);
      } catch (error) {
        deps.onSettledError(error);
      }
    }
    active = false;
  };
  return (pending: PendingSettlement): Promise<boolean> =>
    new Promise<boolean>((resolve, reject) => {
      queue.push({ ...pending, resolve, reject });
      if (active) return;
      active = true;
      // The outcomes of this turn of the event loop start the first group together.
      setImmediate(() => void run());
    });
}
