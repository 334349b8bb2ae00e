import {
  closeSync,
  existsSync,
  fsyncSync,
  linkSync,
  lstatSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
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
 * An online, consistent copy of the SQLite database while aa-oidc keeps serving, made by `VACUUM INTO`
 * inside one read transaction, so the copy is the database as of one instant (in WAL mode writers go
 * on meanwhile). `VACUUM INTO` writes the live rows into new pages, where SQLite's backup API would
 * copy the pages as they are: with the free pages and the freed space within pages, which may still
 * hold erased data (an erased signing key's private part, written before aa-oidc zeroed what it
 * deletes, see sqlite-settings.ts). So a copy holds nothing the database no longer holds, and is
 * compact. The copy is written beside `file`, checked (`integrity_check`), synced to the disk, then
 * linked into place: `file` never holds a partial copy. An existing `file`
 * (a dangling symbolic link too) is refused, never overwritten, also when it appears while the copy is
 * made (another backup to the same name); nothing is written through a symbolic link planted at the
 * partial copy's name.
 */
export async function backupSqlite(
  database: DatabaseHandle,
  /** Where the copy goes; a relative name is resolved against the process's working folder. */
  file: string,
  /** Counts the copy's rows; each table's owner counts its own (storage knows no domain). */
  count: (copy: Kysely<Database>) => Promise<BackupCounts>,
): Promise<BackupReport> {
  if (!database.sqlite) throw new BackupError('backup --to works on SQLite databases only');
  const target = path.resolve(file);
  const taken = () => new BackupError(`${target} exists already; name a new file`);
  const existing = lookAt(target);
  if (existing?.isDirectory()) throw new BackupError(`${target} is a folder; name a new file in it`);
  if (existing) throw taken();
  if (!existsSync(path.dirname(target)))
    throw new BackupError(`the folder ${path.dirname(target)} does not exist`);
  const partial = `${target}.partial-${process.pid}`;
  let created = false;
  try {
    // Private as the database is (password hashes, emails, two-factor enrolments): the file exists,
    // mode 0600, before SQLite writes into it. Created new ('wx': never an existing file, never
    // through a symbolic link someone placed at this name).
    try {
      writeFileSync(partial, '', { mode: 0o600, flag: 'wx' });
      created = true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new BackupError(
        code === 'EEXIST'
          ? `${partial} exists already (left by another backup, or placed there); remove it and try again`
          : `cannot create ${partial} (${code}); name a file in a folder this user may write`,
      );
    }
    let copy: BetterSqlite3.Database;
    try {
      // Into the empty file made above (VACUUM INTO takes an empty file, never one with content).
      database.sqlite.prepare('vacuum into ?').run(partial);
      copy = new BetterSqlite3(partial, { fileMustExist: true });
      // One self-contained file: no -wal or -shm beside it (the server sets WAL again when it opens it).
      copy.pragma('journal_mode = DELETE');
    } catch (error) {
      throw copyFailure(error, target) ?? error;
    }
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
    syncFile(partial);
    placeWithoutOverwriting(partial, target, taken);
    return { file: target, bytes: statSync(target).size, counts };
  } finally {
    if (created)
      for (const leftover of [partial, `${partial}-wal`, `${partial}-shm`]) rmSync(leftover, { force: true });
  }
}

/** Writes the copy's data through to the disk before it takes its name. */
function syncFile(file: string): void {
  const descriptor = openSync(file, 'r');
  try {
    fsyncSync(descriptor);
  } finally {
    closeSync(descriptor);
  }
}

/**
 * What is at `target` (undefined: nothing), or a `BackupError` naming the path when it cannot be
 * looked at (a file where a folder of the path should be, a folder this user may not enter).
 */
function lookAt(target: string) {
  try {
    return lstatSync(target, { throwIfNoEntry: false });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new BackupError(
      code === 'ENOTDIR'
        ? `cannot write ${target}: part of its folder ${path.dirname(target)} is a file, not a folder`
        : `cannot write ${target} (${code}); name a file in a folder this user may write`,
    );
  }
}

/**
 * A failed write of the copy (the disk full, a file size limit or quota, an I/O error) as a
 * `BackupError` naming the file: SQLite's own message ("database or disk is full") reads as if the
 * database were in trouble. The partial copy is removed by the caller.
 */
function copyFailure(error: unknown, target: string): BackupError | undefined {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return undefined;
  const reason =
    code === 'SQLITE_FULL'
      ? `the disk of ${path.dirname(target)} is full`
      : `${(error as Error).message} (${code}; a file size limit or quota, or a failing disk)`;
  return new BackupError(`cannot make the copy ${target}: ${reason}; nothing was kept`);
}

/**
 * Gives the finished copy its name unless that name exists by now: a hard link fails on an existing
 * name where a rename would replace it. On a file system without hard links (some network shares),
 * a rename after one more look.
 */
function placeWithoutOverwriting(partial: string, target: string, taken: () => BackupError): void {
  try {
    linkSync(partial, target);
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw taken();
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw error;
  }
  if (lstatSync(target, { throwIfNoEntry: false })) throw taken();
  renameSync(partial, target);
}

/** The pg_dump command that backs up a PostgreSQL database (the password stays out of it). */
export function pgDumpCommand(url: string): string {
  const { host, port, database, user } = postgresAddress(url);
  return `pg_dump --format=custom --host=${host} --port=${port}${user ? ` --username=${user}` : ''} --file=aa-oidc-$(date +%F).dump ${database}`;
}
