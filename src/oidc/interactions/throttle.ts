import { createHash } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import type { Config } from '../../config/load.ts';
import { deleteOldest, type PurgeBounds, type PurgeRound, purgeRound } from '../../db/bounded-purge.ts';
import type { DatabaseKind } from '../../db/connect.ts';
import { isTryAgainError } from '../../db/errors.ts';
import type { Database } from '../../db/schema.ts';
import type { Logger } from '../../logging/logger.ts';
import { EXPIRED_ROWS_PURGE } from '../../tokens/payload-rows.ts';
import { addressKey } from '../../util/address-key.ts';
import { nameKey } from '../../util/name-key.ts';
import { stripPythonWhitespace } from '../../util/python-strip.ts';

export type ThrottleConfig = Config['login'];

/**
 * What an attempt tries: a name typed into a password form, an account an identity provider proved
 * (`eve:<character id>`), or a user's second factor (a code from the authenticator app or a recovery
 * code, `user:<id>`). No two share an account's budget, whatever the strings: else anyone could lock a
 * pilot out of EVE sign-in by typing `eve:<id>` into the password form. A code counts against the user
 * it was asked of, not against a name: whichever first factor led to it (a password, typed in any
 * spelling, or EVE), every wrong code of one user spends one budget.
 */
export type SignInMethod = 'password' | 'external' | 'code';

/** A sign-in attempt that holds its place in every budget; forgotten when the password was right. */
export interface ReservedAttempt {
  readonly id: number;
  readonly method: SignInMethod;
  readonly account: string;
  readonly address: string;
}

/**
 * Failed-login throttling, in the database so that it holds across instances. Three
 * budgets within one window: failures per account and client address, per account across all
 * addresses (much larger, so that guessing from elsewhere cannot lock a person out), and per address
 * across accounts (every method together). A user's second-factor codes have a much smaller budget
 * across addresses (`maxCodeFailuresPerUser`, 10 by default): whoever reaches the code has the
 * password, and at a code's three chances in a million (the steps either side of now count too), 50
 * guesses a window from enough addresses (4,800 a day) pass about 1.4 % a day, 10 about 0.3 %, while
 * each wrong one is told (`two_factor_failed`). Locking the code step of such an account for the
 * window is the lesser harm; the owner's few typos stay well within it. A password attempt's account is the username as the
 * directory compares it, counted whether or not such a user exists: the answer never tells whether a
 * username is real; an external sign-in's is what the identity provider proved; a second-factor code's
 * is the user it was asked of (`codeAccount`); an account of one method is never one of another's
 * (`SignInMethod`). An IPv6 client is one address per /64.
 *
 * An attempt is reserved before its password is verified: the reservation is written as a failure
 * only when every budget, this attempt included, still has room, atomically with the counting. So N
 * parallel guesses get at most the remaining budget verified, whatever instance serves them.
 */
export interface LoginThrottle {
  /**
   * Reserves a password attempt for `username` (`throttledName`, or the username of a signed-in person
   * confirming their password); undefined (nothing written) when a budget is spent.
   */
  reserve(username: string, address: string): Promise<ReservedAttempt | undefined>;
  /** `reserve` for the account an identity provider proved (`eve:<character id>`): its own budgets. */
  reserveExternal(subject: string, address: string): Promise<ReservedAttempt | undefined>;
  /**
   * `reserve` for a second-factor code of the user `userId` (at the login or the account page): one
   * budget per user, whichever first factor came before and however the name was typed.
   */
  reserveCode(userId: number, address: string): Promise<ReservedAttempt | undefined>;
  /**
   * After a successful login: the attempt is no failure, and the failures of this account (of its
   * method) from this address are forgotten (those from other addresses are not: they may be someone else's).
   */
  succeeded(attempt: ReservedAttempt): Promise<void>;
  /**
   * The attempt was never tried: what it needed (the directory's database) could not be reached, so
   * the person is asked to try again. Its place in every budget is given back; nothing else changes
   * (the account's other failures stay). Held until then, so parallel attempts stay bounded meanwhile.
   */
  release(attempt: ReservedAttempt): Promise<void>;
  /**
   * Deletes failures older than the window, the oldest first, one round (`bounds`, default
   * `EXPIRED_ROWS_PURGE`: an attack leaves many), by the time index (migration 0083); `more` when
   * some may remain. Makes no further statement once `signal` is aborted.
   */
  purge(signal?: AbortSignal, bounds?: PurgeBounds): Promise<PurgeRound>;
}

/** What the helpers below log to: a warning when a place cannot be given back. */
export type ThrottleLogger = Pick<Logger, 'warn'>;

/**
 * Gives `attempt`'s place back (`release`) after the directory failed to answer it. Our own database
 * failing too leaves the attempt counted: a warning (naming neither the password nor any secret), and
 * the person's answer is still the try-again page.
 */
export async function releaseUnanswered(
  throttle: Pick<LoginThrottle, 'release'>,
  attempt: ReservedAttempt,
  log: ThrottleLogger,
  fields: Record<string, unknown>,
): Promise<void> {
  try {
    await throttle.release(attempt);
  } catch (error) {
    log.warn(
      {
        ...fields,
        method: attempt.method,
        err: { name: (error as Error).name, message: (error as Error).message },
      },
      'could not give back the throttle place of a sign-in attempt the directory never answered',
    );
  }
}

/**
 * `ask()` (the directory asked about `attempt`, reserved before), with the attempt's place given back
 * when the directory could not answer (`isTryAgainError`: its database down or unreachable, or
 * answering without what the request needs, such as a privilege its login lacks, or out of time;
 * `releaseUnanswered`); the error is then thrown as it was, for the try-again page further out. Any answer, a refusal included, and any other
 * error leave the attempt as it is: a wrong password still counts.
 */
