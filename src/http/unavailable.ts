import type Koa from 'koa';
import { DatabaseFaultError, failedDatabase, isDatabaseUnavailable } from '../db/errors.ts';
import type { Logger } from '../logging/logger.ts';
import { pagePolicy, setPageHeaders } from './content-security-policy.ts';
import type { Branding } from './pages/branding.ts';
import { pageContext } from './pages/layout.ts';
import { requestLog } from '../logging/request-context.ts';
import { type UnavailableCause, unavailablePage } from './pages/unavailable.ts';

/** Seconds a client is asked to wait (`Retry-After`) before trying again. */
export const RETRY_AFTER_SECONDS = 5;
/** At most one log line per this interval, for each database, while it stays unreachable. */
const LOG_INTERVAL_MS = 10_000;

/** The `error_description` of a 503, true of its cause. */
const UNAVAILABLE_DESCRIPTIONS: Record<UnavailableCause, string> = {
  outage: 'the service cannot reach its database right now; try again in a few seconds',
  fault: 'the service could not complete the request; try again in a few seconds',
};

interface UnavailableState {
  /**
   * Why the request is answered 503: the database's error and, for a fault a caller noted
   * (`noteDatabaseFault`), what it stopped.
   */
  databaseFailure?: { error: unknown; what?: string };
}

/**
 * Marks the request as failed because the database could not be used (for errors the provider
 * catches itself and reports through its `server_error` event): unreachable, or answering without
 * what the request needs (a `DatabaseFaultError`, such as a privilege its login lacks, answered as
 * the fault it is). True when `error` is such a failure.
 */
export function noteDatabaseUnavailable(ctx: Koa.Context, error: unknown): boolean {
  if (error instanceof DatabaseFaultError && !isDatabaseUnavailable(error)) {
    noteDatabaseFault(ctx, error, error.what);
    return true;
  }
  if (!isDatabaseUnavailable(error)) return false;
  (ctx.state as UnavailableState).databaseFailure = { error };
  return true;
}

/**
 * Marks the request as failed because the database could not do what it must, whatever the error:
 * for a failure that no other answer fits (a replayed code whose grant could not be revoked, which
 * the client's next try revokes again), answered 503 "try again" as an outage. `what` is what failed,
 * for the log line when the error is not an outage (a constraint, a trigger, a bug); it names no code
 * or token.
 */
export function noteDatabaseFault(ctx: Koa.Context, error: unknown, what: string): void {
  (ctx.state as UnavailableState).databaseFailure = { error: error ?? new Error('database fault'), what };
}

/**
 * A request that failed because the database is down, busy or unreachable is answered 503 with
 * `Retry-After`: a "try again" page to browsers, `{"error":"temporarily_unavailable"}` to everyone
 * else; never a 500, never a hang (connections are bounded by the connect and query timeouts).
 * Nothing is kept in memory: once the database answers again, so does every request. An outage is
 * logged at most once per LOG_INTERVAL_MS for each database (aa-oidc's own, Alliance Auth's), so
 * that one's outage never hides the first line of the other's; a fault that is no outage (`noteDatabaseFault`) is logged
 * each time, as what it is, and answered as what it is: the request could not be completed, not "the
 * database cannot be reached".
 */
export function answerUnavailable(logger: Logger, database: string, branding: Branding): Koa.Middleware {
  /** By the database's description: when its outage was last logged, and the 503s since then. */
  const outageLog = new Map<string, { lastLoggedAt: number; unlogged: number }>();
  return async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      if (!noteDatabaseUnavailable(ctx, error)) throw error;
    }
    const failure = (ctx.state as UnavailableState).databaseFailure;
    if (failure === undefined) return;
    const { name, message, code } = failure.error as { name?: string; message?: string; code?: string };
    const err = { name, message, code };
    // Alliance Auth's database when that is what failed (its errors say so), else aa-oidc's own.
    const failed = failedDatabase(failure.error) ?? database;
    const now = Date.now();
    const cause: UnavailableCause = isDatabaseUnavailable(failure.error) ? 'outage' : 'fault';
    if (cause === 'fault') {
      requestLog(ctx, logger).error(
        { database: failed, err },
        `${failure.what ?? 'a database operation failed'}: a database error, not an outage; answering 503 so that the client tries again`,
      );
    } else {
      const logged = outageLog.get(failed);
      if (logged === undefined || now - logged.lastLoggedAt >= LOG_INTERVAL_MS) {
        requestLog(ctx, logger).error(
          { database: failed, err, alsoFailedSinceLastLine: logged?.unlogged ?? 0 },
          'the database is unavailable; answering 503 until it returns',
        );
        outageLog.set(failed, { lastLoggedAt: now, unlogged: 0 });
      } else {
        logged.unlogged += 1;
      }
    }
    ctx.status = 503;
    ctx.set('Retry-After', String(RETRY_AFTER_SECONDS));
    ctx.set('Cache-Control', 'no-store');
    if (ctx.accepts('json', 'html') === 'html') {
      setPageHeaders(ctx, pagePolicy());
      ctx.type = 'html';
      ctx.body = unavailablePage(pageContext(branding, ctx), cause);
    } else {
      ctx.body = { error: 'temporarily_unavailable', error_description: UNAVAILABLE_DESCRIPTIONS[cause] };
    }
  };
}
