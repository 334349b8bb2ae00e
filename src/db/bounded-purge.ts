import { type Generated, type Kysely, type SelectType, sql } from 'kysely';
import type { Database, EpochMs } from './schema.ts';
import { within } from '../util/within.ts';

/**
 * One round of a retention purge: a table that has grown for months (an instance whose purge never ran,
 * a retention shortened) is worked off a bounded share at a time. One DELETE of everything past the
 * retention would hold SQLite's one writer, or PostgreSQL's row locks and the statement timeout, for as
 * long as it takes; a timeout would roll it back every round, and it would never get anywhere.
 */
export interface PurgeBounds {
  /** Rows one statement deletes at most (each statement is its own transaction). */
  rows: number;
  /** Statements one round makes at most. */
  statements: number;
  /**
   * Milliseconds between a round's statements, when given: on SQLite each statement runs on the event
   * loop (better-sqlite3 is synchronous), and without a pause the next one follows before any request
   * waiting for it is served.
   */
  pauseMs?: number;
}

/** What one round deleted; `more` when its last statement was full: some may remain. */
export interface PurgeRound {
  deleted: number;
  more: boolean;
}

/**
 * Runs `deleteBatch` (one statement deleting at most `bounds.rows` rows, oldest first, found by an
 * index on the cutoff's column) until it deletes fewer or `bounds.statements` have run, `bounds.pauseMs`
 * apart; stops early once `signal` is aborted (the server is closing): what is left goes at a later
 * round.
 */
export async function purgeRound(
  deleteBatch: (rows: number) => Promise<number>,
  bounds: PurgeBounds,
  signal?: AbortSignal,
): Promise<PurgeRound> {
  let deleted = 0;
  for (let statement = 0; statement < bounds.statements; statement += 1) {
    if (statement > 0) {
      if (bounds.pauseMs !== undefined) await new Promise((resolve) => setTimeout(resolve, bounds.pauseMs));
      if (signal?.aborted) break;
    }
    const rows = await deleteBatch(bounds.rows);
    deleted += rows;
    if (rows < bounds.rows) return { deleted, more: false };
  }
  return { deleted, more: true };
}

/** A table keyed by an integer `id`. */
type IdTable = {
  [T in keyof Database]: Database[T] extends { id: Generated<number> } ? T : never;
}[keyof Database];

/** A column of `T` holding a time (epoch milliseconds). */
type TimeColumn<T extends IdTable> = {
  [C in keyof Database[T] & string]: Database[T][C] extends EpochMs | null ? C : never;
}[keyof Database[T] & string];

/**
 * A `deleteBatch` for `purgeRound`: each call deletes at most `rows` rows of `table` whose `timeColumn`
 * is before `before` (and whose columns equal `matching`'s values), the oldest first, and says how many
 * went. The rows are chosen by `id` in a subquery ordered and limited by `timeColumn`, so that an index
 * on (`matching`'s columns, `timeColumn`) finds them without reading the table; the statement is
 * written with identifiers because Kysely's builder cannot type a query over a table named by a
 * generic, while the parameters' types still check the names and values.
 */
export function deleteOldest<T extends IdTable>(
  db: Kysely<Database>,
  table: T,
  timeColumn: TimeColumn<T>,
  before: number,
  matching: { [C in keyof Database[T] & string]?: SelectType<Database[T][C]> } = {},
): (rows: number) => Promise<number> {
  const time = sql.ref(timeColumn);
  const conditions = [
    ...Object.entries(matching).map(([column, value]) => sql`${sql.ref(column)} = ${value}`),
    sql`${time} < ${before}`,
  ];
  return async (rows) => {
    const oldest = sql`select id from ${sql.table(table)} where ${sql.join(conditions, sql` and `)} order by ${time} limit ${rows}`;
    const result = await sql`delete from ${sql.table(table)} where id in (${oldest})`.execute(db);
    return Number(result.numAffectedRows ?? 0);
  };
}

/**
 * Runs `round` every `intervalMs`, and again `catchUpMs` after a round that left rows behind, until
 * none does: a backlog is worked off at `bounds.rows × bounds.statements` rows per `catchUpMs` (plus
 * the round's own time), then the rounds go back to the interval. A round that fails is given to
 * `failed` (`stopped` when it failed after `stop()`: cut by the stop, the database closed under it),
 * and the next one comes at the interval. `stop()` ends the rounds: the one under way is
 * told (its `signal` aborted: it makes no further statement) and waited for, so that none runs on a
 * database being closed, at most `stopWithinMs` when given (a statement over a dead route waits for
 * its query timeout; the database's close then deals with it).
 */
export function startPurgeRounds(
  round: (signal: AbortSignal) => Promise<PurgeRound>,
  options: {
    intervalMs: number;
    catchUpMs: number;
    failed: (error: Error, when: { stopped: boolean }) => void;
    stopWithinMs?: number;
  },
): { stop(): Promise<void> } {
  let stopped = false;
  const stopping = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const schedule = (delayMs: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = round(stopping.signal)
        .then(
          (done) => done.more,
          (error: Error) => {
            options.failed(error, { stopped });
            return false;
          },
        )
        .then((more) => {
          running = undefined;
          schedule(more ? options.catchUpMs : options.intervalMs);
        });
    }, delayMs);
    timer.unref();
  };
  schedule(options.intervalMs);
  return {
    async stop() {
      stopped = true;
      stopping.abort();
      clearTimeout(timer);
      if (running === undefined) return;
      if (options.stopWithinMs === undefined) await running;
      else await within(running, options.stopWithinMs, undefined);
    },
  };
}
