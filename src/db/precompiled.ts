import type { Compilable, CompiledQuery, Kysely, QueryResult, Transaction } from 'kysely';
import { leanReadsFor } from './lean-reads.ts';
import type { Database } from './schema.ts';

/**
 * Queries built and compiled once per dialect instead of once per call. Building a Kysely query and
 * compiling it to SQL costs more CPU than SQLite takes to run a lookup by key, and the hot path (a
 * token found by id, an application by client id, a user's profile) runs the same few queries for
 * every request. A precompiled query is written as usual, with its arguments standing in for the
 * values; each call substitutes them into the compiled SQL's parameters.
 *
 *     const findById = precompiled((db, id: number) =>
 *       db.selectFrom('app_user').selectAll().where('id', '=', id));
 *     const row = await findById.takeFirst(db, 42);
 *
 * The builder must use each argument only as a value (a parameter of the SQL), never to choose the
 * query's shape (an `if`, a column name, an `in` list): the shape is fixed at the first call.
 * Values that are not arguments stay constants of the query. On a connection with Kysely plugins
 * (which transform each query as it is compiled) the query is built and compiled on every call.
 *
 * On PostgreSQL a precompiled select run outside a transaction takes the lean path
 * (src/db/lean-reads.ts: a connection of its own, shared by the concurrent requests): it must only
 * read, and leave no state on the connection.
 */

type Db = Kysely<Database> | Transaction<Database>;

/** Stands for the argument at `index` while the query is built; replaced by its value at each call. */
class Argument {
  readonly index: number;
  constructor(index: number) {
    this.index = index;
  }
}

export interface Precompiled<Args extends unknown[], Row> {
  /** Every row the query returns (or the rows an INSERT/UPDATE … RETURNING returns). */
  rows(db: Db, ...args: Args): Promise<Row[]>;
  /** The first row, or undefined. */
  takeFirst(db: Db, ...args: Args): Promise<Row | undefined>;
  /** The raw result (affected rows of a write without RETURNING). */
  execute(db: Db, ...args: Args): Promise<QueryResult<Row>>;
  /** The query with these arguments, compiled for `db`'s dialect and not run (a write's plan). */
  compile(db: Db, ...args: Args): CompiledQuery<Row>;
}

/**
 * `arity` is how many arguments the builder takes after `db`; it defaults to the builder's declared
 * parameters (give it for a builder with a rest parameter).
 */
export function precompiled<Args extends unknown[], Row>(
  build: (db: Db, ...args: Args) => Compilable<Row>,
  arity = build.length - 1,
): Precompiled<Args, Row> {
  // The SQL depends on the dialect only: keyed by the dialect adapter, which a connection and its
  // transactions share.
  const byDialect = new WeakMap<object, CompiledQuery<Row>>();
  const compiledFor = (db: Db): CompiledQuery<Row> => {
    const dialect = db.getExecutor().adapter;
    let compiled = byDialect.get(dialect);
    if (!compiled) {
      const stand = Array.from({ length: arity }, (_, index) => new Argument(index));
      compiled = build(db, ...(stand as Args)).compile();
      byDialect.set(dialect, compiled);
    }
    return compiled;
  };
  const withArguments = (compiled: CompiledQuery<Row>, args: Args): CompiledQuery<Row> => ({
    ...compiled,
    parameters: compiled.parameters.map((value) => (value instanceof Argument ? args[value.index] : value)),
  });
  const execute = (db: Db, args: Args): Promise<QueryResult<Row>> => {
    const executor = db.getExecutor();
    // Plugins transform each query as it is compiled: a connection with plugins compiles every time.
    if (executor.plugins.length > 0) return db.executeQuery(build(db, ...args));
    const compiled = withArguments(compiledFor(db), args);
    if (compiled.query.kind === 'SelectQueryNode') {
      const lean = leanReadsFor(executor);
      if (lean) return lean.read<Row>(compiled.sql, compiled.parameters);
    }
    return db.executeQuery<Row>(compiled);
  };
  return {
    async rows(db, ...args) {
      return (await execute(db, args)).rows;
    },
    async takeFirst(db, ...args) {
      return (await execute(db, args)).rows[0];
    },
    execute: (db, ...args) => execute(db, args),
    compile: (db, ...args) =>
      db.getExecutor().plugins.length > 0
        ? build(db, ...args).compile()
        : withArguments(compiledFor(db), args),
  };
}
