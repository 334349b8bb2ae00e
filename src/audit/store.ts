import { CompiledQuery, type Kysely, type Selectable, sql } from 'kysely';
import { deleteOldest, type PurgeBounds, type PurgeRound, purgeRound } from '../db/bounded-purge.ts';
import { isPostgres } from '../db/dialect.ts';
import { precompiled } from '../db/precompiled.ts';
import type { Database } from '../db/schema.ts';
import { plannedStatement, type WriteBatch } from '../db/write-batch.ts';
import { scrubValue } from '../logging/redact.ts';
import type { AuditReceiver } from './bus.ts';
import type { AuditEventKind, AuditRecord } from './events.ts';
import { closedEvent } from './receivers.ts';
import { wellFormed } from '../util/well-formed.ts';
import { within } from '../util/within.ts';

/**
 * The audit log in the database (`audit_event`): a receiver of the audit bus beside the log and the
 * JSON-lines file, and the queries of the admin UI and `aa-oidc audit list`. Events are written in
 * batches (one commit for what arrived within `batchDelayMs`, on SQLite one INSERT per 64 events
 * in one transaction; on PostgreSQL the same prepared statement whatever the batch's size), off every
 * request's path like every receiver, and flushed on close (waiting at most `closeWithinMs` for the
 * writes, and telling `onUnwritten` of the events whose write did not succeed). Rows older than the
 * retention are deleted by `purge()`.
 */
export interface AuditFilter {
  kinds?: readonly AuditEventKind[];
  /** Epoch milliseconds, inclusive. */
  since?: number;
  /** Epoch milliseconds, exclusive. */
  until?: number;
  userId?: number;
  clientId?: string;
  /** Only events older than this id (the next page of a newest-first listing). */
  beforeId?: number;
  /** Default 50, at most 1000. */
  limit?: number;
}

export interface StoredAuditEvent {
  id: number;
  /** Epoch milliseconds. */
  recordedAt: number;
  kind: string;
  userId: number | null;
  clientId: string | null;
  requestId: string | null;
  /**
   * The record as the receivers got it (secrets were never in it; those whose types carry free text
   * are scrubbed again on the way in, as the log does).
   */
  record: Readonly<Record<string, unknown>>;
}

export interface AuditStore {
  receiver: AuditReceiver;
  /** Newest first. */
  list(filter?: AuditFilter): Promise<StoredAuditEvent[]>;
  /**
   * The events of `kinds` among a user's `within` newest events (of any kind, by time), newest first:
   * the bounded read of a page that looks for a rare event among frequent ones (a user's sign-ins
   * among the refreshes that follow them). `list` orders by id, which no index of a user's events
   * does: it sorts all of the user's events at every call, however few it returns. This walks the
   * user's index (`user_id`, `recorded_at`) newest first and stops after `within` rows.
   */
  listUserWindow(
    userId: number,
    options: { kinds: readonly AuditEventKind[]; within: number },
  ): Promise<UserWindow>;
  /** Counts of the events matching `filter`, per kind (dashboard). */
  countByKind(filter?: Omit<AuditFilter, 'beforeId' | 'limit'>): Promise<Map<string, number>>;
  /**
   * Deletes events older than the retention, oldest first, at most `AUDIT_PURGE` a call (a statement
   * per thousand, each its own transaction), none after `signal` is aborted; `more` when some may remain.
   */
  purge(now?: number, signal?: AbortSignal): Promise<PurgeRound>;
}

export interface UserWindow {
  /** Newest first. */
  events: StoredAuditEvent[];
  /**
   * When the user has events older than the window: the time of the newest of them (epoch
   * milliseconds), from which the audit log lists what the window did not read.
   */
  olderAt?: number;
}

/**
 * One round of the retention purge: ten statements of a thousand events at most (a few milliseconds
 * each on SQLite, the table's four indexes included), so that no statement holds the writer or nears a
 * statement timeout, however far behind the purge is. A round that leaves events behind is followed by
 * another after `AUDIT_PURGE_CATCH_UP_MS` (src/app.ts) rather than after `oidc.purgeIntervalSeconds`.
 */
