import type { Kysely } from 'kysely';
import type { PurgeBounds, PurgeRound } from '../db/bounded-purge.ts';
import type { Database } from '../db/schema.ts';
import { purgeIssuedCodes } from '../tokens/issued-codes.ts';
import { EXPIRED_ROWS_PURGE, pruneChangeLog, purgeExpiredPayloads } from '../tokens/store.ts';
import { assertNever } from '../util/assert-never.ts';
import type { LoginThrottle } from './interactions/throttle.ts';

/** The pause before the next round of the expired-row purge while some table has rows left. */
export const EXPIRED_ROWS_PURGE_CATCH_UP_MS = 1000;

/** The tables the expired-row purge works off, each a bounded share a round. */
export type PurgedTable = 'payloads' | 'changeLog' | 'loginFailures' | 'issuedCodes';
const TABLES: readonly PurgedTable[] = ['payloads', 'changeLog', 'loginFailures', 'issuedCodes'];

/** What one round deleted, per table; `more` when some table may have rows left (`behind`). */
export interface ExpiredRowsRound extends PurgeRound {
  tables: Record<PurgedTable, PurgeRound>;
  /** The tables whose round was full: the next round purges those alone (until `everyTableMs`). */
  behind: PurgedTable[];
}

const NOTHING_DUE: PurgeRound = { deleted: 0, more: false };

/**
 * The periodic purge of the provider's rows (src/db/bounded-purge.ts): expired codes, tokens and
 * sessions, the change log's rows every process has read, login failures past the throttle's window,
 * and issued codes never reused past their time. Each table gives up at most `bounds` a round; while
 * some have rows left, the next round (`startPurgeRounds`' catch-up) purges those alone: the others
 * found everything already, and the change log's horizon is raised only by a round that begins a prune
 * (a reader whose position is behind it drops everything it keeps: raised a second apart, every reader
 * idle for a second would). Once `everyTableMs` (the purge's interval) has passed since a round
 * purged every table, the next does again, behind or not: a table with a backlog that outlasts the
 * interval (an outage's tokens, expiring faster than a round's share) holds the others up no longer.
 *
 * One round at a time: a round asked for while one runs (`purge()` beside the timer's) is that round.
 * A round that fails is given to its caller once all its tables' statements have ended; the next
 * begins afresh, every table.
 */
export function expiredRowsPurge(
  db: Kysely<Database>,
  throttle: Pick<LoginThrottle, 'purge'>,
  options: { bounds?: PurgeBounds; now?: () => number; everyTableMs?: number } = {},
): (signal?: AbortSignal) => Promise<ExpiredRowsRound> {
  const bounds = options.bounds ?? EXPIRED_ROWS_PURGE;
  const now = options.now ?? Date.now;
  const everyTableMs = options.everyTableMs ?? Number.POSITIVE_INFINITY;
  let behind = new Set<PurgedTable>();
  let everyTableAt = Number.NEGATIVE_INFINITY;
  let running: Promise<ExpiredRowsRound> | undefined;

  const purgeOf = (
    table: PurgedTable,
    at: number,
    continuing: ReadonlySet<PurgedTable>,
    signal?: AbortSignal,
  ): Promise<PurgeRound> => {
    if (continuing.size > 0 && !continuing.has(table)) return Promise.resolve(NOTHING_DUE);
    switch (table) {
      case 'payloads':
        return purgeExpiredPayloads(db, at, signal, bounds);
      case 'changeLog':
        return pruneChangeLog(db, { signal, bounds, continues: continuing.has('changeLog') });
      case 'loginFailures':
        return throttle.purge(signal, bounds);
      case 'issuedCodes':
        return purgeIssuedCodes(db, at, signal, bounds);
      default:
        return assertNever(table);
    }
  };

  const round = async (signal?: AbortSignal): Promise<ExpiredRowsRound> => {
    const at = now();
    // Every table, or only those behind (a catch-up round within the interval).
    const continuing = at - everyTableAt >= everyTableMs ? new Set<PurgedTable>() : behind;
    if (continuing.size === 0) everyTableAt = at;
    const settled = await Promise.allSettled(TABLES.map((table) => purgeOf(table, at, continuing, signal)));
    const failed = settled.find((each) => each.status === 'rejected');
    if (failed) {
      behind = new Set();
      throw failed.reason;
    }
    const rounds = settled.map((each) => (each as PromiseFulfilledResult<PurgeRound>).value);
    const tables = Object.fromEntries(TABLES.map((table, index) => [table, rounds[index]!])) as Record<
      PurgedTable,
      PurgeRound
    >;
    behind = new Set(TABLES.filter((table) => tables[table].more));
    return {
      deleted: rounds.reduce((sum, each) => sum + each.deleted, 0),
      more: behind.size > 0,
      tables,
      behind: [...behind],
    };
  };

  return (signal) =>
    (running ??= round(signal).finally(() => {
      running = undefined;
    }));
}
