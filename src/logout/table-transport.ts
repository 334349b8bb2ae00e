import { type Kysely, sql, type Selectable, type Transaction } from 'kysely';
import type { DatabaseKind } from '../db/connect.ts';
import type { DatabaseHandle } from '../db/connect.ts';
import { deleteOldest, type PurgeBounds, type PurgeRound, purgeRound } from '../db/bounded-purge.ts';
import type { BclJobTable, Database } from '../db/schema.ts';
import type {
  ClaimedJob,
  LogoutJob,
  LogoutJobTransport,
  PendingLogout,
  PendingLogoutFilter,
  Settlement,
} from './job-transport.ts';

/**
 * The `bcl_job` table transport of back-channel logout jobs (used on SQLite; pg-boss carries them on
 * PostgreSQL): the only module that queries `bcl_job`. Jobs are inserted with the caller's transaction (so a change and the logouts it causes
 * commit together) and claimed a batch at a time with a lease: a single UPDATE on SQLite (writers are
 * serialised), `FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent workers never share a claim.
 */

export type BclJob = Selectable<BclJobTable>;
type Db = Kysely<Database> | Transaction<Database>;

/** Jobs inserted by one statement (13 parameters each: well under SQLite's limit of 32,766). */
const INSERT_BATCH = 1000;

export async function insertJobs(trx: Db, jobs: readonly LogoutJob[], now: number): Promise<void> {
  for (let start = 0; start < jobs.length; start += INSERT_BATCH) {
    await insertBatch(trx, jobs.slice(start, start + INSERT_BATCH), now);
  }
}

async function insertBatch(trx: Db, jobs: readonly LogoutJob[], now: number): Promise<void> {
  await trx
    .insertInto('bcl_job')
    .values(
      jobs.map((job) => ({
        trigger: job.trigger,
        user_id: job.userId,
        sub: job.sub,
        client_id: job.clientId,
        jti: job.jti,
        iat: job.iat,
        exp: job.exp,
        kid: job.kid,
        sid: job.sid,
        status: 'pending' as const,
        attempts: 0,
        next_attempt_at: now,
        created_at: now,
      })),
    )
    .execute();
}

/**
 * Claims up to `limit` due jobs for `owner` until `leaseUntil`, oldest due first, counting an
 * attempt for each, in one statement; empty when none is due. A job whose lease ran out (its worker
 * died mid-attempt) is due again.
 */
export async function claimDueJobs(
  db: Kysely<Database>,
  kind: DatabaseKind,
  owner: string,
  now: number,
  leaseUntil: number,
  limit: number,
): Promise<BclJob[]> {
  const lock = kind === 'postgres' ? sql`for update skip locked` : sql``;
  // SQLite: `+status` keeps the planner from answering the outer test with the status index (a scan
  // of every pending job, 25,000 in a fan-out, per claim) instead of looking up the claimed ids.
  const stillPending = kind === 'postgres' ? sql`status = 'pending'` : sql`+status = 'pending'`;
  const result = await sql<BclJob>`
    update bcl_job
       set lease_owner = ${owner},
           lease_until = ${leaseUntil},
           attempts = attempts + 1,
           first_attempt_at = coalesce(first_attempt_at, ${now})
     where id in (
       select id from bcl_job
        where status = 'pending'
          and next_attempt_at <= ${now}
          and (lease_until is null or lease_until < ${now})
        order by next_attempt_at, id
        limit ${Math.max(1, Math.floor(limit))}
        ${lock}
     )
       and ${stillPending}
    returning *`.execute(db);
  return result.rows
    .map((row) => ({ ...row, user_id: row.user_id === null ? null : Number(row.user_id) }))
    .sort((a, b) => Number(a.next_attempt_at) - Number(b.next_attempt_at) || Number(a.id) - Number(b.id));
}

/**
 * Whether a job is due and unclaimed, read without writing: an idle worker asks this before its
 * claim, so that polling an empty queue takes no write lock.
 */
