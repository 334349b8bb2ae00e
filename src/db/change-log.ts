import { CompiledQuery, type Kysely, type RawBuilder, sql, type Transaction } from 'kysely';
import { epochValue } from './change-epoch.ts';
import { isPostgres } from './dialect.ts';
import { leanReadsFor } from './lean-reads.ts';
import type { Database } from './schema.ts';

/**
 * The change log (migrations 0071, 0072): what the change epoch (change-epoch.ts) is for
 * applications, the log is for the stored sessions, grants and access tokens a process keeps in memory
 * (src/oidc/kept-rows.ts), one row per changed or deleted row, and for the built-in directory's users'
 * profiles (src/oidc/kept-profiles.ts: `User <id>`, `State <id>`, `Group <id>`), written by database
 * triggers, so that a change made by any writer — another instance, a CLI command, SQL typed by hand
 * — is named.
 *
 * A reader keeps a position in the log and reads, in one statement, the epoch and every key logged
 * past its position. A position is also what a statement that loads a row to keep saw of the log
 * (`logPositionColumn`): a row is kept only when that position covers the reader's (`covers`), since
 * a row read before a change the reader has already processed would otherwise stay.
 *
 * - SQLite: a position is the last `seq` handed out (one writer at a time: `seq` grows in commit order).
 * - PostgreSQL: a position is a snapshot (`pg_current_snapshot()`, as text). Identity values are handed
 *   out before commit, so a smaller one may commit after a larger one was read; a read asks for the
 *   rows whose transaction the last read's snapshot did not see, which no ordering of commits escapes.
 */

type Db = Kysely<Database> | Transaction<Database>;

/** A place in the log: SQLite's last `seq`, PostgreSQL's snapshot. */
export type LogPosition = number | string;

/**
 * The log position as a column of a statement that loads rows to keep (the statement is compiled per
 * dialect: see precompiled.ts).
 */
export function logPositionColumn(db: Db): RawBuilder<number | string | null> {
  return isPostgres(db)
    ? sql<string>`pg_current_snapshot()::text`
    : sql<number>`coalesce((select seq from sqlite_sequence where name = 'change_log'), 0)`;
}

/** A position read through `logPositionColumn`, as `LogPosition` (undefined when there was none). */
export function logPosition(value: unknown): LogPosition | undefined {
  if (typeof value === 'string' && value.includes(':')) return value;
  return epochValue(value);
}

interface Snapshot {
  xmin: number;
  xmax: number;
  inProgress: Set<number>;
}

function snapshot(text: string): Snapshot {
  const [xmin, xmax, xip] = text.split(':');
  return {
    xmin: Number(xmin),
    xmax: Number(xmax),
    inProgress: new Set(xip ? xip.split(',').map(Number) : []),
  };
}

/**
 * True when a row loaded at `loaded` reflects every change the reader at `cursor` has processed (and
 * so every later change is still ahead of the reader). No cursor yet: the first read drops everything.
 */
export function covers(loaded: LogPosition | undefined, cursor: LogPosition | undefined): boolean {
  if (cursor === undefined) return true;
  if (loaded === undefined) return false;
  if (typeof loaded === 'number' || typeof cursor === 'number') {
    return typeof loaded === 'number' && typeof cursor === 'number' && loaded >= cursor;
  }
  // Every transaction the cursor's snapshot saw committed, the loading snapshot saw too: it is at
  // least as new, and each transaction it saw in progress was in progress (or unknown) to the cursor.
  const at = snapshot(loaded);
  const reader = snapshot(cursor);
  if (at.xmax < reader.xmax) return false;
  for (const xid of at.inProgress) {
    if (xid < reader.xmax && !reader.inProgress.has(xid)) return false;
  }
  return true;
}

/** One read of the epoch and the log past a position. */
export interface LogRead {
  /** The change epoch (applications). */
  epoch: number;
  /** The keys logged past the position read from, in no particular order (repeats possible). */
  keys: string[];
  /** The position this read reached. */
  position: LogPosition;
  /** The log was pruned past the position read from: keys may be missing, drop everything. */
  lost: boolean;
}

interface LogReadRow {
  epoch: unknown;
  pruned: unknown;
  last: unknown;
  key: string | null;
}

/**
 * The log read's SQL, fixed: each turn's read is the same statement with one parameter, the position
 * read from (null on a first read), so it is compiled never and, on PostgreSQL, prepared once and
 * run on the hot reads' own connection (lean-reads.ts) like the lookups it serves.
 */
const POSTGRES_LOG_READ = `select e.value as epoch, p.value as pruned, pg_current_snapshot()::text as last, l.key as key
  from "change_epoch" e join "change_epoch" p on p.id = 2
  left join change_log l on l.xid >= pg_snapshot_xmin(cast($1 as pg_snapshot))
    and not pg_visible_in_snapshot(l.xid, cast($1 as pg_snapshot))
  where e.id = 1`;
const SQLITE_LOG_READ = `select e.value as epoch, p.value as pruned,
    coalesce((select seq from sqlite_sequence where name = 'change_log'), 0) as last, l.key as key
  from "change_epoch" e join "change_epoch" p on p.id = 2
  left join change_log l on l.seq > ?
  where e.id = 1`;

/** Reads the epoch and the keys logged past `from` (none on a first read) in one statement. */
export async function readLog(db: Db, from: LogPosition | undefined): Promise<LogRead> {
  const parameters = [from ?? null];
  let rows: LogReadRow[];
  if (isPostgres(db)) {
    const lean = leanReadsFor(db.getExecutor());
    ({ rows } = lean
      ? await lean.read<LogReadRow>(POSTGRES_LOG_READ, parameters)
      : await db.executeQuery<LogReadRow>(CompiledQuery.raw(POSTGRES_LOG_READ, parameters)));
  } else {
    ({ rows } = await db.executeQuery<LogReadRow>(CompiledQuery.raw(SQLITE_LOG_READ, parameters)));
  }
  const first = rows[0];
  const position = logPosition(first?.last) ?? 0;
  const pruned = Number(first?.pruned ?? 0);
  let lost = false;
  if (from !== undefined) {
    lost = typeof from === 'number' ? pruned > from : pruned > snapshot(from).xmin;
  }
  return {
    epoch: Number(first?.epoch ?? 0),
    keys: rows.flatMap((row) => (row.key === null ? [] : [row.key])),
    position,
    lost,
  };
}
