import type Koa from 'koa';
import type { Kysely } from 'kysely';
import type { DatabaseKind } from '../db/connect.ts';
import { isReachable } from '../db/connect.ts';
import { isDatabaseUnavailable } from '../db/errors.ts';
import { pendingMigrations } from '../db/migrate.ts';
import type { Database } from '../db/schema.ts';
import type { Logger } from '../logging/logger.ts';
import { within } from '../util/within.ts';
import { answerMethodNotAllowed } from './refusal.ts';

/** Another system the server cannot serve without (Alliance Auth's database), for `/readyz`. */
export interface ReadinessDependency {
  /** The key in `/readyz`'s answer (`allianceAuth`). */
  name: string;
  /** What it is now; rejecting counts as unreachable. */
  state(): Promise<DependencyState>;
}

/**
 * A dependency as `/readyz` answers it: `unusable` when it answers but cannot serve (Alliance Auth's
 * database lacking a column read), with what `/readyz` says why: public, so no detail (the
 * dependency's own log line names it).
 */
export type DependencyState =
  { kind: 'reachable' } | { kind: 'unreachable' } | { kind: 'unusable'; reason: string };

/** How `/readyz` learns that the database takes no writes, and where it says so at length. */
export interface WriteCheck {
  /** Why the database takes no writes now (src/db/writable.ts), or undefined when it does. */
  whyNotWritable(): Promise<string | undefined>;
  /** The database as messages name it (`the SQLite file PATH`). */
  database: string;
  logger: Logger;
}

/**
 * How `/readyz` learns that pg-boss cannot use its schema (PostgreSQL), the judgement `serve` and
 * `worker` refuse to start on (`judgePgBossInstall`, src/logout/pgboss-transport.ts).
 */
export interface PgBossCheck {
  /**
   * What is wrong with the pg-boss schema and what to do, or undefined when pg-boss can use it;
   * rejects when the check's own statements fail (`/readyz` then answers not ready).
   */
  whyUnusable(): Promise<{ problem: string; remedy: string } | undefined>;
  logger: Logger;
}

/** What `/readyz` says of an unusable pg-boss schema (the log says what is wrong at length). */
export const PGBOSS_UNUSABLE_REASON =
  'pg-boss cannot use its schema "pgboss" (back-channel logouts cannot be queued or delivered); see the log';

/**
 * What `/readyz` says when the check of the pg-boss schema failed on a database that answers (the log
 * names the error): a job queue that cannot even be read is not taken for one that works.
 */
export const PGBOSS_UNCHECKED_REASON =
  'the back-channel logout job queue (pg-boss, schema "pgboss") could not be checked, so logouts may ' +
  'not be queued or delivered; see the log';

/**
 * How long (ms) one readiness answer is reused after its check finished: a change of the databases
 * shows on `/readyz` within this time and one check's (well within the few seconds between a load
 * balancer's probes), and however many requests come, the check runs at most once in it. A
 * failing answer is reused as long as a passing one: an outage is when a database can least afford a
 * flood (each check waits for a connection to a database that may not answer), and a recovery shows
 * as promptly as a failure.
 */
export const READINESS_REUSE_MS = 1000;

/**
 * How long (ms) `/readyz`'s check waits for a database (aa-oidc's, and Alliance Auth's when it is the
 * directory) before calling it unreachable. Alliance Auth's drivers put no time limit on a query (the
 * statement timeout is the server's, which a connection gone silent never hears), and aa-oidc's only
 * the query timeout (60 s, `QUERY_TIMEOUT_MS`), far beyond a load balancer's probe; every request waits
 * on the one shared check: without this, one pooled connection gone silent would hold every answer
 * until the driver or TCP gave up on it.
 */
export const DEPENDENCY_DEADLINE_MS = 5000;

/** What `/readyz` answers of a dependency that did not answer within `DEPENDENCY_DEADLINE_MS`. */
const UNREACHABLE: DependencyState = { kind: 'unreachable' };

/** One answer of `/readyz`: its status code and body. */
interface Readiness {
  status: 200 | 503;
  body: Record<string, unknown>;
}

