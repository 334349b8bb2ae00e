import {
  type Driver,
  PostgresAdapter,
  PostgresDialect,
  type PostgresDialectConfig,
  type QueryResult,
} from 'kysely';
import type pg from 'pg';
import { PostgresDriverKeepingCause, type RollbackFailureListener } from './failed-rollback.ts';
import { FEATURE_NOT_SUPPORTED, pooledConnectionError, type StatementNames } from './named-statements.ts';
import { pgClientSocket } from './pool-sockets.ts';

/**
 * PostgreSQL: the precompiled reads (src/db/precompiled.ts) made outside a transaction run on one
 * connection of their own, pipelined, instead of through Kysely and the pool. The hot path's
 * statements are lookups by key that take the server tens of microseconds; through Kysely each one
 * also cost aa-oidc a pool checkout and release (two timers, an event listener moved, a round of
 * `process.nextTick`), about ten promises across Kysely's executor, driver and connection, and a
 * socket write of its own. Here a read is one `client.query` on a connection that is always checked
 * out, and the reads of one turn of the event loop leave in one socket write: the socket is corked
 * at the turn's first read and uncorked once the turn's I/O callbacks ran (`setImmediate`).
 *
 * The connection runs in pg's pipeline mode: each statement is sent at once, with its own Sync, and
 * the server answers them in order. A statement that fails (a bad value, a refused prepared
 * statement) fails alone: the Sync after it ends its implicit transaction and the server goes on with
 * the next one. A connection that dies fails every statement in flight on it with pg's connection
 * error (answered 503 like any other), and the next read opens a new one. Only reads take this path:
 * a write would make the reads queued behind it wait for its commit.
 *
 * A transaction, a single connection (`db.connection()`) and a connection with plugins have
 * executors of their own: their statements take Kysely's path, on the pool's connections, and never
 * share this one.
 */
export interface LeanReads {
  /** Names the executor of the database's own Kysely instance, the only one served (see above). */
  attach(executor: object): void;
  /** True for the attached executor. */
  serves(executor: object): boolean;
  /** Runs one read (its SQL and parameters, as Kysely compiled them), autocommitted. */
  read<Row>(text: string, parameters: readonly unknown[]): Promise<QueryResult<Row>>;
  /** Ends the connection; reads afterwards fail. */
  close(): Promise<void>;
}

/** What pg's parser hands over for each column of an answer. */
interface FieldDescription {
  name: string;
  dataTypeID: number;
  format?: string;
}

type Parse = (value: string) => unknown;

/** The columns of one statement's answer and their parsers, found at its first answer. */
interface RowShape {
  names: string[];
  types: number[];
  parsers: Parse[];
}

const COMMAND_TAG = /^([A-Za-z]+)(?: (\d+))?(?: (\d+))?/;

/**
 * The result of one lean read, in place of pg's `Result`: pg builds a column's parser again for
 * every answer (a type lookup per column, and a dictionary-mode template object copied into each
 * row), which cost more than parsing the rows of a lookup by key. Here the parsers of a statement's
 * columns are found once and kept with its text, and reused as long as the server describes the
 * same columns (checked at every answer: a migration may change an unnamed statement's columns).
 */
class LeanResult {
  command: string | null = null;
  rowCount: number | null = null;
  oid: number | null = null;
  rows: Array<Record<string, unknown>> = [];
  fields: FieldDescription[] = [];
  /** The connection's type parsers; pg sets them when the query is submitted. */
  _types: { getTypeParser(oid: number, format?: string): Parse } | undefined;
  readonly #text: string;
  readonly #shapes: Map<string, RowShape>;
  #shape: RowShape | undefined;

  constructor(text: string, shapes: Map<string, RowShape>) {
    this.#text = text;
    this.#shapes = shapes;
  }

  addFields(fields: FieldDescription[]): void {
    this.fields = fields;
    let shape = this.#shapes.get(this.#text);
    if (!shape || !describes(shape, fields)) {
      shape = {
        names: fields.map((field) => field.name),
        types: fields.map((field) => field.dataTypeID),
        parsers: fields.map((field) => this._types!.getTypeParser(field.dataTypeID, field.format ?? 'text')),
      };
      this.#shapes.set(this.#text, shape);
    }
    this.#shape = shape;
  }

  parseRow(values: Array<string | null>): Record<string, unknown> {
    const { names, parsers } = this.#shape!;
    const row: Record<string, unknown> = {};
    for (let index = 0; index < values.length; index += 1) {
      const value = values[index]!;
      row[names[index]!] = value === null ? null : parsers[index]!(value);
    }
    return row;
  }

  addRow(row: Record<string, unknown>): void {
    this.rows.push(row);
  }

  addCommandComplete(message: { text?: string; command?: string }): void {
    const match = COMMAND_TAG.exec(message.text ?? message.command ?? '');
    if (!match) return;
    this.command = match[1]!;
    if (match[3]) {
      this.oid = Number.parseInt(match[2]!, 10);
      this.rowCount = Number.parseInt(match[3], 10);
    } else if (match[2]) {
      this.rowCount = Number.parseInt(match[2], 10);
    }
  }
}

function describes(shape: RowShape, fields: FieldDescription[]): boolean {
  if (shape.names.length !== fields.length) return false;
  for (let index = 0; index < fields.length; index += 1) {
    const field = fields[index]!;
    if (field.name !== shape.names[index] || field.dataTypeID !== shape.types[index]) return false;
  }
  return true;
}

