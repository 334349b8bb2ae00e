import { createRequire } from 'node:module';
import { CompiledQuery, type Kysely, sql, type Transaction } from 'kysely';
import type pg from 'pg';
import type { Db as IDatabase, PgBoss } from 'pg-boss';
import type { DatabaseHandle } from '../db/connect.ts';
import { MigrationError } from '../db/migrate.ts';
import type { Database } from '../db/schema.ts';
import { logFailure } from '../logging/after-stop.ts';
import type { Logger } from '../logging/logger.ts';
import { assertNever } from '../util/assert-never.ts';
import type {
  ClaimedJob,
  LogoutJob,
  LogoutJobTransport,
  PendingLogout,
  PendingLogoutFilter,
  Settlement,
} from './job-transport.ts';

/**
 * The back-channel logout jobs on PostgreSQL: a pg-boss queue. pg-boss keeps its tables
 * in its own schema (`pgboss`), which it creates and migrates on start (`aa-oidc migrate`, or the
 * first use by any command). The guarantees of the table queue hold:
 * - a job is sent with pg-boss's `db` option on the caller's Kysely transaction, so it commits or
 *   rolls back with the change;
 * - a worker claims a job with `fetch` (SKIP LOCKED); the claim lasts `expireInSeconds`, after which
 *   the supervisor (run by every worker) puts the job back (`retryLimit` counts only these lapsed
 *   claims: the handler never fails a job), so a worker killed mid-delivery loses nothing;
 * - a retry is a new job, sent with `startAfter` = the configured delay in the same transaction that
 *   completes the current one (pg-boss's own backoff is never used), carrying the pinned claims;
 * - a job is completed with its outcome in the transaction that records it, fenced to the claimed
 *   attempt: a claim that lapsed meanwhile completes nothing, and a completed job is never fetched
 *   again.
 */

export const PGBOSS_SCHEMA = 'pgboss';
export const BCL_QUEUE = 'aa_oidc_bcl';

/** Jobs queued by one statement. */
const INSERT_BATCH = 1000;

/** Lapsed claims a job survives; each one counts as an attempt, so the retries still run out. */
const CRASH_RETRY_LIMIT = 1000;

/** What a pg-boss job carries: the pinned scalars, and the attempts before this job. */
export interface BclJobData extends LogoutJob {
  /** Attempts made by the jobs before this one (0 for the first). */
  priorAttempts: number;
  firstAttemptAt: number | null;
  lastHttpStatus: number | null;
}

/** What a completed job stores as its output. */
export interface BclJobOutput {
  outcome: string;
  attempts: number;
  httpStatus: number | null;
  /** True when the job was completed by scheduling the next attempt. */
  rescheduled?: boolean;
}

export interface PgBossTransportOptions {
  /** How long a claim lasts (the lease): a lapsed claim puts the job back. */
  expireInSeconds: number;
  logger: Logger;
}

/** pg-boss's executor on a Kysely transaction (its statements run inside it), or on the pool. */
export function kyselyExecutor(trx: Kysely<Database>): IDatabase {
  return {
    async executeSql(text, values) {
      const result = await trx.executeQuery(CompiledQuery.raw(text, values ?? []));
      return { rows: result.rows as unknown[] };
    },
  };
}

/**
 * pg-boss's claim (`fetch`) on the pool, planned without bitmap scans. The claim takes the first
 * `limit` due jobs in the queue's order; statistics taken while the queue was nearly empty (every
 * fan-out starts so: pg-boss's job table holds finished jobs, or nothing) estimate a handful of due
 * jobs, and the planner then reads every due job through a bitmap scan and sorts them all at each
 * claim, a fan-out's claims costing the database the square of its jobs (25,000 jobs claimed 16 at a
 * time: 0.38 ms of the database's CPU per job for claims and completions, 0.16 ms without). Without
 * bitmap scans it walks the queue's index in order and stops after the batch, whatever the
 * statistics say. The setting is `set local`, sent in the same text as the claim (one round trip,
 * one implicit transaction), so nothing else on the connection is planned under it. A claim with
 * parameters (none in the pg-boss this was written for) runs as pg-boss sends it.
 */
