import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Kysely } from 'kysely';
import { STATEMENT_CACHE_SIZE } from './connect.ts';
import { DatabaseUnavailableError, SQLITE_UNAVAILABLE } from './errors.ts';
import { SQLITE_PRAGMAS } from './sqlite-settings.ts';
import type { Database } from './schema.ts';
import {
  mergingAsWrites,
  type Plan,
  type PlannedStatement,
  type WriteBatch,
  type WriteDb,
} from './write-batch.ts';
import { type WriteWorkerData, writeWorkerThread } from './write-worker-thread.ts';

/**
 * SQLite's write batch (write-batch.ts) committed on a worker thread with a connection of its own to
 * the same file. better-sqlite3 is synchronous: on the main thread, a batch's statements and above all
 * its commit (writing every page the rows touched to the write-ahead log, and now and then a
 * checkpoint) ran on the event loop, about a quarter of a client-credentials token's CPU. The worker
 * runs them on the machine's other core while the event loop serves requests.
 *
 * Each write is data (`PlannedWrite`: SQL and parameters compiled on the main thread): the writes of a
 * turn go to the worker in one message, and come back in one, so that no write waits for a turn of a
 * busy event loop per statement. The contract is the batch's: a write resolves once committed; a
 * write that fails fails alone (the worker runs the batch's writes again each in a transaction of its
 * own); a database that cannot be used fails the whole batch with its error.
 *
 * The main connection keeps every read and every other write. Both connections are in WAL mode: a
 * read on the main connection that starts after the worker's commit sees it. The two writers take
 * turns on SQLite's write lock, each waiting up to the busy timeout (sqlite-settings.ts) for the
 * other; the worker takes the lock when its transaction begins (BEGIN IMMEDIATE), so it never fails
 * half-way through a batch for want of it.
 *
 * The worker starts with the first write (a command that writes no token never starts one). One that
 * dies (an uncaught error, its heap's limit) fails the writes it had with a `DatabaseUnavailableError`
 * (answered 503, as a database that cannot be used) and is started again by the next write.
 * `close` lets the writes under way finish, then closes the worker's connection.
 */
export interface WorkerWrites extends WriteBatch {
  close(): Promise<void>;
}

export interface WorkerWritesOptions {
  /** Told when a worker starts (tests: to stop it as a crash would). */
  onWorkerStart?: (worker: Worker) => void;
  /** Told when a worker stops other than by `close`, with the error its writes failed with. */
  onWorkerLost?: (error: Error) => void;
  /** Runs the batch once the turn's writes are in (default `setImmediate`). */
  schedule?: (flush: () => void) => void;
}

/** A batch sent to the worker: each write's statements. */
export interface BatchRequest {
  id: number;
  writes: ReadonlyArray<readonly PlannedStatement[]>;
}

/** An error as it crosses to the main thread (its code tells a database that cannot be used). */
export interface SentError {
  name: string;
  message: string;
  code: string | undefined;
}

export type WriteOutcome = { changes: number[] } | { error: SentError };

/** The worker's answer: each write's outcome, or the error that failed them all. */
export type BatchAnswer = { id: number; outcomes: WriteOutcome[] } | { id: number; failed: SentError };

