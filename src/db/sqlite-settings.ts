import type BetterSqlite3 from 'better-sqlite3';

/**
 * The settings of every SQLite connection aa-oidc opens: the main one (connect.ts) and the write
 * worker's (write-worker-thread.ts, which is given them as data), which must agree (WAL, the busy
 * wait, the checkpoint size).
 */

/**
 * SQLite: how many pages (4 KiB) the write-ahead log collects before a commit checkpoints it (copies
 * the pages back into the database file and syncs both files, on the thread that committed). A
 * checkpoint copies each page once however often the log holds it, and every token row dirties a
 * random page of the primary key's index that later rows dirty again: four times SQLite's default of
 * 1,000 copies fewer pages per row written (5-10 % less CPU per token row in a micro-benchmark with
 * the real schema) and syncs a quarter as often. The log stays bounded (about 16 MiB).
 *
 * `synchronous = NORMAL` (below): a commit is in the log when it returns, so it survives a crash of
 * the process, but the log is synced only at checkpoints, so a power loss or an OS crash may take the
 * last commits back (whole transactions, never part of one; the README says so).
 */
export const WAL_CHECKPOINT_PAGES = 4000;

/**
 * How long a connection waits for another writer's lock before it fails with SQLITE_BUSY (answered
 * 503). The write worker's transactions hold the lock for about a millisecond; the main connection's
 * own writes (units of work, admin, the purges) are as short.
 */
export const BUSY_TIMEOUT_MS = 5000;

export const SQLITE_PRAGMAS: readonly string[] = [
  'journal_mode = WAL',
  'foreign_keys = ON',
  `busy_timeout = ${BUSY_TIMEOUT_MS}`,
  'synchronous = NORMAL',
  `wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`,
];

export function applySqliteSettings(sqlite: BetterSqlite3.Database): void {
  for (const pragma of SQLITE_PRAGMAS) sqlite.pragma(pragma);
}