export function claimExecutor(pool: { query: pg.Pool['query'] }): IDatabase {
  return {
    async executeSql(text, values) {
      if (values && values.length > 0) return { rows: (await pool.query(text, values)).rows as unknown[] };
      const results = (await pool.query(`set local enable_bitmapscan = off; ${text}`)) as unknown as
        pg.QueryResult | pg.QueryResult[];
      const last = Array.isArray(results) ? results.at(-1) : results;
      return { rows: (last?.rows ?? []) as unknown[] };
    },
  };
}

/**
 * A pg-boss instance on our own pool, for `aa-oidc migrate` and the transport. pg-boss is loaded
 * here, on first use: a process on SQLite never loads it (memory).
 */
export async function newPgBoss(database: DatabaseHandle, expireInSeconds: number): Promise<PgBoss> {
  const pool = database.pgPool;
  if (!pool) throw new Error('pg-boss needs the PostgreSQL pool');
  const { PgBoss } = await import('pg-boss');
  // The supervisor pass (which expires lapsed claims) runs as often as half a claim lasts.
  const superviseSeconds = Math.min(60, Math.max(1, Math.ceil(expireInSeconds / 2)));
  return new PgBoss({
    db: { executeSql: async (text, values) => pool.query(text, values) },
    schema: PGBOSS_SCHEMA,
    migrate: true,
    supervise: false,
    schedule: false,
    registerInstance: false,
    superviseIntervalSeconds: superviseSeconds,
    monitorIntervalSeconds: 1,
  });
}

/** The pg-boss schema version this aa-oidc needs (pg-boss's package.json). */
export function pgBossSchemaVersion(): number {
  const manifest = createRequire(import.meta.url)('pg-boss/package.json') as { pgboss: { schema: number } };
  return manifest.pgboss.schema;
}

/**
 * What the database holds of pg-boss, read without changing anything. pg-boss itself calls its
 * schema installed when its table `pgboss.version` exists, and reads the version from it:
 * - `absent`: no schema `pgboss`; pg-boss creates it;
 * - `empty`: the schema exists but holds nothing; pg-boss installs in it;
 * - `without-version`: the schema holds tables, types or functions but no version table (a partly
 *   dropped or restored schema, or someone else's): pg-boss takes it for not installed, its install
 *   then fails on the first object that exists, and it swallows that failure as a race with another
 *   installer, so it would neither install nor say so;
 * - `installed`: the version table exists; `version` is null when it holds no row (pg-boss then
 *   neither migrates nor reinstalls).
 */
export type PgBossInstall =
  | { kind: 'absent' }
  | { kind: 'empty' }
  | { kind: 'without-version'; objects: string[] }
  | { kind: 'installed'; version: number | null };

export async function pgBossInstall(database: DatabaseHandle): Promise<PgBossInstall> {
  const table = await sql<{
    name: string | null;
  }>`select to_regclass(${`${PGBOSS_SCHEMA}.version`})::text as name`.execute(database.db);
  if (table.rows[0]?.name) {
    const version = await sql<{
      version: number;
    }>`select version from ${sql.table(`${PGBOSS_SCHEMA}.version`)}`.execute(database.db);
    return { kind: 'installed', version: version.rows[0]?.version ?? null };
  }
  const schema = await sql<{ oid: number }>`
    select oid from pg_namespace where nspname = ${PGBOSS_SCHEMA}`.execute(database.db);
  const oid = schema.rows[0]?.oid;
  if (oid === undefined) return { kind: 'absent' };
  // Relations (not their indexes or sequences), types of their own (not a table's row type or an
  // array type) and functions: what pg-boss's install creates and would collide with.
  const objects = await sql<{ name: string }>`
    select name from (
      select relname::text as name from pg_class where relnamespace = ${oid} and relkind in ('r', 'p', 'v', 'm', 'f')
      union
      select typname::text from pg_type where typnamespace = ${oid} and typtype in ('e', 'd', 'b', 'r', 'm') and typcategory <> 'A'
      union
      select proname::text from pg_proc where pronamespace = ${oid}
    ) o order by name`.execute(database.db);
  return objects.rows.length === 0
    ? { kind: 'empty' }
    : { kind: 'without-version', objects: objects.rows.map((row) => row.name) };
}