interface Job {
  plan: ReturnType<Plan<unknown>>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * The worker's heap: a batch is at most a few hundred rows, and the worker keeps nothing but its
 * prepared statements.
 */
const WORKER_HEAP_LIMITS = { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 };

/** The thread's data: its file, and what it must share with the main connection. */
function workerDataFor(file: string): WriteWorkerData {
  return {
    file,
    driver: createRequire(import.meta.url).resolve('better-sqlite3'),
    pragmas: SQLITE_PRAGMAS,
    unavailableCodes: SQLITE_UNAVAILABLE.source,
    statementCacheSize: STATEMENT_CACHE_SIZE,
  };
}

/** The thread's program: `writeWorkerThread`'s text, called with the thread's `require` and data. */
const WORKER_SOURCE = `(${writeWorkerThread.toString()})(require, require('node:worker_threads').workerData)`;

function received({ name, message, code }: SentError): Error {
  return Object.assign(new Error(message), { name, ...(code === undefined ? {} : { code }) });
}

/** The write batch of the SQLite file `file`, whose main connection is `db` (plans compile on it). */
export function workerWrites(
  db: Kysely<Database>,
  file: string,
  options: WorkerWritesOptions = {},
): WorkerWrites {
  const schedule = options.schedule ?? setImmediate;
  let worker: Worker | undefined;
  let closed = false;
  let nextId = 1;
  /** Batches sent and not answered yet, by id. */
  const inFlight = new Map<number, Job[]>();
  let pending: Job[] = [];
  let drained: (() => void) | undefined;

  const settle = (jobs: Job[], answer: BatchAnswer) => {
    if ('failed' in answer) {
      const error = received(answer.failed);
      for (const job of jobs) job.reject(error);
      return;
    }
    jobs.forEach((job, index) => {
      const outcome = answer.outcomes[index]!;
      if ('error' in outcome) job.reject(received(outcome.error));
      else {
        let result: unknown;
        try {
          result = job.plan.result(outcome.changes);
        } catch (error) {
          job.reject(error);
          return;
        }
        job.resolve(result);
      }
    });
  };

  const started = (): Worker => {
    if (worker) return worker;
    const thread = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: workerDataFor(file),
      resourceLimits: WORKER_HEAP_LIMITS,
      // Not the main thread's flags (`--import` hooks of the tests and the bench, `--cpu-prof`).
      execArgv: [],
    });
    thread.unref();
    thread.on('message', (answer: BatchAnswer) => {
      const jobs = inFlight.get(answer.id);
      inFlight.delete(answer.id);
      if (inFlight.size === 0) thread.unref();
      if (jobs) settle(jobs, answer);
      if (inFlight.size === 0) drained?.();
    });
    const lost = (cause: unknown) => {
      if (worker !== thread) return;
      worker = undefined;
      const error = new DatabaseUnavailableError(
        `the SQLite write worker stopped (${cause instanceof Error ? cause.message : String(cause)}); ` +
          'its writes were not confirmed, the next write starts a new one',
        { cause },
      );
      for (const jobs of inFlight.values()) for (const job of jobs) job.reject(error);
      inFlight.clear();
      drained?.();
      options.onWorkerLost?.(error);
    };
    thread.on('error', lost);
    thread.on('exit', (code) => {
      if (!closed) lost(new Error(`exit code ${code}`));
    });
    worker = thread;
    options.onWorkerStart?.(thread);
    return thread;
  };

  const flush = () => {
    const jobs = pending;
    pending = [];
    if (closed) {
      const error = new DatabaseUnavailableError('the database is closed');
      for (const job of jobs) job.reject(error);
      return;
    }
    const id = nextId++;
    const thread = started();
    inFlight.set(id, jobs);
    thread.ref();
    thread.postMessage({ id, writes: jobs.map((job) => job.plan.statements) } satisfies BatchRequest);
  };

  const run = <T>(_write: (db: WriteDb) => Promise<T>, plan?: Plan<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (!plan) {
        reject(new Error('a write on the SQLite write worker needs its plan (write-batch.ts, PlannedWrite)'));
        return;
      }
      let planned: ReturnType<Plan<T>>;
      try {
        planned = plan(db);
      } catch (error) {
        reject(error);
        return;
      }
      pending.push({ plan: planned, resolve: resolve as (value: unknown) => void, reject });
      if (pending.length === 1) schedule(flush);
    });

  return {
    run,
    merging: mergingAsWrites(run),
    async close() {
      // What is queued goes out first; `closed` only refuses writes that come after.
      if (pending.length > 0) flush();
      closed = true;
      if (inFlight.size > 0) await new Promise<void>((resolve) => (drained = resolve));
      const thread = worker;
      worker = undefined;
      if (!thread) return;
      const exited = new Promise<void>((resolve) => thread.once('exit', () => resolve()));
      // Held until it has closed its connection (an idle worker does not keep the process alive).
      thread.ref();
      thread.postMessage('close');
      await exited;
    },
  };
}
