import type { Kysely } from 'kysely';
import { covers, type LogPosition, readLog } from '../db/change-log.ts';
import type { Database } from '../db/schema.ts';
import type { PayloadRow, StoredPayload } from '../tokens/store.ts';
import { setNewest } from '../util/bounded-map.ts';
import { KeptProfiles, MAX_KEPT_PROFILES } from './kept-profiles.ts';
import { MAX_OWN_WRITES_NOTED, OwnWrites } from './own-writes.ts';

/**
 * Stored sessions, grants, access tokens and client-credentials tokens kept in memory across
 * requests, as found (never as written: a new row is kept once a request finds it), while the change
 * log (src/db/change-log.ts) names no change to them. The rows are kept as read: each find checks
 * expiry and revocation against its own `now` and gets a payload object of its own, copied from the
 * payload parsed at the row's first find (adapter.ts).
 *
 * - Every request that uses a kept row first awaits its read of the log (one per request, shared by
 *   the requests that ask in one turn of the event loop or while the read before runs, made after
 *   they all asked: change-epoch-cache.ts),
 *   which drops every row the log names past the process's position. A change committed by any
 *   writer before the request arrived is therefore seen by it, as if nothing were kept.
 * - A row is kept only if the statement that loaded it saw the log at or past the process's position
 *   (`covers`): a row read before a change the process has already processed would never be dropped.
 * - This process's own writes drop what they touch at once and refuse to keep rows of the keys they
 *   name whose load began before they completed (`wrote`, called by the provider's writes of a kept
 *   row: the adapter's, and the held-back session of an authorization, code-exchange.ts), so that a
 *   request reads its own writes, and this process's, even after its log read. A write that cannot
 *   name its rows refuses every load in flight. A write of one key leaves the loads of others alone:
 *   each session renewal (up to once a second per session in use) would otherwise stop every load in
 *   flight from being kept or shared. Only the keys written lately are remembered (`OwnWrites`,
 *   own-writes.ts, which kept profiles use too); a load that began before the write of a key
 *   forgotten since is refused as if that key were its own. The bulk revocations that follow a change
 *   of access (tokens/user-sessions.ts `endUserSessions`, tokens/store-users.ts
 *   `revokeLiveTokenRowsOfUsers`) do not call it: their rows are dropped by the next read of the log,
 *   which every request makes before it uses a kept row, as for another instance's change.
 * - Codes and refresh tokens are redeemed once: they are never kept here (those this process wrote
 *   are, as written, until their redemption: own-codes.ts). Misses are never kept.
 * - A request that misses a row another request is loading shares that load instead of reading the
 *   row again (`share`), once that load is sure to see what its own would: it began after this
 *   request's read of the log had answered, and no write of this process of a key it loads has
 *   completed since it began. A row the log names (a session renewed, written once a second while in use) is dropped
 *   for every request at once; without this, each request that missed it before the first load had
 *   answered read it again.
 * - At most `max` rows: the oldest kept goes first.
 *
 * The same reads of the log keep users' profiles up to date (`profiles`, kept-profiles.ts).
 */
export class KeptRows {
  readonly #max: number;
  #rows = new Map<string, readonly StoredPayload[]>();
  #position: LogPosition | undefined;
  /** This process's own writes completed so far (`wrote`), by kept key. */
  readonly #ownWrites: OwnWrites<string>;
  /** Reads of the log answered so far. */
  #reads = 0;
  /** The loads in flight that a request may share (`share`), by key. */
  #loads = new Map<string, SharedLoad>();
  /** Users' profiles, dropped by the same reads of the log. */
  readonly profiles: KeptProfiles;

