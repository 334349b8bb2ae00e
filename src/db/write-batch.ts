import type { CompiledQuery, Kysely, Transaction } from 'kysely';
import type { DatabaseKind } from './connect.ts';
import { isDatabaseUnavailable } from './errors.ts';
import type { Database } from './schema.ts';

/** A connection or a transaction: a batched write runs on either. */
export type WriteDb = Kysely<Database> | Transaction<Database>;

/**
 * The writes requests make at their end (the tokens they issue, an authorization's code and
 * session), committed together on SQLite. Each commit writes every page the rows touched (the
 * table's and each index's) to the write-ahead log: rows committed together share the pages they
 * both touch (the table's last page, the index pages of the same client or of recent expiries), so
 * the writes that concurrent requests reach in one turn of the event loop go in one transaction.
 * A request still waits until its own write is committed before it answers.
 *
 * A write that fails fails only its own request: the batch is rolled back and every write of it
 * runs again on its own, as it would have without batching. A database that cannot be used (busy,
 * read-only, disk full) fails every write of the batch at once with its error, answered 503 "try
 * again" like any other request.
 *
 * On PostgreSQL every write given to `run` runs at once on its own: connections write in parallel,
 * and one transaction over several requests would only make them wait for each other. Writes that
 * can merge (`merging`: rows of the same kind) go in one statement per turn instead.
 */
export interface WriteBatch {
  /**
   * Runs `write` (on a transaction shared with other writes, or on the connection when it runs
   * alone) and resolves with its result once it is committed. `write` may run twice (see above), so
   * it must do nothing but write: anything to tell others happens once it resolved. `plan` is the
   * same write as data, which SQLite's write worker (write-worker.ts) runs instead: a batch that
   * runs on the worker refuses a write without one.
   */
  run<T>(write: (db: WriteDb) => Promise<T>, plan?: Plan<T>): Promise<T>;
  /**
   * A write whose items (one request's rows) merge with the items other requests reach in the same
   * turn. On PostgreSQL they go in one statement (`together`): every query costs aa-oidc a round
   * trip through the driver and a socket write, and the server a commit, whatever the rows. On
   * SQLite each item is a write of the batch (`alone` on its transaction), which shares the commit.
   * The contract is `run`'s: an item resolves once it is committed; when the merged statement fails
   * every item is written again `alone`, so that only a failing one fails; a database that cannot be
   * used fails them all with its error. An item resolves with its own result (`Result`).
   */
  merging<Item, Result = void>(write: MergedWrite<Item, Result>): (item: Item) => Promise<Result>;
}

/** A write of items that may go together in one statement (see `WriteBatch.merging`). */
export interface MergedWrite<Item, Result = void> {
  /**
   * Writes the items of several requests in one statement, on the connection (autocommitted), and
   * gives each item's result in the items' order (nothing when `Result` is void).
   */
  together(db: Kysely<Database>, items: Item[]): Promise<readonly Result[] | void>;
  /** Writes one item as its request would on its own, on the connection or the batch's transaction. */
  alone(db: WriteDb, item: Item): Promise<Result>;
  /** `alone` as data (see `PlannedWrite`): what SQLite's write worker runs. */
  plan?(db: Kysely<Database>, item: Item): PlannedWrite<Result>;
}

/**
 * A statement of a planned write: its SQL and parameters, compiled on the main thread (Kysely, or a
 * precompiled query's `compile`).
 */
export interface PlannedStatement {
  sql: string;
  parameters: readonly unknown[];
  /**
   * Runs only when the write's previous statement changed (or returned) a row, and counts 0 when it
   * does not: a write whose second statement needs the first's outcome stays one plan.
   */
  onlyAfterChange?: boolean;
}

/**
 * A write as data, for a connection on another thread (write-worker.ts): its statements, run in order
 * in the batch's transaction, and its result from the rows each statement changed (or returned: a
 * statement with RETURNING, or a SELECT), in the statements' order. No statement may depend on an
 * earlier one's result in JavaScript: such a write says it in SQL, or with `onlyAfterChange`.
 */
export interface PlannedWrite<T> {
  statements: readonly PlannedStatement[];
  result(changes: readonly number[]): T;
}

/** How a write is planned: compiled against the main connection (its dialect), never run there. */
export type Plan<T> = (db: Kysely<Database>) => PlannedWrite<T>;

