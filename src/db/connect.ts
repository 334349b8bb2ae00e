import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, type SqliteDatabase, sql } from 'kysely';
import { createRequire } from 'node:module';
import type pg from 'pg';
import { type Config, type DatabaseTarget, settingName } from '../config/load.ts';
import {
  DatabaseUnavailableError,
  describeDatabase,
  explainPostgresConnectError,
  explainSqliteOpenError,
} from './errors.ts';
import { SqliteDialectKeepingCause } from './failed-rollback.ts';
import { LeanReadsDialect, leanReads } from './lean-reads.ts';
import { applySqliteSettings } from './sqlite-settings.ts';
import { describeVersion, judgeServerVersion, OWN_POSTGRES_MINIMUM } from './server-version.ts';
import { namingStatements, statementNames } from './named-statements.ts';
import { type AbandonedConnections, pgClientSocket, poolSockets } from './pool-sockets.ts';
import type { Database } from './schema.ts';
import { whyNotWritable } from './writable.ts';
import { assertNever } from '../util/assert-never.ts';
import { setNewest } from '../util/bounded-map.ts';
import { ensurePrivateDirectory, ensurePrivateFile } from '../util/private-files.ts';

export type DatabaseKind = DatabaseTarget['kind'];

export interface DatabaseHandle {
  db: Kysely<Database>;
  kind: DatabaseKind;
  /** The PostgreSQL pool, for components that need a raw client (pg-boss). Absent on SQLite. */
  pgPool?: pg.Pool;
  /** The SQLite connection, for what Kysely does not do (`aa-oidc backup`, erasing). Absent on PostgreSQL. */
  sqlite?: BetterSqlite3.Database;
  close(): Promise<void>;
}

const INT8_OID = 20;

