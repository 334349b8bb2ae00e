import type { Logger } from '../logging/logger.ts';
import { type AllianceAuthConnection, allianceAuthReachable, WHAT_MAKES_AA_SCHEMA } from './database.ts';
import { missingColumns, readColumnsOfTablesRead } from './schema-check.ts';

/**
 * How long (ms) a look at AA's columns that found every one aa-oidc reads is trusted: `/readyz` reads
 * the information schema at most this often while all is well (one statement, on a database that
 * answers), so a table or column that goes missing with no request reading it (an AA upgrade at
 * night) takes the instance out of its load balancer within this time. A read of a request that
 * finds one missing (`lookAgain`) makes the next check look at once; while one is missing, every check
 * looks (at most once per `/readyz` answer, src/http/health.ts), so its return shows at once too.
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
  /** Alliance Auth's database now: a trivial query, and its columns when they are due (`SCHEMA_RECHECK_MS`). */
  judge(): Promise<AllianceAuthReadiness>;
  /** A read found a table or column missing: the next `judge` reads the columns, whenever it last did. */
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
  /** When a look found every column there; undefined when none did, or a read found one missing since. */
  let wholeAt: number | undefined;
  /** The columns the last look found missing. */
  let missing: readonly string[] = [];
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
  return {
    async judge() {
      if (!(await allianceAuthReachable(db))) return { kind: 'unreachable' };
      if (wholeAt !== undefined && now() - wholeAt < recheckMs) return { kind: 'ready' };
      const at = now();
      let found: string[];
      try {
        found = missingColumns(await readColumnsOfTablesRead(db, kind));
      } catch {
        // Gone since its trivial query answered: unreachable. Otherwise the last look stands, and the
        // next check looks again.
        if (!(await allianceAuthReachable(db))) return { kind: 'unreachable' };
        return missing.length > 0 ? { kind: 'schema_incomplete', missing } : { kind: 'ready' };
      }
      note(found);
      wholeAt = found.length === 0 ? at : undefined;
      return found.length === 0 ? { kind: 'ready' } : { kind: 'schema_incomplete', missing: found };
    },
    lookAgain() {
      wholeAt = undefined;
    },
  };
}
