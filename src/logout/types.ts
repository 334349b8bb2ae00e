import type { Transaction } from 'kysely';
import type { AuditBus } from '../audit/bus.ts';
import type { LogoutDeliveryOutcome, LogoutReason } from '../audit/events.ts';
import type { ApplicationService } from '../applications/types.ts';
import type { Config } from '../config/load.ts';
import type { DatabaseHandle } from '../db/connect.ts';
import type { Database } from '../db/schema.ts';
import type { UnitOfWork } from '../db/unit-of-work.ts';
import type { ChangeConsumer } from '../directory/port.ts';
import type { KeyStore } from '../keys/types.ts';
import type { Logger } from '../logging/logger.ts';
import type { Metrics } from '../metrics/registry.ts';
import type { WhitelistLoss } from '../tokens/access-loss.ts';
import type { ThisChange } from '../tokens/payload-rows.ts';
import type { Connector } from './http-delivery.ts';
import type { LogoutJobTransport, PendingLogout, PendingLogoutFilter } from './job-transport.ts';
import type { Resolver } from './ssrf/resolver.ts';

/** The back-channel logout service's interface and the values it takes and gives (service.ts builds it). */

export interface LogoutDependencies {
  config: Config;
  database: DatabaseHandle;
  logger: Logger;
  audit: Pick<AuditBus, 'publish'>;
  metrics: Pick<Metrics, 'bclDispatches' | 'bclDeliverySeconds'>;
  applications: Pick<ApplicationService, 'findByClientId'>;
  keyStore: Pick<KeyStore, 'loadedKeys' | 'reload'>;
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
  revokedByThisChange?: ThisChange;
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
  /**
   * Attempts in flight at once (default 32), over kept-alive connections (at most 8 to one target);
   * as many again may wait for their record to commit.
   */
  concurrency?: number;
}

export interface LogoutWorker {
  /** Looks for due jobs now (after this process queued some). */
  wake(): void;
  /**
   * Stops claiming; resolves when the attempts in flight have finished, or once it has waited
   * `workerStopWaitMs` for them (worker.ts: the database does not answer), saying so at `warn`.
   * Stopped for good: the service's `startWorker` then starts a new worker.
   */
  stop(): Promise<void>;
}

export interface LogoutService {
  /**
   * Queues a back-channel logout for each application that must hear of this user's logout, inside
   * `trx` (the transaction of the change). Returns the queued logouts; publish them with
   * `published()` once the transaction committed.
   */
  enqueueLogoutForUser(trx: Transaction<Database>, request: UserLogoutRequest): Promise<QueuedLogout[]>;
  /**
   * RP-initiated logout: queues the session's applications (each with its `sid`) inside `trx`, the
   * transaction that destroys the session; publish them with `published()` once it committed.
   */
  enqueueSessionLogout(trx: Transaction<Database>, request: SessionLogoutRequest): Promise<QueuedLogout[]>;
  /** `logout_required` for committed jobs, and a wake-up for this process's worker. */
  published(queued: readonly QueuedLogout[]): void;
  /**
   * The directory triggers (deactivation, deletion, access lost), for the change feed: queues the
   * jobs in the change's unit of work and publishes them once it committed.
   */
  onDirectoryChange: ChangeConsumer;
  /**
   * An application no longer admits users who signed in there (src/tokens/access-loss.ts
   * `endAccessOnWhitelistChange`: its whitelists narrowed, or it was activated): queues the loss's
   * logouts (`whitelist_changed`, `application_activated`) to it for those who hold tokens there, in
   * the change's unit of work, before their tokens are revoked; publishes them once it committed.
   */
  onWhitelistLoss(loss: WhitelistLoss, unit: UnitOfWork): Promise<void>;
  /**
   * Delivers every due job now, one attempt each; returns how many attempts were made (tests, CLI).
   * Rejects, naming the closed service, once `close()` has begun.
   */
  deliverDue(): Promise<number>;
  /**
   * Starts the polling worker of this process, or returns the one running (whatever `options` say).
   * After its `stop()`, a new one starts, claiming once the stopped one has finished its attempts:
   * a stopped worker is never handed back, and a process never runs two at once. Throws once
   * `close()` has begun: the transport and connections a worker needs are gone.
   */
  startWorker(options?: WorkerOptions): LogoutWorker;
  /**
   * Whether this process's job transport has started: pg-boss then installs no schema again, so one
   * dropped or emptied since leaves nowhere to queue logouts (`/readyz`).
   */
  transportStarted(): boolean;
  /**
   * `aa-oidc bcl test`: one test token for a no-op subject to each application, now. Rejects, naming
   * the closed service, once `close()` has begun.
   */
  testDelivery(clientIds: readonly string[]): Promise<BclTestResult[]>;
  /**
   * The logouts still to be delivered, the next due first (`aa-oidc bcl list`): read from the queue
   * of the database's transport, claiming and starting nothing.
   */
  pendingLogouts(filter: PendingLogoutFilter): Promise<PendingLogout[]>;
  /**
   * The process's stop began (before the work it waits for has ended: the requests in flight, the
   * purges): what the job transport runs by itself and fails from now on is the stop's, logged at
   * `debug` with `stopped: true` (`LogoutJobTransport.stopping`). Called by `close` too.
   */
  stopping(): void;
  /**
   * Stops the worker, if started, and closes the transport; `startWorker`, `deliverDue` and
   * `testDelivery` throw from then on.
   */
  close(): Promise<void>;
}