export async function askReleasingIfUnanswered<T>(
  throttle: Pick<LoginThrottle, 'release'>,
  attempt: ReservedAttempt,
  log: ThrottleLogger,
  fields: Record<string, unknown>,
  ask: () => Promise<T>,
): Promise<T> {
  try {
    return await ask();
  } catch (error) {
    if (isTryAgainError(error)) await releaseUnanswered(throttle, attempt, log, fields);
    throw error;
  }
}

/**
 * The account a failure counts against: the username as the directory compares it (stripped as the
 * login route strips it, then NFKC, then case folded), so that look-alike spellings of one name (`ａｄｍｉｎ`, `𝐚𝐝𝐦𝐢𝐧`) share one budget. Kept
 * beside the method (`login_failure.method`), which tells a typed `eve:1` from the character 1.
 */
export function accountKey(username: string): string {
  return nameKey(stripPythonWhitespace(username)).slice(0, 150);
}

/** The account a second-factor code counts against: the user, by the id that never changes. */
export function codeAccount(userId: number): string {
  return `user:${userId}`;
}

/**
 * `aa-oidc directory rebind`: removes the failures counted against user ids (the second-factor codes,
 * `codeAccount`), which name other people once the directory changed; returns how many went. Failures
 * of a typed name or of what an identity provider proved stay: they name no user id.
 */
export async function forgetUserIdFailures(db: Kysely<Database>): Promise<number> {
  const result = await db.deleteFrom('login_failure').where('method', '=', 'code').executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** A PostgreSQL advisory lock id for a throttle key (64 bits of its SHA-256, signed). */
function lockId(key: string): bigint {
  return createHash('sha256').update(`aa-oidc login ${key}`).digest().readBigInt64BE(0);
}

export function createLoginThrottle(
  db: Kysely<Database>,
  kind: DatabaseKind,
  config: ThrottleConfig,
  now: () => number = Date.now,
): LoginThrottle {
  const windowStart = (at: number) => at - config.failureWindowSeconds * 1000;

  /**
   * Inserts the attempt only if every budget has room: one statement, so on SQLite (one writer at a
   * time) it is atomic by itself; on PostgreSQL it runs under the account's and the address's
   * advisory locks, taken first (in one order, so two attempts never wait on each other's lock).
   */
  const insertIfRoom = async (
    executor: Kysely<Database>,
    method: SignInMethod,
    account: string,
    address: string,
    at: number,
  ): Promise<number | undefined> => {
    const since = windowStart(at);
    const failures = (where: ReturnType<typeof sql>) =>
      sql`(select count(*) from login_failure where ${where} and failed_at > ${since})`;
    const ofAccount = sql`username = ${account} and method = ${method}`;
    // A user's codes: the owner's typos stay within it, a thief's guesses (who has the password) soon do not.
    const perAccount =
      method === 'code'
        ? Math.min(config.maxFailuresPerAccount, config.maxCodeFailuresPerUser)
        : config.maxFailuresPerAccount;
    const result = await sql<{ id: number }>`
      insert into login_failure (method, username, address, failed_at)
      select ${method}, ${account}, ${address}, cast(${at} as bigint)
      where ${failures(sql`${ofAccount} and address = ${address}`)} < ${config.maxFailuresPerAccountAndAddress}
        and ${failures(ofAccount)} < ${perAccount}
        and ${failures(sql`address = ${address}`)} < ${config.maxFailuresPerAddress}
      returning id`.execute(executor);
    const row = result.rows[0];
    return row === undefined ? undefined : Number(row.id);
  };

  const reserveAs = async (
    method: SignInMethod,
    account: string,
    clientAddress: string,
  ): Promise<ReservedAttempt | undefined> => {
    const address = addressKey(clientAddress);
    const at = now();
    const id =
      kind === 'postgres'
        ? await db.transaction().execute(async (trx) => {
            // The account's lock is named without the method, as it was before the method was kept,
            // so an instance not yet upgraded takes the same lock; a typed `eve:1` and the character 1
            // merely wait on each other, as do a typed `user:1` and the codes of the user 1.
            const locks = [lockId(`account ${account}`), lockId(`address ${address}`)].sort((a, b) =>
              a < b ? -1 : a > b ? 1 : 0,
            );
            for (const lock of locks)
              await sql`select pg_advisory_xact_lock(cast(${lock.toString()} as bigint))`.execute(trx);
            return insertIfRoom(trx, method, account, address, at);
          })
        : await insertIfRoom(db, method, account, address, at);
    return id === undefined ? undefined : { id, method, account, address };
  };

  return {
    reserve: (username, address) => reserveAs('password', accountKey(username), address),
    reserveExternal: (subject, address) => reserveAs('external', accountKey(subject), address),
    reserveCode: (userId, address) => reserveAs('code', codeAccount(userId), address),
    async succeeded(attempt) {
      await db
        .deleteFrom('login_failure')
        .where((eb) =>
          eb.or([
            eb('id', '=', attempt.id),
            eb.and([
              eb('method', '=', attempt.method),
              eb('username', '=', attempt.account),
              eb('address', '=', attempt.address),
            ]),
          ]),
        )
        .execute();
    },
    async release(attempt) {
      await db.deleteFrom('login_failure').where('id', '=', attempt.id).execute();
    },
    purge(signal, bounds = EXPIRED_ROWS_PURGE) {
      // A failure at the window's start is outside it already (`failed_at > since`, above).
      const before = windowStart(now()) + 1;
      return purgeRound(deleteOldest(db, 'login_failure', 'failed_at', before), bounds, signal);
    },
  };
}
