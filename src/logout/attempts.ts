import type { Kysely } from 'kysely';
import type { LogoutDeliveryOutcome } from '../audit/events.ts';
import { deleteOldest, type PurgeBounds, type PurgeRound, purgeRound } from '../db/bounded-purge.ts';
import type { Database } from '../db/schema.ts';

/**
 * The outcomes `bcl_delivery_attempt` records: a delivery's (SPEC G), and `cancelled` for a queued
 * logout its application stopped receiving before it was sent (delivery.ts says why it is recorded).
 */
export type RecordedOutcome = LogoutDeliveryOutcome | 'cancelled';

export const RECORDED_OUTCOMES: readonly RecordedOutcome[] = [
  'success',
  'redirect_blocked',
  'rp_client_error',
  'retries_exhausted',
  'signing_kid_retired',
  'dns_resolve_failed',
  'unsafe_target_ip',
  'cancelled',
];

/**
 * What the `failures` filter leaves out: a success, and a cancellation, which no receiver failed
 * (the operator's change stopped it; `aa_oidc_bcl_dispatches_total` alerts leave it out alike).
 */
const NOT_FAILURES: readonly RecordedOutcome[] = ['success', 'cancelled'];

/** Final outcomes of back-channel deliveries (`bcl_delivery_attempt`, owned here), read for the admin UI and `bcl list`. */
export interface DeliveryAttempt {
  id: number;
  clientId: string;
  clientName: string;
  userId: number | null;
  trigger: string;
  jti: string;
  attempts: number;
  outcome: string;
  httpStatus: number | null;
  detail: string | null;
  recordedAt: number;
}

export interface DeliveryAttemptFilter {
  clientId?: string;
  userId?: number;
  /** Only this outcome; `failures` for every outcome but `success` and `cancelled`. */
  outcome?: string;
  since?: number;
  until?: number;
  /** The next page of a newest-first listing. */
  beforeId?: number;
  limit?: number;
}

/** Newest first. */
export async function listDeliveryAttempts(
  db: Kysely<Database>,
  filter: DeliveryAttemptFilter = {},
): Promise<DeliveryAttempt[]> {
  let query = db.selectFrom('bcl_delivery_attempt').selectAll();
  if (filter.clientId !== undefined) query = query.where('client_id', '=', filter.clientId);
  if (filter.userId !== undefined) query = query.where('user_id', '=', filter.userId);
  if (filter.outcome === 'failures') query = query.where('outcome', 'not in', NOT_FAILURES);
  else if (filter.outcome !== undefined) query = query.where('outcome', '=', filter.outcome);
  if (filter.since !== undefined) query = query.where('recorded_at', '>=', filter.since);
  if (filter.until !== undefined) query = query.where('recorded_at', '<', filter.until);
  if (filter.beforeId !== undefined) query = query.where('id', '<', filter.beforeId);
  const rows = await query
    .orderBy('id', 'desc')
    .limit(Math.min(Math.max(1, filter.limit ?? 50), 1000))
    .execute();
  return rows.map((row) => ({
    id: Number(row.id),
    clientId: row.client_id,
    clientName: row.client_name,
    userId: row.user_id === null ? null : Number(row.user_id),
    trigger: row.trigger,
    jti: row.jti,
    attempts: Number(row.attempts),
    outcome: row.outcome,
    httpStatus: row.http_status === null ? null : Number(row.http_status),
    detail: row.detail,
    recordedAt: Number(row.recorded_at),
  }));
}

/** One delivery's final outcome, as recorded. */
export interface DeliveryAttemptRecord {
  clientId: string;
  clientName: string;
  userId: number | null;
  trigger: string;
  jti: string;
  attempts: number;
  outcome: RecordedOutcome;
  httpStatus: number | null;
  detail: string;
  recordedAt: number;
}

/** Rows inserted by one statement (10 parameters each: well under SQLite's limit of 32,766). */
const INSERT_BATCH = 1000;

/**
 * Records final outcomes, inside the caller's transaction when it has one: one statement per
 * thousand (the outcomes of a settled group, a fan-out's failures or cancellations among them).
 */
export async function recordDeliveryAttempts(
  db: Kysely<Database>,
  records: readonly DeliveryAttemptRecord[],
): Promise<void> {
  for (let start = 0; start < records.length; start += INSERT_BATCH) {
    await db
      .insertInto('bcl_delivery_attempt')
      .values(
        records.slice(start, start + INSERT_BATCH).map((record) => ({
          client_id: record.clientId,
          client_name: record.clientName.slice(0, 200),
          user_id: record.userId,
          trigger: record.trigger,
          jti: record.jti,
          attempts: record.attempts,
          outcome: record.outcome,
          http_status: record.httpStatus,
          detail: record.detail.slice(0, 300),
          recorded_at: record.recordedAt,
        })),
      )
      .execute();
  }
}

/**
 * One round of the purge: ten statements of a thousand rows at most. The worker runs one a round while
 * some remain (src/logout/worker.ts), delivering between them.
 */
export const DELIVERY_ATTEMPT_PURGE: Readonly<PurgeBounds> = { rows: 1000, statements: 10 };

/**
 * Deletes the outcomes recorded before `before` (`logout.recordRetentionDays`), oldest first, by the
 * `recorded_at` index: a batch a statement, each its own transaction, so that no writer (a worker
 * recording outcomes, SQLite's one writer) waits behind a long delete; at most `bounds.statements` of
 * them a call, so that a table that has grown for years is worked off over several calls, the worker
 * delivering between them. `more` when the last batch was full: some may remain.
 */
export function purgeDeliveryAttempts(
  db: Kysely<Database>,
  before: number,
  bounds: PurgeBounds = DELIVERY_ATTEMPT_PURGE,
): Promise<PurgeRound> {
  return purgeRound(deleteOldest(db, 'bcl_delivery_attempt', 'recorded_at', before), bounds);
}
