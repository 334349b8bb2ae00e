import type { Logger } from '../logging/logger.ts';
import { type AllianceAuthConnection, allianceAuthReachable, WHAT_MAKES_AA_SCHEMA } from './database.ts';
import { missingColumns, readColumnsOfTablesRead } from './schema-check.ts';

/**
 * How long (ms) a look at AA's columns that found every one aa-oidc reads is trusted: `/readyz` reads
 * the information schema at most this often while all is well (one statement, on a database that
 * answers), so a table or column that goes missing with no read finding it (an AA upgrade at night,
 * a column the poll does not read) takes the instance out of its load balancer within this time. A
 * read of a request or of a poll cycle that finds one missing or is refused one (`lookAgain`) makes
 * the next check look
 * at once; while one is missing, every check looks (at most once per `/readyz` answer,
 * src/http/health.ts), so its return shows at once too.
 */
export const SCHEMA_RECHECK_MS = 30_000;

/**
 * What `/readyz` says (public: no column, version or URL) while AA's database lacks a column aa-oidc
 * reads; the log names the columns and what to do.
 */
export const ALLIANCE_AUTH_SCHEMA_REASON =
  "Alliance Auth's database lacks a table or column aa-oidc reads, or its login may not read it (sign-ins " +
  "and userinfo answer 503): check Alliance Auth's version, that its migrations are applied and the " +
  "login's grants; the log names what is missing";

/** Alliance Auth's database as `/readyz` judges it. */
export type AllianceAuthReadiness =
  | { kind: 'ready' }
  | { kind: 'unreachable' }
  /** It answers, but lacks these columns (`table.column`) of `COLUMNS_READ`, or the login may not read them. */
  | { kind: 'schema_incomplete'; missing: readonly string[] };

export interface AllianceAuthReadinessCheck {
  /**
   * Alliance Auth's database now: a trivial query, and its columns when they are due (`SCHEMA_RECHECK_MS`).
   * Calls meanwhile share the check in flight (one look, one log line, one answer), unless a
   * `lookAgain` came after it began.
   */
  judge(): Promise<AllianceAuthReadiness>;
  /**
   * A read found a table or column missing, or was refused one for a privilege (which the information
   * schema then hides too): the next `judge` reads the columns, whenever it last did,
   * and a look in flight, which may have read them before that read, is not trusted for
   * `SCHEMA_RECHECK_MS`.
   */
  lookAgain(): void;
}

/**
 * The readiness of Alliance Auth's database for `/readyz`: reachable, and holding every column aa-oidc
 * reads (the start-up schema check's list; no migration record, no version). The log says once, each
 * time the missing columns change, which are missing and what to check, and once when they are back.
 */
export function allianceAuthReadinessCheck(deps: {
  connection: Pick<AllianceAuthConnection, 'db' | 'kind'>;
  logger: Pick<Logger, 'error' | 'info'>;
  recheckMs?: number;
  now?: () => number;
}): AllianceAuthReadinessCheck {
  const { db, kind } = deps.connection;
  const recheckMs = deps.recheckMs ?? SCHEMA_RECHECK_MS;
  const now = deps.now ?? (() => performance.now());
  /**
   * When a look found every column there; undefined when none did, or when a read found one missing
   * since that look began.
   */
  let wholeAt: number | undefined;
  /** The columns the newest look that completed found missing. */
  let missing: readonly string[] = [];
  /**
   * Counts every check begun (`judge`) and every `lookAgain`, so that their order is known: a look
   * begun before the last `lookAgain` may have read the columns before the read that found one gone,
   * so it is not trusted for `recheckMs`; and one that completes after a newer look did is not noted.
   */
  let sequence = 0;
  /** The `sequence` of the last `lookAgain`. */
  let askedAt = 0;
  /** The `sequence` of the check whose look was noted last. */
  let notedAt = 0;
  /** The check in flight, which a `judge` meanwhile shares unless a `lookAgain` came after it began. */
  let judging: { begunAt: number; answer: Promise<AllianceAuthReadiness> } | undefined;
  const note = (found: readonly string[]) => {
    if (found.join() === missing.join()) return;
    if (found.length > 0)
      deps.logger.error(
        { missing: found },
        `Alliance Auth's database lacks columns aa-oidc reads, or the login of AA_OIDC_AA_DATABASE_URL may not SELECT them (${found.join(', ')}): the sign-ins, userinfo and pages that read them answer 503, and so does /readyz until they are there. Check ${WHAT_MAKES_AA_SCHEMA}, and the login's grants (SELECT on every table of AA's database); aa-oidc check says the same`,
      );
    else deps.logger.info("Alliance Auth's database has every column aa-oidc reads again");
    missing = found;
  };
  /** What the newest look that completed found. */
  const standing = (): AllianceAuthReadiness =>
    missing.length > 0 ? { kind: 'schema_incomplete', missing } : { kind: 'ready' };
  const look = async (begunAt: number): Promise<AllianceAuthReadiness> => {
    const at = now();
    let found: string[];
    try {
      found = missingColumns(await readColumnsOfTablesRead(db, kind));
    } catch {
      // Gone since its trivial query answered: unreachable. Otherwise the last look stands, and the
      // next check looks again.
      if (!(await allianceAuthReachable(db))) return { kind: 'unreachable' };
      return standing();
    }
    // A newer look completed first: what it found stands (logged once, never taken back by an
    // older read).
    if (begunAt < notedAt) return standing();
    notedAt = begunAt;
    note(found);
    wholeAt = found.length === 0 && begunAt > askedAt ? at : undefined;
    return standing();
  };
  const judgeNow = async (begunAt: number): Promise<AllianceAuthReadiness> => {
    if (!(await allianceAuthReachable(db))) return { kind: 'unreachable' };
    if (wholeAt !== undefined && now() - wholeAt < recheckMs) return { kind: 'ready' };
    return look(begunAt);
  };
  return {
    judge() {
      if (judging === undefined || judging.begunAt < askedAt) {
        const begunAt = ++sequence;
        const answer = judgeNow(begunAt).finally(() => {
          if (judging?.begunAt === begunAt) judging = undefined;
        });
        judging = { begunAt, answer };
      }
      return judging.answer;
    },
    lookAgain() {
      askedAt = ++sequence;
      wholeAt = undefined;
    },
  };
}