/** What pg-boss can install or upgrade: no version table, or one that records a version. */
export type UsablePgBossInstall =
  { kind: 'absent' } | { kind: 'empty' } | { kind: 'installed'; version: number };

/**
 * Whether pg-boss can install or upgrade its schema, or else why it would leave it as it is
 * (`without-version`, or a version table without a row) and what the operator can do: one judgement
 * for `aa-oidc migrate`, its dry run, `serve`, `worker` and `aa-oidc check` (E008).
 */
export type PgBossInstallJudgement =
  { kind: 'usable'; install: UsablePgBossInstall } | { kind: 'unusable'; problem: string; remedy: string };

export function judgePgBossInstall(install: PgBossInstall): PgBossInstallJudgement {
  const remedy =
    'restore the database from its backup, or, if nothing in it is needed (queued back-channel logouts ' +
    `are lost), drop it (DROP SCHEMA ${PGBOSS_SCHEMA} CASCADE) and run aa-oidc migrate again`;
  switch (install.kind) {
    case 'absent':
    case 'empty':
      return { kind: 'usable', install };
    case 'without-version': {
      const shown = install.objects.slice(0, 5).join(', ');
      const more = install.objects.length > 5 ? `, and ${install.objects.length - 5} more` : '';
      return {
        kind: 'unusable',
        problem:
          `pg-boss schema "${PGBOSS_SCHEMA}" holds ${install.objects.length} object(s) (${shown}${more}) but not ` +
          `pg-boss's version table ${PGBOSS_SCHEMA}.version, so pg-boss can neither install nor upgrade it`,
        remedy,
      };
    }
    case 'installed':
      if (install.version !== null)
        return { kind: 'usable', install: { kind: 'installed', version: install.version } };
      return {
        kind: 'unusable',
        problem:
          `pg-boss's version table ${PGBOSS_SCHEMA}.version is empty, so pg-boss cannot tell which version ` +
          `its schema "${PGBOSS_SCHEMA}" is at and would not upgrade it`,
        remedy,
      };
    default:
      return assertNever(install);
  }
}

/**
 * `judgePgBossInstall` for a running process (`/readyz`): once this process's pg-boss has started it
 * neither creates its schema nor installs in it again, so a schema dropped or emptied since
 * (`absent`, `empty`: what `aa-oidc migrate` would install) leaves nowhere to queue logouts.
 */
export function judgeRunningPgBossInstall(install: PgBossInstall, started: boolean): PgBossInstallJudgement {
  if (!started || (install.kind !== 'absent' && install.kind !== 'empty')) return judgePgBossInstall(install);
  return {
    kind: 'unusable',
    problem:
      `pg-boss schema "${PGBOSS_SCHEMA}" ${install.kind === 'absent' ? 'is gone' : 'is empty'} although ` +
      `this process's pg-boss started on it, and pg-boss installs its schema only when it starts`,
    remedy:
      'restore the database from its backup, or run aa-oidc migrate to install the schema again ' +
      '(back-channel logouts queued in it are lost)',
  };
}

/**
 * Throws a `MigrationError` when pg-boss would leave its schema as it is (`judgePgBossInstall`):
 * `aa-oidc migrate` and its dry run refuse, instead of reporting a schema installed or to be
 * installed that pg-boss would not touch.
 */
export function usablePgBossInstall(install: PgBossInstall): UsablePgBossInstall {
  const judged = judgePgBossInstall(install);
  if (judged.kind === 'unusable') throw new MigrationError(`${judged.problem}; ${judged.remedy}`);
  return judged.install;
}