export interface OpenDatabaseOptions {
  /** Told about a pooled PostgreSQL connection that died while idle (server restart, failover). */
  onIdleConnectionError?: (error: Error) => void;
  /**
   * Told about a transaction's ROLLBACK that failed after its work had (a connection that died
   * mid-transaction, a statement SQLite rolled back itself); the transaction throws the work's error.
   */
  onRollbackFailure?: (error: unknown) => void;
  /**
   * PostgreSQL: how long opening a connection may take, from the TCP connect to the server's first
   * "ready" (so a server that accepts connections but never answers fails too). Default 5 s.
   */
  connectTimeoutMs?: number;
  /** PostgreSQL: how long a query may wait for its answer (a backstop against a silent network). */
  queryTimeoutMs?: number;
  /**
   * PostgreSQL: told about the connections `close()` closed without the server's goodbye. It waits
   * for the work in flight to end (at most the query timeout, or `QUERY_TIMEOUT_MS` without one), then
   * at most the connect timeout for the goodbyes; sooner when the idle connections' goodbyes go
   * unanswered that long (a dead route to the server).
   */
  onConnectionsAbandoned?: (abandoned: AbandonedConnections) => void;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

/**
 * Opens the database named by the configuration. Creates the SQLite file (0600) and its folder (0700)
 * when needed; an
 * SQLite file that cannot be opened throws a `DatabaseUnavailableError` naming the file. PostgreSQL
 * connects lazily: see `connectDatabase`.
 */
export function openDatabase(target: DatabaseTarget, options: OpenDatabaseOptions = {}): DatabaseHandle {
  if (target.kind === 'sqlite') {
    let sqlite: BetterSqlite3.Database | undefined;
    try {
      if (target.path !== ':memory:') {
        // The database holds password hashes and session state: readable by this user only (its
        // -wal and -shm files take the database file's mode).
        ensurePrivateDirectory(path.dirname(target.path));
        ensurePrivateFile(target.path);
      }
      sqlite = new BetterSqlite3(target.path);
      applySqliteSettings(sqlite);
    } catch (error) {
      sqlite?.close();
      throw new DatabaseUnavailableError(
        `cannot open ${describeDatabase(target)}: ${explainSqliteOpenError(error)}`,
        { cause: error },
      );
    }
    const connection = sqlite;
    const db = new Kysely<Database>({
      dialect: new SqliteDialectKeepingCause(
        { database: cachingStatements(connection) },
        () => connection.inTransaction,
        options.onRollbackFailure,
      ),
    });
    return { db, kind: 'sqlite', sqlite, close: () => db.destroy() };
  }
  const { Client, DatabaseError, Pool, Query, types } = loadPg();
  const settings = {
    connectionString: target.url,
    connectionTimeoutMillis: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    ...(options.queryTimeoutMs ? { query_timeout: options.queryTimeoutMs } : {}),
    // A peer that vanished without closing (a dead host, a dropped route) is noticed by the kernel.
    keepAlive: true,
    // Times and counters are 64-bit integers that always fit a double; parse them as numbers
    // for this database's connections only, never globally.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID
          ? (value: string) => Number(value)
          : types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  };
  const pool = new Pool({ ...settings, max: 10 });
  // Closing waits for the work in flight, then for the server's goodbye on each connection at most the
  // connect timeout: over a route that died without a reset it never comes, and each socket left open
  // would hold the process.
  const sockets = poolSockets();
  const track = (client: pg.Client) => sockets.track(pgClientSocket(client));
  pool.on('acquire', () => sockets.lent());
  pool.on('release', () => sockets.returned());
  // An idle connection the server terminates (restart, failover, `pg_terminate_backend`) is dropped
  // from the pool and the next query opens a new one; without a listener the event would crash the
  // process.
  pool.on('error', (error) => options.onIdleConnectionError?.(error));
  // A connection that dies while checked out (mid-query, or between the statements of a
  // transaction) emits 'error' besides failing its query. The query's caller handles the failure and
  // the pool discards the client when it is released; the event only needs a listener, without which
  // it would crash the process.
  pool.on('connect', (client) => {
    track(client);
    client.on('error', () => undefined);
  });
  const names = statementNames();
  // The precompiled reads outside transactions: one more connection, pipelined (src/db/lean-reads.ts).
  const openClient = () => {
    const client = new Client({ ...settings, pipeline: true });
    client.once('connect', () => track(client));
    return client;
  };
  const lean = leanReads({ openClient, Query, lending: sockets }, names);
  const db = new Kysely<Database>({
    dialect: new LeanReadsDialect({ pool: namingStatements(pool, names) }, lean, options.onRollbackFailure),
  });
  lean.attach(db.getExecutor());
  return {
    db,
    kind: 'postgres',
    pgPool: pool,
    close: async () => {
      const abandoned = await sockets.closeWithin(
        async () => void (await Promise.all([lean.close(), db.destroy()])),
        // A statement in flight ends by the query timeout; without one (`aa-oidc migrate`, which
        // closes once its work is done), the close waits no longer than other commands' limit.
        {
          goodbyeMs: settings.connectionTimeoutMillis,
          workMs: options.queryTimeoutMs ?? QUERY_TIMEOUT_MS,
          probe: () =>
            serverAnswers(
              new Client({ ...settings, connectionTimeoutMillis: 0 }),
              DatabaseError,
              settings.connectionTimeoutMillis,
            ),
        },
      );
      if (abandoned) options.onConnectionsAbandoned?.(abandoned);
    },
  };
}

/** Connection failures that mean no server is there (refused, unreachable): nor one to end the work. */
const NO_SERVER = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET']);

/**
 * Whether the server answers `client`'s connection within `deadlineMs`: it connected, or the server
 * refused it in words (too many connections, say: the route carries answers). No answer in time, or
 * a connection refused or unreachable, is false. A failure of this process's own (a name not
 * resolved, no file descriptor left, TLS refused at the client) says nothing of the route: true, so
 * that the work in flight is not cut on it. The client is closed again either way; one that got no
 * answer is cut, so that it does not hold the process.
 */
async function serverAnswers(
  client: pg.Client,
  answer: typeof pg.DatabaseError,
  deadlineMs: number,
): Promise<boolean> {
  client.on('error', () => undefined);
  let unanswered = false;
  const deadline = setTimeout(() => {
    unanswered = true;
    pgClientSocket(client)?.destroy();
  }, deadlineMs);
  try {
    await client.connect();
    client.end().catch(() => undefined);
    return true;
  } catch (error) {
    pgClientSocket(client)?.destroy();
    if (unanswered) return false;
    if (error instanceof answer) return true;
    const code = (error as { code?: unknown }).code;
    return !(typeof code === 'string' && NO_SERVER.has(code));
  } finally {
    clearTimeout(deadline);
  }
}

/** How many prepared statements a SQLite connection keeps (the queries the code issues are far fewer). */
export const STATEMENT_CACHE_SIZE = 500;

/**
 * How Kysely's transactions begin on SQLite: with the write lock (IMMEDIATE), waiting up to the busy
 * timeout for another writer's commit. A transaction begun DEFERRED that reads, then writes after
 * another connection committed (the write worker, write-worker.ts, or another process), fails at
 * once with SQLITE_BUSY_SNAPSHOT: its snapshot is no longer the newest, and no wait can help.
 */
const BEGIN_WRITING = 'begin immediate';

/**
 * The connection as Kysely sees it, preparing each distinct SQL text once: better-sqlite3 would
 * otherwise compile the statement again for every query. Kysely runs one query at a time on the
 * connection, so a cached statement is never in use twice at once. The oldest statement is dropped
 * when the cache is full (a query built with a variable number of parameters makes many texts).
 */
export function cachingStatements(sqlite: BetterSqlite3.Database): SqliteDatabase {
  const statements = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(text: string) {
      let statement = statements.get(text);
      if (!statement) {
        statement = sqlite.prepare(text === 'begin' ? BEGIN_WRITING : text);
        setNewest(statements, text, statement, STATEMENT_CACHE_SIZE);
      }
      return statement;
    },
  };
}

