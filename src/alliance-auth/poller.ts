import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { describeBinding, readDirectoryBinding } from '../directory/binding.ts';
import { inUnitOfWork, type UnitOfWork } from '../db/unit-of-work.ts';
import type { Logger } from '../logging/logger.ts';
import type { Metrics } from '../metrics/registry.ts';
import { within } from '../util/within.ts';
import {
  CATALOG_ENTITIES,
  type CatalogNames,
  type CatalogRename,
  catalogDeletions,
  catalogRenames,
  type CatalogDeletion,
  namesSeenIn,
  readCatalogNames,
  underCurrentNames,
} from './catalog-names.ts';
import {
  type AllianceAuthConnection,
  isSchemaOrPermissionError,
  isStatementTimeout,
  WHAT_HOLDS_AA_TABLES,
  WHAT_MAKES_AA_SCHEMA,
} from './database.ts';
import {
  type AllianceAuthChange,
  diffFingerprints,
  type Fingerprints,
  parseFingerprint,
  readFingerprints,
  serializeFingerprint,
} from './fingerprint.ts';
import { readAllianceAuthIdentity } from './identity.ts';
import { checkAllianceAuthSchema } from './schema-check.ts';

/**
 * Follows Alliance Auth's changes: every cycle reads all fingerprints with one query (and the names
 * of the states and groups by id, catalog-names.ts), diffs them against the stored ones, and hands
 * the changes and the renames to `apply` inside one transaction of aa-oidc's own database that also
 * stores the new fingerprints and names. Either both commit or neither does, so a restart
 * (or another instance taking over) misses nothing and emits nothing twice. Only the instance
 * holding the lease polls; the commit is fenced by the lease, so a paused instance that lost it
 * cannot write over its successor.
 */
export const LEASE_NAME = 'alliance-auth';

/**
 * `aa-oidc directory rebind`: forgets what the poller remembers of Alliance Auth (each user's
 * fingerprint, each state's and group's name by AA's id, the cycle count), so that the next cycle
 * is a first one: a baseline of the database now configured, not its differences from another
 * one's users and names (which would read as renames of whitelisted states and groups).
 */
export async function forgetFollowedState(db: Kysely<Database>): Promise<{ fingerprints: number }> {
  // The lease first: a cycle that fenced it commits before this goes on (its rows are then deleted
  // below), and one that fences it later is fenced out (then finds the new binding).
  await db.deleteFrom('aa_poll_lease').where('name', '=', LEASE_NAME).execute();
  const fingerprints = await db.deleteFrom('aa_user_fingerprint').executeTakeFirst();
  await db.deleteFrom('aa_catalog_name').execute();
  return { fingerprints: Number(fingerprints.numDeletedRows) };
}

/**
 * The poll lease as another process holds it (`aa-oidc directory rebind` refuses meanwhile: that
 * serve follows the Alliance Auth database the binding is about to leave); undefined when none does.
 */
export async function heldPollLease(
  db: Kysely<Database>,
  at: number,
): Promise<{ owner: string; until: number } | undefined> {
  const row = await db
    .selectFrom('aa_poll_lease')
    .select(['owner', 'lease_until'])
    .where('name', '=', LEASE_NAME)
    .where('owner', 'is not', null)
    .where('lease_until', '>=', at)
    .executeTakeFirst();
  return row?.owner ? { owner: row.owner, until: Number(row.lease_until) } : undefined;
}

