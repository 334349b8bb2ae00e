import type { Kysely } from 'kysely';
import type { Database, UserRow } from '../../db/schema.ts';
import type { Logger } from '../../logging/logger.ts';
import type { PasswordAuthenticator } from '../authenticator.ts';
import { conflict, DirectoryError } from '../errors.ts';
import type { ChangeRunner } from './change.ts';
import {
  createDummyHash,
  generatePassword,
  hashPassword,
  isPossiblePassword,
  matchPassword,
  normalizePassword,
  passwordNeedsRehash,
  validateNewPassword,
} from './passwords.ts';
import * as queries from './queries.ts';
import { validateUserRef } from './records.ts';
import type { BootstrapLogin, DirectoryAdmin, PasswordCheck } from './types.ts';
import { insertUser } from './new-user.ts';
import { normalizeUsername } from './validation.ts';

/** The built-in directory's sign-in: password checks, the last-login stamp, the first superuser. */

const BOOTSTRAP_USERNAME = 'admin';

type LoginOperations = Pick<DirectoryAdmin, 'verifyPassword' | 'recordLogin' | 'ensureBootstrapSuperuser'>;

export function loginOperations(
  db: Kysely<Database>,
  changes: ChangeRunner,
  logger?: Pick<Logger, 'warn'>,
): LoginOperations {
  const dummyHash = createDummyHash();
  return {
    async verifyPassword(username, password): Promise<PasswordCheck> {
      let user: UserRow | undefined;
      try {
        user = await queries.selectUser(db, { username: normalizeUsername(username) });
      } catch (error) {
        if (!(error instanceof DirectoryError)) throw error;
      }
      // One argon2 verification whatever happens (two for a text not in NFC), so that timing tells
      // nothing about the username; a text no password can be fails after the same work, never cut.
      const hash = user?.password_hash ?? (await dummyHash());
      const match = await matchPassword(hash, password);
      if (!user || user.password_hash === null || match === 'none') return { outcome: 'invalid' };
      if (user.active !== 1) return { outcome: 'inactive', user };
      // A hash of the text as typed, made before passwords were normalised, is replaced by one of its
      // NFC form (which the text as typed then matches too), as one of older parameters is; unless
      // that form could not sign in (longer than the limit: NFC lengthens a few characters).
      const stale = match === 'as_typed' || passwordNeedsRehash(user.password_hash);
      if (stale && isPossiblePassword(normalizePassword(password))) {
        const rehashed = await hashPassword(password);
        await db
          .updateTable('app_user')
          .set({ password_hash: rehashed })
          .where('id', '=', user.id)
          .where('password_hash', '=', user.password_hash)
          .execute();
      }
      return { outcome: 'valid', user };
    },

    async recordLogin(userId, at = Date.now()) {
      const target = validateUserRef({ id: userId });
      if (!('id' in target)) return;
      await db.updateTable('app_user').set({ last_login_at: at }).where('id', '=', target.id).execute();
    },

    async ensureBootstrapSuperuser(options): Promise<BootstrapLogin | null> {
      // Two instances starting at once both try `admin`; the loser's insert conflicts, it retries
      // and then finds the winner's superuser.
      for (let attempt = 0; attempt < 5; attempt += 1) {
        if (await queries.hasActiveSuperuser(db)) return null;
        const password = generatePassword();
        const passwordHash = await hashPassword(password);
        let username: string | null;
        try {
          username = await changes.run({ actor: options?.actor ?? 'bootstrap' }, async (scope) => {
            // Read the taken names first, then look for a superuser: under PostgreSQL's read committed
            // a racing start that committed `admin` in between is then seen as the superuser it is,
            // never mistaken for a plain user whose name forces `admin-1`.
            const taken = new Set(await queries.selectUsernamesLike(scope.trx, BOOTSTRAP_USERNAME));
            if (await queries.hasActiveSuperuser(scope.trx)) return null;
            let candidate = BOOTSTRAP_USERNAME;
            for (let n = 1; taken.has(candidate); n += 1) candidate = `${BOOTSTRAP_USERNAME}-${n}`;
            const record = await insertUser(
              scope,
              {
                username: candidate,
                values: {
                  superuser: 1,
                  active: 1,
                  email: '',
                  email_verified: 0,
                  oidc_access: 0,
                  must_change_password: 1,
                },
                state: null,
                groups: [],
              },
              passwordHash,
            );
            // Last, so that the commit follows: a login that cannot be handed over is rolled back.
            await options?.handOver?.({ username: record.user.username, password });
            return record.user.username;
          });
        } catch (error) {
          if (error instanceof DirectoryError && error.code === 'conflict') continue;
          throw error;
        }
        if (username === null) return null;
        logger?.warn(
          { username },
          'created the bootstrap superuser; its one-time password is in the bootstrap password file',
        );
        return { username, password };
      }
      throw conflict(
        'could not create the bootstrap superuser: concurrent attempts kept conflicting; try again',
      );
    },
  };
}

/**
 * The built-in directory's password authenticator: argon2id hashes in `app_user`, the same time
 * for unknown and known usernames, and the last-login stamp of a complete sign-in. An account whose password
 * someone else chose (`must_change_password`) signs in only after choosing its own.
 */
export function builtinPasswordAuthenticator(
  login: Pick<DirectoryAdmin, 'verifyPassword' | 'recordLogin' | 'findUserById' | 'setPassword'>,
): PasswordAuthenticator {
  return {
    kind: 'password',
    async prepare(username) {
      // The throttle's key tells names apart as this directory does (both `nameKey`: NFKC, lower
      // case), so the typed name is the key: every spelling of a user shares its budget, and the key
      // is the same whether or not the user exists (no coarser fold needed, which would only merge
      // the budgets of users such as `zoe` and `zöe`). Nothing to read before the throttle; the user
      // is read once, with the password.
      return {
        throttledName: username,
        async authenticate(password) {
          const check = await login.verifyPassword(username, password);
          switch (check.outcome) {
            case 'valid':
              if (check.user.must_change_password === 1)
                return {
                  outcome: 'password_change_required',
                  userId: check.user.id,
                  username: check.user.username,
                };
              return { outcome: 'authenticated', userId: check.user.id, amr: ['pwd'] };
            case 'inactive':
              return { outcome: 'refused', reason: 'inactive' };
            case 'invalid':
              return { outcome: 'refused', reason: 'invalid' };
          }
        },
      };
    },

    async replacePassword(userId, newPassword) {
      const user = await login.findUserById(userId);
      if (!user || user.active !== 1 || user.must_change_password !== 1) return { outcome: 'not_pending' };
      try {
        validateNewPassword(newPassword);
      } catch (error) {
        if (error instanceof DirectoryError)
          return { outcome: 'unacceptable', message: `${capitalised(error.message)}.` };
        throw error;
      }
      if ((await login.verifyPassword(user.username, newPassword)).outcome === 'valid')
        return { outcome: 'unacceptable', message: 'Choose a password other than the one you were given.' };
      await login.setPassword({ id: user.id }, newPassword, { actor: `self:${user.username}` });
      return { outcome: 'authenticated', userId: user.id, amr: ['pwd'] };
    },

    recordSignIn: (userId) => login.recordLogin(userId),
  };
}

function capitalised(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
