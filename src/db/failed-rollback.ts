import {
  type DatabaseConnection,
  type Driver,
  PostgresDriver,
  type PostgresDialectConfig,
  SqliteDialect,
  type SqliteDialectConfig,
  SqliteDriver,
} from 'kysely';

/**
 * Told about a transaction's ROLLBACK that failed after its work had failed; the transaction throws
 * the work's error, never this one.
 */
export type RollbackFailureListener = (error: unknown) => void;

/*
 * Why: when the work given to `db.transaction().execute` throws, Kysely sends ROLLBACK on the same
 * connection and, should that fail too, throws the rollback's error in place of the work's
 * (TransactionBuilder.execute: `await driver.rollbackTransaction(connection)` before
 * `throw error`). A PostgreSQL connection that died mid-transaction (the server terminated its
 * backend, the network was cut) then reports pg's "Client has encountered a connection error and
 * is not queryable", and a statement SQLite had already rolled back itself (a full disk) reports
 * "cannot rollback - no transaction is active": the cause never reaches the caller or the log. The
 * drivers below take the rollback's failure instead, wherever the connection cannot go on with the
 * transaction half done, so that every transaction, now and later, throws the work's own error.
 * Nothing runs on a transaction that commits.
 */

/**
 * Kysely's PostgreSQL driver, a failed ROLLBACK going to `onRollbackFailure`. Kysely's driver marks
 * such a connection for discarding before it rethrows: the pool destroys it at its release, and
 * the server ends its open transaction with the session, so nothing of the work can commit.
 */
export class PostgresDriverKeepingCause extends PostgresDriver {
  readonly #onRollbackFailure: RollbackFailureListener | undefined;

  constructor(config: PostgresDialectConfig, onRollbackFailure?: RollbackFailureListener) {
    super(config);
    this.#onRollbackFailure = onRollbackFailure;
  }

  override async rollbackTransaction(
    connection: Parameters<PostgresDriver['rollbackTransaction']>[0],
  ): Promise<void> {
    try {
      await super.rollbackTransaction(connection);
    } catch (error) {
      this.#onRollbackFailure?.(error);
    }
  }
}

/**
 * Kysely's SQLite driver, a failed ROLLBACK going to `onRollbackFailure` when SQLite has already
 * ended the transaction itself (`inTransaction` false: SQLITE_FULL, SQLITE_IOERR…). One that is still
 * open fails as Kysely fails it: the one connection would otherwise run every later statement
 * inside it.
 */
export class SqliteDriverKeepingCause extends SqliteDriver {
  readonly #inTransaction: () => boolean;
  readonly #onRollbackFailure: RollbackFailureListener | undefined;

  constructor(
    config: SqliteDialectConfig,
    inTransaction: () => boolean,
    onRollbackFailure?: RollbackFailureListener,
  ) {
    super(config);
    this.#inTransaction = inTransaction;
    this.#onRollbackFailure = onRollbackFailure;
  }

  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await super.rollbackTransaction(connection);
    } catch (error) {
      if (this.#inTransaction()) throw error;
      this.#onRollbackFailure?.(error);
    }
  }
}

/** Kysely's SQLite dialect on `SqliteDriverKeepingCause`. */
export class SqliteDialectKeepingCause extends SqliteDialect {
  readonly #config: SqliteDialectConfig;
  readonly #inTransaction: () => boolean;
  readonly #onRollbackFailure: RollbackFailureListener | undefined;

  constructor(
    config: SqliteDialectConfig,
    inTransaction: () => boolean,
    onRollbackFailure?: RollbackFailureListener,
  ) {
    super(config);
    this.#config = config;
    this.#inTransaction = inTransaction;
    this.#onRollbackFailure = onRollbackFailure;
  }

  override createDriver(): Driver {
    return new SqliteDriverKeepingCause(this.#config, this.#inTransaction, this.#onRollbackFailure);
  }
}