export const AUDIT_PURGE: Readonly<PurgeBounds> = { rows: 1000, statements: 10 };
/** The pause before the next round of the audit purge while events past the retention remain. */
export const AUDIT_PURGE_CATCH_UP_MS = 1000;

export const DEFAULT_AUDIT_PAGE = 50;
export const MAX_AUDIT_PAGE = 1000;
const BATCH_SIZE = 1000;
/**
 * How long the first event of a batch waits for others, at most. Each commit costs about the same
 * whatever its size (on SQLite about half a millisecond of the process's own CPU, mostly writing the
 * table's and the four indexes' pages to the WAL): at 2,400 introspections a second, a batch every
 * 20 ms cost 18 µs of CPU per event, one every 100 ms 8 µs. Events are never on a request's path, so
 * a batch's wait is only how late they reach the table (and how many a crash would lose before they
 * are written). The bus times the batch from its first event (`audit.receiverTimeoutMs`): the wait
 * stays a quarter of that timeout at most (`batchDelayFor`).
 */
export const MAX_BATCH_DELAY_MS = 100;

/** The batch delay under a receiver timeout of `receiverTimeoutMs`: a quarter of it, at most 100 ms. */
export function batchDelayFor(receiverTimeoutMs: number): number {
  return Math.min(MAX_BATCH_DELAY_MS, Math.floor(receiverTimeoutMs / 4));
}

/** The user and the application an event is about, as filterable columns. */
/** The events a close left unwritten: how many, and how many of each kind (no more of them). */
export interface UnwrittenAuditEvents {
  events: number;
  kinds: Record<string, number>;
}

export function subjectsOf(record: Readonly<AuditRecord>): {
  userId: number | null;
  clientId: string | null;
} {
  if (record.kind === 'admin_change') {
    return {
      userId: record.entity === 'user' && typeof record.entity_id === 'number' ? record.entity_id : null,
      clientId: record.entity === 'application' ? String(record.entity_id) : null,
    };
  }
  const userId = 'user_id' in record && typeof record.user_id === 'number' ? record.user_id : null;
  const clientId = 'client_id' in record && typeof record.client_id === 'string' ? record.client_id : null;
  return { userId, clientId };
}

const AUDIT_COLUMNS = '"recorded_at", "kind", "user_id", "client_id", "request_id", "payload"';

/**
 * SQLite: the most events one INSERT names. A larger batch is written by several, in one transaction:
 * the texts (`sqliteInsertOf`), and the statements the connection prepares from them and keeps
 * (src/db/connect.ts), are at most this many, whatever the batch sizes (up to `BATCH_SIZE`) the load
 * makes.
 */
const SQLITE_EVENTS_PER_INSERT = 64;

/**
 * SQLite: the INSERT of `size` events (at most `SQLITE_EVENTS_PER_INSERT`), its text kept per size
 * (Kysely's insert builder parsed and compiled six values per event on every batch; the text is the
 * one it built).
 */
const sqliteInserts = new Map<number, string>();
export function sqliteInsertOf(size: number): string {
  let text = sqliteInserts.get(size);
  if (text === undefined) {
    text = `insert into "audit_event" (${AUDIT_COLUMNS}) values ${Array.from({ length: size }, () => '(?, ?, ?, ?, ?, ?)').join(', ')}`;
    sqliteInserts.set(size, text);
  }
  return text;
}