export type PollOutcome =
  /** The first cycle ever: fingerprints stored, nothing emitted (there is nothing to compare with). */
  | { outcome: 'baseline'; users: number }
  | {
      outcome: 'applied';
      users: number;
      changes: AllianceAuthChange[];
      renames: CatalogRename[];
      deletions: CatalogDeletion[];
    }
  /** Another instance holds the lease. */
  | { outcome: 'not_leader' }
  /** Alliance Auth's database did not answer; nothing changed, the next cycle tries again. */
  | { outcome: 'aa_unreachable'; error: string }
  /**
   * Alliance Auth's database answered, but gave up on a read at its statement timeout (a lock held
   * on AA's tables, a server short of CPU or disk); nothing changed, the next cycle tries again.
   */
  | { outcome: 'aa_timed_out'; error: string }
  /**
   * Alliance Auth's database answered that a table or column read is missing (an AA upgrade, a
   * migration not applied) or that the login may not read it; no retry mends it until AA's schema
   * or the login's grants change. Nothing changed, the next cycle tries again.
   */
  | { outcome: 'aa_schema_error'; error: string }
  /**
   * Alliance Auth answered with no user at all while users were known, or with users of whom none
   * has a state while users with one were known (every AA user has a profile in a state: its
   * profile or state table emptied, as while a backup is restored): refused, not applied.
   */
  | { outcome: 'refused_empty'; known: number }
  /** Another instance took the lease over while this cycle ran: rolled back. */
  | { outcome: 'lease_lost' }
  /**
   * The database is bound to another directory than the Alliance Auth database read (`aa-oidc
   * directory rebind` ran meanwhile): rolled back, and the poller stopped.
   */
  | { outcome: 'other_directory' };

export interface PollerDependencies {
  aa: Pick<AllianceAuthConnection, 'db' | 'kind' | 'statementTimeoutMs' | 'answerLimitMs'>;
  db: Kysely<Database>;
  intervalMs: number;
  logger: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  /**
   * Counts every cycle by outcome (`failed` for one that threw), and keeps the time the lease row
   * says a cycle of any instance last completed.
   */
  metrics?: Pick<Metrics, 'aaPollCycles' | 'aaPollLastSuccess'>;
  /**
   * Applies one cycle's changes inside the cycle's unit of work (the directory's change feed:
   * revocation, logout jobs, ended sessions, whitelists following `renames`), which also stores the
   * fingerprints; `previous` and `current` are the fingerprints on each side, both under the
   * current names. Notifications go to `unit.afterCommit`.
   */
  apply(
    unit: UnitOfWork,
    changes: readonly AllianceAuthChange[],
    fingerprints: {
      previous: Fingerprints;
      current: Fingerprints;
      renames: readonly CatalogRename[];
      /** States and groups deleted in AA since the last cycle (known only once names are kept). */
      deletions: readonly CatalogDeletion[];
      /**
       * Users who signed in to an application since about the previous cycle and still hold its
       * tokens (`usersSignedInSince`; empty without it): their access may have come and gone
       * between the two cycles, which the fingerprints cannot show.
       */
      signedInSince: ReadonlySet<number>;
    },
  ): Promise<void>;
  /**
   * Of the users who signed in to an application at or after `since` and before `until`, those who
   * still hold its tokens, read in the cycle's transaction of aa-oidc's database. A cycle asks it
   * with the time of the previous cycle less {@link SIGN_IN_MARGIN_MS}, until the time it began
   * reading AA, and calls `apply` when it names anyone.
   */
  usersSignedInSince?(
    trx: UnitOfWork['trx'],
    since: number,
    until: number,
    now: number,
  ): Promise<ReadonlySet<number>>;
  /**
   * A cycle's read of AA found a table or column missing, or one the login may not read (every such
   * cycle): `/readyz` looks at AA's columns at its next check (`AllianceAuthReadinessCheck.lookAgain`),
   * as after a request's read that found one missing.
   */
  onSchemaError?: () => void;
  now?: () => number;
  /** This instance's lease owner id (default: host, pid and a random part). */
  owner?: string;
  /**
   * How long `stop()` waits for a cycle in flight (default `aa.answerLimitMs`: the read it waits on
   * ends by then, answered or given up).
   */
  stopWaitMs?: number;
}

export interface AllianceAuthPoller {
  /** One cycle now (tests, the benchmark, the timer). Cycles never overlap. */
  pollOnce(): Promise<PollOutcome>;
  /** Polls every `intervalMs` until stopped. */
  start(): void;
  /**
   * Stops the timer, waits for a cycle in flight (at most `stopWaitMs`; one left running is logged),
   * and gives the lease up.
   */
  stop(): Promise<void>;
  /** How the last cycle went (for logs and readiness). */
  lastOutcome(): PollOutcome | undefined;
}

const BATCH = 500;

