import type { Kysely, Transaction } from 'kysely';
import type { Database } from './schema.ts';

/**
 * One transaction of aa-oidc's own database, shared by everything a change causes: the change
 * itself (when it is ours), and every consumer's writes (revoked tokens, queued logouts, ended
 * sessions). Either all of it commits or none of it does. Notifications (audit events, waking a
 * worker) are registered with `afterCommit` and run only once the transaction committed, so that
 * nobody is told of work that was rolled back.
 */
export interface UnitOfWork {
  /** The transaction every write of this unit goes through. */
  readonly trx: Transaction<Database>;
  /**
   * Epoch milliseconds at which the unit began. Every consumer stamps its writes with it, so one
   * consumer can recognise another's writes of the same unit (a token revoked by this very change
   * still counts as held when the logout fan-out looks for the applications to tell).
   */
  readonly at: number;
  /** True when the unit will be rolled back whatever happens (a dry run). */
  readonly dryRun: boolean;
  /** Runs `callback` after the commit; never when the unit rolls back. */
  afterCommit(callback: () => void | Promise<void>): void;
}

export interface UnitOfWorkOptions {
  /** Run everything, then roll back: the result says what would happen, nothing is committed. */
  dryRun?: boolean;
  /** The clock (epoch milliseconds); tests inject one. */
  now?: () => number;
  /** Told about an after-commit callback that threw or rejected; the unit itself stands. */
  onCallbackError?: (error: unknown) => void;
}

/** Thrown at the end of a dry run's work so that the transaction rolls back; carries the result. */
class DryRunRollback {
  readonly result: unknown;
  constructor(result: unknown) {
    this.result = result;
  }
}

/**
 * Runs `work` in one unit of work on `db`: one transaction, committed when `work` resolves (rolled
 * back when it throws, or always for a dry run), then the after-commit callbacks in the order they
 * were registered. A callback's failure is reported and never undoes the commit.
 */
export async function inUnitOfWork<T>(
  db: Kysely<Database>,
  work: (unit: UnitOfWork) => Promise<T>,
  options: UnitOfWorkOptions = {},
): Promise<T> {
  const dryRun = options.dryRun === true;
  const callbacks: Array<() => void | Promise<void>> = [];
  let result: T;
  try {
    result = await db.transaction().execute(async (trx) => {
      callbacks.length = 0;
      const unit: UnitOfWork = {
        trx,
        at: (options.now ?? Date.now)(),
        dryRun,
        afterCommit: (callback) => void callbacks.push(callback),
      };
      const value = await work(unit);
      if (dryRun) throw new DryRunRollback(value);
      return value;
    });
  } catch (error) {
    if (error instanceof DryRunRollback) return error.result as T;
    throw error;
  }
  for (const callback of callbacks) {
    try {
      const pending = callback();
      if (pending && typeof pending.then === 'function')
        pending.catch((error) => options.onCallbackError?.(error));
    } catch (error) {
      options.onCallbackError?.(error);
    }
  }
  return result;
}
