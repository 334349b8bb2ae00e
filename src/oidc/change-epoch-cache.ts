import type { Kysely } from 'kysely';
import { readChangeEpoch } from '../db/change-epoch.ts';
import type { Database } from '../db/schema.ts';
import type { KeptRows } from './kept-rows.ts';
import { currentRequest as providerRequest } from './provider-internals.ts';
import { loadOncePerRequest, RequestMemo } from './request-memo.ts';

/**
 * Applications kept in memory across requests, for as long as the change epoch
 * (src/db/change-epoch.ts) has not moved. Every write to applications raises the epoch in its own
 * transaction, whichever process makes it (another instance on the same PostgreSQL database, a CLI
 * command on the same SQLite file); each request learns the epoch from its database before it uses
 * anything kept, so a change committed before a request began is seen by that request, on every
 * instance, as if nothing were kept.
 *
 * - A request learns the epoch from the token lookup, which carries it as a scalar subquery (no
 *   statement of its own), or, when it needs an application before any statement
 *   carried it (client authentication comes first at introspection and the token endpoint), from
 *   one small read, once per request.
 * - The `save_bearer` stage reads the epoch afresh right before a user's tokens are saved (once per
 *   request), as it used to read the application afresh: a deactivation committed while the request
 *   ran still stops the token. A client-credentials token is decided with the applications of the
 *   request's epoch instead and written only while that epoch stands (save-bearer.ts): the write
 *   itself checks, and when the epoch has moved the stage reads it afresh as for a user's token.
 * - The requests that ask for the epoch in one turn of the event loop, or while the read before
 *   runs, share one read, made after they all asked (`sharedEpochReads`).
 * - Users' profiles are not kept by the epoch: the policy must see a change the directory has not
 *   announced (a row changed in the database by hand) on the next request, and only a write through
 *   aa-oidc could raise the epoch.
 * - The same read carries the change log past this process's position (src/db/change-log.ts), which
 *   drops the stored sessions, grants and tokens kept in memory that changed (kept-rows.ts), and the
 *   built-in directory's users' profiles (kept-profiles.ts), whose changes its triggers log whoever
 *   makes them: a request that uses one first awaits its read (`synced`). Alliance Auth's profiles are
 *   never kept (its database is not aa-oidc's: nothing logs a change there).
 * - Entries loaded after the epoch was read belong to that epoch (their rows are at least as new);
 *   a request that sees a newer epoch drops everything kept. Outside a provider request nothing is
 *   kept.
 */
export interface ChangeEpochs {
  /** Notes the epoch a statement of this request carried (the token lookup). */
  note(request: object | undefined, epoch: number | undefined): void;
  /** The epoch this request sees: the newest noted, or read now (once per request). */
  ofRequest(request: object): Promise<number>;
  /**
   * The epoch this request has already seen (the newest noted), or undefined: what `ofRequest`
   * answers without a read, told at once.
   */
  known(request: object): number | undefined;
  /** The epoch read right before tokens are saved (once per request). */
  atSave(request: object): Promise<number>;
}

/** The change epochs of a process, with the stored rows it keeps in memory (kept-rows.ts). */
export interface ProcessChangeEpochs extends ChangeEpochs {
  /**
   * The epoch from a read made for this request (once per request, after it asked), which also
   * brought the kept rows up to date: what a request awaits before it uses one.
   */
  synced(request: object): Promise<number>;
  /** Stored rows kept in memory, checked by the same reads (none when not given). */
  readonly kept: KeptRows | undefined;
}

/**
 * One read of the epoch for every request that asks in the same turn of the event loop. Each read is
 * a statement (on SQLite a read transaction of its own, with its file locks) for a single number;
 * the read runs once the turn's requests have asked (`schedule`), so it sees every change committed
 * before any of them asked, as a read of each request's own would.
 *
 * One read at a time: the requests that ask while a read is running share the next one, started as
 * soon as the running one has answered (so still after they all asked). On PostgreSQL a read takes a
 * round trip, during which the event loop turns several times under load; a read per turn would be a
 * socket write and a wake-up of the server's backend per turn, for the same answer.
 */