  constructor(max = MAX_KEPT_ROWS, maxProfiles = MAX_KEPT_PROFILES, maxWritesNoted = MAX_OWN_WRITES_NOTED) {
    this.#max = max;
    this.#ownWrites = new OwnWrites(maxWritesNoted);
    this.profiles = new KeptProfiles(() => this.#position, maxProfiles);
  }

  get size(): number {
    return this.#rows.size;
  }

  /**
   * Reads the change epoch and the log past this process's position in one statement, drops what the
   * log names, rows and profiles (everything on the first read, or when the log was pruned past the
   * position) and returns the epoch.
   */
  async sync(db: Kysely<Database>): Promise<number> {
    const read = await readLog(db, this.#position);
    this.#reads += 1;
    if (this.#position === undefined || read.lost) {
      this.#rows.clear();
      this.profiles.clear();
    } else {
      for (const key of read.keys) {
        this.#rows.delete(keptKeyOf(key));
        this.profiles.forget(key);
      }
    }
    // The position only moves forward, whatever order reads answer in (a process's reads run one at
    // a time, change-epoch-cache.ts, but nothing here relies on it).
    if (this.#position === undefined || read.lost || covers(read.position, this.#position)) {
      this.#position = read.position;
    }
    return read.epoch;
  }

  /** The rows kept for `key`, if any. */
  peek(key: string): readonly StoredPayload[] | undefined {
    return this.#rows.get(key);
  }

  /** A ticket for a load that may be kept: taken before the statement runs (see `keep`). */
  ticket(): number {
    return this.#ownWrites.ticket();
  }

  /**
   * Keeps `rows` (found by a statement that saw the log at `position`, started at `ticket`) unless the
   * process has already processed a change the statement did not see, or written `key` since it
   * started.
   */
  keep(key: string, rows: readonly StoredPayload[], position: LogPosition | undefined, ticket: number): void {
    if (rows.length === 0 || this.#ownWrites.writtenSince(key, ticket) || !covers(position, this.#position)) {
      return;
    }
    setNewest(this.#rows, key, rows, this.#max);
  }

  /**
   * What `load` answers for `key`, or, when a load of `key` is in flight, what the request answers
   * once its read of the log (`synced`, the one a kept row waits for) has answered: the rows kept by
   * then (`fromMemory`), or that load's answer if the load began after such a read and no write of
   * this process of the kept keys it reads (`keys`, by default `key` itself) has completed since it
   * began (so it sees every change committed before this request asked, and this process's own
   * writes, as this request's own load would). Otherwise, or with no load in flight, `load` runs now
   * (it keeps what it found, as it would alone).
   *
   * A read of the log counts once it has answered, and a load notes how many had when it began:
   * a load that began after the reads answered that a request has awaited began after that
   * request's own read (which began after it asked), whatever order reads answer in.
   */
  async share<T>(
    key: string,
    synced: () => Promise<unknown>,
    fromMemory: () => T | undefined,
    load: () => Promise<T>,
    keys: readonly string[] = [key],
  ): Promise<T> {
    if (this.#loads.has(key)) {
      await synced();
      const held = fromMemory();
      if (held !== undefined) return held;
      const running = this.#loads.get(key);
      if (
        running &&
        running.reads >= this.#reads &&
        !running.keys.some((kept) => this.#ownWrites.writtenSince(kept, running.ticket))
      ) {
        return running.loading as Promise<T>;
      }
    }
    const loads = this.#loads;
    const reads = this.#reads;
    const ticket = this.#ownWrites.ticket();
    const loading = load();
    const entry: SharedLoad = { loading, reads, ticket, keys };
    loads.set(key, entry);
    const settled = () => {
      if (loads.get(key) === entry) loads.delete(key);
    };
    loading.then(settled, settled);
    return loading;
  }

  /**
   * This process wrote the rows `keys` name (in log form, e.g. `Session <id>`), or rows it cannot
   * name (no keys: everything is dropped, and no load in flight is kept). Called once the write has
   * completed.
   */
  wrote(keys?: readonly string[]): void {
    if (keys === undefined) {
      this.#rows.clear();
      this.#ownWrites.wroteUnnamed();
      return;
    }
    for (const logKey of keys) {
      const key = keptKeyOf(logKey);
      this.#rows.delete(key);
      this.#ownWrites.wrote(key);
    }
  }
}

/**
 * A load in flight (`KeptRows.share`): the reads of the log answered and own writes completed when it
 * began, and the kept keys it reads.
 */
interface SharedLoad {
  loading: Promise<unknown>;
  reads: number;
  ticket: number;
  keys: readonly string[];
}

/** Rows kept beyond this many push out the oldest (the bench's RSS stays well under 300 MB). */
export const MAX_KEPT_ROWS = 20_000;

/** The models whose rows are kept (the change log's triggers on `oidc_payload` name exactly these). */
export const KEPT_MODELS = new Set(['AccessToken', 'ClientCredentials', 'Session', 'Grant']);

/**
 * What a write of `row` changes of the rows kept, in log form (`KeptRows.wrote`): its key, and a
 * session's uid too (a session is kept by its uid as well). None for a model whose rows are not kept.
 */
export function keptKeysWritten(row: Pick<PayloadRow, 'model' | 'id' | 'uid'>): string[] {
  if (!KEPT_MODELS.has(row.model)) return [];
  const key = `${row.model} ${row.id}`;
  return row.model === 'Session' && typeof row.uid === 'string' ? [key, `Session uid ${row.uid}`] : [key];
}

/**
 * The key of what is kept for a log key. A presented bearer value is looked up in three models at
 * once (adapter.ts), so its rows are kept together under `bearer <id>`; a log key names one model.
 */
export function keptKeyOf(logKey: string): string {
  if (logKey.startsWith('AccessToken ')) return `bearer ${logKey.slice('AccessToken '.length)}`;
  if (logKey.startsWith('ClientCredentials ')) return `bearer ${logKey.slice('ClientCredentials '.length)}`;
  return logKey;
}