/**
 * PostgreSQL: a batch of events in a statement whose text does not depend on how many there are, so
 * it is prepared once per connection (a `values` list would make a text, and a parse, for every batch
 * size). The batch is one JSON parameter, an array of one object per event (`AuditRow`), read by
 * `json_to_recordset`: one array parameter per column made pg quote and escape every element into an
 * array literal in JavaScript, where `JSON.stringify` escapes the whole batch natively. Each event's
 * payload is its row's `p`, a text (the event's JSON): read as `json` instead, PostgreSQL checked the
 * event's JSON once more after parsing the batch (`json_in` on the nested value), which cost its
 * backend 5–7 µs more per event than reading a string (a micro-benchmark with the table's indexes,
 * 100,000 events in batches of 500: 13–17 µs against 7–11), for a fraction of a microsecond saved in
 * JavaScript.
 */
const insertAuditRecordset = precompiled((db: Kysely<Database>, rows: string) =>
  db
    .insertInto('audit_event')
    .columns(['recorded_at', 'kind', 'user_id', 'client_id', 'request_id', 'payload'])
    .expression(
      sql`select r.t, r.k, r.u, r.c, r.q, r.p
        from json_to_recordset(${rows}::json) as r(t int8, k text, u int4, c text, q text, p text)`,
    ),
);

/** One event's columns under short names (`insertAuditRecordset`); `p`, its payload (JSON). */
interface AuditRow {
  t: number;
  k: string;
  u: number | null;
  c: string | null;
  q: string | null;
  p: string;
}

/**
 * An escape PostgreSQL's JSON parser refuses in a text (a lone surrogate's, or NUL's). A payload
 * holds none (`JSON.stringify` escaped its own, and the batch's escapes their backslash), but a
 * match may be such an escaped backslash: the batch is then made again with its other texts
 * well-formed, which stores the same.
 */
const ESCAPE_POSTGRES_REFUSES = /\\u(?:d[89a-f]|0000)/;

const STORED_COLUMNS = [
  'id',
  'recorded_at',
  'kind',
  'user_id',
  'client_id',
  'request_id',
  'payload',
] as const;

function storedEvent(row: Selectable<Database['audit_event']>): StoredAuditEvent {
  return {
    id: Number(row.id),
    recordedAt: Number(row.recorded_at),
    kind: row.kind,
    userId: row.user_id === null ? null : Number(row.user_id),
    clientId: row.client_id,
    requestId: row.request_id,
    record: JSON.parse(row.payload) as Record<string, unknown>,
  };
}

