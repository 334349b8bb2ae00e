/**
 * The database servers aa-oidc supports, by version, and the judgement of what a server's
 * `select version()` answered. Pure: the queries that read the version live with their checks
 * (`connectDatabase` for aa-oidc's own PostgreSQL, `checkAllianceAuthSchema` for Alliance Auth's).
 */

export type DatabaseServer = 'MySQL' | 'MariaDB' | 'PostgreSQL';

/** A server's version as `select version()` gives it: the numbers, and the text as answered. */
export interface ServerVersion {
  server: DatabaseServer;
  /** Major, minor (and patch) numbers; PostgreSQL 10 and later have two, `16beta1` has one. */
  numbers: number[];
  /** The whole answer, for messages (it names no secret). */
  text: string;
}

/** A minimum version: the numbers compared, as a message writes them. */
export interface MinimumVersion {
  numbers: readonly number[];
  label: string;
}

/**
 * aa-oidc's own PostgreSQL: 13, for its change log (`xid8`, `pg_current_xact_id()`,
 * `pg_current_snapshot()`, `pg_visible_in_snapshot()`: src/db/change-log.ts and migration 0071)
 * and for pg-boss, which states PostgreSQL 13 or higher (its `gen_random_uuid()` too).
 */
export const OWN_POSTGRES_MINIMUM: MinimumVersion = { numbers: [13], label: '13' };

/**
 * Alliance Auth's database. Each is the floor of Django 4.2 (Alliance Auth 4.0's Django, which
 * refuses an older server itself) and at least what aa-oidc's own reads need: the password login
 * throttle's `WITH RECURSIVE` and `WEIGHT_STRING` (src/alliance-auth/throttle-key.ts) need MySQL 8.0
 * or MariaDB 10.2; the reads of PostgreSQL need nothing newer than Django does.
 */
export const ALLIANCE_AUTH_MINIMUMS: Readonly<Record<DatabaseServer, MinimumVersion>> = {
  MySQL: { numbers: [8, 0], label: '8.0' },
  MariaDB: { numbers: [10, 4], label: '10.4' },
  PostgreSQL: { numbers: [12], label: '12' },
};

/**
 * Reads `select version()`'s answer: MySQL's `8.0.36` or `5.7.44-log` (a distribution's suffix
 * after a hyphen), MariaDB's `10.11.19-MariaDB-0+deb12u1` (with the `5.5.5-` prefix MariaDB sends in
 * its handshake to old clients, when given that form), PostgreSQL's `PostgreSQL 15.19 (Debian …) on
 * x86_64-pc-linux-gnu, …` or `PostgreSQL 16beta1 on …`. Undefined for anything else.
 */
export function parseServerVersion(text: string): ServerVersion | undefined {
  const trimmed = text.trim();
  const postgres = /^PostgreSQL (\d+)(?:\.(\d+))?(?:\.(\d+))?/i.exec(trimmed);
  if (postgres) return { server: 'PostgreSQL', numbers: numbersOf(postgres), text: trimmed };
  const mariadb = /mariadb/i.test(trimmed);
  const release = /^(?:5\.5\.5-(?=\d+\.\d+\.\d+-MariaDB))?(\d+)\.(\d+)(?:\.(\d+))?(?!\d)/i.exec(trimmed);
  if (release) return { server: mariadb ? 'MariaDB' : 'MySQL', numbers: numbersOf(release), text: trimmed };
  return undefined;
}

function numbersOf(match: RegExpExecArray): number[] {
  return match
    .slice(1)
    .filter((part): part is string => part !== undefined)
    .map(Number);
}

/** -1, 0 or 1 as `a` is older than, the same as, or newer than `b`; a missing number counts as 0. */
export function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let index = 0; index < Math.max(a.length, b.length); index++) {
    const difference = (a[index] ?? 0) - (b[index] ?? 0);
    if (difference !== 0) return Math.sign(difference);
  }
  return 0;
}

export type VersionJudgement =
  | { kind: 'supported'; version: ServerVersion }
  | { kind: 'too_old'; version: ServerVersion; minimum: MinimumVersion }
  /** An answer this release does not read as any server `minimums` names. */
  | { kind: 'unrecognised'; text: string };

/**
 * Pure: whether `text` (`select version()`) is a server this release supports, given the minimum
 * per server it may be (a server absent from `minimums` is not one this connection expects, and is
 * unrecognised like an answer that names no server).
 */
export function judgeServerVersion(
  text: string,
  minimums: Partial<Record<DatabaseServer, MinimumVersion>>,
): VersionJudgement {
  const version = parseServerVersion(text);
  if (version === undefined) return { kind: 'unrecognised', text: text.trim() };
  const minimum = minimums[version.server];
  if (minimum === undefined) return { kind: 'unrecognised', text: version.text };
  if (compareVersions(version.numbers, minimum.numbers) < 0) return { kind: 'too_old', version, minimum };
  return { kind: 'supported', version };
}

/** The version as a message writes it: `MariaDB 10.11.19`. */
export function describeVersion(version: ServerVersion): string {
  return `${version.server} ${version.numbers.join('.')}`;
}

/** At most this much of an unrecognised answer goes into a message. */
const SHOWN_TEXT = 120;

/** `text` cut for a message. */
export function shownVersionText(text: string): string {
  return text.length > SHOWN_TEXT ? `${text.slice(0, SHOWN_TEXT)}…` : text;
}
