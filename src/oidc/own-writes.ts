/**
 * This process's own writes of what it keeps in memory (kept rows, kept profiles), counted per kept
 * key, so that a write of one key refuses only the loads of that key that began before it completed:
 * a load takes a `ticket` before its statement runs, and what it found is kept (or shared) only if
 * nothing it reads was `writtenSince` then. Without keys, one write (each session renewal, each
 * directory change of one user) would stop every load in flight from being kept.
 *
 * Only the keys written lately are remembered (`max`, the one written longest ago forgotten first): a
 * load that began before the write of a key forgotten since counts as written, whatever its key, as
 * does every load that began before a write that could not name its keys (`wroteUnnamed`).
 */
export class OwnWrites<K> {
  readonly #max: number;
  /** Keys written so far, each write of a key counted once: a ticket is this count when a load began. */
  #writes = 0;
  /**
   * For each key written lately, oldest first, `#writes` once its last write had completed; at most
   * `#max` of them, each past `#forgotten`.
   */
  #writtenAt = new Map<K, number>();
  /** No key left out of `#writtenAt` was written after this many writes had completed. */
  #forgotten = 0;

  constructor(max = MAX_OWN_WRITES_NOTED) {
    this.#max = max;
  }

  /** A ticket for a load that may be kept: taken before its statement runs. */
  ticket(): number {
    return this.#writes;
  }

  /** Whether a write of `key`, or of keys that could not be named, completed after `ticket`. */
  writtenSince(key: K, ticket: number): boolean {
    return (this.#writtenAt.get(key) ?? this.#forgotten) > ticket;
  }

  /** This process completed a write of `key` (called once for each key a write changed). */
  wrote(key: K): void {
    this.#writes += 1;
    // Oldest first: the key forgotten is the one written longest ago, so that every key still noted
    // was written after it.
    this.#writtenAt.delete(key);
    if (this.#writtenAt.size >= this.#max) {
      const [oldest, at] = this.#writtenAt.entries().next().value!;
      this.#writtenAt.delete(oldest);
      this.#forgotten = at;
    }
    this.#writtenAt.set(key, this.#writes);
  }

  /** This process completed a write whose keys it cannot name: every load that began before counts as written. */
  wroteUnnamed(): void {
    this.#writes += 1;
    this.#writtenAt.clear();
    this.#forgotten = this.#writes;
  }
}

/**
 * Keys of this process's own writes remembered by each keeper (`OwnWrites`), about half a megabyte for
 * the kept rows' string keys: a load that outlasts the writes of this many other keys is not kept, nor
 * shared, as after a write of its own key.
 */
export const MAX_OWN_WRITES_NOTED = 4_096;
