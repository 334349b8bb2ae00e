import type BetterSqlite3 from 'better-sqlite3';
import type * as WorkerThreads from 'node:worker_threads';
import type { BatchAnswer, BatchRequest, SentError, WriteOutcome } from './write-worker.ts';
import type { PlannedStatement } from './write-batch.ts';

/** What the write worker's thread is given (write-worker.ts). */
export interface WriteWorkerData {
  /** The SQLite file. */
  file: string;
  /** The path better-sqlite3 resolves to from aa-oidc. */
  driver: string;
  /** The main connection's pragmas (sqlite-settings.ts). */
  pragmas: readonly string[];
  /** The source of the pattern of SQLite's codes for a database that cannot be used (errors.ts). */
  unavailableCodes: string;
  /** How many prepared statements it keeps, as the main connection (connect.ts). */
  statementCacheSize: number;
}

/**
 * The write worker's thread: its own connection to the SQLite file, on which it commits each batch the
 * main thread sends, and answers with what every write changed.
 *
 * The thread runs this function's text (`eval`), so it uses nothing from outside its body but
 * `require` and `data`: the sources' type stripping and the build both leave it plain JavaScript. A
 * worker started from a TypeScript file strips types in its own isolate, which cost 16 MB of resident
 * memory more than the thread itself (33 MB against 17, measured).
 */
export function writeWorkerThread(require: NodeJS.Require, data: WriteWorkerData): void {
  const { parentPort } = require('node:worker_threads') as typeof WorkerThreads;
  const Database = require(data.driver) as typeof BetterSqlite3;
  const sqlite = new Database(data.file);
  for (const pragma of data.pragmas) sqlite.pragma(pragma);
  const unavailable = new RegExp(data.unavailableCodes);

  // Each distinct text prepared once; the oldest dropped when the cache is full.
  const prepared = new Map<string, BetterSqlite3.Statement>();
  const statementOf = (text: string): BetterSqlite3.Statement => {
    let statement = prepared.get(text);
    if (!statement) {
      statement = sqlite.prepare(text);
      if (prepared.size >= data.statementCacheSize) prepared.delete(prepared.keys().next().value!);
      prepared.set(text, statement);
    }
    return statement;
  };

  // IMMEDIATE: the write lock is taken at BEGIN (waiting out the main connection's writes up to the
  // busy timeout), so a transaction never fails half-way for a lock it could not upgrade to.
  const begin = sqlite.prepare('begin immediate');
  const commit = sqlite.prepare('commit');
  const rollback = sqlite.prepare('rollback');

  const runWrite = (statements: readonly PlannedStatement[]): number[] => {
    const changes: number[] = [];
    for (const { sql, parameters, onlyAfterChange } of statements) {
      if (onlyAfterChange && !((changes.at(-1) ?? 0) > 0)) {
        changes.push(0);
        continue;
      }
      const statement = statementOf(sql);
      changes.push(
        statement.reader ? statement.all(...parameters).length : statement.run(...parameters).changes,
      );
    }
    return changes;
  };

  const inTransaction = <T>(work: () => T): T => {
    begin.run();
    try {
      const result = work();
      commit.run();
      return result;
    } catch (error) {
      if (sqlite.inTransaction) rollback.run();
      throw error;
    }
  };

  const sent = (error: unknown): SentError => {
    const { name, message, code } = (error ?? {}) as { name?: unknown; message?: unknown; code?: unknown };
    return {
      name: typeof name === 'string' ? name : 'Error',
      message: typeof message === 'string' ? message : String(error),
      code: typeof code === 'string' ? code : undefined,
    };
  };

  // The batch in one transaction; when it fails for one write's fault, each write again in a
  // transaction of its own, so that only the failing one fails (write-batch.ts). A database that
  // cannot be used fails them all with its error.
  const runBatch = ({ id, writes }: BatchRequest): BatchAnswer => {
    try {
      const changes = inTransaction(() => writes.map(runWrite));
      return { id, outcomes: changes.map((each) => ({ changes: each })) };
    } catch (error) {
      const { code } = sent(error);
      if (writes.length === 1 || (code !== undefined && unavailable.test(code)))
        return { id, failed: sent(error) };
    }
    const outcomes = writes.map((write): WriteOutcome => {
      try {
        return { changes: inTransaction(() => runWrite(write)) };
      } catch (error) {
        return { error: sent(error) };
      }
    });
    return { id, outcomes };
  };

  const port = parentPort!;
  port.on('message', (message: BatchRequest | 'close') => {
    if (message === 'close') {
      sqlite.close();
      port.close();
      return;
    }
    port.postMessage(runBatch(message));
  });
}
