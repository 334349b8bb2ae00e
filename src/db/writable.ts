import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { sql } from 'kysely';
import type { DatabaseHandle } from './connect.ts';
import { DatabaseUnavailableError, explainSqliteOpenError } from './errors.ts';

/**
 * Why the database takes no writes now, or undefined when it does; nothing is written to find out.
 * A database that answers reads but refuses every write (an SQLite file or volume left read-only by a
 * restore or a mount, a file system the kernel remounted read-only after an error, a PostgreSQL
 * standby) would let a server start and report ready while every sign-in and token answers 503.
 *
 * SQLite: the file's write permission as this process sees it now (access(2): the mount, the file's
 * mode and owner, the immutable flag). Permissions are checked when a file is opened, so a connection
 * opened before a change may still write; but the write worker opens its own connection (again after
 * a crash), and the next start would open read-only: the server is about to fail, and says so.
 * With `probe`, also whether the connection itself may write: SQLite opens a file it may not write
 * read-only without a word. The probe takes the write lock and gives it back (BEGIN IMMEDIATE,
 * ROLLBACK), waiting up to the busy timeout for another writer, so it is for start-up only.
 *
 * PostgreSQL: whether the server refuses writes (`transaction_read_only`: a hot standby, or
 * `default_transaction_read_only` set for the database or the user).
 */
export async function whyNotWritable(
  handle: DatabaseHandle,
  options: { probe?: boolean; setting?: string } = {},
): Promise<string | undefined> {
  if (handle.kind === 'postgres') {
    const { rows } = await sql<{ transaction_read_only: string }>`show transaction_read_only`.execute(
      handle.db,
    );
    return rows[0]?.transaction_read_only === 'on'
      ? 'the server takes no writes (a hot standby, or default_transaction_read_only is on for this ' +
          `database or user); point ${options.setting ?? 'AA_OIDC_DATABASE_URL'} at the primary, or turn the setting off`
      : undefined;
  }
  const sqlite = handle.sqlite;
  if (!sqlite || sqlite.memory) return undefined;
  // The -wal and -shm files beside it when they exist (left by another user's process, such as a
  // command run as root, they keep this one from writing too).
  for (const suffix of ['', '-wal', '-shm']) {
    try {
      await access(`${sqlite.name}${suffix}`, constants.W_OK);
    } catch (error) {
      const reason = fileNotWritable((error as NodeJS.ErrnoException).code);
      if (reason !== undefined) return suffix === '' ? reason : `its ${suffix} file: ${reason}`;
    }
  }
  if (!options.probe) return undefined;
  try {
    await handle.db.connection().execute(async (connection) => {
      await sql`begin immediate`.execute(connection);
      await sql`rollback`.execute(connection);
    });
  } catch (error) {
    if (isSqliteReadOnly(error)) return explainSqliteOpenError(error);
    throw error;
  }
  return undefined;
}

/** What access(2)'s refusal to write the SQLite file means, or undefined for another failure. */
export function fileNotWritable(code: string | undefined): string | undefined {
  switch (code) {
    case 'EROFS':
      return 'its file system is mounted read-only; mount it read-write (a container volume without :ro)';
    case 'EACCES':
      return (
        `this user (${currentUser()}) may not write it; give this user write access to the file and to ` +
        'its folder (SQLite also writes -wal and -shm files beside it)'
      );
    case 'EPERM':
      return 'the file is marked immutable (lsattr shows i); clear the flag with chattr -i';
  }
  return undefined;
}

/** True when `error` is SQLite's refusal to write a database opened read-only (SQLITE_READONLY…). */
export function isSqliteReadOnly(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_READONLY');
}

function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}

/** True when `error` is a write the database refused for taking no writes (SQLite or PostgreSQL). */
export function isWriteRefused(error: unknown): boolean {
  return isSqliteReadOnly(error) || (error as { code?: unknown } | null)?.code === READ_ONLY_SQL_TRANSACTION;
}

/** PostgreSQL's SQLSTATE for a write in a read-only transaction (a standby, or read-only by default). */
const READ_ONLY_SQL_TRANSACTION = '25006';

/**
 * A write the database refused for taking no writes (`isWriteRefused`), as one line naming the
 * database (`describeDatabase`) and the cause; undefined for any other failure.
 */
export async function writeRefusal(
  handle: DatabaseHandle,
  database: string,
  error: unknown,
): Promise<DatabaseUnavailableError | undefined> {
  if (!isWriteRefused(error)) return undefined;
  const reason =
    (await whyNotWritable(handle).catch(() => undefined)) ??
    (handle.kind === 'sqlite' ? explainSqliteOpenError(error) : String((error as Error).message));
  return new DatabaseUnavailableError(`cannot write ${database}: ${reason}`, { cause: error });
}
