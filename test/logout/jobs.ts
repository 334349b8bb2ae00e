import assert from 'node:assert/strict';
import { type Insertable, sql } from 'kysely';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import type { BclJobTable } from '../../src/db/schema.ts';
import { newJti } from '../../src/logout/job-transport.ts';
import {
  BCL_QUEUE,
  type BclJobData,
  type BclJobOutput,
  PGBOSS_SCHEMA,
} from '../../src/logout/pgboss-transport.ts';

/**
 * The queued back-channel logouts, whatever carries them: the `bcl_job` table on SQLite, pg-boss's
 * job table on PostgreSQL. One row per logical job (one logout to one application): on pg-boss a
 * retry is a new job with the same `jti`, so the row is the chain's live job.
 */
export interface LogoutJobView {
  jti: string;
  client_id: string;
  user_id: number | null;
  trigger: string;
  sid: string | null;
  kid: string;
  status: 'pending' | 'done';
  outcome: string | null;
  attempts: number;
  last_http_status: number | null;
}

interface PgBossRow {
  state: string;
  data: BclJobData;
  output: BclJobOutput | null;
  retry_count: number;
  started_on: Date | null;
}

/** pg-boss's jobs of our queue, oldest first (every job, the rescheduled ones included). */
export async function pgBossJobs(database: DatabaseHandle): Promise<PgBossRow[]> {
  // pg-boss installs its schema on first use (or `aa-oidc migrate`): none yet, no jobs yet.
  const installed = await sql<{ table: string | null }>`
    select to_regclass(${`${PGBOSS_SCHEMA}.job`})::text as table`.execute(database.db);
  if (installed.rows[0]?.table === null) return [];
  const result = await sql<PgBossRow>`
    select state, data, output, retry_count, started_on
      from ${sql.table(`${PGBOSS_SCHEMA}.job`)}
     where name = ${BCL_QUEUE}
     order by created_on, id`.execute(database.db);
  return result.rows;
}

export async function logoutJobs(
  database: DatabaseHandle,
  filter: { userId?: number; clientId?: string } = {},
): Promise<LogoutJobView[]> {
  let views: LogoutJobView[];
  if (database.kind === 'sqlite') {
    const rows = await database.db.selectFrom('bcl_job').selectAll().orderBy('id').execute();
    views = rows.map((row) => ({
      jti: row.jti,
      client_id: row.client_id,
      user_id: row.user_id === null ? null : Number(row.user_id),
      trigger: row.trigger,
      sid: row.sid,
      kid: row.kid,
      status: row.status,
      outcome: row.outcome,
      attempts: row.attempts,
      last_http_status: row.last_http_status,
    }));
  } else {
    // A rescheduled job is completed with `rescheduled` in the transaction that sends its successor.
    const live = (await pgBossJobs(database)).filter((row) => !row.output?.rescheduled);
    views = live.map((row) => {
      const done = row.state === 'completed';
      return {
        jti: row.data.jti,
        client_id: row.data.clientId,
        user_id: row.data.userId,
        trigger: row.data.trigger,
        sid: row.data.sid,
        kid: row.data.kid,
        status: done ? 'done' : 'pending',
        outcome: done ? (row.output?.outcome ?? null) : null,
        attempts: done
          ? row.output!.attempts
          : row.data.priorAttempts + row.retry_count + (row.started_on === null ? 0 : 1),
        last_http_status: done ? (row.output?.httpStatus ?? null) : row.data.lastHttpStatus,
      };
    });
  }
  return views.filter(
    (view) =>
      (filter.userId === undefined || view.user_id === filter.userId) &&
      (filter.clientId === undefined || view.client_id === filter.clientId),
  );
}

/** Re-pins the signing key of a pending job (to test a retired key). */
export async function setPendingJobKid(database: DatabaseHandle, jti: string, kid: string): Promise<void> {
  if (database.kind === 'sqlite') {
    await database.db.updateTable('bcl_job').set({ kid }).where('jti', '=', jti).execute();
    return;
  }
  await sql`
    update ${sql.table(`${PGBOSS_SCHEMA}.job`)}
       set data = jsonb_set(data, '{kid}', to_jsonb(${kid}::text))
     where name = ${BCL_QUEUE}
       and data->>'jti' = ${jti}
       and state < 'completed'`.execute(database.db);
}

/** Makes a pending job look queued long ago: its `iat` and `exp` moved back by `seconds`. */
export async function agePendingJob(database: DatabaseHandle, jti: string, seconds: number): Promise<void> {
  if (database.kind === 'sqlite') {
    await database.db
      .updateTable('bcl_job')
      .set((eb) => ({ iat: eb('iat', '-', seconds), exp: eb('exp', '-', seconds) }))
      .where('jti', '=', jti)
      .execute();
    return;
  }
  await sql`
    update ${sql.table(`${PGBOSS_SCHEMA}.job`)}
       set data = data || jsonb_build_object('iat', (data->>'iat')::bigint - ${seconds}, 'exp', (data->>'exp')::bigint - ${seconds})
     where name = ${BCL_QUEUE}
       and data->>'jti' = ${jti}
       and state < 'completed'`.execute(database.db);
}

/** Two logout tokens of one job: the same logout (jti, audience, subject, session), signed apart. */
export function assertSameLogout(later: string, earlier: string, message: string): void {
  const claims = (token: string) =>
    JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
  const { iat: laterIat, exp: _laterExp, ...laterRest } = claims(later);
  const { iat: earlierIat, exp: _earlierExp, ...earlierRest } = claims(earlier);
  assert.deepEqual(laterRest, earlierRest, message);
  assert.ok(Number(laterIat) >= Number(earlierIat), `${message}: signed no earlier`);
}

/**
 * A `bcl_job` row of a logout delivered to `clientId` and finished at `finishedAt`, as the table
 * transport leaves it, for the tests of the purge of finished jobs.
 */
export function finishedJobRow(clientId: string, finishedAt: number): Insertable<BclJobTable> {
  return {
    trigger: 'user_deactivated',
    user_id: 7,
    sub: '7',
    client_id: clientId,
    jti: newJti(),
    iat: Math.floor(finishedAt / 1000),
    exp: Math.floor(finishedAt / 1000) + 300,
    kid: 'kid-1',
    sid: null,
    status: 'done',
    attempts: 1,
    next_attempt_at: finishedAt,
    outcome: 'success',
    created_at: finishedAt,
    finished_at: finishedAt,
  };
}