/** What the lean reads need of pg. */
export interface LeanDriver {
  /** A new (unconnected) client in pipeline mode, with the pool's settings. */
  openClient(): pg.Client;
  /** pg's `Query`. */
  Query: typeof pg.Query;
  /**
   * Told when the connection has reads in flight (`lent`) and when it has none any more
   * (`returned`), as a pool is of its checkouts: closing waits for them before its goodbye deadline.
   */
  lending?: { lent(): void; returned(): void };
}

/**
 * `names` are the pool's statement names, so that a text refused in its prepared form runs unnamed
 * everywhere.
 */
export function leanReads(driver: LeanDriver, names: StatementNames): LeanReads {
  const { Query, lending } = driver;
  // Reads begun and not yet answered (or failed).
  let inFlight = 0;
  // Statement text → the shape of its rows. The texts are the precompiled selects': a fixed few.
  const shapes = new Map<string, RowShape>();
  let client: pg.Client | undefined;
  let connecting: Promise<pg.Client> | undefined;
  let executor: object | undefined;
  let closed = false;
  // The client whose socket is corked for this turn, if any.
  let corked: pg.Client | undefined;

  const forget = (dead: pg.Client) => {
    if (client === dead) client = undefined;
    if (corked === dead) corked = undefined;
  };

  const connect = (): Promise<pg.Client> => {
    connecting ??= (async () => {
      const fresh = driver.openClient();
      // A connection that dies (server restart, `pg_terminate_backend`, a network cut) fails the
      // reads in flight on it; the next read opens a new one. The listener also keeps the 'error'
      // event from crashing the process.
      fresh.on('error', () => {
        forget(fresh);
        fresh.end().catch(() => undefined);
      });
      fresh.on('end', () => forget(fresh));
      try {
        await fresh.connect();
      } catch (error) {
        await fresh.end().catch(() => undefined);
        throw error;
      } finally {
        connecting = undefined;
      }
      if (closed) {
        await fresh.end().catch(() => undefined);
        throw new Error('the database has been closed');
      }
      client = fresh;
      return fresh;
    })();
    return connecting;
  };

  const uncork = () => {
    const socket = corked && pgClientSocket(corked);
    corked = undefined;
    socket?.uncork?.();
  };

  const submit = (on: pg.Client, text: string, values: unknown[]): Promise<LeanResult> => {
    if (corked !== on) {
      const socket = pgClientSocket(on);
      if (socket?.cork && socket.uncork) {
        if (corked) uncork();
        socket.cork();
        corked = on;
        setImmediate(uncork);
      }
    }
    return new Promise<LeanResult>((resolve, reject) => {
      // pg's Query made here rather than from a `{ name, text, values }` config, which pg copies
      // property by property for every query.
      const query = new Query(text, values, (error, result) =>
        error ? reject(error) : resolve(result as unknown as LeanResult),
      ) as unknown as { name?: string; _result: LeanResult; _results: LeanResult };
      const name = names.nameOf(text, values.length);
      if (name !== null) query.name = name;
      query._result = query._results = new LeanResult(text, shapes);
      on.query(query as unknown as pg.Query);
    });
  };

  return {
    attach(root) {
      executor = root;
    },
    serves: (candidate) => candidate === executor,
    async read<Row>(text: string, parameters: readonly unknown[]) {
      if (closed) throw new Error('the database has been closed');
      if (inFlight++ === 0) lending?.lent();
      try {
        const on = client ?? (await connect());
        const values = parameters as unknown[];
        let result: LeanResult;
        try {
          result = await submit(on, text, values);
        } catch (error) {
          if ((error as { code?: string }).code !== FEATURE_NOT_SUPPORTED) {
            const name = names.nameOf(text, values.length);
            throw (name !== null && pooledConnectionError(error, name)) || error;
          }
          // A prepared statement whose result type changed (see named-statements.ts): the text runs
          // unnamed from now on, and this read again at once (it is autocommitted).
          names.unname(text);
          result = await submit(on, text, values);
        }
        return { rows: result.rows as Row[] };
      } finally {
        if (--inFlight === 0) lending?.returned();
      }
    },
    async close() {
      closed = true;
      const open = client;
      client = undefined;
      uncork();
      await open?.end().catch(() => undefined);
    },
  };
}

/** The PostgreSQL adapter of a database with lean reads: precompiled queries find them through it. */
export class LeanReadsAdapter extends PostgresAdapter {
  readonly lean: LeanReads;
  constructor(lean: LeanReads) {
    super();
    this.lean = lean;
  }
}

/**
 * Kysely's PostgreSQL dialect, with the adapter that carries the lean reads, and transactions that
 * throw their own error when their ROLLBACK fails too (src/db/failed-rollback.ts).
 */
export class LeanReadsDialect extends PostgresDialect {
  readonly #config: PostgresDialectConfig;
  readonly #adapter: LeanReadsAdapter;
  readonly #onRollbackFailure: RollbackFailureListener | undefined;
  constructor(config: PostgresDialectConfig, lean: LeanReads, onRollbackFailure?: RollbackFailureListener) {
    super(config);
    this.#config = config;
    this.#adapter = new LeanReadsAdapter(lean);
    this.#onRollbackFailure = onRollbackFailure;
  }
  override createDriver(): Driver {
    return new PostgresDriverKeepingCause(this.#config, this.#onRollbackFailure);
  }
  override createAdapter(): LeanReadsAdapter {
    return this.#adapter;
  }
}

/** The lean reads that serve `executor`, if any (a transaction's executor has none). */
export function leanReadsFor(executor: { adapter: object }): LeanReads | undefined {
  const { adapter } = executor;
  return adapter instanceof LeanReadsAdapter && adapter.lean.serves(executor) ? adapter.lean : undefined;
}
