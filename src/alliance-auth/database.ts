import {
  CompiledQuery,
  Kysely,
  type KyselyPlugin,
  MysqlDialect,
  PostgresDialect,
  type QueryResult,
  sql,
  type UnknownRow,
} from 'kysely';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as mysql from 'mysql2';
import type pg from 'pg';
import {
  type AbandonedConnections,
  pgClientSocket,
  type PooledSocket,
  poolSockets,
} from '../db/pool-sockets.ts';
import { redactUrl, unreadableFile } from '../config/load.ts';
import {
  mysqlPoolWithAnswerLimit,
  NO_ANSWER_MARGIN_MS,
  postgresPoolWithAnswerLimit,
} from './answer-limit.ts';
import { type MysqlTlsFiles, type MysqlTlsSettings, mysqlSslOption, mysqlUrlParts } from './mysql-tls.ts';
import type { AllianceAuthDatabase } from './schema.ts';

export type AllianceAuthDatabaseKind = 'mysql' | 'postgres';

/** A read-only connection pool to Alliance Auth's own database. */
export interface AllianceAuthConnection {
  db: Kysely<AllianceAuthDatabase>;
  kind: AllianceAuthDatabaseKind;
  /** The URL without its password, for messages. */
  displayUrl: string;
  /** MariaDB's TLS settings from the URL (`ssl-mode`, `ssl-ca`); PostgreSQL's are node-postgres's own. */
  mysqlTls: MysqlTlsSettings | undefined;
  /** How long the server lets one statement run (`AA_OIDC_AA_STATEMENT_TIMEOUT_SECONDS`). */
  statementTimeoutMs: number;
  /**
   * How long one statement's answer is awaited before its connection is closed and the read fails
   * with an `AllianceAuthNoAnswerError`, as an outage (the statement timeout and `NO_ANSWER_MARGIN_MS`).
   */
  answerLimitMs: number;
  /**
   * Closes the pool: waits for the statements in flight to end (at most `answerLimitMs`, which ends
   * each of them anyway), then at most `CLOSE_TIMEOUT_MS` for its connections to close; those still
   * open then (a dead route that never delivers the server's goodbye) are closed at once, and
   * `onConnectionsAbandoned` told. A statement in flight is cut sooner only when the goodbye on the
   * idle connections goes unanswered for `CLOSE_TIMEOUT_MS` (a dead route).
   */
  close(): Promise<void>;
}

/** The setting that names Alliance Auth's database, for messages. */
export const AA_DATABASE_SETTING = 'AA_OIDC_AA_DATABASE_URL';

export class AllianceAuthDatabaseError extends Error {
  override name = 'AllianceAuthDatabaseError';
}

/** How long a new connection may take to open. */
export const CONNECT_TIMEOUT_MS = 5000;
/**
 * How long closing the pool waits for its connections to close once no statement is in flight on them
 * (the server answers a goodbye at once); past it, the connections still open are closed without
 * waiting: a route that died without a reset would otherwise hold the process for TCP's retry timeout
 * (about 15 minutes), or for ever.
 */
export const CLOSE_TIMEOUT_MS = CONNECT_TIMEOUT_MS;
/**
 * By default, a statement that runs longer than this is abandoned by the server: PostgreSQL's
 * `statement_timeout`, MariaDB's `max_statement_time` (MySQL's `max_execution_time`). It counts the
 * time spent waiting for a lock too (a migration altering AA's tables, a backup's `LOCK TABLES`).
 * `AA_OIDC_AA_STATEMENT_TIMEOUT_SECONDS` sets another.
 */
export const STATEMENT_TIMEOUT_MS = 15_000;

