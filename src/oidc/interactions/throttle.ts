import type { Kysely } from 'kysely';
import type { Config } from '../../config/load.ts';
import type { Database } from '../../db/schema.ts';

export type ThrottleConfig = Config['login'];

/**
 * Failed-login throttling per account and per address, in the database so that it holds across
 * instances (section B). The account key is the username as the directory compares it, counted whether or
 * not such a user exists: the answer never tells whether a username is real.
 */
export interface LoginThrottle {
  /** True when either the account or the address has reached its limit within the window. */
  isThrottled(username: string, address: string): Promise<boolean>;
  recordFailure(username: string, address: string): Promise<void>;
  /** After a successful login: the account's failures are forgotten (the address's are not). */
  clearAccount(username: string): Promise<void>;
  /** Deletes failures older than the window; returns how many went. */
  purge(): Promise<number>;
}

/**
 * The account a failure counts against: the username as the directory compares it (NFKC, then case
 * folded), so that look-alike spellings of one name (`ａｄｍｉｎ`, `𝐚𝐝𝐦𝐢𝐧`) share one budget.
 */
export function accountKey(username: string): string {
  return username.normalize('NFKC').trim().toLowerCase().slice(0, 150);
}

export function createLoginThrottle(
  db: Kysely<Database>,
  config: ThrottleConfig,
  now: () => number = Date.now,
): LoginThrottle {
  const windowStart = () => now() - config.failureWindowSeconds * 1000;
  return {
    async isThrottled(username, address) {
      const since = windowStart();
      const [account, fromAddress] = await Promise.all([
        db
          .selectFrom('login_failure')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('username', '=', accountKey(username))
          .where('failed_at', '>', since)
          .executeTakeFirstOrThrow(),
        db
          .selectFrom('login_failure')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('address', '=', address.slice(0, 64))
          .where('failed_at', '>', since)
          .executeTakeFirstOrThrow(),
      ]);
      return (
        Number(account.n) >= config.maxFailuresPerAccount ||
        Number(fromAddress.n) >= config.maxFailuresPerAddress
      );
    },
    async recordFailure(username, address) {
      await db
        .insertInto('login_failure')
        .values({ username: accountKey(username), address: address.slice(0, 64), failed_at: now() })
        .execute();
    },
    async clearAccount(username) {
      await db.deleteFrom('login_failure').where('username', '=', accountKey(username)).execute();
    },
    async purge() {
      const result = await db
        .deleteFrom('login_failure')
        .where('failed_at', '<=', windowStart())
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}