/**
 * How far before the previous cycle's time sign-ins still count as possibly unseen by it: that time
 * is taken after AA's database was read (two statements of at most 15 s each), and another instance
 * of aa-oidc, with a clock of its own, may have stamped the sign-in. Counting a sign-in twice costs
 * one more judgement of the user, never a second logout (what it ends is ended by then).
 *
 * A cycle judges only the sign-ins made before it began reading AA: one made during or after the
 * read may rest on access the read does not show (sign-in reads AA live), and judging it by the read
 * would revoke access the user still has. The next cycle judges it, its window starting at the end
 * of this cycle's read less the margin. (A sign-in stamped by another instance whose clock runs
 * behind this one's by more than the read took could still be judged by this read.)
 */
export const SIGN_IN_MARGIN_MS = 5 * 60_000;

/** The `outcome` label values of `aa_oidc_aa_poll_cycles_total`: every `PollOutcome`, and `failed`. */
const CYCLE_OUTCOMES: Record<PollOutcome['outcome'] | 'failed', true> = {
  baseline: true,
  applied: true,
  not_leader: true,
  aa_unreachable: true,
  aa_timed_out: true,
  aa_schema_error: true,
  refused_empty: true,
  lease_lost: true,
  other_directory: true,
  failed: true,
};

/** What each way of failing to read AA is reported as. */
const FAILURE_OUTCOMES = {
  unreachable: 'aa_unreachable',
  timed_out: 'aa_timed_out',
  schema: 'aa_schema_error',
} as const;

