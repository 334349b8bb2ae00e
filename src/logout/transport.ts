import type { Transaction } from 'kysely';
import type { DatabaseHandle } from '../db/connect.ts';
import type { Database } from '../db/schema.ts';
import { createPgBossTransport, type PgBossTransportOptions } from './pgboss-transport.ts';
import {
  type BclJob,
  claimDueJob,
  finishJob,
  insertJobs,
  type NewBclJob,
  nextDueAt,
  purgeFinishedJobs,
  rescheduleJob,
} from './queue.ts';

/**
 * How back-channel logout jobs travel from the change that causes them to a worker (section G). Two
 * implementations with the same guarantees: the `bcl_job` table (SQLite) and pg-boss (PostgreSQL,
 * pgboss-transport.ts). Every job is inserted in the caller's transaction, claimed by one worker at
 * a time for a bounded lease (a worker that dies mid-attempt loses the claim after it), retried on
 * the configured schedule exactly, and finished in the transaction that records its outcome.
 */
export interface ClaimedJob {
  /** The transport's own handle of the job. */
  id: number | string;
  trigger: string;
  user_id: number | null;
  sub: string;
  client_id: string;
  jti: string;
  iat: number;
  exp: number;
  kid: string;
  sid: string | null;
  /** Attempts made, this one included. */
  attempts: number;
  /** When the first attempt was made (epoch ms), or null for this first attempt. */
  first_attempt_at: number | null;
}

export interface LogoutJobTransport {
  readonly name: 'table' | 'pg-boss';
  /** Queues jobs inside `trx`: they commit or roll back with the change. */
  enqueue(trx: Transaction<Database>, jobs: readonly NewBclJob[], now: number): Promise<void>;
  /** Claims the next due job for `owner` until `leaseUntil`; undefined when none is due. */
  claim(owner: string, now: number, leaseUntil: number): Promise<ClaimedJob | undefined>;
  /** The next attempt after `delaySeconds`; false when the claim was lost meanwhile. */
  reschedule(
    job: ClaimedJob,
    owner: string,
    now: number,
    delaySeconds: number,
    httpStatus: number | null,
  ): Promise<boolean>;
  /** Finishes a claimed job inside `trx` (with the outcome's record); false when the claim was lost. */
  finish(
    trx: Transaction<Database>,
    job: ClaimedJob,
    owner: string,
    outcome: string,
    httpStatus: number | null,
    now: number,
  ): Promise<boolean>;
  /** The earliest time a pending job becomes due, when the transport knows it cheaply. */
  nextDueAt(): Promise<number | undefined>;
  /** Drops finished jobs past their retention (a no-op where the transport does it itself). */
  purge(now: number): Promise<void>;
  /** Called once when this process starts a worker (pg-boss: its supervisor, which expires claims). */
  startWorker(): Promise<void>;
  /** Stops whatever the transport runs, and closes its connections. */
  close(): Promise<void>;
}

/** The `bcl_job` table queue (queue.ts): used on SQLite. */
export function createTableTransport(database: DatabaseHandle): LogoutJobTransport {
  const db = database.db;
  return {
    name: 'table',
    enqueue: (trx, jobs, now) => insertJobs(trx, jobs, now),
    claim: async (owner, now, leaseUntil) => {
      const job = await claimDueJob(db, database.kind, owner, now, leaseUntil);
      if (!job) return undefined;
      return {
        ...job,
        iat: Number(job.iat),
        exp: Number(job.exp),
        first_attempt_at: job.first_attempt_at === null ? null : Number(job.first_attempt_at),
      };
    },
    reschedule: (job, owner, now, delaySeconds, httpStatus) =>
      rescheduleJob(db, job as unknown as BclJob, owner, now + delaySeconds * 1000, httpStatus),
    finish: (trx, job, owner, outcome, httpStatus, now) =>
      finishJob(trx, job as unknown as BclJob, owner, outcome, httpStatus, now),
    nextDueAt: () => nextDueAt(db),
    purge: async (now) => {
      await purgeFinishedJobs(db, now);
    },
    startWorker: async () => undefined,
    close: async () => undefined,
  };
}

/** The transport for a database: pg-boss on PostgreSQL, the `bcl_job` table on SQLite. */
export function createLogoutTransport(
  database: DatabaseHandle,
  options: PgBossTransportOptions,
): LogoutJobTransport {
  if (database.kind === 'sqlite') return createTableTransport(database);
  return createPgBossTransport(database, options);
}