export async function anyDueJob(db: Kysely<Database>, now: number): Promise<boolean> {
  const row = await db
    .selectFrom('bcl_job')
    .select('id')
    .where('status', '=', 'pending')
    .where('next_attempt_at', '<=', now)
    .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

/** Claims the next due job for `owner` until `leaseUntil`; undefined when none is due. */
export async function claimDueJob(
  db: Kysely<Database>,
  kind: DatabaseKind,
  owner: string,
  now: number,
  leaseUntil: number,
): Promise<BclJob | undefined> {
  return (await claimDueJobs(db, kind, owner, now, leaseUntil, 1))[0];
}

/** Schedules the next attempt and releases the lease; false when the lease was lost meanwhile. */
export async function rescheduleJob(
  db: Kysely<Database>,
  job: Pick<BclJob, 'id'>,
  owner: string,
  nextAttemptAt: number,
  httpStatus: number | null,
): Promise<boolean> {
  const result = await db
    .updateTable('bcl_job')
    .set({
      next_attempt_at: nextAttemptAt,
      lease_owner: null,
      lease_until: null,
      last_http_status: httpStatus,
    })
    .where('id', '=', job.id)
    .where('lease_owner', '=', owner)
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/**
 * Puts claimed jobs back, due at `nextAttemptAt`, and takes back what their claim counted (the
 * attempt, and the first attempt's time when this claim set it); false for a job whose lease was
 * lost meanwhile.
 */
export async function deferJobs(
  db: Kysely<Database>,
  jobs: ReadonlyArray<{ id: number; attempts: number }>,
  owner: string,
  nextAttemptAt: number,
): Promise<boolean[]> {
  const deferred = new Set<number>();
  // Those whose claim counted their first attempt (its time goes too), and the others: one UPDATE each.
  for (const first of [true, false]) {
    const ids = jobs.filter((job) => (job.attempts === 1) === first).map((job) => job.id);
    for (let start = 0; start < ids.length; start += FINISH_BATCH) {
      const rows = await db
        .updateTable('bcl_job')
        .set((eb) => ({
          next_attempt_at: nextAttemptAt,
          lease_owner: null,
          lease_until: null,
          attempts: eb('attempts', '-', 1),
          ...(first ? { first_attempt_at: null } : {}),
        }))
        .where('id', 'in', ids.slice(start, start + FINISH_BATCH))
        .where('lease_owner', '=', owner)
        .where('status', '=', 'pending')
        .returning('id')
        .execute();
      for (const row of rows) deferred.add(Number(row.id));
    }
  }
  return jobs.map((job) => deferred.has(job.id));
}

/** Marks a job finished with its outcome (inside `trx`); false when the lease was lost meanwhile. */
export async function finishJob(
  trx: Db,
  job: Pick<BclJob, 'id'>,
  owner: string,
  outcome: string,
  httpStatus: number | null,
  now: number,
): Promise<boolean> {
  const [finished] = await finishJobs(trx, [{ job, outcome, httpStatus }], owner, now);
  return finished === true;
}

/** Jobs finished by one statement (their ids are parameters). */
const FINISH_BATCH = 500;

/**
 * Finishes claimed jobs with their outcomes (inside `trx`): one UPDATE per distinct outcome and
 * status, each fenced by the job's lease (its owner, still pending); for each settlement, false when its lease was lost.
 */
export async function finishJobs(
  trx: Db,
  settlements: ReadonlyArray<Pick<Settlement, 'outcome' | 'httpStatus'> & { job: Pick<ClaimedJob, 'id'> }>,
  owner: string,
  now: number,
): Promise<boolean[]> {
  const groups = new Map<string, { outcome: string; httpStatus: number | null; ids: number[] }>();
  for (const { job, outcome, httpStatus } of settlements) {
    const key = finishKey(outcome, httpStatus);
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { outcome, httpStatus, ids: [] }));
    group.ids.push(Number(job.id));
  }
  const finished = new Set<number>();
  for (const { outcome, httpStatus, ids } of groups.values()) {
    for (let start = 0; start < ids.length; start += FINISH_BATCH) {
      const rows = await trx
        .updateTable('bcl_job')
        .set({
          status: 'done',
          outcome,
          finished_at: now,
          lease_owner: null,
          lease_until: null,
          last_http_status: httpStatus,
        })
        .where('id', 'in', ids.slice(start, start + FINISH_BATCH))
        .where('lease_owner', '=', owner)
        .where('status', '=', 'pending')
        .returning('id')
        .execute();
      for (const row of rows) finished.add(Number(row.id));
    }
  }
  return settlements.map(({ job }) => finished.has(Number(job.id)));
}

/** Whether `finishJobs` finishes these in one statement (one outcome and status, one batch). */
export function finishesInOneStatement(
  settlements: ReadonlyArray<Pick<Settlement, 'outcome' | 'httpStatus'>>,
): boolean {
  const first = settlements[0];
  if (!first) return true;
  const key = finishKey(first.outcome, first.httpStatus);
  return (
    settlements.length <= FINISH_BATCH &&
    settlements.every(({ outcome, httpStatus }) => finishKey(outcome, httpStatus) === key)
  );
}

function finishKey(outcome: string, httpStatus: number | null): string {
  return `${outcome} ${httpStatus ?? ''}`;
}