export function sharedEpochReads(
  read: () => Promise<number>,
  schedule: (run: () => void) => void = setImmediate,
): () => Promise<number> {
  // The next read, asked for and not yet started, and what starts it.
  let waiting: Promise<number> | undefined;
  let startWaiting: (() => void) | undefined;
  let reading = false;
  const start = () => {
    const run = startWaiting;
    waiting = undefined;
    startWaiting = undefined;
    if (!run) return;
    reading = true;
    run();
  };
  const settled = () => {
    reading = false;
    if (startWaiting) start();
  };
  return () => {
    if (waiting) return waiting;
    const next = new Promise<number>((resolve, reject) => {
      startWaiting = () => {
        let made: Promise<number>;
        try {
          made = read();
        } catch (error) {
          made = Promise.reject(error as Error);
        }
        made.then(resolve, reject);
        made.then(settled, settled);
      };
    });
    waiting = next;
    if (!reading) schedule(start);
    return next;
  };
}

export function createChangeEpochs(
  db: Kysely<Database>,
  schedule?: (run: () => void) => void,
  kept?: KeptRows,
): ProcessChangeEpochs {
  const noted = new RequestMemo<'epoch', number>();
  const shared = sharedEpochReads(() => (kept ? kept.sync(db) : readChangeEpoch(db)), schedule);
  const readAtSave = loadOncePerRequest(shared);
  const note = (request: object | undefined, epoch: number | undefined) => {
    if (!request || epoch === undefined) return;
    const known = noted.peek(request, 'epoch');
    if (known === undefined || epoch > known) noted.set(request, 'epoch', epoch);
  };
  // The request's one read (shared with the turn's other requests), noted: `synced` is awaited before
  // every use of a kept row or profile (several per request), and `ofRequest` reads through it too,
  // so one promise per request answers them all (a failed read is forgotten, and asked again).
  const syncedOnce = loadOncePerRequest((_key: 'epoch', request) =>
    shared().then((epoch) => {
      note(request, epoch);
      return epoch;
    }),
  );
  const synced = (request: object): Promise<number> => syncedOnce(request, 'epoch');
  const known = (request: object): number | undefined => noted.peek(request, 'epoch');
  return {
    note,
    // Not an async function: a request asks several times, and each ask after the first is answered
    // from what it noted, without a frame and its promises.
    ofRequest(request) {
      const epoch = known(request);
      if (epoch !== undefined) return Promise.resolve(epoch);
      return synced(request).then((read) => known(request) ?? read);
    },
    known,
    async atSave(request) {
      const epoch = await readAtSave(request, 'epoch');
      this.note(request, epoch);
      return epoch;
    },
    synced,
    kept,
  };
}

/** Entries kept beyond this many are all dropped (a bound, not a policy: a change drops them anyway). */
const MAX_ENTRIES = 20_000;

/** Values by key, valid for one epoch; a newer epoch drops them all. */
export class EpochCache<K, V> {
  #epoch = -1;
  #values = new Map<K, Promise<V>>();

  /** The value kept for `key` at `epoch` (or a newer one), loaded with `load` when there is none. */
  get(epoch: number, key: K, load: () => Promise<V>): Promise<V> {
    if (epoch > this.#epoch) {
      this.#epoch = epoch;
      this.#values = new Map();
    }
    const values = this.#values;
    const kept = values.get(key);
    if (kept) return kept;
    if (values.size >= MAX_ENTRIES) values.clear();
    const loading = load();
    values.set(key, loading);
    loading.catch(() => {
      if (values.get(key) === loading) values.delete(key);
    });
    return loading;
  }
}

/** When a lookup asks: as the request goes (`request`), or right before tokens are saved (`save`). */
export type EpochSource = 'request' | 'save';

/**
 * `load` answered from memory while the change epoch stands (see `ChangeEpochs`). Loads outside a
 * provider request go to `load` every time.
 */
export function epochCached<K, V>(
  load: (key: K) => Promise<V>,
  epochs: Pick<ChangeEpochs, 'ofRequest' | 'atSave' | 'known'>,
  cache: EpochCache<K, V>,
  source: EpochSource,
  currentRequest: () => object | undefined = providerRequest,
): (key: K) => Promise<V> {
  // Not an async function: a request whose epoch is already known (every lookup after its first, as
  // it goes) is handed the kept value's own promise, without a frame, a promise of its own, and the
  // turns of the event loop that resolving one promise with another takes.
  return (key) => {
    try {
      const request = currentRequest();
      if (!request) return load(key);
      const known = source === 'request' ? epochs.known(request) : undefined;
      if (known !== undefined) return cache.get(known, key, () => load(key));
      const epoch = source === 'save' ? epochs.atSave(request) : epochs.ofRequest(request);
      return epoch.then((seen) => cache.get(seen, key, () => load(key)));
    } catch (error) {
      return Promise.reject(error as Error);
    }
  };
}
