/**
 * How usernames, state names and group names compare: NFKC (compatibility forms folded, so `ＡＢＣ`
 * is `ABC`), then lower case over all of Unicode (so `Ärger` is `ärger`, which SQL's `lower()` on
 * SQLite does not know). The directory stores this key beside each name under a unique index, looks
 * names up by it, and the login throttle counts an account under it.
 */
export function nameKey(name: string): string {
  return name.normalize('NFKC').toLowerCase();
}
