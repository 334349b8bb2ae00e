/**
 * Sets `key` to `value` in `map` as its newest entry, first removing the oldest entry (the first in
 * insertion order) when `map` already holds `max` others: a bounded map that forgets the oldest
 * first, for caches whose entries are dropped on change anyway and whose bound only caps memory.
 */
export function setNewest<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  if (map.size >= max) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
  map.set(key, value);
}