/**
 * Refuses, as `aa-oidc migrate` does, a pg-boss schema pg-boss would leave as it is (a
 * `MigrationError`), for `serve` and `worker` on PostgreSQL. Started on a schema without its version
 * table, pg-boss swallows its failed install and every supervisor pass then fails on that table, so
 * a job whose claim lapsed (its worker died mid-delivery) stays claimed and that logout is never
 * delivered; on a version table without a row it never upgrades its schema. Nothing to judge on
 * SQLite.
 */
export async function refuseUnusablePgBoss(database: DatabaseHandle): Promise<void> {
  const install = await readablePgBossInstall(database);
  if (install) usablePgBossInstall(install);
}

/**
 * `pgBossInstall`, or undefined on SQLite (no pg-boss there) or when this role may not read pg-boss's
 * schema (no USAGE on it, or no SELECT on its version table): `aa-oidc check` names those privileges
 * (W012), and pg-boss's own statements fail on them.
 */
export async function readablePgBossInstall(database: DatabaseHandle): Promise<PgBossInstall | undefined> {
  if (database.kind !== 'postgres') return undefined;
  if ((await pgBossReadAccess(database)).lacks !== undefined) return undefined;
  return pgBossInstall(database);
}

/**
 * The role this connection uses (quoted as SQL needs it) and the privilege it lacks to read pg-boss's
 * schema (`USAGE on schema pgboss`, `SELECT on pgboss.version`): none when it may read it, or the
 * schema is not there.
 */
async function pgBossReadAccess(database: DatabaseHandle): Promise<{ role: string; lacks?: string }> {
  const access = await sql<{ role: string; usage: boolean | null; readsVersion: boolean | null }>`
    select quote_ident(current_user) as role, has_schema_privilege(n.oid, 'USAGE') as usage,
           (select has_table_privilege(c.oid, 'SELECT') from pg_class c
             where c.relnamespace = n.oid and c.relname = 'version') as "readsVersion"
      from (select 1) one left join pg_namespace n on n.nspname = ${PGBOSS_SCHEMA}`.execute(database.db);
  const { role, usage, readsVersion } = access.rows[0]!;
  if (usage === false) return { role, lacks: `USAGE on schema ${PGBOSS_SCHEMA}` };
  if (readsVersion === false) return { role, lacks: `SELECT on ${PGBOSS_SCHEMA}.version` };
  return { role };
}

/**
 * Why pg-boss cannot use its schema in a running process (`/readyz`), or undefined when it can or on
 * SQLite: `judgeRunningPgBossInstall`, and a role that may not read the schema, on which every
 * statement of pg-boss fails (no logout could be queued: the change that queues it fails with it).
 * Rejects when the check's own statements fail.
 */
export async function whyPgBossUnusableNow(
  database: DatabaseHandle,
  started: boolean,
): Promise<{ problem: string; remedy: string } | undefined> {
  if (database.kind !== 'postgres') return undefined;
  const { role, lacks } = await pgBossReadAccess(database);
  if (lacks !== undefined)
    return {
      problem: `the role ${role} lacks ${lacks}, so pg-boss's statements fail on its schema "${PGBOSS_SCHEMA}"`,
      remedy:
        `as the owner of the schema: GRANT USAGE ON SCHEMA ${PGBOSS_SCHEMA} TO ${role}; GRANT SELECT, INSERT, ` +
        `UPDATE, DELETE ON ALL TABLES IN SCHEMA ${PGBOSS_SCHEMA} TO ${role};`,
    };
  const judged = judgeRunningPgBossInstall(await pgBossInstall(database), started);
  return judged.kind === 'unusable' ? { problem: judged.problem, remedy: judged.remedy } : undefined;
}

