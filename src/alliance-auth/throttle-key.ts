import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { DatabaseFaultError } from '../db/errors.ts';
import type { AllianceAuthDatabaseKind } from './database.ts';
import type { AaDb } from './schema.ts';
import { AA_USERNAME_MAX_LENGTH } from './sign-in-queries.ts';

/**
 * The name a password attempt with Alliance Auth counts against in the login throttle
 * (`PasswordAttempt.throttledName`). It depends on the typed name alone, never on whether AA has such
 * a user: were it the stored name when the typed one finds a user and the typed one otherwise, anyone
 * could learn whether `zoe` exists by spending `zoe`'s budget and then trying `zóe` (an early 429 only
 * when the two are one user). Yet every spelling the database finds as one user has to share that
 * user's budget, or each accent or case would be a fresh budget for guessing the same password.
 *
 * So the key is the typed name as the database compares it, asked of the database itself:
 * - MySQL and MariaDB compare `auth_user.username` under its collation, which folds far more than
 *   case and accents: `utf8mb4_general_ci` (MariaDB's default) makes `ß` an `s` and every character
 *   beyond the BMP one; the UCA collations (`utf8mb4_unicode_ci`, which AA's install guide creates,
 *   and the newer servers' defaults) ignore format characters and hold `٣` for `3` and `đ` for `d`.
 *   No fold written here (NFKC, case, marks stripped) is as coarse as all of them, and each miss would
 *   be another budget per letter. `WEIGHT_STRING` under the column's own collation is what `=`
 *   compares, of the shortest start of the name that the collation holds equal to all of it: a PAD
 *   SPACE collation (all but MySQL 8's `_0900_` ones) compares `pilot3 \u200b` equal to `pilot3` (the
 *   zero-width space weighs nothing, then the space is padding), yet their weight strings differ by
 *   the space, and each number of spaces would be another budget. Its hex grows past the throttle's
 *   150 characters with the name, so the key is its SHA-256.
 * - PostgreSQL compares the bytes (Django's `=` under a deterministic collation): the key is the NFKC
 *   form Django reads, which the throttle then folds to lower case (`accountKey`), merging only.
 */
export function allianceAuthThrottleKey(
  db: AaDb,
  kind: AllianceAuthDatabaseKind,
): (typed: string) => Promise<string> {
  if (kind === 'postgres') return async (typed) => typed.normalize('NFKC');
  let collation: Promise<UsernameCollation> | undefined;
  return async (typed) => {
    // Read once; a read that failed is tried again by the next attempt. A collation the login cannot
    // read fails the attempt as a fault (503 "try again", the log naming the fix), never as a 500.
    collation ??= readUsernameCollation(db)
      .then((read) => {
        if ('problem' in read) throw new DatabaseFaultError(read.problem, USERNAME_COLLATION_UNREADABLE);
        return read;
      })
      .catch((error: unknown) => {
        collation = undefined;
        throw error;
      });
    const { charset, name } = await collation;
    // The longest cut from the end that leaves the name equal under the collation (trailing spaces,
    // characters that weigh nothing, both); tried up to the longest name AA holds, which bounds the
    // work whatever the length typed (a longer name finds nobody: `selectPasswordRecord`). The longest
    // cut by ordering, not `max()`: an aggregate beside `typed.s` is refused under ONLY_FULL_GROUP_BY,
    // which MySQL 5.7 and 8 enable by default.
    const result = await sql<{ weight: string | null }>`
      with recursive typed (s) as (
        select rtrim(convert(${typed.normalize('NFKC')} using ${sql.raw(charset)})) collate ${sql.raw(name)}
      ), cut (n) as (
        select 0 union all
        select cut.n + 1 from cut, typed where cut.n < least(char_length(typed.s), ${AA_USERNAME_MAX_LENGTH})
      )
      select hex(weight_string(left(typed.s, char_length(typed.s) - cut.n))) as weight
      from typed, cut where left(typed.s, char_length(typed.s) - cut.n) = typed.s
      order by cut.n desc limit 1`.execute(db);
    const weight = result.rows[0]?.weight ?? '';
    return `collation ${createHash('sha256').update(weight).digest('hex')}`;
  };
}

/** What the log says a password attempt stopped at when the collation cannot be read. */
const USERNAME_COLLATION_UNREADABLE =
  "Alliance Auth password sign-in could not read auth_user.username's collation for its login throttle";

export interface UsernameCollation {
  charset: string;
  name: string;
}

/**
 * `auth_user.username`'s character set and collation as information_schema.columns gives them
 * (MySQL and MariaDB), or the problem, naming the fix, when it gives none aa-oidc can use: it shows a
 * login only the columns it may read, and a binary column has no collation. Password sign-in cannot
 * build its throttle key without them (`allianceAuthThrottleKey`); the schema check refuses the
 * database on the same problem (`checkAllianceAuthSchema`).
 */
export async function readUsernameCollation(db: AaDb): Promise<UsernameCollation | { problem: string }> {
  const result = await sql<{ charset: string | null; name: string | null }>`
    select character_set_name as charset, collation_name as name from information_schema.columns
    where table_schema = database() and table_name = 'auth_user' and column_name = 'username'`.execute(db);
  const { charset, name } = result.rows[0] ?? {};
  // Written into the statement: only a plain identifier, as MySQL names its character sets and collations.
  const plain = /^[A-Za-z0-9_]+$/;
  if (!charset || !name || !plain.test(charset) || !plain.test(name)) {
    return {
      problem: `Alliance Auth's auth_user.username has no character set and collation aa-oidc can read (character set ${JSON.stringify(charset ?? null)}, collation ${JSON.stringify(name ?? null)}), which password sign-in needs to count attempts in its login throttle: grant the login SELECT on auth_user (information_schema.columns shows a login only the columns it may read), and keep the column Django's character column (varchar with a utf8mb4 collation)`,
    };
  }
  return { charset, name };
}