export function createAllianceAuthPoller(deps: PollerDependencies): AllianceAuthPoller {
  const { db, logger } = deps;
  const now = deps.now ?? Date.now;
  const owner = deps.owner ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  // A dead leader's lease lapses after three cycles (at least 30 s), then another instance polls.
  const leaseMs = Math.max(3 * deps.intervalMs, 30_000);
  let cache:
    | { generation: number; fingerprints: Fingerprints; texts: Map<number, string>; names: CatalogNames }
    | undefined;
  let running: Promise<PollOutcome> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = true;
  let last: PollOutcome | undefined;
  /** What the cycle in flight is doing, and since when (for the line of a `stop()` that leaves it). */
  let inFlight: { since: number; step: string } | undefined;
  /**
   * Since when AA's database has failed every cycle, or answered with no user at all (`empty`) or
   * with no user in any state (`stateless`), and how (logged once each time that changes, and once
   * when it clears).
   */
  let failing: { since: number; kind: keyof typeof FAILURE_OUTCOMES | 'empty' | 'stateless' } | undefined;
  // Every outcome from 0, so that the first failure counts as an increase.
  for (const outcome of Object.keys(CYCLE_OUTCOMES)) deps.metrics?.aaPollCycles.inc({ outcome }, 0);
  /** The time of the last completed cycle of any instance, as the lease row has it. */
  const noteLastSuccess = (at: number | null) => {
    if (at !== null) deps.metrics?.aaPollLastSuccess.set(at / 1000);
  };

  const acquireLease = async (): Promise<
    { generation: number; lastSuccessAt: number | null } | undefined
  > => {
    await db
      .insertInto('aa_poll_lease')
      .values({ name: LEASE_NAME, owner: null, lease_until: 0, generation: 0 })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    const at = now();
    const row = await db
      .updateTable('aa_poll_lease')
      .set({ owner, lease_until: at + leaseMs })
      .where('name', '=', LEASE_NAME)
      .where((eb) => eb.or([eb('owner', '=', owner), eb('owner', 'is', null), eb('lease_until', '<', at)]))
      .returning(['generation', 'last_success_at'])
      .executeTakeFirst();
    return row
      ? {
          generation: Number(row.generation),
          lastSuccessAt: row.last_success_at === null ? null : Number(row.last_success_at),
        }
      : undefined;
  };

  /** Gives the lease up, so that another instance takes over at once rather than after it lapses. */
  const releaseLease = () =>
    db
      .updateTable('aa_poll_lease')
      .set({ owner: null, lease_until: 0 })
      .where('name', '=', LEASE_NAME)
      .where('owner', '=', owner)
      .execute()
      .then(
        () => undefined,
        () => undefined,
      );

  const storedFingerprints = async (generation: number): Promise<Fingerprints> => {
    if (cache && cache.generation === generation) return cache.fingerprints;
    const rows = await db.selectFrom('aa_user_fingerprint').select(['user_id', 'fingerprint']).execute();
    return new Map(rows.map((row) => [Number(row.user_id), parseFingerprint(row.fingerprint)]));
  };

  const storedNames = async (generation: number): Promise<CatalogNames> => {
    if (cache && cache.generation === generation) return cache.names;
    const rows = await db.selectFrom('aa_catalog_name').select(['entity', 'id', 'name']).execute();
    const names = { state: new Map<number, string>(), group: new Map<number, string>() };
    for (const row of rows) names[row.entity]?.set(Number(row.id), row.name);
    return names;
  };

  const cachedTexts = (generation: number): Map<number, string> | undefined =>
    cache && cache.generation === generation ? cache.texts : undefined;

  /** How many users the last completed cycle recorded (for messages), or undefined when unknown. */
  const usersRecorded = async (generation: number): Promise<number | undefined> => {
    if (cache && cache.generation === generation) return cache.fingerprints.size;
    const row = await db
      .selectFrom('aa_user_fingerprint')
      .select((eb) => eb.fn.countAll().as('users'))
      .executeTakeFirst()
      .catch(() => undefined);
    return row === undefined ? undefined : Number(row.users);
  };

  /** Once a timeout episode: which read ran out of time, at how many users, and what to look at. */
  const reportTimeout = async (read: string, message: string, generation: number) => {
    const users = await usersRecorded(generation);
    const seconds = deps.aa.statementTimeoutMs / 1000;
    const scale = users
      ? `at ${users.toLocaleString('en-US')} users (as of the last cycle)`
      : 'before any cycle completed';
    logger.error(
      { err: { message }, users, statementTimeoutMs: deps.aa.statementTimeoutMs },
      `the Alliance Auth ${read} ran out of time after ${seconds} s ${scale}: Alliance Auth's database answers but gave up on the statement. Look for ${WHAT_HOLDS_AA_TABLES}; the query takes a few seconds at most with 50,000 users (docs/performance.md), and a far larger directory may need a longer AA_OIDC_AA_STATEMENT_TIMEOUT_SECONDS. Until it completes, AA's changes are not followed (no revocation or back-channel logout for them; sign-ins still read AA); polling goes on and resumes where it stopped`,
    );
  };

  /**
   * Once an episode: the read AA's database refused for its schema or the login's grants, what the
   * start-up schema check finds now (src/alliance-auth/schema-check.ts), and what to do.
   */
  const reportSchemaError = async (read: string, message: string) => {
    const findings = await checkAllianceAuthSchema(deps.aa.db, deps.aa.kind)
      .then((report) => report.errors)
      .catch(() => []);
    const found = findings.length > 0 ? ` (the schema check finds: ${findings.join('; ')})` : '';
    logger.error(
      { err: { message }, findings },
      `the Alliance Auth ${read} failed: Alliance Auth's database answers, but a table or column aa-oidc reads is missing or the login of AA_OIDC_AA_DATABASE_URL may not SELECT it${found}. Check ${WHAT_MAKES_AA_SCHEMA}, and the login's grants (SELECT on every table of AA's database: GRANT SELECT, SHOW VIEW ON alliance_auth.* on MariaDB). Until it completes, AA's changes are not followed (no revocation or back-channel logout for them); polling goes on and resumes where it stopped`,
    );
  };

  const cycle = async (): Promise<PollOutcome> => {
    inFlight = { since: now(), step: "taking the poll lease in aa-oidc's database" };
    const lease = await acquireLease();
    if (lease === undefined) {
      cache = undefined;
      // The leader's last success, so that every instance exports it, not only the leader.
      if (deps.metrics) {
        const row = await db
          .selectFrom('aa_poll_lease')
          .select('last_success_at')
          .where('name', '=', LEASE_NAME)
          .executeTakeFirst();
        noteLastSuccess(row?.last_success_at == null ? null : Number(row.last_success_at));
      }
      return { outcome: 'not_leader' };
    }
    const { generation, lastSuccessAt } = lease;
    noteLastSuccess(lastSuccessAt);
    let read: Fingerprints;
    let names: CatalogNames;
    // Sign-ins from now on are judged by the next cycle: this read may not show the access they
    // were given (AA read live at sign-in), and judging them by it would take that access away.
    const readStartedAt = now();
    let identity: string;
    let reading = 'fingerprint query';
    inFlight.step = "reading Alliance Auth's database";
    try {
      // Which Alliance Auth database this is, against the binding inside the transaction below.
      identity = await readAllianceAuthIdentity(deps.aa.db, deps.aa.kind);
      read = await readFingerprints(deps.aa.db);
      reading = 'query of the state and group names';
      names = await readCatalogNames(deps.aa.db);
    } catch (error) {
      const message = (error as Error).message;
      const kind = isStatementTimeout(error)
        ? 'timed_out'
        : isSchemaOrPermissionError(error)
          ? 'schema'
          : 'unreachable';
      if (kind === 'schema') deps.onSchemaError?.();
      if (failing?.kind !== kind) {
        failing = { since: failing?.since ?? now(), kind };
        if (kind === 'timed_out') await reportTimeout(reading, message, generation);
        else if (kind === 'schema') await reportSchemaError(reading, message);
        else
          logger.warn(
            { err: { message } },
            "Alliance Auth's database is unreachable; polling goes on and resumes where it stopped",
          );
      }
      return { outcome: FAILURE_OUTCOMES[kind], error: message };
    }
    if (failing !== undefined && failing.kind !== 'empty' && failing.kind !== 'stateless') {
      logger.info(
        { downForMs: now() - failing.since },
        failing.kind === 'unreachable'
          ? "Alliance Auth's database answers again"
          : "Alliance Auth's database completes the poll's queries again",
      );
      failing = undefined;
    }
    inFlight.step = "storing what it read in aa-oidc's database and applying the changes";
    const stored = await storedFingerprints(generation);
    if (read.size === 0 && stored.size > 0) {
      // Once an episode, as the failures above: the metric counts every refused cycle.
      if (failing?.kind !== 'empty') {
        failing = { since: failing?.since ?? now(), kind: 'empty' };
        logger.error(
          { known: stored.size },
          "Alliance Auth answered with no user at all; refusing to treat every user as deleted (check AA_OIDC_AA_DATABASE_URL); AA's changes are not followed until it answers with users again",
        );
      }
      return { outcome: 'refused_empty', known: stored.size };
    }
    // Every AA user has a profile in a state (AA creates it with the user, and a state's deletion
    // moves its users first): none in any state is AA's profile or state table read empty, as while
    // a backup is restored table by table, and would be read as every user losing their state.
    if (read.size > 0 && !anyInAState(read) && anyInAState(stored)) {
      if (failing?.kind !== 'stateless') {
        failing = { since: failing?.since ?? now(), kind: 'stateless' };
        logger.error(
          { known: stored.size, users: read.size },
          "Alliance Auth answered with users but none in any state (its authentication_userprofile or authentication_state table read empty: a restore in progress, or the wrong database); refusing to treat every user as having lost their state (check AA_OIDC_AA_DATABASE_URL); AA's changes are not followed until its users have states again",
        );
      }
      return { outcome: 'refused_empty', known: stored.size };
    }
    if (failing !== undefined) {
      logger.info(
        { users: read.size, emptyForMs: now() - failing.since },
        failing.kind === 'empty'
          ? 'Alliance Auth answers with users again; its changes are followed again'
          : "Alliance Auth answers with users' states again; its changes are followed again",
      );
      failing = undefined;
    }
    const baseline = generation === 0 && stored.size === 0;
    // Names by id: a rename is one change of the whitelists, and no change of any user's membership.
    const namesBefore = await storedNames(generation);
    const keptNames = namesBefore.state.size + namesBefore.group.size > 0;
    const renames = baseline ? [] : catalogRenames(keptNames ? namesBefore : namesSeenIn(stored), names);
    const deletions = baseline || !keptNames ? [] : catalogDeletions(namesBefore, names);
    const previous = underCurrentNames(stored, names);
    const current = underCurrentNames(read, names);
    const nameWrites = catalogWrites(namesBefore, names);
    // Only the users whose stored form differs are diffed and written: on a quiet cycle that is
    // nobody, and the cycle costs the query and one serialisation per user.
    const at = now();
    // The stored texts, under the names they were stored with: a renamed member is written anew.
    const previousText = cachedTexts(generation) ?? textsOf(stored);
    const currentText = textsOf(current);
    const upserts: Array<{ user_id: number; fingerprint: string; updated_at: number }> = [];
    const changedBefore: Fingerprints = new Map();
    const changedAfter: Fingerprints = new Map();
    for (const [userId, text] of currentText) {
      if (previousText.get(userId) === text) continue;
      upserts.push({ user_id: userId, fingerprint: text, updated_at: at });
      changedAfter.set(userId, current.get(userId)!);
      const was = previous.get(userId);
      if (was) changedBefore.set(userId, was);
    }
    const deleted = [...previous.keys()].filter((userId) => !current.has(userId));
    for (const userId of deleted) changedBefore.set(userId, previous.get(userId)!);
    const changes = baseline ? [] : diffFingerprints(changedBefore, changedAfter);

    let nextGeneration: number;
    try {
      nextGeneration = await inUnitOfWork(
        db,
        async (unit) => {
          const { trx } = unit;
          const fenced = await trx
            .updateTable('aa_poll_lease')
            .set((eb) => ({
              generation: eb('generation', '+', 1),
              last_success_at: at,
              lease_until: now() + leaseMs,
            }))
            .where('name', '=', LEASE_NAME)
            .where('owner', '=', owner)
            .where('generation', '=', generation)
            .returning('generation')
            .executeTakeFirst();
          if (!fenced) throw new LeaseLost();
          // Bound to another directory (a rebind while this process runs): nothing of this
          // database's users may be stored as the followed state, nor applied.
          const bound = await readDirectoryBinding(trx);
          if (bound && (bound.directory !== 'alliance-auth' || bound.identity !== identity))
            throw new OtherDirectory(describeBinding(bound));
          for (let start = 0; start < upserts.length; start += BATCH) {
            await trx
              .insertInto('aa_user_fingerprint')
              .values(upserts.slice(start, start + BATCH))
              .onConflict((oc) =>
                oc.column('user_id').doUpdateSet((eb) => ({
                  fingerprint: eb.ref('excluded.fingerprint'),
                  updated_at: eb.ref('excluded.updated_at'),
                })),
              )
              .execute();
          }
          for (let start = 0; start < deleted.length; start += BATCH) {
            await trx
              .deleteFrom('aa_user_fingerprint')
              .where('user_id', 'in', deleted.slice(start, start + BATCH))
              .execute();
          }
          for (let start = 0; start < nameWrites.upserts.length; start += BATCH) {
            await trx
              .insertInto('aa_catalog_name')
              .values(nameWrites.upserts.slice(start, start + BATCH))
              .onConflict((oc) =>
                oc.columns(['entity', 'id']).doUpdateSet((eb) => ({ name: eb.ref('excluded.name') })),
              )
              .execute();
          }
          for (const entity of CATALOG_ENTITIES) {
            const gone = nameWrites.deleted[entity];
            for (let start = 0; start < gone.length; start += BATCH) {
              await trx
                .deleteFrom('aa_catalog_name')
                .where('entity', '=', entity)
                .where('id', 'in', gone.slice(start, start + BATCH))
                .execute();
            }
          }
          // Who signed in since the previous cycle may have had access that came and went meanwhile.
          const signedInSince =
            baseline || lastSuccessAt === null || !deps.usersSignedInSince
              ? new Set<number>()
              : await deps.usersSignedInSince(trx, lastSuccessAt - SIGN_IN_MARGIN_MS, readStartedAt, unit.at);
          if (changes.length > 0 || renames.length > 0 || deletions.length > 0 || signedInSince.size > 0)
            await deps.apply(unit, changes, { previous, current, renames, deletions, signedInSince });
          return Number(fenced.generation);
        },
        {
          now,
          onCallbackError: (error) =>
            logger.error(
              { err: { message: (error as Error)?.message } },
              'a listener of Alliance Auth changes failed',
            ),
        },
      );
    } catch (error) {
      if (error instanceof LeaseLost) {
        cache = undefined;
        return { outcome: 'lease_lost' };
      }
      if (error instanceof OtherDirectory) {
        cache = undefined;
        stopped = true;
        await releaseLease();
        logger.error(
          { bound: error.message },
          `E010: the database is bound to ${error.message}, not to the Alliance Auth database this server reads (aa-oidc directory rebind): Alliance Auth's changes are no longer followed by this process`,
        );
        return { outcome: 'other_directory' };
      }
      throw error;
    }
    cache = { generation: nextGeneration, fingerprints: current, texts: currentText, names };
    noteLastSuccess(at);
    if (baseline) {
      logger.info(
        { users: current.size },
        'Alliance Auth fingerprints recorded; following changes from now on',
      );
      return { outcome: 'baseline', users: current.size };
    }
    for (const rename of renames) {
      logger.info(
        { entity: rename.entity, id: rename.id, from: rename.from, to: rename.to },
        `Alliance Auth renamed a ${rename.entity}; application whitelists follow`,
      );
    }
    if (changes.length > 0) logger.info({ changes: changes.length }, 'Alliance Auth changes applied');
    return { outcome: 'applied', users: current.size, changes, renames, deletions };
  };

  const pollOnce = (): Promise<PollOutcome> => {
    running ??= cycle()
      .then(
        (outcome) => {
          last = outcome;
          deps.metrics?.aaPollCycles.inc({ outcome: outcome.outcome });
          return outcome;
        },
        (error: unknown) => {
          deps.metrics?.aaPollCycles.inc({ outcome: 'failed' });
          throw error;
        },
      )
      .finally(() => {
        running = undefined;
        inFlight = undefined;
      });
    return running;
  };

  /** One cycle on the timer's behalf: a failure is logged, and the next cycle is scheduled. */
  const cycleThenSchedule = () => {
    pollOnce()
      .catch((error: Error) =>
        logger.error(
          { err: { name: error.name, message: error.message } },
          'an Alliance Auth poll cycle failed',
        ),
      )
      .finally(schedule);
  };

  function schedule() {
    if (stopped) return;
    timer = setTimeout(cycleThenSchedule, deps.intervalMs);
    timer.unref();
  }

  return {
    pollOnce,
    start() {
      if (!stopped) return;
      stopped = false;
      // The first cycle right away: a restarted instance catches up at once.
      cycleThenSchedule();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      const settled = running?.then(
        () => true,
        () => true,
      );
      if (settled && !(await within(settled, deps.stopWaitMs ?? deps.aa.answerLimitMs, false)) && inFlight) {
        logger.warn(
          { step: inFlight.step, runningForMs: now() - inFlight.since },
          `stopping without waiting longer for the Alliance Auth poll cycle in flight (${inFlight.step}): what it has not committed is left to the next cycle, of another instance or of this one when started again (its commit is fenced by the lease, so nothing is applied twice)`,
        );
      }
      await releaseLease();
    },
    lastOutcome: () => last,
  };
}