/** `mysql://…` (or `mariadb://…`) or `postgres://…`; anything else names the setting and the valid forms. */
export function allianceAuthDatabaseKind(url: string): AllianceAuthDatabaseKind {
  if (/^(mysql|mariadb):\/\//i.test(url)) return 'mysql';
  if (/^postgres(ql)?:\/\//i.test(url)) return 'postgres';
  throw new AllianceAuthDatabaseError(
    `${AA_DATABASE_SETTING}: "${redactUrl(url)}" is not supported; use mysql://USER:PASSWORD@HOST:3306/alliance_auth or postgres://USER:PASSWORD@HOST:5432/alliance_auth`,
  );
}

export interface OpenAllianceAuthOptions {
  /** Told about a pooled connection that died while idle (server restart, failover). */
  onIdleConnectionError?: (error: Error) => void;
  /** Told about the connections `close()` closed without the server's goodbye (see `close()`). */
  onConnectionsAbandoned?: (abandoned: AbandonedConnections) => void;
  /** Connections in the pool (default 5: a poll cycle and a few sign-ins at once). */
  poolSize?: number;
  /** The server's limit on one statement (default `STATEMENT_TIMEOUT_MS`; the setting or a test sets another). */
  statementTimeoutMs?: number;
  /** How long one statement's answer is awaited (default: the statement timeout and `NO_ANSWER_MARGIN_MS`). */
  answerLimitMs?: number;
}

/**
 * Opens a pool to Alliance Auth's database. Every session is read-only on the server's side too
 * (`SET SESSION TRANSACTION READ ONLY`, `default_transaction_read_only`), so even a login with more
 * than SELECT cannot write through aa-oidc. Nothing connects until the first query. A statement whose
 * answer has not come within `answerLimitMs` fails as an outage and its connection is closed
 * (answer-limit.ts): nothing else ends the wait on a connection that stays open but goes silent.
 */
export function openAllianceAuthDatabase(
  url: string,
  options: OpenAllianceAuthOptions = {},
): AllianceAuthConnection {
  const kind = allianceAuthDatabaseKind(url);
  const displayUrl = redactUrl(url);
  const poolSize = options.poolSize ?? 5;
  const statementTimeoutMs = options.statementTimeoutMs ?? STATEMENT_TIMEOUT_MS;
  const answerLimitMs = options.answerLimitMs ?? statementTimeoutMs + NO_ANSWER_MARGIN_MS;
  const sockets = poolSockets();
  const close = async (db: Kysely<AllianceAuthDatabase>) => {
    const abandoned = await sockets.closeWithin(() => db.destroy(), {
      goodbyeMs: CLOSE_TIMEOUT_MS,
      workMs: answerLimitMs,
    });
    if (abandoned) options.onConnectionsAbandoned?.(abandoned);
  };
  if (kind === 'mysql') {
    const { uri, tls } = mysqlTls(url.replace(/^mariadb:/i, 'mysql:'));
    const pool = load<typeof mysql>('mysql2').createPool({
      uri,
      ssl: tls && mysqlSslOption(tls, readTlsFiles(tls)),
      connectionLimit: poolSize,
      connectTimeout: CONNECT_TIMEOUT_MS,
      charset: 'utf8mb4',
      // Django stores naive UTC datetimes; strings keep them from being shifted to local time.
      dateStrings: true,
      supportBigNumbers: true,
      enableKeepAlive: true,
    });
    pool.on('connection', (connection) => {
      sockets.track((connection as unknown as { stream?: PooledSocket }).stream);
      connection.on('error', (error: Error) => options.onIdleConnectionError?.(error));
    });
    const db = new Kysely<AllianceAuthDatabase>({
      plugins: [NUL_FREE_TEXT],
      dialect: new MysqlDialect({
        pool: mysqlPoolWithAnswerLimit(pool, answerLimitMs, sockets),
        async onCreateConnection(connection) {
          await connection.executeQuery(CompiledQuery.raw('SET SESSION TRANSACTION READ ONLY'));
          // The fingerprint query aggregates each user's groups into one value.
          await connection.executeQuery(CompiledQuery.raw('SET SESSION group_concat_max_len = 1048576'));
          // MariaDB's name; MySQL calls it max_execution_time (milliseconds), hence best effort.
          await connection
            .executeQuery(CompiledQuery.raw(`SET SESSION max_statement_time = ${statementTimeoutMs / 1000}`))
            .catch(() =>
              connection.executeQuery(
                CompiledQuery.raw(`SET SESSION max_execution_time = ${statementTimeoutMs}`),
              ),
            )
            .catch(() => undefined);
        },
      }),
    });
    return {
      db,
      kind,
      displayUrl,
      mysqlTls: tls,
      statementTimeoutMs,
      answerLimitMs,
      close: () => close(db),
    };
  }
  const pool = new (load<typeof pg>('pg').Pool)({
    connectionString: url,
    max: poolSize,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    options: `-c default_transaction_read_only=on -c statement_timeout=${statementTimeoutMs}`,
  });
  pool.on('error', (error) => options.onIdleConnectionError?.(error));
  pool.on('acquire', () => sockets.lent());
  pool.on('release', () => sockets.returned());
  // A connection that dies while checked out emits 'error' with no pool listener attached: without
  // one of its own the process would crash. The query in flight fails on its own, and the pool
  // drops the connection when it is released.
  pool.on('connect', (client) => {
    sockets.track(pgClientSocket(client));
    client.on('error', (error) => options.onIdleConnectionError?.(error));
  });
  const db = new Kysely<AllianceAuthDatabase>({
    plugins: [NUL_FREE_TEXT],
    dialect: new PostgresDialect({ pool: postgresPoolWithAnswerLimit(pool, answerLimitMs) }),
  });
  return {
    db,
    kind,
    displayUrl,
    mysqlTls: undefined,
    statementTimeoutMs,
    answerLimitMs,
    close: () => close(db),
  };
}

/**
 * Every text Alliance Auth's database answers, as aa-oidc keeps and releases it: a NUL byte becomes
 * U+FFFD. Django's forms refuse one, but SQL typed by hand stores it on MariaDB, and PostgreSQL
 * refuses it in any text: a name holding one stopped every poller cycle at aa-oidc's own write of it
 * (the catalog of names, the whitelists following a rename), and a claim holding one is cut short by
 * any reader of C strings. Done once for every row read, so that all of aa-oidc (claims, whitelists,
 * the poller's records, sign-in) sees the same spelling, whatever query read it.
 */
const NUL_FREE_TEXT: KyselyPlugin = {
  transformQuery: (args) => args.node,
  async transformResult(args): Promise<QueryResult<UnknownRow>> {
    for (const row of args.result.rows) {
      for (const column in row) {
        const value = row[column];
        if (typeof value === 'string' && value.includes('\0')) row[column] = value.replaceAll('\0', '\uFFFD');
      }
    }
    return args.result;
  },
};

/**
 * True when the server abandoned the statement for running past the statement timeout: MariaDB's
 * ER_STATEMENT_TIMEOUT (1969, "max_statement_time exceeded"), MySQL's ER_QUERY_TIMEOUT (3024), and
 * PostgreSQL's query_canceled (57014, which an administrator's `pg_cancel_backend` raises too). The
 * database answered: it is reachable, only too slow or held up by a lock.
 */
export function isStatementTimeout(error: unknown): boolean {
  const { errno, code } = (error ?? {}) as { errno?: unknown; code?: unknown };
  return errno === 1969 || errno === 3024 || code === '57014';
}

/**
 * What may keep a statement on AA's database waiting past its statement timeout, and where to see it:
 * for the log lines of a read that ran out of time (a sign-in's, the poller's).
 */
export const WHAT_HOLDS_AA_TABLES =
  "what holds AA's tables (a migration or ALTER TABLE, a long transaction, a backup's LOCK TABLES: " +
  'SHOW PROCESSLIST on MariaDB, pg_stat_activity on PostgreSQL) or a server short of CPU or disk';

/**
 * True when the server refused the statement for a privilege the login lacks: SELECT on a table or a
 * column (MySQL and MariaDB's ER_TABLEACCESS_DENIED_ERROR 1142, ER_COLUMNACCESS_DENIED_ERROR 1143,
 * PostgreSQL's insufficient_privilege 42501) or any privilege on the database
 * (ER_DBACCESS_DENIED_ERROR 1044: MariaDB refuses a new connection once the database-wide grant is
 * revoked). The database answers; no retry mends it until someone changes the login's grants.
 */
export function isPrivilegeError(error: unknown): boolean {
  const { errno, code } = (error ?? {}) as { errno?: unknown; code?: unknown };
  return code === '42501' || errno === 1142 || errno === 1143 || errno === 1044;
}

/**
 * True when the server answered that what the statement reads is not there: MariaDB's
 * ER_BAD_FIELD_ERROR 1054 and ER_NO_SUCH_TABLE 1146, PostgreSQL's undefined_column 42703 and
 * undefined_table 42P01 (an Alliance Auth upgrade, or a migration not applied or applied halfway).
 * The database is reachable; no retry mends it until someone changes AA's schema.
 */
export function isMissingFromSchema(error: unknown): boolean {
  const { errno, code } = (error ?? {}) as { errno?: unknown; code?: unknown };
  return errno === 1054 || errno === 1146 || code === '42703' || code === '42P01';
}

/**
 * True when what the statement reads is not there (`isMissingFromSchema`) or may not be read
 * (`isPrivilegeError`). The database is reachable; no retry mends it until someone changes AA's schema
 * or the login's grants.
 */
export function isSchemaOrPermissionError(error: unknown): boolean {
  return isMissingFromSchema(error) || isPrivilegeError(error);
}

/**
 * What to check when AA's database lacks a table or column aa-oidc reads: for the log lines of a read
 * that found one missing (the poller's, a request's).
 */
export const WHAT_MAKES_AA_SCHEMA =
  "Alliance Auth's version (AA 4.x, or AA 5 up to authentication 0024) and that its migrations are applied (python manage.py migrate)";

/** The URL's TLS parameters, or an error naming the setting and what would be valid. */
function mysqlTls(url: string): ReturnType<typeof mysqlUrlParts> {
  try {
    return mysqlUrlParts(url);
  } catch (error) {
    throw new AllianceAuthDatabaseError(`${AA_DATABASE_SETTING}: ${(error as Error).message}`);
  }
}

/**
 * The files `ssl-ca`, `ssl-cert` and `ssl-key` name, read once as the pool opens (configuration load
 * has read them too: this finds one gone or changed since, with the same message).
 */
function readTlsFiles(tls: MysqlTlsSettings): MysqlTlsFiles {
  const read = (parameter: string, file: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (error) {
      throw new AllianceAuthDatabaseError(
        `${AA_DATABASE_SETTING}: ${unreadableFile(error, parameter, file)}`,
      );
    }
  };
  return {
    ...(tls.caFile !== undefined && { ca: read('ssl-ca', tls.caFile) }),
    ...(tls.client && {
      cert: read('ssl-cert', tls.client.certFile),
      key: read('ssl-key', tls.client.keyFile),
    }),
  };
}

/** True when Alliance Auth's database answers a trivial query. */
export async function allianceAuthReachable(db: Kysely<AllianceAuthDatabase>): Promise<boolean> {
  try {
    await sql`select 1`.execute(db);
    return true;
  } catch {
    return false;
  }
}

/** A database driver, loaded when Alliance Auth's database is first opened (memory: most never load mysql2). */
function load<T>(name: 'mysql2' | 'pg'): T {
  return createRequire(import.meta.url)(name) as T;
}
