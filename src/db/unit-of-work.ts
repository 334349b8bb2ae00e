import type { Kysely, Transaction } from 'kysely';
import { assertNever } from '../util/assert-never.ts';
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
  /** Who made the change (`cli`, `admin:<username>`, …), for audit events; null when unknown. */
  readonly actor: string | null;
  /** Runs `callback` after the commit; never when the unit rolls back. */
  afterCommit(callback: () => void | Promise<void>): void;
  /**
   * Tells whoever runs the unit what it caused (a dry run's preview: the admin UI and `--dry-run`
   * show it before the change is confirmed). Reported whether or not the unit commits.
   */
  report(consequence: Consequence): void;
  /** True when someone collects the consequences (a consumer may skip work done only to report). */
  readonly reporting: boolean;
}

/**
 * One consequence of a unit's change, as the part that caused it reports it: an application the
 * user can no longer use, a queued back-channel logout, revoked codes and tokens, ended sessions.
 */
export type Consequence =
  | { kind: 'access_lost'; userId: number; clientId: string }
  | { kind: 'logout_queued'; userId: number | null; clientId: string; reason: string }
  | { kind: 'tokens_revoked'; userId: number | null; clientId: string | null; count: number }
  | { kind: 'sessions_ended'; userId: number; count: number };

export interface UnitOfWorkOptions {
  /** Run everything, then roll back: the result says what would happen, nothing is committed. */
  dryRun?: boolean;
  /** Who makes the change (see `UnitOfWork.actor`). */
  actor?: string | null;
  /** The clock (epoch milliseconds); tests inject one. */
  now?: () => number;
  /** Told about an after-commit callback that threw or rejected; the unit itself stands. */
  onCallbackError?: (error: unknown) => void;
  /** Collects what the unit caused, in the order reported (see `UnitOfWork.report`). */
  consequences?: Consequence[];
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
  const reported: Consequence[] = [];
  let result: T;
  try {
    result = await db.transaction().execute(async (trx) => {
      callbacks.length = 0;
      reported.length = 0;
      const unit: UnitOfWork = {
        trx,
        at: (options.now ?? Date.now)(),
        dryRun,
        actor: options.actor ?? null,
        afterCommit: (callback) => void callbacks.push(callback),
        report: (consequence) => void reported.push(consequence),
        reporting: options.consequences !== undefined,
      };
      const value = await work(unit);
      if (dryRun) throw new DryRunRollback(value);
      return value;
    });
  } catch (error) {
    if (error instanceof DryRunRollback) {
      options.consequences?.push(...reported);
      return error.result as T;
    }
    throw error;
  }
  options.consequences?.push(...reported);
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

/** Consequences added up for a preview: each list of client ids sorted, without repeats. */
export interface ConsequenceSummary {
  /** Applications some user can no longer use. */
  accessLost: string[];
  /** Applications that receive a back-channel logout. */
  logouts: string[];
  /** Revoked codes and tokens, per client id (`''` for none), and in all. */
  tokensRevoked: Map<string, number>;
  tokensRevokedTotal: number;
  sessionsEnded: number;
  /** The users concerned. */
  users: number;
}

export function summarizeConsequences(consequences: readonly Consequence[]): ConsequenceSummary {
  const accessLost = new Set<string>();
  const logouts = new Set<string>();
  const tokensRevoked = new Map<string, number>();
  const users = new Set<number>();
  let tokensRevokedTotal = 0;
  let sessionsEnded = 0;
  for (const consequence of consequences) {
    if (consequence.userId !== null) users.add(consequence.userId);
    switch (consequence.kind) {
      case 'access_lost':
        accessLost.add(consequence.clientId);
        break;
      case 'logout_queued':
        logouts.add(consequence.clientId);
        break;
      case 'tokens_revoked': {
        const clientId = consequence.clientId ?? '';
        tokensRevoked.set(clientId, (tokensRevoked.get(clientId) ?? 0) + consequence.count);
        tokensRevokedTotal += consequence.count;
        break;
      }
      case 'sessions_ended':
        sessionsEnded += consequence.count;
        break;
      default:
        assertNever(consequence);
    }
  }
  return {
    accessLost: [...accessLost].sort(),
    logouts: [...logouts].sort(),
    tokensRevoked,
    tokensRevokedTotal,
    sessionsEnded,
    users: users.size,
  };
}
