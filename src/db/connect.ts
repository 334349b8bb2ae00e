import { mkdirSync } from 'node:fs';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, type SqliteDatabase, sql } from 'kysely';
import pg from 'pg';
import type { DatabaseTarget } from '../config/load.ts';
import type { Database } from './schema.ts';

export type DatabaseKind = DatabaseTarget['kind'];

export interface DatabaseHandle {
  db: Kysely<Database>;
  kind: DatabaseKind;
  /** The PostgreSQL pool, for components that need a raw client (pg-boss). Absent on SQLite. */
  pgPool?: pg.Pool;
  close(): Promise<void>;
}

const INT8_OID = 20;

export interface OpenDatabaseOptions {
  /** Told about a pooled PostgreSQL connection that died while idle (server restart, failover). */
  onIdleConnectionError?: (error: Error) => void;
}

/** Opens the database named by the configuration. Creates the SQLite file's folder when needed. */
export function openDatabase(target: DatabaseTarget, options: OpenDatabaseOptions = {}): DatabaseHandle {
  if (target.kind === 'sqlite') {
    if (target.path !== ':memory:') mkdirSync(path.dirname(target.path), { recursive: true });
    const sqlite = new BetterSqlite3(target.path);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    sqlite.pragma('synchronous = NORMAL');
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: cachingStatements(sqlite) }) });
    return { db, kind: 'sqlite', close: () => db.destroy() };
  }
  const pool = new pg.Pool({
    connectionString: target.url,
    max: 10,
    // Times and counters are 64-bit integers that always fit a double; parse them as numbers
    // for this pool only, never globally.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID
          ? (value: string) => Number(value)
          : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle connection the server terminates (restart, failover, `pg_terminate_backend`) is dropped
  // from the pool and the next query opens a new one; without a listener the event would crash the
  // process.
  pool.on('error', (error) => options.onIdleConnectionError?.(error));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return { db, kind: 'postgres', pgPool: pool, close: () => db.destroy() };
}

/** How many prepared statements a SQLite connection keeps (the queries the code issues are far fewer). */
const STATEMENT_CACHE_SIZE = 500;

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
        statement = sqlite.prepare(text);
        if (statements.size >= STATEMENT_CACHE_SIZE) statements.delete(statements.keys().next().value!);
        statements.set(text, statement);
      }
      return statement;
    },
  };
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
