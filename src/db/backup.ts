import { existsSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { DatabaseHandle } from './connect.ts';
import { postgresAddress } from './errors.ts';
import type { Database } from './schema.ts';

export class BackupError extends Error {
  override name = 'BackupError';
}

/** What `aa-oidc backup` reports about the copy it made. */
export interface BackupReport {
  file: string;
  bytes: number;
  /** Rows in the tables an operator checks after a restore. */
  counts: BackupCounts;
}

/** The rows an operator checks after a restore: applications, users, signing keys, live tokens. */
export interface BackupCounts {
  applications: number;
  users: number;
  signingKeys: number;
  liveTokens: number;
}

/**
 * An online, consistent copy of the SQLite database through SQLite's backup API, while aa-oidc keeps
 * serving: the pages are copied in one step, inside one read transaction, so the copy is the database
 * as of one instant (in WAL mode writers go on meanwhile). The copy is written beside `file`, checked
 * (`integrity_check`), then renamed into place: `file` never holds a partial copy. An existing `file`
 * is refused, never overwritten.
 */
export async function backupSqlite(
  database: DatabaseHandle,
  file: string,
  /** Counts the copy's rows; each table's owner counts its own (storage knows no domain). */
  count: (copy: Kysely<Database>) => Promise<BackupCounts>,
): Promise<BackupReport> {
  if (!database.sqlite) throw new BackupError('backup --to works on SQLite databases only');
  const target = path.resolve(file);
  if (existsSync(target)) throw new BackupError(`${target} exists already; name a new file`);
  if (!existsSync(path.dirname(target)))
    throw new BackupError(`the folder ${path.dirname(target)} does not exist`);
  const partial = `${target}.partial-${process.pid}`;
  try {
    // Private as the database is (password hashes, emails, two-factor enrolments): the file exists,
    // mode 0600, before SQLite writes into it.
    writeFileSync(partial, '', { mode: 0o600 });
    await database.sqlite.backup(partial, {
      progress: ({ totalPages }) => Math.max(totalPages, 1) * 2,
    });
    const copy = new BetterSqlite3(partial, { fileMustExist: true });
    // One self-contained file: no -wal or -shm beside it (the server sets WAL again when it opens it).
    copy.pragma('journal_mode = DELETE');
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: copy }) });
    let counts: BackupCounts;
    try {
      const integrity = copy.pragma('integrity_check', { simple: true });
      if (integrity !== 'ok')
        throw new BackupError(`the copy failed its integrity check: ${String(integrity)}`);
      counts = await count(db);
    } finally {
      await db.destroy();
    }
    renameSync(partial, target);
    return { file: target, bytes: statSync(target).size, counts };
  } finally {
    for (const leftover of [partial, `${partial}-wal`, `${partial}-shm`]) rmSync(leftover, { force: true });
  }
}

/** The pg_dump command that backs up a PostgreSQL database (the password stays out of it). */
export function pgDumpCommand(url: string): string {
  const { host, port, database, user } = postgresAddress(url);
  return `pg_dump --format=custom --host=${host} --port=${port}${user ? ` --username=${user}` : ''} --file=aa-oidc-$(date +%F).dump ${database}`;
}