/** Installs or migrates pg-boss's schema and our queue (`aa-oidc migrate`). */
export async function migratePgBoss(database: DatabaseHandle, leaseSeconds: number): Promise<void> {
  const expireInSeconds = Math.max(1, Math.ceil(leaseSeconds));
  const boss = await newPgBoss(database, expireInSeconds);
  boss.on('error', () => undefined);
  await holdingPgBossInstallLock(database, async () => {
    try {
      await boss.start();
    } catch (error) {
      await stopFailedStart(boss);
      throw error;
    }
    try {
      await ensureQueue(boss, expireInSeconds);
    } finally {
      await boss.stop({ graceful: true, close: false });
    }
  });
}

/**
 * Stops an instance whose start, or the making sure of our queue after it, failed. An instance
 * started and then abandoned keeps its timers armed, unknown to anyone who would stop it, and the
 * process never ends by itself (a stop over a dead route during the start ran on); a start that
 * failed part-way may leave the timers armed so far (pg-boss leaves such a start to `stop()`). The
 * failure being reported already, the stop's own is not.
 */
async function stopFailedStart(instance: PgBoss): Promise<void> {
  await instance.stop({ graceful: false, close: false }).catch(() => undefined);
}

/**
 * The advisory lock (of this database) under which pg-boss is started and our queue created: 64
 * bits of the SHA-256 of "aa-oidc pg-boss install", so that no other lock of ours takes the same.
 */
const PGBOSS_INSTALL_LOCK = '1955668011955163037';

/**
 * Runs `work`, which starts pg-boss (installing or migrating its schema) and makes sure of our
 * queue, in one process at a time. pg-boss takes an advisory lock of its own to install, yet
 * `aa-oidc migrate` started by several processes at once on a new database failed in all but one
 * (`duplicate key value violates unique constraint "pg_namespace_nspname_index"`: its schema
 * created twice). Under this session lock the next process waits for the first, then finds pg-boss
 * installed and the queue there.
 */
async function holdingPgBossInstallLock(database: DatabaseHandle, work: () => Promise<void>): Promise<void> {
  const client = await database.pgPool!.connect();
  try {
    await client.query('select pg_advisory_lock($1::bigint)', [PGBOSS_INSTALL_LOCK]);
    try {
      await work();
    } finally {
      await client.query('select pg_advisory_unlock($1::bigint)', [PGBOSS_INSTALL_LOCK]);
    }
  } finally {
    client.release();
  }
}

async function ensureQueue(boss: PgBoss, expireInSeconds: number): Promise<void> {
  if (await boss.getQueue(BCL_QUEUE)) return;
  await boss.createQueue(BCL_QUEUE, {
    expireInSeconds,
    retryLimit: CRASH_RETRY_LIMIT,
    retryDelay: 0,
    retryBackoff: false,
    deleteAfterSeconds: 7 * 24 * 3600,
  });
}

/**
 * The jobs of our queue still to be delivered, the next due first, read from pg-boss's job table
 * without starting pg-boss (which would install its schema): none before it was installed. A
 * rescheduled job is completed, its successor pending; the attempts are counted as `claim` counts
 * them (pg-boss counts a lapsed claim in `retry_count` only when the job is claimed again).
 */