export interface ConnectDatabaseOptions extends OpenDatabaseOptions {
  /** Where the database URL came from, for messages (default `AA_OIDC_DATABASE_URL`). */
  setting?: string;
  /** Where the connect timeout came from, for messages (default `AA_OIDC_DATABASE_CONNECT_TIMEOUT_MS`). */
  timeoutSetting?: string;
  /**
   * The command writes (`serve`, `worker`, `migrate`): a database that answers but takes no writes
   * (see `whyNotWritable`) stops it too, instead of failing each write later.
   */
  forWriting?: boolean;
}

/**
 * PostgreSQL: the longest a query waits for its answer. Nothing aa-oidc asks takes near this long
 * (`aa-oidc migrate` has no limit); it only keeps a request from waiting forever on a connection
 * whose network went silent.
 */
export const QUERY_TIMEOUT_MS = 60_000;

/** The connection options of every command but `migrate`, from the configuration. */
export function connectOptionsFor(config: Config): ConnectDatabaseOptions {
  return {
    connectTimeoutMs: config.databaseConnectTimeoutMs,
    queryTimeoutMs: QUERY_TIMEOUT_MS,
    setting: settingName(config.origins, 'databaseUrl'),
    timeoutSetting: settingName(config.origins, 'databaseConnectTimeoutMs'),
  };
}

/**
 * Opens the database and proves that it answers, so that a wrong URL, a server that is down or one
 * that never answers stops the command at once with a `DatabaseUnavailableError` that names the
 * host and port (or the file) and what to check, instead of failing later or hanging. So does a
 * PostgreSQL older than aa-oidc supports (`OWN_POSTGRES_MINIMUM`), and with `forWriting`, a database
 * that takes no writes.
 */
export async function connectDatabase(
  target: DatabaseTarget,
  options: ConnectDatabaseOptions = {},
): Promise<DatabaseHandle> {
  const handle = openDatabase(target, options);
  const setting = options.setting ?? 'AA_OIDC_DATABASE_URL';
  let readOnly: string | undefined;
  let tooOld: string | undefined;
  try {
    if (target.kind === 'sqlite') await sql`select count(*) from sqlite_master`.execute(handle.db);
    else {
      const { rows } = await sql<{ version: string }>`select version() as version`.execute(handle.db);
      tooOld = whyPostgresTooOld(String(rows[0]?.version ?? ''));
    }
    if (tooOld === undefined && options.forWriting)
      readOnly = await whyNotWritable(handle, { probe: true, setting });
  } catch (error) {
    await handle.close().catch(() => undefined);
    const reason =
      target.kind === 'sqlite'
        ? explainSqliteOpenError(error)
        : explainPostgresConnectError(error, target.url, {
            setting,
            timeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
            timeoutSetting: options.timeoutSetting ?? 'AA_OIDC_DATABASE_CONNECT_TIMEOUT_MS',
          });
    const verb = target.kind === 'sqlite' ? 'open' : 'connect to';
    throw new DatabaseUnavailableError(`cannot ${verb} ${describeDatabase(target)} (${setting}): ${reason}`, {
      cause: error,
    });
  }
  if (tooOld !== undefined) {
    await handle.close().catch(() => undefined);
    throw new DatabaseUnavailableError(`cannot use ${describeDatabase(target)} (${setting}): ${tooOld}`);
  }
  if (readOnly !== undefined) {
    await handle.close().catch(() => undefined);
    throw new DatabaseUnavailableError(`cannot write ${describeDatabase(target)}: ${readOnly}`);
  }
  return handle;
}

/**
 * Why aa-oidc cannot keep its data on a PostgreSQL that answered `select version()` with
 * `versionText`, or undefined when it can (or the answer names no version this release reads: a
 * server that calls itself otherwise is used as it is). Pure.
 */
export function whyPostgresTooOld(versionText: string): string | undefined {
  const judged = judgeServerVersion(versionText, { PostgreSQL: OWN_POSTGRES_MINIMUM });
  switch (judged.kind) {
    case 'supported':
    case 'unrecognised':
      return undefined;
    case 'too_old':
      return `the server is ${describeVersion(judged.version)}, older than aa-oidc supports: it needs PostgreSQL ${judged.minimum.label} or newer (its change log and pg-boss's job queue use PostgreSQL 13's functions); upgrade the server first`;
    default:
      return assertNever(judged);
  }
}

/** True when the database answers a trivial query. */
export async function isReachable(db: Kysely<Database>): Promise<boolean> {
  try {
    await sql`select 1`.execute(db);
    return true;
  } catch {
    return false;
  }
}

/** The PostgreSQL driver, loaded on first use: a process on SQLite never loads it (memory). */
function loadPg(): typeof pg {
  return createRequire(import.meta.url)('pg') as typeof pg;
}
