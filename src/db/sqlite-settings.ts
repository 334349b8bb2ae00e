import type BetterSqlite3 from 'better-sqlite3';

/**
 * The settings of every SQLite connection aa-oidc opens: the main one (connect.ts) and the write
 * worker's (write-worker-thread.ts, which is given them as data), which must agree (WAL, the busy
 * wait, the checkpoint size, zeroing what is deleted).
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

/**
 * What SQLite does with the bytes of a deleted row or value: `FAST` overwrites the freed space of a
 * page with zeros as it frees it, on a page the statement writes anyway, so it costs no I/O; `ON`
 * zeroes, in addition, every whole page that goes to the free list, which the token purges would pay
 * for in writes on every page they empty. Without either (SQLite's default), an erased value stays
 * readable in the file and in every copy of it until its space is reused, as an erased signing key's
 * private part (encrypted) did in backups. A value too large for its page (a key of more than about
 * 3,000 bits) goes partly to overflow pages, which `FAST` leaves unzeroed on the free list: the
 * signing keys' writes turn `ON` for their own transactions (erasure.ts).
 */
export const SECURE_DELETE = 'FAST';

const TO_WAL = 'journal_mode = WAL';

export const SQLITE_PRAGMAS: readonly string[] = [
  TO_WAL,
  'foreign_keys = ON',
  `busy_timeout = ${BUSY_TIMEOUT_MS}`,
  'synchronous = NORMAL',
  `wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`,
  `secure_delete = ${SECURE_DELETE}`,
];

export function applySqliteSettings(sqlite: BetterSqlite3.Database): void {
  for (const pragma of SQLITE_PRAGMAS) {
    if (pragma === TO_WAL) switchToWal(sqlite);
    else sqlite.pragma(pragma);
  }
}

/** How long the WAL switch pauses before it tries again (below). */
const WAL_SWITCH_RETRY_MS = 10;

/**
 * `journal_mode = WAL`, tried again for up to the busy timeout while another connection holds the
 * write lock. On a file not yet in WAL mode (a new one) the switch reads the file's header, then
 * writes it: SQLite does not call the busy handler for a read that must become a write (waiting
 * could deadlock two such connections), so while another process writes the file (its own switch,
 * `aa-oidc migrate` creating the tables) the switch fails at once with SQLITE_BUSY instead of
 * waiting. Several processes started at once on a new file (migrate, serve and worker) met that.
 * A file already in WAL mode is only read, and waits as any read does.
 */
function switchToWal(sqlite: BetterSqlite3.Database): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      sqlite.pragma(TO_WAL);
      return;
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw error;
    }
    // Opening is synchronous (better-sqlite3): the pause blocks this thread, as SQLite's own wait does.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, WAL_SWITCH_RETRY_MS);
  }
}
