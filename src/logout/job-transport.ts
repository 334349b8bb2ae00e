import { randomBytes } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import type { LogoutReason } from '../audit/events.ts';
import type { Database } from '../db/schema.ts';

/**
 * What a job pins: scalars only. Every attempt signs its token afresh with the active key and a new
 * `iat`/`exp` (delivery.ts `attemptOnce`); the `jti` stays the job's, so that a receiver recognises a
 * second attempt. The pinned `iat` and `exp` are the queueing's; the pinned `kid` (the key active then)
 * signs only when no active key is loaded.
 */
export interface LogoutJob {
  trigger: LogoutReason;
  /** Null only for the `admin_test` no-op subject. */
  userId: number | null;
  sub: string;
  clientId: string;
  jti: string;
  /** Seconds since the epoch. */
  iat: number;
  exp: number;
  /** The key active when it was queued (another loaded key when none was, '' when none was loaded: jobs.ts). */
  kid: string;
  sid: string | null;
}

/** A fresh `jti`: 128 random bits, base64url. */
export function newJti(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * How back-channel logout jobs travel from the change that causes them to a worker. Two
 * implementations with the same guarantees: the `bcl_job` table (SQLite, table-transport.ts) and pg-boss (PostgreSQL,
 * pgboss-transport.ts). Every job is inserted in the caller's transaction, claimed by one worker at
 * a time for a bounded lease (a worker that dies mid-attempt loses the claim after it), retried on
 * the configured schedule exactly, and finished in the transaction that records its outcome.
 */
export interface ClaimedJob extends LogoutJob {
  /** The transport's own handle of the job. */
  id: number | string;
  /** Attempts made, this one included. */
  attempts: number;
  /** When the first attempt was made (epoch ms), or null for this first attempt. */
  firstAttemptAt: number | null;
  /** The HTTP status of the last attempt, where the transport keeps it with the job (pg-boss). */
  lastHttpStatus?: number | null;
  /**
   * The last moment (epoch ms) this attempt may start (set by the worker): one request timeout
   * after the claim, so that a started attempt ends, and is recorded, before the claim lapses and
   * another worker sends the job again.
   */
  startBy?: number;
}

/** The final outcome of one claimed job, recorded with others in one transaction. */
export interface Settlement {
  job: ClaimedJob;
  outcome: string;
  httpStatus: number | null;
}

/**
 * A logout still to be delivered, as `aa-oidc bcl list` shows it: waiting for its first attempt
 * (`queued`), for its next one after a failure (`retrying`), or being attempted now (`in_flight`: a
 * worker holds its claim).
 */
export interface PendingLogout {
  state: 'queued' | 'retrying' | 'in_flight';
  trigger: string;
  userId: number | null;
  clientId: string;
  jti: string;
  /** Attempts made so far, the one in flight included. */
  attempts: number;
  /** When the next attempt is due (epoch ms; past when no worker took it yet), or null while in flight. */
  nextAttemptAt: number | null;
  /** The HTTP status of the last attempt, null when none answered. */
  lastHttpStatus: number | null;
}

export interface PendingLogoutFilter {
  clientId?: string;
  userId?: number;
  limit: number;
}

export interface LogoutJobTransport {
  readonly name: 'table' | 'pg-boss';
  /** Queues jobs inside `trx`: they commit or roll back with the change. */
  enqueue(trx: Transaction<Database>, jobs: readonly LogoutJob[], now: number): Promise<void>;
  /** Claims up to `limit` due jobs for `owner` until `leaseUntil`, oldest due first; empty when none is due. */
  claim(owner: string, now: number, leaseUntil: number, limit: number): Promise<ClaimedJob[]>;
  /** The next attempt after `delaySeconds`; false when the claim was lost meanwhile. */
  reschedule(
    job: ClaimedJob,
    owner: string,
    now: number,
    delaySeconds: number,
    httpStatus: number | null,
  ): Promise<boolean>;
  /**
   * Puts claimed jobs back, due after `delaySeconds`, without counting their claim as an attempt
   * (nothing was sent: the worker had no lane for their application, whose attempts stall); for each
   * job in order, false when its claim was lost meanwhile.
   */
  defer(jobs: readonly ClaimedJob[], owner: string, now: number, delaySeconds: number): Promise<boolean[]>;
  /**
   * Finishes claimed jobs inside `trx` (or alone, see `finishesInOneStatement`), one statement per distinct outcome (a fan-out's deliveries
   * mostly share one): for each settlement in order, false when its claim was lost.
   */
  finishMany(
    trx: Kysely<Database>,
    settlements: readonly Settlement[],
    owner: string,
    now: number,
  ): Promise<boolean[]>;
  /**
   * Whether `finishMany` finishes these in one statement: then, with nothing else to record, it needs
   * no transaction around it (the statement commits alone, as durably).
   */
  finishesInOneStatement(settlements: readonly Settlement[]): boolean;
  /** The earliest time a pending job becomes due, when the transport knows it cheaply. */
  nextDueAt(): Promise<number | undefined>;
  /**
   * The logouts still to be delivered, the next due first, read without claiming or starting anything
   * (`aa-oidc bcl list`); `now` tells a job in flight from one whose claim lapsed.
   */
  listPending(filter: PendingLogoutFilter, now: number): Promise<PendingLogout[]>;
  /**
   * Drops finished jobs past their retention, a bounded share a call (a no-op where the transport does
   * it itself); true when some may remain.
   */
  purge(now: number): Promise<boolean>;
  /** Called once when this process starts a worker (pg-boss: its supervisor, which expires claims). */
  startWorker(): Promise<void>;
  /**
   * Whether this process's transport has started (pg-boss: installed or found its schema, which it
   * does once only). The table transport has nothing to start: always true.
   */
  hasStarted(): boolean;
  /**
   * The process's stop began (before the worker's round and the transport's close): the failures of
   * what the transport runs by itself (pg-boss's maintenance and supervisor) are the stop's from now
   * on, logged at `debug` with `stopped: true`. Absent where it runs nothing by itself (the table).
   */
  stopping?(): void;
  /** Stops whatever the transport runs, and closes its connections; tells `stopping` first. */
  close(): Promise<void>;
}