/**
 * `/healthz`: the process answers. `/readyz`: the database is reachable, takes writes and is fully
 * migrated, and every dependency answers and can serve (Alliance Auth's database holding every column
 * aa-oidc reads: `"allianceAuth": "unusable"` with a `reason` otherwise). The answer is public: it
 * says whether and why in general words (`"migrations": "pending"`), never which migration, column or
 * version (that tells an attacker the release); the log (the `logger` option, once each time the list
 * changes) and `aa-oidc check` name them, the admin dashboard counts them. A database that answers reads but takes no writes (a
 * read-only file or mount, a PostgreSQL standby) is `read_only`: every sign-in and token would answer
 * 503; the log says which database and why, once each time that changes. A process that started
 * before the migrations were applied stays not ready once they are (`restart_required`): it has no
 * signing key loaded, no bootstrap superuser and no back-channel delivery, which only a start on a
 * migrated database sets up (`serve` stops itself then, for its supervisor to start it again). On
 * PostgreSQL, a pg-boss schema that pg-boss cannot use (its version table dropped or emptied, by hand
 * or a partial restore: `serve` and `worker` refuse to start on it; or the whole schema dropped or
 * emptied once this process's pg-boss started, as it installs only when it starts) is
 * `"pgBoss": "unusable"` with a reason: logouts could not be queued or their jobs supervised; the log
 * says what is wrong and what to do, once each time that changes. So is a role that may not use that
 * schema, and a check that fails on a database that answers (`PGBOSS_UNCHECKED_REASON`: a job queue
 * that cannot be read is not taken for one that works). The shared, reused check reads it:
 * no query per request.
 *
 * `/readyz` is public (load balancers) and its check reads both databases, so a flood of it must not
 * become a flood of queries: concurrent requests share the check in flight, and its answer is reused
 * for `READINESS_REUSE_MS` after it finishes (see there). A database that has not answered within
 * `DEPENDENCY_DEADLINE_MS` counts as unreachable.
 */
