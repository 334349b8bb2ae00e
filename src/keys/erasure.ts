import type BetterSqlite3 from 'better-sqlite3';
import type { Kysely, Transaction } from 'kysely';
import { emptyWriteAheadLog, zeroingFreedPages } from '../db/erasure.ts';
import type { Database } from '../db/schema.ts';
import type { Logger } from '../logging/logger.ts';

/** The database a key write needs: on SQLite its connection too, to erase private parts from the file. */
export interface KeyDatabase {
  db: Kysely<Database>;
  /** The connection behind `db` on SQLite; absent on PostgreSQL. */
  sqlite?: BetterSqlite3.Database;
}

/**
 * Runs a signing-key write that may erase private parts (a withdrawal, the removal of expired keys)
 * in one transaction. On SQLite the pages it frees are zeroed, and when `erased` says from its result
 * that it erased one, the write-ahead log's copies of the pages as they were are emptied after the
 * commit (db/erasure.ts): neither the database's files nor a backup taken afterwards hold the erased
 * private part. A log that stays (another process reading) is said at debug level: the erasure
 * itself is done.
 */
export async function erasingKeyWrite<T>(
  database: KeyDatabase,
  write: (trx: Transaction<Database>) => Promise<T>,
  erased: (result: T) => boolean,
  log?: Logger,
): Promise<T> {
  const result = await database.db
    .transaction()
    .execute((trx) => zeroingFreedPages(database.sqlite, () => write(trx)));
  if (erased(result)) {
    const emptying = emptyWriteAheadLog(database.sqlite);
    if (!emptying.emptied)
      log?.debug(
        { reason: emptying.reason },
        'the write-ahead log keeps the erased private part until a later checkpoint empties it',
      );
  }
  return result;
}