/** A compiled query as a statement of a plan. */
export function plannedStatement(query: CompiledQuery, onlyAfterChange = false): PlannedStatement {
  return onlyAfterChange
    ? { sql: query.sql, parameters: query.parameters, onlyAfterChange }
    : { sql: query.sql, parameters: query.parameters };
}

interface Pending {
  write: (db: WriteDb) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** Writes that run at once, each on its own (callers given no batch, and tests that need none). */
export function unbatchedWrites(db: Kysely<Database>): WriteBatch {
  return { run: (write) => write(db), merging: (write) => (item) => write.alone(db, item) };
}

/**
 * PostgreSQL: `run` at once, `merging` per turn. The items of one turn are written together by one
 * statement (a single item alone); when that fails for a reason of its own (a row the server
 * refuses), each item is written again alone, one after the other in the order they came.
 */
function postgresWrites(db: Kysely<Database>, schedule: (flush: () => void) => void): WriteBatch {
  return {
    run: (write) => write(db),
    merging<Item, Result>(write: MergedWrite<Item, Result>) {
      let pending: Array<{
        item: Item;
        resolve: (result: Result) => void;
        reject: (error: unknown) => void;
      }> = [];
      const runAlone = (job: (typeof pending)[number]) =>
        write.alone(db, job.item).then(job.resolve, job.reject);
      const flush = async () => {
        const jobs = pending;
        pending = [];
        if (jobs.length === 1) {
          await runAlone(jobs[0]!);
          return;
        }
        let results: readonly Result[] | void;
        try {
          results = await write.together(
            db,
            jobs.map((job) => job.item),
          );
        } catch (error) {
          if (isDatabaseUnavailable(error)) {
            for (const job of jobs) job.reject(error);
            return;
          }
          for (const job of jobs) await runAlone(job);
          return;
        }
        jobs.forEach((job, index) => job.resolve(results?.[index] as Result));
      };
      return (item: Item) =>
        new Promise<Result>((resolve, reject) => {
          pending.push({ item, resolve, reject });
          if (pending.length === 1) schedule(() => void flush());
        });
    },
  };
}

/**
 * The write batch of `db`. `schedule` runs the batch once the current turn's writes are in
 * (`setImmediate`: after the I/O callbacks of this turn of the event loop, before the next).
 */
export function writeBatch(
  db: Kysely<Database>,
  kind: DatabaseKind,
  schedule: (flush: () => void) => void = setImmediate,
): WriteBatch {
  if (kind !== 'sqlite') return postgresWrites(db, schedule);
  let pending: Pending[] = [];

  const runAlone = (job: Pending) => job.write(db).then(job.resolve, job.reject);

  const flush = async () => {
    const jobs = pending;
    pending = [];
    if (jobs.length === 1) {
      await runAlone(jobs[0]!);
      return;
    }
    let results: unknown[];
    try {
      results = await db.transaction().execute(async (trx) => {
        const values: unknown[] = [];
        for (const job of jobs) values.push(await job.write(trx));
        return values;
      });
    } catch (error) {
      if (isDatabaseUnavailable(error)) {
        for (const job of jobs) job.reject(error);
        return;
      }
      // One write failed (the batch was rolled back): each runs again on its own, so that only
      // the failing one fails.
      for (const job of jobs) await runAlone(job);
      return;
    }
    jobs.forEach((job, index) => job.resolve(results[index]));
  };

  const run = <T>(write: (db: WriteDb) => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      pending.push({ write, resolve: resolve as (value: unknown) => void, reject });
      if (pending.length === 1) schedule(() => void flush());
    });
  return { run, merging: mergingAsWrites(run) };
}

/** `merging` for a batch of single writes (SQLite): each item is a write of the batch, with its plan. */
export function mergingAsWrites(run: WriteBatch['run']): WriteBatch['merging'] {
  return (write) => (item) =>
    run((batch) => write.alone(batch, item), write.plan && ((db) => write.plan!(db, item)));
}

/** Runs `work` in a transaction: the batch's, or a new one when the write runs alone. */
export function inTransaction<T>(db: WriteDb, work: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return db.isTransaction ? work(db as Transaction<Database>) : db.transaction().execute(work);
}