export async function listPendingPgBossJobs(
  db: Kysely<Database>,
  filter: PendingLogoutFilter,
  now: number,
): Promise<PendingLogout[]> {
  const installed = await sql<{ table: string | null }>`
    select to_regclass(${`${PGBOSS_SCHEMA}.job`})::text as table`.execute(db);
  if (installed.rows[0]?.table === null) return [];
  const result = await sql<{
    state: string;
    data: BclJobData;
    retry_count: number;
    started: boolean;
    claimed: boolean;
    wait: number;
  }>`
    select state, data, retry_count, started_on is not null as started,
           -- A claim still held: one whose worker died stays 'active' until a supervisor expires it.
           (state = 'active' and started_on + expire_seconds * interval '1 second' > ${sql.raw(`${PGBOSS_SCHEMA}.job_now()`)}) as claimed,
           (extract(epoch from start_after - ${sql.raw(`${PGBOSS_SCHEMA}.job_now()`)}) * 1000)::float8 as wait
      from ${sql.table(`${PGBOSS_SCHEMA}.job`)}
     where name = ${BCL_QUEUE}
       and state < 'completed'
       ${filter.clientId === undefined ? sql`` : sql`and data->>'clientId' = ${filter.clientId}`}
       ${filter.userId === undefined ? sql`` : sql`and data->>'userId' = ${String(filter.userId)}`}
     order by start_after, created_on, id
     limit ${filter.limit}`.execute(db);
  return result.rows.map(({ data, retry_count, started, claimed, wait }): PendingLogout => {
    const attempts = data.priorAttempts + retry_count + (started ? 1 : 0);
    return {
      state: claimed ? 'in_flight' : attempts === 0 ? 'queued' : 'retrying',
      trigger: data.trigger,
      userId: data.userId,
      clientId: data.clientId,
      jti: data.jti,
      attempts,
      // On the database's clock, as `nextDueAt` reads it: clock skew cannot misplace it.
      nextAttemptAt: claimed ? null : now + Math.round(wait),
      lastHttpStatus: data.lastHttpStatus,
    };
  });
}

/** The outputs `finishMany` completes with one statement share this key. */
function outputKey(output: BclJobOutput): string {
  return JSON.stringify(output);
}

/** The pinned scalars of a job, and nothing else. */
function pinned(job: LogoutJob): LogoutJob {
  const { trigger, userId, sub, clientId, jti, iat, exp, kid, sid } = job;
  return { trigger, userId, sub, clientId, jti, iat, exp, kid, sid };
}