/** Whether any user is in a state (stops at the first: on a sound read, at once). */
function anyInAState(fingerprints: Fingerprints): boolean {
  for (const fingerprint of fingerprints.values()) if (fingerprint.state !== null) return true;
  return false;
}

function textsOf(fingerprints: Fingerprints): Map<number, string> {
  const texts = new Map<number, string>();
  for (const [userId, fingerprint] of fingerprints) texts.set(userId, serializeFingerprint(fingerprint));
  return texts;
}

class LeaseLost extends Error {
  override name = 'LeaseLost';
}

/** The directory the database is bound to, as a message names it, when not the one read. */
class OtherDirectory extends Error {
  override name = 'OtherDirectory';
}

/** The rows of `aa_catalog_name` that differ between the stored names and the names read now. */
function catalogWrites(
  before: CatalogNames,
  after: CatalogNames,
): {
  upserts: Array<{ entity: 'state' | 'group'; id: number; name: string }>;
  deleted: Record<'state' | 'group', number[]>;
} {
  const upserts: Array<{ entity: 'state' | 'group'; id: number; name: string }> = [];
  const deleted: Record<'state' | 'group', number[]> = { state: [], group: [] };
  for (const entity of CATALOG_ENTITIES) {
    for (const [id, name] of after[entity]) {
      if (before[entity].get(id) !== name) upserts.push({ entity, id, name });
    }
    for (const id of before[entity].keys()) if (!after[entity].has(id)) deleted[entity].push(id);
  }
  return { upserts, deleted };
}