export function createAuditStore(
  db: Kysely<Database>,
  options: {
    retentionDays: number;
    now?: () => number;
    /** How long a batch waits for more events (default `MAX_BATCH_DELAY_MS`; see `batchDelayFor`). */
    batchDelayMs?: number;
    /**
     * SQLite: the batch of the requests' writes (src/db/write-batch.ts) that the events' INSERTs join,
     * on the write worker for a database file (src/db/write-worker.ts). By default they run on `db`.
     */
    writes?: WriteBatch;
    /** Kinds the database does not keep (`audit.databaseExclude`): the bus never gives them to its receiver. */
    skips?: readonly AuditEventKind[];
    /** How much one `purge()` deletes at most (default `AUDIT_PURGE`). */
    purgeBounds?: PurgeBounds;
    /**
     * How long `close` waits for the writes in flight and the last batch's (default: until they end).
     * A write over a dead route to PostgreSQL waits up to the query timeout (60 s), and batches are
     * written one after the other: the stop would wait that long for each.
     */
    closeWithinMs?: number;
    /**
     * Told, at `close`, of the events whose write failed since the stop began (the receiver's
     * `stopping`, or `close`) or had not ended within `closeWithinMs`. Given it, the receiver takes
     * the stop's news from the bus (`AuditReceiver.stopping`): one line, not one per event.
     */
    onUnwritten?: (unwritten: UnwrittenAuditEvents) => void;
  },
): AuditStore {
  const now = options.now ?? Date.now;
  const batchDelayMs = options.batchDelayMs ?? MAX_BATCH_DELAY_MS;
  const postgres = isPostgres(db);
  let batch: Array<Readonly<AuditRecord>> = [];
  let flushing: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  // The batches handed to `write` whose write has not ended, and, once the stop began (`stopping`, or
  // `close`), those whose write failed: what a close leaves unwritten.
  const writing = new Set<ReadonlyArray<Readonly<AuditRecord>>>();
  const failedAtClose: Array<ReadonlyArray<Readonly<AuditRecord>>> = [];
  let stopping = false;

  // The events of one millisecond share their time (bus.ts): it is parsed once.
  let lastTime: string | undefined;
  let lastRecordedAt = Number.NaN;
  /** The columns of one event. */
  const rowOf = (record: Readonly<AuditRecord>): AuditRow => {
    const { userId, clientId } = subjectsOf(record);
    if (record.time !== lastTime) {
      lastRecordedAt = Date.parse(record.time);
      lastTime = record.time;
    }
    const recordedAt = lastRecordedAt;
    return {
      t: Number.isFinite(recordedAt) ? recordedAt : now(),
      k: record.kind,
      u: userId,
      c: clientId === null ? null : clientId.slice(0, 100),
      q: record.request_id === undefined ? null : record.request_id.slice(0, 128),
      // Events whose types carry no free text are safe by construction, and the log writes them as
      // they are (receivers.ts): only the others are scrubbed again.
      p: JSON.stringify(closedEvent(record) ? record : scrubValue(record)),
    };
  };

  const write = async (records: ReadonlyArray<Readonly<AuditRecord>>) => {
    if (!postgres) {
      // SQLite binds the values of every event one after the other, in the order of the columns.
      const inserts: CompiledQuery[] = [];
      for (let start = 0; start < records.length; start += SQLITE_EVENTS_PER_INSERT) {
        const end = Math.min(records.length, start + SQLITE_EVENTS_PER_INSERT);
        const parameters: unknown[] = [];
        for (let index = start; index < end; index += 1) {
          const row = rowOf(records[index]!);
          parameters.push(row.t, row.k, row.u, row.c, row.q, row.p);
        }
        inserts.push(CompiledQuery.raw(sqliteInsertOf(end - start), parameters));
      }
      if (options.writes) {
        // A larger batch is still written, or not, as a whole: one write of the batch.
        await options.writes.run(
          async (trx) => {
            for (const insert of inserts) await trx.executeQuery(insert);
          },
          () => ({ statements: inserts.map((insert) => plannedStatement(insert)), result: () => {} }),
        );
      } else if (inserts.length === 1) await db.executeQuery(inserts[0]!);
      else {
        // A larger batch is still written, or not, as a whole.
        await db.transaction().execute(async (trx) => {
          for (const insert of inserts) await trx.executeQuery(insert);
        });
      }
      return;
    }
    // PostgreSQL takes the batch as one JSON array (`insertAuditRecordset`).
    const rows: AuditRow[] = [];
    for (const record of records) rows.push(rowOf(record));
    const batchJson = JSON.stringify(rows);
    if (!ESCAPE_POSTGRES_REFUSES.test(batchJson)) {
      await insertAuditRecordset.execute(db, batchJson);
      return;
    }
    const wellFormedRows = rows.map((row) => ({
      ...row,
      k: wellFormed(row.k),
      c: row.c === null ? null : wellFormed(row.c),
      q: row.q === null ? null : wellFormed(row.q),
    }));
    await insertAuditRecordset.execute(db, JSON.stringify(wellFormedRows));
  };

  /** One promise per batch: every `receive` of that batch resolves (or fails) with its INSERT. */
  let pending: { promise: Promise<void>; resolve: () => void; reject: (error: unknown) => void } | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    const records = batch;
    const settle = pending;
    batch = [];
    pending = undefined;
    if (!settle || records.length === 0) return;
    writing.add(records);
    const run = (flushing ?? Promise.resolve()).then(() => write(records));
    flushing = run.then(
      () => void writing.delete(records),
      () => {
        writing.delete(records);
        if (stopping) failedAtClose.push(records);
      },
    );
    run.then(settle.resolve, settle.reject);
  };

  const receiver: AuditReceiver = {
    name: 'database',
    ...(options.skips && options.skips.length > 0 ? { skips: new Set(options.skips) } : {}),
    receive(record) {
      batch.push(record);
      if (!pending) {
        let resolve!: () => void;
        let reject!: (error: unknown) => void;
        const promise = new Promise<void>((ok, fail) => {
          resolve = ok;
          reject = fail;
        });
        pending = { promise, resolve, reject };
      }
      const { promise } = pending;
      if (batch.length >= BATCH_SIZE) flush();
      else if (!timer) timer = setTimeout(flush, batchDelayMs);
      return promise;
    },
    // With someone to tell at the close, the bus leaves the events of the stop to that count.
    ...(options.onUnwritten
      ? {
          stopping() {
            stopping = true;
          },
        }
      : {}),
    async close() {
      // A write that failed before the stop is not told again: the bus logged each of its events.
      stopping = true;
      flush();
      if (options.closeWithinMs === undefined) await flushing;
      else await within(flushing ?? Promise.resolve(), options.closeWithinMs, undefined);
      const unwritten = [...failedAtClose, ...writing];
      if (unwritten.length === 0) return;
      const kinds: Record<string, number> = {};
      let events = 0;
      for (const records of unwritten) {
        events += records.length;
        for (const record of records) kinds[record.kind] = (kinds[record.kind] ?? 0) + 1;
      }
      options.onUnwritten?.({ events, kinds });
    },
  };

  const filtered = (filter: AuditFilter) => {
    let query = db.selectFrom('audit_event');
    if (filter.kinds && filter.kinds.length > 0) query = query.where('kind', 'in', [...filter.kinds]);
    if (filter.since !== undefined) query = query.where('recorded_at', '>=', filter.since);
    if (filter.until !== undefined) query = query.where('recorded_at', '<', filter.until);
    if (filter.userId !== undefined) query = query.where('user_id', '=', filter.userId);
    if (filter.clientId !== undefined) query = query.where('client_id', '=', filter.clientId);
    if (filter.beforeId !== undefined) query = query.where('id', '<', filter.beforeId);
    return query;
  };

  return {
    receiver,
    async list(filter = {}) {
      const limit = Math.min(Math.max(1, filter.limit ?? DEFAULT_AUDIT_PAGE), MAX_AUDIT_PAGE);
      const rows = await filtered(filter).select(STORED_COLUMNS).orderBy('id', 'desc').limit(limit).execute();
      return rows.map(storedEvent);
    },
    async listUserWindow(userId, { kinds, within }) {
      const newest = db
        .selectFrom('audit_event')
        .select(STORED_COLUMNS)
        .where('user_id', '=', userId)
        .orderBy('recorded_at', 'desc')
        .limit(within);
      const rows = await db
        .selectFrom(newest.as('newest'))
        .selectAll()
        .where('kind', 'in', [...kinds])
        .orderBy('recorded_at', 'desc')
        .execute();
      // The first event past the window, read from the index alone.
      const older = await db
        .selectFrom('audit_event')
        .select('recorded_at')
        .where('user_id', '=', userId)
        .orderBy('recorded_at', 'desc')
        .limit(1)
        .offset(within)
        .executeTakeFirst();
      return {
        events: rows.map(storedEvent),
        ...(older ? { olderAt: Number(older.recorded_at) } : {}),
      };
    },
    async countByKind(filter = {}) {
      const rows = await filtered(filter)
        .select((eb) => ['kind', eb.fn.countAll().as('n')])
        .groupBy('kind')
        .execute();
      return new Map(rows.map((row) => [row.kind, Number(row.n)]));
    },
    purge(at = now(), signal) {
      const before = at - options.retentionDays * 86_400_000;
      // The oldest events first, by the time index (`audit_event_time_idx`).
      return purgeRound(
        deleteOldest(db, 'audit_event', 'recorded_at', before),
        options.purgeBounds ?? AUDIT_PURGE,
        signal,
      );
    },
  };
}