export function createPgBossTransport(
  database: DatabaseHandle,
  options: PgBossTransportOptions,
): LogoutJobTransport {
  const log = options.logger.child({ component: 'logout', transport: 'pg-boss' });
  const expireInSeconds = Math.max(1, Math.ceil(options.expireInSeconds));
  let boss: PgBoss | undefined;
  let starting: Promise<PgBoss> | undefined;
  let supervisor: NodeJS.Timeout | undefined;
  let supervising: Promise<void> | undefined;
  let closed = false;
  // Set once the process's stop began (`stopping`, or `close`).
  let stopped = false;
  /**
   * pg-boss's own failures (its maintenance, its supervisor), at `error`; at `debug` once the
   * process's stop began: its statements in flight then fail as the stop closes the database's
   * connections under them (or meet the dead route the stop gives up on), which is the stop's doing
   * (the service says what it gave up on).
   */
  const failed = (error: Error, what: string) =>
    logFailure(log, { level: 'error', stopped }, { err: { name: error.name, message: error.message } }, what);

  const started = (): Promise<PgBoss> => {
    if (closed) return Promise.reject(new Error('the logout job transport is closed'));
    starting ??= (async () => {
      const instance = await newPgBoss(database, expireInSeconds);
      instance.on('error', (error: Error) => failed(error, 'pg-boss'));
      try {
        await holdingPgBossInstallLock(database, async () => {
          await instance.start();
          await ensureQueue(instance, expireInSeconds);
        });
      } catch (error) {
        await stopFailedStart(instance);
        throw error;
      }
      boss = instance;
      return instance;
    })();
    starting.catch(() => {
      starting = undefined;
    });
    return starting;
  };

  const claims = claimExecutor(database.pgPool!);

  const sendOptions = (trx: Transaction<Database>, startAfterSeconds: number) => ({
    db: kyselyExecutor(trx),
    expireInSeconds,
    retryLimit: CRASH_RETRY_LIMIT,
    retryDelay: 0,
    retryBackoff: false,
    ...(startAfterSeconds > 0 ? { startAfter: startAfterSeconds } : {}),
  });

  const dataOf = (job: ClaimedJob, httpStatus: number | null, now: number): BclJobData => ({
    ...pinned(job),
    priorAttempts: job.attempts,
    firstAttemptAt: job.firstAttemptAt ?? now,
    lastHttpStatus: httpStatus,
  });

  /** The claimed attempt: its id and retry count fence every settlement to this claim. */
  const attemptOf = (job: ClaimedJob) => {
    const [id, retryCount] = String(job.id).split('#');
    return { id: id!, retryCount: Number(retryCount) };
  };

  const complete = async (
    instance: PgBoss,
    trx: Transaction<Database>,
    job: ClaimedJob,
    output: BclJobOutput,
  ): Promise<boolean> => {
    const response = (await instance.complete(BCL_QUEUE, attemptOf(job), output, {
      db: kyselyExecutor(trx),
    })) as { affected?: number };
    return response.affected === 1;
  };

  /**
   * Inserts jobs in `trx`, one statement a batch (pg-boss's insert), due after `startAfterSeconds`
   * (a delay pg-boss measures on the database's clock).
   */
  const insertJobs = async (
    instance: PgBoss,
    trx: Transaction<Database>,
    data: readonly BclJobData[],
    startAfterSeconds = 0,
  ) => {
    for (let start = 0; start < data.length; start += INSERT_BATCH) {
      await instance.insert(
        BCL_QUEUE,
        data.slice(start, start + INSERT_BATCH).map((item) => ({
          data: item,
          expireInSeconds,
          retryLimit: CRASH_RETRY_LIMIT,
          retryDelay: 0,
          retryBackoff: false,
          ...(startAfterSeconds > 0 ? { startAfter: startAfterSeconds } : {}),
        })),
        { db: kyselyExecutor(trx) },
      );
    }
  };

  /**
   * Completes claimed jobs in `trx` with their outputs: one `complete` per distinct output (a
   * fan-out's first attempts share one), each fenced to the claimed attempts. The ids pg-boss settled.
   */
  const completeAll = async (
    instance: PgBoss,
    trx: Kysely<Database>,
    entries: ReadonlyArray<{ job: ClaimedJob; output: BclJobOutput }>,
  ): Promise<Set<string>> => {
    const groups = new Map<string, { output: BclJobOutput; jobs: ClaimedJob[] }>();
    for (const { job, output } of entries) {
      const key = outputKey(output);
      let group = groups.get(key);
      if (!group) groups.set(key, (group = { output, jobs: [] }));
      group.jobs.push(job);
    }
    const settled = new Set<string>();
    for (const { output, jobs } of groups.values()) {
      const response = (await instance.complete(BCL_QUEUE, jobs.map(attemptOf), output, {
        db: kyselyExecutor(trx),
      })) as { settled?: string[] };
      for (const id of response.settled ?? []) settled.add(id);
    }
    return settled;
  };

  return {
    name: 'pg-boss',
    async enqueue(trx, jobs: readonly LogoutJob[]) {
      if (jobs.length === 0) return;
      const instance = await started();
      await insertJobs(
        instance,
        trx,
        jobs.map((job) => ({ ...pinned(job), priorAttempts: 0, firstAttemptAt: null, lastHttpStatus: null })),
      );
    },
    async claim(_owner, now, _leaseUntil, limit) {
      const instance = await started();
      const fetched = await instance.fetch<BclJobData>(BCL_QUEUE, {
        batchSize: Math.max(1, Math.floor(limit)),
        includeMetadata: true,
        db: claims,
      });
      return fetched.map((job) => {
        const data = job.data;
        return {
          ...pinned(data),
          id: `${job.id}#${job.retryCount}`,
          attempts: data.priorAttempts + job.retryCount + 1,
          lastHttpStatus: data.lastHttpStatus,
          // A claim that lapsed (retryCount > 0) made the first attempt when its job was due.
          firstAttemptAt:
            data.firstAttemptAt ?? (job.retryCount > 0 ? Math.min(now, job.createdOn.getTime()) : null),
        };
      });
    },
    // Each job completed as deferred and inserted again, due after the delay, with the attempts it had
    // before this claim (pg-boss counts the claim's retries in its own row; the successor starts from 0).
    async defer(jobs, _owner, now, delaySeconds) {
      if (jobs.length === 0) return [];
      const instance = await started();
      return database.db.transaction().execute(async (trx) => {
        const settled = await completeAll(
          instance,
          trx,
          jobs.map((job) => ({
            job,
            output: {
              outcome: 'deferred',
              attempts: job.attempts - 1,
              httpStatus: job.lastHttpStatus ?? null,
              rescheduled: true,
            },
          })),
        );
        const deferred = jobs.map((job) => settled.has(attemptOf(job).id));
        await insertJobs(
          instance,
          trx,
          jobs
            .filter((_job, index) => deferred[index])
            .map((job) => ({
              ...pinned(job),
              priorAttempts: job.attempts - 1,
              firstAttemptAt: job.attempts === 1 ? null : (job.firstAttemptAt ?? now),
              lastHttpStatus: job.lastHttpStatus ?? null,
            })),
          delaySeconds,
        );
        return deferred;
      });
    },
    async reschedule(job, _owner, now, delaySeconds, httpStatus) {
      const instance = await started();
      return database.db.transaction().execute(async (trx) => {
        const done = await complete(instance, trx, job, {
          outcome: 'retry',
          attempts: job.attempts,
          httpStatus,
          rescheduled: true,
        });
        if (!done) return false;
        await instance.send(BCL_QUEUE, dataOf(job, httpStatus, now), sendOptions(trx, delaySeconds));
        return true;
      });
    },
    async finishMany(trx, settlements: readonly Settlement[]) {
      const instance = await started();
      const settled = await completeAll(
        instance,
        trx,
        settlements.map(({ job, outcome, httpStatus }) => ({
          job,
          output: { outcome, attempts: job.attempts, httpStatus },
        })),
      );
      return settlements.map(({ job }) => settled.has(attemptOf(job).id));
    },
    finishesInOneStatement(settlements) {
      const first = settlements[0];
      if (!first) return true;
      const key = outputKey({
        outcome: first.outcome,
        attempts: first.job.attempts,
        httpStatus: first.httpStatus,
      });
      return settlements.every(
        ({ job, outcome, httpStatus }) => outputKey({ outcome, attempts: job.attempts, httpStatus }) === key,
      );
    },
    // A read of pg-boss's job table, measured on the database's clock (so clock skew cannot delay a
    // retry): when the next created or retried job becomes due.
    async nextDueAt() {
      if (!boss) return undefined;
      const result = await sql<{ wait: number | null }>`
        select (extract(epoch from min(start_after) - ${sql.raw(`${PGBOSS_SCHEMA}.job_now()`)}) * 1000)::float8 as wait
          from ${sql.table(`${PGBOSS_SCHEMA}.job`)}
         where name = ${BCL_QUEUE} and state in ('created', 'retry')`.execute(database.db);
      const wait = result.rows[0]?.wait;
      return wait === null || wait === undefined ? undefined : Date.now() + Math.max(0, wait);
    },
    listPending: (filter, now) => listPendingPgBossJobs(database.db, filter, now),
    // pg-boss deletes completed jobs after the queue's `deleteAfterSeconds` (7 days).
    purge: async () => false,
    hasStarted() {
      return boss !== undefined;
    },
    async startWorker() {
      const instance = await started();
      if (supervisor) return;
      const everyMs = Math.min(60, Math.max(1, Math.ceil(expireInSeconds / 2))) * 1000;
      const pass = () => {
        if (supervising || closed) return;
        supervising = instance
          .supervise(BCL_QUEUE)
          .catch((error: Error) => failed(error, 'pg-boss supervisor'))
          .finally(() => {
            supervising = undefined;
          });
      };
      pass();
      supervisor = setInterval(pass, everyMs);
      supervisor.unref();
    },
    stopping() {
      stopped = true;
    },
    async close() {
      closed = true;
      stopped = true;
      clearInterval(supervisor);
      await supervising;
      const instance = boss ?? (await starting?.catch(() => undefined));
      // Our pool is closed by the database handle; pg-boss only stops its timers.
      await instance?.stop({ graceful: true, close: false });
    },
  };
}
