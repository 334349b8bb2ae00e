import assert from 'node:assert/strict';
import type { Kysely, QueryId, RootOperationNode } from 'kysely';

/** A query as Kysely handed it to its plugins: enough to compile it again. */
export interface RecordedQuery {
  node: RootOperationNode;
  queryId: QueryId;
}

/** Runs `work` on `db` with every query given to it recorded; its result, and the queries in order. */
export async function queriesDuring<DB, T>(
  db: Kysely<DB>,
  work: (observed: Kysely<DB>) => Promise<T>,
): Promise<{ result: T; queries: RecordedQuery[] }> {
  const queries: RecordedQuery[] = [];
  const observed = db.withPlugin({
    transformQuery: (args) => (queries.push(args), args.node),
    transformResult: async (args) => args.result,
  });
  return { result: await work(observed), queries };
}

/** SQLite's query plan of a recorded query, its steps joined by `; `. */
export async function sqlitePlan<DB>(db: Kysely<DB>, query: RecordedQuery): Promise<string> {
  const compiled = db.getExecutor().compileQuery(query.node, query.queryId);
  const plan = await db.executeQuery<{ detail: string }>({
    ...compiled,
    sql: `explain query plan ${compiled.sql}`,
  });
  return plan.rows.map((row) => row.detail).join('; ');
}

/** SQLite's query plan of the one statement `work` makes on `db` (a purge's first batch, say). */
export async function planOfOnlyStatement<DB>(
  db: Kysely<DB>,
  work: (observed: Kysely<DB>) => Promise<unknown>,
): Promise<string> {
  const { queries } = await queriesDuring(db, work);
  assert.equal(queries.length, 1, 'one statement');
  return sqlitePlan(db, queries[0]!);
}

/** Asserts that `plan` (from `sqlitePlan`) uses `index` and reads no table whole. */
export function assertIndexOnly(plan: string, index: RegExp): void {
  assert.match(plan, index, plan);
  assert.doesNotMatch(plan, /^SCAN|; SCAN/, plan);
}

/** PostgreSQL's query plan of a recorded query (EXPLAIN, not run), its lines joined by newlines. */
export async function postgresPlan<DB>(db: Kysely<DB>, query: RecordedQuery): Promise<string> {
  const compiled = db.getExecutor().compileQuery(query.node, query.queryId);
  const plan = await db.executeQuery<{ 'QUERY PLAN': string }>({
    ...compiled,
    sql: `explain ${compiled.sql}`,
  });
  return plan.rows.map((row) => row['QUERY PLAN']).join('\n');
}
