import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';

/** Final outcomes of back-channel deliveries (`bcl_delivery_attempt`, owned here), read for the admin UI. */
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
  /** Only this outcome; `failures` for every outcome but `success`. */
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
  if (filter.outcome === 'failures') query = query.where('outcome', '!=', 'success');
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
  outcome: string;
  httpStatus: number | null;
  detail: string;
  recordedAt: number;
}

/** Records a delivery's final outcome, inside the caller's transaction when it has one. */
export async function recordDeliveryAttempt(
  db: Kysely<Database>,
  record: DeliveryAttemptRecord,
): Promise<void> {
  await db
    .insertInto('bcl_delivery_attempt')
    .values({
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
    })
    .execute();
}
