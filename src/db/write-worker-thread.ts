import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import type BetterSqlite3 from 'better-sqlite3';
import { setNewest } from '../util/bounded-map.ts';
import { isDatabaseUnavailable } from './errors.ts';
import { applySqliteSettings } from './sqlite-settings.ts';
import type { BatchAnswer, BatchRequest, SentError, WriteOutcome } from './write-worker.ts';
import type { PlannedStatement } from './write-batch.ts';

/**
 * The write worker's thread (write-worker.ts): its own connection to the SQLite file, on which it
 * commits each batch the main thread sends, and answers with what every write changed. Loads the
 * driver and nothing else (memory: a thread's heap is its own).
 */

const { file } = workerData as { file: string };
const Database = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;
const sqlite = new Database(file);
applySqliteSettings(sqlite);

/** As the main connection's cache (connect.ts): each distinct text prepared once. */
const STATEMENT_CACHE_SIZE = 500;
const prepared = new Map<string, BetterSqlite3.Statement>();
function statementOf(text: string): BetterSqlite3.Statement {
  let statement = prepared.get(text);
  if (!statement) {
    statement = sqlite.prepare(text);
    setNewest(prepared, text, statement, STATEMENT_CACHE_SIZE);
  }
  return statement;
}

// IMMEDIATE: the write lock is taken at BEGIN (waiting out the main connection's writes up to the
// busy timeout), so a transaction never fails half-way for a lock it could not upgrade to.
const begin = sqlite.prepare('begin immediate');
const commit = sqlite.prepare('commit');
const rollback = sqlite.prepare('rollback');

function runWrite(statements: readonly PlannedStatement[]): number[] {
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
}

function inTransaction<T>(work: () => T): T {
  begin.run();
  try {
    const result = work();
    commit.run();
    return result;
  } catch (error) {
    if (sqlite.inTransaction) rollback.run();
    throw error;
  }
}

function sent(error: unknown): SentError {
  const { name, message, code } = (error ?? {}) as { name?: unknown; message?: unknown; code?: unknown };
  return {
    name: typeof name === 'string' ? name : 'Error',
    message: typeof message === 'string' ? message : String(error),
    code: typeof code === 'string' ? code : undefined,
  };
}

/**
 * The batch in one transaction; when it fails for one write's fault, each write again in a
 * transaction of its own, so that only the failing one fails (write-batch.ts). A database that
 * cannot be used fails them all with its error.
 */
function runBatch({ id, writes }: BatchRequest): BatchAnswer {
  try {
    const changes = inTransaction(() => writes.map(runWrite));
    return { id, outcomes: changes.map((each) => ({ changes: each })) };
  } catch (error) {
    if (writes.length === 1 || isDatabaseUnavailable(error)) return { id, failed: sent(error) };
  }
  const outcomes = writes.map((write): WriteOutcome => {
    try {
      return { changes: inTransaction(() => runWrite(write)) };
    } catch (error) {
      return { error: sent(error) };
    }
  });
  return { id, outcomes };
}

const port = parentPort!;
port.on('message', (message: BatchRequest | 'close') => {
  if (message === 'close') {
    sqlite.close();
    port.close();
    return;
  }
  port.postMessage(runBatch(message));
});
