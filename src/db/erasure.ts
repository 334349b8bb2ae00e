import type BetterSqlite3 from 'better-sqlite3';
import { SECURE_DELETE } from './sqlite-settings.ts';

/**
 * Erasing a secret from a SQLite database so that its bytes leave the file, not only the row: the
 * statements that erase it zero every page they free (`zeroingFreedPages`), and the write-ahead log,
 * which still holds the pages as they were before, is emptied afterwards (`emptyWriteAheadLog`).
 * PostgreSQL keeps the dead row until VACUUM reuses its space, but `pg_dump` copies only live rows.
 */

/**
 * Runs `erase` with `secure_delete = ON` on the connection: whole pages freed by its statements (a
 * large value's overflow pages) are zeroed too, not only the freed space within pages as the
 * connection's `FAST` does (sqlite-settings.ts). To be called inside the erasing transaction, which
 * holds the connection (Kysely runs one transaction or statement on it at a time), so that no
 * other erasure turns it back to `FAST` meanwhile. Without a SQLite connection (PostgreSQL), `erase`
 * alone.
 */
export async function zeroingFreedPages<T>(
  sqlite: BetterSqlite3.Database | undefined,
  erase: () => Promise<T>,
): Promise<T> {
  if (!sqlite) return erase();
  sqlite.pragma('secure_delete = ON');
  try {
    return await erase();
  } finally {
    if (sqlite.open) sqlite.pragma(`secure_delete = ${SECURE_DELETE}`);
  }
}

/**
 * How long the log's emptying waits for another connection's write or read to end. It blocks its
 * thread (a server's, when its key store removes an expired key), so it waits less than a write does
 * (sqlite-settings.ts): the writes of the others last about a millisecond, and a long read (a backup
 * being made) is better waited out by the next emptying than by the server.
 */
export const EMPTY_LOG_WAIT_MS = 1000;

/** Whether the write-ahead log was emptied, and if not why (for a debug line: nothing is wrong). */
export type LogEmptying = { emptied: true } | { emptied: false; reason: string };

/**
 * Copies every page of the write-ahead log into the database file and truncates the log to nothing
 * (`wal_checkpoint(TRUNCATE)`), so that the pages as they were before an erasure leave the `-wal`
 * file too. Best effort: another connection (the write worker's, another process's) reading or
 * writing for longer than `EMPTY_LOG_WAIT_MS` keeps the log as it is, and so does a transaction
 * another caller opened on this connection meanwhile; the log's old pages are then
 * overwritten as it fills again, and it is emptied at the latest when the last aa-oidc process closes
 * the database. To be called after the erasing transaction committed.
 */
export function emptyWriteAheadLog(sqlite: BetterSqlite3.Database | undefined): LogEmptying {
  if (!sqlite) return { emptied: true };
  if (sqlite.inTransaction) return { emptied: false, reason: 'a transaction is open on the connection' };
  const wait = sqlite.pragma('busy_timeout', { simple: true }) as number;
  // Synchronous from here to the reset: no other statement of this connection runs with the shorter wait.
  sqlite.pragma(`busy_timeout = ${EMPTY_LOG_WAIT_MS}`);
  try {
    const [result] = sqlite.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>;
    return result?.busy === 0
      ? { emptied: true }
      : { emptied: false, reason: 'another connection was reading or writing' };
  } catch (error) {
    // The erasure is committed whatever happens here: its caller must not report it as failed.
    const code = (error as { code?: unknown }).code;
    return {
      emptied: false,
      reason:
        code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED'
          ? 'another connection was reading or writing'
          : `${(error as Error).message} (${String(code)})`,
    };
  } finally {
    sqlite.pragma(`busy_timeout = ${wait}`);
  }
}
