import BetterSqlite3 from 'better-sqlite3';
import mysql from 'mysql2';
import pg from 'pg';

const STATEMENT_RUNS = ['all', 'get', 'run', 'iterate'] as const;

/**
 * Calls `onStatement` with the SQL text of every statement the database drivers are handed, from
 * now until the returned `restore` is called: each execution of a better-sqlite3 statement
 * (statements are prepared once and reused, so preparing is not what counts), pg's `Client#query`,
 * and mysql2's `query` and `execute` (Alliance Auth on MariaDB). For tests that count what a request
 * reads.
 */
export function watchStatements(onStatement: (sql: string) => void): () => void {
  const note = (text: unknown) => {
    const sql = typeof text === 'string' ? text : (text as { text?: unknown } | null)?.text;
    if (typeof sql === 'string') onStatement(sql);
  };
  const probe = new BetterSqlite3(':memory:');
  const statement = Object.getPrototypeOf(probe.prepare('select 1')) as Record<
    (typeof STATEMENT_RUNS)[number],
    (...args: unknown[]) => unknown
  >;
  probe.close();
  const runs = STATEMENT_RUNS.map((name) => [name, statement[name]] as const);
  for (const [name, run] of runs) {
    statement[name] = function countedRun(this: { source: string }, ...args: unknown[]) {
      note(this.source);
      return run.apply(this, args);
    };
  }
  const client = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const query = client.query;
  client.query = function countedQuery(this: unknown, ...args: unknown[]) {
    note(args[0]);
    return query.apply(this, args);
  };
  // The class that defines them, under `Connection` and `PoolConnection`.
  const connection = Object.getPrototypeOf(mysql.Connection.prototype) as Record<
    'query' | 'execute',
    (...args: unknown[]) => unknown
  >;
  const mysqlRuns = (['query', 'execute'] as const).map((name) => [name, connection[name]] as const);
  for (const [name, run] of mysqlRuns) {
    connection[name] = function countedMysqlRun(this: unknown, ...args: unknown[]) {
      note(args[0]);
      return run.apply(this, args);
    };
  }
  return () => {
    for (const [name, run] of runs) statement[name] = run;
    client.query = query;
    for (const [name, run] of mysqlRuns) connection[name] = run;
  };
}

/** The SQL of every statement the drivers are handed while `work` runs. */
export async function statementsDuring<T>(work: () => Promise<T>): Promise<{ result: T; texts: string[] }> {
  const texts: string[] = [];
  const restore = watchStatements((text) => texts.push(text));
  try {
    return { result: await work(), texts };
  } finally {
    restore();
  }
}

/** The result of `work`, and how many DELETE statements the drivers are handed while it runs. */
export async function deletesDuring<T>(work: () => Promise<T>): Promise<{ result: T; deletes: number }> {
  const { result, texts } = await statementsDuring(work);
  return { result, deletes: texts.filter((text) => /^\s*delete/i.test(text)).length };
}