export function healthRoutes(
  db: Kysely<Database>,
  kind: DatabaseKind,
  dependencies: readonly ReadinessDependency[] = [],
  options: { startedMigrated?: boolean; writes?: WriteCheck; pgBoss?: PgBossCheck; logger?: Logger } = {},
): Koa.Middleware {
  let lastPending: readonly string[] = [];
  /** The log names the pending migrations (the public answer does not), once each time they change. */
  const notePending = (pending: readonly string[]) => {
    if (pending.join() === lastPending.join()) return;
    if (pending.length > 0)
      options.logger?.warn(
        { pendingMigrations: pending },
        `the database has ${pending.length} pending migration(s): /readyz answers 503 until aa-oidc migrate applies them (aa-oidc migrate --dry-run and aa-oidc check list them)`,
      );
    else options.logger?.info('the database has no pending migration any more');
    lastPending = pending;
  };
  let lastReadOnly: string | undefined;
  const readOnlyNow = async (): Promise<string | undefined> => {
    const { writes } = options;
    if (!writes) return undefined;
    const reason = await writes.whyNotWritable().catch(() => undefined);
    if (reason !== lastReadOnly) {
      if (reason !== undefined)
        writes.logger.error(
          { database: writes.database, reason },
          'the database takes no writes; /readyz answers 503 until it does',
        );
      else writes.logger.info({ database: writes.database }, 'the database takes writes again');
      lastReadOnly = reason;
    }
    return reason;
  };
  let lastPgBossProblem: string | undefined;
  /**
   * What pg-boss's schema is now: `failed` when its check failed on a database that answers (a
   * damaged schema, a privilege gone), `unavailable` when it failed as the database went away.
   */
  const pgBossNow = async (): Promise<PgBossState> => {
    const { pgBoss } = options;
    if (!pgBoss) return 'usable';
    let state: PgBossState;
    let judged: { problem: string; remedy: string } | undefined;
    let failure: { name: string; message: string; code?: string } | undefined;
    try {
      judged = await pgBoss.whyUnusable();
      state = judged === undefined ? 'usable' : 'unusable';
    } catch (error) {
      // The database went away after its own check answered: /readyz says it is unreachable.
      if (isDatabaseUnavailable(error)) return 'unavailable';
      const { name, message, code } = Object(error) as { name?: unknown; message?: unknown; code?: unknown };
      failure = {
        name: String(name),
        message: String(message),
        ...(typeof code === 'string' ? { code } : {}),
      };
      state = 'failed';
      judged = {
        problem: `the check of pg-boss's schema "pgboss" failed (${failure.code ?? failure.name})`,
        remedy:
          'the error says what failed: for a privilege, grant it to the role aa-oidc connects as (USAGE on ' +
          'schema pgboss, SELECT, INSERT, UPDATE and DELETE on its tables); for a table or column not there, ' +
          'restore the database from its backup, or drop the schema (DROP SCHEMA pgboss CASCADE) and run ' +
          'aa-oidc migrate again',
      };
    }
    if (judged?.problem !== lastPgBossProblem) {
      if (judged !== undefined)
        pgBoss.logger.error(
          { problem: judged.problem, remedy: judged.remedy, ...(failure && { err: failure }) },
          'pg-boss cannot use its schema; /readyz answers 503 until it can',
        );
      else pgBoss.logger.info('pg-boss can use its schema again');
      lastPgBossProblem = judged?.problem;
    }
    return state;
  };
  const ownDatabase = async (): Promise<OwnDatabase> => {
    const reachable = await isReachable(db);
    const readOnly = reachable ? await readOnlyNow() : undefined;
    const pending = reachable ? await pendingMigrations(db, kind).catch(() => null) : null;
    if (pending !== null) notePending(pending);
    const pgBoss = reachable && pending !== null ? await pgBossNow() : 'usable';
    if (pgBoss === 'unavailable') return UNANSWERED;
    return { reachable, readOnly, pending, pgBoss };
  };
  const check = async (): Promise<Readiness> => {
    const [{ reachable, readOnly, pending, pgBoss }, others] = await Promise.all([
      within(ownDatabase(), DEPENDENCY_DEADLINE_MS, UNANSWERED),
      Promise.all(
        dependencies.map(
          async (dependency) =>
            [
              dependency.name,
              await within(
                dependency.state().catch(() => UNREACHABLE),
                DEPENDENCY_DEADLINE_MS,
                UNREACHABLE,
              ),
            ] as const,
        ),
      ),
    ]);
    const migrated = pending !== null && pending.length === 0;
    const restartRequired = migrated && options.startedMigrated === false;
    const ready =
      reachable &&
      readOnly === undefined &&
      migrated &&
      !restartRequired &&
      pgBoss === 'usable' &&
      others.every(([, state]) => state.kind === 'reachable');
    const reasons = [
      ...(pgBoss === 'usable'
        ? []
        : [pgBoss === 'failed' ? PGBOSS_UNCHECKED_REASON : PGBOSS_UNUSABLE_REASON]),
      ...others.flatMap(([, state]) => (state.kind === 'unusable' ? [state.reason] : [])),
    ];
    return {
      status: ready ? 200 : 503,
      body: {
        status: ready ? 'ready' : restartRequired ? 'restart_required' : 'not_ready',
        database: !reachable ? 'unreachable' : readOnly !== undefined ? 'read_only' : 'reachable',
        // Whether, not which: migration names tell the release (the log and aa-oidc check name them).
        ...(pending !== null && { migrations: pending.length === 0 ? 'applied' : 'pending' }),
        ...(pgBoss !== 'usable' && { pgBoss: 'unusable' }),
        ...Object.fromEntries(others.map(([name, state]) => [name, state.kind])),
        ...(reasons.length > 0 && { reason: reasons.join('; ') }),
      },
    };
  };
  let inFlight: Promise<Readiness> | undefined;
  let last: { readiness: Readiness; finishedAt: number } | undefined;
  const readiness = (): Promise<Readiness> => {
    if (last && performance.now() - last.finishedAt < READINESS_REUSE_MS)
      return Promise.resolve(last.readiness);
    // A check that throws is not kept: the next request checks again.
    inFlight ??= check().then(
      (readiness) => {
        last = { readiness, finishedAt: performance.now() };
        inFlight = undefined;
        return readiness;
      },
      (error: unknown) => {
        inFlight = undefined;
        throw error;
      },
    );
    return inFlight;
  };
  const answer: Koa.Middleware = async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    if (ctx.path === '/healthz') {
      ctx.body = { status: 'ok' };
      return;
    }
    const { status, body } = await readiness();
    ctx.status = status;
    ctx.body = body;
  };
  // Every other request passes on without waiting here.
  return (ctx, next) => {
    if (ctx.path !== '/healthz' && ctx.path !== '/readyz') return next();
    if (ctx.method === 'GET' || ctx.method === 'HEAD') return answer(ctx, next);
    answerMethodNotAllowed(ctx, ['GET', 'HEAD'], 'json');
  };
}

/** What `/readyz` learned of aa-oidc's own database. */
interface OwnDatabase {
  reachable: boolean;
  /** Why it takes no writes, or undefined when it does (or was not asked). */
  readOnly: string | undefined;
  /** The migrations not applied, or null when they could not be read. */
  pending: string[] | null;
  /** pg-boss's schema (PostgreSQL; `usable` when it was not asked). */
  pgBoss: Exclude<PgBossState, 'unavailable'>;
}

/**
 * pg-boss's schema as `/readyz` judged it: `usable`; `unusable` (judged: `PgBossCheck`); `failed`
 * (its check failed on a database that answers); `unavailable` (the check failed as the database
 * went away, which `/readyz` reports as the database unreachable).
 */
type PgBossState = 'usable' | 'unusable' | 'failed' | 'unavailable';

/** aa-oidc's database as `/readyz` answers it when its check ran out of time. */
const UNANSWERED: OwnDatabase = {
  reachable: false,
  readOnly: undefined,
  pending: null,
  pgBoss: 'usable',
};