/** The earliest time a pending job becomes due (to sleep until then), or undefined. */
export async function nextDueAt(db: Kysely<Database>): Promise<number | undefined> {
  const row = await db
    .selectFrom('bcl_job')
    .select((eb) => eb.fn.min('next_attempt_at').as('next'))
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return row?.next === null || row?.next === undefined ? undefined : Number(row.next);
}

/** The pending jobs, the next due first (the due index's order); see `LogoutJobTransport.listPending`. */
export async function listPendingJobs(
  db: Kysely<Database>,
  filter: PendingLogoutFilter,
  now: number,
): Promise<PendingLogout[]> {
  let query = db.selectFrom('bcl_job').selectAll().where('status', '=', 'pending');
  if (filter.clientId !== undefined) query = query.where('client_id', '=', filter.clientId);
  if (filter.userId !== undefined) query = query.where('user_id', '=', filter.userId);
  const rows = await query.orderBy('next_attempt_at').orderBy('id').limit(filter.limit).execute();
  return rows.map((row): PendingLogout => {
    const attempts = Number(row.attempts);
    const claimed = row.lease_until !== null && Number(row.lease_until) >= now;
    return {
      state: claimed ? 'in_flight' : attempts === 0 ? 'queued' : 'retrying',
      trigger: row.trigger,
      userId: row.user_id === null ? null : Number(row.user_id),
      clientId: row.client_id,
      jti: row.jti,
      attempts,
      nextAttemptAt: claimed ? null : Number(row.next_attempt_at),
      lastHttpStatus: row.last_http_status === null ? null : Number(row.last_http_status),
    };
  });
}

/** Finished jobs are kept this long (for `bcl_job` inspection), then deleted by the worker. */
export const FINISHED_JOB_RETENTION_MS = 7 * 24 * 3600 * 1000;

/** One round of the purge of finished jobs: ten statements of a thousand rows at most. */
export const FINISHED_JOB_PURGE: Readonly<PurgeBounds> = { rows: 1000, statements: 10 };

/**
 * Deletes finished jobs older than the retention, oldest first, by the index of finished jobs by time
 * (`bcl_job_finished_idx`), a statement per `bounds.rows`, at most `bounds.statements` a call (the
 * worker calls again the next round while `more`), so that a fan-out's worth of jobs never holds the
 * table's writer, or its statement timeout, for long.
 */
export function purgeFinishedJobs(
  db: Kysely<Database>,
  now: number,
  bounds: PurgeBounds = FINISHED_JOB_PURGE,
): Promise<PurgeRound> {
  const before = now - FINISHED_JOB_RETENTION_MS;
  return purgeRound(deleteOldest(db, 'bcl_job', 'finished_at', before, { status: 'done' }), bounds);
}

/** The `bcl_job` table as a job transport. */
export function createTableTransport(database: DatabaseHandle): LogoutJobTransport {
  const db = database.db;
  // After a claim that found nothing, the next one first reads whether anything is due.
  let idle = true;
  return {
    name: 'table',
    enqueue: (trx, jobs, now) => insertJobs(trx, jobs, now),
    claim: async (owner, now, leaseUntil, limit) => {
      if (idle && !(await anyDueJob(db, now))) return [];
      const rows = await claimDueJobs(db, database.kind, owner, now, leaseUntil, limit);
      idle = rows.length === 0;
      return rows.map((row): ClaimedJob => ({
        id: row.id,
        trigger: row.trigger as LogoutJob['trigger'],
        userId: row.user_id,
        sub: row.sub,
        clientId: row.client_id,
        jti: row.jti,
        iat: Number(row.iat),
        exp: Number(row.exp),
        kid: row.kid,
        sid: row.sid,
        attempts: Number(row.attempts),
        firstAttemptAt: row.first_attempt_at === null ? null : Number(row.first_attempt_at),
      }));
    },
    reschedule: (job, owner, now, delaySeconds, httpStatus) =>
      rescheduleJob(db, { id: Number(job.id) }, owner, now + delaySeconds * 1000, httpStatus),
    defer: (jobs, owner, now, delaySeconds) =>
      deferJobs(
        db,
        jobs.map((job) => ({ id: Number(job.id), attempts: job.attempts })),
        owner,
        now + delaySeconds * 1000,
      ),
    finishMany: (trx, settlements, owner, now) => finishJobs(trx, settlements, owner, now),
    finishesInOneStatement,
    nextDueAt: () => nextDueAt(db),
    listPending: (filter, now) => listPendingJobs(db, filter, now),
    purge: async (now) => (await purgeFinishedJobs(db, now)).more,
    startWorker: async () => undefined,
    hasStarted: () => true,
    close: async () => undefined,
  };
}
